//! State shared between the [`crate::Writer`] and the [`crate::Reader`], and the counters.
//!
//! Lock discipline: the mutex is held only to read or publish a few integers and the segment list,
//! never across I/O. Counters are relaxed atomics: each is monotonic and read only for reporting.

use std::any::Any;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use crate::fs::Fs;
use crate::options::Retention;
use crate::reaper::Reaper;

/// One live segment file, in sequence order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegMeta {
    pub first_seq: u64,
    /// Bytes in the file as far as the writer knows (header + committed records).
    pub bytes: u64,
    /// When its newest record was written (the file's mtime for segments found at open): what
    /// retention by age measures.
    pub newest: SystemTime,
}

/// How many of the oldest `segments` to delete: fully acknowledged ones only (never the last,
/// the writer's), oldest first, while the acknowledged ones left hold more than `ret.bytes`, or
/// fewer than `need` bytes have been freed, or the oldest is older than `ret.age` at `now`.
/// Shared by recovery at open and by [`Shared::reclaim_acked`] so that both apply one rule.
pub(crate) fn doomed(
    segments: &VecDeque<SegMeta>,
    acked: u64,
    ret: Retention,
    now: SystemTime,
    need: u64,
) -> usize {
    // Fully acknowledged: not the last (writer's) segment, and the next one starts at or below
    // acked + 1.
    let mut acked_bytes = 0u64;
    let mut n = 0;
    while n + 1 < segments.len() && segments[n + 1].first_seq - 1 <= acked {
        acked_bytes += segments[n].bytes;
        n += 1;
    }
    let expired = |m: &SegMeta| {
        // A modification time in the future (the clock was set back) counts as age 0: the
        // segment is kept until the clock passes it, or the size limits take it.
        ret.age
            .is_some_and(|a| now.duration_since(m.newest).unwrap_or(Duration::ZERO) > a)
    };
    let mut k = 0;
    let mut freeing = 0u64;
    while k < n && (acked_bytes > ret.bytes || freeing < need || expired(&segments[k])) {
        acked_bytes -= segments[k].bytes;
        freeing += segments[k].bytes;
        k += 1;
    }
    k
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
    /// Times the writer cut uncommitted bytes off its segment (a full filesystem) and will
    /// reuse their sequence numbers: the reader drops what it buffered beyond the commit.
    pub rewinds: u64,
    /// Committed chunks still in memory for the reader (see [`crate::handoff`]).
    pub handoff: crate::handoff::HandOff,
    /// Readers waiting on [`Shared::cond`] ([`crate::Reader::wait`]): a publish wakes them
    /// only if there are any (a wake is a system call even with nobody waiting, and a reader
    /// woken by the publish hook never waits there). Changed and read under this lock, so a
    /// reader that checked `committed` and is about to wait is counted before the publish
    /// looks.
    pub readers_waiting: usize,
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
    pub dropped_no_space_records: AtomicU64,
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
    /// What to keep of acknowledged segments.
    pub retention: Retention,
    /// Deletes segments behind [`crate::AckSync::store`]'s positions off its thread. Before
    /// `_lock`: dropping it waits for its deletions, so they end before the lock is released.
    pub reaper: OnceLock<Option<Reaper>>,
    /// Called after every publish, on the thread that published (the writer's, or its sync
    /// thread): how a caller that does not wait on [`Shared::cond`] learns of new records.
    pub on_publish: OnceLock<PublishHook>,
    /// Held for the lifetime of the writer and reader: the flock on `LOCK`.
    pub _lock: Box<dyn Any + Send + Sync>,
}

/// See [`Shared::on_publish`].
pub(crate) type PublishHook = Arc<dyn Fn() + Send + Sync>;

/// Shows the reader everything up to `p.upto` (and `durable`: as synced), offers `p.chunks` to
/// the hand-off, records the active segment's new length, and wakes the reader. The caller then
/// calls [`call_hook`] (outside any lock of its own). Positions only move forward.
pub(crate) fn publish(shared: &Shared, p: crate::syncer::Publication, durable: bool) {
    // Read outside the lock; used only if the segment grew (publish also runs for empty
    // commits, which must not make a segment look newer than its newest record).
    let now = shared.fs.now();
    let mut st = shared.lock();
    st.committed = st.committed.max(p.upto);
    if durable {
        st.durable = st.durable.max(p.upto);
    }
    if !p.chunks.is_empty() {
        st.handoff.offer(p.chunks.into_iter());
    }
    if let Some(m) = st.segments.back_mut() {
        if m.first_seq == p.seg_first && m.bytes != p.seg_len {
            m.bytes = p.seg_len;
            m.newest = now;
        }
    }
    let wake = st.readers_waiting > 0;
    drop(st);
    if wake {
        shared.cond.notify_all();
    }
}

