//! `--format kernel`: the line the kernel's LOG target (`nf_log_syslog.c`) prints for the same
//! packet, byte for byte.
//!
//! Layout (every item ends in a space; the line ends in one too, except ARP lines):
//! `PREFIX` `IN=dev OUT=dev ` [`PHYSIN=dev ` `PHYSOUT=dev `] [MAC part] network part
//! [`UID=u GID=g ` with skuid] [`MARK=0x%x ` when non-zero].
//!
//! Which dumper runs is the kernel's choice (see `crate::decode`): inet rules dump IP;
//! bridge and netdev rules switch on the link-layer protocol (`nf_log_netdev_packet`): IPv4,
//! IPv6, ARP/RARP, or an unknown packet (the MAC part alone, printed even without an input
//! device); arp rules always dump ARP.
//! - MAC part (`dump_mac_header`), only with an input device for IP: `MAC=` and the header
//!   bytes, or with the ether flag on Ethernet `MACSRC= MACDST= [VPROTO=%04x VID=%u ]
//!   MACPROTO=` (`nf_log_dump_vlan`: the tag only there, and `VID=` is the whole TCI, priority
//!   bits included, as `skb_vlan_tag_get` returns it).
//! - ARP (`dump_arp_packet`): no `MAC=` ever; with the ether flag the same decoded Ethernet
//!   part (input device or not), then `ARP HTYPE=%d PTYPE=0x%04x OPCODE=%d` and, for
//!   Ethernet/IPv4 only, ` MACSRC= IPSRC= MACDST= IPDST=` or ` INCOMPLETE [n bytes]`; no
//!   trailing space, no UID, no MARK. A header under 8 bytes is `TRUNCATED` alone.
//! - Bridge family: NFLOG names the bridge as INDEV/OUTDEV and the port as PHYS*; the kernel
//!   prints the port as `IN=`/`OUT=` (the hook's devices) and usually no PHYS*
//!   (br_netfilter's physical device is that same port). Not exact: with br_netfilter loaded the
//!   kernel prints `PHYSIN=` for a forwarded frame at postrouting, and NFLOG does not report the
//!   input port there, so that line lacks it (documented in fwlog(8)).
//! - The IP, transport, ICMP-quote and IPv6 extension parts follow `dump_ipv4_packet` and
//!   `dump_ipv6_packet` field for field, including where the kernel stops early (`TRUNCATED`,
//!   `INCOMPLETE [n bytes] `, `OPT (TRUNCATED)`) and its quirks (an AH non-first fragment
//!   prints nothing after the IP part; ESP prints `PROTO=ESP ` even then).
//!
//! Where the record holds less than the kernel knew (documented in fwlog(8)):
//! - interface names unknown to the record print as `if<index>`;
//! - the Ethernet header comes from NFULA_HWHEADER (input device) or NFULA_L2HDR (bridge and
//!   netdev); `skb->dev`'s type is NFULA_HWTYPE when there was an input device, and is assumed
//!   Ethernet otherwise (always true for bridge ports);
//! - NFLOG reports the owner of any socket, the kernel only of one in the logging namespace:
//!   `UID=` is left out for bridge/netdev frames that arrived on a device, which come from
//!   outside the namespace's own stack;
//! - a partial record (copy range shorter than the packet) prints what the kernel would print
//!   for a packet that short, since the rest is unknown;
//! - untrusted bytes (prefix, interface names) are escaped as /dev/kmsg shows them (`\xNN`).
//! - the kernel caps the text at 1017 bytes (its 1020-byte buffer minus the level marker and
//!   NUL); the same cap is applied to the unescaped length.
//!
//! tests/kernel_oracle.rs (inet) and tests/kernel_oracle_bridge.rs (bridge, VLAN, ARP) compare
//! these lines with the running kernel's own.

use crate::decode::{self, ipv6, proto, Arp, Decoded, Ipv4, Ipv6, Layer, Net, Transport};
use crate::packet::{family, Iface, Packet};

use super::escape::escape_into;
use super::icmp::{IcmpView, Quoted};
use super::names::proto_label;
use super::write::*;
use super::LogFlags;

#[path = "kernel_ext.rs"]
mod ext;

/// Longest text the kernel's log buffer holds (S_SIZE 1020, minus NUL and `<SOH><level>`).
const KERNEL_TEXT_MAX: usize = 1017;

