//! Daily partitions of the PostgreSQL `packets` table.
//!
//! Invariants:
//! - `packets` is partitioned by range on `time`, one partition per UTC day, named
//!   `packets_pYYYYMMDD` and covering `[YYYY-MM-DD 00:00 UTC, next day 00:00 UTC)`. The name is
//!   the contract: retention reads the day from it.
//! - A batch's rows only go to partitions that exist: before each batch, [`Parts::ensure`]
//!   creates the partitions of today and [`AHEAD`] days after, and of every day a row of the
//!   batch falls in (a replay of old records), unless this connection already saw them. A
//!   partition is created in a transaction of its own under the schema's advisory lock, so
//!   many hosts starting at once create it once; `IF NOT EXISTS` makes a race harmless.
//! - A partition dropped behind fwlog's back (another host's retention) makes the batch's COPY
//!   fail with "no partition of relation": that is a failure of the batch, not a refusal of its
//!   rows ([`no_partition`]); the cache is forgotten and the retry creates it again.
//! - Retention (`--db-retain`): at most every [`RETAIN_EVERY`], partitions whose whole day is
//!   older than the cut-off are dropped (whole tables: no row-by-row delete, no bloat), and
//!   `losses` rows older than it deleted. A failure (a role that may not drop) is reported once,
//!   never fails the batch: rows already stored are not at risk.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_postgres::Client;

/// Days after today whose partitions exist before their rows arrive.
pub const AHEAD: i64 = 3;
/// How often retention looks for old partitions.
pub const RETAIN_EVERY: Duration = Duration::from_secs(60);
const DAY: i64 = 86_400;

/// The partition name of UTC day `day` (days since the epoch).
pub fn name(day: i64) -> String {
    let d = chrono::DateTime::from_timestamp(day.saturating_mul(DAY), 0).unwrap_or_default();
    format!("packets_p{}", d.format("%Y%m%d"))
}

/// The UTC day of a partition name made by [`name`]; `None` for any other table.
pub fn day_of(table: &str) -> Option<i64> {
    let ymd = table.strip_prefix("packets_p")?;
    let d = chrono::NaiveDate::parse_from_str(ymd, "%Y%m%d").ok()?;
    Some(
        d.and_hms_opt(0, 0, 0)?
            .and_utc()
            .timestamp()
            .div_euclid(DAY),
    )
}

/// The UTC day of a row's time.
pub fn day(sec: i64) -> i64 {
    sec.div_euclid(DAY)
}

fn today() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    day(now.as_secs() as i64)
}

/// Whether a batch failed because a row has no partition to go to.
pub fn no_partition(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|d| d.message().starts_with("no partition of relation"))
}

/// The partitions this connection knows exist, and retention's state.
pub struct Parts {
    known: HashSet<i64>,
    retain: Option<Duration>,
    next_retain: Instant,
    retain_failed: bool,
}

impl Parts {
    pub fn new(retain: Option<Duration>) -> Parts {
        Parts {
            known: HashSet::new(),
            retain,
            next_retain: Instant::now(),
            retain_failed: false,
        }
    }

    /// Forget what was seen (a new connection, or a partition gone).
    pub fn forget(&mut self) {
        self.known.clear();
    }

    /// Create the partitions of today, the days ahead and `days`, unless known.
    pub async fn ensure(
        &mut self,
        c: &mut Client,
        days: impl Iterator<Item = i64>,
    ) -> Result<(), tokio_postgres::Error> {
        let t = today();
        let mut want: Vec<i64> = (t..=t + AHEAD).chain(days).collect();
        want.sort_unstable();
        want.dedup();
        for d in want {
            if self.known.contains(&d) {
                continue;
            }
            let n = name(d);
            let there: Option<String> = c
                .query_one("SELECT to_regclass($1)::text", &[&n])
                .await?
                .get(0);
            if there.is_none() {
                let tx = c.transaction().await?;
                tx.batch_execute(&format!(
                    "SELECT pg_advisory_xact_lock(7402251);
                     CREATE TABLE IF NOT EXISTS {n} PARTITION OF packets
                     FOR VALUES FROM (to_timestamp({})) TO (to_timestamp({}))",
                    d * DAY,
                    (d + 1) * DAY
                ))
                .await?;
                tx.commit().await?;
            }
            self.known.insert(d);
        }
        Ok(())
    }

    /// Drop the partitions older than `--db-retain`, if it is time to look. Returns a message
    /// the first time it fails.
    pub async fn retain(&mut self, c: &mut Client) -> Option<String> {
        let keep = self.retain?;
        if Instant::now() < self.next_retain {
            return None;
        }
        self.next_retain = Instant::now() + RETAIN_EVERY;
        let cutoff = SystemTime::now()
            .checked_sub(keep)
            .unwrap_or(UNIX_EPOCH)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        match self.drop_old(c, cutoff).await {
            Ok(()) => None,
            Err(e) if !self.retain_failed => {
                self.retain_failed = true;
                Some(super::pg_rows::server_message(&e))
            }
            Err(_) => None,
        }
    }

    async fn drop_old(&mut self, c: &mut Client, cutoff: i64) -> Result<(), tokio_postgres::Error> {
        let parts = c
            .query(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = 'packets'::regclass",
                &[],
            )
            .await?;
        for row in parts {
            let table: String = row.get(0);
            let Some(d) = day_of(&table) else { continue };
            // Only a day wholly before the cut-off: rows newer than it stay.
            if (d + 1) * DAY <= cutoff {
                c.batch_execute(&format!("DROP TABLE IF EXISTS {}", name(d)))
                    .await?;
                self.known.remove(&d);
            }
        }
        c.execute(
            "DELETE FROM losses WHERE time < to_timestamp($1::bigint)",
            &[&cutoff],
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip_and_only_theirs_parse() {
        assert_eq!(name(0), "packets_p19700101");
        assert_eq!(day_of("packets_p19700101"), Some(0));
        let d = day(1_764_950_400 + 3600);
        assert_eq!(day_of(&name(d)), Some(d));
        assert_eq!(day(-1), -1);
        assert_eq!(day_of("packets"), None);
        assert_eq!(day_of("packets_pxyz"), None);
        assert_eq!(day_of("packets_p20261305"), None);
    }
}
