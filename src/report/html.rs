//! `fwlog report --html FILE`: the report as one self-contained HTML page.
//!
//! Spec:
//! - Nothing external: inline CSS and SVG, no script, no font, image or link to fetch; the page
//!   works offline and printed.
//! - A world map (Natural Earth 110 m countries, embedded from `world.txt`, made by
//!   tools/world-map.py; equirectangular, 3600 x 1800 units of a tenth of a degree) with each
//!   country shaded by its packets (five steps, logarithmic) and the top sources that have a
//!   location as points (`circle.pt`, `data-cc`, `data-src`, `data-packets`), the area
//!   growing with the count; then a timeline (packets per hour, per day over long windows) and
//!   the same tables as the terminal report.
//! - Bounded size whatever the input: at most [`MAX_POINTS`] points, [`MAX_ROWS`] rows per
//!   table and [`MAX_BARS`] bars; the map is about 100 KB; the page stays under 1 MiB.
//! - Every string from the input is HTML-escaped after [`super::text::clean`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::agg::Aggregate;
use super::source::ReadStats;
use super::text::{clean, tables};

pub const MAX_POINTS: usize = 500;
pub const MAX_ROWS: usize = 100;
pub const MAX_BARS: usize = 744;

/// Natural Earth 110 m countries: `CC|name|path` lines (see tools/world-map.py).
const WORLD: &str = include_str!("world.txt");

const STYLE: &str = "\
body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:12px;color:#222}\
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .4em}\
svg{width:100%;height:auto;display:block}\
.sea{fill:#eef3f8}.c{fill:#dcdcdc;stroke:#fff;stroke-width:1.5}\
.s1{fill:#fde0c5}.s2{fill:#facba6}.s3{fill:#f59e72}.s4{fill:#e8654a}.s5{fill:#c0392b}\
.pt{fill:#1f5fa8;fill-opacity:.6;stroke:#0b2e57;stroke-width:2}\
.bar{fill:#1f5fa8}.axis{font-size:11px;fill:#555}\
.wrap{overflow-x:auto}table{border-collapse:collapse;font-size:.9em;margin-bottom:.5em}\
th,td{padding:2px 8px;text-align:left;white-space:nowrap;border-bottom:1px solid #e4e4e4}\
td:first-child,th:first-child{text-align:right}\
footer{margin-top:2em;font-size:.8em;color:#666}\
@media print{body{max-width:none;font-size:11px}.wrap{overflow:visible}h2{break-after:avoid}\
table,svg{break-inside:avoid}}";

/// `s` with `& < > " '` as entities.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn shade(count: u64, max: u64) -> u32 {
    if count == 0 || max == 0 {
        return 0;
    }
    let l = ((count as f64).ln_1p() / (max as f64).ln_1p() * 5.0).ceil();
    (l as u32).clamp(1, 5)
}

