//! Deleting acknowledged segment files on a thread of their own.
//!
//! Why: unlinking a segment whose pages are in the page cache frees every one of them (64 MiB:
//! 17-20 ms, measured on a start-up replay). Done by [`crate::AckSync::store`] on the thread
//! that stores acknowledgements (the daemon's output thread), that time held up the next
//! batch's write, and with it the processing loop, once per segment.
//!
//! Invariants:
//! - Only segments already taken out of the shared segment list are handed over: their records
//!   are acknowledged durably and nothing reads or writes them again.
//! - Files are unlinked in the order handed over; the directory is synced once per hand-over,
//!   after its unlinks.
//! - The first failure is kept and returned by the next [`Reaper::take_error`] (the next
//!   acknowledgement that hands files over), as the same failure in place would have been;
//!   later ones until then are not (the same cause, most likely). A failure kept when the
//!   spool is closed is not reported: the file stays, and recovery deletes it at the next open
//!   (its records are all acknowledged), so nothing is lost or printed twice.
//! - `segments_deleted` counts segments when they are handed over: a segment whose unlink
//!   failed was counted, and is deleted at the next open.
//! - A batch is counted done however its deletion ends (a panic included), so `wait_idle` never
//!   waits for a batch the thread abandoned.
//! - [`Reaper::wait_idle`] returns once everything handed over is done: a writer that needs the
//!   space now waits for it instead of finding the disk still full.
//! - Dropping the reaper waits for the thread to finish what it was handed, so a spool opened
//!   again in the same process never races a deletion of the previous instance.
//! - A crash before an unlink leaves a file whose records are all below the durable position:
//!   recovery deletes it at the next open.

use std::path::PathBuf;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::error::Error;
use crate::fs::Fs;

/// Handed-over work not yet done, and the first failure not yet reported.
#[derive(Default)]
struct Progress {
    queued: usize,
    error: Option<Error>,
}

#[derive(Default)]
struct Status {
    progress: Mutex<Progress>,
    idle: Condvar,
}

impl Status {
    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        // Two integers and an error: consistent whatever a panicking holder did.
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct Reaper {
    tx: Option<mpsc::Sender<Vec<PathBuf>>>,
    thread: Option<JoinHandle<()>>,
    status: Arc<Status>,
}

impl Reaper {
    /// Starts the thread; `None` if it cannot be started (the caller deletes in place).
    pub fn start(fs: Arc<dyn Fs>, dir: PathBuf) -> Option<Reaper> {
        let (tx, rx) = mpsc::channel::<Vec<PathBuf>>();
        let status = Arc::new(Status::default());
        let st = Arc::clone(&status);
        let thread = std::thread::Builder::new()
            .name("fwlog-spool-rm".into())
            .spawn(move || {
                for paths in rx {
                    // Counted done however `delete` ends, a panic included: a writer waiting
                    // for room (`wait_idle`) must never wait for a batch nobody will finish.
                    let done = Done(&st);
                    if let Err(e) = delete(&*fs, &dir, &paths) {
                        st.lock().error.get_or_insert(e);
                    }
                    drop(done);
                }
            })
            .ok()?;
        Some(Reaper {
            tx: Some(tx),
            thread: Some(thread),
            status,
        })
    }

    /// Hands `paths` over; gives them back if the thread is gone.
    pub fn hand_over(&self, paths: Vec<PathBuf>) -> Result<(), Vec<PathBuf>> {
        let Some(tx) = &self.tx else {
            return Err(paths);
        };
        self.status.lock().queued += 1;
        tx.send(paths).map_err(|mpsc::SendError(p)| {
            self.status.lock().queued -= 1;
            p
        })
    }

    /// The first failure since the last call, if any.
    pub fn take_error(&self) -> Option<Error> {
        self.status.lock().error.take()
    }

    /// Until everything handed over is done.
    pub fn wait_idle(&self) {
        let mut p = self.status.lock();
        while p.queued > 0 {
            p = self.status.idle.wait(p).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// One handed-over batch finished (or abandoned by a panic): counted and the waiters woken.
struct Done<'a>(&'a Status);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        let mut p = self.0.lock();
        p.queued = p.queued.saturating_sub(1);
        drop(p);
        self.0.idle.notify_all();
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Unlinks `paths` (already gone counts as done), then syncs `dir` once.
pub(crate) fn delete(fs: &dyn Fs, dir: &std::path::Path, paths: &[PathBuf]) -> Result<(), Error> {
    for path in paths {
        match fs.remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // The segment is no longer tracked; recovery deletes it at the next open.
            Err(e) => return Err(Error::io("remove", path, e)),
        }
    }
    fs.sync_dir(dir).map_err(|e| Error::io("fsync", dir, e))
}
