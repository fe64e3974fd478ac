//! Transport headers: TCP (RFC 9293, with the AE bit of RFC 9768 / AccECN), UDP, UDP-Lite,
//! ICMP, ICMPv6, AH (RFC 4302), ESP (RFC 4303).
//!
//! Layouts read here:
//! - TCP: `sport(2) dport(2) seq(4) ack(4) doff/res(1) flags(1) window(2) csum(2) urg(2)
//!   options...`; byte 12 holds the data offset (high nibble) and four reserved bits, the lowest
//!   of which is AE; the kernel prints the other three as `RES=` (`(b12 & 0x0e) << 2`).
//! - UDP / UDP-Lite: `sport(2) dport(2) len-or-coverage(2) csum(2)`.
//! - ICMP / ICMPv6: `type code csum(2) rest(4)` then the body (for errors, the quoted packet).
//! - AH: `next hdrlen reserved(2) spi(4) seq(4) icv...`; ESP: `spi(4) seq(4) ...`.

use std::net::Ipv4Addr;

use super::bytes::{be16, be32, get, u8_at, word};
use super::ipv4::Ipv4;
use super::ipv6::Ipv6;
use super::{Layer, Truncated};

/// What follows the IP header(s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport<'a> {
    Tcp(Tcp<'a>),
    Udp(Udp),
    Icmp(Icmp<'a>),
    Icmpv6(Icmpv6<'a>),
    Ah(Ah),
    Esp(Esp),
    /// A non-first fragment: the bytes are the middle of the datagram, not a header.
    Fragment,
    /// The header is not completely there.
    Truncated(Truncated),
    /// A protocol without a decoder here (the number is in the IP header), or IPv6's
    /// "no next header", or where an IPv6 extension chain stopped (see [`super::Ipv6End`]).
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tcp<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// Data offset in 32-bit words (may be bogus).
    pub data_offset: u8,
    /// The low nibble of byte 12: three reserved bits and AE (bit 0).
    pub reserved: u8,
    /// Byte 13: CWR ECE URG ACK PSH RST SYN FIN, high bit first.
    pub flags: u8,
    pub window: u16,
    pub checksum: u16,
    pub urgent: u16,
    /// Option bytes (`data_offset * 4 - 20`; empty when none), or where they stop.
    pub options: Result<&'a [u8], Truncated>,
}

impl Tcp<'_> {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    pub fn ae(&self) -> bool {
        self.reserved & 0x01 != 0
    }
    /// The reserved bits as the kernel prints them after `RES=`.
    pub fn kernel_res(&self) -> u8 {
        (self.reserved & 0x0e) << 2
    }
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
    /// The names of the flags that are set, in header order, AE (accurate ECN) last.
    pub fn flag_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        [
            (Self::FIN, "fin"),
            (Self::SYN, "syn"),
            (Self::RST, "rst"),
            (Self::PSH, "psh"),
            (Self::ACK, "ack"),
            (Self::URG, "urg"),
            (Self::ECE, "ece"),
            (Self::CWR, "cwr"),
        ]
        .into_iter()
        .filter(|&(f, _)| self.has(f))
        .map(|(_, n)| n)
        .chain(self.ae().then_some("ae"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Udp {
    /// UDP-Lite (protocol 136): `length` is then the checksum coverage.
    pub lite: bool,
    pub src_port: u16,
    pub dst_port: u16,
    pub length: u16,
    pub checksum: u16,
}

/// An ICMP (v4) message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Icmp<'a> {
    pub icmp_type: u8,
    pub code: u8,
    pub checksum: u16,
    /// Bytes 4..8: echo id/seq, gateway, pointer, next-hop MTU, depending on the type.
    pub rest: [u8; 4],
    /// Set when the message is shorter than its type requires (the kernel's `required_len`):
    /// then only type and code are meaningful.
    pub short: Option<Truncated>,
    /// The quoted packet of an error (unreachable, source quench, redirect, time exceeded),
    /// present only at the outer level and when not `short`.
    pub quoted: Option<&'a [u8]>,
}

/// Bytes an ICMP message of each type needs from its header on (the kernel's table; 0: no
/// requirement).
fn icmp_required_len(t: u8) -> usize {
    match t {
        0 | 8 => 4,
        3 | 4 | 5 | 11 | 12 => 8 + 20,
        13 | 14 => 20,
        17 | 18 => 12,
        _ => 0,
    }
}

impl<'a> Icmp<'a> {
    /// Echo request/reply identifier and sequence number.
    pub fn echo(&self) -> Option<(u16, u16)> {
        if self.short.is_some() || !matches!(self.icmp_type, 0 | 8) {
            return None;
        }
        Some((
            u16::from_be_bytes([self.rest[0], self.rest[1]]),
            u16::from_be_bytes([self.rest[2], self.rest[3]]),
        ))
    }
    /// Redirect: the gateway to use.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        (self.short.is_none() && self.icmp_type == 5).then(|| Ipv4Addr::from(self.rest))
    }
    /// Parameter problem: the pointer byte.
    pub fn parameter(&self) -> Option<u8> {
        (self.short.is_none() && self.icmp_type == 12).then_some(self.rest[0])
    }
    /// Destination unreachable / fragmentation needed: the next-hop MTU.
    pub fn mtu(&self) -> Option<u16> {
        (self.short.is_none() && self.icmp_type == 3 && self.code == 4)
            .then(|| u16::from_be_bytes([self.rest[2], self.rest[3]]))
    }
    /// An error type whose body quotes the offending packet.
    pub fn is_error(&self) -> bool {
        matches!(self.icmp_type, 3 | 4 | 5 | 11)
    }
    /// The quoted packet, decoded one level deep.
    pub fn inner(&self) -> Option<Result<Ipv4<'a>, Truncated>> {
        self.quoted.map(|q| Ipv4::decode(q, true))
    }
}

