//! The writer: sequence numbers, group commit, segment rollover, the size cap.
//!
//! Invariants:
//! - Records are encoded into one in-memory batch buffer; [`Writer::commit`] writes the whole batch
//!   with a single `pwrite` at the end of the active segment and (policy permitting) one
//!   `fdatasync`. Only then is the new committed position published to the reader. (A batch over
//!   1 MiB is written out early, still unpublished, to bound memory.)
//! - Under [`FsyncPolicy::EveryCommit`] the reader is shown records only after they are synced.
//!   With [`Options::background_sync`] the sync (and the publish after it) runs on the spool's
//!   sync thread (`crate::syncer`, the writer's side in `writer_sync.rs`); the other invariants
//!   here hold unchanged, a rollover and a close waiting for the sync.
//! - Before a new segment is created, the old one is written out and `fdatasync`ed completely,
//!   whatever the policy: a segment that has a successor is always whole on disk, so a torn tail
//!   can only ever be in the last segment.
//! - A full filesystem (ENOSPC, EDQUOT) is not a broken disk: a write or sync failing with it cuts
//!   the segment back to its last commit (`ftruncate` needs no space), drops the records appended
//!   since then and returns [`Error::NoSpace`] naming them, and the writer stays usable; their
//!   sequence numbers are reused (they were never shown to the reader). A segment that cannot be
//!   created for lack of room is removed again and the current one stays active.
//! - After any other failed write or sync the writer is poisoned: the file may hold a partial
//!   batch, and appending behind it would strand later records behind a gap. Reopening runs
//!   recovery, which truncates the partial batch.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::error::{AppendError, Error, Result};
use crate::format::{self, SEGMENT_HEADER_LEN};
use crate::fs::FsFile;
use crate::handoff::Chunk;
use crate::options::{FsyncPolicy, Options};
use crate::record_buf::RecordBuf;
use crate::recovery::create_segment;
use crate::shared::{add, SegMeta, Shared, Stats};
use crate::syncer::{Synced, Syncer};

#[path = "writer_sync.rs"]
mod background;

/// Buffered batch bytes beyond which `append` writes them out ahead of the commit.
const SPILL_BYTES: usize = 1024 * 1024;

/// Result of a commit. Sequence numbers are 0 when nothing has been committed yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// Every record up to this sequence number has been handed to the kernel: it survives the
    /// process being killed (kill -9), and the reader can see it.
    pub written: u64,
    /// Every record up to this sequence number has been `fdatasync`ed: it survives a power loss or
    /// kernel crash. Equal to `written` under [`FsyncPolicy::EveryCommit`].
    pub durable: u64,
}

