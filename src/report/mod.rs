//! `fwlog report`: what was logged over a window, from what fwlog already stores.
//!
//! Spec:
//! - Sources ([`Source`]): `spool:DIR` (read-only like `fwlog replay`, acknowledged and retained
//!   packets alike), files of fwlog's JSON lines (`-` for standard input), `sqlite:PATH` (rows
//!   streamed, [`sqlite`]), `postgresql://...` (rows streamed, [`pg`]) and
//!   `mysql://...`/`mariadb://...` (rows streamed, [`mysql`]); every source gives the same
//!   report for the same packets. A database is read in time parts on every core ([`parts`]).
//! - Every record becomes an [`Event`]; the window (`since`/`until`, seconds since the epoch) and
//!   filters ([`Filter`]) select them; [`agg::Aggregate`] folds them into totals, loss, per
//!   prefix, top sources (name, country, AS), top destination ports, top countries, a per-hour
//!   histogram and scans; [`text`] prints the terminal report or its JSON.
//! - Memory is bounded whatever the input: no event is kept; every table is a bounded counter
//!   ([`agg::Counter`]) that drops its smallest entries when full (then the report says its
//!   counts for small entries are approximate); scan state is kept for tracked sources only.
//! - Strings from the sources (prefixes, names, database strings) are untrusted: printed through
//!   an allow-list (`text::clean`), so no control byte reaches the terminal.
//! - With `--geoip`/`--asn`, sources stored without geo fields are enriched ([`crate::geo`]).

pub mod agg;
pub mod html;
pub mod mysql;
pub mod parts;
pub mod pg;
pub mod source;
pub mod sqlite;
pub mod text;

use std::borrow::Cow;
use std::net::IpAddr;

pub use source::{Source, SourceError};

/// One logged packet or loss report, as the report needs it. Its text borrows from the
/// source's buffer where it can (a database row), so folding a row allocates nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event<'a> {
    /// Seconds since the epoch (UTC).
    pub time: i64,
    pub group: Option<u16>,
    /// The log prefix as the formats print it (escaped text).
    pub prefix: Option<Cow<'a, str>>,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    /// IP protocol number.
    pub proto: Option<u8>,
    pub dport: Option<u16>,
    pub src_name: Option<Cow<'a, str>>,
    pub src_country: Option<Cow<'a, str>>,
    pub src_asn: Option<u32>,
    pub src_org: Option<Cow<'a, str>>,
    pub src_location: Option<(f64, f64)>,
    /// Source facts the row holds but did not send (a database reads them afterwards for
    /// the sources the report keeps: [`agg::Pending`]); `None` when the row sent them all.
    pub facts: Option<agg::Facts>,
    /// A loss report: how many packets were lost (0 for a packet).
    pub lost: u64,
}

/// Which events count.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// The prefix, compared without trailing spaces (`--prefix ssh` matches `"ssh "`).
    pub prefix: Option<String>,
    /// Source or destination address.
    pub host: Option<IpAddr>,
    pub group: Option<u16>,
    /// Source network (address, prefix length).
    pub src_net: Option<(IpAddr, u8)>,
    pub dport: Option<u16>,
}

impl Filter {
    /// Loss reports pass the window and group filters only (they have no addresses).
    pub fn keeps(&self, e: &Event) -> bool {
        if self.since.is_some_and(|s| e.time < s) || self.until.is_some_and(|u| e.time >= u) {
            return false;
        }
        if self.group.is_some() && e.group.is_some() && self.group != e.group {
            return false;
        }
        if e.lost > 0 {
            return self.prefix.is_none()
                && self.host.is_none()
                && self.src_net.is_none()
                && self.dport.is_none();
        }
        if let Some(p) = &self.prefix {
            let have = e.prefix.as_deref().unwrap_or("").trim_end();
            if have != p.trim_end() {
                return false;
            }
        }
        if let Some(h) = self.host {
            if e.src != Some(h) && e.dst != Some(h) {
                return false;
            }
        }
        if let Some((net, len)) = self.src_net {
            if !e.src.is_some_and(|s| in_net(s, net, len)) {
                return false;
            }
        }
        if self.dport.is_some() && e.dport != self.dport {
            return false;
        }
        true
    }
}

/// `addr` is inside `net/len`.
pub fn in_net(addr: IpAddr, net: IpAddr, len: u8) -> bool {
    match (crate::geo::info::canonical(addr), net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let len = u32::from(len.min(32));
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let len = u32::from(len.min(128));
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// `ADDR` or `ADDR/LEN`.
pub fn parse_net(s: &str) -> Result<(IpAddr, u8), String> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = a.parse().map_err(|_| {
        format!("{s}: not an address or network (examples: 81.2.69.0/24, 2a02:ec0::/32)")
    })?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match l {
        None => max,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| format!("{s}: prefix length must be 0 to {max}"))?,
    };
    Ok((addr, len))
}

/// Everything `fwlog report` needs.
#[derive(Clone, Debug, Default)]
pub struct ReportConfig {
    pub sources: Vec<Source>,
    pub filter: Filter,
    pub top: usize,
    pub geo: crate::geo::GeoConfig,
    pub json: bool,
    /// `--html FILE`: write the page there instead of printing.
    pub html: Option<std::path::PathBuf>,
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Geo(#[from] crate::geo::DbError),
}

/// Read every source, fold the events the filter keeps. Each source is folded apart (a
/// database in parts, on every core: [`parts`]) and the aggregates merged in the order the
/// sources were given.
pub fn collect(cfg: &ReportConfig) -> Result<(agg::Aggregate, source::ReadStats), ReportError> {
    let mut a = agg::Aggregate::default();
    let mut stats = source::ReadStats::default();
    for s in &cfg.sources {
        let part = match s {
            Source::Sqlite(path) => sqlite::aggregate(path, &cfg.filter, &cfg.geo)?,
            Source::Postgres(url) => pg::aggregate(url, &cfg.filter, &cfg.geo)?,
            Source::Mysql(url) => {
                let mut folder = parts::Folder::new(&cfg.filter, &cfg.geo)?;
                mysql::read(url, &cfg.filter, &mut |e| folder.event(e))?;
                folder.agg
            }
            _ => {
                let mut folder = parts::Folder::new(&cfg.filter, &cfg.geo)?;
                s.read(&mut stats, &mut |e| folder.event(e))?;
                folder.agg
            }
        };
        a.merge(part);
    }
    a.finish();
    Ok((a, stats))
}

impl From<parts::PartError<SourceError>> for ReportError {
    fn from(e: parts::PartError<SourceError>) -> ReportError {
        match e {
            parts::PartError::Source(e) => ReportError::Source(e),
            parts::PartError::Geo(e) => ReportError::Geo(e),
        }
    }
}

pub(crate) fn enrich(g: &mut crate::geo::Geo, src: IpAddr, e: &mut Event<'_>) {
    let Some(info) = g.lookup(src) else { return };
    let text = |n: &Option<crate::dns::SafeName>| n.as_ref().map(|n| Cow::Owned(n.shown().into()));
    e.src_country = text(&info.country_code);
    e.src_asn = info.asn;
    e.src_org = text(&info.as_org);
    e.src_location = info.location;
}
