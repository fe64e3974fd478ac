//! GeoIP/ASN parts of the formats (`--geoip`, `--asn`); the kernel format never shows them.
//!
//! - fwlog: after an address (and its name), ` [CC ASn]`: the country code and the AS number,
//!   whichever are known (`[DE AS3320]`, `[DE]`, `[AS3320]`); nothing when neither is. Off with
//!   `--no-geo-tag`.
//! - JSON: with databases configured, every `ip` object has `src_geo`, `dst_geo` (`null` or
//!   `{"country_code", "country", "city", "lat", "lon"}`) and `src_as`, `dst_as` (`null` or
//!   `{"number", "org"}`), each inner key always present, `null` when unknown.
//!
//! Strings come from [`GeoInfo`], already escaped like DNS names; they pass the name escaper
//! again here (as resolved names do), then serde_json for JSON.

use std::net::IpAddr;

use super::escape::{escape_name_into, name_allowed};
use super::write::{dec, s};
use super::Names;
use crate::dns::SafeName;
use crate::geo::GeoInfo;

/// The fwlog tag for `info`, with its leading space (nothing for `None`).
pub(crate) fn tag(out: &mut Vec<u8>, info: Option<&GeoInfo>) {
    let Some(info) = info else { return };
    let cc = info.country_code.as_ref();
    if cc.is_none() && info.asn.is_none() {
        return;
    }
    s(out, " [");
    if let Some(cc) = cc {
        escape_name_into(out, cc.shown().as_bytes());
        if info.asn.is_some() {
            s(out, " ");
        }
    }
    if let Some(n) = info.asn {
        s(out, "AS");
        dec(out, n as u64);
    }
    s(out, "]");
}

/// [`name_allowed`] as a table: this runs for every byte of every geo string of every JSON
/// line (the test below checks the two agree on all 256 bytes).
static NAME_ALLOWED: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'_' | b'\\' | b'~' | b'?' | b'(' | b')' | b'!'
            );
        b += 1;
    }
    t
};

fn json_str(out: &mut Vec<u8>, v: Option<&SafeName>) {
    let Some(v) = v else {
        s(out, "null");
        return;
    };
    // The same text as escape_name_into gives, JSON-quoted in place (no allocation): its bytes
    // are printable ASCII without `"`, so only the backslash needs JSON's escape.
    out.push(b'"');
    let bytes = v.shown().as_bytes();
    if bytes.iter().all(|&b| NAME_ALLOWED[usize::from(b)]) {
        // Every SafeName: copy the runs between backslashes whole.
        let mut rest = bytes;
        while let Some(i) = rest.iter().position(|&b| b == b'\\') {
            out.extend_from_slice(&rest[..i]);
            s(out, "\\\\");
            rest = &rest[i + 1..];
        }
        out.extend_from_slice(rest);
        out.push(b'"');
        return;
    }
    for &b in bytes {
        if b == b'\\' {
            s(out, "\\\\");
        } else if name_allowed(b) {
            out.push(b);
        } else {
            let mut esc = Vec::with_capacity(4);
            escape_name_into(&mut esc, &[b]);
            for e in esc {
                if e == b'\\' {
                    s(out, "\\\\");
                } else {
                    out.push(e);
                }
            }
        }
    }
    out.push(b'"');
}

fn json_f64(out: &mut Vec<u8>, v: Option<f64>) {
    match v {
        // GeoInfo keeps only finite coordinates. serde_json's shortest round-trip formatting
        // (a JSON number, as `52.5` or `50.0`): several times cheaper than `Display` through
        // `write!`, which was most of what the geo fields cost per line.
        Some(v) if v.is_finite() => {
            if serde_json::to_writer(&mut *out, &v).is_err() {
                s(out, "null");
            }
        }
        _ => s(out, "null"),
    }
}

