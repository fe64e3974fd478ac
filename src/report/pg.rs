//! `fwlog report postgresql://...`: the report computed by the server, from the rows of
//! fwlog's PostgreSQL output.
//!
//! Invariants:
//! - The server aggregates (`GROUP BY`): what comes back is one row per source, prefix, port
//!   and hour, not one per packet, so neither the network nor this process carries the
//!   table. The results equal what streaming the same rows through
//!   [`Aggregate::add`](super::agg::Aggregate::add) gives (the report test compares the two):
//!   sources are grouped with their stored geo columns, so rows stored without them are
//!   enriched with `--geoip`/`--asn` exactly as streamed rows are.
//! - Scans (distinct ports and hosts of a source within one clock minute): a minute can only
//!   hold 10 distinct ports or hosts if it holds 10 packets of the source, so the server first
//!   finds the minutes where a source's 10th-previous packet is less than 60 s old (a window
//!   function over `(src, time)` alone, which the `(src, time)` index gives in order), then
//!   counts distinct ports and hosts in those minutes only (a batch of candidates per query);
//!   the sources the report shows get every minute counted.
//! - Every filter is a bound parameter (nothing from the command line is ever SQL text), with
//!   the meaning the report's own filter has.
//! - Read-only: only SELECTs, in one read-only transaction (one snapshot for every query).

use std::net::IpAddr;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Transaction};

use super::agg::{Aggregate, SourceFacts, SCAN_PORTS, SCAN_TRACK};
use super::source::SourceError;
use super::Filter;
use crate::geo::Geo;

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

/// Rows fetched per round trip: results are read through a portal in chunks, so however many
/// groups a query gives, only one chunk is held at a time.
const CHUNK: i32 = 8192;

/// Run `sql` and hand each result row to `each`, a chunk at a time.
async fn each_row(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[Param],
    mut each: impl FnMut(&Row),
) -> Result<(), tokio_postgres::Error> {
    let st = tx.prepare(sql).await?;
    let portal = tx.bind(&st, &refs(params)).await?;
    loop {
        let rows = tx.query_portal(&portal, CHUNK).await?;
        for r in &rows {
            each(r);
        }
        if rows.len() < CHUNK as usize {
            return Ok(());
        }
    }
}

/// Seconds since the epoch of a timestamptz expression, floored (as the other sources give).
fn secs(expr: &str) -> String {
    format!("floor(extract(epoch FROM {expr}))::int8")
}

fn small<T: TryFrom<i64>>(v: Option<i64>) -> Option<T> {
    v.and_then(|n| T::try_from(n).ok())
}

/// Everything the report needs from `url`, folded into `a`. `top` is how many sources the
/// report shows (their busiest minute is counted in full).
pub fn aggregate(
    url: &str,
    f: &Filter,
    top: usize,
    geo: Option<&mut Geo>,
    a: &mut Aggregate,
) -> Result<(), SourceError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SourceError::Sql {
            what: "postgresql".into(),
            message: format!("cannot start a runtime: {e}"),
        })?;
    rt.block_on(async {
        let (mut client, shown) =
            crate::sink::sql::pg::connect_reader(url)
                .await
                .map_err(|message| SourceError::Sql {
                    what: url_shown(url),
                    message,
                })?;
        let err = |e: tokio_postgres::Error| SourceError::Sql {
            what: shown.clone(),
            message: crate::sink::sql::pg::server_message(&e),
        };
        let tx = client
            .build_transaction()
            .read_only(true)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await
            .map_err(err)?;
        // JIT compiling these one-off queries costs more than it saves; the grouping hashes
        // (one entry per source) stay in the server's memory rather than spill to disk (this
        // session only: 27 s -> 18 s over 10 million rows on the bench machine).
        tx.batch_execute("SET LOCAL jit = off; SET LOCAL work_mem = '128MB'")
            .await
            .map_err(err)?;
        let version: Option<i32> = match tx
            .query_opt("SELECT max(version) FROM schema_version", &[])
            .await
        {
            Ok(r) => r.and_then(|r| r.get(0)),
            Err(_) => None,
        };
        let version = version.ok_or_else(|| SourceError::Sql {
            what: shown.clone(),
            message: "not a database fwlog wrote (no schema_version)".into(),
        })?;
        if version > KNOWN {
            return Err(SourceError::Sql {
                what: shown.clone(),
                message: format!(
                    "schema version {version} is newer than this fwlog knows ({KNOWN})"
                ),
            });
        }
        tables(&tx, f, version >= 3, geo, a).await.map_err(err)?;
        scans(&tx, f, top, a).await.map_err(err)?;
        losses(&tx, f, a).await.map_err(err)?;
        tx.commit().await.map_err(err)
    })
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

