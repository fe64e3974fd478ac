//! The report's tables, folded one event at a time in bounded memory.
//!
//! [`Counter`] holds at most its capacity of keys. When full, it drops every key whose count
//! is at or below the median and remembers the largest count it dropped (`dropped_max`). A key
//! seen again later restarts from zero, so a shown count may be low (the report says by how
//! much at most, per prune); between two prunes at least half the capacity of new keys arrive,
//! so a key that is more frequent than that keeps growing above the median and is never
//! dropped: heavy hitters survive any flood of one-off keys. With fewer distinct keys than the
//! capacity, every count is exact.
//!
//! Scans: per tracked source, the distinct destination ports and hosts seen within one clock
//! minute (a window of [`SCAN_WINDOW`] seconds aligned to the epoch); a source that reached
//! [`SCAN_PORTS`] ports or [`SCAN_HOSTS`] hosts in one minute is a scan. Each set stops growing
//! at [`SCAN_TRACK`] members, which is all the decision needs. Aligned windows make the result
//! independent of the order rows arrive in, so a database can compute it with `GROUP BY`
//! ([`Aggregate::add_scan_window`]) and get what streaming the same rows gives. A streamed
//! event older than its source's current minute (timestamps slightly out of order across CPUs)
//! is counted everywhere but in the scan sets.
//!
//! Merging: a report may fold parts of its input apart (a database read on every core, each
//! part a time range that starts on a clock minute) and merge them in time order
//! ([`Aggregate::merge`]). Below the tables' capacities the merge gives exactly what folding
//! the parts one after the other gives: counts add, first and last seen take the minimum and
//! maximum, a source's name, country, AS and location are the earlier part's when it had
//! them, and since no scan window spans two parts, a source's largest window is the larger of
//! its two. Above capacity the merged table is pruned as one fed the same counts would be,
//! and the bound on how low a shown count may be is the sum of the parts' bounds.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::IpAddr;

use compact_str::CompactString;

/// The tables' hasher: one per table, seeded at random. Their keys (addresses, prefixes) come
/// from logged traffic, which an attacker chooses; every table is bounded, so a flood of
/// colliding keys costs time, never memory. SipHash cost about a sixth of a report's CPU.
type State = foldhash::fast::RandomState;

use super::Event;

/// Distinct keys a table keeps (sources carry their scan state: about 1.5 KiB each at most).
pub const SOURCES_CAP: usize = 16_384;
pub const KEYS_CAP: usize = 4_096;
/// Seconds of a scan window.
pub const SCAN_WINDOW: i64 = 60;
pub const SCAN_PORTS: usize = 10;
pub const SCAN_HOSTS: usize = 10;
pub const SCAN_TRACK: usize = 64;

/// A bounded map from key to count plus a value (see the module docs).
///
/// The values live apart from the keys, in a dense slab of at most `cap` slots, the hash map
/// holding a key's count and slot: a source's value is a few hundred bytes, and writing a new
/// one into a slot of a sparse hash table (twice as many buckets as entries) missed the cache
/// on every new key; the slots freed by a prune are taken again in order.
#[derive(Clone, Debug)]
pub struct Counter<K, V> {
    cap: usize,
    map: HashMap<K, (u64, u32), State>,
    /// The values; a slot not in `map` is free (its old value is replaced when taken).
    vals: Vec<V>,
    /// Free slots, the next one to take last.
    free: Vec<u32>,
    pub dropped_max: u64,
    /// Kept between prunes: a prune runs every `cap / 2` new keys when a flood of distinct
    /// keys streams by, and allocating these each time cost more than the pruning.
    scratch_counts: Vec<u64>,
    scratch_keys: Vec<K>,
}

impl<K: Hash + Eq + Clone + Ord, V: Default> Counter<K, V> {
    pub fn new(cap: usize) -> Self {
        Counter {
            cap: cap.max(2),
            map: HashMap::default(),
            vals: Vec::new(),
            free: Vec::new(),
            dropped_max: 0,
            scratch_counts: Vec::new(),
            scratch_keys: Vec::new(),
        }
    }

