//! The capture-file reader loop.
//!
//! Invariants:
//! - Every record is handed to the callback exactly once, in file order, borrowed from the
//!   reader's buffer (no per-record copy).
//! - A damaged file never loops or panics: the records before the damage are delivered, then
//!   the reader stops with a [`ReadError`] that says what was wrong and where.
//! - Files that libpcap refuses (unknown versions, reserved link-type bits) are refused too.

use std::io::Read;

use pcap_parser::pcapng::Block;
use pcap_parser::{PcapBlockOwned, PcapError};

use super::link::LinkType;
use crate::packet::{TimeSource, Timestamp};

/// One capture record, borrowed from the reader.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub link: LinkType,
    pub timestamp: Timestamp,
    /// The captured bytes (caplen of them).
    pub data: &'a [u8],
    /// The length of the packet on the wire.
    pub orig_len: u32,
    /// The file (or pcapng section) is big-endian: NFLOG TLV headers are too.
    pub big_endian: bool,
}

/// What a complete read saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
}

/// Why a capture file could not be read (to the end). Display is one line, without the path:
/// callers prefix the file name.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a pcap or pcapng file")]
    NotACapture,
    #[error("unsupported pcap version {0}.{1} (fwlog reads 2.x pcap and pcapng)")]
    Version(u16, u16),
    #[error("unsupported link type {0}{1} (fwlog reads NFLOG 239, Ethernet 1, raw IP 101/228/229, Linux cooked 113/276)")]
    LinkType(u32, &'static str),
    #[error("packet on pcapng interface {0}, which was never described (corrupt file)")]
    UnknownInterface(u32),
    #[error("truncated after {0} records: the last record is cut short")]
    Truncated(u64),
    #[error("corrupt after {records} records: {reason}")]
    Corrupt { records: u64, reason: String },
    /// The callback asked to stop (its own error is kept by the caller).
    #[error("stopped")]
    Stopped,
}

/// Largest record we will buffer. Real captures stay under 256 KiB (tcpdump's maximum snaplen);
/// a corrupt length field must not make us allocate gigabytes.
const MAX_RECORD: usize = 16 << 20;

/// The pcap link-type field keeps FCS information in its top bits (26-31) and must have bits
/// 16-25 clear.
fn link_type(raw: u32) -> Result<LinkType, ReadError> {
    if raw & 0x03FF_0000 != 0 {
        return Err(ReadError::LinkType(raw, " (reserved bits set)"));
    }
    let n = raw & 0xFFFF;
    LinkType::from_number(n).ok_or(ReadError::LinkType(n, ""))
}

struct Iface {
    link: LinkType,
    /// Units per second of the timestamps on this interface.
    resolution: u64,
    offset: i64,
}

/// What the blocks read so far say about the ones to come.
#[derive(Default)]
struct State {
    /// Legacy pcap: link type, byte order, timestamp units per second.
    legacy: Option<(LinkType, bool, u64)>,
    /// pcapng, per section: the interfaces described so far, and the byte order.
    ifaces: Vec<Iface>,
    ng_big_endian: bool,
    records: u64,
}

