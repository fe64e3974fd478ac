//! `--output sqlite:PATH` end to end: capture files and a live `fwlog run` into SQLite, checked
//! with the `sqlite3` shell and with a second connection; exactly once across kill -9; hostile
//! bytes; a newer schema; a refused row; a locked database.

mod dns_support;
mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fwlog::nflog::attr::encode_packet;
use fwlog::packet::{family, Packet, TimeSource, Timestamp};
use fwlog::pcap::NflogPcapWriter;
use support::daemon::{send_udp, wait_for, Daemon};
use support::netns::NetNs;

fn fwlog(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(support::fwlog_bin())
        .args(args)
        .output()
        .expect("run fwlog");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Run one query with the `sqlite3` shell (a reader that is not fwlog); returns its output.
fn sqlite3(db: &Path, sql: &str) -> String {
    support::require_tool("sqlite3");
    let o = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    assert!(
        o.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .trim_end_matches('\n')
        .to_string()
}

fn count(db: &Path, sql: &str) -> u64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as u64
}

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sample.pcap");

#[test]
fn a_capture_file_goes_into_sqlite_and_the_sqlite3_shell_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fw.db");
    let target = format!("sqlite:{}", db.display());
    let (code, _, err) = fwlog(&[
        "read",
        "--no-dns",
        "--host-name",
        "web1",
        "-o",
        &target,
        SAMPLE,
    ]);
    assert_eq!(code, 0, "{err}");
    // The same capture as JSON: one packet row per JSON packet, field by field.
    let (code, json, _) = fwlog(&["read", "--no-dns", "--format", "json", SAMPLE]);
    assert_eq!(code, 0);
    let js: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|o: &serde_json::Value| o["event"] == "packet")
        .collect();
    assert_eq!(
        sqlite3(&db, "SELECT count(*) FROM packets"),
        js.len().to_string()
    );
    assert_eq!(sqlite3(&db, "PRAGMA journal_mode"), "wal");
    assert_eq!(sqlite3(&db, "SELECT version FROM schema_version"), "1");
    assert_eq!(
        sqlite3(
            &db,
            "SELECT DISTINCT host || ' ' || length(stream) FROM packets"
        ),
        "web1 32"
    );
    let rows = sqlite3(
        &db,
        "SELECT seq_global, src, dst, sport, dport, prefix FROM packets_text ORDER BY seq",
    );
    for (row, j) in rows.lines().zip(&js) {
        let f: Vec<&str> = row.split('|').collect();
        assert_eq!(f[0], j["seq_global"].to_string(), "{row}");
        let port = |v: &serde_json::Value| v.as_u64().map_or(String::new(), |p| p.to_string());
        // The view writes IPv6 uncompressed: compare addresses, not spellings.
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(ip(f[1]), ip(j["ip"]["src"].as_str().unwrap()), "{row}");
        assert_eq!(ip(f[2]), ip(j["ip"]["dst"].as_str().unwrap()), "{row}");
        assert_eq!(f[3], port(&j["transport"]["src_port"]), "{row}");
        assert_eq!(f[4], port(&j["transport"]["dst_port"]), "{row}");
        assert_eq!(f[5], j["prefix"].as_str().unwrap(), "{row}");
    }
    // The indexes serve the queries the man page shows.
    let plan = sqlite3(
        &db,
        "EXPLAIN QUERY PLAN SELECT src FROM packets WHERE dport = 8080 ORDER BY time DESC LIMIT 10000",
    );
    assert!(plan.contains("packets_dport_time"), "{plan}");
    let plan = sqlite3(
        &db,
        "EXPLAIN QUERY PLAN SELECT count(*) FROM packets WHERE src = x'00000000000000000000ffff7f000001' AND time > 0",
    );
    assert!(plan.contains("packets_src_time"), "{plan}");
    // Addresses compare as addresses: 127.0.0.0/8 is one range of keys.
    let v4 = js.iter().filter(|j| j["family"] == "ipv4").count();
    assert!(v4 > 0);
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*) FROM packets WHERE src BETWEEN x'00000000000000000000ffff7f000000' AND x'00000000000000000000ffff7fffffff'"
        ),
        v4.to_string()
    );
    // Each read of a capture is a stream of its own.
    let (code, _, _) = fwlog(&["read", "--no-dns", "-o", &target, SAMPLE]);
    assert_eq!(code, 0);
    assert_eq!(count(&db, "SELECT count(DISTINCT stream) FROM packets"), 2);
}