    /// Count `n` for `key` and return its value for updating.
    pub fn add(&mut self, key: &K, n: u64) -> &mut V {
        match self.map.get_mut(key) {
            Some(slot) => {
                slot.0 += n;
                let i = slot.1 as usize;
                &mut self.vals[i]
            }
            None => self.add_absent(key.clone(), n),
        }
    }

    /// Add the counts of `later` (a table of a later part of the input): its keys are fed in
    /// key order, so the result does not depend on either table's hash seed; `join` merges
    /// the values (the value of a key new here starts as the default).
    pub fn merge(&mut self, mut later: Counter<K, V>, mut join: impl FnMut(&mut V, V)) {
        self.dropped_max += later.dropped_max;
        let mut entries: Vec<(K, (u64, u32))> = later.map.drain().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (k, (n, i)) in entries {
            let v = std::mem::take(&mut later.vals[i as usize]);
            join(self.add(&k, n), v);
        }
    }

    fn prune(&mut self) {
        let counts = &mut self.scratch_counts;
        counts.clear();
        counts.extend(self.map.values().map(|v| v.0));
        let mid = counts.len() / 2;
        let (_, &mut median, _) = counts.select_nth_unstable(mid);
        self.dropped_max = self.dropped_max.max(median);
        let free = &mut self.free;
        self.map.retain(|_, v| {
            let keep = v.0 > median;
            if !keep {
                free.push(v.1);
            }
            keep
        });
        // Every count equal: drop the smaller half by key order so the table makes room
        // (selected, not sorted: the same keys go, in linear time).
        if self.map.len() >= self.cap {
            let keys = &mut self.scratch_keys;
            keys.clear();
            keys.extend(self.map.keys().cloned());
            let half = keys.len() / 2;
            if half > 0 {
                keys.select_nth_unstable(half);
                for k in &keys[..half] {
                    if let Some((_, i)) = self.map.remove(k) {
                        self.free.push(i);
                    }
                }
            }
            keys.clear();
        }
        // Taken from the end: lowest slot first, so new values are written in memory order.
        self.free.sort_unstable_by(|a, b| b.cmp(a));
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The `n` largest, by count then key (so equal counts print in a stable order).
    pub fn top(&self, n: usize) -> Vec<(&K, u64, &V)> {
        let mut v: Vec<(&K, u64, &V)> = self.iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        v.truncate(n);
        v
    }

    /// [`Counter::add`] for a borrowed key: allocates an owned key only for a new entry.
    pub fn add_ref<Q>(&mut self, key: &Q, n: u64)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.map.get_mut(key) {
            Some(slot) => slot.0 += n,
            None => {
                self.add_absent(key.to_owned(), n);
            }
        }
    }

    /// Count `n` for `key`, which the table does not hold (as [`Counter::add`], one lookup
    /// fewer).
    fn add_absent(&mut self, key: K, n: u64) -> &mut V {
        if self.map.len() >= self.cap {
            self.prune();
        }
        let i = match self.free.pop() {
            Some(i) => {
                self.vals[i as usize] = V::default();
                i
            }
            None => {
                self.vals.push(V::default());
                // At most `cap` slots (a prune frees some before the table is over), far
                // below u32::MAX.
                (self.vals.len() - 1) as u32
            }
        };
        self.map.insert(key, (n, i));
        &mut self.vals[i as usize]
    }

    /// The count and value of `key`, when the table holds it (one lookup for both).
    pub fn slot_mut(&mut self, key: &K) -> Option<(&mut u64, &mut V)> {
        let (n, i) = self.map.get_mut(key)?;
        Some((n, &mut self.vals[*i as usize]))
    }

