//! The SQLite schema, its version, and the upgrade path.
//!
//! `schema_version` holds one row. [`MIGRATIONS`]`[n]` takes a database from version `n` to
//! `n + 1`; a new database runs them all. They run in one IMMEDIATE transaction with the
//! version update, so an upgrade happens whole or not at all and keeps every row. A database
//! whose version is newer than [`VERSION`] is refused before anything is written.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::row::{Kind, COLUMNS};
use super::SqlError;

/// The schema version this fwlog writes.
pub const VERSION: i64 = 2;

/// One byte of a 16-byte address column as a number (SQLite has no blob-to-integer function).
fn byte(col: &str, i: usize) -> String {
    let h = |k: usize| format!("instr('0123456789ABCDEF', substr(hex({col}), {k}, 1)) - 1");
    format!("(({}) * 16 + {})", h(2 * i - 1), h(2 * i))
}

/// A 16-byte address column as text: dotted quad for IPv4-mapped, eight groups for IPv6.
fn addr_text(col: &str) -> String {
    let v4 = (13..=16)
        .map(|i| byte(col, i))
        .collect::<Vec<_>>()
        .join(" || '.' || ");
    let v6 = (0..8)
        .map(|g| format!("lower(substr(hex({col}), {}, 4))", 4 * g + 1))
        .collect::<Vec<_>>()
        .join(" || ':' || ");
    format!(
        "CASE WHEN {col} IS NULL THEN NULL \
         WHEN substr({col}, 1, 12) = x'00000000000000000000ffff' THEN {v4} ELSE {v6} END"
    )
}

/// Version 0 -> 1: the tables, indexes and the readable view. Kept as version 1 made them:
/// later versions change them by migrations, so old and new databases end up the same.
fn v1() -> String {
    format!(
        "CREATE TABLE packets (
            time REAL NOT NULL,
            time_source TEXT NOT NULL,
            host TEXT NOT NULL,
            stream TEXT NOT NULL,
            seq INTEGER NOT NULL,
            seq_global INTEGER,
            nflog_group INTEGER NOT NULL,
            family INTEGER NOT NULL,
            prefix TEXT,
            hook INTEGER,
            mark INTEGER NOT NULL,
            in_if TEXT,
            out_if TEXT,
            src BLOB,
            dst BLOB,
            src_name TEXT,
            dst_name TEXT,
            proto INTEGER,
            sport INTEGER,
            dport INTEGER,
            tcp_flags INTEGER,
            icmp_type INTEGER,
            icmp_code INTEGER,
            length INTEGER,
            ttl INTEGER,
            uid INTEGER,
            gid INTEGER,
            replayed INTEGER NOT NULL,
            partial INTEGER NOT NULL,
            payload BLOB
        );
        CREATE UNIQUE INDEX packets_key ON packets (host, stream, seq);
        CREATE INDEX packets_time ON packets (time);
        CREATE INDEX packets_src_time ON packets (src, time);
        CREATE INDEX packets_dport_time ON packets (dport, time);
        CREATE TABLE losses (
            time REAL NOT NULL,
            host TEXT NOT NULL,
            stream TEXT NOT NULL,
            seq INTEGER NOT NULL,
            nflog_group INTEGER,
            count INTEGER NOT NULL,
            reason TEXT NOT NULL,
            seq_global_first INTEGER,
            seq_global_last INTEGER
        );
        CREATE UNIQUE INDEX losses_key ON losses (host, stream, seq);
        CREATE INDEX losses_time ON losses (time);
        CREATE VIEW packets_text AS SELECT
            strftime('%Y-%m-%d %H:%M:%f', time, 'unixepoch') AS time_utc,
            host, stream, seq, seq_global, nflog_group, prefix, hook, mark, in_if, out_if,
            {src} AS src, {dst} AS dst, src_name, dst_name, proto, sport, dport, tcp_flags,
            icmp_type, icmp_code, length, ttl, uid, gid, replayed, partial
            FROM packets;",
        src = addr_text("src"),
        dst = addr_text("dst"),
    )
}

/// The SQLite type of a column kind.
pub fn sql_type(k: Kind) -> &'static str {
    match k {
        Kind::Time | Kind::Double => "REAL",
        Kind::Text => "TEXT",
        Kind::Small | Kind::Int | Kind::Big | Kind::Bool => "INTEGER",
        Kind::Addr | Kind::Bytes => "BLOB",
    }
}

