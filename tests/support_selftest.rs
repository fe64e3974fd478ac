//! Checks the test support itself against the real kernel: a namespace, an nft LOG rule, and
//! the kernel's line read back from /dev/kmsg.

mod support;

use std::time::Duration;
use support::{kmsg, netns::NetNs};

#[test]
fn kernel_log_line_is_read_back_from_kmsg() {
    require_root!();
    let ns = NetNs::new("selftest");
    let tag = format!("FWLST{} ", std::process::id());
    ns.output_rules(&[format!("udp dport 9 log prefix \"{tag}\"")]);
    kmsg::enable_log_all_netns();
    let mut k = kmsg::Kmsg::open_at_end();
    ns.enter(|| {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.send_to(b"hello", "127.0.0.1:9").expect("send");
    });
    let lines = k.collect(&tag, 1, Duration::from_secs(5));
    assert_eq!(lines.len(), 1, "kernel line not seen");
    assert!(
        lines[0].contains("PROTO=UDP") && lines[0].contains("DPT=9 LEN=13 "),
        "{}",
        lines[0]
    );
}
