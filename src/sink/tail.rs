//! What fwlog may cut from the end of an output file when it opens it.
//!
//! A crash (kill -9 between the pages of a large write) can leave an output file ending in part
//! of a line; those packets were not acknowledged and are printed again, so the fragment only
//! makes one line of the file invalid. fwlog cuts it only when it knows it wrote it:
//!
//! - Before each batch, the sink records where the batch starts in the file's extended attribute
//!   `user.fwlog.batch` (decimal byte offset). At open, a tail without a final newline is cut
//!   back to the last newline at or after that offset, never before it: the bytes behind the
//!   offset were all written (and acknowledged) before that batch began.
//! - Nothing is cut when the attribute is missing or larger than the file (a file fwlog did not
//!   write, or one replaced since), when the path is a symbolic link, or when the file is not a
//!   regular file. fwlog then adds one newline, so that its first line does not run into the
//!   foreign fragment, and says so once on stderr.
//! - Where the filesystem keeps no user attributes, no tail is ever cut (only terminated).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

const ATTR: &std::ffi::CStr = c"user.fwlog.batch";

/// The batch start fwlog recorded on this file, if any.
pub fn recorded_start(f: &File) -> Option<u64> {
    let mut buf = [0u8; 24];
    // SAFETY: buf is valid for its length; fgetxattr writes at most that much.
    let n = unsafe {
        libc::fgetxattr(
            f.as_raw_fd(),
            ATTR.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n <= 0 {
        return None;
    }
    std::str::from_utf8(&buf[..n as usize]).ok()?.parse().ok()
}

/// Record that a batch starts at `offset`. Returns false where the filesystem cannot keep the
/// attribute (then no tail will ever be cut on this file).
pub fn record_start(f: &File, offset: u64) -> bool {
    let v = offset.to_string();
    // SAFETY: v is valid for its length for the duration of the call.
    let r = unsafe { libc::fsetxattr(f.as_raw_fd(), ATTR.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    r == 0
}

/// What [`settle`] did to the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The file was empty or ended in a newline.
    Clean,
    /// A fragment fwlog had left was cut (bytes removed).
    Cut(u64),
    /// A fragment fwlog did not write (or cannot prove it wrote) was ended with a newline.
    Terminated,
}

/// Make the end of the regular file `f` (opened from `path` with O_APPEND) ready for whole
/// lines, by the policy in the module docs.
pub fn settle(f: &File, path: &Path) -> io::Result<Settled> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(Settled::Clean);
    }
    let mut last = [0u8; 1];
    f.read_exact_at(&mut last, len - 1)?;
    if last[0] == b'\n' {
        return Ok(Settled::Clean);
    }
    let not_a_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file());
    if let Some(start) = recorded_start(f).filter(|&s| s < len && not_a_link) {
        let keep = last_line_end(f, start, len)?;
        f.set_len(keep)?;
        return Ok(Settled::Cut(len - keep));
    }
    let mut w = f;
    std::io::Write::write_all(&mut w, b"\n")?;
    Ok(Settled::Terminated)
}

/// One past the last newline in `[start, len)`, or `start` if there is none.
fn last_line_end(f: &File, start: u64, len: u64) -> io::Result<u64> {
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > start {
        let from = end.saturating_sub(buf.len() as u64).max(start);
        let chunk = &mut buf[..(end - from) as usize];
        f.read_exact_at(chunk, from)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(from + i as u64 + 1);
        }
        end = from;
    }
    Ok(start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn open(p: &Path) -> File {
        OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(p)
            .unwrap()
    }

    #[test]
    fn only_the_tail_of_a_recorded_batch_is_cut() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        std::fs::write(&p, b"one\ntwo\nthr").unwrap();
        let f = open(&p);
        if !record_start(&f, 8) {
            eprintln!("SKIP: no user xattrs on this filesystem");
            return;
        }
        assert_eq!(settle(&f, &p).unwrap(), Settled::Cut(3));
        assert_eq!(std::fs::read(&p).unwrap(), b"one\ntwo\n");
        // A batch of whole lines and a fragment: the whole lines stay.
        std::fs::write(&p, b"one\ntwo\nthree\nfo").unwrap();
        let f = open(&p);
        record_start(&f, 4);
        assert_eq!(settle(&f, &p).unwrap(), Settled::Cut(2));
        assert_eq!(std::fs::read(&p).unwrap(), b"one\ntwo\nthree\n");
    }

    #[test]
    fn a_file_fwlog_did_not_write_is_never_cut() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("victim.dat");
        std::fs::write(&p, b"l1\ntail").unwrap();
        let f = open(&p);
        assert_eq!(settle(&f, &p).unwrap(), Settled::Terminated);
        assert_eq!(std::fs::read(&p).unwrap(), b"l1\ntail\n");
        // A link to a file fwlog did write is not cut through either.
        let q = d.path().join("ours");
        std::fs::write(&q, b"a\nfrag").unwrap();
        let link = d.path().join("link.log");
        std::os::unix::fs::symlink(&q, &link).unwrap();
        let f = open(&link);
        record_start(&f, 2);
        assert_eq!(settle(&f, &link).unwrap(), Settled::Terminated);
        assert_eq!(std::fs::read(&q).unwrap(), b"a\nfrag\n");
        // A recorded start beyond the end (the file was replaced) is not trusted.
        std::fs::write(&p, b"xy").unwrap();
        let f = open(&p);
        record_start(&f, 100);
        assert_eq!(settle(&f, &p).unwrap(), Settled::Terminated);
    }
}
