//! Packet rows into PostgreSQL: the binary COPY of a whole batch, and the row-by-row path that
//! finds the rows the server refuses.
//!
//! Invariants:
//! - [`copy_rows`] and [`insert_each`] send the same 30 values per row ([`Values`]), in the
//!   order of [`COLUMNS`] and with the types of [`TYPES`]; a column added to one is added to
//!   both.
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
use tokio_postgres::Transaction;

use super::row::Row;

pub const COLUMNS: &str = "time, time_source, host, stream, seq, seq_global, nflog_group, family, \
    prefix, hook, mark, in_if, out_if, src, dst, src_name, dst_name, proto, sport, dport, \
    tcp_flags, icmp_type, icmp_code, length, ttl, uid, gid, replayed, partial, payload";

pub const TYPES: [Type; 30] = [
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
    Type::TEXT,
    Type::INET,
    Type::INET,
    Type::TEXT,
    Type::TEXT,
    Type::INT2,
    Type::INT4,
    Type::INT4,
    Type::INT2,
    Type::INT2,
    Type::INT2,
    Type::INT4,
    Type::INT2,
    Type::INT8,
    Type::INT8,
    Type::BOOL,
    Type::BOOL,
    Type::BYTEA,
];

/// A timestamp as seconds and nanoseconds since the epoch.
pub fn ts(t: (i64, u32)) -> SystemTime {
    if t.0 >= 0 {
        SystemTime::UNIX_EPOCH + Duration::new(t.0 as u64, t.1)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(t.0.unsigned_abs())
    }
}

/// One row's values converted to the column types (the numbers widened: PostgreSQL has no
/// unsigned types).
struct Values<'a> {
    r: &'a Row,
    host: &'a str,
    stream: &'a str,
    time: SystemTime,
    seq: i64,
    seq_global: Option<i64>,
    group: i32,
    family: i16,
    hook: Option<i16>,
    mark: i64,
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    proto: Option<i16>,
    sport: Option<i32>,
    dport: Option<i32>,
    tcp_flags: Option<i16>,
    icmp_type: Option<i16>,
    icmp_code: Option<i16>,
    length: Option<i32>,
    ttl: Option<i16>,
    uid: Option<i64>,
    gid: Option<i64>,
}

impl<'a> Values<'a> {
    fn new(r: &'a Row, host: &'a str, stream: &'a str) -> Values<'a> {
        let small = |v: Option<u8>| v.map(i16::from);
        Values {
            r,
            host,
            stream,
            time: ts(r.time),
            seq: r.seq as i64,
            seq_global: r.seq_global.map(i64::from),
            group: i32::from(r.nflog_group),
            family: i16::from(r.family),
            hook: small(r.hook),
            mark: i64::from(r.mark),
            src: r.src,
            dst: r.dst,
            proto: small(r.proto),
            sport: r.sport.map(i32::from),
            dport: r.dport.map(i32::from),
            tcp_flags: small(r.tcp_flags),
            icmp_type: small(r.icmp_type),
            icmp_code: small(r.icmp_code),
            // Lengths come from a 16-bit header field (or a 32-bit jumbo one): they fit.
            length: r.length.map(|l| i32::try_from(l).unwrap_or(i32::MAX)),
            ttl: small(r.ttl),
            uid: r.uid.map(i64::from),
            gid: r.gid.map(i64::from),
        }
    }

    fn refs(&self) -> [&(dyn ToSql + Sync); 30] {
        [
            &self.time,
            &self.r.time_source,
            &self.host,
            &self.stream,
            &self.seq,
            &self.seq_global,
            &self.group,
            &self.family,
            &self.r.prefix,
            &self.hook,
            &self.mark,
            &self.r.in_if,
            &self.r.out_if,
            &self.src,
            &self.dst,
            &self.r.src_name,
            &self.r.dst_name,
            &self.proto,
            &self.sport,
            &self.dport,
            &self.tcp_flags,
            &self.icmp_type,
            &self.icmp_code,
            &self.length,
            &self.ttl,
            &self.uid,
            &self.gid,
            &self.r.replayed,
            &self.r.partial,
            &self.r.payload,
        ]
    }
}

/// COPY `rows` into `table` (binary format).
pub async fn copy_rows<'r>(
    tx: &Transaction<'_>,
    table: &str,
    rows: impl Iterator<Item = &'r Row>,
    host: &str,
    stream: &str,
) -> Result<(), tokio_postgres::Error> {
    let sink = tx
        .copy_in(&format!(
            "COPY {table} ({COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let mut w = std::pin::pin!(BinaryCopyInWriter::new(sink, &TYPES));
    for r in rows {
        let v = Values::new(r, host, stream);
        w.as_mut().write(&v.refs()).await?;
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
    tx: &Transaction<'_>,
    rows: impl Iterator<Item = &'r Row>,
    host: &str,
    stream: &str,
) -> Result<Vec<(u64, String)>, tokio_postgres::Error> {
    let params: Vec<String> = (1..=TYPES.len()).map(|i| format!("${i}")).collect();
    let ins = tx
        .prepare_typed(
            &format!(
                "INSERT INTO packets ({COLUMNS}) VALUES ({}) ON CONFLICT DO NOTHING",
                params.join(", ")
            ),
            &TYPES,
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
