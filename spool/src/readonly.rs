//! Read-only access for `fwlog replay`: iterate every record in a spool directory without changing
//! anything in it.
//!
//! Guarantees: only `open(O_RDONLY)`, `pread` and directory listing are used (no lock file, no
//! ledger creation, no truncation, no quarantine), so it works on a read-only mount, on a copy, and
//! next to a daemon that is writing the original. What it sees is a snapshot of the segment list at
//! open: segments the daemon deletes afterwards are skipped (counted in
//! [`ReplayStats::vanished_segments`]), segments it creates afterwards are not visited. A torn or
//! still-being-written tail of the last segment is simply the end. After a bad record anywhere else
//! the iteration resynchronises on the next valid record (see `segment`), counting the damage; a
//! segment with a bad header is skipped (counted). [`Replay::next_item`] also yields every range
//! of sequence numbers found missing, in line, like the live reader.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fs::{Fs, RealFs};
use crate::ledger::{self, LedgerStatus};
use crate::recovery::{self, HeaderCheck};
use crate::segment::{Cursor, Step};
use crate::shared::segment_path;

/// A record seen by replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRecord {
    pub seq: u64,
    pub data: Vec<u8>,
    /// At or below the ledger's acknowledged position ("printed").
    pub acked: bool,
}

/// What [`Replay::next_item`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayItem {
    Record(ReplayRecord),
    /// Sequence numbers missing or unreadable just before the next record.
    Lost(crate::Lost),
}

/// Counters of a replay iteration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    pub records: u64,
    /// Segments with an unreadable header (a writable open would quarantine them).
    pub unreadable_segments: u64,
    /// Segments in the listing that were gone when their turn came.
    pub vanished_segments: u64,
    /// Regions skipped after a bad record in a segment that is not the last.
    pub corrupt_regions_skipped: u64,
    pub corrupt_bytes_skipped: u64,
    /// Bytes after the last whole record of the last segment (torn or in-flight tail).
    pub tail_bytes_ignored: u64,
    /// Sequence numbers missing between records (not counting jumps over vanished segments).
    pub records_lost_in_gaps: u64,
}

/// A spool directory opened read-only.
pub struct ReadOnlySpool {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    acked: u64,
    ledger: LedgerStatus,
    segments: Vec<u64>,
    foreign: Vec<String>,
    chunk: usize,
}

impl ReadOnlySpool {
    /// Opens `dir` on the real filesystem.
    pub fn open(dir: impl AsRef<Path>) -> Result<ReadOnlySpool> {
        Self::open_with_fs(Arc::new(RealFs), dir)
    }

    /// Opens `dir` through `fs`.
    pub fn open_with_fs(fs: Arc<dyn Fs>, dir: impl AsRef<Path>) -> Result<ReadOnlySpool> {
        let dir = dir.as_ref().to_path_buf();
        // The listing first: a live daemon persists an acknowledgement before it deletes the
        // segments it covers, so the position read after the listing covers every segment
        // missing from it (numbering then starts right after it, see `Replay::start_at`).
        let listing = recovery::list(&*fs, &dir)?;
        let (_, acked, ledger) = ledger::read(&*fs, &dir.join(ledger::LEDGER_FILE))?;
        // A position no spool reaches is damage: nothing is taken as printed.
        let acked = if acked > crate::format::MAX_SEQ {
            0
        } else {
            acked
        };
        let mut foreign = listing.foreign;
        foreign.extend(listing.bad_names);
        Ok(ReadOnlySpool {
            fs,
            dir,
            acked,
            ledger,
            segments: listing.segments,
            foreign,
            chunk: 256 * 1024,
        })
    }

    /// Acknowledged position from the ledger (0 if none).
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// State of the ledger.
    pub fn ledger_status(&self) -> &LedgerStatus {
        &self.ledger
    }

    /// First sequence numbers of the segments found at open.
    pub fn segments(&self) -> &[u64] {
        &self.segments
    }

    /// Directory entries that are not the spool's (including `*.seg` with malformed names).
    pub fn foreign(&self) -> &[String] {
        &self.foreign
    }

    /// Iterates all records, acknowledged or not, in sequence order.
    pub fn records(&self) -> Replay<'_> {
        self.records_from(0)
    }

    /// Iterates the records from the segment at `index` of [`segments`](Self::segments) on:
    /// for a reader that wants only the newest records (the tail), without reading them all.
    pub fn records_from(&self, index: usize) -> Replay<'_> {
        Replay {
            spool: self,
            next_index: index,
            cursor: None,
            stashed: None,
            started: false,
            last_seq: 0,
            gap_expected: false,
            stats: ReplayStats::default(),
            failed: false,
            spare: None,
        }
    }
}

/// Iterator over the records of a [`ReadOnlySpool`]. Yields `Err` only for I/O errors (after which
/// it ends), never because of file contents.
pub struct Replay<'a> {
    spool: &'a ReadOnlySpool,
    next_index: usize,
    cursor: Option<Cursor>,
    /// A record read while reporting the gap before it.
    stashed: Option<ReplayRecord>,
    started: bool,
    last_seq: u64,
    /// The next jump in sequence numbers is explained (a segment vanished under us).
    gap_expected: bool,
    stats: ReplayStats,
    failed: bool,
    /// A buffer for the next record's data (see [`Replay::recycle`]).
    spare: Option<Vec<u8>>,
}

