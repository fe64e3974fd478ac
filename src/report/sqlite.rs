//! `fwlog report sqlite:PATH`: the rows of a database fwlog's SQLite output wrote, streamed.
//!
//! Invariants:
//! - The database is opened read-only (never created, never written: fwlog's output may be
//!   writing it at the same time; WAL lets both go on) and a symbolic link at PATH is refused.
//!   A file that is not fwlog's (no `schema_version`) or whose schema is newer than this fwlog
//!   knows is one clear error.
//! - The filters become the query's WHERE clause, with every value a bound parameter (nothing
//!   from the command line is ever part of the SQL text); the report's own filter still
//!   judges every row, so the SQL only has to select a superset.
//! - The packets are read in time parts, one read-only connection and thread each
//!   ([`parts`]); within a part, rows are read one at a time from one sequential query
//!   (SQLite's table order: the order they were written in) and folded as they come: memory
//!   does not grow with the table.
//! - Loss rows count unless an address, prefix or port filter is given (as for every source).
//! - A database from before the geo columns (schema 1) reads them as NULL.

use std::borrow::Cow;
use std::net::IpAddr;
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OpenFlags, OptionalExtension, Row};

use super::agg::Aggregate;
use super::source::SourceError;
use super::{parts, Event, Filter, ReportError};
use crate::geo::GeoConfig;
use crate::sink::sql::row::{addr16, addr_from16};

/// The schema version this reader knows (the SQLite output's).
const KNOWN: i64 = 2;

fn err(path: &Path, e: impl std::fmt::Display) -> SourceError {
    SourceError::Sql {
        what: format!("sqlite:{}", path.display()),
        message: e.to_string(),
    }
}

/// The first and last address of `net/len`, as 16-byte keys (IPv4 mapped, as the SQLite and
/// MariaDB outputs store addresses).
pub(super) fn net_range(net: IpAddr, len: u8) -> ([u8; 16], [u8; 16]) {
    let (base, bits) = match net {
        IpAddr::V4(a) => (u128::from(a.to_ipv6_mapped()), 96 + u32::from(len.min(32))),
        IpAddr::V6(a) => (u128::from(a), u32::from(len.min(128))),
    };
    let host = u128::MAX.checked_shr(bits).unwrap_or(0);
    ((base & !host).to_be_bytes(), (base | host).to_be_bytes())
}

/// The WHERE clause for `f` (packets when `packets`, else losses) and its parameters.
fn where_clause(f: &Filter, packets: bool) -> (String, Vec<Value>) {
    let mut sql = vec!["1".to_string()];
    let mut params = Vec::new();
    let mut bind = |sql: &mut Vec<String>, cond: &str, v: Value| {
        params.push(v);
        sql.push(cond.replace('?', &format!("?{}", params.len())));
    };
    if let Some(s) = f.since {
        bind(&mut sql, "time >= ?", Value::Real(s as f64));
    }
    if let Some(u) = f.until {
        bind(&mut sql, "time < ?", Value::Real(u as f64));
    }
    if let Some(g) = f.group {
        let cond = if packets {
            "nflog_group = ?"
        } else {
            "(nflog_group IS NULL OR nflog_group = ?)"
        };
        bind(&mut sql, cond, Value::Integer(i64::from(g)));
    }
    if packets {
        if let Some(p) = &f.prefix {
            let cond = "rtrim(coalesce(prefix, ''), ' ') = ?";
            bind(&mut sql, cond, Value::Text(p.trim_end().to_string()));
        }
        if let Some(h) = f.host {
            bind(
                &mut sql,
                "(src = ? OR dst = ?)",
                Value::Blob(addr16(h).to_vec()),
            );
        }
        if let Some((net, len)) = f.src_net {
            // Never through the (src, time) index (the unary `+`): without histograms SQLite
            // cannot tell a network that holds every row from one that holds a few, and
            // reading most of the table in address order took 150 s against 10 in table
            // order over ten million rows; a scan costs what a report without it costs.
            let (lo, hi) = net_range(net, len);
            bind(&mut sql, "+src >= ?", Value::Blob(lo.to_vec()));
            bind(&mut sql, "+src <= ?", Value::Blob(hi.to_vec()));
        }
        if let Some(d) = f.dport {
            bind(&mut sql, "dport = ?", Value::Integer(i64::from(d)));
        }
    }
    (sql.join(" AND "), params)
}

