//! `fwlog report mysql://...` (also `mariadb://`): the rows of a database fwlog's MariaDB/MySQL
//! output wrote, streamed.
//!
//! Invariants:
//! - Read-only: one `READ ONLY` transaction with a consistent snapshot (the packets and the
//!   losses come from the same moment while an output goes on writing), SELECTs only. The
//!   report needs only the SELECT privilege.
//! - The connection is the output's ([`crate::sink::sql::my::config`]): the password from the
//!   URL or `MYSQL_PWD`, never printed; every message names the URL without it, on one line.
//!   Connecting is bounded ([`CONNECT_TIMEOUT`]).
//! - A database that is not fwlog's (no `schema_version`) or whose schema is newer than this
//!   fwlog knows is one clear error.
//! - The filters become the query's WHERE clause, every value a bound parameter (nothing from
//!   the command line is ever SQL text); the report's own filter still judges every row, so
//!   the SQL only has to select a superset (a time outside DATETIME's range is left to it).
//! - Rows are read one at a time as the server sends them and folded as they come: memory
//!   does not grow with the table. Text borrows from the row (no allocation per row).
//! - Loss rows count unless an address, prefix or port filter is given (as for every source).
//! - Times: `time` is stored in UTC (the output's session time zone), read back as a date in
//!   the binary protocol and turned into seconds here, floored, as the other sources give.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Duration;

use chrono::{Datelike, NaiveDate, Timelike};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use super::source::SourceError;
use super::{Event, Filter};
use crate::sink::sql::my;
use crate::sink::sql::my_rows::server_message;
use crate::sink::sql::my_schema::VERSION as KNOWN;
use crate::sink::sql::row::{addr16, addr_from16, escaped};

/// How long connecting (and logging in) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A MariaDB DATETIME for `secs`, or `None` outside its range (years 1000 to 9999).
fn datetime(secs: i64) -> Option<Value> {
    let t = chrono::DateTime::from_timestamp(secs, 0)?;
    let year = u16::try_from(t.year())
        .ok()
        .filter(|y| (1000..=9999).contains(y))?;
    Some(Value::Date(
        year,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
        0,
    ))
}

/// Seconds since the epoch of a DATETIME value in UTC, floored.
fn seconds(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Date(y, mo, d, h, mi, s, _) => Some(
            NaiveDate::from_ymd_opt(i32::from(*y), u32::from(*mo), u32::from(*d))?
                .and_hms_opt(u32::from(*h), u32::from(*mi), u32::from(*s))?
                .and_utc()
                .timestamp(),
        ),
        _ => None,
    }
}

/// The WHERE clause for `f` (packets when `packets`, else losses) and its parameters.
fn where_clause(f: &Filter, packets: bool) -> (String, Vec<Value>) {
    let mut sql = vec!["1"];
    let mut params = Vec::new();
    if let Some(t) = f.since.and_then(datetime) {
        sql.push("time >= ?");
        params.push(t);
    }
    if let Some(t) = f.until.and_then(datetime) {
        sql.push("time < ?");
        params.push(t);
    }
    if let Some(g) = f.group {
        sql.push(if packets {
            "nflog_group = ?"
        } else {
            "(nflog_group IS NULL OR nflog_group = ?)"
        });
        params.push(Value::from(g));
    }
    if packets {
        if let Some(p) = &f.prefix {
            sql.push("RTRIM(COALESCE(prefix, '')) = ?");
            params.push(Value::from(p.trim_end()));
        }
        if let Some(h) = f.host {
            sql.push("(src = ? OR dst = ?)");
            params.push(Value::from(addr16(h).to_vec()));
            params.push(Value::from(addr16(h).to_vec()));
        }
        if let Some((net, len)) = f.src_net {
            let (lo, hi) = super::sqlite::net_range(net, len);
            sql.push("src BETWEEN ? AND ?");
            params.push(Value::from(lo.to_vec()));
            params.push(Value::from(hi.to_vec()));
        }
        if let Some(d) = f.dport {
            sql.push("dport = ?");
            params.push(Value::from(d));
        }
    }
    (sql.join(" AND "), params)
}

/// Why a row cannot be read: a column of an unexpected type (not fwlog's table).
fn bad_row(what: &str) -> String {
    format!("a packets row whose {what} is not what fwlog writes")
}

fn int<T: TryFrom<i64>>(v: Option<&Value>) -> Option<T> {
    match v? {
        Value::Int(n) => T::try_from(*n).ok(),
        Value::UInt(n) => T::try_from(i64::try_from(*n).ok()?).ok(),
        _ => None,
    }
}

fn text(v: Option<&Value>) -> Option<Cow<'_, str>> {
    match v? {
        Value::Bytes(b) => std::str::from_utf8(b).ok().map(Cow::Borrowed),
        _ => None,
    }
}

fn double(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Double(d) => Some(*d),
        Value::Float(f) => Some(f64::from(*f)),
        _ => None,
    }
}

fn addr(v: Option<&Value>) -> Option<IpAddr> {
    match v? {
        Value::Bytes(b) => addr_from16(b),
        _ => None,
    }
}

/// The columns [`event`] reads, in order.
const PACKET_COLUMNS: &str = "time, nflog_group, prefix, src, dst, proto, dport, src_name, \
    src_country, src_asn, src_as_org, src_lat, src_lon";

