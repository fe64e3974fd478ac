//! `fwlog report` from the SQL outputs: one capture written as JSON lines, into SQLite, into
//! PostgreSQL and into MariaDB (servers the test starts), stored with geo columns and without;
//! the reports from every source, under every filter, are identical (text and JSON), the ones
//! stored without geo enriched by `--geoip`/`--asn` at report time. MariaDB is read by a role
//! that may only SELECT. The capture is generated (seeded):
//! 3000 packets over three hours from 300 sources, IPv4 and IPv6, two groups and prefixes, and
//! port and host sweeps, some across a minute's boundary. Broken sources are one clear line.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use fwlog::nflog::attr::encode_packet;
use fwlog::packet::{family, Packet, TimeSource, Timestamp};
use fwlog::pcap::NflogPcapWriter;
use support::geo::{asn_db, city_db};
use support::mariadb::{self, MariaDb};
use support::netns::NetNs;
use support::pg::{Pg, PASSWORD};
use support::rng::Lcg;

const T0: i64 = 1_795_000_000;

fn fwlog(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(support::fwlog_bin())
        .env("TZ", "UTC")
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// One packet: IPv4 or IPv6 TCP (or UDP for port 53) SYN from `src` to `dst:dport`.
fn packet(src: IpAddr, dst: IpAddr, dport: u16) -> Vec<u8> {
    let udp = dport == 53;
    let l4: Vec<u8> = if udp {
        let mut u = vec![0xd4, 0x31];
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&[0, 8, 0, 0]);
        u
    } else {
        let mut t = vec![0xd4, 0x31];
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0]);
        t
    };
    let proto = if udp { 17 } else { 6 };
    let mut p = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let len = (20 + l4.len()) as u16;
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&len.to_be_bytes());
            h.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            h.extend_from_slice(&[proto, 64]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h
        }
        _ => unreachable!("one family per packet"),
    };
    p.extend_from_slice(&l4);
    p
}

/// The seeded capture (see the module docs); returns its path.
fn traffic(dir: &Path, seed: u64) -> PathBuf {
    let mut rng = Lcg(seed);
    let nets: [fn(u64) -> IpAddr; 6] = [
        |i| IpAddr::V4(Ipv4Addr::new(81, 2, 69, (i % 250) as u8 + 1)),
        |i| IpAddr::V4(Ipv4Addr::new(216, 160, 83, (i % 250) as u8 + 1)),
        |i| IpAddr::V4(Ipv4Addr::new(175, 16, 199, (i % 250) as u8 + 1)),
        |i| IpAddr::V4(Ipv4Addr::new(89, 160, 20, (i % 250) as u8 + 1)),
        |i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, (i % 250) as u8 + 1)),
        |i| IpAddr::V6(Ipv6Addr::new(0x2a02, 0xec0, 0, 0, 0, 0, 0, i as u16 + 1)),
    ];
    let dst4 = |i: u64| IpAddr::V4(Ipv4Addr::new(192, 168, 1, (i % 20) as u8 + 1));
    let dst6 = |i: u64| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i as u16 + 1));
    let ports = [22u16, 23, 53, 80, 443, 3389, 8080];
    // (time, src, dst, dport, prefix, group)
    let mut pkts: Vec<(i64, u32, IpAddr, IpAddr, u16, u8)> = Vec::new();
    for _ in 0..2700 {
        let src = nets[rng.next(6) as usize](rng.next(50));
        let d = rng.next(20);
        let dst = if src.is_ipv4() { dst4(d) } else { dst6(d) };
        let t = T0 + rng.next(3 * 3600) as i64;
        let port = ports[rng.next(ports.len() as u64) as usize];
        pkts.push((
            t,
            rng.next(1_000_000) as u32,
            src,
            dst,
            port,
            rng.next(3) as u8,
        ));
    }
    // Sweeps: ports (or hosts) within 30 s, starting anywhere (some cross a minute).
    for k in 0..10u64 {
        let src = nets[(k % 6) as usize](200 + k);
        let start = T0 + 600 + rng.next(3 * 3600 - 1200) as i64;
        for j in 0..30u64 {
            let t = start + (j as i64) % 30;
            let (dst, port) = if k % 2 == 0 {
                let d = if src.is_ipv4() { dst4(0) } else { dst6(0) };
                (d, 1000 + j as u16)
            } else {
                let d = if src.is_ipv4() { dst4(j) } else { dst6(j) };
                (d, 22)
            };
            pkts.push((
                t,
                rng.next(1_000_000) as u32,
                src,
                dst,
                port,
                rng.next(3) as u8,
            ));
        }
    }
    pkts.sort_by_key(|p| (p.0, p.1));
    let path = dir.join("traffic.pcap");
    let mut w = NflogPcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    for (t, usec, src, dst, port, kind) in pkts {
        let bytes = packet(src, dst, port);
        let ts = Timestamp {
            sec: t,
            nsec: usec * 1000,
            source: TimeSource::Kernel,
        };
        let mut p = Packet::new(&bytes, ts);
        p.family = if src.is_ipv4() {
            family::INET
        } else {
            family::INET6
        };
        p.group = if kind == 2 { 7 } else { 5 };
        p.hook = Some(1);
        p.prefix = match kind {
            0 => Some(b"drop "),
            1 => Some(b"ssh "),
            _ => None,
        };
        let mut rec = Vec::new();
        encode_packet(&p, &mut rec);
        w.write(t, usec, &rec).unwrap();
    }
    path
}