/// Totals, prefixes, ports, hours and sources in one pass over the rows (grouping sets).
async fn tables(
    c: &Transaction<'_>,
    f: &Filter,
    has_geo: bool,
    mut geo: Option<&mut Geo>,
    a: &mut Aggregate,
) -> Result<(), tokio_postgres::Error> {
    let g = if has_geo {
        "src_country, src_asn, src_as_org, src_lat, src_lon"
    } else {
        "NULL::text AS src_country, NULL::int8 AS src_asn, NULL::text AS src_as_org, \
         NULL::float8 AS src_lat, NULL::float8 AS src_lon"
    };
    let (w, params) = where_clause(f, true);
    let sql = format!(
        "SELECT GROUPING(src, src_country, src_asn, src_as_org, src_lat, src_lon), \
           GROUPING(prefix), GROUPING(proto, dport), GROUPING(h), \
           src, src_country, src_asn, src_as_org, src_lat, src_lon, prefix, proto::int8, \
           dport::int8, h, count(*), {}, {}, min(src_name) \
         FROM (SELECT src, prefix, proto, dport, src_name, time, {g}, \
               floor(extract(epoch FROM time) / 3600)::int8 * 3600 AS h \
               FROM packets WHERE {w}) p \
         GROUP BY GROUPING SETS ((src, src_country, src_asn, src_as_org, src_lat, src_lon), \
           (prefix), (proto, dport), (h))",
        secs("min(time)"),
        secs("max(time)"),
    );
    each_row(c, &sql, &params, |r| fold(r, geo.as_deref_mut(), a)).await
}

/// One grouping-set row into the aggregate.
fn fold(r: &Row, geo: Option<&mut Geo>, a: &mut Aggregate) {
    let n = u64::try_from(r.get::<_, i64>(14)).unwrap_or(0);
    let (first, last): (i64, i64) = (r.get(15), r.get(16));
    if r.get::<_, i32>(0) == 0 {
        let Some(src) = r.get::<_, Option<IpAddr>>(4) else {
            return;
        };
        let mut facts = SourceFacts {
            first,
            last,
            name: r.get(17),
            country: r.get(5),
            asn: small(r.get(6)),
            org: r.get(7),
            location: crate::geo::info::location(r.get(8), r.get(9)),
        };
        if let (Some(g), None, None) = (geo, &facts.country, facts.asn) {
            if let Some(info) = g.lookup(src) {
                let text = |n: &Option<crate::dns::SafeName>| n.as_ref().map(|n| n.shown().into());
                facts.country = text(&info.country_code);
                facts.asn = info.asn;
                facts.org = text(&info.as_org);
                facts.location = info.location;
            }
        }
        a.add_source(src, n, &facts);
    } else if r.get::<_, i32>(1) == 0 {
        let p: Option<String> = r.get(10);
        a.add_prefix(p.as_deref().unwrap_or(""), n);
    } else if r.get::<_, i32>(2) == 0 {
        if let (Some(proto), Some(port)) = (small(r.get(11)), small(r.get(12))) {
            a.add_port(proto, port, n);
        }
    } else if r.get::<_, i32>(3) == 0 {
        a.add_packets(n, first, last);
        a.add_hour(r.get(13), n);
    }
}

