//! Every format's output, byte for byte, against what the formatters printed before they were
//! rewritten for speed: a fixed-seed stream of packets (well-formed, mutated, random; every
//! family, hooks, marks, VLAN tags, hostile prefixes, interface names and DNS names, times
//! across a daylight-saving change and the year boundary, every time source) goes through each
//! formatter, and an FNV-1a digest of each packet's output in every formatter is compared
//! with `tests/data/format_digest.txt`, recorded from the formatters as they were.
//!
//! A difference names the packet, shows which formatters' digests moved and prints the new
//! output of each, so it can be checked
//! against the layout in fwlog(8). Only when a layout change is intended: rerun with
//! `FWLOG_BLESS=1` to record the new digests (and say why in the commit).

use std::net::IpAddr;
use std::path::Path;

use fwlog::format::{
    FormatKind, FormatOptions, Formatter, LogFlags, LossCause, LossEvent, NameTables, Names,
};
use fwlog::packet::{family, Iface, Packet, TimeSource, Timestamp, Vlan};

/// xorshift64*: a fixed-seed generator (the stream must never change).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, n: u64) -> Vec<u8> {
        let n = self.below(n);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Names for some addresses: plain, with resolver escapes and marks, and hostile bytes the
/// resolver would never pass (the formatters escape them again).
struct SomeNames;

impl Names for SomeNames {
    fn name(&self, a: IpAddr) -> Option<&str> {
        let last = match a {
            IpAddr::V4(v) => v.octets()[3],
            IpAddr::V6(v) => v.octets()[15],
        };
        match last % 6 {
            0 => Some("gw.example.net"),
            1 => Some("a\\032b.example~"),
            2 => Some("x\n\x1b[31mPKT: forged\"\\é"),
            3 => Some("(!ip)?"),
            _ => None,
        }
    }
}

fn formatters() -> Vec<(String, Formatter)> {
    let mut v = Vec::new();
    for (name, kind) in [
        ("fwlog", FormatKind::Fwlog),
        ("kernel", FormatKind::Kernel),
        ("json", FormatKind::Json),
        ("ecs", FormatKind::Ecs),
    ] {
        for (flags, framing, host) in [
            (LogFlags::default(), false, ""),
            (LogFlags::ALL, true, "fw 1\n"),
        ] {
            v.push((
                format!("{name}{}", if framing { "+all" } else { "" }),
                Formatter::with_tables(
                    kind,
                    FormatOptions {
                        flags,
                        syslog_framing: framing,
                        hostname: host.into(),
                        ..FormatOptions::default()
                    },
                    NameTables::builtin(),
                ),
            ));
        }
    }
    v
}

/// Well-formed packets the mutations start from: every transport the decoder reads, ICMP
/// errors quoting packets, IPv6 extension chains, ARP, TCP options.
fn seeds() -> Vec<Vec<u8>> {
    let mut s = Vec::new();
    for proto in [1u8, 6, 17, 50, 51, 58, 136, 47] {
        let mut v = vec![
            0x45, 0, 0, 60, 0, 1, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 192, 168, 7, 2,
        ];
        if proto == 6 {
            v.extend_from_slice(&[0xd4, 0x31, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0xa0, 0x12]);
            v.extend_from_slice(&[0xfa, 0xf0, 0, 0, 0, 0, 2, 4, 5, 0xb4, 4, 2, 8, 10]);
            v.extend_from_slice(&[0, 1, 2, 3, 0, 0, 0, 0, 1, 3, 3, 7]);
        } else if proto == 17 {
            v.extend_from_slice(&[0xc3, 0x50, 0, 53, 0, 40, 0, 0]);
            v.extend_from_slice(&[0x55; 32]);
        } else {
            v.extend_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0]);
            v.extend_from_slice(&[
                0x46, 0, 0, 40, 0, 2, 0x20, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1,
            ]);
            v.extend_from_slice(&[0x94, 4, 0, 0, 0, 80, 0, 80, 0, 0, 0, 1]);
        }
        let n = v.len() as u16;
        v[2..4].copy_from_slice(&n.to_be_bytes());
        s.push(v);
    }
    for next in [0u8, 43, 44, 50, 51, 58, 59, 60, 6, 17] {
        let mut v = vec![0x60, 0x12, 0x34, 0x56, 0, 40, next, 64];
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0, 6]);
        v.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0, 58, 0, 0, 1, 0, 0, 0, 9]);
        v.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0, 0x60, 0, 0, 0, 0, 8, 17, 64]);
        v.extend_from_slice(&[0; 32]);
        s.push(v);
    }
    // ARP request, Ethernet/IPv4.
    s.push(vec![
        0, 1, 8, 0, 6, 4, 0, 1, 0x52, 0x54, 0, 1, 2, 3, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
    ]);
    s
}

