//! `--output sqlite:PATH` end to end: capture files and a live `fwlog run` into SQLite, checked
//! with the `sqlite3` shell and with a second connection; exactly once across kill -9; hostile
//! bytes; a newer schema; a refused row; a locked database.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fwlog::pcap::NflogPcapWriter;
use support::crash;
use support::daemon::{send_udp, wait_for, RunArgs};
use support::netns::NetNs;
use support::packets::udp_record;

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
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&db).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640, "packet logs are not world-readable");
    assert_eq!(sqlite3(&db, "SELECT version FROM schema_version"), "2");
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
        let rec = udp_record(i as u8, 1_700_000_000 + i as i64, 0, Some(1), prefix);
        w.write(1_700_000_000 + i as i64, 0, &rec).unwrap();
    }
}

#[test]
fn hostile_prefixes_and_names_are_stored_escaped_never_an_encoding_error() {
    use support::dns::{hostile_cases, Reply, Responder};
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
    sqlite3(&db, "UPDATE schema_version SET version = 3");
    let (code, _, err) = fwlog(&["read", "--no-dns", "-o", &target, SAMPLE]);
    assert_eq!(code, 73, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("schema version 3 is newer than this fwlog knows (2)"),
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

fn rule(ns: &NetNs, prefix: &str) {
    ns.output_rules(&[&format!(
        "udp dport 9999 counter log prefix \"{prefix} \" group 5"
    )]);
}

fn stored(db: &Path) -> u64 {
    count(
        db,
        "SELECT (SELECT count(*) FROM packets) + (SELECT coalesce(sum(count), 0) FROM losses)",
    )
}

/// No packet twice: one row per NFLOG global sequence number, and none per key twice.
fn assert_no_duplicates(db: &Path) {
    assert_eq!(
        count(db, "SELECT count(*) FROM packets"),
        count(db, "SELECT count(DISTINCT seq_global) FROM packets"),
        "a packet stored twice"
    );
    assert_no_duplicates_keyed(db);
}

/// No (host, stream, seq) key twice.
fn assert_no_duplicates_keyed(db: &Path) {
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM (SELECT 1 FROM packets GROUP BY host, stream, seq HAVING count(*) > 1)"
        ),
        0
    );
}

