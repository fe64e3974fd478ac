//! `--format fwlog`: fwlog 0.8's block per packet, extended in its style to every protocol.
//!
//! A block is one line per layer, each `TAG: key value, key value, ...`, and ends with an empty
//! line. Numbers come first and their names follow in parentheses; addresses are followed by
//! their resolved name in parentheses when one is known. fwlog 0.8's published IPv4/TCP block
//! keeps its field names and order; new fields are appended after them:
//!
//! ```text
//! PKT: mark 0, hook 1 (input), received 2003-11-10 12:46:29.352959, indev ppp0, group 0
//! IP(41): [df], ttl 111, proto 6 (tcp), from 195.252.43.21 (h21.example) to 145.254.34.35, id 1, tos 0x00
//! TCP: src port 3531, dst port 3220, seq 0x891a0627, flags [psh], winsz 63525, ack 0x363a3b9e
//! ```
//!
//! Bridge and netdev records add `, vlan ID (pcp N[, dei], proto 0xTPID)` to the PKT line
//! when the kernel held a VLAN tag out of band; ARP and RARP get an `ARP:` line in place of the
//! IP line (`opcode 1 (request), htype 1, ptype 0x0800, sender MAC IP, target MAC IP`).
//!
//! Markers: `PKT (replayed):` for a record replayed from the spool, `(local clock)` /
//! `(capture clock)` after the time when it is not the kernel's, `NOTE:` lines for damaged
//! metadata, `[partial: N of M bytes]` at the end of the IP line for a record cut short by the
//! copy range, `[truncated: LAYER N of M bytes]` where a header stops early. The packet an ICMP
//! error quotes follows its ICMP line, each of its lines indented by two spaces.

use std::net::IpAddr;

use crate::decode::{
    arp_opcode_name, ipv6, proto, Arp, Decoded, Ipv4, Ipv6, Ipv6End, Layer, Net, Partial,
    Transport, Truncated,
};
use crate::packet::{family, hook, Iface, Packet, TimeSource};

use super::escape::{escape_after, escape_into, escape_quoted_framed};
use super::icmp::{IcmpView, Quoted};
use super::names::{proto_label, NameTables};
use super::write::*;
use super::{tcpopt, time, LossEvent, Names};

/// Append the block for one packet, ending with its empty line.
pub(crate) fn block(
    t: &NameTables,
    p: &Packet<'_>,
    d: &Decoded<'_>,
    names: &dyn Names,
    out: &mut Vec<u8>,
) {
    pkt_line(p, out);
    if let Some(dmg) = &p.damage {
        s(out, "NOTE: damaged metadata: ");
        escape_into(out, dmg.as_bytes());
        out.push(b'\n');
    }
    match &d.net {
        Net::Ipv4(v4) => ipv4(t, v4, d.partial, d.trailing, names, "", out),
        Net::Ipv6(v6) => ipv6(t, v6, d.partial, d.trailing, names, "", out),
        Net::Arp(a) => arp(a, d.partial, names, out),
        Net::Truncated(tr) => {
            s(
                out,
                match tr.layer {
                    Layer::Ipv6 => "IP6: ",
                    Layer::Arp => "ARP: ",
                    _ => "IP: ",
                },
            );
            truncated(out, tr);
            partial(out, d.partial);
            out.push(b'\n');
        }
        Net::NotIp { version, len } => {
            key_dec(out, "DATA: ", *len as u64);
            match p.hw_protocol {
                Some(ethertype) if matches!(p.family, family::BRIDGE | family::NETDEV) => {
                    s(out, " bytes, ethertype 0x");
                    hex_pad(out, ethertype as u64, 4, false);
                }
                _ => {
                    key_dec(out, " bytes, not IP (version nibble ", *version as u64);
                    s(out, ")");
                }
            }
            partial(out, d.partial);
            out.push(b'\n');
        }
    }
    out.push(b'\n');
}

