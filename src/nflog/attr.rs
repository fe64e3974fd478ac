//! Zero-copy NFLOG attribute walker and writer.
//!
//! Why hand-written: `netlink-packet-netfilter`'s typed parser hides the hook, timestamp and
//! hardware address behind private fields and allocates per packet. This walker borrows every
//! field from the input buffer and never fails: damaged input yields a [`Packet`] holding what
//! could be read and a `damage` note saying where reading stopped (a marked partial record,
//! never a lost one).

use crate::packet::{Iface, Packet, TimeSource, Timestamp, Vlan};

/// Kernel attribute types (`include/uapi/linux/netfilter/nfnetlink_log.h`).
pub mod nfula {
    pub const PACKET_HDR: u16 = 1;
    pub const MARK: u16 = 2;
    pub const TIMESTAMP: u16 = 3;
    pub const IFINDEX_INDEV: u16 = 4;
    pub const IFINDEX_OUTDEV: u16 = 5;
    pub const IFINDEX_PHYSINDEV: u16 = 6;
    pub const IFINDEX_PHYSOUTDEV: u16 = 7;
    pub const HWADDR: u16 = 8;
    pub const PAYLOAD: u16 = 9;
    pub const PREFIX: u16 = 10;
    pub const UID: u16 = 11;
    pub const SEQ: u16 = 12;
    pub const SEQ_GLOBAL: u16 = 13;
    pub const GID: u16 = 14;
    pub const HWTYPE: u16 = 15;
    pub const HWHEADER: u16 = 16;
    pub const HWLEN: u16 = 17;
    pub const CT: u16 = 18;
    pub const CT_INFO: u16 = 19;
    /// Nested: [`vlan::TCI`] and [`vlan::PROTO`] (bridge and netdev families only).
    pub const VLAN: u16 = 20;
    /// The link-layer header from the MAC header to the network header (bridge, netdev).
    pub const L2HDR: u16 = 21;

    /// Attributes nested in [`VLAN`] (`enum nfulnl_vlan_attr`), both be16.
    pub mod vlan {
        pub const PROTO: u16 = 1;
        pub const TCI: u16 = 2;
    }
}

/// `nlattr` flag the kernel sets on a nested attribute's type (`nla_nest_start`).
pub const NLA_F_NESTED: u16 = 0x8000;

/// fwlog's own attribute types, added to a record at receive time.
pub mod fwlog {
    /// Local receive time: be64 seconds, be32 nanoseconds (12 bytes).
    pub const RECV_TIME: u16 = 0x3F01;
    /// Interface names at receive time, NUL-terminated, one attribute per kernel IFINDEX_* type.
    pub const INDEV_NAME: u16 = 0x3F02;
    pub const OUTDEV_NAME: u16 = 0x3F03;
    pub const PHYSINDEV_NAME: u16 = 0x3F04;
    pub const PHYSOUTDEV_NAME: u16 = 0x3F05;
    /// A capture file's record time (be64 seconds, be32 nanoseconds), for records that
    /// `fwlog read` re-encodes from pcaps without NFLOG timestamps.
    pub const CAPTURE_TIME: u16 = 0x3F06;
    /// The packet's length on the wire when the source knew it (be32).
    pub const ORIG_LEN: u16 = 0x3F07;
    /// A note on damaged metadata from the source (text).
    pub const DAMAGE: u16 = 0x3F08;
    /// A loss report instead of a packet (see [`super::LossRecord`]): be64 count (u64::MAX when
    /// unknown), u8 cause, u8 flags (1 group, 2 seq_global range, 4 spool range), 2 bytes zero,
    /// be32 first and be32 last seq_global; with flag 4, then be64 first and be64 last spool
    /// sequence number (older records are 20 bytes and have no spool range).
    pub const LOSS: u16 = 0x3F10;
}

pub use super::loss::LossRecord;

