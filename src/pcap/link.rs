//! Link-layer dispatch: turn one capture record into a [`Packet`].
//!
//! Supported: NFLOG (239, what `tcpdump -i nflog:N -w` writes), Ethernet (1, with 802.1Q/802.1ad
//! tags), raw IP (101, version from the first nibble), IPv4 (228), IPv6 (229), Linux cooked
//! capture v1 (113) and v2 (276). Everything else is refused by the reader before any record.

use super::read::Record;
use crate::nflog::attr::{self, TlvOrder};
use crate::packet::{family, Iface, Packet};

/// The link types `fwlog read` understands (pcap LINKTYPE_* numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    Raw,
    Ipv4,
    Ipv6,
    LinuxSll,
    LinuxSll2,
    Nflog,
}

impl LinkType {
    pub fn from_number(n: u32) -> Option<LinkType> {
        Some(match n {
            1 => LinkType::Ethernet,
            101 => LinkType::Raw,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            239 => LinkType::Nflog,
            _ => return None,
        })
    }

    pub fn number(self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
            LinkType::Nflog => 239,
        }
    }
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ARPHRD_ETHER: u16 = 1;

fn family_of_ethertype(t: u16) -> u8 {
    match t {
        ETH_P_IP => family::INET,
        ETH_P_IPV6 => family::INET6,
        _ => family::UNSPEC,
    }
}

fn family_of_version(payload: &[u8]) -> u8 {
    match payload.first().map(|b| b >> 4) {
        Some(4) => family::INET,
        Some(6) => family::INET6,
        _ => family::UNSPEC,
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Build the packet view of one record. Never fails: a record too short for its link header
/// becomes a packet with an empty payload and a `damage` note.
pub fn to_packet<'a>(rec: &Record<'a>) -> Packet<'a> {
    let data = rec.data;
    let short = |what: &str, need: usize| -> Packet<'a> {
        let mut p = Packet::new(&[], rec.timestamp);
        p.damage = Some(format!(
            "record of {} bytes is shorter than its {what} header ({need} bytes)",
            data.len()
        ));
        p
    };
    // Bytes the capture dropped (orig_len > caplen), carried over to the payload's length.
    let orig = |header: usize| -> Option<u32> {
        (rec.orig_len as usize > data.len()).then(|| (rec.orig_len as usize - header) as u32)
    };
    match rec.link {
        LinkType::Nflog => {
            let order = if rec.big_endian {
                TlvOrder::Big
            } else {
                TlvOrder::Little
            };
            attr::parse(data, order, rec.timestamp)
        }
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => {
            let mut p = Packet::new(data, rec.timestamp);
            p.family = match rec.link {
                LinkType::Ipv4 => family::INET,
                LinkType::Ipv6 => family::INET6,
                _ => family_of_version(data),
            };
            p.orig_len = orig(0);
            p
        }
        LinkType::Ethernet => {
            if data.len() < 14 {
                return short("Ethernet", 14);
            }
            // Skip 802.1Q / 802.1ad tags to reach the real ethertype.
            let mut at = 12;
            let mut ethertype = be16(data, at).unwrap_or(0);
            while matches!(ethertype, 0x8100 | 0x88A8) {
                match be16(data, at + 4) {
                    Some(t) => {
                        at += 4;
                        ethertype = t;
                    }
                    None => return short("VLAN-tagged Ethernet", at + 6),
                }
            }
            let hdr = at + 2;
            let mut p = Packet::new(&data[hdr..], rec.timestamp);
            p.family = family_of_ethertype(ethertype);
            p.hw_protocol = Some(ethertype);
            p.hwtype = Some(ARPHRD_ETHER);
            p.hwheader = Some(&data[..14]);
            p.hwaddr = Some(&data[6..12]);
            p.orig_len = orig(hdr);
            p
        }
        LinkType::LinuxSll => {
            // pkttype(2) hatype(2) halen(2) addr(8) protocol(2)
            if data.len() < 16 {
                return short("Linux cooked", 16);
            }
            let proto = be16(data, 14).unwrap_or(0);
            let halen = (be16(data, 4).unwrap_or(0) as usize).min(8);
            let mut p = Packet::new(&data[16..], rec.timestamp);
            p.family = family_of_ethertype(proto);
            p.hw_protocol = Some(proto);
            p.hwtype = be16(data, 2);
            p.hwaddr = Some(&data[6..6 + halen]);
            p.orig_len = orig(16);
            p
        }
        LinkType::LinuxSll2 => {
            // protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8)
            if data.len() < 20 {
                return short("Linux cooked v2", 20);
            }
            let proto = be16(data, 0).unwrap_or(0);
            let ifindex = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
            let pkttype = data[10];
            let halen = (data[11] as usize).min(8);
            let mut p = Packet::new(&data[20..], rec.timestamp);
            p.family = family_of_ethertype(proto);
            p.hw_protocol = Some(proto);
            p.hwtype = be16(data, 8);
            p.hwaddr = Some(&data[12..12 + halen]);
            let iface = Iface {
                index: ifindex,
                name: None,
            };
            // PACKET_OUTGOING (4) was sent by this host; everything else was received.
            if pkttype == 4 {
                p.outdev = Some(iface);
            } else {
                p.indev = Some(iface);
            }
            p.orig_len = orig(20);
            p
        }
    }
}
