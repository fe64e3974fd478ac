//! `fwlog.nflog_positions` beside the spool: where the run whose NFLOG socket is kept in the
//! service manager's fd store stopped spooling, per group, so that the next run on the same
//! socket continues exactly (see [`crate::capture::NflogSocket::adopt`]).
//!
//! Format, rewritten in place by one `pwrite` of the same length each time:
//!
//! ```text
//! socket 00000000000000123456      the socket's inode: the file speaks only for that socket
//! 00005 0000004711 0               group, next NFULA_SEQ not spooled, unsure flag
//! end                              the content ends here (what follows is stale)
//! ```
//!
//! Per datagram, intake writes the file twice: before appending its records, with the
//! datagram's groups at their first number and flagged unsure (1); after writing them out and
//! before taking the datagram off the socket, with every group past it and no flag. A run
//! killed in between (a segment rollover may have written part of the datagram) leaves a flag:
//! the next run then looks in the spool's tail for the records of that group from that number
//! on ([`exact`]), so it neither repeats nor skips one.
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

/// One group's line: next NFULA_SEQ not (surely) spooled, and whether records from it on
/// may be partly spooled.
pub type Entry = (u16, u32, bool);

/// The entries the file holds for the socket with inode `inode`, if it is that socket's.
pub fn read(spool: &Path, inode: u64) -> Vec<Entry> {
    let Ok(text) = std::fs::read_to_string(spool.join(NAME)) else {
        return Vec::new();
    };
    parse(&text, inode).unwrap_or_default()
}

fn parse(text: &str, inode: u64) -> Option<Vec<Entry>> {
    let mut lines = text.lines();
    let ino: u64 = lines.next()?.strip_prefix("socket ")?.parse().ok()?;
    if ino != inode {
        return None;
    }
    // Everything after `end` is the tail of a longer earlier content (see `write`).
    let mut done = false;
    let entries = lines
        .take_while(|l| {
            done = *l == "end";
            !done
        })
        .map(|l| {
            let mut f = l.split(' ');
            let g = f.next()?.parse().ok()?;
            let s = f.next()?.parse().ok()?;
            let unsure = match f.next()? {
                "0" => false,
                "1" => true,
                _ => return None,
            };
            Some((g, s, unsure))
        })
        .collect::<Option<Vec<Entry>>>()?;
    done.then_some(entries)
}

/// Resolve the unsure entries against the spool in `dir` (already recovered): the group's
/// next number is one past the highest of its records from the flagged number on that the
/// spool's tail holds. Reads segments from the newest back until one holds a record of the
/// group before that number (the datagram started there), or `max_bytes` of records were
/// read (a datagram is never larger).
pub fn exact(dir: &Path, entries: &[Entry], max_bytes: u64) -> Vec<(u16, u32)> {
    let ro = fwlog_spool::ReadOnlySpool::open(dir).ok();
    entries
        .iter()
        .map(|&(g, next, unsure)| match (&ro, unsure) {
            (Some(ro), true) => (g, tail_next(ro, g, next, max_bytes)),
            _ => (g, next),
        })
        .collect()
}

fn tail_next(ro: &fwlog_spool::ReadOnlySpool, group: u16, from: u32, max_bytes: u64) -> u32 {
    let at_or_after = |s: u32| s.wrapping_sub(from) < 1 << 31;
    let mut next = from;
    for start in (0..ro.segments().len()).rev() {
        let (mut before, mut bytes) = (false, 0u64);
        for r in ro.records_from(start) {
            let Ok(r) = r else { break };
            bytes += r.data.len() as u64;
            match crate::capture::scan_group_seq(&r.data) {
                Some((g, seq)) if g == group && !at_or_after(seq) => before = true,
                // The highest from `from` on, in wrapping order.
                Some((g, seq))
                    if g == group && seq.wrapping_sub(from) >= next.wrapping_sub(from) =>
                {
                    next = seq.wrapping_add(1)
                }
                _ => {}
            }
        }
        if before || bytes > max_bytes {
            break;
        }
    }
    next
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

    /// Record `entries`. A failure is reported once on stderr: the file then lags, which
    /// makes a kill repeat records, never lose them.
    pub fn store(&mut self, entries: impl Iterator<Item = Entry>) {
        if let Err(e) = self.write(entries) {
            if !std::mem::replace(&mut self.reported, true) {
                eprintln!("fwlog: {NAME}: {e}; a kill may print packets twice");
            }
        }
    }

    fn write(&mut self, entries: impl Iterator<Item = Entry>) -> std::io::Result<()> {
        use std::fmt::Write;
        self.buf.clear();
        let _ = writeln!(self.buf, "socket {:020}", self.inode);
        for (g, s, unsure) in entries {
            let _ = writeln!(self.buf, "{g:05} {s:010} {}", u8::from(unsure));
        }
        self.buf.push_str("end\n");
        // Written over the old content, then cut to length: a kill in between leaves the new
        // content followed by old lines, which `end` marks as not part of it.
        self.file.write_all_at(self.buf.as_bytes(), 0)?;
        let len = self.buf.len() as u64;
        if len != self.len {
            self.file.set_len(len)?;
            self.len = len;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_only_for_the_same_socket() {
        let d = tempfile::tempdir().unwrap();
        let mut p = Positions::open(d.path(), 77).unwrap();
        p.store([(5, 10, false), (6, 4_000_000_000, true)].into_iter());
        assert_eq!(
            read(d.path(), 77),
            vec![(5, 10, false), (6, 4_000_000_000, true)]
        );
        assert_eq!(read(d.path(), 78), vec![], "another socket's file");
        p.store([(5, 11, false)].into_iter());
        assert_eq!(
            read(d.path(), 77),
            vec![(5, 11, false)],
            "no stale line left"
        );
        std::fs::write(d.path().join(NAME), "socket 77\n00005 x 0\nend\n").unwrap();
        assert_eq!(read(d.path(), 77), vec![], "garbage is ignored");
        std::fs::write(d.path().join(NAME), "socket 77\n00005 0000000001 0\n").unwrap();
        assert_eq!(read(d.path(), 77), vec![], "no end: cut short");
        std::fs::write(
            d.path().join(NAME),
            "socket 77\n00005 0000000001 0\nend\n00006 0000000002 0\nend\n",
        )
        .unwrap();
        assert_eq!(
            read(d.path(), 77),
            vec![(5, 1, false)],
            "stale tail ignored"
        );
    }

    fn record(group: u16, seq: u32) -> Vec<u8> {
        let mut r = vec![2, 0];
        r.extend_from_slice(&group.to_be_bytes());
        crate::nflog::attr::push_attr(&mut r, crate::nflog::attr::nfula::SEQ, &seq.to_be_bytes());
        r
    }

    #[test]
    fn an_unsure_group_continues_after_what_the_spool_holds() {
        let d = tempfile::tempdir().unwrap();
        let opts = fwlog_spool::Options {
            segment_bytes: 4096,
            ..Default::default()
        };
        let (mut w, _r, _) = fwlog_spool::Spool::open(d.path(), opts).unwrap();
        // Group 5 up to 99 before the datagram; the datagram from 100 was written up to 139
        // (across several segments) when the process died. Group 6 is interleaved.
        for s in 90..140u32 {
            w.append(&record(5, s)).unwrap();
            w.append(&record(6, s + 1000)).unwrap();
        }
        w.commit().unwrap();
        drop(w);
        let got = exact(
            d.path(),
            &[(5, 100, true), (6, 7, false), (9, 3, true)],
            1 << 20,
        );
        assert_eq!(got, vec![(5, 140), (6, 7), (9, 3)]);
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