    /// The value of `key`, when the table holds it.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.map.get(key)?.1;
        Some(&mut self.vals[i as usize])
    }

    /// Every entry (for filters such as scans).
    pub fn iter(&self) -> impl Iterator<Item = (&K, u64, &V)> {
        self.map
            .iter()
            .map(|(k, &(c, i))| (k, c, &self.vals[i as usize]))
    }
}

/// Which source facts a row holds without having sent them ([`Facts::has`]).
pub const HAS_NAME: u8 = 1;
/// An AS number (the organisation is taken from the same row).
pub const HAS_ASN: u8 = 2;
/// A valid location ([`crate::geo::info::location`]).
pub const HAS_PLACE: u8 = 4;

/// A row's source facts that were not sent with it: which it has ([`HAS_NAME`], [`HAS_ASN`],
/// [`HAS_PLACE`]) and the key its source reads the row back by (PostgreSQL: the row's time in
/// microseconds, with its address). Sending them only for the sources a report keeps costs
/// the server far less than sending them with every row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub at: i64,
    pub has: u8,
}

/// The facts a source still has to read for one kept address: for each, the key of the
/// first row (in the order the rows were folded) that holds it, exactly the row whose value
/// the fold would have taken had it been sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    pub name: Option<i64>,
    pub asn: Option<i64>,
    pub place: Option<i64>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        *self == Pending::default()
    }
}

/// What the report shows about one source address.
#[derive(Clone, Debug, Default)]
pub struct SourceInfo {
    pub first: i64,
    pub last: i64,
    pub name: Option<CompactString>,
    pub country: Option<CompactString>,
    pub asn: Option<u32>,
    pub org: Option<CompactString>,
    pub location: Option<(f64, f64)>,
    /// Facts known to exist but not read yet (see [`Facts`]); a fact is taken from the
    /// first row that has it, sent or pending.
    pub pending: Pending,
    /// The minute (`time / SCAN_WINDOW`) the sets below are for.
    minute: i64,
    ports: SmallSet<u16>,
    hosts: SmallSet<IpAddr>,
    /// Most distinct ports and hosts in one window.
    pub max_ports: usize,
    pub max_hosts: usize,
    /// Packets seen (the counter's count may restart after pruning).
    seen: u64,
}

/// A set of at most [`SCAN_TRACK`] values whose first member is kept inline: most sources
/// send one packet between prunes, and a heap allocation each made up much of a report's time.
#[derive(Clone, Debug)]
struct SmallSet<T> {
    first: Option<T>,
    more: Vec<T>,
}

impl<T> Default for SmallSet<T> {
    fn default() -> Self {
        SmallSet {
            first: None,
            more: Vec::new(),
        }
    }
}

impl<T: Copy + PartialEq> SmallSet<T> {
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    /// Add `v` unless present or full.
    fn insert(&mut self, v: T) {
        match self.first {
            None => self.first = Some(v),
            Some(f) if f == v => {}
            Some(_) => {
                if self.len() < SCAN_TRACK && !self.more.contains(&v) {
                    self.more.push(v);
                }
            }
        }
    }

    fn clear(&mut self) {
        self.first = None;
        self.more.clear();
    }

    fn extend(&mut self, other: &SmallSet<T>) {
        for &v in other.first.iter().chain(&other.more) {
            self.insert(v);
        }
    }
}

