//! What fwlog may cut from the end of an output file when it opens it.
//!
//! A crash (kill -9 between the pages of a large write) can leave an output file ending in part
//! of a line; a power cut while batches are written and not yet synced (a backlog drains in
//! unsynced spans of up to 32 MiB, live traffic in spans of up to 100 ms: `pipeline::commit`)
//! can also leave zero-filled holes or torn pages in the middle of those batches, followed by
//! whole lines. None of those packets were acknowledged and all are printed again. fwlog cuts
//! such damage only when it knows it wrote the bytes:
//!
//! - Before each batch, the sink records where the batch starts in the file's extended attribute
//!   `user.fwlog.batch` (decimal byte offset); while batches are unsynced it stays at the first
//!   of them. The bytes behind the offset were all written, synced and acknowledged before it.
//! - At open, the region after that offset is read in bounded chunks for a NUL byte, which no
//!   text output ever contains (every format escapes control bytes; only `\n` ends a line). The
//!   file is cut from the start of the line that holds the first NUL (never before the offset):
//!   nothing after it was acknowledged, since spans are synced in order and the offset is at the
//!   oldest unsynced batch. Without a NUL, a tail without a final newline is cut back to the
//!   last newline at or after the offset.
//! - Nothing is cut when the attribute is missing or larger than the file (a file fwlog did not
//!   write, or one replaced since), when the path is a symbolic link, or when the file is not a
//!   regular file; a NUL anywhere is then left alone. fwlog adds one newline after a tail that
//!   does not end in one, so that its first line does not run into the foreign fragment, and
//!   says so once on stderr.
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
    /// The file was empty or ended in a newline, with no damage after the recorded batch start.
    Clean,
    /// A partial last line or a torn region fwlog had left was cut (bytes removed).
    Cut(u64),
    /// A fragment fwlog did not write (or cannot prove it wrote) was ended with a newline.
    Terminated,
}

/// Chunk size for reading the region after the recorded batch start (bounded memory however
/// large the unsynced region is).
const CHUNK: usize = 64 * 1024;

/// Make the end of the regular file `f` (opened from `path` with O_APPEND) ready for whole
/// lines, by the policy in the module docs.
pub fn settle(f: &File, path: &Path) -> io::Result<Settled> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(Settled::Clean);
    }
    let not_a_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file());
    let ours = recorded_start(f).filter(|&s| s < len && not_a_link);
    if let Some(start) = ours {
        if let Some(nul) = first_nul(f, start, len)? {
            let keep = last_line_end(f, start, nul)?;
            f.set_len(keep)?;
            return Ok(Settled::Cut(len - keep));
        }
    }
    let mut last = [0u8; 1];
    f.read_exact_at(&mut last, len - 1)?;
    if last[0] == b'\n' {
        return Ok(Settled::Clean);
    }
    if let Some(start) = ours {
        let keep = last_line_end(f, start, len)?;
        f.set_len(keep)?;
        return Ok(Settled::Cut(len - keep));
    }
    let mut w = f;
    std::io::Write::write_all(&mut w, b"\n")?;
    Ok(Settled::Terminated)
}

/// The offset of the first NUL byte in `[start, len)`, if any.
fn first_nul(f: &File, start: u64, len: u64) -> io::Result<Option<u64>> {
    let mut buf = vec![0u8; CHUNK.min((len - start) as usize)];
    let mut at = start;
    while at < len {
        let chunk = &mut buf[..((len - at) as usize).min(CHUNK)];
        f.read_exact_at(chunk, at)?;
        if let Some(i) = chunk.iter().position(|&b| b == 0) {
            return Ok(Some(at + i as u64));
        }
        at += chunk.len() as u64;
    }
    Ok(None)
}