/// A pcap of `n` UDP packets from 192.0.2.i, each with `prefix`.
fn hostile_pcap(path: &Path, n: usize, prefix: &[u8]) {
    let mut w = NflogPcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for i in 0..n {
        let mut payload = vec![0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 17, 0, 0];
        payload.extend_from_slice(&[192, 0, 2, i as u8, 192, 0, 2, 250]);
        payload.extend_from_slice(&[0x04, 0xd2, 0, 53, 0, 12, 0, 0]);
        payload.extend_from_slice(b"test");
        let mut p = Packet::new(
            &payload,
            Timestamp {
                sec: 1_700_000_000 + i as i64,
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
        w.write(1_700_000_000 + i as i64, 0, &rec).unwrap();
    }
}

#[test]
fn hostile_prefixes_and_names_are_stored_escaped_never_an_encoding_error() {
    use dns_support::{hostile_cases, Reply, Responder};
    let n = hostile_cases().len();
    let resp = Responder::start(Duration::ZERO, |q| {
        let i: usize = std::str::from_utf8(&q.labels[0])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(999);
        match hostile_cases().get(i) {
            Some(name) => Reply::Ptr(vec![name.clone()]),
            None => Reply::NxDomain,
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("hostile.pcap");
    // Every byte a prefix can hold (NFLOG ends it at the first NUL).
    let prefix: Vec<u8> = (1u8..=255).collect();
    hostile_pcap(&pcap, n, &prefix);
    let db = dir.path().join("h.db");
    let server = resp.addr.to_string();
    let (code, _, err) = fwlog(&[
        "read",
        "--dns-server",
        &server,
        "--dns-timeout",
        "5s",
        "-o",
        &format!("sqlite:{}", db.display()),
        pcap.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&db, "SELECT count(*) FROM packets"), n as u64);
    let c = rusqlite::Connection::open(&db).unwrap();
    let mut st = c
        .prepare("SELECT prefix, typeof(prefix), src_name FROM packets ORDER BY seq")
        .unwrap();
    let rows: Vec<(String, String, Option<String>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut expected = String::new();
    for b in prefix {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            expected.push(b as char);
        } else {
            expected.push_str(&format!("\\x{b:02x}"));
        }
    }
    let mut named = 0;
    for (p, ty, name) in &rows {
        assert_eq!(ty, "text");
        assert_eq!(p, &expected);
        if let Some(name) = name {
            named += 1;
            assert!(
                name.bytes().all(|b| (0x21..0x7f).contains(&b)),
                "name with a control or space byte: {name:?}"
            );
        }
    }
    assert!(named > 0, "the hostile names were resolved and stored");
}

#[test]
fn a_newer_schema_is_a_clear_error_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fw.db");
    let target = format!("sqlite:{}", db.display());
    assert_eq!(fwlog(&["read", "--no-dns", "-o", &target, SAMPLE]).0, 0);
    let before = count(&db, "SELECT count(*) FROM packets");
    sqlite3(&db, "UPDATE schema_version SET version = 2");
    let (code, _, err) = fwlog(&["read", "--no-dns", "-o", &target, SAMPLE]);
    assert_eq!(code, 73, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("schema version 2 is newer than this fwlog knows (1)"),
        "{err}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM packets"), before);
}

#[test]
fn a_row_the_database_refuses_becomes_a_loss_and_the_batch_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fw.db");
    let target = format!("sqlite:{}", db.display());
    // Create the schema, then a site rule that refuses one packet.
    let empty = dir.path().join("empty.pcap");
    hostile_pcap(&empty, 0, b"x");
    assert_eq!(
        fwlog(&["read", "--no-dns", "-o", &target, empty.to_str().unwrap()]).0,
        0
    );
    sqlite3(
        &db,
        "CREATE TRIGGER no_seq3 BEFORE INSERT ON packets WHEN NEW.seq = 3 \
         BEGIN SELECT RAISE(ABORT, 'site rule: seq 3 not wanted'); END",
    );
    let (code, _, err) = fwlog(&["read", "--no-dns", "-o", &target, SAMPLE]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("refused 1 row"), "{err}");
    let total = fwlog(&["read", "--no-dns", "--format", "json", SAMPLE])
        .1
        .lines()
        .filter(|l| l.contains("\"event\":\"packet\""))
        .count() as u64;
    assert_eq!(count(&db, "SELECT count(*) FROM packets"), total - 1);
    assert_eq!(
        sqlite3(&db, "SELECT seq, count, reason FROM losses"),
        "3|1|refused: site rule: seq 3 not wanted"
    );
}

#[test]
fn a_symlink_at_the_database_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.db");
    std::fs::write(&real, b"").unwrap();
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let (code, _, err) = fwlog(&[
        "read",
        "--no-dns",
        "-o",
        &format!("sqlite:{}", link.display()),
        SAMPLE,
    ]);
    assert_eq!(code, 73, "{err}");
    assert_eq!(std::fs::metadata(&real).unwrap().len(), 0);
}