const ARPHRD_ETHER: u16 = 1;
const ARPHRD_SIT: u16 = 776;

/// Whether to keep going after a part (the kernel's early `return`s skip UID and MARK).
enum Flow {
    Go,
    Stop,
}

fn iface(out: &mut Vec<u8>, i: Option<&Iface<'_>>) -> usize {
    match i {
        Some(Iface { name: Some(n), .. }) => escape_into(out, n),
        Some(Iface { index, name: None }) => {
            s(out, "if");
            dec(out, *index as u64);
            0
        }
        None => 0,
    }
}

/// Append the kernel line for `p` (without syslog framing and without the newline).
pub(crate) fn line(p: &Packet<'_>, d: &Decoded<'_>, flags: LogFlags, out: &mut Vec<u8>) {
    let start = out.len();
    let mut extra = 0;
    if let Some(pre) = p.prefix {
        extra += escape_into(out, pre);
    }
    // NFLOG reports a bridge-family packet's port as PHYSINDEV/PHYSOUTDEV and the bridge as
    // INDEV/OUTDEV; the kernel's line names the port (the hook's `in`/`out`) and, except for
    // br_netfilter's PHYSIN at postrouting (not in the record), nothing else.
    let bridge = p.family == family::BRIDGE;
    let (indev, outdev) = if bridge {
        (p.physindev.or(p.indev), p.physoutdev.or(p.outdev))
    } else {
        (p.indev, p.outdev)
    };
    s(out, "IN=");
    extra += iface(out, indev.as_ref());
    s(out, " OUT=");
    extra += iface(out, outdev.as_ref());
    s(out, " ");
    if !bridge {
        if let Some(phys) = &p.physindev {
            if p.indev.map(|i| i.index) != Some(phys.index) {
                s(out, "PHYSIN=");
                extra += iface(out, Some(phys));
                s(out, " ");
            }
        }
        if let Some(phys) = &p.physoutdev {
            if p.outdev.map(|i| i.index) != Some(phys.index) {
                s(out, "PHYSOUT=");
                extra += iface(out, Some(phys));
                s(out, " ");
            }
        }
    }
    match &d.net {
        // nf_log_arp_packet: no MAC= part at all, only the decoded Ethernet header with the
        // ether flag, whether or not there is an input device.
        Net::Arp(a) => arp_part(p, a, flags, out),
        // dump_arp_packet stops before its Ethernet part when the ARP header is short.
        Net::Truncated(t) if matches!(t.layer, Layer::Arp) => s(out, "TRUNCATED"),
        // nf_log_unknown_packet (bridge and netdev families): the MAC part even without an
        // input device, and nothing after it.
        Net::NotIp { .. } if matches!(p.family, family::BRIDGE | family::NETDEV) => {
            mac(p, flags, out);
        }
        net => {
            if indev.is_some() {
                mac(p, flags, out);
            }
            match net {
                Net::Ipv4(v4) => {
                    // dump_ipv4_packet takes `iphoff == 0` to mean "the outer packet": where
                    // the network header is not at skb->data (netdev egress), the kernel prints
                    // neither an ICMP error's quoted packet nor UID and MARK.
                    let top = decode::network_offset(p) == 0;
                    ipv4_part(p, v4, true, top, flags, out)
                }
                Net::Ipv6(v6) => ipv6_part(p, v6, true, flags, out),
                Net::Truncated(_) => s(out, "TRUNCATED"),
                Net::NotIp { .. } | Net::Arp(_) => {}
            }
        }
    }
    if out.len() - start - extra > KERNEL_TEXT_MAX {
        cap(out, start);
    }
}

/// The link-layer header as the kernel's `eth_hdr(skb)` sees it: NFULA_HWHEADER when there
/// was an input device, else NFULA_L2HDR (bridge and netdev families).
fn link_header<'a>(p: &Packet<'a>) -> Option<&'a [u8]> {
    p.hwheader.or(p.l2header)
}

/// Whether `skb->dev` is Ethernet. NFULA_HWTYPE says so when there was an input device;
/// without one, bridge ports are Ethernet by construction (the bridge refuses anything else)
/// and a netdev-family device is assumed to be.
fn dev_is_ether(p: &Packet<'_>) -> bool {
    match p.hwtype {
        Some(t) => t == ARPHRD_ETHER,
        None => p.l2header.is_some(),
    }
}

