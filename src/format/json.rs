//! `--format json`: one object per line. The schema (every key always present, `null` when the
//! record has no value) is documented in fwlog(8), section FORMATS; keep the two in step.
//!
//! Strings from the packet or the network (prefix, interface names, resolved names, damage
//! notes) are first passed through the allow-list escaper and then serialised by serde_json,
//! so the JSON value is the same escaped text the other formats print (`\xNN` for a control
//! byte), and the line is valid JSON whatever the input.

use std::net::IpAddr;

use crate::decode::{
    arp_opcode_name, proto, Arp, Decoded, Ipv4, Ipv6, Ipv6End, Net, Transport, Truncated,
};
use crate::packet::{family, hook, Iface, Packet, TimeSource};

use super::icmp::{IcmpView, Quoted};
use super::names::{proto_label, NameTables};
use super::write::*;
use super::{tcpopt, time, LossEvent, Names};

/// How deep objects and arrays nest here at most (a quoted packet's truncation notes: 5).
const DEPTH: usize = 8;

/// Comma bookkeeping for one JSON object or array.
struct W<'o> {
    out: &'o mut Vec<u8>,
    /// Per open object or array: nothing written in it yet.
    first: [bool; DEPTH],
    depth: usize,
    /// Write the GeoIP/ASN keys in `ip` objects.
    geo: bool,
}

impl<'o> W<'o> {
    fn new(out: &'o mut Vec<u8>) -> Self {
        W {
            out,
            first: [true; DEPTH],
            depth: 0,
            geo: false,
        }
    }
    #[inline(always)]
    fn sep(&mut self) {
        if self.depth > 0 {
            let f = &mut self.first[self.depth - 1];
            if !*f {
                self.out.push(b',');
            }
            *f = false;
        }
    }
    // Always inlined: a JSON line has some sixty keys, each a constant that is then copied
    // in place instead of through a call to memcpy (half of the line's cost otherwise).
    #[inline(always)]
    fn key(&mut self, k: &str) {
        self.sep();
        self.out.push(b'"');
        s(self.out, k);
        s(self.out, "\":");
    }
    fn open(&mut self, c: u8) {
        self.out.push(c);
        // The cap only keeps indexing in bounds: nothing here nests that deep.
        self.depth = (self.depth + 1).min(DEPTH);
        self.first[self.depth - 1] = true;
    }
    fn close(&mut self, c: u8) {
        self.out.push(c);
        self.depth = self.depth.saturating_sub(1);
    }
    fn obj(&mut self, k: &str) {
        self.key(k);
        self.open(b'{');
    }
    fn arr(&mut self, k: &str) {
        self.key(k);
        self.open(b'[');
    }
    #[inline(always)]
    fn num(&mut self, k: &str, n: u64) {
        self.key(k);
        dec(self.out, n);
    }
    #[inline]
    fn opt_num(&mut self, k: &str, n: Option<u64>) {
        match n {
            Some(n) => self.num(k, n),
            None => self.null(k),
        }
    }
    #[inline(always)]
    fn null(&mut self, k: &str) {
        self.key(k);
        s(self.out, "null");
    }
    #[inline]
    fn bool(&mut self, k: &str, b: bool) {
        self.key(k);
        s(self.out, if b { "true" } else { "false" });
    }
    /// A plain ASCII string we produced ourselves (names, keywords, numbers as text).
    #[inline]
    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        self.raw_str(v.as_bytes());
    }
    #[inline]
    fn opt_str(&mut self, k: &str, v: Option<&str>) {
        match v {
            Some(v) => self.str(k, v),
            None => self.null(k),
        }
    }
    /// Untrusted bytes: escaped, then as a JSON string.
    fn raw_str(&mut self, v: &[u8]) {
        super::jsonstr::escaped(self.out, v);
    }
    fn bytes_str(&mut self, k: &str, v: &[u8]) {
        self.key(k);
        self.raw_str(v);
    }
    /// A string built by `f` into the output (addresses, hex), quoted.
    fn with(&mut self, k: &str, f: impl FnOnce(&mut Vec<u8>)) {
        self.key(k);
        self.out.push(b'"');
        f(self.out);
        self.out.push(b'"');
    }
    fn item_with(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        self.sep();
        self.out.push(b'"');
        f(self.out);
        self.out.push(b'"');
    }
}

fn source_name(t: TimeSource) -> &'static str {
    match t {
        TimeSource::Kernel => "kernel",
        TimeSource::Local => "local",
        TimeSource::Capture => "capture",
    }
}

