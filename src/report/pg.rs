//! `fwlog report postgresql://...`: the rows of fwlog's PostgreSQL output, streamed and folded
//! here by the fold every source uses.
//!
//! Invariants:
//! - The packets are read in time parts, one connection and thread each ([`parts`]): the
//!   server reads a part's rows (its partitions, its time index) while this process folds
//!   another's, on every core. Only the columns the report needs cross the network, in
//!   binary, streamed with the server's flow control: memory does not grow with the table.
//!   (Grouping in the server took longer than streaming every row: 18 s against a few over
//!   ten million rows, and grouping sets cannot run in parallel.)
//! - Every filter is a bound parameter (nothing from the command line is ever SQL text), with
//!   the meaning the report's own filter has; the report's filter still judges every row.
//! - Read-only: only SELECTs, each part in one read-only repeatable-read transaction (one
//!   snapshot per part: see [`parts`]).
//! - A database from before the geo columns (schema 2) reads them as NULL.

use std::borrow::Cow;
use std::net::IpAddr;

use futures_util::TryStreamExt;
use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::{Client, Row};

use super::agg::Aggregate;
use super::source::SourceError;
use super::{parts, Event, Filter, ReportError};
use crate::geo::GeoConfig;

/// The schema versions this reader knows (the output's 2 has no geo columns, 3 has, 4 only
/// compares `host` and `stream` bytewise).
const KNOWN: i32 = 4;

type Param = Box<dyn ToSql + Sync + Send>;

/// A WHERE clause being built: each `?` of a condition becomes the next `$N`.
#[derive(Default)]
struct Where {
    conds: Vec<String>,
    params: Vec<Param>,
}

impl Where {
    fn bind(&mut self, cond: &str, values: Vec<Param>) {
        let mut out = String::new();
        let mut values = values.into_iter();
        for (i, part) in cond.split('?').enumerate() {
            if i > 0 {
                if let Some(v) = values.next() {
                    self.params.push(v);
                }
                out.push_str(&format!("${}", self.params.len()));
            }
            out.push_str(part);
        }
        self.conds.push(out);
    }
}

/// The WHERE clause for `f` (packets when `packets`, else losses) and its parameters.
fn where_clause(f: &Filter, packets: bool) -> (String, Vec<Param>) {
    let mut w = Where::default();
    w.conds.push("true".into());
    if let Some(s) = f.since {
        w.bind("time >= to_timestamp(?::float8)", vec![Box::new(s as f64)]);
    }
    if let Some(u) = f.until {
        w.bind("time < to_timestamp(?::float8)", vec![Box::new(u as f64)]);
    }
    if let Some(g) = f.group {
        let cond = if packets {
            "nflog_group = ?::int4"
        } else {
            "(nflog_group IS NULL OR nflog_group = ?::int4)"
        };
        w.bind(cond, vec![Box::new(i32::from(g))]);
    }
    if packets {
        if let Some(p) = &f.prefix {
            let cond = "rtrim(coalesce(prefix, ''), ' ') = ?::text";
            w.bind(cond, vec![Box::new(p.trim_end().to_string())]);
        }
        if let Some(h) = f.host {
            w.bind(
                "(src = ?::inet OR dst = ?::inet)",
                vec![Box::new(h), Box::new(h)],
            );
        }
        if let Some((net, len)) = f.src_net {
            let v: Vec<Param> = vec![Box::new(net), Box::new(i32::from(len))];
            w.bind("src <<= set_masklen(?::inet, ?::int4)", v);
        }
        if let Some(d) = f.dport {
            w.bind("dport = ?::int4", vec![Box::new(i32::from(d))]);
        }
    }
    (w.conds.join(" AND "), w.params)
}

fn refs(p: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    p.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect()
}

/// A `timestamptz` as whole seconds since the epoch, floored (as the other sources give). On
/// the wire it is microseconds since 2000-01-01 UTC; read as such, no calendar is involved.
struct Secs(i64);

impl<'a> FromSql<'a> for Secs {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Secs, Box<dyn std::error::Error + Sync + Send>> {
        let us = i64::from_be_bytes(raw.try_into()?);
        Ok(Secs(us.div_euclid(1_000_000) + 946_684_800))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }
}

