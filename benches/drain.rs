//! The processing loop's drain: records/s and heap allocations per record, against a bare loop
//! in the same run.
//!
//! - `replay`: a spool holding N records from a previous run (a restart with a backlog, as in
//!   BENCHMARKS.md's start-up replay) is printed by the real processing loop (`Processor` over
//!   the spool's reader, `--no-dns`, fwlog format, a file output synced per batch, the daemon's
//!   window) until every record is acknowledged. Baseline: the spool's reader alone, every
//!   payload copied into one reused buffer and appended to a file buffer.
//! - `live`: a writer thread appends and commits batches of 256 while the loop prints them, with
//!   the in-memory hand-off on and off (the fresh-traffic path).
//! - `warm`: `live` with the hand-off on and a resolver whose cache already holds a name for
//!   every address (the daemon's steady state with a warm cache, as in the bench's sweep): the
//!   DNS fast path is in the figures. It never sends a query (its server is a closed port).
//!   For instructions per record, run it under `valgrind --tool=callgrind
//!   --separate-threads=yes`: the loop runs on the main thread.
//!
//! Allocations are counted by a counting global allocator over the whole process (every
//! thread) while the loop runs, divided by the records printed. Set `FWLOG_BENCH_RECORDS`
//! (default 1,000,000) and `FWLOG_BENCH_DIR` (default /var/tmp, a disk, so the syncs cost what
//! they cost in the daemon); `FWLOG_BENCH_COMMIT` and `FWLOG_BENCH_RATE` pace the live modes'
//! writer (see [`pacing`]: a steady rate gives the loop small rounds, as live traffic does).
//! Asserts nothing (figures only).
//!
//! Run: `cargo bench --bench drain`

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fwlog::config::{DnsSettings, LoopConfig};
use fwlog::dns::{DnsConfig, SafeName};
use fwlog::format::{FormatKind, FormatOptions};
use fwlog::nflog::attr;
use fwlog::packet::{family, Iface, Packet, TimeSource, Timestamp};
use fwlog::pipeline::build::{Engine, Shared};
use fwlog::pipeline::outputs::Outputs;
use fwlog::pipeline::source::{RecordMeta, Source, SourceError};
use fwlog::sink::{OutputSpec, Target};
use fwlog_spool::{FsyncPolicy, Options, Reader, Spool};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// CPU time of the whole process (every thread), user + system, in seconds: on a machine shared
/// with other builds, wall-clock time mostly measures the wait for a CPU.
fn cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// What one phase cost.
struct Cost {
    wall: f64,
    cpu: f64,
    allocs: u64,
}

impl Cost {
    fn start() -> (Instant, f64, u64) {
        (Instant::now(), cpu(), ALLOCS.load(Relaxed))
    }

    fn since((t, c, a): (Instant, f64, u64)) -> Cost {
        Cost {
            wall: t.elapsed().as_secs_f64(),
            cpu: cpu() - c,
            allocs: ALLOCS.load(Relaxed) - a,
        }
    }

    fn show(&self, n: u64) -> String {
        format!(
            "{:.0} records/s wall, {:.3} us CPU/record ({:.0} records per CPU-second), {:.3} allocs/record",
            n as f64 / self.wall,
            self.cpu * 1e6 / n as f64,
            n as f64 / self.cpu,
            self.allocs as f64 / n as f64
        )
    }
}

/// Spool records as intake makes them: the NFLOG message with interface names and receive time,
/// 64-byte UDP and TCP SYN packets alternately, from 256 sources.
fn records() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..256u32 {
        let mut ip = vec![
            0x45, 0, 0, 64, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 99, 0, 0, 10, 200, 1, 1,
        ];
        ip[14] = (i >> 8) as u8;
        ip[15] = i as u8;
        if i % 2 == 0 {
            ip.extend_from_slice(&[0xc3, 0x50, 0, 53, 0, 44, 0, 0]);
        } else {
            ip[9] = 6;
            ip.extend_from_slice(&[0xd4, 0x31, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02]);
            ip.extend_from_slice(&[0xfa, 0xf0, 0, 0, 0, 0]);
        }
        ip.resize(64, 0x55);
        let mut p = Packet::new(
            &ip,
            Timestamp {
                sec: 1_795_507_200 + i64::from(i),
                nsec: 123_456_000,
                source: TimeSource::Kernel,
            },
        );
        p.family = family::INET;
        p.group = 5;
        p.hook = Some(0);
        p.hw_protocol = Some(0x0800);
        p.indev = Some(Iface {
            index: 2,
            name: Some(b"veth-log0"),
        });
        p.prefix = Some(b"fwlog-bench ");
        p.seq = Some(i);
        p.seq_global = Some(i);
        let mut rec = Vec::new();
        attr::encode_packet(&p, &mut rec);
        attr::push_recv_time(&mut rec, 1_795_507_200 + i64::from(i), 124_000_000);
        out.push(rec);
    }
    out
}

