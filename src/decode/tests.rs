//! Hand-built packets through every decoder path, and every truncation of several packets.

use super::*;
use crate::packet::{Packet, TimeSource, Timestamp};
use std::net::{Ipv4Addr, Ipv6Addr};

pub(super) const TS: Timestamp = Timestamp {
    sec: 0,
    nsec: 0,
    source: TimeSource::Capture,
};

pub(super) fn ip4(proto: u8, frag: u16, opts: &[u8], payload: &[u8]) -> Vec<u8> {
    let hl = 20 + opts.len();
    let mut v = vec![0x40 | (hl / 4) as u8, 0x10];
    v.extend_from_slice(&((hl + payload.len()) as u16).to_be_bytes());
    v.extend_from_slice(&0x1234u16.to_be_bytes());
    v.extend_from_slice(&frag.to_be_bytes());
    v.extend_from_slice(&[63, proto, 0xab, 0xcd, 10, 0, 0, 1, 192, 0, 2, 7]);
    v.extend_from_slice(opts);
    v.extend_from_slice(payload);
    v
}

pub(super) fn ip6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = ((6u32 << 28) | (0x2e << 20) | 0xbeef)
        .to_be_bytes()
        .to_vec();
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(&[next, 33]);
    v.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().expect("a").octets());
    v.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().expect("a").octets());
    v.extend_from_slice(payload);
    v
}

pub(super) fn tcp(flags: u8, b12: u8, opts: &[u8]) -> Vec<u8> {
    let mut v = vec![0x04, 0xd2, 0x00, 0x50];
    v.extend_from_slice(&0x0102_0304u32.to_be_bytes());
    v.extend_from_slice(&0x0a0b_0c0du32.to_be_bytes());
    v.extend_from_slice(&[b12, flags, 0x72, 0x10, 0, 0, 0, 9]);
    v.extend_from_slice(opts);
    v
}

pub(super) fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut v = sport.to_be_bytes().to_vec();
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(data);
    v
}

pub(super) fn pkt(b: &[u8], fam: u8) -> Packet<'_> {
    let mut p = Packet::new(b, TS);
    p.family = fam;
    p
}

pub(super) fn v4<'a>(d: &Decoded<'a>) -> Ipv4<'a> {
    match &d.net {
        Net::Ipv4(v) => v.clone(),
        other => panic!("not IPv4: {other:?}"),
    }
}

#[test]
fn ipv4_tcp_fields() {
    let b = ip4(6, 0x4000, &[], &tcp(0x12, 0x61, &[2, 4, 5, 0xb4]));
    let p = pkt(&b, family::INET);
    let d = decode(&p);
    assert_eq!(d.partial, None);
    let Net::Ipv4(v) = &d.net else { panic!() };
    assert_eq!(
        (v.src, v.dst),
        (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(192, 0, 2, 7))
    );
    assert_eq!(
        (v.total_len, v.id, v.ttl, v.tos, v.protocol),
        (44, 0x1234, 63, 0x10, 6)
    );
    assert!(v.df() && !v.mf() && !v.ce() && !v.is_fragment());
    let Transport::Tcp(t) = &v.transport else {
        panic!("{:?}", v.transport)
    };
    assert_eq!(
        (t.src_port, t.dst_port, t.seq, t.ack),
        (1234, 80, 0x01020304, 0x0a0b0c0d)
    );
    assert!(t.has(Tcp::SYN) && t.has(Tcp::ACK) && !t.has(Tcp::FIN));
    assert!(t.ae());
    assert_eq!(t.kernel_res(), 0);
    assert_eq!((t.window, t.urgent, t.data_offset), (0x7210, 9, 6));
    assert_eq!(t.options, Ok(&[2u8, 4, 5, 0xb4][..]));
}

#[test]
fn tcp_reserved_bits_and_bad_offsets() {
    let b = ip4(6, 0, &[], &tcp(0xff, 0x5f, &[]));
    let d = decode(&pkt(&b, family::INET));
    let Net::Ipv4(v) = &d.net else { panic!() };
    let Transport::Tcp(t) = &v.transport else {
        panic!()
    };
    assert_eq!(t.kernel_res(), 0x38);
    // Data offset 15 with no option bytes: options truncated, header still read.
    let b = ip4(6, 0, &[], &tcp(0x02, 0xf0, &[]));
    let d = decode(&pkt(&b, family::INET));
    let Net::Ipv4(v) = &d.net else { panic!() };
    let Transport::Tcp(t) = &v.transport else {
        panic!()
    };
    let e = t.options.expect_err("truncated options");
    assert_eq!((e.layer, e.have(), e.need), (Layer::TcpOptions, 0, 40));
}

