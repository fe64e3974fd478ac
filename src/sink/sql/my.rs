//! `--output mysql://USER[:PASS]@HOST[:PORT]/DB` (also `mariadb://`): every packet as a row in
//! MariaDB or MySQL (mysql_async, pure Rust, TLS with rustls).
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
//!   waits at most [`COMMIT_WAIT`](super::remote::COMMIT_WAIT) for an answer and then asks again for the same batch, so a
//!   batch is never sent twice at once; the worker gives a batch at most [`BATCH_TIMEOUT`](super::remote::BATCH_TIMEOUT)
//!   (connecting included) and drops the connection after any error.
//! - The server is not contacted at start: an unreachable server or a wrong password make
//!   `commit` fail with the server's one-line message; packets stay spooled.
//! - Password: in the URL, or `MYSQL_PWD` when the URL has none; messages show the URL
//!   without it.
//! - TLS: `ssl-mode=REQUIRED`, or `VERIFY_CA`/`VERIFY_IDENTITY` with `ssl-ca`
//!   ([`my_tls`](super::my_tls)); a certificate that does not verify, or a server that requires
//!   TLS when the URL asks for none, fails `commit` like an unreachable server.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Value};

use super::my_rows::{self, server_message};
use super::my_schema;
use super::my_tls;
use super::refusal::Refusals;
use super::remote::{loss_rows, Feed, Item, Outcome, Remote, Store};
use super::row::{escaped, Row};
use super::{SqlConfig, SqlError};

/// ER_ACCESS_DENIED_ERROR.
const ACCESS_DENIED: u16 = 1045;

/// Rows deleted per retention statement.
const RETAIN_CHUNK: u64 = 5000;
const RETAIN_EVERY: Duration = Duration::from_secs(60);

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
    let (plain, _, tls) = my_tls::split(url).map_err(|e| format!("{after_at}: {e}"))?;
    let opts = Opts::from_url(&driver_url(&plain)).map_err(|e| format!("{after_at}: {e}"))?;
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
    if tls.is_some() {
        b = b.ssl_opts(tls);
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
    let mut c = Conn::new(opts.clone()).await.map_err(|e| {
        let mut m = server_message(&e);
        // MariaDB before 11.4 refuses a plain connection to a server that requires TLS with
        // the same words as a wrong password.
        if opts.ssl_opts().is_none()
            && matches!(&e, mysql_async::Error::Server(s) if s.code == ACCESS_DENIED)
        {
            m.push_str(
                " (or the server requires TLS, require_secure_transport: see ssl-mode in \
                 fwlog-sql(5))",
            );
        }
        m
    })?;
    c.query_drop(my_schema::SESSION)
        .await
        .map_err(|e| server_message(&e))?;
    Ok(c)
}

/// The MariaDB/MySQL output: the loop's side is [`Remote`] (the batch, the worker thread, the wait);
/// the worker starts now, the server is contacted at the first commit.
pub fn open(url: &str, cfg: &SqlConfig) -> Result<Remote, SqlError> {
    let (opts, shown) = config(url).map_err(|message| SqlError::Db {
        target: "mysql".into(),
        message,
    })?;
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
    Remote::start("fwlog-mysql", shown, cfg.payload, worker)
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

impl Store for Worker {
    const STREAMS: bool = false;

    async fn store(&mut self, feed: &mut Feed) -> Outcome {
        if !feed.rest().await {
            return Err("the processing loop is gone".into());
        }
        if self.conn.is_none() {
            let mut c = connect(&self.opts).await?;
            my_schema::ensure(&mut c).await?;
            self.conn = Some(c);
        }
        let c = self.conn.as_mut().ok_or("not connected")?;
        let m = |e: mysql_async::Error| server_message(&e);
        c.query_drop("START TRANSACTION").await.map_err(m)?;
        let rows: Vec<&Row> = feed
            .items()
            .filter_map(|i| match i {
                Item::Packet(r) => Some(&**r),
                Item::Loss(_) => None,
            })
            .collect();
        let refusals = my_rows::insert(c, &rows, &self.host, &self.stream)
            .await
            .map_err(m)?;
        let mut refused_losses = Vec::new();
        for (l, reason) in loss_rows(feed.items(), &refusals) {
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
                        Value::from(reason.as_str()),
                        Value::from(l.seq_global.map(|g| g.0)),
                        Value::from(l.seq_global.map(|g| g.1)),
                    ],
                )
                .await;
            let e = match res {
                Ok(()) => continue,
                Err(e) => e,
            };
            if e_duplicate(&e)
                && loss_stored(c, &self.host, &self.stream, l.seq)
                    .await
                    .map_err(m)?
            {
                continue;
            }
            if !my_rows::refused(&e) && !e_duplicate(&e) {
                return Err(m(e));
            }
            // InnoDB undid the one statement; the transaction goes on without the row.
            refused_losses.push((l, reason, server_message(&e)));
        }
        c.query_drop("COMMIT").await.map_err(m)?;
        self.retain().await;
        Ok(Refusals {
            rows: refusals,
            losses: refused_losses,
        })
    }

    fn reset(&mut self) {
        self.conn = None;
    }
}

fn e_duplicate(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == my_rows::DUPLICATE)
}

/// Whether this stream's loss row `seq` is stored (a duplicate on fwlog's own key is a replay;
/// on a site's unique index it is a refusal).
async fn loss_stored(
    c: &mut Conn,
    host: &str,
    stream: &str,
    seq: u64,
) -> Result<bool, mysql_async::Error> {
    let n: Option<u64> = c
        .exec_first(
            "SELECT count(*) FROM losses WHERE host = ? AND stream = ? AND seq = ?",
            (host, stream, seq),
        )
        .await?;
    Ok(n.unwrap_or(0) > 0)
}

impl Worker {
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
