//! NFQUEUE audit mode against the real kernel: in a namespace of its own, each test routes
//! locally sent UDP to port 9999 through `iptables -j NFQUEUE --queue-num N`, runs
//! `fwlog run --queue N`, and checks from a listener's point of view that packets pass only
//! while fwlog runs (or with --queue-bypass / --fail-open when it cannot), and that every
//! payload the listener receives is in fwlog's JSON output.

mod support;

use std::process::Command;
use std::time::Duration;

use support::daemon::RunArgs;
use support::netns::NetNs;
use support::queue::{logged, send_and_wait, settle, start, stderr_number, QueueSetup};

const SHORT: Duration = Duration::from_millis(400);
const LONG: Duration = Duration::from_secs(20);

#[test]
fn packets_pass_only_while_fwlog_runs_and_every_delivered_one_is_logged() {
    require_root!();
    let t = QueueSetup::new("qaudit", 3, false);
    let (out, l, s) = (&t.out, &t.l, &t.s);

    // No program on the queue and no --queue-bypass: the kernel drops.
    send_and_wait(s, l, 0..20, SHORT);
    assert_eq!(
        l.count(),
        0,
        "packets passed while nothing listened on the queue"
    );

    let d = t.start(&["--copy-range", "128"]);
    send_and_wait(s, l, 20..620, LONG);
    assert_eq!(l.count(), 600, "every packet passes while fwlog runs");
    let log = settle(out, 600);
    for k in l.keys() {
        assert!(
            log.packets.contains_key(&k),
            "delivered packet {k:?} is not in the log"
        );
    }
    assert_eq!(log.packets.len(), 600);
    // The packet ids run from 1 without a gap and in order, and nothing was lost.
    assert_eq!(log.ids, (1..=600).collect::<Vec<u64>>());
    assert!(log.losses.is_empty(), "{:?}", log.losses);
    assert_eq!(d.stop(), 0);

    // Stopped: packets are dropped again, none logged.
    send_and_wait(s, l, 620..640, SHORT);
    assert_eq!(l.count(), 600, "packets passed after fwlog stopped");
}

#[test]
fn queue_bypass_lets_packets_through_while_fwlog_is_not_running() {
    require_root!();
    let t = QueueSetup::new("qbypass", 4, true);
    let (out, l, s) = (&t.out, &t.l, &t.s);

    send_and_wait(s, l, 0..20, LONG);
    assert_eq!(
        l.count(),
        20,
        "--queue-bypass passes packets when nobody listens"
    );
    let before = l.keys();

    let d = t.start(&[]);
    send_and_wait(s, l, 20..220, LONG);
    assert_eq!(l.count(), 220);
    let log = settle(out, 200);
    assert_eq!(
        log.packets.len(),
        200,
        "exactly the packets sent while fwlog ran"
    );
    for k in l.keys().difference(&before) {
        assert!(
            log.packets.contains_key(k),
            "{k:?} passed while fwlog ran but is not logged"
        );
    }
    assert_eq!(d.stop(), 0);
    send_and_wait(s, l, 220..240, LONG);
    assert_eq!(l.count(), 240);
    assert_eq!(
        logged(out).packets.len(),
        200,
        "nothing logged after the stop"
    );
}

/// A tiny spool (two 4 KiB segments) and a burst of ~1 KB packets: the spool refuses records.
const TINY: [&str; 4] = ["--segment-size", "4KiB", "--spool-max", "8KiB"];
/// Packets 57600.. have payloads of 908+ bytes (see support::queue's key scheme).
const BIG: u32 = 57_600;

#[test]
fn a_full_spool_drops_packets_without_fail_open() {
    require_root!();
    let t = QueueSetup::new("qfull", 5, false);
    let (out, l, s) = (&t.out, &t.l, &t.s);
    let d = t.start(&TINY);
    send_and_wait(s, l, BIG..BIG + 1000, Duration::from_secs(3));
    let got = l.count() as u64;
    let log = settle(out, got as usize);
    for k in l.keys() {
        assert!(
            log.packets.contains_key(&k),
            "delivered packet {k:?} is not in the log"
        );
    }
    let err = {
        let st = d.stderr.clone();
        assert_eq!(d.stop(), 0);
        std::fs::read_to_string(st).unwrap()
    };
    let dropped = stderr_number(&err, " (spool refused)");
    assert!(dropped > 0, "the burst never filled the spool:\n{err}");
    assert_eq!(
        got + dropped,
        1000,
        "every packet passed or was dropped:\n{err}"
    );
    assert!(err.contains("cannot spool packets"), "{err}");
    assert_eq!(stderr_number(&err, " (--fail-open)"), 0);
}

