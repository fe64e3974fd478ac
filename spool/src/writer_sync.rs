//! The writer's side of [`Options::background_sync`](crate::Options::background_sync): commits
//! that hand their `fdatasync` to the spool's sync thread (`crate::syncer`).
//!
//! Invariants (besides the writer's and the sync thread's own):
//! - A commit writes its batch on the caller's thread and hands the sync over; it waits only
//!   when asked to ([`Writer::commit_wait`], a rollover, a close) or when more than
//!   [`UNSYNCED_CAP`] bytes of the active segment are written and not yet synced.
//! - The writer learns what the thread did at its next commit (or rollover, close): the
//!   published position becomes `Commit::durable`, and a failed sync is handled there, once
//!   the thread is idle, as a failed sync in place would have been: a full filesystem cuts the
//!   segment back to the last published record (dropping everything written after it, synced
//!   or not, which no reader has seen) and returns [`Error::NoSpace`]; any other error poisons.
//!   [`Writer::commit_due`] is true once a sync has ended, so a caller that commits when due
//!   hears of it within a round, even while nothing is appended.

use super::Writer;
use crate::error::{Error, Result};
use crate::syncer::Publication;
use crate::Commit;

/// Most bytes of the active segment written but not yet synced before a commit waits for the
/// sync thread. A commit's records wait one sync at most, so this is reached only when a sync
/// takes longer than the traffic needs to write 32 MiB (at 160k records/s of 200 bytes, a
/// second): memory (the hand-off's buffers waiting to be published) and the records a power cut
/// could take stay bounded however slow the disk.
pub(crate) const UNSYNCED_CAP: u64 = 32 << 20;

impl Writer {
    /// [`commit`](Self::commit), returning only once the records it wrote are durable and
    /// published to the reader, also with [`Options::background_sync`](crate::Options):
    /// for callers that act on durability (a verdict, a dequeue). The thread's sync in flight
    /// and the records written meanwhile are covered by the one it waits for.
    pub fn commit_wait(&mut self) -> Result<Commit> {
        self.check_poisoned()?;
        if self.syncer.is_some() {
            self.commit_background(true)
        } else {
            self.commit()
        }
    }

    /// Writes the batch and hands its sync to the thread; waits for the thread if `wait` or
    /// beyond [`UNSYNCED_CAP`].
    pub(super) fn commit_background(&mut self, wait: bool) -> Result<Commit> {
        self.sync_catch_up(false)?;
        self.write_batch()?;
        self.submit();
        let behind = self
            .syncer
            .as_ref()
            .is_some_and(|s| self.seg_len.saturating_sub(s.synced().len) > UNSYNCED_CAP);
        if wait || behind {
            self.sync_catch_up(true)?;
        }
        Ok(self.position())
    }

    /// A sync has ended since the writer last looked.
    pub(super) fn sync_news(&self) -> bool {
        self.syncer
            .as_ref()
            .is_some_and(|s| s.completions() != self.seen_syncs)
    }

    /// Hands what is written and not yet handed over to the sync thread.
    fn submit(&mut self) {
        let Some(s) = &self.syncer else { return };
        if self.written <= self.submitted {
            return;
        }
        // `write_batch` wrote everything appended: `seg_len` ends at `written`.
        let p = Publication {
            seg_first: self.seg_first,
            seg_len: self.seg_len,
            upto: self.written,
            chunks: self.staged.drain(..).collect(),
        };
        s.submit(&self.file, p);
        self.submitted = self.written;
        if self.opts.handoff_bytes > 0 && self.spare.len() < 2 {
            let mut st = self.shared.lock();
            while self.spare.len() < 2 {
                let Some(b) = st.handoff.spare.pop() else {
                    break;
                };
                self.spare.push(b);
            }
        }
    }

    /// Takes in what the thread did (after waiting for it to be idle, if `wait`): the published
    /// position, and a failed sync, handled here (see the module docs).
    fn sync_catch_up(&mut self, wait: bool) -> Result<()> {
        let Some(s) = &self.syncer else {
            return Ok(());
        };
        if wait {
            s.wait_idle();
        }
        let n = s.completions();
        if n == self.seen_syncs {
            return Ok(());
        }
        self.seen_syncs = n;
        let (at, failure) = s.outcome();
        self.durable = at.seq;
        self.published_seq = at.seq;
        self.published_len = at.len;
        match failure {
            Some(e) => Err(self.failed("fdatasync", e)),
            None => Ok(()),
        }
    }

    /// Before cutting the segment back: waits for the thread to be idle and takes in its
    /// position. A sync failure other than a full filesystem is returned (the writer poisons).
    pub(super) fn sync_idle(&mut self) -> Result<()> {
        let Some(s) = &self.syncer else {
            return Ok(());
        };
        s.wait_idle();
        self.seen_syncs = s.completions();
        let (at, failure) = s.outcome();
        self.durable = at.seq;
        self.published_seq = at.seq;
        self.published_len = at.len;
        match failure {
            Some(e) if !crate::error::is_no_space(&e) => Err(Error::io(
                "fdatasync",
                self.shared.segment_path(self.seg_first),
                e,
            )),
            _ => Ok(()),
        }
    }
}
