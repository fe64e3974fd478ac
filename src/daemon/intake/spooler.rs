//! The spool side of intake, shared by both receivers: append packets and loss reports in
//! arrival order, commit, and account for whatever the spool did not take.
//!
//! Invariants:
//! - Every packet handed to [`Spooler::packet`] ends up exactly once in `committed` (its record
//!   is in a commit) or in `refused` (the spool did not take it: refused at append, or dropped
//!   with an uncommitted batch by a full filesystem). The receiver settles both lists after
//!   each commit attempt (NFQUEUE gives the verdicts there).
//! - A refused packet that is *lost* (NFLOG: it was logged and is not in the spool; NFQUEUE
//!   with `--fail-open`: it passed unlogged) is counted (`lost_spool_full`) and reported in the
//!   stream as one `spool-full` loss record, at most once per [`FULL_REPORT_EVERY`]. A refused
//!   packet NFQUEUE drops is not lost (it never passed): it is counted by the receiver.
//! - A kernel loss report (gap, ENOBUFS, restart) that a full filesystem dropped with its batch
//!   is owed: it is appended again, before anything newer, as soon as the spool may have room
//!   (the same once-a-second retry as the spool-full report), so it reaches the output stream.
//! - Every commit goes through [`Spooler::settle`]: the one place a commit's outcome is handled
//!   (and where a hook after a durable commit belongs). A commit's records are `committed`
//!   once it reports them durable (`Commit::durable`): with the spool's sync on its own thread
//!   that may be a later commit's report; until then a full filesystem found by their sync
//!   still drops them, and they are counted and reported as `spool-full` loss like any other.
//!   NFQUEUE and hold mode commit with `Writer::commit_wait`: verdicts wait for durability as
//!   before, and so do hold mode's commits (its datagrams are dequeued once written, as before).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fwlog_spool::{AppendError, Commit, Error as SpoolError, RecordBuf, Writer};
use tokio::sync::Notify;

use crate::counters::{bump, Counters};
use crate::daemon::positions::Positions;
use crate::nflog::loss::{Cause, LossEvent};

/// Least time between two spool-full reports (and between retries while the spool is full).
pub const FULL_REPORT_EVERY: Duration = Duration::from_secs(1);

/// What a receiver's refused packets mean, and how intake talks about them on stderr.
pub struct Policy {
    /// Prefix of every stderr line (`fwlog: ` or `fwlog: queue N: `).
    pub prefix: String,
    /// Refused packets are lost (counted and reported in the stream), not dropped.
    pub refused_are_lost: bool,
    /// What happens to refused packets, as in "…; {consequence} until there is room".
    pub consequence: &'static str,
    /// How the room-again line says what happened to them ("were lost").
    pub outcome: &'static str,
    /// The group of spool-full reports (the queue number; none for NFLOG).
    pub group: Option<u16>,
}

/// Packets refused while the spool was full and not yet reported in the stream.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct FullLoss {
    pub count: u64,
    /// NFLOG global sequence numbers of the first and last of them, when known.
    pub first: Option<u32>,
    pub last: Option<u32>,
}

impl FullLoss {
    fn add(&mut self, seq_global: Option<u32>) {
        self.count += 1;
        self.first = self.first.or(seq_global);
        self.last = seq_global.or(self.last);
    }

    /// `self` followed by the later `next`.
    fn then(self, next: FullLoss) -> FullLoss {
        FullLoss {
            count: self.count + next.count,
            first: self.first.or(next.first),
            last: next.last.or(self.last),
        }
    }
}

/// A record appended since the last commit.
enum Appended<T> {
    Packet(T, Option<u32>),
    FullReport(FullLoss),
    Loss(LossEvent),
}

