//! The address-keyed answer cache in front of hickory.
//!
//! One entry per address: `Some(name)` for a positive answer, `None` for "no name" (NXDOMAIN,
//! no PTR, or a recent failure). Each entry carries its expiry as whole seconds since the cache
//! was created (a `u32`, so an entry is small: a million addresses must fit in well under 256 MiB).
//! An expired entry is a miss; it is overwritten by the next answer or evicted by the bound.
//! Expiry has one-second granularity and errs short: an entry lives more than `ttl - 1` s and
//! never more than `ttl` s (rounded up to whole seconds), so a TTL is never overstayed.
//!
//! The bound is on the number of entries (`quick_cache`, CLOCK-Pro-like eviction); `get` takes
//! no global lock, so the pipeline's synchronous fast path stays a hash lookup.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::SafeName;

#[derive(Clone)]
struct Entry {
    name: Option<SafeName>,
    /// Seconds since `AddrCache::epoch` after which the entry is no longer valid.
    expires: u32,
}

pub(crate) struct AddrCache {
    map: quick_cache::sync::Cache<IpAddr, Entry>,
    epoch: Instant,
}

impl AddrCache {
    pub(crate) fn new(entries: usize) -> AddrCache {
        AddrCache {
            map: quick_cache::sync::Cache::new(entries),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u32 {
        self.secs_at(Instant::now())
    }

    fn secs_at(&self, at: Instant) -> u32 {
        let secs = at.saturating_duration_since(self.epoch).as_secs();
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    /// `Some(answer)` when a valid entry exists, `None` on a miss or an expired entry.
    pub(crate) fn get(&self, ip: &IpAddr) -> Option<Option<SafeName>> {
        self.get_at(ip, Instant::now())
    }

    /// [`get`](Self::get) as of `at`, a clock reading the caller took (the processing loop
    /// reads the clock once per round, not once per address). An `at` in the past lets an
    /// entry count as valid for at most that much longer.
    pub(crate) fn get_at(&self, ip: &IpAddr, at: Instant) -> Option<Option<SafeName>> {
        let e = self.map.get(ip)?;
        (e.expires > self.secs_at(at)).then_some(e.name)
    }

    /// The answer and its expiry (seconds since [`epoch`](Self::epoch)) when valid at second
    /// `secs`: what the processing loop's memo keeps (see `memo.rs`).
    pub(crate) fn entry_at_secs(&self, ip: &IpAddr, secs: u32) -> Option<(Option<SafeName>, u32)> {
        let e = self.map.get(ip)?;
        (e.expires > secs).then_some((e.name, e.expires))
    }

    /// Where expiry seconds count from.
    pub(crate) fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Remember `name` for `ttl` (rounded up to whole seconds, so a 1.5 s TTL lasts 2 s at most).
    pub(crate) fn insert(&self, ip: IpAddr, name: Option<SafeName>, ttl: Duration) {
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let expires = u64::from(self.now())
            .saturating_add(secs)
            .min(u64::from(u32::MAX));
        let expires = u32::try_from(expires).unwrap_or(u32::MAX);
        self.map.insert(ip, Entry { name, expires });
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_and_negative_entries() {
        let c = AddrCache::new(16);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(c.get(&a).is_none());
        c.insert(
            a,
            Some(SafeName::from_labels([&b"x"[..]])),
            Duration::from_secs(60),
        );
        c.insert(b, None, Duration::from_secs(60));
        assert_eq!(c.get(&a).unwrap().unwrap().as_str(), "x");
        assert_eq!(c.get(&b), Some(None));
        // A zero TTL is never a hit.
        c.insert(a, None, Duration::ZERO);
        assert!(c.get(&a).is_none());
    }

    #[test]
    fn bounded() {
        let c = AddrCache::new(100);
        for i in 0..10_000u32 {
            c.insert(IpAddr::from(i.to_be_bytes()), None, Duration::from_secs(60));
        }
        assert!(c.len() <= 110, "{}", c.len());
    }
}
