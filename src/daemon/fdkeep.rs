//! `fwlog run` and the service manager's fd store: take the capture socket back at start,
//! store it once bound (protocol and checks in [`crate::sdnotify::fdstore`]).
//!
//! A stored NFLOG socket keeps receiving while no fwlog runs, so it is read in hold mode
//! ([`NflogSocket::hold_until_released`]): a datagram leaves the socket only once its records
//! are written to the spool and `fwlog.nflog_positions` ([`super::positions`]) says so. A run
//! killed at any moment thus leaves each record either in the spool (and skipped when the next
//! run sees it again) or still in the socket. The groups stay bound when fwlog exits: the store
//! holds the socket, and closes it (releasing the groups) when the unit stops for good.
//!
//! With `--queue` the queue's socket is stored the same way: it keeps the queue bound while no
//! fwlog runs, so the kernel holds the packets for the next process (which drops those the dead
//! one had read without a verdict; see `intake/nfqueue.rs`).

use std::os::fd::AsRawFd;
use std::path::Path;

use super::positions::{self, Positions};
use crate::capture::{CaptureError, NflogConfig, NflogSocket};
use crate::queue::{QueueConfig, QueueError, QueueSocket};
use crate::sdnotify::fdstore::{self, Handed};
use crate::sdnotify::Notifier;

/// Take the stored NFLOG socket back (adding and dropping groups as `cfg` says), or open a new
/// one. Returns the socket and, when taken back, the name it was stored under.
pub fn nflog_socket(
    cfg: &NflogConfig,
    handed: &mut Handed,
    spool: &Path,
    last_seq_global: Option<u32>,
) -> Result<(NflogSocket, Option<String>), CaptureError> {
    let Some((fd, name, claimed)) = handed.nflog.take() else {
        return NflogSocket::open_seeded(cfg, last_seq_global).map(|s| (s, None));
    };
    let saved = fdstore::socket_inode(fd.as_raw_fd())
        .map(|ino| positions::read(spool, ino))
        .unwrap_or_default();
    // A datagram is at most MAX_DATAGRAM bytes of kernel messages; its spool records are
    // about as large (fwlog adds a few TLVs to each).
    let pos = positions::exact(spool, &saved, 2 * crate::capture::MAX_DATAGRAM as u64);
    let (sock, changes) = NflogSocket::adopt(fd, &claimed, &pos, last_seq_global, cfg)?;
    eprintln!(
        "fwlog: took the NFLOG socket back from the service manager's fd store ({})",
        if pos.is_empty() {
            "no positions of its last run: restart gaps are estimated"
        } else {
            "continuing where its last run stopped"
        }
    );
    for c in changes {
        eprintln!("fwlog: {c}");
    }
    Ok((sock, Some(name)))
}

/// Under a service manager, store `sock` (replacing what `old_name` named, and removing the
/// stored fds fwlog does not use) and switch it to hold mode. Returns the positions file to
/// keep up to date, or `None` when nothing was stored (no manager, or it failed: one line).
pub fn store_nflog(
    notifier: &Notifier,
    sock: &mut NflogSocket,
    old_name: Option<String>,
    handed: &mut Handed,
    spool: &Path,
) -> Option<Positions> {
    remove_unwanted(notifier, handed);
    if !notifier.enabled() {
        return None;
    }
    let name = fdstore::nflog_name(sock.groups());
    if let Some(old) = old_name.filter(|o| *o != name) {
        remove(notifier, &old);
    }
    if let Err(e) = notifier.send_fd(&fdstore::store_message(&name), Some(sock.as_raw_fd())) {
        eprintln!(
            "fwlog: cannot keep the NFLOG socket in the service manager's fd store ({e}): a restart loses what it holds"
        );
        return None;
    }
    let ino = fdstore::socket_inode(sock.as_raw_fd())?;
    sock.keep_groups_on_close();
    match Positions::open(spool, ino) {
        Ok(p) => {
            sock.hold_until_released();
            Some(p)
        }
        Err(e) => {
            eprintln!(
                "fwlog: {}: {e} (a kill may print the packets of one datagram twice)",
                spool.join(positions::NAME).display()
            );
            None
        }
    }
}

