//! Intake's work per record without live traffic, for callgrind: kernel-like NFLOG datagrams
//! (the bench's records: a 64-byte IPv4 packet logged at prerouting, with the attributes the
//! kernel adds there, ~190 bytes) fed through the receive path, the direct append into the
//! spool writer's buffer and the round's commit, as the daemon's intake runs them
//! (`fwlog::daemon::intake::feed`).
//!
//! ```sh
//! cargo build --release --example intake_cg
//! valgrind --tool=callgrind --separate-threads=yes target/release/examples/intake_cg DIR ROUNDS
//! ```
//! Instructions per record: add `--toggle-collect='*FedIntake*round*'` (only the rounds are
//! counted, not building the datagrams) and divide the main thread's total by the records.
//! Without valgrind it prints the main thread's CPU time per record over the rounds (the
//! kernel's page-cache work included when DIR is on a disk's filesystem). DIR must not exist.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fwlog::daemon::intake::feed::FedIntake;
use fwlog::nflog::attr::{nfula, push_attr};

/// Records per datagram, datagrams per receive call, calls per round: a loaded round of the
/// daemon (the default qthresh, 1024, allows larger datagrams; the bench's rates fill them
/// partly).
const PER_DATAGRAM: usize = 64;
const PER_CALL: usize = 8;
const CALLS: usize = 4;

/// One NFLOG packet message with its netlink header, attributes in the kernel's order
/// (`__build_packet_message`).
fn message(out: &mut Vec<u8>, group: u16, seq: u32, seq_global: u32) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&[2, 0]);
    out.extend_from_slice(&group.to_be_bytes());
    push_attr(out, nfula::PACKET_HDR, &[0x08, 0x00, 0, 0]);
    push_attr(out, nfula::PREFIX, b"FWB1 \0");
    push_attr(out, nfula::IFINDEX_INDEV, &1u32.to_be_bytes());
    push_attr(out, nfula::HWADDR, &[0, 6, 0, 0, 2, 0, 0, 0, 1, 2, 3, 4]);
    push_attr(out, nfula::HWTYPE, &1u16.to_be_bytes());
    push_attr(out, nfula::HWLEN, &14u16.to_be_bytes());
    push_attr(out, nfula::HWHEADER, &[0xaa; 14]);
    let mut ts = [0u8; 16];
    ts[..8].copy_from_slice(&1_765_000_000u64.to_be_bytes());
    ts[8..].copy_from_slice(&(u64::from(seq) % 1_000_000).to_be_bytes());
    push_attr(out, nfula::TIMESTAMP, &ts);
    push_attr(out, nfula::SEQ, &seq.to_be_bytes());
    push_attr(out, nfula::SEQ_GLOBAL, &seq_global.to_be_bytes());
    let mut p = [0u8; 64];
    p[0] = 0x45;
    p[3] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 200, 2, (seq % 250) as u8]);
    p[16..20].copy_from_slice(&[10, 200, 1, 1]);
    push_attr(out, nfula::PAYLOAD, &p);
    let len = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    out[start + 4..start + 6].copy_from_slice(&(4u16 << 8).to_ne_bytes());
}

/// Read and acknowledge until `done` and nothing more comes; returns the records read.
fn read_all(mut reader: fwlog_spool::Reader, done: &AtomicBool) -> Result<u64, String> {
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        let finished = done.load(Ordering::Relaxed);
        let mut got = false;
        while reader
            .next_into(&mut buf)
            .map_err(|e| e.to_string())?
            .is_some()
        {
            n += 1;
            got = true;
        }
        if got {
            reader.ack(reader.delivered()).map_err(|e| e.to_string())?;
        } else if finished {
            return Ok(n);
        } else {
            reader.wait(Duration::from_millis(20));
        }
    }
}

fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(rounds)) = (args.get(1), args.get(2).and_then(|r| r.parse().ok())) else {
        return Err("usage: intake_cg DIR ROUNDS".into());
    };
    let rounds: usize = rounds;
    let opts = fwlog_spool::Options {
        max_bytes: 1 << 40,
        batch_max_delay: std::time::Duration::ZERO,
        handoff_bytes: 4 << 20,
        background_sync: true,
        ..Default::default()
    };
    let (mut intake, reader) = FedIntake::open(std::path::Path::new(dir), opts)?;
    // A processing loop's reading: takes the records from memory and hands the writer its
    // buffers back, as the daemon's does (without it each round's buffer would be new).
    let done = Arc::new(AtomicBool::new(false));
    let reading = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || read_all(reader, &done))
    };
    // Two groups alternating by datagram, each numbered on; built before the clock starts.
    let (mut seq, mut global) = ([0u32; 2], 1000u32);
    let per_round = PER_DATAGRAM * PER_CALL * CALLS;
    let mut bufs: Vec<Vec<u8>> = Vec::new();
    for _ in 0..rounds * PER_CALL * CALLS {
        let g = bufs.len() % 2;
        let mut b = Vec::with_capacity(PER_DATAGRAM * 220);
        for _ in 0..PER_DATAGRAM {
            message(&mut b, g as u16 + 1, seq[g], global);
            seq[g] += 1;
            global += 1;
        }
        bufs.push(b);
    }
    let calls: Vec<Vec<&[u8]>> = bufs
        .chunks(PER_CALL)
        .map(|c| c.iter().map(Vec::as_slice).collect())
        .collect();
    let (t0, c0) = (Instant::now(), thread_cpu());
    let mut records = 0;
    for round in calls.chunks(CALLS) {
        records += intake.round(round)?;
    }
    intake.finish()?;
    done.store(true, Ordering::Relaxed);
    let read = reading.join().map_err(|_| "reader panicked")??;
    let (secs, cpu) = (t0.elapsed().as_secs_f64(), thread_cpu() - c0);
    println!(
        "records {records} (read {read}, per round {per_round}) wall {secs:.3} s main-thread cpu {cpu:.3} s = {:.3} us/record ",
        cpu * 1e6 / records.max(1) as f64
    );
    Ok(())
}
