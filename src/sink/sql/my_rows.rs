//! Packet and loss rows into MariaDB/MySQL: multi-row prepared INSERTs, duplicates skipped,
//! and the rows the server refuses found one by one.
//!
//! Invariants:
//! - Rows go in with plain `INSERT` (it needs only the INSERT privilege, and unlike
//!   `INSERT IGNORE` it never turns a value the table cannot hold into a cut or a silently
//!   skipped row), in statements of at most [`CHUNK_SIZES`]`[0]` rows; the statement texts
//!   are few ([`chunks`]), so the connection's statement cache keeps them prepared.
//! - A statement that fails is undone by the server as a whole (InnoDB statement atomicity);
//!   the transaction goes on. A duplicate key (a batch replayed after a crash, or retried
//!   after a lost answer) makes the chunk drop the keys already stored (one SELECT) and go
//!   again. A refusal ([`refused`]: the row's content, a site's CHECK or trigger), or a
//!   duplicate of a key that is not fwlog's (a site's own unique index), makes the chunk's new
//!   rows go in one by one; each refused row is returned with the server's message. Anything
//!   else fails the batch as a whole, so a fault of the server never turns packets into
//!   losses.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Value};

use super::row::{addr16, column_list, Row, Value as Val, COLUMNS};

/// Rows per INSERT statement, largest first; a batch is cut greedily into these.
pub const CHUNK_SIZES: [usize; 5] = [512, 128, 32, 8, 1];

/// The chunk lengths of `n` rows.
pub fn chunks(mut n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    for size in CHUNK_SIZES {
        while n >= size {
            out.push(size);
            n -= size;
        }
    }
    out
}

/// A value for the server.
pub fn value(v: Val<'_>) -> Value {
    match v {
        Val::Null => Value::NULL,
        Val::Time((sec, nsec)) => match chrono::DateTime::from_timestamp(sec, nsec) {
            Some(t) => {
                use chrono::{Datelike, Timelike};
                Value::Date(
                    u16::try_from(t.year()).unwrap_or(0),
                    t.month() as u8,
                    t.day() as u8,
                    t.hour() as u8,
                    t.minute() as u8,
                    t.second() as u8,
                    nsec / 1000 % 1_000_000,
                )
            }
            // Out of any date's range: NULL, which the NOT NULL column refuses (a loss row).
            None => Value::NULL,
        },
        Val::Text(s) => Value::Bytes(s.as_bytes().to_vec()),
        Val::Int(i) => Value::Int(i),
        Val::Double(f) => Value::Double(f),
        Val::Bool(b) => Value::Int(i64::from(b)),
        Val::Addr(a) => Value::Bytes(addr16(a).to_vec()),
        Val::Bytes(b) => Value::Bytes(b.to_vec()),
    }
}

/// The INSERT statement of `rows` rows.
fn insert_sql(rows: usize) -> String {
    let one = format!("({})", vec!["?"; COLUMNS.len()].join(","));
    format!(
        "INSERT INTO packets ({}) VALUES {}",
        column_list(),
        vec![one.as_str(); rows].join(",")
    )
}

fn params<'r>(rows: impl Iterator<Item = &'r Row>, host: &str, stream: &str) -> Params {
    let mut v = Vec::new();
    for r in rows {
        v.extend(r.values(host, stream).into_iter().map(value));
    }
    Params::Positional(v)
}

/// Whether the server refused a row's content, as opposed to failing: a data exception (class
/// 22), an integrity constraint other than a duplicate key (class 23: CHECK, NOT NULL, foreign
/// key), an error a site's trigger signalled (class 45), or a value strict mode refused.
pub fn refused(e: &mysql_async::Error) -> bool {
    let mysql_async::Error::Server(s) = e else {
        return false;
    };
    if s.code == DUPLICATE {
        return false;
    }
    s.state.starts_with("22")
        || s.state.starts_with("23")
        || s.state.starts_with("45")
        || matches!(s.code, 1265 | 1292 | 1366 | 1406 | 1264 | 4025)
}

/// ER_DUP_ENTRY.
pub const DUPLICATE: u16 = 1062;

fn duplicate(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == DUPLICATE)
}

