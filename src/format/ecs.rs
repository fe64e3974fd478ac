//! `--format ecs`: one JSON object per line in the Elastic Common Schema, for Elastic,
//! OpenSearch, Vector, Fluent Bit and Filebeat pipelines.
//!
//! Spec (the mapping is also in fwlog(8), FORMATS; keep the two in step):
//! - ECS version [`ECS_VERSION`]; every key outside `fwlog.*` is an ECS field of that version
//!   (the subset used is `tests/data/ecs/fields.txt`, checked by `tests/format_ecs.rs`).
//! - Objects are nested (`{"source":{"ip":..}}`), as Beats write them; a field without a value
//!   is left out (ECS has no nulls), so `source.port` is absent for ICMP.
//! - `fwlog` holds the complete `--format json` object of the same record, so nothing fwlog
//!   knows is lost in the mapping and the `fwlog.*` schema is the one documented for JSON.
//! - `network.iana_number` is the upper-layer protocol number as a string (after IPv6
//!   extension headers, as far as they could be read); `network.transport` its lowercase IANA
//!   keyword (`ipv6-icmp` for 58).
//! - `related.ip` lists every address in the record once, in order of appearance: source,
//!   destination, an ICMP redirect's gateway, the addresses of the packet an ICMP error quotes;
//!   `related.hosts` the names known for them, once each.
//! - MAC addresses are written as ECS wants them: uppercase, hyphen-separated.
//! - Untrusted bytes (prefix, interface names, resolved names) pass the same escaper as the
//!   other formats and then serde_json, so no control byte reaches the line.

use std::net::IpAddr;

use crate::decode::{proto, Decoded, Ipv6End, Net, Transport};
use crate::packet::{hook, Iface, Packet};

use super::icmp::{IcmpView, Quoted};
use super::names::NameTables;
use super::write::{dec, ipv4, ipv6, s};
use super::{json, time, LossEvent, Names};

/// The ECS version the mapping follows (written as `ecs.version`).
pub const ECS_VERSION: &str = "8.11.0";

/// Comma bookkeeping for nested objects (at most a few levels deep).
struct W<'o> {
    out: &'o mut Vec<u8>,
    first: [bool; 8],
    depth: usize,
}

impl<'o> W<'o> {
    fn new(out: &'o mut Vec<u8>) -> Self {
        W {
            out,
            first: [true; 8],
            depth: 0,
        }
    }
    fn sep(&mut self) {
        if self.depth > 0 {
            let f = &mut self.first[self.depth - 1];
            if !*f {
                self.out.push(b',');
            }
            *f = false;
        }
    }
    fn key(&mut self, k: &str) {
        self.sep();
        self.out.push(b'"');
        s(self.out, k);
        s(self.out, "\":");
    }
    fn open(&mut self, c: u8) {
        self.out.push(c);
        // Depth never passes 4 here; the cap only keeps indexing in bounds.
        self.depth = (self.depth + 1).min(self.first.len());
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
    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        self.out.push(b'"');
        s(self.out, v);
        self.out.push(b'"');
    }
    fn num(&mut self, k: &str, n: u64) {
        self.key(k);
        dec(self.out, n);
    }
    /// A number as a string (ECS keyword fields such as `network.iana_number`).
    fn num_str(&mut self, k: &str, n: u64) {
        self.key(k);
        self.out.push(b'"');
        dec(self.out, n);
        self.out.push(b'"');
    }
    /// Untrusted bytes: escaped, then as a JSON string.
    fn untrusted(&mut self, k: &str, v: &[u8]) {
        self.key(k);
        super::jsonstr::escaped(self.out, v);
    }
    fn ip(&mut self, k: &str, a: IpAddr) {
        self.key(k);
        quoted_ip(self.out, a);
    }
}

fn quoted_ip(out: &mut Vec<u8>, a: IpAddr) {
    out.push(b'"');
    match a {
        IpAddr::V4(a) => ipv4(out, a),
        IpAddr::V6(a) => ipv6(out, a),
    }
    out.push(b'"');
}

/// `00-00-5E-00-53-23`: ECS's MAC notation.
fn mac(w: &mut W<'_>, k: &str, m: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    w.key(k);
    w.out.push(b'"');
    for (i, b) in m.iter().enumerate() {
        if i > 0 {
            w.out.push(b'-');
        }
        w.out
            .extend_from_slice(&[HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
    }
    w.out.push(b'"');
}

/// The addresses and ports one record maps onto `source`/`destination`/`network`.
#[derive(Default)]
struct Flow<'a> {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    src_mac: Option<&'a [u8]>,
    dst_mac: Option<&'a [u8]>,
    ports: Option<(u16, u16)>,
    net_type: Option<&'static str>,
    /// The upper-layer protocol number, when the decoder reached it.
    proto: Option<u8>,
    /// Every address in the record, first appearance first (at most five).
    related: [Option<IpAddr>; 5],
}

impl Flow<'_> {
    fn relate(&mut self, a: IpAddr) {
        for slot in self.related.iter_mut() {
            match slot {
                Some(x) if *x == a => return,
                Some(_) => {}
                None => {
                    *slot = Some(a);
                    return;
                }
            }
        }
    }
}

