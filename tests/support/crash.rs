//! What the kill -9 tests share: their seed and round count, the flood the kills land in,
//! when each kill lands, waiting for the output to settle, and the accounting that judges the
//! result: every `seq_global` from the first to the last is stored (a repeat only with the
//! replayed mark) or inside a reported loss range, and nothing is left unacknowledged.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::daemon::{lines, wait_for};
use super::netns::NetNs;
use super::rng::Lcg;

/// `seq_global` -> the replayed mark of each time it was printed.
pub type Printed = BTreeMap<u64, Vec<bool>>;

/// `FWLOG_CRASH_ROUNDS`, or `default`.
pub fn rounds(default: usize) -> usize {
    std::env::var("FWLOG_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A generator seeded from `FWLOG_CRASH_SEED` or the process id; says which, so a failure
/// can be repeated.
pub fn seeded(what: &str, rounds: usize) -> Lcg {
    let seed = std::env::var("FWLOG_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64);
    eprintln!("{what}: {rounds} rounds, seed {seed} (FWLOG_CRASH_SEED to repeat)");
    Lcg(seed)
}

/// Datagrams `pkt-N` to 127.0.0.1:9999 from inside `ns`, 20 every half millisecond, until
/// `stop` is set; returns how many were sent.
pub fn flood(ns: &NetNs, stop: &AtomicBool) -> u64 {
    ns.enter(|| {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..20 {
                let _ = sock.send_to(format!("pkt-{n}").as_bytes(), "127.0.0.1:9999");
                n += 1;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        n
    })
}

/// How long round `round` lets the daemon run before the kill: a third of the kills land in
/// start-up (before or while the spool opens).
pub fn kill_delay(rng: &mut Lcg, round: usize) -> Duration {
    Duration::from_millis(if round.is_multiple_of(3) {
        rng.next(30)
    } else {
        50 + rng.next(400)
    })
}

/// How long a run's output must stay unchanged to count as settled before a test stops it and
/// checks that everything was printed: the printing thread runs below ordinary processes, and
/// on a loaded machine it went 500 ms without a line while records were still spooled.
pub const QUIET: Duration = Duration::from_secs(2);

/// Waits until `count` (polled every `poll`) is above 0 and no longer grows; returns it.
pub fn wait_settled(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut count: impl FnMut() -> u64,
) -> u64 {
    let mut last = 0;
    wait_for(what, timeout, || {
        std::thread::sleep(poll);
        let n = count();
        let settled = n == last && n > 0;
        last = n;
        settled
    });
    last
}

/// Records in the spool at `spool` that were not acknowledged.
pub fn unacked(spool: &Path) -> usize {
    fwlog_spool::ReadOnlySpool::open(spool)
        .unwrap()
        .records()
        .filter(|r| r.as_ref().is_ok_and(|r| !r.acked))
        .count()
}

/// How many times packets were printed again; panics at a repeat without the replayed mark.
pub fn replayed_duplicates(printed: &Printed) -> usize {
    let mut dups = 0;
    for (g, marks) in printed {
        if marks.len() > 1 {
            dups += marks.len() - 1;
            assert!(
                marks[1..].iter().all(|&r| r),
                "seq_global {g} printed again without the replayed mark"
            );
        }
    }
    dups
}

/// The values from the lowest to the highest of `seen` that are neither in it nor inside one
/// of the `gaps` ranges.
pub fn uncovered(seen: &BTreeSet<u64>, gaps: &[(u64, u64)]) -> Vec<u64> {
    let (Some(&first), Some(&last)) = (seen.first(), seen.last()) else {
        panic!("nothing stored");
    };
    (first..=last)
        .filter(|g| !seen.contains(g) && !gaps.iter().any(|&(a, b)| a <= *g && *g <= b))
        .collect()
}

/// Panics unless every `seq_global` between the lowest and highest `seen` is `seen` or inside
/// a loss range, naming the first few that are neither, with what surrounds them (`what`:
/// "printed", "a row").
pub fn assert_accounted(seen: &BTreeSet<u64>, gaps: &[(u64, u64)], what: &str) {
    let missing = uncovered(seen, gaps);
    if let Some(&m) = missing.first() {
        let before = seen.range(..m).next_back();
        let after = seen.range(m..).next();
        let near: Vec<_> = gaps
            .iter()
            .filter(|&&(a, b)| b + 2000 >= m && a <= m + 2000)
            .collect();
        panic!(
            "{} seq_global values neither {what} nor covered by a loss report, e.g. {:?}; {what} around the first: {before:?} .. {after:?}; loss reports nearby: {near:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
    }
}

/// A JSON output's packets (by `seq_global`, with their replayed marks) and the `seq_global`
/// ranges its loss reports cover; panics at a line that is neither.
///
/// A packet with neither `seq` nor `seq_global` is allowed, as many as `unnumbered` says:
/// the kernel makes a group's instance visible to the logging path as it binds it and applies
/// the flags of the same configuration message (SEQ, SEQ_GLOBAL) only after that, so a packet
/// logged in that instant of a (re)start under a flood goes out with the default flags, and
/// takes no `seq_global` number either (the kernel counts only records that carry one).
pub fn json_output(
    out: &Path,
    unnumbered: std::ops::RangeInclusive<usize>,
) -> (Printed, Vec<(u64, u64)>) {
    let mut printed = Printed::new();
    let mut gaps: Vec<(u64, u64)> = Vec::new();
    let mut without = 0;
    for l in lines(out) {
        let o: serde_json::Value =
            serde_json::from_str(&l).unwrap_or_else(|e| panic!("not a JSON line {l:?}: {e}"));
        if o["event"] == "loss" {
            if let (Some(a), Some(b)) = (
                o["seq_global"]["first"].as_u64(),
                o["seq_global"]["last"].as_u64(),
            ) {
                gaps.push((a, b));
            }
            continue;
        }
        assert_eq!(o["event"], "packet", "{l}");
        if o["seq"].is_null() && o["seq_global"].is_null() {
            without += 1;
            continue;
        }
        let g = o["seq_global"]
            .as_u64()
            .unwrap_or_else(|| panic!("a packet without seq_global: {l}"));
        printed.entry(g).or_default().push(o["replayed"] == true);
    }
    assert!(
        unnumbered.contains(&without),
        "{without} packets without sequence numbers (expected {unnumbered:?})"
    );
    (printed, gaps)
}

/// A database's `packets` table after a crash test: each packet stored once, judged by its
/// payload (the flood's `pkt-N` are unique; the output needs `--db-payload`), each stored
/// `seq_global` once, and at most `unnumbered_max` rows without one (a packet logged while a
/// start binds its group under the flood: see [`json_output`]). `count` runs a `SELECT count ...` on
/// the database. Returns the rows and how many have no `seq_global`.
pub fn assert_rows_once(count: impl Fn(&str) -> u64, unnumbered_max: u64) -> (u64, u64) {
    let rows = count("SELECT count(*) FROM packets");
    assert_eq!(
        rows,
        count("SELECT count(DISTINCT payload) FROM packets"),
        "a packet stored twice (or rows without --db-payload's payload)"
    );
    assert_eq!(
        count("SELECT count(seq_global) FROM packets"),
        count("SELECT count(DISTINCT seq_global) FROM packets"),
        "a seq_global stored twice"
    );
    let unnumbered = count("SELECT count(*) FROM packets WHERE seq_global IS NULL");
    assert!(
        unnumbered <= unnumbered_max,
        "{unnumbered} rows without seq_global (at most {unnumbered_max})"
    );
    (rows, unnumbered)
}
