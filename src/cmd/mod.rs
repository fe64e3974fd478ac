//! One file per subcommand: argument handling and wiring, no packet logic of their own.

pub mod completions;
pub mod pipeline;
pub mod read;
pub mod replay;

use crate::cli::FormatArgs;
use crate::format::FormatOptions;

/// The formatter options that the command line selects.
pub fn format_options(args: &FormatArgs) -> FormatOptions {
    FormatOptions {
        flags: args.log_flags,
        syslog_framing: !args.no_syslog_header,
        hostname: crate::ifname::short_hostname(),
    }
}

/// What database outputs need, when `specs` has one (None otherwise, so nothing is created
/// for a run without one). `stream` gives the stream id: the spool's, or a new random one.
pub fn sql_config(
    db: &crate::cli::DbArgs,
    specs: &[crate::sink::OutputSpec],
    sync: bool,
    stream: impl FnOnce() -> Result<crate::sink::sql::StreamId, crate::sink::sql::stream::StreamError>,
) -> Result<Option<crate::sink::sql::SqlConfig>, String> {
    if !specs.iter().any(|s| s.target.is_database()) {
        return Ok(None);
    }
    Ok(Some(crate::sink::sql::SqlConfig {
        host: db
            .host_name
            .clone()
            .unwrap_or_else(crate::sink::sql::system_host_name),
        stream: stream().map_err(|e| e.to_string())?,
        payload: db.db_payload,
        retain: db.db_retain.filter(|d| !d.is_zero()),
        sync,
    }))
}
