//! A model test of the processing loop: a fake source and a sink that fails on demand, under
//! paused tokio time (back-offs and write intervals pass instantly and deterministically).
//!
//! What it holds the loop to: records reach the outputs once each, in source order; no more
//! than the window is taken from the source ahead of the outputs; a record is acknowledged only
//! after every output committed it; a failed commit is retried with nothing new handed over and
//! nothing written twice; requests on the control channel are obeyed.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::unbounded_channel;
use tokio::sync::Notify;

use super::*;
use crate::format::LossEvent;
use crate::pipeline::source::{AckSync, RecordMeta, Source, SourceError};
use crate::sink::text::{Batches, Detached};
use crate::sink::{PacketSink, PacketView, Sink};

/// Everything both fakes see, to check the loop against.
#[derive(Default)]
struct Model {
    /// Records the source still holds.
    queued: VecDeque<u64>,
    /// The source will get no more records once `queued` is empty.
    closed: bool,
    /// Taken from the source and not yet handed to the sink; and its maximum.
    ahead: usize,
    max_ahead: usize,
    /// Handed to the sink, not yet committed.
    batch: Vec<u64>,
    /// Committed, in order (a duplicate would show here).
    committed: Vec<u64>,
    acks: Vec<u64>,
    /// The next `fail` commits fail with `fail_kind`.
    fail: usize,
    fail_kind: Option<io::ErrorKind>,
    failures: usize,
    /// A packet was handed over while a failed batch was held.
    handed_while_failing: bool,
    failing: bool,
    reopened: usize,
    /// Records carry fwlog's receive time (1000 + seq seconds), and each commit attempt notes
    /// (first seq of its batch, the loop's oldest-unacknowledged time then) from `watch`.
    timed: bool,
    watch: Option<Arc<Counters>>,
    oldest_at_commit: Vec<(u64, u64)>,
    /// The source splits acknowledgements (`ack_sync` on the committer thread, then `ack`),
    /// and the positions stored that way.
    split_ack: bool,
    synced: Vec<u64>,
    /// The loop got a failed batch back (the text fake; its writes run on another thread).
    seen_failing: bool,
    /// The text fake's file: written and not yet synced (`committed` is what is synced).
    unsynced: Vec<u64>,
    /// Text fake: bytes of padding per line (lines as large as real ones), batches written,
    /// syncs done, and the next `fail_sync` syncs fail.
    pad: usize,
    writes: usize,
    syncs: usize,
    fail_sync: usize,
    /// The next sync fails as a real file's failed `fdatasync` does.
    sync_eio: bool,
    /// When this many batches are written, the next `fail` is set to 2 (and the syncs done by
    /// then are noted in `syncs_at_fail`).
    fail_at_write: usize,
    syncs_at_fail: Option<usize>,
    /// The text fake's file says its unsynced writes only copy into the page cache (a regular
    /// file), and the thread the loop runs on: unsynced writes done there and elsewhere.
    in_place: bool,
    loop_thread: Option<std::thread::ThreadId>,
    unsynced_on_loop: usize,
    unsynced_off_loop: usize,
    /// The next unsynced write takes this long (a page cache throttling its writer).
    slow_unsynced: Option<Duration>,
}

type Shared = Arc<Mutex<Model>>;

struct FakeSource(Shared);

/// A record as the spool would hold it: family INET, group 1, no attributes.
fn record() -> Vec<u8> {
    vec![crate::packet::family::INET, 0, 0, 1]
}

impl Source for FakeSource {
    fn next(&mut self, buf: &mut Vec<u8>) -> Result<Option<RecordMeta>, SourceError> {
        let mut m = self.0.lock().unwrap();
        let Some(seq) = m.queued.pop_front() else {
            return Ok(None);
        };
        m.ahead += 1;
        m.max_ahead = m.max_ahead.max(m.ahead);
        *buf = record();
        if m.timed {
            crate::nflog::attr::push_recv_time(buf, 1000 + seq as i64, 0);
        }
        Ok(Some(RecordMeta {
            seq,
            replayed: false,
        }))
    }

