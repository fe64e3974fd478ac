//! A source's name, AS and location, read after the fold for the sources the report kept.
//!
//! The parts send with every row only which of these facts it holds ([`agg::Facts`]); the
//! fold notes, per kept source, the row each fact would have been taken from (the first
//! that holds it, [`agg::Pending`]). Here those rows are read back by address and time
//! through the `(src, time)` index, one batch for the whole report, and the facts filled in:
//! the same values the fold takes when every row sends them (the module docs of `agg`).
//!
//! Invariants:
//! - Bounded: one index probe per kept source and distinct row (at most [`SOURCES_CAP`]
//!   sources, three rows each), whatever the table's size or how many rows lack the facts.
//! - Exact: the rows at one address and time are read with the report's filters, in the
//!   order a part reads them (table order), and each fact is taken from the first of them
//!   that holds a valid one (the tests the decoder makes: an AS number that fits 32 bits, a
//!   finite location within range). A row gone since the part read it (a partition dropped
//!   by retention meanwhile) leaves the fact unknown, as a row without it would.
//! - Differences from sending the facts with every row, for values fwlog does not store: an
//!   AS organisation is read with its AS number only (a source none of whose rows has an AS
//!   number shows no organisation, where the fold of sent rows shows the last row's), and a
//!   first stored AS number beyond 32 bits or location out of range leaves that fact unknown
//!   (the fold of sent rows skips to the next valid one). fwlog stores an AS number and its
//!   organisation together, from one record of the ASN database, and only valid locations.
//!
//! [`SOURCES_CAP`]: crate::report::agg::SOURCES_CAP

use std::collections::HashMap;
use std::net::IpAddr;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::Client;

use super::{begin, settle, sql_err, where_clause};
use crate::report::agg::{self, Aggregate};
use crate::report::{Filter, SourceError};

/// The time of a row as stored (microseconds since 2000-01-01 UTC, the key
/// [`agg::Facts::at`] keeps), as a parameter: whole microseconds both ways, so the lookup
/// compares the very value the part read.
fn stored(us: i64) -> Option<SystemTime> {
    let base = UNIX_EPOCH.checked_add(Duration::from_secs(946_684_800))?;
    let d = Duration::from_micros(us.unsigned_abs());
    if us >= 0 {
        base.checked_add(d)
    } else {
        base.checked_sub(d)
    }
}

/// The facts of one stored row.
#[derive(Debug, Default)]
struct Row {
    name: Option<String>,
    asn: Option<u32>,
    org: Option<String>,
    place: Option<(f64, f64)>,
}

/// The query reading every row at the given addresses and times that the report's filters
/// keep, in table order per key, and its settings. `OFFSET 0` keeps the inner query a probe
/// per key (the `(src, time)` index, the one partition of that time): joined as one query,
/// the planner hashes the keys and scans the whole table for them (7 to 9 s against 0.4 s
/// over ten million rows, 16,384 keys).
fn sql(f: &Filter) -> (String, super::Where) {
    let w = where_clause(f, true);
    let sql = format!(
        "SELECT f.i, p.src_name, p.src_asn, p.src_as_org, p.src_lat, p.src_lon \
         FROM unnest($1::inet[], $2::timestamptz[]) WITH ORDINALITY AS f(src, at, i) \
         CROSS JOIN LATERAL (SELECT ctid AS row, src_name, src_asn, src_as_org, src_lat, \
         src_lon FROM packets WHERE src = f.src AND time = f.at AND {} OFFSET 0) p \
         ORDER BY f.i, p.row",
        w.conds.join(" AND ")
    );
    (sql, w)
}