/// `nlattr` type bits that are flags, not part of the type.
pub(super) const NLA_TYPE_MASK: u16 = 0x3FFF;
/// Size of `nfgenmsg`.
pub const NFGENMSG_LEN: usize = 4;

/// Byte order of the TLV length and type fields. Netlink uses host order; a pcap written on a
/// big-endian machine has big-endian TLV headers (its file header tells).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlvOrder {
    Little,
    Big,
}

impl TlvOrder {
    pub const NATIVE: TlvOrder = if cfg!(target_endian = "big") {
        TlvOrder::Big
    } else {
        TlvOrder::Little
    };

    fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            TlvOrder::Little => u16::from_le_bytes(b),
            TlvOrder::Big => u16::from_be_bytes(b),
        }
    }
}

pub(super) fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

fn be16(v: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(v.get(..2)?.try_into().ok()?))
}

pub(super) fn be64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

/// Cut a NUL-terminated string attribute at its first NUL.
///
/// Eight bytes per step (the prefix and interface names of every record pass here, and
/// `position` or `memchr` look at strings this short one byte at a time); inlined, since the
/// walk cuts every record's prefix and interface names with it.
#[inline]
fn cstr(v: &[u8]) -> &[u8] {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // The first zero byte of the eight at `at`: a flag above a zero byte may be false, the
    // lowest flag is not.
    let first_zero = |at: usize| {
        let w: [u8; 8] = v.get(at..at + 8)?.try_into().ok()?;
        let x = u64::from_le_bytes(w);
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        (zero != 0).then(|| at + (zero.trailing_zeros() / 8) as usize)
    };
    if v.len() < 8 {
        return match v.iter().position(|&b| b == 0) {
            Some(n) => &v[..n],
            None => v,
        };
    }
    let mut at = 0;
    while at + 8 <= v.len() {
        if let Some(n) = first_zero(at) {
            return &v[..n];
        }
        at += 8;
    }
    // The last eight bytes: those before `at` among them were checked and hold no zero.
    match first_zero(v.len() - 8) {
        Some(n) => &v[..n],
        None => v,
    }
}

/// What the walk collects before it can fill in the packet: interface names (an index may come
/// after its name), the rank of the timestamp taken so far, fwlog's damage note, NFULA_HWLEN.
#[derive(Default)]
struct Walk<'a> {
    names: [Option<&'a [u8]>; 4],
    /// Which of `names` are set (bit i for `names[i]`), so a record without names skips them.
    named: u8,
    /// The source of `p.timestamp` so far: 0 the fallback, then capture time, fwlog's receive
    /// time, the kernel's timestamp. A timestamp of the same or a higher rank replaces it, so
    /// the last of the best kind present wins.
    ts_rank: u8,
    carried_damage: Option<&'a [u8]>,
    hwlen: Option<u16>,
}

/// The byte order of a walk's TLV headers, fixed per walk so the hot loop reads them with one
/// load and no test of the order per attribute.
trait Order {
    const ORDER: TlvOrder;
}
struct Native;
impl Order for Native {
    const ORDER: TlvOrder = TlvOrder::NATIVE;
}
struct Swapped;
impl Order for Swapped {
    const ORDER: TlvOrder = match TlvOrder::NATIVE {
        TlvOrder::Little => TlvOrder::Big,
        TlvOrder::Big => TlvOrder::Little,
    };
}

/// NFULA_TIMESTAMP, fwlog's RECV_TIME, fwlog's CAPTURE_TIME as `Walk::ts_rank` values.
const RANK_KERNEL: u8 = 3;
const RANK_RECV: u8 = 2;
const RANK_CAPTURE: u8 = 1;

/// A timestamp of fwlog's own form: be64 seconds, be32 nanoseconds (at least 12 bytes).
fn sec_nsec(v: &[u8; 12], source: TimeSource) -> Timestamp {
    let (s, n) = v.split_at(8);
    Timestamp {
        sec: i64::try_from(be64(s).unwrap_or(0)).unwrap_or(i64::MAX),
        nsec: be32(n).unwrap_or(0).min(999_999_999),
        source,
    }
}

