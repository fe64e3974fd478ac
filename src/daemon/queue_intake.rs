//! The intake thread of NFQUEUE audit mode (`fwlog run --queue N`): receive a batch of queued
//! packets, append their records to the spool, commit, and only then give the verdicts.
//!
//! Verdict rule (see [`crate::queue`] for the why):
//! - record appended and its commit returned: ACCEPT;
//! - spool refused the record (full, too large): DROP, or ACCEPT with `--fail-open` (counted,
//!   reported on stderr, and spooled as a `spool-full` loss record right after the next packet
//!   that fits);
//! - the commit failed: DROP every packet of the batch (ACCEPT with `--fail-open`, counted),
//!   then stop: the spool writer is poisoned and only a restart (recovery) can repair it.
//!
//! Like NFLOG intake it does nothing slow besides the commit: no decoding, DNS or printing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fwlog_spool::Writer;
use tokio::sync::Notify;

use crate::capture::IfNameCache;
use crate::counters::{bump, Counters};
use crate::nflog::attr::LossRecord;
use crate::nflog::loss::Cause;
use crate::queue::{encode_record, IdTracker, Message, QueueSocket, QueuedPacket, Verdict};

/// How long the queue must be idle before intake looks for loss at the end of a burst.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// What `fwlog run --queue` prints once it is ready (tests wait for it).
pub const READY: &str = "fwlog: auditing NFQUEUE queue";

pub struct QueueIntake {
    pub sock: QueueSocket,
    pub writer: Writer,
    pub stop: Arc<AtomicBool>,
    /// Poked after every commit: the processing loop waits on it for new records.
    pub wake: Arc<Notify>,
    pub counters: Arc<Counters>,
    pub fail_open: bool,
    /// Most packets per commit (`--batch-records`).
    pub batch_max: usize,
    /// The socket was taken back from the fd store: ids before the first one read belong to
    /// the previous process.
    pub adopted: bool,
}

/// Per-run tallies beyond the shared counters, printed at exit.
#[derive(Default, Debug)]
struct Tally {
    accepted: u64,
    /// Refused by the spool and dropped (not a hole in the log: they did not pass).
    dropped: u64,
    /// Let through without a record (--fail-open).
    unlogged: u64,
    /// Packet ids never read (socket overflow).
    id_gaps: u64,
    /// Refused by the spool since the last spool-full report could be spooled.
    full_pending: u64,
}

fn now() -> (i64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    (d.as_secs() as i64, d.subsec_nanos())
}

impl QueueIntake {
    /// Run until `stop` is set; then commit and give verdicts for what was received, and return.
    pub fn run(mut self) -> Result<(), String> {
        let q = self.sock.queue_num();
        let mut names = IfNameCache::new().map_err(|e| format!("interface-name socket: {e}"))?;
        let mut ids = IdTracker::new();
        let mut t = Tally::default();
        let mut batch: Vec<Message> = Vec::with_capacity(self.batch_max);
        let mut held: Vec<Message> = Vec::with_capacity(self.batch_max);
        let mut rec = Vec::with_capacity(2048);
        // Idle check for loss at the end of a burst (see queue/ids.rs): the kernel's id counter
        // read while idle, then settled once the socket is drained.
        let mut idle_since = Instant::now();
        let mut issued: Option<u32> = None;
        let result = loop {
            let stopping = self.stop.load(Ordering::Relaxed);
            let wait = if stopping || issued.is_some() {
                Duration::ZERO
            } else {
                Duration::from_millis(100)
            };
            let got = match self.sock.recv_batch(&mut batch, self.batch_max, wait) {
                Ok(g) => g,
                Err(e) => break Err(format!("receiving from NFQUEUE queue {q}: {e}")),
            };
            bump(&self.counters.received, got.count as u64);
            self.counters.per_group.add(q, got.count as u64);
            bump(&self.counters.intake_rounds, 1);
            if got.enobufs {
                bump(&self.counters.enobufs, 1);
                crate::say!("fwlog: queue {q}: the netlink socket overflowed (ENOBUFS)");
                self.spool_loss(Cause::Enobufs, None, &mut rec);
            }
            let (sec, nsec) = now();
            let mono = Instant::now();
            for m in batch.drain(..) {
                let p = QueuedPacket::from_message(&m);
                let first = ids.last().is_none();
                let gap = ids.observe(p.packet_id);
                if gap > 0 {
                    self.on_gap(first, p.packet_id, gap, &mut t, &mut rec);
                }
                rec.clear();
                encode_record(&p, (sec, nsec), &mut names, mono, &mut rec);
                match self.writer.append(&rec) {
                    Ok(_) => {
                        bump(&self.counters.spooled, 1);
                        held.push(m);
                        // Report what passed unlogged once a packet fits again (reporting as
                        // soon as the small loss record fits would alternate full/room for
                        // every packet).
                        if t.full_pending > 0 {
                            self.report_full(&mut t, &mut rec);
                        }
                    }
                    Err(e) => self.refused(m, &e, &mut t)?,
                }
            }
            if got.count < self.batch_max {
                // The socket is drained: every id the kernel had issued before the reading
                // has been read, or was lost.
                if let Some(n) = issued.take() {
                    let first = ids.last().is_none();
                    let gap = ids.settle(n);
                    if gap > 0 {
                        self.on_gap(first, n.wrapping_add(1), gap, &mut t, &mut rec);
                    }
                }
            }
            if got.count > 0 {
                idle_since = Instant::now();
            } else if !stopping && idle_since.elapsed() >= IDLE_CHECK {
                idle_since = Instant::now();
                issued = crate::queue::issued_ids(q);
            }
            if let Err(e) = self.writer.commit() {
                // Not on disk: these packets must not pass (unless the admin chose to).
                let v = if self.fail_open {
                    t.unlogged += held.len() as u64;
                    bump(&self.counters.queue_unlogged, held.len() as u64);
                    bump(&self.counters.lost_other, held.len() as u64);
                    Verdict::Accept
                } else {
                    t.dropped += held.len() as u64;
                    bump(&self.counters.queue_dropped, held.len() as u64);
                    Verdict::Drop
                };
                for m in held.drain(..) {
                    let _ = self.sock.verdict(m, v);
                }
                break Err(format!("spool commit: {e}"));
            }
            self.wake.notify_one();
            let n = held.len() as u64;
            for m in held.drain(..) {
                self.verdict(m, Verdict::Accept)?;
            }
            t.accepted += n;
            bump(&self.counters.queue_accepted, n);
            // Retention by age (a no-op without --retain-for), once every packet of the batch has
            // its verdict: the batch is committed, so this only seals and deletes segments.
            if let Err(e) = self.writer.tick() {
                break Err(format!("spool upkeep: {e}"));
            }
            if stopping && got.count == 0 {
                break Ok(());
            }
        };
        crate::say!(
            "fwlog: queue {q}: accepted {} after spooling, dropped {} (spool refused), passed unlogged {} (--fail-open), never read {} (socket overflow)",
            t.accepted, t.dropped, t.unlogged, t.id_gaps
        );
        result
    }

