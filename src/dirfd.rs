//! Acting as root inside a directory a less privileged user can write, without acting on what
//! that user planted there.
//!
//! Under `fwlog run --user NAME` the spool directory belongs to NAME, so any name in it may be a
//! symbolic link, a FIFO, a device node or a hard link to a file NAME could not otherwise touch.
//! Invariants of everything here:
//! - the directory itself is opened once with `O_DIRECTORY | O_NOFOLLOW` and checked on that fd
//!   (owner, mode); names in it are opened relative to that fd with `O_NOFOLLOW`, so a symlink
//!   is never followed (`ELOOP`), and with `O_NONBLOCK`, so a FIFO never blocks the open;
//! - what is opened is checked on the fd (`fstat`), never by path: only a regular file with one
//!   link (not a hard link to a file elsewhere) or a directory is acted on;
//! - ownership is changed with `fchown` on that fd, never by path.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why a spool directory is refused before anything in it is touched.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("{}: is a symbolic link; fwlog uses only a real directory here", .0.display())]
    Link(PathBuf),
    #[error("{}: not a directory", .0.display())]
    NotDir(PathBuf),
    #[error("{}: owned by uid {uid}, not by root, fwlog's user or the --user account (run with --user for that account)", .path.display())]
    Owner { path: PathBuf, uid: u32 },
    #[error("{}: writable by other users (mode {mode:04o}); use chmod o-w,g-w", .path.display())]
    Mode { path: PathBuf, mode: u32 },
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
}

