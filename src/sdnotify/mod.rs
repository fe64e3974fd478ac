//! systemd service notifications (`sd_notify(3)`) for `fwlog run` under `Type=notify`.
//!
//! Wire format: one datagram per state change, sent to the `AF_UNIX` datagram socket the
//! service manager names in `NOTIFY_SOCKET` (a file-system path, or `@name` for the abstract
//! namespace). Its text is newline-terminated `KEY=VALUE` lines (`READY=1\nSTATUS=...\n`),
//! worded by the `sd-notify` crate's [`NotifyState`]. The receiver learns who sent it from the
//! credentials the kernel attaches at send time (`NotifyAccess=main`: fwlog's own pid).
//!
//! Invariants:
//! - Without `NOTIFY_SOCKET` nothing is sent and nothing else changes.
//! - The socket is connected once, by [`Notifier::from_env`], which `fwlog run` calls first,
//!   before `--user` switches to the unprivileged user. Linux checks write permission on a
//!   socket path when connecting, not on each send, so the connected socket keeps working after
//!   the switch even where that user could not reach the path (systemd's own socket is
//!   world-writable; a test's or another manager's need not be). Should a send find the
//!   receiver gone (`ECONNREFUSED`: the manager made a new socket), it connects by name again
//!   and keeps the new connection.
//! - `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` are removed from the environment once
//!   read, so no child process inherits them.
//! - A failed send is reported on stderr once (the first failure) and is never fatal: a missing
//!   `READY=1` is caught by the manager's own start time-out, a missing `WATCHDOG=1` by its
//!   watchdog.
//!
//! Why the crate does not send: `sd_notify::notify` reads `NOTIFY_SOCKET` and connects by path
//! on every call, which fails after `--user` for a socket only root may write to, stops working
//! once the variable is removed, and takes `@name` for a file name.
//!
//! [`service`] holds the policy: what the daemon says when (ready, reload, stop, watchdog).

pub mod fdstore;
pub mod service;

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

pub use sd_notify::NotifyState;

/// A send that cannot go through within this long is abandoned (and reported once): a stuck
/// service manager must not stall the processing loop, which sends the watchdog pings.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// The connection to the service manager, or nothing when fwlog was not started by one.
#[derive(Debug)]
pub struct Notifier {
    /// `NOTIFY_SOCKET` as given; `None`: notifications are off.
    addr: Option<OsString>,
    /// Connected while root; `None` when connecting failed (retried on each send).
    sock: Mutex<Option<UnixDatagram>>,
    /// `WATCHDOG_USEC`, when the watchdog is on for this process.
    watchdog: Option<Duration>,
    /// A failure was reported already: later ones are silent.
    reported: AtomicBool,
}

impl Notifier {
    /// Notifications off: every send does nothing (`fwlog read`, `replay`, tests).
    pub fn disabled() -> Notifier {
        Notifier {
            addr: None,
            sock: Mutex::new(None),
            watchdog: None,
            reported: AtomicBool::new(false),
        }
    }

    /// Read `NOTIFY_SOCKET` and `WATCHDOG_USEC`/`WATCHDOG_PID`, remove them from the
    /// environment, and connect. Without `NOTIFY_SOCKET` the notifier is [`disabled`].
    ///
    /// # Safety
    ///
    /// Changes the environment: call it only while no other thread exists (as
    /// `std::env::remove_var` demands since Rust 2024). `fwlog run` calls it first thing.
    ///
    /// [`disabled`]: Notifier::disabled
    pub unsafe fn from_env() -> Notifier {
        let addr = std::env::var_os("NOTIFY_SOCKET");
        // SAFETY: the caller guarantees no other thread exists (see above).
        let watchdog = unsafe { sd_notify::watchdog_enabled_and_unset_env() }
            // libsystemd treats 0 as invalid; pinging every 0 ms would spin the loop.
            .filter(|d| !d.is_zero());
        std::env::remove_var("NOTIFY_SOCKET");
        match addr {
            Some(a) => Notifier::connect(a, watchdog),
            None => Notifier::disabled(),
        }
    }