/// `key` is the whole `, NAME ` before the interface. Inlined: most packets lack most of the
/// four interfaces, and then this is one test.
#[inline(always)]
fn iface(out: &mut Vec<u8>, key: &str, i: &Option<Iface<'_>>) {
    if let Some(i) = i {
        match i.name {
            Some(n) => escape_after(out, key, n),
            None => {
                s(out, key);
                key_dec(out, "if", i.index as u64);
            }
        }
    }
}

fn pkt_line(p: &Packet<'_>, out: &mut Vec<u8>) {
    if p.replayed {
        key_dec(out, "PKT (replayed): mark ", p.mark as u64);
    } else {
        key_dec(out, "PKT: mark ", p.mark as u64);
    }
    if let Some(h) = p.hook {
        key_dec(out, ", hook ", h as u64);
        if let Some(n) = hook::name_in(p.family, h) {
            framed(out, " (", n.as_bytes(), ")");
        }
    }
    time::fwlog(out, b", received ", &p.timestamp);
    match p.timestamp.source {
        TimeSource::Kernel => {}
        TimeSource::Local => s(out, " (local clock)"),
        TimeSource::Capture => s(out, " (capture clock)"),
    }
    iface(out, ", indev ", &p.indev);
    iface(out, ", outdev ", &p.outdev);
    iface(out, ", physindev ", &p.physindev);
    iface(out, ", physoutdev ", &p.physoutdev);
    if let Some(mac) = p.hwaddr.filter(|m| !m.is_empty()) {
        s(out, ", mac ");
        colon_hex(out, mac);
    }
    if let Some(v) = p.vlan {
        key_dec(out, ", vlan ", v.id() as u64);
        key_dec(out, " (pcp ", v.pcp() as u64);
        if v.dei() {
            s(out, ", dei");
        }
        s(out, ", proto 0x");
        hex_pad(out, v.proto as u64, 4, false);
        s(out, ")");
    }
    key_dec(out, ", group ", p.group as u64);
    if let Some(x) = p.seq {
        key_dec(out, ", seq ", x as u64);
    }
    if let Some(x) = p.seq_global {
        key_dec(out, ", seq_global ", x as u64);
    }
    if let Some(u) = p.uid {
        key_dec(out, ", uid ", u as u64);
    }
    if let Some(g) = p.gid {
        key_dec(out, ", gid ", g as u64);
    }
    match p.prefix {
        Some(pre) => escape_quoted_framed(out, ", prefix \"", pre, "\"\n"),
        None => out.push(b'\n'),
    }
}

/// `ARP: opcode 1 (request), htype 1, ptype 0x0800, sender MAC IP (name), target MAC IP`.
/// Protocol addresses other than IPv4 are printed as colon-separated hex, like hardware ones.
fn arp(a: &Arp<'_>, part: Option<Partial>, names: &dyn Names, out: &mut Vec<u8>) {
    key_dec(out, "ARP: opcode ", a.opcode as u64);
    if let Some(n) = arp_opcode_name(a.opcode) {
        s(out, " (");
        s(out, n);
        s(out, ")");
    }
    key_dec(out, ", htype ", a.htype as u64);
    s(out, ", ptype 0x");
    hex_pad(out, a.ptype as u64, 4, false);
    match (a.addrs, a.ipv4()) {
        (Ok(x), ips) => {
            for (what, hw, proto, ip) in [
                (", sender ", x.sender_hw, x.sender_proto, ips.map(|i| i.0)),
                (", target ", x.target_hw, x.target_proto, ips.map(|i| i.1)),
            ] {
                s(out, what);
                colon_hex(out, hw);
                match ip {
                    Some(ip) => addr(out, b" ", ip.into(), names),
                    None => {
                        s(out, " ");
                        colon_hex(out, proto);
                    }
                }
            }
        }
        (Err(tr), _) => {
            s(out, ", addresses ");
            truncated(out, &tr);
        }
    }
    partial(out, part);
    out.push(b'\n');
}

/// `, id N, seq N` of an ICMP or ICMPv6 echo.
fn echo(out: &mut Vec<u8>, echo: Option<(u16, u16)>) {
    if let Some((id, seq)) = echo {
        key_dec(out, ", id ", id as u64);
        key_dec(out, ", seq ", seq as u64);
    }
}

