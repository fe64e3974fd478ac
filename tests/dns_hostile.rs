//! Hostile PTR names from a hand-made UDP responder on loopback: whatever bytes an attacker puts
//! in its reverse zone, the SafeName holds only the allow-list and `\DDD` escapes, is capped, is
//! marked when it looks like an address, and (when not cut) decodes back to exactly the bytes
//! sent, so nothing is silently lost either.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use fwlog::dns::{DnsConfig, Resolver, MAX_NAME_LEN};
use support::dns::{assert_safe_text, hostile_cases, unescape_labels, Question, Reply, Responder};

fn l(s: &[u8]) -> Vec<u8> {
    s.to_vec()
}

const INVALID_FIRST: u8 = 200;

/// Names no valid DNS message can carry: hickory must reject them (no name, no panic).
fn invalid_cases() -> Vec<Vec<Vec<u8>>> {
    vec![
        // A 64-byte label (the length byte then reads as a compression pointer / bad type).
        vec![vec![b'x'; 64], l(b"example")],
        // Over 255 bytes on the wire.
        vec![
            vec![b'a'; 63],
            vec![b'b'; 63],
            vec![b'c'; 63],
            vec![b'd'; 63],
            l(b"e"),
        ],
    ]
}

fn answer(q: &Question) -> Reply {
    let n: usize = std::str::from_utf8(&q.labels[0]).unwrap().parse().unwrap();
    if n >= usize::from(INVALID_FIRST) {
        return Reply::Ptr(vec![invalid_cases()[n - usize::from(INVALID_FIRST)].clone()]);
    }
    match hostile_cases().get(n) {
        Some(name) => Reply::Ptr(vec![name.clone()]),
        None => Reply::NxDomain,
    }
}

fn resolver_for(resp: &Responder) -> Resolver {
    let cfg = DnsConfig {
        servers: vec![resp.addr],
        query_timeout: Duration::from_millis(500),
        attempts: 0,
        ..DnsConfig::default()
    };
    Resolver::new(cfg, tokio::runtime::Handle::current()).expect("resolver")
}

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_come_out_safe() {
    let resp = Responder::start(Duration::ZERO, answer);
    let r = resolver_for(&resp);
    for (i, raw) in hostile_cases().into_iter().enumerate() {
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, i as u8));
        let name = r
            .resolve(ip, deadline())
            .await
            .unwrap_or_else(|| panic!("case {i}: no name for {raw:?}"));
        let text = name.as_str();
        assert_safe_text(text);
        assert!(text.len() <= MAX_NAME_LEN, "case {i}: {} bytes", text.len());
        assert!(!text
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'(' || b == b')'));
        // Display adds only the documented marks, after the text.
        let shown = name.to_string();
        let marks = shown
            .strip_prefix(text)
            .expect("Display starts with the text");
        let expected = format!(
            "{}{}{}",
            if name.is_truncated() { "~" } else { "" },
            if name.is_unverified() { "?" } else { "" },
            if name.is_ip_lookalike() { "(!ip)" } else { "" }
        );
        assert_eq!(marks, expected, "case {i}");
        assert!(!shown
            .bytes()
            .any(|b| b.is_ascii_control() || !b.is_ascii() || b == b' '));
        if name.is_truncated() {
            // A cut name is a prefix of the full escaped name.
            let full = fwlog::dns::SafeName::from_labels(raw.iter().map(Vec::as_slice));
            assert_eq!(full.as_str(), text);
        } else {
            assert_eq!(unescape_labels(text), raw, "case {i}: round trip of {text}");
        }
    }
    let by_case = |i: u8| {
        let r = r.clone();
        async move {
            r.resolve(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)), deadline())
                .await
                .unwrap()
        }
    };
    assert_eq!(
        by_case(0).await.as_str(),
        "evil\\010Dec\\0321\\03200\\05800\\05800\\032host\\032sshd\\058\\032Accepted.example"
    );
    assert_eq!(by_case(7).await.as_str(), "xn--a\\010fake-gva.example");
    assert_eq!(
        by_case(8).await.as_str(),
        "xn--a\\027fake-gva.xn--ls8h.example"
    );
    assert_eq!(by_case(9).await.to_string(), "1.2.3.4(!ip)");
    assert!(by_case(10).await.is_ip_lookalike());
    assert_eq!(by_case(11).await.as_str(), "back\\092slash\\092010.example");
    assert_eq!(by_case(12).await.as_str(), "dot\\046inside.example");
    let cut = by_case(17).await;
    assert!(cut.is_truncated() && cut.to_string().ends_with('~'));
    let longest = by_case(18).await;
    assert!(!longest.is_truncated());
    assert_eq!(longest.as_str().len(), MAX_NAME_LEN);
    assert_eq!(r.stats().names, hostile_cases().len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_names_give_no_name_and_no_panic() {
    let resp = Responder::start(Duration::ZERO, answer);
    let r = resolver_for(&resp);
    for i in 0..invalid_cases().len() as u8 {
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, INVALID_FIRST + i));
        assert_eq!(r.resolve(ip, deadline()).await, None, "invalid case {i}");
    }
    let s = r.stats();
    assert_eq!(s.names, 0);
    assert_eq!(s.errors + s.timeouts, invalid_cases().len() as u64, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_ptr_records_pick_a_stable_one() {
    let resp = Responder::start(Duration::ZERO, |q: &Question| {
        let mut names = vec![
            vec![l(b"zeta"), l(b"example")],
            vec![l(b"Alpha"), l(b"example")],
            vec![l(b"mid"), l(b"example")],
        ];
        if q.labels[0] == b"2" {
            names.reverse();
        }
        Reply::Ptr(names)
    });
    let r = resolver_for(&resp);
    for last in [1, 2] {
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, last));
        assert_eq!(
            r.resolve(ip, deadline()).await.unwrap().as_str(),
            "Alpha.example"
        );
    }
}
