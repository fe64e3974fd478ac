//! The MariaDB/MySQL schema: built from the one column list ([`row::COLUMNS`](super::row)),
//! versioned, and upgraded in place.
//!
//! Invariants:
//! - `schema_version` holds one row. A database without it gets the whole schema; one with a
//!   version newer than [`VERSION`] is refused before anything is written; an older one is
//!   upgraded by adding the columns of the list it lacks, nullable (so old rows stay valid),
//!   then its version is set.
//! - MariaDB's DDL is not transactional: the tables are created first (`IF NOT EXISTS`) and
//!   `schema_version` last, so an interrupted creation is finished by the next attempt. A
//!   `packets` table without `schema_version` is taken as such an interruption only when it
//!   has every column of the list; anything else is not fwlog's and is refused.
//! - Many hosts may start at once: creation and upgrade run under `GET_LOCK('fwlog_schema')`.
//! - Types: `time` is DATETIME(6) in UTC (the session's time zone is set to UTC); `src` and
//!   `dst` VARBINARY(16), IPv4 mapped into IPv6, which sorts and range-queries in address order
//!   (`INET6_ATON('::ffff:10.0.0.0')`); `host`, `stream` and `time_source` ASCII VARCHARs
//!   compared byte for byte, so the unique key (host, stream, seq) never folds case; other
//!   text utf8mb4 TEXT with a binary collation; integers as wide as PostgreSQL's.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::row::{Column, Kind, COLUMNS};

/// The schema version this fwlog writes.
pub const VERSION: i64 = 1;

/// The session settings every connection starts with: UTC, and strict mode, so a value the
/// table cannot hold is refused (and becomes a `losses` row) instead of being cut silently.
pub const SESSION: &str = "SET time_zone = '+00:00', \
    sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,\
    NO_ENGINE_SUBSTITUTION'";

/// A column's SQL type. The key's text columns are short ASCII words; other text is any
/// escaped text.
fn sql_type(c: &Column) -> String {
    let t = match (c.kind, c.name) {
        (Kind::Text, "host") => "VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin",
        (Kind::Text, "stream") => "VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin",
        (Kind::Text, "time_source") => "VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin",
        (Kind::Text, _) => "TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        (Kind::Time, _) => "DATETIME(6)",
        (Kind::Small, _) => "SMALLINT",
        (Kind::Int, _) => "INT",
        (Kind::Big, _) => "BIGINT",
        (Kind::Double, _) => "DOUBLE",
        (Kind::Bool, _) => "BOOLEAN",
        (Kind::Addr, _) => "VARBINARY(16)",
        (Kind::Bytes, _) => "MEDIUMBLOB",
    };
    if c.not_null {
        format!("{t} NOT NULL")
    } else {
        t.to_string()
    }
}

/// The statements that create the schema, in order (`schema_version` last).
pub fn create() -> Vec<String> {
    let cols: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("`{}` {}", c.name, sql_type(c)))
        .collect();
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS packets ({},
             PRIMARY KEY (host, stream, seq),
             KEY packets_time (time),
             KEY packets_src_time (src, time),
             KEY packets_dport_time (dport, time)
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 ROW_FORMAT=DYNAMIC",
            cols.join(", ")
        ),
        "CREATE TABLE IF NOT EXISTS losses (
            time DATETIME(6) NOT NULL,
            host VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
            stream VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
            seq BIGINT UNSIGNED NOT NULL,
            nflog_group SMALLINT UNSIGNED,
            count BIGINT UNSIGNED NOT NULL,
            reason TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            seq_global_first INT UNSIGNED,
            seq_global_last INT UNSIGNED,
            PRIMARY KEY (host, stream, seq),
            KEY losses_time (time)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            .to_string(),
        "CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL) ENGINE=InnoDB"
            .to_string(),
    ]
}

fn msg(e: mysql_async::Error) -> String {
    super::my_rows::server_message(&e)
}

/// The columns `table` has in the current database.
async fn table_columns(c: &mut Conn, table: &str) -> Result<Vec<String>, String> {
    c.exec(
        "SELECT column_name FROM information_schema.columns \
         WHERE table_schema = DATABASE() AND table_name = ?",
        (table,),
    )
    .await
    .map_err(msg)
}

/// Create or upgrade the schema; refuse a newer one or a foreign `packets` table.
pub async fn ensure(c: &mut Conn) -> Result<(), String> {
    let got: Option<i64> = c
        .query_first("SELECT GET_LOCK('fwlog_schema', 30)")
        .await
        .map_err(msg)?;
    if got != Some(1) {
        return Err("another fwlog holds the schema lock (GET_LOCK) for 30 s".into());
    }
    let r = ensure_locked(c).await;
    let _ = c.query_drop("SELECT RELEASE_LOCK('fwlog_schema')").await;
    r
}

async fn ensure_locked(c: &mut Conn) -> Result<(), String> {
    let has_version = !table_columns(c, "schema_version").await?.is_empty();
    if has_version {
        let v: Option<Option<i64>> = c
            .query_first("SELECT MAX(version) FROM schema_version")
            .await
            .map_err(msg)?;
        let v = v.flatten().unwrap_or(0);
        if v > VERSION {
            return Err(format!(
                "schema version {v} is newer than this fwlog knows ({VERSION}); refusing to \
                 write (upgrade fwlog)"
            ));
        }
        if v == VERSION {
            return Ok(());
        }
        return upgrade(c).await;
    }
    let have = table_columns(c, "packets").await?;
    if !have.is_empty()
        && COLUMNS
            .iter()
            .any(|col| !have.iter().any(|h| h == col.name))
    {
        return Err(
            "has a packets table but no schema_version: not fwlog's; refusing to write into it"
                .into(),
        );
    }
    for sql in create() {
        c.query_drop(sql).await.map_err(msg)?;
    }
    set_version(c).await
}

/// Add the columns this version has and the table lacks, then record the version.
async fn upgrade(c: &mut Conn) -> Result<(), String> {
    let have = table_columns(c, "packets").await?;
    for col in COLUMNS
        .iter()
        .filter(|col| !have.iter().any(|h| h == col.name))
    {
        let mut add = *col;
        add.not_null = false;
        c.query_drop(format!(
            "ALTER TABLE packets ADD COLUMN `{}` {}",
            col.name,
            sql_type(&add)
        ))
        .await
        .map_err(msg)?;
    }
    set_version(c).await
}

async fn set_version(c: &mut Conn) -> Result<(), String> {
    c.query_drop("DELETE FROM schema_version")
        .await
        .map_err(msg)?;
    c.exec_drop(
        "INSERT INTO schema_version (version) VALUES (?)",
        (VERSION,),
    )
    .await
    .map_err(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packets_table_has_every_column_with_its_type() {
        let sql = &create()[0];
        for c in COLUMNS {
            assert!(sql.contains(&format!("`{}` ", c.name)), "{}", c.name);
        }
        assert!(sql.contains("`src` VARBINARY(16),"));
        assert!(sql.contains("`time` DATETIME(6) NOT NULL"));
        assert!(sql.contains("`host` VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL"));
        assert!(sql.contains("`src_lat` DOUBLE,"));
        assert!(sql.contains("PRIMARY KEY (host, stream, seq)"));
        assert!(create()[2].contains("schema_version"));
    }
}
