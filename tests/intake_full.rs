//! A full spool filesystem seen from intake, in both modes, against the real kernel: the spool
//! lives on a small tmpfs that the test fills with a file and empties again.
//!
//! - `--queue`: a commit the full filesystem refuses drops that batch's packets (the verdict
//!   policy of fwlog(8)), fwlog keeps running, and once there is room packets pass and are
//!   logged again; every packet sent either passed and is logged, or was dropped and counted.
//!   With `--fail-open` every packet passes, and each is logged or counted in a `spool-full`
//!   loss line.
//! - NFLOG: a kernel loss report that was in a batch the full filesystem dropped still reaches
//!   the output stream once there is room.

mod support;

use std::path::Path;
use std::time::Duration;

use support::daemon::{lines, send_udp, wait_for, Daemon, RunArgs};
use support::netns::NetNs;
use support::queue::{
    logged, queue_rule, send_and_wait, settle, start, stderr_number, Listener, Sender,
};
use support::tmpfs::Tmpfs;

/// A namespace, a temp dir with a 1 MiB tmpfs in it, and `fwlog run` arguments with the spool
/// on the tmpfs (64 KiB segments) and a JSON output beside it, `DIR/out.json`; the test adds
/// the source.
fn on_small_fs(tag: &str) -> (NetNs, tempfile::TempDir, Tmpfs, RunArgs) {
    support::require_tool("mount");
    let ns = NetNs::new(tag);
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("fs"), "1m");
    let out = format!("json={}", dir.path().join("out.json").display());
    let args = RunArgs::new(fs.path())
        .arg("--segment-size")
        .arg("64KiB")
        .arg("--output")
        .arg(out);
    (ns, dir, fs, args)
}

/// The counts of the loss lines of `cause` in the JSON output `out`.
fn losses(out: &Path, cause: &str) -> Vec<u64> {
    let mut counts = Vec::new();
    for line in lines(out) {
        let Ok(o) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if o["event"] == "loss" && o["cause"] == cause {
            counts.push(o["count"].as_u64().unwrap_or(0));
        }
    }
    counts
}

/// `fwlog run --queue Q EXTRA` on a small filesystem, with a queue rule, a listener and a
/// sender in its namespace.
struct QueueRig {
    fs: Tmpfs,
    out: std::path::PathBuf,
    l: Listener,
    s: Sender,
    d: Daemon,
    _ns: NetNs,
    _dir: tempfile::TempDir,
}

fn queue_rig(tag: &str, q: u16, extra: &[&str]) -> QueueRig {
    let (ns, dir, fs, mut args) = on_small_fs(tag);
    queue_rule(&ns, q, false);
    args = args.arg("--queue").arg(q.to_string());
    for a in extra {
        args = args.arg(*a);
    }
    QueueRig {
        out: dir.path().join("out.json"),
        l: Listener::new(&ns),
        s: Sender::new(&ns),
        d: start(&ns, dir.path(), &args.args()),
        fs,
        _ns: ns,
        _dir: dir,
    }
}

#[test]
fn queue_a_full_spool_filesystem_drops_the_batch_and_recovers() {
    require_root!();
    let QueueRig {
        fs,
        out,
        l,
        s,
        mut d,
        _ns,
        _dir,
    } = queue_rig("qenospc", 7, &[]);
    send_and_wait(&s, &l, 0..50, Duration::from_secs(20));
    assert_eq!(l.count(), 50, "packets pass while there is room");

    let passed_while_full = fs.while_full(|| {
        send_and_wait(&s, &l, 50..250, Duration::from_secs(3));
        let alive = d.child.try_wait().unwrap().is_none();
        assert!(alive, "fwlog ended on a full spool:\n{}", d.stderr_text());
        l.count() - 50
    });
    assert!(passed_while_full < 200, "never full:\n{}", d.stderr_text());
    send_and_wait(&s, &l, 250..300, Duration::from_secs(20));
    let passed = l.count() as u64;
    assert_eq!(
        passed as usize,
        passed_while_full + 100,
        "packets pass again once there is room:\n{}",
        d.stderr_text()
    );
    let log = settle(&out, passed as usize);
    for k in l.keys() {
        assert!(
            log.packets.contains_key(&k),
            "delivered packet {k:?} is not in the log"
        );
    }
    d.signal(libc::SIGTERM);
    let code = d.wait(Duration::from_secs(20));
    let err = d.stderr_text();
    assert_eq!(code, 0, "{err}");
    // Every packet passed or was dropped, some were dropped, none passed unlogged.
    let dropped = stderr_number(&err, " (spool refused)");
    let unlogged = stderr_number(&err, " (--fail-open)");
    assert_eq!(
        (passed + dropped, dropped > 0, unlogged),
        (300, true, 0),
        "{err}"
    );
    assert!(err.contains("room again"), "{err}");
}

