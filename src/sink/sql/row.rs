//! One database row per packet (and per loss event), built once from a [`PacketView`] and kept
//! owned until the batch is committed (a failed commit retries the same rows).
//!
//! Columns (the names users' queries depend on; see fwlog-sql(5)):
//! - `time`: the kernel's timestamp, or fwlog's receive time when the kernel gave none
//!   (locally generated packets), or the capture file's; `time_source` says which.
//! - `host`, `stream`, `seq`: the unique key. `seq_global`, `nflog_group`, `hook`, `mark`,
//!   `uid`, `gid`: the NFLOG metadata (absent ones are NULL; an absent mark is 0, as the kernel
//!   sends it only when set).
//! - `src`, `dst`: 16 bytes, IPv6 or IPv4-mapped IPv6 (`::ffff:a.b.c.d`), so that byte order is
//!   address order: a range of addresses is a range of keys, IPv4 and IPv6 together.
//!   PostgreSQL stores them as `inet` instead. NULL when the packet has no IP header.
//! - `proto`, `sport`, `dport`, `tcp_flags` (the TCP flags byte: FIN 1, SYN 2, RST 4, PSH 8,
//!   ACK 16, URG 32, ECE 64, CWR 128), `icmp_type`, `icmp_code`, `length` (the IP datagram's
//!   length from its header), `ttl` (hop limit for IPv6).
//! - `prefix`, `in_if`, `out_if`: untrusted bytes, stored with fwlog's one escaper
//!   (`format::escape`: printable ASCII except `\` as is, every other byte as `\xNN`), so they
//!   are always valid text, never an encoding error, and reversible.
//! - `src_name`, `dst_name`: the resolver's safe names (already escaped), NULL when none.
//! - `replayed`: 1 when the packet came from the spool at start-up or from `fwlog replay`.
//! - `partial`: 1 when the record was cut short (copy range, snaplen) or its metadata damaged;
//!   the columns then hold what could be read.
//! - `payload`: the packet's bytes from the network header on, only with `--db-payload`.
//! - `src_country`, `src_asn`, `src_as_org`, `src_lat`, `src_lon` (and `dst_...`): what the
//!   `--geoip`/`--asn` databases say about the address (ISO country code, AS number and
//!   organisation, coordinates), escaped like DNS names; NULL without the databases, for
//!   addresses they do not place, and for private and documentation ranges (never looked up).
//!
//! [`COLUMNS`] is the one list of the `packets` columns, in the order [`Row::values`] gives
//! them: every engine builds its DDL, INSERT and COPY column lists from it, so a column added
//! here reaches each engine or fails its tests.

use std::net::IpAddr;

use crate::decode::{self, Net, Transport};
use crate::dns::SafeName;
use crate::format::{escape, LossEvent};
use crate::geo::GeoInfo;
use crate::packet::{Iface, TimeSource};
use crate::sink::PacketView;

/// A packet row. See the module docs for each column.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub seq: u64,
    /// Seconds since the epoch and nanoseconds.
    pub time: (i64, u32),
    pub time_source: &'static str,
    pub seq_global: Option<u32>,
    pub nflog_group: u16,
    pub family: u8,
    pub prefix: Option<String>,
    pub hook: Option<u8>,
    pub mark: u32,
    pub in_if: Option<String>,
    pub out_if: Option<String>,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub src_name: Option<String>,
    pub dst_name: Option<String>,
    pub proto: Option<u8>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub tcp_flags: Option<u8>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub length: Option<u32>,
    pub ttl: Option<u8>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub replayed: bool,
    pub partial: bool,
    pub payload: Option<Vec<u8>>,
    pub src_geo: GeoCols,
    pub dst_geo: GeoCols,
}

/// The geo columns of one address (all NULL without `--geoip`/`--asn`). The strings are the
/// databases' escaped text, shared with the lookup cache (cloning them allocates nothing).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GeoCols {
    pub country: Option<SafeName>,
    pub asn: Option<u32>,
    pub as_org: Option<SafeName>,
    pub location: Option<(f64, f64)>,
}

impl GeoCols {
    fn of(g: Option<&GeoInfo>) -> GeoCols {
        let Some(g) = g else {
            return GeoCols::default();
        };
        GeoCols {
            country: g.country_code.clone(),
            asn: g.asn,
            as_org: g.as_org.clone(),
            location: g.location,
        }
    }
}

