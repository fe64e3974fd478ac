//! GeoIP test databases, written by MaxMind's own Perl writer (`mkmmdb.pl`), never downloaded.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Write `spec` (see mkmmdb.pl) as `dir/name` and return its path.
pub fn mkmmdb(dir: &Path, name: &str, spec: &serde_json::Value) -> PathBuf {
    let ok = Command::new("perl")
        .args(["-MMaxMind::DB::Writer::Tree", "-e1"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "perl's MaxMind::DB::Writer is not installed: run tests/run.sh, which installs \
         libmaxmind-db-writer-perl"
    );
    let out = dir.join(name);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/mkmmdb.pl");
    let mut child = Command::new("perl")
        .arg(script)
        .arg(&out)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn perl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "mkmmdb.pl failed for {name}"
    );
    out
}

fn city_record(cc: &str, country: &str, city: &str, lat: f64, lon: f64) -> serde_json::Value {
    serde_json::json!({
        "country": {"iso_code": cc, "names": {"en": country}},
        "city": {"names": {"en": city}},
        "location": {"latitude": lat, "longitude": lon},
    })
}

/// A City database: 81.2.69.0/24 GB London (or `first` instead), 89.160.20.0/24 SE
/// Linköping, 2a02:ec0::/32 DE Berlin, 2001:218::/32 JP Tokyo, 216.160.83.0/24 US Milton,
/// 175.16.199.0/24 CN Changchun.
pub fn city_db(dir: &Path, name: &str, first: Option<(&str, &str, &str)>) -> PathBuf {
    let (cc, country, city) = first.unwrap_or(("GB", "United Kingdom", "London"));
    let spec = serde_json::json!({
        "database_type": "GeoLite2-City",
        "ip_version": 6,
        "records": [
            {"net": "81.2.69.0/24", "data": city_record(cc, country, city, 51.5142, -0.0931)},
            {"net": "89.160.20.0/24", "data": city_record("SE", "Sweden", "Linköping", 58.4167, 15.6167)},
            {"net": "2a02:ec0::/32", "data": city_record("DE", "Germany", "Berlin", 52.52, 13.405)},
            {"net": "2001:218::/32", "data": city_record("JP", "Japan", "Tokyo", 35.6895, 139.6917)},
            {"net": "216.160.83.0/24", "data": city_record("US", "United States", "Milton", 47.2513, -122.3149)},
            {"net": "175.16.199.0/24", "data": city_record("CN", "China", "Changchun", 43.88, 125.3228)},
        ]
    });
    mkmmdb(dir, name, &spec)
}

/// An ASN database for the same networks (none for 175.16.199.0/24).
pub fn asn_db(dir: &Path, name: &str) -> PathBuf {
    let rec = |n: u32, org: &str| serde_json::json!({"autonomous_system_number": n, "autonomous_system_organization": org});
    let spec = serde_json::json!({
        "database_type": "GeoLite2-ASN",
        "ip_version": 6,
        "records": [
            {"net": "81.2.69.0/24", "data": rec(20712, "Andrews & Arnold Ltd")},
            {"net": "89.160.20.0/24", "data": rec(29518, "Bredband2 AB")},
            {"net": "2a02:ec0::/32", "data": rec(3320, "Deutsche Telekom AG")},
            {"net": "2001:218::/32", "data": rec(2914, "NTT America, Inc.")},
            {"net": "216.160.83.0/24", "data": rec(209, "CenturyLink")},
        ]
    });
    mkmmdb(dir, name, &spec)
}
