//! `fwlog run` keeping its NFLOG socket in the service manager's fd store, against the real
//! kernel in namespaces the tests create. The test plays systemd (see `support::fdstore`).

mod support;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::crash;
use support::daemon::{lines, numbers_taken_by_another_run, send_udp, wait_for, RunArgs};
use support::fdstore::*;
use support::netns::NetNs;

#[test]
fn kill_9_during_a_flood_under_a_played_systemd_loses_nothing() {
    require_root!();
    kill_flood(&[5], crash::rounds(24), "256KiB");
}

/// Two groups: their datagrams interleave in the socket, and small segments make a kill land
/// in the middle of a datagram's records more often.
#[test]
fn kill_9_with_two_groups_and_small_segments_loses_nothing() {
    require_root!();
    kill_flood(&[5, 6], 12, "16KiB");
}

/// kill -9 `rounds` times during a 20k packets/s flood spread over `groups` (one port each),
/// each time starting the next process with the stored socket; then judge the output against
/// the rules' counters.
fn kill_flood(groups: &[u16], rounds: usize, segment: &str) {
    let mut rng = crash::seeded("fd store crash test", rounds);
    let ns = NetNs::new("fdkill");
    let ports: Vec<(u16, u16)> = groups.iter().map(|&g| (9000 + g, g)).collect();
    rule(&ns, &ports);
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::bind(dir.path());
    let run = groups
        .iter()
        .fold(RunArgs::new(dir.path()), |r, &g| r.group(g))
        .with(&["--segment-size", segment])
        .output(Some("json"), "out.json");
    let out = run.path("out.json");
    let args = run.args();
    let name = fwlog_name(groups);
    let first = m.spawn(&ns, dir.path(), &args);
    wait_ready(&first);
    wait_for("the socket in the store", Duration::from_secs(5), || {
        m.names() == [name.as_str()]
    });
    let stop = AtomicBool::new(false);
    let sent = std::thread::scope(|s| {
        // About 20k packets/s: 20 every millisecond.
        let sender = s.spawn(|| {
            ns.enter(|| {
                let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                let start = std::time::Instant::now();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let due = start.elapsed().as_micros() as u64 * 20 / 1000;
                    while n < due {
                        let (port, _) = ports[n as usize % ports.len()];
                        let _ = sock.send_to(format!("pkt-{n}").as_bytes(), ("127.0.0.1", port));
                        n += 1;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                n
            })
        });
        let mut d = first;
        for round in 0..rounds {
            std::thread::sleep(crash::kill_delay(&mut rng, round));
            d.kill9();
            d = m.spawn(&ns, dir.path(), &args);
        }
        wait_ready(&d);
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let sent = sender.join().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        drain(&d, Duration::from_secs(180));
        assert_eq!(d.stop(), 0);
        sent
    });
    let counted: u64 = ports.iter().map(|&(p, _)| rule_count(&ns, p)).sum();
    let (printed, losses) = read_output(&out);
    let dups = crash::replayed_duplicates(&printed);
    let missing = crash::uncovered(&printed.keys().copied().collect(), &[]);
    let missing = &missing[..missing.len().min(10)];
    eprintln!(
        "fd store crash test: sent {sent}, the rule counted {counted}, printed {} distinct, {dups} replayed duplicates, {} loss reports",
        printed.len(),
        losses.len()
    );
    assert!(missing.is_empty(), "seq_global not printed: {missing:?}");
    assert!(losses.is_empty(), "loss reported: {losses:#?}");
    assert_eq!(
        printed.len() as u64,
        counted,
        "every packet the rule counted is printed once (distinct seq_global)"
    );
    assert!(
        m.messages_with("FDSTORE=1") >= 1,
        "the socket went to the store"
    );
}

#[test]
fn a_restart_adds_and_drops_groups_on_the_kept_socket() {
    require_root!();
    let ns = NetNs::new("fdgroups");
    rule(&ns, &[(9005, 5), (9006, 6)]);
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::bind(dir.path());
    let out = dir.path().join("out.json");
    let with = |groups: &[u16]| {
        groups
            .iter()
            .fold(RunArgs::new(dir.path()), |r, &g| r.group(g))
            .output(Some("json"), "out.json")
    };
    let wait_printed = |n: usize| {
        wait_for(&format!("{n} lines"), Duration::from_secs(20), || {
            lines(&out).len() >= n
        })
    };

    let d = m.spawn(&ns, dir.path(), &with(&[5]).args());
    wait_ready(&d);
    send_udp(&ns, 9005, 0..10);
    wait_printed(10);
    assert_eq!(d.stop(), 0);
    assert_eq!(m.names(), ["fwlog-nflog-5"]);
    assert_eq!(bound_groups(&ns), [5], "the stored socket keeps group 5");
    // While no fwlog runs: group 5 waits in the stored socket, group 6 has no listener.
    send_udp(&ns, 9005, 10..20);
    send_udp(&ns, 9006, 0..10);

    let d = m.spawn(&ns, dir.path(), &with(&[5, 6]).args());
    wait_ready(&d);
    assert!(
        d.stderr_text().contains("took the NFLOG socket back"),
        "{}",
        d.stderr_text()
    );
    assert!(
        d.stderr_text().contains("NFLOG group 6 is new: bound"),
        "{}",
        d.stderr_text()
    );
    wait_for("the renamed store entry", Duration::from_secs(5), || {
        m.names() == ["fwlog-nflog-5-6"]
    });
    send_udp(&ns, 9005, 20..30);
    send_udp(&ns, 9006, 10..20);
    wait_printed(40);
    assert_eq!(d.stop(), 0);

    let d = m.spawn(&ns, dir.path(), &with(&[6]).args());
    wait_ready(&d);
    let err = d.stderr_text();
    assert!(
        err.contains("NFLOG group 5 is no longer logged (unbound)"),
        "{err}"
    );
    wait_for("group 5 unbound", Duration::from_secs(5), || {
        bound_groups(&ns) == [6]
    });
    wait_for("the renamed store entry", Duration::from_secs(5), || {
        m.names() == ["fwlog-nflog-6"]
    });
    send_udp(&ns, 9006, 20..25);
    wait_printed(45);
    assert_eq!(d.stop(), 0);

    let (n, losses) = per_group(&out);
    assert_eq!(n.get(&5), Some(&30), "group 5: everything, also while down");
    assert_eq!(n.get(&6), Some(&15), "group 6: from its bind on");
    assert!(losses.is_empty(), "{losses:#?}");
    assert_eq!(
        rule_count(&ns, 9006),
        25,
        "the 10 before the bind were never logged"
    );
}

#[test]
fn bad_passed_fds_are_ignored_with_one_warning_each() {
    require_root!();
    let ns = NetNs::new("fdbad");
    rule(&ns, &[(9005, 5)]);
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::bind(dir.path());
    let run = RunArgs::new(dir.path())
        .group(5)
        .output(Some("json"), "out.json");
    let out = run.path("out.json");
    let args = run.args();

    // Garbage counts (no manager listening: nothing gets stored, the group is released).
    for (fds, want) in [("abc", "not a count"), ("1000", "more than the 64")] {
        let d = spawn_env_fds(&ns, dir.path(), &args, &dir.path().join("absent"), fds);
        wait_ready(&d);
        let w = warnings(&d);
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(w[0].contains(want), "{}", w[0]);
        // The "logging" line comes before the SIGTERM handler is installed: give it time.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(d.stop(), 0);
    }

    // LISTEN_PID of another process: its fds are not ours, not even looked at.
    let d = spawn_with(
        &ns,
        dir.path(),
        &args,
        vec![netfilter_socket()],
        &["fwlog-nflog-5".into()],
        &m.path,
        Some("1"),
    );
    wait_ready(&d);
    let w = warnings(&d);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(w[0].contains("LISTEN_PID=1 is another process"), "{}", w[0]);
    assert!(!d.stderr_text().contains("took the NFLOG socket back"));
    send_udp(&ns, 9005, 0..5);
    wait_for("5 lines", Duration::from_secs(20), || {
        lines(&out).len() >= 5
    });
    assert_eq!(d.stop(), 0);
    let good = m
        .store
        .lock()
        .unwrap()
        .fds
        .iter()
        .map(|(_, f)| dup_high(f.as_raw_fd()))
        .next();
    let good = good.expect("the run stored its socket");
    let good_inode = inode(good.as_raw_fd());

    // Not a socket, a UDP socket, a netlink socket of another protocol, an unknown name, and a
    // second NFLOG socket after the good one: each one warning, closed, removed from the store.
    let file = std::fs::File::open("/dev/null").unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // SAFETY: plain socket(2); checked.
    let route = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    assert!(route >= 0);
    let fds: Vec<OwnedFd> = vec![
        dup_high(file.as_raw_fd()),
        dup_high(udp.as_raw_fd()),
        // SAFETY: fresh fd.
        dup_high(unsafe { OwnedFd::from_raw_fd(route) }.as_raw_fd()),
        dup_high(netfilter_socket().as_raw_fd()),
        dup_high(good.as_raw_fd()),
        dup_high(netfilter_socket().as_raw_fd()),
    ];
    let names: Vec<String> = [
        "fwlog-nflog-5",
        "fwlog-nflog-5",
        "fwlog-nflog-5",
        "forged\x1b[2Jname",
        "fwlog-nflog-5",
        "fwlog-nflog-7",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let d = spawn_with(&ns, dir.path(), &args, fds, &names, &m.path, None);
    wait_ready(&d);
    let w = warnings(&d);
    assert_eq!(w.len(), 5, "{w:#?}");
    for (w, want) in w.iter().zip([
        "not a socket",
        "not netlink",
        "protocol 0",
        "not a name fwlog gives",
        "second socket",
    ]) {
        assert!(w.contains(want), "{w} lacks {want}");
        assert!(!w.contains('\x1b'), "{w}");
    }
    assert!(d.stderr_text().contains("took the NFLOG socket back"));
    send_udp(&ns, 9005, 5..10);
    wait_for("10 lines", Duration::from_secs(20), || {
        lines(&out).len() >= 10
    });
    assert_eq!(d.stop(), 0);
    assert!(m.messages_with("FDSTOREREMOVE=1\nFDNAME=fwlog-nflog-7") == 1);
    let s = m.store.lock().unwrap();
    assert_eq!(s.fds.len(), 1, "only the good socket stays stored");
    assert_eq!(inode(s.fds[0].1.as_raw_fd()), good_inode);
    drop(s);
    let (n, losses) = per_group(&out);
    assert_eq!(n.get(&5), Some(&10));
    assert!(losses.is_empty(), "{losses:#?}");
}

#[test]
fn an_overflow_while_down_is_reported_as_an_exact_gap() {
    require_root!();
    let ns = NetNs::new("fdoverflow");
    rule(&ns, &[(9005, 5)]);
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::bind(dir.path());
    // A small buffer, so 5000 packets overflow it.
    let run = RunArgs::new(dir.path())
        .group(5)
        .output(Some("json"), "out.json")
        .with(&["--rcvbuf", "256KiB"]);
    let out = run.path("out.json");
    let args = run.args();
    let d = m.spawn(&ns, dir.path(), &args);
    wait_ready(&d);
    send_udp(&ns, 9005, 0..10);
    wait_for("10 lines", Duration::from_secs(20), || {
        lines(&out).len() >= 10
    });
    assert_eq!(d.stop(), 0);
    send_udp(&ns, 9005, 10..5010);
    let d = m.spawn(&ns, dir.path(), &args);
    wait_ready(&d);
    std::thread::sleep(Duration::from_millis(500));
    send_udp(&ns, 9005, 5010..5011);
    let mut last = 0;
    wait_for("the output to settle", Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(300));
        let n = lines(&out).len();
        let same = n == last && n > 11;
        last = n;
        same
    });
    assert_eq!(d.stop(), 0);
    let (printed, losses) = read_output(&out);
    let gap: u64 = losses
        .iter()
        .filter(|l| l.contains("\"cause\":\"seq-gap\""))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["count"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert!(
        losses.iter().any(|l| l.contains("\"cause\":\"enobufs\"")),
        "the overflow is reported at once: {losses:#?}"
    );
    let counted = rule_count(&ns, 9005);
    assert!(gap > 0, "the buffer overflowed: {losses:#?}");
    assert_eq!(
        printed.len() as u64 + gap,
        counted,
        "printed + the exact gap = what the rule counted"
    );
}

/// A first run on a new spool, under the fd store, killed before it read any numbered record:
/// what the kernel numbered meanwhile waits in the kept socket and is printed by the next run,
/// which must not report the numbers another NFLOG user took before (here an earlier fwlog on
/// another spool, without the store) as a restart gap either.
#[test]
fn a_first_run_killed_before_any_packet_loses_nothing_on_the_kept_socket() {
    require_root!();
    let ns = NetNs::new("fdfirst");
    rule(&ns, &[(9005, 5)]);
    let dir = tempfile::tempdir().unwrap();
    numbers_taken_by_another_run(&ns, dir.path(), 5, 9005, 20);

    let m = Manager::bind(dir.path());
    let run = RunArgs::new(dir.path())
        .group(5)
        .output(Some("json"), "out.json");
    let out = run.path("out.json");
    let args = run.args();
    let d = m.spawn(&ns, dir.path(), &args);
    wait_ready(&d);
    d.signal(libc::SIGSTOP);
    let stat = format!("/proc/{}/stat", d.child.id());
    wait_for("fwlog to stop", Duration::from_secs(10), || {
        std::fs::read_to_string(&stat)
            .is_ok_and(|s| s.rsplit(") ").next().is_some_and(|r| r.starts_with('T')))
    });
    send_udp(&ns, 9005, 20..50);
    std::thread::sleep(Duration::from_millis(300));
    d.kill9();
    let d = m.spawn(&ns, dir.path(), &args);
    wait_ready(&d);
    wait_for("the kept socket's packets", Duration::from_secs(20), || {
        lines(&out).len() >= 30
    });
    assert_eq!(d.stop(), 0);
    let (printed, losses) = read_output(&out);
    assert_eq!(rule_count(&ns, 9005), 50);
    assert_eq!(
        (printed.len(), losses),
        (30, vec![]),
        "30 printed once, nothing lost"
    );
    assert!(
        printed.values().all(|p| p == &[false]),
        "none printed twice"
    );
}

/// The store name fwlog gives a socket bound to `groups` (sorted, `-` separated).
fn fwlog_name(groups: &[u16]) -> String {
    let mut g = groups.to_vec();
    g.sort_unstable();
    let list: Vec<String> = g.iter().map(|x| x.to_string()).collect();
    format!("fwlog-nflog-{}", list.join("-"))
}
