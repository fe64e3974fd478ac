//! Reverse-DNS benchmark: fwlog's resolver layer against raw hickory, same server, same run.
//!
//! Prints:
//! - memory: RSS growth per cached address with 1M distinct addresses (target < 256 B);
//! - cold lookups/s through `Resolver::resolve` next to raw `TokioResolver::lookup(PTR)` against
//!   the same nsd on loopback, with 1 and with 32 lookups in flight (target >= 80 % of raw);
//! - cache-hit lookups/s of `Resolver::cached` next to hickory's own cache hit.
//!
//! Run: `cargo bench --bench dns` (needs Debian's nsd; prints SKIP otherwise).
//! Figures are noisy on a shared 2-core machine: rounds alternate raw and fwlog; the best round
//! of each is reported, and the ratio is the median of the per-round (paired) ratios.

#[path = "../tests/support/dns.rs"]
mod dns_support;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fwlog::dns::{DnsConfig, Lookup, Resolver, SafeName};
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RecordType};
use hickory_resolver::TokioResolver;

const COLD: usize = 8192;
const ROUNDS: usize = 5;

fn addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8))
}

fn zone() -> String {
    let mut z = String::from(
        "$TTL 3600\n@ IN SOA ns.example.test. host.example.test. 1 3600 600 86400 60\n\
         @ IN NS ns.example.test.\n",
    );
    for i in 0..COLD {
        z.push_str(&format!(
            "{}.{} IN PTR host-10-0-{}-{}.example.test.\n",
            i & 255,
            i >> 8,
            i >> 8,
            i & 255
        ));
    }
    z
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

fn raw_hickory(server: std::net::SocketAddr, cache_size: u64) -> TokioResolver {
    let mut ns = NameServerConfig::udp_and_tcp(server.ip());
    for c in &mut ns.connections {
        c.port = server.port();
    }
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_millis(500);
    opts.attempts = 1;
    opts.cache_size = cache_size;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.max_active_requests = 64;
    TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    .expect("raw hickory")
}

/// Run `f` over `addrs` with `conc` lookups in flight; returns lookups/s and the count that
/// produced a name (so a broken run cannot pass as a fast one).
async fn run<F, Fut>(addrs: &[IpAddr], conc: usize, f: F) -> (f64, usize)
where
    F: Fn(IpAddr) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let chunks: Vec<Vec<IpAddr>> = addrs
        .chunks(addrs.len().div_ceil(conc))
        .map(<[IpAddr]>::to_vec)
        .collect();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for ip in chunk {
                ok += usize::from(f(ip).await);
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.expect("bench task");
    }
    (addrs.len() as f64 / t0.elapsed().as_secs_f64(), ok)
}

fn memory() {
    const N: u32 = 1_000_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let cfg = DnsConfig {
        // Never queried here: remember() only fills the cache.
        servers: vec!["127.0.0.1:9".parse().unwrap()],
        // Headroom: quick_cache's bound is per shard, so at exactly N it evicts a few early.
        cache_entries: N as usize + N as usize / 8,
        ..DnsConfig::default()
    };
    let r = Resolver::new(cfg, rt.handle().clone()).expect("resolver");
    let names: Vec<String> = (0..N)
        .map(|i| {
            let [a, b, c, d] = (0x0a00_0000u32 + i).to_be_bytes();
            format!("host-{a}-{b}-{c}-{d}.example.net")
        })
        .collect();
    let before = rss_bytes();
    for (i, n) in names.iter().enumerate() {
        let labels: Vec<&[u8]> = n.split('.').map(str::as_bytes).collect();
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32 + i as u32));
        r.remember(
            ip,
            Some(SafeName::from_labels(labels)),
            Duration::from_secs(3600),
        );
    }
    let after = rss_bytes();
    let cached = r.stats().cached;
    println!(
        "memory: {cached} addresses cached (names like host-10-1-2-3.example.net): RSS +{:.1} MiB = {:.0} B/entry (target < 256)",
        (after - before) as f64 / 1048576.0,
        (after - before) as f64 / cached as f64
    );
    drop(names);
}

