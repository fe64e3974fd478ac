//! Per-packet cost of decoding + formatting, in each format, against a baseline measured in the
//! same run: appending the raw payload to the output buffer (the least any formatter must do).
//! Prints ns/packet, packets/s and the ratio to the baseline; asserts nothing (figures only).
//!
//! Run: `cargo bench --bench format` (`FWLOG_BENCH_ROUNDS=N` to run fewer rounds, e.g. under
//! callgrind)

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use fwlog::format::{FormatKind, FormatOptions, Formatter, LogFlags, NameTables, Names};
use fwlog::packet::{family, Iface, Packet, TimeSource, Timestamp};

struct OneName;

impl Names for OneName {
    fn name(&self, a: IpAddr) -> Option<&str> {
        matches!(a, IpAddr::V4(v) if v.octets()[3] == 1).then_some("gw.example.net")
    }
}

fn samples() -> Vec<Vec<u8>> {
    // TCP SYN with Linux options, UDP DNS, ICMP port unreachable quoting UDP, IPv6 TCP ACK.
    let syn = [
        0x45, 0, 0, 60, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0xd4, 0x31, 0,
        80, 0, 0, 0, 1, 0, 0, 0, 0, 0xa0, 0x02, 0xfa, 0xf0, 0, 0, 0, 0, 2, 4, 5, 0xb4, 4, 2, 8, 10,
        0, 1, 2, 3, 0, 0, 0, 0, 1, 3, 3, 7,
    ];
    let mut udp = vec![
        0x45, 0, 0, 61, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1,
    ];
    udp.extend_from_slice(&[0xc3, 0x50, 0, 53, 0, 41, 0, 0]);
    udp.extend_from_slice(&[0x55; 33]);
    let mut icmp = vec![
        0x45, 0xc0, 0, 57, 0, 2, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    icmp.extend_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0]);
    icmp.extend_from_slice(&udp[..29]);
    let mut v6 = vec![0x60, 0, 0, 0, 0, 32, 6, 64];
    v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    v6.extend_from_slice(&syn[20..40]);
    v6[40 + 12] = 0x80;
    v6.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    vec![syn.to_vec(), udp, icmp, v6]
}

fn time<F: FnMut(&Packet<'_>, &mut Vec<u8>)>(pkts: &[Packet<'_>], rounds: usize, mut f: F) -> f64 {
    let mut out = Vec::with_capacity(1 << 20);
    let start = Instant::now();
    for _ in 0..rounds {
        for p in pkts {
            f(p, &mut out);
            if out.len() > (1 << 20) - 4096 {
                black_box(&out);
                out.clear();
            }
        }
    }
    black_box(&out);
    start.elapsed().as_nanos() as f64 / (rounds * pkts.len()) as f64
}

fn main() {
    let bufs = samples();
    let ts = Timestamp {
        sec: 1_795_507_200,
        nsec: 123_456_000,
        source: TimeSource::Kernel,
    };
    let pkts: Vec<Packet<'_>> = bufs
        .iter()
        .map(|b| {
            let mut p = Packet::new(b, ts);
            p.family = if b[0] >> 4 == 6 {
                family::INET6
            } else {
                family::INET
            };
            p.hook = Some(1);
            p.prefix = Some(b"DROP in ");
            p.indev = Some(Iface {
                index: 2,
                name: Some(b"eth0"),
            });
            p.hwtype = Some(1);
            p.hwheader = Some(&[0x52, 0x54, 0, 1, 2, 3, 0x52, 0x54, 0, 4, 5, 6, 8, 0]);
            p
        })
        .collect();
    // FWLOG_BENCH_ROUNDS: fewer rounds for callgrind, whose per-call instruction counts are
    // the figures that hold on a loaded machine.
    let rounds = std::env::var("FWLOG_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(250_000);
    let base = time(&pkts, rounds, |p, out| {
        out.extend_from_slice(p.payload);
        out.push(b'\n');
    });
    println!("baseline (append payload): {base:7.1} ns/packet");
    for (name, kind, flags) in [
        ("kernel", FormatKind::Kernel, LogFlags::default()),
        ("kernel, flags all", FormatKind::Kernel, LogFlags::ALL),
        ("fwlog", FormatKind::Fwlog, LogFlags::default()),
        ("json", FormatKind::Json, LogFlags::default()),
    ] {
        let f = Formatter::with_tables(
            kind,
            FormatOptions {
                flags,
                ..FormatOptions::default()
            },
            NameTables::builtin(),
        );
        let ns = time(&pkts, rounds, |p, out| f.packet(p, &OneName, out));
        println!(
            "{name:<18}: {ns:7.1} ns/packet, {:>9.0} packets/s, {:5.1}x baseline",
            1e9 / ns,
            ns / base
        );
    }
    let decode = time(&pkts, rounds, |p, _| {
        black_box(fwlog::decode::decode(p));
    });
    println!(
        "decode only       : {decode:7.1} ns/packet, {:5.1}x baseline",
        decode / base
    );
}
