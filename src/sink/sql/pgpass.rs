//! The PostgreSQL password file (libpq's `~/.pgpass`), for a URL without a password and no
//! `PGPASSWORD`.
//!
//! Invariants (libpq's rules, stricter where root is concerned):
//! - The file is `PGPASSFILE`, or `.pgpass` in the home directory as libpq finds it: `HOME`
//!   when set and not empty, else the effective user's entry in the password database (a
//!   systemd unit without `User=` may have no `HOME`). The user is the one fwlog starts as:
//!   outputs open before `--user`. It is read once, then.
//! - Lines are `hostname:port:database:username:password`; `*` in any of the first four fields
//!   matches anything; `\:` and `\\` are a literal `:` and `\`; `#` starts a comment line. The
//!   first matching line wins. A URL without a host matches `localhost`, without a port
//!   `5432`.
//! - A missing file is no error (there is simply no password). A file with any group or world
//!   permission, not owned by that user, or not a regular file (a symbolic link is
//!   not followed) is refused with one line, as are lines that cannot be read: a password is
//!   never taken from a file others could read or plant.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

/// What a line must match.
pub struct Want<'a> {
    pub host: &'a str,
    pub port: u16,
    pub db: &'a str,
    pub user: &'a str,
}

/// The password file to read: `PGPASSFILE`, or `~/.pgpass` ([`home`]).
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PGPASSFILE") {
        return Some(PathBuf::from(p));
    }
    home().map(|h| h.join(".pgpass"))
}

/// The home directory: `HOME`, or the effective user's from the password database.
fn home() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h));
    }
    let mut buf = vec![0u8; 4096];
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; the buffer outlives the use of `pw`.
    let r = unsafe {
        libc::getpwuid_r(
            libc::geteuid(),
            &mut pw,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut out,
        )
    };
    if r != 0 || out.is_null() || pw.pw_dir.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r filled pw_dir with a NUL-terminated string inside `buf`.
    let dir = unsafe { std::ffi::CStr::from_ptr(pw.pw_dir) };
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes())))
}

/// The password for `want` from the password file, if there is one and a line matches.
pub fn lookup(want: &Want<'_>) -> Result<Option<String>, String> {
    let Some(p) = path() else { return Ok(None) };
    let shown = p.display().to_string();
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(&p)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(format!(
                "password file {shown} is a symbolic link; refusing it"
            ))
        }
        Err(e) => return Err(format!("password file {shown}: {e}")),
    };
    let m = f
        .metadata()
        .map_err(|e| format!("password file {shown}: {e}"))?;
    if !m.file_type().is_file() {
        return Err(format!(
            "password file {shown} is not a regular file; refusing it"
        ));
    }
    if m.mode() & 0o077 != 0 {
        return Err(format!(
            "password file {shown} has group or world access (mode {:04o}); refusing it: \
             chmod 0600 it",
            m.mode() & 0o7777
        ));
    }
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me {
        return Err(format!(
            "password file {shown} belongs to uid {}, not to the user fwlog runs as \
             (uid {me}); refusing it",
            m.uid()
        ));
    }
    let mut text = String::new();
    f.take(1 << 20)
        .read_to_string(&mut text)
        .map_err(|e| format!("password file {shown}: {e}"))?;
    Ok(find(&text, want))
}

/// The first line of `text` matching `want`.
pub fn find(text: &str, want: &Want<'_>) -> Option<String> {
    let port = want.port.to_string();
    let wanted = [want.host, port.as_str(), want.db, want.user];
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .find_map(|l| {
            let f = fields(l);
            if f.len() < 5 {
                return None;
            }
            let hit = wanted
                .iter()
                .zip(&f)
                .all(|(w, field)| field == "*" || field == w);
            hit.then(|| f[4].clone())
        })
}

/// Split a line at unescaped colons, undoing `\:` and `\\`. The password is the rest of the
/// line (libpq: a colon in it needs no escape after the fourth field, but may have one).
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if n != ':' && n != '\\' {
                        cur.push('\\');
                    }
                    cur.push(n);
                }
            }
            ':' if out.len() < 4 => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Want<'static> = Want {
        host: "db.example",
        port: 5432,
        db: "logs",
        user: "fwlog",
    };

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let t = "# comment\n\
                 other:5432:logs:fwlog:no\n\
                 db.example:5433:*:*:wrong-port\n\
                 db.example:*:logs:fwlog:pa\\:ss\\\\w:rd\n\
                 *:*:*:*:fallback\n";
        assert_eq!(find(t, &W).as_deref(), Some("pa:ss\\w:rd"));
        let other = Want { user: "x", ..W };
        assert_eq!(find(t, &other).as_deref(), Some("fallback"));
        assert_eq!(find("a:b:c\n", &W), None);
        assert_eq!(find("", &W), None);
    }
}