/// The four values after the caller's `"src_geo":` key: `src_geo`'s value, then
/// `,"dst_geo":...,"src_as":...,"dst_as":...`.
pub(crate) fn json_keys(out: &mut Vec<u8>, src: Option<&GeoInfo>, dst: Option<&GeoInfo>) {
    json_place(out, src);
    s(out, ",\"dst_geo\":");
    json_place(out, dst);
    s(out, ",\"src_as\":");
    json_as(out, src);
    s(out, ",\"dst_as\":");
    json_as(out, dst);
}

/// The value of `src_geo`/`dst_geo`.
pub(crate) fn json_place(out: &mut Vec<u8>, info: Option<&GeoInfo>) {
    let Some(g) = info.filter(|g| g.has_place()) else {
        s(out, "null");
        return;
    };
    s(out, "{\"country_code\":");
    json_str(out, g.country_code.as_ref());
    s(out, ",\"country\":");
    json_str(out, g.country.as_ref());
    s(out, ",\"city\":");
    json_str(out, g.city.as_ref());
    s(out, ",\"lat\":");
    json_f64(out, g.location.map(|l| l.0));
    s(out, ",\"lon\":");
    json_f64(out, g.location.map(|l| l.1));
    s(out, "}");
}

/// The value of `src_as`/`dst_as`.
pub(crate) fn json_as(out: &mut Vec<u8>, info: Option<&GeoInfo>) {
    let Some(g) = info.filter(|g| g.asn.is_some() || g.as_org.is_some()) else {
        s(out, "null");
        return;
    };
    s(out, "{\"number\":");
    match g.asn {
        Some(n) => dec(out, n as u64),
        None => s(out, "null"),
    }
    s(out, ",\"org\":");
    json_str(out, g.as_org.as_ref());
    s(out, "}");
}

/// `names` without its geo data: what the fwlog format sees with `--no-geo-tag`.
pub(crate) struct WithoutGeo<'a>(pub &'a dyn Names);

impl Names for WithoutGeo<'_> {
    fn name(&self, addr: IpAddr) -> Option<&str> {
        self.0.name(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::info::safe_text;

    fn info() -> GeoInfo {
        GeoInfo {
            country_code: safe_text(Some("DE")),
            country: safe_text(Some("Germany")),
            city: safe_text(Some("Bad \"City\"\n")),
            location: Some((52.5, 13.25)),
            asn: Some(3320),
            as_org: safe_text(Some("Deutsche Telekom AG")),
        }
    }

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn tag_shows_what_is_known() {
        assert_eq!(text(|o| tag(o, Some(&info()))), " [DE AS3320]");
        let mut g = info();
        g.asn = None;
        assert_eq!(text(|o| tag(o, Some(&g))), " [DE]");
        g.country_code = None;
        assert_eq!(text(|o| tag(o, Some(&g))), "");
        g.asn = Some(7);
        assert_eq!(text(|o| tag(o, Some(&g))), " [AS7]");
    }

    #[test]
    fn the_table_is_name_allowed() {
        for b in 0..=255u8 {
            assert_eq!(NAME_ALLOWED[usize::from(b)], name_allowed(b), "{b}");
        }
        let mut o = Vec::new();
        json_str(&mut o, safe_text(Some("a\\b c")).as_ref());
        assert_eq!(String::from_utf8(o).unwrap(), r#""a\\092b\\032c""#);
    }

    #[test]
    fn json_values_parse_and_keep_escapes() {
        let place = text(|o| json_place(o, Some(&info())));
        let v: serde_json::Value = serde_json::from_str(&place).unwrap();
        assert_eq!(v["country_code"], "DE");
        assert_eq!(v["city"], "Bad\\032\\034City\\034\\010");
        assert_eq!(v["lat"], 52.5);
        assert_eq!(v["lon"], 13.25);
        let asn = text(|o| json_as(o, Some(&info())));
        let v: serde_json::Value = serde_json::from_str(&asn).unwrap();
        assert_eq!(v["number"], 3320);
        assert_eq!(v["org"], "Deutsche\\032Telekom\\032AG");
        assert_eq!(text(|o| json_place(o, None)), "null");
        assert_eq!(text(|o| json_as(o, Some(&GeoInfo::default()))), "null");
    }
}
