//! Capture files: reading pcap / pcapng into [`Packet`](crate::packet::Packet)s, and writing
//! LINKTYPE_NFLOG pcaps.
//!
//! Reading goes through the `pcap-parser` crate (legacy pcap in either byte order, microsecond
//! or nanosecond, and pcapng); this module adds what fwlog needs on top: link-type dispatch
//! (`link.rs`), validation that rejects files libpcap rejects (bad versions, reserved link-type
//! bits), and one-line errors that name the reason. A record is handed to the caller while it is
//! still in the reader's buffer, so nothing is copied per packet.

pub mod link;
pub mod read;
pub mod write;

pub use link::{to_packet, LinkType};
pub use read::{read_file, ReadError, Record, Summary};
pub use write::NflogPcapWriter;
