//! The NFQUEUE socket: an `nfq::Queue` bound to one queue, plus the descriptor `nfq` keeps
//! private (found once at open, see the module docs of [`crate::queue`]).
//!
//! Threading: [`QueueSocket`] is owned by one blocking thread. [`QueueSocket::recv_batch`]
//! waits in poll(2) for at most its timeout (so a stop flag is seen when no packet comes), then
//! drains the socket without blocking. Every message it returns must be given a verdict
//! ([`QueueSocket::verdict`]); one that is dropped without a verdict stays queued in the
//! kernel until the socket closes, and is then dropped by the kernel (never accepted).
//!
//! Namespace: the queue belongs to the network namespace of the thread that called
//! [`QueueSocket::open`].

use std::collections::BTreeSet;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::error::{has_cap_net_admin, QueueError};
use nfq::{Message, Verdict};

/// The kernel queue's maximum length fwlog asks for: far above what the receive buffer holds,
/// so overload shows up as socket overflow, which the packet ids make visible (a full kernel
/// queue is invisible to userspace under fail-open).
pub const DEFAULT_MAX_LEN: u32 = 1 << 20;

/// Queue settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// The N of `-j NFQUEUE --queue-num N`.
    pub queue: u16,
    /// Bytes of each packet copied to fwlog, from the network header (the verdict never
    /// changes the packet, so a cut copy only cuts the log).
    pub copy_range: u16,
    /// NFQA_CFG_F_FAIL_OPEN: accept packets that do not fit instead of dropping them.
    pub fail_open: bool,
    /// Socket receive buffer, forced with CAP_NET_ADMIN.
    pub rcvbuf: usize,
    /// NFQA_CFG_QUEUE_MAXLEN.
    pub max_len: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            queue: 0,
            copy_range: u16::MAX,
            fail_open: false,
            rcvbuf: 64 << 20,
            max_len: DEFAULT_MAX_LEN,
        }
    }
}

/// What one [`QueueSocket::recv_batch`] call saw besides the messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvOutcome {
    /// Messages appended to the caller's vector.
    pub count: usize,
    /// The kernel reported ENOBUFS (the socket overflowed; packet-id gaps tell how many).
    pub enobufs: bool,
}

pub struct QueueSocket {
    queue: nfq::Queue,
    /// `queue`'s descriptor, borrowed: valid exactly as long as `queue`, never closed here.
    fd: RawFd,
    num: u16,
    warnings: Vec<String>,
}

impl std::fmt::Debug for QueueSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueSocket")
            .field("queue", &self.num)
            .field("fd", &self.fd)
            .finish()
    }
}

fn getsockopt_int(fd: RawFd, name: i32) -> io::Result<i32> {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: passes a pointer to a local c_int and its size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&mut v as *mut i32).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(v)
    }
}

