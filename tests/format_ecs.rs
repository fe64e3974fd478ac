//! `--format ecs` on hand-built packets: golden lines for TCP, UDP, ICMP, ICMPv6, IPv6 and ARP
//! and a loss event (tests/data/ecs/*.json, reviewed against the mapping in fwlog(8)); every
//! emitted field name outside `fwlog.*` checked against the ECS field list shipped in
//! tests/data/ecs/fields.txt; `related.ip` and `network.iana_number` asserted on their own.
//!
//! `FWLOG_BLESS=1 cargo test --test format_ecs` rewrites the golden files (review the diff).

mod support;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;

use fwlog::format::{
    FormatKind, FormatOptions, Formatter, LossCause, LossEvent, NameTables, Names,
};
use fwlog::packet::{family, Iface, Packet, TimeSource, Timestamp, Vlan};
use serde_json::Value;
use support::packets::{self, udp, Ip4};

struct Map(HashMap<IpAddr, String>);

impl Names for Map {
    fn name(&self, a: IpAddr) -> Option<&str> {
        self.0.get(&a).map(String::as_str)
    }
}

fn names(pairs: &[(&str, &str)]) -> Map {
    Map(pairs
        .iter()
        .map(|(a, n)| (a.parse().expect("addr"), n.to_string()))
        .collect())
}

fn fmt(kind: FormatKind) -> Formatter {
    // Every test here sets the same value, so running them in parallel is harmless.
    std::env::set_var("TZ", "UTC");
    let opts = FormatOptions {
        hostname: "fw1".into(),
        ..FormatOptions::default()
    };
    Formatter::with_tables(kind, opts, NameTables::builtin())
}

fn line(kind: FormatKind, p: &Packet<'_>, n: &dyn Names) -> String {
    let mut out = Vec::new();
    fmt(kind).packet(p, n, &mut out);
    String::from_utf8(out).expect("output is ASCII")
}

const T0: Timestamp = Timestamp {
    sec: 1_795_507_200,
    nsec: 123_456_000,
    source: TimeSource::Kernel,
};

fn ip4(proto: u8, src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let h = Ip4 {
        id: 0x1234,
        frag: 0x4000,
        ..Ip4::new(proto, src, dst)
    };
    h.packet(payload)
}

fn ip6(next: u8, payload: &[u8]) -> Vec<u8> {
    packets::ip6(6 << 28, next, "2001:db8::1", "2001:db8::2", payload)
}

fn tcp_syn(sport: u16, dport: u16) -> Vec<u8> {
    let mut v = sport.to_be_bytes().to_vec();
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&1000u32.to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(&[0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0]);
    v
}

const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x53, 0x2a];

fn inet(b: &[u8], fam: u8, hook: u8) -> Packet<'_> {
    let mut p = Packet::new(b, T0);
    p.family = fam;
    p.group = 5;
    p.hook = Some(hook);
    p.seq = Some(9);
    p.seq_global = Some(41);
    p.prefix = Some(b"DROP in");
    p.indev = Some(Iface {
        index: 2,
        name: Some(b"eth0"),
    });
    p.hwaddr = Some(&MAC);
    p.hwtype = Some(1);
    p
}

