//! The processing loop: spool -> resolve -> format -> outputs -> acknowledge.
//!
//! Invariants:
//! - Lines come out in spool order, which is arrival order. The packet at the head of the
//!   window waits for its names at most until its deadline (`--dns-timeout` after it entered the
//!   window), then prints with what is known; packets behind it wait for it.
//! - Memory is bounded by the window (`--window` records, and [`WINDOW_BYTES`] of record data,
//!   whichever is reached first: records may be up to 16 MiB each): when it is full, nothing
//!   more is read
//!   from the spool; the backlog stays on disk however large it grows.
//! - A record is acknowledged only after every output wrote its line. While an output fails,
//!   the formatted batch is kept and retried with backoff, nothing new is printed, and intake
//!   keeps spooling.
//! - Text outputs are written and synced, and then the spool position synced, on the
//!   committer thread (`commit.rs`) while the loop formats the next batch (live, a batch
//!   that is only copied into a local regular file's page cache, unsynced, is written on the loop's
//!   thread instead, in the same order): one batch out at a
//!   time, and at most about one more formatted meanwhile (see `held_back`). Batches are
//!   written unsynced and synced (and acknowledged) together: while the loop is behind, every
//!   `commit::SPAN_BYTES`; live, once the oldest is `live_span` old (100 ms by default);
//!   at once when it stops, reopens or fails (`commit.rs`). A crash prints at most that span
//!   again, marked replayed.
//! - DNS state lives in the resolver's cache, not here: a packet is ready when every address
//!   of it is a cache hit (a name, a known absence, or a recent failure).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::Notify;
use tokio::time::{sleep_until, Instant};

use super::commit::{self, Committer, Done, Job, Moment, Span, Unwritten};
use super::loss;
use super::outputs::Outputs;
use super::source::{Source, SourceError};
use super::window::{PacketNames, Window};
use crate::counters::{bump, Counters};
use crate::dns::{Check, Lookup, NameMemo, Resolver};
use crate::geo::Geo;
use crate::nflog::attr::{self, LossRecord, TlvOrder};

pub use crate::signals::Control;

/// Why the processing loop ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// An output's reader went away (`fwlog read | head`): the reader's choice, not a failure.
    #[error("output closed")]
    OutputClosed,
    /// An output failed where retrying is not wanted (read, replay).
    #[error("cannot write to {target}: {source}")]
    Output {
        target: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
}

