//! Reading a database on every core: the report's window cut into time parts, each read over
//! its own connection and folded apart, the parts' aggregates merged in time order.
//!
//! Invariants:
//! - Every cut is on a clock minute (a multiple of [`SCAN_WINDOW`] seconds) strictly inside the
//!   window, so no scan window spans two parts and [`Aggregate::merge`] gives what folding the
//!   parts one after the other gives (see `agg`'s module docs).
//! - The parts cover the window exactly: the first is open below, the last open above, each
//!   `[start, end)`; a row is in exactly one part.
//! - There are a few parts per thread ([`PARTS_PER_THREAD`]) and each thread takes the next
//!   part not yet taken when it finishes one, so the threads finish together however the rows
//!   are spread over the window and however busy each core is. The parts are merged in time
//!   order whichever thread folded them, so the result depends on the cuts only, never on the
//!   threads' timing (and every database source cuts the same way, [`even`] over
//!   [`count`] parts, so the same rows give the same report from any of them).
//! - Each part holds its own bounded aggregate until it is merged: memory is at most the
//!   number of parts ([`count`], at most [`MAX_THREADS`] times [`PARTS_PER_THREAD`]) times one
//!   report's tables.
//! - Each part reads its own snapshot (one connection each): over a table being written, a
//!   part may see rows committed after an earlier part started. Rows of the time range of a
//!   part that already ended are not read.

use super::agg::{Aggregate, SCAN_WINDOW};
use super::{enrich, Event, Filter};
use crate::geo::{Geo, GeoConfig};

/// At most this many threads read at once (each with its own connection).
pub const MAX_THREADS: usize = 4;

/// Parts per thread: enough that the thread left alone at the end has little to do, few
/// enough that each part's fixed costs (a connection, a query, a merge) stay small.
pub const PARTS_PER_THREAD: usize = 4;

/// The time range of one part: `[start, end)` in seconds since the epoch, open when `None`.
pub type Range = (Option<i64>, Option<i64>);

/// How many threads read: the cores this process may use, at most [`MAX_THREADS`].
pub fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_THREADS)
}

/// How many parts to cut a window in: one on one core, else [`PARTS_PER_THREAD`] per thread.
pub fn count() -> usize {
    match threads() {
        1 => 1,
        t => t * PARTS_PER_THREAD,
    }
}

/// The parts for `hints` (times of rows spread through the table, in any order): each floored
/// to a clock minute and kept when strictly inside the window `f` gives.
pub fn ranges(hints: &[i64], f: &Filter) -> Vec<Range> {
    let mut cuts: Vec<i64> = hints
        .iter()
        .map(|t| t.div_euclid(SCAN_WINDOW) * SCAN_WINDOW)
        .filter(|&c| f.since.is_none_or(|s| c > s) && f.until.is_none_or(|u| c < u))
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut start = None;
    for c in cuts {
        out.push((start, Some(c)));
        start = Some(c);
    }
    out.push((start, None));
    out
}

/// `n - 1` times cutting `[lo, hi]` into `n` spans of equal length (hints for [`ranges`]).
pub fn even(lo: i64, hi: i64, n: usize) -> Vec<i64> {
    let n = n.max(1) as i128;
    (1..n)
        .map(|k| lo + ((i128::from(hi.saturating_sub(lo)) * k) / n) as i64)
        .collect()
}

/// `t` is inside `r`.
pub fn contains(r: Range, t: i64) -> bool {
    r.0.is_none_or(|s| t >= s) && r.1.is_none_or(|e| t < e)
}

/// One part's fold: the filter judges every event, sources stored without geo fields are
/// enriched, the rest is [`Aggregate::add`].
pub struct Folder<'f> {
    filter: &'f Filter,
    geo: Option<Geo>,
    pub agg: Aggregate,
}