    fn ack(&mut self, seq: u64) -> Result<(), SourceError> {
        let mut m = self.0.lock().unwrap();
        assert!(
            m.committed.last().is_some_and(|&c| c >= seq),
            "acknowledged {seq} before it was committed (committed {:?})",
            m.committed.last()
        );
        assert!(
            m.batch.iter().all(|&b| b > seq),
            "acknowledged {seq} while it waits in a batch"
        );
        m.acks.push(seq);
        Ok(())
    }

    fn ack_sync(&mut self, seq: u64) -> Result<Option<AckSync>, SourceError> {
        if !self.0.lock().unwrap().split_ack {
            return Ok(None);
        }
        let model = Arc::clone(&self.0);
        Ok(Some(Box::new(move || {
            let mut m = model.lock().unwrap();
            assert!(
                m.committed.last().is_some_and(|&c| c >= seq),
                "stored {seq} before it was committed"
            );
            m.synced.push(seq);
            Ok(())
        })))
    }

    fn finished(&self) -> bool {
        let m = self.0.lock().unwrap();
        m.closed && m.queued.is_empty()
    }

    fn pending(&self) -> u64 {
        0
    }
}

struct FakeSink(Shared);

impl PacketSink for FakeSink {
    fn packet(&mut self, p: &PacketView<'_>) {
        let mut m = self.0.lock().unwrap();
        m.handed_while_failing |= m.failing;
        m.ahead -= 1;
        m.batch.push(p.seq);
    }

    fn loss(&mut self, _ev: &LossEvent, seq: u64) {
        let mut m = self.0.lock().unwrap();
        m.ahead -= 1;
        m.batch.push(seq);
    }

    fn pending(&self) -> usize {
        self.0.lock().unwrap().batch.len() * 100
    }

    fn commit(&mut self) -> io::Result<()> {
        let mut m = self.0.lock().unwrap();
        if let (Some(c), Some(&first)) = (&m.watch, m.batch.first()) {
            let oldest = c
                .oldest_unacked_unix_ms
                .load(std::sync::atomic::Ordering::Relaxed);
            m.oldest_at_commit.push((first, oldest));
        }
        if m.fail > 0 {
            m.fail -= 1;
            m.failures += 1;
            m.failing = true;
            return Err(io::Error::from(m.fail_kind.unwrap_or(io::ErrorKind::Other)));
        }
        m.failing = false;
        let batch = std::mem::take(&mut m.batch);
        m.committed.extend(batch);
        Ok(())
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.0.lock().unwrap().reopened += 1;
        Ok(())
    }

    fn describe(&self) -> String {
        "fake".into()
    }
}

/// A text output as the loop sees it (its batches detach to the committer thread), over a
/// byte sink that fails on demand; a record's line is its seq.
struct FakeText(Shared, Batches);

/// The text fake's byte sink: a file whose writes reach `unsynced` and whose syncs move them
/// to `committed`; the bool is "this batch is written, its sync failed" (the resume point).
struct FakeBytes(Shared, bool);

