//! The reader: in-order delivery from disk, waiting for the writer, acknowledgement, deletion.
//!
//! The reader reads segment files through its own file handle with a bounded buffer, so a backlog
//! of any size costs the same memory. It delivers only records the writer has published as
//! committed, which under [`crate::FsyncPolicy::EveryCommit`] means synced. With the in-memory
//! hand-off on ([`crate::Options::handoff_bytes`], see [`crate::handoff`]) it takes a committed
//! record from the writer's memory instead when memory still holds it and it is the next one
//! due; what it delivers, in which order, is the same.
//!
//! Sequence numbers that cannot be delivered (damaged records, quarantined or missing segments)
//! are handed over in line as [`Lost`] ranges by [`Reader::next_item`] (see the crate docs,
//! "Damage"); [`Reader::next`] skips them.
//!
//! Acknowledgement (`ack(n)`: "everything up to n is done") first makes the new position durable in
//! the ledger, then deletes segments whose every record is at or below it. Deletion is a separate
//! step from acknowledgement so that a retention policy can later keep acknowledged segments.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::handoff::Taking;
use crate::ledger::Ledger;
use crate::segment::{Cursor, Step};
use crate::shared::{add, Shared, Stats};

/// A record delivered by [`Reader::next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub data: Vec<u8>,
    /// The record was already on disk when the spool was opened, so a previous run may have
    /// delivered (and printed) it before crashing: it is possibly a duplicate.
    pub recovered: bool,
}

/// A range of sequence numbers that will never be delivered: their records were found damaged
/// or missing on disk. Both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost {
    pub first: u64,
    pub last: u64,
}

impl Lost {
    /// How many sequence numbers the range covers.
    pub fn count(&self) -> u64 {
        self.last - self.first + 1
    }
}

/// What [`Reader::next_item`] delivers: a record, or a range found lost just before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Record(Record),
    Lost(Lost),
}

/// What [`Reader::next_into`] delivers; a record's payload is in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Record { seq: u64, recovered: bool },
    Lost(Lost),
}

/// The consuming side. Owned by one thread (it is `Send`).
pub struct Reader {
    shared: Arc<Shared>,
    /// Shared with [`AckSync`] tokens, which store a position from another thread; the reader
    /// itself is the only other user, so the lock is never contended for long.
    ledger: Arc<Mutex<Ledger>>,
    cursor: Option<Cursor>,
    /// A record read while reporting the gap before it, delivered by the next call.
    stashed: Option<Record>,
    /// The writer's rewind count when last looked at (see `State::rewinds`).
    rewinds_seen: u64,
    /// Last sequence number delivered (or acknowledged at open).
    delivered: u64,
    acked: u64,
    /// Records up to here existed at open.
    recovered_upto: u64,
    chunk: usize,
    /// The in-memory chunk records are being taken from (see [`crate::handoff`]).
    taking: Option<Taking>,
    /// Where on disk the record after the last one taken from memory is: (segment, offset,
    /// sequence number).
    resume: Option<(u64, u64, u64)>,
    /// The writer's published position when last looked at under the lock.
    seen: Seen,
    /// Memory holds nothing below this (as of the last look): no need to ask before.
    memory_from: u64,
}

/// The writer's published position, as seen under the lock.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    committed: u64,
    /// The last segment's first sequence number and committed bytes.
    last: Option<(u64, u64)>,
}

impl Reader {
    pub(crate) fn new(
        shared: Arc<Shared>,
        ledger: Ledger,
        acked: u64,
        recovered_upto: u64,
        chunk: usize,
    ) -> Reader {
        Reader {
            shared,
            ledger: Arc::new(Mutex::new(ledger)),
            cursor: None,
            stashed: None,
            rewinds_seen: 0,
            delivered: acked,
            acked,
            recovered_upto,
            chunk,
            taking: None,
            resume: None,
            seen: Seen::default(),
            memory_from: 0,
        }
    }