    /// The spool refused a packet (full): drop it, or with `--fail-open` let it through
    /// unlogged and count it for the next loss report. Says so once per episode.
    fn refused(
        &mut self,
        m: Message,
        e: &fwlog_spool::AppendError,
        t: &mut Tally,
    ) -> Result<(), String> {
        let q = self.sock.queue_num();
        if t.full_pending == 0 && self.fail_open {
            crate::say!("fwlog: queue {q}: cannot spool packets ({e}); letting them through unlogged (--fail-open) until there is room");
        } else if t.dropped == 0 && !self.fail_open {
            crate::say!(
                "fwlog: queue {q}: cannot spool packets ({e}); dropping them until there is room"
            );
        }
        if self.fail_open {
            bump(&self.counters.lost_spool_full, 1);
            t.unlogged += 1;
            bump(&self.counters.queue_unlogged, 1);
            t.full_pending += 1;
            self.verdict(m, Verdict::Accept)?;
        } else {
            t.dropped += 1;
            bump(&self.counters.queue_dropped, 1);
            self.verdict(m, Verdict::Drop)?;
        }
        Ok(())
    }

    fn verdict(&mut self, m: Message, v: Verdict) -> Result<(), String> {
        let q = self.sock.queue_num();
        self.sock
            .verdict(m, v)
            .map_err(|e| format!("sending a verdict to NFQUEUE queue {q}: {e}"))
    }

    /// Packet ids were skipped before `id`.
    fn on_gap(&mut self, first: bool, id: u32, gap: u64, t: &mut Tally, rec: &mut Vec<u8>) {
        let q = self.sock.queue_num();
        if first && self.adopted {
            // The previous process read these ids; those it gave no verdict (it died first)
            // are still queued and would wait for one as long as the socket lives: drop them.
            // (A dropped one may be in the log already: the log is a superset of what passed.)
            if let Err(e) = self.sock.drop_upto(id.wrapping_sub(1)) {
                eprintln!(
                    "fwlog: queue {q}: cannot drop the packets the previous fwlog left without a verdict: {e}"
                );
            }
            return;
        }
        if first {
            // nfq discards packet messages that arrive while it waits for the acknowledgement
            // of a set-up message: those packets are still queued. Drop them now rather than
            // hold them until exit. (Ids lost to an overflow instead are not queued; the batch
            // verdict does not touch them.)
            let dropped = self.sock.drop_upto(id.wrapping_sub(1));
            crate::say!(
                "fwlog: queue {q}: {gap} packets arrived during start-up before fwlog could read them; {}",
                match dropped {
                    Ok(()) => "they were dropped".to_string(),
                    Err(e) => format!("dropping them failed ({e}); the kernel drops them when fwlog exits"),
                }
            );
            return;
        }
        t.id_gaps += gap;
        bump(&self.counters.lost_seq_gap, gap);
        crate::say!(
            "fwlog: queue {q}: {gap} packets before packet id {id} were never read (socket overflow): {}",
            if self.fail_open {
                "they passed unlogged (--fail-open)"
            } else {
                "the kernel dropped them"
            }
        );
        self.spool_loss(Cause::SeqGap, Some(gap), rec);
    }

    /// Spool the report of packets let through while the spool was full, if it has room now.
    fn report_full(&mut self, t: &mut Tally, rec: &mut Vec<u8>) {
        if self.spool_loss(Cause::SpoolFull, Some(t.full_pending), rec) {
            crate::say!(
                "fwlog: queue {}: spool has room again; {} packets passed unlogged while it was full",
                self.sock.queue_num(),
                t.full_pending
            );
            t.full_pending = 0;
        }
    }

    /// Append a loss record (in line with the packets); false if the spool refused it (it is
    /// still on stderr and in the counters).
    fn spool_loss(&mut self, cause: Cause, count: Option<u64>, rec: &mut Vec<u8>) -> bool {
        let (sec, nsec) = now();
        rec.clear();
        LossRecord {
            group: Some(self.sock.queue_num()),
            cause: cause as u8,
            count,
            seq_global: None,
            spool_seq: None,
        }
        .encode(sec, nsec, rec);
        self.writer.append(rec).is_ok()
    }
}
