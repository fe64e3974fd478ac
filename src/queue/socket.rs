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
//!
//! The netlink plumbing it shares with NFLOG capture (buffer sizing, requests sent by hand,
//! the netfilter-socket check) is in [`crate::netlink`].

use std::collections::BTreeSet;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::error::{has_cap_net_admin, QueueError};
use crate::netlink::{self, errno};
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
        if netlink::is_netfilter_socket(fd) {
            set.insert(fd);
        }
    }
    Ok(set)
}

/// The queues bound by the netlink socket `fd`, from the kernel's list in the caller's network
/// namespace (`queue portid ...` per line).
fn bound_queues(fd: RawFd) -> io::Result<Vec<u16>> {
    // SAFETY: sockaddr_nl is plain data; getsockname fills at most `len` bytes of it.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    // SAFETY: addr and len are valid for writes.
    if unsafe { libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_nl).cast(), &mut len) } < 0
    {
        return Err(io::Error::last_os_error());
    }
    let text = std::fs::read_to_string("/proc/thread-self/net/netfilter/nfnetlink_queue")?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let q = f.next()?.parse::<u16>().ok()?;
            (f.next()?.parse::<u32>().ok()? == addr.nl_pid).then_some(q)
        })
        .collect())
}

/// NFQNL_MSG_CONFIG for `cfg.queue` with its settings (copy range, length, fail-open, uid/gid)
/// and no acknowledgement requested. Written by hand: `nfq` always waits for the answer.
fn config_message(cfg: &QueueConfig) -> Vec<u8> {
    const NFNL_SUBSYS_QUEUE: u16 = 3;
    const NFQNL_MSG_CONFIG: u16 = 2;
    const NFQA_CFG_PARAMS: u16 = 2;
    const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
    const NFQA_CFG_MASK: u16 = 4;
    const NFQA_CFG_FLAGS: u16 = 5;
    const NFQNL_COPY_PACKET: u8 = 2;
    const F_FAIL_OPEN: u32 = 1;
    const F_UID_GID: u32 = 8;
    let mut m = Vec::with_capacity(64);
    let ty = NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_CONFIG;
    netlink::nfnl_request(&mut m, ty, false, 0, cfg.queue);
    let mut params = [0u8; 5];
    params[..4].copy_from_slice(&u32::from(cfg.copy_range).to_be_bytes());
    params[4] = NFQNL_COPY_PACKET;
    crate::nflog::attr::push_attr(&mut m, NFQA_CFG_PARAMS, &params);
    crate::nflog::attr::push_attr(&mut m, NFQA_CFG_QUEUE_MAXLEN, &cfg.max_len.to_be_bytes());
    let flags = F_UID_GID | if cfg.fail_open { F_FAIL_OPEN } else { 0 };
    crate::nflog::attr::push_attr(&mut m, NFQA_CFG_FLAGS, &flags.to_be_bytes());
    crate::nflog::attr::push_attr(
        &mut m,
        NFQA_CFG_MASK,
        &(F_FAIL_OPEN | F_UID_GID).to_be_bytes(),
    );
    netlink::finish(&mut m);
    m
}

impl QueueSocket {
    /// Open a netlink socket and bind queue `cfg.queue` in the calling thread's network
    /// namespace. From the BIND on, packets that hit an `NFQUEUE --queue-num N` rule wait for
    /// this socket's verdicts.
    pub fn open(cfg: &QueueConfig) -> Result<QueueSocket, QueueError> {
        let mut sock = QueueSocket::open_unbound(cfg)?;
        sock.bind(cfg)?;
        Ok(sock)
    }

