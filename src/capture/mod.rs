//! Live NFLOG capture over netlink.
//!
//! Intake does as little as possible: a dedicated *blocking* thread (std, not tokio) calls
//! [`NflogSocket::recv_batch`] in a loop, appends the returned [`RecordBatch`] to the spool and
//! commits. Decoding, DNS and printing run behind the spool.
//!
//! # What a spool record is
//! For every NFLOG packet message the kernel sends, one *spool record* is produced:
//!
//! ```text
//!   nfgenmsg (4 bytes) + the kernel's TLVs      copied verbatim (nlmsghdr dropped), padded to 4
//!   fwlog RECV_TIME TLV                         local realtime clock when the batch was received
//!   fwlog *_NAME TLV for each IFINDEX_* present interface name resolved at receive time
//! ```
//!
//! which is exactly a LINKTYPE_NFLOG record that [`crate::nflog::attr::parse`] reads back. A name
//! TLV is omitted when the index no longer resolves (the interface vanished before we looked):
//! the record then carries the index only.
//!
//! # Invariants
//! - Every packet message the kernel delivers becomes exactly one record, in kernel order; a
//!   record is never dropped for being malformed (it is copied as is; the parser marks damage).
//! - Losses are never silent: a per-group NFULA_SEQ gap, an ENOBUFS overrun, a truncated
//!   datagram or a malformed datagram each yield a [`crate::nflog::loss::LossEvent`] positioned
//!   in the batch.
//! - No per-packet heap allocation on the receive path: the batch buffers and the datagram
//!   slots are reused between calls.
//!
//! # Using it (the daemon's intake thread)
//! ```no_run
//! use fwlog::capture::{NflogConfig, NflogSocket, RecordBatch};
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::time::Duration;
//!
//! fn intake(stop: &AtomicBool, last_spooled_seq_global: Option<u32>) -> anyhow::Result<()> {
//!     let cfg = NflogConfig { groups: vec![5], ..Default::default() };
//!     // One-line errors: capability, busy, no module. The last run's number: restart gaps.
//!     let mut sock = NflogSocket::open_seeded(&cfg, last_spooled_seq_global)?;
//!     for w in sock.warnings() {
//!         eprintln!("fwlog: warning: {w}");
//!     }
//!     let mut batch = RecordBatch::new();
//!     while !stop.load(Ordering::Relaxed) {
//!         sock.recv_batch(&mut batch, Duration::from_millis(200))?;
//!         for (before, loss) in batch.loss_events() {
//!             eprintln!("fwlog: {loss} (before record {before} of this batch)");
//!         }
//!         // spool.append(batch.data(), batch.ends()); spool.commit(); ...
//!     }
//!     Ok(())
//! }
//! ```
//! The daemon uses [`NflogSocket::recv_into`] instead: it hands each record to a
//! [`RecordSink`] while the kernel's message is still in the receive slot ([`NewRecord`]: its
//! exact length, and a `write_to` that builds it), so the record is copied once, straight into
//! the spool writer's buffer; a [`RecordBatch`] is the sink `recv_batch` uses.
//!
//! All records of one `recv_batch` call share one receive time (taken when `recvmmsg`
//! returned: they were all queued by then). Records whose hook stamps them (input, forward,
//! prerouting) also carry the kernel's own timestamp, which the parser prefers.
//!
//! # Files
//! `config.rs` (settings + CONFIG wire messages), `socket.rs` (the netlink socket, recvmmsg),
//! `record.rs` (kernel message -> spool record), `ifname.rs` (ifindex -> name cache),
//! `loss.rs` (sequence tracking), `batch.rs` (the reusable output buffer), `error.rs`,
//! `hold.rs` (taking a socket back from the service manager's fd store; hold mode), `feed.rs`
//! (datagrams through the receive path without a socket, for instruction counts).

mod batch;
mod config;
mod error;
mod feed;
mod hold;
mod ifname;
mod loss;
mod record;
mod socket;

pub use batch::{RecordBatch, RecordMeta, RecordSink, Records};
pub use config::{NflogConfig, DEFAULT_FLUSH_TIMEOUT_CS, DEFAULT_QTHRESH};
pub use error::CaptureError;
#[doc(hidden)]
pub use feed::Feeder;
pub use ifname::{index_to_name, IfNameCache};
pub use loss::LossTracker;
pub use record::{record_group, scan_group_seq, scan_seq_global, NewRecord};
pub use socket::{CaptureStats, NflogSocket, MAX_DATAGRAM};
