//! `--user NAME`: after fwlog has bound its sockets, set its buffer sizes and opened its files
//! as root, it becomes NAME with no capabilities left.
//!
//! Order matters. The NFLOG socket needs CAP_NET_ADMIN to bind and SO_RCVBUFFORCE needs it to
//! size the buffer, so both happen first; the open file descriptors stay usable after the
//! switch. What fwlog will create later (spool segments, the output file after logrotate's
//! rename) must be creatable by NAME, so the spool directory and files are handed to NAME first
//! (without acting on anything NAME could have planted there: see [`hand_over_dir`]).
//! The switch happens before any other thread exists: capabilities are per thread.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::dirfd;

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Look up a user by name (or numeric uid) in the password database.
pub fn lookup(name: &str) -> Result<User, String> {
    let c = CString::new(name).map_err(|_| format!("--user {name:?}: not a user name"))?;
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the sizes given; getpwnam_r fills pw and buf.
    let rc =
        unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc == 0 && !out.is_null() {
        return Ok(User {
            name: name.to_string(),
            uid: pw.pw_uid,
            gid: pw.pw_gid,
        });
    }
    if let Ok(uid) = name.parse::<u32>() {
        // SAFETY: as above.
        let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
        let gid = if rc == 0 && !out.is_null() {
            pw.pw_gid
        } else {
            uid
        };
        return Ok(User {
            name: name.to_string(),
            uid,
            gid,
        });
    }
    Err(format!("--user {name}: no such user"))
}

/// Give the spool directory (open as `dir`, already checked by
/// [`crate::dirfd::check_spool_dir`]), what is directly inside it and one level below, to
/// `user`. The directory belongs to `user` from the previous run, so every name in it may have
/// been planted: only real directories and regular files with a single link are handed over,
/// each through its own `O_NOFOLLOW` fd (see [`crate::dirfd`]); symlinks, FIFOs, devices and
/// hard-linked files are left as they are.
pub fn hand_over_dir(dir: &OwnedFd, path: &Path, user: &User) -> Result<(), String> {
    hand_over_level(dir, path, user, 1)
}

fn hand_over_level(dir: &OwnedFd, path: &Path, user: &User, depth: u32) -> Result<(), String> {
    let give = |fd: &OwnedFd, p: &Path| {
        dirfd::fchown(fd, user.uid, user.gid)
            .map_err(|e| format!("cannot give {} to user {}: {e}", p.display(), user.name))
    };
    give(dir, path)?;
    let names = dirfd::names(dir).map_err(|e| format!("{}: {e}", path.display()))?;
    for name in names {
        let rel = Path::new(std::ffi::OsStr::from_bytes(name.to_bytes()));
        let p = path.join(rel);
        // O_RDONLY never blocks on a FIFO with O_NONBLOCK; ELOOP is a symlink: left alone.
        let fd = match dirfd::open_at(Some(dir), rel, libc::O_RDONLY, 0) {
            Ok(fd) => fd,
            Err(_) => continue,
        };
        let st = dirfd::fstat(&fd).map_err(|e| format!("{}: {e}", p.display()))?;
        match dirfd::kind(&st) {
            dirfd::Kind::File => give(&fd, &p)?,
            dirfd::Kind::Dir if depth > 0 => hand_over_level(&fd, &p, user, depth - 1)?,
            _ => {}
        }
    }
    Ok(())
}

/// Give an output file to `user` so that it can reopen it after SIGHUP. Only a regular file with
/// one link, reached without following a symlink, is handed over; anything else (a FIFO,
/// /dev/null, a link) is left alone.
pub fn hand_over_file(path: &Path, user: &User) -> Result<(), String> {
    let Ok(fd) = dirfd::open_at(None, path, libc::O_RDONLY, 0) else {
        return Ok(());
    };
    let st = dirfd::fstat(&fd).map_err(|e| format!("{}: {e}", path.display()))?;
    if dirfd::kind(&st) == dirfd::Kind::File {
        dirfd::fchown(&fd, user.uid, user.gid)
            .map_err(|e| format!("cannot give {} to user {}: {e}", path.display(), user.name))?;
    }
    Ok(())
}

/// Become `user`: supplementary groups, gid, uid, in that order, then make sure no capability
/// survived and none can be regained.
pub fn become_user(user: &User) -> Result<(), String> {
    let err = |what: &str| {
        format!(
            "cannot switch to user {}: {what}: {}",
            user.name,
            std::io::Error::last_os_error()
        )
    };
    let gid = user.gid as libc::gid_t;
    // SAFETY: plain system calls on integers and a one-element array.
    unsafe {
        if libc::setgroups(1, &gid) != 0 {
            return Err(err("setgroups"));
        }
        if libc::setresgid(gid, gid, gid) != 0 {
            return Err(err("setresgid"));
        }
        if libc::setresuid(user.uid, user.uid, user.uid) != 0 {
            return Err(err("setresuid"));
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(err("PR_SET_NO_NEW_PRIVS"));
        }
    }
    // From root to a non-zero uid the kernel clears the permitted and effective sets; check.
    let status = std::fs::read_to_string("/proc/thread-self/status")
        .map_err(|e| format!("cannot check capabilities after --user: {e}"))?;
    for key in ["CapEff:", "CapPrm:", "CapAmb:"] {
        let v = status
            .lines()
            .find(|l| l.starts_with(key))
            .map(|l| l[key.len()..].trim().to_string())
            .unwrap_or_default();
        if user.uid != 0 && u64::from_str_radix(&v, 16).unwrap_or(1) != 0 {
            return Err(format!(
                "capabilities left after switching to {}: {key} {v}",
                user.name
            ));
        }
    }
    Ok(())
}