fn iface(w: &mut W<'_>, k: &str, i: &Option<Iface<'_>>) {
    match i {
        None => w.null(k),
        Some(i) => {
            w.obj(k);
            w.num("index", i.index as u64);
            match i.name {
                Some(n) => w.bytes_str("name", n),
                None => w.null("name"),
            }
            w.close(b'}');
        }
    }
}

/// An ICMP or ICMPv6 transport object: type and code (with names), echo id and sequence, the
/// gateway (ICMP only), MTU and pointer, and the packet an error quotes.
fn icmp(w: &mut W<'_>, t: &NameTables, m: &IcmpView<'_>, names: &dyn Names) {
    w.obj("transport");
    let p = if m.v6 { proto::ICMPV6 } else { proto::ICMP };
    w.str("protocol", proto_label(p).json);
    w.num("type", m.icmp_type as u64);
    w.opt_str("type_name", m.type_name);
    w.num("code", m.code as u64);
    w.opt_str("code_name", m.code_name);
    w.opt_num("id", m.echo.map(|e| e.0 as u64));
    w.opt_num("seq", m.echo.map(|e| e.1 as u64));
    if !m.v6 {
        match m.gateway {
            Some(g) => addr(w, "gateway", "gateway_name", g.into(), None, names),
            None => {
                w.null("gateway");
                w.null("gateway_name");
            }
        }
    }
    w.opt_num("mtu", m.mtu.map(u64::from));
    w.opt_num("pointer", m.pointer.map(u64::from));
    match &m.quoted {
        Some(Quoted::V4(Ok(v4))) => {
            w.obj("quoted");
            ip4(w, t, v4, names);
            transport(w, t, &v4.transport, v4.protocol, names);
            w.arr("truncated");
            truncs_v4(w, v4);
            w.close(b']');
            w.close(b'}');
        }
        Some(Quoted::V6(Ok(v6))) => {
            w.obj("quoted");
            ip6(w, t, v6, names);
            if let Ipv6End::Upper = v6.end {
                transport(w, t, &v6.transport, v6.protocol, names);
            } else {
                w.null("transport");
            }
            w.arr("truncated");
            truncs_v6(w, v6);
            w.close(b']');
            w.close(b'}');
        }
        Some(Quoted::V4(Err(x)) | Quoted::V6(Err(x))) => quoted_unreadable(w, x),
        None => w.null("quoted"),
    }
    w.close(b'}');
}

/// The `quoted` object of an ICMP error whose quoted packet cannot be read at all.
fn quoted_unreadable(w: &mut W<'_>, x: &Truncated) {
    w.obj("quoted");
    w.null("ip");
    w.null("transport");
    w.arr("truncated");
    trunc(w, x);
    w.close(b']');
    w.close(b'}');
}

fn trunc(w: &mut W<'_>, t: &Truncated) {
    w.sep();
    w.open(b'{');
    w.str("layer", t.layer.name());
    w.num("offset", t.offset as u64);
    w.num("have", t.have() as u64);
    w.num("need", t.need as u64);
    w.close(b'}');
}

/// `text` is the address's text when the caller has it (an IPv4 line's two addresses, taken
/// from the per-thread cache together).
fn addr(w: &mut W<'_>, k: &str, kname: &str, a: IpAddr, text: Option<&V4Text>, names: &dyn Names) {
    w.with(k, |o| match (a, text) {
        (IpAddr::V4(_), Some(t)) => ipv4_text_after(o, b"", t),
        (IpAddr::V4(a), None) => ipv4(o, a),
        (IpAddr::V6(a), _) => ipv6(o, a),
    });
    match names.name(a) {
        Some(n) => {
            // The same text as the fwlog format shows (resolver escapes kept as they are),
            // then JSON string escaping on top.
            w.key(kname);
            super::jsonstr::name(w.out, n.as_bytes());
        }
        None => w.null(kname),
    }
}

/// `src_geo`, `dst_geo`, `src_as`, `dst_as` when databases are configured (see `geo`).
fn geo_keys(w: &mut W<'_>, src: IpAddr, dst: IpAddr, names: &dyn Names) {
    if w.geo {
        w.key("src_geo");
        super::geo::json_keys(w.out, names.geo(src), names.geo(dst));
    }
}