/// The event of one packets row; its text borrows from the row.
fn event(r: &Row) -> Result<Event<'_>, String> {
    let v = |i: usize| r.as_ref(i);
    Ok(Event {
        time: seconds(v(0)).ok_or_else(|| bad_row("time"))?,
        group: int(v(1)),
        prefix: text(v(2)),
        src: addr(v(3)),
        dst: addr(v(4)),
        proto: int(v(5)),
        dport: int(v(6)),
        src_name: text(v(7)),
        src_country: text(v(8)),
        src_asn: int(v(9)),
        src_org: text(v(10)),
        src_location: crate::geo::info::location(double(v(11)), double(v(12))),
        facts: None,
        lost: 0,
    })
}

/// Hand every packet and loss row `f` selects to `each`.
pub fn read(url: &str, f: &Filter, each: &mut dyn FnMut(Event<'_>)) -> Result<(), SourceError> {
    let (opts, shown) = my::config(url).map_err(SourceError::Usage)?;
    let err = |message: String| SourceError::Sql {
        what: shown.clone(),
        message: escaped(message.as_bytes()),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| err(format!("cannot start a runtime: {e}")))?;
    rt.block_on(async {
        let mut c = tokio::time::timeout(CONNECT_TIMEOUT, my::connect(&opts))
            .await
            .map_err(|_| err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))?
            .map_err(&err)?;
        let r = read_on(&mut c, f, each).await.map_err(&err);
        let _ = c.disconnect().await;
        r
    })
}

async fn read_on(c: &mut Conn, f: &Filter, each: &mut dyn FnMut(Event<'_>)) -> Result<(), String> {
    let m = |e: mysql_async::Error| server_message(&e);
    c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(m)?;
    let tables: Vec<String> = c
        .query(
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name IN ('schema_version', 'packets')",
        )
        .await
        .map_err(m)?;
    if tables.len() < 2 {
        return Err("not a database fwlog wrote (no schema_version)".into());
    }
    let version: Option<Option<i64>> = c
        .query_first("SELECT MAX(version) FROM schema_version")
        .await
        .map_err(m)?;
    let version = version.flatten().unwrap_or(0);
    if version > KNOWN {
        return Err(format!(
            "schema version {version} is newer than this fwlog knows ({KNOWN})"
        ));
    }
    let (w, params) = where_clause(f, true);
    let sql = format!("SELECT {PACKET_COLUMNS} FROM packets WHERE {w}");
    let mut rows = c.exec_iter(sql, params).await.map_err(m)?;
    while let Some(r) = rows.next().await.map_err(m)? {
        each(event(&r)?);
    }
    drop(rows);
    if f.prefix.is_none() && f.host.is_none() && f.src_net.is_none() && f.dport.is_none() {
        let (w, params) = where_clause(f, false);
        let sql = format!("SELECT time, nflog_group, count FROM losses WHERE {w}");
        let mut rows = c.exec_iter(sql, params).await.map_err(m)?;
        while let Some(r) = rows.next().await.map_err(m)? {
            each(Event {
                time: seconds(r.as_ref(0)).ok_or_else(|| bad_row("time"))?,
                group: int(r.as_ref(1)),
                // A loss of unknown size is at least one packet, as everywhere.
                lost: int::<u64>(r.as_ref(2)).unwrap_or(0).max(1),
                ..Event::default()
            });
        }
    }
    c.query_drop("COMMIT").await.map_err(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_go_there_and_back() {
        for t in [-30_610_224_000, -1, 0, 1_795_000_000, 253_402_300_799] {
            assert_eq!(seconds(datetime(t).as_ref()), Some(t), "{t}");
        }
        assert_eq!(datetime(-30_610_224_001), None);
        assert_eq!(datetime(253_402_300_800), None);
        let micros = Value::Date(2026, 11, 18, 11, 13, 20, 999_999);
        assert_eq!(seconds(Some(&micros)), Some(1_795_000_400));
        assert_eq!(seconds(Some(&Value::Date(2026, 2, 30, 0, 0, 0, 0))), None);
    }

    #[test]
    fn network_ranges_cover_the_network_only() {
        let (lo, hi) = super::super::sqlite::net_range("81.2.69.7".parse().unwrap(), 24);
        assert_eq!(addr_from16(&lo), Some("81.2.69.0".parse().unwrap()));
        assert_eq!(addr_from16(&hi), Some("81.2.69.255".parse().unwrap()));
        let (lo, hi) = super::super::sqlite::net_range("2a02:ec0::".parse().unwrap(), 32);
        assert_eq!(addr_from16(&lo), Some("2a02:ec0::".parse().unwrap()));
        assert_eq!(
            addr_from16(&hi),
            Some("2a02:ec0:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap())
        );
    }

    #[test]
    fn filters_are_parameters_never_sql_text() {
        let f = Filter {
            prefix: Some("x' OR 1=1 -- ".into()),
            dport: Some(22),
            since: Some(-100_000_000_000),
            ..Filter::default()
        };
        let (w, p) = where_clause(&f, true);
        assert_eq!(w, "1 AND RTRIM(COALESCE(prefix, '')) = ? AND dport = ?");
        assert_eq!(p, vec![Value::from("x' OR 1=1 --"), Value::from(22u16)]);
        let (w, p) = where_clause(&f, false);
        assert_eq!((w.as_str(), p.len()), ("1", 0));
    }
}
