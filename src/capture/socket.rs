//! The NFLOG netlink socket: open + bind groups, receive batches, unbind on drop. What any
//! netfilter netlink socket needs (creation, buffer sizing, requests, walking a datagram's
//! messages, acknowledgements) is in [`crate::netlink`], shared with the NFQUEUE socket.
//!
//! Threading: [`NflogSocket`] is `Send` but not `Sync`; one dedicated blocking thread owns it
//! and loops on [`NflogSocket::recv_batch`], whose timeout (SO_RCVTIMEO, set only when it
//! changes) bounds how long a stop flag can go unnoticed. The fd is also exposed
//! ([`AsRawFd`]) for callers that prefer poll(2); `recv_batch(.., Duration::ZERO)` then never
//! blocks.
//!
//! Namespace: the socket (and its interface-name cache) belong to the network namespace of the
//! thread that called [`NflogSocket::open`]; they stay there wherever they are used from.
//!
//! Receive path, per call: one `recvmmsg(MSG_WAITFORONE)` fetching up to `batch_datagrams`
//! datagrams (each holding up to `qthresh` records), one realtime and one monotonic clock read,
//! then per record: a TLV scan, a copy into the batch, fwlog's TLVs, a sequence check.
//!
//! Datagram size: the kernel allocates each datagram as an skb of `nlbufsiz` bytes, and the
//! allocator rounds that up (131072 becomes 256 KiB of data room), filling it up to its real
//! tailroom. Receive slots are therefore [`MAX_DATAGRAM`] bytes; a cut datagram is still
//! detected (MSG_TRUNC) and reported as a loss.
//!
//! Overrun: once a datagram does not fit the receive buffer, the kernel marks the socket
//! congested and drops *every* datagram until the reader has emptied the queue completely;
//! recv then fails once with ENOBUFS. So a stalled reader loses a contiguous run, reported as
//! one ENOBUFS event plus one SeqGap per group when records flow again. Measured here
//! (`cargo bench --bench capture`): the default 64 MiB (SO_RCVBUF reads 128 MiB) holds about
//! 520k records of 64-byte packets or 118k of 1000-byte packets.

use super::batch::{RecordBatch, RecordSink};
use super::config::{
    bind_message, bind_only_message, reconfigure_message, unbind_message, NflogConfig, MAX_SLOTS,
    MSG_PACKET,
};
use super::error::CaptureError;
use super::ifname::IfNameCache;
use super::loss::LossTracker;
use super::record::{push_record, Stamp};
use crate::netlink::{self, has_cap_net_admin};
use crate::nflog::loss::{Cause, LossEvent};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Size of one receive slot: the largest datagram the kernel can build (see module docs).
pub const MAX_DATAGRAM: usize = 256 * 1024 + 4096;

/// How long `open` waits for the kernel to acknowledge a BIND.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Counters for the daemon's status output and the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    pub datagrams: u64,
    pub records: u64,
    pub bytes: u64,
    pub largest_datagram: usize,
    pub enobufs: u64,
    pub recv_calls: u64,
}

/// Everything the receive path mutates besides the slots (split out so a datagram borrowed
/// from the slots can be processed while these are mutated).
pub(super) struct Intake {
    names: IfNameCache,
    pub(super) tracker: LossTracker,
    pub(super) stats: CaptureStats,
}

#[derive(Debug)]
pub struct NflogSocket {
    pub(super) fd: OwnedFd,
    /// Groups bound so far (unbound on drop).
    pub(super) bound: Vec<u16>,
    pub(super) slots: Vec<u8>,
    nslots: usize,
    pub(super) intake: Intake,
    /// Records that arrived while `open` waited for acknowledgements.
    pub(super) pending: RecordBatch,
    rcvtimeo: Option<Duration>,
    rcvbuf: usize,
    warnings: Vec<String>,
    pub(super) nl_seq: u32,
    /// Hold mode ([`NflogSocket::hold_until_released`]): receive by peeking at the head
    /// datagram, and take it off the queue only in [`NflogSocket::release`].
    pub(super) hold: bool,
    /// A datagram was peeked and not yet released.
    pub(super) held: bool,
    /// Leave the groups bound when dropped (the socket lives on in the service manager).
    pub(super) keep_groups: bool,
}

impl Intake {
    /// A fresh receive state: no sequence numbers seen, an empty interface-name cache.
    pub(super) fn new() -> io::Result<Intake> {
        Ok(Intake {
            names: IfNameCache::new()?,
            tracker: LossTracker::new(),
            stats: CaptureStats::default(),
        })
    }
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake")
            .field("stats", &self.stats)
            .finish()
    }
}