fn cstr(name: &Path) -> io::Result<CString> {
    CString::new(name.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `fstat` on an open fd.
pub fn fstat(fd: &impl AsRawFd) -> io::Result<libc::stat> {
    // SAFETY: st is plain old data that fstat fills; the fd is valid for the call.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// Open `name` relative to `dir` (`None`: the current directory) with O_NOFOLLOW, O_NONBLOCK
/// and O_CLOEXEC added to `flags`.
pub fn open_at(
    dir: Option<&OwnedFd>,
    name: &Path,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    let at = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    let flags = flags | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: c is a valid NUL-terminated string; openat returns a new fd we then own.
    let fd = cvt(unsafe { libc::openat(at, c.as_ptr(), flags, mode as libc::c_uint) })?;
    // SAFETY: fd was just returned by openat and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open a directory without following a symlink at its last component.
pub fn open_dir(dir: Option<&OwnedFd>, name: &Path) -> io::Result<OwnedFd> {
    open_at(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

/// What kind of thing an fd refers to, for the policy checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file with exactly one link.
    File,
    /// A regular file with more than one name: possibly a hard link to a file elsewhere.
    HardLinked,
    Dir,
    /// FIFO, socket, device.
    Other,
}

pub fn kind(st: &libc::stat) -> Kind {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG if st.st_nlink == 1 => Kind::File,
        libc::S_IFREG => Kind::HardLinked,
        libc::S_IFDIR => Kind::Dir,
        _ => Kind::Other,
    }
}

/// Open (creating with `mode` if missing) the regular file `name` in `dir` for reading and
/// writing. A symlink, FIFO, device or hard-linked file there is refused with a plain error.
pub fn open_private_file(dir: &OwnedFd, name: &str, mode: libc::mode_t) -> io::Result<File> {
    let fd = open_at(
        Some(dir),
        Path::new(name),
        libc::O_RDWR | libc::O_CREAT,
        mode,
    )
    .map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => io::Error::new(e.kind(), "is a symbolic link; not followed"),
        _ => e,
    })?;
    match kind(&fstat(&fd)?) {
        Kind::File => Ok(File::from(fd)),
        Kind::HardLinked => Err(io::Error::other("has more than one hard link; not used")),
        Kind::Dir | Kind::Other => Err(io::Error::other("is not a regular file; not used")),
    }
}

/// Open the spool directory `path` and check it before anything in it is read or changed: a
/// real directory (not a symlink), owned by root, by the effective user or by `user_uid`, and
/// not writable by other users (group write only for group root or `user_gid`).
pub fn check_spool_dir(path: &Path, user: Option<(u32, u32)>) -> Result<OwnedFd, DirError> {
    let io = |source| DirError::Io {
        path: path.to_path_buf(),
        source,
    };
    let fd = open_dir(None, path).map_err(|e| match e.raw_os_error() {
        // With O_DIRECTORY, a symlink at the last component gives ENOTDIR, not ELOOP.
        Some(libc::ELOOP) => DirError::Link(path.to_path_buf()),
        Some(libc::ENOTDIR)
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) =>
        {
            DirError::Link(path.to_path_buf())
        }
        Some(libc::ENOTDIR) => DirError::NotDir(path.to_path_buf()),
        _ => io(e),
    })?;
    let st = fstat(&fd).map_err(io)?;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let ok_owner = st.st_uid == 0 || st.st_uid == euid || user.is_some_and(|u| u.0 == st.st_uid);
    if !ok_owner {
        return Err(DirError::Owner {
            path: path.to_path_buf(),
            uid: st.st_uid,
        });
    }
    let mode = st.st_mode & 0o7777;
    // SAFETY: getegid has no preconditions.
    let egid = unsafe { libc::getegid() };
    let group_ok = st.st_gid == 0 || st.st_gid == egid || user.is_some_and(|u| u.1 == st.st_gid);
    if mode & 0o002 != 0 || (mode & 0o020 != 0 && !group_ok) {
        return Err(DirError::Mode {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(fd)
}

/// True when root must not trust the name `path` in its directory: another user can write the
/// directory (it is not root's, or it is group or world writable), so the name may be a link or
/// a hard link that user planted. Always false when not running as root.
pub fn planted_by_others(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return false;
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::metadata(parent).is_ok_and(|m| m.uid() != 0 || m.mode() & 0o022 != 0)
}

/// Names in an open directory (without `.` and `..`), read through the fd.
pub fn names(dir: &OwnedFd) -> io::Result<Vec<CString>> {
    // fdopendir takes ownership of the fd it is given: hand it a duplicate.
    let dup = dir.try_clone()?;
    let raw = std::os::fd::IntoRawFd::into_raw_fd(dup);
    // SAFETY: raw is a valid directory fd that fdopendir now owns (closed by closedir).
    let d = unsafe { libc::fdopendir(raw) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so raw is still ours to close.
        unsafe { libc::close(raw) };
        return Err(e);
    }
    let mut out = Vec::new();
    loop {
        // SAFETY: d is a valid DIR*; the entry is copied out before the next readdir.
        let ent = unsafe { libc::readdir(d) };
        if ent.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated within the entry.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            out.push(name.to_owned());
        }
    }
    // SAFETY: d came from fdopendir and is closed once.
    unsafe { libc::closedir(d) };
    Ok(out)
}

/// `fchown` an open fd.
pub fn fchown(fd: &impl AsRawFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain system call on a valid fd.
    cvt(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) }).map(|_| ())
}

/// Run `f` with the filesystem identity of `uid`/`gid` (Linux `setfsuid`): every path it opens,
/// creates, renames or removes is checked as that user, and files it creates are that user's,
/// while the process keeps its other privileges. Root's file capabilities (CAP_DAC_OVERRIDE,
/// CAP_CHOWN, CAP_FOWNER) are dropped from the effective set while the fsuid is not 0 and come
/// back with it. Per thread: call only while no other thread could act on root's behalf.
pub fn as_fs_user<T>(user: Option<(u32, u32)>, f: impl FnOnce() -> T) -> T {
    let Some((uid, gid)) = user else {
        return f();
    };
    // SAFETY: setfsgid/setfsuid change only this thread's filesystem ids; they return the
    // previous value, which is restored below.
    let (old_gid, old_uid) = unsafe { (libc::setfsgid(gid), libc::setfsuid(uid)) };
    let r = f();
    // SAFETY: as above.
    unsafe {
        libc::setfsuid(old_uid as libc::uid_t);
        libc::setfsgid(old_gid as libc::gid_t);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn planted_link_fifo_and_hard_link_are_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let fd = check_spool_dir(d.path(), None).unwrap();
        std::fs::write(d.path().join("target"), b"secret").unwrap();
        std::os::unix::fs::symlink(d.path().join("target"), d.path().join("link")).unwrap();
        std::fs::hard_link(d.path().join("target"), d.path().join("hard")).unwrap();
        let fifo = CString::new(d.path().join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid path string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        for (name, want) in [
            ("link", "symbolic link"),
            ("hard", "hard link"),
            ("fifo", "not a regular file"),
        ] {
            let e = open_private_file(&fd, name, 0o600).expect_err(name);
            assert!(e.to_string().contains(want), "{name}: {e}");
        }
        assert_eq!(std::fs::read(d.path().join("target")).unwrap(), b"secret");
        assert!(open_private_file(&fd, "new", 0o600).is_ok());
        let mut n: Vec<_> = names(&fd).unwrap();
        n.sort();
        assert_eq!(n.len(), 5);
    }

    #[test]
    fn spool_dir_that_is_a_link_or_writable_by_others_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&real, d.path().join("link")).unwrap();
        assert!(matches!(
            check_spool_dir(&d.path().join("link"), None),
            Err(DirError::Link(_))
        ));
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_spool_dir(&real, None).unwrap_err();
        assert!(e.to_string().contains("writable by other users"), "{e}");
    }
}
