//! `--output postgresql://USER@HOST[:PORT]/DB` (also `postgres://`): every packet as a row in
//! PostgreSQL, the central store for many hosts (tokio-postgres).
//!
//! Invariants:
//! - One transaction per `commit`: the batch's packet rows go in with `COPY ... FROM STDIN
//!   (FORMAT binary)` straight into `packets` inside a savepoint; if a key is already there,
//!   the savepoint is rolled back and the rows go through a session-local staging table and
//!   `INSERT INTO packets SELECT ... ON CONFLICT DO NOTHING` on the unique key (host, stream,
//!   seq) instead; loss rows with `INSERT ... ON CONFLICT DO NOTHING`; then COMMIT. `commit`
//!   returns `Ok` only after the server's COMMIT did, so a replayed or retried batch adds
//!   nothing.
//! - The COPY is streamed: it begins with the batch's first [`CHUNK`](super::remote::CHUNK)
//!   of rows, while the loop still builds the rest, and each chunk is encoded and sent as it
//!   comes, so the server inserts rows while the client builds them instead of waiting for the
//!   whole batch; `BEGIN; SAVEPOINT` go with the COPY, and the COPY's end with `RELEASE;
//!   COMMIT`, in one round trip each. The statements are the same as above: only the moment
//!   they are sent changes. A stream is given up (cancelled, rolled back, the batch stored
//!   whole at the commit) when the loop hands nothing over for
//!   [`STREAM_IDLE`](super::remote::STREAM_IDLE) or a row needs a partition this connection
//!   has not seen.
//! - A row the server refuses (a site's CHECK constraint or trigger: see
//!   [`pg_rows::refused`](super::pg_rows::refused)) never stalls logging: the batch's rows go
//!   in one by one, each in a savepoint, in the same transaction; each refused row becomes a
//!   `losses` row with reason `refused: MESSAGE`, is counted and reported, and the rest is
//!   committed. Any other error (connection, permission, disk full) fails the batch as a
//!   whole: nothing is acknowledged, the loop retries with back-off.
//! - The database work runs on a thread of its own (with its own single-threaded runtime): the
//!   processing loop waits for a commit at most [`COMMIT_WAIT`](super::remote::COMMIT_WAIT); if the server has not answered
//!   by then, `commit` fails (the loop retries with back-off, intake keeps spooling) and the next
//!   call waits for the same batch's answer, so a batch is never sent twice at once. The worker
//!   gives a batch at most [`BATCH_TIMEOUT`](super::remote::BATCH_TIMEOUT) and drops the connection after any error.
//! - The server is not contacted at start: an unreachable server, a wrong password or missing
//!   privileges make `commit` fail with the server's one-line message; packets stay spooled.
//! - Password: in the URL, or `PGPASSWORD` when the URL has none. Messages show the URL
//!   without it.
//! - TLS: `sslmode=require` or `verify-full` with `sslrootcert` ([`pg_tls`](super::pg_tls));
//!   a certificate that does not verify fails `commit` like an unreachable server.
//! - Schema: created on first use under an advisory lock (many hosts may start at once);
//!   `schema_version` newer than [`VERSION`] is an error at every attempt, never a write; so
//!   is version 1 (an unpartitioned `packets`), whose migration SQL is in fwlog-sql(5).
//!   Version 2 (no geo columns) is upgraded in place, in the same locked transaction:
//!   `ALTER TABLE packets ADD COLUMN ...` on the partitioned parent (no rewrite, every row
//!   kept, the new columns NULL in old rows); a role that does not own the table gets one
//!   line naming what to run (`fwlog db init URL` as the owner), and nothing is written.
//!   Version 3 (and 2, after that) gets `host` and `stream` with the "C" collation the same
//!   way (`ALTER COLUMN ... TYPE text COLLATE "C"`: no rewrite, the primary keys rebuilt).
//! - `packets` is partitioned by UTC day ([`pg_parts`](super::pg_parts)): the partitions a
//!   batch needs are made before its transaction; `--db-retain` drops whole old ones.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, Statement};

use tokio_postgres_rustls::MakeRustlsConnect;