/// Append the object for one packet and its newline.
pub(crate) fn object(
    t: &NameTables,
    p: &Packet<'_>,
    d: &Decoded<'_>,
    names: &dyn Names,
    geo: bool,
    out: &mut Vec<u8>,
) {
    let mut w = W { geo, ..W::new(out) };
    w.open(b'{');
    w.str("event", "packet");
    w.with("time", |o| time::rfc3339(o, &p.timestamp));
    w.str("time_source", source_name(p.timestamp.source));
    w.bool("replayed", p.replayed);
    w.num("group", p.group as u64);
    w.opt_num("seq", p.seq.map(u64::from));
    w.opt_num("seq_global", p.seq_global.map(u64::from));
    match p.prefix {
        Some(x) => w.bytes_str("prefix", x),
        None => w.null("prefix"),
    }
    w.opt_num("hook", p.hook.map(u64::from));
    w.opt_str("hook_name", p.hook.and_then(|h| hook::name_in(p.family, h)));
    w.num("mark", p.mark as u64);
    iface(&mut w, "indev", &p.indev);
    iface(&mut w, "outdev", &p.outdev);
    iface(&mut w, "physindev", &p.physindev);
    iface(&mut w, "physoutdev", &p.physoutdev);
    w.opt_num("uid", p.uid.map(u64::from));
    w.opt_num("gid", p.gid.map(u64::from));
    match p.hwaddr {
        Some(m) => w.with("mac", |o| colon_hex(o, m)),
        None => w.null("mac"),
    }
    w.opt_num("hwtype", p.hwtype.map(u64::from));
    match p.hwheader {
        Some(h) => w.with("hwheader", |o| hex_bytes(o, h)),
        None => w.null("hwheader"),
    }
    match p.l2header {
        Some(h) => w.with("l2header", |o| hex_bytes(o, h)),
        None => w.null("l2header"),
    }
    match p.vlan {
        Some(v) => {
            w.obj("vlan");
            w.num("id", v.id() as u64);
            w.num("pcp", v.pcp() as u64);
            w.bool("dei", v.dei());
            w.num("proto", v.proto as u64);
            w.num("tci", v.tci as u64);
            w.close(b'}');
        }
        None => w.null("vlan"),
    }
    w.str(
        "family",
        match p.family {
            family::INET => "ipv4",
            family::INET6 => "ipv6",
            family::ARP => "arp",
            family::NETDEV => "netdev",
            family::BRIDGE => "bridge",
            family::UNSPEC => "unspec",
            _ => "other",
        },
    );
    w.num("captured", p.payload.len() as u64);
    match d.partial {
        Some(pt) => {
            w.obj("partial");
            w.num("captured", pt.captured as u64);
            w.num("original", pt.original as u64);
            w.close(b'}');
        }
        None => w.null("partial"),
    }
    match &p.damage {
        Some(x) => w.bytes_str("damage", x.as_bytes()),
        None => w.null("damage"),
    }
    // Where decoding stopped early (every layer that did), outer packet.
    w.arr("truncated");
    match &d.net {
        Net::Truncated(x) => trunc(&mut w, x),
        Net::Ipv4(v4) => truncs_v4(&mut w, v4),
        Net::Ipv6(v6) => truncs_v6(&mut w, v6),
        Net::Arp(a) => {
            if let Err(x) = &a.addrs {
                trunc(&mut w, x);
            }
        }
        Net::NotIp { .. } => {}
    }
    w.close(b']');
    match &d.net {
        Net::Ipv4(v4) => {
            ip4(&mut w, t, v4, names);
            transport(&mut w, t, &v4.transport, v4.protocol, names);
        }
        Net::Ipv6(v6) => {
            ip6(&mut w, t, v6, names);
            if let Ipv6End::Upper = v6.end {
                transport(&mut w, t, &v6.transport, v6.protocol, names);
            } else {
                w.null("transport");
            }
        }
        _ => {
            w.null("ip");
            w.null("transport");
        }
    }
    match &d.net {
        Net::Arp(a) => arp(&mut w, a, names),
        _ => w.null("arp"),
    }
    w.close(b'}');
    out.push(b'\n');
}

