//! What the outputs to a database server (PostgreSQL, MariaDB) share: the batch the processing
//! loop fills, a worker thread with a runtime of its own that stores it, and the bounded wait
//! for the worker's answer. Each engine implements only [`Store`]: one batch, one transaction.
//!
//! Invariants:
//! - An engine that streams ([`Store::STREAMS`]) gets the batch in [`CHUNK`]s of rows while the
//!   loop adds to it, and its end at the commit; the others get it whole at the commit. Either
//!   way the worker answers only after the batch's end, once it dropped every chunk.
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

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;

use super::refusal::{Counts, Refusals};
use super::row::{escaped, LossRow, Row};
use super::SqlError;
use crate::format::LossEvent;
use crate::sink::{PacketSink, PacketView};

/// Longest the processing loop waits for one commit attempt.
pub const COMMIT_WAIT: Duration = Duration::from_secs(5);
/// Longest the worker gives one batch (connecting included) before dropping the connection.
/// Time spent waiting for the loop to hand over more of a streamed batch does not count.
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Rows per chunk a streaming engine ([`Store::STREAMS`]) is handed while the loop still adds
/// to the batch: small enough that the server is rarely idle while the loop builds rows,
/// large enough that handing one over (an allocation and a wake-up) costs nothing per row.
pub const CHUNK: usize = 256;
/// Longest a streaming engine keeps a batch's transaction open waiting for the loop's next
/// chunk before it gives the stream up and stores the batch whole at its commit: the loop may
/// be held up (names, a failing output), and an open transaction holds its locks meanwhile.
pub const STREAM_IDLE: Duration = Duration::from_secs(1);

/// One row of a batch, in the order the loop handed it over.
#[derive(Clone)]
pub enum Item {
    Packet(Box<Row>),
    Loss(LossRow),
}

/// Part of a batch, handed to the worker at once.
pub type Chunk = Arc<Vec<Item>>;

/// What the loop sends the worker: the next chunk of the current batch, or its end (commit).
enum Job {
    Rows(Chunk),
    End,
}

/// The packet rows of a batch the server refused (spool sequence number and the server's
/// reason, each to be stored as a loss), or why the batch as a whole was not stored.
pub type Answer = Result<Vec<(u64, String)>, String>;

/// The worker's answer for a batch: what the server refused in it, or why the batch as a whole
/// was not stored.
pub type Outcome = Result<Refusals, String>;

/// The batch's `losses` rows in spool order with their reasons: its loss events, and one row
/// for each packet row the server refused (`refusals`, in spool order) with the server's reason.
pub fn loss_rows<'a>(
    batch: impl Iterator<Item = &'a Item>,
    refusals: &[(u64, String)],
) -> Vec<(LossRow, String)> {
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
    /// Whether the engine takes a batch's rows in [`CHUNK`]s while the loop is still adding to
    /// it ([`Feed::next`]); otherwise the whole batch comes at the commit.
    const STREAMS: bool;
    /// Store the batch in one transaction; `Ok` only after the server's COMMIT. The batch is
    /// what `feed` has received once [`Feed::ended`] (see [`Feed::rest`]).
    fn store(&mut self, feed: &mut Feed) -> impl Future<Output = Outcome>;
    /// Forget the connection (after an error or a timeout).
    fn reset(&mut self);
}

/// What happened while waiting for more of a batch.
pub enum Next {
    /// Another chunk (also kept in the feed).
    Chunk(Chunk),
    /// The loop committed: the batch is whole.
    End,
    /// Nothing came within the wait.
    Idle,
    /// The loop is gone: the batch will never be committed.
    Gone,
}

/// The worker's side of one batch: the chunks received so far, and the way to wait for more.
/// Waiting for the loop does not count against [`BATCH_TIMEOUT`] (see [`Clock`]).
pub struct Feed {
    rx: UnboundedReceiver<Job>,
    got: Vec<Chunk>,
    ended: bool,
    gone: bool,
    clock: Clock,
}

impl Feed {
    /// The chunks received so far, in order.
    pub fn chunks(&self) -> &[Chunk] {
        &self.got
    }

    /// The rows received so far, in order.
    pub fn items(&self) -> impl Iterator<Item = &Item> + Clone {
        self.got.iter().flat_map(|c| c.iter())
    }

    /// Whether the loop committed: no more rows come for this batch.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Wait at most `idle` for the next chunk or the end of the batch.
    pub async fn next(&mut self, idle: Duration) -> Next {
        if self.ended {
            return if self.gone { Next::Gone } else { Next::End };
        }
        self.clock.waiting(true);
        let r = tokio::time::timeout(idle, self.rx.recv()).await;
        self.clock.waiting(false);
        match r {
            Err(_) => Next::Idle,
            Ok(j) => self.take(j),
        }
    }

    /// Wait (as long as the loop takes) for the whole batch; false when the loop is gone.
    pub async fn rest(&mut self) -> bool {
        while !self.ended {
            self.clock.waiting(true);
            let j = self.rx.recv().await;
            self.clock.waiting(false);
            self.take(j);
        }
        !self.gone
    }

    fn take(&mut self, j: Option<Job>) -> Next {
        match j {
            Some(Job::Rows(c)) => {
                self.got.push(Arc::clone(&c));
                Next::Chunk(c)
            }
            Some(Job::End) => {
                self.ended = true;
                Next::End
            }
            None => {
                self.ended = true;
                self.gone = true;
                Next::Gone
            }
        }
    }
}

/// When the worker last stopped waiting for the loop, and whether it is waiting now: a batch's
/// [`BATCH_TIMEOUT`] counts the server's time only.
#[derive(Clone)]
struct Clock(Rc<Cell<(bool, Instant)>>);