/// `MACSRC= MACDST= [VPROTO= VID=] MACPROTO=`, the kernel's decoded Ethernet header. `VID=`
/// is the whole TCI (`skb_vlan_tag_get`), priority bits included, as the kernel prints it.
fn ether_header(p: &Packet<'_>, h: &[u8], out: &mut Vec<u8>) {
    s(out, "MACSRC=");
    colon_hex(out, &h[6..12]);
    s(out, " MACDST=");
    colon_hex(out, &h[0..6]);
    s(out, " ");
    if let Some(v) = p.vlan {
        s(out, "VPROTO=");
        hex_pad(out, v.proto as u64, 4, false);
        s(out, " VID=");
        dec(out, v.tci as u64);
        s(out, " ");
    }
    s(out, "MACPROTO=");
    hex_pad(out, u16::from_be_bytes([h[12], h[13]]) as u64, 4, false);
    s(out, " ");
}

/// dump_arp_packet's Ethernet part: only with the ether flag, on an Ethernet device whose MAC
/// header is at least 14 bytes long.
fn arp_ether(p: &Packet<'_>, flags: LogFlags, out: &mut Vec<u8>) {
    if !flags.ether || !dev_is_ether(p) {
        return;
    }
    if let Some(h) = ether_mac_header(p) {
        ether_header(p, h, out);
    }
}

/// The Ethernet header, when the kernel's `skb_mac_header_len(skb) >= ETH_HLEN` test passes:
/// NFULA_L2HDR is exactly `skb_mac_header_len` bytes; without it (inet and arp families)
/// HWHEADER's length stands in, which is the device's header length.
fn ether_mac_header<'a>(p: &Packet<'a>) -> Option<&'a [u8]> {
    let mac_len = p.l2header.or(p.hwheader).map_or(0, <[u8]>::len);
    link_header(p).filter(|h| mac_len >= 14 && h.len() >= 14)
}

/// `ARP HTYPE=%d PTYPE=0x%04x OPCODE=%d`, then for Ethernet/IPv4 the addresses or
/// `INCOMPLETE [n bytes]`. The kernel ends this line without a trailing space and prints no
/// UID or MARK for ARP.
fn arp_part(p: &Packet<'_>, a: &Arp<'_>, flags: LogFlags, out: &mut Vec<u8>) {
    arp_ether(p, flags, out);
    s(out, "ARP HTYPE=");
    dec(out, a.htype as u64);
    s(out, " PTYPE=0x");
    hex_pad(out, a.ptype as u64, 4, false);
    s(out, " OPCODE=");
    dec(out, a.opcode as u64);
    if !a.is_ether_ipv4() {
        return;
    }
    match a.addrs {
        Ok(x) => {
            s(out, " MACSRC=");
            colon_hex(out, x.sender_hw);
            s(out, " IPSRC=");
            ipv4(out, ip4(x.sender_proto));
            s(out, " MACDST=");
            colon_hex(out, x.target_hw);
            s(out, " IPDST=");
            ipv4(out, ip4(x.target_proto));
        }
        Err(_) => {
            // skb->len - sizeof(struct arphdr), as %zu: the 8-byte header is there. skb->len
            // counts from skb->data, so a link-layer header before the ARP one counts too.
            s(out, " INCOMPLETE [");
            dec(out, p.payload.len().saturating_sub(8) as u64);
            s(out, " bytes]");
        }
    }
}

/// Four bytes as an address (the caller has checked the length is 4).
fn ip4(b: &[u8]) -> std::net::Ipv4Addr {
    match b {
        [a, b, c, d] => std::net::Ipv4Addr::new(*a, *b, *c, *d),
        _ => std::net::Ipv4Addr::UNSPECIFIED,
    }
}

/// Cut the line at 1017 raw bytes. Every backslash in the output starts a 4-byte `\xNN`
/// escape standing for one raw byte (a raw backslash is itself escaped), so raw length is
/// counted by stepping over escapes, and the cut never splits one.
fn cap(out: &mut Vec<u8>, start: usize) {
    let mut i = start;
    let mut raw = 0;
    while i < out.len() && raw < KERNEL_TEXT_MAX {
        i += if out[i] == b'\\' { 4 } else { 1 };
        raw += 1;
    }
    out.truncate(i.min(out.len()));
}

