//! IPv6 header view and extension-header walk (RFC 8200).
//!
//! Layout: `ver/tc/flow(4) payload_len(2) next hop_limit src(16) dst(16)`, then a chain of
//! extension headers, each starting `next_header, length`: hop-by-hop (0), routing (43) and
//! destination options (60) are `(len + 1) * 8` bytes, AH (51) `(len + 2) * 4`, the fragment
//! header (44) 8 bytes (`next, reserved, offset/flags(2), id(4)`), ESP (50) ends what can be
//! read.
//!
//! The walk is the kernel LOG target's: it stops when a header's first two bytes are missing,
//! at a fragment header cut short, at an option header that follows a non-first fragment (the
//! bytes there are fragment data, not a header), and at ESP. AH is stepped over by its length
//! field even when its SPI is not all there (the kernel does the same unless it prints IP
//! options). The chain is not stored: [`Ipv6::ext_headers`] walks it again on demand, so
//! decoding allocates nothing and any chain length is handled.

use std::net::Ipv6Addr;

use super::bytes::{be16, be32, get, u8_at};
use super::transport::{self, Transport};
use super::{Layer, Truncated};

pub const HOP_BY_HOP: u8 = 0;
pub const ROUTING: u8 = 43;
pub const FRAGMENT: u8 = 44;
pub const ESP: u8 = 50;
pub const AH: u8 = 51;
pub const NO_NEXT: u8 = 59;
pub const DEST_OPTS: u8 = 60;

/// The name formats print for an extension header kind.
pub fn ext_name(kind: u8) -> &'static str {
    match kind {
        HOP_BY_HOP => "hop-by-hop",
        ROUTING => "routing",
        FRAGMENT => "fragment",
        ESP => "esp",
        AH => "ah",
        DEST_OPTS => "dest-options",
        _ => "ext",
    }
}

/// The kernel's `nf_ip6_ext_hdr()` set, minus "no next header" which ends the walk.
fn is_ext(h: u8) -> bool {
    matches!(h, HOP_BY_HOP | ROUTING | FRAGMENT | ESP | AH | DEST_OPTS)
}

/// An IPv6 fragment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentHeader {
    /// Offset in bytes (`frag_off & 0xfff8`, as the kernel prints it).
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    pub id: u32,
}

/// Why the extension walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv6End {
    /// It reached an upper-layer protocol ([`Ipv6::protocol`]; "no next header" included).
    Upper,
    /// A header's first two bytes are missing.
    Truncated(Truncated),
    /// A fragment header is cut short (its two first bytes are there).
    FragmentTruncated(Truncated),
    /// An option header (the type) follows a non-first fragment: fragment data, not a header.
    AfterFragment(u8),
    /// ESP: everything after its SPI and sequence number is encrypted.
    Esp,
}

/// One extension header, as [`Ipv6::ext_headers`] yields it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtHeader<'a> {
    /// Its type (the previous header's next-header value).
    pub kind: u8,
    pub offset: usize,
    /// The bytes of this header that are present (up to its stated length).
    pub bytes: &'a [u8],
    /// A non-first fragment header came before this one.
    pub after_fragment: bool,
    /// For a fragment header: its fields, `None` when cut short.
    pub fragment: Option<FragmentHeader>,
    /// For AH and ESP: the SPI, `None` when cut short (AH needs 12 bytes, ESP 8).
    pub spi: Option<u32>,
    /// The kernel's `skb->len - offset` for this header (wrapping).
    pub kernel_remaining: u32,
}

/// Walks the extension chain of a decoded IPv6 packet.
#[derive(Clone, Debug)]
pub struct ExtIter<'a> {
    b: &'a [u8],
    cur: u8,
    ptr: usize,
    fragment: bool,
    done: bool,
}

impl<'a> Iterator for ExtIter<'a> {
    type Item = ExtHeader<'a>;

    fn next(&mut self) -> Option<ExtHeader<'a>> {
        if self.done || self.cur == NO_NEXT || !is_ext(self.cur) {
            return None;
        }
        let (Some(next), Some(len)) = (u8_at(self.b, self.ptr), u8_at(self.b, self.ptr + 1)) else {
            self.done = true;
            return None;
        };
        let kind = self.cur;
        let after_fragment = self.fragment;
        let mut h = ExtHeader {
            kind,
            offset: self.ptr,
            bytes: &[],
            after_fragment,
            fragment: None,
            spi: None,
            kernel_remaining: (self.b.len() as u32).wrapping_sub(self.ptr as u32),
        };
        let hdrlen = match kind {
            FRAGMENT => {
                match (be16(self.b, self.ptr + 2), be32(self.b, self.ptr + 4)) {
                    (Some(off), Some(id)) => {
                        let f = FragmentHeader {
                            offset: off & 0xfff8,
                            more: off & 1 != 0,
                            id,
                        };
                        if f.offset != 0 {
                            self.fragment = true;
                        }
                        h.fragment = Some(f);
                    }
                    _ => self.done = true,
                }
                8
            }
            HOP_BY_HOP | ROUTING | DEST_OPTS => {
                if after_fragment {
                    self.done = true;
                }
                (len as usize + 1) * 8
            }
            AH => {
                h.spi = be32(self.b, self.ptr + 4).filter(|_| self.b.len() >= self.ptr + 12);
                (len as usize + 2) * 4
            }
            _ => {
                // ESP
                h.spi = be32(self.b, self.ptr).filter(|_| self.b.len() >= self.ptr + 8);
                self.done = true;
                8
            }
        };
        let avail = self.b.len().saturating_sub(self.ptr).min(hdrlen);
        h.bytes = get(self.b, self.ptr, avail).unwrap_or(&[]);
        self.cur = next;
        self.ptr += hdrlen;
        Some(h)
    }
}

