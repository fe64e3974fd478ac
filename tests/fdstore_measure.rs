//! Measurements for BENCHMARKS.md (ignored by default: they take a minute and print figures
//! rather than judge them). Run as root:
//!
//! ```text
//! cargo test --release --test fdstore_measure -- --ignored --nocapture --test-threads 1
//! ```
//!
//! - restart time: SIGTERM to the old process -> the next one reading (its "logging" line),
//!   with the socket taken back from the played fd store;
//! - the restart window without a store: packets the rule counted during a 20k packets/s flood
//!   that fwlog neither printed nor reported, per restart, as milliseconds of traffic;
//! - the socket buffer's capacity across a restart: packets sent while no fwlog runs, and how
//!   many the next run reads from the kept socket, at 64 and 1500 bytes per packet.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::daemon::{Daemon, RunArgs};
use support::fdstore::*;
use support::netns::NetNs;

/// The value of `key` in a counters line (`key=value` words).
fn counter(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .filter_map(|w| w.trim_end_matches(';').split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// SIGTERM and wait, keeping the daemon (and its stderr) around.
fn term(d: &mut Daemon) -> i32 {
    d.signal(libc::SIGTERM);
    d.wait(Duration::from_secs(60))
}

/// The counters line a stopped fwlog printed last.
fn counters(d: &Daemon) -> String {
    d.stderr_text()
        .lines()
        .rev()
        .find(|l| l.starts_with("fwlog: received"))
        .unwrap_or_default()
        .to_string()
}

#[test]
#[ignore]
fn restart_time_with_the_fd_store() {
    require_root!();
    let ns = NetNs::new("fdmeasure");
    rule(&ns, &[(9999, 5)]);
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::bind(dir.path());
    let run = RunArgs::new(dir.path()).group(5).output_to("/dev/null");
    let args = run.args();
    let mut d = m.spawn(&ns, dir.path(), &args);
    wait_ready(&d);
    let (mut total, mut exit) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let t0 = Instant::now();
        d.signal(libc::SIGTERM);
        // Polled every millisecond (the support helpers poll every 20).
        while d.child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        exit.push(t0.elapsed());
        d = m.spawn(&ns, dir.path(), &args);
        while !d.stderr_text().contains("fwlog: logging NFLOG group") {
            std::thread::sleep(Duration::from_millis(1));
        }
        total.push(t0.elapsed());
    }
    assert_eq!(d.stop(), 0);
    for (what, mut v) in [
        ("SIGTERM -> next process reading", total),
        ("of which SIGTERM -> exit", exit),
    ] {
        v.sort();
        eprintln!(
            "MEASURE restart time with the fd store, {what}: median {:?}, min {:?}, max {:?} over {}",
            v[v.len() / 2],
            v[0],
            v[v.len() - 1],
            v.len()
        );
    }
}

/// Restart `rounds` times during a 20k packets/s flood; returns (rule count, distinct packets
/// printed, packets reported lost).
fn flood_restarts(store: bool, kill: bool, rounds: usize) -> (u64, u64, u64) {
    let ns = NetNs::new("fdwindow");
    rule(&ns, &[(9999, 5)]);
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::bind(dir.path());
    let out = dir.path().join("out.json");
    let json = format!("json={}", out.display());
    let run = RunArgs::new(dir.path()).group(5).output_to(json);
    let args = run.args();
    let start = |m: &Manager| {
        if store {
            m.spawn(&ns, dir.path(), &args)
        } else {
            Daemon::spawn(&ns, dir.path(), &args)
        }
    };
    let first = start(&m);
    wait_ready(&first);
    let stop = AtomicBool::new(false);
    let mut d = std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter(|| {
                let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                let t = Instant::now();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let due = t.elapsed().as_micros() as u64 * 20 / 1000;
                    while n < due {
                        let _ = sock.send_to(b"x", "127.0.0.1:9999");
                        n += 1;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        });
        let mut d = first;
        for _ in 0..rounds {
            std::thread::sleep(Duration::from_millis(300));
            if kill {
                d.kill9();
            } else {
                // Waited for without polling, so the next start follows the exit at once.
                d.signal(libc::SIGTERM);
                assert_eq!(d.child.wait().unwrap().code(), Some(0));
            }
            d = start(&m);
            wait_ready(&d);
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        d
    });
    settle(&out);
    assert_eq!(term(&mut d), 0);
    let counted = rule_count(&ns, 9999);
    let (printed, losses) = read_output(&out);
    let lost: u64 = losses
        .iter()
        .map(|l| {
            let o: serde_json::Value = serde_json::from_str(l).unwrap();
            o["count"].as_u64().filter(|&n| n < 1 << 40).unwrap_or(0)
        })
        .sum();
    (counted, printed.len() as u64, lost)
}

#[test]
#[ignore]
fn restart_window_during_a_flood() {
    require_root!();
    for (store, kill) in [(false, false), (false, true), (true, false), (true, true)] {
        let rounds = 10;
        let (counted, printed, lost) = flood_restarts(store, kill, rounds);
        let unseen = counted.saturating_sub(printed + lost);
        eprintln!(
            "MEASURE {} restarts by {} {} the fd store, 20k packets/s: rule counted {counted}, printed {printed}, reported lost {lost}, neither {unseen} ({:.1} ms of traffic per restart)",
            rounds,
            if kill { "kill -9" } else { "SIGTERM" },
            if store { "with" } else { "without" },
            unseen as f64 / rounds as f64 / 20.0
        );
    }
}

#[test]
#[ignore]
fn socket_buffer_capacity_across_a_restart() {
    require_root!();
    for (size, sent) in [(64usize, 900_000u32), (1500, 200_000)] {
        let ns = NetNs::new("fdcap");
        rule(&ns, &[(9999, 5)]);
        let dir = tempfile::tempdir().unwrap();
        let m = Manager::bind(dir.path());
        let run = RunArgs::new(dir.path())
            .group(5)
            .output_to("/dev/null")
            .with(&["--spool-max", "8GiB"]);
        let args = run.args();
        let mut d = m.spawn(&ns, dir.path(), &args);
        wait_ready(&d);
        assert_eq!(term(&mut d), 0);
        // IPv4 + UDP headers are 28 bytes of the packet.
        let payload = vec![0u8; size - 28];
        ns.enter(|| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            for _ in 0..sent {
                s.send_to(&payload, "127.0.0.1:9999").unwrap();
            }
        });
        let counted = rule_count(&ns, 9999);
        let t0 = Instant::now();
        let mut d = m.spawn(&ns, dir.path(), &args);
        wait_ready(&d);
        // Counters every 20 ms until they stop moving: when the last record was read gives
        // the rate hold mode reads a full buffer at.
        let (mut read, mut read_at, mut still) = (0u64, Duration::ZERO, 0);
        while still < 25 {
            d.signal(libc::SIGUSR1);
            std::thread::sleep(Duration::from_millis(20));
            let now = counter(
                d.stderr_text()
                    .lines()
                    .rev()
                    .find(|l| l.starts_with("fwlog: received"))
                    .unwrap_or_default(),
                "received",
            );
            if now > read {
                (read, read_at, still) = (now, t0.elapsed(), 0);
            } else {
                still += 1;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "reading took too long"
            );
        }
        let took = read_at;
        // The overflow shows as an ENOBUFS event at once; its exact size (a per-group sequence
        // gap) only with the next packet of the group.
        ns.enter(|| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.send_to(&payload, "127.0.0.1:9999").unwrap();
        });
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(term(&mut d), 0);
        let c = counters(&d);
        eprintln!(
            "MEASURE {size}-byte packets sent while fwlog was down: {counted} (rule counter); the next run read {read} from the kept socket in {took:?} (start-up included, polled every 20 ms), reported {} ENOBUFS event(s) at once and, with the next packet, a sequence gap of {} (exact: {} expected)",
            counter(&c, "enobufs-events"),
            counter(&c, "lost-seq-gap"),
            counted - read
        );
        assert_eq!(
            counter(&c, "lost-seq-gap"),
            counted - read,
            "the overflow is counted exactly"
        );
    }
}