/// What a column holds; each engine maps it to its own type (fwlog-sql(5) has the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A timestamp: seconds and nanoseconds since the epoch.
    Time,
    Text,
    /// An integer that fits 16 bits signed (the unsigned bytes of the packet).
    Small,
    /// An integer that fits 32 bits signed (ports, lengths).
    Int,
    /// A 64-bit integer (sequence numbers, marks, ids, AS numbers).
    Big,
    /// An IPv4 or IPv6 address.
    Addr,
    Bool,
    Double,
    Bytes,
}

/// One column of `packets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub not_null: bool,
    /// Added with the geo columns (a schema upgrade adds these to an older table).
    pub geo: bool,
}

const fn col(name: &'static str, kind: Kind, not_null: bool) -> Column {
    Column {
        name,
        kind,
        not_null,
        geo: false,
    }
}

const fn geo(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        not_null: false,
        geo: true,
    }
}

/// How many columns `packets` has.
pub const NCOLS: usize = 40;

/// The columns of `packets`, in [`Row::values`] order (see the module docs for each).
pub const COLUMNS: [Column; NCOLS] = [
    col("time", Kind::Time, true),
    col("time_source", Kind::Text, true),
    col("host", Kind::Text, true),
    col("stream", Kind::Text, true),
    col("seq", Kind::Big, true),
    col("seq_global", Kind::Big, false),
    col("nflog_group", Kind::Int, true),
    col("family", Kind::Small, true),
    col("prefix", Kind::Text, false),
    col("hook", Kind::Small, false),
    col("mark", Kind::Big, true),
    col("in_if", Kind::Text, false),
    col("out_if", Kind::Text, false),
    col("src", Kind::Addr, false),
    col("dst", Kind::Addr, false),
    col("src_name", Kind::Text, false),
    col("dst_name", Kind::Text, false),
    col("proto", Kind::Small, false),
    col("sport", Kind::Int, false),
    col("dport", Kind::Int, false),
    col("tcp_flags", Kind::Small, false),
    col("icmp_type", Kind::Small, false),
    col("icmp_code", Kind::Small, false),
    col("length", Kind::Int, false),
    col("ttl", Kind::Small, false),
    col("uid", Kind::Big, false),
    col("gid", Kind::Big, false),
    col("replayed", Kind::Bool, true),
    col("partial", Kind::Bool, true),
    col("payload", Kind::Bytes, false),
    geo("src_country", Kind::Text),
    geo("src_asn", Kind::Big),
    geo("src_as_org", Kind::Text),
    geo("src_lat", Kind::Double),
    geo("src_lon", Kind::Double),
    geo("dst_country", Kind::Text),
    geo("dst_asn", Kind::Big),
    geo("dst_as_org", Kind::Text),
    geo("dst_lat", Kind::Double),
    geo("dst_lon", Kind::Double),
];

/// The column names joined with `, ` (for INSERT and COPY statements).
pub fn column_list() -> String {
    COLUMNS.map(|c| c.name).join(", ")
}

/// One column's value, borrowed from its row; each engine converts it to its type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Time((i64, u32)),
    Text(&'a str),
    Int(i64),
    Double(f64),
    Addr(IpAddr),
    Bool(bool),
    Bytes(&'a [u8]),
}

impl<'a> Value<'a> {
    fn text(s: &'a Option<String>) -> Value<'a> {
        s.as_deref().map_or(Value::Null, Value::Text)
    }
    fn name(s: &'a Option<SafeName>) -> Value<'a> {
        s.as_ref().map_or(Value::Null, |n| Value::Text(n.shown()))
    }
    fn int<T: Into<i64>>(v: Option<T>) -> Value<'a> {
        v.map_or(Value::Null, |v| Value::Int(v.into()))
    }
    fn double(v: Option<f64>) -> Value<'a> {
        v.map_or(Value::Null, Value::Double)
    }
    fn addr(v: Option<IpAddr>) -> Value<'a> {
        v.map_or(Value::Null, Value::Addr)
    }
}

/// A loss row: `count` packets lost for `reason`, reported by the spool record `seq`.
#[derive(Clone, Debug, PartialEq)]
pub struct LossRow {
    pub seq: u64,
    pub time: (i64, u32),
    pub nflog_group: Option<u16>,
    pub count: u64,
    pub reason: &'static str,
    /// First and last missing NFLOG global sequence number, when known.
    pub seq_global: Option<(u32, u32)>,
}

/// Untrusted bytes as text: fwlog's escaper (always valid UTF-8: it emits ASCII only).
pub fn escaped(b: &[u8]) -> String {
    let mut out = Vec::with_capacity(b.len());
    escape::escape_into(&mut out, b);
    // The escaper emits printable ASCII only; the fallback is never taken.
    String::from_utf8(out).unwrap_or_default()
}