pub(super) use crate::netlink::errno;

fn realtime() -> (i64, u32) {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(_) => (0, 0),
    }
}

impl NflogSocket {
    /// Open a netlink socket, size its buffer, and bind every group of `cfg` to it.
    ///
    /// Errors are one line each: [`CaptureError::NoPermission`] (no CAP_NET_ADMIN),
    /// [`CaptureError::GroupBusy`] (another socket owns a group), [`CaptureError::Unsupported`]
    /// (no nfnetlink / nfnetlink_log). Groups bound before a failure are unbound again.
    pub fn open(cfg: &NflogConfig) -> Result<NflogSocket, CaptureError> {
        NflogSocket::open_seeded(cfg, None)
    }

    /// [`open`](Self::open) for a run that follows another: `last_seq_global` is the last
    /// NFULA_SEQ_GLOBAL the previous run spooled, and the first numbered record after it is
    /// compared with it (a [`Cause::Restart`] loss for the numbers between). It is set before
    /// any group is bound: records of a group bound first can arrive while a later one is
    /// being bound, and judged without it, a gap among them would hide the restart's loss.
    pub fn open_seeded(
        cfg: &NflogConfig,
        last_seq_global: Option<u32>,
    ) -> Result<NflogSocket, CaptureError> {
        cfg.validate()?;
        let cap = has_cap_net_admin();
        let fd = netlink::open_netfilter().map_err(|e| match errno(&e) {
            libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT => CaptureError::Unsupported {
                what: format!("netlink family NETLINK_NETFILTER: {e}"),
            },
            libc::EPERM | libc::EACCES => CaptureError::NoPermission {
                what: "opening the NFLOG netlink socket".into(),
            },
            _ => CaptureError::io("opening the NFLOG netlink socket", e),
        })?;
        let mut sock = NflogSocket::with_fd(fd, cfg, last_seq_global)?;
        for &group in &cfg.groups {
            sock.bind_group(group, cfg, cap)?;
        }
        Ok(sock)
    }

    /// Size the receive buffer of the bound socket `fd` and wrap it (no group bound yet), its
    /// loss tracker seeded with `last_seq_global` (see [`NflogSocket::open_seeded`]).
    pub(super) fn with_fd(
        fd: OwnedFd,
        cfg: &NflogConfig,
        last_seq_global: Option<u32>,
    ) -> Result<NflogSocket, CaptureError> {
        let mut warnings = Vec::new();
        let buf = netlink::size_rcvbuf(fd.as_raw_fd(), cfg.rcvbuf)
            .map_err(|(what, e)| CaptureError::io(what, e))?;
        if !buf.forced {
            warnings.push(format!(
                "cannot force a {} byte receive buffer (SO_RCVBUFFORCE needs CAP_NET_ADMIN in \
                 the initial user namespace); using SO_RCVBUF, capped by net.core.rmem_max",
                cfg.rcvbuf
            ));
        }
        let rcvbuf = buf.granted;
        if buf.capped(cfg.rcvbuf) {
            warnings.push(format!(
                "receive buffer is {} bytes, not the {} requested: bursts may overflow it \
                 (raise net.core.rmem_max)",
                rcvbuf / 2,
                cfg.rcvbuf
            ));
        }

        let mut intake =
            Intake::new().map_err(|e| CaptureError::io("opening the interface-name socket", e))?;
        if let Some(s) = last_seq_global {
            intake.tracker.seed(s);
        }
        Ok(NflogSocket {
            fd,
            bound: Vec::with_capacity(cfg.groups.len()),
            slots: vec![0u8; MAX_DATAGRAM * cfg.batch_datagrams],
            nslots: cfg.batch_datagrams,
            intake,
            pending: RecordBatch::new(),
            rcvtimeo: None,
            rcvbuf,
            warnings,
            nl_seq: 0,
            hold: false,
            held: false,
            keep_groups: false,
        })
    }

    pub(super) fn send(&self, msg: &[u8]) -> io::Result<()> {
        netlink::send_to_kernel(self.fd.as_raw_fd(), msg)
    }