#[test]
fn ipv4_options_fragments_and_bogus_ihl() {
    let b = ip4(17, 0, &[0x94, 4, 0, 0], &udp(53, 4000, b"x"));
    let d = decode(&pkt(&b, family::INET));
    let v = v4(&d);
    assert_eq!(v.options, Ok(&[0x94u8, 4, 0, 0][..]));
    assert!(matches!(
        v.transport,
        Transport::Udp(Udp {
            src_port: 53,
            dst_port: 4000,
            length: 9,
            ..
        })
    ));
    // First fragment has its header, later ones do not.
    let b = ip4(6, 0x2000, &[], &tcp(2, 0x50, &[]));
    assert!(matches!(
        v4(&decode(&pkt(&b, family::INET))).transport,
        Transport::Tcp(_)
    ));
    let b = ip4(6, 0x2000 | 185, &[], &[0; 16]);
    let v = v4(&decode(&pkt(&b, family::INET)));
    assert!(v.mf() && v.is_later_fragment() && v.frag_offset() == 185);
    assert_eq!(v.transport, Transport::Fragment);
    // An unknown protocol is "other" even in a later fragment.
    let b = ip4(47, 5, &[], &[0; 4]);
    assert_eq!(
        v4(&decode(&pkt(&b, family::INET))).transport,
        Transport::Other
    );
    // IHL 4: the kernel reads the transport header at 16 (the destination address).
    let mut b = ip4(17, 0, &[], &udp(1, 2, b""));
    b[0] = 0x44;
    let v = v4(&decode(&pkt(&b, family::INET)));
    assert!(v.bad_ihl());
    assert_eq!(v.l4_offset, 16);
    assert!(matches!(
        v.transport,
        Transport::Udp(Udp {
            src_port: 0xc000,
            dst_port: 0x0207,
            ..
        })
    ));
}

#[test]
fn icmp_echo_errors_and_short_messages() {
    let mut echo = vec![8, 0, 0, 0, 0x12, 0x34, 0, 7];
    echo.extend_from_slice(b"data");
    let b = ip4(1, 0, &[], &echo);
    let Transport::Icmp(i) = v4(&decode(&pkt(&b, family::INET))).transport else {
        panic!()
    };
    assert_eq!(i.echo(), Some((0x1234, 7)));
    assert_eq!(
        (i.gateway(), i.mtu(), i.parameter(), i.inner()),
        (None, None, None, None)
    );

    let inner = ip4(17, 0, &[], &udp(5000, 53, b"q"));
    let mut err = vec![3, 4, 0, 0, 0, 0, 0x05, 0xdc];
    err.extend_from_slice(&inner[..28]);
    let b = ip4(1, 0, &[], &err);
    let p = pkt(&b, family::INET);
    let Transport::Icmp(i) = v4(&decode(&p)).transport else {
        panic!()
    };
    assert_eq!(i.mtu(), Some(1500));
    let Some(Ok(q)) = i.inner() else {
        panic!("no quoted packet")
    };
    assert_eq!(q.total_len, 29);
    assert!(matches!(
        q.transport,
        Transport::Udp(Udp {
            src_port: 5000,
            dst_port: 53,
            ..
        })
    ));
    assert_eq!(
        addresses(&p),
        vec![IpAddr::from([10, 0, 0, 1]), IpAddr::from([192, 0, 2, 7])]
    );

    // Redirect: gateway; the quoted ICMP error is not followed a second level.
    let inner_err = ip4(1, 0, &[], &[3, 3, 0, 0, 0, 0, 0, 0]);
    let mut redir = vec![5, 1, 0, 0, 10, 9, 8, 7];
    redir.extend_from_slice(&inner_err);
    let mut b = ip4(1, 0, &[], &redir);
    b[12..16].copy_from_slice(&[172, 16, 0, 1]);
    let p = pkt(&b, family::INET);
    let Transport::Icmp(i) = v4(&decode(&p)).transport else {
        panic!()
    };
    assert_eq!(i.gateway(), Some(Ipv4Addr::new(10, 9, 8, 7)));
    let Some(Ok(q)) = i.inner() else { panic!() };
    let Transport::Icmp(qi) = q.transport else {
        panic!()
    };
    assert_eq!(
        (qi.icmp_type, qi.short.is_some()),
        (3, true),
        "8 bytes < 28 required"
    );
    assert_eq!(qi.inner(), None);
    let a = addresses(&p);
    assert_eq!(a[0], IpAddr::from([172, 16, 0, 1]));
    assert!(a.contains(&IpAddr::from([10, 9, 8, 7])));

    // Unreachable with fewer than 28 bytes: short, no quote.
    let b = ip4(1, 0, &[], &[3, 1, 0, 0, 0, 0, 0, 0, 0x45, 0]);
    let Transport::Icmp(i) = v4(&decode(&pkt(&b, family::INET))).transport else {
        panic!()
    };
    let s = i.short.expect("short");
    assert_eq!((s.have(), s.need, i.quoted), (10, 28, None));
    // Parameter problem pointer.
    let mut pp = vec![12, 0, 0, 0, 20, 0, 0, 0];
    pp.extend_from_slice(&inner[..20]);
    let b = ip4(1, 0, &[], &pp);
    let Transport::Icmp(i) = v4(&decode(&pkt(&b, family::INET))).transport else {
        panic!()
    };
    assert_eq!(i.parameter(), Some(20));
    assert_eq!(
        i.inner(),
        None,
        "parameter problem quotes are not decoded (kernel neither)"
    );
}

