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

use std::net::IpAddr;

use crate::decode::{self, Net, Transport};
use crate::format::{escape, LossEvent};
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
        let d = decode::decode(p);
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
        }
    }

    /// Seconds since the epoch as a float (SQLite's `time` column; microseconds are exact in
    /// a double for the next few centuries).
    pub fn time_f64(&self) -> f64 {
        self.time.0 as f64 + f64::from(self.time.1 / 1000) / 1e6
    }
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
        self.time.0 as f64 + f64::from(self.time.1 / 1000) / 1e6
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

    fn view<'a>(p: &'a Packet<'a>) -> PacketView<'a> {
        PacketView {
            seq: 7,
            record: &[],
            packet: p,
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
        let r = Row::new(&view(&p), true);
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
        let r = Row::new(&view(&p), false);
        assert!(r.partial);
        assert_eq!(r.src, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(r.sport, None);
        assert_eq!(r.payload, None);
        let p = Packet::new(&bytes[..3], ts);
        let r = Row::new(&view(&p), false);
        assert_eq!(r.src, None);
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
