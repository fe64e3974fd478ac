//! Database outputs: every packet as a row, exactly once.
//!
//! Each output is a [`PacketSink`](super::PacketSink): rows are built once per packet
//! ([`row::Row`]) as the processing loop hands packets over, and `commit` stores the batch in
//! one database transaction. The spool is acknowledged only after that transaction committed.
//!
//! Exactly once: every row carries `host` (the host name, or `--host-name`), `stream` (the
//! spool's random id, [`stream`]) and `seq` (the spool sequence number) under a unique key, and
//! every insert ignores a row whose key is already there. A crash between the database's
//! COMMIT and the spool's acknowledgement replays the batch at the next start; the database
//! ignores what it has. Loss events go into the `losses` table in the same transactions, keyed
//! the same way (the spool sequence number of the loss record).
//!
//! Engines: SQLite ([`sqlite`]), PostgreSQL ([`pg`]), MariaDB/MySQL ([`my`]). The schema is in fwlog-sql(5).

pub mod init;
pub mod my;
pub mod my_rows;
pub mod my_schema;
mod my_tls;
pub mod pg;
mod pg_losses;
mod pg_parts;
mod pg_rows;
mod pg_tls;
pub mod pgpass;
pub mod refusal;
pub mod remote;
pub mod row;
pub mod sqlite;
mod sqlite_schema;
pub mod stream;

use std::time::Duration;

pub use stream::StreamId;

/// What every database output needs besides its target. Plain values: the command line or a
/// configuration file fills them in.
#[derive(Clone, Debug)]
pub struct SqlConfig {
    /// The `host` column.
    pub host: String,
    /// The `stream` column: the spool's id (`fwlog run`, `fwlog replay`) or a random one per
    /// run (`fwlog read`).
    pub stream: StreamId,
    /// Store the packet's bytes (`--db-payload`).
    pub payload: bool,
    /// Delete rows older than this (`--db-retain`).
    pub retain: Option<Duration>,
    /// Commits are durable against a power cut (SQLite `synchronous=FULL`).
    pub sync: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("{target}: {message}")]
    Db { target: String, message: String },
    #[error("{target}: {message}")]
    Schema { target: String, message: String },
    #[error(transparent)]
    Stream(#[from] stream::StreamError),
    #[error("--host-name {0:?}: {1}")]
    HostName(String, &'static str),
}

/// Longest `host` value.
pub const HOST_NAME_MAX: usize = 255;

/// Check a `--host-name`: 1 to 255 printable ASCII bytes (it goes into every row and every
/// unique key; anything else would be a trap for queries and terminals).
pub fn check_host_name(s: &str) -> Result<String, SqlError> {
    if s.is_empty() {
        return Err(SqlError::HostName(s.into(), "empty"));
    }
    if s.len() > HOST_NAME_MAX {
        return Err(SqlError::HostName(s.into(), "longer than 255 bytes"));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SqlError::HostName(
            s.into(),
            "only printable ASCII without spaces",
        ));
    }
    Ok(s.to_string())
}

/// This machine's host name (gethostname(2)), escaped like any untrusted bytes.
pub fn system_host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer and its length are valid; the kernel NUL-terminates within it.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    let n = buf.iter().position(|&b| b == 0).unwrap_or(0);
    if r != 0 || n == 0 {
        return "localhost".into();
    }
    row::escaped(&buf[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_checked() {
        assert_eq!(check_host_name("web1.example").unwrap(), "web1.example");
        assert!(check_host_name("").is_err());
        assert!(check_host_name("a b").is_err());
        assert!(check_host_name("a\nb").is_err());
        assert!(check_host_name(&"x".repeat(256)).is_err());
        assert!(!system_host_name().is_empty());
    }
}
