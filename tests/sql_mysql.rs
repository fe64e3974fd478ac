//! `--output mysql://...` against a real MariaDB server that each test starts
//! ([`support::mariadb`]: a temporary directory, a loopback port inside the test's network
//! namespace, `mariadbd --user=mysql`); never the machine's own server.

mod support;

use std::path::Path;
use std::time::Duration;

use fwlog::pcap::NflogPcapWriter;
use support::daemon::{send_udp, wait_for, Daemon};
use support::mariadb::{MariaDb, PASSWORD};
use support::netns::NetNs;
use support::packets::udp_record;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sample.pcap");

fn nft_counter(ns: &NetNs) -> u64 {
    let o = ns
        .command("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.split("counter packets ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {s}"))
}

fn rule(ns: &NetNs) {
    ns.nft("table inet t {\n chain o {\n  type filter hook output priority 0;\n  udp dport 9999 counter log prefix \"MY \" group 5\n }\n}\n");
}

fn stored(db: &MariaDb) -> u64 {
    db.count("SELECT (SELECT count(*) FROM packets) + (SELECT coalesce(sum(count), 0) FROM losses)")
}

fn has_packets(db: &MariaDb) -> bool {
    db.query("SHOW TABLES LIKE 'schema_version'") == "schema_version"
}

fn pending(spool: &Path) -> usize {
    fwlog_spool::ReadOnlySpool::open(spool)
        .unwrap()
        .records()
        .filter(|r| r.as_ref().is_ok_and(|r| !r.acked))
        .count()
}

/// `fwlog ARGS` inside `ns`: (status, stdout, stderr).
fn fwlog(ns: &NetNs, args: &[&str]) -> (i32, String, String) {
    let o = ns
        .command(support::fwlog_bin())
        .args(args)
        .env_remove("MYSQL_PWD")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn unreachable_at_start_then_every_packet_once_equal_to_the_nft_counter_and_replay_adds_nothing() {
    require_root!();
    let ns = NetNs::new("myrun");
    rule(&ns);
    let mut db = MariaDb::init(&ns, 53306);
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let url = db.url("fwtest", PASSWORD);
    let args = [
        "--group",
        "5",
        "--no-dns",
        "--spool",
        spool.to_str().unwrap(),
        "--retain",
        "64MiB",
        "--host-name",
        "fw1",
        "--output",
        &url,
    ];
    // No server yet: fwlog starts, spools, says so once.
    let d = Daemon::start(&ns, dir.path(), &args);
    send_udp(&ns, 9999, 0..1000);
    wait_for("the outage to be reported", Duration::from_secs(20), || {
        d.stderr_text()
            .contains("cannot write to mysql://fwtest@127.0.0.1:53306/fwlog")
    });
    assert!(
        !d.stderr_text().contains(PASSWORD),
        "the password is never shown"
    );
    db.start();
    wait_for("the backlog stored", Duration::from_secs(60), || {
        has_packets(&db) && stored(&db) >= 1000
    });
    send_udp(&ns, 9999, 1000..3000);
    wait_for("every packet stored", Duration::from_secs(60), || {
        stored(&db) >= 3000
    });
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0);
    assert_eq!(
        err.matches("cannot write to").count(),
        1,
        "said once: {err}"
    );
    assert!(err.contains("works again"), "and again on recovery: {err}");
    assert_eq!(stored(&db), nft_counter(&ns));
    assert_eq!(db.count("SELECT count(*) FROM packets"), 3000);
    assert_eq!(
        db.count("SELECT count(DISTINCT seq_global) FROM packets"),
        3000
    );
    // Addresses are 16 bytes in address order: a range of them is a range of keys.
    assert_eq!(
        db.count(
            "SELECT count(*) FROM packets WHERE src BETWEEN INET6_ATON('::ffff:127.0.0.0') \
             AND INET6_ATON('::ffff:127.255.255.255')"
        ),
        3000
    );
    assert_eq!(
        db.query("SELECT DISTINCT CONCAT(host, ' ', prefix, '|', INET6_NTOA(dst)) FROM packets"),
        "fw1 MY |::ffff:127.0.0.1"
    );
    // Replaying the kept spool adds nothing: same keys.
    let (code, _, err) = fwlog(
        &ns,
        &[
            "replay",
            "--spool",
            spool.to_str().unwrap(),
            "--no-dns",
            "--host-name",
            "fw1",
            "-o",
            &url,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(db.count("SELECT count(*) FROM packets"), 3000);
    // The three queries use the indexes.
    for (q, index) in [
        (
            "SELECT src FROM packets WHERE dport = 9999 ORDER BY time DESC LIMIT 10000",
            "packets_dport_time",
        ),
        (
            "SELECT DISTINCT src FROM packets WHERE time > UTC_TIMESTAMP(6) - INTERVAL 10 MINUTE",
            "packets_time",
        ),
        (
            "SELECT count(*) FROM packets WHERE src = INET6_ATON('::ffff:127.0.0.1') \
             AND time > UTC_TIMESTAMP(6) - INTERVAL 1 DAY",
            "packets_src_time",
        ),
    ] {
        let plan = db.query(&format!("EXPLAIN {q}"));
        assert!(plan.contains(index), "{q}: {plan}");
    }
}

#[test]
fn a_wrong_password_is_one_clear_line_and_the_packets_stay_spooled() {
    require_root!();
    let ns = NetNs::new("mypw");
    rule(&ns);
    let mut db = MariaDb::init(&ns, 53307);
    db.start();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let url = db.url("fwtest", "wrong-password");
    let args = [
        "--group",
        "5",
        "--no-dns",
        "--spool",
        spool.to_str().unwrap(),
        "--output",
        &url,
    ];
    let d = Daemon::start(&ns, dir.path(), &args);
    send_udp(&ns, 9999, 0..300);
    wait_for("the refusal", Duration::from_secs(20), || {
        d.stderr_text().contains("Access denied")
    });
    std::thread::sleep(Duration::from_secs(2));
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("Access denied"))
        .collect();
    assert_eq!(lines.len(), 1, "one clear line: {err}");
    assert!(!err.contains("wrong-password"), "never the password: {err}");
    assert_eq!(pending(&spool), 300, "the packets stay in the spool");
    assert!(!has_packets(&db));
}

#[test]
fn kill_9_and_a_server_crash_during_a_flood_every_seq_global_is_one_row_or_a_loss() {
    require_root!();
    let ns = NetNs::new("mycrash");
    rule(&ns);
    let mut db = MariaDb::init(&ns, 53308);
    db.start();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let url = db.url("fwtest", PASSWORD);
    let argv = [
        "--group",
        "5",
        "--no-dns",
        "--spool",
        spool.to_str().unwrap(),
        "--segment-size",
        "64KiB",
        "--db-payload",
        "--output",
        &url,
    ];
    let seed = std::process::id() as u64;
    eprintln!("mysql crash test: seed {seed}");
    let mut rng = support::rng::Lcg(seed);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let sender = s.spawn(|| {
            ns.enter(|| {
                let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for _ in 0..20 {
                        let _ = sock.send_to(format!("pkt-{n}").as_bytes(), "127.0.0.1:9999");
                        n += 1;
                    }
                    std::thread::sleep(Duration::from_micros(500));
                }
            })
        });
        for round in 0..10 {
            let d = Daemon::spawn(&ns, dir.path(), &argv);
            if round == 5 {
                std::thread::sleep(Duration::from_millis(300));
                db.kill9();
                db.start();
            }
            std::thread::sleep(Duration::from_millis(100 + rng.next(500)));
            d.kill9();
        }
        let d = Daemon::start(&ns, dir.path(), &argv);
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        sender.join().unwrap();
        let mut last = 0;
        wait_for("the rows to settle", Duration::from_secs(120), || {
            std::thread::sleep(Duration::from_millis(700));
            let n = stored(&db);
            let settled = n == last && n > 0 && pending(&spool) == 0;
            last = n;
            settled
        });
        assert_eq!(d.stop(), 0);
    });
    // Eleven starts.
    let (rows, unnumbered) = support::crash::assert_rows_once(|q| db.count(q), 11 * 20);
    let (lo, hi) = (
        db.count("SELECT min(seq_global) FROM packets"),
        db.count("SELECT max(seq_global) FROM packets"),
    );
    let missing = db.count(&format!(
        "WITH RECURSIVE g(n) AS (SELECT {lo} UNION ALL SELECT n + 1 FROM g WHERE n < {hi}) \
         SELECT count(*) FROM g WHERE NOT EXISTS (SELECT 1 FROM packets WHERE seq_global = n) \
         AND NOT EXISTS (SELECT 1 FROM losses WHERE n BETWEEN seq_global_first AND seq_global_last)"
    ));
    assert_eq!(missing, 0, "seq_global values neither a row nor in losses");
    assert_eq!(
        pending(&spool),
        0,
        "unacknowledged records left in the spool"
    );
    eprintln!(
        "mysql crash test: nft counted {}, {rows} rows ({unnumbered} without seq_global), {} lost in {} loss rows",
        nft_counter(&ns),
        db.count("SELECT coalesce(sum(count), 0) FROM losses"),
        db.count("SELECT count(*) FROM losses")
    );
}