#[test]
fn ah_esp_and_udplite() {
    let mut ah = vec![6, 4, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 3];
    ah.extend_from_slice(&[0; 12]);
    let b = ip4(51, 0, &[], &ah);
    let v = v4(&decode(&pkt(&b, family::INET)));
    assert_eq!(
        v.transport,
        Transport::Ah(Ah {
            next_header: 6,
            len: 4,
            spi: 0xdeadbeef,
            seq: 3
        })
    );
    let b = ip4(50, 0, &[], &[0, 0, 1, 0, 0, 0, 0, 2, 9, 9]);
    let v = v4(&decode(&pkt(&b, family::INET)));
    assert_eq!(v.transport, Transport::Esp(Esp { spi: 256, seq: 2 }));
    let b = ip4(50, 0, &[], &[0, 0, 1]);
    let Transport::Truncated(t) = v4(&decode(&pkt(&b, family::INET))).transport else {
        panic!()
    };
    assert_eq!((t.layer, t.have(), t.need), (Layer::Esp, 3, 8));
    let b = ip4(136, 0, &[], &udp(1, 2, b"abc"));
    let Transport::Udp(u) = v4(&decode(&pkt(&b, family::INET))).transport else {
        panic!()
    };
    assert!(u.lite);
}

/// Test packets live for the whole test run.
pub(super) fn leak(v: Vec<u8>) -> &'static [u8] {
    Box::leak(v.into_boxed_slice())
}

pub(super) fn v6_of<'a>(d: &Decoded<'a>) -> Ipv6<'a> {
    match &d.net {
        Net::Ipv6(v) => v.clone(),
        other => panic!("not IPv6: {other:?}"),
    }
}

