//! [`NameMemo`]: the processing loop's own small cache of answers, in front of the shared one.
//!
//! The shared cache ([`super::cache`]) is safe to use from any thread: every lookup hashes the
//! address, takes a shard lock and clones the answer (two reference counts up, and down again
//! when the packet has printed). With a warm cache that was about a sixth of the loop's CPU,
//! for two addresses per packet that are mostly the same few hundred addresses again and again.
//! The memo belongs to the one thread that prints. Asking it about an address is one hash probe
//! and gives a [`Slot`]; the packet keeps the slot, and printing reads the name through it by
//! reference: no lock, no atomic operation, no second hash, nothing to drop after printing.
//!
//! Invariants:
//! - An entry is a copy of a shared-cache entry (answer and expiry, in the shared cache's
//!   seconds), taken when the shared cache answered the loop with a hit. It is valid exactly as
//!   long as that shared entry was: the memo answers only while `expires` is later than the
//!   second asked about, so a name is never printed past its TTL.
//! - An entry never changes once written, until the memo is emptied: a newer answer for the
//!   same address ([`NameMemo::put`]) is appended as a new entry and the address's index points
//!   at it, while the old entry stays as it was. A packet keeps the slot it was given on entry,
//!   so it prints the answer that was valid when it entered, never one stored later (a later
//!   answer may not have been valid then, may have expired by the time the packet prints, or
//!   may be a short failure answer that would erase a name the packet had). An expired entry
//!   is never returned by [`NameMemo::get`], so the next packet asks the shared cache again and
//!   gets (or starts a lookup for) the new answer.
//! - At most [`MEMO_ENTRIES`] entries, replaced answers included: when a new answer finds it
//!   full, the memo is emptied and its generation moves on (cheaper than an eviction order; an
//!   emptied memo refills from the shared cache at the shared cache's cost). A [`Slot`] of an
//!   older generation, or one used with another address, lends nothing.
//! - The shared cache stays the one place answers are kept for good; emptying the memo loses
//!   no answer, but it can change what a packet prints. A packet whose slot was emptied asks
//!   the shared cache again when it prints, as of the print time: it gets the same name if
//!   the shared entry is still there, a newer answer if the shared entry was refreshed, and no
//!   name at all if the shared entry expired or was evicted in between (the packet then prints
//!   without it). It never gets a name past its TTL.
//! - The index from address to entry is direct-mapped (one bucket per address, no probing):
//!   an address whose bucket another address took since is a miss here, and the shared cache
//!   answers it as if the memo were not there (one more entry towards the bound). A bucket
//!   never points at an address's older entry once a newer one was put. Buckets are chosen by
//!   multiplying with random odd numbers drawn per memo, so addresses from hostile traffic
//!   cannot be picked to collide; and since nothing is probed, collisions could at worst turn
//!   the memo's hits into the shared cache's, never make a lookup longer. Why not a `HashMap`:
//!   its hash of an `IpAddr` (three writes into the hasher) and group probe were most of the
//!   memo's cost per address, for two addresses per packet.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::time::Instant;

use super::SafeName;

/// Entries (answers, replaced ones included) the memo holds at most (a few hundred KiB at most).
pub const MEMO_ENTRIES: usize = 4096;

struct Memo {
    ip: IpAddr,
    answer: Option<SafeName>,
    /// The shared entry's expiry, in seconds since the shared cache's epoch.
    expires: u32,
}

/// Where the memo keeps an address's answer, for reading it again without a hash: valid while
/// the memo's generation is the same; the entry it points at does not change until then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    index: u32,
    generation: u32,
}

/// Buckets the index starts with; it doubles while entries outnumber half its buckets, up to
/// twice [`MEMO_ENTRIES`].
const FIRST_BUCKETS: usize = 64;

/// An empty bucket.
const NO_ENTRY: u32 = u32::MAX;

