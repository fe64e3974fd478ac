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
//! Sources that fold rows in groups (a database's `GROUP BY`) use the `add_*` methods: each
//! gives what [`Aggregate::add`] gives for the same events, given in one call per group.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::IpAddr;

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
#[derive(Clone, Debug)]
pub struct Counter<K, V> {
    cap: usize,
    map: HashMap<K, (u64, V)>,
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
            map: HashMap::new(),
            dropped_max: 0,
            scratch_counts: Vec::new(),
            scratch_keys: Vec::new(),
        }
    }

    /// Count `n` for `key` and return its value for updating.
    pub fn add(&mut self, key: &K, n: u64) -> &mut V {
        if !self.map.contains_key(key) && self.map.len() >= self.cap {
            self.prune();
        }
        let slot = self
            .map
            .entry(key.clone())
            .or_insert_with(|| (0, V::default()));
        slot.0 += n;
        &mut slot.1
    }

    fn prune(&mut self) {
        let counts = &mut self.scratch_counts;
        counts.clear();
        counts.extend(self.map.values().map(|v| v.0));
        let mid = counts.len() / 2;
        let (_, &mut median, _) = counts.select_nth_unstable(mid);
        self.dropped_max = self.dropped_max.max(median);
        self.map.retain(|_, v| v.0 > median);
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
                    self.map.remove(k);
                }
            }
            keys.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The `n` largest, by count then key (so equal counts print in a stable order).
    pub fn top(&self, n: usize) -> Vec<(&K, u64, &V)> {
        let mut v: Vec<(&K, u64, &V)> = self.map.iter().map(|(k, (c, v))| (k, *c, v)).collect();
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
                self.add(&key.to_owned(), n);
            }
        }
    }

    /// The value of `key`, when the table holds it.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_mut(key).map(|(_, v)| v)
    }

    /// Every entry (for filters such as scans).
    pub fn iter(&self) -> impl Iterator<Item = (&K, u64, &V)> {
        self.map.iter().map(|(k, (c, v))| (k, *c, v))
    }
}

/// What the report shows about one source address.
#[derive(Clone, Debug, Default)]
pub struct SourceInfo {
    pub first: i64,
    pub last: i64,
    pub name: Option<String>,
    pub country: Option<String>,
    pub asn: Option<u32>,
    pub org: Option<String>,
    pub location: Option<(f64, f64)>,
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
}

/// What a group of rows says about its source (see [`Aggregate::add_source`]).
#[derive(Clone, Debug, Default)]
pub struct SourceFacts {
    pub first: i64,
    pub last: i64,
    pub name: Option<String>,
    pub country: Option<String>,
    pub asn: Option<u32>,
    pub org: Option<String>,
    pub location: Option<(f64, f64)>,
}

impl SourceInfo {
    /// Take the times and the first known name, country, AS and location.
    fn merge(&mut self, f: &SourceFacts, n: u64) {
        if self.seen == 0 {
            self.first = f.first;
            self.last = f.last;
            self.minute = f.first.div_euclid(SCAN_WINDOW);
        }
        self.seen += n;
        self.first = self.first.min(f.first);
        self.last = self.last.max(f.last);
        if self.name.is_none() {
            self.name.clone_from(&f.name);
        }
        if self.country.is_none() {
            self.country.clone_from(&f.country);
        }
        if self.asn.is_none() {
            self.asn = f.asn;
            self.org.clone_from(&f.org);
        }
        if self.location.is_none() {
            self.location = f.location;
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
        let owned = |s: &Option<std::borrow::Cow<'_, str>>| s.as_deref().map(String::from);
        if self.name.is_none() {
            self.name = owned(&e.src_name);
        }
        if self.country.is_none() {
            self.country = owned(&e.src_country);
        }
        if self.asn.is_none() {
            self.asn = e.src_asn;
            self.org = owned(&e.src_org);
        }
        if self.location.is_none() {
            self.location = e.src_location;
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

/// Everything the report prints.
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
        }
    }
}

impl Aggregate {
    fn span(&mut self, first: i64, last: i64) {
        self.first = Some(self.first.map_or(first, |f| f.min(first)));
        self.last = Some(self.last.map_or(last, |l| l.max(last)));
    }

    /// `n` packets between `first` and `last` (the totals; the tables come separately).
    pub fn add_packets(&mut self, n: u64, first: i64, last: i64) {
        if n > 0 {
            self.packets += n;
            self.span(first, last);
        }
    }

    /// `n` packets lost, reported between `first` and `last`.
    pub fn add_loss(&mut self, n: u64, first: i64, last: i64) {
        if n > 0 {
            self.lost += n;
            self.span(first, last);
        }
    }

    pub fn add_prefix(&mut self, prefix: &str, n: u64) {
        self.prefixes.add_ref(prefix, n);
    }

    pub fn add_port(&mut self, proto: u8, port: u16, n: u64) {
        self.ports.add(&(proto, port), n);
    }

    /// `n` packets in the hour starting at `hour` (a multiple of 3600).
    pub fn add_hour(&mut self, hour: i64, n: u64) {
        *self.hours.entry(hour).or_insert(0) += n;
    }

    /// `n` packets from `src`; its country (when known) counts `n` for the country.
    pub fn add_source(&mut self, src: IpAddr, n: u64, f: &SourceFacts) {
        self.sources.add(&src, n).merge(f, n);
        if let Some(cc) = &f.country {
            self.countries.add(cc, n);
        }
    }

    /// `src` reached `ports` distinct destination ports and `hosts` distinct destination hosts
    /// in one minute (counted up to [`SCAN_TRACK`]). A source the table no longer holds is
    /// left out, as streaming leaves it out.
    pub fn add_scan_window(&mut self, src: IpAddr, ports: usize, hosts: usize) {
        if let Some(s) = self.sources.get_mut(&src) {
            s.max_ports = s.max_ports.max(ports.min(SCAN_TRACK));
            s.max_hosts = s.max_hosts.max(hosts.min(SCAN_TRACK));
        }
    }

    pub fn add(&mut self, e: &Event) {
        self.first = Some(self.first.map_or(e.time, |f| f.min(e.time)));
        self.last = Some(self.last.map_or(e.time, |l| l.max(e.time)));
        if e.lost > 0 {
            self.lost += e.lost;
            return;
        }
        self.packets += 1;
        *self
            .hours
            .entry(e.time.div_euclid(3600) * 3600)
            .or_insert(0) += 1;
        self.prefixes.add_ref(e.prefix.as_deref().unwrap_or(""), 1);
        if let Some(src) = e.src {
            self.sources.add(&src, 1).add(e);
        }
        if let (Some(proto), Some(port)) = (e.proto, e.dport) {
            self.ports.add(&(proto, port), 1);
        }
        if let Some(cc) = &e.src_country {
            self.countries.add_ref(&**cc, 1);
        }
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
}