/// Scan windows: the candidate minutes of every source, and every minute of the top sources.
async fn scans(
    c: &Transaction<'_>,
    f: &Filter,
    top: usize,
    a: &mut Aggregate,
) -> Result<(), tokio_postgres::Error> {
    let (w, params) = where_clause(f, true);
    let ten = i64::try_from(SCAN_PORTS.saturating_sub(1)).unwrap_or(9);
    let minute = "floor(extract(epoch FROM time) / 60)::int8";
    // Candidate minutes: only (src, time) is read, in the (src, time) index's order.
    let sql = format!(
        "SELECT DISTINCT src, m FROM (SELECT src, {minute} AS m, \
           time - lag(time, {ten}) OVER (PARTITION BY src ORDER BY time) AS d \
           FROM packets WHERE {w} AND src IS NOT NULL) x \
         WHERE d < interval '60 seconds'"
    );
    let mut cands: Vec<(IpAddr, i64)> = Vec::new();
    each_row(c, &sql, &params, |r| {
        if let Some(src) = r.get::<_, Option<IpAddr>>(0) {
            cands.push((src, r.get(1)));
        }
    })
    .await?;
    // Their distinct ports and hosts, a batch of candidates at a time.
    for batch in cands.chunks(CHUNK as usize) {
        let mut p = where_clause(f, true).1;
        let n = p.len();
        p.push(Box::new(batch.iter().map(|c| c.0).collect::<Vec<IpAddr>>()));
        p.push(Box::new(batch.iter().map(|c| c.1).collect::<Vec<i64>>()));
        let sql = format!(
            "SELECT p.src, count(DISTINCT p.dport), count(DISTINCT p.dst) \
             FROM packets p JOIN unnest(${}::inet[], ${}::int8[]) AS c(csrc, cm) \
             ON p.src = c.csrc AND {minute} = c.cm WHERE {w} GROUP BY p.src, c.cm",
            n + 1,
            n + 2
        );
        each_row(c, &sql, &p, |r| window(r, a)).await?;
    }
    drop(cands);
    let mut params = params;
    // The sources the report shows (the top ones and the scans) get every minute of theirs
    // counted: a minute of fewer than ten packets may still hold their largest count of
    // hosts (or ports), which the report prints.
    let mut shown: Vec<IpAddr> = a
        .sources
        .top(top)
        .into_iter()
        .map(|(ip, _, _)| *ip)
        .collect();
    shown.extend(
        a.sources
            .iter()
            .filter(|(_, _, s)| s.is_scan())
            .map(|(ip, _, _)| *ip),
    );
    shown.sort_unstable();
    shown.dedup();
    if shown.is_empty() {
        return Ok(());
    }
    params.push(Box::new(shown));
    let sql = format!(
        "SELECT src, count(DISTINCT dport), count(DISTINCT dst) FROM packets \
         WHERE {w} AND src = ANY(${}::inet[]) GROUP BY src, {minute}",
        params.len()
    );
    each_row(c, &sql, &params, |r| window(r, a)).await
}

fn window(r: &Row, a: &mut Aggregate) {
    let count = |i: usize| usize::try_from(r.get::<_, i64>(i)).unwrap_or(SCAN_TRACK);
    if let Some(src) = r.get::<_, Option<IpAddr>>(0) {
        a.add_scan_window(src, count(1), count(2));
    }
}

async fn losses(
    c: &Transaction<'_>,
    f: &Filter,
    a: &mut Aggregate,
) -> Result<(), tokio_postgres::Error> {
    if f.prefix.is_some() || f.host.is_some() || f.src_net.is_some() || f.dport.is_some() {
        return Ok(());
    }
    let (w, params) = where_clause(f, false);
    // A loss of unknown size is at least one packet, as everywhere.
    let sql = format!(
        "SELECT coalesce(sum(greatest(count, 1)), 0)::int8, {}, {} FROM losses WHERE {w}",
        secs("min(time)"),
        secs("max(time)")
    );
    let r = c.query_one(&sql, &refs(&params)).await?;
    if let (Ok(n), Some(first), Some(last)) = (
        u64::try_from(r.get::<_, i64>(0)),
        r.get::<_, Option<i64>>(1),
        r.get::<_, Option<i64>>(2),
    ) {
        a.add_loss(n, first, last);
    }
    Ok(())
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
