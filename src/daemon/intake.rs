//! The intake thread: receive a batch from the kernel, append it to the spool, commit.
//!
//! It does nothing else (no decoding, no DNS, no printing), so a slow name server or a stuck
//! output can never make the kernel drop packets: the backlog grows on disk instead. Loss
//! reports are spooled in line with the packets around them, so they print in order and
//! survive a crash like packets do.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fwlog_spool::{AppendError, Commit, Error as SpoolError, Writer};
use tokio::sync::Notify;

use super::positions::Positions;
use super::seqfile::SeqFile;
use crate::capture::{LossCause, LossEvent, NflogSocket, RecordBatch};
use crate::counters::{bump, Counters};
use crate::nflog::attr::LossRecord;
use crate::nflog::loss::Cause;

pub struct Intake {
    pub sock: NflogSocket,
    pub writer: Writer,
    pub stop: Arc<AtomicBool>,
    /// Poked after every commit: the processing loop waits on it for new records.
    pub wake: Arc<Notify>,
    pub counters: Arc<Counters>,
    pub seq_file: SeqFile,
    /// With the socket kept in the fd store (hold mode): where spooling stopped, per group.
    pub held: Option<Positions>,
}

/// Records refused because the spool was full, not yet reported in the stream.
#[derive(Default, Clone, Copy)]
struct FullLoss {
    count: u64,
    first: Option<u32>,
    last: Option<u32>,
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

/// A record appended since the last commit. A commit refused because the filesystem is full
/// drops them all (the spool names their sequence numbers): packets then count as lost like
/// those the size cap refuses, and a dropped spool-full report is owed again.
enum Appended {
    Packet(Option<u32>),
    FullReport(FullLoss),
    Other,
}

/// Spool-full bookkeeping (the `--spool-max` cap and a full filesystem behave alike).
///
/// A storm (the cap reached while the processing loop frees a record at a time) must not become
/// a loss record and two stderr lines per packet: refusals are reported in the stream at most
/// once per [`FULL_REPORT_EVERY`], with their count. Packets that fit meanwhile are spooled as
/// usual; a report's sequence range then spans the first to the last refused packet.
#[derive(Default)]
struct Refusals {
    /// When the previous report was spooled (rate limit).
    reported_at: Option<Instant>,
    /// Refused and not yet reported in the stream.
    full: FullLoss,
    /// Appended since the last commit, by spool sequence number.
    appended: Vec<(u64, Appended)>,
    /// A refusal was announced on stderr and the room-again line is still owed.
    announced: bool,
}

const FULL_REPORT_EVERY: Duration = Duration::from_secs(1);

impl Refusals {
    /// Whether a report of refused packets may be spooled now (see [`FULL_REPORT_EVERY`]).
    fn due(&self) -> bool {
        self.reported_at
            .is_none_or(|t| t.elapsed() >= FULL_REPORT_EVERY)
    }
}

fn now() -> (i64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    (d.as_secs() as i64, d.subsec_nanos())
}

impl Intake {
    /// Run until `stop` is set; then commit what was received and return.
    pub fn run(mut self) -> Result<(), String> {
        let mut batch = RecordBatch::with_capacity(1 << 20, 8192);
        let mut full = Refusals::default();
        let mut scratch = Vec::with_capacity(256);
        loop {
            let stopping = self.stop.load(Ordering::Relaxed);
            let timeout = if stopping {
                Duration::ZERO
            } else {
                self.writer
                    .commit_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
                    .unwrap_or(Duration::from_millis(100))
                    .min(Duration::from_millis(100))
            };
            let n = self
                .sock
                .recv_batch(&mut batch, timeout)
                .map_err(|e| format!("receiving from NFLOG: {e}"))?;
            bump(&self.counters.received, n as u64);
            bump(&self.counters.intake_rounds, 1);
            if !self.seq_file.has_value() {
                self.seed_first_run(&batch);
            }
            if n > 0 {
                self.intend(&batch);
            }
            let losses = batch.loss_events();
            let mut li = 0;
            for (i, rec) in batch.iter().enumerate() {
                while li < losses.len() && losses[li].0 <= i {
                    self.spool_loss(&losses[li].1, &mut full, &mut scratch);
                    li += 1;
                }
                self.append(rec, &mut full, &mut scratch);
            }
            for (_, ev) in &losses[li..] {
                self.spool_loss(ev, &mut full, &mut scratch);
            }
            // Refused packets are reported once a second even when no packet follows them
            // (the last burst before the traffic stops, or a report that the full filesystem
            // dropped again): the loop comes round at least every 100 ms.
            if full.full.count > 0 && full.due() {
                self.report_full(&mut full, &mut scratch);
            }
            self.release(n > 0 || !losses.is_empty(), &mut full)?;
            let r = self.writer.commit_if_due();
            self.committed(r, &mut full, "spool commit")?;
            // Retention by age (a no-op without --retain-for); polls wake it at least every
            // 100 ms, so idle hours still expire.
            let r = self.writer.tick();
            self.committed(r, &mut full, "spool upkeep")?;
            if stopping && n == 0 {
                break;
            }
        }
        // Packets refused just before the stop are reported now, not left to the next start.
        if full.full.count > 0 {
            self.report_full(&mut full, &mut scratch);
        }
        let r = self.writer.commit().map(Some);
        self.committed(r, &mut full, "spool commit at exit")?;
        // Intake commits after the processing loop has ended: what the exit line calls pending
        // is what the spool holds now.
        self.counters
            .pending_at_exit
            .store(self.writer.stats().pending_records, Ordering::Relaxed);
        // Keep the socket, and so its groups, until the process exits (the kernel closes it
        // then): what the rules log during the rest of the shutdown lands in its buffer with a
        // sequence number, which the next run counts as a restart gap. Closed now, the groups
        // would be unbound, and the kernel would drop those packets without numbering them.
        std::mem::forget(self.sock);
        Ok(())
    }