fn iface(i: Option<Iface<'_>>) -> Option<String> {
    let i = i?;
    Some(match i.name {
        Some(n) => escaped(n),
        // Only the index is known (tcpdump's NFLOG captures): say so in a form no name takes.
        None => format!("#{}", i.index),
    })
}

/// 16 bytes that sort in address order: IPv6 as is, IPv4 mapped (`::ffff:a.b.c.d`).
pub fn addr16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address of a 16-byte column ([`addr16`]'s inverse: IPv4-mapped gives IPv4); `None`
/// for any other length.
pub fn addr_from16(b: &[u8]) -> Option<IpAddr> {
    let a: [u8; 16] = b.try_into().ok()?;
    let v6 = std::net::Ipv6Addr::from(a);
    Some(match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    })
}

/// Transport fields: (sport, dport, tcp_flags, icmp_type, icmp_code, truncated).
type Ports = (
    Option<u16>,
    Option<u16>,
    Option<u8>,
    Option<u8>,
    Option<u8>,
    bool,
);

fn transport(t: &Transport<'_>) -> Ports {
    match t {
        Transport::Tcp(th) => (
            Some(th.src_port),
            Some(th.dst_port),
            Some(th.flags),
            None,
            None,
            false,
        ),
        Transport::Udp(u) => (Some(u.src_port), Some(u.dst_port), None, None, None, false),
        Transport::Icmp(i) => (
            None,
            None,
            None,
            Some(i.icmp_type),
            Some(i.code),
            i.short.is_some(),
        ),
        Transport::Icmpv6(i) => (None, None, None, Some(i.icmp_type), Some(i.code), false),
        Transport::Truncated(_) => (None, None, None, None, None, true),
        Transport::Ah(_) | Transport::Esp(_) | Transport::Fragment | Transport::Other => {
            (None, None, None, None, None, false)
        }
    }
}

impl Row {
    /// Build the row of one packet; `payload` keeps its bytes (`--db-payload`).
    pub fn new(v: &PacketView<'_>, payload: bool) -> Row {
        let p = v.packet;
        let d = v.decoded;
        let mut partial = d.partial.is_some() || p.damage.is_some();
        let (mut src, mut dst, mut proto, mut length, mut ttl) = (None, None, None, None, None);
        let mut ports: Ports = (None, None, None, None, None, false);
        match &d.net {
            Net::Ipv4(h) => {
                src = Some(IpAddr::V4(h.src));
                dst = Some(IpAddr::V4(h.dst));
                proto = Some(h.protocol);
                length = Some(u32::from(h.total_len));
                ttl = Some(h.ttl);
                ports = transport(&h.transport);
            }
            Net::Ipv6(h) => {
                src = Some(IpAddr::V6(h.src));
                dst = Some(IpAddr::V6(h.dst));
                proto = Some(h.protocol);
                length = Some(u32::from(h.payload_len) + 40);
                ttl = Some(h.hop_limit);
                ports = transport(&h.transport);
            }
            Net::Truncated(_) => partial = true,
            Net::Arp(_) | Net::NotIp { .. } => {}
        }
        partial |= ports.5;
        let name = |ip: Option<IpAddr>| ip.and_then(|a| v.names.name(a)).map(str::to_owned);
        let geo = |ip: Option<IpAddr>| GeoCols::of(ip.and_then(|a| v.names.geo(a)));
        Row {
            seq: v.seq,
            time: (p.timestamp.sec, p.timestamp.nsec),
            time_source: match p.timestamp.source {
                TimeSource::Kernel => "kernel",
                TimeSource::Local => "local",
                TimeSource::Capture => "capture",
            },
            seq_global: p.seq_global,
            nflog_group: p.group,
            family: p.family,
            prefix: p.prefix.map(escaped),
            hook: p.hook,
            mark: p.mark,
            in_if: iface(p.indev),
            out_if: iface(p.outdev),
            src_name: name(src),
            dst_name: name(dst),
            src,
            dst,
            proto,
            sport: ports.0,
            dport: ports.1,
            tcp_flags: ports.2,
            icmp_type: ports.3,
            icmp_code: ports.4,
            length,
            ttl,
            uid: p.uid,
            gid: p.gid,
            replayed: p.replayed,
            partial,
            payload: payload.then(|| decode::network_payload(p).to_vec()),
            src_geo: geo(src),
            dst_geo: geo(dst),
        }
    }

