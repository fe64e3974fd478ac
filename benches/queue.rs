//! NFQUEUE audit-mode benchmark: accepted packets/s through fwlog's queue intake (records
//! spooled with the default fsync per commit, verdicts after the commit) next to a bare `nfq`
//! accept loop (the same `nfq` socket with the same settings: receive buffer, copy range,
//! non-blocking reads), on the same rule and the same traffic, in the same run.
//!
//! Needs root (prints SKIP otherwise): it makes a namespace whose OUTPUT chain sends UDP to
//! port 9999 through `iptables -j NFQUEUE --queue-num 0`, and sends a bounded number of packets
//! over loopback inside it. The sender keeps a fixed number of packets in flight (sent but not
//! yet received by the listener), so the figure is the rate at which the queue's program lets
//! packets through, never a count of drops. The spool lives in /var/tmp (a real disk, so
//! fdatasync costs what it costs).
//!
//! Run: `cargo bench --bench queue` (FWLOG_BENCH_PACKETS=N per run, default 100000;
//! FWLOG_BENCH_ROUNDS=R interleaved rounds, default 3, the median is reported).

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fwlog::daemon::intake::{self, QueueReceiver, Spooler};
use fwlog::pipeline::counters::Counters;
use fwlog::queue::{QueueConfig, QueueSocket, Verdict};
use fwlog_spool::{FsyncPolicy, Options, Spool};
use support::netns::NetNs;

const PORT: u16 = 9999;
const QUEUE: u16 = 0;

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// recv -> ACCEPT, nothing else (same socket and settings as fwlog's).
    Bare,
    /// fwlog's NFQUEUE intake with this spool fsync policy.
    Fwlog(FsyncPolicy),
}

/// Run the queue program `mode` in `ns` while `n` packets pass with at most `window` in
/// flight; returns the wall time and each packet's send->receive latency when `window` is 1.
fn run(ns: &NetNs, mode: Mode, n: u64, window: u64) -> (Duration, Vec<Duration>) {
    let rx = ns.enter(|| UdpSocket::bind(("127.0.0.1", PORT)).expect("bind listener"));
    // The listener must never be the bottleneck or drop (208 KiB by default): 32 MiB, forced.
    let size: libc::c_int = 32 << 20;
    // SAFETY: setsockopt with a pointer to a local c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&rx),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
    rx.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let tx = ns.enter(|| UdpSocket::bind("127.0.0.1:0").expect("bind sender"));
    let ready = AtomicBool::new(false);
    let stop = Arc::new(AtomicBool::new(false));
    let spool_dir = tempfile::Builder::new()
        .prefix("fwlog-queue-bench.")
        .tempdir_in("/var/tmp")
        .expect("spool dir");
    std::thread::scope(|s| {
        let server = s.spawn(|| {
            ns.enter(|| match mode {
                Mode::Bare => {
                    // nfq's own recv/verdict, on a socket set up like fwlog's (its receive
                    // buffer in particular: nfq's default 208 KiB overflows at 256 in flight).
                    let cfg = QueueConfig {
                        queue: QUEUE,
                        ..QueueConfig::default()
                    };
                    let mut sock = QueueSocket::open(&cfg).expect("open queue");
                    ready.store(true, Ordering::Release);
                    let mut batch = Vec::with_capacity(256);
                    while !stop.load(Ordering::Relaxed) {
                        sock.recv_batch(&mut batch, 256, Duration::from_millis(100))
                            .expect("recv");
                        for m in batch.drain(..) {
                            sock.verdict(m, Verdict::Accept).expect("verdict");
                        }
                    }
                }
                Mode::Fwlog(fsync) => {
                    let cfg = QueueConfig {
                        queue: QUEUE,
                        ..QueueConfig::default()
                    };
                    let sock = QueueSocket::open(&cfg).expect("open queue");
                    let opts = Options {
                        fsync,
                        ..Options::default()
                    };
                    let (writer, _reader, _) = Spool::open(spool_dir.path(), opts).expect("spool");
                    let spool = Spooler::new(
                        writer,
                        Arc::new(Counters::default()),
                        Arc::new(tokio::sync::Notify::new()),
                        QueueReceiver::policy(QUEUE, false),
                    );
                    let rx = QueueReceiver::new(sock, false, 256, false).expect("receiver");
                    ready.store(true, Ordering::Release);
                    intake::run(rx, spool, Arc::clone(&stop)).expect("intake");
                }
            })
        });
        // Whatever happens below (a panic included), the server thread must be told to stop,
        // or the scope would wait for it forever.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop_guard = StopOnDrop(&stop);
        while !ready.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let payload = [0x5au8; 64];
        let mut buf = [0u8; 256];
        let mut lat = Vec::new();
        let (mut sent, mut got) = (0u64, 0u64);
        let start = Instant::now();
        while got < n {
            while sent < n && sent - got < window {
                tx.send_to(&payload, ("127.0.0.1", PORT)).expect("send");
                sent += 1;
            }
            let t = Instant::now();
            rx.recv(&mut buf)
                .unwrap_or_else(|e| panic!("{mode:?}: packet {got} never arrived: {e}"));
            if window == 1 {
                lat.push(t.elapsed());
            }
            got += 1;
        }
        let wall = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        server.join().expect("server thread");
        (wall, lat)
    })
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p) as usize]
}

