//! ARP (and RARP) header view, RFC 826.
//!
//! Layout: `htype(2), ptype(2), hlen(1), plen(1), opcode(2)` (8 bytes, the kernel's
//! `struct arphdr`), then sender hardware address (hlen bytes), sender protocol address (plen),
//! target hardware address (hlen), target protocol address (plen).
//!
//! Invariants: the fixed 8 bytes must be present (else the caller reports a [`Truncated`] of
//! layer [`Layer::Arp`], which the kernel prints as `TRUNCATED`); the addresses are read with
//! the lengths the header gives, whatever they are, and when the bytes do not hold all four
//! they are reported as a [`Truncated`] of layer [`Layer::ArpAddresses`] instead. Nothing here
//! checks that the lengths suit the types: the kernel's LOG target prints the addresses only
//! for Ethernet/IPv4 (htype 1, hlen 6, plen 4), see [`Arp::is_ether_ipv4`].

use std::net::Ipv4Addr;

use super::bytes::{be16, get, u8_at};
use super::{Layer, Truncated};

/// ARPHRD_ETHER, the only hardware type whose addresses the kernel prints.
pub const HTYPE_ETHER: u16 = 1;
/// ETH_P_IP as an ARP protocol type.
pub const PTYPE_IPV4: u16 = 0x0800;

/// The four addresses of an ARP message, each as many bytes as the header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpAddrs<'a> {
    pub sender_hw: &'a [u8],
    pub sender_proto: &'a [u8],
    pub target_hw: &'a [u8],
    pub target_proto: &'a [u8],
}

/// A decoded ARP message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp<'a> {
    pub htype: u16,
    pub ptype: u16,
    pub hlen: u8,
    pub plen: u8,
    pub opcode: u16,
    /// The addresses, or where they stop.
    pub addrs: Result<ArpAddrs<'a>, Truncated>,
    /// Length of the decoded slice (the kernel's `skb->len` for `INCOMPLETE [n bytes]`).
    pub len: usize,
}

impl<'a> Arp<'a> {
    /// Decode `b` (the payload from the ARP header on). `Err` when the fixed 8 bytes are not
    /// all there.
    pub fn decode(b: &'a [u8]) -> Result<Arp<'a>, Truncated> {
        let short = Truncated {
            layer: Layer::Arp,
            offset: 0,
            end: b.len(),
            need: 8,
        };
        let (Some(htype), Some(ptype), Some(hlen), Some(plen), Some(opcode)) =
            (be16(b, 0), be16(b, 2), u8_at(b, 4), u8_at(b, 5), be16(b, 6))
        else {
            return Err(short);
        };
        let (h, p) = (hlen as usize, plen as usize);
        let need = 2 * (h + p);
        let addrs = match get(b, 8, need) {
            Some(a) => Ok(ArpAddrs {
                sender_hw: &a[..h],
                sender_proto: &a[h..h + p],
                target_hw: &a[h + p..2 * h + p],
                target_proto: &a[2 * h + p..],
            }),
            None => Err(Truncated {
                layer: Layer::ArpAddresses,
                offset: 8,
                end: b.len(),
                need,
            }),
        };
        Ok(Arp {
            htype,
            ptype,
            hlen,
            plen,
            opcode,
            addrs,
            len: b.len(),
        })
    }

    /// Ethernet hardware with IPv4 addresses (what the kernel's LOG target decodes further).
    pub fn is_ether_ipv4(&self) -> bool {
        self.htype == HTYPE_ETHER && self.hlen == 6 && self.plen == 4
    }

    /// Sender and target IPv4 addresses, when the protocol is IPv4 and they are all there.
    pub fn ipv4(&self) -> Option<(Ipv4Addr, Ipv4Addr)> {
        let a = self.addrs.ok()?;
        if self.ptype != PTYPE_IPV4 || self.plen != 4 {
            return None;
        }
        let ip = |x: &[u8]| Ipv4Addr::new(x[0], x[1], x[2], x[3]);
        Some((ip(a.sender_proto), ip(a.target_proto)))
    }
}

/// The name of an ARP opcode (RFC 826, RFC 903 for RARP, RFC 2390 for InARP).
pub fn opcode_name(op: u16) -> Option<&'static str> {
    Some(match op {
        1 => "request",
        2 => "reply",
        3 => "rarp-request",
        4 => "rarp-reply",
        8 => "inarp-request",
        9 => "inarp-reply",
        10 => "nak",
        _ => return None,
    })
}
