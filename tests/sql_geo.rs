//! The geo columns of the SQL outputs (`src_country`, `src_asn`, `src_as_org`, `src_lat`,
//! `src_lon`, and `dst_...`): filled from `--geoip`/`--asn` exactly as the JSON format shows the
//! same capture, NULL without them; and the schema upgrade that adds them to a database an
//! earlier fwlog made (its DDL kept here as it was), keeping every row; a newer schema than
//! the binary knows stays a clear error, and so does an upgrade the writing role may not make
//! (the packets stay spooled until the owner runs `fwlog db init`). Also the later upgrade that makes `host` and `stream`
//! compare bytewise (PostgreSQL version 4), keeping every row and value.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::crash;
use support::daemon::{send_udp, wait_for, RunArgs};
use support::geo::{asn_db, city_db};
use support::netns::NetNs;
use support::pg::{Pg, PASSWORD};

const CAPTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/geo.pcap");
const GEO: [&str; 10] = [
    "src_country",
    "src_asn",
    "src_as_org",
    "src_lat",
    "src_lon",
    "dst_country",
    "dst_asn",
    "dst_as_org",
    "dst_lat",
    "dst_lon",
];

fn fwlog(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(support::fwlog_bin())
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Rows as JSON objects (the `sqlite3` shell's JSON mode).
fn sqlite_json(db: &Path, sql: &str) -> Vec<serde_json::Value> {
    support::require_tool("sqlite3");
    let o = Command::new("sqlite3")
        .arg("-json")
        .arg(db)
        .arg(sql)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    if out.trim().is_empty() {
        return Vec::new();
    }
    serde_json::from_str(&out).unwrap()
}

fn sqlite3(db: &Path, sql: &str) -> String {
    let o = Command::new("sqlite3").arg(db).arg(sql).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// What the JSON format says about one packet's addresses, as the ten geo columns would hold
/// it (a JSON object keyed like the columns).
fn expected_geo(line: &serde_json::Value) -> serde_json::Value {
    let ip = &line["ip"];
    let mut m = serde_json::Map::new();
    for side in ["src", "dst"] {
        let g = &ip[format!("{side}_geo")];
        let a = &ip[format!("{side}_as")];
        m.insert(format!("{side}_country"), g["country_code"].clone());
        m.insert(format!("{side}_asn"), a["number"].clone());
        m.insert(format!("{side}_as_org"), a["org"].clone());
        m.insert(format!("{side}_lat"), g["lat"].clone());
        m.insert(format!("{side}_lon"), g["lon"].clone());
    }
    serde_json::Value::Object(m)
}

fn json_packets(args: &[&str]) -> Vec<serde_json::Value> {
    let mut a = vec!["read", "--no-dns", "-f", "json"];
    a.extend_from_slice(args);
    a.push(CAPTURE);
    let (code, out, err) = fwlog(&a);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|o| o["event"] == "packet")
        .collect()
}

/// Every stored row's geo columns are what the JSON format prints for the same packet.
fn assert_rows_match_json(rows: &[serde_json::Value], json: &[serde_json::Value]) {
    assert_eq!(rows.len(), json.len());
    let mut placed = 0;
    for (row, line) in rows.iter().zip(json) {
        let want = expected_geo(line);
        for c in GEO {
            assert_eq!(row[c], want[c], "{c} of {line}");
        }
        placed += usize::from(!row["src_country"].is_null());
    }
    assert!(placed >= 40, "most sources are placed: {placed}");
}

#[test]
fn sqlite_rows_carry_the_geo_columns_the_json_format_shows_and_null_without_databases() {
    let dir = tempfile::tempdir().unwrap();
    let city = city_db(dir.path(), "city.mmdb", None);
    let asn = asn_db(dir.path(), "asn.mmdb");
    let (city, asn) = (city.to_str().unwrap(), asn.to_str().unwrap());
    let db = dir.path().join("fw.db");
    let target = format!("sqlite:{}", db.display());
    let (code, _, err) = fwlog(&[
        "read", "--no-dns", "--geoip", city, "--asn", asn, "-o", &target, CAPTURE,
    ]);
    assert_eq!(code, 0, "{err}");
    let rows = sqlite_json(
        &db,
        &format!("SELECT {} FROM packets ORDER BY seq", GEO.join(", ")),
    );
    let json = json_packets(&["--geoip", city, "--asn", asn]);
    assert_rows_match_json(&rows, &json);
    // The readable view has them too; an organisation's bytes are stored escaped.
    assert_eq!(
        sqlite3(
            &db,
            "SELECT src_as_org FROM packets_text WHERE src = '81.2.69.160' LIMIT 1"
        ),
        "Andrews\\032\\038\\032Arnold\\032Ltd"
    );
    // The documented query: top source countries.
    assert_eq!(
        sqlite3(
            &db,
            "SELECT src_country, count(*) AS n FROM packets WHERE src_country IS NOT NULL \
             GROUP BY src_country ORDER BY n DESC LIMIT 1"
        ),
        "GB|26"
    );
    // Without databases: every geo column NULL.
    let plain = dir.path().join("plain.db");
    let (code, _, err) = fwlog(&[
        "read",
        "--no-dns",
        "-o",
        &format!("sqlite:{}", plain.display()),
        CAPTURE,
    ]);
    assert_eq!(code, 0, "{err}");
    let any = GEO
        .iter()
        .map(|c| format!("{c} IS NOT NULL"))
        .collect::<Vec<_>>()
        .join(" OR ");
    assert_eq!(
        sqlite3(&plain, &format!("SELECT count(*) FROM packets WHERE {any}")),
        "0"
    );
    assert_eq!(sqlite3(&plain, "SELECT count(*) FROM packets"), "48");
}

/// fwlog's SQLite schema version 1, as that fwlog created it, with two rows.
const SQLITE_V1: &str = "
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE packets (
    time REAL NOT NULL, time_source TEXT NOT NULL, host TEXT NOT NULL, stream TEXT NOT NULL,
    seq INTEGER NOT NULL, seq_global INTEGER, nflog_group INTEGER NOT NULL,
    family INTEGER NOT NULL, prefix TEXT, hook INTEGER, mark INTEGER NOT NULL, in_if TEXT,
    out_if TEXT, src BLOB, dst BLOB, src_name TEXT, dst_name TEXT, proto INTEGER,
    sport INTEGER, dport INTEGER, tcp_flags INTEGER, icmp_type INTEGER, icmp_code INTEGER,
    length INTEGER, ttl INTEGER, uid INTEGER, gid INTEGER, replayed INTEGER NOT NULL,
    partial INTEGER NOT NULL, payload BLOB);
CREATE UNIQUE INDEX packets_key ON packets (host, stream, seq);
CREATE INDEX packets_time ON packets (time);
CREATE INDEX packets_src_time ON packets (src, time);
CREATE INDEX packets_dport_time ON packets (dport, time);
CREATE TABLE losses (
    time REAL NOT NULL, host TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL,
    nflog_group INTEGER, count INTEGER NOT NULL, reason TEXT NOT NULL,
    seq_global_first INTEGER, seq_global_last INTEGER);
CREATE UNIQUE INDEX losses_key ON losses (host, stream, seq);
CREATE INDEX losses_time ON losses (time);
CREATE VIEW packets_text AS SELECT host, seq, prefix FROM packets;
INSERT INTO packets (time, time_source, host, stream, seq, nflog_group, family, mark, prefix,
    src, dport, replayed, partial) VALUES
    (1700000000.5, 'kernel', 'old', 'x', 1, 5, 2, 0, 'old one',
     x'00000000000000000000ffff51024507', 22, 0, 0),
    (1700000001.5, 'kernel', 'old', 'x', 2, 5, 2, 0, 'old two',
     x'00000000000000000000ffff51024508', 23, 0, 0);
INSERT INTO losses VALUES (1700000002.0, 'old', 'x', 3, 5, 4, 'gap', 10, 13);";

#[test]
fn a_version_1_sqlite_database_is_upgraded_in_place_keeping_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let city = city_db(dir.path(), "city.mmdb", None);
    let asn = asn_db(dir.path(), "asn.mmdb");
    let db = dir.path().join("old.db");
    sqlite3(&db, SQLITE_V1);
    let before = sqlite3(&db, "SELECT * FROM packets ORDER BY seq");
    let target = format!("sqlite:{}", db.display());
    let (code, _, err) = fwlog(&[
        "read",
        "--no-dns",
        "--geoip",
        city.to_str().unwrap(),
        "--asn",
        asn.to_str().unwrap(),
        "-o",
        &target,
        CAPTURE,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(sqlite3(&db, "SELECT version FROM schema_version"), "2");
    // The old rows: every old column as it was, the geo columns NULL.
    let old_cols = "time, time_source, host, stream, seq, seq_global, nflog_group, family, \
        prefix, hook, mark, in_if, out_if, src, dst, src_name, dst_name, proto, sport, dport, \
        tcp_flags, icmp_type, icmp_code, length, ttl, uid, gid, replayed, partial, payload";
    assert_eq!(
        sqlite3(
            &db,
            &format!("SELECT {old_cols} FROM packets WHERE host = 'old' ORDER BY seq")
        ),
        before
    );
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*) FROM packets WHERE host = 'old' AND src_country IS NULL"
        ),
        "2"
    );
    assert_eq!(sqlite3(&db, "SELECT count(*) FROM losses"), "1");
    // The new rows have their geo columns, and the view shows them.
    assert_eq!(sqlite3(&db, "SELECT count(*) FROM packets"), "50");
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*) FROM packets_text WHERE src = '81.2.69.160' AND src_country = 'GB' \
             AND src_asn = 20712"
        ),
        "26"
    );
}

