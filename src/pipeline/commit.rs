//! The processing loop's committer thread: the outputs' writes and syncs, then the spool's
//! acknowledgement sync, for one batch while the loop reads and formats the next.
//!
//! Why: a batch's commit is mostly waiting (the output file's `fdatasync`, then the ledger's);
//! done in the loop, that wait and the formatting of the next batch took turns on one core
//! while the other was idle (a start-up replay spent about half its time in the two syncs).
//!
//! Invariants (the loop's acknowledgement rule, unchanged):
//! - One job at a time: the loop starts a job only when the last one came back.
//! - A job writes its batches in output order and stops at the first failure; the spool
//!   position is made durable ([`AckSync`]) only after every batch of the job was committed,
//!   and covers only records formatted before the job started, which are all in its batches
//!   (or were committed by outputs that commit in place before it started).
//! - The loop's own `ack` follows on its thread once the job came back, as before.
//! - The acknowledgement sync also deletes the spool segments its position completes (unlinks
//!   and a directory sync), so the loop's `ack` that follows finds nothing to delete.
//!
//! Commit policy while behind: a job may write its batches without syncing them (`sync`
//! false) while the loop works through a backlog. The records of such jobs form the open
//! [`Span`]: in the output files, neither synced nor acknowledged. The span is closed by a
//! job with `sync` (its own batches written, then every output's file synced, then the
//! acknowledgement of the whole span stored), due when the span reaches [`SPAN_BYTES`], when
//! the loop has caught up with the source, on stopping, and after any failure. Hence:
//! - the spool position never passes a record whose output bytes are not synced;
//! - a crash prints at most the open span and the batch that closes it again (as replayed
//!   records), and the outputs'
//!   torn-tail mark stays at the span's start (`sink::file`), so a power cut anywhere in it
//!   leaves a fragment fwlog may cut;
//! - a failed write or sync keeps the span open: its batch comes back to be written first
//!   (resumed where it stopped, bytes already in the file not written again) and the retry
//!   syncs the whole span, in order, nothing lost; except a failed `fdatasync` of a file
//!   ([`crate::sink::SyncFailed`]), which is not retried: the loop stops with the span
//!   unacknowledged, and the next start prints it again;
//! - live traffic (the loop caught up) keeps one sync per batch: no latency is added.
//!
//! The thread is started at the first job, by the loop's thread, so it inherits that thread's
//! priority (below intake's: `daemon::precedence`). It ends when the committer is dropped.

use std::sync::mpsc;

use tokio::sync::oneshot;

use super::outputs::OutBatches;
use super::source::{AckSync, SourceError};

/// Packets handed to the outputs but not yet written by all of them.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unwritten {
    pub printed: u64,
    pub replayed: u64,
}

impl Unwritten {
    pub fn add(&mut self, o: Unwritten) {
        self.printed += o.printed;
        self.replayed += o.replayed;
    }
}

/// Output bytes written unsynced while behind before a sync is due: the disk syncs 330 MB
/// in 4 MiB pieces in 0.8-1.0 s, in 8 MiB pieces in about 0.6 s and in one piece in about 0.4 s
/// (BENCHMARKS.md), and a crash prints at most this much again.
pub const SPAN_BYTES: usize = 32 << 20;

/// Records written to the outputs by jobs without `sync`: not yet synced nor acknowledged.
#[derive(Default, Debug)]
pub struct Span {
    /// The last record written; `None` when the span is closed.
    pub upto: Option<u64>,
    /// Output bytes written in the span.
    pub bytes: usize,
    pub unwritten: Unwritten,
}

impl Span {
    pub fn is_open(&self) -> bool {
        self.upto.is_some() || self.bytes > 0
    }

    /// A job without `sync` came back written: its records join the span.
    pub fn add(&mut self, upto: Option<u64>, bytes: usize, unwritten: Unwritten) {
        self.upto = self.upto.max(upto);
        self.bytes += bytes;
        self.unwritten.add(unwritten);
    }
}

