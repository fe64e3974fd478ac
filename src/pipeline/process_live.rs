//! Model tests of the live span (`commit.rs`): once the loop has caught up, batches are
//! written at once and join the span; its sync and acknowledgement come when its oldest batch
//! is `live_span` old (with no new traffic), when it reaches `SPAN_BYTES`, or at once on stop,
//! SIGHUP or failure. The committer thread runs in real time beside the paused clock, so each
//! step waits for it without moving the clock (`until`), the end of a run too: awaiting the
//! loop alone would let the paused clock jump to the stop's grace while the last sync runs.

use super::*;

type Run = tokio::task::JoinHandle<Result<(), ProcessError>>;

/// A live loop (an endless source, nothing queued yet) with a text output on the committer
/// thread; `span` is its live span.
fn live(span: Duration) -> (Shared, Arc<Notify>, Arc<Counters>, UnboundedSender, Run) {
    live_with(span, false)
}

/// The same; `in_place`: the output is a regular file's (its unsynced writes only copy into
/// the page cache), so the loop writes live batches on its own thread.
fn live_with(
    span: Duration,
    in_place: bool,
) -> (Shared, Arc<Notify>, Arc<Counters>, UnboundedSender, Run) {
    let (p, model, tx) = live_processor(span, in_place);
    let wake = Arc::clone(&p.data_wake);
    let counters = Arc::clone(&p.counters);
    (model, wake, counters, tx, tokio::spawn(p.run()))
}

/// The same, not yet running.
fn live_processor(
    span: Duration,
    in_place: bool,
) -> (Processor<FakeSource>, Shared, UnboundedSender) {
    let (mut p, model, tx) = processor_with(0, 64, true, true);
    p.live_span = span;
    {
        let mut m = model.lock().unwrap();
        m.closed = false;
        m.in_place = in_place;
        // The paused-clock test runtime runs the spawned loop on the test's own thread.
        m.loop_thread = Some(std::thread::current().id());
    }
    (p, model, tx)
}

type UnboundedSender = tokio::sync::mpsc::UnboundedSender<Control>;

/// Intake commits `seqs`.
fn arrive(model: &Shared, wake: &Notify, seqs: std::ops::RangeInclusive<u64>) {
    model.lock().unwrap().queued.extend(seqs);
    wake.notify_one();
}