impl<'a> Walk<'a> {
    fn timestamp(&mut self, p: &mut Packet<'a>, rank: u8, t: Timestamp) {
        if rank >= self.ts_rank {
            self.ts_rank = rank;
            p.timestamp = t;
        }
    }

    /// Take attribute `ty` with value `v`; false when its value is too short to read.
    #[inline(always)]
    fn attribute(&mut self, p: &mut Packet<'a>, ty: u16, v: &'a [u8], order: TlvOrder) -> bool {
        match ty {
            nfula::PACKET_HDR => match v.first_chunk::<4>() {
                Some(h) => {
                    p.hw_protocol = Some(u16::from_be_bytes([h[0], h[1]]));
                    p.hook = Some(h[2]);
                    true
                }
                None => false,
            },
            nfula::MARK => be32(v).map(|m| p.mark = m).is_some(),
            nfula::TIMESTAMP => match v.first_chunk::<16>() {
                Some(t) => {
                    // struct nfulnl_msg_packet_timestamp { be64 sec; be64 usec; }
                    let (s, u) = t.split_at(8);
                    let (sec, usec) = (be64(s).unwrap_or(0), be64(u).unwrap_or(0));
                    let t = Timestamp {
                        sec: i64::try_from(sec).unwrap_or(i64::MAX),
                        nsec: (usec.min(999_999) as u32) * 1000,
                        source: TimeSource::Kernel,
                    };
                    self.timestamp(p, RANK_KERNEL, t);
                    true
                }
                None => false,
            },
            nfula::IFINDEX_INDEV => iface(&mut p.indev, v),
            nfula::IFINDEX_OUTDEV => iface(&mut p.outdev, v),
            nfula::IFINDEX_PHYSINDEV => iface(&mut p.physindev, v),
            nfula::IFINDEX_PHYSOUTDEV => iface(&mut p.physoutdev, v),
            nfula::HWADDR => match v.split_first_chunk::<4>() {
                Some((h, addr)) => {
                    // struct nfulnl_msg_packet_hw { be16 hw_addrlen; u16 pad; u8 hw_addr[8]; }
                    let n = u16::from_be_bytes([h[0], h[1]]) as usize;
                    p.hwaddr = Some(&addr[..n.min(addr.len())]);
                    true
                }
                None => false,
            },
            nfula::PAYLOAD => {
                p.payload = v;
                true
            }
            nfula::PREFIX => {
                p.prefix = Some(cstr(v));
                true
            }
            nfula::UID => be32(v).map(|x| p.uid = Some(x)).is_some(),
            nfula::GID => be32(v).map(|x| p.gid = Some(x)).is_some(),
            nfula::SEQ => be32(v).map(|x| p.seq = Some(x)).is_some(),
            nfula::SEQ_GLOBAL => be32(v).map(|x| p.seq_global = Some(x)).is_some(),
            nfula::HWTYPE => be16(v).map(|x| p.hwtype = Some(x)).is_some(),
            nfula::HWLEN => be16(v).map(|x| self.hwlen = Some(x)).is_some(),
            nfula::HWHEADER => {
                p.hwheader = Some(v);
                true
            }
            nfula::L2HDR => {
                p.l2header = Some(v);
                true
            }
            nfula::VLAN => {
                vlan(p, ty, v, order);
                true
            }
            fwlog::RECV_TIME => match v.first_chunk::<12>() {
                Some(t) => {
                    self.timestamp(p, RANK_RECV, sec_nsec(t, TimeSource::Local));
                    true
                }
                None => false,
            },
            fwlog::CAPTURE_TIME => {
                // A short one is skipped (no damage note: a capture time is only a fallback).
                if let Some(t) = v.first_chunk::<12>() {
                    self.timestamp(p, RANK_CAPTURE, sec_nsec(t, TimeSource::Capture));
                }
                true
            }
            fwlog::ORIG_LEN => be32(v).map(|x| p.orig_len = Some(x)).is_some(),
            fwlog::DAMAGE => {
                self.carried_damage = Some(v);
                true
            }
            fwlog::INDEV_NAME..=fwlog::PHYSOUTDEV_NAME => {
                let i = ty - fwlog::INDEV_NAME;
                self.names[usize::from(i)] = Some(cstr(v));
                self.named |= 1 << i;
                true
            }
            // CT, CT_INFO and anything newer: not used, skipped.
            _ => true,
        }
    }