/// The golden cases: name, packet bytes, how to build the packet, names.
fn cases() -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    let n = names(&[
        ("192.0.2.7", "client.example"),
        ("2001:db8::2", "www.example"),
    ]);

    let b = ip4(6, [192, 0, 2, 7], [198, 51, 100, 1], &tcp_syn(40000, 22));
    v.push(("tcp", line(FormatKind::Ecs, &inet(&b, family::INET, 1), &n)));

    let b = ip4(17, [192, 0, 2, 7], [198, 51, 100, 1], &udp(5353, 53, b"q"));
    let mut p = inet(&b, family::INET, 3);
    p.indev = None;
    p.hwaddr = None;
    p.outdev = Some(Iface {
        index: 3,
        name: Some(b"wan0"),
    });
    p.uid = Some(1000);
    v.push(("udp", line(FormatKind::Ecs, &p, &n)));

    // Port unreachable quoting a UDP packet between two other hosts: related.ip has all four.
    let inner = ip4(
        17,
        [198, 51, 100, 9],
        [203, 0, 113, 4],
        &udp(1234, 9999, b"x"),
    );
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&inner);
    let b = ip4(1, [198, 51, 100, 1], [192, 0, 2, 7], &icmp);
    v.push((
        "icmp",
        line(FormatKind::Ecs, &inet(&b, family::INET, 2), &n),
    ));

    let b = ip6(58, &[128, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4]);
    v.push((
        "icmpv6",
        line(FormatKind::Ecs, &inet(&b, family::INET6, 0), &n),
    ));

    // TCP behind a hop-by-hop header: iana_number is the upper layer (6), not 0.
    let mut hbh = vec![6, 0, 1, 4, 0, 0, 0, 0];
    hbh.extend_from_slice(&tcp_syn(50000, 443));
    let b = ip6(0, &hbh);
    v.push((
        "ipv6",
        line(FormatKind::Ecs, &inet(&b, family::INET6, 1), &n),
    ));

    let mut arp = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 0xa, 10, 77, 0, 1]);
    arp.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 77, 0, 2]);
    let mut p = inet(&arp, family::BRIDGE, 0);
    p.prefix = None;
    p.hw_protocol = Some(0x0806);
    p.vlan = Some(Vlan {
        proto: 0x8100,
        tci: 0x600a,
    });
    v.push(("arp", line(FormatKind::Ecs, &p, &n)));

    let ev = LossEvent {
        time: T0,
        group: Some(5),
        count: 17,
        seq_global: Some((42, 58)),
        spool_seq: None,
        cause: LossCause::SeqGap,
    };
    let mut out = Vec::new();
    fmt(FormatKind::Ecs).loss(&ev, &mut out);
    v.push(("loss", String::from_utf8(out).expect("ascii")));
    v
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/ecs")
        .join(name)
}

#[test]
fn golden_lines() {
    let bless = std::env::var_os("FWLOG_BLESS").is_some();
    for (name, got) in cases() {
        let path = data(&format!("{name}.json"));
        if bless {
            std::fs::write(&path, &got).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&path).expect("golden file");
        assert_eq!(got, want, "{name}: output differs from {}", path.display());
        assert!(
            got.ends_with('\n') && got.matches('\n').count() == 1,
            "{name}: one line"
        );
    }
}

