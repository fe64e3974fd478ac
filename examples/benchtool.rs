//! Helper binary for the benchmark suite (`tests/bench/bench.py`); not part of fwlog.
//!
//! Subcommands (all print one `key value ...` line the orchestrator parses):
//!
//! - `send DST SRC_BASE SRC_COUNT RATE COUNT THREADS [TCP_EVERY]`: a paced flood of crafted
//!   IPv4 packets over a raw socket (IPPROTO_RAW, so IP_HDRINCL) with `sendmmsg`. Packet `i`
//!   comes from `SRC_BASE + (i * STRIDE mod SRC_COUNT)` (STRIDE odd and coprime with any
//!   power-of-two count, so a power-of-two range is walked as a permutation: every source
//!   appears once per cycle). Every `TCP_EVERY`-th packet is a TCP SYN to port 80, the rest UDP
//!   to port 9999, 64 bytes of IP each. RATE 0 = as fast as possible. The kernel fills the IP
//!   checksum and total length (raw(7)); the UDP checksum is 0 (none) and TCP's is computed.
//! - `recv GROUP...`: the bare NFLOG receiver, the ceiling. It opens the socket through
//!   `fwlog::capture::NflogSocket::open` (exactly fwlog's socket settings: 64 MiB buffer,
//!   qthresh 1024, 128 KiB datagrams, flush timeout 10 ms, SEQ flags) and then only `recv()`s and walks
//!   netlink headers, counting packet messages and per-group NFULA_SEQ gaps. SIGUSR1 prints
//!   the counters to stderr, SIGTERM prints them and exits.
//! - `tail FILE COUNT TIMEOUT_S`: follows a JSON-lines file as fwlog writes it, from its current
//!   end (polling every 200 µs), timestamps each line when it appears, and prints percentiles of
//!   (appearance time - the line's kernel `"time"`), both on the realtime clock.

use std::io::Read;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const STRIDE: u64 = 2_654_435_761; // odd (Knuth's multiplicative constant)

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("benchtool: {msg}");
    std::process::exit(2)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    args.get(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| die(format!("argument {i} ({what}) missing or invalid")))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("send") => send(&args),
        Some("recv") => recv(&args),
        Some("tail") => tail(&args),
        _ => die("usage: benchtool send|recv|tail ... (see examples/benchtool.rs)"),
    }
}

// ---------------------------------------------------------------- send

fn csum(data: &[u8], mut sum: u32) -> u16 {
    let mut i = 0;
    while i + 1 < data.len() {
        sum += u32::from(u16::from_be_bytes([data[i], data[i + 1]]));
        i += 2;
    }
    if i < data.len() {
        sum += u32::from(data[i]) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One 64-byte IPv4 packet from `src` into `buf` (which must be 64 bytes).
fn craft(buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, i: u64, tcp: bool) {
    buf.fill(0);
    buf[0] = 0x45;
    buf[2..4].copy_from_slice(&64u16.to_be_bytes());
    buf[4..6].copy_from_slice(&((i as u16) | 1).to_be_bytes());
    buf[8] = 64;
    buf[9] = if tcp { 6 } else { 17 };
    buf[12..16].copy_from_slice(&src.octets());
    buf[16..20].copy_from_slice(&dst.octets());
    let sport = 1024 + (i % 60000) as u16;
    let l4 = &mut buf[20..];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    if tcp {
        l4[2..4].copy_from_slice(&80u16.to_be_bytes());
        l4[4..8].copy_from_slice(&(i as u32).to_be_bytes());
        l4[12] = 5 << 4; // header length 20
        l4[13] = 0x02; // SYN
        l4[14..16].copy_from_slice(&64240u16.to_be_bytes());
        // Pseudo-header sum for the checksum.
        let mut ph = 0u32;
        for o in [src.octets(), dst.octets()] {
            ph += u32::from(u16::from_be_bytes([o[0], o[1]]));
            ph += u32::from(u16::from_be_bytes([o[2], o[3]]));
        }
        ph += 6 + 44;
        let c = csum(&buf[20..64], ph);
        buf[36..38].copy_from_slice(&c.to_be_bytes());
    } else {
        l4[2..4].copy_from_slice(&9999u16.to_be_bytes());
        l4[4..6].copy_from_slice(&44u16.to_be_bytes());
        l4[8..16].copy_from_slice(&i.to_be_bytes());
    }
}

fn raw_socket() -> i32 {
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        die(format!(
            "raw socket: {} (needs root)",
            std::io::Error::last_os_error()
        ));
    }
    let big: libc::c_int = 8 << 20;
    // SAFETY: passes a local int and its size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            (&big as *const libc::c_int).cast(),
            4,
        )
    };
    fd
}

