//! The processing loop's committer thread: the outputs' writes and syncs, then the spool's
//! acknowledgement sync, for one batch while the loop reads and formats the next.
//!
//! Why: a batch's commit is mostly waiting (the output file's `fdatasync`, then the ledger's);
//! done in the loop, that wait and the formatting of the next batch took turns on one core
//! while the other was idle (a start-up replay spent about half its time in the two syncs).
//!
//! Live (the loop caught up), a job that only writes (no sync) and whose batches only copy
//! bytes into local regular files' page cache (`OutBatches::copies_only`) is run on the loop's own
//! thread instead ([`Job::run`] there, its [`Done`] handled at once): at a few hundred such
//! jobs a second, the hand-off (the thread's wake-up, the done message, the runtime's
//! wake-up) cost more than the write, and there is normally no wait to overlap. Syncs, a
//! backlog's batches, and outputs that may wait (a FIFO, a pipe, a terminal, syslog, a file on
//! a network filesystem) keep the thread. A local file's write can still wait for the disk
//! (the page cache throttling a writer far ahead of it, a journal): after one that took over
//! 2 ms on the loop's thread, the loop sends these jobs to the thread again for 10 s, so names,
//! signals and the stop deadline do not wait behind the disk (`process.rs`, `INLINE_SLOW`).
//!
//! Invariants (the loop's acknowledgement rule, unchanged; wherever a job runs):
//! - One job at a time: the loop starts a job only when the last one came back.
//! - A job writes its batches in output order and stops at the first failure; the spool
//!   position is made durable ([`AckSync`]) only after every batch of the job was committed,
//!   and covers only records formatted before the job started, which are all in its batches
//!   (or were committed by outputs that commit in place before it started).
//! - The loop's own `ack` follows on its thread once the job came back, as before.
//! - The acknowledgement sync also hands the spool segments its position completes to the
//!   spool's deletion thread (`fwlog_spool`'s reaper: unlinks and a directory sync), so the
//!   loop's `ack` that follows finds nothing to delete and no batch waits for the unlinks.
//!
//! Commit policy: a job may write its batches without syncing them (`sync` false). The
//! records of such jobs form the open [`Span`]: in the output files, neither synced nor
//! acknowledged. The span is closed by a job with `sync` (its own batches written, then every
//! output's file synced, then the acknowledgement of the whole span stored). [`plan`] decides;
//! a sync is due:
//! - when the span reaches [`SPAN_BYTES`] (the only bound while the loop works through a
//!   backlog);
//! - live (the loop caught up with the source), also once the span's oldest batch is
//!   [`LIVE_SPAN`] old (the daemon's `live_span`, see [`live_span`]): batches are still written
//!   at once, so a line's latency (kernel timestamp to line in the file) is unchanged; only
//!   the syncs and the acknowledgement wait. The loop wakes for that deadline when nothing
//!   else comes ([`Span::due_at`]), so an idle daemon's outputs are synced and its spool
//!   acknowledged within `live_span` of the last packet;
//! - at once on stopping, after a SIGHUP (the reopen waits for the sync), and after any
//!   failure.
//!
//! Outputs that commit in place (SQL, pcap) commit every batch either way; only the
//! acknowledgement waits for the span. With `--fsync never` files are never synced, and the
//! span bounds the acknowledgement (the ledger's sync) alone.
//!
//! Hence:
//! - the spool position never passes a record whose output bytes are not synced;
//! - a crash (kill -9 or power cut) prints at most the open span and the batch that closes it
//!   again, marked replayed: live, at most `live_span` of traffic (100 ms by default) and
//!   never more than [`SPAN_BYTES`] of output; while behind, at most [`SPAN_BYTES`]. The
//!   outputs' torn-tail mark stays at the span's start (`sink::file`), so a power cut anywhere
//!   in it leaves a fragment fwlog may cut;
//! - a failed write or sync keeps the span open: its batch comes back to be written first
//!   (resumed where it stopped, bytes already in the file not written again) and the retry
//!   syncs the whole span, in order, nothing lost; except a failed `fdatasync` of a file
//!   ([`crate::sink::SyncFailed`]), which is not retried: the loop stops with the span
//!   unacknowledged, and the next start prints it again;
//! - the `printed` counter counts a record once its sync is done, so it (and the spool's
//!   `pending`) settles within `live_span` of the last packet.
//!
//! The thread is started at the first job, by the loop's thread, so it inherits that thread's
//! priority (below intake's: `daemon::precedence`). It ends when the committer is dropped.

use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

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

/// Output bytes written unsynced before a sync is due: the disk syncs 330 MB in 4 MiB pieces
/// in 0.8-1.0 s, in 8 MiB pieces in about 0.6 s and in one piece in about 0.4 s
/// (BENCHMARKS.md), and a crash prints at most this much again.
pub const SPAN_BYTES: usize = 32 << 20;