/// `, pointer N` and `, mtu N` of an ICMP or ICMPv6 error, where present.
fn pointer_mtu(out: &mut Vec<u8>, pointer: Option<u32>, mtu: Option<u32>) {
    if let Some(p) = pointer {
        key_dec(out, ", pointer ", p.into());
    }
    if let Some(m) = mtu {
        key_dec(out, ", mtu ", m.into());
    }
}

/// The line for an ICMP error's quoted packet that cannot be read at all (`label` is `IP` or
/// `IP6`).
fn quoted_unreadable(out: &mut Vec<u8>, label: &str, x: &Truncated) {
    s(out, "  ");
    s(out, label);
    s(out, ": ");
    truncated(out, x);
    out.push(b'\n');
}

fn truncated(out: &mut Vec<u8>, t: &Truncated) {
    s(out, "[truncated: ");
    s(out, t.layer.name());
    key_dec(out, " ", t.have() as u64);
    key_dec(out, " of ", t.need as u64);
    s(out, " bytes]");
}

#[inline(always)]
fn partial(out: &mut Vec<u8>, p: Option<Partial>) {
    if let Some(p) = p {
        key_dec(out, " [partial: ", p.captured as u64);
        key_dec(out, " of ", p.original as u64);
        s(out, " bytes]");
    }
}

/// `key` (`, from `, ` to `, a literal), the address, its name in parentheses and its GeoIP
/// tag where known.
fn addr<const K: usize>(out: &mut Vec<u8>, key: &[u8; K], a: IpAddr, names: &dyn Names) {
    out.extend_from_slice(key);
    match a {
        IpAddr::V4(a) => super::write::ipv4(out, a),
        IpAddr::V6(a) => super::write::ipv6(out, a),
    }
    name_geo(out, a, names);
}

/// An address's name in parentheses and its GeoIP tag, where known.
fn name_geo(out: &mut Vec<u8>, a: IpAddr, names: &dyn Names) {
    if let Some(n) = names.name_text(a) {
        super::escape::name_text_framed(out, n);
    }
    super::geo::tag(out, names.geo(a));
}

/// `, proto N (NAME)`. Inlined into the two IP lines (a call cost a fifth of it).
#[inline(always)]
fn proto(out: &mut Vec<u8>, t: &NameTables, n: u8) {
    key_dec(out, ", proto ", n as u64);
    if let Some(name) = t.protocol_shown(n) {
        bytes(out, &name.fwlog);
    }
}

/// What follows the IPv4 total length up to the TTL, for every combination of the flags CE
/// (bit 0), DF (bit 1) and MF (bit 2).
const IP_FLAGS: [&str; 8] = [
    "): [], ttl ",
    "): [ce], ttl ",
    "): [df], ttl ",
    "): [ce,df], ttl ",
    "): [mf], ttl ",
    "): [ce,mf], ttl ",
    "): [df,mf], ttl ",
    "): [ce,df,mf], ttl ",
];

/// The indent of a quoted packet's lines (none for the packet's own).
#[inline(always)]
fn indent_into(out: &mut Vec<u8>, indent: &str) {
    if !indent.is_empty() {
        bytes(out, indent.as_bytes());
    }
}

