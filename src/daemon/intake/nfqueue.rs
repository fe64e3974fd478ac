//! The NFQUEUE receiver of audit mode (`fwlog run --queue N`): batches of queued packets, their
//! packet-id gaps, and the verdicts, given only once each packet's fate is known.
//!
//! Verdict rule (see [`crate::queue`] for the why):
//! - record appended and its commit returned: ACCEPT;
//! - the spool did not take the record (the `--spool-max` cap, too large, or a full filesystem
//!   that dropped the batch at its commit): DROP, or ACCEPT with `--fail-open` (counted,
//!   reported on stderr, and spooled as a `spool-full` loss record once the spool takes records
//!   again). fwlog keeps running and accepts packets again as soon as there is room;
//! - any other spool failure: DROP every packet not stored (ACCEPT with `--fail-open`, counted),
//!   then stop: the spool writer is poisoned and only a restart (recovery) can repair it.
//!
//! Holding the verdicts of a batch the full filesystem refused, to retry its commit later, was
//! rejected: the packets would wait for as long as the disk stays full (minutes or hours, then
//! pass stale), the queue would keep growing in kernel memory, and the socket would overflow
//! anyway, which drops (or with `--fail-open` passes) the packets behind them uncounted by
//! fwlog. Dropping at once is what the queue does for the `--spool-max` cap too.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fwlog_spool::Commit;

use super::spooler::{Policy, Spooler};
use super::Receiver;
use crate::capture::IfNameCache;
use crate::counters::bump;
use crate::nflog::loss::{Cause, LossEvent};
use crate::queue::{encode_record, IdTracker, Message, QueueSocket, QueuedPacket, Verdict};

/// How long the queue must be idle before intake looks for loss at the end of a burst.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// What `fwlog run --queue` prints once it is ready (tests wait for it).
pub const READY: &str = "fwlog: auditing NFQUEUE queue";

pub struct QueueReceiver {
    sock: QueueSocket,
    fail_open: bool,
    /// Most packets per commit (`--batch-records`).
    batch_max: usize,
    /// The socket was taken back from the fd store: ids before the first one read belong to
    /// the previous process.
    adopted: bool,
    names: IfNameCache,
    ids: IdTracker,
    tally: Tally,
    batch: Vec<Message>,
    rec: Vec<u8>,
    /// Idle check for loss at the end of a burst (see queue/ids.rs): the kernel's id counter
    /// read while idle, then settled once the socket is drained.
    idle_since: Instant,
    issued: Option<u32>,
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
}

fn now() -> (i64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    (d.as_secs() as i64, d.subsec_nanos())
}

impl QueueReceiver {
    pub fn new(
        sock: QueueSocket,
        fail_open: bool,
        batch_max: usize,
        adopted: bool,
    ) -> Result<Self, String> {
        let names = IfNameCache::new().map_err(|e| format!("interface-name socket: {e}"))?;
        Ok(QueueReceiver {
            sock,
            fail_open,
            batch_max: batch_max.max(1),
            adopted,
            names,
            ids: IdTracker::new(),
            tally: Tally::default(),
            batch: Vec::with_capacity(batch_max.max(1)),
            rec: Vec::with_capacity(2048),
            idle_since: Instant::now(),
            issued: None,
        })
    }

    /// What refused packets mean here.
    pub fn policy(queue: u16, fail_open: bool) -> Policy {
        Policy {
            prefix: format!("fwlog: queue {queue}: "),
            refused_are_lost: fail_open,
            consequence: if fail_open {
                "letting them through unlogged (--fail-open)"
            } else {
                "dropping them"
            },
            outcome: if fail_open {
                "passed unlogged"
            } else {
                "were dropped"
            },
            group: Some(queue),
        }
    }

    fn verdict(&mut self, m: Message, v: Verdict) -> Result<(), String> {
        let q = self.sock.queue_num();
        self.sock
            .verdict(m, v)
            .map_err(|e| format!("sending a verdict to NFQUEUE queue {q}: {e}"))
    }

