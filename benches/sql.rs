//! Rows per second into SQLite through fwlog's output (row building, escaping, one transaction
//! per batch, INSERT OR IGNORE on the schema with its indexes), against a baseline in the same
//! run: a bare prepared-statement loop inserting the same rows, already built, into the same
//! schema with the same pragmas and batches. Prints rows/s, CPU per row and the ratio; asserts
//! nothing (figures only).
//!
//! Run: `cargo bench --bench sql` (FWLOG_BENCH_ROWS to change the row count)

#[path = "support/sql.rs"]
mod sql_support;

use std::time::Instant;

use fwlog::sink::sql::row::addr16;
use fwlog::sink::sql::sqlite::SqliteSink;
use sql_support::{config, cpu_seconds, feed, payload, BATCH};

struct Result {
    secs: f64,
    cpu: f64,
}

fn fwlog_sink(db: &std::path::Path, payloads: &[Vec<u8>]) -> Result {
    let mut sink = SqliteSink::open(db, &config()).expect("open");
    let (secs, cpu) = feed(&mut sink, payloads);
    Result { secs, cpu }
}

/// The same rows, built beforehand, inserted with one prepared statement per batch.
fn bare_loop(db: &std::path::Path, payloads: &[Vec<u8>]) -> Result {
    drop(SqliteSink::open(db, &config()).expect("schema"));
    let mut c = rusqlite::Connection::open(db).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    let rows: Vec<_> = payloads
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let src = addr16(std::net::IpAddr::from([10, b[13], b[14], b[15]]));
            let dst = addr16(std::net::IpAddr::from([192, 0, 2, 1]));
            let dport = u16::from_be_bytes([b[22], b[23]]);
            (
                i as i64,
                src,
                dst,
                u16::from_be_bytes([b[20], b[21]]),
                dport,
            )
        })
        .collect();
    let (t0, c0) = (Instant::now(), cpu_seconds());
    for chunk in rows.chunks(BATCH) {
        let tx = c
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO packets (time, time_source, host, stream, seq,
                     seq_global, nflog_group, family, prefix, hook, mark, in_if, src, dst, proto,
                     sport, dport, length, ttl, replayed, partial)
                     VALUES (?1, 'kernel', 'bench', '07070707070707070707070707070707', ?2, ?2,
                     5, 2, 'DROP ', 1, 0, 'eth0', ?3, ?4, 17, ?5, ?6, 32, 64, 0, 0)",
                )
                .unwrap();
            for (i, src, dst, sport, dport) in chunk {
                st.execute(rusqlite::params![
                    1_764_000_000.0 + (*i / 1000) as f64,
                    i,
                    &src[..],
                    &dst[..],
                    sport,
                    dport
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    Result {
        secs: t0.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - c0,
    }
}

fn main() {
    let n: usize = std::env::var("FWLOG_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let payloads: Vec<Vec<u8>> = (0..n as u32).map(payload).collect();
    let dir = tempfile::tempdir().unwrap();
    println!("SQLite, {n} rows, batches of {BATCH}, synchronous=FULL, WAL, 4 indexes");
    // Two rounds, alternating, so neither side always runs on a cold or a warm machine.
    let (mut base_secs, mut ours_secs) = (0.0, 0.0);
    for round in 0..2 {
        let base = bare_loop(&dir.path().join(format!("bare{round}.db")), &payloads);
        let ours = fwlog_sink(&dir.path().join(format!("fwlog{round}.db")), &payloads);
        for (what, r) in [
            ("bare prepared INSERT loop", &base),
            ("fwlog SqliteSink", &ours),
        ] {
            println!(
                "round {round}: {what:<28} {:>10.0} rows/s  {:>6.2} us CPU/row",
                n as f64 / r.secs,
                r.cpu / n as f64 * 1e6
            );
        }
        base_secs += base.secs;
        ours_secs += ours.secs;
    }
    println!(
        "fwlog / bare: {:.0} % of the bare loop's rows/s (both rounds)",
        100.0 * base_secs / ours_secs
    );
}