/// `--queue`: take the stored socket of this queue back, or open a new one; under a service
/// manager, store it. Returns the socket and whether it was taken back. While a socket is bound
/// (or stored) the kernel holds the queue's packets for it, `--queue-bypass` or not: packets
/// queued while fwlog restarts wait for the next process instead of passing unlogged.
pub fn queue_socket(
    cfg: &QueueConfig,
    handed: &mut Handed,
    notifier: &Notifier,
) -> Result<(QueueSocket, bool), QueueError> {
    let (sock, adopted) = match handed.queue.take() {
        Some((fd, name, n)) if n == cfg.queue => match QueueSocket::adopt(fd, cfg) {
            Ok(s) => {
                eprintln!(
                    "fwlog: took the NFQUEUE socket back from the service manager's fd store"
                );
                (s, true)
            }
            Err(e) => {
                // Let the manager close it, so the next start can bind the queue afresh.
                remove(notifier, &name);
                return Err(e);
            }
        },
        Some((fd, name, old)) => {
            release_queue(fd, old, cfg.queue);
            handed.unwanted.push(name);
            (QueueSocket::open(cfg)?, false)
        }
        None => (QueueSocket::open(cfg)?, false),
    };
    remove_unwanted(notifier, handed);
    if notifier.enabled() {
        let name = fdstore::queue_name(cfg.queue);
        if let Err(e) = notifier.send_fd(&fdstore::store_message(&name), Some(sock.raw_fd())) {
            eprintln!(
                "fwlog: cannot keep the NFQUEUE socket in the service manager's fd store ({e}): packets queued during a restart are dropped or bypass"
            );
        }
    }
    Ok((sock, adopted))
}

/// `--queue` names another queue than the stored socket's: close it, saying how many packets
/// waiting in its queue the kernel drops with it.
///
/// Released, not moved (unbind the old queue, bind the new one on the same socket): an NFQUEUE
/// verdict is a security decision, and a queue fwlog is no longer told to audit may now belong
/// to another program (an IPS) or to no one by design. Taking its waiting packets over would
/// mean fwlog accepting packets whose fate is no longer its to decide; the other program cannot
/// bind the queue while fwlog's socket holds it. Released, the kernel drops those packets: none
/// passes, logged or not (the audit promise), and their number is said here.
fn release_queue(fd: std::os::fd::OwnedFd, old: u16, new: u16) {
    let waiting = queued_in(fd.as_raw_fd(), old);
    drop(fd);
    let what = match waiting {
        Some(0) => "no packet was waiting in it".to_string(),
        Some(n) => {
            format!("the kernel dropped the {n} packets waiting in it (not passed, not logged)")
        }
        None => {
            "packets waiting in it, if any, were dropped by the kernel (not passed, not logged)"
                .to_string()
        }
    };
    eprintln!(
        "fwlog: NFQUEUE queue {old} is no longer audited (now queue {new}): its stored socket is released; {what}"
    );
}

/// Packets waiting in queue `queue` of the netfilter socket `fd`, from the kernel's list of
/// queue instances (`queue portid waiting ...` per line), if readable.
fn queued_in(fd: std::os::fd::RawFd, queue: u16) -> Option<u64> {
    let portid = fdstore::netlink_portid(fd)?;
    let list = std::fs::read_to_string("/proc/thread-self/net/netfilter/nfnetlink_queue").ok()?;
    parse_queue_instances(&list, queue, portid)
}

fn parse_queue_instances(list: &str, queue: u16, portid: u32) -> Option<u64> {
    list.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let q = f.next()?.parse::<u16>().ok()?;
        let pid = f.next()?.parse::<u32>().ok()?;
        let waiting = f.next()?.parse::<u64>().ok()?;
        (q == queue && pid == portid).then_some(waiting)
    })
}

/// Close every passed fd fwlog does not use (with `--queue`, a stored NFLOG socket too, and the
/// other way round), releasing what it had bound, and remove them from the store.
pub fn remove_unwanted(notifier: &Notifier, handed: &mut Handed) {
    let mut names = std::mem::take(&mut handed.unwanted);
    names.extend(handed.nflog.take().map(|(_, n, _)| n));
    names.extend(handed.queue.take().map(|(_, n, _)| n));
    if notifier.enabled() {
        for n in &names {
            remove(notifier, n);
        }
    }
}

fn remove(notifier: &Notifier, name: &str) {
    if let Err(e) = notifier.send_fd(&fdstore::remove_message(name), None) {
        eprintln!("fwlog: cannot remove {name} from the service manager's fd store: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_instances_are_matched_by_queue_and_port_id() {
        let list = "    7  41220    30 2   128     0     0       40  1\n    8  41220     0 2   128     0     0        0  1\n    7      9     5 2   128     0     0        5  1\nbad line\n";
        assert_eq!(parse_queue_instances(list, 7, 41220), Some(30));
        assert_eq!(parse_queue_instances(list, 8, 41220), Some(0));
        assert_eq!(parse_queue_instances(list, 7, 1), None);
    }
}
