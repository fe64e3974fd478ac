//! `--output sqlite:PATH`: every packet as a row in an SQLite database (rusqlite, SQLite
//! compiled in).
//!
//! Invariants:
//! - One IMMEDIATE transaction per `commit`: the batch's packet rows and loss rows in spool
//!   order, then COMMIT. `commit` returns `Ok` only after SQLite's COMMIT did, so the spool is
//!   acknowledged only for rows the database holds.
//! - Idempotent: rows are keyed by (host, stream, seq) and inserted with `INSERT OR IGNORE`, so
//!   a batch committed but not acknowledged (a crash in between) is ignored when it is replayed,
//!   and a retried batch never doubles a row.
//! - WAL mode: readers (the `sqlite3` shell, reports) never block fwlog and fwlog never blocks
//!   them. `synchronous=FULL` when outputs are synced (`--fsync batch` or an interval), so a
//!   committed batch survives a power cut; `NORMAL` with `--fsync never` (survives a crash of
//!   fwlog, not of the machine).
//! - A writer holding the database's lock (another program's long write transaction) makes
//!   fwlog wait at most [`BUSY_TIMEOUT`] per attempt; then `commit` fails, the processing loop
//!   retries with back-off, and intake keeps spooling meanwhile. The wait is bounded so that the
//!   loop, which runs this on its own thread, gets back to its signals.
//! - A row the database refuses (a constraint or trigger of the site's own) is not retried
//!   forever ([`refusal`](super::refusal)): a refused packet row becomes a `losses` row with
//!   reason `refused: MESSAGE`, a refused `losses` row is left out and reported, and the batch
//!   goes on. Any other error (locked, disk full, I/O) fails the whole batch, which is retried
//!   as a whole.
//! - The database file is opened with SQLITE_OPEN_NOFOLLOW: a symlink planted at PATH is refused.
//! - `--db-retain`: rows older than the duration are deleted in chunks of [`RETAIN_CHUNK`], one
//!   chunk per commit while there are more, in their own transactions after the batch's.

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, params_from_iter, Connection, ErrorCode, OpenFlags, TransactionBehavior};

use super::refusal::{Counts, Refusals};
use super::row::{addr16, column_list, escaped, seconds_f64, LossRow, Row, Value, COLUMNS};
use super::{sqlite_schema, SqlConfig, SqlError};
use crate::format::LossEvent;
use crate::sink::{PacketSink, PacketView};

/// Longest wait for another writer's lock per attempt.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(1);
/// At start-up the schema check may wait longer for a lock before giving up.
const OPEN_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows deleted per retention transaction.
pub const RETAIN_CHUNK: usize = 5000;
/// How often retention looks for old rows once it found none.
const RETAIN_EVERY: Duration = Duration::from_secs(60);

const INSERT_LOSS: &str = "INSERT OR IGNORE INTO losses (time, host, stream, seq, nflog_group,
    count, reason, seq_global_first, seq_global_last) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// `INSERT OR IGNORE INTO packets (every column) VALUES (?1, ...)`.
fn insert_packet() -> String {
    let params: Vec<String> = (1..=COLUMNS.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT OR IGNORE INTO packets ({}) VALUES ({})",
        column_list(),
        params.join(", ")
    )
}