impl<'f> Folder<'f> {
    pub fn new(filter: &'f Filter, geo: &GeoConfig) -> Result<Folder<'f>, crate::geo::DbError> {
        Ok(Folder {
            filter,
            geo: Geo::open(geo)?,
            agg: Aggregate::default(),
        })
    }

    pub fn event(&mut self, mut e: Event<'_>) {
        if !self.filter.keeps(&e) {
            return;
        }
        if let (Some(g), Some(src)) = (&mut self.geo, e.src) {
            if e.src_country.is_none() && e.src_asn.is_none() {
                enrich(g, src, &mut e);
            }
        }
        self.agg.add(&e);
    }
}

/// Why a part failed: the source's error, or the geo database's.
#[derive(Debug)]
pub enum PartError<E> {
    Source(E),
    Geo(crate::geo::DbError),
}

/// What the threads share: the next part to take, the parts folded but not merged yet, the
/// merge of every part before `merged`.
struct Shared<E> {
    next: usize,
    stop: bool,
    waiting: std::collections::BTreeMap<usize, Result<Aggregate, PartError<E>>>,
    merged: usize,
    out: Aggregate,
}

/// Fold every part of `ranges` with `read` (given the part's range and its folder), on
/// [`threads`] threads that each take the next part when done with one, and merge the
/// aggregates in time order. The first error (in part order) wins; after an error no new
/// part is started.
pub fn fold<E: Send>(
    ranges: &[Range],
    filter: &Filter,
    geo: &GeoConfig,
    read: impl Fn(Range, &mut Folder<'_>) -> Result<(), E> + Sync,
) -> Result<Aggregate, PartError<E>> {
    let one = |r: Range| -> Result<Aggregate, PartError<E>> {
        let mut folder = Folder::new(filter, geo).map_err(PartError::Geo)?;
        read(r, &mut folder).map_err(PartError::Source)?;
        folder.agg.finish();
        Ok(folder.agg)
    };
    let shared = std::sync::Mutex::new(Shared {
        next: 0,
        stop: false,
        waiting: std::collections::BTreeMap::new(),
        merged: 0,
        out: Aggregate::default(),
    });
    let lock = || {
        shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let work = || loop {
        let k = {
            let mut s = lock();
            if s.stop || s.next >= ranges.len() {
                return;
            }
            s.next += 1;
            s.next - 1
        };
        let r = one(ranges[k]);
        let mut s = lock();
        s.stop |= r.is_err();
        s.waiting.insert(k, r);
        // Merge every part whose predecessors are all merged: in time order, whoever folded it.
        loop {
            let k = s.merged;
            if !matches!(s.waiting.get(&k), Some(Ok(_))) {
                break;
            }
            if let Some(Ok(a)) = s.waiting.remove(&k) {
                s.out.merge(a);
            }
            s.merged += 1;
        }
    };
    let helpers = threads().min(ranges.len()).saturating_sub(1);
    std::thread::scope(|sc| {
        for _ in 0..helpers {
            // No thread to be had: the others (this one at least) take its parts.
            let _ = std::thread::Builder::new()
                .name("fwlog-report".into())
                .spawn_scoped(sc, work);
        }
        work();
    });
    let s = shared
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Stopped or not, the first part not merged is the first error (parts after it may have
    // been started, never merged).
    match s.waiting.into_iter().next() {
        Some((_, Err(e))) => Err(e),
        _ => {
            let mut out = s.out;
            out.finish();
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_are_minutes_inside_the_window_and_parts_cover_it() {
        let f = Filter {
            since: Some(1_000),
            until: Some(5_000),
            ..Filter::default()
        };
        // 999 is before the window, 4_990 floors to 4_980, 1_010 to 960 (not inside).
        let r = ranges(&[3_061, 999, 4_990, 1_010, 3_000], &f);
        assert_eq!(
            r,
            vec![
                (None, Some(3_000)),
                (Some(3_000), Some(3_060)),
                (Some(3_060), Some(4_980)),
                (Some(4_980), None)
            ]
        );
        for t in [-5, 0, 2_999, 3_000, 3_059, 3_060, 9_999] {
            assert_eq!(r.iter().filter(|&&p| contains(p, t)).count(), 1, "{t}");
        }
        assert_eq!(ranges(&[], &Filter::default()), vec![(None, None)]);
        assert_eq!(even(0, 600, 3), vec![200, 400]);
        assert_eq!(even(5, 5, 2), vec![5]);
        assert!(even(0, 600, 1).is_empty());
    }

    /// Events over three hours from 41 sources, one sweeping ports within a minute now and then.
    fn events() -> Vec<Event<'static>> {
        // Bursts of 20 packets in 40 s from one source: ten ports or more in one minute.
        let host = |i: i64| {
            if (i / 20) % 50 == 0 {
                200
            } else {
                (i % 40) as u8
            }
        };
        (0..5000i64)
            .map(|i| Event {
                time: 1_795_000_000 + i * 2,
                src: Some(std::net::Ipv4Addr::new(81, 2, 69, host(i)).into()),
                dst: Some(std::net::Ipv4Addr::new(10, 0, 0, (i % 7) as u8).into()),
                proto: Some(6),
                dport: Some(if host(i) == 200 { (i % 23) as u16 } else { 22 }),
                prefix: Some(if i % 3 == 0 { "ssh " } else { "drop " }.into()),
                src_country: Some(["DE", "US"][(i % 2) as usize].into()),
                ..Event::default()
            })
            .collect()
    }

    fn shown(a: &Aggregate) -> String {
        let st = crate::report::source::ReadStats::default();
        crate::report::text::render_json(a, &st, 100).to_string()
    }

    #[test]
    fn parts_taken_by_any_thread_merge_in_time_order_to_one_fold() {
        let ev = events();
        let f = Filter::default();
        let geo = GeoConfig::default();
        let whole = fold(&[(None, None)], &f, &geo, |_, folder| {
            ev.iter().for_each(|e| folder.event(e.clone()));
            Ok::<(), ()>(())
        })
        .unwrap();
        let (lo, hi) = (ev[0].time, ev[ev.len() - 1].time);
        let r = ranges(&even(lo, hi, 13), &f);
        assert_eq!(r.len(), 13);
        let cut = fold(&r, &f, &geo, |part, folder| {
            // Parts finish in an order unrelated to time.
            let k = r.iter().position(|&p| p == part).unwrap_or(0);
            std::thread::sleep(std::time::Duration::from_millis((k as u64 * 7) % 5));
            ev.iter()
                .filter(|e| contains(part, e.time))
                .for_each(|e| folder.event(e.clone()));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(cut.packets, 5000);
        assert!(cut.sources.iter().any(|(_, _, s)| s.is_scan()));
        assert_eq!(shown(&cut), shown(&whole));
    }

    #[test]
    fn the_first_failing_part_is_the_error() {
        let r = ranges(&even(0, 6000, 8), &Filter::default());
        let got = fold(
            &r,
            &Filter::default(),
            &GeoConfig::default(),
            |part, _| match part.0 {
                Some(s) if s >= 3000 => Err(s),
                _ => Ok(()),
            },
        );
        match got {
            Err(PartError::Source(s)) => assert_eq!(s, 3000),
            other => panic!("{:?}", other.map(|a| a.packets)),
        }
    }
}