    /// Fill in what needed every attribute: interface names, the damage note.
    fn finish(self, p: &mut Packet<'a>) {
        // NFULA_HWLEN bounds the header the kernel copied (HWHEADER is already exactly that long,
        // but keep the two consistent if a record disagrees).
        if let (Some(h), Some(n)) = (p.hwheader, self.hwlen) {
            p.hwheader = Some(&h[..(n as usize).min(h.len())]);
        }
        if self.named != 0 {
            let ifaces = [
                &mut p.indev,
                &mut p.outdev,
                &mut p.physindev,
                &mut p.physoutdev,
            ];
            for (iface, name) in ifaces.into_iter().zip(self.names) {
                if let Some(iface) = iface {
                    iface.name = name;
                }
            }
        }
        if let (None, Some(d)) = (&p.damage, self.carried_damage) {
            p.damage = Some(String::from_utf8_lossy(d).into_owned());
        }
    }
}

/// An IFINDEX_* attribute into its interface (named in [`Walk::finish`]); false when short.
#[inline(always)]
fn iface(slot: &mut Option<Iface<'_>>, v: &[u8]) -> bool {
    be32(v)
        .map(|index| *slot = Some(Iface { index, name: None }))
        .is_some()
}

/// NFULA_VLAN into `p`: the tag, or a damage note when nothing else was damaged first. Out of
/// the walk's loop: only the bridge and netdev families send it.
#[inline(never)]
fn vlan(p: &mut Packet<'_>, ty: u16, v: &[u8], order: TlvOrder) {
    match parse_vlan(v, order) {
        Ok(vl) => p.vlan = Some(vl),
        Err(why) => {
            if p.damage.is_none() {
                p.damage = Some(format!("attribute VLAN (type {ty}) {why}"));
            }
        }
    }
}

/// The note for an attribute whose value is too short to read (the first damage note wins).
#[cold]
#[inline(never)]
fn short_value(p: &mut Packet<'_>, ty: u16, len: usize) {
    if p.damage.is_none() {
        let what = match ty {
            nfula::PACKET_HDR => "PACKET_HDR",
            nfula::TIMESTAMP => "TIMESTAMP",
            nfula::HWADDR => "HWADDR",
            fwlog::RECV_TIME => "fwlog RECV_TIME",
            _ => "value",
        };
        p.damage = Some(format!("attribute {what} (type {ty}) has {len} bytes"));
    }
}

/// Where the walk stopped early: stray bytes after the last attribute, or an attribute whose
/// length does not fit (this note replaces any earlier one).
#[cold]
#[inline(never)]
fn cut_short(p: &mut Packet<'_>, msg: &[u8], rest: &[u8], order: TlvOrder) {
    let off = msg.len() - rest.len();
    p.damage = Some(match rest {
        [a, b, c, d, ..] => {
            let len = order.u16([*a, *b]);
            let ty = order.u16([*c, *d]) & NLA_TYPE_MASK;
            format!(
                "attribute type {ty} at offset {off} claims {len} bytes, {} remain",
                rest.len()
            )
        }
        _ => format!(
            "{} stray bytes after the last attribute at offset {off}",
            rest.len()
        ),
    });
}

/// Walk the TLVs of one NFLOG record: `nfgenmsg` + attributes.
///
/// `fallback` is the timestamp to use when the record carries neither the kernel's timestamp nor
/// fwlog's receive time (a pcap record's time, for instance). Never panics, never fails.
pub fn parse(msg: &[u8], order: TlvOrder, fallback: Timestamp) -> Packet<'_> {
    let mut p = Packet::new(&[], fallback);
    parse_into(msg, order, fallback, &mut p);
    p
}