/// Runs the publish hook ([`Shared::on_publish`]), if one is set.
pub(crate) fn call_hook(shared: &Shared) {
    if let Some(hook) = shared.on_publish.get() {
        hook();
    }
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the integers inconsistent in a way that
        // matters more than losing the spool, so recover from poisoning instead of propagating it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Deletes fully acknowledged segments (never the writer's), oldest first, as the retention
    /// demands (see [`doomed`]), freeing at least `need` bytes if it can.
    /// Callers: the reader after an acknowledgement and the writer's [`tick`](crate::Writer::tick)
    /// (`need` = 0), and the writer when the size cap is reached (`need` = what the append
    /// lacks).
    pub fn reclaim_acked(&self, need: u64) -> crate::error::Result<()> {
        self.reclaim_durable(need, 0, false)
    }

    /// [`reclaim_acked`](Self::reclaim_acked), counting everything up to `durable` as
    /// acknowledged too: a position the ledger has made durable that the reader has not yet
    /// taken in (the reader's [`AckSync`](crate::AckSync) deletes behind the position it
    /// stored, on its own thread, so the reader's `ack` finds nothing left to delete).
    /// `background`: the files are unlinked by the [`Reaper`] thread, not before returning;
    /// a failure there is returned by the next call with `background` (the next
    /// acknowledgement on the same thread, where the failure in place would have gone), if one
    /// comes before the spool is closed (see `reaper`).
    pub fn reclaim_durable(
        &self,
        need: u64,
        durable: u64,
        background: bool,
    ) -> crate::error::Result<()> {
        if let Some(r) = self.reaper.get().and_then(Option::as_ref) {
            if need > 0 {
                // The space is counted free already; the writer needs it on the disk now.
                r.wait_idle();
            }
            if background {
                if let Some(e) = r.take_error() {
                    return Err(e);
                }
            }
        }
        let now = self.fs.now();
        let doomed: Vec<u64> = {
            let mut st = self.lock();
            let acked = st.acked.max(durable);
            let k = doomed(&st.segments, acked, self.retention, now, need);
            let gone: Vec<SegMeta> = st.segments.drain(..k).collect();
            // Count the space as free while still holding the lock: a concurrent caller (the
            // writer needing room while the reader reclaims after an ack) finds nothing left to
            // delete and must then see the bytes already gone, not refuse its append as full.
            self.counters.disk_bytes.fetch_sub(
                gone.iter().map(|m| m.bytes).sum(),
                std::sync::atomic::Ordering::Relaxed,
            );
            gone.iter().map(|m| m.first_seq).collect()
        };
        if doomed.is_empty() {
            return Ok(());
        }
        let n = doomed.len() as u64;
        let paths: Vec<PathBuf> = doomed.into_iter().map(|f| self.segment_path(f)).collect();
        let paths = match self.reaper(background) {
            Some(r) => match r.hand_over(paths) {
                Ok(()) => {
                    add(&self.counters.segments_deleted, n);
                    return Ok(());
                }
                Err(p) => p,
            },
            None => paths,
        };
        crate::reaper::delete(&*self.fs, &self.dir, &paths)?;
        add(&self.counters.segments_deleted, n);
        Ok(())
    }

    /// The deletion thread, started at its first use; `None` when not wanted or not startable.
    fn reaper(&self, wanted: bool) -> Option<&Reaper> {
        if !wanted {
            return None;
        }
        self.reaper
            .get_or_init(|| Reaper::start(Arc::clone(&self.fs), self.dir.clone()))
            .as_ref()
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
            dropped_no_space_records: c.dropped_no_space_records.load(Relaxed),
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
    /// Records accepted by `append`, counted per batch: at its commit (or when a full
    /// filesystem dropped it), not at each append.
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
    /// Appended records dropped because the filesystem was full at their commit.
    pub dropped_no_space_records: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(newest: &[u64]) -> VecDeque<SegMeta> {
        // Segments of 10 records and 1000 bytes each; `newest` in seconds since the epoch.
        newest
            .iter()
            .enumerate()
            .map(|(i, &t)| SegMeta {
                first_seq: 1 + 10 * i as u64,
                bytes: 1000,
                newest: SystemTime::UNIX_EPOCH + Duration::from_secs(t),
            })
            .collect()
    }

    fn at(t: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(t)
    }

    const NONE: Retention = Retention {
        bytes: 0,
        age: None,
    };

    #[test]
    fn without_retention_every_acknowledged_segment_goes_but_never_the_writers() {
        let s = segs(&[1, 2, 3]);
        assert_eq!(doomed(&s, 0, NONE, at(9), 0), 0);
        assert_eq!(doomed(&s, 9, NONE, at(9), 0), 0, "segment 1 ends at 10");
        assert_eq!(doomed(&s, 10, NONE, at(9), 0), 1);
        assert_eq!(doomed(&s, 30, NONE, at(9), 0), 2, "the writer's stays");
    }

    #[test]
    fn by_age_the_oldest_expired_go_and_a_future_time_counts_as_new() {
        let ret = Retention {
            bytes: u64::MAX,
            age: Some(Duration::from_secs(100)),
        };
        let s = segs(&[10, 50, 60]);
        assert_eq!(doomed(&s, 30, ret, at(110), 0), 0, "exactly 100 s: kept");
        assert_eq!(doomed(&s, 30, ret, at(111), 0), 1);
        assert_eq!(doomed(&s, 30, ret, at(1000), 0), 2);
        assert_eq!(
            doomed(&s, 15, ret, at(1000), 0),
            1,
            "only acknowledged ones"
        );
        // The clock was set back below the segments' times: they are kept.
        assert_eq!(doomed(&s, 30, ret, at(5), 0), 0);
        // Oldest first: an expired segment behind a young one waits for it.
        let s = segs(&[500, 10, 600]);
        assert_eq!(doomed(&s, 30, ret, at(300), 0), 0);
    }

    #[test]
    fn by_size_and_need() {
        let ret = Retention {
            bytes: 1000,
            age: None,
        };
        let s = segs(&[1, 2, 3, 4]);
        assert_eq!(
            doomed(&s, 40, ret, at(9), 0),
            2,
            "three acknowledged, keep one"
        );
        assert_eq!(
            doomed(&s, 40, ret, at(9), 1500),
            2,
            "the size limit already frees 2000"
        );
        assert_eq!(doomed(&s, 40, ret, at(9), 2500), 3, "need frees more");
        assert_eq!(doomed(&s, 40, ret, at(9), 10_000), 3, "never the writer's");
    }
}
