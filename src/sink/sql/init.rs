//! `fwlog db init URL`: create or upgrade a database's schema, run by a role that owns it, so
//! that `fwlog run` can then write with a role that may only INSERT and SELECT.
//!
//! Invariants:
//! - It does what an output's first use does (create the schema, or check its version; SQLite
//!   also upgrades in place), and nothing else writes a row: it is safe to run again at any
//!   time, and running it daily (a systemd timer) is how PostgreSQL's partitions stay ahead.
//! - PostgreSQL: besides the schema, the DEFAULT partition `packets_default`, and the daily
//!   partitions of today and `days_ahead` days after; rows that fell into the DEFAULT
//!   partition (a day whose partition did not exist) move into their day's partition.
//! - A target that is not a database is a usage error; any database error is one line.

use super::{SqlConfig, SqlError, StreamId};
use crate::sink::Target;

/// What `fwlog db init` does, as plain values.
#[derive(Clone, Debug)]
pub struct InitConfig {
    /// `sqlite:PATH`, `postgresql://...` or `mysql://...`, as for `--output`.
    pub target: Target,
    /// PostgreSQL: make the partitions of this many days after today.
    pub days_ahead: u32,
}

/// Longest `--days-ahead`.
pub const MAX_DAYS_AHEAD: u32 = 366;

/// Create or upgrade the schema; return what was done, as one line.
pub fn init(cfg: &InitConfig) -> Result<String, SqlError> {
    match &cfg.target {
        Target::Sqlite(path) => {
            let sql = SqlConfig {
                host: "init".into(),
                stream: StreamId::random()?,
                payload: false,
                retain: None,
                sync: true,
            };
            super::sqlite::SqliteSink::open(path, &sql)?;
            Ok(format!(
                "sqlite:{}: schema version {} ready",
                path.display(),
                super::sqlite_schema::VERSION
            ))
        }
        Target::Postgres(url) => pg(url, cfg.days_ahead),
        Target::MySql(url) => mysql(url),
        _ => Err(SqlError::Db {
            target: "db init".into(),
            message: "not a database (use sqlite:PATH, postgresql://... or mysql://...)".into(),
        }),
    }
}

fn mysql(url: &str) -> Result<String, SqlError> {
    let (opts, shown) = super::my::config(url).map_err(|message| SqlError::Db {
        target: "mysql".into(),
        message,
    })?;
    let err = |message: String| SqlError::Db {
        target: shown.clone(),
        message,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| err(format!("cannot start a runtime: {e}")))?;
    rt.block_on(async {
        let mut c = super::my::connect(&opts).await.map_err(err)?;
        super::my_schema::ensure(&mut c).await.map_err(err)?;
        let _ = c.disconnect().await;
        Ok(format!(
            "{shown}: schema version {} ready",
            super::my_schema::VERSION
        ))
    })
}

fn pg(url: &str, ahead: u32) -> Result<String, SqlError> {
    let (pg, tls) = super::pg::config(url)?;
    let shown = super::pg::shown(&pg);
    let err = |message: String| SqlError::Db {
        target: shown.clone(),
        message,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| err(format!("cannot start a runtime: {e}")))?;
    rt.block_on(async {
        let mut c = super::pg::connect(&pg, tls.as_ref()).await.map_err(err)?;
        super::pg::ensure_schema(&mut c).await.map_err(err)?;
        let (made, moved) = super::pg_parts::init(&mut c, i64::from(ahead))
            .await
            .map_err(|e| err(super::pg_rows::server_message(&e)))?;
        Ok(format!(
            "{shown}: schema version {} ready; partitions through {} days ahead ({made} made), \
             {} ({moved} rows moved out of it)",
            super::pg::VERSION,
            ahead,
            super::pg_parts::DEFAULT
        ))
    })
}