/// `fwlog read CAPTURE` into `target` (a JSON file path, `sqlite:` or a URL), with geo or not.
fn store(capture: &Path, target: &str, geo: Option<(&str, &str)>, ns: Option<&NetNs>) {
    let mut args = vec!["read", "--no-dns"];
    if let Some((city, asn)) = geo {
        args.extend(["--geoip", city, "--asn", asn]);
    }
    let json_file = !target.contains(':');
    if json_file {
        args.extend(["-f", "json"]);
    } else {
        args.extend(["-o", target]);
    }
    let cap = capture.to_str().unwrap();
    args.push(cap);
    let o = match ns {
        Some(ns) => ns.command(support::fwlog_bin()).args(&args).output(),
        None => Command::new(support::fwlog_bin()).args(&args).output(),
    }
    .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    if json_file {
        std::fs::write(target, &o.stdout).unwrap();
    }
}

/// `fwlog report ARGS SOURCE` (inside `ns`, where the servers are); the output, checked to
/// succeed.
fn report(ns: &NetNs, args: &[&str], source: &str) -> String {
    let o = ns
        .command(support::fwlog_bin())
        .env("TZ", "UTC")
        .arg("report")
        .args(args)
        .arg(source)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "report {args:?} {source}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn one_capture_from_json_sqlite_postgresql_and_mariadb_gives_identical_reports_under_every_filter()
{
    require_root!();
    let ns = NetNs::new("repsql");
    let pg = Pg::init(&ns, 55442);
    pg.start();
    pg.query("CREATE DATABASE plain");
    let mut maria = MariaDb::init(&ns, 55443);
    maria.start();
    maria.query(
        "CREATE DATABASE plain; GRANT ALL ON plain.* TO 'fwtest'@'127.0.0.1'; \
         CREATE USER 'reader'@'127.0.0.1' IDENTIFIED BY 'r-pass'; \
         GRANT SELECT ON fwlog.* TO 'reader'@'127.0.0.1'; \
         GRANT SELECT ON plain.* TO 'reader'@'127.0.0.1'",
    );
    let dir = tempfile::tempdir().unwrap();
    let capture = traffic(dir.path(), 17);
    let city = city_db(dir.path(), "city.mmdb", None);
    let asn = asn_db(dir.path(), "asn.mmdb");
    let (city, asn) = (city.to_str().unwrap(), asn.to_str().unwrap());
    let geo = Some((city, asn));
    let json = dir.path().join("geo.jsonl");
    let json = json.to_str().unwrap();
    store(&capture, json, geo, None);
    let lite = format!("sqlite:{}", dir.path().join("geo.db").display());
    store(&capture, &lite, geo, None);
    let lite_plain = format!("sqlite:{}", dir.path().join("plain.db").display());
    store(&capture, &lite_plain, None, None);
    let url = pg.url(PASSWORD);
    store(&capture, &url, geo, Some(&ns));
    let url_plain = url.replace("/postgres", "/plain");
    store(&capture, &url_plain, None, Some(&ns));
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 3000);
    store(
        &capture,
        &maria.url("fwtest", mariadb::PASSWORD),
        geo,
        Some(&ns),
    );
    let my_plain = maria
        .url("fwtest", mariadb::PASSWORD)
        .replace("/fwlog", "/plain");
    store(&capture, &my_plain, None, Some(&ns));
    assert_eq!(maria.count("SELECT count(*) FROM packets"), 3000);
    // Read as the role that may only SELECT; mariadb:// is the same source.
    let my = maria.url("reader", "r-pass");
    let my_plain = my
        .replace("mysql://", "mariadb://")
        .replace("/fwlog", "/plain");

    let rfc3339 = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339();
    // Not on a minute: a boundary inside a sweep's minute.
    let (since, until) = (rfc3339(T0 + 1817), rfc3339(T0 + 7231));
    let filters: Vec<Vec<&str>> = vec![
        vec![],
        vec!["--since", &since, "--until", &until],
        vec!["--prefix", "drop"],
        vec!["--host", "81.2.69.7"],
        vec!["--group", "7"],
        vec!["--src", "81.2.69.0/24"],
        vec!["--src", "2a02:ec0::/32", "--dport", "22"],
        vec!["--dport", "53", "--top", "3"],
    ];
    let enrich = ["--geoip", city, "--asn", asn];
    for f in &filters {
        for json_out in [false, true] {
            let mut args = f.clone();
            if json_out {
                args.push("--json");
            }
            let want = report(&ns, &args, json);
            assert!(want.contains("packets"), "{want}");
            for src in [&lite, &url, &my] {
                let got = report(&ns, &args, src);
                assert_eq!(got, want, "{src} {args:?}");
            }
            let mut args_enriched = args.clone();
            args_enriched.extend(enrich);
            for src in [&lite_plain, &url_plain, &my_plain] {
                let got = report(&ns, &args_enriched, src);
                assert_eq!(got, want, "{src} {args_enriched:?}");
            }
        }
    }
    // The whole report is not trivial: every table has rows, the sweeps are scans.
    let v: serde_json::Value = serde_json::from_str(&report(&ns, &["--json"], &url)).unwrap();
    assert_eq!(v["packets"], 3000);
    assert_eq!(v["scans"].as_array().unwrap().len(), 10);
    for t in ["prefixes", "sources", "ports", "countries", "hours"] {
        assert!(!v[t].as_array().unwrap().is_empty(), "{t}");
    }
    // The HTML page from the database is the page from the JSON lines.
    let page = |src: &str, name: &str| {
        let out = dir.path().join(name);
        report(&ns, &["--html", out.to_str().unwrap()], src);
        std::fs::read(out).unwrap()
    };
    let from_json = page(json, "json.html");
    assert_eq!(page(&url, "pg.html"), from_json);
    assert_eq!(page(&my, "my.html"), from_json);
    // Nothing was written by reading: the reader may not, and the tables are as stored.
    assert_eq!(maria.count("SELECT count(*) FROM packets"), 3000);
}