    /// The row's values in [`COLUMNS`] order; `host` and `stream` are the output's.
    pub fn values<'a>(&'a self, host: &'a str, stream: &'a str) -> [Value<'a>; NCOLS] {
        let g = |c: &'a GeoCols| {
            [
                Value::name(&c.country),
                Value::int(c.asn),
                Value::name(&c.as_org),
                Value::double(c.location.map(|l| l.0)),
                Value::double(c.location.map(|l| l.1)),
            ]
        };
        let [sc, sa, so, sla, slo] = g(&self.src_geo);
        let [dc, da, dorg, dla, dlo] = g(&self.dst_geo);
        [
            Value::Time(self.time),
            Value::Text(self.time_source),
            Value::Text(host),
            Value::Text(stream),
            // Spool sequence numbers stay far below 2^63.
            Value::Int(i64::try_from(self.seq).unwrap_or(i64::MAX)),
            Value::int(self.seq_global),
            Value::Int(i64::from(self.nflog_group)),
            Value::Int(i64::from(self.family)),
            Value::text(&self.prefix),
            Value::int(self.hook),
            Value::Int(i64::from(self.mark)),
            Value::text(&self.in_if),
            Value::text(&self.out_if),
            Value::addr(self.src),
            Value::addr(self.dst),
            Value::text(&self.src_name),
            Value::text(&self.dst_name),
            Value::int(self.proto),
            Value::int(self.sport),
            Value::int(self.dport),
            Value::int(self.tcp_flags),
            Value::int(self.icmp_type),
            Value::int(self.icmp_code),
            Value::int(self.length),
            Value::int(self.ttl),
            Value::int(self.uid),
            Value::int(self.gid),
            Value::Bool(self.replayed),
            Value::Bool(self.partial),
            self.payload.as_deref().map_or(Value::Null, Value::Bytes),
            sc,
            sa,
            so,
            sla,
            slo,
            dc,
            da,
            dorg,
            dla,
            dlo,
        ]
    }

    /// Seconds since the epoch as a float (SQLite's `time` column).
    pub fn time_f64(&self) -> f64 {
        seconds_f64(self.time)
    }
}

/// Seconds and nanoseconds as a float of seconds, to the microsecond (exact in a double for
/// the next few centuries).
pub fn seconds_f64(t: (i64, u32)) -> f64 {
    t.0 as f64 + f64::from(t.1 / 1000) / 1e6
}

impl LossRow {
    pub fn new(ev: &LossEvent, seq: u64) -> LossRow {
        LossRow {
            seq,
            time: (ev.time.sec, ev.time.nsec),
            nflog_group: ev.group,
            count: ev.count,
            reason: ev.cause.name(),
            seq_global: ev.seq_global,
        }
    }