impl Clock {
    fn new() -> Clock {
        Clock(Rc::new(Cell::new((false, Instant::now()))))
    }

    fn waiting(&self, w: bool) {
        self.0.set((w, Instant::now()));
    }

    /// When the batch runs out of time if nothing changes (far off while waiting for the loop).
    fn deadline(&self) -> Instant {
        match self.0.get() {
            (false, since) => since + BATCH_TIMEOUT,
            (true, _) => Instant::now() + BATCH_TIMEOUT,
        }
    }

    fn expired(&self) -> bool {
        !self.0.get().0 && Instant::now() >= self.deadline()
    }
}

/// The loop's side of a server output.
pub struct Remote {
    shown: String,
    payload: bool,
    /// Rows not handed to the worker yet.
    batch: Vec<Item>,
    /// The current batch's chunks already handed to the worker (streaming engines only before
    /// the commit).
    out: Vec<Chunk>,
    /// The current batch was ended (committed) and not yet answered.
    ended: bool,
    streams: bool,
    jobs: UnboundedSender<Job>,
    answers: Receiver<Outcome>,
    /// Rows refused by the server since start.
    pub refused: Counts,
}

impl Remote {
    /// Start `store`'s worker on a thread named `thread`; the server is contacted at the first
    /// commit (or, for a streaming engine, at the batch's first chunk). `shown` is the URL as
    /// messages show it (no password).
    pub fn start<S: Store>(
        thread: &str,
        shown: String,
        payload: bool,
        store: S,
    ) -> Result<Remote, SqlError> {
        let (jobs, job_rx) = unbounded_channel::<Job>();
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
            out: Vec::new(),
            ended: false,
            streams: S::STREAMS,
            jobs,
            answers,
            refused: Counts::default(),
        })
    }

    /// Hand the rows not sent yet to the worker as one chunk.
    fn send_chunk(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let c: Chunk = Arc::new(std::mem::take(&mut self.batch));
        if let Err(e) = self.jobs.send(Job::Rows(Arc::clone(&c))) {
            drop(e);
            self.batch = Arc::try_unwrap(c).unwrap_or_else(|c| c.to_vec());
            return Err(io::Error::other("the database thread is gone"));
        }
        self.out.push(c);
        Ok(())
    }

    /// Take the sent chunks back in front of the rows not sent (the batch failed).
    fn take_back(&mut self) {
        let mut whole = Vec::new();
        for c in self.out.drain(..) {
            // The worker dropped its references before answering; a copy if it had not.
            whole.extend(Arc::try_unwrap(c).unwrap_or_else(|c| c.to_vec()));
        }
        whole.append(&mut self.batch);
        self.batch = whole;
        self.ended = false;
    }
}

impl PacketSink for Remote {
    fn packet(&mut self, p: &PacketView<'_>) {
        self.batch
            .push(Item::Packet(Box::new(Row::new(p, self.payload))));
        if self.streams && !self.ended && self.batch.len() >= CHUNK {
            // A failure here shows at the commit (the rows stay in the batch).
            let _ = self.send_chunk();
        }
    }

    fn loss(&mut self, ev: &LossEvent, seq: u64) {
        self.batch.push(Item::Loss(LossRow::new(ev, seq)));
    }

    fn pending(&self) -> usize {
        let out: usize = self.out.iter().map(|c| c.len()).sum();
        (self.batch.len() + out) * 128
    }

    fn commit(&mut self) -> io::Result<()> {
        if !self.ended {
            if self.batch.is_empty() && self.out.is_empty() {
                return Ok(());
            }
            self.send_chunk()?;
            self.jobs
                .send(Job::End)
                .map_err(|_| io::Error::other("the database thread is gone"))?;
            self.ended = true;
        }
        match self.answers.recv_timeout(COMMIT_WAIT) {
            Ok(Ok(refusals)) => {
                self.out.clear();
                self.ended = false;
                refusals.report(&self.shown, &mut self.refused);
                Ok(())
            }
            Ok(Err(e)) => {
                // Keep the batch: the next commit sends it again.
                self.take_back();
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

/// The worker thread: one batch at a time, each within [`BATCH_TIMEOUT`] of the server's time;
/// answered only once the loop ended the batch and every chunk of it was dropped here.
fn run<S: Store>(mut store: S, jobs: UnboundedReceiver<Job>, answers: Sender<Outcome>) {
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
    rt.block_on(async move {
        let mut feed = Feed {
            rx: jobs,
            got: Vec::new(),
            ended: false,
            gone: false,
            clock: Clock::new(),
        };
        loop {
            // The first chunk of the next batch.
            feed.ended = false;
            if let Next::Gone = feed.next(Duration::MAX).await {
                return;
            }
            let clock = feed.clock.clone();
            let r = bounded(store.store(&mut feed), &clock)
                .await
                .unwrap_or_else(|| Err("no answer from the server".to_string()));
            if r.is_err() {
                store.reset();
            }
            // The rest of the batch when the engine stopped early; then every chunk is
            // dropped before answering, so the loop can take the batch back whole.
            if !feed.rest().await {
                return;
            }
            feed.got.clear();
            if answers.send(r).is_err() {
                return;
            }
        }
    });
}

/// `fut`'s output, or `None` once it has spent [`BATCH_TIMEOUT`] at a stretch not waiting
/// for the loop.
async fn bounded<F: Future>(fut: F, clock: &Clock) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    loop {
        tokio::select! {
            r = &mut fut => return Some(r),
            _ = tokio::time::sleep_until(clock.deadline()) => {
                if clock.expired() {
                    return None;
                }
            }
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