/// A decoded IPv6 header, its extension chain's outcome, and the upper layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6<'a> {
    pub version: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
    pub payload_len: u16,
    pub next_header: u8,
    pub hop_limit: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The upper-layer protocol where the walk ended (meaningful when `end` is `Upper`).
    pub protocol: u8,
    /// The first fragment header, if any.
    pub fragment: Option<FragmentHeader>,
    /// A fragment header with a non-zero offset was seen: no transport header here.
    pub later_fragment: bool,
    pub end: Ipv6End,
    pub l4_offset: usize,
    pub transport: Transport<'a>,
    bytes: &'a [u8],
}

impl<'a> Ipv6<'a> {
    /// Decode `b` as an IPv6 packet; `nested` for the packet quoted in an ICMPv6 error.
    pub fn decode(b: &'a [u8], nested: bool) -> Result<Ipv6<'a>, Truncated> {
        let h = get(b, 0, 40).ok_or(Truncated {
            layer: Layer::Ipv6,
            offset: 0,
            end: b.len(),
            need: 40,
        })?;
        let w = be32(h, 0).unwrap_or(0);
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&h[8..24]);
        dst.copy_from_slice(&h[24..40]);
        let mut v6 = Ipv6 {
            version: (w >> 28) as u8,
            traffic_class: ((w >> 20) & 0xff) as u8,
            flow_label: w & 0x000f_ffff,
            payload_len: be16(h, 4).unwrap_or(0),
            next_header: h[6],
            hop_limit: h[7],
            src: Ipv6Addr::from(src),
            dst: Ipv6Addr::from(dst),
            protocol: h[6],
            fragment: None,
            later_fragment: false,
            end: Ipv6End::Upper,
            l4_offset: 40,
            transport: Transport::Other,
            bytes: b,
        };
        let mut it = v6.ext_headers();
        for e in it.by_ref() {
            if e.kind == FRAGMENT {
                match e.fragment {
                    Some(f) => {
                        if v6.fragment.is_none() {
                            v6.fragment = Some(f);
                        }
                        if f.offset != 0 {
                            v6.later_fragment = true;
                        }
                    }
                    None => {
                        v6.end = Ipv6End::FragmentTruncated(Truncated {
                            layer: Layer::Ipv6Ext(FRAGMENT),
                            offset: e.offset,
                            end: b.len(),
                            need: 8,
                        });
                        return Ok(v6);
                    }
                }
            } else if e.kind == ESP {
                v6.end = Ipv6End::Esp;
                return Ok(v6);
            } else if e.kind != AH && e.after_fragment {
                v6.end = Ipv6End::AfterFragment(e.kind);
                return Ok(v6);
            }
        }
        if it.done {
            // Every other stop returned above: a header's first two bytes are missing.
            v6.end = Ipv6End::Truncated(Truncated {
                layer: Layer::Ipv6Ext(it.cur),
                offset: it.ptr,
                end: b.len(),
                need: 2,
            });
            return Ok(v6);
        }
        v6.protocol = it.cur;
        v6.l4_offset = it.ptr;
        v6.transport = transport::decode(b, it.cur, it.ptr, v6.later_fragment, nested, true);
        Ok(v6)
    }

    /// The protocol number formats show for the packet: the upper layer's, or the header the
    /// extension walk stopped at (ESP, a header after a non-first fragment, one cut short).
    pub fn shown_protocol(&self) -> u8 {
        match self.end {
            Ipv6End::Upper => self.protocol,
            Ipv6End::Esp => ESP,
            Ipv6End::AfterFragment(k) => k,
            Ipv6End::Truncated(t) | Ipv6End::FragmentTruncated(t) => match t.layer {
                Layer::Ipv6Ext(k) => k,
                _ => self.protocol,
            },
        }
    }

    /// The extension headers in order, as far as the walk goes (see the module docs).
    pub fn ext_headers(&self) -> ExtIter<'a> {
        ExtIter {
            b: self.bytes,
            cur: self.next_header,
            ptr: 40,
            fragment: false,
            done: false,
        }
    }

    /// Length of the decoded slice.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}
