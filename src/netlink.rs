//! Netfilter netlink sockets: the part NFLOG capture (`capture/socket.rs`) and the NFQUEUE
//! queue (`queue/socket.rs`) share. Socket creation and binding, receive-buffer sizing,
//! timeouts, sending a request to the kernel, receiving one datagram, building an nfnetlink
//! request, walking the messages of a datagram and reading an acknowledgement.
//!
//! Written over `libc` by hand: both sockets need things the netlink crates hide (the raw
//! descriptor for `recvmmsg`, `SO_RCVBUFFORCE`, MSG_PEEK, a verdict batch `nfq` lacks), and
//! what is left is a few system calls and a 16-byte header.
//!
//! Wire format (all host byte order except nfgenmsg's resource id, which is big-endian):
//! `nlmsghdr { len: u32, type: u16, flags: u16, seq: u32, pid: u32 }` then, for nfnetlink,
//! `nfgenmsg { family: u8, version: u8, res_id: be16 }` then attributes; messages in one
//! datagram are padded to 4 bytes.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Length of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;

/// A system call's return value as a result (negative: errno).
fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The errno of an I/O error (0 if it has none).
pub fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// A new NETLINK_NETFILTER socket, bound (the kernel picks the port id).
pub fn open_netfilter() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly created descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; all-zero is valid (pid 0: the kernel picks one).
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: passes a pointer to a local sockaddr_nl and its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    check(rc)?;
    Ok(fd)
}

pub fn setsockopt_int(fd: RawFd, level: i32, name: i32, v: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a local c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    check(rc)
}

pub fn getsockopt_int(fd: RawFd, level: i32, name: i32) -> io::Result<i32> {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: passes a pointer to a local c_int and its size.
    let rc = unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut i32).cast(), &mut len) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(v)
    }
}

/// Whether `fd` is a NETLINK_NETFILTER socket (anything else, sockets or not, is not).
pub fn is_netfilter_socket(fd: RawFd) -> bool {
    let get = |name| getsockopt_int(fd, libc::SOL_SOCKET, name).ok();
    get(libc::SO_DOMAIN) == Some(libc::AF_NETLINK)
        && get(libc::SO_PROTOCOL) == Some(libc::NETLINK_NETFILTER)
}

/// What [`size_rcvbuf`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RcvBuf {
    /// SO_RCVBUF as read back (the kernel reports double the request: bookkeeping overhead).
    pub granted: usize,
    /// SO_RCVBUFFORCE worked; without CAP_NET_ADMIN SO_RCVBUF is capped by
    /// net.core.rmem_max.
    pub forced: bool,
}

impl RcvBuf {
    /// Less than `want` was granted.
    pub fn capped(&self, want: usize) -> bool {
        self.granted < want.saturating_mul(2)
    }
}

/// Ask for a `want`-byte receive buffer: forced (needs CAP_NET_ADMIN), else as far as
/// net.core.rmem_max allows. On error, also says which step failed.
pub fn size_rcvbuf(fd: RawFd, want: usize) -> Result<RcvBuf, (&'static str, io::Error)> {
    let v = i32::try_from(want).unwrap_or(i32::MAX);
    let forced = match setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, v) {
        Ok(()) => true,
        Err(e) if matches!(errno(&e), libc::EPERM | libc::EACCES) => {
            setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, v)
                .map_err(|e| ("setting SO_RCVBUF", e))?;
            false
        }
        Err(e) => return Err(("setting SO_RCVBUFFORCE", e)),
    };
    let granted = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF)
        .map_err(|e| ("reading SO_RCVBUF", e))?;
    Ok(RcvBuf {
        granted: usize::try_from(granted).unwrap_or(0),
        forced,
    })
}

/// SO_RCVTIMEO: how long a blocking receive waits (zero would mean forever: callers pass at
/// least 1 µs).
pub fn set_rcvtimeo(fd: RawFd, t: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: passes a pointer to a local timeval and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    check(rc)
}