/// See the module docs. Made by [`super::Resolver::memo`], used only with that resolver.
pub struct NameMemo {
    /// Bucket -> index in `entries` of the newest entry put for an address of that bucket, or
    /// [`NO_ENTRY`]. Its length is a power of two, `1 << (64 - shift)`.
    index: Vec<u32>,
    shift: u32,
    /// Random odd multipliers choosing the buckets (see the module docs).
    keys: [u64; 4],
    entries: Vec<Memo>,
    /// Moves on each time the memo is emptied.
    generation: u32,
    /// The shared cache's epoch: expiry seconds count from it.
    epoch: Instant,
    /// Hits answered here and not yet added to the resolver's counters.
    pub(super) hits: u64,
}

impl NameMemo {
    pub(super) fn new(epoch: Instant) -> NameMemo {
        // Grown as addresses come, not made full size: a few hundred addresses then sit in a
        // few dozen cache lines instead of being spread over the whole table.
        let mut random = RandomState::new().build_hasher();
        let mut key = |i: u64| {
            random.write_u64(i);
            random.finish() | 1
        };
        NameMemo {
            index: vec![NO_ENTRY; FIRST_BUCKETS],
            shift: 64 - FIRST_BUCKETS.trailing_zeros(),
            keys: [key(0), key(1), key(2), key(3)],
            entries: Vec::new(),
            generation: 0,
            epoch,
            hits: 0,
        }
    }

    /// `at` in the shared cache's seconds, for [`get`](Self::get) and [`lend`](Self::lend).
    pub fn secs(&self, at: Instant) -> u32 {
        let secs = at.saturating_duration_since(self.epoch).as_secs();
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    /// `ip`'s bucket in the index: multiply-shift hashing of the address (an IPv6 address
    /// folded to 64 bits first, with keys of its own).
    #[inline]
    fn bucket(&self, ip: &IpAddr) -> usize {
        let x = match ip {
            IpAddr::V4(a) => u64::from(a.to_bits()),
            IpAddr::V6(a) => {
                let v = a.to_bits();
                let m = u128::from(v as u64 ^ self.keys[1])
                    * u128::from((v >> 64) as u64 ^ self.keys[2]);
                (m as u64) ^ (m >> 64) as u64
            }
        };
        // Multiply-shift alone takes the bucket from the top bits of x * k: for a run of
        // consecutive addresses (a /20 of clients) those crowd into a few buckets whenever the
        // drawn k lies near a fraction with a small denominator (about one memo in thirty kept
        // under half of 2,866 such addresses). Folding the product's high half into its low
        // half and multiplying again spreads them (no such memo in 3,000 runs of that test).
        let h = x.wrapping_mul(self.keys[0]);
        ((h ^ (h >> 32)).wrapping_mul(self.keys[3]) >> self.shift) as usize
    }

    /// Where `ip`'s answer is if the memo holds one still valid at second `secs`.
    #[inline]
    pub fn get(&self, ip: &IpAddr, secs: u32) -> Option<Slot> {
        let index = *self.index.get(self.bucket(ip))?;
        // An empty bucket's NO_ENTRY is past every entry.
        let m = self.entries.get(index as usize)?;
        (m.ip == *ip && m.expires > secs).then_some(Slot {
            index,
            generation: self.generation,
        })
    }

    /// Whether `slot` still points at the entry it was given for: true until the memo is
    /// emptied. Entries never change meanwhile and a slot is only given for an entry valid at
    /// the second it was asked about, so for a slot from [`get`](Self::get) or `put` this is
    /// exactly whether [`lend`](Self::lend) with that address and second answers, without
    /// reading the entry.
    #[inline]
    pub fn holds(&self, slot: Slot) -> bool {
        slot.generation == self.generation
    }

    /// The answer kept in `slot` for `ip`, if it is still there and valid at second `secs`:
    /// `Some(None)` when the address is known to have no name.
    pub fn lend(&self, slot: Slot, ip: &IpAddr, secs: u32) -> Option<Option<&SafeName>> {
        if slot.generation != self.generation {
            return None;
        }
        let m = self.entries.get(slot.index as usize)?;
        (m.ip == *ip && m.expires > secs).then_some(m.answer.as_ref())
    }

    /// Keep a shared-cache answer (see the module docs for the bound); where it is kept. An
    /// address already held gets a new entry: slots handed out for its older answer keep
    /// lending that answer.
    pub(super) fn put(&mut self, ip: IpAddr, answer: Option<SafeName>, expires: u32) -> Slot {
        if self.entries.len() >= MEMO_ENTRIES {
            self.index.fill(NO_ENTRY);
            self.entries.clear();
            self.generation = self.generation.wrapping_add(1);
        }
        // At most MEMO_ENTRIES, so the index fits.
        let index = self.entries.len() as u32;
        self.entries.push(Memo {
            ip,
            answer,
            expires,
        });
        if self.entries.len() * 2 > self.index.len() && self.index.len() < 2 * MEMO_ENTRIES {
            self.grow();
        }
        // Replaces the address's older index, if any (or another address's of the same
        // bucket); its entry stays for the slots lent.
        let b = self.bucket(&ip);
        self.index[b] = index;
        Slot {
            index,
            generation: self.generation,
        }
    }

    /// Twice the buckets, filled again from the entries in the order they were put, so each
    /// bucket ends at its newest address's newest entry as before.
    fn grow(&mut self) {
        let buckets = self.index.len() * 2;
        self.index.clear();
        self.index.resize(buckets, NO_ENTRY);
        self.shift -= 1;
        for i in 0..self.entries.len() {
            let b = self.bucket(&self.entries[i].ip);
            self.index[b] = i as u32;
        }
    }

    /// Entries held, replaced answers included (for tests and the bound).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    fn ip(i: u32) -> IpAddr {
        IpAddr::from(i.to_be_bytes())
    }

