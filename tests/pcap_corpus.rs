//! The public test-suite captures in ../shared/corpus (optional: skipped when absent) go
//! through the pcap reader and the NFLOG walker without a panic, and the files libpcap refuses
//! are refused with the right one-line reason.

use std::path::{Path, PathBuf};

use fwlog::pcap::{read_file, to_packet, ReadError};

fn corpus() -> Option<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = here.join("../shared/corpus");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIP: {} is absent (optional corpus)", dir.display());
        None
    }
}

fn read(path: &Path) -> (Result<u64, ReadError>, Vec<String>) {
    let f = std::fs::File::open(path).expect("open corpus file");
    let mut damage = Vec::new();
    let r = read_file(f, |rec| {
        let p = to_packet(rec);
        if let Some(d) = p.damage {
            damage.push(d);
        }
        true
    });
    (r.map(|s| s.records), damage)
}

fn all_pcaps(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read corpus dir") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            all_pcaps(&p, out);
        } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
            out.push(p);
        }
    }
}

#[test]
fn every_corpus_capture_reads_or_fails_with_one_line() {
    let Some(dir) = corpus() else { return };
    let mut files = Vec::new();
    all_pcaps(&dir, &mut files);
    assert!(files.len() > 40, "corpus has {} pcaps", files.len());
    for f in files {
        let (r, _) = read(&f);
        if let Err(e) = r {
            let msg = e.to_string();
            assert!(
                !msg.contains('\n') && !msg.is_empty(),
                "{}: {msg}",
                f.display()
            );
        }
    }
}

#[test]
fn refused_files_say_why() {
    let Some(dir) = corpus() else { return };
    let lib = dir.join("pcap/libpcap");
    let (r, _) = read(&lib.join("linktype-reserved-field-not-zero.pcap"));
    assert!(
        matches!(r, Err(ReadError::LinkType(_, " (reserved bits set)"))),
        "{r:?}"
    );
    let (r, _) = read(&lib.join("pcap-invalid-version-1.pcap"));
    assert!(matches!(r, Err(ReadError::Version(1, 4))), "{r:?}");
    let (r, _) = read(&lib.join("pcap-invalid-version-2.pcap"));
    assert!(matches!(r, Err(ReadError::Version(2, 5))), "{r:?}");
}

#[test]
fn nflog_captures_and_fcs_link_types() {
    let Some(dir) = corpus() else { return };
    let (r, damage) = read(&dir.join("nflog/zeek-nflog-http.pcap"));
    assert_eq!(r.unwrap(), 13);
    assert!(damage.is_empty(), "{damage:?}");
    // zeek's synthetic bad TLV length: a marked partial record, not an error.
    let (r, damage) = read(&dir.join("nflog/zeek-nflog-bad-tlv-len.pcap"));
    assert_eq!(r.unwrap(), 1);
    assert_eq!(damage.len(), 1);
    assert!(
        damage[0].contains("claims 256 bytes, 8 remain"),
        "{damage:?}"
    );
    // Link type 0x30000001: FCS bits set over Ethernet.
    let (r, _) = read(&dir.join("pcap/tcpdump/tcp_header_heapoverflow.pcap"));
    assert_eq!(r.unwrap(), 1);
    // Nanosecond pcap, Linux cooked capture.
    let (r, _) = read(&dir.join("pcap/tcpdump/tcp-handshake-nano.pcap"));
    assert_eq!(r.unwrap(), 3);
    // Big-endian pcap.
    let (r, _) = read(&dir.join("pcap/tcpdump/pptp.pcap"));
    assert_eq!(r.unwrap(), 23);
}

#[test]
fn nflog_metadata_matches_tcpdump_ground_truth() {
    let Some(dir) = corpus() else { return };
    // tcpdump's nflog_print-vvv.out: "HOOK:OUT Prefix:out-icmp oif:10 MARK:0x2 UID:0 GID:100".
    let f = std::fs::File::open(dir.join("nflog/tcpdump-nflog_print.pcap")).unwrap();
    let mut rows = Vec::new();
    read_file(f, |rec| {
        let p = to_packet(rec);
        rows.push((
            p.group,
            p.hook,
            p.prefix.map(|x| String::from_utf8_lossy(x).into_owned()),
            p.mark,
            p.uid,
            p.gid,
            p.outdev.map(|i| i.index),
        ));
        true
    })
    .unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r.0 == 2));
    let out_icmp = rows
        .iter()
        .find(|r| r.2.as_deref() == Some("out-icmp"))
        .expect("out-icmp record");
    assert_eq!(
        (out_icmp.1, out_icmp.3, out_icmp.4, out_icmp.5, out_icmp.6),
        (Some(3), 2, Some(0), Some(100), Some(10))
    );
}
