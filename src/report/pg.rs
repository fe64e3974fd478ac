//! `fwlog report postgresql://...`: the rows of fwlog's PostgreSQL output, streamed and folded
//! here by the fold every source uses.
//!
//! Invariants:
//! - The packets are read in time parts, one connection and thread each ([`parts`]): the
//!   server reads a part's rows (its partitions) while this process folds another's, on every
//!   core. Only the columns the report needs cross the network, as a binary `COPY` decoded
//!   here in place ([`copy`]), streamed with the server's flow control: memory does not grow
//!   with the table. (Grouping in the server took longer than streaming every row: 18 s
//!   against a few over ten million rows, and grouping sets cannot run in parallel.)
//! - Without report-time enrichment, a row sends which of its source's name, AS and location
//!   it holds instead of them, and those of the sources the report keeps are read afterwards
//!   by index ([`facts`]): the server's time is mostly per field sent.
//! - No string or address from the command line is ever SQL text: each reaches the server as
//!   a bound parameter ([`Where`]); numbers are literals of integers parsed here. The filters
//!   have the meaning the report's own filter has; the report's filter still judges every row
//!   (the group excepted, which the query selects exactly and is not read).
//! - Read-only: only SELECTs and `COPY ... TO`, each part in one read-only repeatable-read
//!   transaction (one snapshot per part: see [`parts`]).
//! - A stream that ends early or holds a value of the wrong shape is one clear error naming
//!   the column, never a shorter report.
//! - A database from before the geo columns (schema 2) reads them as NULL.

use futures_util::TryStreamExt;
use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::Client;

use super::agg::Aggregate;
use super::source::SourceError;
use super::{parts, Event, Filter, ReportError};
use crate::geo::GeoConfig;

mod copy;
mod facts;

use copy::{value, CopyError, CopyReader, Fields};

/// The schema versions this reader knows (the output's 2 has no geo columns, 3 has, 4 only
/// compares `host` and `stream` bytewise).
const KNOWN: i32 = 4;

/// A WHERE clause being built. Numbers (already parsed to integers) are literals: the planner
/// needs the window's bounds to prune partitions and to choose a scan over the time index for
/// a window that holds most rows. Strings and addresses from the command line are never SQL
/// text: each is a transaction-local setting (`fwlog.pN`) given as a bound parameter of
/// `set_config` ([`settle`]) and read once by the query (an init plan, not once per row).
/// (`COPY` takes no parameters, and the rows come by `COPY`: see [`copy`].)
#[derive(Default)]
struct Where {
    conds: Vec<String>,
    settings: Vec<String>,
}

impl Where {
    /// The SQL that reads `value` back as `ty`.
    fn setting(&mut self, value: String, ty: &str) -> String {
        self.setting_in(value, |v| format!("{v}::{ty}"))
    }

    /// The SQL that computes `expr` (given the SQL of `value` as text) once per query.
    fn setting_in(&mut self, value: String, expr: impl Fn(&str) -> String) -> String {
        self.settings.push(value);
        let n = self.settings.len();
        format!(
            "(SELECT {})",
            expr(&format!("current_setting('fwlog.p{n}')"))
        )
    }
}

/// The WHERE clause for `f` (packets when `packets`, else losses) and its settings.
fn where_clause(f: &Filter, packets: bool) -> Where {
    let mut w = Where::default();
    w.conds.push("true".into());
    if let Some(s) = f.since {
        w.conds.push(format!("time >= to_timestamp({s}::float8)"));
    }
    if let Some(u) = f.until {
        w.conds.push(format!("time < to_timestamp({u}::float8)"));
    }
    if let Some(g) = f.group {
        w.conds.push(if packets {
            format!("nflog_group = {g}")
        } else {
            format!("(nflog_group IS NULL OR nflog_group = {g})")
        });
    }
    if packets {
        if let Some(p) = &f.prefix {
            let v = w.setting(p.trim_end().to_string(), "text");
            w.conds
                .push(format!("rtrim(coalesce(prefix, ''), ' ') = {v}"));
        }
        if let Some(h) = f.host {
            let v = w.setting(h.to_string(), "inet");
            w.conds.push(format!("(src = {v} OR dst = {v})"));
        }
        if let Some((net, len)) = f.src_net {
            let v = w.setting_in(net.to_string(), |v| {
                format!("set_masklen({v}::inet, {len})")
            });
            w.conds.push(format!("src <<= {v}"));
        }
        if let Some(d) = f.dport {
            w.conds.push(format!("dport = {d}"));
        }
    }
    w
}