#[test]
fn ipv6_extension_chain() {
    // hop-by-hop -> fragment (first, M) -> dest opts -> UDP
    let mut pl = vec![44, 0, 1, 4, 0, 0, 0, 0];
    pl.extend_from_slice(&[60, 0, 0, 1, 0, 0, 0, 9]);
    pl.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
    pl.extend_from_slice(&udp(53, 5353, b"hi"));
    let b = ip6(0, &pl);
    let d = decode(&pkt(&b, family::INET6));
    let v = v6_of(&d);
    assert_eq!(
        (v.traffic_class, v.flow_label, v.hop_limit),
        (0x2e, 0xbeef, 33)
    );
    assert_eq!(v.end, Ipv6End::Upper);
    assert_eq!((v.protocol, v.l4_offset), (17, 64));
    assert_eq!(
        v.fragment,
        Some(FragmentHeader {
            offset: 0,
            more: true,
            id: 9
        })
    );
    let kinds: Vec<u8> = v.ext_headers().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![0, 44, 60]);
    assert!(matches!(
        v.transport,
        Transport::Udp(Udp {
            src_port: 53,
            dst_port: 5353,
            ..
        })
    ));

    // Non-first fragment followed by an option header: the walk stops there.
    let mut pl = vec![60, 0, 0, 16, 0, 0, 0, 1];
    pl.extend_from_slice(&[0x77; 16]);
    let v = v6_of(&decode(&pkt(leak(ip6(44, &pl)), family::INET6)));
    assert!(v.later_fragment);
    assert_eq!(v.end, Ipv6End::AfterFragment(60));
    // Non-first fragment of TCP: no header.
    let mut pl = vec![6, 0, 0, 16, 0, 0, 0, 1];
    pl.extend_from_slice(&[0x77; 16]);
    let v = v6_of(&decode(&pkt(leak(ip6(44, &pl)), family::INET6)));
    assert_eq!(
        (v.end, v.protocol, v.transport.clone()),
        (Ipv6End::Upper, 6, Transport::Fragment)
    );
    // ESP ends the chain; AH is stepped over.
    let mut pl = vec![50, 1, 0, 0, 0, 0, 0, 5, 0, 0, 0, 1];
    pl.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 1]);
    let v = v6_of(&decode(&pkt(leak(ip6(51, &pl)), family::INET6)));
    assert_eq!(v.end, Ipv6End::Esp);
    let spis: Vec<Option<u32>> = v.ext_headers().map(|e| e.spi).collect();
    assert_eq!(spis, vec![Some(5), Some(7)]);
    // A header whose first two bytes are missing, and a cut fragment header.
    let v = v6_of(&decode(&pkt(leak(ip6(0, &[17])), family::INET6)));
    assert!(matches!(
        v.end,
        Ipv6End::Truncated(Truncated { need: 2, .. })
    ));
    let v = v6_of(&decode(&pkt(leak(ip6(44, &[17, 0, 0, 0])), family::INET6)));
    assert!(matches!(
        v.end,
        Ipv6End::FragmentTruncated(Truncated { need: 8, .. })
    ));
    // No next header.
    let v = v6_of(&decode(&pkt(leak(ip6(59, &[1, 2])), family::INET6)));
    assert_eq!(
        (v.end, v.protocol, v.transport.clone()),
        (Ipv6End::Upper, 59, Transport::Other)
    );
}

#[test]
fn icmpv6_errors_and_echo() {
    let inner = ip6(6, &tcp(0x02, 0x50, &[]));
    let mut tb = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
    tb.extend_from_slice(&inner);
    let b = ip6(58, &tb);
    let p = pkt(&b, family::INET6);
    let v = v6_of(&decode(&p));
    let Transport::Icmpv6(i) = &v.transport else {
        panic!()
    };
    assert_eq!(i.mtu(), Some(1280));
    let Some(Ok(q)) = i.inner() else { panic!() };
    assert!(matches!(q.transport, Transport::Tcp(_)));
    assert_eq!(
        addresses(&p).len(),
        2,
        "inner addresses equal the outer ones here"
    );

    let mut pp = vec![4, 0, 0, 0, 0, 0, 0, 6];
    pp.extend_from_slice(&inner[..30]);
    let v = v6_of(&decode(&pkt(leak(ip6(58, &pp)), family::INET6)));
    let Transport::Icmpv6(i) = &v.transport else {
        panic!()
    };
    assert_eq!(i.pointer(), Some(6));
    assert!(matches!(
        i.inner(),
        Some(Err(Truncated {
            layer: Layer::Ipv6,
            ..
        }))
    ));
    let v = v6_of(&decode(&pkt(
        leak(ip6(58, &[129, 0, 0, 0, 0, 1, 0, 2])),
        family::INET6,
    )));
    let Transport::Icmpv6(i) = &v.transport else {
        panic!()
    };
    assert_eq!(i.echo(), Some((1, 2)));
}

#[test]
fn partial_records_and_padding() {
    let b = ip4(17, 0, &[], &udp(1, 2, &[0; 100]));
    let d = decode(&pkt(&b[..40], family::INET));
    assert_eq!(
        d.partial,
        Some(Partial {
            captured: 40,
            original: 128
        })
    );
    let mut padded = ip4(17, 0, &[], &udp(1, 2, b""));
    padded.extend_from_slice(&[0; 18]);
    let d = decode(&pkt(&padded, family::INET));
    assert_eq!((d.partial, d.trailing), (None, 18));
    // A capture's original length also makes a record partial.
    let mut p = pkt(&padded[..28], family::INET);
    p.orig_len = Some(60);
    assert_eq!(
        decode(&p).partial,
        Some(Partial {
            captured: 28,
            original: 60
        })
    );
    // Family unspecified: the version nibble decides.
    assert!(matches!(decode(&pkt(&b, 0)).net, Net::Ipv4(_)));
    assert!(matches!(
        decode(&pkt(&[0x00, 1, 2], 0)).net,
        Net::NotIp { version: 0, len: 3 }
    ));
}

