//! GeoIP/ASN enrichment (`--geoip`, `--asn`) with databases written by MaxMind's own writer:
//! IPv4 and IPv6 lookups, ranges never looked up, hostile strings, truncated and corrupt files
//! (one clear error, never a panic), and `fwlog run` in a namespace: tags and JSON fields on
//! real NFLOG packets, the kernel format untouched, SIGHUP keeping a good database over a bad
//! one and taking a new one.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fwlog::geo::{Geo, GeoConfig};
use support::daemon::{lines, wait_for, RunArgs};
use support::geo::{asn_db, city_db, mkmmdb};
use support::netns::NetNs;

fn open(city: Option<&Path>, asn: Option<&Path>) -> Geo {
    Geo::open(&GeoConfig {
        geoip: city.map(Path::to_path_buf),
        asn: asn.map(Path::to_path_buf),
    })
    .expect("open")
    .expect("some database")
}

fn shown(n: &Option<fwlog::dns::SafeName>) -> Option<&str> {
    n.as_ref().map(|n| n.shown())
}

#[test]
fn ipv4_and_ipv6_city_and_asn_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let city = city_db(dir.path(), "city.mmdb", None);
    let asn = asn_db(dir.path(), "asn.mmdb");
    let mut g = open(Some(&city), Some(&asn));

    let a = g
        .lookup("81.2.69.160".parse().unwrap())
        .expect("81.2.69.160");
    assert_eq!(shown(&a.country_code), Some("GB"));
    assert_eq!(shown(&a.country), Some("United\\032Kingdom"));
    assert_eq!(shown(&a.city), Some("London"));
    assert_eq!(a.location, Some((51.5142, -0.0931)));
    assert_eq!(a.asn, Some(20712));
    assert_eq!(
        shown(&a.as_org),
        Some("Andrews\\032\\038\\032Arnold\\032Ltd")
    );

    // Non-ASCII city names are bytes like any other: escaped, never raw UTF-8.
    let b = g.lookup("89.160.20.112".parse().unwrap()).unwrap();
    assert_eq!(shown(&b.city), Some("Link\\195\\182ping"));

    let c = g.lookup("2001:218::7".parse().unwrap()).unwrap();
    assert_eq!(
        (shown(&c.country_code), c.asn, shown(&c.city)),
        (Some("JP"), Some(2914), Some("Tokyo"))
    );
    // An IPv4-mapped IPv6 address is looked up as the IPv4 address.
    let m = g.lookup("::ffff:81.2.69.1".parse().unwrap()).unwrap();
    assert_eq!(shown(&m.country_code), Some("GB"));

    // Not in the database: nothing; private and documentation ranges are never looked up.
    assert!(g.lookup("8.8.8.8".parse().unwrap()).is_none());
    let before = g.stats();
    for a in [
        "10.0.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "203.0.113.5",
        "fe80::1",
        "2001:db8::1",
    ] {
        assert!(g.lookup(a.parse().unwrap()).is_none(), "{a}");
    }
    assert_eq!(
        g.stats(),
        before,
        "a local address reached the cache or a database"
    );

    // A second lookup is a cache hit.
    g.lookup("81.2.69.160".parse().unwrap());
    assert_eq!(g.stats().hits, before.hits + 1);

    // Only one of the two databases.
    let mut only_asn = open(None, Some(&asn));
    let x = only_asn.lookup("2a02:ec0::1".parse().unwrap()).unwrap();
    assert_eq!((x.country_code.is_none(), x.asn), (true, Some(3320)));
}

#[test]
fn an_ipv4_only_database_answers_ipv6_with_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spec = serde_json::json!({"database_type": "v4-only", "ip_version": 4, "records": [
        {"net": "81.2.69.0/24", "data": {"country": {"iso_code": "GB"}}}]});
    let db = mkmmdb(dir.path(), "v4.mmdb", &spec);
    let mut g = open(Some(&db), None);
    assert_eq!(
        shown(&g.lookup("81.2.69.9".parse().unwrap()).unwrap().country_code),
        Some("GB")
    );
    assert!(g.lookup("2a02:ec0::1".parse().unwrap()).is_none());
    assert_eq!(g.stats().errors, 1);
}

