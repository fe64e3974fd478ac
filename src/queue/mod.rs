//! NFQUEUE audit mode: `fwlog run --queue N [--fail-open]`.
//!
//! In NFLOG mode the kernel sends fwlog a *copy* of each packet and lets the packet go on at
//! once; if fwlog is dead, slow or out of disk, packets pass unlogged. In NFQUEUE mode the kernel
//! *holds* each packet until fwlog gives a verdict, and fwlog gives ACCEPT only after the
//! packet's spool record is on disk. So no packet passes the rule unlogged: the log is complete
//! by construction, at the price of the firewall's throughput and latency now depending on
//! fwlog and its disk.
//!
//! # Invariants
//! - **Spool before verdict.** A packet gets ACCEPT only after the commit that holds its record
//!   returned (with the default `--fsync batch`: after its `fdatasync`). With `--fsync
//!   interval`/`never` "on disk" means "handed to the kernel": it survives `kill -9`, not a
//!   power cut, exactly as for NFLOG mode.
//! - **Nothing is ever accepted unlogged, except with `--fail-open`,** and then every such
//!   packet is counted, reported on stderr and, as soon as the spool takes records again, in
//!   the output stream itself as a loss record (cause `spool-full`, or `seq-gap` for overflows
//!   of the netlink socket, see below).
//! - **A crash drops, never passes.** Packets fwlog received but had not yet given a verdict
//!   when it died are dropped by the kernel when the socket closes (the kernel flushes a queue
//!   whose listener is gone with NF_DROP). A packet that was spooled but not yet accepted when
//!   fwlog died is therefore in the log but did not pass: the log is a superset of what passed.
//! - **Batching.** Intake drains whatever the socket holds (up to `--batch-records`), appends
//!   every record, commits once (one `pwrite` + one `fdatasync`) and then sends the verdicts.
//!   There is no waiting to fill a batch: a lone packet is committed at once (latency: one
//!   fsync), and under load the packets that arrive during one fsync form the next batch, so
//!   throughput grows with load (`--batch-delay` does not apply in this mode).
//!
//! # The spool record of a queued packet
//! It is NFLOG-shaped, so the rest of the pipeline (decode, DNS, formats, replay, pcap export)
//! treats it exactly like a logged packet ([`record::encode_record`] builds a
//! [`crate::packet::Packet`] and writes it with [`crate::nflog::attr::encode_packet`]):
//!
//! | field         | value                                                                  |
//! |---------------|------------------------------------------------------------------------|
//! | family        | from the IP version nibble of the payload (4: AF_INET, 6: AF_INET6); `nfq` does not expose the nfgenmsg family |
//! | group         | the queue number N                                                     |
//! | prefix        | none (NFQUEUE rules have no prefix; an invented one could be mistaken for a real `log prefix`) |
//! | seq           | the kernel's packet id (per queue, from 1, +1 per packet handed to fwlog) |
//! | hook, hw_protocol, mark, uid, gid, hwaddr, payload | as the kernel sent them (NFQA_*)  |
//! | in/out/physin/physoutdev | indexes, plus the names resolved at receive time (as capture does) |
//! | orig_len      | NFQA_CAP_LEN when the packet was cut by the copy range                 |
//! | timestamp     | the kernel's NFQA_TIMESTAMP, else fwlog's receive time (unlike NFLOG, NFQUEUE sends a time only for packets the kernel stamped, i.e. received ones while some socket on the machine asked for timestamps) |
//!
//! # No `--user`
//! nfnetlink checks CAP_NET_ADMIN of the *sending task* on every message, verdicts included
//! (measured: after dropping privileges the first verdict fails with EPERM and the packet stays
//! queued). So `--queue` conflicts with `--user`; fwlog keeps its privileges in this mode.
//!
//! # What loss can be seen
//! - *Netlink socket overflow*: the kernel has already numbered the packet, so the packet ids
//!   show a gap. Without `--fail-open` those packets were dropped; with it they passed
//!   unlogged. Either way the gap is spooled as a loss record (cause `seq-gap`, group = queue)
//!   when the next packet is read, or, for loss at the very end of a burst, within about a
//!   second of the queue going idle (the kernel's id counter in /proc, see `ids.rs`).
//!   ENOBUFS reporting is switched on, so each episode is also one `enobufs` loss record.
//! - *Kernel queue full* (more than the queue's maximum length waiting for verdicts): the
//!   kernel does not number the packet, so userspace cannot see it. fwlog sets the maximum
//!   length to [`DEFAULT_MAX_LEN`], far above what the receive buffer can hold, so the socket
//!   always overflows first and every overflow is visible as a gap.
//! - *Spool refuses a record* (`--spool-max` reached, or a full filesystem refused the batch's
//!   commit): DROP, or with `--fail-open` ACCEPT, counted and reported (a `spool-full` loss
//!   record once there is room again); fwlog keeps running. Why not hold the verdicts and retry:
//!   see `daemon/intake/nfqueue.rs`.
//! - *Packets swallowed at start-up*: `nfq` discards packet messages that arrive while it waits
//!   for the acknowledgement of a configuration message (between binding the queue and the end
//!   of set-up). Their ids are the gap before the first packet read; fwlog drops them with one
//!   batch verdict, so they are never held until exit, and reports them on stderr.
//!
//! # Rules (iptables-nft; nft's own `queue` statement is not built into every kernel)
//! ```text
//! iptables  -A OUTPUT -p udp --dport 53 -j NFQUEUE --queue-num 3                 # fail closed
//! iptables  -A FORWARD -j NFQUEUE --queue-num 3 --queue-bypass                   # fail open
//! ip6tables -A INPUT -p tcp --syn -j NFQUEUE --queue-num 3
//! ```
//! `--queue-bypass` makes the kernel *accept* packets while no program listens on the queue
//! (fwlog stopped, crashed, restarting); without it they are dropped. `--fail-open` is the other
//! half: while fwlog runs but cannot keep up, packets that do not fit are accepted instead of
//! dropped. Both trade completeness of the log for availability of the network.
//!
//! # The `nfq` crate and what fwlog adds
//! `nfq` 0.2.5 is pure Rust but has a blocking API only and keeps its socket descriptor private.
//! fwlog needs the descriptor for three things: poll(2) with a timeout (so a stop request is
//! noticed when no packets come), `SO_RCVBUFFORCE` (the default 208 KiB buffer holds only a
//! few hundred queued packets) and a raw batch DROP verdict (above). [`QueueSocket::open`]
//! finds it by diffing the process's NETLINK_NETFILTER sockets before and after `nfq` creates
//! its own, and uses it only while the `nfq::Queue` that owns it is alive. `nfq` also panics
//! (asserts) on malformed netlink messages from the kernel; the kernel is trusted here.
//!
//! # Files
//! `socket.rs` (the queue socket: open, configure, receive batches, verdicts), `record.rs`
//! (queued packet -> spool record), `ids.rs` (packet-id gap tracking), `error.rs`.

mod error;
mod ids;
pub mod record;
mod socket;

pub use error::QueueError;
pub use ids::{issued_ids, IdTracker};
pub use nfq::{Message, Verdict};
pub use record::{encode_record, QueuedPacket};
pub use socket::{QueueConfig, QueueSocket, RecvOutcome, DEFAULT_MAX_LEN};