/// Read the pending facts of every source `a` kept and fill them in.
pub async fn read(
    c: &Client,
    shown: &str,
    f: &Filter,
    a: &mut Aggregate,
) -> Result<(), SourceError> {
    // The distinct (address, row) keys, in a stable order.
    let mut keys: Vec<(IpAddr, i64)> = Vec::new();
    for (ip, _, s) in a.sources.iter() {
        let p = s.pending;
        for at in [p.name, p.asn, p.place].into_iter().flatten() {
            keys.push((*ip, at));
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    keys.sort_unstable();
    keys.dedup();
    // A time no clock can hold was never stored: nothing to read for it.
    keys.retain(|k| stored(k.1).is_some());
    let err = sql_err(shown);
    begin(c).await.map_err(&err)?;
    let (sql, w) = sql(f);
    // The filters' strings are settings, given their values by a statement of their own.
    settle(c, &w).await.map_err(&err)?;
    let srcs: Vec<IpAddr> = keys.iter().map(|k| k.0).collect();
    let ats: Vec<SystemTime> = keys.iter().filter_map(|k| stored(k.1)).collect();
    let rows = c.query(&sql, &[&srcs, &ats]).await.map_err(&err)?;
    c.batch_execute("COMMIT").await.map_err(&err)?;
    let mut found: HashMap<(IpAddr, i64), Vec<Row>> = HashMap::new();
    for r in rows {
        let i: i64 = r.try_get(0).map_err(&err)?;
        let Some(&key) = usize::try_from(i - 1).ok().and_then(|i| keys.get(i)) else {
            continue;
        };
        let row = Row {
            name: r.try_get(1).map_err(&err)?,
            asn: r
                .try_get::<_, Option<i64>>(2)
                .map_err(&err)?
                .and_then(|n| u32::try_from(n).ok()),
            org: r.try_get(3).map_err(&err)?,
            place: crate::geo::info::location(
                r.try_get(4).map_err(&err)?,
                r.try_get(5).map_err(&err)?,
            ),
        };
        found.entry(key).or_default().push(row);
    }
    fill(a, &found);
    Ok(())
}

/// Put the facts of `found` (the rows at each key, in table order) into the sources of `a`
/// that wait for them.
fn fill(a: &mut Aggregate, found: &HashMap<(IpAddr, i64), Vec<Row>>) {
    let waiting: Vec<(IpAddr, agg::Pending)> = a
        .sources
        .iter()
        .filter(|(_, _, s)| !s.pending.is_empty())
        .map(|(ip, _, s)| (*ip, s.pending))
        .collect();
    for (ip, p) in waiting {
        let Some(s) = a.sources.get_mut(&ip) else {
            continue;
        };
        let rows = |at: Option<i64>| at.and_then(|at| found.get(&(ip, at))).into_iter().flatten();
        if let Some(r) = rows(p.name).find(|r| r.name.is_some()) {
            s.name = r.name.as_deref().map(Into::into);
        }
        if let Some(r) = rows(p.asn).find(|r| r.asn.is_some()) {
            s.asn = r.asn;
            s.org = r.org.as_deref().map(Into::into);
        }
        if let Some(r) = rows(p.place).find(|r| r.place.is_some()) {
            s.location = r.place;
        }
        s.pending = agg::Pending::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Event;

    /// Rows whose facts change over time and are missing now and then, from 30 sources.
    fn events() -> Vec<Event<'static>> {
        (0..4000i64)
            .map(|i| {
                let k = (i * 7) % 30;
                let src: IpAddr = std::net::Ipv4Addr::new(81, 2, 69, k as u8).into();
                let era = i / 1500;
                Event {
                    time: 1_795_000_000 + i,
                    src: Some(src),
                    dport: Some(22),
                    proto: Some(6),
                    src_country: Some("DE".into()),
                    src_name: (i % 3 != 0).then(|| format!("h{k}-{era}").into()),
                    src_asn: (i % 5 != 1).then_some(64512 + era as u32),
                    // Stored with its number, as fwlog stores them (see the module docs).
                    src_org: (i % 5 != 1).then(|| format!("org{era}").into()),
                    src_location: (i % 4 != 2).then_some((50.0 + era as f64, 8.0)),
                    ..Event::default()
                }
            })
            .collect()
    }

    /// What a part sends of `e` with the facts read afterwards: `at` is its index.
    fn without_facts(e: &Event<'static>, at: i64) -> Event<'static> {
        let has = u8::from(e.src_name.is_some()) * agg::HAS_NAME
            + u8::from(e.src_asn.is_some()) * agg::HAS_ASN
            + u8::from(e.src_location.is_some()) * agg::HAS_PLACE;
        Event {
            src_name: None,
            src_asn: None,
            src_org: None,
            src_location: None,
            facts: (has != 0).then_some(agg::Facts { at, has }),
            ..e.clone()
        }
    }

    fn shown(a: &Aggregate) -> String {
        let st = crate::report::source::ReadStats::default();
        crate::report::text::render_json(a, &st, 100).to_string()
    }

    /// Fold `ev` in parts cut at `cuts` (indexes) and merge them.
    fn fold(ev: &[Event<'static>], cuts: &[usize]) -> Aggregate {
        let mut out = Aggregate::default();
        let mut start = 0;
        for &end in cuts.iter().chain([ev.len()].iter()) {
            let mut part = Aggregate::default();
            ev[start..end].iter().for_each(|e| part.add(e));
            part.finish();
            out.merge(part);
            start = end;
        }
        out.finish();
        out
    }

    #[test]
    fn facts_read_afterwards_are_those_the_fold_takes_when_sent() {
        let ev = events();
        let found: HashMap<(IpAddr, i64), Vec<Row>> = ev
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let row = Row {
                    name: e.src_name.as_deref().map(Into::into),
                    asn: e.src_asn,
                    org: e.src_org.as_deref().map(Into::into),
                    place: e.src_location,
                };
                // A row before it at the same key that the filters keep and that holds
                // nothing: the first row holding each fact is taken.
                let empty = Row::default();
                ((e.src.unwrap(), i as i64), vec![empty, row])
            })
            .collect();
        let slim: Vec<Event<'static>> = ev
            .iter()
            .enumerate()
            .map(|(i, e)| without_facts(e, i as i64))
            .collect();
        for cuts in [vec![], vec![1200], vec![700, 1500, 3100]] {
            let sent = fold(&ev, &cuts);
            let mut read = fold(&slim, &cuts);
            assert!(read.sources.iter().any(|(_, _, s)| !s.pending.is_empty()));
            fill(&mut read, &found);
            assert!(read.sources.iter().all(|(_, _, s)| s.pending.is_empty()));
            assert_eq!(shown(&read), shown(&sent), "{cuts:?}");
        }
        // A row gone meanwhile: its facts stay unknown, the rest of the report is unchanged.
        let mut read = fold(&slim, &[]);
        fill(&mut read, &HashMap::new());
        assert!(read
            .sources
            .iter()
            .all(|(_, _, s)| s.name.is_none() && s.asn.is_none()));
        assert_eq!(read.packets, 4000);
    }

    #[test]
    fn stored_times_are_whole_microseconds_both_ways() {
        let base = UNIX_EPOCH + Duration::from_secs(946_684_800);
        assert_eq!(stored(0), Some(base));
        assert_eq!(stored(-1), Some(base - Duration::from_micros(1)));
        assert_eq!(
            stored(1_795_000_000_123_456),
            Some(base + Duration::from_micros(1_795_000_000_123_456))
        );
        let (q, w) = sql(&Filter {
            prefix: Some("x' OR 1=1 --".into()),
            ..Filter::default()
        });
        assert!(!q.contains("OR 1=1") && q.contains("OFFSET 0"), "{q}");
        assert_eq!(w.settings, ["x' OR 1=1 --"]);
    }
}