fn setsockopt_int(fd: RawFd, name: i32, v: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a local c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&v as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The process's NETLINK_NETFILTER sockets (descriptors that are not sockets fail the
/// getsockopt and are skipped).
fn netfilter_sockets() -> io::Result<BTreeSet<RawFd>> {
    let mut set = BTreeSet::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Some(fd) = entry?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
        else {
            continue;
        };
        if getsockopt_int(fd, libc::SO_DOMAIN).ok() == Some(libc::AF_NETLINK)
            && getsockopt_int(fd, libc::SO_PROTOCOL).ok() == Some(libc::NETLINK_NETFILTER)
        {
            set.insert(fd);
        }
    }
    Ok(set)
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

impl QueueSocket {
    /// Open a netlink socket and bind queue `cfg.queue` in the calling thread's network
    /// namespace. From the BIND on, packets that hit an `NFQUEUE --queue-num N` rule wait for
    /// this socket's verdicts.
    pub fn open(cfg: &QueueConfig) -> Result<QueueSocket, QueueError> {
        let before = netfilter_sockets().map_err(|e| QueueError::io("listing /proc/self/fd", e))?;
        let queue = nfq::Queue::open()
            .map_err(|e| QueueError::io("opening the NFQUEUE netlink socket", e))?;
        let after = netfilter_sockets().map_err(|e| QueueError::io("listing /proc/self/fd", e))?;
        let mut new = after.difference(&before);
        let fd =
            match (new.next(), new.next()) {
                (Some(&fd), None) => fd,
                _ => return Err(QueueError::io(
                    "finding the descriptor of nfq's socket (another thread opened a netfilter \
                     socket at the same moment)",
                    io::Error::from(io::ErrorKind::Other),
                )),
            };
        let n = cfg.queue;
        let mut sock = QueueSocket {
            queue,
            fd,
            num: n,
            warnings: Vec::new(),
        };
        match sock.queue.bind(n) {
            Ok(()) => {}
            Err(e) if errno(&e) == libc::EPERM => {
                return Err(if has_cap_net_admin() == Some(true) {
                    QueueError::QueueBusy { queue: n }
                } else {
                    QueueError::NoPermission {
                        what: format!("binding NFQUEUE queue {n}"),
                    }
                })
            }
            Err(e) => return Err(QueueError::io(format!("binding NFQUEUE queue {n}"), e)),
        }
        sock.configure(cfg)?;
        Ok(sock)
    }

    fn configure(&mut self, cfg: &QueueConfig) -> Result<(), QueueError> {
        let n = cfg.queue;
        let q = &mut self.queue;
        q.set_copy_range(n, cfg.copy_range)
            .map_err(|e| QueueError::io(format!("setting the copy range of queue {n}"), e))?;
        q.set_queue_max_len(n, cfg.max_len)
            .map_err(|e| QueueError::io(format!("setting the length of queue {n}"), e))?;
        q.set_fail_open(n, cfg.fail_open)
            .map_err(|e| QueueError::io(format!("setting fail-open on queue {n}"), e))?;
        if let Err(e) = q.set_recv_uid_gid(n, true) {
            self.warnings.push(format!(
                "queue {n}: the kernel does not send socket uid/gid ({e}); records will lack them"
            ));
        }
        // Overflow must be reported, not hidden (nfq turns ENOBUFS off by default).
        q.set_recv_enobufs(true)
            .map_err(|e| QueueError::io("enabling ENOBUFS reports", e))?;
        q.set_nonblocking(true);

        let want = i32::try_from(cfg.rcvbuf).unwrap_or(i32::MAX);
        if let Err(e) = setsockopt_int(self.fd, libc::SO_RCVBUFFORCE, want) {
            if !matches!(errno(&e), libc::EPERM | libc::EACCES) {
                return Err(QueueError::io("setting SO_RCVBUFFORCE", e));
            }
            setsockopt_int(self.fd, libc::SO_RCVBUF, want)
                .map_err(|e| QueueError::io("setting SO_RCVBUF", e))?;
        }
        let got = getsockopt_int(self.fd, libc::SO_RCVBUF)
            .map_err(|e| QueueError::io("reading SO_RCVBUF", e))? as usize;
        // The kernel reports double the request (bookkeeping overhead); less means capped.
        if got < cfg.rcvbuf.saturating_mul(2) {
            self.warnings.push(format!(
                "queue {n}: receive buffer is {} bytes, not the {} requested: bursts overflow \
                 it sooner (needs CAP_NET_ADMIN, or raise net.core.rmem_max)",
                got / 2,
                cfg.rcvbuf
            ));
        }
        Ok(())
    }

    /// The queue number.
    pub fn queue_num(&self) -> u16 {
        self.num
    }

    /// Non-fatal set-up problems, one line each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Wait up to `timeout` for a packet, then read without blocking until the socket is empty
    /// or `max` messages were appended to `out`.
    pub fn recv_batch(
        &mut self,
        out: &mut Vec<Message>,
        max: usize,
        timeout: Duration,
    ) -> io::Result<RecvOutcome> {
        let mut r = RecvOutcome::default();
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd; fd is alive while self.queue is.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if errno(&e) == libc::EINTR {
                Ok(r)
            } else {
                Err(e)
            };
        }
        while r.count < max.max(1) {
            match self.queue.recv() {
                Ok(m) => {
                    out.push(m);
                    r.count += 1;
                }
                Err(e) => match errno(&e) {
                    libc::EAGAIN => break,
                    libc::EINTR => continue,
                    libc::ENOBUFS => r.enobufs = true,
                    // A message longer than nfq's buffer: that packet is lost to us (its id
                    // becomes a gap); keep reading the others.
                    libc::ENOSPC => r.enobufs = true,
                    _ => return Err(e),
                },
            }
        }
        Ok(r)
    }

    /// Give `msg` its verdict (one netlink message).
    pub fn verdict(&mut self, mut msg: Message, v: Verdict) -> io::Result<()> {
        msg.set_verdict(v);
        self.queue.verdict(msg)
    }

    /// DROP every packet of this queue with an id up to `max_id` that is still waiting for a
    /// verdict (NFQNL_MSG_VERDICT_BATCH), for packets whose messages `nfq` discarded during
    /// set-up. Written by hand: `nfq` has no batch verdict.
    pub fn drop_upto(&mut self, max_id: u32) -> io::Result<()> {
        const NFNL_SUBSYS_QUEUE: u16 = 3;
        const NFQNL_MSG_VERDICT_BATCH: u16 = 3;
        const NFQA_VERDICT_HDR: u16 = 2;
        const NF_DROP: u32 = 0;
        let mut m = [0u8; 32];
        m[0..4].copy_from_slice(&32u32.to_ne_bytes());
        m[4..6].copy_from_slice(&(NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_VERDICT_BATCH).to_ne_bytes());
        m[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
        // seq, portid: 0. nfgenmsg: AF_UNSPEC, version 0, queue number (big-endian).
        m[18..20].copy_from_slice(&self.num.to_be_bytes());
        m[20..22].copy_from_slice(&12u16.to_ne_bytes());
        m[22..24].copy_from_slice(&NFQA_VERDICT_HDR.to_ne_bytes());
        m[24..28].copy_from_slice(&NF_DROP.to_be_bytes());
        m[28..32].copy_from_slice(&max_id.to_be_bytes());
        // SAFETY: an all-zero sockaddr_nl is valid (the kernel as destination).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: m and addr are valid for the lengths given; fd is alive while self.queue is.
        let rc = unsafe {
            libc::sendto(
                self.fd,
                m.as_ptr().cast(),
                m.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}