use super::pg_parts::{self, Parts};
pub use super::pg_rows::server_message;
use super::pg_rows::{
    copy_cols_sql, copy_rows, insert_each, refused, types_of, used, write_cols, Cols, COLUMN_LIST,
};
use super::refusal::Refusals;
use super::remote::{loss_rows, Answer, Feed, Item, Next, Outcome, Remote, Store, STREAM_IDLE};
use super::row::{escaped, Column, Kind, Row, COLUMNS};
use super::{pg_losses, pg_tls};
use super::{SqlConfig, SqlError};

/// The schema version this fwlog writes.
pub const VERSION: i32 = 4;

/// The key columns every row's uniqueness is checked on, compared byte by byte: with the
/// database's default collation (a locale's, `en_US.UTF-8`, `C.UTF-8`) every comparison in the
/// primary key's B-tree is a locale comparison, and with several hosts in one day's partition
/// that made a row's insert about a quarter dearer (measured in BENCHMARKS.md). Equality, which
/// is all fwlog and the documented queries need of them, is the same in every collation.
const BYTEWISE: [&str; 2] = ["host", "stream"];

/// The `packets` columns as `name type [NOT NULL]`, from the one column list.
fn column_ddl(cols: impl Iterator<Item = &'static Column>) -> Vec<String> {
    cols.map(|c| {
        let mut d = format!("{} {}", c.name, pg_type_name(c.kind));
        if BYTEWISE.contains(&c.name) {
            d.push_str(" COLLATE \"C\"");
        }
        if c.not_null {
            d.push_str(" NOT NULL");
        }
        d
    })
    .collect()
}

/// The DDL name of a column kind (see [`pg_rows::pg_type`](super::pg_rows::pg_type)).
pub fn pg_type_name(k: Kind) -> &'static str {
    match k {
        Kind::Time => "timestamptz",
        Kind::Text => "text",
        Kind::Small => "smallint",
        Kind::Int => "integer",
        Kind::Big => "bigint",
        Kind::Addr => "inet",
        Kind::Bool => "boolean",
        Kind::Double => "double precision",
        Kind::Bytes => "bytea",
    }
}

/// A new database: every table at [`VERSION`].
fn schema() -> String {
    format!(
        "CREATE TABLE schema_version (version integer NOT NULL);
CREATE TABLE packets (
    {},
    PRIMARY KEY (host, stream, seq, time)) PARTITION BY RANGE (time);
CREATE INDEX packets_time ON packets (time);
CREATE INDEX packets_src_time ON packets (src, time);
CREATE INDEX packets_dport_time ON packets (dport, time);
CREATE TABLE losses (
    time timestamptz NOT NULL, host text COLLATE \"C\" NOT NULL,
    stream text COLLATE \"C\" NOT NULL, seq bigint NOT NULL,
    nflog_group integer, count bigint NOT NULL, reason text NOT NULL,
    seq_global_first bigint, seq_global_last bigint,
    PRIMARY KEY (host, stream, seq));
INSERT INTO schema_version VALUES ({VERSION});",
        column_ddl(COLUMNS.iter()).join(",\n    ")
    )
}

