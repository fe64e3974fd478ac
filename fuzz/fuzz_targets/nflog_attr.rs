//! NFLOG attribute walker: any bytes (netlink message body, spool record, pcap record) must
//! parse to a packet, possibly marked damaged, without panicking or reading out of bounds; and
//! writing a packet back (`encode_packet`, what `fwlog read` spools) keeps what the link-layer
//! families carry: the VLAN tag and the L2 header.
#![no_main]

use fwlog::nflog::attr::{encode_packet, parse, TlvOrder};
use fwlog::packet::{TimeSource, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ts = Timestamp { sec: 0, nsec: 0, source: TimeSource::Capture };
    for order in [TlvOrder::Little, TlvOrder::Big] {
        let p = parse(data, order, ts);
        assert!(p.payload.len() <= data.len());
        let mut b = Vec::new();
        encode_packet(&p, &mut b);
        let q = parse(&b, TlvOrder::NATIVE, ts);
        assert_eq!((q.family, q.group, q.vlan), (p.family, p.group, p.vlan));
        if p.l2header.map_or(0, <[u8]>::len) <= 60_000 {
            assert_eq!(q.l2header, p.l2header);
        }
    }
});
