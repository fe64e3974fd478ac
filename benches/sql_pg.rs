//! Rows per second into PostgreSQL through fwlog's output (row building, binary COPY into the
//! indexed, partitioned `packets`, one transaction per batch), against a bare binary COPY loop
//! of the same rows, built beforehand, into the same table in the same batches, in the same
//! run, and against the same bare loop sending each batch's two halves at once on two
//! connections (what a second backend, so a second core, would give the server's side).
//! Each loop writes into a fresh database of its own with the schema fwlog creates;
//! FWLOG_BENCH_ROUNDS rounds (default 3), the loops taking turns going first; per round and as
//! medians. Besides rows per second, the CPU the client and the server (every process of the
//! server the bench started) spent per row: on a shared machine wall-clock rates follow the
//! load, CPU per row less so.
//!
//! Starts its own server (Debian's PostgreSQL 15, as the postgres user, in a temporary
//! directory, port 55499, fsync off so the disk of a shared machine does not decide) with the
//! settings fwlog-sql(5) recommends for a log store ([`TUNED`]; `FWLOG_BENCH_PG_STOCK=1` leaves
//! the server's defaults). Needs root; prints figures, asserts nothing.
//!
//! Run: `cargo bench --bench sql_pg` (FWLOG_BENCH_ROWS to change the row count,
//! FWLOG_BENCH_BATCH the rows per batch;
//! FWLOG_BENCH_DDL=SQL: the second loop is instead the bare loop on one connection into a
//! database where SQL ran before the clock started, to weigh a change of the schema, such as
//! another kind of index, against the schema as it is in the same run)

#[path = "support/sql.rs"]
mod sql_support;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use fwlog::sink::sql::{pg, SqlConfig};
use sql_support::{batch, config, cpu_seconds, feed, feed_from, payload};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

const BIN: &str = "/usr/lib/postgresql/15/bin";
const PORT: u16 = 55499;

/// Server settings for a log store (fwlog-sql(5), TUNING): room for the indexes' hot pages and
/// fewer, larger WAL writes and checkpoints. None of them makes a committed row less durable.
const TUNED: &[&str] = &[
    "shared_buffers=1GB",
    "wal_buffers=64MB",
    "max_wal_size=4GB",
    "checkpoint_timeout=15min",
];

/// CPU seconds (user + system) the server's processes have used so far: the postmaster, its
/// live children, and the children it has reaped (a backend whose connection closed).
fn server_cpu(data: &str) -> f64 {
    let pid = std::fs::read_to_string(format!("{data}/postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i64>().ok()))
        .unwrap_or(-1);
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut total = 0.0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // The fields after the command name, which is in parentheses and may hold spaces.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let me: i64 = head
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let ppid: i64 = f.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        if me == pid {
            total += (t(11) + t(12) + t(13) + t(14)) / tick;
        } else if ppid == pid {
            total += (t(11) + t(12)) / tick;
        }
    }
    total
}

fn as_postgres(args: &[&str]) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

fn url(db: &str) -> String {
    format!("postgresql://bench@127.0.0.1:{PORT}/{db}")
}

/// Host names when FWLOG_BENCH_HOSTS asks for more than one (at most this many).
const HOSTS: [&str; 3] = ["web1.example.org", "web2.example.org", "db-server-3"];

/// The `host` of the rows of batch `n`: `bench` alone, or the hosts taking turns by batch,
/// as the batches of several writers reach one server.
fn host_of(n: usize, hosts: usize) -> &'static str {
    if hosts <= 1 {
        "bench"
    } else {
        HOSTS[n % hosts.min(HOSTS.len())]
    }
}

fn fwlog_sink(db: &str, payloads: &[Vec<u8>]) -> (f64, f64) {
    let mut sink = pg::open(&url(db), &config()).expect("open");
    feed(&mut sink, payloads)
}

/// fwlog's output, one per host, each storing every `hosts`-th batch.
fn fwlog_hosts(db: &str, payloads: &[Vec<u8>], hosts: usize) -> (f64, f64) {
    let mut sinks: Vec<_> = (0..hosts.max(1))
        .map(|h| {
            let cfg = SqlConfig {
                host: host_of(h, hosts).into(),
                ..config()
            };
            pg::open(&url(db), &cfg).expect("open")
        })
        .collect();
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let size = batch();
    for (n, chunk) in payloads.chunks(size).enumerate() {
        let k = sinks.len();
        feed_from(&mut sinks[n % k], chunk, n * size);
    }
    (t0.elapsed().as_secs_f64(), cpu_seconds() - c0)
}

/// A row of the bare loop: the values that differ between rows.
type BareRow = (
    SystemTime,
    &'static str,
    i64,
    std::net::IpAddr,
    std::net::IpAddr,
    i32,
    i32,
);