pub struct Processor<S: Source> {
    pub source: S,
    pub outputs: Outputs,
    pub resolver: Option<Resolver>,
    /// GeoIP/ASN databases, looked up beside the names; reread on SIGHUP.
    pub geo: Option<Geo>,
    pub dns_timeout: Duration,
    pub window_cap: usize,
    pub counters: Arc<Counters>,
    /// Poked by intake after each commit.
    pub data_wake: Arc<Notify>,
    /// Set when stopping: intake stops; this loop finishes what is ready and returns. Intake
    /// sets it too when it ends with an error.
    pub stop: Arc<AtomicBool>,
    /// Requests (reopen, counters, stop); a closed channel just means no more requests.
    pub control: UnboundedReceiver<Control>,
    /// How long shutdown may take to print what is ready.
    pub stop_grace: Duration,
    /// Keep retrying a failed output (the daemon) rather than failing (read, replay).
    pub retry_outputs: bool,
    /// The service manager to tell about readiness, reloads, stopping and liveness (`fwlog
    /// run` started by systemd); `None` for read and replay.
    pub service: Option<crate::sdnotify::service::Service>,
    /// Live, how long the outputs' syncs and the acknowledgement may wait (`commit.rs`).
    pub live_span: Duration,
    /// A write on the loop's own thread slower than this sends such writes to the committer
    /// thread for a while ([`INLINE_SLOW`]; the model tests raise it, their clock being paused
    /// while the machine's load may stretch any real write).
    pub inline_slow: Duration,
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// An output that cannot take more yet (a pipe whose reader is slow) is tried again this soon.
const STALL_RETRY: Duration = Duration::from_millis(20);
/// ... and reported on stderr once it has been stalled this long.
const STALL_NOTICE: Duration = Duration::from_secs(5);

/// The window also stops taking records once it holds this much record data: `--window`
/// counts records, and a spool record may be 16 MiB (a crafted spool of such records would
/// otherwise hold gigabytes in memory).
pub const WINDOW_BYTES: usize = 64 << 20;

/// The loop's state between rounds.
struct LoopState {
    window: Window,
    /// The last record formatted and not yet acknowledged.
    last_printed: Option<u64>,
    /// When a failed output may be tried again.
    retry_at: Option<Instant>,
    last_write: Instant,
    backoff: Duration,
    /// The output that is failing, while one is.
    failing: Option<String>,
    /// Set once stopping: the latest time to return.
    stop_at: Option<Instant>,
    dns_wake: Arc<Notify>,
    /// Whether the current output failure was said on stderr (once per episode).
    announced: bool,
    /// Since when an output has not taken more (a FIFO nobody reads).
    stalled_since: Option<Instant>,
    /// Packets formatted but not yet written by every output: counted as printed only then.
    unwritten: Unwritten,
    /// The last fill found more in the source than the window holds (a backlog).
    behind: bool,
    /// The batch being committed on the committer thread.
    committer: Committer,
    /// The last fill took everything the source held.
    caught_up: bool,
    /// Written to the outputs unsynced, not yet acknowledged (see `commit.rs`).
    span: Span,
    /// A SIGHUP came: the span is synced at once (each file's reopen waits for it).
    reopen: bool,
    /// The last record of a failed job's batches, held to be written first by the retry: the
    /// retry acknowledges up to this, not `last_printed` (what was formatted while that job
    /// was out is in the outputs' next batches, not in the held ones).
    held_upto: Option<u64>,
    /// Names lent for printing, in front of the resolver's shared cache (see `dns::NameMemo`).
    memo: Option<NameMemo>,
    /// Until then, unsynced writes go to the committer thread even when they only copy: one
    /// written on the loop's thread took longer than [`INLINE_SLOW`].
    inline_off_until: Option<Instant>,
}

/// A write on the loop's own thread that takes longer than this (the page cache throttling a
/// writer far behind its disk, a journal wait, a slow device behind a local filesystem) sends
/// the loop's unsynced writes back to the committer thread for [`INLINE_OFF`], so that names,
/// signals and the stop deadline are not kept waiting behind the disk.
pub const INLINE_SLOW: Duration = Duration::from_millis(2);
const INLINE_OFF: Duration = Duration::from_secs(10);

/// Records the loop reads into the window before printing those that are ready: a round
/// goes chunk by chunk up to a window's worth. Each record's entry, parse, names and bytes are
/// then still in the first-level caches when it prints, and the spare entries a chunk takes
/// are the ones the chunk before gave back, so a round's working set is a chunk's entries,
/// not a window's (at 25k packets/s a wake-up brings about 400 records: filling all of them
/// first, the printing side found most of them evicted; BENCHMARKS.md, "fill and print a
/// chunk at a time"). Records waiting for names stay in the window, and the next chunk is read
/// behind them, so lookups start as early as before.
pub const FILL_CHUNK: usize = 32;

/// How a fill ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// The source had no more.
    CaughtUp,
    /// The window is full.
    Full,
    /// It took a chunk's worth; the caller prints them and fills again.
    Chunk,
}

