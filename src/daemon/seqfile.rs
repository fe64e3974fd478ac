//! The last NFLOG global sequence number spooled, kept beside the spool, so that a restart can
//! tell how many packets the kernel logged while fwlog was not running (the gap between it and
//! the first number received after the restart).
//!
//! It holds a number only once everything up to it is accounted for on disk: spooled durably
//! (per `--fsync`: the commit's `durable` position, not just `written`), or reported. Being
//! behind is safe (the next run over-reports, "up to N records"); being ahead would hide a loss.
//! So after each commit the daemon hands [`SeqFile::committed`] the commit and the highest
//! number it covers, and the file is written when the spool says that commit is durable:
//! at once under `--fsync batch`, at a later sync under `interval` or `never`. Packets the spool
//! refused while full are left out until their report is spooled. A segment rollover commits
//! too, without passing through here: that leaves the file behind, which is safe. On a spool's
//! first run it is written before anything is spooled, as one less than the first number
//! received, so that a run killed before its first commit still leaves a value to compare with.
//!
//! The file itself is written with one small pwrite and no fsync: it survives kill -9 (the page
//! cache does); after a power cut it may be behind, never ahead (it is only ever given values
//! already durable). The spool lists it as a foreign file and leaves it alone.

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use fwlog_spool::Commit;

/// Commits not yet durable that the file waits for; older ones are dropped beyond this (which
/// only leaves the file further behind).
const MAX_MARKS: usize = 4096;

pub const NAME: &str = "fwlog.seq_global";

pub struct SeqFile {
    file: Option<File>,
    last: Option<u32>,
    /// (spool sequence number a commit wrote up to, highest NFLOG number it accounts for),
    /// oldest first, waiting for `Commit::durable` to reach them.
    marks: VecDeque<(u64, u32)>,
}

impl SeqFile {
    /// Open (creating) the file in the spool directory `dir` (at `spool`, for messages);
    /// returns it and the value a previous run left, if any. The directory may belong to the
    /// `--user` account: a symlink, FIFO or hard link planted under this name is not used (a
    /// one-line warning says so, and restart gaps go unreported), never followed or blocked on.
    pub fn open(dir: &OwnedFd, spool: &Path) -> (SeqFile, Option<u32>) {
        let file = crate::dirfd::open_private_file(dir, NAME, 0o600)
            .map_err(|e| {
                eprintln!(
                    "fwlog: {}: {e} (restart gaps will not be reported)",
                    spool.join(NAME).display()
                )
            })
            .ok();
        let previous = file.as_ref().and_then(|f| {
            let mut buf = [0u8; 32];
            let n = f.read_at(&mut buf, 0).ok()?;
            let value = std::str::from_utf8(&buf[..n])
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok());
            if value.is_none() && n > 0 {
                // `store` writes a fixed width at the start: whatever follows a value that did
                // not parse would keep every later one from parsing. (Not after a failed read:
                // a value there may be good.)
                let _ = f.set_len(0);
            }
            value
        });
        (
            SeqFile {
                file,
                last: previous,
                marks: VecDeque::new(),
            },
            previous,
        )
    }

    /// True once a value was read at open or stored since.
    pub fn has_value(&self) -> bool {
        self.last.is_some()
    }

    /// A commit returned `c`, and everything the kernel numbered up to `upto` is in it (or
    /// reported). Stores the highest such number whose commit is durable.
    pub fn committed(&mut self, c: Commit, upto: Option<u32>) {
        if let Some(g) = upto {
            match self.marks.back_mut() {
                Some(m) if m.0 == c.written => m.1 = g,
                _ => self.marks.push_back((c.written, g)),
            }
            if self.marks.len() > MAX_MARKS {
                self.marks.pop_front();
            }
        }
        let mut best = None;
        while let Some(&(w, g)) = self.marks.front() {
            if w > c.durable {
                break;
            }
            best = Some(g);
            self.marks.pop_front();
        }
        if let Some(g) = best {
            self.store(g);
        }
    }

    /// The spool cut its records from sequence number `a` on back (a full filesystem) and will
    /// number later records from there again: marks for the dropped records must not be met
    /// by those. (The kernel numbers they carried are reported as spool-full loss.)
    pub fn rewound(&mut self, a: u64) {
        self.marks.retain(|&(w, _)| w < a);
    }

    pub fn store(&mut self, v: u32) {
        if self.last == Some(v) {
            return;
        }
        self.last = Some(v);
        if let Some(f) = &self.file {
            // Fixed width, so a shorter number never leaves digits of a longer one behind.
            let _ = f.write_all_at(format!("{v:010}\n").as_bytes(), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path) -> Option<u32> {
        std::fs::read_to_string(dir.join(NAME))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    fn open(dir: &Path) -> (SeqFile, Option<u32>) {
        let fd = crate::dirfd::open_dir(None, dir).unwrap();
        SeqFile::open(&fd, dir)
    }

    fn c(written: u64, durable: u64) -> Commit {
        Commit { written, durable }
    }

    #[test]
    fn written_only_once_the_commit_is_durable() {
        let d = tempfile::tempdir().unwrap();
        let (mut f, prev) = open(d.path());
        assert_eq!(prev, None);
        assert!(!f.has_value());
        // --fsync interval/never: written up to 10, durable up to 0.
        f.committed(c(10, 0), Some(100));
        assert_eq!(read(d.path()), None, "not durable yet: nothing stored");
        f.committed(c(20, 10), Some(200));
        assert_eq!(read(d.path()), Some(100), "the first commit is durable now");
        f.committed(c(20, 20), Some(200));
        assert_eq!(read(d.path()), Some(200));
        // --fsync batch: durable with the commit.
        f.committed(c(30, 30), Some(300));
        assert_eq!(read(d.path()), Some(300));
        // Nothing new accounted for (e.g. packets refused while full): stays.
        f.committed(c(30, 30), None);
        assert_eq!(read(d.path()), Some(300));
        let (_, prev) = open(d.path());
        assert_eq!(prev, Some(300));
    }

    /// A file whose content does not parse is emptied, so the first number stored parses.
    #[test]
    fn what_does_not_parse_is_replaced_whole() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(NAME), "not a number, and longer than one\n").unwrap();
        let (mut f, prev) = open(d.path());
        assert_eq!((prev, f.has_value()), (None, false));
        f.store(12);
        assert_eq!(open(d.path()).1, Some(12));
    }

    #[test]
    fn a_long_wait_for_durability_keeps_memory_bounded() {
        let d = tempfile::tempdir().unwrap();
        let (mut f, _) = open(d.path());
        for i in 1..=10_000u64 {
            f.committed(c(i, 0), Some(i as u32));
        }
        assert!(f.marks.len() <= MAX_MARKS);
        f.committed(c(10_000, 10_000), Some(10_000));
        assert_eq!(read(d.path()), Some(10_000));
    }

    /// A full filesystem cut records 1..10 back before they were durable; their numbers are
    /// reused by later records, which the kernel numbered lower than the report of the dropped
    /// ones will: the dropped records' mark must not be met by the new ones.
    #[test]
    fn a_cut_back_forgets_the_marks_of_the_dropped_records() {
        let d = tempfile::tempdir().unwrap();
        let (mut f, _) = open(d.path());
        f.committed(c(10, 0), Some(110));
        f.rewound(1);
        f.committed(c(20, 15), Some(100));
        assert_eq!(
            read(d.path()),
            None,
            "110 is not accounted for by records 1..15"
        );
        f.committed(c(20, 20), Some(100));
        assert_eq!(read(d.path()), Some(100));
    }
}
