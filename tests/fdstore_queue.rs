//! `fwlog run --queue` keeping its queue socket in the service manager's fd store (played by
//! the test, see `support::fdstore`): packets queued while fwlog restarts wait in the kernel's
//! queue for the next process, even under a `--queue-bypass` rule, and none passes unlogged.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::daemon::{wait_for, Daemon, RunArgs};
use support::fdstore::Manager;
use support::netns::NetNs;
use support::queue::{iptables, queue_rule, send_and_wait, settle, QueueSetup, READY};

fn wait_queue_ready(d: &Daemon) {
    let end = Instant::now() + Duration::from_secs(20);
    while !d.stderr_text().contains(READY) {
        assert!(
            Instant::now() < end,
            "fwlog did not start:\n{}",
            d.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn packets_queued_during_a_restart_wait_and_pass_logged() {
    require_root!();
    // With --queue-bypass: packets would pass unlogged while no socket is bound.
    let t = QueueSetup::new("fdqueue", 7, true);
    let (ns, dir, out, l, s) = (&t.ns, &t.dir, &t.out, &t.l, &t.s);
    let m = Manager::bind(dir.path());
    let run = t.args(&["--copy-range", "128"]);
    let argv = run.args();

    let d = m.spawn(ns, dir.path(), &argv);
    wait_queue_ready(&d);
    send_and_wait(s, l, 0..20, Duration::from_secs(10));
    assert_eq!(l.count(), 20);
    assert_eq!(d.stop(), 0);
    assert_eq!(m.names(), ["fwlog-nfqueue-7"]);

    // Nobody reads the queue now, but its socket is bound (in the store): no bypass.
    for i in 20..60 {
        s.send(i);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(l.count(), 20, "nothing passes while fwlog is down");

    let d = m.spawn(ns, dir.path(), &argv);
    wait_queue_ready(&d);
    assert!(
        d.stderr_text().contains("took the NFQUEUE socket back"),
        "{}",
        d.stderr_text()
    );
    wait_for("the held packets to pass", Duration::from_secs(20), || {
        l.count() == 60
    });
    send_and_wait(s, l, 60..70, Duration::from_secs(10));
    let log = settle(out, 70);
    let err = d.stderr.clone();
    assert_eq!(
        d.stop(),
        0,
        "{}",
        std::fs::read_to_string(err).unwrap_or_default()
    );
    let delivered = l.keys();
    assert_eq!(delivered.len(), 70);
    assert!(
        delivered.iter().all(|k| log.packets.contains_key(k)),
        "a packet passed unlogged"
    );
    assert!(log.losses.is_empty(), "{:?}", log.losses);
}

#[test]
fn kill_9_with_the_queue_socket_stored_lets_nothing_pass_unlogged() {
    require_root!();
    let t = QueueSetup::new("fdqkill", 7, true);
    let (ns, dir, out, l, s) = (&t.ns, &t.dir, &t.out, &t.l, &t.s);
    let m = Manager::bind(dir.path());
    let run = t.args(&["--copy-range", "128"]);
    let argv = run.args();
    let first = m.spawn(ns, dir.path(), &argv);
    wait_queue_ready(&first);
    let stop = AtomicBool::new(false);
    let sent = std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..10 {
                    s.send(i);
                    i += 1;
                }
                std::thread::sleep(Duration::from_micros(700));
            }
            i
        });
        let mut d = first;
        for round in 0..12u64 {
            std::thread::sleep(Duration::from_millis(if round % 3 == 0 { 20 } else { 250 }));
            d.kill9();
            d = m.spawn(ns, dir.path(), &argv);
        }
        wait_queue_ready(&d);
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        let sent = sender.join().unwrap();
        let mut last = usize::MAX;
        wait_for("the listener to settle", Duration::from_secs(30), || {
            std::thread::sleep(Duration::from_millis(300));
            let n = l.count();
            let done = n == last;
            last = n;
            done
        });
        assert_eq!(d.stop(), 0);
        sent
    });
    let delivered = l.keys();
    let log = settle(out, delivered.len());
    let unlogged = delivered
        .iter()
        .filter(|k| !log.packets.contains_key(k))
        .count();
    eprintln!(
        "fd store queue crash test: sent {sent}, passed {}, logged {}, passed unlogged {unlogged}, loss lines {:?}",
        delivered.len(),
        log.packets.len(),
        log.losses
    );
    assert_eq!(unlogged, 0, "a packet passed unlogged");
    // Only packets a killed process had read and not yet accepted are dropped (at most a
    // batch per kill); everything queued while it was down passed after the restart.
    assert!(
        delivered.len() as u32 + 12 * 1024 >= sent,
        "{} of {sent} passed",
        delivered.len()
    );
}