/// Seconds since the epoch, floored (what the other sources give).
fn seconds(t: f64) -> i64 {
    t.floor() as i64
}

/// The event of one row; its text borrows from the row (no allocation per row).
fn event<'r>(r: &'r Row<'_>) -> rusqlite::Result<Event<'r>> {
    let small = |v: Option<i64>| v.and_then(|n| u16::try_from(n).ok());
    let text = |i: usize| -> rusqlite::Result<Option<Cow<'r, str>>> {
        Ok(r.get_ref(i)?.as_str_or_null()?.map(Cow::Borrowed))
    };
    let addr = |i: usize| -> rusqlite::Result<Option<IpAddr>> {
        Ok(r.get_ref(i)?.as_blob_or_null()?.and_then(addr_from16))
    };
    Ok(Event {
        time: seconds(r.get(0)?),
        group: small(r.get(1)?),
        prefix: text(2)?,
        src: addr(3)?,
        dst: addr(4)?,
        proto: r
            .get::<_, Option<i64>>(5)?
            .and_then(|n| u8::try_from(n).ok()),
        dport: small(r.get(6)?),
        src_name: text(7)?,
        src_country: text(8)?,
        src_asn: r
            .get::<_, Option<i64>>(9)?
            .and_then(|n| u32::try_from(n).ok()),
        src_org: text(10)?,
        src_location: crate::geo::info::location(r.get(11)?, r.get(12)?),
        facts: None,
        lost: 0,
    })
}

