//! [`Resolver`]: cache, per-address deduplication, caps, deadlines.
//!
//! State, and the one ordering rule that keeps it consistent:
//! - `cache`: answers by address (see `cache.rs`).
//! - `pending`: address -> receiver of the lookup in progress. An address is in `pending` from
//!   the moment its lookup is started until its answer is in the cache: the lookup task writes
//!   the cache *first*, then removes itself from `pending` (under the lock), then publishes the
//!   answer. `start` looks at `pending` and then the cache under the same lock, so it either
//!   joins the running lookup or sees its answer; it never starts a second query for an address.
//! - `queue` and `workers`: at most `max_in_flight` worker tasks send queries, each taking the
//!   next started lookup from `queue` when its own is done; a lookup started while every worker
//!   is busy waits in `queue` as its address and its answer's sender only, so the pending set's
//!   memory is a few dozen bytes per address (a task per waiting lookup held about 1.3 KB, and
//!   with `max_pending` of them a dead name server kept 5 MiB busy doing nothing).
//!   `pending.len() <= max_pending` is enforced in `start`: beyond it a miss is dropped (counted)
//!   and the packet prints without the name.
//!
//! A lookup runs to completion on the runtime whether or not anyone still waits for it, so an
//! answer that comes after a packet's deadline still fills the cache for later packets.

use std::collections::{HashMap, VecDeque};
use std::future::{Future, IntoFuture};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hickory_resolver::TokioResolver;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::time::Instant;

use super::cache::AddrCache;
use super::memo::{self, NameMemo};
use super::query::{self, Outcome};
use super::stats::{bump, Counters, DnsStats};
use super::{DnsConfig, DnsConfigError, SafeName};

/// The answer of the synchronous fast path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// In the cache: a name, or `None` when the address is known to have none (for now).
    Hit(Option<SafeName>),
    /// Not in the cache and nobody is looking it up: call [`Resolver::start`].
    Miss,
    /// Not in the cache, a lookup is running: [`Resolver::start`] joins it.
    Pending,
}

/// What [`Resolver::check`] found. A known answer is not handed out: the memo lends it
/// ([`NameMemo::lend`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// A name or a known absence, in the memo at this slot.
    Known(memo::Slot),
    /// Not in the cache and nobody is looking it up: call [`Resolver::start`].
    Miss,
    /// Not in the cache, a lookup is running: [`Resolver::start`] joins it.
    Pending,
}

/// What a lookup publishes: `None` until done, then the (possibly absent) name.
type Slot = watch::Receiver<Option<Option<SafeName>>>;
type Publish = watch::Sender<Option<Option<SafeName>>>;

/// Lookups started and not yet answered.
#[derive(Default)]
struct Pending {
    /// Every such address, with the receiver a joining caller clones.
    map: HashMap<IpAddr, Slot>,
    /// Those no worker has taken yet, oldest first.
    queue: VecDeque<(IpAddr, Publish)>,
    /// Worker tasks running (at most `max_in_flight`).
    workers: usize,
}

struct Inner {
    hickory: TokioResolver,
    cfg: DnsConfig,
    cache: AddrCache,
    pending: Mutex<Pending>,
    stats: Counters,
    rt: Handle,
}

/// The reverse-DNS resolver. Cheap to clone (one `Arc`); all clones share cache and counters.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

// The pipeline hands clones to tasks and threads; keep that a compile-time fact.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Resolver>();
    send_sync::<SafeName>();
};

/// A started (or joined) lookup. Await it (no deadline) or call [`PendingLookup::wait_until`].
pub struct PendingLookup {
    rx: Slot,
    inner: Arc<Inner>,
}

impl Inner {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes the address from `pending` however the lookup task ends (even by panic or runtime
/// shutdown), so an address can never be stuck as "pending" forever.
struct PendingGuard {
    inner: Arc<Inner>,
    ip: IpAddr,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.inner.pending().map.remove(&self.ip);
    }
}

/// Counts a worker out when its task ends before the queue is empty (a panic, or the runtime
/// shutting down). What it leaves queued is taken by the workers the next `start` spawns.
struct WorkerGuard(Option<Arc<Inner>>);

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.0.take() {
            inner.pending().workers -= 1;
        }
    }
}

/// Runs lookups one after another: its own, then whatever is queued, until the queue is empty.
async fn worker(inner: Arc<Inner>, mut job: (IpAddr, Publish)) {
    let mut guard = WorkerGuard(Some(Arc::clone(&inner)));
    loop {
        let (ip, tx) = job;
        let lookup = PendingGuard {
            inner: Arc::clone(&inner),
            ip,
        };
        run_lookup(lookup, tx).await;
        let mut p = inner.pending();
        match p.queue.pop_front() {
            Some(next) => job = next,
            None => {
                // Counted out under the same lock a `start` queues under: a lookup queued
                // from now on finds a free worker slot.
                p.workers -= 1;
                guard.0 = None;
                return;
            }
        }
    }
}