/// [`parse`] into `p`, whatever it held before (every field is reset): the processing loop
/// parses straight into the packet its window keeps, instead of building a 312-byte packet
/// and copying it there.
///
/// Inlined, so that a caller that has just made `p` with [`Packet::new`] pays for one reset.
#[inline]
pub fn parse_into<'a>(msg: &'a [u8], order: TlvOrder, fallback: Timestamp, p: &mut Packet<'a>) {
    *p = Packet::new(&[], fallback);
    if order == TlvOrder::NATIVE {
        walk::<Native>(msg, p);
    } else {
        walk::<Swapped>(msg, p);
    }
}

/// The walk of [`parse_into`] over a reset packet, in byte order `O`.
///
/// Invariants: `rest` is always a suffix of `msg` starting on an attribute boundary; every
/// value handed to [`Walk::attribute`] lies inside its attribute, which lies inside `msg`.
#[inline(never)]
fn walk<'a, O: Order>(msg: &'a [u8], p: &mut Packet<'a>) {
    let Some((head, mut rest)) = msg.split_first_chunk::<NFGENMSG_LEN>() else {
        p.damage = Some(format!(
            "NFLOG record of {} bytes is shorter than its 4-byte header",
            msg.len()
        ));
        return;
    };
    p.family = head[0];
    p.group = u16::from_be_bytes([head[2], head[3]]);
    let mut w = Walk::default();
    while let Some(h) = rest.first_chunk::<4>() {
        let len = O::ORDER.u16([h[0], h[1]]) as usize;
        let ty = O::ORDER.u16([h[2], h[3]]) & NLA_TYPE_MASK;
        let Some(v) = rest.get(4..len) else {
            break;
        };
        if !w.attribute(p, ty, v, O::ORDER) {
            short_value(p, ty, v.len());
        }
        // Attributes are padded to 4 bytes; the last one may lack its padding.
        rest = rest.get((len + 3) & !3..).unwrap_or_default();
    }
    if !rest.is_empty() {
        cut_short(p, msg, rest, O::ORDER);
    }
    w.finish(p);
}

/// fwlog's receive time of a spool record (its RECV_TIME attribute) in milliseconds since the
/// Unix epoch: a walk over the attribute headers only, for the processing loop's backlog age,
/// which must not pay for a full parse. `None` when the record has none or is malformed before it.
pub fn recv_time_ms(msg: &[u8]) -> Option<u64> {
    let mut off = NFGENMSG_LEN;
    while let Some(h) = msg.get(off..off + 4) {
        let len = TlvOrder::NATIVE.u16([h[0], h[1]]) as usize;
        let ty = TlvOrder::NATIVE.u16([h[2], h[3]]) & NLA_TYPE_MASK;
        let v = msg.get(off + 4..off + len.max(4))?;
        if len < 4 {
            return None;
        }
        if ty == fwlog::RECV_TIME && v.len() >= 12 {
            let ms = be64(v)?.saturating_mul(1000);
            return Some(ms.saturating_add(u64::from(be32(&v[8..])?.min(999_999_999) / 1_000_000)));
        }
        off += (len + 3) & !3;
    }
    None
}

