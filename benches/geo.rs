//! GeoIP/ASN enrichment cost per packet (`--geoip`, `--asn`), against the same work without it
//! measured in the same run: decoding the packet's addresses and formatting it (fwlog, JSON).
//! With a warm cache the extra cost is the lookups of a packet's two addresses and the tag or
//! JSON fields. Also the cold cost: a lookup that misses the cache and walks the database.
//! Prints ns/packet and ratios; asserts nothing (figures only).
//!
//! The databases are written by MaxMind's own Perl writer (libmaxmind-db-writer-perl, as in
//! the tests): 4096 IPv4 /24 networks with country, city, location, ASN and organisation.
//!
//! Run: `cargo bench --bench geo` (`FWLOG_BENCH_ROUNDS=N` for fewer rounds, e.g. under
//! `valgrind --tool=callgrind`, whose counts for `pass_geo` and `pass_plain` give the
//! instructions per packet of each, whatever else runs on the machine)

use std::hint::black_box;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use fwlog::format::{FormatKind, FormatOptions, Formatter, NameTables, Names};
use fwlog::geo::{Geo, GeoConfig, GeoInfo};
use fwlog::packet::{family, Packet, TimeSource, Timestamp};

/// Network `i` of the test database: 81.(i / 256).(i % 256).0/24 with i < 4096.
fn net(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(81, (i / 256) as u8, (i % 256) as u8, 0)
}

fn mkdb(dir: &std::path::Path, name: &str, asn: bool) -> std::path::PathBuf {
    let records: Vec<serde_json::Value> = (0..4096)
        .map(|i| {
            let data = if asn {
                serde_json::json!({"autonomous_system_number": 64512 + i,
                    "autonomous_system_organization": format!("Example Networks {i}")})
            } else {
                serde_json::json!({"country": {"iso_code": "DE", "names": {"en": "Germany"}},
                    "city": {"names": {"en": format!("City {i}")}},
                    "location": {"latitude": 50.0 + f64::from(i % 10), "longitude": 8.5}})
            };
            serde_json::json!({"net": format!("{}/24", net(i)), "data": data})
        })
        .collect();
    let spec = serde_json::json!({"database_type": name, "ip_version": 6, "records": records});
    let out = dir.join(format!("{name}.mmdb"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/mkmmdb.pl");
    let mut child = Command::new("perl")
        .arg(script)
        .arg(&out)
        .stdin(Stdio::piped())
        .spawn()
        .expect("perl (install libmaxmind-db-writer-perl)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "mkmmdb.pl failed");
    out
}

/// A TCP SYN from `src` to `dst`.
fn syn(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[
        0xd4, 0x31, 0, 22, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0,
    ]);
    p.extend_from_slice(&[0, 0, 0, 0]);
    p
}

struct GeoNames(Vec<(IpAddr, Arc<GeoInfo>)>);

impl Names for GeoNames {
    fn name(&self, _: IpAddr) -> Option<&str> {
        None
    }
    fn geo(&self, a: IpAddr) -> Option<&GeoInfo> {
        self.0.iter().find(|(x, _)| *x == a).map(|(_, g)| &**g)
    }
}

/// Keep `out` from growing without end (its contents are never looked at).
fn drain(out: &mut Vec<u8>) {
    if out.len() > (1 << 20) - 4096 {
        black_box(&*out);
        out.clear();
    }
}

/// One pass over `pkts` without databases. Not inlined, like [`pass_geo`], so that
/// `valgrind --tool=callgrind` counts each pass's instructions apart (per-packet cost =
/// inclusive count / calls / packets).
#[inline(never)]
fn pass_plain(pkts: &[Packet<'_>], f: &Formatter, out: &mut Vec<u8>) {
    for p in pkts {
        black_box(fwlog::decode::addresses(p));
        f.packet(p, &fwlog::format::NoNames, out);
        drain(out);
    }
}

/// One pass over `pkts` with both databases: the lookups, then the line.
#[inline(never)]
fn pass_geo(
    pkts: &[Packet<'_>],
    f: &Formatter,
    geo: &mut Geo,
    names: &mut GeoNames,
    out: &mut Vec<u8>,
) {
    for p in pkts {
        let addrs = fwlog::decode::addresses(p);
        names.0.clear();
        names
            .0
            .extend(addrs.iter().filter_map(|&a| Some((a, geo.lookup(a)?))));
        f.packet(p, names, out);
        drain(out);
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = GeoConfig {
        geoip: Some(mkdb(dir.path(), "bench-City", false)),
        asn: Some(mkdb(dir.path(), "bench-ASN", true)),
    };
    let ts = Timestamp {
        sec: 1_795_507_200,
        nsec: 0,
        source: TimeSource::Kernel,
    };
    // 64 sources (a warm cache, as at steady state) to one public destination.
    let bufs: Vec<Vec<u8>> = (0..64u32)
        .map(|i| {
            let s = net(i * 61);
            syn(
                Ipv4Addr::new(81, s.octets()[1], s.octets()[2], 7),
                Ipv4Addr::new(81, 15, 255, 9),
            )
        })
        .collect();
    let pkts: Vec<Packet<'_>> = bufs
        .iter()
        .map(|b| {
            let mut p = Packet::new(b, ts);
            p.family = family::INET;
            p.hook = Some(1);
            p
        })
        .collect();
    let rounds: usize = std::env::var("FWLOG_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20_000);
    for kind in [FormatKind::Fwlog, FormatKind::Json] {
        let plain = Formatter::with_tables(kind, FormatOptions::default(), NameTables::builtin());
        let geo_opts = FormatOptions {
            geo: true,
            ..FormatOptions::default()
        };
        let tagged = Formatter::with_tables(kind, geo_opts, NameTables::builtin());
        let mut geo = Geo::open(&cfg).unwrap().unwrap();
        let mut out = Vec::with_capacity(1 << 20);
        // Reused from packet to packet, as the processing loop reuses its window entries' lists.
        let mut names = GeoNames(Vec::with_capacity(4));
        let mut run = |with_geo: bool| {
            let start = Instant::now();
            for _ in 0..rounds {
                if with_geo {
                    pass_geo(&pkts, &tagged, &mut geo, &mut names, &mut out);
                } else {
                    pass_plain(&pkts, &plain, &mut out);
                }
            }
            start.elapsed().as_nanos() as f64 / (rounds * pkts.len()) as f64
        };
        run(true); // warm the cache and the allocator
                   // Alternated, best of five: other processes on the machine add noise, never speed.
        let (mut base, mut with) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            base = base.min(run(false));
            with = with.min(run(true));
        }
        println!(
            "{kind:?}: without --geoip {base:6.1} ns/packet, with --geoip --asn (warm cache) \
             {with:6.1} ns/packet: +{:5.1} ns/packet, ratio {:.2}",
            with - base,
            with / base
        );
    }
    // Cold: every lookup misses the cache and walks both databases.
    let mut geo = Geo::open(&cfg).unwrap().unwrap();
    let n = 60_000u32;
    let start = Instant::now();
    for i in 0..n {
        let s = net(i % 4096);
        let a = Ipv4Addr::new(81, s.octets()[1], s.octets()[2], (i / 4096) as u8 + 1);
        black_box(geo.lookup(IpAddr::V4(a)));
    }
    let cold = start.elapsed().as_nanos() as f64 / f64::from(n);
    println!("cold lookup (cache miss, both databases): {cold:7.1} ns/address");
}
