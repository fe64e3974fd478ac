//! systemd's file descriptor store: keep the capture socket across restarts of `fwlog run`.
//!
//! Protocol (sd_notify(3), sd_listen_fds(3), systemd.io FILE_DESCRIPTOR_STORE):
//! - Storing: a notify datagram `FDSTORE=1\nFDNAME=<name>\nFDPOLL=0\n` carrying the socket as
//!   `SCM_RIGHTS`. The manager keeps a duplicate while the unit has `FileDescriptorStoreMax=`
//!   above 0. `FDPOLL=0`: by default the manager drops a stored fd as soon as it polls
//!   `POLLERR`, which a netlink socket raises on the very overflow (`ENOBUFS`) it is kept to
//!   survive. A renamed socket is removed (`FDSTOREREMOVE=1\nFDNAME=<old>\n`) and stored again:
//!   the manager ignores a second copy of an fd it holds, name and all.
//! - Taking back: the next process gets the stored fds from 3 on, with `LISTEN_PID` (its own
//!   pid), `LISTEN_FDS` (their number) and `LISTEN_FDNAMES` (their names, `:`-separated).
//!
//! Names: `fwlog-nflog-<g>[-<g>...]` (the groups bound when stored, a label: the kernel's own
//! instance list is what [`crate::capture::NflogSocket::adopt`] trusts) and
//! `fwlog-nfqueue-<n>`.
//!
//! Invariants:
//! - The three variables are removed from the environment once read, and every passed fd is
//!   set close-on-exec, so no child inherits them.
//! - Nothing passed is used unchecked: `LISTEN_PID` must be this process (otherwise the fds
//!   are another process's and are left alone), an fd must be a `NETLINK_NETFILTER` socket
//!   and carry a name of ours, and only one is taken per kind. Anything else gets one warning
//!   and is closed, and removed from the store when it has a name.
//! - Without `LISTEN_FDS`, nothing is said and nothing changes.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// First fd the manager passes (SD_LISTEN_FDS_START).
const FIRST_FD: RawFd = 3;
/// More passed fds than this is not a fd store of fwlog's (its unit stores at most a few).
const MAX_FDS: usize = 64;

const NFLOG_PREFIX: &str = "fwlog-nflog";
const QUEUE_PREFIX: &str = "fwlog-nfqueue-";

/// One fd handed over by the service manager, with its name (empty when none was given).
#[derive(Debug)]
pub struct Passed {
    pub fd: OwnedFd,
    pub name: String,
}

/// What `LISTEN_*` handed over, already checked: at most one socket of each kind fwlog uses.
#[derive(Debug, Default)]
pub struct Handed {
    /// An NFLOG socket and the groups its name lists.
    pub nflog: Option<(OwnedFd, String, Vec<u16>)>,
    /// An NFQUEUE socket, its name and queue number.
    pub queue: Option<(OwnedFd, String, u16)>,
    /// Names of stored fds fwlog will not use: to be removed from the store.
    pub unwanted: Vec<String>,
    /// One line per thing ignored.
    pub warnings: Vec<String>,
}

/// Read and remove `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`, and take the fds they
/// describe, checked (see the module docs).
///
/// # Safety
///
/// Changes the environment and takes ownership of fds 3.. when `LISTEN_PID` names this
/// process: call it only while no other thread exists and before anything else opens an fd.
pub unsafe fn take_from_env() -> Handed {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(v);
    }
    let mut h = Handed::default();
    let Some(fds) = fds else { return h };
    let me = std::process::id();
    let n = match (pid.as_deref().map(str::parse::<u32>), fds.parse::<usize>()) {
        (Some(Ok(p)), Ok(n)) if p == me => n,
        (Some(Ok(p)), Ok(_)) => {
            h.warnings.push(format!(
                "ignoring the {fds} file descriptors passed in LISTEN_FDS: LISTEN_PID={p} is another process (this is {me})"
            ));
            return h;
        }
        _ => {
            h.warnings.push(format!(
                "ignoring LISTEN_FDS={fds:?} with LISTEN_PID={:?}: not a count for this process",
                pid.unwrap_or_default()
            ));
            return h;
        }
    };
    if n > MAX_FDS {
        h.warnings.push(format!(
            "ignoring LISTEN_FDS={n}: more than the {MAX_FDS} file descriptors fwlog could have stored"
        ));
        return h;
    }
    let names: Vec<&str> = names
        .as_deref()
        .map(|s| s.split(':').collect())
        .unwrap_or_default();
    let mut passed = Vec::with_capacity(n);
    for i in 0..n {
        let raw = FIRST_FD + i as RawFd;
        // SAFETY: fcntl on an integer fd has no memory-safety preconditions.
        if unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
            h.warnings.push(format!(
                "LISTEN_FDS: file descriptor {raw} is not open; ignored"
            ));
            continue;
        }
        // SAFETY: LISTEN_PID names this process, so the manager passed fd `raw` to it, open
        // (just checked) and owned by nothing else in this process yet.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let name = names.get(i).copied().unwrap_or("").to_string();
        passed.push(Passed { fd, name });
    }
    sort(&mut h, passed);
    h
}

