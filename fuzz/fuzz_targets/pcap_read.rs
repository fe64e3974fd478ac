//! pcap / pcapng reader and link-layer dispatch: any file must be read to its end or refused
//! with an error, without panicking, looping or allocating without bound.
#![no_main]

use fwlog::pcap::{read_file, to_packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_file(data, |rec| {
        let p = to_packet(rec);
        assert!(p.payload.len() <= rec.data.len());
        true
    });
});