impl SourceInfo {
    /// Merge what a later part of the input saw of this source (see the module docs).
    fn absorb(&mut self, later: SourceInfo) {
        if self.seen == 0 {
            *self = later;
            return;
        }
        self.seen += later.seen;
        self.first = self.first.min(later.first);
        self.last = self.last.max(later.last);
        if self.name.is_none() && self.pending.name.is_none() {
            self.name = later.name;
            self.pending.name = later.pending.name;
        }
        if self.country.is_none() {
            self.country = later.country;
        }
        if self.asn.is_none() && self.pending.asn.is_none() {
            self.asn = later.asn;
            self.org = later.org;
            self.pending.asn = later.pending.asn;
        }
        if self.location.is_none() && self.pending.place.is_none() {
            self.location = later.location;
            self.pending.place = later.pending.place;
        }
        self.max_ports = self.max_ports.max(later.max_ports);
        self.max_hosts = self.max_hosts.max(later.max_hosts);
        // Parts split on a minute: the later part's minute is a new one, unless a part's
        // input was out of order (then its sets join this minute's, as one stream would).
        if later.minute > self.minute {
            self.minute = later.minute;
            self.ports = later.ports;
            self.hosts = later.hosts;
        } else if later.minute == self.minute {
            self.ports.extend(&later.ports);
            self.hosts.extend(&later.hosts);
            self.max_ports = self.max_ports.max(self.ports.len());
            self.max_hosts = self.max_hosts.max(self.hosts.len());
        }
    }

    fn add(&mut self, e: &Event) {
        if self.seen == 0 {
            self.first = e.time;
            self.last = e.time;
            self.minute = e.time.div_euclid(SCAN_WINDOW);
        }
        self.seen += 1;
        self.first = self.first.min(e.time);
        self.last = self.last.max(e.time);
        let owned = |s: &Option<std::borrow::Cow<'_, str>>| s.as_deref().map(CompactString::from);
        let p = &mut self.pending;
        if self.name.is_none() && p.name.is_none() {
            self.name = owned(&e.src_name);
        }
        if self.country.is_none() {
            self.country = owned(&e.src_country);
        }
        if self.asn.is_none() && p.asn.is_none() {
            self.asn = e.src_asn;
            self.org = owned(&e.src_org);
        }
        if self.location.is_none() && p.place.is_none() {
            self.location = e.src_location;
        }
        if let Some(f) = e.facts {
            let mark = |have: bool, slot: &mut Option<i64>, bit: u8| {
                if !have && slot.is_none() && f.has & bit != 0 {
                    *slot = Some(f.at);
                }
            };
            mark(self.name.is_some(), &mut p.name, HAS_NAME);
            mark(self.asn.is_some(), &mut p.asn, HAS_ASN);
            mark(self.location.is_some(), &mut p.place, HAS_PLACE);
        }
        let minute = e.time.div_euclid(SCAN_WINDOW);
        if minute < self.minute {
            return;
        }
        if minute > self.minute {
            self.minute = minute;
            self.ports.clear();
            self.hosts.clear();
        }
        if let Some(p) = e.dport {
            self.ports.insert(p);
        }
        if let Some(h) = e.dst {
            self.hosts.insert(h);
        }
        self.max_ports = self.max_ports.max(self.ports.len());
        self.max_hosts = self.max_hosts.max(self.hosts.len());
    }

    pub fn is_scan(&self) -> bool {
        self.max_ports >= SCAN_PORTS || self.max_hosts >= SCAN_HOSTS
    }
}

/// Everything the report prints. Call [`Aggregate::finish`] after the last event, before
/// reading the tables.
#[derive(Clone, Debug)]
pub struct Aggregate {
    pub packets: u64,
    pub lost: u64,
    pub first: Option<i64>,
    pub last: Option<i64>,
    pub prefixes: Counter<String, ()>,
    pub sources: Counter<IpAddr, SourceInfo>,
    /// (protocol, port)
    pub ports: Counter<(u8, u16), ()>,
    pub countries: Counter<String, ()>,
    /// Hour (seconds since the epoch, a multiple of 3600) -> packets; one entry per hour that
    /// had packets, so bounded by the window's length.
    pub hours: BTreeMap<i64, u64>,
    /// The hour being counted and its packets not yet in `hours` (rows come mostly in time
    /// order: one map update per hour rather than per packet).
    hour: (i64, u64),
}

impl Default for Aggregate {
    fn default() -> Self {
        Aggregate {
            packets: 0,
            lost: 0,
            first: None,
            last: None,
            prefixes: Counter::new(KEYS_CAP),
            sources: Counter::new(SOURCES_CAP),
            ports: Counter::new(KEYS_CAP),
            countries: Counter::new(KEYS_CAP),
            hours: BTreeMap::new(),
            hour: (0, 0),
        }
    }
}

