//! Blocks reserved ahead of the active segment's end, so that its syncs allocate nothing.
//!
//! Why: appended bytes get their disk blocks when they are written back, that is at the
//! segment's `fdatasync`, in pieces as large as one batch. Files growing side by side (the
//! outputs, the next segment) take the blocks between those pieces, and a segment so allocated
//! ends up in more extents than its inode holds (ext4: four); from then on every sync also
//! writes the extent tree's leaf block, one more 4 KiB request to the disk per sync (measured
//! on ext4 without a journal: of 188 segments written under a benchmark's load, 118 ended in
//! more than four extents, and a sync cost 3.59 requests on average instead of 3). One
//! reservation of the whole segment when its first batch is written asks the filesystem for one
//! contiguous range, and each sync then only marks written what was reserved.
//!
//! Invariants:
//! - Only blocks are reserved ([`FsFile::reserve`], `fallocate(FALLOC_FL_KEEP_SIZE)`): the
//!   file's size stays the bytes written, so recovery, readers and the size cap's accounting
//!   (`disk_bytes`) see exactly what they saw without it.
//! - A reservation never fails an append. Any failure leaves the writer appending as before;
//!   the first one is kept for [`Prealloc::take_notice`] (said once per writer). A filesystem
//!   that cannot reserve (`Unsupported`: tmpfs before 3.5, FAT, NFS before 4.2, ...) or fails
//!   otherwise is not asked again; ENOSPC, EDQUOT and EINTR are asked again at the next range.
//!   A failed reservation may have reserved part of its range: that part is given back at once.
//!   On tmpfs and ramfs nothing is reserved (no blocks to allocate; it would only take the
//!   memory earlier), silently.
//! - The blocks reserved, and the bytes in the spool's files, stay within `max_bytes`
//!   together: a reservation never reaches past the cap's room.
//! - A nearly full filesystem is not made fuller: a range is reserved only while the space
//!   left to allocate is at least [`FREE_FACTOR`] times the range (a default 64 MiB segment:
//!   320 MiB free), so the reservation is at most a fifth of what is free and others' writes
//!   keep the rest. Below that the writer appends as before, and records the filesystem could
//!   hold are never refused for blocks held back for the spool (the spool's own appends go into
//!   its reservation).
//! - Blocks reserved past a segment's size are given back when it is sealed (rollover), when
//!   the writer closes, and after a full filesystem cut the segment back (the `ftruncate` does
//!   it); recovery gives back what a crash left on the last segment it does not reuse. So a
//!   retained segment holds no blocks beyond its records. Giving back keeps the size and the
//!   mtime (retention by age reads the mtime); its failure is said once and changes nothing
//!   else (the blocks stay until the file is deleted).

use std::io;

use crate::fs::FsFile;

/// Bytes reserved at once (clipped to the segment's end): a whole default segment.
pub(crate) const CHUNK: u64 = 64 * 1024 * 1024;

/// A range is reserved only while the filesystem has this many times its size free.
pub(crate) const FREE_FACTOR: u64 = 5;

/// The reservation state of the active segment.
#[derive(Debug, Default)]
pub(crate) struct Prealloc {
    /// Writes up to this offset need no new reservation (reserved, or decided against).
    decided_to: u64,
    /// Blocks may be reserved past the segment's size.
    holds_tail: bool,
    /// The filesystem cannot reserve: never asked again.
    off: bool,
    /// The first failure, not yet said.
    notice: Option<String>,
    /// A failure has been kept for the notice (so later ones are not).
    noticed: bool,
}

/// Where the next write goes and what bounds the reservation.
pub(crate) struct Write {
    /// Offset of the write in the segment.
    pub at: u64,
    /// Its length.
    pub len: u64,
    /// The segment's size limit (`segment_bytes`): records never go past it but a single
    /// larger record.
    pub segment_end: u64,
    /// Bytes the size cap still allows beyond the bytes already in the spool's files.
    pub cap_room: u64,
}