/// An ICMPv6 message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Icmpv6<'a> {
    pub icmp_type: u8,
    pub code: u8,
    pub checksum: u16,
    pub rest: [u8; 4],
    /// The quoted packet of an error (unreachable, too big, time exceeded, parameter problem),
    /// outer level only.
    pub quoted: Option<&'a [u8]>,
}

impl<'a> Icmpv6<'a> {
    pub fn echo(&self) -> Option<(u16, u16)> {
        matches!(self.icmp_type, 128 | 129).then(|| {
            (
                u16::from_be_bytes([self.rest[0], self.rest[1]]),
                u16::from_be_bytes([self.rest[2], self.rest[3]]),
            )
        })
    }
    /// Packet too big: the MTU.
    pub fn mtu(&self) -> Option<u32> {
        (self.icmp_type == 2).then(|| u32::from_be_bytes(self.rest))
    }
    /// Parameter problem: the pointer.
    pub fn pointer(&self) -> Option<u32> {
        (self.icmp_type == 4).then(|| u32::from_be_bytes(self.rest))
    }
    pub fn is_error(&self) -> bool {
        matches!(self.icmp_type, 1..=4)
    }
    /// The quoted packet, decoded one level deep.
    pub fn inner(&self) -> Option<Result<Ipv6<'a>, Truncated>> {
        self.quoted.map(|q| Ipv6::decode(q, true))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ah {
    pub next_header: u8,
    /// Length field (in 32-bit words, minus 2).
    pub len: u8,
    pub spi: u32,
    pub seq: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Esp {
    pub spi: u32,
    pub seq: u32,
}

pub(crate) fn ah_at(b: &[u8], off: usize) -> Result<Ah, Truncated> {
    let h = get(b, off, 12).ok_or(Truncated {
        layer: Layer::Ah,
        offset: off,
        end: b.len(),
        need: 12,
    })?;
    Ok(Ah {
        next_header: h[0],
        len: h[1],
        spi: be32(h, 4).unwrap_or(0),
        seq: be32(h, 8).unwrap_or(0),
    })
}

pub(crate) fn esp_at(b: &[u8], off: usize) -> Result<Esp, Truncated> {
    let h = get(b, off, 8).ok_or(Truncated {
        layer: Layer::Esp,
        offset: off,
        end: b.len(),
        need: 8,
    })?;
    Ok(Esp {
        spi: be32(h, 0).unwrap_or(0),
        seq: be32(h, 4).unwrap_or(0),
    })
}

fn tcp_at(b: &[u8], off: usize) -> Transport<'_> {
    let Some(h) = get(b, off, 20) else {
        return Transport::Truncated(Truncated {
            layer: Layer::Tcp,
            offset: off,
            end: b.len(),
            need: 20,
        });
    };
    let data_offset = h[12] >> 4;
    let hl = data_offset as usize * 4;
    let options = if hl > 20 {
        get(b, off + 20, hl - 20).ok_or(Truncated {
            layer: Layer::TcpOptions,
            offset: off + 20,
            end: b.len(),
            need: hl - 20,
        })
    } else {
        Ok(&h[20..20])
    };
    Transport::Tcp(Tcp {
        src_port: be16(h, 0).unwrap_or(0),
        dst_port: be16(h, 2).unwrap_or(0),
        seq: be32(h, 4).unwrap_or(0),
        ack: be32(h, 8).unwrap_or(0),
        data_offset,
        reserved: h[12] & 0x0f,
        flags: h[13],
        window: be16(h, 14).unwrap_or(0),
        checksum: be16(h, 16).unwrap_or(0),
        urgent: be16(h, 18).unwrap_or(0),
        options,
    })
}

fn udp_at(b: &[u8], off: usize, lite: bool) -> Transport<'_> {
    match get(b, off, 8) {
        Some(h) => Transport::Udp(Udp {
            lite,
            src_port: be16(h, 0).unwrap_or(0),
            dst_port: be16(h, 2).unwrap_or(0),
            length: be16(h, 4).unwrap_or(0),
            checksum: be16(h, 6).unwrap_or(0),
        }),
        None => Transport::Truncated(Truncated {
            layer: Layer::Udp,
            offset: off,
            end: b.len(),
            need: 8,
        }),
    }
}

