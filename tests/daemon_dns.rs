//! `fwlog run` with reverse DNS against a responder the test starts inside the test's
//! namespace: names in the fwlog and JSON output, one query for many packets from one address,
//! and a black-holed server that delays packets by at most --dns-timeout.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::daemon::{lines, wait_for, RunArgs};
use support::dns::{Question, Reply, Responder};
use support::netns::NetNs;

fn lo_answer(q: &Question) -> Reply {
    // 1.2.0.192.in-addr.arpa -> loopback.fwlog.test
    if q.labels.first().map(Vec::as_slice) == Some(b"1") {
        Reply::Ptr(vec![vec![
            b"loopback".to_vec(),
            b"fwlog".to_vec(),
            b"test".to_vec(),
        ]])
    } else {
        Reply::NxDomain
    }
}

fn setup(tag: &str) -> NetNs {
    let ns = NetNs::new(tag);
    ns.output_rules(&["udp dport 9999 log prefix \"DNS \" group 5"]);
    // Not loopback: hickory answers 127.0.0.1 itself ("localhost", RFC 6761) without asking.
    ns.ip(&["addr", "add", "192.0.2.1/32", "dev", "lo"]);
    ns
}

/// `n` datagrams from 192.0.2.1 to 192.0.2.1:9999, inside the namespace.
fn send(ns: &NetNs, n: u32) {
    ns.enter(|| {
        let s = std::net::UdpSocket::bind("192.0.2.1:0").unwrap();
        for i in 0..n {
            s.send_to(format!("pkt-{i}").as_bytes(), "192.0.2.1:9999")
                .unwrap();
        }
    });
}

#[test]
fn names_resolved_once_per_address_appear_in_fwlog_and_json() {
    require_root!();
    let ns = setup("dnsrun");
    let resp = ns.enter(|| Responder::start(Duration::ZERO, lo_answer));
    let dir = tempfile::tempdir().unwrap();
    let (f, j) = (dir.path().join("f.log"), dir.path().join("j.log"));
    let d = RunArgs::new(dir.path())
        .dns(resp.addr.to_string())
        .group(5)
        .output_to(format!("fwlog={}", f.display()))
        .output_to(format!("json={}", j.display()))
        .start(&ns);
    send(&ns, 100);
    wait_for("100 JSON lines", Duration::from_secs(20), || {
        lines(&j).len() >= 100
    });
    d.signal(libc::SIGUSR1);
    wait_for("the counters", Duration::from_secs(5), || {
        d.stderr_text().contains("; dns ")
    });
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0);
    let text = std::fs::read_to_string(&f).unwrap();
    assert_eq!(
        text.matches("from 192.0.2.1 (loopback.fwlog.test) to 192.0.2.1 (loopback.fwlog.test)")
            .count(),
        100,
        "{text}"
    );
    for l in lines(&j) {
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["ip"]["src_name"], "loopback.fwlog.test", "{l}");
    }
    // One address, one query, however many packets carried it.
    assert_eq!(
        resp.queries.load(Ordering::Relaxed),
        1,
        "queries at the server"
    );
    assert!(err.contains("; dns "), "{err}");
}

#[test]
fn a_black_holed_server_delays_packets_by_at_most_the_deadline() {
    require_root!();
    let ns = setup("dnshole");
    let hole = ns.enter(Responder::black_hole);
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("j.log");
    let d = RunArgs::new(dir.path())
        .dns(hole.addr.to_string())
        .group(5)
        .with(&["--dns-timeout", "300ms"])
        .output_to(format!("json={}", j.display()))
        .start(&ns);
    let t0 = Instant::now();
    send(&ns, 50);
    wait_for("50 lines without names", Duration::from_secs(10), || {
        lines(&j).len() >= 50
    });
    let took = t0.elapsed();
    assert_eq!(d.stop(), 0);
    assert!(took < Duration::from_secs(5), "took {took:?}");
    for l in lines(&j) {
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert!(v["ip"]["src_name"].is_null(), "{l}");
    }
}