#[test]
fn fail_open_lets_packets_through_and_reports_them_as_lost() {
    require_root!();
    let t = QueueSetup::new("qfailopen", 6, false);
    let (out, l, s) = (&t.out, &t.l, &t.s);
    let mut extra = TINY.to_vec();
    extra.push("--fail-open");
    let d = t.start(&extra);
    send_and_wait(s, l, BIG..BIG + 1000, LONG);
    assert_eq!(l.count(), 1000, "with --fail-open every packet passes");
    // A loss report is spooled when the spool takes records again, before the next packet:
    // trickle small packets until every packet of the burst is accounted for.
    let burst: Vec<_> = s
        .keys(BIG + 1000)
        .into_iter()
        .filter(|&(_, n)| n >= BIG)
        .map(|(k, _)| k)
        .collect();
    let mut i = 0;
    let lost = loop {
        let log = logged(out);
        let logged_burst = burst.iter().filter(|k| log.packets.contains_key(k)).count() as u64;
        let lost: u64 = log
            .losses
            .iter()
            .filter(|(c, _)| c == "spool-full")
            .map(|&(_, n)| n)
            .sum();
        if lost > 0 && logged_burst + lost == 1000 {
            break lost;
        }
        assert!(
            i < 100,
            "burst: {logged_burst} logged + {lost} in spool-full loss lines != 1000 (or no loss); stderr:\n{}",
            d.stderr_text()
        );
        send_and_wait(s, l, i..i + 1, SHORT);
        i += 1;
    };
    let err = {
        let st = d.stderr.clone();
        assert_eq!(d.stop(), 0);
        std::fs::read_to_string(st).unwrap()
    };
    assert_eq!(stderr_number(&err, " (--fail-open)"), lost, "{err}");
    assert_eq!(stderr_number(&err, " (spool refused)"), 0, "{err}");
}