/// Live, how old the span's oldest batch may get before its sync is due. Each sync costs the
/// outputs' `fdatasync` and the ledger's, and the torn-tail mark (with their kernel work:
/// block allocation, writeback, the device's flush); one per intake commit (125-200 a second
/// at 25k-50k packets/s) was half the committer thread's CPU; at 100 ms it is 10 a second,
/// whatever the rate. The span is also what a crash may print again and how long `printed`
/// and `pending` lag behind the output, so it stays short: 50, 100 and 250 ms were measured
/// (BENCHMARKS.md, "live span"): the committer's CPU per record was 0.17, 0.17 and 0.15 µs
/// at 25k packets/s (0.34 with a sync per batch), all within the noise of each other.
pub const LIVE_SPAN: Duration = Duration::from_millis(100);

/// The longest live span the spool's `--fsync` interval can stretch it to (see [`live_span`]).
pub const LIVE_SPAN_MAX: Duration = Duration::from_secs(1);

/// The daemon's live span for the spool's sync policy: [`LIVE_SPAN`], or the spool's sync
/// interval (`--fsync 500ms`) when that is longer, up to [`LIVE_SPAN_MAX`]. Who accepts losing
/// an interval of packets to a power cut gains nothing from outputs synced more often than the
/// spool they come from; past a second, a crash would print too much again and the counters
/// lag too long. `--fsync never` keeps [`LIVE_SPAN`]: the outputs are not synced then, but the
/// acknowledgement (the ledger's sync) still waits for the span.
pub fn live_span(spool_interval: Option<Duration>) -> Duration {
    spool_interval.map_or(LIVE_SPAN, |i| i.clamp(LIVE_SPAN, LIVE_SPAN_MAX))
}

/// Outputs are written at most this often while little is pending and the loop has not caught
/// up: the writes of a burst are gathered into fewer, larger batches. It adds at most this much
/// to a line's latency, and nothing once the loop has caught up with the source (see
/// [`CAUGHT_UP_GAP`]).
pub const WRITE_INTERVAL: Duration = Duration::from_millis(10);
/// Once the loop has taken everything the source holds, nothing more can join the batch until
/// intake's next commit, so waiting out [`WRITE_INTERVAL`] would only delay a live trickle's
/// lines: the batch is written at once, at most this often (so at most one output write per
/// spool group commit at its default delay, however short `--batch-delay` is made).
pub const CAUGHT_UP_GAP: Duration = Duration::from_millis(2);
/// ... unless this much is waiting.
pub const WRITE_BYTES: usize = 256 * 1024;
/// ... or this much while working through a backlog (the window came back full from the
/// source): fewer, larger batches; latency does not matter there, the lines are late already.
pub const BACKLOG_WRITE_BYTES: usize = 4 << 20;

/// How much to gather before a write: more while working through a backlog.
pub fn batch_bytes(behind: bool) -> usize {
    if behind {
        BACKLOG_WRITE_BYTES
    } else {
        WRITE_BYTES
    }
}

/// How long formatted lines wait for more to join their batch.
pub fn write_interval(caught_up: bool) -> Duration {
    if caught_up {
        CAUGHT_UP_GAP
    } else {
        WRITE_INTERVAL
    }
}

/// Records written to the outputs by jobs without `sync`: not yet synced nor acknowledged.
#[derive(Default, Debug)]
pub struct Span {
    /// The last record written; `None` when the span is closed.
    pub upto: Option<u64>,
    /// Output bytes written in the span.
    pub bytes: usize,
    pub unwritten: Unwritten,
    /// When its first job started: the age that bounds a live span.
    pub opened: Option<Instant>,
}

impl Span {
    pub fn is_open(&self) -> bool {
        self.upto.is_some() || self.bytes > 0
    }

    /// A job without `sync` starts at `now`: the span's age counts from its first one.
    pub fn starting(&mut self, now: Instant) {
        self.opened.get_or_insert(now);
    }

    /// A job without `sync` came back written: its records join the span.
    pub fn add(&mut self, upto: Option<u64>, bytes: usize, unwritten: Unwritten) {
        self.upto = self.upto.max(upto);
        self.bytes += bytes;
        self.unwritten.add(unwritten);
    }

    /// When the open span's sync falls due by its age alone, for the loop's wake-up: `None`
    /// while it is closed, or while the loop is behind (a backlog's span waits for its bytes).
    pub fn due_at(&self, behind: bool, live_span: Duration) -> Option<Instant> {
        if behind || !self.is_open() {
            return None;
        }
        self.opened.map(|t| t + live_span)
    }
}

/// What the loop knows when it decides on the next job.
#[derive(Debug, Clone, Copy)]
pub struct Moment {
    pub now: Instant,
    /// Bytes formatted and not yet committed.
    pub pending: usize,
    /// Working through a backlog (the last fill found more than the window holds).
    pub behind: bool,
    /// Stopping, or the source ended.
    pub stopping: bool,
    /// An output failed and its batch is held for the retry.
    pub failing: bool,
    /// A SIGHUP asked for the outputs to be reopened (each waits for its sync).
    pub reopen: bool,
    /// A write is due by the cadence: enough is pending, it waited long enough, or stopping.
    pub write_due: bool,
    /// No failed output is waiting out its back-off.
    pub retry_due: bool,
}