/// A connected client on the caller's runtime, and the URL as messages show it.
async fn connect(url: &str) -> Result<(Client, String), SourceError> {
    crate::sink::sql::pg::connect_reader(url)
        .await
        .map_err(|message| SourceError::Sql {
            what: url_shown(url),
            message,
        })
}

fn sql_err(shown: &str) -> impl Fn(tokio_postgres::Error) -> SourceError + '_ {
    move |e| SourceError::Sql {
        what: shown.to_string(),
        message: crate::sink::sql::pg::server_message(&e),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, SourceError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SourceError::Sql {
            what: "postgresql".into(),
            message: format!("cannot start a runtime: {e}"),
        })
}

/// Start a read-only transaction; JIT compiling these one-off scans costs more than it saves.
async fn begin(c: &Client) -> Result<(), tokio_postgres::Error> {
    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL jit = off")
        .await
}

/// What the first connection learns: the schema version, where to cut the parts, the losses.
struct Survey {
    version: i32,
    hints: Vec<i64>,
    losses: Vec<Event<'static>>,
}

async fn survey(c: &Client, shown: &str, f: &Filter, n: usize) -> Result<Survey, SourceError> {
    let err = sql_err(shown);
    begin(c).await.map_err(&err)?;
    let version: Option<i32> = match c
        .query_opt("SELECT max(version) FROM schema_version", &[])
        .await
    {
        Ok(r) => r.and_then(|r| r.get(0)),
        Err(_) => None,
    };
    let Some(version) = version else {
        return Err(SourceError::Sql {
            what: shown.to_string(),
            message: "not a database fwlog wrote (no schema_version)".into(),
        });
    };
    if version > KNOWN {
        return Err(SourceError::Sql {
            what: shown.to_string(),
            message: format!("schema version {version} is newer than this fwlog knows ({KNOWN})"),
        });
    }
    // Where to cut: the window's first and last stored times (two lookups in the time index;
    // the other filters would make them a scan), cut evenly as for SQLite, so both give the
    // same parts for the same rows.
    let window = Filter {
        since: f.since,
        until: f.until,
        ..Filter::default()
    };
    let (w, params) = where_clause(&window, true);
    let r = c
        .query_one(
            &format!("SELECT min(time), max(time) FROM packets WHERE {w}"),
            &refs(&params),
        )
        .await
        .map_err(&err)?;
    let (lo, hi) = (r.get::<_, Option<Secs>>(0), r.get::<_, Option<Secs>>(1));
    let hints = match (lo, hi) {
        (Some(lo), Some(hi)) => parts::even(lo.0, hi.0, n),
        _ => Vec::new(),
    };
    let mut losses = Vec::new();
    if f.prefix.is_none() && f.host.is_none() && f.src_net.is_none() && f.dport.is_none() {
        let (w, params) = where_clause(f, false);
        let sql = format!("SELECT time, nflog_group, count FROM losses WHERE {w}");
        for r in c.query(&sql, &refs(&params)).await.map_err(&err)? {
            losses.push(Event {
                time: r.get::<_, Secs>(0).0,
                group: small(r.get::<_, Option<i32>>(1).map(i64::from)),
                // A loss of unknown size is at least one packet, as everywhere.
                lost: r.get::<_, i64>(2).max(1) as u64,
                ..Event::default()
            });
        }
    }
    c.batch_execute("COMMIT").await.map_err(&err)?;
    Ok(Survey {
        version,
        hints,
        losses,
    })
}

fn small<T: TryFrom<i64>>(v: Option<i64>) -> Option<T> {
    v.and_then(|n| T::try_from(n).ok())
}

