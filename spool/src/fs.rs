//! The small filesystem interface the spool does all its I/O through.
//!
//! [`RealFs`] maps each call onto one Linux system call (`pwrite`, `pread`, `fdatasync`,
//! `ftruncate`, `fsync` of a directory, `flock`, ...). Tests substitute a simulated filesystem that
//! keeps only what was synced and can "crash" between any two calls; the spool's correctness
//! arguments are therefore stated only in terms of these calls:
//!
//! - data written with [`FsFile::write_at`] survives a power loss only after [`FsFile::sync_data`];
//! - a created, removed or renamed directory entry survives only after [`Fs::sync_dir`] on its
//!   parent directory;
//! - a process crash (kill -9) loses nothing that a call has returned from.
//!
//! The trait also supplies the wall clock ([`Fs::now`]) and file modification times
//! ([`Fs::modified`]): retention by age compares the two, and a simulated filesystem must be able
//! to move time forward without a test having to sleep.

use std::any::Any;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::SystemTime;

/// An open file.
pub trait FsFile: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; returns 0 at end of file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset` (extending the file as needed).
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// `fdatasync`: makes the written data (and the size) durable.
    fn sync_data(&self) -> io::Result<()>;
    /// `ftruncate`.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Current size.
    fn len(&self) -> io::Result<u64>;
    /// True if the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
    /// A regular file (not a symlink, FIFO, socket or device: those are never opened).
    pub is_file: bool,
}

/// Directory-level operations.
pub trait Fs: Send + Sync {
    /// Opens an existing file read-only.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Opens an existing file read-write (never creates).
    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Creates a new file read-write; fails if it exists.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Creates a directory; `Ok(false)` if it already existed.
    fn create_dir(&self, path: &Path) -> io::Result<bool>;
    /// Lists a directory (without `.` and `..`).
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Renames a file (same filesystem).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries durable (`fsync` on the directory).
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Takes an exclusive, non-blocking lock on `path`, creating it if needed. The lock lasts as
    /// long as the returned guard. `ErrorKind::WouldBlock` means someone else holds it.
    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn Any + Send + Sync>>;
    /// Last modification time of a file (`st_mtime`, without following a symlink): when its last
    /// byte was written.
    fn modified(&self, path: &Path) -> io::Result<SystemTime>;
    /// The wall clock, in the same terms as [`modified`](Self::modified).
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// O_NONBLOCK so that a FIFO planted under a spool name cannot make `open` hang (it has no
/// effect on regular files); O_NOFOLLOW so that a symlink is not followed.
const OPEN_FLAGS: i32 = libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK;

/// Only regular files are spool files.
fn regular(f: File) -> io::Result<Box<dyn FsFile>> {
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    Ok(Box::new(RealFile(f)))
}

/// The directory holding `path`, opened with O_NOFOLLOW, and the last component of `path`.
fn parent_fd(path: &Path) -> io::Result<(File, std::ffi::CString)> {
    use std::os::unix::ffi::OsStrExt;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(parent)?;
    let name = std::ffi::CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in a file name"))?;
    Ok((dir, name))
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

struct RealFile(File);

impl FsFile for RealFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            match self.0.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

impl Fs for RealFs {
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        regular(
            OpenOptions::new()
                .read(true)
                .custom_flags(OPEN_FLAGS)
                .open(path)?,
        )
    }
    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        regular(
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(OPEN_FLAGS)
                .open(path)?,
        )
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        Ok(Box::new(RealFile(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)?,
        )))
    }
    fn create_dir(&self, path: &Path) -> io::Result<bool> {
        match std::fs::create_dir(path) {
            Ok(()) => Ok(true),
            // A symlink under the name (planted by whoever can write the spool) is not a
            // directory: it is an error, never followed.
            Err(e)
                if e.kind() == io::ErrorKind::AlreadyExists
                    && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) =>
            {
                Ok(false)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a directory (a symbolic link is not followed)",
            )),
            Err(e) => Err(e),
        }
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(path)? {
            let e = e?;
            let t = e.file_type()?;
            // Names that are not UTF-8 cannot be ours; report them lossily as foreign.
            out.push(DirEntry {
                name: e.file_name().to_string_lossy().into_owned(),
                is_dir: t.is_dir(),
                is_file: t.is_file(),
            });
        }
        Ok(out)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        // Relative to the parent directories opened without following a symlink at their last
        // component, so a link planted as `quarantine` cannot redirect the move.
        let (fd_from, n_from) = parent_fd(from)?;
        let (fd_to, n_to) = parent_fd(to)?;
        // SAFETY: valid fds and NUL-terminated names for the duration of the call.
        let r = unsafe {
            libc::renameat(
                fd_from.as_raw_fd(),
                n_from.as_ptr(),
                fd_to.as_raw_fd(),
                n_to.as_ptr(),
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path)?;
        // SAFETY: flock on a valid, owned file descriptor; no memory is involved.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        // The lock is released when the file (the guard) is closed.
        Ok(Box::new(f))
    }
    fn modified(&self, path: &Path) -> io::Result<SystemTime> {
        std::fs::symlink_metadata(path)?.modified()
    }
}