/// dump_mac_header: with the ether flag on an Ethernet device the decoded header (nothing at
/// all when the MAC header is shorter than 14 bytes), else `MAC=` and the header bytes.
fn mac(p: &Packet<'_>, flags: LogFlags, out: &mut Vec<u8>) {
    let h = link_header(p).unwrap_or(&[]);
    if flags.ether && dev_is_ether(p) {
        if let Some(h) = ether_mac_header(p) {
            ether_header(p, h, out);
        }
        return;
    }
    // The kernel prints dev->hard_header_len bytes: HWHEADER is exactly that; L2HDR (no input
    // device) may hold VLAN tags beyond it, so it is cut to an Ethernet header.
    let h = match p.hwheader {
        Some(x) => x,
        None => &h[..h.len().min(14)],
    };
    s(out, "MAC=");
    colon_hex(out, h);
    if p.hwtype == Some(ARPHRD_SIT) && h.len() >= 14 + 20 {
        let ip = &h[14..];
        s(out, " TUNNEL=");
        ipv4(out, [ip[12], ip[13], ip[14], ip[15]].into());
        s(out, "->");
        ipv4(out, [ip[16], ip[17], ip[18], ip[19]].into());
    }
    s(out, " ");
}

fn incomplete(out: &mut Vec<u8>, n: u32) {
    s(out, "INCOMPLETE [");
    dec(out, n as u64);
    s(out, " bytes] ");
}

/// `outer`: the packet itself, not the one an ICMP error quotes. `top`: the kernel's
/// `!iphoff` (outer, and the network header at the start of the skb's data).
fn ipv4_part(
    p: &Packet<'_>,
    v4: &Ipv4<'_>,
    outer: bool,
    top: bool,
    flags: LogFlags,
    out: &mut Vec<u8>,
) {
    // Both addresses' text in one access to the per-thread cache, each after its key.
    let [src, dst] = ipv4_texts(v4.src, v4.dst);
    ipv4_text_after(out, b"SRC=", &src);
    ipv4_text_after(out, b" DST=", &dst);
    s(out, " LEN=");
    // iph_totlen(): a BIG TCP GSO packet has total length 0 and the skb's length instead.
    let len = if outer && v4.total_len == 0 && v4.len > 0xffff {
        v4.len as u64
    } else {
        v4.total_len as u64
    };
    dec(out, len);
    s(out, " TOS=0x");
    hex_pad(out, (v4.tos & 0x1e) as u64, 2, true);
    s(out, " PREC=0x");
    hex_pad(out, (v4.tos & 0xe0) as u64, 2, true);
    s(out, " TTL=");
    dec(out, v4.ttl as u64);
    s(out, " ID=");
    dec(out, v4.id as u64);
    s(out, " ");
    if v4.ce() {
        s(out, "CE ");
    }
    if v4.df() {
        s(out, "DF ");
    }
    if v4.mf() {
        s(out, "MF ");
    }
    if v4.frag_offset() != 0 {
        s(out, "FRAG:");
        dec(out, v4.frag_offset() as u64);
        s(out, " ");
    }
    if flags.ip_options && v4.ihl as usize * 4 > 20 {
        match v4.options {
            Ok(o) => {
                s(out, "OPT (");
                hex_bytes_upper(out, o);
                s(out, ") ");
            }
            Err(_) => {
                s(out, "TRUNCATED");
                return;
            }
        }
    }
    let flow = match v4.protocol {
        proto::TCP => tcp(&v4.transport, flags, out),
        proto::UDP | proto::UDPLITE => udp(v4.protocol, &v4.transport, out),
        proto::ICMP => {
            proto_is(out, proto::ICMP);
            match &v4.transport {
                Transport::Truncated(t) => incomplete(out, t.kernel_remaining()),
                t => icmp(p, t, top, flags, out),
            }
            Flow::Go
        }
        proto::AH => {
            if !matches!(v4.transport, Transport::Fragment) {
                proto_is(out, proto::AH);
                match &v4.transport {
                    Transport::Ah(a) => spi(out, a.spi),
                    Transport::Truncated(t) => incomplete(out, t.kernel_remaining()),
                    _ => {}
                }
            }
            Flow::Go
        }
        proto::ESP => {
            proto_is(out, proto::ESP);
            match &v4.transport {
                Transport::Esp(e) => spi(out, e.spi),
                Transport::Truncated(t) => incomplete(out, t.kernel_remaining()),
                _ => {}
            }
            Flow::Go
        }
        n => {
            s(out, "PROTO=");
            dec(out, n as u64);
            s(out, " ");
            Flow::Go
        }
    };
    if let (Flow::Go, true) = (flow, top) {
        uid_mark(p, flags, out);
    }
}

