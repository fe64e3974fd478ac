//! `--output postgresql://...` against a real PostgreSQL server that each test starts (Debian's
//! `postgresql` package: initdb and pg_ctl as the `postgres` system user, which PostgreSQL
//! requires) in a temporary directory on a free loopback port; never the machine's own cluster.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::crash;
use support::daemon::{send_udp, wait_for, RunArgs};
use support::netns::NetNs;
use support::pg::{as_postgres, c_path, user_id, Pg, BIN, PASSWORD};
use support::pg_fleet::server_certs;

fn stored(pg: &Pg) -> u64 {
    pg.count("SELECT (SELECT count(*) FROM packets) + (SELECT coalesce(sum(count), 0) FROM losses)")
}

/// Start `args`, send `n` packets, wait for `refusal` in stderr, let fwlog retry for 2 s and
/// stop it; returns its stderr.
fn refused_run(ns: &NetNs, args: &RunArgs, n: u32, refusal: &str) -> String {
    let d = args.start(ns);
    send_udp(ns, 9999, 0..n);
    wait_for("the refusal", Duration::from_secs(20), || {
        d.stderr_text().contains(refusal)
    });
    std::thread::sleep(Duration::from_secs(2));
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0);
    err
}

fn rule(ns: &NetNs) {
    ns.output_rules(&["udp dport 9999 counter log prefix \"PG \" group 5"]);
}

#[test]
fn unreachable_at_start_then_every_packet_once_with_inet_columns_and_replay_adds_nothing() {
    require_root!();
    let ns = NetNs::new("pgrun");
    rule(&ns);
    let pg = Pg::init(&ns, 55432);
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url(PASSWORD);
    let args = RunArgs::new(dir.path())
        .group(5)
        .with(&["--retain", "64MiB", "--host-name", "fw1"])
        .output_to(&url);
    let spool = args.spool();
    // No server yet: fwlog starts, spools, says so once.
    let d = args.start(&ns);
    send_udp(&ns, 9999, 0..1000);
    wait_for("the outage to be reported", Duration::from_secs(20), || {
        d.stderr_text()
            .contains("cannot write to postgresql://fwtest@127.0.0.1:55432/postgres")
    });
    let err = d.stderr_text();
    assert!(
        !err.contains(PASSWORD),
        "the password is never shown: {err}"
    );
    pg.start();
    wait_for("the backlog stored", Duration::from_secs(60), || {
        pg.query("SELECT to_regclass('packets') IS NOT NULL") == "t" && stored(&pg) >= 1000
    });
    send_udp(&ns, 9999, 1000..3000);
    wait_for("every packet stored", Duration::from_secs(60), || {
        stored(&pg) >= 3000
    });
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0);
    assert_eq!(
        err.matches("cannot write to").count(),
        1,
        "said once: {err}"
    );
    assert!(err.contains("works again"), "and again on recovery: {err}");
    assert_eq!(stored(&pg), ns.counter());
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 3000);
    assert_eq!(
        pg.count("SELECT count(DISTINCT seq_global) FROM packets"),
        3000
    );
    assert_eq!(
        pg.count("SELECT count(*) FROM packets WHERE src << '127.0.0.0/8'"),
        3000
    );
    assert_eq!(
        pg.query("SELECT DISTINCT host || ' ' || prefix || '|' FROM packets"),
        "fw1 PG |"
    );
    // Replaying the kept spool adds nothing: same keys.
    let o = ns
        .command(support::fwlog_bin())
        .args(["replay", "--spool", spool.to_str().unwrap(), "--no-dns"])
        .args(["--host-name", "fw1", "-o", &url])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 3000);
}

#[test]
fn a_wrong_password_is_one_clear_line_and_the_packets_stay_spooled() {
    require_root!();
    let ns = NetNs::new("pgpw");
    rule(&ns);
    let pg = Pg::init(&ns, 55433);
    pg.start();
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url("wrong-password");
    let args = RunArgs::new(dir.path()).group(5).output_to(&url);
    let spool = args.spool();
    let err = refused_run(&ns, &args, 300, "password authentication failed");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("password")).collect();
    assert_eq!(lines.len(), 1, "one clear line: {err}");
    assert!(
        !err.contains("wrong-password"),
        "the password is never shown: {err}"
    );
    let pending = crash::unacked(&spool);
    assert_eq!(pending, 300, "the packets stay in the spool");
    assert_eq!(pg.query("SELECT to_regclass('packets') IS NULL"), "t");
}

