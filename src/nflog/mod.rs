//! NFLOG: the message format (shared by live capture, the spool and LINKTYPE_NFLOG pcaps).
//!
//! An NFLOG packet message, after the netlink header, is a 4-byte `nfgenmsg` (family, version,
//! group in big-endian) followed by TLV attributes (`nlattr`: length and type in host byte
//! order, values mostly big-endian, each padded to 4 bytes). tcpdump's LINKTYPE_NFLOG (239)
//! stores exactly these bytes, so one parser serves both.
//!
//! fwlog adds a few attributes of its own (see [`attr::fwlog`]) when it spools a packet: the
//! local receive time and the interface *names*, which NFLOG does not carry but which must be
//! captured at receive time because interfaces disappear. Their type numbers sit far above the
//! kernel's (which end near 21), and TLV readers such as tcpdump and Wireshark skip unknown
//! types, so a spool record is still a valid LINKTYPE_NFLOG record.

pub mod attr;
#[cfg(test)]
pub mod damage;
pub mod loss;