impl Prealloc {
    /// Before writing `w`: reserves up to [`CHUNK`] from the write's start, when the write
    /// reaches past what was reserved (or decided against). Never fails.
    pub fn before_write(&mut self, file: &dyn FsFile, w: &Write) {
        let end = w.at + w.len;
        if self.off || end <= self.decided_to {
            return;
        }
        let from = self.decided_to.max(w.at);
        let to = w
            .segment_end
            .min(w.at.saturating_add(CHUNK))
            .min(w.at.saturating_add(w.cap_room));
        if to <= end {
            // Nothing worth reserving beyond this write: it allocates as it always did.
            self.decided_to = end;
            return;
        }
        self.decided_to = to;
        let len = to - from;
        match file.available() {
            Ok(free) if free / FREE_FACTOR >= len => {}
            Ok(_) => return,
            Err(e) => return self.failed("free space", e),
        }
        match file.reserve(from, len) {
            Ok(()) => self.holds_tail = true,
            Err(e) => {
                // Part of the range may be reserved: give it back now, the filesystem being
                // short of it most likely.
                self.holds_tail = true;
                self.release(file);
                self.failed("reserving blocks ahead", e);
            }
        }
    }

    /// The segment is sealed or the writer closes: gives back the blocks past its size.
    pub fn seal(&mut self, file: &dyn FsFile) {
        self.release(file);
        self.decided_to = 0;
    }

    /// The segment was cut back with `ftruncate`, which gave back the blocks past its new
    /// size: reserve again from there.
    pub fn truncated(&mut self) {
        self.holds_tail = false;
        self.decided_to = 0;
    }

    /// The first failure not yet said, as one line's text.
    pub fn take_notice(&mut self) -> Option<String> {
        self.notice.take()
    }

    fn release(&mut self, file: &dyn FsFile) {
        if !std::mem::take(&mut self.holds_tail) {
            return;
        }
        if let Err(e) = file.release_reserved() {
            self.keep_notice(format!(
                "spool segments: giving back blocks reserved past a segment's end: {e}; they \
                 stay allocated until the segment is deleted"
            ));
        }
    }

    fn failed(&mut self, what: &str, e: io::Error) {
        let again = matches!(
            e.raw_os_error(),
            Some(libc::ENOSPC | libc::EDQUOT | libc::EINTR)
        );
        if !again {
            self.off = true;
        }
        self.keep_notice(format!(
            "spool segments: {what}: {e}; appending without reserving blocks{}",
            if again { " for now" } else { "" }
        ));
    }

    fn keep_notice(&mut self, text: String) {
        if !std::mem::replace(&mut self.noticed, true) {
            self.notice = Some(text);
        }
    }
}