/// The nested NFULA_VLAN attribute: TCI and PROTO, each a be16 TLV (the kernel writes both;
/// a tag is kept only when both are there, since the TCI means nothing without its TPID).
fn parse_vlan(v: &[u8], order: TlvOrder) -> Result<Vlan, String> {
    let (mut tci, mut proto) = (None, None);
    let mut off = 0;
    while off < v.len() {
        let rest = &v[off..];
        if rest.len() < 4 {
            return Err(format!(
                "has {} stray bytes at nested offset {off}",
                rest.len()
            ));
        }
        let len = order.u16([rest[0], rest[1]]) as usize;
        let ty = order.u16([rest[2], rest[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > rest.len() {
            return Err(format!(
                "nests type {ty} claiming {len} bytes, {} remain",
                rest.len()
            ));
        }
        let x = &rest[4..len];
        match ty {
            nfula::vlan::TCI => tci = Some(be16(x).ok_or("has a short TCI")?),
            nfula::vlan::PROTO => proto = Some(be16(x).ok_or("has a short PROTO")?),
            _ => {}
        }
        off += (len + 3) & !3;
    }
    match (tci, proto) {
        (Some(tci), Some(proto)) => Ok(Vlan { proto, tci }),
        (None, _) => Err("lacks its TCI".into()),
        (_, None) => Err("lacks its PROTO".into()),
    }
}

/// Encode any packet as an NFLOG record (nfgenmsg + TLVs), so that packets from capture files
/// go through the same pipeline as spooled ones. [`parse`] gives the same packet back.
pub fn encode_packet(p: &Packet<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(&[p.family, 0]);
    out.extend_from_slice(&p.group.to_be_bytes());
    if p.hook.is_some() || p.hw_protocol.is_some() {
        let hw = p.hw_protocol.unwrap_or(0).to_be_bytes();
        push_attr(
            out,
            nfula::PACKET_HDR,
            &[hw[0], hw[1], p.hook.unwrap_or(0), 0],
        );
    }
    if p.mark != 0 {
        push_attr(out, nfula::MARK, &p.mark.to_be_bytes());
    }
    let t = p.timestamp;
    match t.source {
        TimeSource::Kernel => {
            let mut v = [0u8; 16];
            v[..8].copy_from_slice(&(t.sec.max(0) as u64).to_be_bytes());
            v[8..].copy_from_slice(&u64::from(t.nsec / 1000).to_be_bytes());
            push_attr(out, nfula::TIMESTAMP, &v);
        }
        TimeSource::Local => push_recv_time(out, t.sec, t.nsec),
        TimeSource::Capture => {
            let mut v = [0u8; 12];
            v[..8].copy_from_slice(&(t.sec.max(0) as u64).to_be_bytes());
            v[8..].copy_from_slice(&t.nsec.to_be_bytes());
            push_attr(out, fwlog::CAPTURE_TIME, &v);
        }
    }
    let ifaces = [
        (nfula::IFINDEX_INDEV, p.indev),
        (nfula::IFINDEX_OUTDEV, p.outdev),
        (nfula::IFINDEX_PHYSINDEV, p.physindev),
        (nfula::IFINDEX_PHYSOUTDEV, p.physoutdev),
    ];
    for (ty, i) in ifaces {
        if let Some(i) = i {
            push_attr(out, ty, &i.index.to_be_bytes());
            if let Some(n) = i.name {
                push_ifname(out, ty, n);
            }
        }
    }
    if let Some(a) = p.hwaddr {
        let a = &a[..a.len().min(8)];
        let mut v = [0u8; 12];
        v[..2].copy_from_slice(&(a.len() as u16).to_be_bytes());
        v[4..4 + a.len()].copy_from_slice(a);
        push_attr(out, nfula::HWADDR, &v);
    }
    if let Some(t) = p.hwtype {
        push_attr(out, nfula::HWTYPE, &t.to_be_bytes());
    }
    if let Some(h) = p.hwheader {
        push_attr(
            out,
            nfula::HWLEN,
            &(h.len().min(u16::MAX as usize) as u16).to_be_bytes(),
        );
        push_attr(out, nfula::HWHEADER, h);
    }
    if let Some(v) = p.vlan {
        push_vlan(out, v);
    }
    if let Some(h) = p.l2header {
        push_attr(out, nfula::L2HDR, h);
    }
    let nums = [
        (nfula::UID, p.uid),
        (nfula::GID, p.gid),
        (nfula::SEQ, p.seq),
        (nfula::SEQ_GLOBAL, p.seq_global),
        (fwlog::ORIG_LEN, p.orig_len),
    ];
    for (ty, v) in nums {
        if let Some(v) = v {
            push_attr(out, ty, &v.to_be_bytes());
        }
    }
    if let Some(pre) = p.prefix {
        let mut v = Vec::with_capacity(pre.len() + 1);
        v.extend_from_slice(pre);
        v.push(0);
        push_attr(out, nfula::PREFIX, &v);
    }
    if let Some(d) = &p.damage {
        push_attr(out, fwlog::DAMAGE, d.as_bytes());
    }
    push_attr(out, nfula::PAYLOAD, p.payload);
}

/// Append one attribute (host-order header, value, padding to 4 bytes).
///
/// Values longer than an `nlattr` can describe are cut to fit; callers pass interface names
/// (at most 16 bytes) and fixed-size values, so this never happens in practice.
pub fn push_attr(buf: &mut impl TlvOut, ty: u16, value: &[u8]) {
    let value = &value[..value.len().min(u16::MAX as usize - 8)];
    let len = (4 + value.len()) as u16;
    let mut h = [0u8; 4];
    h[..2].copy_from_slice(&len.to_ne_bytes());
    h[2..].copy_from_slice(&ty.to_ne_bytes());
    buf.put(&h);
    buf.put(value);
    buf.put(&[0u8; 3][..tlv_len(value.len()) - 4 - value.len()]);
}

/// Where the `push_*` helpers append: a plain buffer, or a spool writer's record being built
/// in place (intake's receive path, which appends each record with one copy).
pub trait TlvOut {
    fn put(&mut self, bytes: &[u8]);
}

impl TlvOut for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Size of a TLV with a `vlen`-byte value, padding included.
fn tlv_len(vlen: usize) -> usize {
    (4 + vlen + 3) & !3
}

/// Size of the TLV [`push_recv_time`] appends.
pub const RECV_TIME_TLV: usize = 16;

/// The part of an interface name [`push_ifname`] stores (up to the first NUL, at most 15
/// bytes); its TLV holds it and one NUL.
fn ifname_stored(name: &[u8]) -> &[u8] {
    let name = cstr(name);
    &name[..name.len().min(15)]
}

/// Append a nested NFULA_VLAN attribute exactly as the kernel builds it (`nfulnl_put_bridge`):
/// NLA_F_NESTED set, TCI first, then PROTO, both be16 padded to 4 bytes.
pub fn push_vlan(buf: &mut Vec<u8>, v: Vlan) {
    let mut inner = Vec::with_capacity(16);
    push_attr(&mut inner, nfula::vlan::TCI, &v.tci.to_be_bytes());
    push_attr(&mut inner, nfula::vlan::PROTO, &v.proto.to_be_bytes());
    push_attr(buf, nfula::VLAN | NLA_F_NESTED, &inner);
}

/// Append fwlog's receive-time attribute.
pub fn push_recv_time(buf: &mut impl TlvOut, sec: i64, nsec: u32) {
    let mut v = [0u8; 12];
    v[..8].copy_from_slice(&(sec.max(0) as u64).to_be_bytes());
    v[8..].copy_from_slice(&nsec.to_be_bytes());
    push_attr(buf, fwlog::RECV_TIME, &v);
}

/// Append an interface-name attribute (`which` is the kernel's IFINDEX_* type), NUL-terminated.
/// Names longer than the kernel's IFNAMSIZ (16 with the NUL) are cut: the kernel never makes them.
pub fn push_ifname(buf: &mut impl TlvOut, which: u16, name: &[u8]) {
    let ty = fwlog::INDEV_NAME + (which - nfula::IFINDEX_INDEV);
    let name = ifname_stored(name);
    let mut v = [0u8; 16];
    v[..name.len()].copy_from_slice(name);
    push_attr(buf, ty, &v[..name.len() + 1]);
}

#[cfg(test)]
#[path = "attr_tests.rs"]
mod tests;