fn ports(t: &Transport<'_>) -> Option<(u16, u16)> {
    match t {
        Transport::Tcp(th) => Some((th.src_port, th.dst_port)),
        Transport::Udp(u) => Some((u.src_port, u.dst_port)),
        _ => None,
    }
}

/// The addresses an ICMP error or redirect carries besides the outer ones.
fn icmp_related(f: &mut Flow<'_>, t: &Transport<'_>) {
    let Some(m) = IcmpView::of(t) else {
        return;
    };
    if let Some(g) = m.gateway {
        f.relate(g.into());
    }
    if let Some((src, dst)) = m.quoted.as_ref().and_then(Quoted::addrs) {
        f.relate(src);
        f.relate(dst);
    }
}

fn flow<'a>(p: &Packet<'a>, d: &Decoded<'a>) -> Flow<'a> {
    let mut f = Flow::<'a> {
        src_mac: p.hwaddr.filter(|m| m.len() == 6),
        ..Flow::default()
    };
    match &d.net {
        Net::Ipv4(v4) => {
            f.src = Some(v4.src.into());
            f.dst = Some(v4.dst.into());
            f.net_type = Some("ipv4");
            f.relate(v4.src.into());
            f.relate(v4.dst.into());
            // The IP header names the protocol even when its header is cut short.
            f.proto = Some(v4.protocol);
            f.ports = ports(&v4.transport);
            icmp_related(&mut f, &v4.transport);
        }
        Net::Ipv6(v6) => {
            f.src = Some(v6.src.into());
            f.dst = Some(v6.dst.into());
            f.net_type = Some("ipv6");
            f.relate(v6.src.into());
            f.relate(v6.dst.into());
            f.proto = match v6.end {
                Ipv6End::Truncated(_) | Ipv6End::FragmentTruncated(_) => None,
                _ => Some(v6.shown_protocol()),
            };
            if let Ipv6End::Upper = v6.end {
                f.ports = ports(&v6.transport);
                icmp_related(&mut f, &v6.transport);
            }
        }
        Net::Arp(a) => {
            f.net_type = Some("arp");
            if let Ok(x) = a.addrs {
                if a.hlen == 6 {
                    f.src_mac = Some(x.sender_hw);
                    f.dst_mac = Some(x.target_hw);
                }
            }
            if let Some((s, t)) = a.ipv4() {
                f.src = Some(s.into());
                f.dst = Some(t.into());
                f.relate(s.into());
                f.relate(t.into());
            }
        }
        Net::Truncated(_) | Net::NotIp { .. } => {}
    }
    f
}

/// The IANA keyword of a protocol as an escaped JSON string, not yet lowercased (from the
/// protocol table; `ipv6-icmp` for 58, which /etc/protocols may spell `IPv6-ICMP`).
fn transport_name(t: &NameTables, n: u8) -> Option<&[u8]> {
    if n == proto::ICMPV6 {
        return Some(b"\"ipv6-icmp\"");
    }
    t.protocol_shown(n).map(|s| &*s.json)
}