#[test]
fn run_stores_every_packet_once_rows_plus_losses_equal_the_nft_counter() {
    require_root!();
    let ns = NetNs::new("sqlrun");
    rule(&ns, "SQL");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fw.db");
    let target = format!("sqlite:{}", db.display());
    let args = RunArgs::new(dir.path())
        .group(5)
        .with(&["--retain", "64MiB", "--host-name", "fw1"])
        .output_to(&target);
    let spool = args.spool();
    let d = args.start(&ns);
    send_udp(&ns, 9999, 0..3000);
    let sent = ns.counter();
    assert_eq!(sent, 3000);
    wait_for("every packet stored", Duration::from_secs(30), || {
        stored(&db) >= sent
    });
    assert_eq!(d.stop(), 0);
    assert_eq!(stored(&db), sent);
    assert_eq!(count(&db, "SELECT count(*) FROM packets"), sent);
    assert_no_duplicates(&db);
    let stream = std::fs::read_to_string(spool.join("fwlog.stream")).unwrap();
    assert_eq!(
        sqlite3(&db, "SELECT DISTINCT host || ' ' || stream FROM packets"),
        format!("fw1 {}", stream.trim())
    );
    assert_eq!(sqlite3(&db, "SELECT DISTINCT prefix FROM packets"), "SQL ");

    // A restart keeps the stream; the kernel logged nothing meanwhile, so nothing is lost.
    let d = args.start(&ns);
    send_udp(&ns, 9999, 3000..3100);
    wait_for("the new packets", Duration::from_secs(30), || {
        stored(&db) >= sent + 100
    });
    assert_eq!(d.stop(), 0);
    assert_eq!(count(&db, "SELECT count(DISTINCT stream) FROM packets"), 1);
    assert_eq!(stored(&db), ns.counter());

    // Replaying the kept spool into the same database adds nothing: same keys.
    let (code, _, err) = fwlog(&[
        "replay",
        "--spool",
        spool.to_str().unwrap(),
        "--no-dns",
        "--host-name",
        "fw1",
        "-o",
        &target,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(stored(&db), ns.counter());
    assert_no_duplicates(&db);
}

#[test]
fn a_locked_database_makes_fwlog_wait_and_keep_spooling_and_readers_never_block_it() {
    require_root!();
    let ns = NetNs::new("sqllock");
    rule(&ns, "LOCK");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fw.db");
    let target = format!("sqlite:{}", db.display());
    let args = RunArgs::new(dir.path()).group(5).output_to(target);
    let spool = args.spool();
    let d = args.start(&ns);

    // Another writer holds the lock for 4 s: fwlog says so once, keeps spooling, catches up.
    let writer = rusqlite::Connection::open(&db).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    send_udp(&ns, 9999, 0..500);
    wait_for("the lock to be reported", Duration::from_secs(10), || {
        d.stderr_text().contains("database is locked")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(&db, "SELECT count(*) FROM packets"), 0);
    let pending = fwlog_spool::ReadOnlySpool::open(&spool)
        .unwrap()
        .records()
        .filter(|r| r.as_ref().is_ok_and(|r| !r.acked))
        .count();
    assert_eq!(pending, 500, "the packets wait in the spool");
    writer.execute_batch("ROLLBACK").unwrap();
    wait_for("the backlog stored", Duration::from_secs(30), || {
        stored(&db) >= 500
    });
    let err = d.stderr_text();
    assert_eq!(err.matches("database is locked").count(), 1, "{err}");
    assert!(err.contains("works again"), "{err}");

    // A reader holding a read transaction open does not stop fwlog (WAL).
    let reader = rusqlite::Connection::open(&db).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let seen: i64 = reader
        .query_row("SELECT count(*) FROM packets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seen, 500);
    send_udp(&ns, 9999, 500..800);
    wait_for(
        "rows stored beside the reader",
        Duration::from_secs(30),
        || stored(&db) >= 800,
    );
    let still: i64 = reader
        .query_row("SELECT count(*) FROM packets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(still, 500, "the reader's snapshot is stable");
    reader.execute_batch("COMMIT").unwrap();
    assert_eq!(d.stop(), 0);
    assert_eq!(stored(&db), ns.counter());
    assert_no_duplicates(&db);
}

#[test]
fn kill_9_during_a_flood_every_seq_global_is_one_row_or_a_loss() {
    require_root!();
    let rounds = crash::rounds(12);
    let mut rng = crash::seeded("sql crash test", rounds);
    let ns = NetNs::new("sqlcrash");
    rule(&ns, "FLOOD");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fw.db");
    let target = format!("sqlite:{}", db.display());
    let args = RunArgs::new(dir.path())
        .group(5)
        .with(&["--segment-size", "64KiB", "--db-payload"])
        .output_to(target);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let sender = s.spawn(|| crash::flood(&ns, &stop));
        for round in 0..rounds {
            let d = args.spawn(&ns);
            std::thread::sleep(crash::kill_delay(&mut rng, round));
            d.kill9();
        }
        let d = args.start(&ns);
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        sender.join().unwrap();
        crash::wait_settled(
            "the rows to settle",
            Duration::from_secs(60),
            crash::QUIET,
            || stored(&db),
        );
        assert_eq!(d.stop(), 0);
    });
    let left = crash::unacked(&args.spool());
    assert_eq!(left, 0, "unacknowledged records left in the spool");
    assert_no_duplicates_keyed(&db);
    crash::assert_rows_once(|q| count(&db, q), (rounds as u64 + 1) * 20);

    let c = rusqlite::Connection::open(&db).unwrap();
    let rows: BTreeSet<u64> = c
        .prepare("SELECT seq_global FROM packets WHERE seq_global IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let gaps: Vec<(u64, u64)> = c
        .prepare("SELECT seq_global_first, seq_global_last FROM losses WHERE seq_global_first IS NOT NULL")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    crash::assert_accounted(&rows, &gaps, "a row");
    let total = ns.counter();
    eprintln!(
        "sql crash test: nft counted {total}, {} rows, {} loss rows covering {} packets, {rounds} kills",
        rows.len(),
        gaps.len(),
        count(&db, "SELECT coalesce(sum(count), 0) FROM losses")
    );
    assert!(rows.len() as u64 > total / 4, "most packets were stored");
}

#[test]
fn db_retain_deletes_rows_older_than_the_duration() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fw.db");
    let target = format!("sqlite:{}", db.display());
    // Packets from November 2023: ten thousand days keep them, one hour does not.
    let pcap = dir.path().join("old.pcap");
    hostile_pcap(&pcap, 50, b"OLD ");
    let file = pcap.to_str().unwrap();
    let (code, _, err) = fwlog(&[
        "read",
        "--no-dns",
        "--db-retain",
        "10000d",
        "-o",
        &target,
        file,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&db, "SELECT count(*) FROM packets"), 50);
    // One fresh packet with one hour's retention: its commit deletes every old row (and the
    // new one stays). One packet is one commit, so the outcome does not hang on how a run of
    // many packets happens to be cut into batches (retention looks at most once a minute).
    let fresh = dir.path().join("fresh.pcap");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    {
        let mut w = NflogPcapWriter::new(std::fs::File::create(&fresh).unwrap()).unwrap();
        w.write(now, 0, &udp_record(1, now, 0, Some(1), b"NEW "))
            .unwrap();
    }
    let fresh = fresh.to_str().unwrap();
    let (code, _, err) = fwlog(&[
        "read",
        "--no-dns",
        "--db-retain",
        "1h",
        "-o",
        &target,
        fresh,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&db, "SELECT count(*) FROM packets"), 1);
    assert_eq!(
        count(&db, "SELECT count(*) FROM packets WHERE prefix = 'NEW '"),
        1
    );
    let (code, _, err) = fwlog(&[
        "read",
        "--no-dns",
        "--db-retain",
        "soon",
        "-o",
        &target,
        file,
    ]);
    assert_eq!(code, 64, "{err}");
}

#[test]
fn a_full_disk_keeps_the_packets_spooled_until_there_is_room() {
    require_root!();
    let ns = NetNs::new("sqlfull");
    rule(&ns, "FULL");
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    let _mount = support::tmpfs::Tmpfs::mount(&small, "4m");
    let db = small.join("fw.db");
    let target = format!("sqlite:{}", db.display());
    let d = RunArgs::new(dir.path())
        .group(5)
        .output_to(target)
        .start(&ns);
    send_udp(&ns, 9999, 0..200);
    wait_for("the first rows", Duration::from_secs(30), || {
        stored(&db) >= 200
    });
    // Fill the file system to the last byte.
    let filler = small.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.write_all(&[0]);
    }
    send_udp(&ns, 9999, 200..5200);
    wait_for(
        "the full disk to be reported",
        Duration::from_secs(30),
        || d.stderr_text().contains("database or disk is full"),
    );
    assert!(stored(&db) < 5200);
    std::fs::remove_file(&filler).unwrap();
    wait_for("the backlog stored", Duration::from_secs(60), || {
        stored(&db) >= 5200
    });
    let err = d.stderr_text();
    assert!(err.contains("works again"), "{err}");
    assert_eq!(d.stop(), 0);
    assert_eq!(stored(&db), ns.counter());
    assert_eq!(count(&db, "SELECT coalesce(sum(count), 0) FROM losses"), 0);
    assert_no_duplicates(&db);
}