fn map(out: &mut String, a: &Aggregate) {
    let counts: BTreeMap<String, u64> = a
        .countries
        .iter()
        .map(|(cc, c, _)| (clean(cc), c))
        .collect();
    let max = counts.values().copied().max().unwrap_or(0);
    out.push_str("<svg id=\"map\" viewBox=\"0 0 3600 1800\" role=\"img\" aria-label=\"World map of sources\"><rect class=\"sea\" width=\"3600\" height=\"1800\"/>");
    for line in WORLD.lines().filter(|l| !l.starts_with('#')) {
        let mut f = line.splitn(3, '|');
        let (Some(cc), Some(name), Some(d)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let n = counts.get(cc).copied().unwrap_or(0);
        let _ = write!(
            out,
            "<path class=\"c s{}\" data-cc=\"{}\" d=\"{}\"><title>{}: {n}</title></path>",
            shade(n, max),
            esc(cc),
            d,
            esc(name)
        );
    }
    let points: Vec<_> = a
        .sources
        .top(usize::MAX)
        .into_iter()
        .filter(|(_, _, s)| s.location.is_some())
        .take(MAX_POINTS)
        .collect();
    let pmax = points.first().map_or(1, |p| p.1).max(1);
    out.push_str("<g id=\"points\">");
    for (ip, c, s) in &points {
        let Some((lat, lon)) = s.location else {
            continue;
        };
        let r = 6.0 + 24.0 * (*c as f64 / pmax as f64).sqrt();
        let cc = s.country.as_deref().map(clean).unwrap_or_default();
        let _ = write!(
            out,
            "<circle class=\"pt\" data-cc=\"{}\" data-src=\"{ip}\" data-packets=\"{c}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"{r:.1}\"><title>{ip} {}: {c}</title></circle>",
            esc(&cc),
            (lon + 180.0) * 10.0,
            (90.0 - lat) * 10.0,
            esc(&cc),
        );
    }
    out.push_str("</g></svg>\n");
}

fn timeline(out: &mut String, a: &Aggregate) {
    // Per hour, or per day when that would be too many bars.
    let step = if a.hours.len() > MAX_BARS {
        86_400
    } else {
        3_600
    };
    let mut bars: BTreeMap<i64, u64> = BTreeMap::new();
    for (&h, &c) in &a.hours {
        *bars.entry(h.div_euclid(step) * step).or_insert(0) += c;
    }
    while bars.len() > MAX_BARS {
        bars.pop_first();
    }
    let max = bars.values().copied().max().unwrap_or(1).max(1);
    let (w, h) = (1000.0, 160.0);
    // A few bars stay bars, not blocks.
    let bw = (w / bars.len().max(1) as f64).min(40.0);
    let _ = write!(
        out,
        "<svg id=\"timeline\" viewBox=\"0 0 {w} {}\" role=\"img\" aria-label=\"Packets per {}\">",
        h + 20.0,
        if step == 3600 { "hour" } else { "day" }
    );
    for (i, (t, c)) in bars.iter().enumerate() {
        let bh = h * *c as f64 / max as f64;
        let _ = write!(
            out,
            "<rect class=\"bar\" x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{bh:.2}\"><title>{}: {c}</title></rect>",
            i as f64 * bw,
            h - bh,
            (bw * 0.9).max(0.5),
            esc(&super::text::time(*t))
        );
    }
    if let (Some(f), Some(l)) = (bars.keys().next(), bars.keys().last()) {
        let _ = write!(
            out,
            "<text class=\"axis\" x=\"0\" y=\"{}\">{}</text><text class=\"axis\" x=\"{w}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            h + 16.0,
            esc(&super::text::time(*f)),
            h + 16.0,
            esc(&super::text::time(*l))
        );
    }
    out.push_str("</svg>\n");
}

/// The whole page.
pub fn render_html(a: &Aggregate, st: &ReadStats, top: usize) -> String {
    let mut out = String::with_capacity(256 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>fwlog report</title><style>{STYLE}</style></head><body>\n<h1>fwlog report</h1>\n<p id=\"summary\">{}</p>\n",
        esc(&super::text::summary(a, st))
    );
    out.push_str("<h2>Where the traffic comes from</h2>\n");
    map(&mut out, a);
    out.push_str("<h2>Timeline</h2>\n");
    timeline(&mut out, a);
    for t in tables(a, top.min(MAX_ROWS)) {
        if t.title == "Per hour" {
            continue;
        }
        let _ = write!(
            out,
            "<h2>{}</h2>\n<div class=\"wrap\"><table><tr>",
            esc(&t.title)
        );
        for h in &t.header {
            let _ = write!(out, "<th>{}</th>", esc(h));
        }
        out.push_str("</tr>");
        if t.rows.is_empty() {
            out.push_str("<tr><td></td><td>(none)</td></tr>");
        }
        for r in &t.rows {
            out.push_str("<tr>");
            for c in r {
                let _ = write!(out, "<td>{}</td>", esc(c));
            }
            out.push_str("</tr>");
        }
        out.push_str("</table></div>\n");
    }
    out.push_str("<footer>Made by fwlog report. Map: Natural Earth 1:110m countries (public domain), equirectangular.</footer>\n</body></html>\n");
    out
}
