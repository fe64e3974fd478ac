//! IPv4 header view (RFC 791 fixed 20-byte layout, options up to `ihl * 4`).
//!
//! Layout: `ver/ihl, tos, total_len(2), id(2), flags/frag_off(2), ttl, proto, csum(2),
//! src(4), dst(4), options...`. Flags are the top three bits of `frag_off`: reserved ("CE" in
//! the kernel's LOG line, 0x8000), DF (0x4000), MF (0x2000); the offset is the low 13 bits in
//! units of 8 bytes.

use std::net::Ipv4Addr;

use super::bytes::{be16, get};
use super::transport::{self, Transport};
use super::{Layer, Truncated};

/// A decoded IPv4 header and what follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4<'a> {
    pub version: u8,
    /// Header length field in 32-bit words (may be bogus: < 5 or beyond the bytes).
    pub ihl: u8,
    pub tos: u8,
    pub total_len: u16,
    pub id: u16,
    /// The raw flags + fragment offset word.
    pub frag_word: u16,
    pub ttl: u8,
    pub protocol: u8,
    pub checksum: u16,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// Option bytes (`ihl * 4 - 20` of them; empty when there are none), or where they stop.
    pub options: Result<&'a [u8], Truncated>,
    /// Offset of the transport header in the decoded slice (`ihl * 4`, as the kernel uses it).
    pub l4_offset: usize,
    pub transport: Transport<'a>,
    /// Length of the decoded slice.
    pub len: usize,
}

impl<'a> Ipv4<'a> {
    /// Decode `b` as an IPv4 packet. `nested` is true for the packet quoted in an ICMP error
    /// (its own ICMP errors are not followed further).
    pub fn decode(b: &'a [u8], nested: bool) -> Result<Ipv4<'a>, Truncated> {
        let h = get(b, 0, 20).ok_or(Truncated {
            layer: Layer::Ipv4,
            offset: 0,
            end: b.len(),
            need: 20,
        })?;
        let ihl = h[0] & 0x0f;
        let hl = ihl as usize * 4;
        let options = if hl > 20 {
            get(b, 20, hl - 20).ok_or(Truncated {
                layer: Layer::Ipv4Options,
                offset: 20,
                end: b.len(),
                need: hl - 20,
            })
        } else {
            Ok(&b[20..20])
        };
        let frag_word = be16(h, 6).unwrap_or(0);
        let protocol = h[9];
        let fragment = frag_word & 0x1fff != 0;
        let transport = transport::decode(b, protocol, hl, fragment, nested, false);
        Ok(Ipv4 {
            version: h[0] >> 4,
            ihl,
            tos: h[1],
            total_len: be16(h, 2).unwrap_or(0),
            id: be16(h, 4).unwrap_or(0),
            frag_word,
            ttl: h[8],
            protocol,
            checksum: be16(h, 10).unwrap_or(0),
            src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
            dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
            options,
            l4_offset: hl,
            transport,
            len: b.len(),
        })
    }

    /// The reserved ("evil") bit, which the kernel prints as `CE`.
    pub fn ce(&self) -> bool {
        self.frag_word & 0x8000 != 0
    }
    pub fn df(&self) -> bool {
        self.frag_word & 0x4000 != 0
    }
    pub fn mf(&self) -> bool {
        self.frag_word & 0x2000 != 0
    }
    /// Fragment offset in 8-byte units (what the kernel prints after `FRAG:`).
    pub fn frag_offset(&self) -> u16 {
        self.frag_word & 0x1fff
    }
    /// A non-first fragment: no transport header in it.
    pub fn is_later_fragment(&self) -> bool {
        self.frag_offset() != 0
    }
    /// A fragment of any position.
    pub fn is_fragment(&self) -> bool {
        self.mf() || self.is_later_fragment()
    }
    /// Header length field out of range (below 5 words, the minimum).
    pub fn bad_ihl(&self) -> bool {
        self.ihl < 5
    }
}
