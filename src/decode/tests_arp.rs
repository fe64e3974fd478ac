//! ARP and the bridge family through the decoder, whole and cut short.

use super::*;
use crate::packet::Packet;
use std::net::Ipv4Addr;

use super::tests::*;

fn arp_msg(op: u16) -> Vec<u8> {
    let mut v = vec![0, 1, 0x08, 0x00, 6, 4];
    v.extend_from_slice(&op.to_be_bytes());
    v.extend_from_slice(&[2, 0, 0, 0, 0, 0xa, 10, 77, 0, 1]);
    v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 77, 0, 2]);
    v
}

fn bridge(b: &[u8], ethertype: u16) -> Packet<'_> {
    let mut p = pkt(b, family::BRIDGE);
    p.hw_protocol = Some(ethertype);
    p
}

#[test]
fn arp_fields_and_addresses() {
    let b = arp_msg(1);
    let Net::Arp(a) = decode(&bridge(&b, 0x0806)).net else {
        panic!("not ARP");
    };
    assert_eq!(
        (a.htype, a.ptype, a.hlen, a.plen, a.opcode, a.len),
        (1, 0x0800, 6, 4, 1, 28)
    );
    assert!(a.is_ether_ipv4());
    let x = a.addrs.expect("addresses");
    assert_eq!(
        (x.sender_hw, x.target_proto),
        (&[2, 0, 0, 0, 0, 0xa][..], &[10, 77, 0, 2][..])
    );
    assert_eq!(
        a.ipv4(),
        Some((Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2)))
    );
    assert_eq!(
        addresses(&bridge(&b, 0x0806)),
        vec![
            IpAddr::from(Ipv4Addr::new(10, 77, 0, 1)),
            IpAddr::from(Ipv4Addr::new(10, 77, 0, 2))
        ]
    );
    // RARP is dumped as ARP; the arp family is ARP whatever the ethertype says.
    assert!(matches!(decode(&bridge(&b, 0x8035)).net, Net::Arp(_)));
    assert!(matches!(decode(&pkt(&b, family::ARP)).net, Net::Arp(_)));
}

#[test]
fn arp_cut_short_at_every_length() {
    let b = arp_msg(2);
    for n in 0..b.len() {
        let d = decode(&bridge(&b[..n], 0x0806));
        match d.net {
            Net::Truncated(t) => {
                assert!(n < 8);
                assert_eq!((t.layer, t.have(), t.need), (Layer::Arp, n, 8));
            }
            Net::Arp(a) => {
                let t = a.addrs.expect_err("addresses cut short");
                assert_eq!(
                    (t.layer, t.offset, t.have(), t.need),
                    (Layer::ArpAddresses, 8, n - 8, 20)
                );
                assert_eq!(a.ipv4(), None);
            }
            other => panic!("{n}: {other:?}"),
        }
        // Only a capture's original length makes an ARP record partial.
        assert_eq!(d.partial, None);
    }
}

#[test]
fn arp_with_odd_lengths_reads_what_the_header_says() {
    // hlen 0, plen 16 (an IPv6-sized protocol address): 32 address bytes follow.
    let mut b = vec![0, 6, 0x86, 0xdd, 0, 16, 0, 1];
    b.extend_from_slice(&[0xaa; 32]);
    let Net::Arp(a) = decode(&bridge(&b, 0x0806)).net else {
        panic!("not ARP");
    };
    assert!(!a.is_ether_ipv4());
    let x = a.addrs.expect("addresses");
    assert_eq!(
        (
            x.sender_hw.len(),
            x.sender_proto.len(),
            x.target_proto.len()
        ),
        (0, 16, 16)
    );
    assert_eq!(a.ipv4(), None);
    // hlen and plen 255: 1020 bytes needed, never a panic.
    let b = [0, 1, 8, 0, 255, 255, 0, 1, 1, 2, 3];
    let Net::Arp(a) = decode(&bridge(&b, 0x0806)).net else {
        panic!("not ARP");
    };
    assert_eq!(a.addrs.expect_err("short").need, 1020);
}

#[test]
fn bridge_family_follows_the_ethertype_not_the_first_byte() {
    // An IPv4-looking payload under an unknown ethertype is not IP for the bridge logger.
    let b = ip4(17, 0, &[], &udp(1, 2, b"x"));
    assert!(matches!(
        decode(&bridge(&b, 0x88b5)).net,
        Net::NotIp { version: 4, .. }
    ));
    assert!(matches!(decode(&bridge(&b, 0x0800)).net, Net::Ipv4(_)));
    let mut nd = pkt(&b, family::NETDEV);
    nd.hw_protocol = Some(0x8100);
    assert!(matches!(decode(&nd).net, Net::NotIp { .. }));
    // Without a link-layer protocol (a capture file) the version nibble still decides.
    assert!(matches!(decode(&pkt(&b, family::UNSPEC)).net, Net::Ipv4(_)));
    // An ARP-looking payload whose first nibble is 4 stays ARP under ETH_P_ARP.
    let mut a = arp_msg(1);
    a[0] = 0x40;
    assert!(matches!(decode(&bridge(&a, 0x0806)).net, Net::Arp(_)));
}