fn main() {
    // Memory first, while the heap is fresh, so freed memory from other phases is not reused.
    memory();

    let z = zone();
    let Some(nsd) = dns_support::Nsd::start(&[("0.10.in-addr.arpa", z.as_str())]) else {
        println!("SKIP: lookup figures need nsd");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let addrs: Vec<IpAddr> = (0..COLD).map(addr).collect();
    rt.block_on(async {
        let raw = Arc::new(raw_hickory(nsd.addr, 0));
        for conc in [1usize, 32] {
            let (mut best_raw, mut best_fw) = (0f64, 0f64);
            let mut ratios = Vec::new();
            for _ in 0..ROUNDS {
                let h = raw.clone();
                let (rate, ok) = run(&addrs, conc, move |ip| {
                    let h = h.clone();
                    async move {
                        let mut n = Name::from(ip);
                        n.set_fqdn(true);
                        h.lookup(n, RecordType::PTR).await.is_ok()
                    }
                })
                .await;
                assert_eq!(ok, COLD, "raw hickory lookups failed");
                best_raw = best_raw.max(rate);
                let raw_rate = rate;

                let cfg = DnsConfig {
                    servers: vec![nsd.addr],
                    cache_entries: COLD * 2,
                    ..DnsConfig::default()
                };
                let fw = Resolver::new(cfg, tokio::runtime::Handle::current()).expect("resolver");
                let f2 = fw.clone();
                let (rate, ok) = run(&addrs, conc, move |ip| {
                    let f = f2.clone();
                    async move {
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                        f.resolve(ip, deadline).await.is_some()
                    }
                })
                .await;
                assert_eq!(ok, COLD, "fwlog lookups failed: {}", fw.stats());
                assert_eq!(fw.stats().queries, COLD as u64);
                best_fw = best_fw.max(rate);
                ratios.push(rate / raw_rate);
            }
            ratios.sort_by(f64::total_cmp);
            println!(
                "cold lookups, {conc:>2} in flight: fwlog {best_fw:>8.0}/s  raw hickory {best_raw:>8.0}/s  \
                 ratio {:.0} % (median of {ROUNDS} paired rounds; best/best {:.0} %; target >= 80 %)",
                100.0 * ratios[ROUNDS / 2],
                100.0 * best_fw / best_raw
            );
        }

        // Cache hits: fwlog's synchronous cached() vs hickory's own cache (awaited lookup).
        const HOT: usize = 4096;
        let cfg = DnsConfig {
            servers: vec![nsd.addr],
            ..DnsConfig::default()
        };
        let fw = Resolver::new(cfg, tokio::runtime::Handle::current()).expect("resolver");
        let cached_h = raw_hickory(nsd.addr, 2 * HOT as u64);
        for &ip in &addrs[..HOT] {
            assert!(fw.resolve(ip, tokio::time::Instant::now() + Duration::from_secs(5)).await.is_some());
            let mut n = Name::from(ip);
            n.set_fqdn(true);
            cached_h.lookup(n, RecordType::PTR).await.expect("prefill hickory cache");
        }
        let before = nsd.queries();
        let passes = 500;
        let t0 = Instant::now();
        let mut hits = 0usize;
        for _ in 0..passes {
            for &ip in &addrs[..HOT] {
                if let Lookup::Hit(Some(n)) = fw.cached(black_box(ip)) {
                    hits += black_box(n).as_str().len().min(1);
                }
            }
        }
        let fw_rate = (passes * HOT) as f64 / t0.elapsed().as_secs_f64();
        assert_eq!(hits, passes * HOT, "every cached() must hit");
        let hpasses = 20;
        let t0 = Instant::now();
        for _ in 0..hpasses {
            for &ip in &addrs[..HOT] {
                let mut n = Name::from(ip);
                n.set_fqdn(true);
                black_box(cached_h.lookup(n, RecordType::PTR).await.expect("hickory cache hit"));
            }
        }
        let h_rate = (hpasses * HOT) as f64 / t0.elapsed().as_secs_f64();
        assert_eq!(nsd.queries(), before, "cache-hit phase must not query the server");
        println!(
            "cache hits: fwlog cached() {:.1}M/s ({:.0} ns)  hickory cache {:.2}M/s ({:.0} ns)  ratio {:.0}x",
            fw_rate / 1e6,
            1e9 / fw_rate,
            h_rate / 1e6,
            1e9 / h_rate,
            fw_rate / h_rate
        );
        println!("{}", fw.stats());
    });
}