#[test]
fn broken_sql_sources_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite:{}", dir.path().join("none.db").display());
    let (code, _, err) = fwlog(&["report", &missing]);
    assert_eq!((code, err.lines().count()), (66, 1), "{err}");
    assert!(err.contains("none.db"), "{err}");
    // Not fwlog's database.
    let other = dir.path().join("other.db");
    let o = Command::new("sqlite3")
        .arg(&other)
        .arg("CREATE TABLE t (x)")
        .output()
        .unwrap();
    assert!(o.status.success());
    let (code, _, err) = fwlog(&["report", &format!("sqlite:{}", other.display())]);
    assert_eq!(code, 66, "{err}");
    assert!(err.contains("not a database fwlog wrote"), "{err}");
    // A newer schema than this fwlog knows.
    let newer = dir.path().join("newer.db");
    let o = Command::new("sqlite3")
        .arg(&newer)
        .arg("CREATE TABLE schema_version (version INTEGER); INSERT INTO schema_version VALUES (9)")
        .output()
        .unwrap();
    assert!(o.status.success());
    let (code, _, err) = fwlog(&["report", &format!("sqlite:{}", newer.display())]);
    assert_eq!(code, 66, "{err}");
    assert!(err.contains("schema version 9 is newer"), "{err}");
    // A bad URL is a usage error; an unreachable server one line without the password.
    let (code, _, err) = fwlog(&["report", "postgresql://u@h/db?sslmode=verify-ca"]);
    assert_eq!(code, 64, "{err}");
    let (code, _, err) = fwlog(&["report", "postgresql://u:hunter2@127.0.0.1:9/db"]);
    assert_eq!((code, err.lines().count()), (66, 1), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    // The same for MariaDB/MySQL: a URL without a database is a usage error, an unreachable
    // server one line naming it, without the password.
    let (code, _, err) = fwlog(&["report", "mysql://u:hunter2@127.0.0.1:9"]);
    assert_eq!((code, err.lines().count()), (64, 1), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    for url in [
        "mysql://u:hunter2@127.0.0.1:9/db",
        "mariadb://u:hunter2@127.0.0.1:9/db",
    ] {
        let (code, _, err) = fwlog(&["report", url]);
        assert_eq!((code, err.lines().count()), (66, 1), "{err}");
        assert!(err.contains("mysql://u@127.0.0.1:9/db"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}

#[test]
fn a_mariadb_database_that_is_not_fwlogs_or_newer_is_one_clear_line() {
    require_root!();
    let ns = NetNs::new("repmy");
    let mut maria = MariaDb::init(&ns, 55444);
    maria.start();
    let url = maria.url("fwtest", mariadb::PASSWORD);
    let run = |args: &[&str]| {
        let o = ns
            .command(support::fwlog_bin())
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // An empty database: not fwlog's, and the report creates nothing.
    let (code, err) = run(&["report", &url]);
    assert_eq!((code, err.lines().count()), (66, 1), "{err}");
    assert!(err.contains("not a database fwlog wrote"), "{err}");
    assert_eq!(
        maria.count("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'fwlog'"),
        0
    );
    // A wrong password: the server's refusal, one line, the password not shown.
    let wrong = maria.url("fwtest", "not-the-password");
    let (code, err) = run(&["report", &wrong]);
    assert_eq!((code, err.lines().count()), (66, 1), "{err}");
    assert!(err.contains("Access denied"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
    // A newer schema than this fwlog knows.
    let (code, err) = run(&["db", "init", &url]);
    assert_eq!(code, 0, "{err}");
    maria.query("UPDATE schema_version SET version = 99");
    let (code, err) = run(&["report", &url]);
    assert_eq!((code, err.lines().count()), (66, 1), "{err}");
    assert!(err.contains("schema version 99 is newer"), "{err}");
}