    pub(super) fn bind_group(
        &mut self,
        group: u16,
        cfg: &NflogConfig,
        cap: Option<bool>,
    ) -> Result<(), CaptureError> {
        self.nl_seq = self.nl_seq.wrapping_add(1);
        let seq = self.nl_seq;
        let what = || format!("binding NFLOG group {group}");
        let split = failpoint_split_bind();
        let msg = if split {
            bind_only_message(seq, group)
        } else {
            bind_message(seq, group, cfg)
        };
        self.send(&msg).map_err(|e| CaptureError::io(what(), e))?;
        let code = self
            .wait_ack(seq)
            .map_err(|e| CaptureError::io(format!("{}: waiting for the kernel", what()), e))?;
        match code {
            0 => {
                self.bound.push(group);
                if split {
                    std::thread::sleep(Duration::from_millis(1));
                    self.nl_seq = self.nl_seq.wrapping_add(1);
                    self.send(&reconfigure_message(self.nl_seq, group, cfg))
                        .map_err(|e| CaptureError::io(what(), e))?;
                }
                Ok(())
            }
            libc::EPERM if cap == Some(false) => Err(CaptureError::NoPermission { what: what() }),
            libc::EPERM if cap == Some(true) => Err(CaptureError::GroupBusy { group }),
            // Capability set unreadable: say both.
            libc::EPERM => Err(CaptureError::NoPermission {
                what: format!("{} (or the group is bound by another process)", what()),
            }),
            // nfnetlink without the ULOG subsystem answers EINVAL; 524 is the kernel's ENOTSUPP.
            libc::EINVAL | libc::EOPNOTSUPP | libc::ENOENT | 524 => {
                Err(CaptureError::Unsupported {
                    what: format!("{}: {}", what(), io::Error::from_raw_os_error(code)),
                })
            }
            c => Err(CaptureError::io(what(), io::Error::from_raw_os_error(c))),
        }
    }