    /// Packet ids were skipped before `id`.
    fn on_gap(&mut self, first: bool, id: u32, gap: u64, spool: &mut Spooler<Message>) {
        let q = self.sock.queue_num();
        if first && self.adopted {
            // The previous process read these ids; those it gave no verdict (it died first)
            // are still queued and would wait for one as long as the socket lives: drop them.
            // (A dropped one may be in the log already: the log is a superset of what passed.)
            if let Err(e) = self.sock.drop_upto(id.wrapping_sub(1)) {
                crate::say!(
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
        self.tally.id_gaps += gap;
        crate::say!(
            "fwlog: queue {q}: {gap} packets before packet id {id} were never read (socket overflow): {}",
            if self.fail_open {
                "they passed unlogged (--fail-open)"
            } else {
                "the kernel dropped them"
            }
        );
        spool.loss(LossEvent::now(Cause::SeqGap, Some(q), gap, None));
    }

    /// Loss at the end of a burst: once the socket is drained, every id the kernel had issued
    /// before the idle reading has been read, or was lost; the next reading is taken after a
    /// second without packets.
    fn idle_check(&mut self, got: usize, stopping: bool, spool: &mut Spooler<Message>) {
        let q = self.sock.queue_num();
        if got < self.batch_max {
            if let Some(n) = self.issued.take() {
                let first = self.ids.last().is_none();
                let gap = self.ids.settle(n);
                if gap > 0 {
                    self.on_gap(first, n.wrapping_add(1), gap, spool);
                }
            }
        }
        if got > 0 {
            self.idle_since = Instant::now();
        } else if !stopping && self.idle_since.elapsed() >= IDLE_CHECK {
            self.idle_since = Instant::now();
            self.issued = crate::queue::issued_ids(q);
        }
    }
}

impl Receiver for QueueReceiver {
    /// The packet's message, which its verdict consumes.
    type Packet = Message;

    /// Verdicts wait for the commit: there is no waiting to fill a batch.
    /// Every round: the verdicts wait for the commit.
    fn commit_now(&self) -> bool {
        true
    }

    fn wait(&self, _spool: &Spooler<Message>) -> Duration {
        if self.issued.is_some() {
            Duration::ZERO
        } else {
            Duration::MAX
        }
    }

    fn receive(
        &mut self,
        wait: Duration,
        stopping: bool,
        spool: &mut Spooler<Message>,
    ) -> Result<usize, String> {
        let q = self.sock.queue_num();
        let got = self
            .sock
            .recv_batch(&mut self.batch, self.batch_max, wait)
            .map_err(|e| format!("receiving from NFQUEUE queue {q}: {e}"))?;
        spool.counters.per_group.add(q, got.count as u64);
        if got.enobufs {
            crate::say!("fwlog: queue {q}: the netlink socket overflowed (ENOBUFS)");
            spool.loss(LossEvent::now(Cause::Enobufs, Some(q), 0, None));
        }
        let time = now();
        let mono = Instant::now();
        let mut batch = std::mem::take(&mut self.batch);
        for m in batch.drain(..) {
            let p = QueuedPacket::from_message(&m);
            let first = self.ids.last().is_none();
            let gap = self.ids.observe(p.packet_id);
            if gap > 0 {
                self.on_gap(first, p.packet_id, gap, spool);
            }
            self.rec.clear();
            encode_record(&p, time, &mut self.names, mono, &mut self.rec);
            spool.packet(&self.rec, m, None);
        }
        self.batch = batch;
        self.idle_check(got.count, stopping, spool);
        Ok(got.count)
    }

    /// ACCEPT what is stored; DROP (or with `--fail-open`, ACCEPT) what the spool refused.
    fn settle(&mut self, _c: Option<Commit>, spool: &mut Spooler<Message>) -> Result<(), String> {
        let stored = std::mem::take(&mut spool.committed);
        let n = stored.len() as u64;
        for m in stored {
            self.verdict(m, Verdict::Accept)?;
        }
        self.tally.accepted += n;
        bump(&spool.counters.queue_accepted, n);
        let refused = std::mem::take(&mut spool.refused);
        let n = refused.len() as u64;
        let v = if self.fail_open {
            self.tally.unlogged += n;
            bump(&spool.counters.queue_unlogged, n);
            Verdict::Accept
        } else {
            self.tally.dropped += n;
            bump(&spool.counters.queue_dropped, n);
            Verdict::Drop
        };
        for m in refused {
            self.verdict(m, v)?;
        }
        Ok(())
    }

    fn finish(self, result: Result<(), String>) -> Result<(), String> {
        let t = &self.tally;
        crate::say!(
            "fwlog: queue {}: accepted {} after spooling, dropped {} (spool refused), passed unlogged {} (--fail-open), never read {} (socket overflow)",
            self.sock.queue_num(), t.accepted, t.dropped, t.unlogged, t.id_gaps
        );
        result
    }
}