#[test]
fn hostile_database_strings_are_escaped_and_bad_coordinates_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let spec = serde_json::json!({"database_type": "GeoLite2-City\n\u{1b}[31m", "ip_version": 6,
        "records": [{"net": "81.2.69.0/24", "data": {
            "country": {"iso_code": "G]\nPKT: forged [", "names": {"en": "\u{1b}]0;owned\u{7}"}},
            "city": {"names": {"en": "a".repeat(400)}},
            "location": {"latitude": "nan", "longitude": "inf"}}},
        {"net": "2a02:ec0::/32", "data": {
            "country": {"iso_code": "DE"},
            "location": {"latitude": 95.0, "longitude": 10.0}}}]});
    let city = mkmmdb(dir.path(), "evil.mmdb", &spec);
    let spec = serde_json::json!({"database_type": "asn", "ip_version": 6, "records": [
        {"net": "81.2.69.0/24", "data": {"autonomous_system_number": 0,
            "autonomous_system_organization": "x\r\n<script>\u{202e}"}}]});
    let asn = mkmmdb(dir.path(), "evil-asn.mmdb", &spec);
    let mut g = open(Some(&city), Some(&asn));
    let a = g.lookup("81.2.69.160".parse().unwrap()).unwrap();
    assert_eq!(
        shown(&a.country_code),
        Some("G\\093\\010PKT\\058\\032forged\\032\\091")
    );
    assert_eq!(shown(&a.country), Some("\\027\\0930\\059owned\\007"));
    let city_name = shown(&a.city).unwrap();
    assert!(
        city_name.len() <= 254 && city_name.ends_with('~'),
        "{city_name}"
    );
    assert_eq!(a.location, None, "NaN/inf coordinates must not be shown");
    assert_eq!(a.asn, None, "AS 0 is no AS");
    assert_eq!(
        shown(&a.as_org),
        Some("x\\013\\010\\060script\\062\\226\\128\\174")
    );
    let b = g.lookup("2a02:ec0::1".parse().unwrap()).unwrap();
    assert_eq!(b.location, None, "latitude 95 is out of range");
    // Every string is within the DNS name alphabet: nothing a terminal or parser interprets.
    for s in [&a.country_code, &a.country, &a.city, &a.as_org] {
        let s = shown(s).unwrap();
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_\\~".contains(&b)),
            "{s}"
        );
    }
}