/// The next job, by the policy in the module docs: `None` when none is due, else whether it
/// syncs (closing the span, with or without batches of its own) or only writes (joining it).
pub fn plan(m: &Moment, span: &Span, live_span: Duration) -> Option<bool> {
    if !m.retry_due {
        return None;
    }
    let defer = may_defer(m, span, live_span);
    let write = m.pending > 0 && m.write_due;
    let sync = span.is_open() && !defer;
    (write || sync).then_some(!defer)
}

/// Whether the next job may leave its batches unsynced: not when stopping, failing or asked
/// to reopen, and only while the span stays under [`SPAN_BYTES`] with `pending` more bytes;
/// then while behind, or live while the span is younger than `live_span` (never when that is
/// zero: `fwlog read` and `replay`, whose outputs are not synced).
pub fn may_defer(m: &Moment, span: &Span, live_span: Duration) -> bool {
    if m.stopping || m.failing || m.reopen || span.bytes + m.pending >= SPAN_BYTES {
        return false;
    }
    m.behind || (!live_span.is_zero() && span.opened.is_none_or(|t| m.now < t + live_span))
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

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A caught-up loop with one small batch due to be written.
    fn live(now: Instant) -> Moment {
        Moment {
            now,
            pending: 1000,
            behind: false,
            stopping: false,
            failing: false,
            reopen: false,
            write_due: true,
            retry_due: true,
        }
    }

    fn open_span(opened: Instant, bytes: usize) -> Span {
        let mut s = Span::default();
        s.starting(opened);
        s.add(Some(7), bytes, Unwritten::default());
        s
    }

    #[test]
    fn live_batches_join_the_span_until_its_oldest_is_live_span_old() {
        let t = Instant::now();
        assert_eq!(plan(&live(t), &Span::default(), LIVE_SPAN), Some(false));
        let span = open_span(t, 5000);
        assert_eq!(plan(&live(t + 99 * MS), &span, LIVE_SPAN), Some(false));
        assert_eq!(plan(&live(t + 100 * MS), &span, LIVE_SPAN), Some(true));
        // Nothing new to write: the deadline alone syncs the span, and nothing before it.
        let idle = |now| Moment {
            pending: 0,
            write_due: false,
            ..live(now)
        };
        assert_eq!(plan(&idle(t + 50 * MS), &span, LIVE_SPAN), None);
        assert_eq!(plan(&idle(t + 100 * MS), &span, LIVE_SPAN), Some(true));
        assert_eq!(span.due_at(false, LIVE_SPAN), Some(t + LIVE_SPAN));
        assert_eq!(Span::default().due_at(false, LIVE_SPAN), None);
        assert_eq!(plan(&idle(t), &Span::default(), LIVE_SPAN), None);
    }

    #[test]
    fn stopping_a_reopen_or_a_failure_closes_the_span_at_once() {
        let t = Instant::now();
        let span = open_span(t, 5000);
        for m in [
            Moment {
                stopping: true,
                ..live(t)
            },
            Moment {
                reopen: true,
                write_due: false,
                pending: 0,
                ..live(t)
            },
            Moment {
                failing: true,
                ..live(t)
            },
        ] {
            assert_eq!(plan(&m, &span, LIVE_SPAN), Some(true), "{m:?}");
        }
        // A failed output's back-off holds everything, the span's sync too.
        let waiting = Moment {
            failing: true,
            retry_due: false,
            ..live(t + LIVE_SPAN)
        };
        assert_eq!(plan(&waiting, &span, LIVE_SPAN), None);
    }

    #[test]
    fn the_byte_limit_closes_a_span_live_or_behind() {
        let t = Instant::now();
        let span = open_span(t, SPAN_BYTES - 1000);
        assert_eq!(plan(&live(t), &span, LIVE_SPAN), Some(true));
        let behind = Moment {
            behind: true,
            ..live(t)
        };
        assert_eq!(plan(&behind, &span, LIVE_SPAN), Some(true));
        let small = open_span(t, 5000);
        assert_eq!(plan(&behind, &small, LIVE_SPAN), Some(false));
    }

    #[test]
    fn behind_the_span_waits_for_its_bytes_not_its_age() {
        let t = Instant::now();
        let span = open_span(t, 5000);
        let behind = Moment {
            behind: true,
            ..live(t + 10 * LIVE_SPAN)
        };
        assert_eq!(plan(&behind, &span, LIVE_SPAN), Some(false));
        assert_eq!(span.due_at(true, LIVE_SPAN), None, "no wake-up for its age");
    }

    #[test]
    fn without_a_live_span_every_live_batch_is_synced() {
        let t = Instant::now();
        assert_eq!(plan(&live(t), &Span::default(), Duration::ZERO), Some(true));
    }

    #[test]
    fn the_spool_interval_stretches_the_live_span_within_bounds() {
        assert_eq!(live_span(None), LIVE_SPAN);
        assert_eq!(live_span(Some(10 * MS)), LIVE_SPAN);
        assert_eq!(live_span(Some(500 * MS)), 500 * MS);
        assert_eq!(live_span(Some(Duration::from_secs(30))), LIVE_SPAN_MAX);
    }
}