/// Give the settings of `w` their values, for the rest of the transaction.
async fn settle(c: &Client, w: &Where) -> Result<(), tokio_postgres::Error> {
    if w.settings.is_empty() {
        return Ok(());
    }
    let calls: Vec<String> = (1..=w.settings.len())
        .map(|n| format!("set_config('fwlog.p{n}', ${n}, true)"))
        .collect();
    let params: Vec<&(dyn ToSql + Sync)> = w
        .settings
        .iter()
        .map(|s| s as &(dyn ToSql + Sync))
        .collect();
    c.query(&format!("SELECT {}", calls.join(", ")), &params)
        .await
        .map(drop)
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

/// Start a read-only transaction. JIT compiling these one-off scans costs more than it saves;
/// the parts already keep every core busy, so parallel workers would only add the cost of
/// passing every row to the leader (with `--src 81.0.0.0/8` over ten million rows, whose
/// selectivity the planner cannot know: 16.8 s of server CPU with them, see BENCHMARKS.md).
async fn begin(c: &Client) -> Result<(), tokio_postgres::Error> {
    c.batch_execute(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL jit = off; \
         SET LOCAL max_parallel_workers_per_gather = 0",
    )
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
        Ok(r) => r.and_then(|r| r.try_get(0).ok().flatten()),
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
    let w = where_clause(&window, true);
    let r = c
        .query_one(
            &format!(
                "SELECT min(time), max(time) FROM packets WHERE {}",
                w.conds.join(" AND ")
            ),
            &[],
        )
        .await
        .map_err(&err)?;
    let lo: Option<Secs> = r.try_get(0).map_err(&err)?;
    let hi: Option<Secs> = r.try_get(1).map_err(&err)?;
    let hints = match (lo, hi) {
        (Some(lo), Some(hi)) => parts::even(lo.0, hi.0, n),
        _ => Vec::new(),
    };
    let mut losses = Vec::new();
    if f.prefix.is_none() && f.host.is_none() && f.src_net.is_none() && f.dport.is_none() {
        let w = where_clause(f, false);
        let sql = format!(
            "SELECT time, nflog_group, count FROM losses WHERE {}",
            w.conds.join(" AND ")
        );
        for r in c.query(&sql, &[]).await.map_err(&err)? {
            losses.push(Event {
                time: r.try_get::<_, Secs>(0).map_err(&err)?.0,
                group: small(r.try_get::<_, Option<i32>>(1).map_err(&err)?.map(i64::from)),
                // A loss of unknown size is at least one packet, as everywhere.
                lost: r.try_get::<_, i64>(2).map_err(&err)?.max(1) as u64,
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

/// The columns read per packet, in the order [`event`] decodes them (`group` is not read:
/// the query's own condition on it is exact).
const COLUMNS: [&str; 12] = [
    "time",
    "prefix",
    "src",
    "dst",
    "proto",
    "dport",
    "src_name",
    "src_country",
    "src_asn",
    "src_as_org",
    "src_lat",
    "src_lon",
];

/// The geo columns of a database from before them (version 2): NULL, the same number.
const NO_GEO: &str = "NULL::text, NULL::int8, NULL::text, NULL::float8, NULL::float8";

/// Which columns a part reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// Every column of [`COLUMNS`], with every row.
    Full,
    /// The first 6 of [`COLUMNS`], `src_country` and [`HAS`]: a source's name, AS and
    /// location are read afterwards for the sources the report keeps ([`facts`]). The server
    /// spends most of its time per field sent (a send function and a buffer per value), so
    /// five fields fewer per row is about a fifth of its time (BENCHMARKS.md).
    Facts,
}

/// The columns of [`Layout::Facts`], in the order [`event_facts`] decodes them.
const FACT_COLUMNS: [&str; 8] = [
    "time",
    "prefix",
    "src",
    "dst",
    "proto",
    "dport",
    "src_country",
    HAS,
];

/// Which source facts a row holds ([`agg::HAS_NAME`](super::agg::HAS_NAME) and the others),
/// NULL for none (a NULL costs the server no send). Null tests and constants only: the
/// values' own checks (an AS number that fits 32 bits, a location within range) are left to
/// the reading of the facts, since evaluating them with every row cost the server most of
/// what the five fields fewer save (BENCHMARKS.md).
const HAS: &str = "CASE WHEN src_name IS NULL THEN \
    CASE WHEN src_asn IS NULL THEN CASE WHEN src_lat IS NULL OR src_lon IS NULL \
    THEN NULL ELSE int2 '4' END \
    ELSE CASE WHEN src_lat IS NULL OR src_lon IS NULL THEN int2 '2' ELSE int2 '6' END END \
    ELSE CASE WHEN src_asn IS NULL THEN CASE WHEN src_lat IS NULL OR src_lon IS NULL \
    THEN int2 '1' ELSE int2 '5' END \
    ELSE CASE WHEN src_lat IS NULL OR src_lon IS NULL THEN int2 '3' ELSE int2 '7' END END END";

/// The layout for a database of `version` read for a report enriching with `geo`: facts
/// afterwards only when the database has the geo columns and nothing is enriched here (the
/// enrichment judges each row by its stored facts).
fn layout(version: i32, geo: &GeoConfig) -> Layout {
    if version >= 3 && geo.is_empty() {
        Layout::Facts
    } else {
        Layout::Full
    }
}

/// A field decoded by `dec`, `None` for NULL.
fn opt<'a, T>(
    b: Option<&'a [u8]>,
    column: &'static str,
    dec: fn(&'static str, &'a [u8]) -> Result<T, CopyError>,
) -> Result<Option<T>, CopyError> {
    b.map(|b| dec(column, b)).transpose()
}

/// The packet's time, which every row has.
fn required<T>(v: Option<T>) -> Result<T, CopyError> {
    v.ok_or(CopyError::Value {
        column: "time",
        why: "NULL".into(),
    })
}

/// The event of the packet's own fields, which both layouts read first in the same order
/// (`time` decoded by the caller: each layout sends it in its own form).
fn packet_event<'a>(f: &Fields<'a>, time: i64) -> Result<Event<'a>, CopyError> {
    Ok(Event {
        time,
        group: None,
        prefix: opt(f[1], "prefix", value::text)?.map(Into::into),
        src: opt(f[2], "src", value::inet)?,
        dst: opt(f[3], "dst", value::inet)?,
        proto: small(opt(f[4], "proto", value::int2)?.map(i64::from)),
        dport: small(opt(f[5], "dport", value::int4)?.map(i64::from)),
        ..Event::default()
    })
}

/// The event of one tuple of [`FACT_COLUMNS`]: its facts are the key (the row's time as
/// stored, microseconds) and which it has.
fn event_facts<'a>(f: &Fields<'a>) -> Result<Event<'a>, CopyError> {
    let us = required(opt(f[0], "time", value::int8)?)?;
    let has = opt(f[7], "facts", value::int2)?;
    Ok(Event {
        src_country: opt(f[6], "src_country", value::text)?.map(Into::into),
        facts: has.map(|h| super::agg::Facts {
            at: us,
            has: h as u8,
        }),
        ..packet_event(f, us.div_euclid(1_000_000) + 946_684_800)?
    })
}