/// See the module docs.
pub struct Spooler<T> {
    pub writer: Writer,
    pub counters: Arc<Counters>,
    policy: Policy,
    /// Oldest first; a deque, since `stored` takes a prefix while the rest waits for its sync.
    appended: VecDeque<(u64, Appended<T>)>,
    /// Committed since the receiver last settled.
    pub committed: Vec<T>,
    /// Refused since the receiver last settled.
    pub refused: Vec<T>,
    /// The lowest spool sequence number a full filesystem cut back since the receiver last
    /// settled: numbers from it on are reused by later records.
    pub rewound: Option<u64>,
    /// Lost and not yet reported in the stream.
    full: FullLoss,
    /// Kernel loss reports a full filesystem dropped, oldest first.
    owed: Vec<LossEvent>,
    /// When a report (or owed loss) was last appended: the rate limit.
    reported_at: Option<Instant>,
    /// A refusal was announced on stderr (when), and the room-again line is owed.
    announced: Option<Instant>,
    /// Packets refused since the announcement.
    episode: u64,
    scratch: Vec<u8>,
    /// Packets appended and not yet added to `counters.spooled` (added at the next
    /// [`Spooler::settle`], every round: one atomic addition per round, not per packet).
    spooled: u64,
    /// NFLOG hold mode (the socket kept in the fd store): `fwlog.nflog_positions`. Any append
    /// that seals a segment publishes what the current datagram appended so far, which the
    /// processing loop may print, acknowledge and delete before the datagram is written out,
    /// so it is checkpointed first (see `positions`).
    pub held: Option<Positions>,
}

impl<T> Spooler<T> {
    pub fn new(writer: Writer, counters: Arc<Counters>, wake: Arc<Notify>, policy: Policy) -> Self {
        // The processing loop is woken whenever records are shown to it: on this thread, or on
        // the spool's sync thread when their sync ends (not at the commit that wrote them).
        writer.set_publish_hook(move || wake.notify_one());
        Spooler {
            writer,
            counters,
            policy,
            appended: VecDeque::new(),
            committed: Vec::new(),
            refused: Vec::new(),
            rewound: None,
            full: FullLoss::default(),
            owed: Vec::new(),
            reported_at: None,
            announced: None,
            episode: 0,
            scratch: Vec::with_capacity(256),
            spooled: 0,
            held: None,
        }
    }

    /// Hold mode: checkpoint before an append of `len` bytes that seals the spool's segment.
    /// Returns whether part of the current datagram is about to be published.
    fn before_append(&mut self, len: usize) -> bool {
        let Some(p) = &mut self.held else {
            return false;
        };
        self.writer.seals_before(len) && p.before_seal(self.writer.next_seq().saturating_sub(1))
    }

    /// Lost packets not yet reported in the stream.
    pub fn unreported(&self) -> FullLoss {
        self.full
    }

    /// How far the NFLOG global sequence numbers are accounted for in the spool, given that
    /// `last` is the last one received: not beyond an owed kernel loss report nor a lost packet
    /// not yet reported (if this run never spools their report, the next one sees them as a
    /// restart gap).
    pub fn accounted_upto(&self, last: Option<u32>) -> Option<u32> {
        if let Some(a) = self.owed.iter().find_map(|e| e.seq_global.map(|r| r.0)) {
            return Some(a.wrapping_sub(1));
        }
        if self.full.count > 0 {
            return self.full.first.map(|f| f.wrapping_sub(1));
        }
        last
    }

    /// Append a packet's record; `seq_global` locates it in a spool-full report if refused.
    pub fn packet(&mut self, rec: &[u8], token: T, seq_global: Option<u32>) {
        let group_seq = match self.held {
            Some(_) => crate::capture::scan_group_seq(rec),
            None => None,
        };
        self.packet_scanned(rec, token, seq_global, group_seq);
    }

    /// [`Spooler::packet`] for a caller that has scanned the record already: `group_seq` is
    /// its group and NFULA_SEQ (what hold mode's positions need).
    pub fn packet_scanned(
        &mut self,
        rec: &[u8],
        token: T,
        seq_global: Option<u32>,
        group_seq: Option<(u16, u32)>,
    ) {
        let fill = |b: &mut RecordBuf<'_>| b.extend_from_slice(rec);
        self.packet_with(rec.len(), fill, token, seq_global, group_seq);
    }

