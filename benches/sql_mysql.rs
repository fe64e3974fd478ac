//! Rows per second into MariaDB through fwlog's output (row building, multi-row prepared
//! INSERTs of up to 512 rows, one transaction per batch), against two bare loops of the same
//! rows into the same indexed table in the same batches, in the same run: multi-row prepared
//! INSERTs (what fwlog does, without fwlog), and LOAD DATA LOCAL INFILE (the bulk path fwlog
//! does not take: it turns values the table cannot hold into warnings, see fwlog-sql(5)).
//! Starts its own server (Debian's MariaDB, `mariadbd --user=mysql`, a temporary directory,
//! 127.0.0.1:53399, the redo log flushed once a second so the disk of a shared machine does
//! not decide). Needs root; prints figures, asserts nothing.
//!
//! Run: `cargo bench --bench sql_mysql` (FWLOG_BENCH_ROWS to change the row count)

#[path = "support/sql.rs"]
mod sql_support;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fwlog::sink::sql::my;
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Params, Value, WhiteListFsHandler};
use sql_support::{config, cpu_seconds, feed, payload, BATCH};

const PORT: u16 = 53399;
const CHUNK: usize = 512;
const MARIADBD: &str = "/usr/sbin/mariadbd";
const COLS: &str = "time, time_source, host, stream, seq, seq_global, nflog_group, family, \
    prefix, hook, mark, in_if, src, dst, proto, sport, dport, length, ttl, replayed, partial";

fn url(db: &str) -> String {
    format!("mysql://root@127.0.0.1:{PORT}/{db}")
}

fn fwlog_sink(db: &str, payloads: &[Vec<u8>]) -> (f64, f64) {
    let mut sink = my::open(&url(db), &config()).expect("open");
    feed(&mut sink, payloads)
}

/// (seconds, seq, src, dst, sport, dport) of every row, built before the clock starts.
type Bare = (u64, u64, [u8; 16], [u8; 16], u16, u16);

fn bare_rows(payloads: &[Vec<u8>]) -> Vec<Bare> {
    payloads
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let v4 = |a: [u8; 4]| std::net::Ipv4Addr::from(a).to_ipv6_mapped().octets();
            (
                1_764_000_000 + i as u64 / 1000,
                i as u64 + 1, // seq 0 is the row that created the schema
                v4([10, b[13], b[14], b[15]]),
                v4([192, 0, 2, 1]),
                u16::from_be_bytes([b[20], b[21]]),
                u16::from_be_bytes([b[22], b[23]]),
            )
        })
        .collect()
}

fn date(secs: u64) -> Value {
    let t = chrono::DateTime::from_timestamp(secs as i64, 0).unwrap_or_default();
    use chrono::{Datelike, Timelike};
    Value::Date(
        t.year() as u16,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
        0,
    )
}

async fn connect(db: &str, infile: Option<&std::path::Path>) -> mysql_async::Conn {
    let mut b = OptsBuilder::from_opts(Opts::from_url(&url(db)).unwrap()).prefer_socket(false);
    if let Some(p) = infile {
        b = b.local_infile_handler(Some(WhiteListFsHandler::new(&[p][..])));
    }
    let mut c = mysql_async::Conn::new(b).await.unwrap();
    c.query_drop("SET time_zone = '+00:00'").await.unwrap();
    c
}

fn bare_insert(db: &str, rows: &[Bare]) -> (f64, f64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = connect(db, None).await;
        let one = format!("({})", vec!["?"; 21].join(","));
        let sql = |n: usize| {
            format!(
                "INSERT INTO packets ({COLS}) VALUES {}",
                vec![one.as_str(); n].join(",")
            )
        };
        let (t0, c0) = (Instant::now(), cpu_seconds());
        for batch in rows.chunks(BATCH) {
            c.query_drop("START TRANSACTION").await.unwrap();
            for chunk in batch.chunks(CHUNK) {
                let mut v = Vec::with_capacity(chunk.len() * 21);
                for &(t, seq, src, dst, sport, dport) in chunk {
                    v.extend([
                        date(t),
                        Value::from("kernel"),
                        Value::from("bench"),
                        Value::from("07070707070707070707070707070707"),
                        Value::from(seq),
                        Value::from(seq),
                        Value::from(5u16),
                        Value::from(2u8),
                        Value::from("DROP "),
                        Value::from(1u8),
                        Value::from(0u32),
                        Value::from("eth0"),
                        Value::Bytes(src.to_vec()),
                        Value::Bytes(dst.to_vec()),
                        Value::from(17u8),
                        Value::from(sport),
                        Value::from(dport),
                        Value::from(32u32),
                        Value::from(64u8),
                        Value::Int(0),
                        Value::Int(0),
                    ]);
                }
                c.exec_drop(sql(chunk.len()), Params::Positional(v))
                    .await
                    .unwrap();
            }
            c.query_drop("COMMIT").await.unwrap();
        }
        (t0.elapsed().as_secs_f64(), cpu_seconds() - c0)
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn bare_load_data(db: &str, rows: &[Bare], dir: &std::path::Path) -> (f64, f64) {
    let file = dir.join("batch.tsv");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = connect(db, Some(&file)).await;
        let sql = format!(
            "LOAD DATA LOCAL INFILE '{}' INTO TABLE packets (time, time_source, host, stream, \
             seq, seq_global, nflog_group, family, prefix, hook, mark, in_if, @src, @dst, proto, \
             sport, dport, length, ttl, replayed, partial) SET src = UNHEX(@src), dst = UNHEX(@dst)",
            file.display()
        );
        let (t0, c0) = (Instant::now(), cpu_seconds());
        for batch in rows.chunks(BATCH) {
            let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
            for &(t, seq, src, dst, sport, dport) in batch {
                let d = chrono::DateTime::from_timestamp(t as i64, 0).unwrap_or_default();
                writeln!(
                    w,
                    "{}\tkernel\tbench\t07070707070707070707070707070707\t{seq}\t{seq}\t5\t2\t\
                     DROP \t1\t0\teth0\t{}\t{}\t17\t{sport}\t{dport}\t32\t64\t0\t0",
                    d.format("%Y-%m-%d %H:%M:%S"),
                    hex(&src),
                    hex(&dst)
                )
                .unwrap();
            }
            w.flush().unwrap();
            c.query_drop("START TRANSACTION").await.unwrap();
            c.query_drop(sql.as_str()).await.unwrap();
            c.query_drop("COMMIT").await.unwrap();
        }
        (t0.elapsed().as_secs_f64(), cpu_seconds() - c0)
    })
}

