//! Receive-path benchmark: fwlog's `NflogSocket::recv_batch` (copy + fwlog TLVs + names +
//! sequence tracking) against a bare loop that only recv()s and walks the netlink headers, on
//! the same socket settings and the same traffic, in the same run.
//!
//! Needs root: it makes a namespace, logs every UDP packet to 4 NFLOG groups with nft and
//! floods loopback inside it (a bounded number of packets; nothing leaves the namespace).
//! Run: `cargo bench --bench capture`. Prints records/s and receiver-thread CPU µs per record.

#[path = "../tests/support/mod.rs"]
mod support;

use fwlog::capture::{NflogConfig, NflogSocket, RecordBatch, MAX_DATAGRAM};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use support::netns::NetNs;

const GROUPS: [u16; 4] = [5, 6, 7, 8];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Variant {
    Bare,
    Fwlog,
}

struct Run {
    records: u64,
    wall: Duration,
    cpu: Duration,
    enobufs: u64,
    largest: usize,
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn set_rcvtimeo(fd: i32, ms: i64) {
    let _ = fwlog::netlink::set_rcvtimeo(fd, Duration::from_millis(ms.max(0) as u64));
}

/// The baseline: recv() one datagram at a time and count packet messages by walking headers.
fn bare(sock: &NflogSocket, expect: u64, run: &mut Run) {
    let fd = sock.as_raw_fd();
    set_rcvtimeo(fd, 300);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut started: Option<(Instant, Duration)> = None;
    let mut last = Instant::now();
    while run.records < expect {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::ENOBUFS) => {
                    run.enobufs += 1;
                    continue;
                }
                _ => break, // timeout: the rest was lost
            }
        }
        if started.is_none() {
            started = Some((Instant::now(), thread_cpu()));
        }
        let d = &buf[..n as usize];
        run.largest = run.largest.max(d.len());
        let mut off = 0;
        while off + 16 <= d.len() {
            let len = u32::from_ne_bytes(d[off..off + 4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes([d[off + 4], d[off + 5]]);
            if len < 16 || len > d.len() - off {
                break;
            }
            if ty == 0x0400 {
                run.records += 1;
            }
            off += (len + 3) & !3;
        }
        last = Instant::now();
    }
    if let Some((t0, c0)) = started {
        run.wall = last - t0;
        run.cpu = thread_cpu() - c0;
    }
}

fn fwlog_path(sock: &mut NflogSocket, expect: u64, run: &mut Run) {
    let mut batch = RecordBatch::with_capacity(8 << 20, 64 * 1024);
    let mut started: Option<(Instant, Duration)> = None;
    let mut last = Instant::now();
    let mut checksum = 0usize;
    while run.records < expect {
        let n = sock
            .recv_batch(&mut batch, Duration::from_millis(300))
            .expect("recv_batch");
        if n == 0 && batch.loss_events().is_empty() {
            break; // timeout: the rest was lost
        }
        if started.is_none() {
            started = Some((Instant::now(), thread_cpu()));
        }
        run.records += n as u64;
        // Touch the output the way a spool writer would (one pass over the bytes' length).
        checksum = checksum.wrapping_add(batch.data().len());
        last = Instant::now();
    }
    if let Some((t0, c0)) = started {
        run.wall = last - t0;
        run.cpu = thread_cpu() - c0;
    }
    let st = sock.stats();
    run.enobufs = st.enobufs;
    run.largest = st.largest_datagram;
    std::hint::black_box(checksum);
}

fn one(ns: &NetNs, variant: Variant, packets: usize, size: usize) -> Run {
    let cfg = NflogConfig {
        groups: GROUPS.to_vec(),
        ..Default::default()
    };
    let mut sock = ns
        .enter(|| NflogSocket::open(&cfg))
        .unwrap_or_else(|e| panic!("{e}"));
    let expect = (packets * GROUPS.len()) as u64;
    let mut run = Run {
        records: 0,
        wall: Duration::ZERO,
        cpu: Duration::ZERO,
        enobufs: 0,
        largest: 0,
    };
    // The first record may arrive before the receiver's clock starts; all counts are from
    // the receiver's first datagram to its last.
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter(|| {
                let sink = UdpSocket::bind("127.0.0.1:9999").expect("bind sink");
                let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
                let data = vec![0x5au8; size];
                for _ in 0..packets {
                    tx.send_to(&data, "127.0.0.1:9999").expect("send");
                }
                drop(sink);
            })
        });
        match variant {
            Variant::Bare => bare(&sock, expect, &mut run),
            Variant::Fwlog => fwlog_path(&mut sock, expect, &mut run),
        }
    });
    run
}

/// Time from send() of a lone packet to its record coming out of recv_batch, median and max
/// over `n` packets sent 20 ms apart (the flush timeout, not throughput, decides it).
fn latency(ns: &NetNs, cfg: &NflogConfig, n: usize) -> (Duration, Duration) {
    let mut sock = ns
        .enter(|| NflogSocket::open(cfg))
        .unwrap_or_else(|e| panic!("{e}"));
    let tx = ns
        .enter(|| UdpSocket::bind("127.0.0.1:0"))
        .expect("bind sender");
    let mut batch = RecordBatch::new();
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        std::thread::sleep(Duration::from_millis(20));
        let t = Instant::now();
        tx.send_to(b"lone", "127.0.0.1:9999").expect("send");
        let mut got = 0;
        while got < GROUPS.len() && t.elapsed() < Duration::from_secs(3) {
            got += sock
                .recv_batch(&mut batch, Duration::from_millis(500))
                .expect("recv_batch");
        }
        lat.push(t.elapsed());
    }
    lat.sort();
    (lat[n / 2], lat[n - 1])
}

