//! Model-based crash testing on a simulated filesystem (see `simfs`).
//!
//! A random program of appends, commits, reads, acknowledgements, injected I/O failures ("the
//! process dies at the n-th filesystem call from now") and power losses runs against the spool,
//! while a model remembers every payload ever appended under each sequence number, which records
//! were reported durable (`Commit::durable`), and which acknowledgements returned `Ok`.
//! Checked throughout:
//!
//! - opening after any crash succeeds (and, if an injected failure interrupts an open, the next
//!   fault-free open succeeds);
//! - every record reported durable and not acknowledged is delivered, with its exact payload
//!   (no loss), and delivery order is strictly increasing;
//! - no record at or below an acknowledgement that returned `Ok` is ever delivered again;
//! - every delivered payload is one that was really appended under that sequence number;
//! - with bit rot injected (a byte flipped on the medium in a sealed segment: one with at least
//!   two successors, so that no crash can make it the last and its damage a "torn tail"), every
//!   durable record is still either delivered or inside a lost range the reader (and replay)
//!   reported in line, and without injected damage no durable record is ever reported lost.

mod simfs;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use fwlog_spool::{
    AppendError, FsyncPolicy, Item, Options, ReadOnlySpool, Reader, ReplayItem, Spool, Writer,
};
use proptest::prelude::*;
use simfs::SimFs;

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Commit,
    Read(usize),
    AckDelivered,
    /// The process dies at the n-th filesystem call from now.
    FailAfter(u64),
    /// Power loss; the following open is itself interrupted after n calls if `Some(n)`.
    Crash(u64, Option<u64>),
    /// The simulated clock moves on this many seconds (retention by age).
    Advance(u64),
    /// `Writer::tick`: seal an old active segment, delete expired acknowledged ones.
    Tick,
    /// Bit rot: flip a byte of a sealed segment on the medium.
    Corrupt(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..700).prop_map(Op::Append),
        3 => Just(Op::Commit),
        3 => (1usize..40).prop_map(Op::Read),
        2 => Just(Op::AckDelivered),
        1 => (0u64..30).prop_map(Op::FailAfter),
        1 => (any::<u64>(), proptest::option::weighted(0.3, 0u64..25))
            .prop_map(|(s, f)| Op::Crash(s, f)),
        1 => (0u64..90).prop_map(Op::Advance),
        2 => Just(Op::Tick),
        1 => any::<u64>().prop_map(Op::Corrupt),
    ]
}

#[derive(Default)]
struct Model {
    /// Every payload ever appended under each sequence number (numbers are reused after a crash
    /// loses undurable records).
    appended: HashMap<u64, Vec<Vec<u8>>>,
    /// Records reported durable and not yet known to be acknowledged.
    durable: BTreeMap<u64, Vec<u8>>,
    /// Highest acknowledgement that returned Ok.
    acked_ok: u64,
    /// Highest acknowledgement attempted (it may have become durable even if it failed).
    acked_tried: u64,
    /// Payload for seq in the current session, until committed.
    session: HashMap<u64, Vec<u8>>,
    last_delivered: u64,
    unique: u64,
    /// Damage was injected: durable records may be reported lost (never silently missing).
    corrupted: bool,
    /// The reader is shown only durable records (`FsyncPolicy::EveryCommit`): each record
    /// delivered is then held to the guarantees of a durable one from then on, so a crash that
    /// loses a record the reader saw (published before its sync) fails the run.
    delivered_are_durable: bool,
}

impl Model {
    fn check_lost(&mut self, first: u64, last: u64) -> Result<(), TestCaseError> {
        prop_assert!(first <= last, "empty lost range {first}-{last}");
        prop_assert!(
            first > self.last_delivered && first > self.acked_ok,
            "lost range {first}-{last} behind delivered {} / acked {}",
            self.last_delivered,
            self.acked_ok
        );
        if !self.corrupted {
            if let Some((&s, _)) = self.durable.range(first..=last).next() {
                prop_assert!(false, "durable record {s} reported lost without any damage");
            }
        }
        self.last_delivered = last;
        Ok(())
    }

    fn check_delivery(&mut self, seq: u64, data: &[u8]) -> Result<(), TestCaseError> {
        prop_assert!(
            seq > self.last_delivered,
            "order: {seq} after {}",
            self.last_delivered
        );
        prop_assert!(
            seq > self.acked_ok,
            "seq {seq} delivered again after ack up to {} was durable",
            self.acked_ok
        );
        let ok = self
            .appended
            .get(&seq)
            .is_some_and(|v| v.iter().any(|p| p == data));
        prop_assert!(ok, "seq {seq}: payload never appended under that number");
        if let Some(p) = self.durable.get(&seq) {
            prop_assert_eq!(
                p.as_slice(),
                data,
                "durable seq {} has another payload",
                seq
            );
        }
        // Nothing durable may have been skipped.
        let lo = self.last_delivered.max(self.acked_tried) + 1;
        if let Some((&lost, _)) = self.durable.range(lo..seq).next() {
            prop_assert!(false, "durable record {lost} lost (delivered {seq} next)");
        }
        self.last_delivered = seq;
        if self.delivered_are_durable {
            self.durable.entry(seq).or_insert_with(|| data.to_vec());
        }
        Ok(())
    }
}