    pub fn time_f64(&self) -> f64 {
        seconds_f64(self.time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::NoNames;
    use crate::packet::{Packet, Timestamp};

    fn tcp_syn_v4() -> Vec<u8> {
        let mut b = vec![
            0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 192, 168, 1, 2,
        ];
        b.extend_from_slice(&[0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02]);
        b.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        b
    }

    fn view<'a>(p: &'a Packet<'a>, d: &'a crate::decode::Decoded<'a>) -> PacketView<'a> {
        PacketView {
            seq: 7,
            record: &[],
            packet: p,
            decoded: d,
            names: &NoNames,
        }
    }

    #[test]
    fn a_tcp_packet_fills_every_column() {
        let bytes = tcp_syn_v4();
        let ts = Timestamp {
            sec: 1_700_000_000,
            nsec: 123_456_789,
            source: TimeSource::Kernel,
        };
        let mut p = Packet::new(&bytes, ts);
        p.family = crate::packet::family::INET;
        p.group = 5;
        p.hook = Some(1);
        p.prefix = Some(b"DROP \x1b[31m\\\n\xff");
        p.seq_global = Some(42);
        p.indev = Some(Iface {
            index: 2,
            name: Some(b"eth0"),
        });
        p.outdev = Some(Iface {
            index: 3,
            name: None,
        });
        let r = Row::new(&view(&p, &decode::decode(&p)), true);
        assert_eq!(r.prefix.as_deref(), Some("DROP \\x1b[31m\\x5c\\x0a\\xff"));
        assert_eq!(r.in_if.as_deref(), Some("eth0"));
        assert_eq!(r.out_if.as_deref(), Some("#3"));
        assert_eq!(r.src, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(r.dst, Some("192.168.1.2".parse().unwrap()));
        assert_eq!(
            (r.proto, r.sport, r.dport, r.tcp_flags),
            (Some(6), Some(12345), Some(80), Some(2))
        );
        assert_eq!(
            (r.length, r.ttl, r.seq_global),
            (Some(40), Some(64), Some(42))
        );
        assert!(!r.partial);
        assert_eq!(r.payload.as_deref(), Some(&bytes[..]));
        assert_eq!(r.time_f64(), 1_700_000_000.123456);
    }

    #[test]
    fn a_cut_packet_is_marked_partial() {
        let bytes = tcp_syn_v4();
        let ts = Timestamp {
            sec: 0,
            nsec: 0,
            source: TimeSource::Local,
        };
        let mut p = Packet::new(&bytes[..24], ts);
        p.family = crate::packet::family::INET;
        let r = Row::new(&view(&p, &decode::decode(&p)), false);
        assert!(r.partial);
        assert_eq!(r.src, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(r.sport, None);
        assert_eq!(r.payload, None);
        let p = Packet::new(&bytes[..3], ts);
        let r = Row::new(&view(&p, &decode::decode(&p)), false);
        assert_eq!(r.src, None);
    }

    #[test]
    fn values_follow_the_column_list_and_geo_columns_fill_from_the_names() {
        use crate::geo::info::safe_text;
        struct Geo(GeoInfo);
        impl crate::format::Names for Geo {
            fn name(&self, _: IpAddr) -> Option<&str> {
                None
            }
            fn geo(&self, a: IpAddr) -> Option<&GeoInfo> {
                (a == "10.0.0.1".parse::<IpAddr>().unwrap()).then_some(&self.0)
            }
        }
        let bytes = tcp_syn_v4();
        let ts = Timestamp {
            sec: 1,
            nsec: 0,
            source: TimeSource::Kernel,
        };
        let mut p = Packet::new(&bytes, ts);
        p.family = crate::packet::family::INET;
        let names = Geo(GeoInfo {
            country_code: safe_text(Some("DE")),
            asn: Some(4_200_000_000),
            as_org: safe_text(Some("Ex AG")),
            location: Some((52.5, 13.25)),
            ..GeoInfo::default()
        });
        let d = decode::decode(&p);
        let v = PacketView {
            seq: 1,
            record: &[],
            packet: &p,
            decoded: &d,
            names: &names,
        };
        let r = Row::new(&v, false);
        let vals = r.values("h", "s");
        let at = |n: &str| vals[COLUMNS.iter().position(|c| c.name == n).unwrap()];
        assert_eq!(at("src_country"), Value::Text("DE"));
        assert_eq!(at("src_asn"), Value::Int(4_200_000_000));
        assert_eq!(at("src_as_org"), Value::Text("Ex\\032AG"));
        assert_eq!(
            (at("src_lat"), at("src_lon")),
            (Value::Double(52.5), Value::Double(13.25))
        );
        assert_eq!(at("dst_country"), Value::Null);
        assert_eq!(at("host"), Value::Text("h"));
        assert_eq!(at("dport"), Value::Int(80));
        // Every value has its column's kind; NOT NULL columns are never NULL.
        for (c, v) in COLUMNS.iter().zip(vals) {
            let ok = match v {
                Value::Null => !c.not_null,
                Value::Time(_) => c.kind == Kind::Time,
                Value::Text(_) => c.kind == Kind::Text,
                Value::Int(_) => matches!(c.kind, Kind::Small | Kind::Int | Kind::Big),
                Value::Double(_) => c.kind == Kind::Double,
                Value::Addr(_) => c.kind == Kind::Addr,
                Value::Bool(_) => c.kind == Kind::Bool,
                Value::Bytes(_) => c.kind == Kind::Bytes,
            };
            assert!(ok, "{} {v:?}", c.name);
        }
        let mut names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), NCOLS);
    }

    #[test]
    fn addresses_sort_in_address_order() {
        let a: Vec<IpAddr> = [
            "10.0.0.2",
            "10.0.0.10",
            "9.255.255.255",
            "::1",
            "2001:db8::1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let mut by_key = a.clone();
        by_key.sort_by_key(|&ip| addr16(ip));
        let mut by_addr = a.clone();
        by_addr.sort_by_key(|&ip| match ip {
            IpAddr::V4(v) => v.to_ipv6_mapped(),
            IpAddr::V6(v) => v,
        });
        assert_eq!(by_key, by_addr);
        assert_eq!(
            addr16("10.0.0.1".parse().unwrap()),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]
        );
    }
}