/// Version 2 -> 3: the geo columns, added to the partitioned parent (its partitions follow).
/// Nullable columns without a default: no table is rewritten, however large.
fn upgrade_v2() -> String {
    let adds = column_ddl(COLUMNS.iter().filter(|c| c.geo))
        .into_iter()
        .map(|d| format!("ADD COLUMN {d}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("ALTER TABLE packets {adds}; UPDATE schema_version SET version = 3;")
}

/// Version 3 -> 4: `host` and `stream` compared byte by byte ([`BYTEWISE`]) in both tables.
/// Same type: no table is rewritten, the indexes on these columns (the primary keys, on every
/// partition) are rebuilt, under a lock that holds the other writers back meanwhile.
fn upgrade_v3() -> String {
    let alter = BYTEWISE
        .map(|c| format!("ALTER COLUMN {c} TYPE text COLLATE \"C\""))
        .join(", ");
    format!(
        "ALTER TABLE packets {alter}; ALTER TABLE losses {alter}; \
         UPDATE schema_version SET version = 4;"
    )
}

/// The URL as messages show it: no password.
pub fn shown(cfg: &Config) -> String {
    let host = cfg
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_default();
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgresql://{}@{host}:{port}/{}",
        cfg.get_user().unwrap_or(""),
        cfg.get_dbname().unwrap_or("")
    )
}

/// Check a `postgresql://` URL (for the command line).
pub fn check_url(url: &str) -> Result<(), String> {
    let after_at = url.split('@').next_back().unwrap_or(url);
    let (plain, tls) = pg_tls::split(url).map_err(|e| format!("{after_at}: {e}"))?;
    Config::from_str(&plain).map_err(|e| format!("{after_at}: {e}"))?;
    // The CA file is read now, so a wrong path is a usage error, not a late failure.
    pg_tls::connector(&tls).map_err(|e| format!("{after_at}: {e}"))?;
    Ok(())
}

/// The connection settings and TLS connector of `url`. The password: the URL's, or
/// `PGPASSWORD`, or the password file's ([`pgpass`](super::pgpass)).
pub fn config(url: &str) -> Result<(Config, Option<MakeRustlsConnect>), SqlError> {
    let db_err = |message: String| SqlError::Db {
        target: "postgresql".into(),
        message,
    };
    let (plain, tls) = pg_tls::split(url).map_err(db_err)?;
    let tls = pg_tls::connector(&tls).map_err(db_err)?;
    let mut pg = Config::from_str(&plain).map_err(|e| db_err(e.to_string()))?;
    if pg.get_password().is_none() {
        if let Ok(p) = std::env::var("PGPASSWORD") {
            pg.password(p);
        } else {
            let host = match pg.get_hosts().first() {
                Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
                _ => "localhost".to_string(),
            };
            let user = pg.get_user().unwrap_or("").to_string();
            let want = super::pgpass::Want {
                host: &host,
                port: pg.get_ports().first().copied().unwrap_or(5432),
                db: pg.get_dbname().unwrap_or(&user),
                user: &user,
            };
            if let Some(p) = super::pgpass::lookup(&want).map_err(|message| SqlError::Db {
                target: shown(&pg),
                message,
            })? {
                pg.password(p);
            }
        }
    }
    pg.connect_timeout(Duration::from_secs(5));
    pg.keepalives_idle(Duration::from_secs(10));
    Ok((pg, tls))
}

/// [`config`] with the error as text (for readers).
pub fn client_config(url: &str) -> Result<(Config, Option<MakeRustlsConnect>), String> {
    config(url).map_err(|e| e.to_string())
}

/// Connect (the connection's task runs on the current runtime).
pub async fn connect(pg: &Config, tls: Option<&MakeRustlsConnect>) -> Result<Client, String> {
    Ok(match tls {
        Some(tls) => {
            let (client, conn) = pg.connect(tls.clone()).await.map_err(msg)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            client
        }
        None => {
            let (client, conn) = pg.connect(NoTls).await.map_err(msg)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            client
        }
    })
}

/// Connect (on the caller's runtime, which then drives the connection) for reading; the
/// error is the server's message. Returns the client and the URL as messages show it.
pub async fn connect_reader(url: &str) -> Result<(Client, String), String> {
    let (pg, tls) = client_config(url)?;
    let shown = shown(&pg);
    let client = connect(&pg, tls.as_ref()).await?;
    Ok((client, shown))
}

/// The PostgreSQL output: the loop's side is [`Remote`] (the batch, the worker thread, the wait);
/// the worker starts now, the server is contacted at the first commit.
pub fn open(url: &str, cfg: &SqlConfig) -> Result<Remote, SqlError> {
    let (pg, tls) = config(url)?;
    let shown = shown(&pg);
    let worker = Worker {
        pg,
        host: cfg.host.clone(),
        stream: cfg.stream.hex(),
        client: None,
        copies: HashMap::new(),
        cols: 0,
        parts: Parts::new(cfg.retain),
        tls,
        shown: shown.clone(),
    };
    Remote::start("fwlog-pg", shown, cfg.payload, worker)
}

struct Worker {
    pg: Config,
    host: String,
    stream: String,
    client: Option<Client>,
    /// The COPYs into `packets` this connection prepared, by the columns they name.
    copies: HashMap<Cols, Statement>,
    /// The columns a streamed COPY names: those rows had values in so far (see
    /// [`copy_cols_sql`]). A row with a value in another gives the stream up once, and the
    /// column is named from then on.
    cols: Cols,
    parts: Parts,
    shown: String,
    tls: Option<MakeRustlsConnect>,
}

impl Worker {
    async fn connect(&mut self) -> Result<&mut Client, String> {
        if self.client.is_none() {
            let client = connect(&self.pg, self.tls.as_ref()).await?;
            self.client = Some(client);
            self.parts.forget();
            let c = self.client.as_mut().ok_or("not connected")?;
            ensure_schema(c).await?;
            self.copies.clear();
        }
        self.client
            .as_mut()
            .ok_or_else(|| "not connected".to_string())
    }
}

/// Create the schema if there is none, or upgrade version 2 (the geo columns); refuse a
/// version this fwlog does not write.
pub async fn ensure_schema(c: &mut Client) -> Result<(), String> {
    let tx = c.transaction().await.map_err(msg)?;
    tx.batch_execute("SELECT pg_advisory_xact_lock(7402251)")
        .await
        .map_err(msg)?;
    let has: Option<String> = tx
        .query_one("SELECT to_regclass('schema_version')::text", &[])
        .await
        .map_err(msg)?
        .get(0);
    if has.is_none() {
        tx.batch_execute(&schema()).await.map_err(msg)?;
    } else {
        let v: Option<i32> = tx
            .query_one("SELECT max(version) FROM schema_version", &[])
            .await
            .map_err(msg)?
            .get(0);
        let v = v.unwrap_or(0);
        if v > VERSION {
            return Err(format!(
                "schema version {v} is newer than this fwlog knows ({VERSION}); refusing to write (upgrade fwlog)"
            ));
        }
        if v == 2 {
            tx.batch_execute(&upgrade_v2())
                .await
                .map_err(|e| upgrade_failed(v, &e))?;
        }
        if v == 2 || v == 3 {
            tx.batch_execute(&upgrade_v3())
                .await
                .map_err(|e| upgrade_failed(v, &e))?;
        } else if v < VERSION {
            return Err(format!(
                "schema version {v}: its packets table is not partitioned by day; refusing to write (migrate it with the SQL in fwlog-sql(5), MIGRATING FROM VERSION 1)"
            ));
        }
    }
    tx.batch_execute(
        "CREATE TEMP TABLE IF NOT EXISTS fwlog_stage (LIKE packets) ON COMMIT DELETE ROWS",
    )
    .await
    .map_err(msg)?;
    tx.commit().await.map_err(msg)
}

/// Why upgrading from version `from` failed, as one line. A role that may not ALTER the
/// tables (not their owner: fwlog run with an INSERT-only role) is told what to run; the
/// transaction rolls back, so nothing was changed or written.
fn upgrade_failed(from: i32, e: &tokio_postgres::Error) -> String {
    let server = server_message(e);
    if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
        format!(
            "schema version {from} must be upgraded to {VERSION} by the owner of its tables, \
             and this role is not ({server}): run `fwlog db init URL` as the owner (see \
             fwlog-sql(5)); nothing was written"
        )
    } else {
        format!("schema version {from}: upgrading it to {VERSION} failed: {server}")
    }
}