/// Gives back blocks reserved past `file`'s size that a crash left behind (recovery, for the
/// last segment when it is not reused). Best effort: a failure leaves them until the segment
/// is deleted.
pub(crate) fn release_left_over(file: &dyn FsFile) {
    let _ = file.release_reserved();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Logs reservations and give-backs; fails them as told.
    #[derive(Default)]
    struct Log {
        calls: Mutex<Vec<String>>,
        free: Option<u64>,
        reserve_errno: Option<i32>,
        release_errno: Option<i32>,
    }

    impl FsFile for Log {
        fn read_at(&self, _: &mut [u8], _: u64) -> io::Result<usize> {
            Ok(0)
        }
        fn write_at(&self, _: &[u8], _: u64) -> io::Result<()> {
            Ok(())
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
        fn set_len(&self, _: u64) -> io::Result<()> {
            Ok(())
        }
        fn len(&self) -> io::Result<u64> {
            Ok(0)
        }
        fn reserve(&self, offset: u64, len: u64) -> io::Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("reserve {offset}+{len}"));
            match self.reserve_errno {
                Some(e) => Err(io::Error::from_raw_os_error(e)),
                None => Ok(()),
            }
        }
        fn release_reserved(&self) -> io::Result<()> {
            self.calls.lock().unwrap().push("release".into());
            match self.release_errno {
                Some(e) => Err(io::Error::from_raw_os_error(e)),
                None => Ok(()),
            }
        }
        fn available(&self) -> io::Result<u64> {
            Ok(self.free.unwrap_or(u64::MAX))
        }
    }

    fn w(at: u64, len: u64) -> Write {
        Write {
            at,
            len,
            segment_end: 3 * CHUNK,
            cap_room: u64::MAX,
        }
    }

    fn calls(f: &Log) -> Vec<String> {
        std::mem::take(&mut *f.calls.lock().unwrap())
    }

    #[test]
    fn reserves_a_chunk_ahead_then_nothing_until_past_it() {
        let f = Log::default();
        let mut p = Prealloc::default();
        p.before_write(&f, &w(32, 1000));
        assert_eq!(calls(&f), [format!("reserve 32+{CHUNK}")]);
        p.before_write(&f, &w(1032, CHUNK - 1000));
        assert!(calls(&f).is_empty());
        p.before_write(&f, &w(CHUNK + 32, 10));
        assert_eq!(calls(&f), [format!("reserve {}+{CHUNK}", CHUNK + 32)]);
        p.seal(&f);
        assert_eq!(calls(&f), ["release"]);
        // Nothing reserved since: nothing to give back.
        p.seal(&f);
        assert!(calls(&f).is_empty());
        assert!(p.take_notice().is_none());
    }

    #[test]
    fn bounded_by_the_segment_and_the_cap() {
        let f = Log::default();
        let mut p = Prealloc::default();
        let mut at = w(100, 10);
        at.segment_end = 4096;
        p.before_write(&f, &at);
        assert_eq!(calls(&f), ["reserve 100+3996"]);
        let mut p = Prealloc::default();
        let mut at = w(100, 10);
        at.cap_room = 500;
        p.before_write(&f, &at);
        assert_eq!(calls(&f), ["reserve 100+500"]);
        // No room beyond the write itself: no call, and none for writes up to its end.
        let mut p = Prealloc::default();
        let mut at = w(100, 10);
        at.cap_room = 10;
        p.before_write(&f, &at);
        p.before_write(&f, &w(105, 5));
        assert!(calls(&f).is_empty());
    }

    #[test]
    fn skipped_while_the_filesystem_is_nearly_full() {
        let mut f = Log {
            free: Some(FREE_FACTOR * CHUNK - 1),
            ..Log::default()
        };
        let mut p = Prealloc::default();
        p.before_write(&f, &w(0, 10));
        assert!(calls(&f).is_empty());
        // Not asked again for this range; asked for the next one once there is room.
        f.free = Some(FREE_FACTOR * CHUNK);
        p.before_write(&f, &w(10, 10));
        assert!(calls(&f).is_empty());
        p.before_write(&f, &w(CHUNK, 10));
        assert_eq!(calls(&f), [format!("reserve {CHUNK}+{CHUNK}")]);
        assert!(p.take_notice().is_none());
    }

    /// A first write whose reservation fails with `errno`: the range given back at once (the
    /// failed call may have reserved part of it), and the notice.
    fn first_reservation_failing(errno: i32) -> (Log, Prealloc, String) {
        let f = Log {
            reserve_errno: Some(errno),
            ..Log::default()
        };
        let mut p = Prealloc::default();
        p.before_write(&f, &w(0, 10));
        assert_eq!(calls(&f), [format!("reserve 0+{CHUNK}"), "release".into()]);
        let n = p.take_notice().expect("said once");
        (f, p, n)
    }

    #[test]
    fn unsupported_turns_it_off_with_one_notice() {
        let (f, mut p, n) = first_reservation_failing(libc::EOPNOTSUPP);
        assert!(n.contains("appending without reserving blocks"), "{n}");
        assert!(!n.contains("for now"), "{n}");
        p.before_write(&f, &w(CHUNK, 10));
        p.seal(&f);
        assert!(calls(&f).is_empty());
        assert!(p.take_notice().is_none());
    }

    #[test]
    fn no_space_is_tried_again_at_the_next_range_and_said_once() {
        let (f, mut p, n) = first_reservation_failing(libc::ENOSPC);
        assert!(n.contains("for now"), "{n}");
        p.before_write(&f, &w(CHUNK, 10));
        assert_eq!(
            calls(&f),
            [format!("reserve {CHUNK}+{CHUNK}"), "release".into()]
        );
        assert!(p.take_notice().is_none());
    }

    #[test]
    fn a_failed_give_back_is_said_and_changes_nothing_else() {
        let f = Log {
            release_errno: Some(libc::EIO),
            ..Log::default()
        };
        let mut p = Prealloc::default();
        p.before_write(&f, &w(0, 10));
        p.seal(&f);
        assert_eq!(calls(&f), [format!("reserve 0+{CHUNK}"), "release".into()]);
        assert!(p
            .take_notice()
            .expect("said")
            .contains("giving back blocks reserved"));
        // The next segment reserves as before.
        p.before_write(&f, &w(32, 10));
        assert_eq!(calls(&f), [format!("reserve 32+{CHUNK}")]);
    }

    #[test]
    fn a_cut_back_segment_reserves_again() {
        let f = Log::default();
        let mut p = Prealloc::default();
        p.before_write(&f, &w(0, 10));
        p.truncated();
        p.seal(&f);
        assert_eq!(calls(&f), [format!("reserve 0+{CHUNK}")]);
        p.before_write(&f, &w(0, 10));
        assert_eq!(calls(&f), [format!("reserve 0+{CHUNK}")]);
    }
}
