//! What the outputs to a database server (PostgreSQL, MariaDB) share: the batch the processing
//! loop fills, a worker thread with a runtime of its own that stores it, and the bounded wait
//! for the worker's answer. Each engine implements only [`Store`]: one batch, one transaction.
//!
//! Invariants:
//! - A batch is handed to the worker once and never sent twice at once: `commit` waits at most
//!   [`COMMIT_WAIT`] for its answer; if none came, `commit` fails (the loop retries with
//!   back-off while intake keeps spooling) and the next `commit` waits for the same batch.
//! - `pending` counts the batch that was sent and not yet answered: were it left out, the loop
//!   would see nothing to commit after a timed-out attempt, never ask for the answer again,
//!   and stay failing for good (a server cut off for longer than the wait).
//! - A batch the worker could not store comes back whole and is sent again by the next
//!   `commit`; the worker drops its connection after any error and gives a batch at most
//!   [`BATCH_TIMEOUT`], connecting included.
//! - Rows the server refused are counted and reported ([`Refusals`]); the engine has already
//!   stored each refused packet row as a `losses` row, and left out each refused `losses` row,
//!   in the same transaction, so a refusal never fails the batch.
//! - Every message from the server is escaped before it reaches stderr.

use std::future::Future;
use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use super::refusal::{Counts, Refusals};
use super::row::{escaped, LossRow, Row};
use super::SqlError;
use crate::format::LossEvent;
use crate::sink::{PacketSink, PacketView};

/// Longest the processing loop waits for one commit attempt.
pub const COMMIT_WAIT: Duration = Duration::from_secs(5);
/// Longest the worker gives one batch (connecting included) before dropping the connection.
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(30);

/// One row of a batch, in the order the loop handed it over.
pub enum Item {
    Packet(Box<Row>),
    Loss(LossRow),
}

pub type Batch = Arc<Vec<Item>>;

/// The packet rows of a batch the server refused (spool sequence number and the server's
/// reason, each to be stored as a loss), or why the batch as a whole was not stored.
pub type Answer = Result<Vec<(u64, String)>, String>;

/// The worker's answer for a batch: what the server refused in it, or why the batch as a whole
/// was not stored.
pub type Outcome = Result<Refusals, String>;

/// The batch's `losses` rows in spool order with their reasons: its loss events, and one row
/// for each packet row the server refused (`refusals`, in spool order) with the server's reason.
pub fn loss_rows(batch: &[Item], refusals: &[(u64, String)]) -> Vec<(LossRow, String)> {
    let mut refused_at = refusals.iter().peekable();
    let mut out = Vec::new();
    for item in batch {
        match item {
            Item::Loss(l) => out.push((l.clone(), l.reason.to_string())),
            Item::Packet(r) => {
                if let Some((_, m)) = refused_at.next_if(|(seq, _)| *seq == r.seq) {
                    out.push((
                        refused_row(r),
                        format!("refused: {}", escaped(m.as_bytes())),
                    ));
                }
            }
        }
    }
    out
}

/// The loss row that stands for a packet row the server refused.
fn refused_row(r: &Row) -> LossRow {
    LossRow {
        seq: r.seq,
        time: r.time,
        nflog_group: Some(r.nflog_group),
        count: 1,
        reason: "refused",
        seq_global: r.seq_global.map(|g| (g, g)),
    }
}

/// One engine's way to store a batch.
pub trait Store: Send + 'static {
    /// Store the batch in one transaction; `Ok` only after the server's COMMIT.
    fn store(&mut self, batch: &[Item]) -> impl Future<Output = Outcome>;
    /// Forget the connection (after an error or a timeout).
    fn reset(&mut self);
}

/// The loop's side of a server output.
pub struct Remote {
    shown: String,
    payload: bool,
    batch: Vec<Item>,
    /// The batch sent to the worker and not yet answered.
    sent: Option<Batch>,
    jobs: Sender<Batch>,
    answers: Receiver<Outcome>,
    /// Rows refused by the server since start.
    pub refused: Counts,
}