    /// Read until the acknowledgement of request `seq` arrives; returns its errno (0 = ok).
    /// Packets for groups bound earlier may arrive meanwhile: they are kept in `pending`.
    fn wait_ack(&mut self, seq: u32) -> io::Result<i32> {
        self.set_timeout(ACK_TIMEOUT)?;
        let deadline = Instant::now() + ACK_TIMEOUT;
        loop {
            match netlink::recv_one(self.fd.as_raw_fd(), &mut self.slots[..MAX_DATAGRAM], 0) {
                Err(e) => match errno(&e) {
                    libc::EINTR => {}
                    libc::ENOBUFS => {
                        self.intake.stats.enobufs += 1;
                        self.pending.push_loss(enobufs_event());
                    }
                    libc::EAGAIN => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no acknowledgement from the kernel within 5 s",
                        ))
                    }
                    _ => return Err(e),
                },
                Ok(n) => {
                    let stamp = stamp_now();
                    let mut ack = None;
                    process_datagram(
                        &self.slots[..n],
                        &stamp,
                        &mut self.intake,
                        &mut self.pending,
                        &mut |s, code| {
                            if s == seq {
                                ack = Some(code)
                            }
                        },
                    );
                    if let Some(code) = ack {
                        return Ok(code);
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no acknowledgement from the kernel",
                ));
            }
        }
    }

    pub(super) fn set_timeout(&mut self, t: Duration) -> io::Result<()> {
        if self.rcvtimeo == Some(t) {
            return Ok(());
        }
        netlink::set_rcvtimeo(self.fd.as_raw_fd(), t)?;
        self.rcvtimeo = Some(t);
        Ok(())
    }

    /// Receive what is queued (waiting up to `timeout` for the first datagram; `ZERO` never
    /// waits) into `out`, which is cleared first. Returns the number of records; 0 on timeout.
    /// Losses noticed on the way are in `out.loss_events()` (an ENOBUFS is reported there, not
    /// as an error, and receiving continues).
    ///
    /// One loop for both modes; they differ only in how a call fetches datagrams
    /// ([`Self::fetch`]): up to `batch_datagrams` taken off the queue by one `recvmmsg`, or in
    /// hold mode the head datagram peeked at and left queued until [`Self::release`] (the
    /// kernel offers no way to peek past the head of a netlink socket's queue, so hold mode
    /// takes several datagrams by a peek and a release each, see `daemon::intake::nflog`).
    pub fn recv_batch(
        &mut self,
        out: &mut RecordBatch,
        timeout: Duration,
    ) -> Result<usize, CaptureError> {
        out.clear();
        self.recv_into(out, timeout)
    }

    /// [`Self::recv_batch`] into any [`RecordSink`]: each record is handed over while its
    /// kernel message is still in the receive slot, so the sink makes the one copy of it
    /// (the daemon: into the spool writer's buffer). Returns the number of records handed
    /// over. In hold mode the records handed over by one call must be written out before
    /// [`Self::release`].
    pub fn recv_into(
        &mut self,
        out: &mut impl RecordSink,
        timeout: Duration,
    ) -> Result<usize, CaptureError> {
        if !self.pending.is_empty() || !self.pending.loss.is_empty() {
            let n = self.pending.len();
            self.pending.drain_into(out);
            return Ok(n);
        }
        if self.held {
            // The caller did not release the last one: reading it again would duplicate it.
            return Ok(0);
        }
        let mut flags = if self.hold {
            // MSG_TRUNC: return the datagram's real length, so a cut one is noticed.
            libc::MSG_PEEK | libc::MSG_TRUNC
        } else {
            libc::MSG_WAITFORONE
        };
        if timeout.is_zero() {
            flags |= libc::MSG_DONTWAIT;
        } else {
            // SO_RCVTIMEO of 0 would mean "forever": a sub-microsecond timeout becomes 1 µs.
            self.set_timeout(timeout.max(Duration::from_micros(1)))
                .map_err(|e| CaptureError::io("setting SO_RCVTIMEO", e))?;
        }
        let mut got = [(0usize, false); MAX_SLOTS];
        let mut records = 0;
        loop {
            self.intake.stats.recv_calls += 1;
            let n = match self.fetch(flags, &mut got) {
                Ok(n) => n,
                Err(e) => {
                    if self.recv_failed(e, out)? {
                        flags |= libc::MSG_DONTWAIT;
                        continue;
                    }
                    return Ok(records);
                }
            };
            let stamp = stamp_now();
            for (i, &(len, cut)) in got.iter().take(n).enumerate() {
                if cut {
                    out.loss(LossEvent::now(Cause::Corrupt, None, 0, None));
                }
                let d = &self.slots[i * MAX_DATAGRAM..i * MAX_DATAGRAM + len];
                records += process_datagram(d, &stamp, &mut self.intake, out, &mut |_, _| {});
            }
            self.held = self.hold && n > 0;
            return Ok(records);
        }
    }

    /// One receive system call: the datagrams it fetched into the slots, as (length kept,
    /// cut short) per slot, and how many.
    fn fetch(&mut self, flags: i32, got: &mut [(usize, bool); MAX_SLOTS]) -> io::Result<usize> {
        let fd = self.fd.as_raw_fd();
        if self.hold {
            let len = netlink::recv_one(fd, &mut self.slots[..MAX_DATAGRAM], flags)?;
            got[0] = (len.min(MAX_DATAGRAM), len > MAX_DATAGRAM);
            return Ok(1);
        }
        // The iovec/mmsghdr arrays hold raw pointers into `slots`, so they are built per call
        // on the stack rather than stored, which keeps the socket Send. Only the `nslots`
        // entries the call uses are written: a call often brings one or two datagrams (a
        // group's per flush timeout), and zeroing all MAX_SLOTS entries (5 KiB) cost more than
        // handling them.
        let mut nslots = 0;
        let mut iov = [const { MaybeUninit::<libc::iovec>::uninit() }; MAX_SLOTS];
        let mut hdrs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; MAX_SLOTS];
        for ((chunk, v), h) in self
            .slots
            .chunks_exact_mut(MAX_DATAGRAM)
            .zip(iov.iter_mut())
            .zip(hdrs.iter_mut())
            .take(self.nslots)
        {
            let v = v.write(libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: chunk.len(),
            });
            // SAFETY: mmsghdr is a plain C struct; all-zero is a valid value.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
            h.write(m);
            nslots += 1;
        }
        // SAFETY: hdrs[..nslots] were initialised just above and point at iovecs covering disjoint slots
        // we own, alive for the call; no timeout pointer (SO_RCVTIMEO bounds the wait instead).
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr().cast::<libc::mmsghdr>(),
                nslots as libc::c_uint,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = (n as usize).min(nslots);
        for (g, h) in got.iter_mut().zip(hdrs.iter()).take(n) {
            // SAFETY: `n <= nslots`, and the first `nslots` entries were initialised above.
            let h = unsafe { h.assume_init_ref() };
            let cut = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            *g = ((h.msg_len as usize).min(MAX_DATAGRAM), cut);
        }
        Ok(n)
    }

    /// A receive failed with `e`. `Ok(true)`: an overrun, reported in `out`; read on what is
    /// queued without blocking. `Ok(false)`: nothing (more) queued, or a signal; return what
    /// `out` holds.
    pub(super) fn recv_failed(
        &mut self,
        e: io::Error,
        out: &mut impl RecordSink,
    ) -> Result<bool, CaptureError> {
        match errno(&e) {
            libc::EAGAIN | libc::EINTR => Ok(false),
            libc::ENOBUFS => {
                // Overrun: the kernel drops datagrams until the queue is drained.
                self.intake.stats.enobufs += 1;
                out.loss(enobufs_event());
                Ok(true)
            }
            _ => Err(CaptureError::io("receiving from the NFLOG socket", e)),
        }
    }

    pub fn tracker(&self) -> &LossTracker {
        &self.intake.tracker
    }

    pub fn stats(&self) -> CaptureStats {
        self.intake.stats
    }

    /// The receive buffer the kernel granted (SO_RCVBUF as read back: twice the request).
    pub fn rcvbuf(&self) -> usize {
        self.rcvbuf
    }

    /// Non-fatal problems met while opening (e.g. the receive buffer could not be forced).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Datagrams one receive call may take (`batch_datagrams`).
    pub fn batch_datagrams(&self) -> usize {
        self.nslots
    }

    pub fn groups(&self) -> &[u16] {
        &self.bound
    }
}