/// One past the last newline in `[start, len)`, or `start` if there is none.
fn last_line_end(f: &File, start: u64, len: u64) -> io::Result<u64> {
    let mut end = len;
    let mut buf = vec![0u8; CHUNK.min((len - start) as usize)];
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

    /// `p` holding `bytes`, opened, with a batch recorded as starting at `at`; `None` (and a
    /// SKIP line) where the filesystem keeps no user xattrs.
    fn marked(p: &Path, bytes: &[u8], at: u64) -> Option<File> {
        std::fs::write(p, bytes).unwrap();
        let f = open(p);
        if !record_start(&f, at) {
            eprintln!("SKIP: no user xattrs on this filesystem");
            return None;
        }
        Some(f)
    }

    #[test]
    fn only_the_tail_of_a_recorded_batch_is_cut() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        let Some(f) = marked(&p, b"one\ntwo\nthr", 8) else {
            return;
        };
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

    #[test]
    fn a_hole_after_the_recorded_start_is_cut_from_its_lines_start() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        // Acknowledged "one\n", then unsynced batches: a whole line, a line torn by a
        // zero-filled page, and whole lines written after it.
        let Some(f) = marked(&p, b"one\ntwo\nth\0\0\0ee\nfour\nfive\n", 4) else {
            return;
        };
        assert_eq!(settle(&f, &p).unwrap(), Settled::Cut(18));
        assert_eq!(std::fs::read(&p).unwrap(), b"one\ntwo\n");
        // A hole right at the recorded start, far beyond the first chunk read.
        let mut v = b"acked\n".repeat(20_000);
        let mark = v.len() as u64;
        v.extend_from_slice(&b"line\n".repeat(30_000));
        let hole = v.len() as u64;
        v.extend_from_slice(&[0u8; 4096]);
        v.extend_from_slice(b"whole\n");
        std::fs::write(&p, &v).unwrap();
        let f = open(&p);
        record_start(&f, mark);
        assert_eq!(settle(&f, &p).unwrap(), Settled::Cut(4096 + 6));
        assert_eq!(std::fs::metadata(&p).unwrap().len(), hole);
        // A hole in the first line after the start cuts back to the start, not before it.
        std::fs::write(&p, b"one\n\0\0two\n").unwrap();
        let f = open(&p);
        record_start(&f, 4);
        assert_eq!(settle(&f, &p).unwrap(), Settled::Cut(6));
        assert_eq!(std::fs::read(&p).unwrap(), b"one\n");
    }

    #[test]
    fn a_nul_before_the_recorded_start_or_without_one_is_never_cut() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        let before = b"o\0e\ntwo\nthree\n";
        let Some(f) = marked(&p, before, 4) else {
            return;
        };
        assert_eq!(settle(&f, &p).unwrap(), Settled::Clean);
        assert_eq!(std::fs::read(&p).unwrap(), before);
        // No attribute: a NUL anywhere stays, only a missing newline is added.
        let q = d.path().join("foreign");
        std::fs::write(&q, b"a\nb\0c").unwrap();
        let f = open(&q);
        assert_eq!(settle(&f, &q).unwrap(), Settled::Terminated);
        assert_eq!(std::fs::read(&q).unwrap(), b"a\nb\0c\n");
        // Through a symbolic link, a recorded start does not allow cutting a hole either.
        let link = d.path().join("link.log");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        std::fs::write(&p, b"one\nt\0o\n").unwrap();
        let f = open(&link);
        record_start(&f, 4);
        assert_eq!(settle(&f, &link).unwrap(), Settled::Clean);
        assert_eq!(std::fs::read(&p).unwrap(), b"one\nt\0o\n");
    }

    #[test]
    fn a_clean_file_is_untouched() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        let text = b"one\ntwo\nthree\n".repeat(10_000);
        let Some(f) = marked(&p, &text, 8) else {
            return;
        };
        assert_eq!(settle(&f, &p).unwrap(), Settled::Clean);
        assert_eq!(std::fs::read(&p).unwrap(), text);
        // The recorded start at the very end (everything synced) is clean too.
        record_start(&f, text.len() as u64);
        assert_eq!(settle(&f, &p).unwrap(), Settled::Clean);
        assert_eq!(std::fs::read(&p).unwrap(), text);
    }
}