/// The database at `path`, opened read-only, and its schema version.
fn open(path: &Path) -> Result<(Connection, i64), SourceError> {
    if !path.is_file() {
        return Err(err(path, "no such database file"));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| err(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| err(path, e))?;
    let has: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| err(path, e))?;
    if has.is_none() {
        return Err(err(path, "not a database fwlog wrote (no schema_version)"));
    }
    let version: i64 = conn
        .query_row("SELECT max(version) FROM schema_version", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .map_err(|e| err(path, e))?
        .unwrap_or(0);
    if version > KNOWN {
        return Err(err(
            path,
            format!("schema version {version} is newer than this fwlog knows ({KNOWN})"),
        ));
    }
    Ok((conn, version))
}

/// Where to cut `n` parts: the window's first and last stored times (two lookups in the time
/// index; the other filters would make them a scan), cut evenly ([`parts::even`]).
fn hints(conn: &Connection, f: &Filter, n: usize) -> rusqlite::Result<Vec<i64>> {
    let window = Filter {
        since: f.since,
        until: f.until,
        ..Filter::default()
    };
    let (w, params) = where_clause(&window, true);
    let edge = |agg: &str| -> rusqlite::Result<Option<i64>> {
        let sql = format!("SELECT {agg}(time) FROM packets WHERE {w}");
        let t: Option<f64> = conn.query_row(&sql, params_from_iter(params.iter()), |r| r.get(0))?;
        Ok(t.map(seconds))
    };
    Ok(match (edge("min")?, edge("max")?) {
        (Some(lo), Some(hi)) => parts::even(lo, hi, n),
        _ => Vec::new(),
    })
}

/// Hand every packet row of `f` within `part` to `each`, in table order.
fn read_packets(
    conn: &Connection,
    version: i64,
    f: &Filter,
    part: parts::Range,
    each: &mut dyn FnMut(Event<'_>),
) -> rusqlite::Result<()> {
    let geo = if version >= 2 {
        "src_country, src_asn, src_as_org, src_lat, src_lon"
    } else {
        "NULL, NULL, NULL, NULL, NULL"
    };
    // The group is only ever a filter, which the WHERE clause already applies: a column
    // fewer to decode per row without one.
    let group = if f.group.is_some() {
        "nflog_group"
    } else {
        "NULL"
    };
    let (mut w, mut params) = where_clause(f, true);
    // The part's bounds may choose the time index: rows are written close to time order, so
    // its rows come in about table order and each part reads its own pages only (measured
    // over ten million rows: slightly less CPU than a scan of the whole table per part that
    // skips the other parts' rows, and half the reads).
    if let Some(s) = part.0 {
        params.push(Value::Real(s as f64));
        w.push_str(&format!(" AND time >= ?{}", params.len()));
    }
    if let Some(e) = part.1 {
        params.push(Value::Real(e as f64));
        w.push_str(&format!(" AND time < ?{}", params.len()));
    }
    let sql = format!(
        "SELECT time, {group}, prefix, src, dst, proto, dport, src_name, {geo} \
         FROM packets WHERE {w}"
    );
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(params_from_iter(params))?;
    while let Some(r) = rows.next()? {
        each(event(r)?);
    }
    Ok(())
}

/// Hand every loss row of `f` to `each` (none when an address, prefix or port filter is given).
fn read_losses(
    conn: &Connection,
    f: &Filter,
    each: &mut dyn FnMut(Event<'_>),
) -> rusqlite::Result<()> {
    if f.prefix.is_some() || f.host.is_some() || f.src_net.is_some() || f.dport.is_some() {
        return Ok(());
    }
    let (w, params) = where_clause(f, false);
    let sql = format!("SELECT time, nflog_group, count FROM losses WHERE {w}");
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(params_from_iter(params))?;
    while let Some(r) = rows.next()? {
        each(Event {
            time: seconds(r.get(0)?),
            group: r
                .get::<_, Option<i64>>(1)?
                .and_then(|n| u16::try_from(n).ok()),
            // A loss of unknown size is at least one packet, as everywhere.
            lost: r.get::<_, i64>(2)?.max(1) as u64,
            ..Event::default()
        });
    }
    Ok(())
}

/// The report's aggregate of the database at `path`: its packets read in parts, one
/// connection and thread each ([`parts`]), then its losses.
pub fn aggregate(path: &Path, f: &Filter, geo: &GeoConfig) -> Result<Aggregate, ReportError> {
    let (conn, _) = open(path)?;
    let hints = hints(&conn, f, parts::count()).map_err(|e| err(path, e))?;
    let ranges = parts::ranges(&hints, f);
    let mut a = parts::fold(&ranges, f, geo, |part, folder| {
        let (conn, version) = open(path)?;
        read_packets(&conn, version, f, part, &mut |e| folder.event(e)).map_err(|e| err(path, e))
    })?;
    read_losses(&conn, f, &mut |e| {
        if f.keeps(&e) {
            a.add(&e);
        }
    })
    .map_err(|e| err(path, e))?;
    a.finish();
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_ranges_cover_the_network_only() {
        let (lo, hi) = net_range("81.2.69.7".parse().unwrap(), 24);
        assert_eq!(addr_from16(&lo), Some("81.2.69.0".parse().unwrap()));
        assert_eq!(addr_from16(&hi), Some("81.2.69.255".parse().unwrap()));
        let (lo, hi) = net_range("2a02:ec0::".parse().unwrap(), 32);
        assert_eq!(addr_from16(&lo), Some("2a02:ec0::".parse().unwrap()));
        assert_eq!(
            addr_from16(&hi),
            Some("2a02:ec0:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap())
        );
        let (lo, hi) = net_range("0.0.0.0".parse().unwrap(), 0);
        assert_eq!(addr_from16(&lo), Some("0.0.0.0".parse().unwrap()));
        assert_eq!(addr_from16(&hi), Some("255.255.255.255".parse().unwrap()));
    }

    #[test]
    fn filters_are_parameters_never_sql_text() {
        let f = Filter {
            prefix: Some("x' OR 1=1 --".into()),
            dport: Some(22),
            ..Filter::default()
        };
        let (w, p) = where_clause(&f, true);
        assert!(!w.contains("OR 1=1"), "{w}");
        assert_eq!(p.len(), 2);
        assert_eq!(
            w,
            "1 AND rtrim(coalesce(prefix, ''), ' ') = ?1 AND dport = ?2"
        );
    }
}
