//! Sequential, bounded-memory reading of one segment file.
//!
//! A [`Cursor`] validates the header, then yields records one by one, each checked against its
//! CRC and against the sequence number that must come next in this segment (segments hold
//! consecutive sequence numbers starting at the header's `first_seq`). It stops at the first thing
//! that is not a whole valid record and says where, so callers decide: recovery truncates a torn
//! tail there, the live reader and replay resynchronise. The buffer holds at most `chunk` bytes,
//! or one record if that is larger.
//!
//! Resynchronisation ([`Cursor::resync`]) scans forward byte by byte from a bad record for the
//! next offset holding a whole valid record (length, CRC, version, kind) whose sequence number
//! the skipped bytes could explain: at least the expected one, at most one more per
//! [`RECORD_HEADER_LEN`] bytes skipped (every record takes at least a header), and at most the
//! caller's bound. A duplicated record is skipped this way without a gap; a damaged one costs
//! exactly the records whose bytes were hit.

use std::io;
use std::path::{Path, PathBuf};

use crate::format::{self, Invalid, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::fs::{Fs, FsFile};

pub(crate) struct Cursor {
    file: Box<dyn FsFile>,
    pub path: PathBuf,
    pub first_seq: u64,
    /// Sequence number the next record must carry.
    pub next_seq: u64,
    buf: Vec<u8>,
    /// Valid bytes are `buf[start..end]`; `buf[start]` is at file offset `pos`.
    start: usize,
    end: usize,
    pos: u64,
    chunk: usize,
    /// Current buffer size goal, growing from `MIN_BUF` to `chunk`.
    target: usize,
}

const MIN_BUF: usize = 16 * 1024;

/// What the cursor found next.
pub(crate) enum Step<'a> {
    Record {
        seq: u64,
        payload: &'a [u8],
    },
    /// Clean end: the file ends exactly after the last record.
    End,
    /// Not a whole valid record at `offset` (`Invalid::Short` at the end of the file = torn tail).
    Bad {
        offset: u64,
        why: Invalid,
    },
}