/// Whether the next job may leave its batches unsynced: only while the loop is behind (a
/// backlog), not stopping, with no failure to retry, and the span would stay under
/// [`SPAN_BYTES`] with `pending` more bytes.
pub fn may_defer(behind: bool, stopping: bool, failing: bool, span: &Span, pending: usize) -> bool {
    behind && !stopping && !failing && span.bytes + pending < SPAN_BYTES
}

/// One batch to commit.
pub struct Job {
    pub batches: OutBatches,
    /// Synced (closing the span) or only written (joining it).
    pub sync: bool,
    /// The last record formatted when the job started: acknowledged once it is done.
    pub upto: Option<u64>,
    /// The durable half of acknowledging `upto` (the source's), run after every batch.
    pub ack: Option<AckSync>,
    pub unwritten: Unwritten,
}

/// A job back from the thread.
pub struct Done {
    pub batches: OutBatches,
    pub sync: bool,
    /// Bytes in the batches.
    pub bytes: usize,
    pub upto: Option<u64>,
    pub unwritten: Unwritten,
    /// Every batch was committed.
    pub written: bool,
    /// The acknowledgement sync's outcome (`None`: not run, or none to run).
    pub acked: Option<Result<(), SourceError>>,
}

impl Job {
    /// Commit the batches, then (if every one was) the acknowledgement.
    pub fn run(self) -> Done {
        let Job {
            mut batches,
            sync,
            upto,
            ack,
            unwritten,
        } = self;
        debug_assert!(sync || ack.is_none(), "acknowledged without a sync");
        let written = batches.run();
        let acked = if written { ack.map(|a| a()) } else { None };
        Done {
            bytes: batches.bytes(),
            batches,
            sync,
            upto,
            unwritten,
            written,
            acked,
        }
    }
}

type Order = (Job, oneshot::Sender<Done>);

#[derive(Default)]
pub struct Committer {
    tx: Option<mpsc::Sender<Order>>,
    out: Option<oneshot::Receiver<Done>>,
}

/// The committer thread went away with a job (it panicked): the job's batches are gone.
#[derive(Debug, thiserror::Error)]
#[error("the output thread ended with a batch in hand")]
pub struct Lost;

impl Committer {
    /// A job is out.
    pub fn busy(&self) -> bool {
        self.out.is_some()
    }

    /// Hand a job to the thread (started now if it is not running). If the thread cannot be
    /// started, the job is run here and its outcome is returned at once.
    pub fn start(&mut self, job: Job) -> Option<Done> {
        debug_assert!(self.out.is_none(), "one job at a time");
        let (done_tx, done_rx) = oneshot::channel();
        let mut order = (job, done_tx);
        if let Some(tx) = &self.tx {
            match tx.send(order) {
                Ok(()) => {
                    self.out = Some(done_rx);
                    return None;
                }
                Err(mpsc::SendError(o)) => order = o,
            }
        }
        let (tx, rx) = mpsc::channel::<Order>();
        let spawned = std::thread::Builder::new()
            .name("fwlog-output".into())
            .spawn(move || {
                for (job, back) in rx {
                    let _ = back.send(job.run());
                }
            });
        if spawned.is_err() {
            self.tx = None;
            return Some(order.0.run());
        }
        match tx.send(order) {
            Ok(()) => {
                self.tx = Some(tx);
                self.out = Some(done_rx);
                None
            }
            Err(mpsc::SendError(o)) => Some(o.0.run()),
        }
    }

    /// The job out, once it is done; never ready while none is out (for `select!`).
    pub async fn done(&mut self) -> Result<Done, Lost> {
        let Some(rx) = &mut self.out else {
            return std::future::pending().await;
        };
        let r = rx.await;
        self.out = None;
        r.map_err(|_| Lost)
    }
}