    /// The next committed record in sequence order, or `None` if the reader has caught up with
    /// the writer. Sequence numbers increase strictly; a jump means records were lost to
    /// corruption (counted in `Stats::records_lost_in_gaps`). Use [`next_item`](Self::next_item)
    /// to be told each lost range in line.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Record>> {
        loop {
            match self.next_item()? {
                Some(Item::Record(r)) => return Ok(Some(r)),
                Some(Item::Lost(_)) => {}
                None => return Ok(None),
            }
        }
    }

    /// The next committed record, or the next range of sequence numbers found missing or
    /// unreadable (in order, before the record that follows it), or `None` if the reader has
    /// caught up with the writer. Acknowledging a lost range's `last` is allowed.
    pub fn next_item(&mut self) -> Result<Option<Item>> {
        let mut data = Vec::new();
        Ok(match self.next_into(&mut data)? {
            Some(Next::Record { seq, recovered }) => Some(Item::Record(Record {
                seq,
                data,
                recovered,
            })),
            Some(Next::Lost(l)) => Some(Item::Lost(l)),
            None => None,
        })
    }

    /// Like [`next_item`](Self::next_item), with the record's payload put into `buf` (cleared
    /// first) instead of a new `Vec`: a caller that reuses its buffers allocates nothing per
    /// record. With the in-memory hand-off on ([`crate::Options::handoff_bytes`]), a record
    /// still in memory is taken from there, otherwise it is read from disk; either way the
    /// same records come in the same order.
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<Option<Next>> {
        if let Some(r) = self.stashed.take() {
            self.delivered = r.seq;
            buf.clear();
            buf.extend_from_slice(&r.data);
            return Ok(Some(Next::Record {
                seq: r.seq,
                recovered: r.recovered,
            }));
        }
        let want = self.delivered + 1;
        // Records of a chunk in hand are committed: no lock needed.
        if let Some(n) = self.take_from_memory(want, buf) {
            return Ok(Some(n));
        }
        // The lock is shared with the writer, which runs at a higher priority (intake): take
        // it once per commit the reader catches up with, and once per chunk memory offers, not
        // once per record. Records up to a committed position seen under it stay committed.
        if want > self.seen.committed || want >= self.memory_from {
            self.look();
        }
        let (committed, committed_len) = (self.seen.committed, self.seen.last);
        if self.delivered >= committed {
            return Ok(None);
        }
        if let Some(n) = self.take_from_memory(want, buf) {
            return Ok(Some(n));
        }
        self.next_from_disk(want, committed, committed_len, buf)
    }

    /// Under the lock: what is committed now, and the chunk memory holds for the next record.
    fn look(&mut self) {
        let want = self.delivered + 1;
        let mut st = self.shared.lock();
        // The chunk in hand cannot serve `want`: give its buffer back, take the next one.
        if let Some(old) = self.taking.take() {
            st.handoff.recycle(old.into_bytes());
        }
        self.memory_from = 0;
        if st.committed > self.delivered {
            match st.handoff.take(want) {
                Some(c) => self.taking = Some(Taking::new(c, want)),
                // Behind what memory holds (or it is off): from disk, without asking again
                // until the reader gets to where memory starts.
                None => self.memory_from = st.handoff.first_seq().unwrap_or(st.committed + 1),
            }
        }
        if st.handoff.cap == 0 {
            self.memory_from = u64::MAX;
        }
        self.seen = Seen {
            committed: st.committed,
            last: st.segments.back().map(|m| (m.first_seq, m.bytes)),
        };
        let rewinds = st.rewinds;
        drop(st);
        if rewinds != self.rewinds_seen {
            // The writer cut back bytes this cursor may have buffered, and reuses their numbers.
            self.rewinds_seen = rewinds;
            if let Some(c) = &mut self.cursor {
                c.discard_buffer();
            }
        }
    }

    /// `want` from the chunk in hand, if it is there.
    fn take_from_memory(&mut self, want: u64, buf: &mut Vec<u8>) -> Option<Next> {
        let t = self.taking.as_mut()?.next(want)?;
        buf.clear();
        buf.extend_from_slice(t.payload);
        // The disk path, when next needed, starts right behind this record.
        self.resume = Some(t.resume);
        self.cursor = None;
        self.delivered = want;
        Some(Next::Record {
            seq: want,
            recovered: want <= self.recovered_upto,
        })
    }

    /// `want` (or the lost range before the next record) from the segment files.
    fn next_from_disk(
        &mut self,
        want: u64,
        committed: u64,
        committed_len: Option<(u64, u64)>,
        buf: &mut Vec<u8>,
    ) -> Result<Option<Next>> {
        let mut retried = false;
        loop {
            if self.cursor.is_none() && self.resume_cursor(want) {
                continue;
            }
            if self.cursor.is_none() {
                let first = {
                    let st = self.shared.lock();
                    // The segment holding `want`: the last one starting at or before it, or else
                    // the first one after it (the records in between are gone).
                    st.segments
                        .iter()
                        .rev()
                        .find(|m| m.first_seq <= want)
                        .or_else(|| st.segments.front())
                        .map(|m| m.first_seq)
                };
                let Some(first) = first else {
                    return Ok(None);
                };
                if let Some(lost) = self.open_segment(first, want)? {
                    return Ok(Some(lost));
                }
                continue;
            }
            let cur = self.cursor.as_mut().expect("opened above");
            let seg = cur.first_seq;
            // The path is built only for an error: this runs once per record.
            let step = match cur.next_step() {
                Ok(s) => s,
                Err(e) => return Err(Error::io("read", self.shared.segment_path(seg), e)),
            };
            let (offset, why) = match step {
                Step::Record { seq, payload } => {
                    if seq < want {
                        continue; // already acknowledged or delivered
                    }
                    if seq > committed {
                        // Written but not committed yet (it may still be taken back): what was
                        // committed before it is missing. Start over from the segment holding
                        // the next number when more is committed.
                        self.cursor = None;
                        return Ok(Some(self.lost(want, committed)));
                    }
                    let recovered = seq <= self.recovered_upto;
                    if seq > want {
                        self.stashed = Some(Record {
                            seq,
                            data: payload.to_vec(),
                            recovered,
                        });
                        return Ok(Some(self.lost(want, seq - 1)));
                    }
                    buf.clear();
                    buf.extend_from_slice(payload);
                    self.delivered = seq;
                    return Ok(Some(Next::Record { seq, recovered }));
                }
                Step::End => (cur.offset(), None),
                Step::Bad { offset, why } => (offset, Some(why)),
            };
            // Bytes buffered while the writer was mid-write may be stale: look again once.
            if !retried {
                retried = true;
                cur.discard_buffer();
                continue;
            }
            retried = false;
            let cur_first = cur.first_seq;
            let next_first = {
                let st = self.shared.lock();
                st.segments
                    .iter()
                    .find(|m| m.first_seq > cur_first)
                    .map(|m| m.first_seq)
            };
            if why.is_some() && self.resync(offset, next_first, committed, committed_len)? {
                continue;
            }
            match next_first {
                Some(n) => {
                    if let Some(lost) = self.open_segment(n, want)? {
                        return Ok(Some(lost));
                    }
                }
                None if self.cursor.as_ref().is_some_and(|c| c.next_seq > committed) => {
                    // Everything committed in the writer's segment has been read, yet numbers
                    // up to `committed` were never delivered: they are missing from disk (lost to
                    // corruption or, under a relaxed fsync policy, to a power cut).
                    return Ok(Some(self.lost(want, committed)));
                }
                None => {
                    return Err(Error::Corrupt {
                        path: self.shared.segment_path(cur_first),
                        seq: want,
                        offset,
                        reason: match why {
                            Some(w) => format!("committed record is unreadable: {w}"),
                            None => "committed record is missing (file shrank?)".into(),
                        },
                    })
                }
            }
        }
    }

    /// After damage at `offset` of the current segment: resynchronise on the next valid record
    /// inside it (true: the cursor stands on it). A segment with a successor was complete before
    /// the successor existed; the writer's segment is read only up to what was committed
    /// (`committed_len`: the last segment's first sequence number and committed bytes).
    fn resync(
        &mut self,
        offset: u64,
        next_first: Option<u64>,
        committed: u64,
        committed_len: Option<(u64, u64)>,
    ) -> Result<bool> {
        let cur = self.cursor.as_mut().expect("reading a segment");
        let (max_seq, limit) = match (next_first, committed_len) {
            (Some(n), _) => (n - 1, cur.file_len().unwrap_or(offset)),
            (None, Some((f, bytes))) if f == cur.first_seq => (committed, bytes),
            (None, _) => (committed, cur.file_len().unwrap_or(offset)),
        };
        let found = cur
            .resync(max_seq, limit)
            .map_err(|e| Error::io("read", &cur.path, e))?;
        let c = &self.shared.counters;
        add(&c.corrupt_regions_skipped, 1);
        add(
            &c.corrupt_bytes_skipped,
            cur.offset().saturating_sub(offset),
        );
        if found.is_none() && next_first.is_none() && cur.offset() >= limit {
            // The writer's segment holds nothing valid after the damage up to what was
            // committed: the next record appended starts at `limit`.
            cur.next_seq = committed + 1;
        }
        Ok(found.is_some())
    }

    /// Reports `first..=last` as lost and counts it.
    fn lost(&mut self, first: u64, last: u64) -> Next {
        add(&self.shared.counters.records_lost_in_gaps, last - first + 1);
        self.delivered = last;
        Next::Lost(Lost { first, last })
    }

    /// After records taken from memory: open the segment file right behind the last of them
    /// (true), rather than scanning it from its start. False if there is no such position, or
    /// the file cannot be opened as expected (the normal open then says why).
    fn resume_cursor(&mut self, want: u64) -> bool {
        let Some((seg, offset, next)) = self.resume.take() else {
            return false;
        };
        if next != want {
            return false;
        }
        let path = self.shared.segment_path(seg);
        match Cursor::open(&*self.shared.fs, &path, self.chunk) {
            Ok(Ok(mut c)) if c.first_seq == seg => {
                c.seek(offset, want);
                self.cursor = Some(c);
                true
            }
            _ => false,
        }
    }

    /// Opens segment `first` for reading `want`. A segment whose header went bad after the
    /// spool was opened holds nothing readable: if a later segment exists, everything up to it is
    /// reported lost (and the next call goes on there); the writer's own segment is an error.
    fn open_segment(&mut self, first: u64, want: u64) -> Result<Option<Next>> {
        self.cursor = None;
        let path = self.shared.segment_path(first);
        let reason = match Cursor::open(&*self.shared.fs, &path, self.chunk) {
            Ok(Ok(c)) if c.first_seq == first => {
                self.cursor = Some(c);
                return Ok(None);
            }
            Ok(Ok(c)) => format!("header says first sequence {}", c.first_seq),
            Ok(Err(why)) => format!("segment header: {why}"),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let next = {
            let st = self.shared.lock();
            st.segments
                .iter()
                .find(|m| m.first_seq > first)
                .map(|m| m.first_seq)
        };
        match next {
            Some(n) if n > want => {
                add(&self.shared.counters.corrupt_regions_skipped, 1);
                Ok(Some(self.lost(want, n - 1)))
            }
            _ => Err(Error::Corrupt {
                path,
                seq: want,
                offset: 0,
                reason,
            }),
        }
    }

    /// Blocks until a record is available to [`next`](Self::next), the timeout passes, or the
    /// writer is dropped. Returns true if a record is available.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if st.committed > self.delivered {
                return true;
            }
            if !st.writer_alive {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st.readers_waiting += 1;
            st = match self.shared.cond.wait_timeout(st, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
            st.readers_waiting -= 1;
        }
    }

    /// Acknowledges every record up to and including `upto`: they will not be delivered again,
    /// even after a crash, once this returns `Ok`. Costs one small write and one `fdatasync` of the
    /// ledger, so call it per batch of output, not per record. Then deletes fully acknowledged
    /// segments (unlink, then one directory fsync). Acknowledging less than before is a no-op;
    /// acknowledging beyond what was delivered is an error.
    pub fn ack(&mut self, upto: u64) -> Result<()> {
        if upto <= self.acked {
            return Ok(());
        }
        if upto > self.delivered {
            return Err(Error::AckBeyondDelivered {
                upto,
                delivered: self.delivered,
            });
        }
        {
            let mut ledger = lock_ledger(&self.ledger);
            // An `AckSync` may have made this position durable already (from another thread).
            if ledger.stored() < upto {
                ledger.store(upto)?;
            }
        }
        add(&self.shared.counters.acked_records, upto - self.acked);
        self.acked = upto;
        self.shared.lock().acked = upto;
        self.delete_acknowledged()
    }

    /// The durable half of [`ack`](Self::ack)`(upto)`, to run on another thread while this
    /// reader goes on reading: [`AckSync::store`] writes and syncs the ledger, then deletes the
    /// segments that position completes; `ack(upto)` afterwards finds the position stored and
    /// only does the rest (counters, deleting what is left to delete). `None` when there is
    /// nothing to store (`upto` is acknowledged already); an error when `upto` was not
    /// delivered, as for `ack`.
    ///
    /// The caller keeps the ordering `ack` documents: a token is made and stored only for
    /// records that are done everywhere, and positions are stored in increasing order (one
    /// token at a time). Storing a position and then not calling `ack` is safe: the records
    /// are then done, and a crash does not deliver them again, as after `ack`.
    pub fn ack_sync(&self, upto: u64) -> Result<Option<AckSync>> {
        if upto <= self.acked {
            return Ok(None);
        }
        if upto > self.delivered {
            return Err(Error::AckBeyondDelivered {
                upto,
                delivered: self.delivered,
            });
        }
        Ok(Some(AckSync {
            ledger: Arc::clone(&self.ledger),
            shared: Arc::downgrade(&self.shared),
            upto,
        }))
    }

    /// Deletes segments whose records are all acknowledged (never the writer's), keeping what
    /// the retention options say to keep for replay tools.
    fn delete_acknowledged(&mut self) -> Result<()> {
        self.shared.reclaim_acked(0)
    }

    /// Highest delivered sequence number.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Highest acknowledged sequence number.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// A handle that reads the same counters from another thread (a metrics endpoint), while
    /// the reader itself stays with the processing loop.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.shared))
    }
}