fn ipv4(
    t: &NameTables,
    v4: &Ipv4<'_>,
    part: Option<Partial>,
    trailing: usize,
    names: &dyn Names,
    indent: &str,
    out: &mut Vec<u8>,
) {
    indent_into(out, indent);
    key_dec(out, "IP(", v4.total_len as u64);
    let f = usize::from(v4.ce()) | usize::from(v4.df()) << 1 | usize::from(v4.mf()) << 2;
    bytes(out, IP_FLAGS[f].as_bytes());
    dec(out, v4.ttl as u64);
    proto(out, t, v4.protocol);
    // Both addresses' text in one access to the per-thread cache.
    let [src, dst] = super::write::ipv4_texts(v4.src, v4.dst);
    super::write::ipv4_text_after(out, b", from ", &src);
    name_geo(out, v4.src.into(), names);
    super::write::ipv4_text_after(out, b" to ", &dst);
    name_geo(out, v4.dst.into(), names);
    key_dec(out, ", id ", v4.id as u64);
    key_hex(out, ", tos 0x", v4.tos as u64, 2);
    if v4.frag_offset() != 0 {
        key_dec(out, ", frag offset ", v4.frag_offset() as u64 * 8);
    }
    if v4.version != 4 {
        key_dec(out, ", bad version ", v4.version as u64);
    }
    if v4.bad_ihl() {
        key_dec(out, ", bad header length ", v4.ihl as u64 * 4);
    }
    match &v4.options {
        Ok(o) if !o.is_empty() => {
            s(out, ", options ");
            hex_bytes(out, o);
        }
        Ok(_) => {}
        Err(tr) => {
            s(out, ", options ");
            truncated(out, tr);
        }
    }
    if trailing > 0 {
        key_dec(out, ", trailer ", trailing as u64);
        s(out, " bytes");
    }
    partial(out, part);
    out.push(b'\n');
    transport(t, &v4.transport, v4.protocol, names, indent, out);
}

fn ipv6(
    t: &NameTables,
    v6: &Ipv6<'_>,
    part: Option<Partial>,
    trailing: usize,
    names: &dyn Names,
    indent: &str,
    out: &mut Vec<u8>,
) {
    indent_into(out, indent);
    key_dec(out, "IP6(", v6.payload_len as u64 + 40);
    s(out, "): [");
    if v6.fragment.is_some_and(|f| f.more) {
        s(out, "mf");
    }
    key_dec(out, "], hlim ", v6.hop_limit as u64);
    proto(out, t, v6.shown_protocol());
    addr(out, b", from ", v6.src.into(), names);
    addr(out, b" to ", v6.dst.into(), names);
    s(out, ", tc 0x");
    hex_pad(out, v6.traffic_class as u64, 2, false);
    s(out, ", flow 0x");
    hex_pad(out, v6.flow_label as u64, 5, false);
    if v6.version != 6 {
        key_dec(out, ", bad version ", v6.version as u64);
    }
    let mut first = true;
    for e in v6.ext_headers() {
        s(out, if first { ", ext [" } else { "," });
        first = false;
        s(out, crate::decode::ipv6::ext_name(e.kind));
    }
    if !first {
        s(out, "]");
    }
    if let Some(f) = v6.fragment {
        key_dec(out, ", frag offset ", f.offset as u64);
        s(out, ", frag id 0x");
        hex_pad(out, f.id as u64, 8, false);
    }
    match v6.end {
        Ipv6End::Truncated(tr) | Ipv6End::FragmentTruncated(tr) => {
            s(out, ", ext ");
            truncated(out, &tr);
        }
        Ipv6End::AfterFragment(_) => s(out, ", ext [after a non-first fragment: not decoded]"),
        _ => {}
    }
    if trailing > 0 {
        key_dec(out, ", trailer ", trailing as u64);
        s(out, " bytes");
    }
    partial(out, part);
    out.push(b'\n');
    match v6.end {
        Ipv6End::Upper => transport(t, &v6.transport, v6.protocol, names, indent, out),
        Ipv6End::Esp => {
            // The ESP header itself: find it in the chain for its SPI.
            if let Some(e) = v6.ext_headers().find(|e| e.kind == ipv6::ESP) {
                indent_into(out, indent);
                tag(out, proto::ESP);
                match e.spi {
                    Some(spi) => {
                        s(out, "spi 0x");
                        hex_pad(out, spi as u64, 8, false);
                    }
                    None => {
                        let tr = Truncated {
                            layer: Layer::Esp,
                            offset: e.offset,
                            end: v6.len(),
                            need: 8,
                        };
                        truncated(out, &tr);
                    }
                }
                out.push(b'\n');
            }
        }
        _ => {}
    }
}

// Inlined: `key` is then a constant at each call, copied without a call into memcpy.
#[inline(always)]
fn port(out: &mut Vec<u8>, t: &NameTables, key: &str, p: u16, tcp: bool) {
    key_dec(out, key, p as u64);
    if let Some(n) = t.service_shown(p, tcp) {
        bytes(out, &n.fwlog);
    }
}