#[test]
fn exactly_one_of_group_and_queue() {
    // A wrongly accepted command line would start a daemon: never wait for it for long.
    let run = |args: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(support::fwlog_bin())
            .arg("run")
            .args(args)
            .args(["--spool", dir.path().to_str().unwrap(), "--output", "-"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run fwlog");
        for _ in 0..250 {
            if child.try_wait().expect("try_wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait_with_output().expect("wait fwlog")
    };
    for (a, why) in [
        (&["--queue", "1", "--group", "2"][..], "cannot be used with"),
        (&[][..], "required"),
        (&["--group", "2", "--fail-open"][..], "cannot be used with"),
        (&["--fail-open"][..], "required"),
        (
            &["--queue", "1", "--user", "nobody"][..],
            "cannot be used with",
        ),
    ] {
        let o = run(a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "fwlog run {a:?} was accepted");
        assert!(err.contains(why), "fwlog run {a:?}: {err}");
    }
}

#[test]
fn socket_overflow_under_fail_open_is_counted_exactly() {
    require_root!();
    let t = QueueSetup::new("qoverflow", 8, false);
    let (out, l, s) = (&t.out, &t.l, &t.s);
    // A receive buffer of a few dozen packets: a burst overflows it; with --fail-open the
    // kernel lets the packets that do not fit through, and their ids are never seen.
    let extra = ["--rcvbuf", "16KiB", "--fail-open"];
    let d = t.start(&extra);
    let n = 5000;
    send_and_wait(s, l, 0..n, LONG);
    assert_eq!(
        l.count(),
        n as usize,
        "with --fail-open every packet passes"
    );
    // A gap shows when the next packet is read, or, at the very end of the burst, once the
    // queue has been idle for a second: wait for the accounting to close, with no more traffic.
    let end = std::time::Instant::now() + LONG;
    let (log, gaps) = loop {
        let log = logged(out);
        let gaps: u64 = log
            .losses
            .iter()
            .filter(|(c, _)| c == "seq-gap")
            .map(|&(_, k)| k)
            .sum();
        if log.packets.len() as u64 + gaps >= u64::from(n) || std::time::Instant::now() > end {
            break (log, gaps);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(gaps > 0, "the burst never overflowed the socket");
    assert!(
        log.losses.iter().any(|(c, _)| c == "enobufs"),
        "no enobufs line: {:?}",
        log.losses
    );
    assert_eq!(
        log.packets.len() as u64 + gaps,
        u64::from(n),
        "every packet is either logged or counted in a seq-gap line"
    );
    // Logged ids only go up, and the kernel numbered exactly the n packets.
    assert!(log.ids.windows(2).all(|w| w[0] < w[1]), "{:?}", log.ids);
    assert!(log.ids.last().is_some_and(|&id| id <= u64::from(n)));
    let err = {
        let st = d.stderr.clone();
        assert_eq!(d.stop(), 0);
        std::fs::read_to_string(st).unwrap()
    };
    assert_eq!(stderr_number(&err, " (socket overflow)"), gaps, "{err}");
}

#[test]
fn packets_from_another_namespace_carry_input_interface_kernel_time_and_family() {
    require_root!();
    let ns = NetNs::new("qveth");
    let (peer, dev) = ns.veth(41);
    support::queue::iptables(&ns, "-A INPUT -p udp --dport 9999 -j NFQUEUE --queue-num 9");
    let out6 = ns
        .command("ip6tables")
        .args("-A INPUT -p udp --dport 9999 -j NFQUEUE --queue-num 9".split_whitespace())
        .output()
        .expect("ip6tables");
    assert!(
        out6.status.success(),
        "{}",
        String::from_utf8_lossy(&out6.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let run = RunArgs::new(dir.path())
        .with(&["--queue", "9"])
        .output(Some("json"), "out.json");
    let out = run.path("out.json");
    let d = start(&ns, dir.path(), &run.args());

    let (r4, r6) = ns.enter(|| {
        let r4 = std::net::UdpSocket::bind("10.200.41.1:9999").expect("bind v4");
        let r6 = std::net::UdpSocket::bind("[fd00:200:41::1]:9999").expect("bind v6");
        (r4, r6)
    });
    for r in [&r4, &r6] {
        r.set_read_timeout(Some(LONG)).unwrap();
    }
    peer.enter(|| {
        let s4 = std::net::UdpSocket::bind("10.200.41.2:0").expect("bind");
        let s6 = std::net::UdpSocket::bind("[fd00:200:41::2]:0").expect("bind");
        s4.send_to(b"over-v4", "10.200.41.1:9999").expect("send v4");
        s6.send_to(b"over-v6", "[fd00:200:41::1]:9999")
            .expect("send v6");
    });
    let mut buf = [0u8; 64];
    let n = r4.recv(&mut buf).expect("the IPv4 packet passes");
    assert_eq!(&buf[..n], b"over-v4");
    let n = r6.recv(&mut buf).expect("the IPv6 packet passes");
    assert_eq!(&buf[..n], b"over-v6");

    // Neighbour discovery and the like are not queued (udp dport 9999 only): two lines.
    let mut lines = Vec::new();
    support::daemon::wait_for("two logged packets", LONG, || {
        lines = support::daemon::lines(&out);
        lines.len() >= 2
    });
    assert_eq!(d.stop(), 0);
    let objs: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let mut families: Vec<&str> = objs.iter().map(|o| o["family"].as_str().unwrap()).collect();
    families.sort();
    assert_eq!(families, ["ipv4", "ipv6"]);
    for o in &objs {
        assert_eq!(o["hook_name"], "input", "{o}");
        assert_eq!(
            o["group"], 9,
            "the group field carries the queue number: {o}"
        );
        assert_eq!(o["indev"]["name"], dev.as_str(), "{o}");
        // NFQUEUE sends the kernel's time only when the packet was stamped (some socket on
        // the machine asked for timestamps), else fwlog's receive time: either is labelled.
        assert!(
            o["time_source"] == "kernel" || o["time_source"] == "local",
            "{o}"
        );
        assert_eq!(o["transport"]["dst_port"], 9999, "{o}");
        assert!(
            o["mac"].is_string(),
            "the source hardware address is kept: {o}"
        );
    }
}