/// ECS's `network.direction` from the host's point of view: where the hook sees the packet.
fn direction(p: &Packet<'_>) -> Option<&'static str> {
    match hook::name_in(p.family, p.hook?)? {
        "prerouting" | "input" | "ingress" => Some("ingress"),
        "output" | "postrouting" | "egress" => Some("egress"),
        _ => None,
    }
}

fn interface(w: &mut W<'_>, k: &str, i: &Option<Iface<'_>>) {
    if let Some(i) = i {
        w.obj(k);
        w.obj("interface");
        w.num_str("id", i.index as u64);
        if let Some(n) = i.name {
            w.untrusted("name", n);
        }
        w.close(b'}');
        w.close(b'}');
    }
}

fn endpoint(
    w: &mut W<'_>,
    k: &str,
    ip: Option<IpAddr>,
    port: Option<u16>,
    m: Option<&[u8]>,
    names: &dyn Names,
) {
    if ip.is_none() && m.is_none() {
        return;
    }
    w.obj(k);
    if let Some(a) = ip {
        w.ip("ip", a);
        if let Some(n) = names.name(a) {
            w.key("domain");
            super::jsonstr::name(w.out, n.as_bytes());
        }
    }
    if let Some(pt) = port {
        w.num("port", pt as u64);
    }
    if let Some(m) = m {
        mac(w, "mac", m);
    }
    w.close(b'}');
}

/// `related.hosts`: the resolved names of the related addresses, once each, in their order.
fn related_hosts(w: &mut W<'_>, f: &Flow<'_>, names: &dyn Names) {
    let mut seen: [Option<&str>; 5] = [None; 5];
    let mut n = 0;
    for a in f.related.iter().flatten() {
        if let Some(name) = names.name(*a) {
            if !seen[..n].contains(&Some(name)) {
                seen[n] = Some(name);
                n += 1;
            }
        }
    }
    if n == 0 {
        return;
    }
    w.key("hosts");
    w.out.push(b'[');
    for (i, name) in seen[..n].iter().flatten().enumerate() {
        if i > 0 {
            w.out.push(b',');
        }
        super::jsonstr::name(w.out, name.as_bytes());
    }
    w.out.push(b']');
}

/// `@timestamp`, `ecs`, and the `event` object, left open for the caller's own event fields.
fn head(w: &mut W<'_>, t: &super::Timestamp, kind: &str, action: &str) {
    w.key("@timestamp");
    w.out.push(b'"');
    time::rfc3339(w.out, t);
    w.out.push(b'"');
    w.obj("ecs");
    w.str("version", ECS_VERSION);
    w.close(b'}');
    w.obj("event");
    w.str("kind", kind);
    w.key("category");
    s(w.out, "[\"network\"]");
    w.key("type");
    s(
        w.out,
        if kind == "event" {
            "[\"connection\"]"
        } else {
            "[\"info\"]"
        },
    );
    w.str("action", action);
    w.str("module", "fwlog");
    w.str(
        "dataset",
        if kind == "event" {
            "fwlog.packet"
        } else {
            "fwlog.loss"
        },
    );
}

/// `host.name` and the opening of `observer` (fwlog observes the host it runs on).
fn host_observer(w: &mut W<'_>, host: &str) {
    if !host.is_empty() {
        w.obj("host");
        w.untrusted("name", host.as_bytes());
        w.close(b'}');
    }
    w.obj("observer");
    if !host.is_empty() {
        w.untrusted("hostname", host.as_bytes());
    }
    w.str("type", "firewall");
    w.str("product", "fwlog");
}

/// Append the ECS object for one packet and its newline.
pub(crate) fn object(
    t: &NameTables,
    host_name: &str,
    p: &Packet<'_>,
    d: &Decoded<'_>,
    names: &dyn Names,
    geo: bool,
    out: &mut Vec<u8>,
) {
    let f = flow(p, d);
    let mut w = W::new(out);
    w.open(b'{');
    head(&mut w, &p.timestamp, "event", "packet-logged");
    w.close(b'}');
    host_observer(&mut w, host_name);
    interface(&mut w, "ingress", &p.indev);
    interface(&mut w, "egress", &p.outdev);
    w.close(b'}');
    if let Some(x) = p.prefix {
        w.obj("rule");
        w.untrusted("name", x);
        w.close(b'}');
    }
    endpoint(
        &mut w,
        "source",
        f.src,
        f.ports.map(|x| x.0),
        f.src_mac,
        names,
    );
    endpoint(
        &mut w,
        "destination",
        f.dst,
        f.ports.map(|x| x.1),
        f.dst_mac,
        names,
    );
    w.obj("network");
    if let Some(ty) = f.net_type {
        w.str("type", ty);
    }
    if let Some(n) = f.proto {
        if let Some(name) = transport_name(t, n) {
            w.key("transport");
            // Lowercase after the JSON escaping: its `\"` and `\\` have no letters, and
            // the escaper's hex digits are lowercase already.
            let at = w.out.len();
            w.out.extend_from_slice(name);
            w.out[at..].make_ascii_lowercase();
        }
        w.num_str("iana_number", n as u64);
    }
    match &d.net {
        Net::Ipv4(v4) => w.num("bytes", v4.total_len as u64),
        Net::Ipv6(v6) => w.num("bytes", v6.payload_len as u64 + 40),
        _ => {}
    }
    if let Some(dir) = direction(p) {
        w.str("direction", dir);
    }
    if let Some(v) = p.vlan {
        w.obj("vlan");
        w.num_str("id", v.id() as u64);
        w.close(b'}');
    }
    w.close(b'}');
    if f.related.iter().any(Option::is_some) {
        w.obj("related");
        w.key("ip");
        w.out.push(b'[');
        for (i, a) in f.related.iter().flatten().enumerate() {
            if i > 0 {
                w.out.push(b',');
            }
            quoted_ip(w.out, *a);
        }
        w.out.push(b']');
        related_hosts(&mut w, &f, names);
        w.close(b'}');
    }
    w.key("fwlog");
    json::object(t, p, d, names, geo, w.out);
    // json::object ends its line; this object goes on.
    w.out.pop();
    w.close(b'}');
    out.push(b'\n');
}

/// Append the ECS object for a loss report and its newline.
pub(crate) fn loss(host_name: &str, ev: &LossEvent, out: &mut Vec<u8>) {
    let mut w = W::new(out);
    w.open(b'{');
    head(&mut w, &ev.time, "pipeline_error", "records-lost");
    w.str("reason", ev.cause.name());
    w.close(b'}');
    host_observer(&mut w, host_name);
    w.close(b'}');
    w.key("fwlog");
    json::loss(ev, w.out);
    w.out.pop();
    w.close(b'}');
    out.push(b'\n');
}
