//! Decoder and formatters: any payload, under any metadata, decodes as far as its bytes go and
//! formats in all three formats without panicking; no output holds a control byte other than
//! the newlines of its own structure; kernel and JSON output are exactly one line; JSON parses.
#![no_main]

use fwlog::format::{FormatKind, FormatOptions, Formatter, LogFlags, NoNames};
use fwlog::nflog::attr::{parse, TlvOrder};
use fwlog::packet::{family, Iface, Packet, TimeSource, Timestamp, Vlan};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn formatters() -> &'static [Formatter; 3] {
    static F: OnceLock<[Formatter; 3]> = OnceLock::new();
    F.get_or_init(|| {
        let opts = FormatOptions {
            flags: "all".parse::<LogFlags>().expect("all is a flag"),
            syslog_framing: true,
            hostname: "fuzz".into(),
        };
        [
            Formatter::new(FormatKind::Fwlog, opts.clone()),
            Formatter::new(FormatKind::Kernel, opts.clone()),
            Formatter::new(FormatKind::Json, opts),
        ]
    })
}

fn check(p: &Packet<'_>) {
    for (i, f) in formatters().iter().enumerate() {
        let mut out = Vec::new();
        f.packet(p, &NoNames, &mut out);
        assert!(
            out.iter().all(|&b| b == b'\n' || (0x20..0x7f).contains(&b)),
            "control or non-ASCII byte in format {i}: {:?}",
            String::from_utf8_lossy(&out)
        );
        if i > 0 {
            assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        }
        if i == 2 {
            let v: serde_json::Value = serde_json::from_slice(&out).expect("JSON parses");
            assert!(v.is_object());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let ts = Timestamp { sec: 1_700_000_000, nsec: 1, source: TimeSource::Kernel };
    let Some((&sel, rest)) = data.split_first() else { return };
    // Bare payloads of either family, whole NFLOG records (hostile metadata too), and
    // link-layer families: bridge/netdev with an ethertype, VLAN tag and L2 header taken from
    // the input, the arp family, netdev egress and arp output (payload from the MAC header).
    match sel % 7 {
        0 | 1 => {
            let mut p = Packet::new(rest, ts);
            p.family = if sel % 7 == 0 { family::INET } else { family::INET6 };
            p.prefix = Some(b"fz ");
            check(&p);
        }
        2 => check(&parse(rest, TlvOrder::NATIVE, ts)),
        _ => {
            let Some((head, payload)) = rest.split_first_chunk::<6>() else { return };
            let mut p = Packet::new(payload, ts);
            p.family = match sel % 7 {
                3 => family::BRIDGE,
                4 => family::ARP,
                _ => family::NETDEV,
            };
            p.hook = Some(head[0] % 6);
            p.hw_protocol = Some(match head[1] % 4 {
                0 => 0x0806,
                1 => 0x0800,
                2 => 0x86dd,
                _ => u16::from_be_bytes([head[2], head[3]]),
            });
            if head[4] & 1 != 0 {
                p.vlan = Some(Vlan { proto: 0x8100, tci: u16::from_be_bytes([head[2], head[3]]) });
            }
            let l2 = (head[5] as usize % 24).min(payload.len());
            if head[4] & 2 != 0 {
                p.l2header = Some(&payload[..l2]);
            }
            if head[4] & 4 != 0 {
                p.hwheader = Some(&payload[..l2]);
                p.hwtype = Some(if head[4] & 8 != 0 { 1 } else { 776 });
                p.indev = Some(Iface { index: 2, name: Some(b"vb1") });
            }
            if head[4] & 16 != 0 {
                p.physindev = Some(Iface { index: 3, name: None });
            }
            p.uid = (head[4] & 32 != 0).then_some(0);
            p.mark = u32::from(head[4] & 64);
            check(&p);
        }
    }
});
