//! Hostile input through decoder and formatters: every capture of the public test-suite corpus
//! (optional, skipped when absent) and a stream of pseudo-random and mutated packets. Each
//! packet must format in all three formats without a panic, and the output must keep its shape:
//! only printable ASCII and newlines, one line per packet (kernel, json, and json parses),
//! blocks ending in an empty line (fwlog).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use fwlog::decode::addresses;
use fwlog::format::{FormatKind, FormatOptions, Formatter, LogFlags, NameTables, Names};
use fwlog::packet::{family, Iface, Packet, TimeSource, Timestamp};
use fwlog::pcap::{read_file, to_packet};

/// Names as hostile as a DNS answer could make them, had the resolver not cleaned them.
struct Hostile;

impl Names for Hostile {
    fn name(&self, a: IpAddr) -> Option<&str> {
        match a {
            IpAddr::V4(v) if v.octets()[3] % 2 == 0 => Some("x\n\x1b[31mPKT: forged\r\x00\u{7f}é"),
            IpAddr::V6(_) => Some("host.example\"},{\"event\":\"forged"),
            _ => None,
        }
    }
}

fn formatters() -> Vec<Formatter> {
    let mut v = Vec::new();
    for kind in [FormatKind::Fwlog, FormatKind::Kernel, FormatKind::Json] {
        for (flags, framing) in [(LogFlags::default(), false), (LogFlags::ALL, true)] {
            v.push(Formatter::with_tables(
                kind,
                FormatOptions {
                    flags,
                    syslog_framing: framing,
                    hostname: "h\nx".into(),
                    ..FormatOptions::default()
                },
                NameTables::builtin(),
            ));
        }
    }
    v
}

fn check(fs: &[Formatter], p: &Packet<'_>, what: &str) {
    let _ = addresses(p);
    for f in fs {
        let mut out = Vec::new();
        f.packet(p, &Hostile, &mut out);
        assert!(
            out.iter().all(|&c| c == b'\n' || (0x20..0x7f).contains(&c)),
            "{what}: unescaped byte in {:?} output: {}",
            f.kind(),
            String::from_utf8_lossy(&out)
        );
        let text = String::from_utf8(out).expect("ASCII");
        match f.kind() {
            FormatKind::Kernel => {
                assert!(
                    text.ends_with('\n') && text.matches('\n').count() == 1,
                    "{what}: {text}"
                )
            }
            FormatKind::Json => {
                assert!(
                    text.ends_with('\n') && text.matches('\n').count() == 1,
                    "{what}: {text}"
                );
                let v: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{what}: invalid JSON ({e}): {text}"));
                assert_eq!(v["event"], "packet", "{what}: {text}");
            }
            FormatKind::Fwlog => {
                assert!(
                    text.ends_with("\n\n") && !text[..text.len() - 2].contains("\n\n"),
                    "{what}: {text}"
                );
                assert!(text.starts_with("PKT"), "{what}: {text}");
            }
        }
    }
}

fn corpus_dirs() -> Vec<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        here.join("../shared/corpus"),
        PathBuf::from("/work/shared/corpus"),
    ]
    .into_iter()
    .filter(|d| d.is_dir())
    .collect()
}

fn pcaps(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            pcaps(&p, out);
        } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
            out.push(p);
        }
    }
}

#[test]
fn every_corpus_packet_formats_in_every_format() {
    let dirs = corpus_dirs();
    let Some(dir) = dirs.first() else {
        eprintln!("SKIP: no ../shared/corpus or /work/shared/corpus (optional corpus)");
        return;
    };
    let fs = formatters();
    let mut files = Vec::new();
    pcaps(dir, &mut files);
    let mut packets = 0u64;
    for f in &files {
        let file = std::fs::File::open(f).expect("open");
        let what = f.display().to_string();
        // Files the reader refuses are the reader's tests' business; packets it yields are ours.
        let _ = read_file(file, |rec| {
            let p = to_packet(rec);
            check(&fs, &p, &what);
            // The same packet cut at every length up to 80 bytes (snaplen, copy range).
            for n in 0..p.payload.len().min(80) {
                let q = Packet {
                    payload: &p.payload[..n],
                    ..p.clone()
                };
                check(&fs, &q, &what);
            }
            packets += 1;
            true
        });
    }
    eprintln!("{} files, {packets} packets formatted", files.len());
    assert!(packets > 100, "corpus yielded only {packets} packets");
}