pub(super) fn enobufs_event() -> LossEvent {
    LossEvent::now(Cause::Enobufs, None, 0, None)
}

pub(super) fn stamp_now() -> Stamp {
    let (sec, nsec) = realtime();
    Stamp {
        sec,
        nsec,
        now: Instant::now(),
    }
}

/// Walk the netlink messages of one datagram: packets become records in `out`, error/ack
/// messages go to `ack(seq, errno)`, anything else (NLMSG_DONE after a multi-part batch) is
/// skipped. Returns the number of records handed to `out`.
pub(super) fn process_datagram(
    d: &[u8],
    stamp: &Stamp,
    intake: &mut Intake,
    out: &mut impl RecordSink,
    ack: &mut dyn FnMut(u32, i32),
) -> usize {
    intake.stats.datagrams += 1;
    intake.stats.bytes += d.len() as u64;
    intake.stats.largest_datagram = intake.stats.largest_datagram.max(d.len());
    let mut records = 0;
    for m in netlink::messages(d) {
        let Ok(m) = m else {
            out.loss(LossEvent::now(Cause::Corrupt, None, 0, None));
            return records;
        };
        if m.ty == MSG_PACKET {
            intake.stats.records += 1;
            records += usize::from(push_record(
                out,
                m.body,
                stamp,
                &mut intake.names,
                &mut intake.tracker,
            ));
        } else if let Some(code) = m.ack_errno() {
            ack(m.seq, code);
        }
    }
    records
}

impl AsRawFd for NflogSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for NflogSocket {
    /// Unbind our groups so another process can bind them at once. (Closing the socket would
    /// also release them, but only when the last reference to the socket goes away, which a
    /// forked child holding the fd could delay.)
    fn drop(&mut self) {
        if self.keep_groups {
            return;
        }
        for &g in &self.bound {
            self.nl_seq = self.nl_seq.wrapping_add(1);
            let _ = self.send(&unbind_message(self.nl_seq, g, false));
        }
    }
}

/// Debug builds only: with `FWLOG_FAILPOINT=split-bind`, bind each group first and apply its
/// settings (the sequence number flags among them) 1 ms later in a message of their own. The
/// kernel applies a bind's settings just after it makes the group's instance visible, so
/// under a flood a record is now and then logged without numbers at a start; the failpoint
/// widens that instant until a flood meets it at every start (tests/daemon_crash.rs). Release
/// builds: never.
fn failpoint_split_bind() -> bool {
    cfg!(debug_assertions) && std::env::var_os("FWLOG_FAILPOINT").is_some_and(|v| v == "split-bind")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_and_errors_can_move_to_the_intake_thread() {
        fn send<T: Send>() {}
        send::<NflogSocket>();
        send::<CaptureError>();
        send::<RecordBatch>();
    }

    #[test]
    fn open_rejects_bad_settings_before_touching_the_kernel() {
        let e = NflogSocket::open(&NflogConfig::default()).expect_err("no groups");
        assert!(matches!(e, CaptureError::InvalidConfig(_)), "{e}");
    }
}
