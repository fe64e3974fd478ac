//! Spool write throughput against a raw `write + fdatasync` loop, measured in the same run on the
//! same filesystem, and peak RSS while writing and reading back a large backlog.
//!
//! Run: `cargo bench -p fwlog-spool` (optionally `-- --quick` for shorter runs, or
//! `FWLOG_SPOOL_BENCH_DIR=/path` to choose the directory; default: /var/tmp, a real disk, not
//! tmpfs).
//!
//! For each record size and batch size, the raw loop appends `batch` records' worth of payload
//! bytes with one `write` and one `fdatasync` per batch to plain files rolled every 64 MiB; the
//! spool appends `batch` records and calls `commit` (default options: `EveryCommit`, 64 MiB
//! segments). Raw and spool batches alternate in lockstep for a fixed time and each side's time is
//! summed separately, so both see the same disk conditions. The raw loop writes only payload bytes, so it is a slightly stricter baseline than the
//! spool, which also writes a 20-byte header per record.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fwlog_spool::{FsyncPolicy, Options, Spool};

const SEGMENT: u64 = 64 * 1024 * 1024;

struct Rate {
    records_per_s: f64,
    mb_per_s: f64,
}

fn rate(records: u64, size: usize, t: Duration) -> Rate {
    let s = t.as_secs_f64();
    Rate {
        records_per_s: records as f64 / s,
        mb_per_s: records as f64 * size as f64 / s / 1e6,
    }
}

/// Plain files rolled every 64 MiB, appended with one `write` and one `fdatasync` per batch.
struct Raw {
    dir: PathBuf,
    file: File,
    n_file: u32,
    in_file: u64,
    buf: Vec<u8>,
    sync: bool,
}

impl Raw {
    fn new(dir: &Path, size: usize, batch: usize, sync: bool) -> Raw {
        std::fs::create_dir_all(dir).expect("bench dir");
        Raw {
            dir: dir.to_path_buf(),
            file: Raw::open(dir, 0),
            n_file: 0,
            in_file: 0,
            buf: (0..size * batch).map(|i| i as u8).collect(),
            sync,
        }
    }

    fn open(dir: &Path, n: u32) -> File {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join(format!("raw-{n}")))
            .expect("raw file")
    }

    fn batch(&mut self) {
        if self.in_file + self.buf.len() as u64 > SEGMENT {
            // Like the spool, make a finished file durable before starting the next.
            self.file.sync_data().expect("fdatasync");
            self.n_file += 1;
            self.file = Raw::open(&self.dir, self.n_file);
            self.in_file = 0;
        }
        self.file.write_all(&self.buf).expect("write");
        if self.sync {
            self.file.sync_data().expect("fdatasync");
        }
        self.in_file += self.buf.len() as u64;
    }
}