/// xorshift64*: a fixed-seed generator, so a failure reproduces.
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
}

/// Seeds that reach deep paths: IP headers with every protocol the decoder knows, IPv6 with
/// extension chains, ICMP errors quoting packets.
fn seeds() -> Vec<Vec<u8>> {
    let mut s = Vec::new();
    for proto in [1u8, 6, 17, 50, 51, 58, 136, 47] {
        let mut v = vec![
            0x45, 0, 0, 60, 0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        v.extend_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0]);
        v.extend_from_slice(&[
            0x46, 0, 0, 40, 0, 2, 0x20, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1,
        ]);
        v.extend_from_slice(&[0x94, 4, 0, 0, 0, 80, 0, 80, 0, 0, 0, 1]);
        s.push(v);
    }
    for next in [0u8, 43, 44, 50, 51, 58, 59, 60, 6, 17] {
        let mut v = vec![0x60, 0, 0, 0, 0, 40, next, 64];
        v.extend_from_slice(&[0; 32]);
        v.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0, 58, 0, 0, 1, 0, 0, 0, 9]);
        v.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0, 0x60, 0, 0, 0, 0, 8, 17, 64]);
        v.extend_from_slice(&[0; 32]);
        s.push(v);
    }
    s
}

#[test]
fn random_and_mutated_packets_never_break_the_output() {
    let fs = formatters();
    let mut rng = Rng(0x5eed_f00d_dead_beef);
    let seeds = seeds();
    let ts = Timestamp {
        sec: 1_700_000_000,
        nsec: 0,
        source: TimeSource::Capture,
    };
    for i in 0..20_000 {
        let mut b = if i % 4 == 0 {
            let n = rng.below(120) as usize;
            (0..n).map(|_| rng.next() as u8).collect::<Vec<u8>>()
        } else {
            let mut b = seeds[rng.below(seeds.len() as u64) as usize].clone();
            for _ in 0..rng.below(6) {
                let at = rng.below(b.len() as u64) as usize;
                b[at] = rng.next() as u8;
            }
            let cut = rng.below(b.len() as u64 + 1) as usize;
            b.truncate(cut);
            b
        };
        if i % 7 == 0 && !b.is_empty() {
            // Keep the version nibble sane sometimes, wild other times.
            b[0] = (b[0] & 0x0f) | if i % 2 == 0 { 0x40 } else { 0x60 };
        }
        let hwheader: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
        let prefix: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
        let ifname: Vec<u8> = (0..rng.below(20)).map(|_| rng.next() as u8).collect();
        let mut p = Packet::new(&b, ts);
        p.family =
            [family::INET, family::INET6, family::UNSPEC, family::BRIDGE][rng.below(4) as usize];
        p.hook = Some(rng.below(8) as u8);
        p.mark = rng.next() as u32;
        p.indev = Some(Iface {
            index: rng.next() as u32,
            name: Some(&ifname),
        });
        p.physindev = Some(Iface {
            index: 3,
            name: None,
        });
        p.hwtype = Some([1u16, 772, 776, 0][rng.below(4) as usize]);
        p.hwheader = Some(&hwheader);
        p.prefix = Some(&prefix);
        p.uid = Some(rng.next() as u32);
        p.damage = (i % 13 == 0).then(|| "bad\nattr\x1b".to_string());
        p.replayed = i % 5 == 0;
        check(&fs, &p, &format!("random #{i} {b:02x?}"));
    }
}