#[test]
fn queue_fail_open_passes_what_a_full_filesystem_refused_and_reports_it_as_lost() {
    require_root!();
    let mut r = queue_rig("qenospcopen", 8, &["--fail-open"]);
    let (s, l) = (&r.s, &r.l);
    r.fs.while_full(|| send_and_wait(s, l, 0..200, Duration::from_secs(20)));
    send_and_wait(s, l, 200..250, Duration::from_secs(20));
    assert_eq!(l.count(), 250, "with --fail-open every packet passes");
    // Every packet is logged or counted in a spool-full loss line (the report goes out once
    // the spool takes records again).
    let mut seen = (0, 0);
    for _ in 0..100 {
        let log = logged(&r.out);
        let lost: u64 = log
            .losses
            .iter()
            .filter(|(c, _)| c == "spool-full")
            .map(|(_, n)| n)
            .sum();
        seen = (log.packets.len() as u64, lost);
        if seen.0 + seen.1 == 250 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    r.d.signal(libc::SIGTERM);
    let code = r.d.wait(Duration::from_secs(20));
    let err = r.d.stderr_text();
    assert_eq!(code, 0, "{err}");
    let (printed, lost) = seen;
    assert!(lost > 0, "the filesystem never filled:\n{err}");
    assert_eq!(printed + lost, 250, "{err}");
    assert_eq!(stderr_number(&err, " (--fail-open)"), lost, "{err}");
    assert_eq!(stderr_number(&err, " (spool refused)"), 0, "{err}");
}

const RULES: &[&str] = &["udp dport 9999 counter log prefix \"IF \" group 5"];

#[test]
fn a_kernel_loss_report_dropped_by_a_full_filesystem_reaches_the_output() {
    require_root!();
    let (ns, dir, fs, args) = on_small_fs("lossfull");
    ns.output_rules(RULES);
    let args = args.group(5);
    let args = args.args();
    let spool = fs.path().join("spool");
    let out = dir.path().join("out.json");
    let d = Daemon::start(&ns, dir.path(), &args);
    send_udp(&ns, 9999, 0..20);
    wait_for("the first packets", Duration::from_secs(20), || {
        lines(&out).len() >= 20
    });
    assert_eq!(d.stop(), 0);
    // Pretend the previous run had spooled only up to an earlier number: the next packet is
    // then a restart gap of known size, reported in the first batch of the next run.
    let seq_file = spool.join("fwlog.seq_global");
    let last: u32 = std::fs::read_to_string(&seq_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::write(&seq_file, format!("{}\n", last - 10)).unwrap();

    let d = Daemon::start(&ns, dir.path(), &args);
    fs.while_full(|| {
        send_udp(&ns, 9999, 20..30);
        let refused = || d.stderr_text().contains("full");
        wait_for("the refusal", Duration::from_secs(20), refused);
        std::thread::sleep(Duration::from_millis(300));
    });
    send_udp(&ns, 9999, 30..40);
    let mut got = Vec::new();
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while got.is_empty() && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        got = losses(&out, "restart");
    }
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0);
    assert!(err.contains("records logged across a restart"), "{err}");
    assert_eq!(
        got,
        vec![10],
        "the restart report is in the output once, with its count:\n{err}"
    );
    let full: u64 = losses(&out, "spool-full").iter().sum();
    assert_eq!(full, 10, "the refused packets are reported too: {err}");
}
