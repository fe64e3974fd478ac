//! The last NFLOG global sequence number spooled, kept beside the spool, so that a restart can
//! tell how many packets the kernel logged while fwlog was not running (the gap between it and
//! the first number received after the restart).
//!
//! Written after every commit with one small pwrite and no fsync: it survives kill -9 (the page
//! cache does); after a power cut it may be a little behind, which can only over-report a
//! restart gap, never hide one. It is never ahead of the spool: the value stored after a commit
//! is the highest number received, all of which that commit wrote. (A segment rollover commits
//! too, without updating the file: that leaves it behind, which is safe.) On a spool's first
//! run it is written before anything is spooled, as one less than the first number received,
//! so that a run killed before its first commit still leaves a value to compare with. The
//! spool lists it as a foreign file and leaves it alone.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

pub const NAME: &str = "fwlog.seq_global";

pub struct SeqFile {
    file: Option<File>,
    last: Option<u32>,
}

impl SeqFile {
    /// Open (creating) the file; returns it and the value a previous run left, if any.
    pub fn open(spool: &Path) -> (SeqFile, Option<u32>) {
        let path = spool.join(NAME);
        let previous = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| {
                eprintln!(
                    "fwlog: {}: {e} (restart gaps will not be reported)",
                    path.display()
                )
            })
            .ok();
        (
            SeqFile {
                file,
                last: previous,
            },
            previous,
        )
    }

    /// True once a value was read at open or stored since.
    pub fn has_value(&self) -> bool {
        self.last.is_some()
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