/// Decoding into a used decode (a partial IPv6 one) gives exactly a fresh decode, every
/// field written: padding, partial, each kind of network layer.
#[test]
fn decode_into_a_used_decode_is_a_fresh_decode() {
    let mut padded = ip4(17, 0, &[], &udp(1, 2, b""));
    padded.extend_from_slice(&[0; 18]);
    let v6 = ip6(6, &tcp(0x02, 0x50, &[]));
    for (b, fam) in [
        (&padded[..], family::INET),
        (&v6[..], family::INET6),
        (&[0x00, 1][..], 0),
    ] {
        for n in 0..=b.len() {
            let mut used = decode(&pkt(&v6[..50], family::INET6));
            decode_into(&pkt(&b[..n], fam), &mut used);
            assert_eq!(used, decode(&pkt(&b[..n], fam)), "cut at {n}");
        }
    }
}

/// Every prefix of several packets decodes without panicking, is marked partial once the IP
/// header is there, and reports the layer where it stops.
#[test]
fn every_truncation_length() {
    let inner = ip4(17, 0, &[], &udp(5000, 53, b"q"));
    let mut err = vec![3, 3, 0, 0, 0, 0, 0, 0];
    err.extend_from_slice(&inner);
    let mut ext = vec![44, 0, 1, 4, 0, 0, 0, 0];
    ext.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 9]);
    ext.extend_from_slice(&tcp(0x18, 0x80, &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]));
    let cases: Vec<(u8, Vec<u8>)> = vec![
        (
            family::INET,
            ip4(
                6,
                0,
                &[0x94, 4, 0, 0],
                &tcp(0x02, 0x70, &[2, 4, 5, 0xb4, 1, 1, 4, 2]),
            ),
        ),
        (family::INET, ip4(1, 0, &[], &err)),
        (
            family::INET,
            ip4(
                51,
                0,
                &[],
                &[6, 4, 0, 0, 1, 2, 3, 4, 0, 0, 0, 1, 0, 0, 0, 0],
            ),
        ),
        (family::INET6, ip6(0, &ext)),
        (
            family::INET6,
            ip6(58, &[1, 4, 0, 0, 0, 0, 0, 0, 0x60, 0, 0, 0]),
        ),
    ];
    for (fam, b) in &cases {
        let hdr = if *fam == family::INET { 20 } else { 40 };
        for n in 0..=b.len() {
            let p = pkt(&b[..n], *fam);
            let d = decode(&p);
            let _ = addresses(&p);
            if n < hdr {
                assert!(matches!(d.net, Net::Truncated(t) if t.have() == n && t.need == hdr));
                continue;
            }
            if n < b.len() {
                assert_eq!(
                    d.partial,
                    Some(Partial {
                        captured: n as u32,
                        original: b.len() as u32
                    }),
                    "n={n}"
                );
            } else {
                assert_eq!(d.partial, None);
            }
            // Walk every view the formatters use.
            match &d.net {
                Net::Ipv4(v) => {
                    if let Transport::Icmp(i) = &v.transport {
                        let _ = i.inner();
                    }
                }
                Net::Ipv6(v) => {
                    assert!(v.ext_headers().count() <= 3);
                    if let Transport::Icmpv6(i) = &v.transport {
                        let _ = i.inner();
                    }
                }
                _ => {}
            }
        }
    }
    // The TCP packet cut inside the TCP header says so.
    let (_, b) = &cases[0];
    let d = decode(&pkt(&b[..30], family::INET));
    let Net::Ipv4(v) = &d.net else { panic!() };
    assert!(matches!(
        v.transport,
        Transport::Truncated(Truncated {
            layer: Layer::Tcp,
            offset: 24,
            end: 30,
            need: 20
        })
    ));
}

