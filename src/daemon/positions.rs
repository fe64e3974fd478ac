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
//! killed in between leaves a flag: the next run then looks in the spool's tail for the records
//! of that group from that number on ([`exact`]), so it neither repeats nor skips one.
//!
//! The tail does not always hold them. An append that seals a segment in the middle of a
//! datagram publishes the part appended so far, and the processing loop may print it,
//! acknowledge it and delete the segment before the datagram is done; a kill then would leave
//! nothing in the spool to say those records were printed, and the next run would print them
//! again as new. So before such an append intake adds a checkpoint line (see [`Positions::before_seal`]):
//!
//! ```text
//! at 00000000000000000815 00005 0000004720   if spool record 815 is in the spool, group 5 is
//!                                            spooled up to 4719
//! ```
//!
//! The spool is a prefix: record 815 is in it (durable, whether or not since deleted) exactly
//! when 815 is below the first sequence number of its newest segment, or the tail holds it.
//! The next run starts each unsure group at its highest checkpoint that holds, then looks in
//! the tail from there.
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
    /// The datagram being spooled: the entries written before it ([`Positions::begin`]), how
    /// far each of its groups is appended (group, last NFULA_SEQ), and its checkpoints.
    current: Vec<Entry>,
    appended: Vec<(u16, u32)>,
    checkpoints: Vec<Checkpoint>,
}

/// One group's line: next NFULA_SEQ not (surely) spooled, and whether records from it on
/// may be partly spooled.
pub type Entry = (u16, u32, bool);

/// A checkpoint line: (group, spool sequence number, next NFULA_SEQ): if that spool record is
/// in the spool, the group is spooled up to the number before the next.
pub type Checkpoint = (u16, u64, u32);

/// What the file says for one socket.
#[derive(Debug, Default, PartialEq)]
pub struct Saved {
    pub entries: Vec<Entry>,
    pub checkpoints: Vec<Checkpoint>,
}

/// What the file holds for the socket with inode `inode`, if it is that socket's.
pub fn read(spool: &Path, inode: u64) -> Saved {
    // The spool directory may belong to the --user account: a link or FIFO planted under the
    // name is neither followed nor blocked on.
    let Ok(fd) = crate::dirfd::open_at(None, &spool.join(NAME), libc::O_RDONLY, 0) else {
        return Saved::default();
    };
    let Ok(st) = crate::dirfd::fstat(&fd) else {
        return Saved::default();
    };
    if crate::dirfd::kind(&st) != crate::dirfd::Kind::File {
        return Saved::default();
    }
    let mut text = String::new();
    if std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut text).is_err() {
        return Saved::default();
    }
    parse(&text, inode).unwrap_or_default()
}