/// fwlog's PostgreSQL schema version 2 (daily partitions, no geo columns) as that fwlog
/// created it, with one partition and one row.
const PG_V2: &str = "
CREATE TABLE schema_version (version integer NOT NULL);
CREATE TABLE packets (
    time timestamptz NOT NULL, time_source text NOT NULL, host text NOT NULL,
    stream text NOT NULL, seq bigint NOT NULL, seq_global bigint, nflog_group integer NOT NULL,
    family smallint NOT NULL, prefix text, hook smallint, mark bigint NOT NULL, in_if text,
    out_if text, src inet, dst inet, src_name text, dst_name text, proto smallint,
    sport integer, dport integer, tcp_flags smallint, icmp_type smallint, icmp_code smallint,
    length integer, ttl smallint, uid bigint, gid bigint, replayed boolean NOT NULL,
    partial boolean NOT NULL, payload bytea,
    PRIMARY KEY (host, stream, seq, time)) PARTITION BY RANGE (time);
CREATE INDEX packets_time ON packets (time);
CREATE INDEX packets_src_time ON packets (src, time);
CREATE INDEX packets_dport_time ON packets (dport, time);
CREATE TABLE losses (
    time timestamptz NOT NULL, host text NOT NULL, stream text NOT NULL, seq bigint NOT NULL,
    nflog_group integer, count bigint NOT NULL, reason text NOT NULL,
    seq_global_first bigint, seq_global_last bigint,
    PRIMARY KEY (host, stream, seq));