struct Open {
    w: Writer,
    r: Reader,
}

fn options(policy: FsyncPolicy, max_bytes: u64) -> Options {
    Options {
        segment_bytes: 4096,
        max_bytes,
        fsync: policy,
        read_buffer_bytes: 4096,
        ..Options::default()
    }
}

/// Every commit by `w` (explicit, or implied by `tick` sealing a segment) moves the session's
/// records it covers into `durable`.
fn committed(m: &mut Model, durable: u64) {
    let done: Vec<u64> = m
        .session
        .keys()
        .copied()
        .filter(|&s| s <= durable)
        .collect();
    for s in done {
        let p = m.session.remove(&s).expect("listed");
        if s > m.acked_tried {
            m.durable.insert(s, p);
        }
    }
}

fn open(fs: &SimFs, opts: &Options, m: &mut Model) -> Result<Open, TestCaseError> {
    let dir = Path::new("/spool");
    let r = Spool::open_with_fs(Arc::new(fs.clone()), dir, opts.clone());
    let (w, r, rep) = match r {
        Ok(x) => x,
        Err(e) => {
            prop_assert!(fs.is_dead(), "open failed without an injected fault: {e}");
            return Err(TestCaseError::reject("interrupted open"));
        }
    };
    prop_assert!(rep.acked_seq >= m.acked_ok, "ack went backwards");
    prop_assert!(rep.acked_seq <= m.acked_tried, "ack from nowhere");
    // The ledger may hold any attempted value; from now on that is the floor.
    m.acked_ok = rep.acked_seq;
    // An attempted acknowledgement that did not reach the ledger must not hide losses.
    m.acked_tried = rep.acked_seq;
    m.durable = m.durable.split_off(&(rep.acked_seq + 1));
    m.last_delivered = rep.acked_seq;
    m.session.clear();
    Ok(Open { w, r })
}

/// Power loss followed by an open that must succeed (retrying once if an injected fault
/// interrupted it).
fn crash_and_open(
    fs: &SimFs,
    opts: &Options,
    m: &mut Model,
    seed: u64,
    fail_open: Option<u64>,
) -> Result<Open, TestCaseError> {
    fs.crash(seed);
    if let Some(n) = fail_open {
        fs.fail_after(n);
        match open(fs, opts, m) {
            Ok(o) => {
                // The open finished before the fault fired; disarm by crashing again.
                drop(o);
                fs.crash(seed.rotate_left(7));
            }
            Err(TestCaseError::Reject(_)) => fs.crash(seed.rotate_left(13)),
            Err(e) => return Err(e),
        }
    }
    check_read_only(fs, m)?;
    open(fs, opts, m)
}

/// Replay of the crashed state, before any writable open repairs it: it changes nothing, never
/// fails on contents, yields only real payloads in order, and includes every durable record above
/// the acknowledged position it reads.
fn check_read_only(fs: &SimFs, m: &Model) -> Result<(), TestCaseError> {
    let before = fs.mutating_ops();
    let ro = match ReadOnlySpool::open_with_fs(Arc::new(fs.clone()), "/spool") {
        Ok(ro) => ro,
        Err(e) => {
            // Only acceptable if the directory itself did not survive: then nothing was durable.
            let lo = m.acked_ok + 1;
            prop_assert!(
                m.durable.range(lo..).next().is_none(),
                "read-only open failed with durable records outstanding: {}",
                e
            );
            return Ok(());
        }
    };
    let acked = ro.acked();
    let mut prev = 0;
    let mut seen = Vec::new();
    let mut lost = Vec::new();
    let mut it = ro.records();
    while let Some(r) = it.next_item() {
        let r = match r.map_err(|e| TestCaseError::fail(format!("replay failed: {e}")))? {
            ReplayItem::Record(r) => r,
            ReplayItem::Lost(l) => {
                prop_assert!(l.first > prev && l.first <= l.last);
                prev = l.last;
                lost.push((l.first, l.last));
                continue;
            }
        };
        prop_assert!(r.seq > prev);
        let ok = m.appended.get(&r.seq).is_some_and(|v| v.contains(&r.data));
        prop_assert!(ok, "replay: seq {} has a payload never appended", r.seq);
        prop_assert_eq!(r.acked, r.seq <= acked);
        prev = r.seq;
        seen.push(r.seq);
    }
    for (&s, _) in m.durable.range(acked + 1..) {
        let reported = m.corrupted && lost.iter().any(|&(a, b)| a <= s && s <= b);
        prop_assert!(
            seen.binary_search(&s).is_ok() || reported,
            "replay misses durable record {} (seen {:?}, lost {:?}, files {:?})",
            s,
            seen,
            lost,
            fs.list()
        );
    }
    prop_assert_eq!(
        fs.mutating_ops(),
        before,
        "read-only replay modified the filesystem"
    );
    Ok(())
}

