//! `fwlog report` on the fixed capture tests/data/geo.pcap (real NFLOG records, made by
//! tools/make-geo-capture.sh): golden terminal and JSON reports, geo fields stored or added at
//! report time, every filter, standard input, hostile and broken input, SQL sources refused.
//!
//! Set FWLOG_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change.

mod geo_support;
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use geo_support::{asn_db, city_db};

fn fwlog_in(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut child = Command::new(support::fwlog_bin())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TZ", "UTC")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(data) = stdin {
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fwlog(args: &[&str]) -> (i32, String, String) {
    fwlog_in(args, None)
}

struct Fixture {
    _dir: tempfile::TempDir,
    city: PathBuf,
    asn: PathBuf,
    /// The capture as JSON lines, with geo fields.
    geo_json: PathBuf,
    /// The capture as JSON lines, without.
    plain_json: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let city = city_db(dir.path(), "city.mmdb", None);
    let asn = asn_db(dir.path(), "asn.mmdb");
    let write = |name: &str, extra: &[&str]| {
        let mut args = vec!["read", "--no-dns", "-f", "json"];
        args.extend_from_slice(extra);
        args.push("tests/data/geo.pcap");
        let (code, out, err) = fwlog(&args);
        assert_eq!(code, 0, "{err}");
        let p = dir.path().join(name);
        std::fs::write(&p, out).unwrap();
        p
    };
    let geo_json = write(
        "geo.jsonl",
        &[
            "--geoip",
            city.to_str().unwrap(),
            "--asn",
            asn.to_str().unwrap(),
        ],
    );
    let plain_json = write("plain.jsonl", &[]);
    Fixture {
        _dir: dir,
        city,
        asn,
        geo_json,
        plain_json,
    }
}

fn golden(name: &str, actual: &str) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    if std::env::var_os("FWLOG_UPDATE_GOLDEN").is_some() {
        std::fs::write(&p, actual).unwrap();
    }
    let want = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(
        actual, want,
        "{name} differs (FWLOG_UPDATE_GOLDEN=1 rewrites it)"
    );
}

#[test]
fn golden_reports_from_the_fixed_capture() {
    let f = fixture();
    let g = f.geo_json.to_str().unwrap();
    let (code, text, err) = fwlog(&["report", g]);
    assert_eq!(code, 0, "{err}");
    golden("report.golden", &text);
    // Stored without geo fields, enriched by the report: the same report.
    let (code, enriched, err) = fwlog(&[
        "report",
        "--geoip",
        f.city.to_str().unwrap(),
        "--asn",
        f.asn.to_str().unwrap(),
        f.plain_json.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(enriched, text);
    let (code, json, err) = fwlog(&["report", "--json", "--top", "3", g]);
    assert_eq!(code, 0, "{err}");
    golden("report.golden.json", &json);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["packets"], 48);
    assert_eq!(v["sources"].as_array().unwrap().len(), 3);
    // Standard input.
    let data = std::fs::read(&f.geo_json).unwrap();
    let (code, stdin_text, err) = fwlog_in(&["report", "-"], Some(&data));
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdin_text, text);
}

fn packets(args: &[&str]) -> u64 {
    let (code, out, err) = fwlog(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["packets"].as_u64().unwrap()
}

#[test]
fn filters_select_what_they_say() {
    let f = fixture();
    let g = f.geo_json.to_str().unwrap();
    let r = |extra: &[&str]| {
        let mut a = vec!["report", "--json"];
        a.extend_from_slice(extra);
        a.push(g);
        packets(&a)
    };
    assert_eq!(r(&[]), 48);
    assert_eq!(r(&["--prefix", "ssh"]), 6);
    assert_eq!(r(&["--prefix", "drop "]), 42);
    assert_eq!(r(&["--group", "7"]), 6);
    assert_eq!(r(&["--src", "81.2.69.0/24"]), 26);
    assert_eq!(r(&["--src", "2a02:ec0::/32"]), 5);
    assert_eq!(r(&["--src", "10.0.0.5"]), 2);
    assert_eq!(r(&["--dport", "23"]), 13);
    assert_eq!(r(&["--host", "89.160.20.113"]), 1);
    assert_eq!(r(&["--host", "89.160.20.112", "--dport", "53"]), 3);
    assert_eq!(r(&["--until", "2000-01-01T00:00:00Z"]), 0);
    assert_eq!(r(&["--since", "2000-01-01T00:00:00Z"]), 48);
    for bad in [
        &["--src", "81.2.69.0/33"][..],
        &["--src", "nonsense"],
        &["--dport", "70000"],
        &["--since", "yesterday-ish"],
    ] {
        let mut a = vec!["report"];
        a.extend_from_slice(bad);
        a.push(g);
        let (code, out, err) = fwlog(&a);
        assert_eq!(code, 64, "{bad:?}: {err}");
        assert!(out.is_empty());
    }
}

#[test]
fn hostile_and_broken_input_is_counted_escaped_and_never_fatal() {
    let f = fixture();
    let mut data = std::fs::read(&f.geo_json).unwrap();
    data.extend_from_slice(b"not json\n{\"event\":\"packet\"}\n\xff\xfe\n{\"event\":\"packet\",\"time\":\"2026-12-05T18:00:00Z\",\"group\":1,\"prefix\":\"\\u001b[2J\\nforged\",\"ip\":{\"src\":\"81.2.69.9\",\"dst\":\"10.0.0.1\",\"src_name\":\"\\u001b]0;x\\u0007\",\"protocol\":6},\"transport\":{\"dst_port\":1}}\n");
    data.extend_from_slice(
        b"{\"event\":\"loss\",\"time\":\"2026-12-05T18:00:01Z\",\"group\":1,\"count\":7}\n",
    );
    let (code, text, err) = fwlog_in(&["report", "-", "--top", "20"], Some(&data));
    assert_eq!(code, 0, "{err}");
    assert!(
        text.starts_with("fwlog report: 49 packets, 7 lost,"),
        "{text}"
    );
    assert!(text.contains("skipped: 3 unreadable lines"), "{text}");
    assert!(text.contains("\\x1b[2J\\x0aforged"), "{text}");
    assert!(text.contains("\\x1b]0;x\\x07"), "{text}");
    assert!(
        !text.bytes().any(|b| b < 0x20 && b != b'\n'),
        "a control byte reached the terminal:\n{text}"
    );
    // A missing file, a bad database, an SQL source: one line each, no output.
    let (code, out, err) = fwlog(&["report", "/nonexistent/x.jsonl"]);
    assert_eq!(
        (code, out.as_str(), err.lines().count()),
        (66, "", 1),
        "{err}"
    );
    let (code, out, err) = fwlog(&["report", "--geoip", "/nonexistent.mmdb", "-"]);
    assert_eq!(
        (code, out.as_str(), err.lines().count()),
        (66, "", 1),
        "{err}"
    );
    for sql in ["sqlite:/tmp/x.db", "postgresql://localhost/fwlog"] {
        let (code, _, err) = fwlog(&["report", sql]);
        assert_eq!(code, 64);
        assert!(err.contains("SQL sources are not available yet"), "{err}");
    }
    let (code, _, err) = fwlog(&["report", "spool:/nonexistent/spool"]);
    assert_eq!(code, 75, "{err}");
}
