//! The resolver against a real authoritative server (Debian's `nsd`) that the test starts on a
//! loopback port: PTR for IPv4 and IPv6, NXDOMAIN, an RFC 2317 CNAME chain, forward
//! confirmation, cache hits without queries and one query for many packets (counted by nsd
//! itself), plus a black-holed server and a slow one for deadlines and late answers.
//! Skips with a message when nsd is not installed.

mod support;

use std::net::IpAddr;
use std::time::Duration;

use fwlog::dns::{DnsConfig, Lookup, Resolver};
use support::dns::{Nsd, Question, Reply, Responder};
use tokio::time::Instant;

const V4_ZONE: &str = "\
$TTL 300
@ IN SOA ns.example.test. host.example.test. 1 3600 600 86400 60
@ IN NS ns.example.test.
1 IN PTR one.example.test.
5 IN PTR liar.example.test.
6 IN PTR 7.2.0.192.
; RFC 2317: 64-127 delegated by CNAME into its own zone
$ORIGIN 2.0.192.in-addr.arpa.
70 IN CNAME 70.64-127.2.0.192.in-addr.arpa.
";

const V4_CLASSLESS: &str = "\
$TTL 300
@ IN SOA ns.example.test. host.example.test. 1 3600 600 86400 60
@ IN NS ns.example.test.
70 IN PTR classless.example.test.
";

const V6_ZONE: &str = "\
$TTL 300
@ IN SOA ns.example.test. host.example.test. 1 3600 600 86400 60
@ IN NS ns.example.test.
1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0 IN PTR six.example.test.
";

const FWD_ZONE: &str = "\
$TTL 300
@ IN SOA ns.example.test. host.example.test. 1 3600 600 86400 60
@ IN NS ns.example.test.
ns IN A 127.0.0.1
one IN A 192.0.2.1
liar IN A 192.0.2.99
six IN AAAA 2001:db8::1
";

fn start_nsd() -> Option<Nsd> {
    Nsd::start(&[
        ("2.0.192.in-addr.arpa", V4_ZONE),
        ("64-127.2.0.192.in-addr.arpa", V4_CLASSLESS),
        ("8.b.d.0.1.0.0.2.ip6.arpa", V6_ZONE),
        ("example.test", FWD_ZONE),
    ])
}

