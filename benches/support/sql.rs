//! What the SQL benches share: the same synthetic packets, the same sink configuration, and
//! one loop that hands them to an output in batches and times it.

use std::time::Instant;

use fwlog::format::NoNames;
use fwlog::packet::{family, Iface, Packet, TimeSource, Timestamp};
use fwlog::sink::sql::{SqlConfig, StreamId};
use fwlog::sink::{PacketSink, PacketView};

/// Packets per commit: the processing loop commits about this many rows at a time under load
/// (256 KiB of pending estimate at 128 bytes a row).
pub const BATCH: usize = 2048;

/// Packets per commit: [`BATCH`], or FWLOG_BENCH_BATCH (the loop commits up to 32768 rows at a
/// time while it works through a backlog: 4 MiB at 128 bytes a row).
pub fn batch() -> usize {
    std::env::var("FWLOG_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(BATCH)
}

/// CPU seconds (user + system) this process has used.
pub fn cpu_seconds() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// An IPv4/UDP packet, distinct per `i`: source 10.x.y.z, four destination ports.
pub fn payload(i: u32) -> Vec<u8> {
    let s = i.to_be_bytes();
    let mut p = vec![0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 17, 0, 0];
    p.extend_from_slice(&[10, s[1], s[2], s[3], 192, 0, 2, 1]);
    let dport = [22u16, 80, 443, 3389][(i % 4) as usize].to_be_bytes();
    p.extend_from_slice(&[(i >> 8) as u8, i as u8, dport[0], dport[1], 0, 12, 0, 0]);
    p.extend_from_slice(b"test");
    p
}

pub fn config() -> SqlConfig {
    SqlConfig {
        host: "bench".into(),
        stream: StreamId([7; 16]),
        payload: false,
        retain: None,
        sync: true,
    }
}

/// Hand every payload to `sink` as a logged packet, committing every [`batch`] (a server
/// output's commit may time out and is asked again); (wall seconds, CPU seconds).
pub fn feed(sink: &mut dyn PacketSink, payloads: &[Vec<u8>]) -> (f64, f64) {
    feed_from(sink, payloads, 0)
}

/// [`feed`], numbering the packets (spool record, time, NFLOG sequence) from `first` on.
pub fn feed_from(sink: &mut dyn PacketSink, payloads: &[Vec<u8>], first: usize) -> (f64, f64) {
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let size = batch();
    for (n, chunk) in payloads.chunks(size).enumerate() {
        for (i, b) in chunk.iter().enumerate() {
            let k = first + n * size + i;
            let mut p = Packet::new(
                b,
                Timestamp {
                    sec: 1_764_000_000 + k as i64 / 1000,
                    nsec: 0,
                    source: TimeSource::Kernel,
                },
            );
            p.family = family::INET;
            p.group = 5;
            p.hook = Some(1);
            p.prefix = Some(b"DROP ");
            p.seq_global = Some(k as u32);
            p.indev = Some(Iface {
                index: 2,
                name: Some(b"eth0"),
            });
            sink.packet(&PacketView {
                seq: k as u64,
                record: b,
                packet: &p,
                decoded: &fwlog::decode::decode(&p),
                names: &NoNames,
            });
        }
        while let Err(e) = sink.commit() {
            assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
        }
    }
    (t0.elapsed().as_secs_f64(), cpu_seconds() - c0)
}
