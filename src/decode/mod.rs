//! Packet header decoding: IPv4, IPv6 (extension headers), TCP, UDP, UDP-Lite, ICMP, ICMPv6,
//! AH, ESP; anything else by protocol number; ARP and RARP for the bridge, netdev and arp
//! families.
//!
//! Invariants:
//! - Decoding never panics and never fails: every read is bounds-checked, and a header that the
//!   bytes do not hold completely is reported as [`Truncated`] (which layer, at which offset,
//!   how many bytes were there and how many it needs) instead of its fields.
//! - Decoding never allocates: every view borrows the payload; IPv6 extension headers are
//!   re-walked on demand by [`Ipv6::ext_headers`], and an ICMP error's quoted packet is decoded
//!   on demand by [`Icmp::inner`] / [`Icmpv6::inner`] (one level: the quoted packet's own ICMP
//!   errors are not followed, as in the kernel).
//! - The walk is the one the kernel's LOG target does (`net/netfilter/nf_log_syslog.c`), so the
//!   kernel formatter can reproduce its line byte for byte from these views: a transport header
//!   sits at `ihl * 4` even when `ihl` is bogus, a non-first fragment has no transport header,
//!   an ICMP message shorter than its type requires is "short" (type and code only), the IPv6
//!   extension chain stops at ESP and at an option header that follows a non-first fragment.
//!   Offsets are relative to the slice given to the decoder; a quoted packet is decoded from a
//!   suffix of the outer payload, so "bytes left" means the same thing the kernel's
//!   `skb->len - offset` does.
//! - What the payload is follows the kernel's LOG target too: the family for `inet` and `arp`
//!   rules, the link-layer protocol (`skb->protocol`, NFULA_PACKET_HDR) for bridge and netdev
//!   rules (IPv4, IPv6, ARP/RARP, anything else is [`Net::NotIp`]), and the IP version nibble
//!   only for records that carry neither (capture files without NFLOG metadata).
//! - A payload shorter than the IP header's length (the rule's copy range, a capture snaplen)
//!   decodes as far as it goes and is reported as [`Partial`]; that is a property of the record,
//!   not an error.
//!
//! Why hand-written field reads rather than etherparse's header slices: those slices validate
//! (IHL >= 5, options complete, TCP data offset within the slice) and refuse headers the kernel
//! still prints field by field; the exact fixed-layout reads here are a few lines each. The TCP
//! options of a complete header are decoded with etherparse (see `format::tcpopt`).

mod arp;
mod bytes;
mod ipv4;
pub mod ipv6;
mod transport;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_arp;

use std::net::IpAddr;

use crate::packet::{family, Packet};

pub use arp::{opcode_name as arp_opcode_name, Arp, ArpAddrs};
pub use ipv4::Ipv4;
pub use ipv6::{ExtHeader, ExtIter, FragmentHeader, Ipv6, Ipv6End};
pub use transport::{Ah, Esp, Icmp, Icmpv6, Tcp, Transport, Udp};

/// The IP protocol numbers the decoder reads a header of (IPv6 extension kinds: [`ipv6`]).
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ESP: u8 = super::ipv6::ESP;
    pub const AH: u8 = super::ipv6::AH;
    pub const ICMPV6: u8 = 58;
    pub const UDPLITE: u8 = 136;
}

/// The layer a [`Truncated`] note is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Ipv4,
    Ipv4Options,
    Ipv6,
    /// An IPv6 extension header (its type number).
    Ipv6Ext(u8),
    Tcp,
    TcpOptions,
    Udp,
    Icmp,
    /// The part of an ICMP message its type requires beyond the 8-byte header (echo id,
    /// the quoted IP header of an error, ...).
    IcmpBody,
    Icmpv6,
    Ah,
    Esp,
    /// The fixed 8-byte ARP header.
    Arp,
    /// The four addresses after the ARP header (as long as its length fields say).
    ArpAddresses,
}

