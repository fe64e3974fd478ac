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

use support::daemon::{lines, send_udp, wait_for, Daemon};
use support::netns::NetNs;
use support::queue::{queue_rule, send_and_wait, settle, start, Listener, Sender};
use support::tmpfs::Tmpfs;

/// Fills the filesystem of `path` with one file until it is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0xAAu8; 4096];
    while f.write_all(&block).is_ok() {}
    while f.write_all(&block[..1]).is_ok() {}
}

/// The number just before the last occurrence of `before` (the queue's exit tally line).
fn number_before(text: &str, before: &str) -> u64 {
    let at = text
        .rfind(before)
        .unwrap_or_else(|| panic!("{before:?} not in stderr:\n{text}"));
    let head = text[..at].trim_end();
    let start = head
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    head[start..]
        .parse()
        .unwrap_or_else(|_| panic!("no number before {before:?} in:\n{text}"))
}

#[test]
fn queue_a_full_spool_filesystem_drops_the_batch_and_recovers() {
    require_root!();
    support::require_tool("mount");
    let ns = NetNs::new("qenospc");
    queue_rule(&ns, 7, false);
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("fs"), "1m");
    let spool = fs.path().join("spool");
    let out = dir.path().join("out.json");
    let out_arg = format!("json={}", out.display());
    let l = Listener::new(&ns);
    let s = Sender::new(&ns);
    let mut d = start(
        &ns,
        dir.path(),
        &[
            "--queue",
            "7",
            "--no-dns",
            "--segment-size",
            "64KiB",
            "--spool",
            spool.to_str().unwrap(),
            "--output",
            &out_arg,
        ],
    );
    send_and_wait(&s, &l, 0..50, Duration::from_secs(20));
    assert_eq!(l.count(), 50, "packets pass while there is room");

    let filler = fs.path().join("filler");
    fill(&filler);
    send_and_wait(&s, &l, 50..250, Duration::from_secs(3));
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "fwlog ended on a full spool filesystem:\n{}",
        d.stderr_text()
    );
    let passed_while_full = l.count() - 50;
    assert!(
        passed_while_full < 200,
        "the filesystem never filled:\n{}",
        d.stderr_text()
    );

    std::fs::remove_file(&filler).unwrap();
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
    let dropped = number_before(&err, " (spool refused)");
    assert!(dropped > 0, "{err}");
    assert_eq!(
        passed + dropped,
        300,
        "every packet passed or was dropped:\n{err}"
    );
    assert_eq!(number_before(&err, " (--fail-open)"), 0, "{err}");
    assert!(err.contains("room again"), "{err}");
}

const RULES: &str = "table inet t {\n chain o {\n  type filter hook output priority 0;\n  udp dport 9999 counter log prefix \"IF \" group 5\n }\n}\n";

#[test]
fn a_kernel_loss_report_dropped_by_a_full_filesystem_reaches_the_output() {
    require_root!();
    support::require_tool("mount");
    let ns = NetNs::new("lossfull");
    ns.nft(RULES);
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("fs"), "1m");
    let spool = fs.path().join("spool");
    let out = dir.path().join("out.json");
    let json = format!("json={}", out.display());
    let args = [
        "--group",
        "5",
        "--no-dns",
        "--segment-size",
        "64KiB",
        "--spool",
        spool.to_str().unwrap(),
        "--output",
        &json,
    ];
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
    let filler = fs.path().join("filler");
    fill(&filler);
    send_udp(&ns, 9999, 20..30);
    wait_for("the refusal", Duration::from_secs(20), || {
        d.stderr_text().contains("full")
    });
    std::thread::sleep(Duration::from_millis(300));
    std::fs::remove_file(&filler).unwrap();
    send_udp(&ns, 9999, 30..40);
    let restart = || {
        lines(&out)
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|o| o["event"] == "loss" && o["cause"] == "restart")
            .map(|o| o["count"].as_u64().unwrap_or(0))
            .collect::<Vec<_>>()
    };
    let mut got = Vec::new();
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while got.is_empty() && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        got = restart();
    }
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0);
    assert!(err.contains("records logged across a restart"), "{err}");
    assert_eq!(
        got,
        vec![10],
        "the restart report is in the output once, with its count:\n{err}"
    );
    let full: u64 = lines(&out)
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|o| o["event"] == "loss" && o["cause"] == "spool-full")
        .map(|o| o["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(full, 10, "the refused packets are reported too: {err}");
}