impl Store for Worker {
    const STREAMS: bool = true;

    async fn store(&mut self, feed: &mut Feed) -> Outcome {
        let host = self.host.clone();
        let stream = self.stream.clone();
        self.connect().await?;
        let c = self.client.as_mut().ok_or("not connected")?;
        self.parts
            .ensure(c, days(feed.items()))
            .await
            .map_err(msg)?;
        let fast = stream_copy(
            c,
            &mut self.copies,
            &mut self.cols,
            feed,
            &self.parts,
            &host,
            &stream,
        )
        .await?;
        let committed = matches!(fast, Fast::Committed);
        let refusals = match fast {
            Fast::Committed => Vec::new(),
            Fast::Copied => {
                c.batch_execute("RELEASE SAVEPOINT fwlog_fast")
                    .await
                    .map_err(msg)?;
                Vec::new()
            }
            Fast::Failed(e) => {
                if !feed.rest().await {
                    return Err(GONE.into());
                }
                slow_packets(c, feed, e, &host, &stream).await?
            }
            Fast::Abandoned => {
                c.batch_execute("ROLLBACK").await.map_err(msg)?;
                if !feed.rest().await {
                    return Err(GONE.into());
                }
                self.cols |= used_by(feed.items());
                self.parts
                    .ensure(c, days(feed.items()))
                    .await
                    .map_err(msg)?;
                c.batch_execute("BEGIN").await.map_err(msg)?;
                store_packets(c, feed, &host, &stream).await?
            }
        };
        let losses = if committed {
            Vec::new()
        } else {
            let losses = pg_losses::insert(c, loss_rows(feed.items(), &refusals), &host, &stream)
                .await
                .map_err(msg)?;
            c.batch_execute("COMMIT").await.map_err(msg)?;
            losses
        };
        // Said after a batch went in: when it fails, its own error is the one line.
        if let Some(n) = self.parts.take_note() {
            eprintln!("fwlog: {}: {}", self.shown, escaped(n.as_bytes()));
        }
        if let Some(e) = self.parts.retain(c).await {
            eprintln!(
                "fwlog: {}: --db-retain: {}",
                self.shown,
                escaped(e.as_bytes())
            );
        }
        Ok(Refusals {
            rows: refusals,
            losses,
        })
    }