fn resolver(server: std::net::SocketAddr, verify: bool) -> Resolver {
    let cfg = DnsConfig {
        servers: vec![server],
        verify_names: verify,
        ..DnsConfig::default()
    };
    Resolver::new(cfg, tokio::runtime::Handle::current()).expect("resolver")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

async fn name(r: &Resolver, a: &str) -> Option<String> {
    r.resolve(ip(a), soon()).await.map(|n| n.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_from_a_real_server() {
    let Some(nsd) = start_nsd() else { return };
    let r = resolver(nsd.addr, false);
    assert_eq!(
        name(&r, "192.0.2.1").await.as_deref(),
        Some("one.example.test")
    );
    assert_eq!(
        name(&r, "2001:db8::1").await.as_deref(),
        Some("six.example.test")
    );
    assert_eq!(
        name(&r, "192.0.2.70").await.as_deref(),
        Some("classless.example.test"),
        "RFC 2317 CNAME chain"
    );
    assert_eq!(
        name(&r, "192.0.2.6").await.as_deref(),
        Some("7.2.0.192(!ip)")
    );
    assert_eq!(name(&r, "192.0.2.2").await, None, "NXDOMAIN");
    assert_eq!(name(&r, "2001:db8::2").await, None, "NXDOMAIN v6");
    let s = r.stats();
    assert_eq!(
        (s.names, s.nxdomain, s.timeouts, s.errors),
        (4, 2, 0, 0),
        "{s}"
    );
    // Negative answers are cached too: asking again is a hit returning no name.
    assert_eq!(r.cached(ip("192.0.2.2")), Lookup::Hit(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hits_send_no_queries() {
    let Some(nsd) = start_nsd() else { return };
    let r = resolver(nsd.addr, false);
    assert!(matches!(r.cached(ip("192.0.2.1")), Lookup::Miss));
    assert!(name(&r, "192.0.2.1").await.is_some());
    assert_eq!(name(&r, "192.0.2.2").await, None);
    let before = nsd.queries();
    for _ in 0..1000 {
        match r.cached(ip("192.0.2.1")) {
            Lookup::Hit(Some(n)) => assert_eq!(n.as_str(), "one.example.test"),
            other => panic!("expected a hit, got {other:?}"),
        }
        assert_eq!(r.cached(ip("192.0.2.2")), Lookup::Hit(None));
        assert!(r.resolve(ip("192.0.2.1"), soon()).await.is_some());
    }
    assert_eq!(
        nsd.queries(),
        before,
        "cache hits must not query the server"
    );
    let s = r.stats();
    assert_eq!(s.hits, 3000, "{s}");
    assert_eq!(s.queries, 2, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_query_for_many_packets_from_one_address() {
    let Some(nsd) = start_nsd() else { return };
    let r = resolver(nsd.addr, false);
    let before = nsd.queries();
    // 200 packets from the same two addresses arrive before any answer.
    let mut waits = Vec::new();
    for i in 0..200 {
        let a = if i % 2 == 0 {
            "192.0.2.1"
        } else {
            "2001:db8::1"
        };
        match r.cached(ip(a)) {
            Lookup::Miss | Lookup::Pending => waits.push(r.start(ip(a)).expect("not dropped")),
            Lookup::Hit(_) => {}
        }
    }
    let deadline = soon();
    let mut got = 0;
    for w in waits {
        if w.wait_until(deadline).await.is_some() {
            got += 1;
        }
    }
    let s = r.stats();
    assert_eq!(s.hits + got, 200, "every packet got its name: {s}");
    assert_eq!(s.queries, 2, "{s}");
    assert_eq!(
        nsd.queries() - before,
        2,
        "the server saw one query per address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_marks_names_that_do_not_point_back() {
    let Some(nsd) = start_nsd() else { return };
    let r = resolver(nsd.addr, true);
    assert_eq!(
        name(&r, "192.0.2.1").await.as_deref(),
        Some("one.example.test")
    );
    assert_eq!(
        name(&r, "2001:db8::1").await.as_deref(),
        Some("six.example.test")
    );
    assert_eq!(
        name(&r, "192.0.2.5").await.as_deref(),
        Some("liar.example.test?")
    );
    // The forward lookup of a name that does not exist is also "unverified".
    assert_eq!(
        name(&r, "192.0.2.6").await.as_deref(),
        Some("7.2.0.192?(!ip)")
    );
    assert_eq!(r.stats().unverified, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_holed_server_costs_only_the_deadline() {
    let hole = Responder::black_hole();
    let cfg = DnsConfig {
        servers: vec![hole.addr],
        query_timeout: Duration::from_millis(300),
        attempts: 1,
        ..DnsConfig::default()
    };
    let r = Resolver::new(cfg, tokio::runtime::Handle::current()).expect("resolver");
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_millis(150);
    assert_eq!(r.resolve(ip("192.0.2.1"), deadline).await, None);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(150),
        "returned before the deadline: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(600),
        "deadline not honoured: {waited:?}"
    );
    assert_eq!(r.stats().deadline_expired, 1);
    // Other packets from the same address join the same lookup, no new query.
    assert_eq!(
        r.resolve(ip("192.0.2.1"), Instant::now() + Duration::from_millis(50))
            .await,
        None
    );
    assert_eq!(r.stats().queries, 1);
    // The lookup gives up after 2 tries x 300 ms and is counted as a timeout, then the address
    // is remembered as "no name" for error_ttl so later packets do not wait again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = r.stats();
    assert_eq!((s.timeouts, s.pending, s.in_flight), (1, 0, 0), "{s}");
    assert_eq!(r.cached(ip("192.0.2.1")), Lookup::Hit(None));
    assert_eq!(
        hole.queries.load(std::sync::atomic::Ordering::Relaxed),
        2,
        "2 tries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_answers_fill_the_cache() {
    let slow = Responder::start(Duration::from_millis(400), |_q: &Question| {
        Reply::Ptr(vec![vec![b"late".to_vec(), b"example".to_vec()]])
    });
    let cfg = DnsConfig {
        servers: vec![slow.addr],
        query_timeout: Duration::from_secs(2),
        attempts: 0,
        ..DnsConfig::default()
    };
    let r = Resolver::new(cfg, tokio::runtime::Handle::current()).expect("resolver");
    let a = ip("192.0.2.9");
    assert_eq!(
        r.resolve(a, Instant::now() + Duration::from_millis(50))
            .await,
        None
    );
    assert_eq!(r.cached(a), Lookup::Pending);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    match r.cached(a) {
        Lookup::Hit(Some(n)) => assert_eq!(n.as_str(), "late.example"),
        other => panic!("late answer not cached: {other:?}"),
    }
    let s = r.stats();
    assert_eq!((s.deadline_expired, s.queries, s.names), (1, 1, 1), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_pending_set_drops_and_counts() {
    let hole = Responder::black_hole();
    let cfg = DnsConfig {
        servers: vec![hole.addr],
        query_timeout: Duration::from_millis(200),
        attempts: 0,
        max_in_flight: 2,
        max_pending: 4,
        ..DnsConfig::default()
    };
    let r = Resolver::new(cfg, tokio::runtime::Handle::current()).expect("resolver");
    let mut started = Vec::new();
    for i in 1..=10u8 {
        let a = IpAddr::from([192, 0, 2, i]);
        assert_eq!(r.cached(a), Lookup::Miss);
        if let Some(p) = r.start(a) {
            started.push(p);
        }
    }
    assert_eq!(started.len(), 4);
    let s = r.stats();
    assert_eq!((s.dropped, s.pending, s.queries), (6, 4, 4), "{s}");
    assert!(s.in_flight <= 2, "{s}");
    // Joining an address already pending is never dropped.
    assert!(r.start(IpAddr::from([192, 0, 2, 1])).is_some());
    // A dropped packet's resolve() returns at once with no name.
    let t0 = Instant::now();
    assert_eq!(
        r.resolve(IpAddr::from([192, 0, 2, 99]), t0 + Duration::from_secs(5))
            .await,
        None
    );
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(r.stats().dropped, 7);
    for p in started {
        assert_eq!(p.await, None);
    }
    // The queue drained through 2 slots; at most 2 lookups ever talked to the server at once.
    let s = r.stats();
    assert_eq!((s.timeouts, s.pending, s.in_flight), (4, 0, 0), "{s}");
}

#[test]
fn no_server_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resolv.conf");
    std::fs::write(&path, "# nothing here\n").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = DnsConfig {
        resolv_conf: path,
        ..DnsConfig::default()
    };
    let e = Resolver::new(cfg, rt.handle().clone())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("no DNS server configured"), "{e}");
    assert!(e.contains("--dns-server") && e.contains("--no-dns"), "{e}");
}

const TTL_ZONE: &str = "\
$TTL 300
@ IN SOA ns.example.test. host.example.test. 1 3600 600 86400 60
@ IN NS ns.example.test.
1 IN PTR long-ttl.example.test.
8 1 IN PTR short-ttl.example.test.
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttls_are_honoured_within_bounds() {
    let Some(nsd) = Nsd::start(&[("2.0.192.in-addr.arpa", TTL_ZONE)]) else {
        return;
    };
    let mk = |min: u64, max: u64| {
        let cfg = DnsConfig {
            servers: vec![nsd.addr],
            min_ttl: Duration::from_secs(min),
            max_ttl: Duration::from_secs(max),
            negative_ttl: Duration::from_secs(2),
            ..DnsConfig::default()
        };
        Resolver::new(cfg, tokio::runtime::Handle::current()).expect("resolver")
    };
    // Bounds [0, 2 s]: the 300 s record is cut to 2 s, the 1 s record keeps 1 s, NXDOMAIN
    // (SOA minimum 60 s) is cut to negative_ttl = 2 s. Expiry has one-second granularity and
    // errs short, so a 2 s entry is still there just after the answer and gone after 2 s.
    let short = mk(0, 2);
    // Bounds [5 s, 3600 s]: the 1 s record is kept 5 s.
    let floor = mk(5, 3600);
    for a in ["192.0.2.1", "192.0.2.8", "192.0.2.3"] {
        short.resolve(ip(a), soon()).await;
        floor.resolve(ip(a), soon()).await;
        assert!(matches!(short.cached(ip(a)), Lookup::Hit(_)), "{a}");
    }
    assert_eq!(short.stats().nxdomain, 1);
    tokio::time::sleep(Duration::from_millis(2050)).await;
    for a in ["192.0.2.1", "192.0.2.8", "192.0.2.3"] {
        assert_eq!(short.cached(ip(a)), Lookup::Miss, "{a} outlived max TTL");
    }
    match floor.cached(ip("192.0.2.8")) {
        Lookup::Hit(Some(n)) => assert_eq!(n.as_str(), "short-ttl.example.test"),
        other => panic!("min TTL not applied: {other:?}"),
    }
    // An expired entry is looked up again.
    let before = nsd.queries();
    assert!(short.resolve(ip("192.0.2.1"), soon()).await.is_some());
    assert_eq!(nsd.queries() - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_mapped_addresses_use_the_ipv4_zone() {
    let Some(nsd) = start_nsd() else { return };
    let r = resolver(nsd.addr, true);
    assert_eq!(
        name(&r, "::ffff:192.0.2.1").await.as_deref(),
        Some("one.example.test")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_after_the_answer_landed_needs_no_query() {
    let hole = Responder::black_hole();
    let cfg = DnsConfig {
        servers: vec![hole.addr],
        ..DnsConfig::default()
    };
    let r = Resolver::new(cfg, tokio::runtime::Handle::current()).expect("resolver");
    let a = ip("192.0.2.44");
    let n = fwlog::dns::SafeName::from_labels([&b"seeded"[..], b"example"]);
    // The pipeline saw a miss, then the answer arrived before it called start().
    assert_eq!(r.cached(a), Lookup::Miss);
    r.remember(a, Some(n.clone()), Duration::from_secs(60));
    let p = r.start(a).expect("not dropped");
    assert_eq!(p.try_get(), Some(Some(n.clone())));
    assert_eq!(p.await, Some(n));
    assert_eq!(r.stats().queries, 0);
    assert_eq!(hole.queries.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_clock_reading_decides_expiry_and_lookups_are_hits_plus_misses() {
    let Some(nsd) = start_nsd() else { return };
    let r = resolver(nsd.addr, false);
    assert!(name(&r, "192.0.2.1").await.is_some());
    let now = std::time::Instant::now();
    let before = r.stats();
    assert!(matches!(
        r.cached_at(ip("192.0.2.1"), now),
        Lookup::Hit(Some(_))
    ));
    assert_eq!(r.peek_at(ip("192.0.2.1"), now), r.cached(ip("192.0.2.1")));
    // Past the zone's 300 s TTL by the reading passed in, the same entry is a miss.
    let later = now + Duration::from_secs(400);
    assert_eq!(r.cached_at(ip("192.0.2.1"), later), Lookup::Miss);
    assert_eq!(r.peek_at(ip("192.0.2.1"), later), Lookup::Miss);
    let after = r.stats();
    assert_eq!(
        (after.hits - before.hits, after.misses - before.misses),
        (2, 1),
        "{after}"
    );
    assert_eq!(after.lookups, after.hits + after.misses, "{after}");
}