/// Send one request (or several, back to back) to the kernel.
pub fn send_to_kernel(fd: RawFd, msg: &[u8]) -> io::Result<()> {
    // SAFETY: sockaddr_nl is plain data; all-zero addresses the kernel (pid 0).
    let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: msg and `to` are valid for the lengths given.
    let rc = unsafe {
        libc::sendto(
            fd,
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&to as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    check(if rc < 0 { -1 } else { 0 })
}

/// recv(2) of one datagram into `buf` with `flags`; its length (with MSG_TRUNC: its real
/// length, which may exceed `buf`).
pub fn recv_one(fd: RawFd, buf: &mut [u8], flags: i32) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of buf.len() bytes.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Start an nfnetlink request in `m` (cleared): nlmsghdr (length patched by [`finish`]) and
/// nfgenmsg. `ty` is `subsystem << 8 | message`; NLM_F_REQUEST is always set.
pub fn nfnl_request(m: &mut Vec<u8>, ty: u16, ack: bool, seq: u32, res_id: u16) {
    m.clear();
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    let mut flags = libc::NLM_F_REQUEST as u16;
    if ack {
        flags |= libc::NLM_F_ACK as u16;
    }
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
    m.extend_from_slice(&res_id.to_be_bytes());
}

/// Patch the length of the request `m` built with [`nfnl_request`].
pub fn finish(m: &mut [u8]) {
    let len = m.len() as u32;
    m[..4].copy_from_slice(&len.to_ne_bytes());
}

/// One netlink message of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msg<'a> {
    pub ty: u16,
    pub seq: u32,
    /// After the nlmsghdr.
    pub body: &'a [u8],
}

impl Msg<'_> {
    /// For NLMSG_ERROR (an acknowledgement when 0): the errno it carries, positive.
    pub fn ack_errno(&self) -> Option<i32> {
        if self.ty != libc::NLMSG_ERROR as u16 || self.body.len() < 4 {
            return None;
        }
        let code = i32::from_ne_bytes([self.body[0], self.body[1], self.body[2], self.body[3]]);
        Some(code.wrapping_neg())
    }
}

/// The messages of a datagram, in order; `Err(())` once a header does not add up (the rest is
/// unreadable), then nothing more.
pub fn messages(d: &[u8]) -> impl Iterator<Item = Result<Msg<'_>, ()>> {
    let mut off = 0;
    let mut broken = false;
    std::iter::from_fn(move || {
        if broken || off + NLMSG_HDRLEN > d.len() {
            return None;
        }
        let h = &d[off..off + NLMSG_HDRLEN];
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len < NLMSG_HDRLEN || len > d.len() - off {
            broken = true;
            return Some(Err(()));
        }
        let m = Msg {
            ty: u16::from_ne_bytes([h[4], h[5]]),
            seq: u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
            body: &d[off + NLMSG_HDRLEN..off + len],
        };
        off += (len + 3) & !3;
        Some(Ok(m))
    })
}

/// Whether the calling thread has CAP_NET_ADMIN (bit 12) in its effective set; `None` when
/// /proc cannot tell.
pub fn has_cap_net_admin() -> Option<bool> {
    let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    cap_from_status(&status, 12)
}

fn cap_from_status(status: &str, bit: u32) -> Option<bool> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    let caps = u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()?;
    Some(caps & (1u64 << bit) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_effective_set() {
        let s = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t0000000000001000\n";
        assert_eq!(cap_from_status(s, 12), Some(true));
        let s = "CapEff:\t0000000000000fff\n";
        assert_eq!(cap_from_status(s, 12), Some(false));
        assert_eq!(cap_from_status("nothing", 12), None);
    }

    #[test]
    fn walks_messages_and_stops_at_a_bad_header() {
        let mut d = Vec::new();
        nfnl_request(&mut d, 0x0401, true, 7, 5);
        d.extend_from_slice(&[1, 2]);
        finish(&mut d);
        d.extend_from_slice(&[0, 0]); // padding to 4
        let mut ack = Vec::new();
        ack.extend_from_slice(&20u32.to_ne_bytes());
        ack.extend_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        ack.extend_from_slice(&[0, 0]);
        ack.extend_from_slice(&9u32.to_ne_bytes());
        ack.extend_from_slice(&0u32.to_ne_bytes());
        ack.extend_from_slice(&(-libc::EPERM).to_ne_bytes());
        d.extend_from_slice(&ack);
        d.extend_from_slice(&100u32.to_ne_bytes()); // a header claiming more than is there
        d.extend_from_slice(&[0; 12]);
        let all: Vec<_> = messages(&d).collect();
        assert_eq!(all.len(), 3);
        let first = all[0].expect("first");
        assert_eq!((first.ty, first.seq, first.body.len()), (0x0401, 7, 6));
        assert_eq!(&first.body[2..4], &5u16.to_be_bytes());
        assert_eq!(first.ack_errno(), None);
        let second = all[1].expect("ack");
        assert_eq!((second.seq, second.ack_errno()), (9, Some(libc::EPERM)));
        assert_eq!(all[2], Err(()));
    }
}