fn fwlog(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(support::fwlog_bin())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Missing, empty, truncated, corrupt and random files and a directory: `read` and `run` stop
/// with one line naming the flag's database and the path, before creating anything.
#[test]
fn bad_databases_are_one_clear_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(city_db(dir.path(), "good.mmdb", None)).unwrap();
    let put = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let mut corrupt = good.clone();
    // The search tree and data section, not the metadata at the end: pointers out of range.
    let end = good.len().saturating_sub(300);
    for b in &mut corrupt[16..end] {
        *b = 0xff;
    }
    let random: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let cases = [
        dir.path().join("missing.mmdb"),
        put("empty.mmdb", b""),
        put("truncated.mmdb", &good[..good.len() / 2]),
        put("tail-cut.mmdb", &good[..good.len() - 20]),
        put("corrupt.mmdb", &corrupt),
        put("random.mmdb", &random),
        dir.path().to_path_buf(),
    ];
    for bad in &cases {
        let b = bad.to_str().unwrap();
        for (flag, what) in [("--geoip", "GeoIP database"), ("--asn", "ASN database")] {
            let (code, out, err) = fwlog(&["read", "--no-dns", flag, b, "tests/data/sample.pcap"]);
            assert_eq!(code, 66, "{b}: {err}");
            assert!(out.is_empty(), "{b}: printed before failing:\n{out}");
            assert_eq!(err.lines().count(), 1, "{b}: {err}");
            assert!(err.starts_with(&format!("fwlog: {what} {b}")), "{err}");
            assert!(!err.contains("panicked"), "{err}");
        }
        let spool = dir.path().join("spool");
        let out = dir.path().join("out.log");
        let (code, _, err) = fwlog(&[
            "run",
            "--group",
            "7",
            "--geoip",
            b,
            "--spool",
            spool.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 66, "{b}: {err}");
        assert!(err.contains("GeoIP database"), "{err}");
        assert!(!spool.exists() && !out.exists(), "run created files first");
    }
}

/// Every prefix of a database and every single-byte change of it: opening either fails with
/// an error or gives a reader whose lookups answer; nothing panics.
#[test]
fn no_cut_or_flipped_byte_makes_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = city_db(dir.path(), "good.mmdb", None);
    let good = std::fs::read(&path).unwrap();
    let probe = dir.path().join("probe.mmdb");
    let addrs: Vec<std::net::IpAddr> = ["81.2.69.160", "89.160.20.1", "2a02:ec0::1", "2001:218::1"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let mut opened = 0;
    let mut try_bytes = |bytes: &[u8]| {
        std::fs::write(&probe, bytes).unwrap();
        if let Ok(Some(mut g)) = Geo::open(&GeoConfig {
            geoip: Some(probe.clone()),
            asn: None,
        }) {
            opened += 1;
            for &a in &addrs {
                let _ = g.lookup(a);
            }
        }
    };
    for cut in (0..good.len()).step_by(7) {
        try_bytes(&good[..cut]);
    }
    for i in 0..good.len() {
        for x in [0x01u8, 0x80, 0xff] {
            let mut b = good.clone();
            b[i] ^= x;
            try_bytes(&b);
        }
    }
    assert!(
        opened > 0,
        "no variant opened: the probe did not exercise lookups"
    );
}

#[test]
fn reopen_keeps_the_old_database_over_a_bad_one_and_takes_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let city = city_db(dir.path(), "city.mmdb", None);
    let mut g = open(Some(&city), None);
    let ip = "81.2.69.160".parse().unwrap();
    assert_eq!(shown(&g.lookup(ip).unwrap().country_code), Some("GB"));
    let good = std::fs::read(&city).unwrap();
    std::fs::write(&city, &good[..good.len() / 3]).unwrap();
    let w = g.reopen();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("keeping the database read before"), "{w:?}");
    assert_eq!(shown(&g.lookup(ip).unwrap().country_code), Some("GB"));
    city_db(dir.path(), "city.mmdb", Some(("FR", "France", "Paris")));
    assert!(g.reopen().is_empty());
    assert_eq!(shown(&g.lookup(ip).unwrap().country_code), Some("FR"));
}

/// The namespace: addresses of public networks on `lo` so packets between them pass the input
/// hook, an nft rule that counts and logs UDP to port 9999 in NFLOG group 7.
fn geo_namespace() -> NetNs {
    let ns = NetNs::new("geo");
    for a in ["81.2.69.160/32", "89.160.20.112/32"] {
        ns.ip(&["addr", "add", a, "dev", "lo"]);
    }
    for a in ["2a02:ec0::1/128", "2001:218::1/128"] {
        ns.ip(&["-6", "addr", "add", a, "dev", "lo", "nodad"]);
    }
    ns.nft(
        "table inet geo {\n chain input {\n type filter hook input priority 0;\n \
         udp dport 9999 counter log prefix \"geo \" group 7\n }\n}\n",
    );
    ns
}

/// Send one datagram from `src` to `dst`:9999 inside `ns`.
fn send(ns: &NetNs, src: &str, dst: &str) {
    let (src, dst): (std::net::IpAddr, std::net::IpAddr) =
        (src.parse().unwrap(), dst.parse().unwrap());
    ns.enter(|| {
        let s = std::net::UdpSocket::bind((src, 0)).expect("bind");
        s.send_to(b"geo", (dst, 9999)).expect("send");
    });
}

const METRICS: &str = "127.0.0.1:9643";

