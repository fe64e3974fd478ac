//! kill -9 while the daemon replays a large spool at start-up, where the output's batches are
//! written unsynced and synced together (the open span). Afterwards: every spooled packet is in
//! the output at least once (repeats only with the replayed mark), the output is whole JSON
//! lines (no fragment left in the middle), nothing is left in the spool, and at each kill the
//! torn-tail mark was at a line boundary, more than a batch before the end (it stays at the
//! oldest unsynced batch), and what the killed run had written before it was never printed
//! again (it had been synced and acknowledged).

mod support;

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use support::crash;
use support::daemon::{send_udp, RunArgs};
use support::netns::NetNs;

/// Packets spooled before the replay: some 90 MB of JSON or more, spans of 32 MiB.
const PACKETS: u32 = 300_000;
/// Each run is killed once it has written this much: past its first span's sync.
const KILL_AFTER: u64 = 52 << 20;

/// The `seq_global` of each whole JSON packet line in `bytes`.
fn packets_in(bytes: &[u8]) -> Vec<u64> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
        .filter(|o| o["event"] == "packet")
        .filter_map(|o| o["seq_global"].as_u64())
        .collect()
}

/// Wait until `out` holds at least `bytes`; false if the daemon's replay ended first.
fn grown_to(out: &Path, bytes: u64, spool: &Path) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(120) {
        if std::fs::metadata(out).is_ok_and(|m| m.len() >= bytes) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!(
        "the output did not reach {bytes} bytes; {} records unacknowledged",
        crash::unacked(spool)
    );
}

#[test]
fn kill_9_during_a_large_replay_loses_nothing_and_leaves_no_fragment() {
    require_root!();
    let ns = NetNs::new("rcrash");
    ns.output_rules(&["udp dport 9999 log prefix \"R \" group 5"]);
    let dir = tempfile::tempdir().unwrap();

    // Fill the spool: the output is /dev/full, so nothing is acknowledged.
    let fill = RunArgs::new(dir.path())
        .group(5)
        .output_to("json=/dev/full");
    let d = fill.start(&ns);
    for chunk in 0..(PACKETS / 1000) {
        send_udp(&ns, 9999, chunk * 1000..(chunk + 1) * 1000);
        std::thread::sleep(Duration::from_millis(15));
    }
    std::thread::sleep(Duration::from_millis(500));
    d.stop();
    let spooled = crash::unacked(&fill.spool());
    assert!(spooled as u32 >= PACKETS / 2, "only {spooled} spooled");

    let args = RunArgs::new(dir.path())
        .group(5)
        .output(Some("json"), "out.json");
    let out = args.path("out.json");
    // Per kill: the mark, and the packets the killed run wrote before it.
    let mut marked: Vec<(usize, BTreeSet<u64>)> = Vec::new();
    let mut kills = 0;
    for _ in 0..2 {
        let start = std::fs::metadata(&out).map_or(0, |m| m.len()) as usize;
        let d = args.spawn(&ns);
        assert!(grown_to(&out, start as u64 + KILL_AFTER, &args.spool()));
        d.kill9();
        kills += 1;
        let left = crash::unacked(&args.spool());
        assert!(left > 0, "the replay had ended before the kill");
        let f = File::open(&out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let Some(mark) = fwlog::sink::tail::recorded_start(&f) else {
            eprintln!("SKIP: no user xattrs on this filesystem");
            return;
        };
        let mark = mark as usize;
        assert!(
            start <= mark && mark <= bytes.len(),
            "mark {mark} outside what this run wrote ({start}..{})",
            bytes.len()
        );
        // An old-style mark would be at the last batch, at most a few MiB from the end.
        assert!(
            bytes.len() - mark > 8 << 20,
            "mark {mark} moved past unsynced batches ({} bytes)",
            bytes.len()
        );
        assert!(
            mark == 0 || bytes[mark - 1] == b'\n',
            "mark {mark} not at a line start"
        );
        eprintln!(
            "replay crash: kill {kills} at {} bytes, mark at {mark} ({} bytes unsynced or unacknowledged), {left} records left",
            bytes.len(),
            bytes.len() - mark
        );
        marked.push((mark, packets_in(&bytes[start..mark]).into_iter().collect()));
    }

    // The last run replays the rest and is stopped cleanly.
    let d = args.start(&ns);
    crash::wait_settled(
        "the output to settle",
        Duration::from_secs(120),
        crash::QUIET,
        || std::fs::metadata(&out).map_or(0, |m| m.len()),
    );
    assert_eq!(d.stop(), 0);
    assert_eq!(
        crash::unacked(&args.spool()),
        0,
        "records left in the spool"
    );

    // Every line whole JSON (json_output panics at a fragment), every packet accounted for.
    let (printed, gaps) = crash::json_output(&out, 0..=0);
    let seen: BTreeSet<u64> = printed.keys().copied().collect();
    crash::assert_accounted(&seen, &gaps, "printed");
    assert!(
        seen.len() + gaps.len() >= spooled,
        "{} packets and {} loss reports printed, {spooled} spooled",
        seen.len(),
        gaps.len()
    );
    let dups = crash::replayed_duplicates(&printed);
    // What a killed run had written before its mark was acknowledged: never printed after it.
    let all = std::fs::read(&out).unwrap();
    let mut before = 0;
    for (mark, synced) in &marked {
        let after: BTreeSet<u64> = packets_in(&all[*mark..]).into_iter().collect();
        let again: Vec<_> = synced.intersection(&after).take(5).collect();
        assert!(
            again.is_empty(),
            "printed before the mark at {mark} and again after it: {again:?}"
        );
        before += synced.len();
    }
    eprintln!(
        "replay crash: {spooled} spooled, {} printed, {dups} printed twice (replayed), {before} before a mark",
        seen.len()
    );
}