/// See [`Reader::ack_sync`].
pub struct AckSync {
    ledger: Arc<Mutex<Ledger>>,
    /// Weak: a token kept does not keep the spool (and its lock) alive.
    shared: Weak<Shared>,
    upto: u64,
}

impl AckSync {
    /// Make the position durable in the ledger (one write, one `fdatasync`), then take the
    /// segments it completes out of the spool and hand them to the spool's deletion thread
    /// (unlinks and a directory `fsync`: milliseconds each, tens for a cached 64 MiB segment,
    /// which would otherwise stall this thread, or the reader's in `ack`). A deletion that
    /// failed there is returned by the next `store`.
    pub fn store(&self) -> Result<()> {
        {
            let mut ledger = lock_ledger(&self.ledger);
            if ledger.stored() < self.upto {
                ledger.store(self.upto)?;
            }
        }
        match self.shared.upgrade() {
            Some(shared) => shared.reclaim_durable(0, self.upto, true),
            // The spool was closed: its next open deletes what is acknowledged.
            None => Ok(()),
        }
    }

    /// The position this token stores.
    pub fn upto(&self) -> u64 {
        self.upto
    }
}

/// A panic while holding the ledger leaves it as consistent as a failed `store` does (the
/// generation advances only after a durable write), so a poisoned lock is used as is.
fn lock_ledger(l: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

/// See [`Reader::stats_handle`].
#[derive(Clone)]
pub struct StatsHandle(Arc<Shared>);

impl StatsHandle {
    pub fn stats(&self) -> Stats {
        self.0.stats()
    }
}
