//! Error types. Every I/O error carries the operation and the path; record-level errors carry the
//! sequence number.

use std::io;
use std::path::PathBuf;

/// Errors from opening, writing, reading and acknowledging.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Another process (or another `Spool` in this process) has the spool open for writing.
    #[error("spool {path} is in use by another process (lock file {lock} is held)")]
    Locked { path: PathBuf, lock: PathBuf },
    /// A record that the writer had committed could not be read back: the file changed under us.
    #[error("{path}: record {seq} at offset {offset} is unreadable ({reason})")]
    Corrupt {
        path: PathBuf,
        seq: u64,
        offset: u64,
        reason: String,
    },
    /// `ack` was asked to acknowledge records this reader has not delivered yet.
    #[error("cannot acknowledge up to {upto}: only up to {delivered} has been delivered")]
    AckBeyondDelivered { upto: u64, delivered: u64 },
    /// An earlier write or sync failed, so what is on disk is unknown; the spool must be reopened
    /// (which runs recovery) before it is written to again. Drop both the writer and the reader
    /// first: together they hold the lock.
    #[error("spool writer is unusable after an earlier I/O error ({0}); reopen the spool")]
    Poisoned(String),
    /// The filesystem is full (ENOSPC, or EDQUOT for a quota). The records appended since the
    /// last commit (`dropped`, if any) were not stored: the segment was cut back to what was
    /// committed. The writer stays usable, so appends succeed again once there is room.
    #[error("spool filesystem is full ({op} {path}: {source}){}", match dropped {
        Some((a, b)) => format!(": records {a}-{b} were not stored"),
        None => String::new(),
    })]
    NoSpace {
        op: &'static str,
        path: PathBuf,
        dropped: Option<(u64, u64)>,
        #[source]
        source: io::Error,
    },
    /// Invalid options.
    #[error("invalid spool options: {0}")]
    Options(String),
}

/// True for the errors that mean "no room left" rather than a broken disk.
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Errors from [`crate::Writer::append`]. `Full` and `TooLarge` reject only this record: the
/// writer stays usable and the rejection is counted.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The spool is at its size cap (`Options::max_bytes`); the record was not stored.
    #[error("spool full: {used} of {limit} bytes used, record needs {needed}")]
    Full { used: u64, limit: u64, needed: u64 },
    /// The record is larger than `Options::max_record_len`.
    #[error("record of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    /// An [`append_with`](crate::Writer::append_with) filler wrote `wrote` bytes where it
    /// promised `len`; nothing was stored.
    #[error("record filler wrote {wrote} bytes, {len} were promised")]
    Length { len: usize, wrote: usize },
    /// I/O failure (the writer is poisoned afterwards if data may have been partly written).
    #[error(transparent)]
    Spool(#[from] Error),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