    fn reset(&mut self) {
        self.client = None;
        self.copies.clear();
    }
}

const GONE: &str = "the processing loop is gone";

/// The UTC days of a batch's packet rows.
fn days<'a, I: Iterator<Item = &'a Item>>(items: I) -> impl Iterator<Item = i64> + use<'a, I> {
    packets(items).map(|r| pg_parts::day(r.time.0))
}

/// A batch's packet rows.
fn packets<'a>(items: impl Iterator<Item = &'a Item>) -> impl Iterator<Item = &'a Row> {
    items.filter_map(|i| match i {
        Item::Packet(r) => Some(&**r),
        Item::Loss(_) => None,
    })
}

/// The columns a batch's packet rows have values in ([`used`]).
fn used_by<'a>(items: impl Iterator<Item = &'a Item>) -> Cols {
    packets(items).fold(0, |m, r| m | used(r))
}

/// How the streamed COPY of a batch ended.
enum Fast {
    /// Every row copied and the transaction committed (a batch without loss rows).
    Committed,
    /// Every row copied; the savepoint and the transaction are still open (loss rows follow).
    Copied,
    /// The COPY failed (a key already stored, a refused row, a fault): the transaction is open,
    /// the savepoint to be rolled back to.
    Failed(tokio_postgres::Error),
    /// Given up before the batch ended (the loop went quiet, or a row needs a partition this
    /// connection has not seen): the COPY was cancelled, the transaction is to be rolled back.
    Abandoned,
}