    fn name(m: &NameMemo, a: IpAddr, secs: u32) -> Option<Option<String>> {
        let slot = m.get(&a, secs)?;
        let lent = m.lend(slot, &a, secs).expect("a slot just found lends");
        Some(lent.map(|n| n.as_str().to_owned()))
    }

    #[test]
    fn valid_until_the_shared_expiry_and_a_newer_answer_gets_its_own_slot() {
        let mut m = NameMemo::new(Instant::now());
        let a = SafeName::from_labels([&b"a"[..]]);
        let b = SafeName::from_labels([&b"b"[..]]);
        // A second address in another bucket: buckets are drawn per memo, and one that shared
        // ip(1)'s would take it (a miss for ip(1), as the index is direct-mapped).
        let other = (2..)
            .map(ip)
            .find(|o| m.bucket(o) != m.bucket(&ip(1)))
            .unwrap();
        let s1 = m.put(ip(1), Some(a), 10);
        m.put(other, None, 10);
        assert_eq!(name(&m, ip(1), 9), Some(Some("a".into())));
        assert_eq!(name(&m, other, 9), Some(None));
        // Expired at its second, like the shared cache's entry, through the index or a slot.
        assert!(m.get(&ip(1), 10).is_none());
        assert!(m.lend(s1, &ip(1), 10).is_none());
        let never_put = (2..).map(ip).find(|n| *n != other).unwrap();
        assert!(m.get(&never_put, 0).is_none());
        // A newer answer gets a new slot and the index; the old slot keeps its answer.
        let s2 = m.put(ip(1), Some(b), 20);
        assert_ne!(s1, s2);
        assert_eq!(m.get(&ip(1), 15), Some(s2));
        assert_eq!(m.lend(s2, &ip(1), 15).unwrap().unwrap().as_str(), "b");
        assert_eq!(m.lend(s1, &ip(1), 9).unwrap().unwrap().as_str(), "a");
        // A slot is only good for its own address.
        assert!(m.lend(s1, &other, 0).is_none());
    }