/// Wait until `f` holds: first for the committer thread, in real time with the paused clock
/// standing still (up to 20 ms), then a millisecond of paused time for the loop's timers; at
/// most 5 s of paused time in all.
async fn until(model: &Shared, what: &str, f: impl Fn(&Model) -> bool) {
    for _ in 0..5000 {
        for _ in 0..200 {
            if f(&model.lock().unwrap()) {
                return;
            }
            std::thread::sleep(Duration::from_micros(100));
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never: {what}");
}

/// Batches arriving live are written at once, unsynced and unacknowledged; with no further
/// traffic the loop wakes for the span's deadline and syncs and acknowledges all of them with
/// one sync, about `LIVE_SPAN` after the first was written, and `printed` follows. The same
/// whether the batches are written on the committer thread or (a regular file's) on the
/// loop's, and only there then.
#[tokio::test(start_paused = true)]
async fn live_batches_join_the_span_and_its_deadline_syncs_them_without_new_traffic() {
    for in_place in [false, true] {
        span_deadline(in_place).await;
    }
}

async fn span_deadline(in_place: bool) {
    let (model, wake, counters, tx, run) = live_with(commit::LIVE_SPAN, in_place);
    arrive(&model, &wake, 1..=3);
    until(&model, "the first batch written", |m| m.writes == 1).await;
    let first = tokio::time::Instant::now();
    for i in 2..=5u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        arrive(&model, &wake, i * 10..=i * 10 + 2);
        until(&model, "the next batch written", |m| m.writes == i as usize).await;
        let m = model.lock().unwrap();
        assert_eq!(m.unsynced.last(), Some(&(i * 10 + 2)), "written at once");
        assert_eq!((m.syncs, m.acks.len()), (0, 0), "synced before its time");
        assert_eq!(counters.printed.load(Ordering::Relaxed), 0);
    }
    assert!(first.elapsed() < commit::LIVE_SPAN);
    until(&model, "the span acknowledged", |m| !m.acks.is_empty()).await;
    let waited = first.elapsed();
    assert!(
        waited >= commit::LIVE_SPAN - Duration::from_millis(5)
            && waited < commit::LIVE_SPAN + Duration::from_millis(30),
        "{waited:?}"
    );
    {
        let m = model.lock().unwrap();
        assert_eq!((m.writes, m.syncs), (5, 1), "one sync for the span");
        assert_eq!(m.acks, [52]);
        assert_eq!(m.synced, m.acks);
        assert!(m.unsynced.is_empty());
    }
    assert_eq!(counters.printed.load(Ordering::Relaxed), 15);
    tx.send(Control::Stop).unwrap();
    run.await.unwrap().unwrap();
    let m = model.lock().unwrap();
    assert_eq!(m.syncs, 1, "nothing left to sync at stop");
    let here = if in_place { (5, 0) } else { (0, 5) };
    assert_eq!(
        (m.unsynced_on_loop, m.unsynced_off_loop),
        here,
        "unsynced writes on the loop's thread, elsewhere (in place: {in_place})"
    );
}

/// A write on the loop's thread that was slow (a page cache throttling its writer) sends the
/// next live batches to the committer thread: names, signals and the stop deadline must not
/// wait behind the disk. Every record is still written once, in order, and synced with the span.
#[tokio::test(start_paused = true)]
async fn after_a_slow_write_on_the_loops_thread_live_batches_go_to_the_committer() {
    let (mut p, model, tx) = live_processor(commit::LIVE_SPAN, true);
    p.inline_slow = super::INLINE_SLOW;
    model.lock().unwrap().slow_unsynced = Some(Duration::from_millis(20));
    let wake = Arc::clone(&p.data_wake);
    let run = tokio::spawn(p.run());
    arrive(&model, &wake, 1..=3);
    until(&model, "the first batch written", |m| m.writes == 1).await;
    for i in 2..=4u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        arrive(&model, &wake, i * 10..=i * 10 + 2);
        until(&model, "the next batch written", |m| m.writes == i as usize).await;
    }
    until(&model, "the span acknowledged", |m| m.acks == [42]).await;
    tx.send(Control::Stop).unwrap();
    run.await.unwrap().unwrap();
    let m = model.lock().unwrap();
    assert_eq!(
        (m.unsynced_on_loop, m.unsynced_off_loop),
        (1, 3),
        "unsynced writes on the loop's thread, elsewhere"
    );
    assert_eq!(m.committed, [1, 2, 3, 20, 21, 22, 30, 31, 32, 40, 41, 42]);
}

/// A live span that reaches `SPAN_BYTES` is synced then, long before its deadline.
#[tokio::test(start_paused = true)]
async fn a_live_span_is_synced_when_it_reaches_its_byte_limit() {
    let (model, wake, _counters, tx, run) = live(Duration::from_secs(1));
    model.lock().unwrap().pad = 40 << 10;
    let start = tokio::time::Instant::now();
    // 20 bunches of 50 lines of 40 KiB: 40 MB, past the 32 MiB limit.
    for b in 0..20u64 {
        arrive(&model, &wake, b * 50 + 1..=b * 50 + 50);
        until(&model, "the bunch written", |m| {
            m.unsynced.last().max(m.committed.last()) == Some(&(b * 50 + 50))
        })
        .await;
    }
    {
        let m = model.lock().unwrap();
        assert!(m.syncs >= 1, "no sync at {} writes", m.writes);
        let synced_bytes = m.committed.len() * (40 << 10);
        let near = commit::SPAN_BYTES - (4 << 20)..=commit::SPAN_BYTES + (4 << 20);
        assert!(
            near.contains(&synced_bytes),
            "the first sync covered {synced_bytes} bytes"
        );
        assert_eq!(m.synced, m.acks);
    }
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    tx.send(Control::Stop).unwrap();
    until(&model, "all acknowledged", |m| m.acks.last() == Some(&1000)).await;
    run.await.unwrap().unwrap();
    let m = model.lock().unwrap();
    assert_eq!(m.committed, (1..=1000).collect::<Vec<_>>());
    assert_eq!(m.acks.last(), Some(&1000));
}