/// A row's value as SQLite stores it (see `sqlite_schema::sql_type`).
impl ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as V;
        Ok(match *self {
            Value::Null => ToSqlOutput::Owned(V::Null),
            Value::Time(t) => ToSqlOutput::Owned(V::Real(seconds_f64(t))),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Int(n) => ToSqlOutput::Owned(V::Integer(n)),
            Value::Double(f) => ToSqlOutput::Owned(V::Real(f)),
            Value::Addr(a) => ToSqlOutput::Owned(V::Blob(addr16(a).to_vec())),
            Value::Bool(b) => ToSqlOutput::Owned(V::Integer(i64::from(b))),
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// What the batch holds, in spool order.
enum Item {
    Packet(Box<Row>),
    Loss(LossRow),
    /// A packet row the database refused (and why), now to be stored as a loss.
    Refused(LossRow, String),
    /// A loss row the database refused: left out of the database.
    LeftOut {
        loss: LossRow,
        /// Its `reason` column.
        reason: String,
        /// The database's message.
        message: String,
        /// When it stood for a refused packet row: why that row was refused.
        packet: Option<String>,
    },
}

pub struct SqliteSink {
    conn: Connection,
    path: PathBuf,
    host: String,
    stream: String,
    payload: bool,
    retain: Option<Duration>,
    next_retain: Instant,
    batch: Vec<Item>,
    insert: String,
    /// Rows refused by the database since start.
    pub refused: Counts,
}

fn refused(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch | ErrorCode::TooBig)
    )
}

fn io_err(e: rusqlite::Error) -> io::Error {
    io::Error::other(e.to_string())
}

