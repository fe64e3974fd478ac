//! The active segment's `fdatasync` on a thread of its own ([`crate::Options::background_sync`]).
//!
//! Why: a sync takes one disk round trip, and on a busy disk (other writers, the journal) that
//! is up to 100 ms and more. Done on the intake thread, nothing was received meanwhile, and at
//! high rates the kernel's socket buffer overflowed: packets were lost to a slow disk. Here the
//! caller's commit writes its batch (`pwrite`, on its own thread) and hands the sync over; it
//! goes back to receiving at once, and the records reach the reader when the sync ends.
//!
//! Invariants:
//! - One sync at a time. Commits that come while one is in flight are merged into one pending
//!   request, synced as soon as the current sync ends: one `fdatasync` per disk round trip
//!   covers everything written meanwhile (group commit sized by the disk itself).
//! - Records are published (shown to the reader, offered to the hand-off, the processing
//!   side's hook called) only after a sync that covers them returned success, and in commit
//!   order: nothing is ever shown before it is durable. This thread publishes what it synced;
//!   the writer publishes what it synced in place while the thread was idle (below).
//! - A failed sync publishes nothing, neither its request nor any later one (they are dropped
//!   unsynced), and is kept until the writer takes it ([`Syncer::outcome`]) once the
//!   thread is idle: the writer then cuts back to the last published position (`ENOSPC`,
//!   `EDQUOT`) or poisons itself (any other error: a failed `fdatasync` is never retried).
//! - The writer never changes the file behind a request: it waits for the thread to be idle
//!   ([`Syncer::wait_idle`]) before a rollover, a cut back or a close.
//! - A panic on the thread becomes a failure (an I/O error that poisons the writer), and a
//!   waiting writer is woken: never a hang. Dropping the syncer ends and joins the thread.
//! - Only the writer hands work over, so while the thread is idle (nothing in flight or
//!   pending, no failure) it stays idle until the writer's next [`Syncer::submit`]: the writer
//!   may then sync on its own thread and publish through [`Syncer::published_in_place`]
//!   (`writer_sync.rs`), which keeps the order of publishes.
//!
//! Wake-ups (each a system call, and a thread switch for the one woken): the thread sleeps on
//! its own condition variable and is woken only when it is asleep (`sleeping`, set and read
//! under the lock, so a submit that finds it awake is seen by its next check of `pending`
//! before it sleeps); writers waiting for it to be idle sleep on another and are woken only if
//! there are any; `completions` is an atomic the writer reads at every round without the lock.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::fs::FsFile;
use crate::handoff::Chunk;
use crate::shared::Shared;

/// What one sync makes visible to the reader once it has succeeded.
pub(crate) struct Publication {
    /// The active segment and its length up to the last record covered.
    pub seg_first: u64,
    pub seg_len: u64,
    /// The last sequence number covered.
    pub upto: u64,
    /// The chunks written for it, for the in-memory hand-off.
    pub chunks: Vec<Chunk>,
}

/// Where the last successful sync left the active segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Synced {
    pub seq: u64,
    pub len: u64,
}

struct Request {
    file: Arc<dyn FsFile>,
    publication: Publication,
}

struct Inner {
    pending: Option<Request>,
    busy: bool,
    synced: Synced,
    failure: Option<io::Error>,
    closing: bool,
    /// The thread waits on `State::work`: a submit wakes it only then.
    sleeping: bool,
    /// The thread is gone (a panic): nothing pending will ever be done.
    dead: bool,
    /// Writer calls waiting for the thread to be idle: a finished sync wakes them only if any
    /// (a futex wake is a system call even with nobody waiting).
    waiters: usize,
}

struct State {
    inner: Mutex<Inner>,
    /// The thread waits here for a request (or the close).
    work: Condvar,
    /// Writers wait here for the thread to be idle.
    idle: Condvar,
    /// Bumped at every completed sync, good or failed (under the lock, read without it): the
    /// writer reports the change.
    completions: AtomicU64,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A few integers and an error: consistent whatever a panicking holder did.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct Syncer {
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
    tid: Option<i32>,
}

impl Syncer {
    /// Starts the thread, the active segment synced up to `synced`; `None` if it cannot be
    /// started (the writer then syncs in place).
    pub fn start(shared: Arc<Shared>, synced: Synced) -> Option<Syncer> {
        let state = Arc::new(State {
            inner: Mutex::new(Inner {
                pending: None,
                busy: false,
                synced,
                failure: None,
                closing: false,
                sleeping: false,
                dead: false,
                waiters: 0,
            }),
            work: Condvar::new(),
            idle: Condvar::new(),
            completions: AtomicU64::new(0),
        });
        let st = Arc::clone(&state);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("fwlog-spool-sync".into())
            .spawn(move || {
                // SAFETY: gettid has no preconditions.
                let _ = tx.send(unsafe { libc::gettid() });
                run(&st, &shared)
            })
            .ok()?;
        let tid = rx.recv().ok();
        Some(Syncer {
            state,
            thread: Some(thread),
            tid,
        })
    }

    /// The thread's id (Linux `gettid`), for its owner's scheduling settings and tests.
    pub fn thread_id(&self) -> Option<i32> {
        self.tid
    }

