//! Pcap files on disk: opening without following symlinks, cutting a torn last record, and the
//! names of rotated files.
//!
//! Invariants:
//! - A file is appended to only if it is a regular file (never through a symlink: O_NOFOLLOW)
//!   that starts with exactly the header fwlog writes for this link type; anything else at the
//!   path is an error and is left untouched.
//! - On open, the records are walked by their headers; bytes after the last complete record
//!   (a crash during a write) are cut, so tcpdump never meets a torn record.
//! - Rotated files are `STEM-YYYYMMDDTHHMMSSZ[_NNN].EXT` beside the pattern (UTC start time;
//!   `_001`, `_002`, ... when several start within a second), so the names sort in the order
//!   the files were written (`ls`, shell globs); only names of that shape are ever deleted.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::pcap::write::SNAPLEN;

/// Open flags for every pcap file: never through a symlink, never block on a FIFO planted at
/// the path (it is refused right after, as not a regular file).
const FLAGS: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;

/// Mode of a file fwlog creates.
pub const MODE: u32 = 0o640;

fn ctx(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn refuse(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {why}; not appending to it", path.display()),
    )
}

fn check_regular(path: &Path, f: &File) -> io::Result<()> {
    let ft = f.metadata().map_err(|e| ctx(path, e))?.file_type();
    if !ft.is_file() || ft.is_fifo() {
        return Err(refuse(path, "not a regular file"));
    }
    Ok(())
}

/// Open `path` for appending (created 0640 if absent), check it is a pcap with `header`, cut a
/// torn last record. Returns the file and its length (header and complete records).
pub fn open_append(path: &Path, header: &[u8; 24]) -> io::Result<(File, u64)> {
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(MODE)
        .custom_flags(FLAGS)
        .open(path)
        .map_err(|e| ctx(path, e))?;
    check_regular(path, &f)?;
    let len = repair(path, &mut f, header)?;
    if len == 0 {
        f.write_all(header).map_err(|e| ctx(path, e))?;
        return Ok((f, 24));
    }
    Ok((f, len))
}

/// Create a new file (never an existing one) and write its header.
pub fn create(path: &Path, header: &[u8; 24]) -> io::Result<File> {
    let mut f = OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(MODE)
        .custom_flags(FLAGS)
        .open(path)?;
    if let Err(e) = f.write_all(header) {
        let _ = std::fs::remove_file(path);
        return Err(ctx(path, e));
    }
    Ok(f)
}

/// Check the header and cut bytes after the last complete record. Returns the length kept;
/// 0 for a file that is empty or holds only a prefix of our header (a crash right after
/// creating it), which is then emptied so the caller writes the header.
pub fn repair(path: &Path, f: &mut File, header: &[u8; 24]) -> io::Result<u64> {
    let len = f.metadata().map_err(|e| ctx(path, e))?.len();
    let mut head = vec![0u8; len.min(24) as usize];
    f.seek(SeekFrom::Start(0)).map_err(|e| ctx(path, e))?;
    f.read_exact(&mut head).map_err(|e| ctx(path, e))?;
    if head[..] != header[..head.len()] {
        return Err(refuse(
            path,
            "exists and is not a pcap file of this link type written by fwlog",
        ));
    }
    let keep = if len < 24 {
        0
    } else {
        complete_len(path, f, len)?
    };
    if keep < len {
        f.set_len(keep).map_err(|e| ctx(path, e))?;
        f.sync_data().map_err(|e| ctx(path, e))?;
        if keep > 0 {
            eprintln!(
                "fwlog: {}: removed a torn last record ({} bytes) left by a crash during a write; its packet is written again",
                path.display(),
                len - keep
            );
        }
    }
    Ok(keep)
}

/// The length of the header and every complete record, walking the record headers.
fn complete_len(path: &Path, f: &mut File, len: u64) -> io::Result<u64> {
    let mut r = io::BufReader::with_capacity(64 * 1024, &mut *f);
    r.seek(SeekFrom::Start(24)).map_err(|e| ctx(path, e))?;
    let mut pos = 24u64;
    let mut h = [0u8; 16];
    while pos + 16 <= len {
        r.read_exact(&mut h).map_err(|e| ctx(path, e))?;
        let caplen = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
        let end = pos + 16 + caplen as u64;
        // A length fwlog never writes is damage from here on: cut it like a torn record.
        if caplen > SNAPLEN || end > len {
            break;
        }
        r.seek_relative(caplen as i64).map_err(|e| ctx(path, e))?;
        pos = end;
    }
    Ok(pos)
}

/// `DIR/STEM` and `.EXT` of the pattern (`EXT` may be empty).
fn split(pattern: &Path) -> (PathBuf, String, String) {
    let dir = match pattern.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (dir, stem.to_string(), format!(".{ext}")),
        _ => (dir, name, String::new()),
    }
}

/// The name of a rotated file started at `stamp` (`YYYYMMDDTHHMMSSZ`), `n`-th in that second.
pub fn rotated_name(pattern: &Path, stamp: &str, n: u32) -> PathBuf {
    let (dir, stem, ext) = split(pattern);
    if n == 0 {
        dir.join(format!("{stem}-{stamp}{ext}"))
    } else {
        dir.join(format!("{stem}-{stamp}_{n:03}{ext}"))
    }
}

/// The current UTC time as a file-name stamp.
pub fn stamp_now() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