impl FakeBytes {
    fn write(&mut self, lines: &[u8]) -> io::Result<()> {
        let mut m = self.0.lock().unwrap();
        if m.fail_at_write > 0 && m.writes == m.fail_at_write && m.syncs_at_fail.is_none() {
            m.fail = 2;
            m.syncs_at_fail = Some(m.syncs);
        }
        if m.fail > 0 {
            m.fail -= 1;
            m.failures += 1;
            return Err(io::Error::from(m.fail_kind.unwrap_or(io::ErrorKind::Other)));
        }
        let seqs: Vec<u64> = std::str::from_utf8(lines)
            .unwrap()
            .lines()
            .map(|l| l.split(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(
            m.batch.starts_with(&seqs),
            "{seqs:?} not next in {:?}",
            m.batch
        );
        m.batch.drain(..seqs.len());
        m.unsynced.extend(seqs);
        m.writes += 1;
        Ok(())
    }
}

impl Sink for FakeBytes {
    fn write_batch(&mut self, lines: &[u8]) -> io::Result<()> {
        if !self.1 {
            self.write(lines)?;
            self.1 = true;
        }
        self.sync()?;
        self.1 = false;
        Ok(())
    }

    fn write_unsynced(&mut self, lines: &[u8]) -> io::Result<()> {
        let slow = {
            let mut m = self.0.lock().unwrap();
            if m.loop_thread == Some(std::thread::current().id()) {
                m.unsynced_on_loop += 1;
            } else {
                m.unsynced_off_loop += 1;
            }
            m.slow_unsynced.take()
        };
        if let Some(d) = slow {
            std::thread::sleep(d);
        }
        self.write(lines)
    }

    fn copies_only(&self, _len: usize) -> bool {
        self.0.lock().unwrap().in_place
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut m = self.0.lock().unwrap();
        if m.fail_sync > 0 {
            m.fail_sync -= 1;
            m.failures += 1;
            return Err(io::Error::from(io::ErrorKind::Other));
        }
        if std::mem::take(&mut m.sync_eio) {
            m.failures += 1;
            let eio = io::Error::from_raw_os_error(libc::EIO);
            return Err(io::Error::other(crate::sink::SyncFailed(eio)));
        }
        let done = std::mem::take(&mut m.unsynced);
        m.committed.extend(done);
        m.syncs += 1;
        Ok(())
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.0.lock().unwrap().reopened += 1;
        Ok(())
    }

    fn describe(&self) -> String {
        "fake-text".into()
    }
}

impl FakeText {
    fn take(&mut self, seq: u64) {
        let mut m = self.0.lock().unwrap();
        m.handed_while_failing |= m.seen_failing;
        m.ahead -= 1;
        m.batch.push(seq);
        self.1.buf.extend_from_slice(format!("{seq}").as_bytes());
        if m.pad > 0 {
            self.1.buf.push(b' ');
            self.1.buf.resize(self.1.buf.len() + m.pad, b'x');
        }
        self.1.buf.push(b'\n');
    }
}

impl PacketSink for FakeText {
    fn packet(&mut self, p: &PacketView<'_>) {
        self.take(p.seq);
    }

    fn loss(&mut self, _ev: &LossEvent, seq: u64) {
        self.take(seq);
    }

    fn pending(&self) -> usize {
        self.1.pending()
    }

    fn commit(&mut self) -> io::Result<()> {
        self.1.commit()
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.1.reopen()
    }

    fn describe(&self) -> String {
        self.1.describe()
    }

    fn detachable(&self) -> bool {
        true
    }

    fn detach(&mut self, sync: bool) -> Option<Detached> {
        self.1.detach(sync)
    }

    fn attach(&mut self, d: Detached) {
        self.0.lock().unwrap().seen_failing = matches!(d.outcome(), Some(Err(_)));
        self.1.attach(d);
    }
}

/// A loop over `n` records (closed: it ends when they are written), and its control sender.
fn processor(
    n: u64,
    window: usize,
    retry: bool,
) -> (
    Processor<FakeSource>,
    Shared,
    tokio::sync::mpsc::UnboundedSender<Control>,
) {
    processor_with(n, window, retry, false)
}

/// The same with a text output written on the committer thread and split acknowledgements
/// when `text`.
fn processor_with(
    n: u64,
    window: usize,
    retry: bool,
    text: bool,
) -> (
    Processor<FakeSource>,
    Shared,
    tokio::sync::mpsc::UnboundedSender<Control>,
) {
    let model: Shared = Arc::new(Mutex::new(Model {
        queued: (1..=n).collect(),
        closed: true,
        split_ack: text,
        ..Model::default()
    }));
    let (tx, rx) = unbounded_channel();
    let sink: Box<dyn PacketSink> = if text {
        let bytes = Batches::new(Box::new(FakeBytes(model.clone(), false)));
        Box::new(FakeText(model.clone(), bytes))
    } else {
        Box::new(FakeSink(model.clone()))
    };
    let p = test_processor(
        FakeSource(model.clone()),
        vec![sink],
        None,
        window,
        retry,
        rx,
    );
    (p, model, tx)
}

/// A processor over `source` and `sinks` as the tests run it: fresh counters, no GeoIP, no
/// service manager; names waited for up to 2 s when there is a resolver.
pub(super) fn test_processor<S: Source>(
    source: S,
    sinks: Vec<Box<dyn PacketSink>>,
    resolver: Option<Resolver>,
    window: usize,
    retry: bool,
    control: tokio::sync::mpsc::UnboundedReceiver<Control>,
) -> Processor<S> {
    let dns_timeout = match resolver {
        Some(_) => Duration::from_secs(2),
        None => Duration::ZERO,
    };
    Processor {
        source,
        outputs: Outputs::from_sinks(sinks),
        resolver,
        geo: None,
        dns_timeout,
        window_cap: window,
        counters: Arc::new(Counters::default()),
        data_wake: Arc::new(Notify::new()),
        stop: Arc::new(AtomicBool::new(false)),
        control,
        stop_grace: Duration::from_secs(2),
        retry_outputs: retry,
        service: None,
        live_span: commit::LIVE_SPAN,
        inline_slow: Duration::from_secs(3600),
    }
}

#[tokio::test(start_paused = true)]
async fn every_record_once_in_order_within_the_window_acknowledged_after_commit() {
    let (p, model, _tx) = processor(1000, 16, true);
    p.run().await.unwrap();
    let m = model.lock().unwrap();
    assert_eq!(m.committed, (1..=1000).collect::<Vec<_>>());
    assert!(
        m.max_ahead <= 16,
        "took {} records ahead of the outputs",
        m.max_ahead
    );
    assert_eq!(m.acks.last(), Some(&1000));
    assert!(
        m.acks.windows(2).all(|w| w[0] < w[1]),
        "acks go back: {:?}",
        m.acks
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_output_is_retried_without_duplicates_and_nothing_new_meanwhile() {
    let (p, model, _tx) = processor(300, 8, true);
    {
        let mut m = model.lock().unwrap();
        m.fail = 5;
    }
    let counters = Arc::clone(&p.counters);
    let start = tokio::time::Instant::now();
    p.run().await.unwrap();
    let m = model.lock().unwrap();
    assert_eq!(m.failures, 5);
    assert_eq!(
        counters
            .output_errors
            .load(std::sync::atomic::Ordering::Relaxed),
        5
    );
    assert_eq!(m.committed, (1..=300).collect::<Vec<_>>());
    assert!(
        !m.handed_while_failing,
        "a packet was handed over while a batch was failing"
    );
    // Back-off 100+200+400+800+1600 ms passed (in paused time), no more than a little beyond.
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(3100), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn without_retry_an_output_error_ends_the_loop_and_a_closed_pipe_is_its_own_error() {
    let (p, model, _tx) = processor(50, 8, false);
    model.lock().unwrap().fail = 1;
    let e = p.run().await.unwrap_err();
    assert!(matches!(e, ProcessError::Output { .. }), "{e}");
    assert!(model.lock().unwrap().acks.is_empty());

    let (p, model, _tx) = processor(50, 8, false);
    {
        let mut m = model.lock().unwrap();
        m.fail = 1;
        m.fail_kind = Some(io::ErrorKind::BrokenPipe);
    }
    assert!(matches!(p.run().await, Err(ProcessError::OutputClosed)));
}

#[tokio::test(start_paused = true)]
async fn control_requests_reopen_and_stop_an_endless_source() {
    let (p, model, tx) = processor(20, 8, true);
    model.lock().unwrap().closed = false;
    let stop = Arc::clone(&p.stop);
    let run = tokio::spawn(p.run());
    tokio::time::sleep(Duration::from_millis(50)).await;
    tx.send(Control::Reopen).unwrap();
    tx.send(Control::Counters).unwrap();
    tx.send(Control::Stop).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(3), run).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))), "the loop did not stop");
    assert!(stop.load(std::sync::atomic::Ordering::Relaxed));
    let m = model.lock().unwrap();
    assert_eq!(m.reopened, 1);
    assert_eq!(m.committed, (1..=20).collect::<Vec<_>>());
    assert_eq!(m.acks.last(), Some(&20));
}

