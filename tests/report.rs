//! `fwlog report` on the fixed capture tests/data/geo.pcap (real NFLOG records, made by
//! tools/make-geo-capture.sh): golden terminal and JSON reports, geo fields stored or added at
//! report time, every filter, standard input, hostile and broken input (SQL sources:
//! tests/report_sql.rs).
//!
//! Set FWLOG_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::geo::{asn_db, city_db};

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
    // (SQL sources: tests/report_sql.rs.)
    let (code, _, err) = fwlog(&["report", "sqlite:"]);
    assert_eq!((code, err.lines().count()), (64, 1), "{err}");
    let (code, _, err) = fwlog(&["report", "spool:/nonexistent/spool"]);
    assert_eq!(code, 75, "{err}");
}

fn html_report(f: &Fixture, dir: &Path) -> (PathBuf, String) {
    let page = dir.join("report.html");
    let (code, out, err) = fwlog(&[
        "report",
        "--html",
        page.to_str().unwrap(),
        f.geo_json.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty(), "{out}");
    let html = std::fs::read_to_string(&page).unwrap();
    (page, html)
}

/// Numbers of an SVG path's `M x yLx y...Z` data: its bounding box.
fn bbox(d: &str) -> (f64, f64, f64, f64) {
    let nums: Vec<f64> = d
        .split(|c: char| !(c.is_ascii_digit() || c == '-' || c == '.'))
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let xs = nums.iter().step_by(2);
    let ys = nums.iter().skip(1).step_by(2);
    (
        xs.clone().cloned().fold(f64::MAX, f64::min),
        ys.clone().cloned().fold(f64::MAX, f64::min),
        xs.cloned().fold(f64::MIN, f64::max),
        ys.cloned().fold(f64::MIN, f64::max),
    )
}

/// `name="value"` inside one tag.
fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
    let k = format!("{name}=\"");
    let at = tag
        .match_indices(&k)
        .map(|(i, _)| i)
        .find(|&i| i == 0 || tag.as_bytes()[i - 1] == b' ')
        .unwrap_or_else(|| panic!("{name} in {tag}"))
        + k.len();
    &tag[at..at + tag[at..].find('"').unwrap()]
}

#[test]
fn html_report_is_self_contained_and_shows_the_points_in_chromium() {
    require_root!();
    support::require_tool("chromium");
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (page, html) = html_report(&f, dir.path());
    assert!(html.len() < 1 << 20);
    for external in [
        "http:", "https:", "<script", " src=", " href=", "url(", "@import",
    ] {
        assert!(
            !html.contains(external),
            "the page refers to something outside: {external}"
        );
    }
    // Chromium in a namespace with no network at all (only a down loopback): whatever the page
    // tried to fetch would fail and be logged.
    let ns = support::netns::NetNs::new("chrome");
    let profile = dir.path().join("profile");
    let shot = dir.path().join("report.png");
    let chromium = |extra: &[&str]| {
        let out = ns
            .command("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
                "--window-size=1280,1800",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (_, log) = chromium(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).expect("screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    let (dom, log2) = chromium(&["--dump-dom"]);
    for l in log.lines().chain(log2.lines()) {
        assert!(
            !l.contains("CONSOLE") && !l.contains("net::ERR") && !l.contains("Refused to"),
            "the page logged or requested something: {l}"
        );
    }
    // The DOM: one point per source with a location (10.0.0.5 has none), each inside the
    // outline of its country.
    let paths: std::collections::HashMap<&str, (f64, f64, f64, f64)> = dom
        .split("<path ")
        .skip(1)
        .map(|t| (attr(t, "data-cc"), bbox(attr(t, "d"))))
        .collect();
    assert!(paths.len() > 170, "{} countries", paths.len());
    let mut points: Vec<(String, String)> = Vec::new();
    for t in dom.split("<circle ").skip(1) {
        let t = &t[..t.find('>').unwrap()];
        assert_eq!(attr(t, "class"), "pt");
        let cc = attr(t, "data-cc");
        let (x, y): (f64, f64) = (
            attr(t, "cx").parse().unwrap(),
            attr(t, "cy").parse().unwrap(),
        );
        let b = paths[cc];
        assert!(
            x >= b.0 && x <= b.2 && y >= b.1 && y <= b.3,
            "{cc} point {x},{y} outside {b:?}"
        );
        points.push((attr(t, "data-src").to_string(), cc.to_string()));
    }
    points.sort();
    let want: Vec<(String, String)> = [
        ("175.16.199.1", "CN"),
        ("216.160.83.56", "US"),
        ("2a02:ec0::1", "DE"),
        ("81.2.69.160", "GB"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(points, want);
    assert!(dom.contains("data-cc=\"GB\" d=") && dom.contains("class=\"c s5\" data-cc=\"GB\""));
    if let Some(keep) = std::env::var_os("FWLOG_REPORT_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

/// 20 000 sources with locations, over a year: the page stays under 1 MiB.
#[test]
fn html_report_stays_under_one_mib_whatever_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    for i in 0..20_000u32 {
        let _ = std::fmt::Write::write_fmt(
            &mut lines,
            format_args!(
                "{{\"event\":\"packet\",\"time\":\"2026-{:02}-{:02}T{:02}:00:00Z\",\"group\":1,\"prefix\":\"p{}\",\"ip\":{{\"src\":\"81.{}.{}.1\",\"dst\":\"10.0.0.1\",\"protocol\":6,\"src_geo\":{{\"country_code\":\"C{}\",\"lat\":{},\"lon\":{}}}}},\"transport\":{{\"dst_port\":{}}}}}\n",
                1 + i % 12,
                1 + i % 28,
                i % 24,
                i % 5000,
                i / 256,
                i % 256,
                i % 300,
                f64::from(i % 170) - 85.0,
                f64::from(i % 360) - 180.0,
                i % 65535
            ),
        );
    }
    let input = dir.path().join("many.jsonl");
    std::fs::write(&input, lines).unwrap();
    let page = dir.path().join("big.html");
    let (code, _, err) = fwlog(&[
        "report",
        "--top",
        "100000",
        "--html",
        page.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let len = std::fs::metadata(&page).unwrap().len();
    assert!(len < 1 << 20, "{len} bytes");
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<circle ").count(), 500);
    // A link where the page should be is not followed.
    let link = dir.path().join("link.html");
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
    let (code, _, err) = fwlog(&[
        "report",
        "--html",
        link.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert_eq!(code, 73, "{err}");
    assert!(!dir.path().join("elsewhere").exists());
}