impl Layer {
    /// Lowercase name used in the fwlog and json formats.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Ipv4 => "ip",
            Layer::Ipv4Options => "ip-options",
            Layer::Ipv6 => "ip6",
            Layer::Ipv6Ext(ipv6::FRAGMENT) => "ip6-fragment",
            Layer::Ipv6Ext(ipv6::AH) => "ip6-ah",
            Layer::Ipv6Ext(ipv6::ESP) => "ip6-esp",
            Layer::Ipv6Ext(ipv6::HOP_BY_HOP) => "ip6-hop-by-hop",
            Layer::Ipv6Ext(ipv6::ROUTING) => "ip6-routing",
            Layer::Ipv6Ext(ipv6::DEST_OPTS) => "ip6-dest-options",
            Layer::Ipv6Ext(_) => "ip6-ext",
            Layer::Tcp => "tcp",
            Layer::TcpOptions => "tcp-options",
            Layer::Udp => "udp",
            Layer::Icmp => "icmp",
            Layer::IcmpBody => "icmp-body",
            Layer::Icmpv6 => "icmp6",
            Layer::Ah => "ah",
            Layer::Esp => "esp",
            Layer::Arp => "arp",
            Layer::ArpAddresses => "arp-addresses",
        }
    }
}

/// A header the bytes do not hold completely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated {
    pub layer: Layer,
    /// Where the header starts, relative to the decoded slice.
    pub offset: usize,
    /// Length of the decoded slice (so `end - offset` bytes were there, or none).
    pub end: usize,
    /// How many bytes the header needs.
    pub need: usize,
}

impl Truncated {
    /// Bytes present from `offset` on (0 when the header would start past the end).
    pub fn have(&self) -> usize {
        self.end.saturating_sub(self.offset)
    }

    /// What the kernel prints as `INCOMPLETE [n bytes]`: `skb->len - offset` in unsigned
    /// 32-bit arithmetic, which wraps when a bogus header length points past the end.
    pub fn kernel_remaining(&self) -> u32 {
        (self.end as u32).wrapping_sub(self.offset as u32)
    }
}

/// A record whose payload is shorter than the packet was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partial {
    /// Bytes present (the payload length).
    pub captured: u32,
    /// The packet's length (IP header length field, or the capture's original length).
    pub original: u32,
}

/// The network layer of a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Net<'a> {
    Ipv4(Ipv4<'a>),
    Ipv6(Ipv6<'a>),
    /// ARP or RARP (bridge, netdev and arp families).
    Arp(Arp<'a>),
    /// Fewer bytes than the fixed header (layer [`Layer::Ipv4`], [`Layer::Ipv6`] or
    /// [`Layer::Arp`]).
    Truncated(Truncated),
    /// Neither IP nor ARP: another link-layer protocol, or a version nibble that says nothing.
    NotIp {
        version: u8,
        len: usize,
    },
}

/// A decoded packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub net: Net<'a>,
    /// Set when the payload is shorter than the packet.
    pub partial: Option<Partial>,
    /// Bytes after the IP datagram's end (link-layer padding in a capture), not decoded.
    pub trailing: usize,
}

/// What a record's payload holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ipv4,
    Ipv6,
    Arp,
    Other,
}

/// ETH_P_ARP and ETH_P_RARP: the kernel's LOG target dumps both as ARP.
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_RARP: u16 = 0x8035;

/// The kernel's choice of dumper (see the module docs): the NFLOG family decides, then the
/// link-layer protocol, then the version nibble (capture files).
fn kind(p: &Packet<'_>) -> Kind {
    match p.family {
        family::INET => return Kind::Ipv4,
        family::INET6 => return Kind::Ipv6,
        family::ARP => return Kind::Arp,
        _ => {}
    }
    match p.hw_protocol {
        Some(0x0800) => return Kind::Ipv4,
        Some(0x86dd) => return Kind::Ipv6,
        Some(ETH_P_ARP | ETH_P_RARP) => return Kind::Arp,
        // The bridge and netdev loggers switch on skb->protocol alone: anything else is
        // printed as an unknown packet, whatever its first byte looks like.
        Some(_) if matches!(p.family, family::BRIDGE | family::NETDEV) => return Kind::Other,
        _ => {}
    }
    match network_payload(p).first().map(|b| b >> 4) {
        Some(4) => Kind::Ipv4,
        Some(6) => Kind::Ipv6,
        _ => Kind::Other,
    }
}