fn main() {
    if !support::is_root() {
        println!("SKIP queue bench: needs root (network namespace, iptables NFQUEUE rule)");
        return;
    }
    let n: u64 = std::env::var("FWLOG_BENCH_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let ns = NetNs::new("qbench");
    let rule = format!("-A OUTPUT -p udp --dport {PORT} -j NFQUEUE --queue-num {QUEUE}");
    let out = ns
        .command("iptables")
        .args(rule.split_whitespace())
        .output()
        .expect("iptables");
    assert!(
        out.status.success(),
        "iptables: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let window = 256;
    println!(
        "queue bench: {n} UDP packets of 64 bytes, {window} in flight, loopback in a namespace; spool in /var/tmp"
    );
    let modes = [
        ("bare nfq accept loop (no spool)", Mode::Bare),
        (
            "fwlog queue intake, --fsync batch (default)",
            Mode::Fwlog(FsyncPolicy::EveryCommit),
        ),
        (
            "fwlog queue intake, --fsync never",
            Mode::Fwlog(FsyncPolicy::Never),
        ),
    ];
    // Modes are interleaved over several rounds and the median reported: the machine may be
    // shared, and a neighbour's burst should not decide a ratio.
    let rounds: usize = std::env::var("FWLOG_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let mut rates = vec![Vec::new(); modes.len()];
    for _ in 0..rounds {
        for (k, (_, mode)) in modes.iter().enumerate() {
            let (wall, _) = run(&ns, *mode, n, window);
            rates[k].push(n as f64 / wall.as_secs_f64());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let base = median(&mut rates[0]);
    println!("accepted packets/s, median of {rounds} interleaved rounds:");
    for (k, (name, _)) in modes.iter().enumerate() {
        let rate = median(&mut rates[k]);
        println!(
            "  {name:<45} {rate:>10.0} pkt/s  ({:.3}x bare)   rounds: {:?}",
            rate / base,
            rates[k]
                .iter()
                .map(|r| r.round() as u64)
                .collect::<Vec<_>>()
        );
    }
    let m = 300;
    println!("latency, one packet in flight ({m} packets): send -> listener receives it");
    for (name, mode) in modes {
        let (_, mut lat) = run(&ns, mode, m, 1);
        println!(
            "  {name:<45} median {:>8.1} us  p99 {:>8.1} us",
            pct(&mut lat, 0.5).as_secs_f64() * 1e6,
            pct(&mut lat, 0.99).as_secs_f64() * 1e6
        );
    }
}