fn send(args: &[String]) {
    let dst: Ipv4Addr = arg(args, 1, "DST");
    let base: Ipv4Addr = arg(args, 2, "SRC_BASE");
    let count: u64 = arg(args, 3, "SRC_COUNT");
    let rate: f64 = arg(args, 4, "RATE");
    let total: u64 = arg(args, 5, "COUNT");
    let threads: u64 = arg(args, 6, "THREADS");
    let tcp_every: u64 = args.get(7).and_then(|s| s.parse().ok()).unwrap_or(2);
    if count == 0 || threads == 0 {
        die("SRC_COUNT and THREADS must be positive");
    }
    let base = u32::from(base);
    let errors = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let errors = Arc::clone(&errors);
            std::thread::spawn(move || {
                let fd = raw_socket();
                let my_total = total / threads + u64::from(t < total % threads);
                let my_rate = rate / threads as f64;
                // About 1 ms of packets per call at low rates, 64 at most.
                let batch = if rate > 0.0 {
                    ((my_rate / 1000.0) as usize).clamp(1, 64)
                } else {
                    64
                };
                let mut bufs = vec![[0u8; 64]; batch];
                let mut iov: Vec<libc::iovec> = Vec::with_capacity(batch);
                let mut hdrs: Vec<libc::mmsghdr> = Vec::with_capacity(batch);
                let sa = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: 0,
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(dst).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                let start = Instant::now();
                let mut sent = 0u64;
                while sent < my_total {
                    let n = batch.min((my_total - sent) as usize);
                    for (k, b) in bufs.iter_mut().take(n).enumerate() {
                        let i = (sent + k as u64) * threads + t;
                        let src = Ipv4Addr::from(
                            base.wrapping_add((i.wrapping_mul(STRIDE) % count) as u32),
                        );
                        craft(b, src, dst, i, tcp_every > 0 && i.is_multiple_of(tcp_every));
                    }
                    iov.clear();
                    hdrs.clear();
                    for b in bufs.iter_mut().take(n) {
                        iov.push(libc::iovec {
                            iov_base: b.as_mut_ptr().cast(),
                            iov_len: 64,
                        });
                    }
                    for v in iov.iter_mut() {
                        // SAFETY: an all-zero msghdr is valid; pointers set below.
                        let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                        h.msg_hdr.msg_name = (&sa as *const libc::sockaddr_in) as *mut _;
                        h.msg_hdr.msg_namelen =
                            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                        h.msg_hdr.msg_iov = v;
                        h.msg_hdr.msg_iovlen = 1;
                        hdrs.push(h);
                    }
                    // SAFETY: hdrs point at iov, bufs and sa, all alive for the call.
                    let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as u32, 0) };
                    if r <= 0 {
                        errors.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_micros(50));
                        continue;
                    }
                    sent += r as u64;
                    if my_rate > 0.0 {
                        let due = start + Duration::from_secs_f64(sent as f64 / my_rate);
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                    }
                }
                // SAFETY: closing the fd this thread opened.
                unsafe { libc::close(fd) };
                sent
            })
        })
        .collect();
    let sent: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "sent {sent} secs {secs:.3} rate {:.0} send_errors {}",
        sent as f64 / secs,
        errors.load(Ordering::Relaxed)
    );
}

// ---------------------------------------------------------------- recv

static USR1: AtomicBool = AtomicBool::new(false);
static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_usr1(_: libc::c_int) {
    USR1.store(true, Ordering::Relaxed);
}
extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, Ordering::Relaxed);
}

const NFULA_SEQ: u16 = 12;

