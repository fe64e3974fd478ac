//! Offline GeoIP and ASN enrichment: `--geoip PATH` (an mmdb City or Country database) and
//! `--asn PATH` (an mmdb ASN database), read with the `maxminddb` crate.
//!
//! Spec:
//! - [`Geo::open`] reads and verifies every database given; a missing, unreadable, truncated or
//!   corrupt file is one [`DbError`] naming the flag's database and the path, before fwlog
//!   creates anything.
//! - [`Geo::lookup`] answers from a bounded cache keyed by address ([`CACHE_ENTRIES`]), and
//!   asks the databases only on a miss. Addresses that no public database places (private,
//!   loopback, link-local, documentation, ...; see [`info::lookup_worthy`]) are never looked up.
//! - [`Geo::reopen`] (SIGHUP) reads every database again; one that fails keeps its old copy
//!   and returns a warning. The cache is emptied only when something was replaced.
//! - Strings from a database reach outputs only as [`crate::dns::SafeName`], escaped exactly
//!   like DNS names (see [`info`]). Nothing here panics on any database or address.
//!
//! Cost: a cache hit is one hash lookup and an `Arc` clone; the processing loop asks once per
//! address of a packet, where it asks the DNS cache. Each cached [`GeoInfo`] also keeps the
//! formats' text for it once printed ([`info::Rendered`]), so a warm address costs a line a
//! copy; emptying the cache (SIGHUP with a replaced database) drops that text too.

mod db;
pub mod info;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use db::{Db, DbError, DbKind};
pub use info::GeoInfo;

/// Addresses whose answers are kept (each entry is an address and an `Arc`, about 60 bytes,
/// plus the shared strings, plus the rendered text once printed: about 150 to 250 bytes for
/// a City and an ASN record, so some 10 to 20 MiB when full).
pub const CACHE_ENTRIES: usize = 65_536;

/// Which databases to read; `None` when not given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeoConfig {
    pub geoip: Option<PathBuf>,
    pub asn: Option<PathBuf>,
}

impl GeoConfig {
    pub fn is_empty(&self) -> bool {
        self.geoip.is_none() && self.asn.is_none()
    }
}

/// Lookups made and how they went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GeoStats {
    pub hits: u64,
    pub misses: u64,
    /// Lookups a database could not answer (wrong address family, undecodable record).
    pub errors: u64,
}

/// The opened databases and their cache.
pub struct Geo {
    cfg: GeoConfig,
    place: Option<Db>,
    asn: Option<Db>,
    cache: quick_cache::unsync::Cache<IpAddr, Option<Arc<GeoInfo>>>,
    stats: GeoStats,
}

impl Geo {
    /// Open the databases `cfg` names; `Ok(None)` when it names none.
    pub fn open(cfg: &GeoConfig) -> Result<Option<Geo>, DbError> {
        if cfg.is_empty() {
            return Ok(None);
        }
        let place = cfg
            .geoip
            .as_deref()
            .map(|p| Db::open(DbKind::Place, p))
            .transpose()?;
        let asn = cfg
            .asn
            .as_deref()
            .map(|p| Db::open(DbKind::Asn, p))
            .transpose()?;
        Ok(Some(Geo {
            cfg: cfg.clone(),
            place,
            asn,
            cache: quick_cache::unsync::Cache::new(CACHE_ENTRIES),
            stats: GeoStats::default(),
        }))
    }

    /// What the databases know about `ip`, or `None` when nothing (or when `ip` is in a range
    /// that is never looked up).
    pub fn lookup(&mut self, ip: IpAddr) -> Option<Arc<GeoInfo>> {
        if !info::lookup_worthy(ip) {
            return None;
        }
        let ip = info::canonical(ip);
        if let Some(v) = self.cache.get(&ip) {
            self.stats.hits += 1;
            return v.clone();
        }
        self.stats.misses += 1;
        let mut gi = GeoInfo::default();
        for db in [&self.place, &self.asn].into_iter().flatten() {
            if db.fill(ip, &mut gi).is_err() {
                self.stats.errors += 1;
            }
        }
        let v = (!gi.is_empty()).then(|| Arc::new(gi));
        self.cache.insert(ip, v.clone());
        v
    }

    /// Read every database again (SIGHUP). Returns one message per database that could not be
    /// read; those keep their previous contents.
    pub fn reopen(&mut self) -> Vec<String> {
        let mut warnings = Vec::new();
        let mut replaced = false;
        for (kind, path) in [
            (DbKind::Place, self.cfg.geoip.clone()),
            (DbKind::Asn, self.cfg.asn.clone()),
        ] {
            let Some(path) = path else { continue };
            match Db::open(kind, &path) {
                Ok(db) => {
                    match kind {
                        DbKind::Place => self.place = Some(db),
                        DbKind::Asn => self.asn = Some(db),
                    }
                    replaced = true;
                }
                Err(e) => warnings.push(format!("{e}; keeping the database read before")),
            }
        }
        if replaced {
            self.cache.clear();
        }
        warnings
    }

    pub fn stats(&self) -> GeoStats {
        self.stats
    }

    /// The databases' own type names, for the start-up message.
    pub fn describe(&self) -> String {
        [&self.place, &self.asn]
            .into_iter()
            .flatten()
            .map(|d| {
                info::safe_text(Some(d.database_type())).map_or_else(String::new, |n| n.to_string())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
