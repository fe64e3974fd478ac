//! `--output mysql://USER[:PASS]@HOST[:PORT]/DB` (also `mariadb://`): every packet as a row in
//! MariaDB or MySQL (mysql_async, pure Rust, no TLS).
//!
//! Invariants:
//! - One transaction per `commit`: the batch's packet rows with multi-row prepared INSERTs
//!   ([`my_rows`](super::my_rows)), its loss rows, then COMMIT. `commit` returns `Ok` only
//!   after the server's COMMIT did. Keys already stored (a replay, a retry after a lost
//!   answer) are skipped, never doubled; a row the server refuses becomes a `losses` row with
//!   reason `refused: MESSAGE` in the same transaction, is counted and reported, and the rest
//!   is committed. Any other error fails the batch as a whole: nothing is acknowledged and the
//!   processing loop retries with back-off while intake keeps spooling.
//! - Only INSERT and SELECT are needed once the schema exists (`fwlog db init`, or a first run
//!   as a role that may create tables); `--db-retain` needs DELETE, and a failure there is
//!   reported once and never fails a batch.
//! - The work runs on a thread of its own with its own runtime, as for PostgreSQL: the loop
//!   waits at most [`COMMIT_WAIT`] for an answer and then asks again for the same batch, so a
//!   batch is never sent twice at once; the worker gives a batch at most [`BATCH_TIMEOUT`]
//!   (connecting included) and drops the connection after any error.
//! - The server is not contacted at start: an unreachable server or a wrong password make
//!   `commit` fail with the server's one-line message; packets stay spooled.
//! - Password: in the URL, or `MYSQL_PWD` when the URL has none; messages show the URL
//!   without it.
//! - No TLS: for a server on loopback, a private network or a tunnel (see fwlog-sql(5)).

use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Value};

use super::my_rows::{self, server_message};
use super::my_schema;
use super::row::{escaped, LossRow, Row};
use super::{SqlConfig, SqlError};
use crate::format::LossEvent;
use crate::sink::{PacketSink, PacketView};

/// Longest the processing loop waits for one commit attempt.
pub const COMMIT_WAIT: Duration = Duration::from_secs(5);
/// Longest the worker gives one batch (connecting included) before dropping the connection.
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Rows deleted per retention statement.
const RETAIN_CHUNK: u64 = 5000;
const RETAIN_EVERY: Duration = Duration::from_secs(60);

enum Item {
    Packet(Box<Row>),
    Loss(LossRow),
}

type Batch = Arc<Vec<Item>>;
/// The rows the server refused (stored as losses), or why the batch was not stored.
type Answer = Result<Vec<(u64, String)>, String>;

/// The URL in mysql_async's scheme (`mariadb://` is ours).
fn driver_url(url: &str) -> String {
    match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_string(),
    }
}

/// The connection options of `url`, the password from `MYSQL_PWD` when the URL has none, and
/// the URL as messages show it.
pub fn config(url: &str) -> Result<(Opts, String), String> {
    let after_at = url.split('@').next_back().unwrap_or(url);
    let opts = Opts::from_url(&driver_url(url)).map_err(|e| format!("{after_at}: {e}"))?;
    let user = opts.user().unwrap_or("").to_string();
    if user.is_empty() {
        return Err(format!("{after_at}: expected mysql://USER@HOST[:PORT]/DB"));
    }
    let Some(db) = opts.db_name().map(str::to_string) else {
        return Err(format!(
            "{after_at}: no database: expected mysql://USER@HOST[:PORT]/DB"
        ));
    };
    let shown = format!(
        "mysql://{}@{}:{}/{}",
        escaped(user.as_bytes()),
        escaped(opts.ip_or_hostname().as_bytes()),
        opts.tcp_port(),
        escaped(db.as_bytes())
    );
    let mut b = OptsBuilder::from_opts(opts.clone());
    // The driver would switch a loopback TCP connection to the server's Unix socket, which
    // changes who the server thinks is connecting ('USER'@'localhost' instead of
    // 'USER'@'127.0.0.1'): connect where the URL says unless it asks for the socket.
    if !url.contains("prefer_socket=") {
        b = b.prefer_socket(false);
    }
    if opts.pass().is_none() {
        if let Ok(p) = std::env::var("MYSQL_PWD") {
            b = b.pass(Some(p));
        }
    }
    Ok((Opts::from(b), shown))
}