    /// [`Spooler::packet_scanned`] for a record of `len` bytes that `fill` builds straight
    /// into the spool writer's buffer ([`Writer::append_with`]).
    pub fn packet_with(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut RecordBuf<'_>),
        token: T,
        seq_global: Option<u32>,
        group_seq: Option<(u16, u32)>,
    ) {
        self.catch_up(false);
        let sealing = self.before_append(len);
        match self.writer.append_with(len, fill) {
            Ok(seq) => {
                self.spooled += 1;
                self.appended
                    .push_back((seq, Appended::Packet(token, seq_global)));
                if let (Some(p), Some((g, s))) = (&mut self.held, group_seq) {
                    p.appended(g, s);
                }
                if sealing {
                    failpoint_kill_after_seal();
                }
            }
            Err(e) => {
                if let AppendError::Spool(SpoolError::NoSpace { dropped, .. }) = &e {
                    self.dropped(*dropped);
                }
                self.announce(&format!("cannot spool packets ({e})"));
                self.refuse(token, seq_global);
            }
        }
    }

    /// Count a loss the receiver noticed and append its report, in line with the packets.
    pub fn loss(&mut self, ev: LossEvent) {
        let c = &self.counters;
        match ev.cause {
            Cause::SeqGap => bump(&c.lost_seq_gap, ev.count),
            Cause::Enobufs => bump(&c.enobufs, 1),
            Cause::Restart => bump(&c.lost_restart, ev.count),
            Cause::SpoolFull => bump(&c.lost_spool_full, ev.count),
            Cause::Corrupt => bump(&c.lost_other, ev.count),
        }
        self.catch_up(false);
        self.append_loss(ev);
    }

    /// Once per round: report refused packets and retry owed loss reports when due, even if no
    /// packet follows them (the last burst before traffic stops).
    pub fn round(&mut self) {
        self.catch_up(false);
    }

    /// Write the appended records to the file now, uncommitted (hold mode).
    pub fn write_out(&mut self) -> Result<(), String> {
        let r = self.writer.write_out().map(|()| None);
        self.settle(r, "spool write")
    }

    /// Commit now (`every_round`) or when due; then [`Spooler::settle`]. NFQUEUE (every round:
    /// its verdicts) and hold mode (its positions) wait for the commit's sync; NFLOG's normal
    /// mode does not (the spool syncs on its own thread, `Options::background_sync`), and its
    /// records count as stored once a later commit reports them durable.
    pub fn commit(&mut self, every_round: bool) -> Result<Option<Commit>, String> {
        let r = if every_round || (self.held.is_some() && self.writer.commit_due()) {
            self.writer.commit_wait().map(Some)
        } else {
            self.writer.commit_if_due()
        };
        let c = r.as_ref().ok().copied().flatten();
        self.settle(r, "spool commit").map(|()| c)
    }

    /// Retention upkeep (a no-op without --retain-for); may commit by sealing a segment.
    pub fn tick(&mut self) -> Result<Option<Commit>, String> {
        let r = self.writer.tick();
        let c = r.as_ref().ok().copied().flatten();
        self.settle(r, "spool upkeep").map(|()| c)
    }

    /// At exit: report what is still unreported, commit, and note what the spool holds.
    pub fn finish(&mut self) -> Result<Option<Commit>, String> {
        self.catch_up(true);
        let r = self.writer.commit_wait().map(Some);
        let c = r.as_ref().ok().copied().flatten();
        let r = self.settle(r, "spool commit at exit");
        // Intake commits after the processing loop has ended: what the exit line calls
        // pending is what the spool holds now.
        self.counters
            .pending_at_exit
            .store(self.writer.stats().pending_records, Ordering::Relaxed);
        r.map(|()| c)
    }

