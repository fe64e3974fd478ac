//! Time arguments (`fwlog replay --since/--until`): parsed here, below the CLI, so that both
//! the command line and library callers share one reading of them.

use chrono::{Local, NaiveDateTime, TimeZone};

/// `--since` / `--until`: RFC 3339, "YYYY-MM-DD HH:MM[:SS]" in local time, or a duration
/// meaning that long ago ("2h").
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return Local
                .from_local_datetime(&n)
                .earliest()
                .map(|t| t.timestamp())
                .ok_or_else(|| format!("{s}: no such local time"));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let n = d.and_hms_opt(0, 0, 0).ok_or("bad date")?;
        return Local
            .from_local_datetime(&n)
            .earliest()
            .map(|t| t.timestamp())
            .ok_or_else(|| format!("{s}: no such local time"));
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(Local::now().timestamp() - d.as_secs() as i64);
    }
    Err(format!(
        "{s}: not a time (use 2026-11-24T08:00:00Z, \"2026-11-24 08:00\", or 2h for two hours ago)"
    ))
}