impl Pg {
    /// Stop the server the hard way (a crash) and start it again.
    fn crash_and_restart(&self) {
        let _ = as_postgres(
            &self.ns,
            &[
                &format!("{BIN}/pg_ctl"),
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ],
        );
        self.start();
    }
}

#[test]
fn kill_9_and_a_server_crash_during_a_flood_every_seq_global_is_one_row_or_a_loss() {
    require_root!();
    let ns = NetNs::new("pgcrash");
    rule(&ns);
    let pg = Pg::init(&ns, 55434);
    pg.start();
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url(PASSWORD);
    let argv = RunArgs::new(dir.path())
        .group(5)
        .with(&["--segment-size", "64KiB", "--db-payload"])
        .output_to(&url);
    let spool = argv.spool();
    let seed = std::process::id() as u64;
    eprintln!("pg crash test: seed {seed}");
    let mut rng = support::rng::Lcg(seed);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let sender = s.spawn(|| crash::flood(&ns, &stop));
        for round in 0..10 {
            let d = argv.spawn(&ns);
            if round == 5 {
                std::thread::sleep(Duration::from_millis(300));
                pg.crash_and_restart();
            }
            std::thread::sleep(Duration::from_millis(100 + rng.next(500)));
            d.kill9();
        }
        let d = argv.start(&ns);
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        sender.join().unwrap();
        crash::wait_settled(
            "the rows to settle",
            Duration::from_secs(90),
            crash::QUIET,
            || stored(&pg),
        );
        assert_eq!(d.stop(), 0);
    });
    // Eleven starts.
    let (rows, unnumbered) = crash::assert_rows_once(|q| pg.count(q), 11 * 20);
    let missing = pg.count(
        "SELECT count(*) FROM generate_series((SELECT min(seq_global) FROM packets), \
         (SELECT max(seq_global) FROM packets)) g \
         WHERE NOT EXISTS (SELECT 1 FROM packets WHERE seq_global = g) \
         AND NOT EXISTS (SELECT 1 FROM losses WHERE g BETWEEN seq_global_first AND seq_global_last)",
    );
    assert_eq!(missing, 0, "seq_global values neither a row nor in losses");
    let left = crash::unacked(&spool);
    assert_eq!(left, 0, "unacknowledged records left in the spool");
    eprintln!(
        "pg crash test: nft counted {}, {rows} rows ({unnumbered} without seq_global), {} lost in {} loss rows",
        ns.counter(),
        pg.count("SELECT coalesce(sum(count), 0) FROM losses"),
        pg.count("SELECT count(*) FROM losses")
    );
}

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sample.pcap");