/// The `arp` object: header fields, and the addresses (null when cut short). Protocol
/// addresses are dotted IPv4 with their names when the protocol is IPv4, else hex.
fn arp(w: &mut W<'_>, a: &Arp<'_>, names: &dyn Names) {
    w.obj("arp");
    w.num("htype", a.htype as u64);
    w.num("ptype", a.ptype as u64);
    w.num("hlen", a.hlen as u64);
    w.num("plen", a.plen as u64);
    w.num("opcode", a.opcode as u64);
    w.opt_str("opcode_name", arp_opcode_name(a.opcode));
    let ips = a.ipv4();
    match a.addrs {
        Ok(x) => {
            // Keys spelled out: no allocation per packet.
            for (k, hw, proto, ip) in [
                (
                    ["sender_hw", "sender_proto", "sender_name"],
                    x.sender_hw,
                    x.sender_proto,
                    ips.map(|i| i.0),
                ),
                (
                    ["target_hw", "target_proto", "target_name"],
                    x.target_hw,
                    x.target_proto,
                    ips.map(|i| i.1),
                ),
            ] {
                w.with(k[0], |o| colon_hex(o, hw));
                match ip {
                    Some(ip) => addr(w, k[1], k[2], ip.into(), None, names),
                    None => {
                        w.with(k[1], |o| colon_hex(o, proto));
                        w.null(k[2]);
                    }
                }
            }
        }
        Err(_) => {
            for k in [
                "sender_hw",
                "sender_proto",
                "sender_name",
                "target_hw",
                "target_proto",
                "target_name",
            ] {
                w.null(k);
            }
        }
    }
    w.close(b'}');
}

fn truncs_v4(w: &mut W<'_>, v4: &Ipv4<'_>) {
    if let Err(x) = &v4.options {
        trunc(w, x);
    }
    truncs_transport(w, &v4.transport);
}

fn truncs_v6(w: &mut W<'_>, v6: &Ipv6<'_>) {
    match &v6.end {
        Ipv6End::Truncated(x) | Ipv6End::FragmentTruncated(x) => trunc(w, x),
        _ => truncs_transport(w, &v6.transport),
    }
}

fn truncs_transport(w: &mut W<'_>, t: &Transport<'_>) {
    match t {
        Transport::Truncated(x) => trunc(w, x),
        Transport::Tcp(th) => {
            if let Err(x) = &th.options {
                trunc(w, x);
            }
        }
        Transport::Icmp(i) => {
            if let Some(x) = &i.short {
                trunc(w, x);
            }
        }
        _ => {}
    }
}

fn proto(w: &mut W<'_>, t: &NameTables, n: u8) {
    w.num("protocol", n as u64);
    match t.protocol_shown(n) {
        Some(name) => {
            w.key("protocol_name");
            w.out.extend_from_slice(&name.json);
        }
        None => w.null("protocol_name"),
    }
}

fn ip4(w: &mut W<'_>, t: &NameTables, v4: &Ipv4<'_>, names: &dyn Names) {
    w.obj("ip");
    w.num("version", 4);
    let [src, dst] = ipv4_texts(v4.src, v4.dst);
    addr(w, "src", "src_name", v4.src.into(), Some(&src), names);
    addr(w, "dst", "dst_name", v4.dst.into(), Some(&dst), names);
    geo_keys(w, v4.src.into(), v4.dst.into(), names);
    w.num("len", v4.total_len as u64);
    w.num("header_len", v4.ihl as u64 * 4);
    w.num("tos", v4.tos as u64);
    w.num("ttl", v4.ttl as u64);
    w.num("id", v4.id as u64);
    w.arr("flags");
    for (on, name) in [(v4.ce(), "ce"), (v4.df(), "df"), (v4.mf(), "mf")] {
        if on {
            w.item_with(|o| s(o, name));
        }
    }
    w.close(b']');
    w.num("frag_offset", v4.frag_offset() as u64 * 8);
    proto(w, t, v4.protocol);
    match &v4.options {
        Ok(o) if !o.is_empty() => w.with("options", |out| hex_bytes(out, o)),
        _ => w.null("options"),
    }
    w.close(b'}');
}

fn ip6(w: &mut W<'_>, t: &NameTables, v6: &Ipv6<'_>, names: &dyn Names) {
    w.obj("ip");
    w.num("version", 6);
    addr(w, "src", "src_name", v6.src.into(), None, names);
    addr(w, "dst", "dst_name", v6.dst.into(), None, names);
    geo_keys(w, v6.src.into(), v6.dst.into(), names);
    w.num("len", v6.payload_len as u64 + 40);
    w.num("traffic_class", v6.traffic_class as u64);
    w.num("flow_label", v6.flow_label as u64);
    w.num("hop_limit", v6.hop_limit as u64);
    proto(w, t, v6.shown_protocol());
    w.arr("ext");
    for e in v6.ext_headers() {
        w.sep();
        w.open(b'{');
        w.str("type", crate::decode::ipv6::ext_name(e.kind));
        w.num("offset", e.offset as u64);
        w.num("len", e.bytes.len() as u64);
        if let Some(spi) = e.spi {
            w.num("spi", spi as u64);
        }
        w.close(b'}');
    }
    w.close(b']');
    match v6.fragment {
        Some(f) => {
            w.obj("fragment");
            w.num("offset", f.offset as u64);
            w.bool("more", f.more);
            w.num("id", f.id as u64);
            w.close(b'}');
        }
        None => w.null("fragment"),
    }
    w.bool(
        "ext_stopped_after_fragment",
        matches!(v6.end, Ipv6End::AfterFragment(_)),
    );
    w.close(b'}');
}

