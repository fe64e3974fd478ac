//! State shared between the [`crate::Writer`] and the [`crate::Reader`], and the counters.
//!
//! Lock discipline: the mutex is held only to read or publish a few integers and the segment list,
//! never across I/O. Counters are relaxed atomics: each is monotonic and read only for reporting.

use std::any::Any;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::fs::Fs;

/// One live segment file, in sequence order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegMeta {
    pub first_seq: u64,
    /// Bytes in the file as far as the writer knows (header + committed records).
    pub bytes: u64,
}

#[derive(Debug)]
pub(crate) struct State {
    /// Highest sequence number written to a segment and visible to the reader.
    pub committed: u64,
    /// Highest sequence number known to be fdatasync'ed.
    pub durable: u64,
    /// Highest acknowledged sequence number (persisted in the ledger).
    pub acked: u64,
    /// Live segments, ascending by `first_seq`. The last one is the writer's.
    pub segments: VecDeque<SegMeta>,
    /// False once the writer is dropped, so a waiting reader does not sleep for nothing.
    pub writer_alive: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub appended_records: AtomicU64,
    pub appended_bytes: AtomicU64,
    pub committed_records: AtomicU64,
    pub committed_bytes: AtomicU64,
    pub acked_records: AtomicU64,
    pub rejected_full_records: AtomicU64,
    pub rejected_full_bytes: AtomicU64,
    pub rejected_too_large: AtomicU64,
    pub corrupt_regions_skipped: AtomicU64,
    pub corrupt_bytes_skipped: AtomicU64,
    pub records_lost_in_gaps: AtomicU64,
    pub files_quarantined: AtomicU64,
    pub bytes_truncated: AtomicU64,
    pub segments_deleted: AtomicU64,
    /// Sum of the sizes of all live segment files (for the size cap).
    pub disk_bytes: AtomicU64,
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

pub(crate) struct Shared {
    pub fs: Arc<dyn Fs>,
    pub dir: PathBuf,
    pub state: Mutex<State>,
    pub cond: Condvar,
    pub counters: Counters,
    /// Held for the lifetime of the writer and reader: the flock on `LOCK`.
    pub _lock: Box<dyn Any + Send + Sync>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the integers inconsistent in a way that
        // matters more than losing the spool, so recover from poisoning instead of propagating it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delete fully acknowledged segments (never the writer's), oldest first, until the
    /// acknowledged segments that remain hold at most `keep` bytes and at least `need` bytes were
    /// freed (or none is left). Returns the bytes freed. Callers are the reader after an
    /// acknowledgement (`keep` = the retention, `need` = 0) and the writer when the size cap is
    /// reached (`keep` = the retention, `need` = what the append lacks).
    pub fn reclaim_acked(&self, keep: u64, need: u64) -> crate::error::Result<u64> {
        let doomed: Vec<(u64, u64)> = {
            let mut st = self.lock();
            // Fully acknowledged: not the last (writer's) segment, and the next one starts at or
            // below acked + 1.
            let mut acked_bytes = 0u64;
            let mut n = 0;
            while n + 1 < st.segments.len() && st.segments[n + 1].first_seq - 1 <= st.acked {
                acked_bytes += st.segments[n].bytes;
                n += 1;
            }
            let mut v = Vec::new();
            let mut freeing = 0u64;
            while n > 0 && (acked_bytes > keep || freeing < need) {
                let Some(m) = st.segments.pop_front() else {
                    break;
                };
                acked_bytes -= m.bytes;
                freeing += m.bytes;
                n -= 1;
                v.push((m.first_seq, m.bytes));
            }
            v
        };
        if doomed.is_empty() {
            return Ok(0);
        }
        let mut freed = 0;
        for (first, bytes) in &doomed {
            let path = self.segment_path(*first);
            match self.fs.remove_file(&path) {
                Ok(()) => {}
                // Already gone is what we wanted.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // The segment is no longer tracked; recovery deletes it at the next open.
                Err(e) => return Err(crate::error::Error::io("remove", path, e)),
            }
            self.counters
                .disk_bytes
                .fetch_sub(*bytes, std::sync::atomic::Ordering::Relaxed);
            add(&self.counters.segments_deleted, 1);
            freed += bytes;
        }
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| crate::error::Error::io("fsync", &self.dir, e))?;
        Ok(freed)
    }

    pub fn segment_path(&self, first_seq: u64) -> PathBuf {
        segment_path(&self.dir, first_seq)
    }

    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let st = self.lock();
        Stats {
            appended_records: c.appended_records.load(Relaxed),
            appended_bytes: c.appended_bytes.load(Relaxed),
            committed_records: c.committed_records.load(Relaxed),
            committed_bytes: c.committed_bytes.load(Relaxed),
            acked_records: c.acked_records.load(Relaxed),
            pending_records: st.committed.saturating_sub(st.acked),
            segments: st.segments.len() as u64,
            disk_bytes: c.disk_bytes.load(Relaxed),
            rejected_full_records: c.rejected_full_records.load(Relaxed),
            rejected_full_bytes: c.rejected_full_bytes.load(Relaxed),
            rejected_too_large: c.rejected_too_large.load(Relaxed),
            corrupt_regions_skipped: c.corrupt_regions_skipped.load(Relaxed),
            corrupt_bytes_skipped: c.corrupt_bytes_skipped.load(Relaxed),
            records_lost_in_gaps: c.records_lost_in_gaps.load(Relaxed),
            files_quarantined: c.files_quarantined.load(Relaxed),
            bytes_truncated: c.bytes_truncated.load(Relaxed),
            segments_deleted: c.segments_deleted.load(Relaxed),
            committed_seq: st.committed,
            durable_seq: st.durable,
            acked_seq: st.acked,
        }
    }
}

pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(crate::format::segment_file_name(first_seq))
}

/// A snapshot of the spool's counters (since open, except the `*_seq`, `segments`, `disk_bytes`
/// and `pending_records` gauges, which describe the spool as it is now).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records accepted by `append` (whether committed yet or not).
    pub appended_records: u64,
    pub appended_bytes: u64,
    /// Records handed to the kernel by a commit (see `FsyncPolicy` for when they are durable).
    pub committed_records: u64,
    pub committed_bytes: u64,
    /// Sequence numbers acknowledged since open.
    pub acked_records: u64,
    /// `committed_seq - acked_seq`: records waiting to be acknowledged (gaps included).
    pub pending_records: u64,
    /// Live segment files.
    pub segments: u64,
    /// Bytes in live segment files (what the size cap applies to).
    pub disk_bytes: u64,
    /// Appends refused with `AppendError::Full`, and their payload bytes.
    pub rejected_full_records: u64,
    pub rejected_full_bytes: u64,
    /// Appends refused with `AppendError::TooLarge`.
    pub rejected_too_large: u64,
    /// Unreadable regions skipped by the reader (rest of a segment after a bad record).
    pub corrupt_regions_skipped: u64,
    pub corrupt_bytes_skipped: u64,
    /// Sequence numbers the reader found missing between segments (lost to corruption).
    pub records_lost_in_gaps: u64,
    /// Files moved into `quarantine/` at open.
    pub files_quarantined: u64,
    /// Bytes cut off torn tails (or removed half-created segments) at open.
    pub bytes_truncated: u64,
    /// Fully acknowledged segment files deleted.
    pub segments_deleted: u64,
    pub committed_seq: u64,
    pub durable_seq: u64,
    pub acked_seq: u64,
}
