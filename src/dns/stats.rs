//! Counters for the SIGUSR1 dump. Relaxed atomics: each counter is exact, a snapshot of
//! several counters is not one instant (good enough for a status line).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub(crate) struct Counters {
    // No `lookups` counter: every lookup is a hit or a miss, so the snapshot adds them up
    // (one atomic add per address of every packet instead of two).
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub queries: AtomicU64,
    pub names: AtomicU64,
    pub nxdomain: AtomicU64,
    pub nodata: AtomicU64,
    pub timeouts: AtomicU64,
    pub errors: AtomicU64,
    pub deadline_expired: AtomicU64,
    pub dropped: AtomicU64,
    pub unverified: AtomicU64,
    pub in_flight: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

/// A snapshot of the resolver's counters. `Display` gives one line for the SIGUSR1 dump:
/// `dns: lookups=.. hits=.. misses=.. queries=.. names=.. nxdomain=.. nodata=.. timeouts=..
/// errors=.. deadline_expired=.. dropped=.. unverified=.. in_flight=.. pending=.. cached=..`
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsStats {
    /// Addresses the pipeline asked about (`cached()` and `resolve()` calls).
    pub lookups: u64,
    /// Of those, answered from the cache (with a name or a remembered "no name").
    pub hits: u64,
    /// Of those, not in the cache (they started or joined a query, or were dropped).
    pub misses: u64,
    /// Reverse lookups actually sent to hickory (one per address however many packets wait).
    pub queries: u64,
    /// Queries that produced a name.
    pub names: u64,
    /// Queries answered NXDOMAIN.
    pub nxdomain: u64,
    /// Queries answered with no PTR record (NOERROR, empty).
    pub nodata: u64,
    /// Queries that got no answer within query timeout x tries.
    pub timeouts: u64,
    /// Queries that failed otherwise (SERVFAIL, REFUSED, malformed answer, I/O error).
    pub errors: u64,
    /// Waits that hit the packet's deadline (the packet printed without that name).
    pub deadline_expired: u64,
    /// Misses not looked up because the pending set was full.
    pub dropped: u64,
    /// Names that failed forward confirmation (`--verify-names`).
    pub unverified: u64,
    /// Queries talking to servers now.
    pub in_flight: u64,
    /// Lookups started and not finished now (in flight plus queued for a slot).
    pub pending: u64,
    /// Addresses in the cache now (including expired entries not yet replaced).
    pub cached: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self, pending: u64, cached: u64) -> DnsStats {
        let (hits, misses) = (self.hits.load(Relaxed), self.misses.load(Relaxed));
        DnsStats {
            lookups: hits + misses,
            hits,
            misses,
            queries: self.queries.load(Relaxed),
            names: self.names.load(Relaxed),
            nxdomain: self.nxdomain.load(Relaxed),
            nodata: self.nodata.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            errors: self.errors.load(Relaxed),
            deadline_expired: self.deadline_expired.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            unverified: self.unverified.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            pending,
            cached,
        }
    }
}

impl fmt::Display for DnsStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lookups={} hits={} misses={} queries={} names={} nxdomain={} nodata={} \
             timeouts={} errors={} deadline_expired={} dropped={} unverified={} in_flight={} \
             pending={} cached={}",
            self.lookups,
            self.hits,
            self.misses,
            self.queries,
            self.names,
            self.nxdomain,
            self.nodata,
            self.timeouts,
            self.errors,
            self.deadline_expired,
            self.dropped,
            self.unverified,
            self.in_flight,
            self.pending,
            self.cached
        )
    }
}
