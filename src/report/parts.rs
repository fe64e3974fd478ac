//! Reading a database on every core: the report's window cut into time parts, each read over
//! its own connection and folded by its own thread, the parts' aggregates merged in time order.
//!
//! Invariants:
//! - Every cut is on a clock minute (a multiple of [`SCAN_WINDOW`] seconds) strictly inside the
//!   window, so no scan window spans two parts and [`Aggregate::merge`] gives what folding the
//!   parts one after the other gives (see `agg`'s module docs).
//! - The parts cover the window exactly: the first is open below, the last open above, each
//!   `[start, end)`; a row is in exactly one part.
//! - Each part holds its own bounded aggregate: memory is at most the number of parts
//!   ([`MAX_PARTS`]) times one report's.
//! - Each part reads its own snapshot (one connection each): over a table being written, a
//!   part may see rows committed after an earlier part started. Rows of the time range of a
//!   part that already ended are not read.

use super::agg::{Aggregate, SCAN_WINDOW};
use super::{enrich, Event, Filter};
use crate::geo::{Geo, GeoConfig};

/// At most this many parts (threads and connections).
pub const MAX_PARTS: usize = 4;

/// The time range of one part: `[start, end)` in seconds since the epoch, open when `None`.
pub type Range = (Option<i64>, Option<i64>);

/// How many parts to read in: the cores this process may use, at most [`MAX_PARTS`].
pub fn count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_PARTS)
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

/// Fold every part of `ranges` on its own thread with `read` (given the part's range and its
/// folder) and merge the aggregates in time order. The first error (in part order) wins.
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
    let results: Vec<Result<Aggregate, PartError<E>>> = if ranges.len() == 1 {
        vec![one(ranges[0])]
    } else {
        std::thread::scope(|s| {
            let one = &one;
            let handles: Vec<_> = ranges
                .iter()
                .map(|&r| {
                    let h = std::thread::Builder::new()
                        .name("fwlog-report".into())
                        .spawn_scoped(s, move || one(r));
                    (r, h)
                })
                .collect();
            handles
                .into_iter()
                .map(|(r, h)| match h {
                    Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                    // No thread to be had: this part is read here instead.
                    Err(_) => one(r),
                })
                .collect()
        })
    };
    let mut out: Option<Aggregate> = None;
    for r in results {
        let a = r?;
        match &mut out {
            None => out = Some(a),
            Some(o) => o.merge(a),
        }
    }
    Ok(out.unwrap_or_default())
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
}
