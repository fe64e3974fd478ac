//! Messages to stderr that never block the thread that prints them.
//!
//! stderr may be a pipe nobody reads (a stopped `journalctl -f | less`, a wrapper that hung):
//! a blocking write there froze the processing loop, so it stopped printing packets and could
//! not handle SIGTERM. Once [`start`] has run (the daemon calls it after dropping privileges,
//! because threads created before that would keep root's capabilities), [`line`] only queues the
//! message for a writer thread. Invariants:
//! - [`line`] never blocks: when the queue is full the message is dropped and counted, and the
//!   writer says how many were dropped before its next message;
//! - [`flush`] waits for the queue to drain at most for the time it is given (at exit), so a
//!   stalled stderr delays exit by at most that much;
//! - before [`start`] (and in `fwlog read`, `replay`), [`line`] writes directly, as eprintln.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Messages waiting for the writer thread at most.
const QUEUE: usize = 1024;

static TX: OnceLock<SyncSender<String>> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
static QUEUED: AtomicU64 = AtomicU64::new(0);

/// Queue `msg` (one line, without its newline) for stderr.
pub fn line(msg: String) {
    let Some(tx) = TX.get() else {
        eprintln!("{msg}");
        return;
    };
    QUEUED.fetch_add(1, Relaxed);
    match tx.try_send(msg) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
            QUEUED.fetch_sub(1, Relaxed);
            DROPPED.fetch_add(1, Relaxed);
        }
    }
}

/// Format and queue a message line (see [`line`]).
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => {
        $crate::stderr::line(format!($($t)*))
    };
}

/// Start the writer thread. Later calls do nothing.
pub fn start() -> std::io::Result<()> {
    if TX.get().is_some() {
        return Ok(());
    }
    let (tx, rx) = sync_channel::<String>(QUEUE);
    std::thread::Builder::new()
        .name("fwlog-stderr".into())
        .spawn(move || {
            let mut err = std::io::stderr();
            for msg in rx {
                let dropped = DROPPED.swap(0, Relaxed);
                if dropped > 0 {
                    let _ = writeln!(
                        err,
                        "fwlog: {dropped} messages were dropped while stderr was not being read"
                    );
                }
                let _ = writeln!(err, "{msg}");
                QUEUED.fetch_sub(1, Relaxed);
            }
        })?;
    let _ = TX.set(tx);
    Ok(())
}

/// Wait until every queued message is written, for at most `limit`.
pub fn flush(limit: Duration) {
    let end = Instant::now() + limit;
    while TX.get().is_some() && QUEUED.load(Relaxed) > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
}