/// The event of one row; its text borrows from the row.
fn event(r: &Row) -> Result<Event<'_>, tokio_postgres::Error> {
    let text = |i: usize| -> Result<Option<Cow<'_, str>>, tokio_postgres::Error> {
        Ok(r.try_get::<_, Option<&str>>(i)?.map(Cow::Borrowed))
    };
    Ok(Event {
        time: r.try_get::<_, Secs>(0)?.0,
        group: small(r.try_get::<_, Option<i32>>(1)?.map(i64::from)),
        prefix: text(2)?,
        src: r.try_get::<_, Option<IpAddr>>(3)?,
        dst: r.try_get::<_, Option<IpAddr>>(4)?,
        proto: small(r.try_get::<_, Option<i16>>(5)?.map(i64::from)),
        dport: small(r.try_get::<_, Option<i32>>(6)?.map(i64::from)),
        src_name: text(7)?,
        src_country: text(8)?,
        src_asn: small(r.try_get::<_, Option<i64>>(9)?),
        src_org: text(10)?,
        src_location: crate::geo::info::location(r.try_get(11)?, r.try_get(12)?),
        lost: 0,
    })
}

/// Stream the packet rows of `f` within `part` and fold them.
async fn read_part(
    url: &str,
    version: i32,
    f: &Filter,
    part: parts::Range,
    folder: &mut parts::Folder<'_>,
) -> Result<(), SourceError> {
    let (c, shown) = connect(url).await?;
    let err = sql_err(&shown);
    begin(&c).await.map_err(&err)?;
    let geo = if version >= 3 {
        "src_country, src_asn, src_as_org, src_lat, src_lon"
    } else {
        "NULL::text, NULL::int8, NULL::text, NULL::float8, NULL::float8"
    };
    let (mut w, mut params) = where_clause(f, true);
    if let Some(s) = part.0 {
        params.push(Box::new(s as f64));
        w.push_str(&format!(
            " AND time >= to_timestamp(${}::float8)",
            params.len()
        ));
    }
    if let Some(e) = part.1 {
        params.push(Box::new(e as f64));
        w.push_str(&format!(
            " AND time < to_timestamp(${}::float8)",
            params.len()
        ));
    }
    let sql = format!(
        "SELECT time, nflog_group, prefix, src, dst, proto, dport, src_name, {geo} \
         FROM packets WHERE {w}"
    );
    let rows = c.query_raw(&sql, refs(&params)).await.map_err(&err)?;
    let mut rows = std::pin::pin!(rows);
    while let Some(r) = rows.try_next().await.map_err(&err)? {
        folder.event(event(&r).map_err(&err)?);
    }
    c.batch_execute("COMMIT").await.map_err(&err)
}

/// The report's aggregate of the database at `url`: its packets read in parts, one connection
/// and thread each ([`parts`]), and its losses.
pub fn aggregate(url: &str, f: &Filter, geo: &GeoConfig) -> Result<Aggregate, ReportError> {
    let n = parts::count();
    let survey = runtime()?.block_on(async {
        let (c, shown) = connect(url).await?;
        survey(&c, &shown, f, n).await
    })?;
    let ranges = parts::ranges(&survey.hints, f);
    let mut a = parts::fold(&ranges, f, geo, |part, folder| {
        runtime()?.block_on(read_part(url, survey.version, f, part, folder))
    })?;
    for e in &survey.losses {
        if f.keeps(e) {
            a.add(e);
        }
    }
    a.finish();
    Ok(a)
}

/// The URL without its password, for messages before the configuration parsed.
fn url_shown(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((scheme_user, rest)) => {
            let user = scheme_user.split(':').take(2).collect::<Vec<_>>().join(":");
            format!("{user}@{rest}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_parameters_never_sql_text() {
        let f = Filter {
            since: Some(10),
            prefix: Some("x' OR 1=1 --".into()),
            src_net: Some(("81.2.69.0".parse().unwrap(), 24)),
            dport: Some(22),
            ..Filter::default()
        };
        let (w, p) = where_clause(&f, true);
        assert!(!w.contains("OR 1=1"), "{w}");
        assert_eq!(p.len(), 5);
        assert_eq!(
            w,
            "true AND time >= to_timestamp($1::float8) AND rtrim(coalesce(prefix, ''), ' ') = \
             $2::text AND src <<= set_masklen($3::inet, $4::int4) AND dport = $5::int4"
        );
        assert_eq!(url_shown("postgresql://u:pw@h/db"), "postgresql://u@h/db");
    }
}