impl Replay<'_> {
    /// Give back a buffer (a record's `data` the caller is done with): the next record is read
    /// into it instead of a new allocation.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.spare = Some(buf);
    }

    /// What was skipped so far.
    pub fn stats(&self) -> &ReplayStats {
        &self.stats
    }

    fn is_last(&self) -> bool {
        self.next_index >= self.spool.segments.len()
    }

    /// Numbering starts at the first segment looked at (readable or not), or right after the
    /// acknowledged position if that is lower (a segment above it may have been quarantined):
    /// a jump from there is a loss too.
    fn start_at(&mut self, first_seq: u64) {
        if !self.started {
            self.started = true;
            self.last_seq = first_seq.min(self.spool.acked.saturating_add(1)) - 1;
        }
    }

    /// At the end of a segment that has a successor starting at `next_first`: the numbers
    /// in between are lost (reported here, since the successor may hold no record to show the
    /// jump).
    fn lost_before(&mut self, next_first: Option<u64>) -> Option<ReplayItem> {
        let n = next_first?;
        let first = self.last_seq + 1;
        if n <= first {
            return None;
        }
        self.last_seq = n - 1;
        self.stats.records_lost_in_gaps += n - first;
        Some(ReplayItem::Lost(crate::Lost { first, last: n - 1 }))
    }

    /// Opens the next segment in the listing; `Ok(false)` when there are none left.
    fn advance(&mut self) -> Result<bool> {
        while let Some(&seq) = self.spool.segments.get(self.next_index) {
            self.next_index += 1;
            let path = segment_path(&self.spool.dir, seq);
            match recovery::check_header(&*self.spool.fs, &path, seq, self.spool.chunk) {
                Ok(HeaderCheck::Good(c)) => {
                    self.start_at(seq);
                    self.cursor = Some(c);
                    return Ok(true);
                }
                // Half-created: holds nothing.
                Ok(HeaderCheck::Partial(_)) => {}
                Ok(HeaderCheck::Bad(_)) => {
                    self.stats.unreadable_segments += 1;
                    self.start_at(seq);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Deleted by a live daemon after acknowledgement: the jump is not a loss.
                    self.stats.vanished_segments += 1;
                    self.gap_expected = true;
                }
                Err(e) => return Err(Error::io("read", path, e)),
            }
        }
        Ok(false)
    }

    /// The next record or lost range; `None` at the end. Errors are I/O errors only.
    pub fn next_item(&mut self) -> Option<Result<ReplayItem>> {
        if self.failed {
            return None;
        }
        if let Some(r) = self.stashed.take() {
            return Some(Ok(ReplayItem::Record(r)));
        }
        match self.next_record() {
            Ok(r) => r.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }

    fn next_record(&mut self) -> Result<Option<ReplayItem>> {
        loop {
            if self.cursor.is_none() && !self.advance()? {
                return Ok(None);
            }
            let last = self.is_last();
            let next_first = self.spool.segments.get(self.next_index).copied();
            let cur = self.cursor.as_mut().expect("advance set it");
            let step = match cur.next_step() {
                Ok(s) => s,
                Err(e) => {
                    let path = cur.path.clone();
                    return Err(Error::io("read", path, e));
                }
            };
            match step {
                Step::Record { seq, payload } => {
                    if seq <= self.last_seq {
                        continue; // overlap with the previous segment: already yielded
                    }
                    let mut data = self.spare.take().unwrap_or_default();
                    data.clear();
                    data.extend_from_slice(payload);
                    let rec = ReplayRecord {
                        seq,
                        data,
                        acked: seq <= self.spool.acked,
                    };
                    self.stats.records += 1;
                    let gap = seq > self.last_seq + 1 && !self.gap_expected;
                    let from = self.last_seq + 1;
                    self.gap_expected = false;
                    self.last_seq = seq;
                    if gap {
                        self.stats.records_lost_in_gaps += seq - from;
                        self.stashed = Some(rec);
                        return Ok(Some(ReplayItem::Lost(crate::Lost {
                            first: from,
                            last: seq - 1,
                        })));
                    }
                    return Ok(Some(ReplayItem::Record(rec)));
                }
                Step::End => {
                    self.cursor = None;
                    if let Some(l) = self.lost_before(next_first) {
                        return Ok(Some(l));
                    }
                }
                Step::Bad { offset, .. } => {
                    let path = cur.path.clone();
                    let len = cur.file_len().unwrap_or(offset);
                    let max_seq = next_first.map_or(crate::format::MAX_SEQ, |n| n - 1);
                    let found = cur
                        .resync(max_seq, len)
                        .map_err(|e| Error::io("read", &path, e))?;
                    if last && found.is_none() {
                        // A torn tail, or the daemon still writing it.
                        self.stats.tail_bytes_ignored += len.saturating_sub(offset);
                    } else {
                        self.stats.corrupt_regions_skipped += 1;
                        self.stats.corrupt_bytes_skipped += cur.offset().saturating_sub(offset);
                    }
                    if found.is_none() {
                        self.cursor = None;
                        if let Some(l) = self.lost_before(next_first) {
                            return Ok(Some(l));
                        }
                    }
                }
            }
        }
    }
}

impl Iterator for Replay<'_> {
    type Item = Result<ReplayRecord>;

    /// Records only: lost ranges are skipped (they are still counted in the stats).
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_item()? {
                Ok(ReplayItem::Record(r)) => return Some(Ok(r)),
                Ok(ReplayItem::Lost(_)) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