/// The spool's reader, finished once it delivered `last` (the loop then ends when all is
/// written and acknowledged).
struct Upto {
    r: Reader,
    last: u64,
}

impl Source for Upto {
    fn next(&mut self, buf: &mut Vec<u8>) -> Result<Option<RecordMeta>, SourceError> {
        Source::next(&mut self.r, buf)
    }
    fn ack(&mut self, seq: u64) -> Result<(), SourceError> {
        Source::ack(&mut self.r, seq)
    }
    fn finished(&self) -> bool {
        self.r.delivered() >= self.last
    }
    fn pending(&self) -> u64 {
        Source::pending(&self.r)
    }
}

fn spool_options(handoff: usize) -> Options {
    Options {
        handoff_bytes: handoff,
        ..Options::default()
    }
}

fn fill_spool(dir: &Path, n: u64, recs: &[Vec<u8>]) {
    let opts = Options {
        fsync: FsyncPolicy::Never,
        ..Options::default()
    };
    let (mut w, _r, _) = Spool::open(dir, opts).expect("open spool");
    for i in 0..n {
        w.append(&recs[(i % recs.len() as u64) as usize])
            .expect("append");
        if i % 256 == 255 {
            w.commit().expect("commit");
        }
    }
    w.close().expect("close");
}

/// Every address of [`records`] (the 256 sources and the destination).
fn bench_addresses() -> Vec<std::net::IpAddr> {
    let mut v: Vec<std::net::IpAddr> = (0..256u32)
        .map(|i| std::net::Ipv4Addr::new(10, 99, (i >> 8) as u8, i as u8).into())
        .collect();
    v.push(std::net::Ipv4Addr::new(10, 200, 1, 1).into());
    v
}

/// A resolver whose cache knows every address of the bench (for an hour), or none.
fn dns_settings(warm: bool) -> DnsSettings {
    if !warm {
        return DnsSettings {
            resolver: None,
            packet_timeout: Duration::ZERO,
        };
    }
    DnsSettings {
        resolver: Some(DnsConfig {
            // Nothing listens there: a query would be a miss the figures would show.
            servers: vec!["127.0.0.1:9".parse().expect("addr")],
            ..DnsConfig::default()
        }),
        packet_timeout: Duration::from_secs(2),
    }
}

/// Run the real loop over `source` into a synced fwlog-format file.
#[inline(never)]
fn run_loop<S: Source>(source: S, out: &Path, shared: &Shared, warm: bool) -> Cost {
    let engine = Engine::start(
        &dns_settings(warm),
        fwlog::pipeline::build::DnsStart::Required,
    )
    .expect("engine");
    if let Some(r) = &engine.resolver {
        for (i, ip) in bench_addresses().into_iter().enumerate() {
            let host = format!("host-{i}");
            let name = SafeName::from_labels([host.as_bytes(), b"bench", b"example"]);
            r.remember(ip, Some(name), Duration::from_secs(3600));
        }
    }
    let outputs = Outputs::open(
        &[OutputSpec {
            format: None,
            target: Target::File(out.to_path_buf()),
        }],
        FormatKind::Fwlog,
        &FormatOptions::default(),
        true,
        None,
    )
    .expect("outputs");
    let (_tx, control) = tokio::sync::mpsc::unbounded_channel();
    let mut bounds = LoopConfig::batch();
    bounds.window = 4096;
    let p = engine.processor(source, outputs, bounds, shared, control, None);
    let c = Cost::start();
    engine.rt.block_on(p.run()).expect("loop");
    Cost::since(c)
}