    /// A packet entered at second 5 holding "a" (valid until 10); "a" expires, a later answer
    /// "b" with a short TTL (until 14) is stored, then a short failure answer; the packet's
    /// print was delayed past both. It prints what it had on entry, never "b" (not valid when
    /// it entered, expired when it prints) and never loses "a" to the failure answer.
    #[test]
    fn a_packet_prints_the_answer_it_entered_with_not_a_later_one() {
        let mut m = NameMemo::new(Instant::now());
        let entered = 5;
        let slot = m.put(ip(1), Some(SafeName::from_labels([&b"a"[..]])), 10);
        assert!(m.get(&ip(1), 12).is_none(), "a has expired");
        let later = m.put(ip(1), Some(SafeName::from_labels([&b"b"[..]])), 14);
        assert_eq!(m.lend(later, &ip(1), 12).unwrap().unwrap().as_str(), "b");
        assert_eq!(
            m.lend(slot, &ip(1), entered).unwrap().unwrap().as_str(),
            "a"
        );
        let failed = m.put(ip(1), None, 16);
        assert_eq!(m.lend(failed, &ip(1), 15), Some(None));
        assert_eq!(
            m.lend(slot, &ip(1), entered).unwrap().unwrap().as_str(),
            "a"
        );
        assert_eq!(m.lend(later, &ip(1), 12).unwrap().unwrap().as_str(), "b");
        assert_eq!(m.len(), 3, "replaced answers count towards the bound");
    }

    /// `holds` stands in for `lend` when a packet prints: for every slot handed out for an
    /// answer valid at the second asked about, both agree, through replacements and emptying.
    #[test]
    fn holds_is_whether_lend_answers_for_the_slots_given() {
        let mut m = NameMemo::new(Instant::now());
        let mut given = Vec::new();
        for i in 0..(2 * MEMO_ENTRIES as u32 + 50) {
            // Every third answer replaces an address already held; expiries vary.
            let a = ip(i % (MEMO_ENTRIES as u32 / 3 + 1));
            let expires = 10 + i % 7;
            let slot = m.put(a, None, expires);
            given.push((a, slot, expires - 1));
            if let Some(slot) = m.get(&a, expires - 1) {
                given.push((a, slot, expires - 1));
            }
            if i % 97 == 0 {
                for &(a, slot, secs) in &given {
                    assert_eq!(m.holds(slot), m.lend(slot, &a, secs).is_some());
                }
            }
        }
        for &(a, slot, secs) in &given {
            assert_eq!(m.holds(slot), m.lend(slot, &a, secs).is_some());
        }
        assert!(
            given.iter().any(|&(_, s, _)| !m.holds(s)),
            "the memo was emptied"
        );
        assert!(given.iter().any(|&(_, s, _)| m.holds(s)));
    }

    #[test]
    fn bounded_and_old_slots_lend_nothing() {
        let mut m = NameMemo::new(Instant::now());
        let first = m.put(ip(0), Some(SafeName::from_labels([&b"zero"[..]])), 60);
        for i in 1..(3 * MEMO_ENTRIES as u32 + 7) {
            m.put(ip(i), None, 60);
            assert!(m.len() <= MEMO_ENTRIES);
        }
        // The newest is always there; one that was emptied out is a miss, never a wrong
        // answer, even though its slot's index now holds another address.
        let last = 3 * MEMO_ENTRIES as u32 + 6;
        assert_eq!(name(&m, ip(last), 0), Some(None));
        assert!(m.get(&ip(0), 0).is_none());
        assert!(m.lend(first, &ip(0), 0).is_none());
    }