/// With a large window and nothing waiting for names, records go through a chunk at a time:
/// each chunk is printed before the next is read.
#[tokio::test(start_paused = true)]
async fn a_large_window_reads_and_prints_a_chunk_at_a_time() {
    let (p, model, _tx) = processor(10_000, 4096, true);
    p.run().await.unwrap();
    let m = model.lock().unwrap();
    assert_eq!(m.committed, (1..=10_000).collect::<Vec<_>>());
    assert!(
        m.max_ahead <= FILL_CHUNK,
        "took {} records ahead of the outputs",
        m.max_ahead
    );
    assert!(m.max_ahead > 1, "one at a time: {}", m.max_ahead);
    assert_eq!(m.acks.last(), Some(&10_000));
}

#[tokio::test(start_paused = true)]
async fn the_backlog_age_follows_the_oldest_unacknowledged_record_and_ends_at_zero() {
    let (p, model, _tx) = processor(200, 8, true);
    backlog_age(p, model).await;
}

/// The same with names looked up: records are then parsed as they enter the window, and the
/// age must still be read from the record the parse keeps.
#[tokio::test(start_paused = true)]
async fn the_backlog_age_is_the_records_own_when_records_are_parsed_on_entry() {
    let (mut p, model, _tx) = processor(200, 8, true);
    let cfg = crate::dns::DnsConfig {
        // Nothing listens there; the records carry no addresses, so nothing is asked.
        servers: vec!["127.0.0.1:9".parse().unwrap()],
        ..crate::dns::DnsConfig::default()
    };
    let resolver = Resolver::new(cfg, tokio::runtime::Handle::current()).unwrap();
    p.resolver = Some(resolver);
    p.dns_timeout = Duration::from_secs(2);
    backlog_age(p, model).await;
}

