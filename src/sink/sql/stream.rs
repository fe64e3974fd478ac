//! The spool's stream id: a random 128-bit id created with the spool and kept in it, in the
//! file `fwlog.stream` (32 lowercase hex digits and a newline).
//!
//! A database row is keyed by (host, stream, seq): `seq` is the spool's sequence number, unique
//! only within one spool. A spool that is deleted and created again starts its numbers over;
//! its new stream id keeps its rows apart from the old spool's, so none is taken for a
//! duplicate and dropped.
//!
//! Invariants:
//! - Created once, by `fwlog run` under the spool's lock, written to a temporary name, synced and
//!   renamed into place, so a crash leaves either no file or a whole one.
//! - Never followed through a symlink and never read from anything but a regular file: the
//!   directory is opened once and the file is reached with `openat(O_NOFOLLOW)`.
//! - A file that is there but does not hold an id is an error, never replaced: a new id would
//!   make the database store every replayed row a second time.
//! - `fwlog replay` only reads it.

use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// The file's name inside the spool directory.
pub const NAME: &str = "fwlog.stream";
const NAME_C: &CStr = c"fwlog.stream";
const TMP_C: &CStr = c"fwlog.stream.tmp";

/// A stream id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamId(pub [u8; 16]);

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{dir}/{NAME}: {source}")]
    Io {
        dir: String,
        #[source]
        source: io::Error,
    },
    #[error("{dir}/{NAME}: not a stream id (expected 32 hex digits); move it aside only if this spool is new")]
    Invalid { dir: String },
    #[error("{dir}/{NAME}: missing (fwlog run creates it when it has a database output)")]
    Missing { dir: String },
    #[error("cannot get random bytes for a stream id: {0}")]
    Random(io::Error),
}

impl StreamId {
    /// A new random id (getrandom(2)).
    pub fn random() -> Result<StreamId, StreamError> {
        let mut b = [0u8; 16];
        let mut got = 0;
        while got < b.len() {
            // SAFETY: the pointer and length describe the unfilled tail of `b`.
            let n = unsafe { libc::getrandom(b[got..].as_mut_ptr().cast(), b.len() - got, 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(StreamError::Random(e));
            }
            got += n as usize;
        }
        Ok(StreamId(b))
    }

    /// 32 lowercase hex digits.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parse the file's text: 32 lowercase hex digits, optionally followed by a newline.
    pub fn parse(s: &[u8]) -> Option<StreamId> {
        let s = s.strip_suffix(b"\n").unwrap_or(s);
        if s.len() != 32 {
            return None;
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut id = [0u8; 16];
        for (i, pair) in s.chunks(2).enumerate() {
            id[i] = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Some(StreamId(id))
    }
}

fn cerr(dir: &Path) -> impl Fn(io::Error) -> StreamError + '_ {
    move |source| StreamError::Io {
        dir: dir.display().to_string(),
        source,
    }
}

fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in the path"))?;
    // SAFETY: a valid NUL-terminated path; the returned descriptor is owned below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn openat(dir: &OwnedFd, name: &CStr, flags: i32) -> io::Result<File> {
    let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
    // SAFETY: a valid directory descriptor and NUL-terminated name; the mode is used only
    // with O_CREAT.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, 0o600) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Read the id from an open directory; `Ok(None)` when there is no file.
fn read_at(dir: &OwnedFd, path: &Path) -> Result<Option<StreamId>, StreamError> {
    let mut f = match openat(dir, NAME_C, libc::O_RDONLY) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(cerr(path)(e)),
    };
    let invalid = || StreamError::Invalid {
        dir: path.display().to_string(),
    };
    if !f.metadata().map_err(cerr(path))?.is_file() {
        return Err(invalid());
    }
    let mut buf = Vec::with_capacity(40);
    Read::by_ref(&mut f)
        .take(64)
        .read_to_end(&mut buf)
        .map_err(cerr(path))?;
    StreamId::parse(&buf).map(Some).ok_or_else(invalid)
}

/// The spool's id, read-only (`fwlog replay`).
pub fn read(dir: &Path) -> Result<StreamId, StreamError> {
    let d = open_dir(dir).map_err(cerr(dir))?;
    read_at(&d, dir)?.ok_or_else(|| StreamError::Missing {
        dir: dir.display().to_string(),
    })
}

/// The spool's id, created on first use (`fwlog run`, holding the spool's lock).
pub fn open_or_create(dir: &Path) -> Result<StreamId, StreamError> {
    let d = open_dir(dir).map_err(cerr(dir))?;
    if let Some(id) = read_at(&d, dir)? {
        return Ok(id);
    }
    let id = StreamId::random()?;
    // A temporary file left by a crash during creation: remove it (unlinkat never follows).
    // SAFETY: valid directory descriptor and NUL-terminated name.
    unsafe { libc::unlinkat(d.as_raw_fd(), TMP_C.as_ptr(), 0) };
    let mut f =
        openat(&d, TMP_C, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL).map_err(cerr(dir))?;
    f.write_all(format!("{}\n", id.hex()).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(cerr(dir))?;
    // SAFETY: valid directory descriptors and NUL-terminated names.
    let r = unsafe {
        libc::renameat(
            d.as_raw_fd(),
            TMP_C.as_ptr(),
            d.as_raw_fd(),
            NAME_C.as_ptr(),
        )
    };
    if r != 0 {
        return Err(cerr(dir)(io::Error::last_os_error()));
    }
    // SAFETY: a valid descriptor.
    if unsafe { libc::fsync(d.as_raw_fd()) } != 0 {
        return Err(cerr(dir)(io::Error::last_os_error()));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_read_back() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(read(d.path()), Err(StreamError::Missing { .. })));
        let a = open_or_create(d.path()).unwrap();
        let b = open_or_create(d.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(read(d.path()).unwrap(), a);
        let text = std::fs::read_to_string(d.path().join(NAME)).unwrap();
        assert_eq!(text, format!("{}\n", a.hex()));
        assert!(!d.path().join("fwlog.stream.tmp").exists());
        let other = tempfile::tempdir().unwrap();
        assert_ne!(open_or_create(other.path()).unwrap(), a, "random per spool");
    }

    #[test]
    fn a_damaged_file_is_an_error_never_replaced() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(NAME), "not an id\n").unwrap();
        let e = open_or_create(d.path()).unwrap_err();
        assert!(matches!(e, StreamError::Invalid { .. }), "{e}");
        assert_eq!(
            std::fs::read_to_string(d.path().join(NAME)).unwrap(),
            "not an id\n"
        );
        std::fs::write(d.path().join(NAME), "ABCDEF00000000000000000000000000\n").unwrap();
        assert!(open_or_create(d.path()).is_err(), "uppercase is not ours");
    }

    #[test]
    fn a_planted_symlink_or_fifo_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("elsewhere");
        std::fs::write(&target, "0123456789abcdef0123456789abcdef\n").unwrap();
        std::os::unix::fs::symlink(&target, d.path().join(NAME)).unwrap();
        assert!(open_or_create(d.path()).is_err());
        assert!(read(d.path()).is_err());
        std::fs::remove_file(d.path().join(NAME)).unwrap();
        let c = std::ffi::CString::new(d.path().join(NAME).as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            open_or_create(d.path()),
            Err(StreamError::Invalid { .. })
        ));
    }

    #[test]
    fn a_stale_temporary_file_does_not_block_creation() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("fwlog.stream.tmp"), "half").unwrap();
        let id = open_or_create(d.path()).unwrap();
        assert_eq!(read(d.path()).unwrap(), id);
    }
}