fn recv(args: &[String]) {
    let groups: Vec<u16> = args[1..]
        .iter()
        .map(|s| s.parse().unwrap_or_else(|_| die(format!("bad group {s}"))))
        .collect();
    let cfg = fwlog::capture::NflogConfig {
        groups: groups.clone(),
        ..Default::default()
    };
    let sock = fwlog::capture::NflogSocket::open(&cfg).unwrap_or_else(|e| die(e));
    let fd = sock.as_raw_fd();
    // SAFETY: installing async-signal-safe handlers that only store to atomics; no SA_RESTART,
    // so a blocked recv() returns EINTR.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_usr1 as extern "C" fn(libc::c_int) as usize;
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
        sa.sa_sigaction = on_term as extern "C" fn(libc::c_int) as usize;
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
    }
    let _ = fwlog::netlink::set_rcvtimeo(fd, std::time::Duration::from_millis(100));
    eprintln!("benchtool: receiving NFLOG groups {groups:?}");
    let mut buf = vec![0u8; fwlog::capture::MAX_DATAGRAM];
    let (mut records, mut enobufs, mut gaps) = (0u64, 0u64, 0u64);
    let mut last_seq: std::collections::HashMap<u16, u32> = Default::default();
    let report = |records: u64, enobufs: u64, gaps: u64| {
        eprintln!("bare: received={records} lost-seq-gap={gaps} enobufs-events={enobufs}");
    };
    loop {
        if USR1.swap(false, Ordering::Relaxed) {
            report(records, enobufs, gaps);
        }
        if TERM.load(Ordering::Relaxed) {
            report(records, enobufs, gaps);
            return;
        }
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS) {
                enobufs += 1;
            }
            continue;
        }
        let d = &buf[..n as usize];
        let mut off = 0;
        while off + 16 <= d.len() {
            let len = u32::from_ne_bytes([d[off], d[off + 1], d[off + 2], d[off + 3]]) as usize;
            let ty = u16::from_ne_bytes([d[off + 4], d[off + 5]]);
            if len < 16 || len > d.len() - off {
                break;
            }
            if ty == 0x0400 && len >= 20 {
                records += 1;
                let msg = &d[off + 16..off + len];
                let group = u16::from_be_bytes([msg[2], msg[3]]);
                let mut a = 4;
                while a + 4 <= msg.len() {
                    let alen = u16::from_ne_bytes([msg[a], msg[a + 1]]) as usize;
                    let aty = u16::from_ne_bytes([msg[a + 2], msg[a + 3]]) & 0x3fff;
                    if alen < 4 || a + alen > msg.len() {
                        break;
                    }
                    if aty == NFULA_SEQ && alen >= 8 {
                        let s =
                            u32::from_be_bytes([msg[a + 4], msg[a + 5], msg[a + 6], msg[a + 7]]);
                        if let Some(prev) = last_seq.insert(group, s) {
                            gaps += u64::from(s.wrapping_sub(prev).wrapping_sub(1));
                        }
                        break;
                    }
                    a += (alen + 3) & !3;
                }
            }
            off += (len + 3) & !3;
        }
    }
}

// ---------------------------------------------------------------- tail

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn kernel_time_us(line: &str) -> Option<i64> {
    let i = line.find("\"time\":\"")? + 8;
    let j = i + line[i..].find('"')?;
    let t = chrono::DateTime::parse_from_rfc3339(&line[i..j]).ok()?;
    if !line.contains("\"time_source\":\"kernel\"") {
        return None;
    }
    Some(t.timestamp_micros())
}

fn tail(args: &[String]) {
    let path: String = arg(args, 1, "FILE");
    let want: u64 = arg(args, 2, "COUNT");
    let timeout: f64 = arg(args, 3, "TIMEOUT_S");
    let end = Instant::now() + Duration::from_secs_f64(timeout);
    let mut f = loop {
        match std::fs::File::open(&path) {
            Ok(f) => break f,
            Err(_) if Instant::now() < end => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => die(format!("{path}: {e}")),
        }
    };
    // Only lines written from now on count (warm-up lines before this are not measured).
    let _ = std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0));
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut lat: Vec<i64> = Vec::new();
    let (mut lines, mut no_kernel_time) = (0u64, 0u64);
    while lines < want && Instant::now() < end {
        let n = f.read(&mut buf).unwrap_or(0);
        if n == 0 {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let seen = now_us();
        pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(p) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&pending[start..start + p]);
            lines += 1;
            match kernel_time_us(&line) {
                Some(t) => lat.push(seen - t),
                None => no_kernel_time += 1,
            }
            start += p + 1;
        }
        pending.drain(..start);
    }
    lat.sort_unstable();
    let pct = |q: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 - 1.0) * q).round() as usize;
        lat[i] as f64 / 1000.0
    };
    println!(
        "lines {lines} timed {} no_kernel_time {no_kernel_time} p50_ms {:.3} p90_ms {:.3} p99_ms {:.3} p999_ms {:.3} max_ms {:.3}",
        lat.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(0.999),
        pct(1.0)
    );
}