async fn backlog_age(p: Processor<FakeSource>, model: Shared) {
    let counters = Arc::clone(&p.counters);
    {
        let mut m = model.lock().unwrap();
        m.fail = 4;
        m.timed = true;
        m.watch = Some(Arc::clone(&counters));
    }
    p.run().await.unwrap();
    let m = model.lock().unwrap();
    assert_eq!(m.committed, (1..=200).collect::<Vec<_>>());
    // Every attempt, failed ones included, saw the receive time of its batch's first record:
    // the oldest one not acknowledged.
    assert!(m.oldest_at_commit.len() > 4);
    for &(first, oldest) in &m.oldest_at_commit {
        assert_eq!(oldest, (1000 + first) * 1000, "batch from {first}");
    }
    let left = counters
        .oldest_unacked_unix_ms
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(left, 0, "everything acknowledged: no backlog");
}

/// Through the committer thread: every record once, in order, within the window; every
/// position stored (on the thread) and acknowledged only after it was written, in order.
#[tokio::test(start_paused = true)]
async fn written_on_the_committer_thread_every_record_once_acknowledged_after_its_write() {
    let (p, model, _tx) = processor_with(5000, 16, true, true);
    p.run().await.unwrap();
    let m = model.lock().unwrap();
    assert_eq!(m.committed, (1..=5000).collect::<Vec<_>>());
    assert!(m.max_ahead <= 16, "took {} ahead", m.max_ahead);
    assert_eq!(m.acks.last(), Some(&5000));
    assert_eq!(
        m.synced, m.acks,
        "each acknowledgement stored on the thread first"
    );
    assert!(m.acks.windows(2).all(|w| w[0] < w[1]), "{:?}", m.acks);
}