impl Remote {
    /// Start `store`'s worker on a thread named `thread`; the server is contacted at the first
    /// commit. `shown` is the URL as messages show it (no password).
    pub fn start<S: Store>(
        thread: &str,
        shown: String,
        payload: bool,
        store: S,
    ) -> Result<Remote, SqlError> {
        let (jobs, job_rx) = mpsc::channel::<Batch>();
        let (answer_tx, answers) = mpsc::channel();
        std::thread::Builder::new()
            .name(thread.into())
            .spawn(move || run(store, job_rx, answer_tx))
            .map_err(|e| SqlError::Db {
                target: shown.clone(),
                message: format!("cannot start its thread: {e}"),
            })?;
        Ok(Remote {
            shown,
            payload,
            batch: Vec::new(),
            sent: None,
            jobs,
            answers,
            refused: Counts::default(),
        })
    }
}

impl PacketSink for Remote {
    fn packet(&mut self, p: &PacketView<'_>) {
        self.batch
            .push(Item::Packet(Box::new(Row::new(p, self.payload))));
    }

    fn loss(&mut self, ev: &LossEvent, seq: u64) {
        self.batch.push(Item::Loss(LossRow::new(ev, seq)));
    }

    fn pending(&self) -> usize {
        let sent = self.sent.as_ref().map_or(0, |b| b.len());
        (self.batch.len() + sent) * 128
    }

    fn commit(&mut self) -> io::Result<()> {
        if self.sent.is_none() {
            if self.batch.is_empty() {
                return Ok(());
            }
            let b: Batch = Arc::new(std::mem::take(&mut self.batch));
            self.jobs
                .send(Arc::clone(&b))
                .map_err(|_| io::Error::other("the database thread is gone"))?;
            self.sent = Some(b);
        }
        match self.answers.recv_timeout(COMMIT_WAIT) {
            Ok(Ok(refusals)) => {
                self.sent = None;
                refusals.report(&self.shown, &mut self.refused);
                Ok(())
            }
            Ok(Err(e)) => {
                // Keep the batch: the next commit sends it again.
                if let Some(b) = self.sent.take() {
                    if let Ok(v) = Arc::try_unwrap(b) {
                        self.batch = v;
                    }
                }
                Err(io::Error::other(escaped(e.as_bytes())))
            }
            Err(RecvTimeoutError::Timeout) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the server has not answered yet",
            )),
            Err(RecvTimeoutError::Disconnected) => {
                Err(io::Error::other("the database thread is gone"))
            }
        }
    }

    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn refused(&self) -> Counts {
        self.refused
    }
}

/// The worker thread: one batch at a time, each within [`BATCH_TIMEOUT`].
fn run<S: Store>(mut store: S, jobs: Receiver<Batch>, answers: Sender<Outcome>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = answers.send(Err(format!("cannot start a runtime: {e}")));
            return;
        }
    };
    while let Ok(batch) = jobs.recv() {
        let r = rt.block_on(async {
            match tokio::time::timeout(BATCH_TIMEOUT, store.store(&batch)).await {
                Ok(r) => r,
                Err(_) => Err("no answer from the server".to_string()),
            }
        });
        if r.is_err() {
            store.reset();
        }
        // Dropped before answering, so the loop can take the batch back whole.
        drop(batch);
        if answers.send(r).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::SqlConfig;
    use super::super::{my, pg};
    use super::*;
    use crate::format::LossCause;
    use crate::packet::{TimeSource, Timestamp};

    #[test]
    fn a_batch_waiting_for_a_silent_server_is_still_pending() {
        // Accepts connections (the kernel's backlog) and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let cfg = SqlConfig {
            host: "h".into(),
            stream: super::super::stream::StreamId::random().unwrap(),
            payload: false,
            retain: None,
            sync: false,
        };
        let ev = LossEvent {
            time: Timestamp {
                sec: 1,
                nsec: 0,
                source: TimeSource::Local,
            },
            group: Some(5),
            count: 1,
            seq_global: None,
            spool_seq: None,
            cause: LossCause::SeqGap,
        };
        let sinks: Vec<Box<dyn PacketSink>> = vec![
            Box::new(pg::open(&format!("postgresql://u:p@127.0.0.1:{port}/db"), &cfg).unwrap()),
            Box::new(my::open(&format!("mysql://u:p@127.0.0.1:{port}/db"), &cfg).unwrap()),
        ];
        for mut sink in sinks {
            sink.loss(&ev, 1);
            assert!(sink.pending() > 0);
            let e = sink.commit().unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{}", sink.describe());
            assert!(
                sink.pending() > 0,
                "{}: the unanswered batch is still pending",
                sink.describe()
            );
        }
    }
}