/// Baseline: the spool's reader alone, payloads appended to a file buffer written per 256 KiB.
#[inline(never)]
fn bare_read(dir: &Path, out: &Path, n: u64) -> Cost {
    let (_w, mut r, _) = Spool::open(dir, spool_options(0)).expect("open spool");
    let mut f = std::fs::File::create(out).expect("create");
    let mut buf = Vec::new();
    let mut lines = Vec::with_capacity(1 << 20);
    let c = Cost::start();
    let mut got = 0;
    while got < n {
        match r.next_into(&mut buf).expect("read") {
            Some(_) => got += 1,
            None => break,
        }
        lines.extend_from_slice(&buf);
        lines.push(b'\n');
        if lines.len() >= 256 * 1024 {
            f.write_all(&lines).expect("write");
            lines.clear();
        }
    }
    f.write_all(&lines).expect("write");
    f.sync_data().expect("sync");
    Cost::since(c)
}

fn replay(base: &Path, n: u64, recs: &[Vec<u8>]) {
    let dir = base.join("spool");
    fill_spool(&dir, n, recs);
    let bare = bare_read(&dir, &base.join("bare.out"), n);
    let (_w, r, rep) = Spool::open(&dir, spool_options(4 << 20)).expect("reopen");
    assert_eq!(rep.pending_records, n);
    let last = r.delivered() + n;
    let fw = run_loop(
        Upto { r, last },
        &base.join("fwlog.out"),
        &Shared::default(),
        false,
    );
    println!("replay {n}: bare reader: {}", bare.show(n));
    println!("replay {n}: fwlog loop:  {}", fw.show(n));
    println!("replay {n}: fwlog/bare CPU {:.2}", fw.cpu / bare.cpu);
}

/// Records per commit (`FWLOG_BENCH_COMMIT`, default 256) and records/s
/// (`FWLOG_BENCH_RATE`, default 0: as fast as the writer goes) of the live modes' writer.
fn pacing() -> (u64, u64) {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    (
        var("FWLOG_BENCH_COMMIT").unwrap_or(256).max(1),
        var("FWLOG_BENCH_RATE").unwrap_or(0),
    )
}

fn live(base: &Path, n: u64, recs: &[Vec<u8>], handoff: usize, warm: bool) {
    let dir = base.join(format!("live-{handoff}"));
    let (mut w, r, _) = Spool::open(&dir, spool_options(handoff)).expect("open");
    let shared_recs: Arc<Vec<Vec<u8>>> = Arc::new(recs.to_vec());
    let shared = Shared::default();
    let wake = Arc::clone(&shared.wake);
    let (per_commit, rate) = pacing();
    let writer = std::thread::spawn(move || {
        let t0 = Instant::now();
        for i in 0..n {
            w.append(&shared_recs[(i % shared_recs.len() as u64) as usize])
                .expect("append");
            if i % per_commit == per_commit - 1 {
                w.commit().expect("commit");
                wake.notify_one();
                if rate > 0 {
                    // Paced: the loop catches up between commits, as in the daemon at a
                    // steady rate, so each round prints one commit's records.
                    let due = t0 + Duration::from_secs_f64((i + 1) as f64 / rate as f64);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
            }
        }
        w.close().expect("close");
        wake.notify_one();
    });
    let out = base.join(format!("live-{handoff}.out"));
    let c = run_loop(Upto { r, last: n }, &out, &shared, warm);
    writer.join().expect("writer");
    println!(
        "live {n}, hand-off {}{}: {} (both threads)",
        if handoff > 0 { "on " } else { "off" },
        if warm { ", warm DNS" } else { "" },
        c.show(n)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let n: u64 = std::env::var("FWLOG_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let root: PathBuf = std::env::var_os("FWLOG_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/tmp".into());
    let base = root.join(format!("fwlog-drain-bench.{}", std::process::id()));
    std::fs::create_dir_all(&base).expect("bench dir");
    let recs = records();
    let only = std::env::var("FWLOG_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "replay" {
        replay(&base, n, &recs);
    }
    if only.is_empty() || only == "live" {
        live(&base, n, &recs, 0, false);
        live(&base, n, &recs, 4 << 20, false);
    }
    if only.is_empty() || only == "warm" {
        live(&base, n, &recs, 4 << 20, true);
    }
    let _ = std::fs::remove_dir_all(&base);
}
