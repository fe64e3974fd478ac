//! NFLOG attribute walker: any bytes (netlink message body, spool record, pcap record) must
//! parse to a packet, possibly marked damaged, without panicking or reading out of bounds.
#![no_main]

use fwlog::nflog::attr::{parse, TlvOrder};
use fwlog::packet::{TimeSource, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ts = Timestamp { sec: 0, nsec: 0, source: TimeSource::Capture };
    for order in [TlvOrder::Little, TlvOrder::Big] {
        let p = parse(data, order, ts);
        assert!(p.payload.len() <= data.len());
    }
});