    /// Notify `addr` (a path, or `@name` for the abstract namespace). `watchdog` is the
    /// manager's `WATCHDOG_USEC`, if any. A failure to connect is reported once; sends retry.
    pub fn connect(addr: OsString, watchdog: Option<Duration>) -> Notifier {
        let n = Notifier {
            sock: Mutex::new(None),
            watchdog,
            addr: Some(addr),
            reported: AtomicBool::new(false),
        };
        if let Some(a) = &n.addr {
            match open(a) {
                Ok(s) => *n.sock.lock().unwrap_or_else(|p| p.into_inner()) = Some(s),
                Err(e) => n.report(a, &e),
            }
        }
        n
    }

    /// True when fwlog was started by a service manager that listens.
    pub fn enabled(&self) -> bool {
        self.addr.is_some()
    }

    /// The manager's watchdog time-out (`WATCHDOG_USEC`), when it wants pings.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog.filter(|_| self.enabled())
    }

    /// Send `states` as one datagram. Never fails: the first error is reported on stderr.
    pub fn send(&self, states: &[NotifyState]) {
        let Some(addr) = &self.addr else { return };
        let msg = message(states);
        // Only this process's own threads contend, and a panic while holding the lock leaves
        // nothing half-done: a poisoned lock is still good.
        let mut sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        let mut r = match sock.as_ref() {
            Some(s) => s.send(msg.as_bytes()),
            None => Err(io::Error::from_raw_os_error(libc::ENOTCONN)),
        };
        if matches!(
            r.as_ref().map_err(io::Error::raw_os_error),
            Err(Some(libc::ECONNREFUSED | libc::ENOTCONN))
        ) {
            r = open(addr).and_then(|s| {
                let n = s.send(msg.as_bytes());
                *sock = Some(s);
                n
            });
        }
        drop(sock);
        match r {
            Ok(n) if n == msg.len() => {}
            Ok(n) => self.report(
                addr,
                &io::Error::other(format!("sent {n} of {} bytes", msg.len())),
            ),
            Err(e) => self.report(addr, &e),
        }
    }

    /// Send `msg` with `fd` attached (`SCM_RIGHTS`), for the fd store ([`fdstore`]); `None`
    /// sends the text alone. Unlike [`Notifier::send`] the caller learns the outcome: a socket
    /// that did not reach the store must not be treated as kept.
    pub fn send_fd(&self, msg: &str, fd: Option<RawFd>) -> io::Result<()> {
        let Some(addr) = &self.addr else {
            return Err(io::Error::from_raw_os_error(libc::ENOTCONN));
        };
        let mut sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        if sock.is_none() {
            *sock = Some(open(addr)?);
        }
        let Some(s) = sock.as_ref() else {
            return Err(io::Error::from_raw_os_error(libc::ENOTCONN));
        };
        let r = sendmsg_fd(s.as_raw_fd(), msg.as_bytes(), fd);
        if matches!(
            r.as_ref().map_err(io::Error::raw_os_error),
            Err(Some(libc::ECONNREFUSED))
        ) {
            let s = open(addr)?;
            let r = sendmsg_fd(s.as_raw_fd(), msg.as_bytes(), fd);
            *sock = Some(s);
            return r;
        }
        r
    }

    fn report(&self, addr: &OsStr, e: &io::Error) {
        if !self.reported.swap(true, Ordering::Relaxed) {
            eprintln!(
                "fwlog: cannot notify the service manager (NOTIFY_SOCKET={}): {e}; further notification errors are not reported",
                addr.to_string_lossy()
            );
        }
    }
}

/// The datagram for `states`: one `KEY=VALUE` line each. A line break inside a value (a
/// status text) would start a forged field, so it becomes a space.
fn message(states: &[NotifyState]) -> String {
    let mut msg = String::new();
    for s in states {
        let line = s.to_string();
        msg.extend(line.chars().map(|c| if c == '\n' { ' ' } else { c }));
        msg.push('\n');
    }
    msg
}

