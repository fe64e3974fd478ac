//! Packet rows into PostgreSQL: the binary COPY of a whole batch, and the row-by-row path that
//! finds the rows the server refuses.
//!
//! Invariants:
//! - [`copy_rows`] and [`insert_each`] send the same values per row ([`Values`]), in the order
//!   of [`COLUMNS`] (row.rs, the one column list) and with the types of [`TYPES`].
//! - A refusal ([`refused`]) is an error the server raises for one row's content: a data
//!   exception (class 22), an integrity constraint other than a unique key (class 23: a site's
//!   CHECK, NOT NULL or foreign key) or an exception a site's trigger raised (class P0).
//!   Everything else (connection, permission, disk full, a server shutting down) is not a
//!   refusal: the batch fails as a whole and is retried, so a fault of the server never turns
//!   packets into losses.
//! - [`insert_each`] runs inside the caller's transaction: every row in a savepoint of its own,
//!   `ON CONFLICT DO NOTHING` on the unique key, a refused row rolled back to its savepoint and
//!   returned with the server's message; the rows before and after it stay.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

use std::sync::LazyLock;

use super::row::{column_list, Kind, Row, Value, COLUMNS, NCOLS};

/// The PostgreSQL type of a column kind (PostgreSQL has no unsigned types: each kind is wide
/// enough for the unsigned values it holds).
pub fn pg_type(k: Kind) -> Type {
    match k {
        Kind::Time => Type::TIMESTAMPTZ,
        Kind::Text => Type::TEXT,
        Kind::Small => Type::INT2,
        Kind::Int => Type::INT4,
        Kind::Big => Type::INT8,
        Kind::Addr => Type::INET,
        Kind::Bool => Type::BOOL,
        Kind::Double => Type::FLOAT8,
        Kind::Bytes => Type::BYTEA,
    }
}

/// The types of [`COLUMNS`], in order (COPY and the prepared INSERT take them).
pub static TYPES: LazyLock<[Type; NCOLS]> = LazyLock::new(|| COLUMNS.map(|c| pg_type(c.kind)));

/// The column names of `packets`, joined.
pub static COLUMN_LIST: LazyLock<String> = LazyLock::new(column_list);

/// A timestamp as seconds and nanoseconds since the epoch.
pub fn ts(t: (i64, u32)) -> SystemTime {
    if t.0 >= 0 {
        SystemTime::UNIX_EPOCH + Duration::new(t.0 as u64, t.1)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(t.0.unsigned_abs())
    }
}

/// One value converted to its column's type, as `ToSql` takes it.
enum PgValue<'a> {
    Null(Kind),
    Time(SystemTime),
    Text(&'a str),
    I16(i16),
    I32(i32),
    I64(i64),
    F64(f64),
    Inet(IpAddr),
    Bool(bool),
    Bytes(&'a [u8]),
}

impl<'a> PgValue<'a> {
    /// Integers are narrowed to their column's width, saturating: the row's values come from
    /// fields that fit (a byte in a smallint, a port in an integer).
    fn new(v: Value<'a>, kind: Kind) -> PgValue<'a> {
        let sat = |n: i64, lo: i64, hi: i64| n.clamp(lo, hi);
        match v {
            Value::Null => PgValue::Null(kind),
            Value::Time(t) => PgValue::Time(ts(t)),
            Value::Text(s) => PgValue::Text(s),
            Value::Int(n) => match kind {
                Kind::Small => PgValue::I16(sat(n, i16::MIN.into(), i16::MAX.into()) as i16),
                Kind::Int => PgValue::I32(sat(n, i32::MIN.into(), i32::MAX.into()) as i32),
                _ => PgValue::I64(n),
            },
            Value::Double(f) => PgValue::F64(f),
            Value::Addr(a) => PgValue::Inet(a),
            Value::Bool(b) => PgValue::Bool(b),
            Value::Bytes(b) => PgValue::Bytes(b),
        }
    }

    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            PgValue::Null(k) => match k {
                Kind::Time => &None::<SystemTime>,
                Kind::Text => &None::<&str>,
                Kind::Small => &None::<i16>,
                Kind::Int => &None::<i32>,
                Kind::Big => &None::<i64>,
                Kind::Addr => &None::<IpAddr>,
                Kind::Bool => &None::<bool>,
                Kind::Double => &None::<f64>,
                Kind::Bytes => &None::<&[u8]>,
            },
            PgValue::Time(v) => v,
            PgValue::Text(v) => v,
            PgValue::I16(v) => v,
            PgValue::I32(v) => v,
            PgValue::I64(v) => v,
            PgValue::F64(v) => v,
            PgValue::Inet(v) => v,
            PgValue::Bool(v) => v,
            PgValue::Bytes(v) => v,
        }
    }
}

/// A row's values for PostgreSQL, in [`COLUMNS`] order.
struct Values<'a>([PgValue<'a>; NCOLS]);