/// `TAG: ` of a transport line. Inlined: the protocol is a constant at most calls, and the
/// label's lookup then folds away.
#[inline(always)]
fn tag(out: &mut Vec<u8>, protocol: u8) {
    bytes(out, proto_label(protocol).fwlog.as_bytes());
    s(out, ": ");
}

fn type_code(out: &mut Vec<u8>, t: u8, c: u8, tn: Option<&str>, cn: Option<&str>) {
    key_dec(out, "type ", t as u64);
    if let Some(n) = tn {
        s(out, " (");
        s(out, n);
        s(out, ")");
    }
    key_dec(out, ", code ", c as u64);
    if let Some(n) = cn {
        s(out, " (");
        s(out, n);
        s(out, ")");
    }
}

fn transport(
    t: &NameTables,
    tr: &Transport<'_>,
    protocol: u8,
    names: &dyn Names,
    indent: &str,
    out: &mut Vec<u8>,
) {
    match tr {
        Transport::Other => return,
        Transport::Fragment => {
            indent_into(out, indent);
            tag(out, protocol);
            s(out, "[non-first fragment: no header]");
        }
        Transport::Truncated(x) => {
            indent_into(out, indent);
            tag(out, protocol);
            truncated(out, x);
        }
        Transport::Tcp(th) => {
            indent_into(out, indent);
            tcp(t, th, out);
        }
        Transport::Udp(u) => {
            indent_into(out, indent);
            if u.lite {
                tag(out, proto::UDPLITE);
                port(out, t, "src port ", u.src_port, false);
                port(out, t, ", dst port ", u.dst_port, false);
                key_dec(out, ", coverage ", u.length as u64);
            } else {
                // `UDP: ` (the label of `tag`) and the first key as one literal.
                port(out, t, "UDP: src port ", u.src_port, false);
                port(out, t, ", dst port ", u.dst_port, false);
                key_dec(out, ", len ", u.length as u64);
            }
        }
        Transport::Icmp(_) | Transport::Icmpv6(_) => {
            if let Some(m) = IcmpView::of(tr) {
                indent_into(out, indent);
                if icmp(t, &m, names, out) {
                    return;
                }
            }
        }
        Transport::Ah(a) => {
            indent_into(out, indent);
            tag(out, proto::AH);
            s(out, "spi 0x");
            hex_pad(out, a.spi as u64, 8, false);
            key_dec(out, ", seq ", a.seq as u64);
            key_dec(out, ", next ", a.next_header as u64);
            if let Some(n) = t.protocol_shown(a.next_header) {
                bytes(out, &n.fwlog);
            }
        }
        Transport::Esp(e) => {
            indent_into(out, indent);
            tag(out, proto::ESP);
            s(out, "spi 0x");
            hex_pad(out, e.spi as u64, 8, false);
            key_dec(out, ", seq ", e.seq as u64);
        }
    }
    out.push(b'\n');
}

/// The ICMP or ICMPv6 line, and the lines of the packet an error quotes (then `true`: the
/// quoted packet's lines end the block's transport part).
fn icmp(t: &NameTables, m: &IcmpView<'_>, names: &dyn Names, out: &mut Vec<u8>) -> bool {
    tag(out, if m.v6 { proto::ICMPV6 } else { proto::ICMP });
    type_code(out, m.icmp_type, m.code, m.type_name, m.code_name);
    if let Some(x) = &m.short {
        s(out, ", ");
        truncated(out, x);
    }
    echo(out, m.echo);
    if let Some(g) = m.gateway {
        addr(out, b", gateway ", g.into(), names);
    }
    pointer_mtu(out, m.pointer, m.mtu);
    let Some(q) = &m.quoted else {
        return false;
    };
    s(out, ", quoted packet:\n");
    match q {
        Quoted::V4(Ok(v4)) => ipv4(t, v4, None, 0, names, "  ", out),
        Quoted::V6(Ok(v6)) => ipv6(t, v6, None, 0, names, "  ", out),
        Quoted::V4(Err(x)) => quoted_unreadable(out, "IP", x),
        Quoted::V6(Err(x)) => quoted_unreadable(out, "IP6", x),
    }
    true
}

