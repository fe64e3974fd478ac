//! Printing a report: the terminal text and its JSON (`--json`).
//!
//! Times are local (the TZ environment variable applies), `YYYY-MM-DD HH:MM:SS`. Every string
//! from the sources passes [`clean`]. Tables list at most `top` rows; the JSON has the same
//! rows with the same fields.

use std::fmt::Write as _;
use std::net::IpAddr;

use chrono::{Local, TimeZone};
use serde_json::{json, Value};

use super::agg::{Aggregate, SourceInfo, SCAN_HOSTS, SCAN_PORTS};
use super::source::ReadStats;
use crate::format::NameTables;

/// Printable ASCII passes (the backslash too: the formats' own escapes stay readable); any
/// other byte becomes `\xNN`, so nothing a terminal interprets is printed.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

pub(crate) fn time(t: i64) -> String {
    match Local.timestamp_opt(t, 0).single() {
        Some(d) => d.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => t.to_string(),
    }
}

fn proto_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        136 => "udplite".into(),
        132 => "sctp".into(),
        33 => "dccp".into(),
        n => format!("proto{n}"),
    }
}

fn service(t: &NameTables, proto: u8, port: u16) -> Option<String> {
    match proto {
        6 | 17 => t.service(port, proto == 6).map(clean),
        _ => None,
    }
}

fn as_text(s: &SourceInfo) -> String {
    match (s.asn, &s.org) {
        (Some(n), Some(o)) => format!("AS{n} {}", clean(o)),
        (Some(n), None) => format!("AS{n}"),
        (None, Some(o)) => clean(o),
        (None, None) => "-".into(),
    }
}

