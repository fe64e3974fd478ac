#!/usr/bin/perl
# Write a MaxMind DB (mmdb) file with MaxMind's own writer (Debian libmaxmind-db-writer-perl),
# for fwlog's tests: never a downloaded database.
#
# Usage: mkmmdb.pl OUT.mmdb < spec.json
# spec: {"database_type": "...", "ip_version": 4|6, "records": [{"net": "81.2.69.0/24",
#        "data": {...}}, ...]}
# Map values become maps, arrays arrays, strings utf8_string; the keys below have the types
# GeoIP2 databases give them. A string value of a double key ("nan", "inf") is numified, so a
# test can plant NaN and infinite coordinates.
use strict;
use warnings;
use JSON::PP;
use MaxMind::DB::Writer::Tree;

my $out = shift or die "usage: $0 OUT.mmdb < spec.json\n";
my $spec = JSON::PP->new->utf8->decode(do { local $/; <STDIN> });

my %types = (
    latitude => 'double', longitude => 'double', accuracy_radius => 'uint16',
    autonomous_system_number => 'uint32', geoname_id => 'uint32',
);
my %kinds;
sub walk {
    my ($v) = @_;
    if (ref $v eq 'HASH') {
        for my $k (keys %$v) {
            if (($types{$k} // '') eq 'double') {
                $v->{$k} = 0 + $v->{$k};
            }
            $kinds{$k} //= $types{$k} // (ref $v->{$k} eq 'HASH' ? 'map'
                : ref $v->{$k} eq 'ARRAY' ? ['array', 'utf8_string'] : 'utf8_string');
            walk($v->{$k});
        }
    } elsif (ref $v eq 'ARRAY') {
        walk($_) for @$v;
    }
}
walk($_->{data}) for @{ $spec->{records} };

my $v6 = ($spec->{ip_version} // 6) == 6;
my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version            => $v6 ? 6 : 4,
    record_size           => 28,
    database_type         => $spec->{database_type} // 'fwlog-test',
    languages             => ['en'],
    description           => { en => 'fwlog test database' },
    alias_ipv6_to_ipv4    => $v6 ? 1 : 0,
    remove_reserved_networks => 0,
    map_key_type_callback => sub { $kinds{ $_[0] } // 'utf8_string' },
);
for my $r (@{ $spec->{records} }) {
    my $net = $r->{net};
    # IPv4 networks in an IPv6 tree live at ::a.b.c.d/(96+len) (aliased to ::ffff: and 2002:).
    if ($v6 && $net =~ m{^(\d+\.\d+\.\d+\.\d+)/(\d+)$}) {
        $net = "::$1/" . (96 + $2);
    }
    $tree->insert_network($net, $r->{data});
}
open my $fh, '>:raw', $out or die "$out: $!\n";
$tree->write_tree($fh);
close $fh or die "$out: $!\n";