    /// The outcome of anything that writes (a commit, `tick`, `write_out`). A full filesystem
    /// is not an error: what it dropped is accounted for, and intake goes on. Any other error
    /// is fatal; the packets appended since the last commit are then `refused` (not stored).
    pub fn settle(
        &mut self,
        r: Result<Option<Commit>, SpoolError>,
        what: &str,
    ) -> Result<(), String> {
        self.count_spooled();
        match r {
            // The processing loop is woken by the spool's publish hook, when the records are
            // shown to it (at once, or when their sync ends).
            Ok(Some(c)) => {
                self.stored(c.durable);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(SpoolError::NoSpace { dropped, .. }) => {
                self.dropped(dropped);
                Ok(())
            }
            Err(e) => {
                // A sync that ended before the failing one may have published some: those are
                // stored (the processing loop prints them), not lost.
                self.stored(self.writer.position().durable);
                for (_, a) in std::mem::take(&mut self.appended) {
                    if let Appended::Packet(t, _) = a {
                        if self.policy.refused_are_lost {
                            bump(&self.counters.lost_other, 1);
                        }
                        self.refused.push(t);
                    }
                }
                Err(format!("{what}: {e}"))
            }
        }
    }

    /// Everything appended up to `durable` is stored: durable, and shown to the processing
    /// loop. The rest stays until a later commit reports it (or a full filesystem drops it).
    fn stored(&mut self, durable: u64) {
        let mut reported = 0;
        let mut any = false;
        let n = self.appended.partition_point(|(seq, _)| *seq <= durable);
        for (_, a) in self.appended.drain(..n) {
            any = true;
            match a {
                Appended::Packet(t, _) => self.committed.push(t),
                Appended::FullReport(f) => reported += f.count,
                Appended::Loss(_) => {}
            }
        }
        let Some(at) = self.announced else { return };
        // Say so once the refused packets are reported (or, when they are not lost, once a
        // record is stored again and a second has passed, so a spool hovering at its limit
        // does not alternate the two lines for every packet).
        let settled = reported > 0
            || (!self.policy.refused_are_lost && any && at.elapsed() >= FULL_REPORT_EVERY);
        if settled && self.full.count == 0 && self.owed.is_empty() {
            crate::say!(
                "{}spool has room again; {} packets {} while it was full",
                self.policy.prefix,
                self.episode,
                self.policy.outcome
            );
            self.announced = None;
            self.episode = 0;
        }
    }

    /// Add the packets appended since the last call to `counters.spooled`.
    fn count_spooled(&mut self) {
        if self.spooled > 0 {
            bump(&self.counters.spooled, std::mem::take(&mut self.spooled));
        }
    }

    /// The spool dropped `range` (uncommitted records) for lack of room.
    fn dropped(&mut self, range: Option<(u64, u64)>) {
        self.count_spooled();
        let Some((a, b)) = range else { return };
        self.rewound = Some(self.rewound.map_or(a, |r| r.min(a)));
        let mut lost = FullLoss::default();
        let mut owed = Vec::new();
        let mut refused = Vec::new();
        let mut kept = VecDeque::new();
        for (seq, what) in self.appended.drain(..) {
            if seq < a || seq > b {
                kept.push_back((seq, what));
                continue;
            }
            match what {
                Appended::Packet(t, sg) => {
                    self.counters.spooled.fetch_sub(1, Ordering::Relaxed);
                    if self.policy.refused_are_lost {
                        bump(&self.counters.lost_spool_full, 1);
                        lost.add(sg);
                    }
                    refused.push(t);
                }
                Appended::FullReport(f) => lost = lost.then(f),
                Appended::Loss(ev) => owed.push(ev),
            }
        }
        self.appended = kept;
        self.full = lost.then(self.full);
        owed.append(&mut self.owed);
        self.owed = owed;
        if !refused.is_empty() {
            self.announce("cannot spool packets: the spool's filesystem is full");
            self.episode += refused.len() as u64;
            self.refused.append(&mut refused);
        }
    }

    fn refuse(&mut self, token: T, seq_global: Option<u32>) {
        if self.policy.refused_are_lost {
            bump(&self.counters.lost_spool_full, 1);
            self.full.add(seq_global);
        }
        self.episode += 1;
        self.refused.push(token);
    }

    /// Say once per episode that packets are refused.
    fn announce(&mut self, why: &str) {
        if self.announced.is_none() {
            crate::say!(
                "{}{why}; {} until there is room",
                self.policy.prefix,
                self.policy.consequence
            );
            self.announced = Some(Instant::now());
        }
    }

    /// Append owed loss reports, then the spool-full report, if there are any and it is time
    /// (`now`: regardless of the rate limit). Once per record: the usual nothing-to-do is
    /// inlined.
    #[inline]
    fn catch_up(&mut self, now: bool) {
        if self.owed.is_empty() && self.full.count == 0 {
            return;
        }
        self.catch_up_owed(now);
    }

    fn catch_up_owed(&mut self, now: bool) {
        if !now
            && self
                .reported_at
                .is_some_and(|t| t.elapsed() < FULL_REPORT_EVERY)
        {
            return;
        }
        for ev in std::mem::take(&mut self.owed) {
            if self.append_loss(ev) {
                self.reported_at = Some(Instant::now());
            }
        }
        if self.full.count == 0 {
            return;
        }
        let f = self.full;
        let ev = LossEvent::now(
            Cause::SpoolFull,
            self.policy.group,
            f.count,
            f.first.zip(f.last),
        );
        self.scratch.clear();
        ev.encode(&mut self.scratch);
        self.before_append(self.scratch.len());
        match self.writer.append(&self.scratch) {
            Ok(seq) => {
                self.appended.push_back((seq, Appended::FullReport(f)));
                self.full = FullLoss::default();
                self.reported_at = Some(Instant::now());
            }
            Err(AppendError::Spool(SpoolError::NoSpace { dropped, .. })) => self.dropped(dropped),
            Err(_) => {}
        }
    }

    /// Append a loss report; one the spool refuses is owed (it is on stderr and in the
    /// counters already). True if appended.
    fn append_loss(&mut self, ev: LossEvent) -> bool {
        self.scratch.clear();
        ev.encode(&mut self.scratch);
        self.before_append(self.scratch.len());
        match self.writer.append(&self.scratch) {
            Ok(seq) => {
                self.appended.push_back((seq, Appended::Loss(ev)));
                true
            }
            Err(e) => {
                if let AppendError::Spool(SpoolError::NoSpace { dropped, .. }) = &e {
                    self.dropped(*dropped);
                }
                self.owe(ev);
                false
            }
        }
    }

    /// Keep `ev` for a later attempt. While the spool stays full, reports of the same cause
    /// and group are merged into one, so what is owed stays small.
    fn owe(&mut self, ev: LossEvent) {
        let full = self.owed.len() >= MAX_OWED;
        let same = self
            .owed
            .iter_mut()
            .rfind(|o| o.cause == ev.cause && o.group == ev.group);
        match same {
            Some(o) if full => merge(o, &ev),
            _ => self.owed.push(ev),
        }
    }
}

/// Owed loss reports kept apart before same-kind ones are merged.
const MAX_OWED: usize = 64;

/// Fold the later `b` into `a`: counts add up, the range spans both.
fn merge(a: &mut LossEvent, b: &LossEvent) {
    a.count += b.count;
    a.seq_global = match (a.seq_global, b.seq_global) {
        (Some((f, _)), Some((_, l))) => Some((f, l)),
        (x, y) => x.or(y),
    };
}

#[cfg(test)]
#[path = "spooler_tests.rs"]
mod tests;

/// Test builds only: with `FWLOG_FAILPOINT=kill-after-seal`, after an append that sealed a
/// segment in the middle of a datagram (hold mode), give the processing loop time to print,
/// acknowledge and delete the sealed part, then die by SIGKILL: the kill a restart must
/// survive without printing that part again (tests/fdstore_race.rs). Release builds: nothing.
fn failpoint_kill_after_seal() {
    #[cfg(debug_assertions)]
    if std::env::var_os("FWLOG_FAILPOINT").is_some_and(|v| v == "kill-after-seal") {
        std::thread::sleep(Duration::from_millis(1500));
        // SAFETY: kill(2) on our own pid; no memory is touched.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}