/// One batch of the bare loop in one transaction on `c`.
async fn bare_batch(c: &mut tokio_postgres::Client, chunk: &[BareRow]) {
    let types = [
        Type::TIMESTAMPTZ,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::INT4,
        Type::INT2,
        Type::TEXT,
        Type::INT2,
        Type::INT8,
        Type::TEXT,
        Type::INET,
        Type::INET,
        Type::INT2,
        Type::INT4,
        Type::INT4,
        Type::INT4,
        Type::INT2,
        Type::BOOL,
        Type::BOOL,
    ];
    let tx = c.transaction().await.unwrap();
    let sink = tx
        .copy_in(
            "COPY packets (time, time_source, host, stream, seq, seq_global, nflog_group,
             family, prefix, hook, mark, in_if, src, dst, proto, sport, dport, length, ttl,
             replayed, partial) FROM STDIN (FORMAT binary)",
        )
        .await
        .unwrap();
    let mut w = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
    for (t, host, i, src, dst, sport, dport) in chunk {
        let vals: [&(dyn ToSql + Sync); 21] = [
            t,
            &"kernel",
            host,
            &"07070707070707070707070707070707",
            i,
            i,
            &5i32,
            &2i16,
            &"DROP ",
            &1i16,
            &0i64,
            &"eth0",
            src,
            dst,
            &17i16,
            sport,
            dport,
            &32i32,
            &64i16,
            &false,
            &false,
        ];
        w.as_mut().write(&vals).await.unwrap();
    }
    w.as_mut().finish().await.unwrap();
    tx.commit().await.unwrap();
}