/// The event of one tuple of [`COLUMNS`]; its text borrows from the stream's buffer.
fn event<'a>(f: &Fields<'a>) -> Result<Event<'a>, CopyError> {
    let text = |i: usize| opt(f[i], COLUMNS[i], value::text).map(|t| t.map(Into::into));
    let time = required(opt(f[0], "time", value::seconds)?)?;
    Ok(Event {
        src_name: text(6)?,
        src_country: text(7)?,
        src_asn: small(opt(f[8], "src_asn", value::int8)?),
        src_org: text(9)?,
        src_location: crate::geo::info::location(
            opt(f[10], "src_lat", value::float8)?,
            opt(f[11], "src_lon", value::float8)?,
        ),
        ..packet_event(f, time)?
    })
}

/// The `COPY` of the packets of `f` within `part`, and its settings.
fn copy_sql(version: i32, layout: Layout, f: &Filter, part: parts::Range) -> (String, Where) {
    let mut w = where_clause(f, true);
    if let Some(s) = part.0 {
        w.conds.push(format!("time >= to_timestamp({s}::float8)"));
    }
    if let Some(e) = part.1 {
        w.conds.push(format!("time < to_timestamp({e}::float8)"));
    }
    let columns = if layout == Layout::Facts {
        FACT_COLUMNS.join(", ")
    } else if version >= 3 {
        COLUMNS.join(", ")
    } else {
        format!("{}, {NO_GEO}", COLUMNS[..7].join(", "))
    };
    let sql = format!(
        "COPY (SELECT {columns} FROM packets WHERE {}) TO STDOUT (FORMAT binary)",
        w.conds.join(" AND ")
    );
    (sql, w)
}