fn parse(text: &str, inode: u64) -> Option<Saved> {
    let mut lines = text.lines();
    let ino: u64 = lines.next()?.strip_prefix("socket ")?.parse().ok()?;
    if ino != inode {
        return None;
    }
    let mut saved = Saved::default();
    // Everything after `end` is the tail of a longer earlier content (see `write`).
    for l in lines {
        if l == "end" {
            return Some(saved);
        }
        if let Some(c) = l.strip_prefix("at ") {
            let mut f = c.split(' ');
            let spool_seq = f.next()?.parse().ok()?;
            let g = f.next()?.parse().ok()?;
            let next = f.next()?.parse().ok()?;
            saved.checkpoints.push((g, spool_seq, next));
            continue;
        }
        let mut f = l.split(' ');
        let g = f.next()?.parse().ok()?;
        let s = f.next()?.parse().ok()?;
        let unsure = match f.next()? {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        saved.entries.push((g, s, unsure));
    }
    None
}

/// Resolve the unsure entries against the spool in `dir` (already recovered): the group
/// starts at its highest checkpoint whose spool record is in the spool (else at its flagged
/// number), and its next number is one past the highest of its records from there on that the
/// spool's tail holds. Reads segments from the newest back until one holds a record of the
/// group before that number (the datagram started there), or `max_bytes` of records were read
/// (a datagram is never larger).
pub fn exact(dir: &Path, saved: &Saved, max_bytes: u64) -> Vec<(u16, u32)> {
    let ro = fwlog_spool::ReadOnlySpool::open(dir).ok();
    // Records below the newest segment's first number were sealed: in the spool for good.
    let sealed_below = ro
        .as_ref()
        .and_then(|ro| ro.segments().last().copied())
        .unwrap_or(0);
    saved
        .entries
        .iter()
        .map(|&(g, next, unsure)| match (&ro, unsure) {
            (Some(ro), true) => {
                let from = start_of(g, next, &saved.checkpoints, sealed_below);
                (g, tail_next(ro, g, from, max_bytes))
            }
            _ => (g, next),
        })
        .collect()
}

/// Where an unsure group surely continues: its highest checkpoint (in wrapping order from
/// `next`) whose spool record is below `sealed_below`, else `next`.
fn start_of(group: u16, next: u32, checkpoints: &[Checkpoint], sealed_below: u64) -> u32 {
    checkpoints
        .iter()
        .filter(|&&(g, spool_seq, _)| g == group && spool_seq < sealed_below)
        .map(|&(_, _, n)| n)
        .fold(next, |a, n| {
            if n.wrapping_sub(next) > a.wrapping_sub(next) && n.wrapping_sub(next) < 1 << 31 {
                n
            } else {
                a
            }
        })
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
        // O_NONBLOCK: a FIFO planted under the name does not block the open.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(spool.join(NAME))?;
        let st = crate::dirfd::fstat(&file)?;
        if crate::dirfd::kind(&st) != crate::dirfd::Kind::File {
            return Err(std::io::Error::other(
                "is not a regular file with a single link; not used",
            ));
        }
        Ok(Positions {
            file,
            inode,
            len: u64::MAX,
            buf: String::new(),
            reported: false,
            current: Vec::new(),
            appended: Vec::new(),
            checkpoints: Vec::new(),
        })
    }

    /// Record `entries`: where each group is once the last datagram is written out. A failure
    /// is reported once on stderr: the file then lags, which makes a kill repeat records, never
    /// lose them.
    pub fn store(&mut self, entries: impl Iterator<Item = Entry>) {
        self.current.clear();
        self.appended.clear();
        self.checkpoints.clear();
        self.current.extend(entries);
        self.flush();
    }

    /// A datagram is about to be appended: record `entries` (its groups unsure from their
    /// first number in it).
    pub fn begin(&mut self, entries: impl Iterator<Item = Entry>) {
        self.store(entries);
    }

    /// The record of `group` numbered `seq` of the current datagram was appended.
    pub fn appended(&mut self, group: u16, seq: u32) {
        match self.appended.iter_mut().find(|a| a.0 == group) {
            Some(a) => a.1 = seq,
            None => self.appended.push((group, seq)),
        }
    }

    /// The next append seals the spool's segment, publishing everything appended up to spool
    /// record `last_spool_seq`: checkpoint how far this datagram's groups then are. Returns
    /// whether part of the datagram is about to be published.
    pub fn before_seal(&mut self, last_spool_seq: u64) -> bool {
        if self.appended.is_empty() {
            return false;
        }
        for &(g, seq) in &self.appended {
            let next = seq.wrapping_add(1);
            let known = self.checkpoints.iter().any(|c| c.0 == g && c.2 == next);
            if !known {
                self.checkpoints.push((g, last_spool_seq, next));
            }
        }
        self.flush();
        true
    }

    fn flush(&mut self) {
        if let Err(e) = self.write() {
            if !std::mem::replace(&mut self.reported, true) {
                eprintln!("fwlog: {NAME}: {e}; a kill may print packets twice");
            }
        }
    }

    fn write(&mut self) -> std::io::Result<()> {
        use std::fmt::Write;
        self.buf.clear();
        let _ = writeln!(self.buf, "socket {:020}", self.inode);
        for (g, s, unsure) in &self.current {
            let _ = writeln!(self.buf, "{g:05} {s:010} {}", u8::from(*unsure));
        }
        for (g, spool_seq, next) in &self.checkpoints {
            let _ = writeln!(self.buf, "at {spool_seq:020} {g:05} {next:010}");
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
    fn a_planted_fifo_or_link_is_neither_read_nor_blocked_on() {
        use std::os::unix::ffi::OsStrExt;
        let d = tempfile::tempdir().unwrap();
        let p = std::ffi::CString::new(d.path().join(NAME).as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(p.as_ptr(), 0o600) }, 0);
        assert_eq!(read(d.path(), 1), Saved::default());
        assert!(Positions::open(d.path(), 1).is_err());
        std::fs::remove_file(d.path().join(NAME)).unwrap();
        let target = d.path().join("target");
        std::fs::write(&target, "socket 1\n00005 0000000007 0\nend\n").unwrap();
        std::os::unix::fs::symlink(&target, d.path().join(NAME)).unwrap();
        assert_eq!(
            read(d.path(), 1),
            Saved::default(),
            "not read through a link"
        );
        assert!(Positions::open(d.path(), 1).is_err());
    }

    #[test]
    fn round_trip_only_for_the_same_socket() {
        let d = tempfile::tempdir().unwrap();
        let mut p = Positions::open(d.path(), 77).unwrap();
        p.store([(5, 10, false), (6, 4_000_000_000, true)].into_iter());
        assert_eq!(
            read(d.path(), 77).entries,
            vec![(5, 10, false), (6, 4_000_000_000, true)]
        );
        assert_eq!(
            read(d.path(), 78),
            Saved::default(),
            "another socket's file"
        );
        p.store([(5, 11, false)].into_iter());
        assert_eq!(
            read(d.path(), 77).entries,
            vec![(5, 11, false)],
            "no stale line left"
        );
        std::fs::write(d.path().join(NAME), "socket 77\n00005 x 0\nend\n").unwrap();
        assert_eq!(read(d.path(), 77).entries, vec![], "garbage is ignored");
        std::fs::write(d.path().join(NAME), "socket 77\n00005 0000000001 0\n").unwrap();
        assert_eq!(read(d.path(), 77).entries, vec![], "no end: cut short");
        std::fs::write(
            d.path().join(NAME),
            "socket 77\n00005 0000000001 0\nend\n00006 0000000002 0\nend\n",
        )
        .unwrap();
        assert_eq!(
            read(d.path(), 77).entries,
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
        let saved = Saved {
            entries: vec![(5, 100, true), (6, 7, false), (9, 3, true)],
            checkpoints: Vec::new(),
        };
        let got = exact(d.path(), &saved, 1 << 20);
        assert_eq!(got, vec![(5, 140), (6, 7), (9, 3)]);
    }

    /// The datagram from 100 sealed a segment at 120 (its first part published), the
    /// processing loop printed it, acknowledged it and deleted the segment, and the run died
    /// before the datagram was written out: only the checkpoint knows 100..=120 were spooled.
    #[test]
    fn a_checkpoint_covers_a_sealed_part_that_was_printed_and_deleted() {
        let d = tempfile::tempdir().unwrap();
        let opts = fwlog_spool::Options {
            segment_bytes: 4096,
            ..Default::default()
        };
        let (mut w, mut r, _) = fwlog_spool::Spool::open(d.path(), opts).unwrap();
        let mut p = Positions::open(d.path(), 9).unwrap();
        p.begin([(5, 100, true)].into_iter());
        let mut sealed_at = None;
        for s in 100..=120u32 {
            // A packet of 400 bytes: ten records to a 4 KiB segment.
            let mut rec = record(5, s);
            crate::nflog::attr::push_attr(&mut rec, crate::nflog::attr::nfula::PAYLOAD, &[0; 400]);
            if w.seals_before(rec.len()) && p.before_seal(w.next_seq() - 1) {
                sealed_at.get_or_insert(s);
            }
            w.append(&rec).unwrap();
            p.appended(5, s);
        }
        let sealed_at = sealed_at.expect("4 KiB segments sealed within 21 records of 400 bytes");
        // Printed and acknowledged: the sealed segments go; the unsealed rest dies with the run.
        let mut last = 0;
        while let Some(rec) = r.next().unwrap() {
            last = rec.seq;
        }
        r.ack(last).unwrap();
        // Killed: the unsealed rest of the datagram never reaches the file (forgotten, not
        // dropped: dropping would write it out).
        std::mem::forget(w);
        drop(r);
        let saved = read(d.path(), 9);
        assert!(!saved.checkpoints.is_empty(), "{saved:?}");
        let got = exact(d.path(), &saved, 1 << 20);
        assert!(
            got[0].1 >= sealed_at,
            "continues after the printed part, not at 100: {got:?} (sealed at {sealed_at})"
        );
        let without = Saved {
            checkpoints: Vec::new(),
            ..saved
        };
        assert_eq!(
            exact(d.path(), &without, 1 << 20),
            vec![(5, 100)],
            "the old way"
        );
    }

    #[test]
    fn checkpoints_round_trip_and_an_unsealed_one_does_not_count() {
        let d = tempfile::tempdir().unwrap();
        let mut p = Positions::open(d.path(), 4).unwrap();
        p.begin([(5, 10, true), (6, 3, false)].into_iter());
        assert!(!p.before_seal(41), "nothing of the datagram appended yet");
        p.appended(5, 10);
        p.appended(5, 11);
        assert!(p.before_seal(41));
        p.appended(5, 12);
        assert!(p.before_seal(42));
        let saved = read(d.path(), 4);
        assert_eq!(saved.entries, vec![(5, 10, true), (6, 3, false)]);
        assert_eq!(saved.checkpoints, vec![(5, 41, 12), (5, 42, 13)]);
        assert_eq!(start_of(5, 10, &saved.checkpoints, 42), 12, "42 not sealed");
        assert_eq!(start_of(5, 10, &saved.checkpoints, 43), 13);
        assert_eq!(start_of(5, 10, &saved.checkpoints, 41), 10);
        assert_eq!(start_of(6, 3, &saved.checkpoints, 99), 3, "another group's");
        assert_eq!(
            start_of(5, u32::MAX - 1, &[(5, 1, 2), (5, 2, u32::MAX)], 9),
            2,
            "wrapping order"
        );
        p.store([(5, 13, false)].into_iter());
        assert_eq!(
            read(d.path(), 4).checkpoints,
            vec![],
            "written out: no checkpoint left"
        );
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