/// xorshift64*, fixed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Differential check against etherparse: for well-formed headers with random field values
/// (where etherparse's validating slices accept them), every field read here equals
/// etherparse's reading of the same bytes.
#[test]
fn fields_agree_with_etherparse_on_well_formed_headers() {
    use etherparse::{Ipv4HeaderSlice, Ipv6HeaderSlice, TcpHeaderSlice, UdpHeaderSlice};
    let mut rng = Rng(0x0dd_c0ffee);
    let mut checked = 0;
    for i in 0..5000 {
        let v6 = i % 2 == 1;
        let tcp_opts = 4 * (rng.next() % 11) as usize;
        let l4 = if i % 3 == 0 {
            let n = 8 + (rng.next() % 16) as usize;
            let mut u = rng.bytes(n);
            let len = u.len() as u16;
            u[4..6].copy_from_slice(&len.to_be_bytes());
            (17u8, u)
        } else {
            let n = 20 + tcp_opts + (rng.next() % 8) as usize;
            let mut t = rng.bytes(n);
            t[12] = (((20 + tcp_opts) / 4) as u8) << 4 | (t[12] & 0x0f);
            (6u8, t)
        };
        let b = if v6 {
            let mut h = rng.bytes(40);
            h[0] = 0x60 | (h[0] & 0x0f);
            h[4..6].copy_from_slice(&(l4.1.len() as u16).to_be_bytes());
            h[6] = l4.0;
            h.extend_from_slice(&l4.1);
            h
        } else {
            let opts = 4 * (rng.next() % 11) as usize;
            let mut h = rng.bytes(20 + opts);
            h[0] = 0x40 | ((20 + opts) / 4) as u8;
            let total = (h.len() + l4.1.len()) as u16;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            // Offset 0: a first fragment (MF or not) still has its transport header.
            h[6] &= 0xe0;
            h[7] = 0;
            h[9] = l4.0;
            h.extend_from_slice(&l4.1);
            h
        };
        let p = pkt(&b, if v6 { family::INET6 } else { family::INET });
        let d = decode(&p);
        assert_eq!(d.partial, None);
        let (transport, l4_off) = match &d.net {
            Net::Ipv4(v) => {
                let e = Ipv4HeaderSlice::from_slice(&b).expect("etherparse accepts");
                assert_eq!(v.src, e.source_addr());
                assert_eq!(v.dst, e.destination_addr());
                assert_eq!(v.total_len, e.total_len());
                assert_eq!(v.tos, e.dcp().value() << 2 | e.ecn().value());
                assert_eq!(v.ttl, e.ttl());
                assert_eq!(v.id, e.identification());
                assert_eq!((v.df(), v.mf()), (e.dont_fragment(), e.more_fragments()));
                assert_eq!(v.frag_offset(), e.fragments_offset().value());
                assert_eq!(v.protocol, e.protocol().0);
                assert_eq!(v.checksum, e.header_checksum());
                assert_eq!(v.options, Ok(e.options()));
                (v.transport.clone(), v.l4_offset)
            }
            Net::Ipv6(v) => {
                let e = Ipv6HeaderSlice::from_slice(&b).expect("etherparse accepts");
                assert_eq!((v.src, v.dst), (e.source_addr(), e.destination_addr()));
                assert_eq!(v.traffic_class, e.traffic_class());
                assert_eq!(v.flow_label, e.flow_label().value());
                assert_eq!(v.payload_len, e.payload_length());
                assert_eq!(
                    (v.next_header, v.hop_limit),
                    (e.next_header().0, e.hop_limit())
                );
                (v.transport.clone(), v.l4_offset)
            }
            other => panic!("{other:?}"),
        };
        match transport {
            Transport::Tcp(t) => {
                let e = TcpHeaderSlice::from_slice(&b[l4_off..]).expect("etherparse accepts");
                assert_eq!(
                    (t.src_port, t.dst_port),
                    (e.source_port(), e.destination_port())
                );
                assert_eq!(
                    (t.seq, t.ack),
                    (e.sequence_number(), e.acknowledgment_number())
                );
                assert_eq!(t.data_offset, e.data_offset());
                assert_eq!(t.ae(), e.ns());
                let flags = [
                    (Tcp::FIN, e.fin()),
                    (Tcp::SYN, e.syn()),
                    (Tcp::RST, e.rst()),
                    (Tcp::PSH, e.psh()),
                    (Tcp::ACK, e.ack()),
                    (Tcp::URG, e.urg()),
                    (Tcp::ECE, e.ece()),
                    (Tcp::CWR, e.cwr()),
                ];
                for (bit, theirs) in flags {
                    assert_eq!(t.has(bit), theirs);
                }
                assert_eq!(
                    (t.window, t.checksum, t.urgent),
                    (e.window_size(), e.checksum(), e.urgent_pointer())
                );
                assert_eq!(t.options, Ok(e.options()));
            }
            Transport::Udp(u) => {
                let e = UdpHeaderSlice::from_slice(&b[l4_off..]).expect("etherparse accepts");
                assert_eq!(
                    (u.src_port, u.dst_port),
                    (e.source_port(), e.destination_port())
                );
                assert_eq!((u.length, u.checksum), (e.length(), e.checksum()));
            }
            other => panic!("{other:?}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 5000);
}