/// The spool sequence numbers among `rows` already stored for this host and stream.
async fn stored(
    c: &mut Conn,
    rows: &[&Row],
    host: &str,
    stream: &str,
) -> Result<Vec<u64>, mysql_async::Error> {
    let lo = rows.iter().map(|r| r.seq).min().unwrap_or(0);
    let hi = rows.iter().map(|r| r.seq).max().unwrap_or(0);
    c.exec(
        "SELECT seq FROM packets WHERE host = ? AND stream = ? AND seq BETWEEN ? AND ?",
        (host, stream, lo, hi),
    )
    .await
}

/// Insert `rows` (inside the caller's transaction); return the refused rows' spool sequence
/// numbers with the server's message.
pub async fn insert(
    c: &mut Conn,
    rows: &[&Row],
    host: &str,
    stream: &str,
) -> Result<Vec<(u64, String)>, mysql_async::Error> {
    let mut refusals = Vec::new();
    let mut at = 0;
    for n in chunks(rows.len()) {
        let chunk = &rows[at..at + n];
        at += n;
        insert_chunk(c, chunk, host, stream, &mut refusals).await?;
    }
    Ok(refusals)
}

async fn insert_chunk(
    c: &mut Conn,
    chunk: &[&Row],
    host: &str,
    stream: &str,
    refusals: &mut Vec<(u64, String)>,
) -> Result<(), mysql_async::Error> {
    let mut e = match c
        .exec_drop(
            insert_sql(chunk.len()),
            params(chunk.iter().copied(), host, stream),
        )
        .await
    {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let mut left: Vec<&Row> = chunk.to_vec();
    let mut deduped = false;
    if duplicate(&e) {
        drop_stored(c, &mut left, host, stream).await?;
        deduped = true;
        if left.is_empty() {
            return Ok(());
        }
        e = match c
            .exec_drop(
                insert_sql(left.len()),
                params(left.iter().copied(), host, stream),
            )
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
    }
    if !refused(&e) && !duplicate(&e) {
        return Err(e);
    }
    if !deduped {
        drop_stored(c, &mut left, host, stream).await?;
    }
    // Every key left is new: a duplicate now is a unique key of the site's own, a refusal.
    let one = insert_sql(1);
    for r in left {
        match c
            .exec_drop(one.as_str(), params(std::iter::once(r), host, stream))
            .await
        {
            Ok(()) => {}
            Err(e) if refused(&e) || duplicate(&e) => refusals.push((r.seq, server_message(&e))),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Drop from `rows` those whose key is already stored.
async fn drop_stored(
    c: &mut Conn,
    rows: &mut Vec<&Row>,
    host: &str,
    stream: &str,
) -> Result<(), mysql_async::Error> {
    let there: std::collections::HashSet<u64> =
        stored(c, rows, host, stream).await?.into_iter().collect();
    rows.retain(|r| !there.contains(&r.seq));
    Ok(())
}

/// The server's own message, or the error with its causes. Never the password: the driver's
/// messages do not carry it.
pub fn server_message(e: &mysql_async::Error) -> String {
    if let mysql_async::Error::Server(s) = e {
        return s.message.clone();
    }
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cause = c.source();
    }
    // The driver's I/O error says its kind twice ("Input/output error: Input/output error:
    // invalid peer certificate ...").
    const IO: &str = "Input/output error: ";
    while s.starts_with(&IO.repeat(2)) {
        s.drain(..IO.len());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_into_few_statement_sizes() {
        assert_eq!(chunks(0), Vec::<usize>::new());
        assert_eq!(chunks(1), vec![1]);
        assert_eq!(chunks(2048), vec![512; 4]);
        let c = chunks(700);
        assert_eq!(c.iter().sum::<usize>(), 700);
        assert_eq!(c, vec![512, 128, 32, 8, 8, 8, 1, 1, 1, 1]);
        assert!(CHUNK_SIZES[0] * COLUMNS.len() < usize::from(u16::MAX));
    }

    #[test]
    fn times_are_microseconds_utc() {
        assert_eq!(
            value(Val::Time((1_700_000_000, 123_456_789))),
            Value::Date(2023, 11, 14, 22, 13, 20, 123_456)
        );
        assert_eq!(value(Val::Time((i64::MAX, 0))), Value::NULL);
        assert_eq!(value(Val::Bool(true)), Value::Int(1));
    }
}
