//! Rows per second into PostgreSQL through fwlog's output (row building, binary COPY into the
//! staging table, INSERT ... ON CONFLICT DO NOTHING into the indexed table, one transaction per
//! batch), against a bare binary COPY loop of the same rows, built beforehand, straight into the
//! same indexed table in the same batches, in the same run. Starts its own server (Debian's
//! PostgreSQL 15, as the postgres user, in a temporary directory, port 55499, fsync off so the
//! disk of a shared machine does not decide). Needs root; prints figures, asserts nothing.
//!
//! Run: `cargo bench --bench sql_pg` (FWLOG_BENCH_ROWS to change the row count)

#[path = "support/sql.rs"]
mod sql_support;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use fwlog::sink::sql::pg;
use sql_support::{config, cpu_seconds, feed, payload, BATCH};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

const BIN: &str = "/usr/lib/postgresql/15/bin";
const PORT: u16 = 55499;

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

fn fwlog_sink(db: &str, payloads: &[Vec<u8>]) -> (f64, f64) {
    let mut sink = pg::open(&url(db), &config()).expect("open");
    feed(&mut sink, payloads)
}

fn bare_copy(db: &str, payloads: &[Vec<u8>]) -> (f64, f64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut c, conn) = tokio_postgres::connect(&url(db), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let rows: Vec<_> = payloads
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let src = std::net::IpAddr::from([10, b[13], b[14], b[15]]);
                let dst = std::net::IpAddr::from([192, 0, 2, 1]);
                let t =
                    SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000 + i as u64 / 1000);
                (
                    t,
                    i as i64 + 1, // seq 0 is the row that created the schema
                    src,
                    dst,
                    i32::from(u16::from_be_bytes([b[20], b[21]])),
                    i32::from(u16::from_be_bytes([b[22], b[23]])),
                )
            })
            .collect();
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
        let (t0, c0) = (Instant::now(), cpu_seconds());
        for chunk in rows.chunks(BATCH) {
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
            for (t, i, src, dst, sport, dport) in chunk {
                let vals: [&(dyn ToSql + Sync); 21] = [
                    t,
                    &"kernel",
                    &"bench",
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
    let opts = format!("-p {PORT} -c listen_addresses=127.0.0.1 -k {d} -c fsync=off");
    assert!(as_postgres(&[
        &format!("{BIN}/pg_ctl"),
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
    // Two databases with the schema: fwlog creates it on first use; an empty batch is enough.
    for db in ["bare", "fwlog"] {
        Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &format!("{BIN}/../bin/createdb"),
                "-h",
                "127.0.0.1",
            ])
            .args(["-p", &PORT.to_string(), "-U", "bench", db])
            .status()
            .unwrap();
    }
    fwlog_sink("bare", &payloads[..1]);
    println!("PostgreSQL 15, {n} rows, batches of {BATCH}, 4 indexes, server fsync off");
    let base = bare_copy("bare", &payloads[1..]);
    let ours = fwlog_sink("fwlog", &payloads);
    for (what, (secs, cpu)) in [
        ("bare binary COPY loop", base),
        ("fwlog postgresql output", ours),
    ] {
        println!(
            "{what:<24} {:>10.0} rows/s  {:>6.2} us client CPU/row",
            n as f64 / secs,
            cpu / n as f64 * 1e6
        );
    }
    println!(
        "fwlog / bare: {:.0} % of the bare loop's rows/s",
        100.0 * base.0 / ours.0
    );
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
