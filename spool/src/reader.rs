//! The reader: in-order delivery from disk, waiting for the writer, acknowledgement, deletion.
//!
//! The reader never sees the writer's memory: it reads segment files through its own file handle
//! with a bounded buffer, so a backlog of any size costs the same memory. It delivers only records
//! the writer has published as committed, which under [`crate::FsyncPolicy::EveryCommit`] means
//! synced.
//!
//! Acknowledgement (`ack(n)`: "everything up to n is done") first makes the new position durable in
//! the ledger, then deletes segments whose every record is at or below it. Deletion is a separate
//! step from acknowledgement so that a retention policy can later keep acknowledged segments.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
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

/// The consuming side. Owned by one thread (it is `Send`).
pub struct Reader {
    shared: Arc<Shared>,
    ledger: Ledger,
    cursor: Option<Cursor>,
    /// Last sequence number delivered (or acknowledged at open).
    delivered: u64,
    acked: u64,
    /// Records up to here existed at open.
    recovered_upto: u64,
    chunk: usize,
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
            ledger,
            cursor: None,
            delivered: acked,
            acked,
            recovered_upto,
            chunk,
        }
    }

    /// The next committed record in sequence order, or `None` if the reader has caught up with
    /// the writer. Sequence numbers increase strictly; a jump means records were lost to
    /// corruption (counted in `Stats::records_lost_in_gaps`).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Record>> {
        let committed = self.shared.lock().committed;
        if self.delivered >= committed {
            return Ok(None);
        }
        let want = self.delivered + 1;
        let mut retried = false;
        loop {
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
                self.open_segment(first, want)?;
            }
            let cur = self.cursor.as_mut().expect("opened above");
            let path = cur.path.clone();
            let step = cur.next_step().map_err(|e| Error::io("read", &path, e))?;
            let (offset, why) = match step {
                Step::Record { seq, payload } => {
                    if seq < want {
                        continue; // already acknowledged or delivered
                    }
                    let rec = Record {
                        seq,
                        data: payload.to_vec(),
                        recovered: seq <= self.recovered_upto,
                    };
                    if seq > want {
                        add(&self.shared.counters.records_lost_in_gaps, seq - want);
                    }
                    self.delivered = seq;
                    return Ok(Some(rec));
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
            match (next_first, why) {
                (Some(n), why) => {
                    if why.is_some() {
                        // Real corruption: this segment was complete before its successor existed.
                        let c = &self.shared.counters;
                        let len = cur.file_len().unwrap_or(offset);
                        add(&c.corrupt_regions_skipped, 1);
                        add(&c.corrupt_bytes_skipped, len.saturating_sub(offset));
                    }
                    self.open_segment(n, want)?;
                }
                (None, _) if cur.next_seq > committed => {
                    // Everything committed in the writer's segment has been read, yet numbers
                    // below `committed` were never delivered: they are missing from disk (lost to
                    // corruption or, under a relaxed fsync policy, to a power cut). Skip them.
                    add(
                        &self.shared.counters.records_lost_in_gaps,
                        committed - self.delivered,
                    );
                    self.delivered = committed;
                    return Ok(None);
                }
                (None, why) => {
                    return Err(Error::Corrupt {
                        path,
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

    fn open_segment(&mut self, first: u64, want: u64) -> Result<()> {
        let path = self.shared.segment_path(first);
        match Cursor::open(&*self.shared.fs, &path, self.chunk) {
            Ok(Ok(c)) if c.first_seq == first => {
                self.cursor = Some(c);
                Ok(())
            }
            Ok(Ok(c)) => Err(Error::Corrupt {
                path,
                seq: want,
                offset: 0,
                reason: format!("header says first sequence {}", c.first_seq),
            }),
            Ok(Err(why)) => Err(Error::Corrupt {
                path,
                seq: want,
                offset: 0,
                reason: format!("segment header: {why}"),
            }),
            Err(e) => Err(Error::io("open", path, e)),
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
            st = match self.shared.cond.wait_timeout(st, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
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
        self.ledger.store(upto)?;
        add(&self.shared.counters.acked_records, upto - self.acked);
        self.acked = upto;
        self.shared.lock().acked = upto;
        self.delete_acknowledged()
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

/// See [`Reader::stats_handle`].
#[derive(Clone)]
pub struct StatsHandle(Arc<Shared>);

impl StatsHandle {
    pub fn stats(&self) -> Stats {
        self.0.stats()
    }
}