/// `PROTO=NAME ` of a protocol with a decoder.
fn proto_is(out: &mut Vec<u8>, protocol: u8) {
    s(out, "PROTO=");
    s(out, proto_label(protocol).kernel);
    s(out, " ");
}

/// The fields of an ICMP or ICMPv6 message after its `PROTO=`; with `quote`, the packet an
/// error quotes, in brackets. Nothing for a non-first fragment.
fn icmp(p: &Packet<'_>, t: &Transport<'_>, quote: bool, flags: LogFlags, out: &mut Vec<u8>) {
    let Some(m) = IcmpView::of(t) else {
        return;
    };
    s(out, "TYPE=");
    dec(out, m.icmp_type as u64);
    s(out, " CODE=");
    dec(out, m.code as u64);
    s(out, " ");
    if let Some(t) = &m.short {
        incomplete(out, t.kernel_remaining());
        return;
    }
    if let Some((id, seq)) = m.echo {
        s(out, "ID=");
        dec(out, id as u64);
        s(out, " SEQ=");
        dec(out, seq as u64);
        s(out, " ");
    }
    match m.pointer {
        Some(ptr) if m.v6 => {
            s(out, "POINTER=");
            hex_pad(out, ptr as u64, 8, false);
            s(out, " ");
        }
        Some(ptr) => {
            s(out, "PARAMETER=");
            dec(out, ptr as u64);
            s(out, " ");
        }
        None => {}
    }
    if let Some(g) = m.gateway {
        s(out, "GATEWAY=");
        ipv4(out, g);
        s(out, " ");
    }
    if let Some(q) = m.quoted.filter(|_| quote) {
        s(out, "[");
        match q {
            Quoted::V4(Ok(inner)) => ipv4_part(p, &inner, false, false, flags, out),
            Quoted::V6(Ok(inner)) => ipv6_part(p, &inner, false, flags, out),
            Quoted::V4(Err(_)) | Quoted::V6(Err(_)) => s(out, "TRUNCATED"),
        }
        s(out, "] ");
    }
    if let Some(mtu) = m.mtu {
        s(out, "MTU=");
        dec(out, mtu as u64);
        s(out, " ");
    }
}

fn spi(out: &mut Vec<u8>, spi: u32) {
    s(out, "SPI=0x");
    hex(out, spi as u64);
    s(out, " ");
}

/// Whether the record's socket owner may belong to another network namespace. The kernel's
/// line shows `UID= GID=` only for a socket in the logging namespace; NFLOG reports the owner
/// of any socket. A frame that a bridge port (or a netdev ingress hook) received came from
/// outside the namespace's own stack (a veth peer, a NIC), so its socket, if any, is not one
/// of this namespace's: leave UID out there.
fn socket_may_be_foreign(p: &Packet<'_>) -> bool {
    matches!(p.family, family::BRIDGE | family::NETDEV)
        && (p.indev.is_some() || p.physindev.is_some())
}

fn uid_mark(p: &Packet<'_>, flags: LogFlags, out: &mut Vec<u8>) {
    if flags.skuid && !socket_may_be_foreign(p) {
        if let Some(uid) = p.uid {
            s(out, "UID=");
            dec(out, uid as u64);
            s(out, " GID=");
            dec(out, p.gid.unwrap_or(0) as u64);
            s(out, " ");
        }
    }
    if p.mark != 0 {
        s(out, "MARK=0x");
        hex(out, p.mark as u64);
        s(out, " ");
    }
}

