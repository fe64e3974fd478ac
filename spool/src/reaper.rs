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
//! - A batch is counted done however its deletion ends: a panic is caught and kept as the
//!   batch's failure (reported like one), and the thread goes on, so `wait_idle` never waits
//!   for a batch nobody will finish and later segments are still deleted.
//! - [`Reaper::wait_idle`] returns once everything handed over is done: a writer that needs the
//!   space now waits for it instead of finding the disk still full.
//! - Dropping the reaper waits for the thread to finish what it was handed, so a spool opened
//!   again in the same process never races a deletion of the previous instance.
//! - A crash before an unlink leaves a file whose records are all below the durable position:
//!   recovery deletes it at the next open.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
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
                    // A panic is caught and kept as this batch's failure: the batch counts as
                    // done (a writer waiting for room in `wait_idle` must never wait for a batch
                    // nobody will finish) and the thread goes on with the next one.
                    let outcome = catch_unwind(AssertUnwindSafe(|| delete(&*fs, &dir, &paths)))
                        .unwrap_or_else(|panic| Err(panicked(&paths, &*panic)));
                    let mut p = st.lock();
                    if let Err(e) = outcome {
                        p.error.get_or_insert(e);
                    }
                    p.queued = p.queued.saturating_sub(1);
                    drop(p);
                    st.idle.notify_all();
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

/// A deletion that panicked, as the failure the next acknowledgement reports.
fn panicked(paths: &[PathBuf], panic: &(dyn Any + Send)) -> Error {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    let path = paths.first().map(PathBuf::as_path).unwrap_or(Path::new(""));
    Error::io(
        "remove",
        path,
        std::io::Error::other(format!("the deletion thread panicked: {what}")),
    )
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
pub(crate) fn delete(fs: &dyn Fs, dir: &Path, paths: &[PathBuf]) -> Result<(), Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{DirEntry, FsFile};
    use std::io;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, SystemTime};

    /// Panics on every unlink; the reaper uses nothing else but `sync_dir`.
    #[derive(Default)]
    struct PanicOnRemove {
        removes: AtomicUsize,
    }

    fn unused<T>() -> io::Result<T> {
        Err(io::Error::other("not used by the reaper"))
    }

    impl Fs for PanicOnRemove {
        fn open_read(&self, _: &Path) -> io::Result<Box<dyn FsFile>> {
            unused()
        }
        fn open_rw(&self, _: &Path) -> io::Result<Box<dyn FsFile>> {
            unused()
        }
        fn create_new(&self, _: &Path) -> io::Result<Box<dyn FsFile>> {
            unused()
        }
        fn create_dir(&self, _: &Path) -> io::Result<bool> {
            unused()
        }
        fn read_dir(&self, _: &Path) -> io::Result<Vec<DirEntry>> {
            unused()
        }
        fn remove_file(&self, path: &Path) -> io::Result<()> {
            self.removes.fetch_add(1, Ordering::SeqCst);
            panic!("simulated panic unlinking {}", path.display());
        }
        fn rename(&self, _: &Path, _: &Path) -> io::Result<()> {
            unused()
        }
        fn sync_dir(&self, _: &Path) -> io::Result<()> {
            Ok(())
        }
        fn lock_exclusive(&self, _: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
            unused()
        }
        fn modified(&self, _: &Path) -> io::Result<SystemTime> {
            unused()
        }
    }

    /// `wait_idle` on another thread, failing the test instead of hanging it.
    fn wait_idle_within(reaper: &Reaper, limit: Duration) {
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                reaper.wait_idle();
                let _ = tx.send(());
            });
            assert!(
                rx.recv_timeout(limit).is_ok(),
                "wait_idle still waiting {limit:?} after a deletion panicked"
            );
        });
    }

    /// A deletion that panics neither leaves a writer waiting for room forever nor stops the
    /// thread: the panic is reported as that batch's failure and the next batch is still taken.
    #[test]
    fn a_panicking_deletion_is_reported_and_the_thread_goes_on() {
        let fs = Arc::new(PanicOnRemove::default());
        let reaper = Reaper::start(fs.clone(), PathBuf::from("/spool")).expect("thread");
        for n in 1..=2 {
            let seg = PathBuf::from(format!("/spool/{n:010}.seg"));
            reaper.hand_over(vec![seg.clone()]).expect("thread alive");
            wait_idle_within(&reaper, Duration::from_secs(10));
            assert_eq!(fs.removes.load(Ordering::SeqCst), n);
            let e = reaper
                .take_error()
                .expect("the panic, as a failure")
                .to_string();
            assert!(e.contains("panicked"), "{e}");
            assert!(e.contains(&*seg.to_string_lossy()), "{e}");
            assert!(reaper.take_error().is_none());
        }
        // Dropping joins the thread.
        drop(reaper);
    }
}