/// NF_NETDEV_EGRESS and NF_ARP_OUT: hooks where the packet already has its link-layer header.
const NETDEV_EGRESS: u8 = 1;
const ARP_OUT: u8 = 1;

/// The payload from the network header on.
///
/// NFLOG copies from `skb->data`, which is the network header everywhere except where the
/// link-layer header is already built: the netdev egress hook (`dev_queue_xmit` has reset the
/// MAC header to `skb->data`, so NFULA_L2HDR is exactly the part to skip) and the arp
/// family's output hook (`arp_create` pushed the device header; the record has no L2HDR there,
/// so an Ethernet header whose ethertype, after any VLAN tags, is ARP or RARP is recognised and
/// skipped). The kernel's LOG target reads from `skb_network_offset` in both cases.
pub fn network_payload<'a>(p: &Packet<'a>) -> &'a [u8] {
    let b = p.payload;
    match (p.family, p.hook) {
        (family::NETDEV, Some(NETDEV_EGRESS)) => {
            let skip = p.l2header.map_or(0, <[u8]>::len);
            b.get(skip..).unwrap_or(&[])
        }
        (family::ARP, Some(ARP_OUT)) if p.indev.is_none() => match arp_link_header_len(b) {
            Some(n) => &b[n..],
            None => b,
        },
        _ => b,
    }
}

/// Length of the Ethernet header `arp_create` pushed in front of an ARP packet: 14 bytes, or
/// 18, 22, ... when VLAN tags (802.1Q 0x8100, 802.1ad 0x88a8) sit in it, as a VLAN device
/// created with `reorder_hdr off` builds. `None` unless the ethertype after the tags is ARP or
/// RARP (then the payload is taken to start at the network header).
fn arp_link_header_len(b: &[u8]) -> Option<usize> {
    let mut at = 12;
    loop {
        match b.get(at..at + 2)? {
            [0x81, 0x00] | [0x88, 0xa8] => at += 4,
            [0x08, 0x06] | [0x80, 0x35] => return Some(at + 2),
            _ => return None,
        }
    }
}

/// Bytes before the network header in the payload (the kernel's `skb_network_offset`): 0
/// except at the hooks [`network_payload`] describes.
pub fn network_offset(p: &Packet<'_>) -> usize {
    p.payload.len() - network_payload(p).len()
}

impl Decoded<'_> {
    /// A placeholder for [`decode_into`] to overwrite. A function, not a constant: a constant
    /// of this size is copied in whole from read-only data, this is three stores.
    #[inline]
    pub fn nothing() -> Decoded<'static> {
        Decoded {
            net: Net::NotIp { version: 0, len: 0 },
            partial: None,
            trailing: 0,
        }
    }
}

/// Decode a record's payload. See the module docs for the guarantees.
pub fn decode<'a>(p: &Packet<'a>) -> Decoded<'a> {
    let mut d = Decoded::nothing();
    decode_into(p, &mut d);
    d
}