/// Stopping syncs and acknowledges the open span at once, not at its deadline.
#[tokio::test(start_paused = true)]
async fn stopping_closes_the_live_span_at_once() {
    let (model, wake, counters, tx, run) = live(Duration::from_secs(1));
    arrive(&model, &wake, 1..=4);
    until(&model, "written", |m| m.writes == 1).await;
    assert_eq!(model.lock().unwrap().syncs, 0);
    let t = tokio::time::Instant::now();
    tx.send(Control::Stop).unwrap();
    until(&model, "acknowledged", |m| !m.acks.is_empty()).await;
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    run.await.unwrap().unwrap();
    let m = model.lock().unwrap();
    assert_eq!((m.syncs, m.acks.as_slice()), (1, &[4][..]));
    assert_eq!(counters.printed.load(Ordering::Relaxed), 4);
}

/// A SIGHUP syncs and acknowledges the open span at once (the outputs' reopen waits for that
/// sync), and the next batches open a new span.
#[tokio::test(start_paused = true)]
async fn a_reopen_closes_the_live_span_at_once() {
    let (model, wake, _counters, tx, run) = live(Duration::from_secs(1));
    arrive(&model, &wake, 1..=4);
    until(&model, "written", |m| m.writes == 1).await;
    let t = tokio::time::Instant::now();
    tx.send(Control::Reopen).unwrap();
    until(&model, "acknowledged", |m| m.acks == [4]).await;
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(model.lock().unwrap().reopened, 1);
    arrive(&model, &wake, 5..=6);
    until(&model, "written", |m| m.writes == 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    {
        let m = model.lock().unwrap();
        assert_eq!((m.syncs, m.acks.as_slice()), (1, &[4][..]), "a new span");
    }
    tx.send(Control::Stop).unwrap();
    until(&model, "the new span acknowledged", |m| m.acks == [4, 6]).await;
    run.await.unwrap().unwrap();
}

/// A write failing in a live span: the retry (after the first back-off, 100 ms) syncs the
/// whole span at once, well before its 1 s deadline; nothing lost, nothing twice.
#[tokio::test(start_paused = true)]
async fn a_failure_closes_the_live_span_with_its_retry() {
    for in_place in [false, true] {
        failure_closes_span(in_place).await;
    }
}

async fn failure_closes_span(in_place: bool) {
    let (model, wake, counters, tx, run) = live_with(Duration::from_secs(1), in_place);
    arrive(&model, &wake, 1..=3);
    until(&model, "written", |m| m.writes == 1).await;
    let t = tokio::time::Instant::now();
    model.lock().unwrap().fail = 1;
    arrive(&model, &wake, 4..=6);
    until(&model, "failed", |m| m.failures == 1).await;
    until(&model, "acknowledged", |m| m.acks == [6]).await;
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    {
        let m = model.lock().unwrap();
        assert_eq!(m.committed, (1..=6).collect::<Vec<_>>());
        assert_eq!((m.writes, m.syncs), (2, 1));
        assert!(!m.handed_while_failing);
    }
    assert_eq!(counters.output_errors.load(Ordering::Relaxed), 1);
    tx.send(Control::Stop).unwrap();
    run.await.unwrap().unwrap();
}