fn tcp(t: &Transport<'_>, flags: LogFlags, out: &mut Vec<u8>) -> Flow {
    proto_is(out, proto::TCP);
    let th = match t {
        Transport::Tcp(th) => th,
        Transport::Truncated(tr) => {
            incomplete(out, tr.kernel_remaining());
            return Flow::Stop;
        }
        _ => return Flow::Go, // non-first fragment
    };
    s(out, "SPT=");
    dec(out, th.src_port as u64);
    s(out, " DPT=");
    dec(out, th.dst_port as u64);
    s(out, " ");
    if flags.tcp_sequence {
        s(out, "SEQ=");
        dec(out, th.seq as u64);
        s(out, " ACK=");
        dec(out, th.ack as u64);
        s(out, " ");
    }
    s(out, "WINDOW=");
    dec(out, th.window as u64);
    s(out, " RES=0x");
    hex_pad(out, th.kernel_res() as u64, 2, false);
    s(out, " ");
    if th.ae() {
        s(out, "AE ");
    }
    use crate::decode::Tcp as T;
    for (bit, name) in [
        (T::CWR, "CWR "),
        (T::ECE, "ECE "),
        (T::URG, "URG "),
        (T::ACK, "ACK "),
        (T::PSH, "PSH "),
        (T::RST, "RST "),
        (T::SYN, "SYN "),
        (T::FIN, "FIN "),
    ] {
        if th.has(bit) {
            s(out, name);
        }
    }
    s(out, "URGP=");
    dec(out, th.urgent as u64);
    s(out, " ");
    if flags.tcp_options && th.data_offset as usize * 4 > 20 {
        match th.options {
            Ok(o) => {
                s(out, "OPT (");
                hex_bytes_upper(out, o);
                s(out, ") ");
            }
            Err(_) => {
                s(out, "OPT (TRUNCATED)");
                return Flow::Stop;
            }
        }
    }
    Flow::Go
}

fn udp(protocol: u8, t: &Transport<'_>, out: &mut Vec<u8>) -> Flow {
    proto_is(out, protocol);
    match t {
        Transport::Udp(u) => {
            s(out, "SPT=");
            dec(out, u.src_port as u64);
            s(out, " DPT=");
            dec(out, u.dst_port as u64);
            s(out, " LEN=");
            dec(out, u.length as u64);
            s(out, " ");
            Flow::Go
        }
        Transport::Truncated(tr) => {
            incomplete(out, tr.kernel_remaining());
            Flow::Stop
        }
        _ => Flow::Go,
    }
}

fn ipv6_part(p: &Packet<'_>, v6: &Ipv6<'_>, outer: bool, flags: LogFlags, out: &mut Vec<u8>) {
    s(out, "SRC=");
    ipv6_full(out, v6.src);
    s(out, " DST=");
    ipv6_full(out, v6.dst);
    s(out, " LEN=");
    let len = if outer && v6.payload_len == 0 && v6.len() > 0xffff + 40 {
        v6.len() as u64
    } else {
        v6.payload_len as u64 + 40
    };
    dec(out, len);
    s(out, " TC=");
    dec(out, v6.traffic_class as u64);
    s(out, " HOPLIMIT=");
    dec(out, v6.hop_limit as u64);
    s(out, " FLOWLBL=");
    dec(out, v6.flow_label as u64);
    s(out, " ");
    if let Flow::Stop = ext::ext_headers(v6, flags.ip_options, out) {
        return;
    }
    if let crate::decode::Ipv6End::Truncated(_) = v6.end {
        s(out, "TRUNCATED");
        return;
    }
    let flow = match v6.protocol {
        proto::TCP => tcp(&v6.transport, flags, out),
        proto::UDP | proto::UDPLITE => udp(v6.protocol, &v6.transport, out),
        proto::ICMPV6 => {
            proto_is(out, proto::ICMPV6);
            if let Transport::Truncated(t) = &v6.transport {
                incomplete(out, t.kernel_remaining());
                Flow::Stop
            } else {
                icmp(p, &v6.transport, true, flags, out);
                Flow::Go
            }
        }
        n => {
            s(out, "PROTO=");
            dec(out, n as u64);
            s(out, " ");
            Flow::Go
        }
    };
    if let (Flow::Go, true) = (flow, outer) {
        uid_mark(p, flags, out);
    }
}

/// A loss report line (after the caller's syslog framing).
pub(crate) fn loss(ev: &super::LossEvent, out: &mut Vec<u8>) {
    // Tagged `fwlog:` so parsers keyed on `kernel:` and `IN=` skip it.
    s(out, "fwlog: LOST ");
    dec(out, ev.count);
    s(out, " log records, cause ");
    s(out, ev.cause.name());
    loss_scope(ev, out);
    out.push(b'\n');
}