impl Aggregate {
    pub fn add(&mut self, e: &Event) {
        self.first = Some(self.first.map_or(e.time, |f| f.min(e.time)));
        self.last = Some(self.last.map_or(e.time, |l| l.max(e.time)));
        if e.lost > 0 {
            self.lost += e.lost;
            return;
        }
        self.packets += 1;
        let hour = e.time.div_euclid(3600) * 3600;
        if hour != self.hour.0 {
            self.finish();
            self.hour.0 = hour;
        }
        self.hour.1 += 1;
        self.prefixes.add_ref(e.prefix.as_deref().unwrap_or(""), 1);
        if let Some(src) = e.src {
            match self.sources.slot_mut(&src) {
                Some((n, s)) => {
                    *n += 1;
                    s.add(e);
                }
                None => self.sources.add_absent(src, 1).add(e),
            }
        }
        if let (Some(proto), Some(port)) = (e.proto, e.dport) {
            self.ports.add(&(proto, port), 1);
        }
        if let Some(cc) = &e.src_country {
            self.countries.add_ref(&**cc, 1);
        }
    }

    /// Put the counts still held aside into the tables.
    pub fn finish(&mut self) {
        if self.hour.1 > 0 {
            *self.hours.entry(self.hour.0).or_insert(0) += self.hour.1;
            self.hour.1 = 0;
        }
    }