/// Keep the first valid socket of each kind; warn about, close and mark for removal the rest.
pub fn sort(h: &mut Handed, passed: Vec<Passed>) {
    for p in passed {
        let mut shown = Vec::new();
        crate::format::escape::escape_into(&mut shown, p.name.as_bytes());
        let shown = String::from_utf8_lossy(&shown);
        let kind = classify(p.fd.as_raw_fd());
        let parsed = parse_name(&p.name);
        let verdict: Result<(), String> = match (kind, parsed) {
            (Err(what), _) => Err(what),
            (Ok(()), Some(Name::Nflog(groups))) if h.nflog.is_none() => {
                h.nflog = Some((p.fd, p.name, groups));
                continue;
            }
            (Ok(()), Some(Name::Queue(n))) if h.queue.is_none() => {
                h.queue = Some((p.fd, p.name, n));
                continue;
            }
            (Ok(()), Some(_)) => Err("a second socket of the same kind".to_string()),
            (Ok(()), None) => Err("not a name fwlog gives its sockets".to_string()),
        };
        if let Err(why) = verdict {
            h.warnings.push(format!(
                "ignoring passed file descriptor {} (name \"{shown}\"): {why}; closed",
                p.fd.as_raw_fd()
            ));
            if !p.name.is_empty() && fdname_is_valid(&p.name) {
                h.unwanted.push(p.name);
            }
        }
    }
}

/// `Ok` for a `NETLINK_NETFILTER` socket, else what it is instead.
fn classify(fd: RawFd) -> Result<(), String> {
    let domain = getsockopt_int(fd, libc::SO_DOMAIN).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTSOCK) => "not a socket".to_string(),
        _ => format!("not a readable socket ({e})"),
    })?;
    if domain != libc::AF_NETLINK {
        return Err(format!("a socket of address family {domain}, not netlink"));
    }
    let proto = getsockopt_int(fd, libc::SO_PROTOCOL)
        .map_err(|e| format!("netlink socket of unknown protocol ({e})"))?;
    if proto != libc::NETLINK_NETFILTER {
        return Err(format!(
            "a netlink socket of protocol {proto}, not netfilter (12)"
        ));
    }
    Ok(())
}

fn getsockopt_int(fd: RawFd, name: i32) -> std::io::Result<i32> {
    crate::netlink::getsockopt_int(fd, libc::SOL_SOCKET, name)
}

#[derive(Debug, PartialEq, Eq)]
enum Name {
    Nflog(Vec<u16>),
    Queue(u16),
}

fn parse_name(name: &str) -> Option<Name> {
    if let Some(n) = name.strip_prefix(QUEUE_PREFIX) {
        return n.parse().ok().map(Name::Queue);
    }
    let rest = name.strip_prefix(NFLOG_PREFIX)?;
    let mut groups = Vec::new();
    for g in rest.split('-').skip(1) {
        groups.push(g.parse().ok()?);
    }
    (rest.is_empty() || rest.starts_with('-')).then_some(Name::Nflog(groups))
}

/// The store name of an NFLOG socket bound to `groups`.
pub fn nflog_name(groups: &[u16]) -> String {
    let mut s = String::from(NFLOG_PREFIX);
    let mut g = groups.to_vec();
    g.sort_unstable();
    for x in g {
        s.push_str(&format!("-{x}"));
    }
    // FDNAME holds at most 255 characters; past that the list is only a partial label (the
    // kernel's instance list is what counts when the socket comes back).
    s.truncate(255);
    s.trim_end_matches('-').to_string()
}

/// The store name of the socket of NFQUEUE queue `n`.
pub fn queue_name(n: u16) -> String {
    format!("{QUEUE_PREFIX}{n}")
}

/// What systemd accepts as FDNAME: 1..=255 printable ASCII characters, no `:`.
fn fdname_is_valid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b':')
}