INSERT INTO schema_version VALUES (2);
CREATE TABLE packets_p20231114 PARTITION OF packets
    FOR VALUES FROM ('2023-11-14 00:00:00+00') TO ('2023-11-15 00:00:00+00');
INSERT INTO packets (time, time_source, host, stream, seq, nflog_group, family, mark, prefix,
    src, dport, replayed, partial) VALUES
    (to_timestamp(1700000000.5), 'kernel', 'old', 'x', 1, 5, 2, 0, 'old one', '81.2.69.7', 22,
     false, false);";

/// `fwlog read --no-dns -o URL` of the capture, in `ns`, which must succeed.
fn read_into(ns: &NetNs, url: &str) {
    let o = ns
        .command(support::fwlog_bin())
        .args(["read", "--no-dns", "-o", url, CAPTURE])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A server of the test's on `port` in `ns`, holding a version 2 database ([`PG_V2`]).
fn v2_server(ns: &NetNs, port: u16) -> Pg {
    let pg = Pg::init(ns, port);
    pg.start();
    pg.query(PG_V2);
    pg
}

#[test]
fn a_version_2_postgresql_schema_gets_the_geo_columns_in_place_and_a_newer_one_is_refused() {
    require_root!();
    let ns = NetNs::new("pggeo");
    let pg = v2_server(&ns, 55441);
    let dir = tempfile::tempdir().unwrap();
    let city = city_db(dir.path(), "city.mmdb", None);
    let asn = asn_db(dir.path(), "asn.mmdb");
    let (city, asn) = (city.to_str().unwrap(), asn.to_str().unwrap());
    let url = pg.url(PASSWORD);
    let read = || {
        let o = ns
            .command(support::fwlog_bin())
            .args([
                "read", "--no-dns", "--geoip", city, "--asn", asn, "-o", &url, CAPTURE,
            ])
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = read();
    assert_eq!(code, 0, "{err}");
    assert_eq!(pg.query("SELECT version FROM schema_version"), "4");
    assert_eq!(
        pg.query(
            "SELECT prefix || ' ' || host(src) || ' ' || (src_country IS NULL) FROM packets \
             WHERE host = 'old'"
        ),
        "old one 81.2.69.7 true"
    );
    // The partitions (old and new) have the columns through the parent.
    assert_eq!(
        pg.query(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = \
             'packets_p20231114' AND column_name LIKE 'src\\_%' AND column_name <> 'src_name'"
        ),
        "5"
    );
    let rows: Vec<serde_json::Value> = pg
        .query(&format!(
            "SELECT json_build_object({}) FROM packets WHERE host <> 'old' ORDER BY seq",
            GEO.iter()
                .map(|c| format!("'{c}', {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let json = json_packets(&["--geoip", city, "--asn", asn]);
    assert_rows_match_json(&rows, &json);
    // A schema newer than this fwlog: one line, exit 73, nothing written.
    pg.query("UPDATE schema_version SET version = 5");
    let n = pg.count("SELECT count(*) FROM packets");
    let (code, err) = read();
    assert_eq!(code, 73, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("schema version 5 is newer than this fwlog knows (4)"),
        "{err}"
    );
    assert_eq!(pg.count("SELECT count(*) FROM packets"), n);
}

/// The collation of `table.column` (NULL, the database's default, shows as "default").
fn collation(pg: &Pg, table: &str, column: &str) -> String {
    pg.query(&format!(
        "SELECT coalesce(collation_name, 'default') FROM information_schema.columns \
         WHERE table_name = '{table}' AND column_name = '{column}'"
    ))
}

#[test]
fn a_version_3_postgresql_schema_gets_bytewise_keys_in_place_keeping_every_row() {
    require_root!();
    let ns = NetNs::new("pgv3");
    // Version 3 as that fwlog made it: version 2 plus the geo columns, by the SQL fwlog-sql(5)
    // gives the owner; rows of two hosts in two days, a loss row, and the DEFAULT partition.
    let pg = v2_server(&ns, 55447);
    pg.query(
        "ALTER TABLE packets ADD COLUMN src_country text, ADD COLUMN src_asn bigint, \
         ADD COLUMN src_as_org text, ADD COLUMN src_lat double precision, \
         ADD COLUMN src_lon double precision, ADD COLUMN dst_country text, \
         ADD COLUMN dst_asn bigint, ADD COLUMN dst_as_org text, \
         ADD COLUMN dst_lat double precision, ADD COLUMN dst_lon double precision; \
         UPDATE schema_version SET version = 3; \
         CREATE TABLE packets_default PARTITION OF packets DEFAULT; \
         INSERT INTO packets (time, time_source, host, stream, seq, nflog_group, family, mark, \
           src, dport, replayed, partial, src_country) VALUES \
           (to_timestamp(1700000001), 'kernel', 'Web2', 'y', 1, 5, 2, 0, '10.0.0.2', 80, \
            false, false, 'DE'), \
           (to_timestamp(1600000000), 'kernel', 'web1', 'x', 2, 5, 2, 0, '10.0.0.3', 443, \
            false, false, NULL); \
         INSERT INTO losses VALUES (to_timestamp(1700000002), 'old', 'x', 9, 5, 3, 'seq-gap', \
           10, 12);",
    );
    let before = pg.query(
        "SELECT string_agg(concat_ws('|', host, stream, seq, time, src, dport, src_country), \
         ',' ORDER BY host, seq) FROM packets",
    );
    assert_eq!(collation(&pg, "packets", "host"), "default");
    let url = pg.url(PASSWORD);
    read_into(&ns, &url);
    assert_eq!(pg.query("SELECT version FROM schema_version"), "4");
    for t in ["packets", "losses", "packets_p20231114", "packets_default"] {
        for c in ["host", "stream"] {
            assert_eq!(collation(&pg, t, c), "C", "{t}.{c}");
        }
    }
    // Every old row kept, with every value; the capture's rows added.
    assert_eq!(
        pg.query(
            "SELECT string_agg(concat_ws('|', host, stream, seq, time, src, dport, \
             src_country), ',' ORDER BY host, seq) FROM packets WHERE host IN ('old', 'Web2', \
             'web1')"
        ),
        before
    );
    assert!(pg.count("SELECT count(*) FROM packets") > 3);
    assert_eq!(
        pg.query("SELECT count || reason FROM losses WHERE host = 'old'"),
        "3seq-gap"
    );
    // The key still holds: an old row's key again is a conflict, and the documented queries
    // on host and src still run.
    assert_eq!(
        pg.query(
            "INSERT INTO packets (time, time_source, host, stream, seq, nflog_group, family, \
             mark, replayed, partial) VALUES (to_timestamp(1700000000.5), 'kernel', 'old', 'x', \
             1, 5, 2, 0, false, false) ON CONFLICT DO NOTHING"
        ),
        "INSERT 0 0"
    );
    assert_eq!(
        pg.count(
            "SELECT count(*) FROM packets WHERE host = 'web1' AND src << '10.0.0.0/8' \
             AND time >= '2020-01-01'"
        ),
        1
    );
    // Running again changes nothing.
    read_into(&ns, &url);
    assert_eq!(pg.query("SELECT version FROM schema_version"), "4");
}

#[test]
fn a_version_2_schema_the_writing_role_may_not_alter_is_one_line_naming_db_init_and_nothing_is_lost(
) {
    require_root!();
    let ns = NetNs::new("pgalter");
    ns.output_rules(&["udp dport 9999 counter log prefix \"GEO \" group 5"]);
    let pg = Pg::init(&ns, 55446);
    pg.start();
    pg.query(PG_V2);
    // The role fwlog runs as may insert and select, not alter: the tables are the owner's.
    pg.query("CREATE ROLE writer LOGIN PASSWORD 'w-pass'");
    pg.query("GRANT SELECT ON schema_version TO writer");
    pg.query("GRANT INSERT, SELECT ON packets, losses TO writer");
    let writer = format!("postgresql://writer:w-pass@127.0.0.1:{}/postgres", pg.port);
    let dir = tempfile::tempdir().unwrap();
    let args = RunArgs::new(dir.path()).group(5).output_to(&writer);
    let spool = args.spool();
    let d = args.start(&ns);
    send_udp(&ns, 9999, 0..200);
    wait_for("the refusal", Duration::from_secs(20), || {
        d.stderr_text().contains("fwlog db init")
    });
    // Retries go on meanwhile; the line is not repeated.
    std::thread::sleep(Duration::from_secs(2));
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("schema")).collect();
    assert_eq!(lines.len(), 1, "one clear line: {err}");
    assert!(
        lines[0].contains("postgresql://writer@127.0.0.1")
            && lines[0].contains("must be owner of table packets")
            && lines[0].contains("run `fwlog db init URL` as the owner"),
        "{err}"
    );
    assert!(
        !err.contains("w-pass"),
        "the password is never shown: {err}"
    );
    // Nothing written or changed; every packet the rule logged is still in the spool.
    assert_eq!(crash::unacked(&spool) as u64, ns.counter());
    assert_eq!(ns.counter(), 200);
    assert_eq!(pg.query("SELECT version FROM schema_version"), "2");
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 1);
    assert_eq!(
        pg.count(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'packets' \
             AND column_name = 'src_country'"
        ),
        0
    );
    // The owner runs what the line says; the next start writes the spooled packets, once.
    let o = ns
        .command(support::fwlog_bin())
        .args(["db", "init", &pg.url(PASSWORD)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        pg.query("SELECT version FROM schema_version"),
        fwlog::sink::sql::pg::VERSION.to_string()
    );
    let d = args.start(&ns);
    wait_for(
        "the spooled packets stored",
        Duration::from_secs(60),
        || pg.count("SELECT count(*) FROM packets WHERE host <> 'old'") >= 200,
    );
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0, "{err}");
    assert_eq!(
        pg.count("SELECT count(DISTINCT seq) FROM packets WHERE host <> 'old'"),
        200
    );
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 201);
    assert_eq!(crash::unacked(&spool), 0);
}
