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
//!   side's hook called) only by this thread, only after a sync that covers them returned
//!   success, and in commit order: nothing is ever shown before it is durable.
//! - A failed sync publishes nothing, neither its request nor any later one (they are dropped
//!   unsynced), and is kept until the writer takes it ([`Syncer::take_failure`]) once the
//!   thread is idle: the writer then cuts back to the last published position (`ENOSPC`,
//!   `EDQUOT`) or poisons itself (any other error: a failed `fdatasync` is never retried).
//! - The writer never changes the file behind a request: it waits for the thread to be idle
//!   ([`Syncer::wait_idle`]) before a rollover, a cut back or a close.
//! - A panic on the thread becomes a failure (an I/O error that poisons the writer), and a
//!   waiting writer is woken: never a hang. Dropping the syncer ends and joins the thread.

use std::io;
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
    /// Bumped at every completed sync, good or failed: the writer reports the change.
    completions: u64,
    closing: bool,
    /// The thread is gone (a panic): nothing pending will ever be done.
    dead: bool,
}

struct State {
    inner: Mutex<Inner>,
    cond: Condvar,
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
                completions: 0,
                closing: false,
                dead: false,
            }),
            cond: Condvar::new(),
        });
        let st = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("fwlog-spool-sync".into())
            .spawn(move || run(&st, &shared))
            .ok()?;
        Some(Syncer {
            state,
            thread: Some(thread),
        })
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
        drop(g);
        self.state.cond.notify_all();
    }

    /// Until nothing is in flight or pending.
    pub fn wait_idle(&self) {
        let mut g = self.state.lock();
        while (g.busy || g.pending.is_some()) && !g.dead {
            g = self.state.cond.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The last published position.
    pub fn synced(&self) -> Synced {
        self.state.lock().synced
    }

    /// Syncs completed so far (good or failed).
    pub fn completions(&self) -> u64 {
        self.state.lock().completions
    }

    /// The published position and the failure to handle, if a sync failed: then only once the
    /// thread is idle (nothing it could still publish), and taking the failure lets it publish
    /// again.
    pub fn outcome(&self) -> (Synced, Option<io::Error>) {
        let mut g = self.state.lock();
        if g.failure.is_some() {
            while (g.busy || g.pending.is_some()) && !g.dead {
                g = self.state.cond.wait(g).unwrap_or_else(|p| p.into_inner());
            }
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
        self.state.cond.notify_all();
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
                    st.cond.notify_all();
                    continue;
                }
                if g.closing {
                    return;
                }
                g = st.cond.wait(g).unwrap_or_else(|p| p.into_inner());
            }
        };
        // Counts the sync as done however it ends, and turns a panic into a failure.
        let done = Done(st);
        let Request { file, publication } = req;
        let r = file.sync_data();
        let mut g = st.lock();
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
        g.completions += 1;
        drop(g);
        drop(done);
    }
}

/// One sync ended (or was abandoned by a panic): the writer is woken.
struct Done<'a>(&'a State);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        let mut g = self.0.lock();
        g.busy = false;
        if std::thread::panicking() {
            g.failure
                .get_or_insert_with(|| io::Error::other("the spool's sync thread panicked"));
            g.completions += 1;
            g.dead = true;
            g.pending = None;
        }
        drop(g);
        self.0.cond.notify_all();
    }
}