    /// Take back a queue socket a previous run kept in the service manager's fd store (the
    /// caller checked it is a netfilter netlink socket). When it still has queue `cfg.queue`
    /// (the kernel's list says so, by port id), packets the kernel queued meanwhile are read
    /// from it and the settings are sent again without waiting for an answer (waiting would
    /// make `nfq` read, and discard, the queued packets); otherwise the queue is bound anew.
    pub fn adopt(
        stored: std::os::fd::OwnedFd,
        cfg: &QueueConfig,
    ) -> Result<QueueSocket, QueueError> {
        use std::os::fd::AsRawFd;
        let mut sock = QueueSocket::open_unbound(cfg)?;
        // `nfq` keeps its descriptor private and cannot take one: put the stored socket under
        // the number it uses (its own socket, never bound, closes).
        // SAFETY: dup3 on two descriptors this process owns; `sock.fd` stays owned by `nfq`.
        if unsafe { libc::dup3(stored.as_raw_fd(), sock.fd, libc::O_CLOEXEC) } < 0 {
            return Err(QueueError::io(
                "taking back the stored NFQUEUE socket",
                io::Error::last_os_error(),
            ));
        }
        drop(stored);
        // Unreadable list: trust the store's name, which said this queue.
        let bound = bound_queues(sock.fd).unwrap_or_else(|_| vec![cfg.queue]);
        if !bound.contains(&cfg.queue) {
            sock.bind(cfg)?;
            return Ok(sock);
        }
        if let Err(e) = netlink::send_to_kernel(sock.fd, &config_message(cfg)) {
            return Err(QueueError::io(
                format!("configuring queue {}", cfg.queue),
                e,
            ));
        }
        sock.socket_options(cfg)?;
        Ok(sock)
    }

    /// The `nfq` queue on a fresh socket, no queue bound yet.
    fn open_unbound(cfg: &QueueConfig) -> Result<QueueSocket, QueueError> {
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
        Ok(QueueSocket {
            queue,
            fd,
            num: cfg.queue,
            warnings: Vec::new(),
        })
    }

    fn bind(&mut self, cfg: &QueueConfig) -> Result<(), QueueError> {
        let n = cfg.queue;
        let sock = self;
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
        sock.configure(cfg)
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
        self.socket_options(cfg)
    }

    /// What lives on the socket, not in the kernel's queue instance: set on every socket.
    fn socket_options(&mut self, cfg: &QueueConfig) -> Result<(), QueueError> {
        let n = cfg.queue;
        let q = &mut self.queue;
        // Overflow must be reported, not hidden (nfq turns ENOBUFS off by default).
        q.set_recv_enobufs(true)
            .map_err(|e| QueueError::io("enabling ENOBUFS reports", e))?;
        q.set_nonblocking(true);

        let buf = netlink::size_rcvbuf(self.fd, cfg.rcvbuf)
            .map_err(|(what, e)| QueueError::io(what, e))?;
        if buf.capped(cfg.rcvbuf) {
            self.warnings.push(format!(
                "queue {n}: receive buffer is {} bytes, not the {} requested: bursts overflow \
                 it sooner (needs CAP_NET_ADMIN, or raise net.core.rmem_max)",
                buf.granted / 2,
                cfg.rcvbuf
            ));
        }
        Ok(())
    }

    /// The socket's descriptor (owned by `nfq`; valid while this lives), for the fd store.
    pub fn raw_fd(&self) -> RawFd {
        self.fd
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
                    // The kernel's answer to a verdict that found no such packet waiting: the
                    // batch DROP after taking a socket back, when nothing was left without a
                    // verdict. Nothing to do.
                    libc::ENOENT => continue,
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
        let mut m = Vec::with_capacity(32);
        let ty = NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_VERDICT_BATCH;
        netlink::nfnl_request(&mut m, ty, false, 0, self.num);
        let mut hdr = [0u8; 8];
        hdr[..4].copy_from_slice(&NF_DROP.to_be_bytes());
        hdr[4..].copy_from_slice(&max_id.to_be_bytes());
        crate::nflog::attr::push_attr(&mut m, NFQA_VERDICT_HDR, &hdr);
        netlink::finish(&mut m);
        netlink::send_to_kernel(self.fd, &m)
    }
}
