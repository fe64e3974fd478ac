//! Decoder and formatters: any payload, under any metadata, decodes as far as its bytes go and
//! formats in all three formats without panicking; no output holds a control byte other than
//! the newlines of its own structure; kernel and JSON output are exactly one line; JSON parses.
#![no_main]

use fwlog::format::{FormatKind, FormatOptions, Formatter, LogFlags, NoNames};
use fwlog::nflog::attr::{parse, TlvOrder};
use fwlog::packet::{family, Packet, TimeSource, Timestamp};
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
    // Bare payloads of either family, and whole NFLOG records (hostile metadata too).
    match sel % 3 {
        0 | 1 => {
            let mut p = Packet::new(rest, ts);
            p.family = if sel % 3 == 0 { family::INET } else { family::INET6 };
            p.prefix = Some(b"fz ");
            check(&p);
        }
        _ => check(&parse(rest, TlvOrder::NATIVE, ts)),
    }
});
