//! Read-only access for `fwlog replay`: iterate every record in a spool directory without changing
//! anything in it.
//!
//! Guarantees: only `open(O_RDONLY)`, `pread` and directory listing are used (no lock file, no
//! ledger creation, no truncation, no quarantine), so it works on a read-only mount, on a copy, and
//! next to a daemon that is writing the original. What it sees is a snapshot of the segment list at
//! open: segments the daemon deletes afterwards are skipped (counted in
//! [`ReplayStats::vanished_segments`]), segments it creates afterwards are not visited. A torn or
//! still-being-written tail of the last segment is simply the end. A bad record elsewhere ends that
//! segment's records (counted) and iteration continues with the next segment; a segment with a bad
//! header is skipped (counted).

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
        let (_, acked, ledger) = ledger::read(&*fs, &dir.join(ledger::LEDGER_FILE))?;
        let listing = recovery::list(&*fs, &dir)?;
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
            last_seq: 0,
            gap_expected: false,
            stats: ReplayStats::default(),
            failed: false,
        }
    }
}

/// Iterator over the records of a [`ReadOnlySpool`]. Yields `Err` only for I/O errors (after which
/// it ends), never because of file contents.
pub struct Replay<'a> {
    spool: &'a ReadOnlySpool,
    next_index: usize,
    cursor: Option<Cursor>,
    last_seq: u64,
    /// The next jump in sequence numbers is explained (a segment vanished under us).
    gap_expected: bool,
    stats: ReplayStats,
    failed: bool,
}

impl Replay<'_> {
    /// What was skipped so far.
    pub fn stats(&self) -> &ReplayStats {
        &self.stats
    }

    fn is_last(&self) -> bool {
        self.next_index >= self.spool.segments.len()
    }

    /// Opens the next segment in the listing; `Ok(false)` when there are none left.
    fn advance(&mut self) -> Result<bool> {
        while let Some(&seq) = self.spool.segments.get(self.next_index) {
            self.next_index += 1;
            let path = segment_path(&self.spool.dir, seq);
            match recovery::check_header(&*self.spool.fs, &path, seq, self.spool.chunk) {
                Ok(HeaderCheck::Good(c)) => {
                    self.cursor = Some(c);
                    return Ok(true);
                }
                // Half-created: holds nothing.
                Ok(HeaderCheck::Partial(_)) => {}
                Ok(HeaderCheck::Bad(_)) => self.stats.unreadable_segments += 1,
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

    fn next_record(&mut self) -> Result<Option<ReplayRecord>> {
        loop {
            if self.cursor.is_none() && !self.advance()? {
                return Ok(None);
            }
            let last = self.is_last();
            let cur = self.cursor.as_mut().expect("advance set it");
            let path = cur.path.clone();
            match cur.next_step().map_err(|e| Error::io("read", &path, e))? {
                Step::Record { seq, payload } => {
                    if seq <= self.last_seq {
                        continue; // overlap with the previous segment: already yielded
                    }
                    if self.last_seq != 0 && seq > self.last_seq + 1 && !self.gap_expected {
                        self.stats.records_lost_in_gaps += seq - self.last_seq - 1;
                    }
                    self.gap_expected = false;
                    self.last_seq = seq;
                    self.stats.records += 1;
                    return Ok(Some(ReplayRecord {
                        seq,
                        data: payload.to_vec(),
                        acked: seq <= self.spool.acked,
                    }));
                }
                Step::End => self.cursor = None,
                Step::Bad { offset, .. } => {
                    let len = cur.file_len().unwrap_or(offset);
                    let rest = len.saturating_sub(offset);
                    if last {
                        self.stats.tail_bytes_ignored += rest;
                    } else {
                        self.stats.corrupt_regions_skipped += 1;
                        self.stats.corrupt_bytes_skipped += rest;
                    }
                    self.cursor = None;
                }
            }
        }
    }
}

impl Iterator for Replay<'_> {
    type Item = Result<ReplayRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_record() {
            Ok(r) => r.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
