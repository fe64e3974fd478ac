//! One view of an ICMP or ICMPv6 message for every format: type and code with their names
//! (nft's `icmp type` / `icmpv6 type` keywords and code names), the echo id and sequence, the
//! error fields (pointer, MTU, a redirect's gateway) and the packet an error quotes.
//!
//! The formats differ only in how they print these (the kernel format, for instance, writes
//! an ICMP pointer in decimal after `PARAMETER=` and an ICMPv6 one in hex after `POINTER=`);
//! what a message carries is decided here once, from the decoder's [`Icmp`] and [`Icmpv6`].

use std::net::{IpAddr, Ipv4Addr};

use crate::decode::{Icmp, Icmpv6, Ipv4, Ipv6, Transport, Truncated};

/// The packet an ICMP (IPv4 header) or ICMPv6 (IPv6 header) error quotes, decoded one level
/// deep, or where it stops.
pub(crate) enum Quoted<'a> {
    V4(Result<Ipv4<'a>, Truncated>),
    V6(Result<Ipv6<'a>, Truncated>),
}

impl Quoted<'_> {
    /// Source and destination of the quoted packet, when its IP header is there.
    pub fn addrs(&self) -> Option<(IpAddr, IpAddr)> {
        match self {
            Quoted::V4(Ok(q)) => Some((q.src.into(), q.dst.into())),
            Quoted::V6(Ok(q)) => Some((q.src.into(), q.dst.into())),
            Quoted::V4(Err(_)) | Quoted::V6(Err(_)) => None,
        }
    }
}

/// An ICMP or ICMPv6 message as the formats print it.
pub(crate) struct IcmpView<'a> {
    /// ICMPv6 (else ICMP).
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
    pub type_name: Option<&'static str>,
    pub code_name: Option<&'static str>,
    /// ICMP only: the message is shorter than its type requires; nothing below is then set.
    pub short: Option<Truncated>,
    /// Echo request/reply identifier and sequence number.
    pub echo: Option<(u16, u16)>,
    /// ICMP redirect: the gateway to use.
    pub gateway: Option<Ipv4Addr>,
    /// Parameter problem: ICMP's pointer byte, ICMPv6's pointer word.
    pub pointer: Option<u32>,
    /// ICMP fragmentation needed: the next-hop MTU; ICMPv6 packet too big: the MTU.
    pub mtu: Option<u32>,
    pub quoted: Option<Quoted<'a>>,
}

