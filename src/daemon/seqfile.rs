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
//! received, so that a run killed before its first commit still leaves a value to compare with;
//! and before that, when it is opened (before the socket binds a group), as 0: a first run
//! killed before it read any numbered record leaves the kernel's numbered records in its socket
//! unread, and the next run reports them from 1 on ("up to N": numbers another NFLOG user in the
//! network namespace took are in that range too). 0 is also what a number 1 would store. Where
//! that 0 can only over-report, it goes: a first run that stops cleanly having seen no number
//! read its socket empty and takes it back ([`SeqFile::stopped`]), and a run that takes the
//! socket back from the fd store sets it aside ([`SeqFile::for_kept_socket`]), since what the
//! first run was given is still in that socket.
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
    /// This open wrote the first run's 0 (the file had no value).
    wrote_zero: bool,
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
            std::str::from_utf8(&buf[..n])
                .ok()?
                .trim()
                .parse::<u32>()
                .ok()
        });
        let mut wrote_zero = false;
        if let (None, Some(f)) = (previous, &file) {
            // Emptied first: `store` writes a fixed width at the start, and what follows a
            // value that did not parse would keep every later one from parsing.
            wrote_zero = f
                .set_len(0)
                .and_then(|()| f.write_all_at(&encode(0), 0))
                .is_ok();
        }
        (
            SeqFile {
                file,
                last: previous,
                wrote_zero,
                marks: VecDeque::new(),
            },
            previous,
        )
    }

    /// The socket is the one the previous run kept in the fd store: returns the number to seed
    /// it with. A 0 there is a first run's that read no numbered record, so what the kernel
    /// gave that run is still in this socket; estimating from 0 would report the numbers
    /// other NFLOG users took before it as lost. It is set aside, and this run stores its first
    /// number as a first run does.
    pub fn for_kept_socket(&mut self, previous: Option<u32>) -> Option<u32> {
        if previous == Some(0) && self.last == Some(0) {
            self.last = None;
            return None;
        }
        previous
    }

    /// A clean stop: intake read the socket empty. If this was a first run that never saw a
    /// numbered record, nothing of it can be missing, and its 0 is taken back (left, the next
    /// run would report every number other NFLOG users took meanwhile as lost).
    pub fn stopped(&mut self) {
        if self.wrote_zero && self.last.is_none() {
            if let Some(f) = &self.file {
                let _ = f.set_len(0);
            }
        }
    }

    /// True once a value was read at open or stored since (the 0 a first open writes is not one).
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
            let _ = f.write_all_at(&encode(v), 0);
        }
    }
}

/// Fixed width, so a shorter number never leaves digits of a longer one behind.
fn encode(v: u32) -> [u8; 11] {
    let mut b = [b'\n'; 11];
    b[..10].copy_from_slice(format!("{v:010}").as_bytes());
    b
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
        assert_eq!(
            read(d.path()),
            Some(0),
            "not durable yet: only the first open's 0"
        );
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

    /// A first run killed before it read a numbered record must still leave a number, so the
    /// next run reports what the kernel numbered into the dead one's socket; whatever did not
    /// parse is replaced whole.
    #[test]
    fn a_first_open_leaves_0_until_a_number_is_stored() {
        let d = tempfile::tempdir().unwrap();
        let (f, prev) = open(d.path());
        assert_eq!((prev, f.has_value()), (None, false));
        assert_eq!(read(d.path()), Some(0));
        drop(f);
        let (mut f, prev) = open(d.path());
        assert_eq!((prev, f.has_value()), (Some(0), true));
        f.store(7);
        assert_eq!(open(d.path()).1, Some(7));

        std::fs::write(d.path().join(NAME), "not a number, and longer than one\n").unwrap();
        let (mut f, prev) = open(d.path());
        assert_eq!(prev, None);
        assert_eq!(read(d.path()), Some(0));
        f.store(12);
        assert_eq!(
            std::fs::read_to_string(d.path().join(NAME)).unwrap(),
            "0000000012\n"
        );
    }

    /// Where the 0 could only over-report, it goes: a first run that saw no number and stops
    /// cleanly takes it back; a run on the kept socket sets it aside and stores its first
    /// number itself. Neither touches a real value.
    #[test]
    fn the_first_runs_0_goes_where_it_could_only_over_report() {
        let d = tempfile::tempdir().unwrap();
        let (mut f, _) = open(d.path());
        f.stopped();
        assert_eq!(read(d.path()), None, "a clean first run without numbers");
        assert_eq!(open(d.path()).1, None);

        let (mut f, _) = open(d.path());
        f.store(41);
        f.stopped();
        assert_eq!(
            read(d.path()),
            Some(41),
            "a first run that saw numbers keeps them"
        );

        std::fs::remove_file(d.path().join(NAME)).unwrap();
        drop(open(d.path()));
        let (mut f, prev) = open(d.path());
        assert_eq!(prev, Some(0), "a first run killed before any number");
        assert_eq!(f.for_kept_socket(prev), None);
        assert!(!f.has_value(), "this run stores its first number");
        f.stopped();
        assert_eq!(read(d.path()), Some(0), "not this run's 0 to take back");

        let (mut g, _) = open(d.path());
        g.store(9);
        let (mut f, prev) = open(d.path());
        assert_eq!(f.for_kept_socket(prev), Some(9), "a real value is kept");
        assert!(f.has_value());
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
            Some(0),
            "110 is not accounted for by records 1..15"
        );
        f.committed(c(20, 20), Some(100));
        assert_eq!(read(d.path()), Some(100));
    }
}