/// One sample of the daemon's metrics endpoint inside `ns`, by name (no labels).
fn geo_metric(ns: &NetNs, name: &str) -> Option<f64> {
    let o = ns
        .command("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("http://{METRICS}/metrics"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn run_tags_fwlog_and_json_never_kernel_and_sighup_reopens() {
    require_root!();
    let ns = geo_namespace();
    let dir = tempfile::tempdir().unwrap();
    let city = city_db(dir.path(), "city.mmdb", None);
    let asn = asn_db(dir.path(), "asn.mmdb");
    let spool = dir.path().join("spool");
    let (fw, js, kern) = (
        dir.path().join("fwlog.log"),
        dir.path().join("json.log"),
        dir.path().join("kernel.log"),
    );
    let o = |kind: &str, p: &Path| format!("{kind}={}", p.display());
    let d = RunArgs::new(dir.path())
        .group(7)
        .arg("--no-syslog-header")
        .arg("--geoip")
        .arg(city.to_str().unwrap())
        .arg("--asn")
        .arg(asn.to_str().unwrap())
        .with(&["--retain", "16MiB"])
        .output_to(o("fwlog", &fw))
        .output_to(o("json", &js))
        .output_to(o("kernel", &kern))
        .with(&["--metrics", METRICS])
        .start(&ns);
    send(&ns, "81.2.69.160", "89.160.20.112");
    send(&ns, "2a02:ec0::1", "2001:218::1");
    wait_for("two JSON lines", Duration::from_secs(20), || {
        lines(&js).len() >= 2
    });
    // The lookup cache's figures reach the metrics as packets are read, not only when the
    // window fills or SIGUSR1 asks: four addresses, each a miss the first time.
    let misses = geo_metric(&ns, "fwlog_geo_cache_misses_total");
    assert!(
        misses >= Some(4.0),
        "fwlog_geo_cache_misses_total {misses:?}"
    );
    assert_eq!(geo_metric(&ns, "fwlog_geo_errors_total"), Some(0.0));

    let text = std::fs::read_to_string(&fw).unwrap();
    assert!(
        text.contains("from 81.2.69.160 [GB AS20712] to 89.160.20.112 [SE AS29518],"),
        "{text}"
    );
    assert!(
        text.contains("from 2a02:ec0::1 [DE AS3320] to 2001:218::1 [JP AS2914],"),
        "{text}"
    );
    let json: Vec<serde_json::Value> = lines(&js)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ip = &json[0]["ip"];
    assert_eq!(ip["src_geo"]["country_code"], "GB");
    assert_eq!(ip["src_geo"]["city"], "London");
    assert_eq!(ip["src_geo"]["lat"], 51.5142);
    assert_eq!(ip["dst_geo"]["city"], "Link\\195\\182ping");
    assert_eq!(ip["src_as"]["number"], 20712);
    assert_eq!(ip["dst_as"]["org"], "Bredband2\\032AB");
    assert_eq!(json[1]["ip"]["dst_geo"]["country_code"], "JP");
    assert_eq!(json[1]["ip"]["src_as"]["number"], 3320);

    // SIGHUP with a truncated database in place: a warning, the old one kept.
    let good = std::fs::read(&city).unwrap();
    std::fs::write(&city, &good[..good.len() / 2]).unwrap();
    d.signal(libc::SIGHUP);
    wait_for("the SIGHUP warning", Duration::from_secs(10), || {
        d.stderr_text().contains("keeping the database read before")
    });
    send(&ns, "81.2.69.160", "89.160.20.112");
    wait_for("a third JSON line", Duration::from_secs(20), || {
        lines(&js).len() >= 3
    });
    let third: serde_json::Value = serde_json::from_str(&lines(&js)[2]).unwrap();
    assert_eq!(third["ip"]["src_geo"]["country_code"], "GB");
    // The counters line has the lookup cache's figures: every address of the three packets
    // was looked up once (the SIGHUP reread the ASN database, which empties the cache, so
    // the third packet's are misses again).
    d.signal(libc::SIGUSR1);
    wait_for("the counters line", Duration::from_secs(10), || {
        d.stderr_text().contains("; geo hits=")
    });
    let err = d.stderr_text();
    let geo = err.split("; geo ").nth(1).unwrap().lines().next().unwrap();
    let n = |k: &str| -> u64 {
        let w = geo.split(' ').find(|w| w.starts_with(k)).unwrap();
        w[k.len()..].parse().unwrap()
    };
    assert!(n("hits=") + n("misses=") >= 6 && n("misses=") >= 4, "{geo}");
    assert_eq!(n("errors="), 0, "{geo}");

    // A new database (what geoipupdate does): the next packets show it.
    city_db(dir.path(), "city.mmdb", Some(("FR", "France", "Paris")));
    d.signal(libc::SIGHUP);
    wait_for("the new database in use", Duration::from_secs(20), || {
        send(&ns, "81.2.69.160", "89.160.20.112");
        std::thread::sleep(Duration::from_millis(100));
        std::fs::read_to_string(&fw)
            .unwrap_or_default()
            .contains("from 81.2.69.160 [FR AS20712]")
    });
    let logged = ns.counter();
    wait_for("every logged packet", Duration::from_secs(20), || {
        lines(&kern).len() as u64 >= logged
    });
    assert_eq!(d.stop(), 0);
    assert_eq!(
        lines(&kern).len() as u64,
        logged,
        "lost or duplicated packets"
    );
    assert_eq!(lines(&js).len() as u64, logged);
    let err = std::fs::read_to_string(dir.path().join("stderr.0")).unwrap_or_default();
    assert!(!err.contains("panicked"), "{err}");

    // The kernel format is never enriched: the daemon's kernel lines are byte for byte what
    // replay prints without any database.
    let kernel_text = std::fs::read_to_string(&kern).unwrap();
    assert!(!kernel_text.contains('['), "{kernel_text}");
    let s = spool.to_str().unwrap();
    let (code, plain, err) = fwlog(&[
        "replay",
        "--spool",
        s,
        "--no-dns",
        "-f",
        "kernel",
        "--no-syslog-header",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(plain, kernel_text);

    // `fwlog report` over the spool (read-only, printed packets retained) and over the JSON
    // output counts every logged packet, the source enriched at report time.
    let (code, rep, err) = fwlog(&[
        "report",
        "--json",
        "--geoip",
        city.to_str().unwrap(),
        &format!("spool:{s}"),
    ]);
    assert_eq!(code, 0, "{err}");
    let rep: serde_json::Value = serde_json::from_str(&rep).unwrap();
    assert_eq!(rep["packets"].as_u64(), Some(logged));
    assert_eq!(rep["sources"][0]["source"], "81.2.69.160");
    assert_eq!(rep["sources"][0]["country"], "FR");
    let (code, rep, err) = fwlog(&["report", "--json", js.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let rep: serde_json::Value = serde_json::from_str(&rep).unwrap();
    assert_eq!(rep["packets"].as_u64(), Some(logged));
    let countries: Vec<&str> = rep["countries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["country"].as_str())
        .collect();
    for cc in ["GB", "FR", "DE"] {
        assert!(countries.contains(&cc), "{countries:?}");
    }

    // replay and read take the databases too; --no-geo-tag takes the tag out again.
    let c = city.to_str().unwrap();
    let (code, out, err) = fwlog(&["replay", "--spool", s, "--no-dns", "--geoip", c]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.matches("from 81.2.69.160 [FR] to 89.160.20.112 [SE],")
            .count() as u64,
        logged - 1
    );
    let pcap = dir.path().join("geo.pcap");
    let (code, _, err) = fwlog(&["replay", "--spool", s, "--pcap", pcap.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let p = pcap.to_str().unwrap();
    let (code, out, err) = fwlog(&[
        "read",
        "--no-dns",
        "--geoip",
        c,
        "--asn",
        asn.to_str().unwrap(),
        p,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("from 2a02:ec0::1 [DE AS3320] to 2001:218::1 [JP AS2914],"),
        "{out}"
    );
    let (_, out, _) = fwlog(&["read", "--no-dns", "--geoip", c, "--no-geo-tag", p]);
    assert!(
        out.contains("from 2a02:ec0::1 to 2001:218::1,") && !out.contains(" [DE"),
        "{out}"
    );
    let (_, with, _) = fwlog(&["read", "--no-dns", "--geoip", c, "-f", "kernel", p]);
    let (_, without, _) = fwlog(&["read", "--no-dns", "-f", "kernel", p]);
    assert_eq!(with, without);
}