/// A tuple's decoder ([`event`], [`event_facts`]).
type Decode = for<'a> fn(&Fields<'a>) -> Result<Event<'a>, CopyError>;

/// Stream the packet rows of `f` within `part` (binary `COPY`, [`copy`]) and fold them.
async fn read_part(
    url: &str,
    version: i32,
    layout: Layout,
    f: &Filter,
    part: parts::Range,
    folder: &mut parts::Folder<'_>,
) -> Result<(), SourceError> {
    let (c, shown) = connect(url).await?;
    let err = sql_err(&shown);
    let copy_err = |e: CopyError| SourceError::Sql {
        what: shown.clone(),
        message: e.to_string(),
    };
    begin(&c).await.map_err(&err)?;
    let (sql, w) = copy_sql(version, layout, f, part);
    settle(&c, &w).await.map_err(&err)?;
    let statement = c.prepare(&sql).await.map_err(&err)?;
    let stream = c.copy_out(&statement).await.map_err(&err)?;
    let mut stream = std::pin::pin!(stream);
    let (ncols, decode): (usize, Decode) = match layout {
        Layout::Full => (COLUMNS.len(), event),
        Layout::Facts => (FACT_COLUMNS.len(), event_facts),
    };
    let mut reader = CopyReader::new(ncols);
    while let Some(chunk) = stream.try_next().await.map_err(&err)? {
        reader
            .feed(&chunk, &mut |fields: &Fields<'_>| {
                folder.event(decode(fields)?);
                Ok::<(), CopyError>(())
            })
            .map_err(copy_err)?;
    }
    reader.finish().map_err(copy_err)?;
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
    let layout = layout(survey.version, geo);
    let mut a = parts::fold(&ranges, f, geo, |part, folder| {
        runtime()?.block_on(read_part(url, survey.version, layout, f, part, folder))
    })?;
    if layout == Layout::Facts {
        runtime()?.block_on(async {
            let (c, shown) = connect(url).await?;
            facts::read(&c, &shown, f, &mut a).await
        })?;
    }
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
    fn filters_are_settings_or_integers_never_sql_text() {
        let f = Filter {
            since: Some(-10),
            group: Some(3),
            prefix: Some("x' OR 1=1 --".into()),
            host: Some("2a02:ec0::1".parse().unwrap()),
            src_net: Some(("81.2.69.0".parse().unwrap(), 24)),
            dport: Some(22),
            ..Filter::default()
        };
        let w = where_clause(&f, true);
        let sql = w.conds.join(" AND ");
        assert!(!sql.contains("OR 1=1"), "{sql}");
        assert_eq!(w.settings, ["x' OR 1=1 --", "2a02:ec0::1", "81.2.69.0"]);
        let v = |n: u8, ty: &str| format!("(SELECT current_setting('fwlog.p{n}')::{ty})");
        assert_eq!(
            sql,
            format!(
                "true AND time >= to_timestamp(-10::float8) AND nflog_group = 3 AND \
                 rtrim(coalesce(prefix, ''), ' ') = {} AND (src = {} OR dst = {}) AND \
                 src <<= (SELECT set_masklen(current_setting('fwlog.p3')::inet, 24)) AND \
                 dport = 22",
                v(1, "text"),
                v(2, "inet"),
                v(2, "inet"),
            )
        );
        let losses = where_clause(&f, false);
        assert!(losses.settings.is_empty());
        assert_eq!(
            losses.conds.join(" AND "),
            "true AND time >= to_timestamp(-10::float8) AND (nflog_group IS NULL OR nflog_group = 3)"
        );
        let (copy, _) = copy_sql(2, Layout::Full, &Filter::default(), (Some(60), Some(120)));
        assert_eq!(
            copy,
            format!(
                "COPY (SELECT time, prefix, src, dst, proto, dport, src_name, {NO_GEO} FROM packets \
                 WHERE true AND time >= to_timestamp(60::float8) AND time < \
                 to_timestamp(120::float8)) TO STDOUT (FORMAT binary)"
            )
        );
        assert_eq!(url_shown("postgresql://u:pw@h/db"), "postgresql://u@h/db");
    }

    #[test]
    fn a_tuple_becomes_its_event_and_a_bad_value_names_its_column() {
        let t = 1_795_000_000i64;
        let us = ((t - 946_684_800) * 1_000_000 + 999_999).to_be_bytes();
        let src = [2u8, 32, 0, 4, 81, 2, 69, 160];
        let lat = 50.5f64.to_be_bytes();
        let lon = 8.25f64.to_be_bytes();
        let mut f: Vec<Option<&[u8]>> = vec![
            Some(&us),
            Some(b"ssh "),
            Some(&src),
            None,
            Some(&[0, 6]),
            Some(&[0, 0, 0, 22]),
            Some(b"host.example"),
            Some(b"SE"),
            Some(&[0, 0, 0, 0, 0, 0, 0xfc, 0]),
            None,
            Some(&lat),
            Some(&lon),
        ];
        let e = event(&f).unwrap();
        assert_eq!(
            e,
            Event {
                time: t,
                prefix: Some("ssh ".into()),
                src: Some("81.2.69.160".parse().unwrap()),
                proto: Some(6),
                dport: Some(22),
                src_name: Some("host.example".into()),
                src_country: Some("SE".into()),
                src_asn: Some(64512),
                src_location: Some((50.5, 8.25)),
                ..Event::default()
            }
        );
        f[5] = Some(&[0, 22]);
        assert_eq!(
            event(&f).unwrap_err().to_string(),
            "column dport: 2 bytes where 4 were expected"
        );
        f[0] = None;
        assert_eq!(event(&f).unwrap_err().to_string(), "column time: NULL");
    }

    #[test]
    fn without_enrichment_rows_send_which_facts_they_hold() {
        let geo = GeoConfig {
            geoip: Some("city.mmdb".into()),
            asn: None,
        };
        assert_eq!(layout(4, &GeoConfig::default()), Layout::Facts);
        assert_eq!(layout(4, &geo), Layout::Full);
        assert_eq!(layout(2, &GeoConfig::default()), Layout::Full);
        let (copy, _) = copy_sql(4, Layout::Facts, &Filter::default(), (None, None));
        assert!(copy.starts_with(&format!("COPY (SELECT {}", FACT_COLUMNS.join(", "))));
        let us = 1_234_567_890_123i64;
        let raw = us.to_be_bytes();
        let src = [2u8, 32, 0, 4, 81, 2, 69, 160];
        let mut f: Vec<Option<&[u8]>> = vec![
            Some(&raw),
            None,
            Some(&src),
            None,
            Some(&[0, 6]),
            Some(&[0, 0, 0, 22]),
            Some(b"SE"),
            Some(&[0, 6]),
        ];
        let e = event_facts(&f).unwrap();
        assert_eq!(e.time, us.div_euclid(1_000_000) + 946_684_800);
        assert_eq!(e.src_country.as_deref(), Some("SE"));
        assert_eq!(e.facts, Some(super::super::agg::Facts { at: us, has: 6 }));
        assert_eq!((e.src_name, e.src_asn, e.src_location), (None, None, None));
        f[7] = None;
        assert_eq!(event_facts(&f).unwrap().facts, None);
        f[7] = Some(&[6]);
        assert!(event_facts(&f).is_err());
    }
}