/// A write that fails on the thread: the batch comes back, is written again first, nothing is
/// acknowledged meanwhile, nothing written twice, nothing new formatted once the loop knows.
#[tokio::test(start_paused = true)]
async fn a_write_failing_on_the_committer_thread_is_retried_whole_and_in_order() {
    let (p, model, _tx) = processor_with(3000, 8, true, true);
    model.lock().unwrap().fail = 5;
    let counters = Arc::clone(&p.counters);
    p.run().await.unwrap();
    let m = model.lock().unwrap();
    assert_eq!(m.failures, 5);
    assert_eq!(counters.output_errors.load(Ordering::Relaxed), 5);
    assert_eq!(m.committed, (1..=3000).collect::<Vec<_>>());
    assert!(
        !m.handed_while_failing,
        "formatted on while a batch was failing"
    );
    assert_eq!(m.acks.last(), Some(&3000));
    assert_eq!(
        counters.printed.load(Ordering::Relaxed),
        3000,
        "printed counts each record once"
    );
}

#[tokio::test(start_paused = true)]
async fn on_the_committer_thread_without_retry_an_error_ends_the_loop_unacknowledged() {
    let (p, model, _tx) = processor_with(500, 8, false, true);
    model.lock().unwrap().fail = 1;
    let e = p.run().await.unwrap_err();
    assert!(matches!(e, ProcessError::Output { .. }), "{e}");
    assert!(model.lock().unwrap().acks.is_empty());
}

/// A backlog with lines as large as real ones: batches are written unsynced and synced
/// together once the span reaches its limit (and at the end), each acknowledgement only after
/// the sync that covers it, every record once and in order; on the committer thread, even to
/// a regular file (the loop formats the next batch meanwhile).
#[tokio::test(start_paused = true)]
async fn while_behind_batches_are_synced_together_and_acknowledged_after_the_sync() {
    let n = 2500;
    let (p, model, _tx) = processor_with(n, 64, true, true);
    {
        let mut m = model.lock().unwrap();
        m.pad = 40 << 10;
        m.in_place = true;
        m.loop_thread = Some(std::thread::current().id());
    }
    let counters = Arc::clone(&p.counters);
    p.run().await.unwrap();
    let m = model.lock().unwrap();
    assert_eq!(m.committed, (1..=n).collect::<Vec<_>>());
    assert!(m.unsynced.is_empty());
    // 100 MB in batches of about 4 MiB: some 25 writes, a sync per 32 MiB and one at the end.
    assert!(m.writes >= 12, "{} writes", m.writes);
    assert!(
        (3..=6).contains(&m.syncs),
        "{} syncs for {} writes",
        m.syncs,
        m.writes
    );
    // FakeSource::ack checked each position against what was synced when it came.
    assert_eq!(m.synced, m.acks);
    assert_eq!(m.acks.len(), m.syncs, "one acknowledgement per sync");
    assert_eq!(m.acks.last(), Some(&n));
    assert_eq!(counters.printed.load(Ordering::Relaxed), n);
    assert_eq!(
        m.unsynced_on_loop, 0,
        "a backlog's write on the loop's thread"
    );
    assert!(m.unsynced_off_loop > 0);
}