fn port(w: &mut W<'_>, t: &NameTables, k: &str, kn: &str, p: u16, tcp: bool) {
    w.num(k, p as u64);
    match t.service_shown(p, tcp) {
        Some(n) => {
            w.key(kn);
            w.out.extend_from_slice(&n.json);
        }
        None => w.null(kn),
    }
}

/// The TCP transport object.
fn tcp(w: &mut W<'_>, t: &NameTables, th: &crate::decode::Tcp<'_>) {
    w.obj("transport");
    w.str("protocol", proto_label(proto::TCP).json);
    port(w, t, "src_port", "src_service", th.src_port, true);
    port(w, t, "dst_port", "dst_service", th.dst_port, true);
    w.num("seq", th.seq as u64);
    w.num("ack", th.ack as u64);
    w.arr("flags");
    for name in th.flag_names() {
        w.item_with(|o| s(o, name));
    }
    w.close(b']');
    w.num("window", th.window as u64);
    w.num("urgent", th.urgent as u64);
    w.num("reserved", (th.reserved & 0x0e) as u64 >> 1);
    w.num("header_len", th.data_offset as u64 * 4);
    match &th.options {
        Ok(o) if !o.is_empty() => {
            w.with("options", |out| hex_bytes(out, o));
            w.with("options_text", |out| tcpopt::describe(out, o));
        }
        _ => {
            w.null("options");
            w.null("options_text");
        }
    }
    w.close(b'}');
}

fn transport(w: &mut W<'_>, t: &NameTables, tr: &Transport<'_>, protocol: u8, names: &dyn Names) {
    match tr {
        Transport::Other => {
            w.null("transport");
        }
        Transport::Fragment | Transport::Truncated(_) => {
            w.obj("transport");
            w.str("protocol", proto_label(protocol).json);
            w.bool("non_first_fragment", matches!(tr, Transport::Fragment));
            w.close(b'}');
        }
        Transport::Tcp(th) => tcp(w, t, th),
        Transport::Udp(u) => {
            w.obj("transport");
            let p = if u.lite { proto::UDPLITE } else { proto::UDP };
            w.str("protocol", proto_label(p).json);
            port(w, t, "src_port", "src_service", u.src_port, false);
            port(w, t, "dst_port", "dst_service", u.dst_port, false);
            w.num("length", u.length as u64);
            w.close(b'}');
        }
        Transport::Icmp(_) | Transport::Icmpv6(_) => {
            if let Some(m) = IcmpView::of(tr) {
                icmp(w, t, &m, names);
            }
        }
        Transport::Ah(a) => {
            w.obj("transport");
            w.str("protocol", proto_label(proto::AH).json);
            w.num("spi", a.spi as u64);
            w.num("seq", a.seq as u64);
            w.num("next_header", a.next_header as u64);
            w.close(b'}');
        }
        Transport::Esp(e) => {
            w.obj("transport");
            w.str("protocol", proto_label(proto::ESP).json);
            w.num("spi", e.spi as u64);
            w.num("seq", e.seq as u64);
            w.close(b'}');
        }
    }
}

/// A loss report object.
pub(crate) fn loss(ev: &LossEvent, out: &mut Vec<u8>) {
    let mut w = W::new(out);
    w.open(b'{');
    w.str("event", "loss");
    w.with("time", |o| time::rfc3339(o, &ev.time));
    w.str("time_source", source_name(ev.time.source));
    w.num("count", ev.count);
    w.str("cause", ev.cause.name());
    w.opt_num("group", ev.group.map(u64::from));
    match ev.seq_global {
        Some((a, b)) => {
            w.obj("seq_global");
            w.num("first", a as u64);
            w.num("last", b as u64);
            w.close(b'}');
        }
        None => w.null("seq_global"),
    }
    if let Some((a, b)) = ev.spool_seq {
        w.obj("spool_seq");
        w.num("first", a);
        w.num("last", b);
        w.close(b'}');
    }
    w.close(b'}');
    out.push(b'\n');
}