impl Cursor {
    /// Opens `path` and validates its header. The outer error is I/O, the inner a bad header.
    pub fn open(fs: &dyn Fs, path: &Path, chunk: usize) -> io::Result<Result<Cursor, Invalid>> {
        let file = fs.open_read(path)?;
        let mut c = Cursor {
            file,
            path: path.to_path_buf(),
            first_seq: 0,
            next_seq: 0,
            buf: Vec::new(),
            start: 0,
            end: 0,
            pos: 0,
            chunk: chunk.max(MIN_BUF),
            target: MIN_BUF,
        };
        if !c.fill(SEGMENT_HEADER_LEN)? {
            return Ok(Err(Invalid::Short));
        }
        match format::decode_segment_header(&c.buf[c.start..c.end]) {
            Ok(first) => {
                c.first_seq = first;
                c.next_seq = first;
                c.consume(SEGMENT_HEADER_LEN);
                Ok(Ok(c))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// Opens `path` without looking at its header, as if it said `first_seq` (for salvaging
    /// what can be known of a segment whose header is damaged).
    pub fn open_headless(
        fs: &dyn Fs,
        path: &Path,
        chunk: usize,
        first_seq: u64,
    ) -> io::Result<Cursor> {
        Ok(Cursor {
            file: fs.open_read(path)?,
            path: path.to_path_buf(),
            first_seq,
            next_seq: first_seq,
            buf: Vec::new(),
            start: 0,
            end: 0,
            pos: SEGMENT_HEADER_LEN as u64,
            chunk: chunk.max(MIN_BUF),
            target: MIN_BUF,
        })
    }

    /// Continue at file offset `offset`, where the record `next_seq` starts (a position the
    /// writer reported, see [`crate::handoff`]).
    pub fn seek(&mut self, offset: u64, next_seq: u64) {
        self.discard_buffer();
        self.pos = offset;
        self.next_seq = next_seq;
    }

    /// File offset of the next unread record.
    pub fn offset(&self) -> u64 {
        self.pos
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.pos += n as u64;
    }

    /// Forgets buffered bytes past the current position, so they are read again from the file.
    /// The live reader needs this: bytes buffered while the writer was mid-`pwrite` may be stale.
    pub fn discard_buffer(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Makes at least `need` bytes available from the current position; `Ok(false)` if the file
    /// ends first.
    fn fill(&mut self, need: usize) -> io::Result<bool> {
        if self.end - self.start >= need {
            return Ok(true);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        // The buffer starts small (many segments are small, and a cursor is opened per segment)
        // and doubles, up to `chunk`, each time a read fills it completely.
        let want = need.max(self.target);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        } else if self.buf.len() > self.chunk && want <= self.chunk && self.end <= self.chunk {
            // Shrink back after an unusually large record, keeping memory bounded by `chunk`.
            self.buf.truncate(self.chunk);
            self.buf.shrink_to(self.chunk);
        }
        while self.end < need {
            let at = self.pos + self.end as u64;
            let space = self.buf.len() - self.end;
            let n = self.file.read_at(&mut self.buf[self.end..], at)?;
            if n == 0 {
                return Ok(false);
            }
            if n == space {
                self.target = (self.target * 2).min(self.chunk);
            }
            self.end += n;
        }
        Ok(true)
    }

    /// Reads the next record.
    pub fn next_step(&mut self) -> io::Result<Step<'_>> {
        let offset = self.pos;
        if !self.fill(RECORD_HEADER_LEN)? {
            return Ok(if self.end == self.start {
                Step::End
            } else {
                Step::Bad {
                    offset,
                    why: Invalid::Short,
                }
            });
        }
        let total = match format::peek_record_len(&self.buf[self.start..self.end]) {
            Ok(t) => t,
            Err(why) => return Ok(Step::Bad { offset, why }),
        };
        if !self.fill(total)? {
            return Ok(Step::Bad {
                offset,
                why: Invalid::Short,
            });
        }
        let expected = self.next_seq;
        match format::decode_record(&self.buf[self.start..self.start + total], expected) {
            Ok(d) => {
                let from = self.start + d.payload_start;
                self.consume(total);
                self.next_seq += 1;
                Ok(Step::Record {
                    seq: d.seq,
                    payload: &self.buf[from..from + d.payload_len],
                })
            }
            Err(why) => Ok(Step::Bad { offset, why }),
        }
    }

    /// After [`next_step`](Self::next_step) returned [`Step::Bad`] at the current offset: finds
    /// the next valid record starting before byte `limit` of the file, with a sequence number
    /// at most `max_seq` (see the module docs for the other rules). Returns its sequence number,
    /// the cursor positioned on it (`next_seq` set to it) so that `next_step` yields it; or
    /// `None` with the cursor at `limit` (or the end of the file, if shorter) when none is found.
    pub fn resync(&mut self, max_seq: u64, limit: u64) -> io::Result<Option<u64>> {
        let bad_at = self.pos;
        if self.pos >= limit {
            return Ok(None);
        }
        self.discard_buffer();
        self.pos += 1;
        while self.pos < limit {
            if !self.fill(RECORD_HEADER_LEN)? {
                break;
            }
            if let Some((seq, total)) =
                format::plausible_record_header(&self.buf[self.start..self.end])
            {
                let explained = (self.pos - bad_at) / RECORD_HEADER_LEN as u64;
                let highest = self.next_seq.saturating_add(explained).min(max_seq);
                if seq >= self.next_seq
                    && seq <= highest
                    && self.pos + total as u64 <= limit
                    && self.fill(total)?
                    && format::decode_record(&self.buf[self.start..self.start + total], seq).is_ok()
                {
                    self.next_seq = seq;
                    return Ok(Some(seq));
                }
            }
            self.consume(1);
        }
        // Nothing valid up to `limit`: stand there, where the next record (if any) will start.
        self.discard_buffer();
        let len = self.file.len()?;
        self.pos = limit.min(len.max(self.pos));
        Ok(None)
    }

    /// Current size of the file.
    pub fn file_len(&self) -> io::Result<u64> {
        self.file.len()
    }
}
