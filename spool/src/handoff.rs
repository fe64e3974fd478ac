//! The in-memory hand-off: committed batches go from the writer's memory to the reader, so a
//! reader that keeps up never reads back from disk what was just written.
//!
//! Spec:
//! - The unit is a *chunk*: the exact bytes one `pwrite` put into a segment (whole encoded
//!   records, consecutive sequence numbers), with where they went (segment, file offset). The
//!   writer's batch buffer itself becomes the chunk (no copy); emptied buffers come back to the
//!   writer through [`HandOff::spare`], so at steady state no buffer is allocated.
//! - A chunk is offered only once every record in it is committed (published under the same
//!   lock as `State::committed`): the reader never sees by memory what it could not see by disk.
//!   Records a full filesystem takes back are never committed, so never offered.
//! - Memory is bounded: the chunks held take at most `cap` bytes of buffer capacity; beyond it
//!   the oldest chunks are dropped. Their records stay on disk, where the reader finds them
//!   (a reader that fell behind, a backlog, a restart all read from disk as before). Emptied
//!   buffers kept for reuse are few ([`SPARES`]) and small ([`spare_max`]): a burst grows the
//!   writer's buffers (a round of up to megabytes), and kept for ever they would hold the
//!   burst's peak on top of `cap` while the reader is stalled for minutes (a dead name server).
//! - The reader takes a record from memory only when it is exactly the next one it wants, so
//!   order, gaps (`Lost` ranges) and acknowledgement are those of the disk path; after reading
//!   from memory it knows the file position behind the last record it took, so falling back to
//!   disk costs one `open` and no scan.

use std::collections::VecDeque;

use crate::format::{self, RECORD_HEADER_LEN};

/// Spare buffers kept for the writer: two are enough to alternate at steady state (the
/// writer keeps two more of its own).
const SPARES: usize = 2;

/// The largest emptied buffer kept for reuse: a sixteenth of the cap (256 KiB of 4 MiB), at
/// least 64 KiB. Larger ones are freed; the writer's next buffer grows again if the load
/// needs it, which costs an allocation per commit only while commits are that large.
fn spare_max(cap: usize) -> usize {
    (cap / 16).max(64 * 1024)
}

/// One `pwrite`'s worth of committed records, still in memory.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// The segment the bytes were written to (its first sequence number).
    pub seg_first: u64,
    /// File offset of `bytes[0]` in that segment.
    pub offset: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Whole sealed records, as written.
    pub bytes: Vec<u8>,
}

/// The chunks on offer, shared under the spool's state lock.
#[derive(Debug, Default)]
pub(crate) struct HandOff {
    chunks: VecDeque<Chunk>,
    /// Buffer capacity held by `chunks`.
    held: usize,
    /// 0: the hand-off is off.
    pub cap: usize,
    /// Emptied buffers for the writer to reuse.
    pub spare: Vec<Vec<u8>>,
}

impl HandOff {
    pub fn new(cap: usize) -> HandOff {
        HandOff {
            cap,
            ..HandOff::default()
        }
    }

    /// Offer committed chunks, dropping the oldest while over the cap.
    pub fn offer(&mut self, chunks: impl Iterator<Item = Chunk>) {
        for c in chunks {
            self.held += c.bytes.capacity();
            self.chunks.push_back(c);
        }
        while self.held > self.cap {
            let Some(c) = self.chunks.pop_front() else {
                break;
            };
            self.held -= c.bytes.capacity();
            self.recycle(c.bytes);
        }
    }

    /// Take the chunk holding `want`, dropping older ones; `None` if memory does not hold it
    /// (the reader is behind what memory holds, or the hand-off is off).
    pub fn take(&mut self, want: u64) -> Option<Chunk> {
        while let Some(c) = self.chunks.front() {
            if c.first_seq > want {
                return None;
            }
            let c = self.chunks.pop_front()?;
            self.held -= c.bytes.capacity();
            if c.last_seq >= want {
                return Some(c);
            }
            self.recycle(c.bytes);
        }
        None
    }

    /// The first sequence number memory holds.
    pub fn first_seq(&self) -> Option<u64> {
        self.chunks.front().map(|c| c.first_seq)
    }

    /// Keep an emptied buffer for the writer, unless enough are kept or it grew large (a burst
    /// or one huge record must not pin its buffer for ever).
    pub fn recycle(&mut self, mut bytes: Vec<u8>) {
        if self.spare.len() < SPARES && bytes.capacity() <= spare_max(self.cap) {
            bytes.clear();
            self.spare.push(bytes);
        }
    }
}

/// The reader's side: the chunk it is taking records from.
#[derive(Debug)]
pub(crate) struct Taking {
    chunk: Chunk,
    /// Offset in `chunk.bytes` of the record `next_seq`.
    at: usize,
    next_seq: u64,
}

/// A record taken from memory, and the file position right behind it.
pub(crate) struct Taken<'a> {
    pub payload: &'a [u8],
    /// (segment, offset, sequence number) of the next record on disk.
    pub resume: (u64, u64, u64),
}

impl Taking {
    /// Start taking from `chunk` at `want` (which it holds).
    pub fn new(chunk: Chunk, want: u64) -> Taking {
        let mut t = Taking {
            at: 0,
            next_seq: chunk.first_seq,
            chunk,
        };
        while t.next_seq < want && t.skip() {}
        t
    }

    /// Total length of the record at `at`, if a whole one is there (the bytes are the writer's
    /// own, but lengths are still checked rather than trusted).
    fn record_len(&self) -> Option<usize> {
        let rest = self.chunk.bytes.get(self.at..)?;
        let total = format::peek_record_len(rest).ok()?;
        (total <= rest.len()).then_some(total)
    }

    fn skip(&mut self) -> bool {
        match self.record_len() {
            Some(n) => {
                self.at += n;
                self.next_seq += 1;
                true
            }
            None => false,
        }
    }

    /// The record `want`, if it is the next one here.
    pub fn next(&mut self, want: u64) -> Option<Taken<'_>> {
        if self.next_seq != want || want > self.chunk.last_seq {
            return None;
        }
        let total = self.record_len()?;
        let start = self.at;
        self.at += total;
        self.next_seq += 1;
        Some(Taken {
            payload: &self.chunk.bytes[start + RECORD_HEADER_LEN..start + total],
            resume: (
                self.chunk.seg_first,
                self.chunk.offset + self.at as u64,
                self.next_seq,
            ),
        })
    }

    /// The buffer, to give back.
    pub fn into_bytes(self) -> Vec<u8> {
        self.chunk.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(first_seq: u64, bytes: usize) -> Chunk {
        Chunk {
            seg_first: 1,
            offset: 0,
            first_seq,
            last_seq: first_seq,
            bytes: Vec::with_capacity(bytes),
        }
    }

    #[test]
    fn memory_held_is_the_cap_plus_a_few_small_spares() {
        let cap = 4 << 20;
        let mut h = HandOff::new(cap);
        // A stalled reader and a burst: chunks of every size, none taken.
        for seq in 1..200u64 {
            h.offer(std::iter::once(chunk(seq, (seq as usize % 7 + 1) << 18)));
            assert!(h.held <= cap, "{}", h.held);
        }
        assert!(h.spare.len() <= SPARES);
        assert!(h.spare.iter().all(|b| b.capacity() <= spare_max(cap)));
        // A big buffer given back is freed, a small one kept.
        let mut h = HandOff::new(cap);
        h.recycle(Vec::with_capacity(1 << 20));
        assert!(h.spare.is_empty());
        h.recycle(Vec::with_capacity(64 << 10));
        assert_eq!(h.spare.len(), 1);
    }
}