/// A pcap of `n` UDP packets from 192.0.2.i, each with `prefix`, one a second from 2023-11-14.
fn prefix_pcap(path: &Path, n: usize, prefix: &[u8]) {
    timed_pcap(path, n, prefix, 1_700_000_000);
}

/// [`prefix_pcap`] from `base` (seconds since the epoch).
fn timed_pcap(path: &Path, n: usize, prefix: &[u8], base: i64) {
    let mut w = NflogPcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for i in 0..n {
        let rec = udp_record(i as u8, base + i as i64, 5000, Some(1), prefix);
        w.write(base + i as i64, 0, &rec).unwrap();
    }
}

#[test]
fn hostile_prefix_bytes_are_stored_escaped_and_the_columns_are_the_other_engines() {
    require_root!();
    let ns = NetNs::new("myhostile");
    let mut db = MariaDb::init(&ns, 53309);
    db.start();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("hostile.pcap");
    let prefix: Vec<u8> = (1u8..=255).collect();
    prefix_pcap(&pcap, 20, &prefix);
    let url = format!("mariadb://fwtest:{PASSWORD}@127.0.0.1:53309/fwlog");
    let (code, _, err) = fwlog(
        &ns,
        &["read", "--no-dns", "-o", &url, pcap.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(db.count("SELECT count(*) FROM packets"), 20);
    let mut expected = String::new();
    for b in prefix {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            expected.push(b as char);
        } else {
            expected.push_str(&format!("\\x{b:02x}"));
        }
    }
    // HEX() shows the stored bytes exactly (the client's -B output would escape them again).
    let stored = db.query("SELECT DISTINCT HEX(prefix) FROM packets");
    let hex: String = expected.bytes().map(|b| format!("{b:02X}")).collect();
    assert_eq!(stored, hex);
    assert_eq!(
        db.query("SELECT CONCAT(time, ' ', INET6_NTOA(src), ' ', sport, ' ', dport) FROM packets WHERE seq = 3"),
        "2023-11-14 22:13:22.000005 ::ffff:192.0.2.2 1234 53"
    );
    // The same columns, in the same order, as SQLite's (and so PostgreSQL's).
    let cols = db.query(
        "SELECT GROUP_CONCAT(column_name ORDER BY ordinal_position) FROM \
         information_schema.columns WHERE table_schema = 'fwlog' AND table_name = 'packets'",
    );
    let sqlite_db = dir.path().join("s.db");
    let (code, _, err) = fwlog(
        &ns,
        &["db", "init", &format!("sqlite:{}", sqlite_db.display())],
    );
    assert_eq!(code, 0, "{err}");
    let o = std::process::Command::new("sqlite3")
        .arg(&sqlite_db)
        .arg("SELECT group_concat(name) FROM pragma_table_info('packets')")
        .output()
        .unwrap();
    assert_eq!(cols, String::from_utf8_lossy(&o.stdout).trim());
    // An older schema (one column short, version 0) is upgraded in place, rows kept.
    db.query("ALTER TABLE packets DROP COLUMN dst_name; UPDATE schema_version SET version = 0");
    let (code, _, err) = fwlog(
        &ns,
        &["read", "--no-dns", "-o", &url, pcap.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(db.count("SELECT count(*) FROM packets"), 40);
    assert_eq!(
        db.count("SELECT count(*) FROM packets WHERE dst_name IS NULL"),
        40
    );
    assert_eq!(db.query("SELECT version FROM schema_version"), "1");
}

#[test]
fn db_init_lets_an_insert_select_role_write_and_a_select_only_role_gets_one_line() {
    require_root!();
    let ns = NetNs::new("myrole");
    let mut db = MariaDb::init(&ns, 53310);
    db.start();
    let owner = db.url("fwtest", PASSWORD);
    let (code, out, err) = fwlog(&ns, &["db", "init", &owner]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("schema version 1 ready"), "{out}");
    assert!(!out.contains(PASSWORD));
    let (code, _, err) = fwlog(&ns, &["db", "init", &owner]);
    assert_eq!(code, 0, "again: {err}");
    db.query(
        "CREATE USER 'writer'@'127.0.0.1' IDENTIFIED BY 'w-pass'; \
         GRANT SELECT ON fwlog.schema_version TO 'writer'@'127.0.0.1'; \
         GRANT INSERT, SELECT ON fwlog.packets TO 'writer'@'127.0.0.1'; \
         GRANT INSERT, SELECT ON fwlog.losses TO 'writer'@'127.0.0.1'; \
         CREATE USER 'reader'@'127.0.0.1' IDENTIFIED BY 'r-pass'; \
         GRANT SELECT ON fwlog.* TO 'reader'@'127.0.0.1'",
    );
    let writer = "mysql://writer@127.0.0.1:53310/fwlog";
    let o = ns
        .command(support::fwlog_bin())
        .args(["read", "--no-dns", "-o", writer, SAMPLE])
        .env("MYSQL_PWD", "w-pass")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let n = db.count("SELECT count(*) FROM packets");
    assert!(n > 5, "the sample has packets");
    // The same file again as the writer: a new stream (fwlog read), new rows; then replayed
    // keys are skipped without UPDATE or DELETE rights (checked by the kill -9 test's
    // replays as the owner).
    let (code, _, err) = fwlog(
        &ns,
        &[
            "read",
            "--no-dns",
            "-o",
            "mysql://writer:w-pass@127.0.0.1:53310/fwlog",
            SAMPLE,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(db.count("SELECT count(*) FROM packets"), 2 * n);
    let (code, _, err) = fwlog(
        &ns,
        &[
            "read",
            "--no-dns",
            "-o",
            "mysql://reader:r-pass@127.0.0.1:53310/fwlog",
            SAMPLE,
        ],
    );
    assert_eq!(code, 73, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("INSERT command denied"), "{err}");
    assert_eq!(db.count("SELECT count(*) FROM packets"), 2 * n);
    // A newer schema: one line, nothing written.
    db.query("UPDATE schema_version SET version = 99");
    let (code, _, err) = fwlog(&ns, &["read", "--no-dns", "-o", &owner, SAMPLE]);
    assert_eq!(code, 73, "{err}");
    assert!(err.contains("schema version 99 is newer"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(db.count("SELECT count(*) FROM packets"), 2 * n);
}

#[test]
fn a_row_a_site_check_or_trigger_refuses_becomes_a_loss_and_the_rest_is_stored() {
    require_root!();
    let ns = NetNs::new("myrefuse");
    let mut db = MariaDb::init(&ns, 53311);
    db.start();
    let url = db.url("fwtest", PASSWORD);
    let (code, _, err) = fwlog(&ns, &["read", "--no-dns", "-o", &url, SAMPLE]);
    assert_eq!(code, 0, "{err}");
    let n = db.count("SELECT count(*) FROM packets");
    assert!(n > 5);
    db.query(
        "DELIMITER //\nCREATE TRIGGER no_seq3 BEFORE INSERT ON packets FOR EACH ROW \
         IF NEW.seq = 3 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'site rule: seq 3 not wanted'; \
         END IF//\nDELIMITER ;",
    );
    // Not checked against the rows already there (which include seq 5).
    db.query("SET SESSION check_constraint_checks = 0; ALTER TABLE packets ADD CONSTRAINT no_seq5 CHECK (seq <> 5)");
    let (code, _, err) = fwlog(&ns, &["read", "--no-dns", "-o", &url, SAMPLE]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("refused 2 row(s)"), "{err}");
    assert!(err.contains("site rule: seq 3 not wanted"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(db.count("SELECT count(*) FROM packets"), 2 * n - 2);
    assert_eq!(
        db.query("SELECT GROUP_CONCAT(CONCAT(seq, '|', count, '|', reason) ORDER BY seq SEPARATOR ';') FROM losses"),
        "3|1|refused: site rule: seq 3 not wanted;5|1|refused: CONSTRAINT `no_seq5` failed for `fwlog`.`packets`"
    );
}

#[test]
fn a_duplicate_on_a_site_unique_index_is_a_refusal_not_a_stored_row_or_a_retry_loop() {
    require_root!();
    let ns = NetNs::new("mysiteuniq");
    let mut db = MariaDb::init(&ns, 53312);
    db.start();
    let url = db.url("fwtest", PASSWORD);
    let (code, _, err) = fwlog(&ns, &["db", "init", &url]);
    assert_eq!(code, 0, "{err}");
    db.query("ALTER TABLE packets ADD UNIQUE KEY site_u (seq, time)");
    let (code, _, err) = fwlog(&ns, &["read", "--no-dns", "-o", &url, SAMPLE]);
    assert_eq!(code, 0, "{err}");
    let n = db.count("SELECT count(*) FROM packets");
    assert!(n > 5);
    // The same file again is a new stream (fwlog read): fwlog's key is new, the site's is not.
    let (code, _, err) = fwlog(&ns, &["read", "--no-dns", "-o", &url, SAMPLE]);
    assert_eq!(code, 0, "{err}");
    let said: u64 = err
        .lines()
        .filter_map(|l| {
            l.split("refused ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(said, n, "every refusal counted on stderr: {err}");
    assert!(err.contains("for key 'site_u'"), "{err}");
    assert_eq!(db.count("SELECT count(*) FROM packets"), n);
    assert_eq!(
        db.count("SELECT count(*) FROM losses WHERE reason LIKE 'refused: Duplicate entry%'"),
        n
    );
}

#[test]
fn db_retain_deletes_rows_older_than_the_duration_and_keeps_the_rest() {
    require_root!();
    let ns = NetNs::new("myretain");
    let mut db = MariaDb::init(&ns, 53313);
    db.start();
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old.pcap"), dir.path().join("new.pcap"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    timed_pcap(&old, 30, b"OLD ", now - 10 * 86_400);
    timed_pcap(&new, 20, b"NEW ", now - 60);
    let url = db.url("fwtest", PASSWORD);
    let (code, _, err) = fwlog(
        &ns,
        &["read", "--no-dns", "-o", &url, old.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(db.count("SELECT count(*) FROM packets"), 30);
    let (code, _, err) = fwlog(
        &ns,
        &[
            "read",
            "--no-dns",
            "--db-retain",
            "2d",
            "-o",
            &url,
            new.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        db.query("SELECT GROUP_CONCAT(DISTINCT HEX(prefix)) FROM packets"),
        "4E455720"
    );
    assert_eq!(db.count("SELECT count(*) FROM packets"), 20);
}