/// Runs raw and spool batches in lockstep (raw batch, spool batch, raw batch, ...) so both see the
/// same disk conditions (other processes' I/O changes fsync latency a lot), timing each side
/// separately.
fn paired(base: &Path, size: usize, batch: usize, budget: Duration, sync: bool) -> (Rate, Rate) {
    let raw_dir = base.join(format!("raw-{size}-{batch}"));
    let spool_dir = base.join(format!("spool-{size}-{batch}"));
    let mut raw = Raw::new(&raw_dir, size, batch, sync);
    let opts = Options {
        max_bytes: 1 << 40,
        fsync: if sync {
            FsyncPolicy::EveryCommit
        } else {
            FsyncPolicy::Never
        },
        ..Options::default()
    };
    let (mut w, r, _) = Spool::open(&spool_dir, opts).expect("open spool");
    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let (mut t_raw, mut t_spool) = (Duration::ZERO, Duration::ZERO);
    let mut batches = 0u64;
    let t0 = Instant::now();
    while t0.elapsed() < budget {
        let t = Instant::now();
        raw.batch();
        t_raw += t.elapsed();
        let t = Instant::now();
        for _ in 0..batch {
            w.append(&payload).expect("append");
        }
        w.commit().expect("commit");
        t_spool += t.elapsed();
        batches += 1;
    }
    let records = batches * batch as u64;
    drop((w, r, raw));
    std::fs::remove_dir_all(&raw_dir).expect("cleanup");
    std::fs::remove_dir_all(&spool_dir).expect("cleanup");
    (rate(records, size, t_raw), rate(records, size, t_spool))
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn backlog_rss(dir: &Path, total_bytes: u64) {
    let size = 1500usize;
    let n = total_bytes / size as u64;
    let before = vm_hwm_kib();
    let (mut w, mut r, _) = Spool::open(
        dir,
        Options {
            max_bytes: 1 << 40,
            ..Options::default()
        },
    )
    .expect("open spool");
    let payload: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
    let t0 = Instant::now();
    for i in 0..n {
        w.append(&payload).expect("append");
        if i % 1024 == 1023 {
            w.commit().expect("commit");
        }
    }
    let c = w.commit().expect("commit");
    let t_write = t0.elapsed();
    let after_write = vm_hwm_kib();
    let disk = w.stats().disk_bytes;
    let t1 = Instant::now();
    let mut got = 0u64;
    let mut bytes = 0u64;
    while let Some(rec) = r.next().expect("read back") {
        got += 1;
        bytes += rec.data.len() as u64;
        if got.is_multiple_of(65536) {
            r.ack(rec.seq).expect("ack");
        }
    }
    r.ack(c.written).expect("ack");
    let t_read = t1.elapsed();
    let after_read = vm_hwm_kib();
    assert_eq!(got, n);
    println!(
        "\nbacklog: {n} records of {size} B = {:.0} MB on disk ({} segments written)\n  \
         write: {:.0} records/s, {:.0} MB/s (batch 1024)\n  \
         read back in order from disk: {:.0} records/s, {:.0} MB/s, then acknowledged and \
         deleted (disk bytes now {})\n  \
         VmHWM: {} KiB at start, {} KiB after writing, {} KiB after reading back \
         (target < 16384 KiB)",
        disk as f64 / 1e6,
        disk.div_ceil(SEGMENT),
        n as f64 / t_write.as_secs_f64(),
        bytes as f64 / t_write.as_secs_f64() / 1e6,
        got as f64 / t_read.as_secs_f64(),
        bytes as f64 / t_read.as_secs_f64() / 1e6,
        r.stats().disk_bytes,
        before,
        after_write,
        after_read
    );
    drop((w, r));
    std::fs::remove_dir_all(dir).expect("cleanup");
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let base: PathBuf = std::env::var_os("FWLOG_SPOOL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"))
        .join(format!("fwlog-spool-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).expect("bench dir");
    let budget = Duration::from_millis(if quick { 500 } else { 3000 });
    println!(
        "fwlog-spool throughput in {} ({} s per size/batch, raw and spool batches interleaved)",
        base.display(),
        budget.as_secs_f64()
    );
    println!(
        "{:>6} {:>6} | {:>12} {:>9} | {:>12} {:>9} | {:>6}",
        "size", "batch", "raw rec/s", "raw MB/s", "spool rec/s", "spool MB/s", "ratio"
    );
    for size in [200usize, 1500] {
        for batch in [1usize, 16, 64, 256, 1024] {
            let (raw, sp) = paired(&base, size, batch, budget, true);
            println!(
                "{:>6} {:>6} | {:>12.0} {:>9.1} | {:>12.0} {:>9.1} | {:>5.0}%",
                size,
                batch,
                raw.records_per_s,
                raw.mb_per_s,
                sp.records_per_s,
                sp.mb_per_s,
                100.0 * sp.records_per_s / raw.records_per_s
            );
        }
    }
    println!(
        "\nNo fdatasync per batch (raw: write only; spool: FsyncPolicy::Never); both still sync each \
         full 64 MiB file, 1 s each:"
    );
    for size in [200usize, 1500] {
        for batch in [64usize, 1024] {
            let (raw, sp) = paired(&base, size, batch, Duration::from_secs(1), false);
            println!(
                "{:>6} {:>6} | {:>12.0} {:>9.1} | {:>12.0} {:>9.1} | {:>5.0}%",
                size,
                batch,
                raw.records_per_s,
                raw.mb_per_s,
                sp.records_per_s,
                sp.mb_per_s,
                100.0 * sp.records_per_s / raw.records_per_s
            );
        }
    }
    let backlog = if quick { 50 << 20 } else { 300 << 20 };
    backlog_rss(&base.join("backlog"), backlog);
    let _ = std::fs::remove_dir_all(&base);
}