/// `fwlog read SAMPLE -o URL` inside the server's namespace.
fn read_into(ns: &NetNs, url: &str) -> (i32, String) {
    let o = ns
        .command(support::fwlog_bin())
        .args(["read", "--no-dns", "-o", url, SAMPLE])
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_role_that_may_only_insert_and_select_writes_into_a_schema_its_owner_made() {
    require_root!();
    let ns = NetNs::new("pgrole");
    let pg = Pg::init(&ns, 55435);
    pg.start();
    // The owner's first use creates the schema.
    let (code, err) = read_into(&ns, &pg.url(PASSWORD));
    assert_eq!(code, 0, "{err}");
    let n = pg.count("SELECT count(*) FROM packets");
    assert!(n > 0);
    pg.query("CREATE ROLE writer LOGIN PASSWORD 'w-pass'");
    pg.query("GRANT SELECT ON schema_version TO writer");
    pg.query("GRANT INSERT, SELECT ON packets, losses TO writer");
    pg.query("CREATE ROLE reader LOGIN PASSWORD 'r-pass'");
    pg.query("GRANT SELECT ON schema_version, packets, losses TO reader");
    let as_role =
        |user: &str, pw: &str| format!("postgresql://{user}:{pw}@127.0.0.1:{}/postgres", pg.port);
    let (code, err) = read_into(&ns, &as_role("writer", "w-pass"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 2 * n);
    // Without INSERT: one clear line naming the refusal; nothing written.
    let (code, err) = read_into(&ns, &as_role("reader", "r-pass"));
    assert_eq!(code, 73, "{err}");
    assert!(err.contains("permission denied for table packets"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 2 * n);
}

#[test]
fn a_row_a_site_check_or_trigger_refuses_becomes_a_loss_and_the_rest_is_stored() {
    require_root!();
    let ns = NetNs::new("pgrefuse");
    let pg = Pg::init(&ns, 55436);
    pg.start();
    let url = pg.url(PASSWORD);
    let (code, err) = read_into(&ns, &url);
    assert_eq!(code, 0, "{err}");
    let n = pg.count("SELECT count(*) FROM packets");
    assert!(n > 5, "the sample has packets");
    // A site's trigger refuses spool record 3, a site's CHECK refuses record 5 (NOT VALID: the
    // rows already there are not checked).
    pg.query(
        "CREATE FUNCTION no_seq3() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.seq = 3 THEN RAISE EXCEPTION 'site rule: seq 3 not wanted'; END IF; \
         RETURN NEW; END $$",
    );
    pg.query(
        "CREATE TRIGGER no_seq3 BEFORE INSERT ON packets FOR EACH ROW EXECUTE FUNCTION no_seq3()",
    );
    pg.query("ALTER TABLE packets ADD CONSTRAINT no_seq5 CHECK (seq <> 5) NOT VALID");
    let (code, err) = read_into(&ns, &url);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("refused 2 row(s)"), "{err}");
    assert!(err.contains("site rule: seq 3 not wanted"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 2 * n - 2);
    assert_eq!(
        // The partition (the sample's day) the row was bound for is named in the message.
        pg.query(
            "SELECT string_agg(seq || '|' || count || '|' || \
             regexp_replace(reason, 'packets_p[0-9]{8}', 'packets_pDAY'), E'\\n' ORDER BY seq) \
             FROM losses"
        ),
        "3|1|refused: site rule: seq 3 not wanted\n\
         5|1|refused: new row for relation \"packets_pDAY\" violates check constraint \"no_seq5\""
    );
    // A failure that is not one row's (the role may not insert) still fails the batch, so
    // nothing is acknowledged and nothing becomes a loss.
    pg.query("CREATE ROLE reader LOGIN PASSWORD 'r-pass'");
    pg.query("GRANT SELECT ON schema_version, packets, losses TO reader");
    let reader = format!("postgresql://reader:r-pass@127.0.0.1:{}/postgres", pg.port);
    let (code, err) = read_into(&ns, &reader);
    assert_eq!(code, 73, "{err}");
    assert_eq!(pg.count("SELECT count(*) FROM losses"), 2);
}

/// SAMPLE with its records' capture times moved to now, a day ago and six days ago (in turn).
fn three_days_pcap(dir: &Path) -> PathBuf {
    let mut d = std::fs::read(SAMPLE).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let (mut at, mut i) = (24, 0u32);
    while at + 16 <= d.len() {
        let t = now - [0, 1, 6][(i % 3) as usize] * 86_400;
        d[at..at + 4].copy_from_slice(&t.to_le_bytes());
        let len = u32::from_le_bytes(d[at + 8..at + 12].try_into().unwrap()) as usize;
        // The NFLOG record's own timestamp (NFULA_TIMESTAMP, type 3: seconds as a big-endian
        // u64) wins over the capture header's: move it too. TLVs follow a 4-byte header.
        let rec = at + 16..at + 16 + len;
        let mut tlv = rec.start + 4;
        while tlv + 4 <= rec.end {
            let l = u16::from_le_bytes([d[tlv], d[tlv + 1]]) as usize;
            let ty = u16::from_le_bytes([d[tlv + 2], d[tlv + 3]]) & 0x7fff;
            if l < 4 || tlv + l > rec.end {
                break;
            }
            // ... and so does fwlog's receive time (0x3F01), for packets the kernel gave no
            // timestamp.
            if (ty == 3 && l >= 20) || (ty == 0x3F01 && l >= 16) {
                d[tlv + 4..tlv + 12].copy_from_slice(&u64::from(t).to_be_bytes());
            }
            tlv += (l + 3) & !3;
        }
        at += 16 + len;
        i += 1;
    }
    assert!(i >= 6, "the sample has packets");
    let p = dir.join("three-days.pcap");
    std::fs::write(&p, d).unwrap();
    p
}

#[test]
fn rows_over_three_days_land_in_daily_partitions_and_retain_drops_whole_old_ones() {
    require_root!();
    let ns = NetNs::new("pgpart");
    let pg = Pg::init(&ns, 55437);
    pg.start();
    let dir = tempfile::tempdir().unwrap();
    let pcap = three_days_pcap(dir.path());
    let url = pg.url(PASSWORD);
    let read = |extra: &[&str]| {
        let o = ns
            .command(support::fwlog_bin())
            .args(["read", "--no-dns", "-o", &url])
            .args(extra)
            .arg(&pcap)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    read(&[]);
    let n = pg.count("SELECT count(*) FROM packets");
    assert_eq!(pg.count("SELECT count(DISTINCT tableoid) FROM packets"), 3);
    assert_eq!(
        pg.count(
            "SELECT count(*) FROM packets WHERE tableoid::regclass::text <> \
             'packets_p' || to_char(time AT TIME ZONE 'UTC', 'YYYYMMDD')"
        ),
        0,
        "every row in its day's partition"
    );
    let day = |offset: i32| {
        pg.query(&format!(
            "SELECT 'packets_p' || to_char(now() AT TIME ZONE 'UTC' + interval '{offset} days', 'YYYYMMDD')"
        ))
    };
    let exists = |t: &str| pg.query(&format!("SELECT to_regclass('{t}') IS NOT NULL")) == "t";
    assert!(exists(&day(3)), "partitions are made ahead");
    assert!(exists(&day(-6)));
    let plan = pg.query(
        "SET enable_seqscan = off; EXPLAIN SELECT src FROM packets \
         WHERE dport = 80 AND time > now() - interval '2 days'",
    );
    assert!(plan.contains("dport_time_idx"), "{plan}");
    let plan = pg.query(
        "SET enable_seqscan = off; EXPLAIN SELECT count(*) FROM packets \
         WHERE src = '127.0.0.1' AND time > now() - interval '2 days'",
    );
    assert!(plan.contains("src_time_idx"), "{plan}");
    // Retention drops the six-day-old partition as a whole (with the rows of this run that
    // went back into it); a day ago stays.
    read(&["--db-retain", "3d"]);
    assert!(!exists(&day(-6)), "the old partition is dropped");
    assert!(exists(&day(-1)));
    assert_eq!(
        pg.count("SELECT count(*) FROM packets WHERE time < now() - interval '3 days'"),
        0
    );
    assert!(pg.count("SELECT count(*) FROM packets") > n);
}

/// The schema of fwlog's PostgreSQL version 1 (unpartitioned), with one row.
const V1: &str = "
CREATE TABLE schema_version (version integer NOT NULL);
CREATE TABLE packets (
    time timestamptz NOT NULL, time_source text NOT NULL, host text NOT NULL,
    stream text NOT NULL, seq bigint NOT NULL, seq_global bigint, nflog_group integer NOT NULL,
    family smallint NOT NULL, prefix text, hook smallint, mark bigint NOT NULL, in_if text,
    out_if text, src inet, dst inet, src_name text, dst_name text, proto smallint,
    sport integer, dport integer, tcp_flags smallint, icmp_type smallint, icmp_code smallint,
    length integer, ttl smallint, uid bigint, gid bigint, replayed boolean NOT NULL,
    partial boolean NOT NULL, payload bytea,
    PRIMARY KEY (host, stream, seq));
CREATE INDEX packets_time ON packets (time);
CREATE INDEX packets_src_time ON packets (src, time);
CREATE INDEX packets_dport_time ON packets (dport, time);
CREATE TABLE losses (
    time timestamptz NOT NULL, host text NOT NULL, stream text NOT NULL, seq bigint NOT NULL,
    nflog_group integer, count bigint NOT NULL, reason text NOT NULL,
    seq_global_first bigint, seq_global_last bigint,
    PRIMARY KEY (host, stream, seq));
INSERT INTO schema_version VALUES (1);
INSERT INTO packets (time, time_source, host, stream, seq, nflog_group, family, mark,
    src, replayed, partial) VALUES (now() - interval '2 days', 'kernel', 'old', 'x', 1, 5, 2,
    0, '10.1.2.3', false, false);";

/// The migration SQL as fwlog-sql(5) shows it (troff's `\-` and `\e` undone).
fn migration_sql() -> String {
    let man =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/fwlog-sql.5")).unwrap();
    let from = man
        .find("Migrate it, as the owner, with:\n.PP\n.EX\n")
        .expect("the migration section");
    let sql = &man[from..];
    let sql = &sql[sql.find(".EX\n").unwrap() + 4..sql.find(".EE").unwrap()];
    sql.replace("\\-", "-").replace("\\e", "\\")
}

#[test]
fn an_unpartitioned_version_1_schema_is_refused_in_one_line_and_the_documented_migration_works() {
    require_root!();
    let ns = NetNs::new("pgv1");
    let pg = Pg::init(&ns, 55438);
    pg.start();
    pg.query(V1);
    let (code, err) = read_into(&ns, &pg.url(PASSWORD));
    assert_eq!(code, 73, "{err}");
    assert!(
        err.contains("schema version 1: its packets table is not partitioned"),
        "{err}"
    );
    assert!(err.contains("fwlog-sql(5)"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 1);
    // The documented migration keeps the row and lets fwlog write again.
    pg.query(&migration_sql());
    let (code, err) = read_into(&ns, &pg.url(PASSWORD));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        pg.query("SELECT tableoid::regclass::text = 'packets_p' || to_char(time AT TIME ZONE 'UTC', 'YYYYMMDD') FROM packets WHERE host = 'old' AND src = '10.1.2.3'"),
        "t"
    );
    assert!(pg.count("SELECT count(*) FROM packets") > 1);
    assert_eq!(pg.query("SELECT to_regclass('packets_v1') IS NULL"), "t");
}

#[test]
fn tls_verify_full_connects_and_a_wrong_ca_or_host_name_is_one_line_with_packets_kept() {
    require_root!();
    let ns = NetNs::new("pgtls");
    rule(&ns);
    let pg = Pg::init(&ns, 55439);
    let certs = pg._dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    server_certs(&certs, "IP:127.0.0.1,DNS:db.test");
    let (uid, gid) = (user_id("-u"), user_id("-g"));
    for f in ["server.key", "server.crt"] {
        let p = certs.join(f);
        assert_eq!(unsafe { libc::chown(c_path(&p).as_ptr(), uid, gid) }, 0);
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    // The server takes TLS connections only.
    let hba = pg.data.join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("hostnossl all all 0.0.0.0/0 reject\n{rules}")).unwrap();
    pg.start_with(&format!(
        "-c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key",
        certs.display()
    ));
    let url = |host: &str, q: &str| {
        format!(
            "postgresql://fwtest:{PASSWORD}@{host}:{}/postgres{q}",
            pg.port
        )
    };
    let ca = certs.join("ca.pem");
    let verify = format!("?sslmode=verify-full&sslrootcert={}", ca.display());
    // Plain TCP is refused by the server: the rows below came over TLS.
    let (code, err) = read_into(&ns, &url("127.0.0.1", ""));
    assert_eq!(code, 73, "{err}");
    assert!(err.contains("no encryption"), "{err}");
    let (code, err) = read_into(&ns, &url("127.0.0.1", &verify));
    assert_eq!(code, 0, "{err}");
    let n = pg.count("SELECT count(*) FROM packets");
    assert!(n > 0);
    let (code, err) = read_into(&ns, &url("127.0.0.1", "?sslmode=require"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 2 * n);
    // A host name the certificate does not carry: one line, nothing written.
    let (code, err) = read_into(&ns, &url("localhost", &verify));
    assert_eq!(code, 73, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("certificate"), "{err}");
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 2 * n);
    // A CA file that is not there is a usage error before anything starts.
    let (code, err) = read_into(
        &ns,
        &url(
            "127.0.0.1",
            "?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ),
    );
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("sslrootcert /nonexistent/ca.pem"), "{err}");
    // The daemon with a CA that did not sign the server's certificate: one line, the packets
    // stay spooled.
    let dir = tempfile::tempdir().unwrap();
    let wrong = url(
        "127.0.0.1",
        &format!(
            "?sslmode=verify-full&sslrootcert={}",
            certs.join("other-ca.pem").display()
        ),
    );
    let args = RunArgs::new(dir.path()).group(5).output_to(&wrong);
    let spool = args.spool();
    let err = refused_run(&ns, &args, 200, "cannot write to");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("certificate")).collect();
    assert_eq!(lines.len(), 1, "one clear line: {err}");
    assert!(lines[0].contains("UnknownIssuer"), "{err}");
    let pending = crash::unacked(&spool);
    assert_eq!(pending, 200, "the packets stay in the spool");
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 2 * n);
}