impl<S: Source> Processor<S> {
    pub async fn run(mut self) -> Result<(), ProcessError> {
        // Ready only now: the signals' owner installed its handlers before the loop started,
        // so a SIGTERM that follows READY=1 finds them.
        if let Some(s) = &mut self.service {
            s.ready();
        }
        let mut st = LoopState {
            window: Window::with_capacity(self.window_cap.min(1 << 16)),
            last_printed: None,
            retry_at: None,
            last_write: Instant::now(),
            backoff: FIRST_BACKOFF,
            failing: None,
            stop_at: None,
            dns_wake: Arc::new(Notify::new()),
            announced: false,
            stalled_since: None,
            unwritten: Unwritten::default(),
            behind: false,
            committer: Committer::default(),
            caught_up: false,
            span: Span::default(),
            reopen: false,
            held_upto: None,
            memo: self.resolver.as_ref().map(Resolver::memo),
            inline_off_until: None,
        };
        loop {
            if st.stop_at.is_none() && self.stop.load(Ordering::Relaxed) {
                // Intake ended (an error it has reported): finish like on SIGTERM.
                self.begin_stop(&mut st.stop_at);
            }
            let now = Instant::now();
            // Watchdog and status: only reached when the loop goes round (see sdnotify::service).
            let source = &self.source;
            let service_at = self
                .service
                .as_mut()
                .and_then(|s| s.tick(now.into_std(), || source.pending()))
                .map(Instant::from_std);
            // When the window was full, the source may hold more: once draining makes room, go
            // round again at once instead of waiting for a wake-up (a backlog or a replay would
            // otherwise move one window per tick).
            let mut more = false;
            if st.failing.is_none() && !self.held_back(&st) {
                let full = self.fill_and_drain(&mut st, now)?;
                more = full && st.window.len() < self.window_cap && st.window.bytes < WINDOW_BYTES;
                st.behind = full;
            }
            self.write_if_due(&mut st, now)?;
            // Acknowledge only what every output has written: formatted lines may wait in the
            // buffers for the next write (WRITE_INTERVAL), and a crash must replay them.
            if st.failing.is_none()
                && self.outputs.pending_bytes() == 0
                && !st.committer.busy()
                && !st.span.is_open()
            {
                if let Some(seq) = st.last_printed.take().max(st.held_upto.take()) {
                    self.source.ack(seq)?;
                    self.counters.acked();
                    self.note_oldest(st.window.entries.front().map(|e| e.record()), true);
                }
            }
            if self.finished(&st) {
                break;
            }
            let wake_at = self.next_wake(&st, service_at, more);
            tokio::select! {
                _ = self.data_wake.notified() => {}
                _ = st.dns_wake.notified() => {}
                _ = sleep_until(wake_at), if !more => {}
                // More to read at once: a timer due now still waits for the timer wheel's
                // next tick (1 ms), which was a third of a start-up replay's time (one window
                // per round); a yield lets signals and the committer in without the wait.
                _ = tokio::task::yield_now(), if more => {}
                Some(c) = self.control.recv() => self.control(c, &mut st),
                done = st.committer.done(), if st.committer.busy() => {
                    let done = done.map_err(|e| ProcessError::Output {
                        target: "outputs".into(),
                        source: std::io::Error::other(e),
                    })?;
                    self.committed(&mut st, done)?;
                }
            }
        }
        self.counters
            .pending_at_exit
            .store(self.source.pending(), Ordering::Relaxed);
        Ok(())
    }

    /// Whether the loop is done: the source ended and everything is written, or it is
    /// stopping and has nothing left (or no more time, or a failing output).
    fn finished(&self, st: &LoopState) -> bool {
        let idle = st.window.is_empty()
            && self.outputs.pending_bytes() == 0
            && !st.span.is_open()
            && !st.committer.busy();
        if self.source.finished() && idle {
            return true;
        }
        // A failing output is not retried while stopping: a retry can take seconds (a 5 s
        // TCP connect limit), and what it would print stays in the spool anyway.
        st.stop_at
            .is_some_and(|t| idle || st.failing.is_some() || Instant::now() >= t)
    }