/// Times that exercise the calendar: a daylight-saving change in the zone set below, the year
/// boundary, leap day, the epoch, a negative time, far future.
const TIMES: [i64; 8] = [
    1_795_507_200,
    1_711_846_799, // 2024-03-31 00:59:59 UTC, one second before CEST begins
    1_711_846_800,
    1_735_689_599, // 2024-12-31 23:59:59 UTC
    1_709_164_800, // 2024-02-29
    0,
    -86_401,
    4_102_444_800,
];

fn packet_stream(mut each: impl FnMut(usize, &Packet<'_>)) {
    let mut rng = Rng(0xf0a7_d16e_5700_0001);
    let seeds = seeds();
    for i in 0..2_000usize {
        let mut b = if i % 5 == 4 {
            rng.bytes(120)
        } else {
            let mut b = seeds[rng.below(seeds.len() as u64) as usize].clone();
            if i % 3 != 0 {
                for _ in 0..rng.below(5) {
                    let at = rng.below(b.len() as u64) as usize;
                    b[at] = rng.next() as u8;
                }
            }
            if i % 4 == 1 {
                let cut = rng.below(b.len() as u64 + 1) as usize;
                b.truncate(cut);
            }
            b
        };
        if i % 7 == 0 && !b.is_empty() {
            b[0] = (b[0] & 0x0f) | if i % 2 == 0 { 0x40 } else { 0x60 };
        }
        let hwheader = rng.bytes(40);
        let l2 = rng.bytes(30);
        let hostile_prefix = rng.bytes(40);
        let hostile_if = rng.bytes(20);
        let ts = Timestamp {
            sec: TIMES[rng.below(TIMES.len() as u64) as usize] + rng.below(3) as i64,
            nsec: [0, 999, 123_456_789, 999_999_999, 1_500_000_000][rng.below(5) as usize],
            source: [TimeSource::Kernel, TimeSource::Local, TimeSource::Capture]
                [rng.below(3) as usize],
        };
        let mut p = Packet::new(&b, ts);
        p.family = [
            family::INET,
            family::INET6,
            family::UNSPEC,
            family::BRIDGE,
            family::NETDEV,
            family::ARP,
        ][rng.below(6) as usize];
        p.group = rng.below(65_536) as u16;
        p.hook = (rng.below(8) != 0).then(|| rng.below(7) as u8);
        p.hw_protocol =
            [None, Some(0x0800), Some(0x86dd), Some(0x0806), Some(0x88cc)][rng.below(5) as usize];
        p.mark = if rng.below(2) == 0 {
            0
        } else {
            rng.next() as u32
        };
        let plain_if: &[u8] = if i % 2 == 0 { b"eth0" } else { b"veth-log0" };
        p.indev = match rng.below(4) {
            0 => None,
            1 => Some(Iface {
                index: 2,
                name: Some(plain_if),
            }),
            2 => Some(Iface {
                index: rng.next() as u32,
                name: None,
            }),
            _ => Some(Iface {
                index: 7,
                name: Some(&hostile_if),
            }),
        };
        p.outdev = (rng.below(3) == 0).then_some(Iface {
            index: 3,
            name: Some(b"br0"),
        });
        p.physindev = (rng.below(4) == 0).then_some(Iface {
            index: 4,
            name: None,
        });
        p.physoutdev = (rng.below(6) == 0).then_some(Iface {
            index: 5,
            name: Some(b"port\\5"),
        });
        p.hwaddr = (rng.below(2) == 0).then_some(&hwheader[..hwheader.len().min(6)]);
        p.hwtype = [None, Some(1), Some(772), Some(776)][rng.below(4) as usize];
        p.hwheader = (rng.below(2) == 0).then_some(&hwheader[..]);
        p.l2header = (rng.below(3) == 0).then_some(&l2[..]);
        p.vlan = (rng.below(4) == 0).then(|| Vlan {
            proto: [0x8100, 0x88a8][rng.below(2) as usize],
            tci: rng.next() as u16,
        });
        p.uid = (rng.below(3) == 0).then(|| rng.below(70_000) as u32);
        p.gid = (rng.below(3) == 0).then(|| rng.below(70_000) as u32);
        p.seq = (rng.below(2) == 0).then(|| rng.next() as u32);
        p.seq_global = (rng.below(2) == 0).then(|| rng.next() as u32);
        p.prefix = match rng.below(4) {
            0 => None,
            1 => Some(b"DROP in "),
            2 => Some(b"say \"hi\" \\ 100%"),
            _ => Some(&hostile_prefix),
        };
        p.orig_len = (rng.below(5) == 0).then(|| rng.below(3000) as u32);
        p.replayed = rng.below(4) == 0;
        p.damage = (i % 17 == 0).then(|| "bad\nattr\x1b".to_string());
        each(i, &p);
    }
}

fn losses() -> Vec<LossEvent> {
    let mut v = Vec::new();
    for (i, cause) in [
        LossCause::SeqGap,
        LossCause::Enobufs,
        LossCause::SpoolFull,
        LossCause::Corrupt,
    ]
    .into_iter()
    .enumerate()
    {
        v.push(LossEvent {
            count: 10u64.pow(i as u32 * 3),
            cause,
            group: (i % 2 == 0).then_some(5),
            seq_global: (i % 3 != 2).then_some((7, 7 + i as u32)),
            spool_seq: (i > 1).then_some((100, 200)),
            time: Timestamp {
                sec: TIMES[i],
                nsec: 5_000,
                source: TimeSource::Local,
            },
        });
    }
    v
}

/// FNV-1a, 64-bit, folded to 32 bits (one output in 2^32 could hide a change; the stream has
/// sixteen thousand).
fn fnv(b: &[u8]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h ^ (h >> 32)) as u32
}