/// Check a `mysql://` or `mariadb://` URL (for the command line).
pub fn check_url(url: &str) -> Result<(), String> {
    config(url).map(|_| ())
}

/// Connect and set the session up (UTC, strict).
pub async fn connect(opts: &Opts) -> Result<Conn, String> {
    let mut c = Conn::new(opts.clone())
        .await
        .map_err(|e| server_message(&e))?;
    c.query_drop(my_schema::SESSION)
        .await
        .map_err(|e| server_message(&e))?;
    Ok(c)
}

pub struct MySink {
    shown: String,
    payload: bool,
    batch: Vec<Item>,
    sent: Option<Batch>,
    jobs: Sender<Batch>,
    answers: Receiver<Answer>,
    /// Rows refused by the server since start (each stored as a loss).
    pub refused: u64,
}

impl MySink {
    /// Start the worker; the server is contacted at the first commit.
    pub fn open(url: &str, cfg: &SqlConfig) -> Result<MySink, SqlError> {
        let (opts, shown) = config(url).map_err(|message| SqlError::Db {
            target: "mysql".into(),
            message,
        })?;
        let (jobs, job_rx) = mpsc::channel::<Batch>();
        let (answer_tx, answers) = mpsc::channel();
        let worker = Worker {
            opts,
            host: cfg.host.clone(),
            stream: cfg.stream.hex(),
            conn: None,
            retain: cfg.retain,
            next_retain: Instant::now(),
            retain_failed: false,
            shown: shown.clone(),
        };
        std::thread::Builder::new()
            .name("fwlog-mysql".into())
            .spawn(move || worker.run(job_rx, answer_tx))
            .map_err(|e| SqlError::Db {
                target: shown.clone(),
                message: format!("cannot start its thread: {e}"),
            })?;
        Ok(MySink {
            shown,
            payload: cfg.payload,
            batch: Vec::new(),
            sent: None,
            jobs,
            answers,
            refused: 0,
        })
    }
}

impl PacketSink for MySink {
    fn packet(&mut self, p: &PacketView<'_>) {
        self.batch
            .push(Item::Packet(Box::new(Row::new(p, self.payload))));
    }

    fn loss(&mut self, ev: &LossEvent, seq: u64) {
        self.batch.push(Item::Loss(LossRow::new(ev, seq)));
    }

    fn pending(&self) -> usize {
        self.batch.len() * 128
    }

    fn commit(&mut self) -> io::Result<()> {
        if self.sent.is_none() {
            if self.batch.is_empty() {
                return Ok(());
            }
            let b: Batch = Arc::new(std::mem::take(&mut self.batch));
            self.jobs
                .send(Arc::clone(&b))
                .map_err(|_| io::Error::other("the database thread is gone"))?;
            self.sent = Some(b);
        }
        match self.answers.recv_timeout(COMMIT_WAIT) {
            Ok(Ok(refusals)) => {
                self.sent = None;
                if let Some((seq, m)) = refusals.first() {
                    self.refused += refusals.len() as u64;
                    eprintln!(
                        "fwlog: {}: the database refused {} row(s) (first: spool record {seq}: {}); stored in losses as refused",
                        self.shown,
                        refusals.len(),
                        escaped(m.as_bytes()),
                    );
                }
                Ok(())
            }
            Ok(Err(e)) => {
                if let Some(b) = self.sent.take() {
                    if let Ok(v) = Arc::try_unwrap(b) {
                        self.batch = v;
                    }
                }
                Err(io::Error::other(escaped(e.as_bytes())))
            }
            Err(RecvTimeoutError::Timeout) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the server has not answered yet",
            )),
            Err(RecvTimeoutError::Disconnected) => {
                Err(io::Error::other("the database thread is gone"))
            }
        }
    }

    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }
}

struct Worker {
    opts: Opts,
    host: String,
    stream: String,
    conn: Option<Conn>,
    retain: Option<Duration>,
    next_retain: Instant,
    retain_failed: bool,
    shown: String,
}