/// Dotted names of every leaf (arrays count as their field), outside `fwlog.*`.
fn leaves(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if name != "fwlog" {
                    leaves(x, &name, out);
                }
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

#[test]
fn every_field_is_in_the_ecs_list() {
    let list = std::fs::read_to_string(data("fields.txt")).expect("field list");
    let known: BTreeSet<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut used = BTreeSet::new();
    for (name, got) in cases() {
        let v: Value = serde_json::from_str(&got).unwrap_or_else(|e| panic!("{name}: {e}"));
        leaves(&v, "", &mut used);
        assert!(v["fwlog"].is_object(), "{name}: fwlog object");
        assert_eq!(v["ecs"]["version"], "8.11.0");
    }
    let unknown: Vec<_> = used
        .iter()
        .filter(|f| !known.contains(f.as_str()))
        .collect();
    assert!(unknown.is_empty(), "not ECS 8.11 fields: {unknown:?}");
    // The list is the subset used: nothing in it goes unexercised by the golden cases.
    let unused: Vec<_> = known.iter().filter(|f| !used.contains(**f)).collect();
    assert!(unused.is_empty(), "listed but never emitted: {unused:?}");
}

fn by_name(name: &str) -> Value {
    let (_, l) = cases().into_iter().find(|(n, _)| *n == name).expect("case");
    serde_json::from_str(&l).expect("json")
}

#[test]
fn related_ip_and_iana_number() {
    let v = by_name("tcp");
    assert_eq!(
        v["related"]["ip"],
        serde_json::json!(["192.0.2.7", "198.51.100.1"])
    );
    assert_eq!(v["network"]["iana_number"], "6");
    assert_eq!(v["network"]["transport"], "tcp");
    assert_eq!(v["source"]["domain"], "client.example");
    assert_eq!(v["related"]["hosts"], serde_json::json!(["client.example"]));
    assert_eq!(v["destination"]["port"], 22);
    assert_eq!(v["network"]["direction"], "ingress");

    let v = by_name("udp");
    assert_eq!(v["network"]["iana_number"], "17");
    assert_eq!(v["network"]["direction"], "egress");
    assert_eq!(v["observer"]["egress"]["interface"]["name"], "wan0");

    // Outer pair, then the quoted packet's two other hosts; the repeated address once.
    let v = by_name("icmp");
    assert_eq!(
        v["related"]["ip"],
        serde_json::json!(["198.51.100.1", "192.0.2.7", "198.51.100.9", "203.0.113.4"])
    );
    assert_eq!(v["network"]["iana_number"], "1");
    assert!(v["source"].get("port").is_none());
    assert!(
        v["network"].get("direction").is_none(),
        "forward has no direction"
    );

    let v = by_name("icmpv6");
    assert_eq!(v["network"]["iana_number"], "58");
    assert_eq!(v["network"]["transport"], "ipv6-icmp");
    assert_eq!(
        v["related"]["ip"],
        serde_json::json!(["2001:db8::1", "2001:db8::2"])
    );

    let v = by_name("ipv6");
    assert_eq!(v["network"]["iana_number"], "6");
    assert_eq!(v["destination"]["port"], 443);
    assert_eq!(v["destination"]["domain"], "www.example");

    let v = by_name("arp");
    assert_eq!(v["network"]["type"], "arp");
    assert_eq!(
        v["related"]["ip"],
        serde_json::json!(["10.77.0.1", "10.77.0.2"])
    );
    assert_eq!(v["source"]["mac"], "02-00-00-00-00-0A");
    assert!(v["network"].get("iana_number").is_none());

    // A TCP header cut short: the IP header still names the protocol; no ports.
    let b = ip4(
        6,
        [192, 0, 2, 7],
        [198, 51, 100, 1],
        &tcp_syn(40000, 22)[..10],
    );
    let l = line(FormatKind::Ecs, &inet(&b, family::INET, 1), &names(&[]));
    let v: Value = serde_json::from_str(&l).expect("json");
    assert_eq!(v["network"]["iana_number"], "6");
    assert!(v["source"].get("port").is_none());

    let v = by_name("loss");
    assert_eq!(v["event"]["kind"], "pipeline_error");
    assert_eq!(v["fwlog"]["count"], 17);
}

#[test]
fn fwlog_object_is_the_json_format() {
    let n = names(&[("192.0.2.7", "client.example")]);
    let b = ip4(6, [192, 0, 2, 7], [198, 51, 100, 1], &tcp_syn(40000, 22));
    let p = inet(&b, family::INET, 1);
    let ecs: Value = serde_json::from_str(&line(FormatKind::Ecs, &p, &n)).expect("ecs");
    let json: Value = serde_json::from_str(&line(FormatKind::Json, &p, &n)).expect("json");
    assert_eq!(ecs["fwlog"], json);
}

#[test]
fn hostile_bytes_never_reach_the_line() {
    let n = names(&[("192.0.2.7", "evil\n{\"x\":1}")]);
    let b = ip4(6, [192, 0, 2, 7], [198, 51, 100, 1], &tcp_syn(40000, 22));
    let mut p = inet(&b, family::INET, 1);
    p.prefix = Some(b"x\n\x1b[2J\"}\r{\"forged\":1");
    p.indev = Some(Iface {
        index: 2,
        name: Some(b"e\x07th\"0"),
    });
    let l = line(FormatKind::Ecs, &p, &n);
    assert_eq!(l.matches('\n').count(), 1);
    assert!(
        l.bytes().all(|b| (0x20..0x7f).contains(&b) || b == b'\n'),
        "{l:?}"
    );
    let v: Value = serde_json::from_str(&l).expect("valid json");
    assert_eq!(v["rule"]["name"], "x\\x0a\\x1b[2J\"}\\x0d{\"forged\":1");
    assert_eq!(v["observer"]["ingress"]["interface"]["name"], "e\\x07th\"0");
    assert!(v.get("forged").is_none());
}