/// The fast path, while the loop is still adding to the batch: `BEGIN; SAVEPOINT` and the COPY
/// sent at once, every chunk's rows encoded and sent as it arrives (the server inserts them
/// meanwhile), and at the end, without loss rows, the COPY's end, `RELEASE` and `COMMIT` sent at
/// once. Should the COPY fail, `RELEASE` fails in the aborted transaction and the `COMMIT` after
/// it in the same query string is never run, so the batch's savepoint is still there for
/// [`slow_packets`]. An `Err` is a fault of the connection (the batch failed as a whole).
async fn stream_copy(
    c: &Client,
    copies: &mut HashMap<Cols, Statement>,
    cols: &mut Cols,
    feed: &mut Feed,
    parts: &Parts,
    host: &str,
    stream: &str,
) -> Result<Fast, String> {
    *cols |= used_by(feed.items());
    let want = *cols;
    let copy = match copies.get(&want) {
        Some(s) => s.clone(),
        None => {
            let s = c.prepare(&copy_cols_sql(want)).await.map_err(msg)?;
            copies.insert(want, s.clone());
            s
        }
    };
    let copy = &copy;
    let types = types_of(want);
    let (begun, sink) = tokio::join!(
        c.batch_execute("BEGIN; SAVEPOINT fwlog_fast"),
        c.copy_in(copy)
    );
    begun.map_err(msg)?;
    let sink = match sink {
        Ok(s) => s,
        Err(e) => return Ok(Fast::Failed(e)),
    };
    let mut w = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
    let mut sent = 0;
    loop {
        while let Some(chunk) = feed.chunks().get(sent).cloned() {
            if !days(chunk.iter()).all(|d| parts.knows(d)) {
                return Ok(Fast::Abandoned);
            }
            for r in packets(chunk.iter()) {
                match write_cols(w.as_mut(), r, host, stream, want).await {
                    Ok(true) => {}
                    Ok(false) => {
                        *cols |= used(r);
                        return Ok(Fast::Abandoned);
                    }
                    Err(e) => return Ok(Fast::Failed(e)),
                }
            }
            sent += 1;
        }
        if feed.ended() {
            break;
        }
        match feed.next(STREAM_IDLE).await {
            Next::Chunk(_) | Next::End => {}
            Next::Idle => return Ok(Fast::Abandoned),
            Next::Gone => return Err(GONE.into()),
        }
    }
    if feed.items().any(|i| matches!(i, Item::Loss(_))) {
        return Ok(match w.as_mut().finish().await {
            Ok(_) => Fast::Copied,
            Err(e) => Fast::Failed(e),
        });
    }
    let (copied, committed) = tokio::join!(
        w.as_mut().finish(),
        c.batch_execute("RELEASE SAVEPOINT fwlog_fast; COMMIT")
    );
    match copied {
        Err(e) => Ok(Fast::Failed(e)),
        Ok(_) => committed.map(|()| Fast::Committed).map_err(msg),
    }
}

/// Store the batch's packet rows in the open transaction; return the rows the server refused
/// (in spool order): the COPY inside a savepoint, then [`slow_packets`] if it failed.
async fn store_packets(c: &Client, feed: &Feed, host: &str, stream: &str) -> Answer {
    c.batch_execute("SAVEPOINT fwlog_fast").await.map_err(msg)?;
    match copy_rows(c, "packets", packets(feed.items()), host, stream).await {
        Ok(()) => {
            c.batch_execute("RELEASE SAVEPOINT fwlog_fast")
                .await
                .map_err(msg)?;
            Ok(Vec::new())
        }
        Err(e) => slow_packets(c, feed, e, host, stream).await,
    }
}

/// After the COPY of the batch inside savepoint `fwlog_fast` failed with `e`: a key already
/// there (a batch replayed after a crash, or retried after a lost answer) sends the batch
/// through the staging table and `ON CONFLICT DO NOTHING`; a row refused by the server (a
/// site's CHECK or trigger) makes the rows go in one by one, each in a savepoint, to find which.
/// Anything else fails the batch. Returns the refused rows, in spool order.
async fn slow_packets(
    c: &Client,
    feed: &Feed,
    mut e: tokio_postgres::Error,
    host: &str,
    stream: &str,
) -> Answer {
    let rows = || packets(feed.items());
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        c.batch_execute("ROLLBACK TO SAVEPOINT fwlog_fast")
            .await
            .map_err(msg)?;
        copy_rows(c, "fwlog_stage", rows(), host, stream)
            .await
            .map_err(msg)?;
        let staged = c
            .execute(
                &format!(
                    "INSERT INTO packets ({c}) SELECT {c} FROM fwlog_stage \
                     ON CONFLICT DO NOTHING",
                    c = *COLUMN_LIST
                ),
                &[],
            )
            .await;
        e = match staged {
            Ok(_) => {
                c.batch_execute("RELEASE SAVEPOINT fwlog_fast")
                    .await
                    .map_err(msg)?;
                return Ok(Vec::new());
            }
            Err(e) => e,
        };
    }
    if !refused(&e) || pg_parts::no_partition(&e) {
        return Err(msg(e));
    }
    c.batch_execute("ROLLBACK TO SAVEPOINT fwlog_fast")
        .await
        .map_err(msg)?;
    insert_each(c, rows(), host, stream).await.map_err(msg)
}

/// The server's own message.
fn msg(e: tokio_postgres::Error) -> String {
    server_message(&e)
}
