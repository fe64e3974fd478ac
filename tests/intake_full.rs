//! A full spool filesystem seen from intake, in both modes, against the real kernel: the spool
//! lives on a small tmpfs that the test fills with a file and empties again.
//!
//! - `--queue`: a commit the full filesystem refuses drops that batch's packets (the verdict
//!   policy of fwlog(8)), fwlog keeps running, and once there is room packets pass and are
//!   logged again; every packet sent either passed and is logged, or was dropped and counted.
//! - NFLOG: a kernel loss report that was in a batch the full filesystem dropped still reaches
//!   the output stream once there is room.

mod support;

use std::path::Path;
use std::time::Duration;

use support::daemon::{lines, send_udp, wait_for, Daemon, RunArgs};
use support::netns::NetNs;
use support::queue::{queue_rule, send_and_wait, settle, start, stderr_number, Listener, Sender};
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

#[test]
fn queue_a_full_spool_filesystem_drops_the_batch_and_recovers() {
    require_root!();
    let (ns, dir, fs, args) = on_small_fs("qenospc");
    queue_rule(&ns, 7, false);
    let out = dir.path().join("out.json");
    let l = Listener::new(&ns);
    let s = Sender::new(&ns);
    let mut d = start(&ns, dir.path(), &args.arg("--queue").arg("7").args());
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

const RULES: &str = "table inet t {\n chain o {\n  type filter hook output priority 0;\n  udp dport 9999 counter log prefix \"IF \" group 5\n }\n}\n";

#[test]
fn a_kernel_loss_report_dropped_by_a_full_filesystem_reaches_the_output() {
    require_root!();
    let (ns, dir, fs, args) = on_small_fs("lossfull");
    ns.nft(RULES);
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