    /// Commit the outputs' batches when enough is waiting or it has waited long enough, and
    /// no failed output is waiting out its back-off; unsynced while the span may stay open,
    /// and the span's sync when it is due, with or without a batch (`commit::plan`).
    fn write_if_due(&mut self, st: &mut LoopState, now: Instant) -> Result<(), ProcessError> {
        if st.committer.busy() {
            return Ok(());
        }
        let pending = self.outputs.pending_bytes();
        let stopping = st.stop_at.is_some() || self.source.finished();
        let behind = st.behind && !st.caught_up;
        let m = Moment {
            now,
            pending,
            behind,
            stopping,
            failing: st.failing.is_some(),
            reopen: st.reopen,
            write_due: pending >= commit::batch_bytes(st.behind)
                || now >= st.last_write + commit::write_interval(st.caught_up)
                || stopping,
            retry_due: st.retry_at.is_none_or(|t| now >= t),
        };
        let Some(sync) = commit::plan(&m, &st.span, self.live_span) else {
            return Ok(());
        };
        let defer = !sync;
        st.reopen &= defer;
        st.last_write = now;
        let batches = match self.outputs.detach(!defer) {
            Ok(Some(b)) => b,
            Ok(None) => {
                if !defer {
                    // No output owes a sync: the span's records are done as they are.
                    let span = std::mem::take(&mut st.span);
                    st.last_printed = st.last_printed.max(span.upto);
                    st.unwritten.add(span.unwritten);
                }
                let done = std::mem::take(&mut st.unwritten);
                return self.written(st, Ok(()), done);
            }
            Err(e) => return self.written(st, Err(e), Unwritten::default()),
        };
        if defer {
            st.span.starting(now);
        }
        // A retry writes the held batches: they end at `held_upto`.
        let job_upto = st.held_upto.take().or_else(|| st.last_printed.take());
        let (upto, ack) = if defer {
            (job_upto, None)
        } else {
            let upto = job_upto.max(st.span.upto);
            let ack = match upto {
                Some(seq) => self.source.ack_sync(seq)?,
                None => None,
            };
            (upto, ack)
        };
        let job = Job {
            batches,
            sync: !defer,
            upto,
            ack,
            unwritten: std::mem::take(&mut st.unwritten),
        };
        let inline_ok = st.inline_off_until.is_none_or(|t| now >= t);
        if !job.sync && !behind && inline_ok && job.batches.copies_only() {
            // Live, a batch only copied into the page cache is written here: the hand-off
            // (the thread's wake-up, the done message, the runtime's wake-up) costs more than
            // the write. Syncs, a backlog's batches and outputs that may wait keep the thread,
            // and so do these writes for a while after one of them was slow.
            // The write's own time is real time (the test runtime pauses tokio's clock).
            let start = std::time::Instant::now();
            let done = job.run();
            st.inline_off_until =
                (start.elapsed() > self.inline_slow).then(|| Instant::now() + INLINE_OFF);
            return self.committed(st, done);
        }
        match st.committer.start(job) {
            Some(done) => self.committed(st, done),
            None => Ok(()),
        }
    }

    /// A job came back from the committer: give the batches back, then acknowledge what it
    /// covered, or keep it all for the retry.
    fn committed(&mut self, st: &mut LoopState, done: Done) -> Result<(), ProcessError> {
        let Done {
            batches,
            sync,
            bytes,
            upto,
            unwritten,
            written,
            acked,
        } = done;
        let r = self.outputs.attach(batches);
        debug_assert_eq!(r.is_ok(), written);
        if r.is_err() {
            // Printed again, whole, by the retry: nothing of it is acknowledged. The span stays
            // open; the retry syncs it.
            st.held_upto = st.held_upto.max(upto);
            st.unwritten.add(unwritten);
            return self.written(st, r, Unwritten::default());
        }
        if !sync {
            // Written, not synced: joins the span, acknowledged by the sync that closes it.
            st.span.add(upto, bytes, unwritten);
            return self.written(st, Ok(()), Unwritten::default());
        }
        if let Some(a) = acked {
            a?;
        }
        let mut done = std::mem::take(&mut st.span).unwritten;
        done.add(unwritten);
        done.add(std::mem::take(&mut st.unwritten));
        self.written(st, Ok(()), done)?;
        if let Some(seq) = upto {
            // The durable part ran on the committer thread; this does the rest.
            self.source.ack(seq)?;
            self.counters.acked();
            self.note_oldest(st.window.entries.front().map(|e| e.record()), true);
        }
        Ok(())
    }

    /// While a batch is out, format at most one more batch's worth: memory stays bounded by
    /// two batches per output, and a slow output slows the loop as it did without the thread.
    fn held_back(&self, st: &LoopState) -> bool {
        st.committer.busy() && self.outputs.unsent_bytes() >= commit::batch_bytes(st.behind)
    }