impl<'a> Values<'a> {
    fn new(r: &'a Row, host: &'a str, stream: &'a str) -> Values<'a> {
        let v = r.values(host, stream);
        let mut i = 0;
        Values(v.map(|v| {
            let p = PgValue::new(v, COLUMNS[i].kind);
            i += 1;
            p
        }))
    }

    fn refs(&self) -> [&(dyn ToSql + Sync); NCOLS] {
        std::array::from_fn(|i| self.0[i].as_sql())
    }
}

/// A set of [`COLUMNS`]: bit `i` stands for `COLUMNS[i]`.
pub type Cols = u64;

const _: () = assert!(NCOLS <= Cols::BITS as usize, "a column set is a bit mask");

/// The columns `r` has a value in (not NULL).
pub fn used(r: &Row) -> Cols {
    let mut m = 0;
    for (i, v) in r.values("", "").iter().enumerate() {
        if !matches!(v, Value::Null) {
            m |= 1 << i;
        }
    }
    m
}

/// The types of the columns in `cols`, in [`COLUMNS`] order.
pub fn types_of(cols: Cols) -> Vec<Type> {
    (0..NCOLS)
        .filter(|i| cols & (1 << i) != 0)
        .map(|i| TYPES[i].clone())
        .collect()
}

/// The statement that COPYs the columns in `cols` into `packets` (binary format): the server
/// reads and converts every field a COPY names, NULL or not, so leaving out the columns no row
/// has a value in (those of `--geoip`, `--db-payload`, names, ICMP fields) saves it that work.
pub fn copy_cols_sql(cols: Cols) -> String {
    let names: Vec<&str> = (0..NCOLS)
        .filter(|i| cols & (1 << i) != 0)
        .map(|i| COLUMNS[i].name)
        .collect();
    format!(
        "COPY packets ({}) FROM STDIN (FORMAT binary)",
        names.join(", ")
    )
}

/// Encode one row's columns in `cols` into a binary COPY of those columns; `Ok(false)`, and
/// nothing written, when the row has a value in a column outside `cols`.
pub async fn write_cols(
    w: std::pin::Pin<&mut BinaryCopyInWriter>,
    r: &Row,
    host: &str,
    stream: &str,
    cols: Cols,
) -> Result<bool, tokio_postgres::Error> {
    let v = Values::new(r, host, stream);
    let all = v.refs();
    let mut picked = all;
    let mut n = 0;
    for (i, val) in v.0.iter().enumerate() {
        if cols & (1 << i) != 0 {
            picked[n] = all[i];
            n += 1;
        } else if !matches!(val, PgValue::Null(_)) {
            return Ok(false);
        }
    }
    w.write(&picked[..n]).await?;
    Ok(true)
}

/// The statement that COPYs rows into `table` (binary format).
pub fn copy_sql(table: &str) -> String {
    format!("COPY {table} ({}) FROM STDIN (FORMAT binary)", *COLUMN_LIST)
}

/// Encode one row into a binary COPY (sent to the server as the writer's buffer fills).
pub async fn write_row(
    w: std::pin::Pin<&mut BinaryCopyInWriter>,
    r: &Row,
    host: &str,
    stream: &str,
) -> Result<(), tokio_postgres::Error> {
    let v = Values::new(r, host, stream);
    w.write(&v.refs()).await
}

/// COPY `rows` into `table` (binary format), inside the caller's transaction.
pub async fn copy_rows<'r>(
    c: &Client,
    table: &str,
    rows: impl Iterator<Item = &'r Row>,
    host: &str,
    stream: &str,
) -> Result<(), tokio_postgres::Error> {
    let sink = c.copy_in(&copy_sql(table)).await?;
    let mut w = std::pin::pin!(BinaryCopyInWriter::new(sink, &TYPES[..]));
    for r in rows {
        write_row(w.as_mut(), r, host, stream).await?;
    }
    w.as_mut().finish().await?;
    Ok(())
}

/// Whether the server refused one row's content (see the module docs), as opposed to failing.
pub fn refused(e: &tokio_postgres::Error) -> bool {
    let Some(code) = e.code() else { return false };
    if *code == SqlState::UNIQUE_VIOLATION {
        return false;
    }
    let c = code.code();
    c.starts_with("22") || c.starts_with("23") || c.starts_with("P0")
}

/// Insert `rows` one by one, each in its own savepoint; return the spool sequence numbers of
/// the rows the server refused, with its message. Any error that is not a refusal is returned.
pub async fn insert_each<'r>(
    tx: &Client,
    rows: impl Iterator<Item = &'r Row>,
    host: &str,
    stream: &str,
) -> Result<Vec<(u64, String)>, tokio_postgres::Error> {
    let params: Vec<String> = (1..=TYPES.len()).map(|i| format!("${i}")).collect();
    let ins = tx
        .prepare_typed(
            &format!(
                "INSERT INTO packets ({}) VALUES ({}) ON CONFLICT DO NOTHING",
                *COLUMN_LIST,
                params.join(", ")
            ),
            &TYPES[..],
        )
        .await?;
    let mut refusals = Vec::new();
    for r in rows {
        tx.batch_execute("SAVEPOINT fwlog_row").await?;
        let v = Values::new(r, host, stream);
        match tx.execute(&ins, &v.refs()).await {
            Ok(_) => tx.batch_execute("RELEASE SAVEPOINT fwlog_row").await?,
            Err(e) if refused(&e) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT fwlog_row").await?;
                refusals.push((r.seq, server_message(&e)));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(refusals)
}

/// The server's own message (tokio-postgres's Display says only "db error"), or the error
/// with its causes (its Display leaves out why a TLS handshake or a connection failed).
pub fn server_message(e: &tokio_postgres::Error) -> String {
    if let Some(d) = e.as_db_error() {
        return d.message().to_string();
    }
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !s.contains(&c_text) {
            s.push_str(": ");
            s.push_str(&c_text);
        }
        cause = c.source();
    }
    s
}