    /// Merge the aggregate of a later part of the input (see the module docs).
    pub fn merge(&mut self, mut later: Aggregate) {
        self.finish();
        later.finish();
        self.packets += later.packets;
        self.lost += later.lost;
        for t in [later.first, later.last].into_iter().flatten() {
            self.first = Some(self.first.map_or(t, |f| f.min(t)));
            self.last = Some(self.last.map_or(t, |l| l.max(t)));
        }
        for (h, n) in later.hours {
            *self.hours.entry(h).or_insert(0) += n;
        }
        self.prefixes.merge(later.prefixes, |_, _| {});
        self.ports.merge(later.ports, |_, _| {});
        self.countries.merge(later.countries, |_, _| {});
        self.sources.merge(later.sources, SourceInfo::absorb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_is_exact_below_capacity_and_bounded_above() {
        let mut c: Counter<u32, ()> = Counter::new(64);
        for k in 0..6u32 {
            c.add(&k, u64::from(k) + 1);
        }
        assert_eq!(c.top(2), vec![(&5, 6, &()), (&4, 5, &())]);
        assert_eq!(c.dropped_max, 0);
        // A key in one event of ten, among a flood of one-off keys: it stays, on top, and the
        // size stays bounded.
        for i in 0..100_000u32 {
            c.add(&(1000 + i), 1);
            if i % 10 == 0 {
                c.add(&7, 1);
            }
            assert!(c.len() <= 64);
        }
        let (k, n, _) = c.top(1)[0];
        assert_eq!(*k, 7);
        assert!(n > 9_000, "{n}");
        assert!(c.dropped_max >= 1);
    }

    #[test]
    fn the_small_set_counts_distinct_values_up_to_its_cap() {
        let mut s = SmallSet::default();
        for v in [3u16, 3, 4, 3, 5, 4] {
            s.insert(v);
        }
        assert_eq!(s.len(), 3);
        for v in 0..1000u16 {
            s.insert(v);
        }
        assert_eq!(s.len(), SCAN_TRACK);
        s.clear();
        assert_eq!(s.len(), 0);
        s.insert(9);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_port_sweep_is_a_scan_and_steady_traffic_is_not() {
        let ev = |t: i64, port: u16| Event {
            time: t,
            src: Some("81.2.69.160".parse().unwrap()),
            dst: Some("89.160.20.112".parse().unwrap()),
            proto: Some(6),
            dport: Some(port),
            ..Event::default()
        };
        let mut sweep = SourceInfo::default();
        for p in 0..12 {
            sweep.add(&ev(100 + i64::from(p), 1000 + p));
        }
        assert!(sweep.is_scan() && sweep.max_ports == 12);
        // Twelve ports, but one per two minutes: never ten in one window.
        let mut slow = SourceInfo::default();
        for p in 0..12 {
            slow.add(&ev(100 + 120 * i64::from(p), 1000 + p));
        }
        assert!(!slow.is_scan());
        assert_eq!((slow.first, slow.last), (100, 100 + 120 * 11));
    }

    /// 40 s past a minute.
    const T0: i64 = 1_795_000_000;

    /// Seeded events in time order: 60 sources over three hours, some sweeping ports and hosts
    /// within a minute, some across a minute's boundary.
    fn events() -> Vec<Event<'static>> {
        let mut x = 7u64;
        let mut next = move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        let mut out = Vec::new();
        for i in 0..6000i64 {
            let r = next();
            // Bursts of 15 packets, 2 s apart, from one of three sweeping sources: ten of them
            // in one minute, five in the next.
            let sweep = (i / 15) % 20 == 0;
            let host = if sweep {
                200 + (i / 300) % 3
            } else {
                (r % 60) as i64
            };
            let src = std::net::Ipv4Addr::new(81, 2, 69, host as u8);
            out.push(Event {
                time: T0 + i * 2,
                group: Some(1),
                prefix: Some(if r % 3 == 0 { "ssh " } else { "drop " }.into()),
                src: Some(src.into()),
                dst: Some(std::net::Ipv4Addr::new(10, 0, 0, (i % 13) as u8).into()),
                proto: Some(6),
                dport: Some(if sweep { (i % 17) as u16 } else { 22 }),
                src_country: (r % 5 != 0).then(|| ["DE", "US", "SE"][(r % 3) as usize].into()),
                src_asn: Some(64512 + (r % 4) as u32),
                src_org: Some("Example".into()),
                src_location: Some((50.0, 8.5)),
                ..Event::default()
            });
        }
        out
    }

    fn shown(a: &Aggregate) -> String {
        let st = crate::report::source::ReadStats::default();
        crate::report::text::render_json(a, &st, 100).to_string()
    }

    #[test]
    fn parts_cut_on_minutes_merge_to_what_one_fold_gives() {
        let ev = events();
        let mut one = Aggregate::default();
        ev.iter().for_each(|e| one.add(e));
        one.finish();
        assert!(one.sources.iter().any(|(_, _, s)| s.is_scan()));
        for cuts in [vec![T0 + 3620], vec![T0 + 1220, T0 + 6020, T0 + 6080]] {
            let mut parts: Vec<Aggregate> = vec![Aggregate::default(); cuts.len() + 1];
            for e in &ev {
                let k = cuts.iter().filter(|&&c| e.time >= c).count();
                parts[k].add(e);
            }
            let mut merged = Aggregate::default();
            for p in parts {
                merged.merge(p);
            }
            merged.finish();
            assert_eq!(shown(&merged), shown(&one), "{cuts:?}");
        }
    }

    #[test]
    fn merged_tables_stay_bounded_and_keep_heavy_hitters() {
        let mut a: Counter<u32, ()> = Counter::new(64);
        let mut b: Counter<u32, ()> = Counter::new(64);
        for i in 0..10_000u32 {
            a.add(&(1000 + i), 1);
            b.add(&(100_000 + i), 1);
            if i % 10 == 0 {
                a.add(&7, 1);
                b.add(&7, 1);
            }
        }
        let (da, db) = (a.dropped_max, b.dropped_max);
        a.merge(b, |_, _| {});
        assert!(a.len() <= 64);
        let (k, n, _) = a.top(1)[0];
        assert_eq!(*k, 7);
        assert!(n > 1_500, "{n}");
        assert!(a.dropped_max >= da + db);
    }
}