/// Sort key of a rotated file's name, or None for any other name.
fn rotated_key(name: &str, stem: &str, ext: &str) -> Option<(String, u32)> {
    let mid = name
        .strip_prefix(stem)?
        .strip_prefix('-')?
        .strip_suffix(ext)?;
    let (stamp, n) = match mid.split_once('_') {
        Some((s, n)) if n.len() == 3 => (s, n.parse().ok().filter(|&n: &u32| n > 0)?),
        Some(_) => return None,
        None => (mid, 0),
    };
    let b = stamp.as_bytes();
    let shape = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || i == 15 || c.is_ascii_digit());
    shape.then(|| (stamp.to_string(), n))
}

/// Every rotated file of the pattern that is a regular file (not a symlink), oldest first.
pub fn rotated_files(pattern: &Path) -> io::Result<Vec<PathBuf>> {
    let (dir, stem, ext) = split(pattern);
    let mut v = Vec::new();
    for e in std::fs::read_dir(&dir).map_err(|e| ctx(&dir, e))? {
        let e = e.map_err(|e| ctx(&dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(key) = rotated_key(&name, &stem, &ext) else {
            continue;
        };
        // DirEntry::file_type does not follow symlinks.
        if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
            v.push((key, e.path()));
        }
    }
    v.sort();
    Ok(v.into_iter().map(|(_, p)| p).collect())
}

/// Delete the oldest rotated files until `keep` remain; `current` is never deleted.
pub fn prune(pattern: &Path, keep: usize, current: &Path) -> io::Result<()> {
    let files = rotated_files(pattern)?;
    let excess = files.len().saturating_sub(keep);
    for p in files.iter().filter(|p| p.as_path() != current).take(excess) {
        std::fs::remove_file(p).map_err(|e| ctx(p, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::write::{file_header, push_record, LINKTYPE_NFLOG, LINKTYPE_RAW};

    #[test]
    fn names_round_trip_and_others_are_ignored() {
        let p = Path::new("/var/log/fw.pcap");
        assert_eq!(
            rotated_name(p, "20261205T181200Z", 0),
            PathBuf::from("/var/log/fw-20261205T181200Z.pcap")
        );
        assert_eq!(
            rotated_name(p, "20261205T181200Z", 2),
            PathBuf::from("/var/log/fw-20261205T181200Z_002.pcap")
        );
        assert_eq!(
            rotated_name(Path::new("cap"), "20261205T181200Z", 0),
            PathBuf::from("./cap-20261205T181200Z")
        );
        for (name, ok) in [
            ("fw-20261205T181200Z.pcap", true),
            ("fw-20261205T181200Z_003.pcap", true),
            ("fw-20261205T181200Z_000.pcap", false),
            ("fw-20261205T181200Z_3.pcap", false),
            ("fw-2026120XT181200Z.pcap", false),
            ("fw-20261205T181200Z.pcap.gz", false),
            ("fw.pcap", false),
            ("other-20261205T181200Z.pcap", false),
        ] {
            assert_eq!(rotated_key(name, "fw", ".pcap").is_some(), ok, "{name}");
        }
    }

    #[test]
    fn a_torn_last_record_is_cut_and_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.pcap");
        let h = file_header(LINKTYPE_NFLOG);
        let mut bytes = h.to_vec();
        push_record(&mut bytes, 1, 2, &[7u8; 40], 40);
        let whole = bytes.len() as u64;
        push_record(&mut bytes, 1, 3, &[8u8; 40], 40);
        // Every cut inside the second record leaves exactly the first.
        for cut in whole + 1..bytes.len() as u64 {
            std::fs::write(&path, &bytes[..cut as usize]).unwrap();
            let (_, len) = open_append(&path, &h).unwrap();
            assert_eq!(len, whole);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        }
        // A header cut short is finished; a different link type or a text file is refused.
        std::fs::write(&path, &h[..10]).unwrap();
        assert_eq!(open_append(&path, &h).unwrap().1, 24);
        assert_eq!(std::fs::read(&path).unwrap(), h);
        std::fs::write(&path, b"not a capture").unwrap();
        assert!(open_append(&path, &h).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"not a capture");
        std::fs::write(&path, file_header(LINKTYPE_RAW)).unwrap();
        let e = open_append(&path, &h).unwrap_err().to_string();
        assert!(e.contains("not a pcap file of this link type"), "{e}");
    }

    #[test]
    fn symlinks_and_fifos_are_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        std::fs::write(&target, b"precious").unwrap();
        let link = dir.path().join("a.pcap");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let h = file_header(LINKTYPE_NFLOG);
        assert!(open_append(&link, &h).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        let fifo = dir.path().join("f.pcap");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: c is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_append(&fifo, &h).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn prune_keeps_the_newest_and_only_touches_rotated_names() {
        let dir = tempfile::tempdir().unwrap();
        let pat = dir.path().join("fw.pcap");
        for (s, n) in [
            ("20261205T181200Z", 0),
            ("20261205T181200Z", 1),
            ("20261205T181201Z", 0),
        ] {
            std::fs::write(rotated_name(&pat, s, n), b"x").unwrap();
        }
        std::fs::write(dir.path().join("fw.pcap"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let cur = rotated_name(&pat, "20261205T181201Z", 0);
        prune(&pat, 2, &cur).unwrap();
        let left = rotated_files(&pat).unwrap();
        assert_eq!(left, vec![rotated_name(&pat, "20261205T181200Z", 1), cur]);
        assert!(dir.path().join("fw.pcap").exists() && dir.path().join("notes.txt").exists());
    }
}