/// One datagram of `msg` on the connected socket `sock`, with `fd` as `SCM_RIGHTS` if given.
fn sendmsg_fd(sock: RawFd, msg: &[u8], fd: Option<RawFd>) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: msg.as_ptr() as *mut libc::c_void,
        iov_len: msg.len(),
    };
    // Room for one cmsghdr carrying one int, aligned as cmsghdr requires.
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr is plain data; all-zero is valid (no name, no control yet).
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure size computations.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
        mh.msg_control = cbuf.as_mut_ptr().cast();
        mh.msg_controllen = space;
        // SAFETY: msg_control points at `space` <= 64 writable bytes, enough for one header;
        // CMSG_FIRSTHDR returns a pointer inside it, CMSG_DATA one past its header.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&mh);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        }
    }
    // SAFETY: mh points at live iov/control buffers for the duration of the call.
    let n = unsafe { libc::sendmsg(sock, &mh, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != msg.len() {
        return Err(io::Error::other(format!("sent {n} of {} bytes", msg.len())));
    }
    Ok(())
}

/// A datagram socket connected to `addr`: `/path`, or `@name` (abstract namespace).
fn open(addr: &OsStr) -> io::Result<UnixDatagram> {
    let bytes = addr.as_bytes();
    let sock = UnixDatagram::unbound()?;
    match bytes.first() {
        Some(b'/') => sock.connect(addr)?,
        Some(b'@') => {
            use std::os::linux::net::SocketAddrExt;
            let a = std::os::unix::net::SocketAddr::from_abstract_name(&bytes[1..])?;
            sock.connect_addr(&a)?
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not an absolute path or @abstract name (the only kinds fwlog supports)",
            ))
        }
    }
    sock.set_write_timeout(Some(SEND_TIMEOUT))?;
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn recv(s: &UnixDatagram) -> String {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let n = s.recv(&mut buf).expect("a notification");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_one_datagram_of_lines_to_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::connect(path.into_os_string(), None);
        assert!(n.enabled());
        n.send(&[NotifyState::Ready, NotifyState::Status("logging group 5")]);
        assert_eq!(recv(&rx), "READY=1\nSTATUS=logging group 5\n");
        n.send(&[NotifyState::Stopping]);
        assert_eq!(recv(&rx), "STOPPING=1\n");
    }

    #[test]
    fn abstract_names_are_not_file_names() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("fwlog-notify-test-{}", std::process::id());
        let a = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&a).unwrap();
        let n = Notifier::connect(format!("@{name}").into(), None);
        n.send(&[NotifyState::Ready]);
        assert_eq!(recv(&rx), "READY=1\n");
    }

    #[test]
    fn a_line_break_in_a_status_cannot_forge_a_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::connect(path.into_os_string(), None);
        n.send(&[NotifyState::Status("x\nREADY=1")]);
        assert_eq!(recv(&rx), "STATUS=x READY=1\n");
    }

    #[test]
    fn the_connected_socket_outlives_losing_access_to_the_path() {
        // What --user relies on: permission is checked at connect, not at send. Taking write
        // permission away from the socket file stands in for becoming a user who has none
        // (root would bypass the check, so only a non-root run sees the difference; both must
        // deliver).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::connect(path.clone().into_os_string(), None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        n.send(&[NotifyState::Watchdog]);
        assert_eq!(recv(&rx), "WATCHDOG=1\n");
    }

    #[test]
    fn reconnects_when_the_receiver_made_a_new_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::connect(path.clone().into_os_string(), None);
        drop(rx);
        std::fs::remove_file(&path).unwrap();
        let rx = UnixDatagram::bind(&path).unwrap();
        n.send(&[NotifyState::Ready]);
        assert_eq!(recv(&rx), "READY=1\n");
    }

    #[test]
    fn a_missing_socket_is_not_fatal_and_disabled_sends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let n = Notifier::connect(dir.path().join("absent").into_os_string(), None);
        n.send(&[NotifyState::Ready]); // reported once on stderr, no panic
        n.send(&[NotifyState::Ready]);
        assert!(n.reported.load(Ordering::Relaxed));
        let off = Notifier::disabled();
        assert!(!off.enabled());
        assert_eq!(off.watchdog_timeout(), None);
        off.send(&[NotifyState::Ready]);
        assert!(!off.reported.load(Ordering::Relaxed));
        let bad = Notifier::connect("relative/name".into(), None);
        assert!(bad.reported.load(Ordering::Relaxed));
    }
}