/// One table of the report: what the terminal and the HTML page both show.
pub struct Table {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

fn table(out: &mut Vec<Table>, title: &str, header: &[&str], rows: Vec<Vec<String>>) {
    out.push(Table {
        title: title.to_string(),
        header: header.iter().map(|h| h.to_string()).collect(),
        rows,
    });
}

/// Rows under a header, columns padded; the first column is right-aligned (a count).
fn write_table(out: &mut String, t: &Table) {
    let _ = writeln!(out, "\n{}", t.title);
    if t.rows.is_empty() {
        out.push_str("  (none)\n");
        return;
    }
    let mut w: Vec<usize> = t.header.iter().map(|h| h.len()).collect();
    for r in &t.rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |out: &mut String, cells: &[String]| {
        let mut l = String::from(" ");
        for (i, c) in cells.iter().enumerate() {
            if i == 0 {
                let _ = write!(l, " {c:>0$}", w[0]);
            } else {
                let _ = write!(l, "  {c:<0$}", w[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(out, &t.header);
    for r in &t.rows {
        line(out, r);
    }
}

fn scans(a: &Aggregate, top: usize) -> Vec<(&IpAddr, u64, &SourceInfo)> {
    let mut v: Vec<_> = a.sources.iter().filter(|(_, _, s)| s.is_scan()).collect();
    v.sort_by(|x, y| {
        (y.2.max_ports.max(y.2.max_hosts), y.1)
            .cmp(&(x.2.max_ports.max(x.2.max_hosts), x.1))
            .then_with(|| x.0.cmp(y.0))
    });
    v.truncate(top);
    v
}

/// How much a shown count may be low by (0: every count is exact).
fn approx_by(a: &Aggregate) -> u64 {
    [
        a.sources.dropped_max,
        a.ports.dropped_max,
        a.prefixes.dropped_max,
        a.countries.dropped_max,
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
}

fn approx_note(a: &Aggregate) -> Option<String> {
    let d = approx_by(a);
    (d > 0).then(|| {
        format!("more distinct values than the tables hold: counts may be low by up to {d}")
    })
}

/// The report's opening lines: totals, loss, the time span, what was skipped, whether counts
/// are approximate (no trailing newline).
pub fn summary(a: &Aggregate, st: &ReadStats) -> String {
    let mut out = String::new();
    let span = match (a.first, a.last) {
        (Some(f), Some(l)) => format!(", {} to {}", time(f), time(l)),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "fwlog report: {} packets, {} lost{span}",
        a.packets, a.lost
    );
    if st.unreadable_lines > 0 || st.spool_damage > 0 {
        let _ = writeln!(
            out,
            "skipped: {} unreadable lines, {} damaged spool regions",
            st.unreadable_lines, st.spool_damage
        );
    }
    if let Some(n) = approx_note(a) {
        let _ = writeln!(out, "note: {n}");
    }
    out.truncate(out.trim_end().len());
    out
}

/// The terminal report.
pub fn render_text(a: &Aggregate, st: &ReadStats, top: usize) -> String {
    let mut out = summary(a, st);
    out.push('\n');
    for t in tables(a, top) {
        write_table(&mut out, &t);
    }
    out
}

/// The report's tables, in order: per prefix, top sources, top ports, top countries, per hour,
/// scans.
pub fn tables(a: &Aggregate, top: usize) -> Vec<Table> {
    let t = NameTables::builtin();
    let mut out = Vec::new();
    table(
        &mut out,
        "Per prefix",
        &["packets", "prefix"],
        a.prefixes
            .top(top)
            .into_iter()
            .map(|(p, c, _)| {
                let p = clean(p.trim_end());
                vec![c.to_string(), if p.is_empty() { "-".into() } else { p }]
            })
            .collect(),
    );
    sources_table(&mut out, a, top);
    table(
        &mut out,
        "Top destination ports",
        &["packets", "port", "service"],
        a.ports
            .top(top)
            .into_iter()
            .map(|(&(p, port), c, _)| {
                vec![
                    c.to_string(),
                    format!("{port}/{}", proto_name(p)),
                    service(&t, p, port).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect(),
    );
    table(
        &mut out,
        "Top countries",
        &["packets", "country"],
        a.countries
            .top(top)
            .into_iter()
            .map(|(cc, c, _)| vec![c.to_string(), clean(cc)])
            .collect(),
    );
    let peak = a.hours.values().copied().max().unwrap_or(1).max(1);
    table(
        &mut out,
        "Per hour",
        &["packets", "hour", ""],
        a.hours
            .iter()
            .map(|(&h, &c)| {
                let bar = "#".repeat(((c * 40).div_ceil(peak)) as usize);
                vec![c.to_string(), time(h)[..16].to_string(), bar]
            })
            .collect(),
    );
    scans_table(&mut out, a, top);
    out
}

fn sources_table(out: &mut Vec<Table>, a: &Aggregate, top: usize) {
    table(
        out,
        "Top sources",
        &[
            "packets",
            "source",
            "name",
            "country",
            "AS",
            "first seen",
            "last seen",
        ],
        a.sources
            .top(top)
            .into_iter()
            .map(|(ip, c, s)| {
                vec![
                    c.to_string(),
                    ip.to_string(),
                    s.name.as_deref().map_or("-".into(), clean),
                    s.country.as_deref().map_or("-".into(), clean),
                    as_text(s),
                    time(s.first),
                    time(s.last),
                ]
            })
            .collect(),
    );
}

fn scans_table(out: &mut Vec<Table>, a: &Aggregate, top: usize) {
    table(
        out,
        &format!("Scans (at least {SCAN_PORTS} ports or {SCAN_HOSTS} hosts in one minute)"),
        &[
            "packets",
            "source",
            "ports",
            "hosts",
            "country",
            "first seen",
            "last seen",
        ],
        scans(a, top)
            .into_iter()
            .map(|(ip, c, s)| {
                vec![
                    c.to_string(),
                    ip.to_string(),
                    s.max_ports.to_string(),
                    s.max_hosts.to_string(),
                    s.country.as_deref().map_or("-".into(), clean),
                    time(s.first),
                    time(s.last),
                ]
            })
            .collect(),
    );
}

fn source_json(ip: &IpAddr, c: u64, s: &SourceInfo) -> Value {
    json!({
        "source": ip.to_string(),
        "packets": c,
        "name": s.name.as_deref().map(clean),
        "country": s.country.as_deref().map(clean),
        "asn": s.asn,
        "as_org": s.org.as_deref().map(clean),
        "lat": s.location.map(|l| l.0),
        "lon": s.location.map(|l| l.1),
        "first_seen": s.first,
        "last_seen": s.last,
        "max_ports_in_window": s.max_ports,
        "max_hosts_in_window": s.max_hosts,
    })
}

/// The same report as one JSON object (times as seconds since the epoch).
pub fn render_json(a: &Aggregate, st: &ReadStats, top: usize) -> Value {
    let t = NameTables::builtin();
    json!({
        "packets": a.packets,
        "lost": a.lost,
        "first": a.first,
        "last": a.last,
        "unreadable_lines": st.unreadable_lines,
        "spool_damage": st.spool_damage,
        "approximate_by": approx_by(a),
        "prefixes": a.prefixes.top(top).into_iter()
            .map(|(p, c, _)| json!({"prefix": clean(p), "packets": c})).collect::<Vec<_>>(),
        "sources": a.sources.top(top).into_iter()
            .map(|(ip, c, s)| source_json(ip, c, s)).collect::<Vec<_>>(),
        "ports": a.ports.top(top).into_iter().map(|(&(p, port), c, _)| json!({
            "port": port, "protocol": proto_name(p), "service": service(&t, p, port), "packets": c,
        })).collect::<Vec<_>>(),
        "countries": a.countries.top(top).into_iter()
            .map(|(cc, c, _)| json!({"country": clean(cc), "packets": c})).collect::<Vec<_>>(),
        "hours": a.hours.iter().map(|(h, c)| json!({"hour": h, "packets": c})).collect::<Vec<_>>(),
        "scans": scans(a, top).into_iter()
            .map(|(ip, c, s)| source_json(ip, c, s)).collect::<Vec<_>>(),
    })
}