    /// After the outputs' batches were committed (or one failed): the counters (`done`: the
    /// packets now written by every output), the failure bookkeeping, the back-off.
    fn written(
        &mut self,
        st: &mut LoopState,
        r: Result<(), (String, std::io::Error)>,
        done: Unwritten,
    ) -> Result<(), ProcessError> {
        let now = Instant::now();
        match r {
            Ok(()) => {
                bump(&self.counters.printed, done.printed);
                bump(&self.counters.replayed, done.replayed);
                if let Some(what) = st.failing.take().filter(|_| st.announced) {
                    crate::say!("fwlog: output {what} works again; catching up");
                }
                st.announced = false;
                st.stalled_since = None;
                st.retry_at = None;
                st.backoff = FIRST_BACKOFF;
            }
            Err((what, e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // A pipe or device whose reader is not reading: not an error, but nothing new
                // is taken until it drains. Retried soon, said once when it lasts.
                let since = *st.stalled_since.get_or_insert(now);
                if !st.announced && now >= since + STALL_NOTICE {
                    crate::say!("fwlog: output {what} has not been read for {} s; nothing is acknowledged, packets stay in the spool, waiting", STALL_NOTICE.as_secs());
                    st.announced = true;
                }
                st.failing = Some(what);
                st.retry_at = Some(Instant::now() + STALL_RETRY);
            }
            Err((what, e)) => {
                bump(&self.counters.output_errors, 1);
                if !self.retry_outputs || crate::sink::is_sync_failure(&e) {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Err(ProcessError::OutputClosed);
                    }
                    return Err(ProcessError::Output {
                        target: what,
                        source: e,
                    });
                }
                if !st.announced {
                    crate::say!("fwlog: cannot write to {what}: {e}; nothing is acknowledged, packets stay in the spool, retrying");
                    st.announced = true;
                }
                st.stalled_since = None;
                st.failing = Some(what);
                // From the end of the attempt, not from `now`: an attempt can take as long as
                // the back-off (a 5 s TCP connect limit), and counting from its start would
                // retry at once, again and again, and the loop would not get to its requests
                // (SIGTERM waited for seconds).
                st.retry_at = Some(Instant::now() + st.backoff);
                st.backoff = (st.backoff * 2).min(MAX_BACKOFF);
            }
        }
        Ok(())
    }