/// How many records the default receive buffer holds while the reader is stalled (a slow
/// spool commit, say): flood with nobody reading, then drain and count.
fn stall_capacity(ns: &NetNs, packets: usize, size: usize) -> (u64, u64, usize) {
    let cfg = NflogConfig {
        groups: GROUPS.to_vec(),
        ..Default::default()
    };
    let mut sock = ns
        .enter(|| NflogSocket::open(&cfg))
        .unwrap_or_else(|e| panic!("{e}"));
    ns.enter(|| {
        let sink = UdpSocket::bind("127.0.0.1:9999").expect("bind sink");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let data = vec![0x5au8; size];
        for _ in 0..packets {
            tx.send_to(&data, "127.0.0.1:9999").expect("send");
        }
        drop(sink);
    });
    std::thread::sleep(Duration::from_millis(100));
    let mut batch = RecordBatch::new();
    let mut got = 0u64;
    while sock
        .recv_batch(&mut batch, Duration::from_millis(300))
        .expect("recv")
        > 0
        || !batch.loss_events().is_empty()
    {
        got += batch.len() as u64;
    }
    (got, sock.stats().enobufs, sock.rcvbuf())
}

fn main() {
    if !support::is_root() {
        println!("SKIP capture bench: needs root (network namespace, nftables, NFLOG)");
        return;
    }
    let ns = NetNs::new("capbench");
    let mut rules =
        String::from("table inet t {\n chain o {\n  type filter hook output priority 0;\n");
    for g in GROUPS {
        rules.push_str(&format!(
            "  udp dport 9999 log prefix \"BENCH{g} \" group {g}\n"
        ));
    }
    rules.push_str(" }\n}\n");
    ns.nft(&rules);

    let packets: usize = std::env::var("FWLOG_BENCH_PACKETS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150_000);
    println!(
        "capture bench: {packets} UDP packets x {} NFLOG groups per run, default NflogConfig",
        GROUPS.len()
    );
    println!(
        "{:<6} {:>5} {:>9} {:>12} {:>11} {:>8} {:>8} {:>9}",
        "path", "size", "records", "records/s", "cpu us/rec", "lost", "enobufs", "max dgram"
    );
    for size in [64usize, 1000] {
        let mut per: Vec<(Variant, f64)> = Vec::new();
        for variant in [Variant::Bare, Variant::Fwlog, Variant::Bare, Variant::Fwlog] {
            let r = one(&ns, variant, packets, size);
            let expect = (packets * GROUPS.len()) as u64;
            let n = r.records.max(1) as f64;
            let cpu_us = r.cpu.as_secs_f64() * 1e6 / n;
            println!(
                "{:<6} {:>5} {:>9} {:>12.0} {:>11.3} {:>8} {:>8} {:>9}",
                format!("{variant:?}").to_lowercase(),
                size,
                r.records,
                n / r.wall.as_secs_f64().max(1e-9),
                cpu_us,
                expect - r.records.min(expect),
                r.enobufs,
                r.largest
            );
            per.push((variant, cpu_us));
        }
        let avg = |v: Variant| {
            let xs: Vec<f64> = per.iter().filter(|p| p.0 == v).map(|p| p.1).collect();
            xs.iter().sum::<f64>() / xs.len() as f64
        };
        println!(
            "size {size}: fwlog receive path costs {:.2}x the bare loop's CPU per record ({:.3} vs {:.3} us)",
            avg(Variant::Fwlog) / avg(Variant::Bare),
            avg(Variant::Fwlog),
            avg(Variant::Bare)
        );
    }

    for size in [64usize, 1000] {
        let (held, enobufs, rcvbuf) = stall_capacity(&ns, 250_000, size);
        println!(
            "reader stalled, {size}-byte packets: default buffer (SO_RCVBUF reads {rcvbuf}) held \
             {held} of {} records ({} bytes/record), enobufs {enobufs}",
            250_000 * GROUPS.len(),
            rcvbuf as u64 / held.max(1)
        );
    }

    // Latency of a lone packet (all 4 groups' records), by flush timeout; qthresh 1 sends
    // every record at once and is the floor.
    for (what, timeout, qthresh) in [
        ("timeout 0 (next timer run), qthresh 256", 0, 256),
        ("default (timeout 1 cs, qthresh 1024)", 1, 1024),
        ("timeout 2 cs, qthresh 1024", 2, 1024),
        ("qthresh 1 (no batching)", 1, 1),
    ] {
        let cfg = NflogConfig {
            groups: GROUPS.to_vec(),
            flush_timeout_cs: timeout,
            qthresh,
            ..Default::default()
        };
        let (median, max) = latency(&ns, &cfg, 25);
        println!(
            "lone-packet latency, {what}: median {:.2} ms, max {:.2} ms",
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
}