/// The 8 bytes ICMP and ICMPv6 share: type, code, checksum and the rest-of-header word; or
/// the truncation of `layer` when they are not all there.
type IcmpHeader = (u8, u8, u16, [u8; 4]);

fn icmp_header(b: &[u8], off: usize, layer: Layer) -> Result<IcmpHeader, Transport<'_>> {
    match (
        u8_at(b, off),
        u8_at(b, off + 1),
        be16(b, off + 2),
        word(b, off + 4),
    ) {
        (Some(t), Some(code), Some(checksum), Some(rest)) => Ok((t, code, checksum, rest)),
        _ => Err(Transport::Truncated(Truncated {
            layer,
            offset: off,
            end: b.len(),
            need: 8,
        })),
    }
}

fn icmp_at(b: &[u8], off: usize, nested: bool) -> Transport<'_> {
    let (t, code, checksum, rest) = match icmp_header(b, off, Layer::Icmp) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let need = icmp_required_len(t);
    let have = b.len() - off; // off + 8 <= len here
    let short = (need > 0 && have < need).then_some(Truncated {
        layer: Layer::IcmpBody,
        offset: off,
        end: b.len(),
        need,
    });
    let quoted = (short.is_none() && !nested && matches!(t, 3 | 4 | 5 | 11)).then(|| &b[off + 8..]);
    Transport::Icmp(Icmp {
        icmp_type: t,
        code,
        checksum,
        rest,
        short,
        quoted,
    })
}

fn icmpv6_at(b: &[u8], off: usize, nested: bool) -> Transport<'_> {
    let (t, code, checksum, rest) = match icmp_header(b, off, Layer::Icmpv6) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let quoted = (!nested && matches!(t, 1..=4)).then(|| &b[off + 8..]);
    Transport::Icmpv6(Icmpv6 {
        icmp_type: t,
        code,
        checksum,
        rest,
        quoted,
    })
}

/// Decode the transport header of `protocol` at `off`. `fragment`: a non-first fragment.
/// `v6`: reached through an IPv6 header (ICMPv6 is decoded, ICMP, AH and ESP are not: the
/// IPv6 walk handles AH and ESP as extension headers).
pub(crate) fn decode(
    b: &[u8],
    protocol: u8,
    off: usize,
    fragment: bool,
    nested: bool,
    v6: bool,
) -> Transport<'_> {
    use super::proto::{AH, ESP, ICMP, ICMPV6, TCP, UDP, UDPLITE};
    let known = matches!(
        (protocol, v6),
        (TCP | UDP | UDPLITE, _) | (ICMP | ESP | AH, false) | (ICMPV6, true)
    );
    if !known {
        return Transport::Other;
    }
    if fragment {
        return Transport::Fragment;
    }
    match protocol {
        TCP => tcp_at(b, off),
        UDP => udp_at(b, off, false),
        UDPLITE => udp_at(b, off, true),
        ICMP => icmp_at(b, off, nested),
        ICMPV6 => icmpv6_at(b, off, nested),
        AH => match ah_at(b, off) {
            Ok(a) => Transport::Ah(a),
            Err(t) => Transport::Truncated(t),
        },
        ESP => match esp_at(b, off) {
            Ok(e) => Transport::Esp(e),
            Err(t) => Transport::Truncated(t),
        },
        _ => Transport::Other,
    }
}