/// Bit rot in a sealed segment: one with at least two successors, so that no crash can make it
/// the last (where damage to the final record is indistinguishable from a torn tail). The
/// process goes on: returns false ("did not fail").
fn rot(fs: &SimFs, seed: u64, m: &mut Model) -> bool {
    let mut segs: Vec<_> = fs
        .list()
        .into_iter()
        .filter(|p| {
            p.parent() == Some(Path::new("/spool")) && p.extension().is_some_and(|e| e == "seg")
        })
        .collect();
    segs.sort();
    if segs.len() > 2 {
        let victim = &segs[(seed % (segs.len() as u64 - 2)) as usize];
        let len = fs.read(victim).map_or(0, |d| d.len() as u64);
        if len > 0 {
            fs.corrupt(victim, (seed >> 8) % len, 1 << ((seed >> 40) % 8));
            m.corrupted = true;
        }
    }
    false
}

fn run(ops: Vec<Op>, policy: FsyncPolicy, max_bytes: u64) -> Result<(), TestCaseError> {
    run_with(ops, options(policy, max_bytes))
}

fn run_with(ops: Vec<Op>, opts: Options) -> Result<(), TestCaseError> {
    let fs = SimFs::new();
    let mut m = Model {
        delivered_are_durable: opts.fsync == FsyncPolicy::EveryCommit,
        ..Model::default()
    };
    let mut o = Some(open(&fs, &opts, &mut m)?);
    for op in ops {
        let cur = o.as_mut().expect("always reopened");
        let failed = match op {
            Op::Append(len) => {
                m.unique += 1;
                let mut p = m.unique.to_le_bytes().to_vec();
                p.resize(8 + len, (m.unique % 251) as u8);
                match cur.w.append(&p) {
                    Ok(seq) => {
                        m.appended.entry(seq).or_default().push(p.clone());
                        m.session.insert(seq, p);
                        false
                    }
                    Err(AppendError::Full { .. }) => false,
                    Err(e) => {
                        prop_assert!(fs.is_dead(), "append failed: {e}");
                        true
                    }
                }
            }
            Op::Commit => match cur.w.commit() {
                Ok(c) => {
                    committed(&mut m, c.durable);
                    false
                }
                Err(e) => {
                    prop_assert!(fs.is_dead(), "commit failed: {e}");
                    true
                }
            },
            Op::Read(n) => {
                let mut failed = false;
                for _ in 0..n {
                    match cur.r.next_item() {
                        Ok(Some(Item::Record(rec))) => m.check_delivery(rec.seq, &rec.data)?,
                        Ok(Some(Item::Lost(l))) => m.check_lost(l.first, l.last)?,
                        Ok(None) => break,
                        Err(e) => {
                            prop_assert!(fs.is_dead(), "read failed: {e}");
                            failed = true;
                            break;
                        }
                    }
                }
                failed
            }
            Op::AckDelivered => {
                let upto = cur.r.delivered();
                m.acked_tried = m.acked_tried.max(upto);
                match cur.r.ack(upto) {
                    Ok(()) => {
                        m.acked_ok = m.acked_ok.max(upto);
                        false
                    }
                    Err(e) => {
                        prop_assert!(fs.is_dead(), "ack failed: {e}");
                        true
                    }
                }
            }
            Op::FailAfter(n) => {
                fs.fail_after(n);
                false
            }
            Op::Advance(secs) => {
                fs.advance(std::time::Duration::from_secs(secs));
                false
            }
            Op::Tick => match cur.w.tick() {
                Ok(c) => {
                    if let Some(c) = c {
                        committed(&mut m, c.durable);
                    }
                    false
                }
                Err(e) => {
                    prop_assert!(fs.is_dead(), "tick failed: {e}");
                    true
                }
            },
            Op::Corrupt(seed) => rot(&fs, seed, &mut m),
            Op::Crash(seed, fail_open) => {
                // Power goes out now: nothing the spool would do on drop happens.
                fs.fail_after(0);
                drop(o.take());
                o = Some(crash_and_open(&fs, &opts, &mut m, seed, fail_open)?);
                false
            }
        };
        if failed {
            // The process died: whatever the spool does on drop fails too (the fs is dead).
            drop(o.take());
            let seed = m.unique.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ fs.mutating_ops();
            o = Some(crash_and_open(&fs, &opts, &mut m, seed, None)?);
        }
    }
    // Final power loss: every durable, unacknowledged record must come back, in order.
    fs.fail_after(0);
    drop(o.take());
    let mut o = crash_and_open(&fs, &opts, &mut m, 0xdead_beef, None)?;
    while let Some(it) =
        o.r.next_item()
            .map_err(|e| TestCaseError::fail(e.to_string()))?
    {
        match it {
            Item::Record(rec) => m.check_delivery(rec.seq, &rec.data)?,
            Item::Lost(l) => m.check_lost(l.first, l.last)?,
        }
    }
    let lo = m.last_delivered.max(m.acked_tried) + 1;
    if let Some((&lost, _)) = m.durable.range(lo..).next() {
        prop_assert!(false, "durable record {lost} lost at the end");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("FWLOG_SPOOL_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn crash_anywhere_every_commit(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops, FsyncPolicy::EveryCommit, 1 << 30)?;
    }

    #[test]
    fn crash_anywhere_never_fsync(ops in proptest::collection::vec(op(), 1..120)) {
        // `Commit::durable` is still exact under this policy (it reports only synced records).
        run(ops, FsyncPolicy::Never, 1 << 30)?;
    }

    #[test]
    fn crash_anywhere_small_cap(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops, FsyncPolicy::EveryCommit, 12 * 1024)?;
    }

    /// Retention (by age and size, with a cap small enough that retained segments must give way)
    /// deletes only acknowledged records, whatever the clock and the crashes do.
    #[test]
    fn crash_anywhere_with_retention(ops in proptest::collection::vec(op(), 1..120)) {
        run_with(ops, Options {
            retain_age: Some(std::time::Duration::from_secs(120)),
            retain_bytes: Some(8 * 1024),
            ..options(FsyncPolicy::EveryCommit, 16 * 1024)
        })?;
    }

    /// With the in-memory hand-off on, bounded to a few chunks so that the reader mixes memory
    /// and disk: the same guarantees.
    #[test]
    fn crash_anywhere_with_handoff(ops in proptest::collection::vec(op(), 1..120)) {
        run_with(ops, Options {
            handoff_bytes: 200 * 1024,
            ..options(FsyncPolicy::EveryCommit, 1 << 30)
        })?;
    }

    /// The sync on the spool's own thread: commits report durability later, records reach the
    /// reader only once synced, and crashes at any point (a sync in flight included) lose
    /// nothing published or reported durable.
    #[test]
    fn crash_anywhere_background_sync(ops in proptest::collection::vec(op(), 1..120)) {
        run_with(ops, Options {
            background_sync: true,
            handoff_bytes: 200 * 1024,
            ..options(FsyncPolicy::EveryCommit, 1 << 30)
        })?;
    }

    /// The same with a cap small enough that writes and rollovers run out of room.
    #[test]
    fn crash_anywhere_background_sync_small_cap(ops in proptest::collection::vec(op(), 1..120)) {
        run_with(ops, Options {
            background_sync: true,
            ..options(FsyncPolicy::EveryCommit, 12 * 1024)
        })?;
    }

    #[test]
    fn crash_anywhere_with_retention_by_age_only(ops in proptest::collection::vec(op(), 1..120)) {
        run_with(ops, Options {
            retain_age: Some(std::time::Duration::from_secs(60)),
            ..options(FsyncPolicy::Never, 1 << 30)
        })?;
    }
}