/// The appending side. Owned by one thread (it is `Send`, not shared).
pub struct Writer {
    shared: Arc<Shared>,
    opts: Options,
    /// Shared with the sync thread, which syncs it (see [`crate::syncer`]).
    file: Arc<dyn FsFile>,
    seg_first: u64,
    /// Bytes in the active segment file (header + committed records).
    seg_len: u64,
    /// `seg_len` and the last sequence number as of the last publish: what a full filesystem
    /// cuts back to.
    published_len: u64,
    published_seq: u64,
    batch: Vec<u8>,
    /// Sequence number of the first record in `batch` (when it holds any).
    batch_first: u64,
    /// Chunks written since the last publish, offered to the reader's memory at the next one
    /// (`Options::handoff_bytes`; empty when that is 0).
    staged: Vec<Chunk>,
    /// Emptied buffers to write the next batch into (from the reader, via the hand-off).
    spare: Vec<Vec<u8>>,
    batch_records: u64,
    batch_payload: u64,
    batch_started: Option<Instant>,
    next_seq: u64,
    written: u64,
    durable: u64,
    last_sync: Instant,
    poisoned: Option<String>,
    /// When the active segment's first record was written (`None` while it holds none).
    seg_first_write: Option<SystemTime>,
    /// Last time [`tick`](Self::tick) did its work (by [`crate::Fs::now`]).
    last_tick: SystemTime,
    /// The sync thread ([`Options::background_sync`] under [`FsyncPolicy::EveryCommit`]);
    /// `None`: syncs run in place.
    syncer: Option<Syncer>,
    /// The sync thread is wanted and not tried yet: started by the first commit.
    want_syncer: bool,
    /// Syncs the thread had completed at the last look (see `writer_sync.rs`).
    seen_syncs: u64,
    /// The last sequence number handed to the sync thread.
    submitted: u64,
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        opts: Options,
        active: (Box<dyn FsFile>, u64, u64),
        next_seq: u64,
    ) -> Writer {
        let (file, seg_first, seg_len) = active;
        let want_syncer = opts.background_sync && opts.fsync == FsyncPolicy::EveryCommit;
        Writer {
            shared,
            opts,
            file: Arc::from(file),
            seg_first,
            seg_len,
            published_len: seg_len,
            published_seq: next_seq - 1,
            batch: Vec::with_capacity(64 * 1024),
            batch_first: next_seq,
            staged: Vec::new(),
            spare: Vec::new(),
            batch_records: 0,
            batch_payload: 0,
            batch_started: None,
            next_seq,
            written: next_seq - 1,
            durable: next_seq - 1,
            last_sync: Instant::now(),
            poisoned: None,
            // Recovery reuses a segment that holds records only without retention by age, which
            // is the only user of this.
            seg_first_write: None,
            last_tick: SystemTime::UNIX_EPOCH,
            syncer: None,
            want_syncer,
            seen_syncs: 0,
            submitted: next_seq - 1,
        }
    }

    /// Calls `hook` after every publish of new records to the reader, on the thread that
    /// publishes (this writer's, or with [`Options::background_sync`] its sync thread), for a
    /// reader woken by other means than [`crate::Reader::wait`]. Set once; later calls are
    /// ignored.
    pub fn set_publish_hook(&self, hook: impl Fn() + Send + Sync + 'static) {
        let _ = self.shared.on_publish.set(Arc::new(hook));
    }

    /// Adds a record to the current batch and returns its sequence number. The record is not
    /// durable until a later [`commit`](Self::commit) (or an implicit one at segment rollover)
    /// says so. Fails with [`AppendError::Full`] when the size cap would be exceeded and with
    /// [`AppendError::TooLarge`] above `max_record_len`; both are counted and leave the writer
    /// usable.
    pub fn append(&mut self, payload: &[u8]) -> std::result::Result<u64, AppendError> {
        self.append_with(payload.len(), |b| b.extend_from_slice(payload))
    }

    /// [`append`](Self::append) for a payload built in place: `fill` appends exactly `len`
    /// bytes to the [`RecordBuf`] it is given (the writer's batch buffer behind the record
    /// header, which it can only grow), so a caller assembling a record from parts copies them
    /// once, straight into the batch. `fill` runs only once every check has passed (it is not
    /// called when the append fails). If it appends any other number of bytes, what it wrote is
    /// taken back and the append fails with [`AppendError::Length`] (a caller bug; the writer
    /// stays usable). If it panics, the header and what it wrote are taken back as the panic
    /// unwinds, so a caller that catches the panic finds the writer as it was before the call.
    pub fn append_with(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut RecordBuf<'_>),
    ) -> std::result::Result<u64, AppendError> {
        self.check_poisoned()?;
        let c = &self.shared.counters;
        if len > self.opts.max_record_len {
            add(&c.rejected_too_large, 1);
            return Err(AppendError::TooLarge {
                len,
                max: self.opts.max_record_len,
            });
        }
        let rec = format::record_len(len) as u64;
        let rollover = self.seals_before(len);
        let needed = rec
            + if rollover {
                SEGMENT_HEADER_LEN as u64
            } else {
                0
            };
        let mut used = c.disk_bytes.load(Relaxed) + self.batch.len() as u64;
        if used + needed > self.opts.max_bytes && self.shared.retention.keeps() {
            // Retained (already printed) segments give way to records not yet printed.
            let over = used + needed - self.opts.max_bytes;
            self.shared.reclaim_acked(over).map_err(AppendError::from)?;
            used = c.disk_bytes.load(Relaxed) + self.batch.len() as u64;
        }
        if used + needed > self.opts.max_bytes {
            add(&c.rejected_full_records, 1);
            add(&c.rejected_full_bytes, len as u64);
            return Err(AppendError::Full {
                used,
                limit: self.opts.max_bytes,
                needed,
            });
        }
        if rollover {
            self.rollover()?;
        }
        let seq = self.next_seq;
        let start = self.batch.len();
        // One capacity check for the record; the filler's appends then never grow the buffer.
        self.batch.reserve(format::record_len(len));
        format::encode_record_header(&mut self.batch, seq, len);
        let mut buf = RecordBuf::new(&mut self.batch, start);
        fill(&mut buf);
        let wrote = buf.len();
        if wrote != len {
            // Dropping `buf` takes the record back.
            return Err(AppendError::Length { len, wrote });
        }
        buf.keep();
        drop(buf);
        self.next_seq += 1;
        self.batch_records += 1;
        self.batch_payload += len as u64;
        if self.batch.len() >= SPILL_BYTES {
            self.spill()?;
        }
        if self.batch_started.is_none() {
            self.batch_started = Some(Instant::now());
        }
        // The `appended_*` counters are added per batch (`write_batch`, `failed`): two atomic
        // additions per record were a measurable part of the intake thread's work.
        Ok(seq)
    }

    /// Whether appending a record of `payload_len` bytes first seals the active segment: an
    /// implicit commit that publishes every record appended so far to the reader (which may
    /// print, acknowledge and delete them) before the append returns.
    pub fn seals_before(&self, payload_len: usize) -> bool {
        let rec = format::record_len(payload_len) as u64;
        // The previous attempt to roll over may have failed for lack of room, leaving a segment
        // beyond its size: try again at every append.
        let seg_used = self.seg_len + self.batch.len() as u64;
        seg_used + rec > self.opts.segment_bytes && seg_used > SEGMENT_HEADER_LEN as u64
    }

    /// Writes the current batch (one `pwrite`), syncs according to the [`FsyncPolicy`] (one
    /// `fdatasync`), publishes the new position to the reader and wakes it. Cheap when the batch
    /// is empty (it may still sync under `Interval` if earlier commits are unsynced).
    ///
    /// With [`Options::background_sync`] (under [`FsyncPolicy::EveryCommit`]) the sync runs on
    /// the spool's sync thread instead and this returns once the batch is written: the records
    /// reach the reader when their sync ends, `Commit::durable` may lag `written`, and a later
    /// call reports how far the syncs got (see [`commit_wait`](Self::commit_wait) and the
    /// crate docs, "Durability off the caller's thread").
    pub fn commit(&mut self) -> Result<Commit> {
        self.check_poisoned()?;
        self.start_syncer();
        if self.syncer.is_some() {
            return self.commit_background(false);
        }
        self.write_batch()?;
        let sync = match self.opts.fsync {
            FsyncPolicy::EveryCommit => self.durable < self.written,
            FsyncPolicy::Interval(d) => {
                self.durable < self.written && self.last_sync.elapsed() >= d
            }
            FsyncPolicy::Never => false,
        };
        if sync {
            self.sync()?;
        }
        self.publish();
        Ok(self.position())
    }

    /// True if the batch has reached `batch_max_records`, its time window has elapsed, or (under
    /// [`FsyncPolicy::Interval`]) committed records have waited a whole interval for their sync.
    /// With [`Options::background_sync`], also true once a sync has ended since the last
    /// commit (its records are published, or it failed), so that the caller learns of it.
    pub fn commit_due(&self) -> bool {
        self.batch_records >= self.opts.batch_max_records as u64
            || self.commit_deadline().is_some_and(|d| Instant::now() >= d)
            || self.sync_news()
    }

    /// When a commit becomes due by time (`None` if nothing is waiting): the end of the current
    /// batch's time window, or under [`FsyncPolicy::Interval`] the time the pending sync is due.
    /// The intake thread should block (e.g. in `poll`) no longer than this before calling
    /// [`commit_if_due`](Self::commit_if_due).
    pub fn commit_deadline(&self) -> Option<Instant> {
        let batch = self.batch_started.map(|t| t + self.opts.batch_max_delay);
        let sync = match self.opts.fsync {
            FsyncPolicy::Interval(d) if self.durable < self.written => Some(self.last_sync + d),
            _ => None,
        };
        match (batch, sync) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Commits if [`commit_due`](Self::commit_due); returns `None` otherwise.
    pub fn commit_if_due(&mut self) -> Result<Option<Commit>> {
        if self.commit_due() {
            self.commit().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Time-based upkeep for retention by age ([`Options::retain_age`]); a no-op without it.
    /// Call it from the thread that owns the writer at least every few hundred milliseconds
    /// (more often is harmless: it does its work at most every sixteenth of `retain_age`, between
    /// 10 ms and 1 s), including while no records arrive, since that is when old records would
    /// otherwise outstay the limit:
    ///
    /// - once the active segment's oldest record is `retain_age / 8` old, seals it and starts a
    ///   new one (an implicit commit of the current batch), because deletion is per segment and
    ///   the writer's segment is never deleted;
    /// - deletes acknowledged segments whose newest record is older than `retain_age`.
    ///
    /// Returns the commit if sealing committed records, so the caller can treat it like the
    /// result of [`commit`](Self::commit) (e.g. wake its reader).
    pub fn tick(&mut self) -> Result<Option<Commit>> {
        let ret = self.shared.retention;
        let (Some(every), Some(roll_after)) = (ret.tick_every(), ret.roll_after()) else {
            return Ok(None);
        };
        // The filesystem's clock, not `Instant`, so that a simulated clock drives this too. A
        // clock set back just makes the tick run now.
        let now = self.shared.fs.now();
        if now
            .duration_since(self.last_tick)
            .is_ok_and(|since| since < every)
        {
            return Ok(None);
        }
        self.last_tick = now;
        self.check_poisoned()?;
        // A first-write time in the future means the clock was set back: restart the window
        // from now, so records written after the change still go within 9/8 of the limit.
        if self.seg_first_write.is_some_and(|t| t > now) {
            self.seg_first_write = Some(now);
        }
        let old = self.seg_first_write.is_some_and(|t| {
            now.duration_since(t).unwrap_or(std::time::Duration::ZERO) >= roll_after
        });
        let before = self.written;
        if old {
            self.rollover()?;
        }
        self.shared.reclaim_acked(0)?;
        Ok((self.written > before).then(|| self.position()))
    }

    /// Writes the records appended so far to the segment file now, without committing them:
    /// no sync, not published to the reader, not counted as written. They then survive the
    /// process being killed (the page cache holds them, and recovery finds them) but not a
    /// power cut; the next [`commit`](Self::commit) makes them durable as usual. For a caller
    /// that must not consume its input before the records are out of its own memory.
    pub fn write_out(&mut self) -> Result<()> {
        self.check_poisoned()?;
        self.spill()
    }

    /// Records appended but not yet committed.
    pub fn batch_len(&self) -> u64 {
        self.batch_records
    }

    /// Positions as of the last commit.
    pub fn position(&self) -> Commit {
        Commit {
            written: self.written,
            durable: self.durable,
        }
    }

    /// The sequence number the next append will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Commits, syncs regardless of policy, and closes the writer.
    pub fn close(mut self) -> Result<Commit> {
        self.finish()
    }

    fn finish(&mut self) -> Result<Commit> {
        self.check_poisoned()?;
        if self.syncer.is_some() {
            return self.commit_background(true);
        }
        self.write_batch()?;
        if self.durable < self.written {
            self.sync()?;
        }
        self.publish();
        Ok(self.position())
    }

    #[inline]
    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    fn poison(&mut self, e: Error) -> Error {
        self.poisoned = Some(e.to_string());
        e
    }

    /// A write or sync of the active segment failed with `e`: on a full filesystem, cut the
    /// segment back to its last publish and forget everything appended since (see the module
    /// docs); otherwise poison.
    fn failed(&mut self, op: &'static str, e: std::io::Error) -> Error {
        let path = self.shared.segment_path(self.seg_first);
        if !crate::error::is_no_space(&e) {
            return self.poison(Error::io(op, path, e));
        }
        // The sync thread may be syncing (and about to publish) what is cut back: let it end.
        if let Err(e2) = self.sync_idle() {
            return self.poison(e2);
        }
        if let Err(e2) = self.file.set_len(self.published_len) {
            return self.poison(Error::io("ftruncate", path, e2));
        }
        let c = &self.shared.counters;
        c.disk_bytes
            .fetch_sub(self.seg_len - self.published_len, Relaxed);
        let dropped = (self.published_seq + 1..self.next_seq)
            .next()
            .map(|first| (first, self.next_seq - 1));
        add(
            &c.dropped_no_space_records,
            self.next_seq - 1 - self.published_seq,
        );
        add(&c.appended_records, self.batch_records);
        add(&c.appended_bytes, self.batch_payload);
        self.seg_len = self.published_len;
        self.next_seq = self.published_seq + 1;
        self.written = self.published_seq;
        self.durable = self.durable.min(self.published_seq);
        self.submitted = self.published_seq;
        self.batch.clear();
        self.batch_first = self.next_seq;
        // Written since the last publish, so none of it was offered: it is taken back.
        for mut c in self.staged.drain(..) {
            c.bytes.clear();
            self.spare.push(c.bytes);
        }
        self.batch_records = 0;
        self.batch_payload = 0;
        self.batch_started = None;
        self.shared.lock().rewinds += 1;
        Error::NoSpace {
            op,
            path,
            dropped,
            source: e,
        }
    }

    /// Writes the buffered bytes to the segment without committing them (they are not published
    /// to the reader and not reported until the commit). Keeps the buffer, and so the writer's
    /// memory, bounded however long the caller waits to commit.
    fn spill(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        if self.seg_first_write.is_none() {
            self.seg_first_write = Some(self.shared.fs.now());
        }
        // The buffer always starts at a record boundary and holds whole records.
        format::seal_records(&mut self.batch);
        if let Err(e) = self.file.write_at(&self.batch, self.seg_len) {
            return Err(self.failed("write", e));
        }
        let n = self.batch.len() as u64;
        if self.opts.handoff_bytes > 0 {
            // The buffer just written becomes the reader's copy; the next batch goes into a
            // spare one, or a new one as large as this batch was (batches of a steady load are
            // alike: growing from small would copy the batch several times over).
            let mut next = self
                .spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(self.batch.len().max(64 * 1024)));
            next.clear();
            self.staged.push(Chunk {
                seg_first: self.seg_first,
                offset: self.seg_len,
                first_seq: self.batch_first,
                last_seq: self.next_seq - 1,
                bytes: std::mem::replace(&mut self.batch, next),
            });
        } else {
            self.batch.clear();
        }
        self.batch_first = self.next_seq;
        self.seg_len += n;
        add(&self.shared.counters.disk_bytes, n);
        Ok(())
    }

    /// Writes out the whole batch and moves `written` past it.
    fn write_batch(&mut self) -> Result<()> {
        if self.batch_records == 0 {
            return Ok(());
        }
        self.spill()?;
        let c = &self.shared.counters;
        add(&c.appended_records, self.batch_records);
        add(&c.appended_bytes, self.batch_payload);
        add(&c.committed_records, self.batch_records);
        add(&c.committed_bytes, self.batch_payload);
        self.written = self.next_seq - 1;
        self.batch_records = 0;
        self.batch_payload = 0;
        self.batch_started = None;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        if let Err(e) = self.file.sync_data() {
            return Err(self.failed("fdatasync", e));
        }
        self.durable = self.written;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn publish(&mut self) {
        // Read outside the lock; used only if the segment grew (publish also runs for empty
        // commits, which must not make a segment look newer than its newest record).
        let now = self.shared.fs.now();
        self.published_len = self.seg_len;
        self.published_seq = self.written;
        let mut st = self.shared.lock();
        st.committed = self.written;
        st.durable = self.durable;
        if !self.staged.is_empty() {
            st.handoff.offer(self.staged.drain(..));
        }
        while self.spare.len() < 2 {
            let Some(b) = st.handoff.spare.pop() else {
                break;
            };
            self.spare.push(b);
        }
        if let Some(m) = st.segments.back_mut() {
            if m.first_seq == self.seg_first && m.bytes != self.seg_len {
                m.bytes = self.seg_len;
                m.newest = now;
            }
        }
        let wake = st.readers_waiting > 0;
        drop(st);
        if wake {
            self.shared.cond.notify_all();
        }
        crate::shared::call_hook(&self.shared);
    }

    /// Seals the active segment (written and synced in full) and starts the next one. This is an
    /// implicit commit of the current batch.
    fn rollover(&mut self) -> Result<()> {
        if self.syncer.is_some() {
            self.commit_background(true)?;
        } else {
            self.write_batch()?;
            if self.durable < self.written {
                self.sync()?;
            }
            self.publish();
        }
        let (file, len) = match create_segment(&*self.shared.fs, &self.shared.dir, self.next_seq) {
            Ok(x) => x,
            Err(Error::Io { op, path, source }) if crate::error::is_no_space(&source) => {
                // No room for a new segment: take back the half-made file (so the next attempt
                // can create it) and stay on the current, sealed one.
                return Err(match self.shared.fs.remove_file(&path) {
                    Ok(()) => Error::NoSpace {
                        op,
                        path,
                        dropped: None,
                        source,
                    },
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Error::NoSpace {
                        op,
                        path,
                        dropped: None,
                        source,
                    },
                    Err(e) => self.poison(Error::io("remove", path, e)),
                });
            }
            Err(e) => return Err(self.poison(e)),
        };
        self.file = Arc::from(file);
        self.seg_first = self.next_seq;
        self.seg_len = len;
        self.published_len = len;
        if let Some(s) = &self.syncer {
            s.reset(Synced {
                seq: self.next_seq - 1,
                len,
            });
        }
        self.seg_first_write = None;
        add(&self.shared.counters.disk_bytes, len);
        let newest = self.shared.fs.now();
        let mut st = self.shared.lock();
        st.segments.push_back(SegMeta {
            first_seq: self.seg_first,
            bytes: len,
            newest,
        });
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.poisoned.is_none() {
            // Best effort: the caller who wants to see the error uses `close`.
            let _ = self.finish();
        }
        // Ends the sync thread (after its sync in flight) before the reader hears the writer
        // is gone: it never outlives the writer.
        drop(self.syncer.take());
        self.shared.lock().writer_alive = false;
        self.shared.cond.notify_all();
    }
}