impl<'a> IcmpView<'a> {
    /// The view of an ICMP or ICMPv6 transport; `None` for any other.
    pub fn of(t: &Transport<'a>) -> Option<IcmpView<'a>> {
        match t {
            Transport::Icmp(i) => Some(Self::icmp(i)),
            Transport::Icmpv6(i) => Some(Self::icmpv6(i)),
            _ => None,
        }
    }

    fn icmp(i: &Icmp<'a>) -> IcmpView<'a> {
        IcmpView {
            v6: false,
            icmp_type: i.icmp_type,
            code: i.code,
            type_name: type_name(false, i.icmp_type),
            code_name: code_name(false, i.icmp_type, i.code),
            short: i.short,
            echo: i.echo(),
            gateway: i.gateway(),
            pointer: i.parameter().map(u32::from),
            mtu: i.mtu().map(u32::from),
            quoted: i.inner().map(Quoted::V4),
        }
    }

    fn icmpv6(i: &Icmpv6<'a>) -> IcmpView<'a> {
        IcmpView {
            v6: true,
            icmp_type: i.icmp_type,
            code: i.code,
            type_name: type_name(true, i.icmp_type),
            code_name: code_name(true, i.icmp_type, i.code),
            short: None,
            echo: i.echo(),
            gateway: None,
            pointer: i.pointer(),
            mtu: i.mtu(),
            quoted: i.inner().map(Quoted::V6),
        }
    }
}

/// ICMP destination unreachable's codes (by code number; "" has no name).
const UNREACHABLE: &[&str] = &[
    "net-unreachable",
    "host-unreachable",
    "prot-unreachable",
    "port-unreachable",
    "frag-needed",
    "source-route-failed",
    "net-unknown",
    "host-unknown",
    "",
    "net-prohibited",
    "host-prohibited",
    "net-tos-unreachable",
    "host-tos-unreachable",
    "admin-prohibited",
    "host-precedence-violation",
    "precedence-cutoff",
];

/// ICMPv6 destination unreachable's codes.
const UNREACHABLE_V6: &[&str] = &[
    "no-route",
    "admin-prohibited",
    "beyond-scope",
    "addr-unreachable",
    "port-unreachable",
    "policy-fail",
    "reject-route",
];

const REDIRECT: &[&str] = &[
    "net-redirect",
    "host-redirect",
    "tos-net-redirect",
    "tos-host-redirect",
];

/// Each named type: ICMPv6 or not, the type, its name and its code names by code number.
const TYPES: &[(bool, u8, &str, &[&str])] = &[
    (false, 0, "echo-reply", &[]),
    (false, 3, "destination-unreachable", UNREACHABLE),
    (false, 4, "source-quench", &[]),
    (false, 5, "redirect", REDIRECT),
    (false, 8, "echo-request", &[]),
    (false, 9, "router-advertisement", &[]),
    (false, 10, "router-solicitation", &[]),
    (
        false,
        11,
        "time-exceeded",
        &["ttl-exceeded", "reassembly-timeout"],
    ),
    (
        false,
        12,
        "parameter-problem",
        &["pointer-indicates-error", "missing-option", "bad-length"],
    ),
    (false, 13, "timestamp-request", &[]),
    (false, 14, "timestamp-reply", &[]),
    (false, 15, "info-request", &[]),
    (false, 16, "info-reply", &[]),
    (false, 17, "address-mask-request", &[]),
    (false, 18, "address-mask-reply", &[]),
    (true, 1, "destination-unreachable", UNREACHABLE_V6),
    (true, 2, "packet-too-big", &[]),
    (
        true,
        3,
        "time-exceeded",
        &["hop-limit-exceeded", "reassembly-timeout"],
    ),
    (
        true,
        4,
        "parameter-problem",
        &["erroneous-header", "unknown-next-header", "unknown-option"],
    ),
    (true, 128, "echo-request", &[]),
    (true, 129, "echo-reply", &[]),
    (true, 130, "mld-listener-query", &[]),
    (true, 131, "mld-listener-report", &[]),
    (true, 132, "mld-listener-done", &[]),
    (true, 133, "nd-router-solicit", &[]),
    (true, 134, "nd-router-advert", &[]),
    (true, 135, "nd-neighbor-solicit", &[]),
    (true, 136, "nd-neighbor-advert", &[]),
    (true, 137, "nd-redirect", &[]),
    (true, 138, "router-renumbering", &[]),
    (true, 141, "ind-neighbor-solicit", &[]),
    (true, 142, "ind-neighbor-advert", &[]),
    (true, 143, "mld2-listener-report", &[]),
];

fn entry(v6: bool, t: u8) -> Option<&'static (bool, u8, &'static str, &'static [&'static str])> {
    TYPES.iter().find(|e| e.0 == v6 && e.1 == t)
}

/// The type name of an ICMP (`v6` false) or ICMPv6 message (nft's keywords).
pub(crate) fn type_name(v6: bool, t: u8) -> Option<&'static str> {
    entry(v6, t).map(|e| e.2)
}

/// The code name, for the types that have named codes.
pub(crate) fn code_name(v6: bool, t: u8, c: u8) -> Option<&'static str> {
    let name = *entry(v6, t)?.3.get(c as usize)?;
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_both_families() {
        assert_eq!(type_name(false, 8), Some("echo-request"));
        assert_eq!(type_name(true, 128), Some("echo-request"));
        assert_eq!(type_name(false, 129), None);
        assert_eq!(type_name(true, 0), None);
        assert_eq!(code_name(false, 3, 3), Some("port-unreachable"));
        assert_eq!(code_name(true, 1, 4), Some("port-unreachable"));
        assert_eq!(code_name(true, 3, 0), Some("hop-limit-exceeded"));
        assert_eq!(code_name(false, 3, 8), None);
    }
}