/// The names of the TCP flags set in byte 13 (`Tcp::flag_names` without AE, which is not in
/// that byte), comma-separated, for every value of the byte: the text and its length.
static TCP_FLAGS: [([u8; 32], u8); 256] = {
    const NAMES: [&[u8; 3]; 8] = [
        b"fin", b"syn", b"rst", b"psh", b"ack", b"urg", b"ece", b"cwr",
    ];
    let mut t = [([0u8; 32], 0u8); 256];
    let mut f = 0;
    while f < 256 {
        let (mut text, mut len) = ([0u8; 32], 0);
        let mut bit = 0;
        while bit < 8 {
            if f & (1 << bit) != 0 {
                if len > 0 {
                    text[len] = b',';
                    len += 1;
                }
                let mut k = 0;
                while k < 3 {
                    text[len + k] = NAMES[bit][k];
                    k += 1;
                }
                len += 3;
            }
            bit += 1;
        }
        t[f] = (text, len as u8);
        f += 1;
    }
    t
};

/// The TCP line: ports, sequence, flags, window, ack, and what is odd about the header.
fn tcp(t: &NameTables, th: &crate::decode::Tcp<'_>, out: &mut Vec<u8>) {
    use crate::decode::Tcp as T;
    // `TCP: ` (the label of `tag`) and the first key as one literal.
    port(out, t, "TCP: src port ", th.src_port, true);
    port(out, t, ", dst port ", th.dst_port, true);
    key_hex(out, ", seq 0x", th.seq as u64, 8);
    let (names, len) = &TCP_FLAGS[usize::from(th.flags)];
    framed(out, ", flags [", &names[..usize::from(*len)], "");
    if th.ae() {
        s(out, if *len == 0 { "ae" } else { ",ae" });
    }
    key_dec(out, "], winsz ", th.window as u64);
    key_hex(out, ", ack 0x", th.ack as u64, 8);
    if th.urgent != 0 || th.has(T::URG) {
        key_dec(out, ", urgp ", th.urgent as u64);
    }
    if th.reserved & 0x0e != 0 {
        s(out, ", res 0x");
        hex(out, (th.reserved & 0x0e) as u64);
    }
    if th.data_offset < 5 {
        key_dec(out, ", bad header length ", th.data_offset as u64 * 4);
    }
    match &th.options {
        Ok(o) if !o.is_empty() => {
            s(out, ", options [");
            tcpopt::describe(out, o);
            s(out, "]");
        }
        Ok(_) => {}
        Err(x) => {
            s(out, ", options ");
            truncated(out, x);
        }
    }
}

/// A loss report block.
pub(crate) fn loss(ev: &LossEvent, out: &mut Vec<u8>) {
    key_dec(out, "LOSS: ", ev.count);
    s(out, " records lost, cause ");
    s(out, ev.cause.name());
    loss_scope(ev, out);
    time::fwlog(out, b", detected ", &ev.time);
    match ev.time.source {
        TimeSource::Kernel => {}
        TimeSource::Local => s(out, " (local clock)"),
        TimeSource::Capture => s(out, " (capture clock)"),
    }
    s(out, "\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flag table holds what `Tcp::flag_names` lists (AE, outside byte 13, aside), for
    /// every value of the byte.
    #[test]
    fn tcp_flag_table_is_flag_names() {
        for f in 0..=255u8 {
            let th = crate::decode::Tcp {
                src_port: 1,
                dst_port: 2,
                seq: 3,
                ack: 4,
                data_offset: 5,
                reserved: 0,
                flags: f,
                window: 6,
                checksum: 7,
                urgent: 0,
                options: Ok(&[]),
            };
            let want: Vec<&str> = th.flag_names().collect();
            let (text, len) = &TCP_FLAGS[usize::from(f)];
            assert_eq!(
                &text[..usize::from(*len)],
                want.join(",").as_bytes(),
                "{f:#x}"
            );
        }
    }
}