#[test]
fn switching_from_nflog_to_queue_mode_releases_the_stored_nflog_socket() {
    require_root!();
    let ns = NetNs::new("fdswitch");
    queue_rule(&ns, 7, false);
    support::fdstore::rule(&ns, &[(9005, 5)]);
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::bind(dir.path());
    let nflog = RunArgs::new(dir.path()).group(5).output_to("/dev/null");
    let d = m.spawn(&ns, dir.path(), &nflog.args());
    support::fdstore::wait_ready(&d);
    // The "logging" line comes before the SIGTERM handler is installed: give it time.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.stop(), 0);
    assert_eq!(m.names(), ["fwlog-nflog-5"]);
    assert_eq!(
        support::fdstore::bound_groups(&ns),
        [5],
        "kept bound in the store"
    );

    let run = RunArgs::new(dir.path())
        .with(&["--queue", "7", "--copy-range", "128"])
        .output_to("/dev/null");
    let argv = run.args();
    let d = m.spawn(&ns, dir.path(), &argv);
    wait_queue_ready(&d);
    wait_for(
        "the store to hold the queue socket only",
        Duration::from_secs(5),
        || m.names() == ["fwlog-nfqueue-7"],
    );
    wait_for("group 5 released", Duration::from_secs(5), || {
        support::fdstore::bound_groups(&ns).is_empty()
    });
    assert_eq!(d.stop(), 0);
}

/// The admin moves the audit from queue 7 to queue 8 (rule and --queue) while packets wait in
/// queue 7's stored socket: the socket is released, not moved (see `fdkeep::release_queue`), so
/// the kernel drops those packets: none passes, and fwlog says how many there were.
#[test]
fn a_changed_queue_number_releases_the_old_queue_and_passes_nothing_of_it() {
    require_root!();
    // With --queue-bypass: had queue 7 been left unbound at any moment, its packets would pass.
    let t = QueueSetup::new("fdqmove", 7, true);
    let (ns, dir, out, l, s) = (&t.ns, &t.dir, &t.out, &t.l, &t.s);
    let m = Manager::bind(dir.path());
    let q7 = t.args(&["--copy-range", "128"]);
    let d = m.spawn(ns, dir.path(), &q7.args());
    wait_queue_ready(&d);
    send_and_wait(s, l, 0..10, Duration::from_secs(10));
    assert_eq!(d.stop(), 0);
    assert_eq!(m.names(), ["fwlog-nfqueue-7"]);
    for i in 10..40 {
        s.send(i);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(l.count(), 10, "queued in 7 while fwlog is down");

    iptables(ns, "-F OUTPUT");
    queue_rule(ns, 8, false);
    let q8 = RunArgs::new(dir.path())
        .with(&["--queue", "8", "--copy-range", "128"])
        .output(Some("json"), "out.json");
    let d = m.spawn(ns, dir.path(), &q8.args());
    wait_queue_ready(&d);
    let err = d.stderr_text();
    assert!(
        err.contains("NFQUEUE queue 7 is no longer audited (now queue 8)")
            && err.contains("the kernel dropped the 30 packets waiting in it"),
        "{err}"
    );
    wait_for(
        "the store to hold queue 8 only",
        Duration::from_secs(5),
        || m.names() == ["fwlog-nfqueue-8"],
    );
    let instances = std::fs::read_to_string(format!(
        "/proc/{}/net/netfilter/nfnetlink_queue",
        d.child.id()
    ))
    .unwrap();
    assert!(
        !instances
            .lines()
            .any(|l| l.split_whitespace().next() == Some("7")),
        "queue 7 is free for another program: {instances}"
    );
    send_and_wait(s, l, 40..50, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(l.count(), 20, "the 30 waiting in queue 7 never passed");
    let log = settle(out, 20);
    assert_eq!(d.stop(), 0);
    assert!(
        l.keys().iter().all(|k| log.packets.contains_key(k)),
        "a packet passed unlogged"
    );
}
