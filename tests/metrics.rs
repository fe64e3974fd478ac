//! `fwlog run --metrics`: curl of the endpoint during a real run matches the SIGUSR1 counters;
//! only /metrics is served (404, 405); hostile clients (1,000 idle connections, a 1 MB request
//! line, a client that never reads) neither stop the endpoint nor stall logging; packets
//! received per group match the nft rules' counters; the backlog's age grows while the output
//! is stalled and is 0 once it drained.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::daemon::{lines, send_udp, wait_for, Daemon};
use support::netns::NetNs;

const ADDR: &str = "127.0.0.1:9641";

/// `curl -s -o - -w '\n%{http_code}' [ARGS] URL` inside the namespace: (status, body).
fn curl(ns: &NetNs, args: &[&str], path: &str) -> (u16, String) {
    let o = ns
        .command("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .arg(format!("http://{ADDR}{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Sample values by name with labels (`fwlog_packets_lost_total{reason="seq-gap"}`).
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The numbers of the last SIGUSR1 line, by key (`received=12 spooled=12 ...`).
fn usr1(stderr: &str) -> HashMap<String, u64> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("fwlog: received="))
        .expect("a SIGUSR1 line");
    line.split_whitespace()
        .filter_map(|w| {
            let (k, v) = w.trim_end_matches(';').split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// One scrape's samples (panics unless the answer is 200).
fn scrape(ns: &NetNs) -> HashMap<String, f64> {
    let (code, body) = curl(ns, &[], "/metrics");
    assert_eq!(code, 200, "{body}");
    samples(&body)
}

fn start(ns: &NetNs, dir: &std::path::Path) -> (Daemon, std::path::PathBuf) {
    start_with(ns, dir, &["--group", "5"])
}

fn start_with(ns: &NetNs, dir: &std::path::Path, source: &[&str]) -> (Daemon, std::path::PathBuf) {
    let out = dir.join("out.json");
    let mut args: Vec<String> = source.iter().map(|s| s.to_string()).collect();
    args.extend([
        "--no-dns".into(),
        "--spool".into(),
        dir.join("spool").display().to_string(),
        "-o".into(),
        format!("json={}", out.display()),
        "--metrics".into(),
        ADDR.into(),
    ]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = if source[0] == "--queue" {
        support::queue::start(ns, dir, &argv)
    } else {
        Daemon::start(ns, dir, &argv)
    };
    (d, out)
}

fn packets(out: &std::path::Path) -> usize {
    lines(out)
        .iter()
        .filter(|l| l.contains("\"event\":\"packet\""))
        .count()
}

#[test]
fn scrape_matches_sigusr1_and_only_metrics_is_served() {
    require_root!();
    support::require_tool("curl");
    let ns = NetNs::new("metrics");
    ns.nft("table inet t {\n chain o {\n  type filter hook output priority 0;\n  udp dport 9999 log group 5\n }\n}\n");
    let dir = tempfile::tempdir().unwrap();
    let (d, out) = start(&ns, dir.path());
    send_udp(&ns, 9999, 0..100);
    wait_for("100 packets printed", Duration::from_secs(20), || {
        packets(&out) == 100
    });
    // Let the acknowledgement land, then compare one SIGUSR1 line with one scrape.
    std::thread::sleep(Duration::from_millis(500));
    d.signal(libc::SIGUSR1);
    wait_for("the SIGUSR1 line", Duration::from_secs(10), || {
        d.stderr_text().contains("fwlog: received=")
    });
    let (code, body) = curl(&ns, &[], "/metrics");
    assert_eq!(code, 200, "{body}");
    let m = samples(&body);
    let u = usr1(&d.stderr_text());
    for (metric, word) in [
        ("fwlog_packets_received_total", "received"),
        ("fwlog_packets_spooled_total", "spooled"),
        ("fwlog_packets_printed_total", "printed"),
        ("fwlog_packets_replayed_total", "replayed"),
        ("fwlog_spool_backlog_records", "pending"),
        (
            "fwlog_packets_lost_total{reason=\"seq-gap\"}",
            "lost-seq-gap",
        ),
        (
            "fwlog_packets_lost_total{reason=\"restart\"}",
            "lost-restart",
        ),
        (
            "fwlog_packets_lost_total{reason=\"spool-full\"}",
            "lost-spool-full",
        ),
        ("fwlog_enobufs_events_total", "enobufs-events"),
        ("fwlog_output_errors_total", "output-errors"),
    ] {
        assert_eq!(
            m.get(metric).copied(),
            Some(u[word] as f64),
            "{metric} vs SIGUSR1 {word}:\n{body}"
        );
    }
    assert_eq!(m["fwlog_packets_printed_total"], 100.0);
    assert_eq!(m["fwlog_group_packets_printed_total{group=\"5\"}"], 100.0);
    let json_out = out.display().to_string();
    let key = |name: &str| format!("{name}{{output=\"{json_out}\"}}");
    let bytes = std::fs::metadata(&out).unwrap().len() as f64;
    assert_eq!(m[&key("fwlog_output_written_bytes_total")], bytes, "{body}");
    assert_eq!(m[&key("fwlog_output_write_errors_total")], 0.0);
    assert_eq!(m[&key("fwlog_output_retrying")], 0.0);
    assert!(m["fwlog_spool_disk_bytes"] > 0.0);
    assert_eq!(
        m["fwlog_spool_free_bytes"],
        m["fwlog_spool_max_bytes"] - m["fwlog_spool_disk_bytes"]
    );
    assert!(m["fwlog_last_ack_age_seconds"] < 30.0);
    assert!(body.ends_with("# EOF\n"), "{body}");

    assert_eq!(curl(&ns, &[], "/").0, 404);
    assert_eq!(curl(&ns, &[], "/metrics/extra").0, 404);
    assert_eq!(curl(&ns, &["-X", "POST"], "/metrics").0, 405);
    let (code, body) = curl(&ns, &["-I"], "/metrics");
    assert_eq!(code, 200);
    assert!(!body.contains("fwlog_packets"), "HEAD has no body");
    assert_eq!(d.stop(), 0);
}

#[test]
fn hostile_clients_neither_stop_the_endpoint_nor_stall_logging() {
    require_root!();
    support::require_tool("curl");
    let ns = NetNs::new("metricsh");
    ns.nft("table inet t {\n chain o {\n  type filter hook output priority 0;\n  udp dport 9999 counter log group 5\n }\n}\n");
    let dir = tempfile::tempdir().unwrap();
    let (d, out) = start(&ns, dir.path());
    // SAFETY: setrlimit with a valid struct; raising the soft limit to the hard one.
    unsafe {
        let mut r = std::mem::zeroed::<libc::rlimit>();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max.min(8192);
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }

    let (idle, big_answer, never_reads) = ns.enter(|| {
        // 1,000 connections that send nothing.
        let idle: Vec<TcpStream> = (0..1000)
            .filter_map(|_| TcpStream::connect(ADDR).ok())
            .collect();
        // A 1 MB request line: answered 431 (or cut off) after 8 KiB, never buffered whole.
        let mut big = TcpStream::connect(ADDR).expect("connect");
        big.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut line = b"GET /".to_vec();
        line.resize(1 << 20, b'a');
        let _ = big.write_all(&line);
        let mut answer = String::new();
        let _ = big.read_to_string(&mut answer);
        // A client that asks and never reads.
        let mut lazy = TcpStream::connect(ADDR).expect("connect");
        let _ = lazy.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
        (idle, answer, lazy)
    });
    assert!(idle.len() >= 64, "{} connections accepted", idle.len());
    assert!(
        big_answer.is_empty() || big_answer.starts_with("HTTP/1.1 431"),
        "{big_answer:.80}"
    );
    // Logging goes on while every connection slot is taken.
    send_udp(&ns, 9999, 0..500);
    wait_for(
        "500 packets printed under attack",
        Duration::from_secs(20),
        || packets(&out) == 500,
    );
    // The idle ones time out; the endpoint answers again.
    drop(idle);
    drop(never_reads);
    wait_for(
        "the endpoint to answer again",
        Duration::from_secs(20),
        || curl(&ns, &[], "/metrics").0 == 200,
    );
    // Counted once the lines are synced: live, within the span (100 ms) of the last write.
    wait_for("printed to count 500", Duration::from_secs(10), || {
        samples(&curl(&ns, &[], "/metrics").1).get("fwlog_packets_printed_total") == Some(&500.0)
    });
    assert_eq!(d.stop(), 0);
}

#[test]
fn nfqueue_verdicts_are_counted() {
    require_root!();
    support::require_tool("curl");
    let ns = NetNs::new("metricsq");
    support::queue::queue_rule(&ns, 3, false);
    let dir = tempfile::tempdir().unwrap();
    let (d, out) = start_with(&ns, dir.path(), &["--queue", "3"]);
    send_udp(&ns, support::queue::PORT, 0..50);
    wait_for("50 packets printed", Duration::from_secs(20), || {
        packets(&out) == 50
    });
    let m = samples(&curl(&ns, &[], "/metrics").1);
    assert_eq!(m["fwlog_nfqueue_verdicts_total{verdict=\"accept\"}"], 50.0);
    assert_eq!(m["fwlog_nfqueue_verdicts_total{verdict=\"drop\"}"], 0.0);
    assert_eq!(m["fwlog_packets_received_total"], 50.0);
    assert_eq!(d.stop(), 0);
}

#[test]
fn packets_received_per_group_match_the_nft_rule_counters() {
    require_root!();
    support::require_tool("curl");
    let ns = NetNs::new("metricsg");
    support::fdstore::rule(&ns, &[(9999, 5), (9998, 6)]);
    let dir = tempfile::tempdir().unwrap();
    let (d, out) = start_with(&ns, dir.path(), &["--group", "5", "--group", "6"]);
    let before = scrape(&ns);
    assert_eq!(
        before["fwlog_group_packets_received_total{group=\"5\"}"],
        0.0
    );
    assert_eq!(
        before["fwlog_group_packets_received_total{group=\"6\"}"],
        0.0
    );
    send_udp(&ns, 9999, 0..300);
    send_udp(&ns, 9998, 0..170);
    wait_for("470 packets printed", Duration::from_secs(20), || {
        packets(&out) == 470
    });
    let m = scrape(&ns);
    let (n5, n6) = (
        support::fdstore::rule_count(&ns, 9999),
        support::fdstore::rule_count(&ns, 9998),
    );
    assert_eq!((n5, n6), (300, 170), "what the rules logged");
    assert_eq!(
        m["fwlog_group_packets_received_total{group=\"5\"}"],
        n5 as f64
    );
    assert_eq!(
        m["fwlog_group_packets_received_total{group=\"6\"}"],
        n6 as f64
    );
    assert_eq!(m["fwlog_packets_received_total"], (n5 + n6) as f64);
    assert_eq!(
        m["fwlog_group_packets_printed_total{group=\"6\"}"],
        n6 as f64
    );
    assert_eq!(d.stop(), 0);
}

#[test]
fn packets_received_per_queue_are_labelled_with_the_queue_number() {
    require_root!();
    support::require_tool("curl");
    let ns = NetNs::new("metricsgq");
    support::queue::queue_rule(&ns, 7, false);
    let dir = tempfile::tempdir().unwrap();
    let (d, out) = start_with(&ns, dir.path(), &["--queue", "7"]);
    send_udp(&ns, support::queue::PORT, 0..40);
    wait_for("40 packets printed", Duration::from_secs(20), || {
        packets(&out) == 40
    });
    let m = scrape(&ns);
    assert_eq!(m["fwlog_group_packets_received_total{group=\"7\"}"], 40.0);
    assert_eq!(d.stop(), 0);
}

#[test]
fn backlog_age_grows_while_the_output_is_stalled_and_is_zero_once_drained() {
    require_root!();
    support::require_tool("curl");
    let ns = NetNs::new("metricsa");
    ns.nft("table inet t {\n chain o {\n  type filter hook output priority 0;\n  udp dport 9999 counter log group 5\n }\n}\n");
    let dir = tempfile::tempdir().unwrap();
    // The output is a FIFO nobody reads yet: a pipe's worth of lines, then the output stalls.
    let fifo = dir.path().join("out.fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let spool = dir.path().join("spool");
    let d = Daemon::start(
        &ns,
        dir.path(),
        &[
            "--group",
            "5",
            "--no-dns",
            "--spool",
            spool.to_str().unwrap(),
            "-o",
            &format!("json={}", fifo.display()),
            "--metrics",
            ADDR,
        ],
    );
    let idle = scrape(&ns);
    assert_eq!(
        idle["fwlog_spool_backlog_age_seconds"], 0.0,
        "nothing logged yet"
    );
    const N: usize = 2000;
    send_udp(&ns, 9999, 0..N as u32);
    wait_for("a stalled backlog", Duration::from_secs(20), || {
        let m = scrape(&ns);
        m["fwlog_packets_received_total"] == N as f64 && m["fwlog_spool_backlog_records"] > 0.0
    });
    let first = scrape(&ns)["fwlog_spool_backlog_age_seconds"];
    std::thread::sleep(Duration::from_secs(2));
    let m = scrape(&ns);
    let later = m["fwlog_spool_backlog_age_seconds"];
    eprintln!(
        "backlog age while stalled: {first} s, 2 s later {later} s ({} records)",
        m["fwlog_spool_backlog_records"]
    );
    assert!(m["fwlog_spool_backlog_records"] > 0.0, "still stalled");
    assert!(
        later >= first + 1.5 && later < 60.0,
        "age {first} s, then {later} s two seconds later"
    );
    // A reader comes: everything drains, and the backlog has no age any more.
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&got);
    std::thread::spawn(move || {
        let f = std::fs::File::open(&fifo).unwrap();
        for l in std::io::BufReader::new(f).lines() {
            if l.is_ok_and(|l| l.contains("\"event\":\"packet\"")) {
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    wait_for(
        "every line through the FIFO",
        Duration::from_secs(30),
        || got.load(std::sync::atomic::Ordering::Relaxed) >= N,
    );
    wait_for(
        "the backlog's age back to 0",
        Duration::from_secs(10),
        || {
            let m = scrape(&ns);
            m["fwlog_spool_backlog_age_seconds"] == 0.0 && m["fwlog_spool_backlog_records"] == 0.0
        },
    );
    assert_eq!(got.load(std::sync::atomic::Ordering::Relaxed), N);
    assert_eq!(d.stop(), 0);
}