/// [`decode`] into `out`, whatever it held (every field is written): the processing loop
/// decodes straight into the place its window keeps the decode, without a copy.
pub fn decode_into<'a>(p: &Packet<'a>, out: &mut Decoded<'a>) {
    let b = network_payload(p);
    // orig_len counts from the start of the payload; the link-layer part is not the packet's.
    let skipped = (p.payload.len() - b.len()) as u32;
    let orig = p
        .orig_len
        .map(|o| o.saturating_sub(skipped).max(b.len() as u32));
    let mut partial_len: Option<u32> = None;
    let mut trailing = 0;
    // Each arm stores its header in `out.net` itself: a value built for the whole `match` and
    // then stored would be one more copy of the IPv4 header with its transport per record.
    match kind(p) {
        Kind::Ipv4 => {
            if b.len() < 20 {
                out.net = Net::Truncated(Truncated {
                    layer: Layer::Ipv4,
                    offset: 0,
                    end: b.len(),
                    need: 20,
                })
            } else {
                let total = u16::from_be_bytes([b[2], b[3]]) as usize;
                let mut slice = b;
                if total >= 20 && total < b.len() {
                    // Link-layer padding: the kernel trims it before the hooks.
                    trailing = b.len() - total;
                    slice = &b[..total];
                } else if total > b.len() {
                    partial_len = Some(total as u32);
                }
                out.net = match Ipv4::decode(slice, false) {
                    Ok(v4) => Net::Ipv4(v4),
                    Err(t) => Net::Truncated(t),
                }
            }
        }
        Kind::Ipv6 => {
            if b.len() < 40 {
                out.net = Net::Truncated(Truncated {
                    layer: Layer::Ipv6,
                    offset: 0,
                    end: b.len(),
                    need: 40,
                })
            } else {
                let plen = u16::from_be_bytes([b[4], b[5]]) as usize;
                let total = plen + 40;
                let mut slice = b;
                if plen != 0 && total < b.len() {
                    trailing = b.len() - total;
                    slice = &b[..total];
                } else if plen != 0 && total > b.len() {
                    partial_len = Some(total as u32);
                }
                out.net = match Ipv6::decode(slice, false) {
                    Ok(v6) => Net::Ipv6(v6),
                    Err(t) => Net::Truncated(t),
                }
            }
        }
        // No length field covers the whole message, so only a capture's orig_len can
        // make an ARP record partial.
        Kind::Arp => {
            out.net = match Arp::decode(b) {
                Ok(a) => Net::Arp(a),
                Err(t) => Net::Truncated(t),
            }
        }
        Kind::Other => {
            out.net = Net::NotIp {
                version: b.first().map(|x| x >> 4).unwrap_or(0),
                len: b.len(),
            }
        }
    }
    let original = match (partial_len, orig) {
        (Some(a), Some(o)) => Some(a.max(o)),
        (Some(a), None) => Some(a),
        (None, Some(o)) if o as usize > b.len() => Some(o),
        _ => None,
    };
    out.partial = original.map(|o| Partial {
        captured: b.len() as u32,
        original: o,
    });
    out.trailing = trailing;
}

/// The addresses a formatter may print for this packet, in order of appearance, without
/// repeats: source, destination, an ICMP redirect's gateway, and the source and destination of
/// the packet an ICMP error quotes; for ARP the sender and target IPv4 addresses. The daemon resolves these names before formatting.
pub fn addresses(p: &Packet<'_>) -> Vec<IpAddr> {
    let mut out = Vec::with_capacity(4);
    addresses_into(p, &mut out);
    out
}

/// [`addresses`] into a caller's vector (cleared first), so a loop that reuses it allocates
/// nothing per packet.
pub fn addresses_into(p: &Packet<'_>, out: &mut Vec<IpAddr>) {
    addresses_of(&decode(p), out);
}

/// [`addresses_into`] for a packet decoded already.
pub fn addresses_of(d: &Decoded<'_>, out: &mut Vec<IpAddr>) {
    out.clear();
    let mut push = |a: IpAddr| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    match &d.net {
        Net::Ipv4(v4) => {
            push(v4.src.into());
            push(v4.dst.into());
            if let Transport::Icmp(icmp) = &v4.transport {
                if let Some(g) = icmp.gateway() {
                    push(g.into());
                }
                if let Some(Ok(inner)) = icmp.inner() {
                    push(inner.src.into());
                    push(inner.dst.into());
                }
            }
        }
        Net::Ipv6(v6) => {
            push(v6.src.into());
            push(v6.dst.into());
            if let Transport::Icmpv6(icmp) = &v6.transport {
                if let Some(Ok(inner)) = icmp.inner() {
                    push(inner.src.into());
                    push(inner.dst.into());
                }
            }
        }
        Net::Arp(a) => {
            if let Some((s, t)) = a.ipv4() {
                push(s.into());
                push(t.into());
            }
        }
        Net::Truncated(_) | Net::NotIp { .. } => {}
    }
}