    /// Through the resolver: a hit is copied into the memo with the shared entry's expiry;
    /// past it, the memo and the shared cache both miss (a lookup would start); a new answer
    /// gets a new slot, and the packet's slot still lends the old answer.
    #[tokio::test]
    async fn the_resolver_fills_the_memo_with_the_shared_expiry_and_newer_answers() {
        use crate::dns::{Check, DnsConfig, Resolver};
        let cfg = DnsConfig {
            servers: vec!["127.0.0.1:9".parse().unwrap()],
            ..DnsConfig::default()
        };
        let r = Resolver::new(cfg, tokio::runtime::Handle::current()).unwrap();
        let mut m = r.memo();
        let a = ip(0xc000_0201);
        let now = m.secs(Instant::now());
        assert_eq!(r.check(&mut m, a, now), Check::Miss);
        r.remember(
            a,
            Some(SafeName::from_labels([&b"old"[..]])),
            Duration::from_secs(10),
        );
        let Check::Known(slot) = r.check(&mut m, a, now) else {
            panic!("a hit")
        };
        assert_eq!(m.lend(slot, &a, now).unwrap().unwrap().as_str(), "old");
        assert_eq!(
            r.check(&mut m, a, now),
            Check::Known(slot),
            "the memo answers"
        );
        // Past its 10 s (with a second to spare) neither the memo nor the shared cache holds it.
        assert!(m.lend(slot, &a, now + 12).is_none());
        assert_eq!(r.check(&mut m, a, now + 12), Check::Miss);
        r.remember(
            a,
            Some(SafeName::from_labels([&b"new"[..]])),
            Duration::from_secs(60),
        );
        let Check::Known(new) = r.check(&mut m, a, now + 12) else {
            panic!("a hit")
        };
        assert_ne!(new, slot);
        assert_eq!(m.lend(new, &a, now + 12).unwrap().unwrap().as_str(), "new");
        assert_eq!(m.lend(slot, &a, now).unwrap().unwrap().as_str(), "old");
        // Three hits: two from the shared cache, one from the memo once counted in.
        r.count_memo_hits(&mut m);
        let s = r.stats();
        assert_eq!((s.hits, s.misses), (3, 2), "{s}");
    }

    /// With more addresses than buckets (IPv4 and IPv6, answers replaced, the index grown and
    /// the memo emptied on the way), `get` gives an address's newest entry or nothing: never
    /// another address's entry, never an older answer; the address just put is always found.
    #[test]
    fn buckets_shared_by_addresses_give_the_newest_entry_or_nothing() {
        let mut m = NameMemo::new(Instant::now());
        let v6 = |i: u32| IpAddr::from((u128::from(i) << 64 | 0x2001_0db8).to_be_bytes());
        let mut newest: HashMap<IpAddr, Slot> = HashMap::new();
        let mut generation = 0;
        for i in 0..(3 * MEMO_ENTRIES as u32) {
            let a = if i % 3 == 0 {
                v6(i % 1500)
            } else {
                ip(i % 3001)
            };
            let slot = m.put(a, None, 100);
            if slot.generation != generation {
                generation = slot.generation;
                newest.clear();
            }
            newest.insert(a, slot);
            assert_eq!(m.get(&a, 0), Some(slot), "just put: {a}");
            if i % 499 == 0 {
                for (b, s) in &newest {
                    let got = m.get(b, 0);
                    assert!(got.is_none() || got == Some(*s), "{b}");
                }
            }
        }
        let found = newest.keys().filter(|a| m.get(a, 0).is_some()).count();
        assert!(
            found * 2 > newest.len(),
            "most are found: {found} of {}",
            newest.len()
        );
    }

    #[test]
    fn ipv4_and_its_mapped_ipv6_form_are_different_addresses() {
        let mut m = NameMemo::new(Instant::now());
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let slot = m.put(v4, Some(SafeName::from_labels([&b"v4"[..]])), 60);
        assert!(m.get(&mapped, 0).is_none());
        assert!(m.lend(slot, &mapped, 0).is_none());
    }
}