impl Resolver {
    /// Build a resolver whose lookups run on `rt`. Fails with a one-line message when no name
    /// server is configured or a value is out of range.
    pub fn new(cfg: DnsConfig, rt: Handle) -> Result<Resolver, DnsConfigError> {
        let hickory = {
            let _enter = rt.enter();
            cfg.build_hickory()?
        };
        Ok(Resolver {
            inner: Arc::new(Inner {
                hickory,
                cache: AddrCache::new(cfg.cache_entries),
                pending: Mutex::new(Pending::default()),
                stats: Counters::default(),
                cfg,
                rt,
            }),
        })
    }

    /// Like [`cached`](Self::cached) without counting: for a pipeline that checks again
    /// whether a packet it already counted is ready to print.
    pub fn peek(&self, ip: IpAddr) -> Lookup {
        self.peek_at(ip, std::time::Instant::now())
    }

    /// [`peek`](Self::peek) as of `now`, a clock reading the caller took for a whole batch of
    /// packets (see [`cached_at`](Self::cached_at)).
    pub fn peek_at(&self, ip: IpAddr, now: std::time::Instant) -> Lookup {
        if let Some(answer) = self.inner.cache.get_at(&ip, now) {
            return Lookup::Hit(answer);
        }
        self.not_cached(ip)
    }

    /// Non-blocking: what the cache knows about `ip`. Counts one lookup and a hit or a miss.
    pub fn cached(&self, ip: IpAddr) -> Lookup {
        self.cached_at(ip, std::time::Instant::now())
    }

    /// [`cached`](Self::cached) as of `now`, a clock reading the caller took: the processing
    /// loop reads the clock once per round rather than once per address (a clock read was
    /// about a tenth of its CPU with a warm cache). An entry may then count as valid for at
    /// most the age of `now` past its expiry.
    pub fn cached_at(&self, ip: IpAddr, now: std::time::Instant) -> Lookup {
        let s = &self.inner.stats;
        if let Some(answer) = self.inner.cache.get_at(&ip, now) {
            bump(&s.hits);
            return Lookup::Hit(answer);
        }
        bump(&s.misses);
        self.not_cached(ip)
    }

    /// A memo for the one thread that prints (see `memo.rs`), tied to this resolver's cache.
    pub fn memo(&self) -> NameMemo {
        NameMemo::new(self.inner.cache.epoch())
    }

    /// [`cached_at`](Self::cached_at) through `memo`: a hit is answered by the memo, or copied
    /// into it from the shared cache, and counted as a hit either way (the memo's hits reach
    /// the counters with [`count_memo_hits`](Self::count_memo_hits)). `secs` is
    /// `memo.secs(now)`.
    #[inline]
    pub fn check(&self, memo: &mut NameMemo, ip: IpAddr, secs: u32) -> Check {
        if let Some(slot) = memo.get(&ip, secs) {
            memo.hits += 1;
            return Check::Known(slot);
        }
        let s = &self.inner.stats;
        if let Some((answer, expires)) = self.inner.cache.entry_at_secs(&ip, secs) {
            bump(&s.hits);
            return Check::Known(memo.put(ip, answer, expires));
        }
        bump(&s.misses);
        match self.not_cached(ip) {
            Lookup::Pending => Check::Pending,
            _ => Check::Miss,
        }
    }

    /// Add the hits `memo` answered since the last call to the counters: one atomic add per
    /// batch of packets instead of one per address.
    pub fn count_memo_hits(&self, memo: &mut NameMemo) {
        if memo.hits > 0 {
            self.inner.stats.hits.fetch_add(memo.hits, Relaxed);
            memo.hits = 0;
        }
    }

    fn not_cached(&self, ip: IpAddr) -> Lookup {
        if self.inner.pending().map.contains_key(&ip) {
            Lookup::Pending
        } else {
            Lookup::Miss
        }
    }

    /// Start a lookup of `ip`, or join the one already running. `None` when the pending set is
    /// full (counted as `dropped`): print the packet without this name. Does not count a lookup
    /// (the caller's `cached()` did). Never blocks.
    pub fn start(&self, ip: IpAddr) -> Option<PendingLookup> {
        let inner = &self.inner;
        let mut pending = inner.pending();
        if let Some(rx) = pending.map.get(&ip) {
            return Some(self.pending_lookup(rx.clone()));
        }
        // Answered between the caller's cached() and now: hand out the answer, no query.
        if let Some(answer) = inner.cache.get(&ip) {
            let (_tx, rx) = watch::channel(Some(answer));
            return Some(self.pending_lookup(rx));
        }
        if pending.map.len() >= inner.cfg.max_pending {
            bump(&inner.stats.dropped);
            return None;
        }
        let (tx, rx) = watch::channel(None);
        pending.map.insert(ip, rx.clone());
        bump(&inner.stats.queries);
        pending.queue.push_back((ip, tx));
        // Free worker slots take the oldest queued lookups (normally just this one; also any a
        // worker that ended abnormally left behind).
        let mut jobs = Vec::new();
        while pending.workers < inner.cfg.max_in_flight {
            let Some(job) = pending.queue.pop_front() else {
                break;
            };
            pending.workers += 1;
            jobs.push(job);
        }
        // Spawned without the lock: a task the runtime refuses (shutting down) is dropped at
        // once, and its guard takes the lock.
        drop(pending);
        for job in jobs {
            inner.rt.spawn(worker(Arc::clone(inner), job));
        }
        Some(self.pending_lookup(rx))
    }