    /// The next time the loop has something to do unless woken earlier.
    fn next_wake(&self, st: &LoopState, service_at: Option<Instant>, more: bool) -> Instant {
        let head = st.window.entries.front().map(|e| e.deadline);
        // A batch waits for the write interval, and a failed one for its retry too: waking at
        // the interval alone would spin until the retry (the whole back-off, at full CPU).
        let write_at = (self.outputs.unsent_bytes() > 0 && !st.committer.busy()).then(|| {
            let due = st.last_write + commit::write_interval(st.caught_up);
            st.retry_at.map_or(due, |r| r.max(due))
        });
        // Live, the span's sync is due by its age even if nothing else comes.
        let span_at = (!st.committer.busy())
            .then(|| st.span.due_at(st.behind && !st.caught_up, self.live_span))
            .flatten()
            .map(|due| st.retry_at.map_or(due, |r| r.max(due)));
        [
            head,
            st.retry_at,
            st.stop_at,
            service_at,
            Some(Instant::now() + Duration::from_millis(250)),
            more.then(Instant::now),
            write_at,
            span_at,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(Instant::now)
    }

    fn control(&mut self, c: Control, st: &mut LoopState) {
        match c {
            Control::Reopen => {
                st.reopen = true;
                if let Some(s) = &self.service {
                    s.reloading();
                }
                self.outputs.reopen();
                if let Some(g) = &mut self.geo {
                    for w in g.reopen() {
                        eprintln!("fwlog: SIGHUP: {w}");
                    }
                }
                if let Some(s) = &self.service {
                    s.reloaded();
                }
            }
            Control::Counters => {
                if let Some(g) = &self.geo {
                    self.counters.set_geo(g.stats());
                }
                let dns = self.resolver.as_ref().map(|r| r.stats().to_string());
                crate::say!("{}", self.counters.line(self.source.pending(), dns));
            }
            Control::Stop => self.begin_stop(&mut st.stop_at),
        }
    }

    fn begin_stop(&mut self, stop_at: &mut Option<Instant>) {
        if stop_at.is_none() {
            if let Some(s) = &mut self.service {
                s.stopping();
            }
            self.stop.store(true, Ordering::Relaxed);
            *stop_at = Some(Instant::now() + self.stop_grace);
        }
    }

    /// Keep the receive time of the oldest record read and not acknowledged (the backlog's age
    /// for `--metrics`): after an acknowledgement that is the window's head, `head` (everything
    /// drained before it is acknowledged); otherwise it changes only when the loop held no
    /// record and has read one. One attribute walk per acknowledgement, none per record.
    fn note_oldest(&self, head: Option<&[u8]>, acked: bool) {
        let oldest = &self.counters.oldest_unacked_unix_ms;
        if !acked && oldest.load(Ordering::Relaxed) != 0 {
            return;
        }
        let t = head.map_or(0, |data| {
            // A record without fwlog's receive time (damaged) counts from now.
            attr::recv_time_ms(data)
                .unwrap_or_else(crate::counters::now_unix_ms)
                .max(1)
        });
        oldest.store(t, Ordering::Relaxed);
    }

    /// A round's reading and printing: at most a window's worth, [`FILL_CHUNK`] records at a
    /// time, each chunk printed before the next is read (see `FILL_CHUNK`). True when the round
    /// found the window full or took a window's worth: the source may hold more.
    fn fill_and_drain(&mut self, st: &mut LoopState, now: Instant) -> Result<bool, ProcessError> {
        let mut full = false;
        let mut left = (self.window_cap, WINDOW_BYTES);
        let mut first = true;
        loop {
            let mut again = false;
            if st.stop_at.is_none() {
                let before = (st.window.len(), st.window.bytes);
                let chunk = FILL_CHUNK.min(left.0);
                let fill = self.fill(&mut st.window, &mut st.memo, &st.dns_wake, now, chunk)?;
                left.0 -= st.window.len() - before.0;
                left.1 = left.1.saturating_sub(st.window.bytes - before.1);
                st.caught_up = fill == Fill::CaughtUp;
                if first {
                    self.note_oldest(st.window.entries.front().map(|e| e.record()), false);
                    first = false;
                }
                full = st.window.len() >= self.window_cap
                    || st.window.bytes >= WINDOW_BYTES
                    || left.0 == 0
                    || left.1 == 0;
                again = fill == Fill::Chunk && !full;
            }
            st.last_printed = self
                .drain(&mut st.window, &st.memo, &mut st.unwritten, now)
                .or(st.last_printed);
            if !again {
                return Ok(full);
            }
        }
    }

    /// Read up to `chunk` committed records into the window (fewer when it is full or the reader
    /// caught up), and start name lookups for their addresses. `now` is the loop's one clock
    /// reading for this round: records read in it enter the window together and share a
    /// deadline.
    fn fill(
        &mut self,
        window: &mut Window,
        memo: &mut Option<NameMemo>,
        dns_wake: &Arc<Notify>,
        now: Instant,
        chunk: usize,
    ) -> Result<Fill, ProcessError> {
        let secs = memo.as_ref().map_or(0, |m| m.secs(now.into_std()));
        let r = self.fill_records(window, memo, secs, dns_wake, now, chunk);
        if let (Some(r), Some(m)) = (&self.resolver, memo) {
            r.count_memo_hits(m);
        }
        if let Some(g) = &self.geo {
            self.counters.set_geo(g.stats());
        }
        r
    }

    fn fill_records(
        &mut self,
        window: &mut Window,
        memo: &mut Option<NameMemo>,
        secs: u32,
        dns_wake: &Arc<Notify>,
        now: Instant,
        chunk: usize,
    ) -> Result<Fill, ProcessError> {
        let enrich = self.resolver.is_some() || self.geo.is_some();
        let mut taken = 0;
        while window.len() < self.window_cap && window.bytes < WINDOW_BYTES {
            if taken == chunk {
                return Ok(Fill::Chunk);
            }
            taken += 1;
            let mut e = window.blank(now + self.dns_timeout);
            let meta = match self.source.next(e.rec.refill()) {
                Ok(Some(m)) => m,
                Ok(None) => {
                    window.unused(e);
                    return Ok(Fill::CaughtUp);
                }
                Err(err) => {
                    window.unused(e);
                    return Err(err.into());
                }
            };
            e.seq = meta.seq;
            e.replayed = meta.replayed;
            if enrich && LossRecord::decode(e.record()).is_none() {
                // Parsed and decoded once: both stay with the record and print it.
                let p = e.rec.parse();
                crate::decode::addresses_of(&p.decoded, &mut e.addrs);
                e.entered_secs = secs;
                if let Some(g) = &mut self.geo {
                    e.geo
                        .extend(e.addrs.iter().filter_map(|&ip| Some((ip, g.lookup(ip)?))));
                }
                for &ip in &e.addrs {
                    let (Some(r), Some(memo)) = (&self.resolver, &mut *memo) else {
                        break;
                    };
                    match r.check(memo, ip, secs) {
                        Check::Known(slot) => e.lent.push((ip, slot)),
                        Check::Pending => e.waiting.push(ip),
                        Check::Miss => {
                            // Only the packet that starts a lookup waits on it for a wake-up;
                            // packets behind it in the window wait behind it anyway.
                            if let Some(pending) = r.start(ip) {
                                let wake = Arc::clone(dns_wake);
                                let deadline = e.deadline;
                                tokio::spawn(async move {
                                    let _ = pending.wait_until(deadline).await;
                                    wake.notify_one();
                                });
                                e.waiting.push(ip);
                            }
                        }
                    }
                }
            }
            window.push(e);
        }
        Ok(Fill::Full)
    }

    /// Format every ready record at the head of the window. Returns the last seq formatted.
    fn drain(
        &mut self,
        window: &mut Window,
        memo: &Option<NameMemo>,
        unwritten: &mut Unwritten,
        now: Instant,
    ) -> Option<u64> {
        let mut last = None;
        while let Some(head) = window.entries.front() {
            let ready = match &self.resolver {
                None => true,
                Some(r) => {
                    now >= head.deadline
                        || head
                            .waiting
                            .iter()
                            .all(|&ip| matches!(r.peek_at(ip, now.into_std()), Lookup::Hit(_)))
                }
            };
            if !ready {
                break;
            }
            let Some(mut e) = window.pop() else {
                break;
            };
            // A record parsed on entry was found not to be a loss report then.
            let loss = if e.rec.is_parsed() {
                None
            } else {
                LossRecord::decode(e.record())
            };
            if let Some(l) = loss {
                if l.spool_seq.is_some() {
                    // Found by the spool as it read: intake never counted these.
                    bump(&self.counters.lost_other, l.count.unwrap_or(0));
                }
                let t = attr::parse(e.record(), TlvOrder::NATIVE, loss::EPOCH).timestamp;
                self.outputs.loss(&l.event(t), e.seq);
            } else {
                if let (Some(r), Some(memo)) = (&self.resolver, memo) {
                    e.own_names(r, memo, now.into_std());
                }
                // Records that were not parsed on entry (no DNS, no geo) are parsed now; either
                // way every output gets the one parse and the one decode.
                e.rec.parse_as(e.replayed);
                let p = e.rec.get();
                self.outputs.packet(&crate::sink::PacketView {
                    seq: e.seq,
                    record: e.record(),
                    packet: &p.packet,
                    decoded: &p.decoded,
                    names: &PacketNames::of(&e, memo.as_ref()),
                });
                unwritten.printed += 1;
                unwritten.replayed += u64::from(e.replayed);
            }
            last = Some(e.seq);
            window.recycle(e);
        }
        last
    }
}

#[cfg(test)]
#[path = "process_model.rs"]
mod model;
#[cfg(test)]
#[path = "process_names.rs"]
mod names_test;