    /// The outcome of a commit (explicit, or by `tick`). A full filesystem is not an error:
    /// the records it dropped are accounted for, and intake goes on.
    fn committed(
        &mut self,
        r: Result<Option<Commit>, SpoolError>,
        full: &mut Refusals,
        what: &str,
    ) -> Result<(), String> {
        match r {
            Ok(Some(c)) => {
                self.room_again(full);
                self.after_commit(c, &full.full);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(SpoolError::NoSpace { dropped, .. }) => {
                self.dropped(dropped, full);
                Ok(())
            }
            Err(e) => Err(format!("{what}: {e}")),
        }
    }

    /// Everything appended so far is committed: say so once if packets had been refused and
    /// their report is now in the spool.
    fn room_again(&mut self, full: &mut Refusals) {
        let reported: u64 = full
            .appended
            .iter()
            .map(|(_, a)| match a {
                Appended::FullReport(f) => f.count,
                _ => 0,
            })
            .sum();
        full.appended.clear();
        if full.announced && reported > 0 && full.full.count == 0 {
            crate::say!(
                "fwlog: spool has room again; {reported} packets were lost while it was full"
            );
            full.announced = false;
        }
    }

    /// The spool dropped `range` (uncommitted records) for lack of room.
    fn dropped(&mut self, range: Option<(u64, u64)>, full: &mut Refusals) {
        let Some((a, b)) = range else { return };
        let mut lost = FullLoss::default();
        let mut packets = 0;
        for (seq, what) in full.appended.drain(..) {
            if seq < a || seq > b {
                continue;
            }
            match what {
                Appended::Packet(sg) => {
                    lost.add(sg);
                    packets += 1;
                }
                Appended::FullReport(f) => lost = lost.then(f),
                // Kernel loss reports: already on stderr and in the counters.
                Appended::Other => {}
            }
        }
        self.counters.spooled.fetch_sub(packets, Ordering::Relaxed);
        bump(&self.counters.lost_spool_full, packets);
        full.full = lost.then(full.full);
        if !full.announced && full.full.count > 0 {
            crate::say!("fwlog: the spool's filesystem is full; counting packets as lost until there is room");
            full.announced = true;
        }
    }

    /// Hold mode: before appending `batch`, mark each of its groups unsure from its first
    /// number in it (see `positions`), the others where they are.
    fn intend(&mut self, batch: &RecordBatch) {
        let Some(p) = &mut self.held else { return };
        let mut firsts: Vec<(u16, u32)> = Vec::new();
        for rec in batch.iter() {
            if let Some((g, s)) = crate::capture::scan_group_seq(rec) {
                if !firsts.iter().any(|f| f.0 == g) {
                    firsts.push((g, s));
                }
            }
        }
        let tracked = self.sock.tracker().group_positions();
        let mut entries: Vec<_> = tracked
            .filter(|(g, _)| !firsts.iter().any(|f| f.0 == *g))
            .map(|(g, s)| (g, s, false))
            .collect();
        entries.extend(firsts.iter().map(|&(g, s)| (g, s, true)));
        p.begin(entries.into_iter());
    }

    /// Hold mode: an append that seals the spool's segment publishes what this datagram
    /// appended so far, which the processing loop may print, acknowledge and delete before the
    /// datagram is written out; checkpoint first (see `positions`). Returns whether it does.
    fn before_append(&mut self, len: usize) -> bool {
        let Some(p) = &mut self.held else {
            return false;
        };
        self.writer.seals_before(len) && p.before_seal(self.writer.next_seq().saturating_sub(1))
    }

    /// Hold mode (socket kept in the fd store): write the records out, say how far each group
    /// is spooled, and only then take the datagram off the socket (see `fdkeep`).
    fn release(&mut self, appended: bool, full: &mut Refusals) -> Result<(), String> {
        if self.held.is_none() {
            return Ok(());
        }
        if appended {
            match self.writer.write_out() {
                Ok(()) => {}
                // No room: the batch is dropped and its packets count as refused.
                Err(SpoolError::NoSpace { dropped, .. }) => self.dropped(dropped, full),
                Err(e) => return Err(format!("spool write: {e}")),
            }
            // Packets the spool refused are not spooled: leave the positions behind them, so a
            // kill before their report makes the next run see them again, not skip them.
            if full.full.count == 0 {
                if let Some(p) = &mut self.held {
                    p.store(
                        self.sock
                            .tracker()
                            .group_positions()
                            .map(|(g, s)| (g, s, false)),
                    );
                }
            }
        }
        self.sock
            .release()
            .map_err(|e| format!("receiving from NFLOG: {e}"))
    }

    /// First run on this spool (no `fwlog.seq_global` yet): record, before anything is spooled,
    /// that everything before the first packet received was not ours. Without this, a run killed
    /// after a segment rollover had made some packets durable (an implicit commit, which does not
    /// update the file) but before its first explicit commit left no value at all, and the next
    /// run could not report the packets the kernel had handed the dead one.
    fn seed_first_run(&mut self, batch: &RecordBatch) {
        let first = batch.iter().find_map(crate::capture::scan_seq_global);
        if let Some(g) = first {
            self.seq_file.store(g.wrapping_sub(1));
        }
    }

    /// After any commit (explicit, or by `tick` sealing a segment; both write everything
    /// appended so far): wake the processing loop, and tell the seq file how far the kernel's
    /// numbers are accounted for once this commit is durable.
    fn after_commit(&mut self, c: Commit, full: &FullLoss) {
        self.wake.notify_one();
        // Everything received is spooled, except packets the spool refused while full: their
        // report is spooled only once a later packet fits, so stop before the first of them; if
        // this run never reports them, the next one does, as a restart gap.
        let upto = if full.count > 0 {
            full.first.map(|f| f.wrapping_sub(1))
        } else {
            self.sock.tracker().last_seq_global()
        };
        self.seq_file.committed(c, upto);
    }

    /// Spool the report of the packets refused while the spool was full, if there is room.
    fn report_full(&mut self, full: &mut Refusals, scratch: &mut Vec<u8>) {
        let (sec, nsec) = now();
        scratch.clear();
        let f = full.full;
        LossRecord {
            group: None,
            cause: Cause::SpoolFull as u8,
            count: Some(f.count),
            seq_global: f.first.zip(f.last),
            spool_seq: None,
        }
        .encode(sec, nsec, scratch);
        self.before_append(scratch.len());
        match self.writer.append(scratch) {
            Ok(seq) => {
                full.appended.push((seq, Appended::FullReport(f)));
                full.full = FullLoss::default();
                full.reported_at = Some(Instant::now());
            }
            Err(AppendError::Spool(SpoolError::NoSpace { dropped, .. })) => {
                self.dropped(dropped, full)
            }
            Err(_) => {}
        }
    }

    fn append(&mut self, rec: &[u8], full: &mut Refusals, scratch: &mut Vec<u8>) {
        if full.full.count > 0 && full.due() {
            // Space may be back: report what was dropped first, in order.
            self.report_full(full, scratch);
        }
        let sg = || crate::capture::scan_seq_global(rec);
        let sealing = self.before_append(rec.len());
        match self.writer.append(rec) {
            Ok(seq) => {
                bump(&self.counters.spooled, 1);
                full.appended.push((seq, Appended::Packet(sg())));
                if let (Some(p), Some((g, s))) =
                    (&mut self.held, crate::capture::scan_group_seq(rec))
                {
                    p.appended(g, s);
                }
                if sealing {
                    failpoint_kill_after_seal();
                }
            }
            Err(e) => {
                if let AppendError::Spool(SpoolError::NoSpace { dropped, .. }) = &e {
                    self.dropped(*dropped, full);
                }
                bump(&self.counters.lost_spool_full, 1);
                if !full.announced {
                    crate::say!("fwlog: cannot spool packets ({e}); counting them as lost until there is room");
                    full.announced = true;
                }
                full.full.add(sg());
            }
        }
    }

    fn spool_loss(&mut self, ev: &LossEvent, full: &mut Refusals, scratch: &mut Vec<u8>) {
        crate::say!("fwlog: {ev}");
        let n = ev.count.unwrap_or(0);
        let cause = match ev.cause {
            LossCause::SeqGap => {
                bump(&self.counters.lost_seq_gap, n);
                Cause::SeqGap
            }
            LossCause::Enobufs => {
                bump(&self.counters.enobufs, 1);
                Cause::Enobufs
            }
            LossCause::Restart => {
                bump(&self.counters.lost_restart, n);
                Cause::Restart
            }
            LossCause::Truncated | LossCause::Malformed => {
                bump(&self.counters.lost_other, n);
                Cause::Corrupt
            }
        };
        let (sec, nsec) = now();
        scratch.clear();
        LossRecord {
            group: ev.group,
            cause: cause as u8,
            count: ev.count,
            seq_global: ev.seq_global,
            spool_seq: None,
        }
        .encode(sec, nsec, scratch);
        // When the spool is full this report cannot be spooled either; it is still on stderr
        // and in the counters.
        self.before_append(scratch.len());
        if let Ok(seq) = self.writer.append(scratch) {
            full.appended.push((seq, Appended::Other));
        }
    }
}

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
