//! `tests/data/sample.pcap`: the capture behind the README's first command.
//!
//! It was recorded from the kernel by `record_sample` below (run it with
//! `cargo test --test sample_pcap -- --ignored`, as root): a namespace whose nft rules log every
//! packet on the input and output hooks, with prefixes, to NFLOG group 9, received through
//! fwlog's own capture path (so each record carries the interface names as fwlog spools them)
//! and written as a LINKTYPE_NFLOG pcap. The other test checks that the committed file still
//! holds what the README promises.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fwlog::capture::{NflogConfig, NflogSocket, RecordBatch};
use fwlog::pcap::{read_file, to_packet, NflogPcapWriter};
use support::netns::NetNs;

fn sample_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/sample.pcap")
}

/// Send one ICMP (v4) or ICMPv6 echo request to loopback through a raw socket.
fn ping(v6: bool) {
    let lo: std::net::IpAddr = if v6 { "::1" } else { "127.0.0.1" }.parse().unwrap();
    support::packets::ping(lo, 0x1234, 1, b"fwlog sample", Duration::ZERO);
}

fn traffic() {
    for host in ["127.0.0.1", "::1"] {
        let l = TcpListener::bind((host, 8080)).unwrap();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut b = [0u8; 64];
            let n = c.read(&mut b).unwrap();
            c.write_all(&b[..n]).unwrap();
        });
        let mut c = TcpStream::connect((host, 8080)).unwrap();
        c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut b = [0u8; 64];
        let _ = c.read(&mut b).unwrap();
        drop(c);
        t.join().unwrap();
        // UDP to a closed port: the datagram and the ICMP port-unreachable that answers it.
        let u = UdpSocket::bind((host, 0)).unwrap();
        u.send_to(b"fwlog sample query", (host, 5353)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    ping(false);
    ping(true);
    std::thread::sleep(Duration::from_millis(100));
}

#[test]
#[ignore = "records tests/data/sample.pcap from the kernel; run by hand as root"]
fn record_sample() {
    require_root!();
    let ns = NetNs::new("sample");
    ns.nft("table inet sample {\n chain in {\n  type filter hook input priority 0;\n  log prefix \"fw-in \" group 9\n }\n chain out {\n  type filter hook output priority 0;\n  log prefix \"fw-out \" group 9\n }\n}\n");
    let records = ns.enter(|| {
        let cfg = NflogConfig {
            groups: vec![9],
            ..NflogConfig::default()
        };
        let mut sock = NflogSocket::open(&cfg).expect("open NFLOG");
        traffic();
        let mut out = Vec::new();
        let mut batch = RecordBatch::new();
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            sock.recv_batch(&mut batch, Duration::from_millis(100))
                .unwrap();
            out.extend(batch.iter().map(|r| r.to_vec()));
        }
        out
    });
    let mut w = NflogPcapWriter::new(std::fs::File::create(sample_path()).unwrap()).unwrap();
    for r in &records {
        let p = fwlog::nflog::attr::parse(
            r,
            fwlog::nflog::attr::TlvOrder::NATIVE,
            fwlog::packet::Timestamp {
                sec: 0,
                nsec: 0,
                source: fwlog::packet::TimeSource::Local,
            },
        );
        w.write(p.timestamp.sec, p.timestamp.nsec / 1000, r)
            .unwrap();
    }
    eprintln!(
        "recorded {} packets into {}",
        records.len(),
        sample_path().display()
    );
}

#[test]
fn committed_sample_has_what_the_readme_promises() {
    let f = std::fs::File::open(sample_path()).expect("tests/data/sample.pcap is committed");
    let mut seen = std::collections::BTreeSet::new();
    let mut n = 0;
    read_file(f, |rec| {
        let p = to_packet(rec);
        assert!(p.damage.is_none(), "{:?}", p.damage);
        n += 1;
        let prefix = String::from_utf8_lossy(p.prefix.unwrap_or_default()).into_owned();
        let iface = p
            .indev
            .or(p.outdev)
            .and_then(|i| i.name)
            .map(|n| n.to_vec());
        assert_eq!(
            iface.as_deref(),
            Some(&b"lo"[..]),
            "interface names are recorded"
        );
        let fam = if p.family == 10 { "v6" } else { "v4" };
        let proto = match (p.family, p.payload.get(9), p.payload.get(6)) {
            (2, Some(&x), _) => x,
            (10, _, Some(&x)) => x,
            _ => 0,
        };
        seen.insert(format!("{prefix}{fam}/{proto}"));
        true
    })
    .expect("sample reads");
    for want in [
        "fw-in v4/6",
        "fw-out v4/6",
        "fw-in v4/17",
        "fw-in v4/1",
        "fw-out v6/6",
        "fw-in v6/17",
        "fw-out v6/58",
    ] {
        assert!(seen.contains(want), "{want} missing from {seen:?}");
    }
    assert!(n >= 20, "{n} packets");
}
