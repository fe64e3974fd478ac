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

/// One batch to commit.
pub struct Job {
    pub batches: OutBatches,
    /// The last record formatted when the job started: acknowledged once it is done.
    pub upto: Option<u64>,
    /// The durable half of acknowledging `upto` (the source's), run after every batch.
    pub ack: Option<AckSync>,
    pub unwritten: Unwritten,
}

/// A job back from the thread.
pub struct Done {
    pub batches: OutBatches,
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
            upto,
            ack,
            unwritten,
        } = self;
        let written = batches.run();
        let acked = if written { ack.map(|a| a()) } else { None };
        Done {
            batches,
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