/// After a failed write the writer refuses further work (appending behind a partial batch would
/// strand later records behind unreadable bytes); reopening recovers.
#[test]
fn failed_write_poisons_writer_until_reopen() {
    let fs = SimFs::new();
    let opts = options(FsyncPolicy::EveryCommit, 1 << 30);
    let (mut w, r, _) = Spool::open_with_fs(Arc::new(fs.clone()), "/spool", opts.clone()).unwrap();
    w.append(b"one").unwrap();
    w.commit().unwrap();
    w.append(b"two").unwrap();
    fs.fail_after(0);
    let e = w.commit().unwrap_err();
    assert!(e.to_string().contains("simulated I/O failure"), "{e}");
    fs.crash(7); // un-dead the filesystem; the old handles are now stale
    assert!(matches!(w.commit(), Err(fwlog_spool::Error::Poisoned(_))));
    assert!(matches!(
        w.append(b"three"),
        Err(AppendError::Spool(fwlog_spool::Error::Poisoned(_)))
    ));
    drop((w, r));
    let (mut w, mut r, rep) = Spool::open_with_fs(Arc::new(fs.clone()), "/spool", opts).unwrap();
    assert_eq!(rep.next_seq, 2);
    assert_eq!(w.append(b"two again").unwrap(), 2);
    w.commit().unwrap();
    assert_eq!(r.next().unwrap().unwrap().data, b"one");
    assert_eq!(r.next().unwrap().unwrap().data, b"two again");
}