/// The notify message that stores an fd under `name`.
pub fn store_message(name: &str) -> String {
    format!("FDSTORE=1\nFDNAME={name}\nFDPOLL=0\n")
}

/// The notify message that drops the stored fds named `name`.
pub fn remove_message(name: &str) -> String {
    format!("FDSTOREREMOVE=1\nFDNAME={name}\n")
}

/// The socket inode of `fd` (stable for the socket's life, whichever process holds it).
pub fn socket_inode(fd: RawFd) -> Option<u64> {
    // SAFETY: stat is plain data; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is valid for writes.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st.st_ino)
}

/// The netlink port id the socket `fd` is bound to (how the kernel's instance lists in /proc
/// name their owner).
pub fn netlink_portid(fd: RawFd) -> Option<u32> {
    // SAFETY: sockaddr_nl is plain data; getsockname fills at most `len` bytes of it.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    // SAFETY: addr and len are valid for writes.
    let rc =
        unsafe { libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_nl).cast(), &mut len) };
    (rc == 0).then_some(addr.nl_pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn netfilter() -> OwnedFd {
        // SAFETY: plain socket(2); checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        assert!(fd >= 0);
        // SAFETY: fresh fd.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    #[test]
    fn names_round_trip_and_stay_valid() {
        assert_eq!(nflog_name(&[6, 5]), "fwlog-nflog-5-6");
        assert_eq!(parse_name("fwlog-nflog-5-6"), Some(Name::Nflog(vec![5, 6])));
        assert_eq!(parse_name("fwlog-nfqueue-3"), Some(Name::Queue(3)));
        assert_eq!(parse_name("fwlog-nflog-x"), None);
        assert_eq!(parse_name("fwlog-nflogx"), None);
        assert_eq!(parse_name("stored"), None);
        let all: Vec<u16> = (0..200).collect();
        let long = nflog_name(&all);
        assert!(fdname_is_valid(&long) && long.len() <= 255, "{long}");
        assert!(!fdname_is_valid("a:b") && !fdname_is_valid("a\nb") && !fdname_is_valid(""));
        assert_eq!(
            store_message("fwlog-nflog-5"),
            "FDSTORE=1\nFDNAME=fwlog-nflog-5\nFDPOLL=0\n"
        );
    }

    #[test]
    fn only_netfilter_sockets_with_our_names_are_taken() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // SAFETY: plain socket(2); checked.
        let route = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        assert!(route >= 0);
        let passed = vec![
            Passed {
                fd: OwnedFd::from(file),
                name: "fwlog-nflog-5".into(),
            },
            Passed {
                fd: OwnedFd::from(udp),
                name: "fwlog-nflog-5".into(),
            },
            // SAFETY: fresh fd.
            Passed {
                fd: unsafe { OwnedFd::from_raw_fd(route) },
                name: "fwlog-nflog-5".into(),
            },
            Passed {
                fd: netfilter(),
                name: "other\x1b[2J".into(),
            },
            Passed {
                fd: netfilter(),
                name: "fwlog-nflog-5-7".into(),
            },
            Passed {
                fd: netfilter(),
                name: "fwlog-nflog-9".into(),
            },
            Passed {
                fd: netfilter(),
                name: "fwlog-nfqueue-2".into(),
            },
        ];
        let mut h = Handed::default();
        sort(&mut h, passed);
        assert_eq!(h.nflog.as_ref().map(|x| x.2.clone()), Some(vec![5, 7]));
        assert_eq!(h.queue.as_ref().map(|x| x.2), Some(2));
        assert_eq!(h.warnings.len(), 5, "{:#?}", h.warnings);
        assert!(h.warnings[0].contains("not a socket"), "{}", h.warnings[0]);
        assert!(h.warnings[1].contains("not netlink"), "{}", h.warnings[1]);
        assert!(h.warnings[2].contains("protocol 0"), "{}", h.warnings[2]);
        assert!(
            h.warnings[3].contains("not a name fwlog gives"),
            "{}",
            h.warnings[3]
        );
        assert!(h.warnings.iter().all(|w| !w.contains('\x1b')), "escaped");
        assert!(h.warnings[4].contains("second socket"), "{}", h.warnings[4]);
        assert_eq!(
            h.unwanted,
            vec![
                "fwlog-nflog-5",
                "fwlog-nflog-5",
                "fwlog-nflog-5",
                "fwlog-nflog-9"
            ]
        );
    }
}
