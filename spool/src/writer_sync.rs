//! The writer's side of [`Options::background_sync`](crate::Options::background_sync): commits
//! that hand their `fdatasync` to the spool's sync thread (`crate::syncer`).
//!
//! Invariants (besides the writer's and the sync thread's own):
//! - A commit writes its batch on the caller's thread and hands the sync over; it waits only
//!   when asked to ([`Writer::commit_wait`], a rollover, a close), when more than
//!   [`UNSYNCED_CAP`] bytes of the active segment are written and not yet synced (checked
//!   after the write, so the cap can be passed by one batch), and once a sync has failed (the
//!   failure is handled when the thread is idle, as is a write that finds the disk full).
//! - The writer learns what the thread did at its next commit (or rollover, close): the
//!   published position becomes `Commit::durable`, and a failed sync is handled there, once
//!   the thread is idle, as a failed sync in place would have been: a full filesystem cuts the
//!   segment back to the last published record (dropping everything written after it, synced
//!   or not, which no reader has seen) and returns [`Error::NoSpace`]; any other error poisons.
//!   [`Writer::commit_due`] is true once a sync has ended, so a caller that commits when due
//!   hears of it within a round, even while nothing is appended.
//! - A commit that waits (`commit_wait`, a rollover, a close) while the thread is idle syncs
//!   and publishes on the caller's thread instead, exactly as a writer without the thread
//!   does (its failure handled there: cut back or poison); only with a sync in flight or
//!   pending does it hand over and wait. So NFQUEUE and hold mode, which wait at every
//!   commit, pay no thread hand-off while their own commits are all there is.
//! - The thread is started by the first commit (on the committing thread, whose scheduling
//!   priority it inherits); commits before it and a writer whose thread cannot be started
//!   sync in place.

use super::Writer;
use crate::error::{Error, Result};
use crate::syncer::{Publication, Synced, Syncer};
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
        self.start_syncer();
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
        if wait && self.sync_in_place()? {
            return Ok(self.position());
        }
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
        self.take_spares();
    }

    /// Emptied buffers back from the reader, for the next batches.
    fn take_spares(&mut self) {
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

    /// The first commit starts the sync thread, so that it inherits the committing thread's
    /// scheduling priority (the daemon's intake thread, raised above the processing loop),
    /// not that of the thread that opened the spool. Until then, and if it cannot be started,
    /// syncs run in place.
    pub(super) fn start_syncer(&mut self) {
        if !std::mem::take(&mut self.want_syncer) {
            return;
        }
        // Every commit so far synced and published in place.
        let at = Synced {
            seq: self.published_seq,
            len: self.published_len,
        };
        self.syncer = Syncer::start(std::sync::Arc::clone(&self.shared), at);
        self.submitted = self.written;
    }

    /// The sync thread's id (Linux `gettid`), once the first commit started it.
    pub fn sync_thread_id(&self) -> Option<i32> {
        self.syncer.as_ref().and_then(Syncer::thread_id)
    }

    /// For a commit that waits (`commit_wait`, a rollover, a close) while the thread is idle:
    /// syncs and publishes on this thread, as a writer without the thread does, instead of
    /// handing the sync over and waiting for it to come back (a wake-up and a thread switch
    /// each way, at every commit of NFQUEUE and hold mode). The thread stays idle meanwhile
    /// (only this writer gives it work), so publishes keep their order; a failure is handled
    /// in place (`failed`: a full filesystem cuts back to the last publish, anything else
    /// poisons). False, with nothing done, when the thread is busy or has a failure to report,
    /// or nothing new is written.
    fn sync_in_place(&mut self) -> Result<bool> {
        let Some(s) = &self.syncer else {
            return Ok(false);
        };
        if self.written <= self.submitted || !s.idle() {
            return Ok(false);
        }
        if let Err(e) = self.file.sync_data() {
            return Err(self.failed("fdatasync", e));
        }
        let p = Publication {
            seg_first: self.seg_first,
            seg_len: self.seg_len,
            upto: self.written,
            chunks: self.staged.drain(..).collect(),
        };
        if let Some(s) = &self.syncer {
            s.published_in_place(&self.shared, p);
        }
        self.submitted = self.written;
        self.durable = self.written;
        self.published_seq = self.written;
        self.published_len = self.seg_len;
        self.take_spares();
        crate::shared::call_hook(&self.shared);
        Ok(true)
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