/// Version 1 -> 2: the geo columns (NULL in the rows already there), and the view with them.
/// `ADD COLUMN` of a nullable column without a default rewrites nothing: the upgrade of a
/// large database is instant.
fn v2() -> String {
    let mut sql = String::new();
    for c in COLUMNS.iter().filter(|c| c.geo) {
        sql.push_str(&format!(
            "ALTER TABLE packets ADD COLUMN {} {};\n",
            c.name,
            sql_type(c.kind)
        ));
    }
    let geo: Vec<&str> = COLUMNS.iter().filter(|c| c.geo).map(|c| c.name).collect();
    sql.push_str(&format!(
        "DROP VIEW packets_text;
        CREATE VIEW packets_text AS SELECT
            strftime('%Y-%m-%d %H:%M:%f', time, 'unixepoch') AS time_utc,
            host, stream, seq, seq_global, nflog_group, prefix, hook, mark, in_if, out_if,
            {src} AS src, {dst} AS dst, src_name, dst_name, proto, sport, dport, tcp_flags,
            icmp_type, icmp_code, length, ttl, uid, gid, replayed, partial, {geo}
            FROM packets;",
        src = addr_text("src"),
        dst = addr_text("dst"),
        geo = geo.join(", "),
    ));
    sql
}

/// `MIGRATIONS[n]` upgrades version `n` to `n + 1`.
const MIGRATIONS: &[fn() -> String] = &[v1, v2];

/// Create or upgrade the schema; refuse a newer one. `what` names the database in errors.
pub fn ensure(conn: &mut Connection, what: &str) -> Result<(), SqlError> {
    let db = |e: rusqlite::Error| SqlError::Db {
        target: what.to_string(),
        message: e.to_string(),
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let has_table: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(db)?;
    let current: i64 = if has_table.is_some() {
        tx.query_row("SELECT max(version) FROM schema_version", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .map_err(db)?
        .unwrap_or(0)
    } else {
        let other: i64 = tx
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('packets', 'losses')",
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        if other > 0 {
            return Err(SqlError::Schema {
                target: what.to_string(),
                message: "has a packets or losses table but no schema_version: not fwlog's; \
                          refusing to write into it"
                    .into(),
            });
        }
        tx.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            .map_err(db)?;
        0
    };
    if current > VERSION {
        return Err(SqlError::Schema {
            target: what.to_string(),
            message: format!(
                "schema version {current} is newer than this fwlog knows ({VERSION}); \
                 refusing to write (upgrade fwlog)"
            ),
        });
    }
    if current == VERSION {
        return Ok(());
    }
    for m in &MIGRATIONS[current as usize..] {
        tx.execute_batch(&m()).map_err(db)?;
    }
    tx.execute("DELETE FROM schema_version", []).map_err(db)?;
    tx.execute(
        "INSERT INTO schema_version (version) VALUES (?1)",
        [VERSION],
    )
    .map_err(db)?;
    tx.commit().map_err(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_prints_addresses() {
        let mut c = Connection::open_in_memory().unwrap();
        ensure(&mut c, "mem").unwrap();
        ensure(&mut c, "mem").unwrap();
        c.execute(
            "INSERT INTO packets (time, time_source, host, stream, seq, nflog_group, family,
             mark, src, dst, replayed, partial) VALUES (0.5, 'kernel', 'h', 's', 1, 0, 2, 0,
             x'00000000000000000000ffff0a00ff01', x'20010db8000000000000000000000001', 0, 0)",
            [],
        )
        .unwrap();
        let (t, s, d): (String, String, String) = c
            .query_row("SELECT time_utc, src, dst FROM packets_text", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(t, "1970-01-01 00:00:00.500");
        assert_eq!(s, "10.0.255.1");
        assert_eq!(d, "2001:0db8:0000:0000:0000:0000:0000:0001");
    }

    #[test]
    fn the_table_has_the_column_list_and_version_1_upgrades_keeping_its_rows() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(&v1()).unwrap();
        c.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version VALUES (1);
             INSERT INTO packets (time, time_source, host, stream, seq, nflog_group, family,
             mark, replayed, partial) VALUES (1.5, 'kernel', 'h', 's', 1, 0, 2, 0, 0, 0);",
        )
        .unwrap();
        ensure(&mut c, "mem").unwrap();
        let cols: Vec<(String, String)> = c
            .prepare("SELECT name, type FROM pragma_table_info('packets')")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let want: Vec<(String, String)> = COLUMNS
            .iter()
            .map(|c| (c.name.to_string(), sql_type(c.kind).to_string()))
            .collect();
        assert_eq!(cols, want);
        let (n, cc, v): (i64, Option<String>, i64) = c
            .query_row(
                "SELECT count(*), max(src_country), (SELECT version FROM schema_version)
                 FROM packets_text",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((n, cc, v), (1, None, VERSION));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut c = Connection::open_in_memory().unwrap();
        ensure(&mut c, "mem").unwrap();
        c.execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
        let e = ensure(&mut c, "mem").unwrap_err().to_string();
        assert!(e.contains("schema version 99 is newer"), "{e}");
    }

    #[test]
    fn a_foreign_packets_table_is_refused() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE packets (x)").unwrap();
        assert!(ensure(&mut c, "mem").is_err());
    }
}
