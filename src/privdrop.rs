//! `--user NAME`: after fwlog has bound its sockets, set its buffer sizes and opened its files
//! as root, it becomes NAME with no capabilities left.
//!
//! Order matters. The NFLOG socket needs CAP_NET_ADMIN to bind and SO_RCVBUFFORCE needs it to
//! size the buffer, so both happen first; the open file descriptors stay usable after the
//! switch. What fwlog will create later (spool segments, the output file after logrotate's
//! rename) must be creatable by NAME, so the spool directory and files are handed to NAME first.
//! The switch happens before any other thread exists: capabilities are per thread.

use std::ffi::CString;
use std::path::Path;

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

/// Give `path` (and, for a directory, what is directly inside it and one level below) to `user`.
pub fn hand_over(path: &Path, user: &User) -> Result<(), String> {
    let chown = |p: &Path| {
        std::os::unix::fs::lchown(p, Some(user.uid), Some(user.gid))
            .map_err(|e| format!("cannot give {} to user {}: {e}", p.display(), user.name))
    };
    chown(path)?;
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for e in entries.flatten() {
            let p = e.path();
            chown(&p)?;
            if p.is_dir() {
                if let Ok(inner) = std::fs::read_dir(&p) {
                    for f in inner.flatten() {
                        chown(&f.path())?;
                    }
                }
            }
        }
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
