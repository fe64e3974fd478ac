//! `fwlog.nflog_positions` beside the spool: where the run whose NFLOG socket is kept in the
//! service manager's fd store stopped spooling, per group, so that the next run on the same
//! socket continues exactly (see [`crate::capture::NflogSocket::adopt`]).
//!
//! Format, rewritten in place by one `pwrite` after each datagram is written out and before it
//! is taken off the socket (so it never claims a record the spool lacks):
//!
//! ```text
//! socket 00000000000000123456      the socket's inode: the file speaks only for that socket
//! 00005 0000004711                 group, next NFULA_SEQ expected (one line per group)
//! ```
//!
//! It is trusted only after a kill or a restart, never after a power cut: the page cache
//! keeps it (and the records it vouches for) across the first two, and the fd store, which
//! alone gives the socket back, does not survive the third. A file of another socket, or one
//! that does not parse, is ignored (the run then falls back to the global restart estimate).

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

pub const NAME: &str = "fwlog.nflog_positions";

pub struct Positions {
    file: File,
    inode: u64,
    len: u64,
    buf: String,
    /// A write failed and was reported; later failures are silent.
    reported: bool,
}

/// The positions the file holds for the socket with inode `inode`, if it is that socket's.
pub fn read(spool: &Path, inode: u64) -> Vec<(u16, u32)> {
    let Ok(text) = std::fs::read_to_string(spool.join(NAME)) else {
        return Vec::new();
    };
    parse(&text, inode).unwrap_or_default()
}

fn parse(text: &str, inode: u64) -> Option<Vec<(u16, u32)>> {
    let mut lines = text.lines();
    let ino: u64 = lines.next()?.strip_prefix("socket ")?.parse().ok()?;
    if ino != inode {
        return None;
    }
    lines
        .map(|l| {
            let (g, s) = l.split_once(' ')?;
            Some((g.parse().ok()?, s.parse().ok()?))
        })
        .collect()
}

impl Positions {
    /// Open (creating, never following a symlink) the file for the socket `inode`.
    pub fn open(spool: &Path, inode: u64) -> std::io::Result<Positions> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(spool.join(NAME))?;
        Ok(Positions {
            file,
            inode,
            len: u64::MAX,
            buf: String::new(),
            reported: false,
        })
    }

    /// Record `groups` (group, next NFULA_SEQ). A failure is reported once on stderr: the
    /// file then lags, which makes a kill repeat records, never lose them.
    pub fn store(&mut self, groups: impl Iterator<Item = (u16, u32)>) {
        if let Err(e) = self.write(groups) {
            if !std::mem::replace(&mut self.reported, true) {
                eprintln!("fwlog: {NAME}: {e}; a kill may print packets twice");
            }
        }
    }

    fn write(&mut self, groups: impl Iterator<Item = (u16, u32)>) -> std::io::Result<()> {
        use std::fmt::Write;
        self.buf.clear();
        let _ = writeln!(self.buf, "socket {:020}", self.inode);
        for (g, s) in groups {
            let _ = writeln!(self.buf, "{g:05} {s:010}");
        }
        // Same length as the last write, unless the groups changed: then cut the file first,
        // so no line of a longer old content is left behind.
        let len = self.buf.len() as u64;
        if len != self.len {
            self.file.set_len(0)?;
            self.len = len;
        }
        self.file.write_all_at(self.buf.as_bytes(), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_only_for_the_same_socket() {
        let d = tempfile::tempdir().unwrap();
        let mut p = Positions::open(d.path(), 77).unwrap();
        p.store([(5, 10), (6, 4_000_000_000)].into_iter());
        assert_eq!(read(d.path(), 77), vec![(5, 10), (6, 4_000_000_000)]);
        assert_eq!(read(d.path(), 78), vec![], "another socket's file");
        p.store([(5, 11)].into_iter());
        assert_eq!(read(d.path(), 77), vec![(5, 11)], "no stale line left");
        std::fs::write(d.path().join(NAME), "socket 77\n00005 x\n").unwrap();
        assert_eq!(read(d.path(), 77), vec![], "garbage is ignored");
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("victim");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, d.path().join(NAME)).unwrap();
        assert!(Positions::open(d.path(), 1).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