impl Worker {
    fn run(mut self, jobs: Receiver<Batch>, answers: Sender<Answer>) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = answers.send(Err(format!("cannot start a runtime: {e}")));
                return;
            }
        };
        while let Ok(batch) = jobs.recv() {
            let r = rt.block_on(async {
                match tokio::time::timeout(BATCH_TIMEOUT, self.store(&batch)).await {
                    Ok(r) => r,
                    Err(_) => Err("no answer from the server".to_string()),
                }
            });
            if r.is_err() {
                self.conn = None;
            }
            drop(batch);
            if answers.send(r).is_err() {
                return;
            }
        }
    }

    async fn store(&mut self, batch: &[Item]) -> Answer {
        if self.conn.is_none() {
            let mut c = connect(&self.opts).await?;
            my_schema::ensure(&mut c).await?;
            self.conn = Some(c);
        }
        let c = self.conn.as_mut().ok_or("not connected")?;
        let m = |e: mysql_async::Error| server_message(&e);
        c.query_drop("START TRANSACTION").await.map_err(m)?;
        let rows: Vec<&Row> = batch
            .iter()
            .filter_map(|i| match i {
                Item::Packet(r) => Some(&**r),
                Item::Loss(_) => None,
            })
            .collect();
        let refusals = my_rows::insert(c, &rows, &self.host, &self.stream)
            .await
            .map_err(m)?;
        let mut refused_at = refusals.iter().peekable();
        for item in batch {
            let (l, reason) = match item {
                Item::Loss(l) => (l.clone(), l.reason.to_string()),
                Item::Packet(r) => match refused_at.peek() {
                    Some((seq, msg)) if *seq == r.seq => {
                        refused_at.next();
                        (
                            refused_row(r),
                            format!("refused: {}", escaped(msg.as_bytes())),
                        )
                    }
                    _ => continue,
                },
            };
            let res = c
                .exec_drop(
                    "INSERT INTO losses (time, host, stream, seq, nflog_group, count, reason, \
                     seq_global_first, seq_global_last) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    vec![
                        time_value(l.time),
                        Value::from(self.host.as_str()),
                        Value::from(self.stream.as_str()),
                        Value::from(l.seq),
                        Value::from(l.nflog_group),
                        Value::from(l.count),
                        Value::from(reason),
                        Value::from(l.seq_global.map(|g| g.0)),
                        Value::from(l.seq_global.map(|g| g.1)),
                    ],
                )
                .await;
            match res {
                Ok(()) => {}
                Err(mysql_async::Error::Server(s)) if s.code == my_rows::DUPLICATE => {}
                Err(e) => return Err(m(e)),
            }
        }
        c.query_drop("COMMIT").await.map_err(m)?;
        self.retain().await;
        Ok(refusals)
    }

    /// Delete rows older than `--db-retain`, a chunk at a time, if it is time to look.
    async fn retain(&mut self) {
        let Some(keep) = self.retain else { return };
        if Instant::now() < self.next_retain {
            return;
        }
        let Some(c) = self.conn.as_mut() else { return };
        let cutoff = SystemTime::now()
            .checked_sub(keep)
            .unwrap_or(UNIX_EPOCH)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let t = time_value((cutoff.as_secs() as i64, 0));
        let mut more = false;
        for table in ["packets", "losses"] {
            let sql = format!("DELETE FROM {table} WHERE time < ? LIMIT {RETAIN_CHUNK}");
            match c.exec_drop(sql, (t.clone(),)).await {
                Ok(()) => more |= c.affected_rows() == RETAIN_CHUNK,
                Err(e) if !self.retain_failed => {
                    self.retain_failed = true;
                    eprintln!(
                        "fwlog: {}: --db-retain: {}",
                        self.shown,
                        escaped(server_message(&e).as_bytes())
                    );
                }
                Err(_) => {}
            }
        }
        self.next_retain = if more {
            Instant::now()
        } else {
            Instant::now() + RETAIN_EVERY
        };
    }
}

fn time_value(t: (i64, u32)) -> Value {
    my_rows::value(super::row::Value::Time(t))
}

/// The loss row that stands for a packet row the server refused.
fn refused_row(r: &Row) -> LossRow {
    LossRow {
        seq: r.seq,
        time: r.time,
        nflog_group: Some(r.nflog_group),
        count: 1,
        reason: "refused",
        seq_global: r.seq_global.map(|g| (g, g)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_shown_without_the_password() {
        let (_, shown) = config("mysql://fw:secret@127.0.0.1:3307/logs").unwrap();
        assert_eq!(shown, "mysql://fw@127.0.0.1:3307/logs");
        let (_, shown) = config("mariadb://fw@db1/logs").unwrap();
        assert_eq!(shown, "mysql://fw@db1:3306/logs");
        assert!(check_url("mysql://fw@db1").is_err());
        assert!(check_url("mysql://db1/logs").is_err());
        let e = check_url("mysql://fw:secret@db1/logs?nonsense=1").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }
}