    fn pending_lookup(&self, rx: Slot) -> PendingLookup {
        PendingLookup {
            rx,
            inner: Arc::clone(&self.inner),
        }
    }

    /// The whole path for one address: cache, else start/join a lookup and wait for it until
    /// `deadline`. `None` when there is no name, it did not come in time, or it was dropped.
    pub async fn resolve(&self, ip: IpAddr, deadline: Instant) -> Option<SafeName> {
        match self.cached(ip) {
            Lookup::Hit(answer) => answer,
            Lookup::Miss | Lookup::Pending => self.start(ip)?.wait_until(deadline).await,
        }
    }

    /// Put an answer in the cache as if a lookup had returned it, for `ttl` (not clamped).
    /// For pre-seeding known names, tests and the memory benchmark; never sends a query.
    pub fn remember(&self, ip: IpAddr, name: Option<SafeName>, ttl: std::time::Duration) {
        self.inner.cache.insert(ip, name, ttl);
    }

    /// Counters and gauges for the SIGUSR1 dump.
    pub fn stats(&self) -> DnsStats {
        let pending = self.inner.pending().map.len() as u64;
        self.inner
            .stats
            .snapshot(pending, self.inner.cache.len() as u64)
    }

    /// The configuration this resolver runs with.
    pub fn config(&self) -> &DnsConfig {
        &self.inner.cfg
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("servers", &self.inner.cfg.servers)
            .field("stats", &self.stats())
            .finish()
    }
}

async fn run_lookup(guard: PendingGuard, tx: Publish) {
    let inner = &guard.inner;
    inner.stats.in_flight.fetch_add(1, Relaxed);
    let outcome = query::reverse(&inner.hickory, guard.ip, inner.cfg.verify_names).await;
    inner.stats.in_flight.fetch_sub(1, Relaxed);
    let s = &inner.stats;
    let answer = match &outcome {
        Outcome::Name { name, .. } => {
            bump(&s.names);
            if name.is_unverified() {
                bump(&s.unverified);
            }
            Some(name.clone())
        }
        Outcome::NxDomain { .. } => {
            bump(&s.nxdomain);
            None
        }
        Outcome::NoData { .. } => {
            bump(&s.nodata);
            None
        }
        Outcome::Timeout => {
            bump(&s.timeouts);
            None
        }
        Outcome::Error => {
            bump(&s.errors);
            None
        }
    };
    if let Some(ttl) = query::cache_ttl(&outcome, &inner.cfg) {
        inner.cache.insert(guard.ip, answer.clone(), ttl);
    }
    // Order matters (see module docs): cache, then leave `pending`, then publish.
    drop(guard);
    // No receiver left (every waiter gave up) is fine: the cache already has the answer.
    let _ = tx.send(Some(answer));
}

impl PendingLookup {
    /// Wait for the answer until `deadline`. On expiry returns `None` (counted as
    /// `deadline_expired`); the lookup carries on and fills the cache for later packets.
    pub async fn wait_until(self, deadline: Instant) -> Option<SafeName> {
        let stats_owner = Arc::clone(&self.inner);
        match tokio::time::timeout_at(deadline, self.into_future()).await {
            Ok(answer) => answer,
            Err(_) => {
                bump(&stats_owner.stats.deadline_expired);
                None
            }
        }
    }

    /// The answer if the lookup has finished, without waiting.
    pub fn try_get(&self) -> Option<Option<SafeName>> {
        self.rx.borrow().clone()
    }
}

impl IntoFuture for PendingLookup {
    type Output = Option<SafeName>;
    type IntoFuture = Pin<Box<dyn Future<Output = Option<SafeName>> + Send>>;

    /// Wait for the lookup with no deadline (it ends after query timeout x tries at worst).
    fn into_future(self) -> Self::IntoFuture {
        let mut rx = self.rx;
        Box::pin(async move {
            match rx.wait_for(Option::is_some).await {
                Ok(v) => v.clone().flatten(),
                // The task ended without publishing (runtime shut down): no name.
                Err(_) => None,
            }
        })
    }
}
