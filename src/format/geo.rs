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
//! again here (as resolved names do), then are quoted for JSON.
//!
//! Cost: an address's three texts (its JSON `_geo` value, its JSON `_as` value, its fwlog tag)
//! are made once, the first time a line shows it, and kept in its [`GeoInfo`] (which the
//! lookup cache holds, see [`crate::geo::info::Rendered`]): every later line copies them. The
//! bytes are exactly what rendering on every line gave (the tests compare the two).

use std::net::IpAddr;

use super::escape::{escape_name_into, name_allowed};
use super::write::{dec, s};
use super::Names;
use crate::dns::SafeName;
use crate::geo::info::Parts;
use crate::geo::GeoInfo;

/// Which of an address's rendered parts is which.
const PLACE: usize = 0;
const AS: usize = 1;
const TAG: usize = 2;

/// `info`'s texts, rendered now.
fn render(info: &GeoInfo) -> Parts {
    let (mut place, mut asn, mut tag) = (Vec::new(), Vec::new(), Vec::new());
    render_place(&mut place, info);
    render_as(&mut asn, info);
    render_tag(&mut tag, info);
    let mut p = [&[][..]; crate::geo::info::PARTS];
    p[PLACE] = &place;
    p[AS] = &asn;
    p[TAG] = &tag;
    Parts::new(p)
}

/// `info`'s rendered texts, made on first use.
#[inline]
fn parts(info: &GeoInfo) -> &Parts {
    let p = info.rendered.get_or_init(|| render(info));
    // Debug builds (every test) check the kept text is still what the fields give: a field
    // changed after the info was printed would show here.
    #[cfg(debug_assertions)]
    {
        let fresh = render(info);
        for i in 0..crate::geo::info::PARTS {
            debug_assert_eq!(p.get(i), fresh.get(i), "stale geo text");
        }
    }
    p
}

/// Part `which` of `info`, or `none` for an address the databases know nothing about.
#[inline]
fn part<'a>(info: Option<&'a GeoInfo>, which: usize, none: &'static [u8]) -> &'a [u8] {
    info.map_or(none, |g| parts(g).get(which))
}

/// The fwlog tag for `info`, with its leading space (nothing for `None`).
pub(crate) fn tag(out: &mut Vec<u8>, info: Option<&GeoInfo>) {
    out.extend_from_slice(part(info, TAG, b""));
}

fn render_tag(out: &mut Vec<u8>, info: &GeoInfo) {
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
    let place = |g| part(g, PLACE, b"null");
    let asn = |g| part(g, AS, b"null");
    let (sp, dp, sa, da) = (place(src), place(dst), asn(src), asn(dst));
    out.reserve(sp.len() + dp.len() + sa.len() + da.len() + 40);
    out.extend_from_slice(sp);
    s(out, ",\"dst_geo\":");
    out.extend_from_slice(dp);
    s(out, ",\"src_as\":");
    out.extend_from_slice(sa);
    s(out, ",\"dst_as\":");
    out.extend_from_slice(da);
}

/// The value of `src_geo`/`dst_geo`.
fn render_place(out: &mut Vec<u8>, g: &GeoInfo) {
    if !g.has_place() {
        s(out, "null");
        return;
    }
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
fn render_as(out: &mut Vec<u8>, g: &GeoInfo) {
    if g.asn.is_none() && g.as_org.is_none() {
        s(out, "null");
        return;
    }
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

    fn name_text(&self, addr: IpAddr) -> Option<super::NameText<'_>> {
        self.0.name_text(addr)
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
            ..GeoInfo::default()
        }
    }

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    /// The tag, through the kept text (rendered on the first call, copied on the second).
    fn tag_text(g: &GeoInfo) -> String {
        let first = text(|o| tag(o, Some(g)));
        assert_eq!(text(|o| tag(o, Some(g))), first);
        first
    }

    #[test]
    fn tag_shows_what_is_known() {
        assert_eq!(tag_text(&info()), " [DE AS3320]");
        // Each change on a clone: a clone renders its own text.
        let mut g = info().clone();
        g.asn = None;
        assert_eq!(tag_text(&g), " [DE]");
        let mut g = g.clone();
        g.country_code = None;
        assert_eq!(tag_text(&g), "");
        let mut g = g.clone();
        g.asn = Some(7);
        assert_eq!(tag_text(&g), " [AS7]");
        assert_eq!(text(|o| tag(o, None)), "");
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

    /// The four JSON values of a line, parsed.
    fn keys(src: Option<&GeoInfo>, dst: Option<&GeoInfo>) -> serde_json::Value {
        let body = text(|o| json_keys(o, src, dst));
        serde_json::from_str(&format!("{{\"src_geo\":{body}}}")).unwrap()
    }

    #[test]
    fn json_values_parse_and_keep_escapes() {
        let g = info();
        for _ in 0..2 {
            let v = keys(Some(&g), None);
            assert_eq!(v["src_geo"]["country_code"], "DE");
            assert_eq!(v["src_geo"]["city"], "Bad\\032\\034City\\034\\010");
            assert_eq!(v["src_geo"]["lat"], 52.5);
            assert_eq!(v["src_geo"]["lon"], 13.25);
            assert_eq!(v["src_as"]["number"], 3320);
            assert_eq!(v["src_as"]["org"], "Deutsche\\032Telekom\\032AG");
            assert_eq!(v["dst_geo"], serde_json::Value::Null);
            assert_eq!(v["dst_as"], serde_json::Value::Null);
        }
        let empty = GeoInfo::default();
        let v = keys(Some(&empty), Some(&g));
        assert_eq!(v["src_geo"], serde_json::Value::Null);
        assert_eq!(v["src_as"], serde_json::Value::Null);
        assert_eq!(v["dst_geo"]["country"], "Germany");
    }

    #[test]
    fn kept_text_is_the_text_rendered_per_line() {
        let mut only_place = info();
        only_place.asn = None;
        only_place.as_org = None;
        let mut only_as = info();
        only_as.country_code = None;
        only_as.country = None;
        only_as.city = None;
        only_as.location = None;
        let mut no_code = info();
        no_code.country_code = None;
        let hostile = GeoInfo {
            country_code: safe_text(Some("\u{1b}[31m")),
            city: safe_text(Some(&"\\\"".repeat(200))),
            location: Some((-90.0, 180.0)),
            as_org: safe_text(Some("é\n")),
            ..GeoInfo::default()
        };
        let all = [
            info(),
            only_place,
            only_as,
            no_code,
            hostile,
            GeoInfo::default(),
        ];
        for a in &all {
            for b in &all {
                // What one line shows, rendered from the fields (the old way, every time).
                let mut want = Vec::new();
                render_place(&mut want, a);
                s(&mut want, ",\"dst_geo\":");
                render_place(&mut want, b);
                s(&mut want, ",\"src_as\":");
                render_as(&mut want, a);
                s(&mut want, ",\"dst_as\":");
                render_as(&mut want, b);
                assert_eq!(text(|o| json_keys(o, Some(a), Some(b))).as_bytes(), want);
                let mut want = Vec::new();
                render_tag(&mut want, a);
                assert_eq!(text(|o| tag(o, Some(a))).as_bytes(), want);
            }
        }
    }
}