/// A sync failing in the middle of a span: nothing of the span is acknowledged, the span's
/// batches are not written again, the retry syncs all of it, and the loop goes on.
#[tokio::test(start_paused = true)]
async fn a_sync_failing_mid_span_is_retried_without_loss_or_duplicates() {
    let n = 1500;
    let (p, model, _tx) = processor_with(n, 64, true, true);
    {
        let mut m = model.lock().unwrap();
        m.pad = 40 << 10;
        m.fail_sync = 3;
    }
    let counters = Arc::clone(&p.counters);
    p.run().await.unwrap();
    let m = model.lock().unwrap();
    assert_eq!(m.failures, 3);
    assert_eq!(counters.output_errors.load(Ordering::Relaxed), 3);
    assert_eq!(m.committed, (1..=n).collect::<Vec<_>>());
    assert!(!m.handed_while_failing, "formatted on while failing");
    assert_eq!(m.synced, m.acks);
    assert_eq!(m.acks.last(), Some(&n));
    assert_eq!(counters.printed.load(Ordering::Relaxed), n);
}

/// A failed `fdatasync` is not retried, even by a loop that retries outputs: the loop stops
/// with the error and nothing written since the last good sync is acknowledged (the next start
/// prints it again).
#[tokio::test(start_paused = true)]
async fn a_failed_fdatasync_stops_the_loop_with_the_span_unacknowledged() {
    let n = 1500;
    let (p, model, _tx) = processor_with(n, 64, true, true);
    {
        let mut m = model.lock().unwrap();
        m.pad = 40 << 10;
        m.sync_eio = true;
    }
    let e = p.run().await.unwrap_err();
    assert!(matches!(e, ProcessError::Output { .. }), "{e}");
    assert!(e.to_string().contains("fdatasync failed"), "{e}");
    let m = model.lock().unwrap();
    assert_eq!(m.failures, 1);
    assert!(!m.unsynced.is_empty(), "the failed sync had lines to cover");
    let synced = m.committed.last().copied().unwrap_or(0);
    assert!(
        m.acks.iter().all(|&a| a <= synced),
        "acknowledged past the last good sync: {:?} > {synced}",
        m.acks.last()
    );
}

/// A write failing in the middle of a span: its batch comes back and is written first, the
/// span's earlier batches stay written (not twice), and one sync covers them all.
#[tokio::test(start_paused = true)]
async fn a_write_failing_mid_span_keeps_the_span_and_syncs_it_on_the_retry() {
    let n = 1500;
    let (p, model, _tx) = processor_with(n, 64, true, true);
    {
        let mut m = model.lock().unwrap();
        m.pad = 40 << 10;
        m.fail_at_write = 3;
    }
    let counters = Arc::clone(&p.counters);
    p.run().await.unwrap();
    let m = model.lock().unwrap();
    assert_eq!(m.syncs_at_fail, Some(0), "synced before the span was full");
    assert_eq!(m.failures, 2);
    assert_eq!(m.committed, (1..=n).collect::<Vec<_>>());
    assert_eq!(m.synced, m.acks);
    assert_eq!(m.acks.last(), Some(&n));
    assert_eq!(counters.printed.load(Ordering::Relaxed), n);
}

/// Without a live span (`fwlog read`, `replay`), a caught-up loop syncs every batch.
#[tokio::test(start_paused = true)]
async fn caught_up_without_a_live_span_every_batch_is_synced_and_acknowledged() {
    let (mut p, model, tx) = processor_with(0, 64, true, true);
    p.live_span = Duration::ZERO;
    model.lock().unwrap().closed = false;
    let wake = Arc::clone(&p.data_wake);
    let run = tokio::spawn(p.run());
    for i in 1..=20u64 {
        model.lock().unwrap().queued.push_back(i);
        wake.notify_one();
        // The committer thread runs in real time, beside the paused clock: wait for it.
        while model.lock().unwrap().acks.last() != Some(&i) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(model.lock().unwrap().committed.last(), Some(&i));
    }
    tx.send(Control::Stop).unwrap();
    run.await.unwrap().unwrap();
    let m = model.lock().unwrap();
    assert_eq!(m.writes, 20);
    assert_eq!(m.syncs, 20);
}

#[path = "process_live.rs"]
mod live;