impl SqliteSink {
    /// Open (creating) the database and make sure its schema is this fwlog's.
    pub fn open(path: &Path, cfg: &SqlConfig) -> Result<SqliteSink, SqlError> {
        let what = format!("sqlite:{}", path.display());
        let db = |e: rusqlite::Error| SqlError::Db {
            target: what.clone(),
            message: e.to_string(),
        };
        // Packet logs are not for every local user: create the file 0640 (as the file outputs
        // are) before SQLite would create it 0644; SQLite gives its -wal and -shm files the
        // database's mode.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(SqlError::Db {
                    target: what,
                    message: e.to_string(),
                })
            }
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let mut conn = Connection::open_with_flags(path, flags).map_err(db)?;
        conn.busy_timeout(OPEN_BUSY_TIMEOUT).map_err(db)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(SqlError::Db {
                target: what,
                message: format!("cannot switch to WAL mode (journal_mode is {mode})"),
            });
        }
        let sync = if cfg.sync { "FULL" } else { "NORMAL" };
        conn.pragma_update(None, "synchronous", sync).map_err(db)?;
        sqlite_schema::ensure(&mut conn, &what)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        Ok(SqliteSink {
            conn,
            path: path.to_path_buf(),
            host: cfg.host.clone(),
            stream: cfg.stream.hex(),
            payload: cfg.payload,
            retain: cfg.retain,
            next_retain: Instant::now(),
            batch: Vec::new(),
            insert: insert_packet(),
            refused: Counts::default(),
        })
    }

    /// The database and the files SQLite keeps beside it, those that exist (handed to
    /// `--user` with it; an open WAL database has both).
    pub fn files(path: &Path) -> Vec<PathBuf> {
        let mut v = vec![path.to_path_buf()];
        for suffix in ["-wal", "-shm"] {
            let mut s = path.as_os_str().to_owned();
            s.push(suffix);
            v.push(PathBuf::from(s));
        }
        v.retain(|p| p.symlink_metadata().is_ok());
        v
    }

    /// Insert the batch in one transaction. A refused packet row is turned into a loss item, a
    /// refused loss row into a left-out one, so that a retry of the batch (its COMMIT failed,
    /// or a site's trigger rolled the whole transaction back) does not try them again; what
    /// was refused is read from the items once the batch committed. `None`: a trigger rolled
    /// the transaction back (`RAISE(ROLLBACK)`) and the batch is to be stored again at once;
    /// each such attempt has marked one more item, so this ends.
    fn insert_batch(&mut self) -> Result<Option<Refusals>, rusqlite::Error> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut ins = tx.prepare_cached(&self.insert)?;
            let mut loss = tx.prepare_cached(INSERT_LOSS)?;
            for item in &mut self.batch {
                let (l, reason) = match item {
                    Item::Packet(r) => {
                        let res = ins.execute(params_from_iter(r.values(&self.host, &self.stream)));
                        match res {
                            Ok(_) => continue,
                            Err(e) if refused(&e) => {
                                let msg = e.to_string();
                                let l = LossRow {
                                    seq: r.seq,
                                    time: r.time,
                                    nflog_group: Some(r.nflog_group),
                                    count: 1,
                                    reason: "refused",
                                    seq_global: r.seq_global.map(|g| (g, g)),
                                };
                                *item = Item::Refused(l, msg);
                                if tx.is_autocommit() {
                                    return Ok(None);
                                }
                                let Item::Refused(l, msg) = &*item else {
                                    continue;
                                };
                                (l.clone(), format!("refused: {}", escaped(msg.as_bytes())))
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    Item::Loss(l) => (l.clone(), l.reason.to_string()),
                    Item::Refused(l, m) => {
                        (l.clone(), format!("refused: {}", escaped(m.as_bytes())))
                    }
                    Item::LeftOut { .. } => continue,
                };
                let res = loss.execute(params![
                    l.time_f64(),
                    self.host,
                    self.stream,
                    l.seq as i64,
                    l.nflog_group,
                    l.count as i64,
                    reason,
                    l.seq_global.map(|g| g.0),
                    l.seq_global.map(|g| g.1),
                ]);
                match res {
                    Ok(_) => {}
                    Err(e) if refused(&e) => {
                        let packet = match item {
                            Item::Refused(_, m) => Some(m.clone()),
                            _ => None,
                        };
                        *item = Item::LeftOut {
                            loss: l,
                            reason,
                            message: e.to_string(),
                            packet,
                        };
                        if tx.is_autocommit() {
                            return Ok(None);
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        tx.commit()?;
        let mut out = Refusals::default();
        for item in &self.batch {
            match item {
                Item::Refused(l, m) => out.rows.push((l.seq, m.clone())),
                Item::LeftOut {
                    loss,
                    reason,
                    message,
                    packet,
                } => {
                    if let Some(m) = packet {
                        out.rows.push((loss.seq, m.clone()));
                    }
                    out.losses
                        .push((loss.clone(), reason.clone(), message.clone()));
                }
                _ => {}
            }
        }
        Ok(Some(out))
    }

    /// Delete one chunk of rows older than `--db-retain`, if it is time to look.
    fn retain(&mut self) {
        let Some(keep) = self.retain else { return };
        if Instant::now() < self.next_retain {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let cutoff = now.saturating_sub(keep).as_secs_f64();
        let mut more = false;
        for table in ["packets", "losses"] {
            let sql = format!(
                "DELETE FROM {table} WHERE rowid IN \
                 (SELECT rowid FROM {table} WHERE time < ?1 LIMIT {RETAIN_CHUNK})"
            );
            match self.conn.execute(&sql, [cutoff]) {
                Ok(n) => more |= n == RETAIN_CHUNK,
                Err(e) => eprintln!("fwlog: {}: --db-retain: {e}", self.describe()),
            }
        }
        self.next_retain = if more {
            Instant::now()
        } else {
            Instant::now() + RETAIN_EVERY
        };
    }
}

impl PacketSink for SqliteSink {
    fn packet(&mut self, p: &PacketView<'_>) {
        self.batch
            .push(Item::Packet(Box::new(Row::new(p, self.payload))));
    }

    fn loss(&mut self, ev: &LossEvent, seq: u64) {
        self.batch.push(Item::Loss(LossRow::new(ev, seq)));
    }

    fn pending(&self) -> usize {
        // An estimate in bytes, as the loop's batching thresholds count them.
        self.batch.len() * 128
    }

    fn commit(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let refusals = loop {
            if let Some(r) = self.insert_batch().map_err(io_err)? {
                break r;
            }
        };
        self.batch.clear();
        let shown = self.describe();
        refusals.report(&shown, &mut self.refused);
        self.retain();
        Ok(())
    }

    fn reopen(&mut self) -> io::Result<()> {
        // Nothing to reopen: a database is not rotated by renaming it.
        Ok(())
    }

    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    fn refused(&self) -> Counts {
        self.refused
    }
}