fn root_sql(sock: &std::path::Path, sql: &str) -> bool {
    Command::new("mariadb")
        .arg(format!("--socket={}", sock.display()))
        .args(["-uroot", "-e", sql])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !std::path::Path::new(MARIADBD).exists() {
        println!("SKIP sql_mysql bench: needs root and MariaDB (apt-get install mariadb-server)");
        return;
    }
    let n: usize = std::env::var("FWLOG_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    Command::new("chown")
        .arg("mysql")
        .arg(dir.path())
        .status()
        .unwrap();
    let data = dir.path().join("data");
    let sock = dir.path().join("sock");
    assert!(Command::new("mariadb-install-db")
        .args(["--no-defaults", "--user=mysql", "--skip-test-db"])
        .arg(format!("--datadir={}", data.display()))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success()));
    let server = Command::new(MARIADBD)
        .args(["--no-defaults", "--user=mysql", "--skip-name-resolve"])
        .args([
            "--skip-networking=0",
            "--bind-address=127.0.0.1",
            "--skip-log-bin",
        ])
        .arg(format!("--port={PORT}"))
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", sock.display()))
        .arg(format!("--log-error={}", dir.path().join("log").display()))
        .args([
            "--innodb-buffer-pool-size=512M",
            "--innodb-log-file-size=256M",
        ])
        .args(["--innodb-flush-log-at-trx-commit=0", "--local-infile=1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Stop(server);
    let end = Instant::now() + Duration::from_secs(60);
    while !root_sql(&sock, "SELECT 1") {
        assert!(Instant::now() < end, "mariadbd did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(root_sql(
        &sock,
        "CREATE USER 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1'"
    ));
    let payloads: Vec<Vec<u8>> = (0..n as u32).map(payload).collect();
    let rows = bare_rows(&payloads[1..]);
    println!(
        "MariaDB 10.11, {n} rows, batches of {BATCH}, 4 indexes, redo log flushed each second; \
         two rounds, each loop into a fresh database"
    );
    for round in 1..=2 {
        let fresh = |what: &str| {
            let db = format!("{what}{round}");
            assert!(root_sql(&sock, &format!("CREATE DATABASE {db}")));
            db
        };
        let (bare, load, ours) = (fresh("bare"), fresh("loaddata"), fresh("fwlog"));
        // The bare loops' databases get fwlog's schema from a one-row batch.
        fwlog_sink(&bare, &payloads[..1]);
        fwlog_sink(&load, &payloads[..1]);
        let base = bare_insert(&bare, &rows);
        let load = bare_load_data(&load, &rows, dir.path());
        let ours = fwlog_sink(&ours, &payloads);
        for (what, (secs, cpu)) in [
            ("bare multi-row INSERT", base),
            ("bare LOAD DATA LOCAL", load),
            ("fwlog mysql output", ours),
        ] {
            println!(
                "round {round}: {what:<22} {:>8.0} rows/s  {:>6.2} us client CPU/row",
                n as f64 / secs,
                cpu / n as f64 * 1e6
            );
        }
        println!(
            "round {round}: fwlog / bare INSERT {:.0} %, LOAD DATA / bare INSERT {:.0} % (rows/s)",
            100.0 * base.0 / ours.0,
            100.0 * base.0 / load.0
        );
    }
}

/// Kills the server however the bench ends.
struct Stop(Child);
impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
