//! Keeping an NFLOG socket across processes (the service manager's fd store): taking a bound
//! socket back and reconciling its groups with the command line ([`NflogSocket::adopt`]), and
//! hold mode ([`NflogSocket::hold_until_released`]), in which a datagram leaves the socket only
//! once the caller has written its records out, so a process killed at any moment leaves each
//! record in the spool or in the socket.
//!
//! The groups a socket has are read from the kernel's list of NFLOG instances
//! (`/proc/thread-self/net/netfilter/nfnetlink_log`: `group portid ...` per line, by the
//! socket's port id), not trusted from the store's name. Kept groups get the settings again in a
//! message that asks for no acknowledgement: it would queue behind every buffered packet, and
//! waiting for it would pull them all into memory.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::config::{reconfigure_message, unbind_message, NflogConfig};
use super::error::{has_cap_net_admin, CaptureError};
use super::socket::{enobufs_event, errno, NflogSocket};

impl NflogSocket {
    /// Take back a bound NFLOG socket a previous run kept in the service manager's fd store
    /// (the caller checked it is an `AF_NETLINK`/`NETLINK_NETFILTER` socket). The groups it
    /// has are read from the kernel (`/proc/net/netfilter/nfnetlink_log`, by this socket's port
    /// id; `claimed` stands in when that is unreadable); groups `cfg` adds are bound, groups it
    /// dropped are unbound, groups kept get `cfg`'s settings again. `positions` (group, next
    /// NFULA_SEQ) are where the previous run stopped spooling: set before anything is read, so
    /// records it spooled but had not consumed are skipped and an overflow while no process
    /// read is an exact gap. `last_seq_global`: as for [`NflogSocket::open_seeded`], for the
    /// groups without a position. Returns the socket and one line per group change.
    pub fn adopt(
        fd: OwnedFd,
        claimed: &[u16],
        positions: &[(u16, u32)],
        last_seq_global: Option<u32>,
        cfg: &NflogConfig,
    ) -> Result<(NflogSocket, Vec<String>), CaptureError> {
        cfg.validate()?;
        let cap = has_cap_net_admin();
        let had = match bound_groups(fd.as_raw_fd()) {
            Ok(g) => g,
            Err(_) => claimed.to_vec(),
        };
        // The global estimate first: an exact position of a group replaces it
        // (`LossTracker::seed_group`).
        let mut sock = NflogSocket::with_fd(fd, cfg, last_seq_global)?;
        for &(g, next) in positions {
            if had.contains(&g) {
                sock.intake.tracker.seed_group(g, next);
            }
        }
        let mut changes = Vec::new();
        for &g in had.iter().filter(|g| !cfg.groups.contains(g)) {
            sock.nl_seq = sock.nl_seq.wrapping_add(1);
            sock.send(&unbind_message(sock.nl_seq, g, false))
                .map_err(|e| CaptureError::io(format!("unbinding NFLOG group {g}"), e))?;
            changes.push(format!("NFLOG group {g} is no longer logged (unbound)"));
        }
        for &g in &cfg.groups {
            if had.contains(&g) {
                sock.nl_seq = sock.nl_seq.wrapping_add(1);
                sock.send(&reconfigure_message(sock.nl_seq, g, cfg))
                    .map_err(|e| CaptureError::io(format!("configuring NFLOG group {g}"), e))?;
                sock.bound.push(g);
            } else {
                sock.bind_group(g, cfg, cap)?;
                changes.push(format!("NFLOG group {g} is new: bound"));
            }
        }
        Ok((sock, changes))
    }

    /// Receive in hold mode from now on: each [`recv_batch`](Self::recv_batch) peeks at the
    /// head datagram and leaves it queued until [`release`](Self::release). A process killed in
    /// between leaves it to the next one that takes the socket over, so nothing it received
    /// but had not yet written out is lost. Costs one more system call per datagram.
    pub fn hold_until_released(&mut self) {
        self.hold = true;
    }

    /// Take the datagram the last `recv_batch` peeked at off the queue (hold mode; otherwise a
    /// no-op). Call it once its records are written out.
    pub fn release(&mut self) -> Result<(), CaptureError> {
        while self.held {
            // A zero-length read dequeues the next datagram whole (its bytes are discarded).
            // SAFETY: a zero-length read writes nothing; a null buffer is allowed.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                )
            };
            if n >= 0 {
                self.held = false;
                break;
            }
            let e = io::Error::last_os_error();
            match errno(&e) {
                libc::EINTR => {}
                // The overflow is reported first, then the datagram is still at the head.
                libc::ENOBUFS => {
                    self.intake.stats.enobufs += 1;
                    self.pending.push_loss(enobufs_event());
                }
                _ => return Err(CaptureError::io("releasing a received NFLOG datagram", e)),
            }
        }
        Ok(())
    }

    /// Leave the groups bound when this socket is dropped: it lives on in the service
    /// manager's fd store, which hands it to the next run.
    pub fn keep_groups_on_close(&mut self) {
        self.keep_groups = true;
    }
}

/// The NFLOG groups bound by the netlink socket `fd`, from the kernel's list of instances in
/// the caller's network namespace (`group portid ...` per line).
fn bound_groups(fd: RawFd) -> io::Result<Vec<u16>> {
    // SAFETY: sockaddr_nl is plain data; getsockname fills at most `len` bytes of it.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    // SAFETY: addr and len are valid for writes.
    let rc =
        unsafe { libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_nl).cast(), &mut len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let list = std::fs::read_to_string("/proc/thread-self/net/netfilter/nfnetlink_log")?;
    Ok(parse_instances(&list, addr.nl_pid))
}

fn parse_instances(list: &str, portid: u32) -> Vec<u16> {
    list.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let group = f.next()?.parse::<u16>().ok()?;
            let pid = f.next()?.parse::<u32>().ok()?;
            (pid == portid).then_some(group)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_matched_by_port_id() {
        let list = "    7  25115     0 2 65531    100  1\n   12  25115     0 2 65535      1  1\n    9    400     0 2 65535      1  1\ngarbage\n";
        assert_eq!(parse_instances(list, 25115), vec![7, 12]);
        assert_eq!(parse_instances(list, 1), Vec::<u16>::new());
    }
}