#[test]
fn every_format_prints_what_it_printed_before() {
    // Central European time (POSIX rule, no tzdata needed): offsets, a DST change.
    std::env::set_var("TZ", "CET-1CEST,M3.5.0,M10.5.0/3");
    let fs = formatters();
    // The zone took effect: the JSON time shows the offset on each side of the change.
    let json = &fs[4].1;
    for (sec, off) in [(TIMES[1], "+01:00"), (TIMES[2], "+02:00")] {
        let ts = Timestamp {
            sec,
            nsec: 0,
            source: TimeSource::Kernel,
        };
        let mut o = Vec::new();
        json.packet(&Packet::new(&[], ts), &SomeNames, &mut o);
        let text = String::from_utf8_lossy(&o);
        assert!(text.contains(off), "{off} expected: {text}");
    }
    let mut lines = Vec::new();
    let mut shown = Vec::new();
    let mut out = Vec::new();
    // One line per packet: the digest of its output in each formatter, in `fs` order.
    let mut line = |what: String, write: &dyn Fn(&Formatter, &mut Vec<u8>)| {
        let mut l = what;
        let mut outs = Vec::new();
        for (name, f) in &fs {
            out.clear();
            write(f, &mut out);
            l.push_str(&format!(" {:08x}", fnv(&out)));
            outs.push(format!("{name}: {}", String::from_utf8_lossy(&out)));
        }
        lines.push(l);
        shown.push(outs.join("\n"));
    };
    packet_stream(|i, p| line(format!("p{i}"), &|f, o| f.packet(p, &SomeNames, o)));
    for (i, ev) in losses().iter().enumerate() {
        line(format!("l{i}"), &|f, o| f.loss(ev, o));
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format_digest.txt");
    let text = lines.join("\n") + "\n";
    if std::env::var_os("FWLOG_BLESS").is_some() {
        std::fs::write(&path, &text).expect("write digests");
        eprintln!("recorded {} digests in {}", lines.len(), path.display());
        return;
    }
    let want = std::fs::read_to_string(&path).expect("tests/data/format_digest.txt");
    let want: Vec<&str> = want.lines().collect();
    assert_eq!(want.len(), lines.len(), "digest count");
    let mut bad = 0;
    for (k, (got, want)) in lines.iter().zip(&want).enumerate() {
        if got != want {
            bad += 1;
            if bad <= 5 {
                eprintln!(
                    "now:      {got}\nrecorded: {want}\noutput now:\n{}",
                    shown[k]
                );
            }
        }
    }
    assert_eq!(bad, 0, "{bad} of {} outputs differ", lines.len());
}

/// The local time in every format comes from per-second and per-quarter-hour caches and
/// calendar arithmetic: against chrono's own conversion, second by second across both 2024
/// daylight-saving changes, across local midnights both ways, and at random instants from year
/// 1 to 9999.
#[test]
fn times_are_chronos_local_time() {
    use chrono::{Local, TimeZone};
    std::env::set_var("TZ", "CET-1CEST,M3.5.0,M10.5.0/3");
    let json = Formatter::with_tables(
        FormatKind::Json,
        FormatOptions::default(),
        NameTables::builtin(),
    );
    let fwlog = Formatter::with_tables(
        FormatKind::Fwlog,
        FormatOptions::default(),
        NameTables::builtin(),
    );
    let mut secs: Vec<i64> = Vec::new();
    for change in [1_711_846_800i64, 1_729_990_800] {
        secs.extend((change - 7_200..change + 7_200).step_by(7));
    }
    // Local midnights (a new year, a leap day, summer time, a century), walked second by
    // second forwards and backwards: a second on the day of the one before keeps its date.
    for midnight in [
        1_704_063_600i64,
        1_709_161_200,
        1_709_247_600,
        1_719_784_800,
        946_681_200,
    ] {
        secs.extend(midnight - 300..midnight + 300);
        secs.extend((midnight - 300..midnight + 300).rev());
        secs.extend([midnight - 86_400, midnight - 1, midnight + 86_399, midnight]);
    }
    let mut rng = Rng(0x7113_0000_0000_0001);
    for _ in 0..50_000 {
        secs.push(rng.below(253_402_300_799 + 62_135_596_800) as i64 - 62_135_596_800);
    }
    let mut out = Vec::new();
    for (i, &sec) in secs.iter().enumerate() {
        let nsec = (i as u32).wrapping_mul(2_654_435_761) % 1_000_000_000;
        let ts = Timestamp {
            sec,
            nsec,
            source: TimeSource::Kernel,
        };
        let local = Local.timestamp_opt(sec, nsec).earliest().expect("in range");
        // JSON's RFC 3339 time, and the fwlog format's, which keeps its own text of the last
        // second (and changes only the seconds' digits within a minute).
        for (f, layout) in [
            (&json, "\"time\":\"%Y-%m-%dT%H:%M:%S%.6f%:z\""),
            (&fwlog, ", received %Y-%m-%d %H:%M:%S%.6f,"),
        ] {
            out.clear();
            f.packet(&Packet::new(&[], ts), &SomeNames, &mut out);
            let want = local.format(layout).to_string();
            let text = String::from_utf8_lossy(&out);
            assert!(text.contains(&want), "{sec}: want {want} in {text}");
        }
    }
}