    /// Hands over a sync of `file` that publishes `p`, merged into the pending one if a sync is
    /// in flight. Ignored after a failure the writer has not taken yet (nothing more is
    /// published until it has).
    pub fn submit(&self, file: &Arc<dyn FsFile>, p: Publication) {
        let mut g = self.state.lock();
        if g.failure.is_some() || g.dead {
            return;
        }
        match &mut g.pending {
            Some(r) => {
                let q = &mut r.publication;
                q.seg_first = p.seg_first;
                q.seg_len = p.seg_len;
                q.upto = p.upto;
                q.chunks.extend(p.chunks);
            }
            None => {
                g.pending = Some(Request {
                    file: Arc::clone(file),
                    publication: p,
                })
            }
        }
        // A busy thread takes the pending request when its sync ends, and an idle one that is
        // not asleep yet finds it before it sleeps (it checks `pending` under this lock): only
        // a sleeping one needs the wake-up.
        let asleep = g.sleeping;
        drop(g);
        if asleep {
            self.state.work.notify_one();
        }
    }

    /// Nothing in flight or pending and no failure to handle: the thread stays idle until the
    /// next [`submit`](Self::submit) (only the writer submits), so the writer may sync in place.
    pub fn idle(&self) -> bool {
        let g = self.state.lock();
        !g.busy && g.pending.is_none() && g.failure.is_none() && !g.dead
    }

    /// The writer synced `p` in place while the thread was [`idle`](Self::idle): published as
    /// the thread would have (under its lock, after every earlier publish), and the position
    /// recorded. The caller then calls the hook.
    pub fn published_in_place(&self, shared: &Shared, p: Publication) {
        let mut g = self.state.lock();
        debug_assert!(!g.busy && g.pending.is_none(), "the thread is not idle");
        g.synced = Synced {
            seq: p.upto,
            len: p.seg_len,
        };
        crate::shared::publish(shared, p, true);
    }

    /// Until nothing is in flight or pending.
    pub fn wait_idle(&self) {
        let g = self.state.lock();
        drop(self.until_idle(g));
    }

    /// Waits (counted in `waiters`) until nothing is in flight or pending, or the thread died.
    fn until_idle<'a>(&'a self, mut g: MutexGuard<'a, Inner>) -> MutexGuard<'a, Inner> {
        while (g.busy || g.pending.is_some()) && !g.dead {
            g.waiters += 1;
            g = self.state.idle.wait(g).unwrap_or_else(|p| p.into_inner());
            g.waiters -= 1;
        }
        g
    }

    /// The last published position.
    pub fn synced(&self) -> Synced {
        self.state.lock().synced
    }

    /// Syncs completed so far (good or failed).
    pub fn completions(&self) -> u64 {
        self.state.completions.load(Ordering::Acquire)
    }

    /// The published position and the failure to handle, if a sync failed: then only once the
    /// thread is idle (nothing it could still publish), and taking the failure lets it publish
    /// again.
    pub fn outcome(&self) -> (Synced, Option<io::Error>) {
        let mut g = self.state.lock();
        if g.failure.is_some() {
            g = self.until_idle(g);
        }
        (g.synced, g.failure.take())
    }

    /// The active segment changed (a rollover, a cut back): it is synced up to `s`.
    pub fn reset(&self, s: Synced) {
        self.state.lock().synced = s;
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.state.lock().closing = true;
        self.state.work.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(st: &State, shared: &Shared) {
    loop {
        let req = {
            let mut g = st.lock();
            loop {
                if let Some(r) = g.pending.take() {
                    if g.failure.is_none() {
                        g.busy = true;
                        break r;
                    }
                    // Written after a failed sync: never published, the writer cuts it back.
                    if g.waiters > 0 {
                        st.idle.notify_all();
                    }
                    continue;
                }
                if g.closing {
                    return;
                }
                g.sleeping = true;
                g = st.work.wait(g).unwrap_or_else(|p| p.into_inner());
                g.sleeping = false;
            }
        };
        // Turns a panic into a failure and wakes the writer (on unwinding only).
        let guard = Abandoned(st);
        let Request { file, publication } = req;
        let r = file.sync_data();
        let mut g = st.lock();
        let published = r.is_ok();
        match r {
            Ok(()) => {
                // Published under the syncer's lock, so the writer never sees `busy` false
                // before the reader has been shown what the sync covered.
                g.synced = Synced {
                    seq: publication.upto,
                    len: publication.seg_len,
                };
                crate::shared::publish(shared, publication, true);
            }
            Err(e) => g.failure = Some(e),
        }
        st.completions.fetch_add(1, Ordering::Release);
        g.busy = false;
        let wake = g.waiters > 0;
        drop(g);
        std::mem::forget(guard);
        if wake {
            st.idle.notify_all();
        }
        // Outside the syncer's lock: the hook (the processing loop's wake-up) may take a while,
        // and intake asks the syncer about its progress at every round.
        if published {
            crate::shared::call_hook(shared);
        }
    }
}

/// Dropped only when a sync panicked (a finished sync forgets it): the failure is recorded,
/// the thread counts as dead and the writer is woken, so nothing waits for it forever.
struct Abandoned<'a>(&'a State);

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        let mut g = self.0.lock();
        g.busy = false;
        g.failure
            .get_or_insert_with(|| io::Error::other("the spool's sync thread panicked"));
        self.0.completions.fetch_add(1, Ordering::Release);
        g.dead = true;
        g.pending = None;
        drop(g);
        self.0.idle.notify_all();
    }
}
