//! Hostile PTR names through the whole pipeline (capture file -> resolve -> every format): no
//! output holds a control byte or a forged line, and every packet's block stays intact.
//! The only name server is a hand-made responder on 127.0.0.1 that this test starts.

mod support;

use std::process::Command;
use std::time::Duration;

use fwlog::nflog::attr::encode_packet;
use fwlog::packet::{family, Packet, TimeSource, Timestamp};
use fwlog::pcap::NflogPcapWriter;
use support::dns::{hostile_cases, Question, Reply, Responder};

/// An IPv4/UDP packet from `src` to 192.0.2.250 (which has no name).
fn udp4(src: [u8; 4]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src);
    p.extend_from_slice(&[192, 0, 2, 250]);
    p.extend_from_slice(&[0x04, 0xd2, 0, 53, 0, 12, 0, 0]);
    p.extend_from_slice(b"test");
    p
}

fn answer(q: &Question) -> Reply {
    // 192.0.2.N -> N.2.0.192.in-addr.arpa: the first label is N.
    let n: usize = std::str::from_utf8(&q.labels[0])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(999);
    match hostile_cases().get(n) {
        Some(name) => Reply::Ptr(vec![name.clone()]),
        None => Reply::NxDomain,
    }
}

fn control_free(what: &str, out: &[u8]) {
    for (i, &b) in out.iter().enumerate() {
        assert!(
            b == b'\n' || (0x20..0x7f).contains(&b),
            "{what}: byte {b:#04x} at {i} in {:?}",
            String::from_utf8_lossy(&out[i.saturating_sub(40)..(i + 40).min(out.len())])
        );
    }
}

#[test]
fn hostile_names_never_forge_lines_in_any_format() {
    let n = hostile_cases().len();
    let resp = Responder::start(Duration::ZERO, answer);
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("hostile.pcap");
    let mut w = NflogPcapWriter::new(std::fs::File::create(&pcap).unwrap()).unwrap();
    let prefix = b"evil\nprefix\x1b[2J ";
    for i in 0..n {
        let payload = udp4([192, 0, 2, i as u8]);
        let mut p = Packet::new(
            &payload,
            Timestamp {
                sec: 1_700_000_000,
                nsec: 0,
                source: TimeSource::Kernel,
            },
        );
        p.family = family::INET;
        p.group = 5;
        p.hook = Some(1);
        p.prefix = Some(prefix);
        let mut rec = Vec::new();
        encode_packet(&p, &mut rec);
        w.write(1_700_000_000, 0, &rec).unwrap();
    }
    drop(w);
    let server = resp.addr.to_string();
    for format in ["fwlog", "kernel", "json"] {
        let out = Command::new(env!("CARGO_BIN_EXE_fwlog"))
            .args([
                "read",
                "--dns-server",
                &server,
                "--dns-timeout",
                "5s",
                "--format",
                format,
            ])
            .arg(&pcap)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        control_free(format, &out.stdout);
        let text = String::from_utf8(out.stdout).unwrap();
        match format {
            "fwlog" => {
                let blocks: Vec<&str> = text
                    .split("\n\n")
                    .filter(|b| !b.trim().is_empty())
                    .collect();
                assert_eq!(blocks.len(), n, "one block per packet");
                for b in &blocks {
                    let lines: Vec<&str> = b.lines().collect();
                    assert_eq!(lines.len(), 3, "PKT, IP and UDP lines: {b}");
                    assert!(
                        lines[0].starts_with("PKT:")
                            && lines[1].starts_with("IP(")
                            && lines[2].starts_with("UDP:"),
                        "{b}"
                    );
                }
                // Names are there (escaped), next to their addresses.
                assert!(
                    text.contains("from 192.0.2.0 (evil\\010Dec\\0321\\03200"),
                    "{text}"
                );
                assert!(text.contains("from 192.0.2.9 (1.2.3.4(!ip))"), "{text}");
            }
            "kernel" => assert_eq!(text.lines().count(), n),
            _ => {
                assert_eq!(text.lines().count(), n);
                for (i, l) in text.lines().enumerate() {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    let name = v["ip"]["src_name"]
                        .as_str()
                        .unwrap_or_else(|| panic!("case {i} has a name: {l}"));
                    assert!(
                        name.bytes().all(fwlog::format::escape::name_allowed),
                        "case {i}: {name}"
                    );
                }
            }
        }
    }
    assert!(resp.queries.load(std::sync::atomic::Ordering::Relaxed) >= n as u64);
}