/// The bare loop: every batch in a transaction of its own; with `conns` 2, each batch's two
/// halves at once on two connections (both committed before the next batch starts).
fn bare_copy(db: &str, payloads: &[Vec<u8>], hosts: usize, conns: usize) -> (f64, f64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..conns.clamp(1, 2) {
            let (c, conn) = tokio_postgres::connect(&url(db), tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            clients.push(c);
        }
        let rows: Vec<BareRow> = payloads
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let src = std::net::IpAddr::from([10, b[13], b[14], b[15]]);
                let dst = std::net::IpAddr::from([192, 0, 2, 1]);
                let t =
                    SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000 + i as u64 / 1000);
                (
                    t,
                    host_of((i + 1) / batch(), hosts),
                    i as i64 + 1, // seq 0 is the row that created the schema
                    src,
                    dst,
                    i32::from(u16::from_be_bytes([b[20], b[21]])),
                    i32::from(u16::from_be_bytes([b[22], b[23]])),
                )
            })
            .collect();
        let (t0, c0) = (Instant::now(), cpu_seconds());
        for chunk in rows.chunks(batch()) {
            match &mut clients[..] {
                [a, b] => {
                    let (x, y) = chunk.split_at(chunk.len() / 2);
                    tokio::join!(bare_batch(a, x), bare_batch(b, y));
                }
                [a, ..] => bare_batch(a, chunk).await,
                [] => unreachable!(),
            }
        }
        (t0.elapsed().as_secs_f64(), cpu_seconds() - c0)
    })
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !std::path::Path::new(BIN).join("initdb").exists() {
        println!("SKIP sql_pg bench: needs root and PostgreSQL 15 (apt-get install postgresql)");
        return;
    }
    let n: usize = std::env::var("FWLOG_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    Command::new("chown")
        .arg("postgres")
        .arg(dir.path())
        .status()
        .unwrap();
    let d = data.to_str().unwrap();
    assert!(as_postgres(&[
        &format!("{BIN}/initdb"),
        "-D",
        d,
        "-U",
        "bench",
        "-A",
        "trust"
    ]));
    let mut opts = format!("-p {PORT} -c listen_addresses=127.0.0.1 -k {d} -c fsync=off");
    let stock = std::env::var_os("FWLOG_BENCH_PG_STOCK").is_some();
    if !stock {
        for t in TUNED {
            opts.push_str(" -c ");
            opts.push_str(t);
        }
    }
    // FWLOG_BENCH_POSTGRES: another program started as the server (pg_ctl -p), such as a
    // script that runs postgres under valgrind to count the server's instructions per row.
    let server = std::env::var("FWLOG_BENCH_POSTGRES").unwrap_or(format!("{BIN}/postgres"));
    assert!(as_postgres(&[
        &format!("{BIN}/pg_ctl"),
        "-p",
        &server,
        "-t",
        "600",
        "-D",
        d,
        "-o",
        &opts,
        "-w",
        "-l",
        &format!("{d}/log"),
        "start"
    ]));
    let _server = Stop(d.to_string());
    let payloads: Vec<Vec<u8>> = (0..n as u32).map(payload).collect();
    println!(
        "PostgreSQL 15, {n} rows, batches of {}, 4 indexes, server fsync off, {}",
        batch(),
        if stock {
            "default settings".to_string()
        } else {
            TUNED.join(" ")
        }
    );
    let rounds: usize = std::env::var("FWLOG_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let timed = |f: &dyn Fn() -> (f64, f64)| {
        let s0 = server_cpu(d);
        let (secs, cpu) = f();
        // The loop's connection is closed: let the postmaster reap its backend.
        std::thread::sleep(Duration::from_millis(500));
        (
            n as f64 / secs,
            cpu / n as f64 * 1e6,
            (server_cpu(d) - s0) / n as f64 * 1e6,
        )
    };
    let hosts: usize = std::env::var("FWLOG_BENCH_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .clamp(1, HOSTS.len());
    println!("{hosts} host(s), their batches taking turns");
    let ddl = std::env::var("FWLOG_BENCH_DDL").ok();
    let names: [&str; 3] = [
        "bare binary COPY loop",
        if ddl.is_some() {
            "bare, FWLOG_BENCH_DDL"
        } else {
            "bare, 2 connections"
        },
        "fwlog postgresql output",
    ];
    let mut results: [Vec<(f64, f64, f64)>; 3] = Default::default();
    for r in 0..rounds {
        // Fresh databases each round, each with the schema fwlog creates and the day's
        // partition before the clock starts: the bare ones from the row they need, fwlog's
        // from another host's row (its own rows then start at spool record 0, as after a
        // first start).
        let dbs = [
            format!("bare{r}"),
            format!("bare2_{r}"),
            format!("fwlog{r}"),
        ];
        for db in &dbs {
            createdb(db);
        }
        fwlog_sink(&dbs[0], &payloads[..1]);
        fwlog_sink(&dbs[1], &payloads[..1]);
        let warm = SqlConfig {
            host: "warmup".into(),
            ..config()
        };
        feed(
            &mut pg::open(&url(&dbs[2]), &warm).expect("open"),
            &payloads[..1],
        );
        if let Some(ddl) = &ddl {
            psql(&dbs[1], ddl);
        }
        // The loops take turns going first.
        for k in 0..3 {
            let which = (k + r) % 3;
            let db = &dbs[which];
            let t = if which == 2 {
                timed(&|| fwlog_hosts(db, &payloads, hosts))
            } else {
                let conns = if which == 1 && ddl.is_none() { 2 } else { 1 };
                timed(&|| bare_copy(db, &payloads[1..], hosts, conns))
            };
            results[which].push(t);
        }
        for (what, v) in names.iter().zip(&results) {
            let (rate, cpu, server) = v[r];
            println!(
                "round {r}: {what:<26} {rate:>8.0} rows/s  {cpu:>5.2} us client + {server:>5.2} us server CPU/row"
            );
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let pick = |v: &[(f64, f64, f64)], k: usize| -> Vec<f64> {
        v.iter().map(|t| [t.0, t.1, t.2][k]).collect()
    };
    for (what, v) in names.iter().zip(&results) {
        println!(
            "median: {what:<26} {:>8.0} rows/s  {:>5.2} us client + {:>5.2} us server CPU/row",
            median(pick(v, 0)),
            median(pick(v, 1)),
            median(pick(v, 2))
        );
    }
    let ratio: Vec<f64> = results[0]
        .iter()
        .zip(&results[2])
        .map(|(b, o)| 100.0 * o.0 / b.0)
        .collect();
    println!(
        "fwlog / bare: median {:.0} % of the bare loop's rows/s (rounds: {}); load average {}",
        median(ratio.clone()),
        ratio
            .iter()
            .map(|p| format!("{p:.0} %"))
            .collect::<Vec<_>>()
            .join(", "),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}

fn psql(db: &str, sql: &str) {
    let ok = Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            &format!("{BIN}/psql"),
            "-h",
            "127.0.0.1",
        ])
        .args(["-p", &PORT.to_string(), "-U", "bench", "-d", db, "-qc", sql])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "psql {sql}");
}

fn createdb(db: &str) {
    Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            &format!("{BIN}/createdb"),
            "-h",
            "127.0.0.1",
        ])
        .args(["-p", &PORT.to_string(), "-U", "bench", db])
        .status()
        .unwrap();
}

/// Stops the server however the bench ends.
struct Stop(String);
impl Drop for Stop {
    fn drop(&mut self) {
        as_postgres(&[
            &format!("{BIN}/pg_ctl"),
            "-D",
            &self.0,
            "-m",
            "fast",
            "stop",
        ]);
    }
}