impl State {
    /// Take one block; returns what `f` returned for a packet (true for any other block).
    fn block(
        &mut self,
        block: PcapBlockOwned<'_>,
        f: &mut impl FnMut(&Record<'_>) -> bool,
    ) -> Result<bool, ReadError> {
        let st = self;
        match block {
            PcapBlockOwned::LegacyHeader(h) => {
                if h.version_major != 2 || h.version_minor > 4 {
                    return Err(ReadError::Version(h.version_major, h.version_minor));
                }
                let lt = link_type(h.network.0 as u32)?;
                let res = if h.is_nanosecond_precision() {
                    1_000_000_000
                } else {
                    1_000_000
                };
                st.legacy = Some((lt, h.is_bigendian(), res));
            }
            PcapBlockOwned::Legacy(b) => {
                let Some((link, big_endian, res)) = st.legacy else {
                    return Err(ReadError::NotACapture);
                };
                let nsec = if res == 1_000_000 {
                    b.ts_usec.min(999_999) * 1000
                } else {
                    b.ts_usec.min(999_999_999)
                };
                let rec = Record {
                    link,
                    timestamp: Timestamp {
                        sec: b.ts_sec as i64,
                        nsec,
                        source: TimeSource::Capture,
                    },
                    data: b.data,
                    orig_len: b.origlen,
                    big_endian,
                };
                st.records += 1;
                return Ok(f(&rec));
            }
            PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                if shb.major_version != 1 {
                    return Err(ReadError::Version(shb.major_version, shb.minor_version));
                }
                st.ng_big_endian = shb.big_endian();
                st.ifaces.clear();
            }
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                st.ifaces.push(Iface {
                    link: link_type(idb.linktype.0 as u32)?,
                    resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                    offset: idb.ts_offset(),
                });
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                let iface = st
                    .ifaces
                    .get(epb.if_id as usize)
                    .ok_or(ReadError::UnknownInterface(epb.if_id))?;
                let units = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                let sec = (units / iface.resolution) as i64 + iface.offset;
                let frac = units % iface.resolution;
                let nsec = (frac as u128 * 1_000_000_000 / iface.resolution as u128) as u32;
                let data = &epb.data[..(epb.caplen as usize).min(epb.data.len())];
                let rec = Record {
                    link: iface.link,
                    timestamp: Timestamp {
                        sec,
                        nsec,
                        source: TimeSource::Capture,
                    },
                    data,
                    orig_len: epb.origlen,
                    big_endian: st.ng_big_endian,
                };
                st.records += 1;
                return Ok(f(&rec));
            }
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                let iface = st.ifaces.first().ok_or(ReadError::UnknownInterface(0))?;
                let rec = Record {
                    link: iface.link,
                    timestamp: Timestamp {
                        sec: 0,
                        nsec: 0,
                        source: TimeSource::Capture,
                    },
                    data: spb.data,
                    orig_len: spb.origlen,
                    big_endian: st.ng_big_endian,
                };
                st.records += 1;
                return Ok(f(&rec));
            }
            // Statistics, name resolution, custom blocks...: nothing to print.
            PcapBlockOwned::NG(_) => {}
        }
        Ok(true)
    }
}

/// Read every record of a pcap or pcapng stream, calling `f` for each. `f` returns `false` to
/// stop early (the read then ends with [`ReadError::Stopped`]).
pub fn read_file<R: Read + Send>(
    input: R,
    mut f: impl FnMut(&Record<'_>) -> bool,
) -> Result<Summary, ReadError> {
    let mut reader = match pcap_parser::create_reader(1 << 16, input) {
        Ok(r) => r,
        Err(PcapError::ReadError) => {
            return Err(ReadError::Io(std::io::Error::other("read failed")))
        }
        Err(_) => return Err(ReadError::NotACapture),
    };
    let mut st = State::default();
    let mut capacity = 1usize << 16;
    let mut stalled = 0u32;

    loop {
        match reader.next() {
            Ok((offset, block)) => {
                let keep_going = st.block(block, &mut f)?;
                reader.consume(offset);
                if !keep_going {
                    return Err(ReadError::Stopped);
                }
            }
            Err(PcapError::Eof) => {
                return Ok(Summary {
                    records: st.records,
                })
            }
            Err(PcapError::UnexpectedEof) => return Err(ReadError::Truncated(st.records)),
            Err(PcapError::Incomplete(_)) => {
                // After a refill, next() tells a clean end (Eof) from a cut record
                // (UnexpectedEof). A refill that adds nothing to a reader that is not
                // exhausted can only mean a full buffer: stop rather than spin.
                let before = reader.data().len();
                reader.refill().map_err(|_| {
                    ReadError::Io(std::io::Error::other("read failed while refilling"))
                })?;
                if reader.data().len() == before && !reader.reader_exhausted() {
                    stalled += 1;
                    if stalled > 2 {
                        return Err(ReadError::Corrupt {
                            records: st.records,
                            reason: "a block cannot be parsed".into(),
                        });
                    }
                } else {
                    stalled = 0;
                }
            }
            Err(PcapError::BufferTooSmall) => {
                if capacity >= MAX_RECORD || !reader.grow(capacity * 4) {
                    return Err(ReadError::Corrupt {
                        records: st.records,
                        reason: format!("a record claims more than {} MiB", MAX_RECORD >> 20),
                    });
                }
                capacity *= 4;
                reader.refill().map_err(|_| {
                    ReadError::Io(std::io::Error::other("read failed while refilling"))
                })?;
            }
            Err(PcapError::ReadError) => {
                return Err(ReadError::Io(std::io::Error::other("read failed")))
            }
            Err(e) => {
                return Err(ReadError::Corrupt {
                    records: st.records,
                    reason: e.to_string(),
                })
            }
        }
    }
}
