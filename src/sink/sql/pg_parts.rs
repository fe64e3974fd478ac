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
//! - A role that may only INSERT and SELECT cannot create partitions ("must be owner"): then
//!   the days must exist already (`fwlog db init URL` run daily by the owner creates them
//!   [`AHEAD`] or more days ahead) or fall into the DEFAULT partition [`DEFAULT`] that
//!   `fwlog db init` makes, so rows are never refused for want of a partition. fwlog says so
//!   once and stops trying to create partitions on that connection.
//! - A day's partition made while rows of that day sit in the DEFAULT partition takes them
//!   along, in one transaction ([`create_day`]): PostgreSQL refuses a new partition whose rows
//!   are in the DEFAULT one, and no row is lost or doubled by the move.
//! - Retention (`--db-retain`): at most every [`RETAIN_EVERY`] (and right after a batch that
//!   brought back an expired day's partition), partitions whose whole day is
//!   older than the cut-off are dropped (whole tables: no row-by-row delete, no bloat), and
//!   `losses` rows older than it deleted. A failure (a role that may not drop) is reported once,
//!   never fails the batch: rows already stored are not at risk.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient};

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

/// The DEFAULT partition (made by `fwlog db init`, never by `fwlog run`).
pub const DEFAULT: &str = "packets_default";

async fn exists(c: &impl GenericClient, table: &str) -> Result<bool, tokio_postgres::Error> {
    let there: Option<String> = c
        .query_one("SELECT to_regclass($1)::text", &[&table])
        .await?
        .get(0);
    Ok(there.is_some())
}

/// Create the partition of UTC day `d` unless it exists, moving that day's rows out of the
/// DEFAULT partition into it. Returns the rows moved.
pub async fn create_day(c: &mut Client, d: i64) -> Result<u64, tokio_postgres::Error> {
    let n = name(d);
    let (from, to) = (d * DAY, (d + 1) * DAY);
    let tx = c.transaction().await?;
    tx.batch_execute("SELECT pg_advisory_xact_lock(7402251)")
        .await?;
    if exists(&tx, &n).await? {
        return Ok(0);
    }
    let mut moved = 0;
    if exists(&tx, DEFAULT).await? {
        tx.batch_execute(&format!(
            "CREATE TABLE {n} (LIKE packets INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        ))
        .await?;
        moved = tx
            .execute(
                &format!(
                    "WITH moved AS (DELETE FROM {DEFAULT} WHERE time >= to_timestamp({from}) \
                     AND time < to_timestamp({to}) RETURNING *) INSERT INTO {n} SELECT * FROM moved"
                ),
                &[],
            )
            .await?;
        tx.batch_execute(&format!(
            "ALTER TABLE packets ATTACH PARTITION {n} \
             FOR VALUES FROM (to_timestamp({from})) TO (to_timestamp({to}))"
        ))
        .await?;
    } else {
        tx.batch_execute(&format!(
            "CREATE TABLE {n} PARTITION OF packets \
             FOR VALUES FROM (to_timestamp({from})) TO (to_timestamp({to}))"
        ))
        .await?;
    }
    tx.commit().await?;
    Ok(moved)
}

/// `fwlog db init`: the DEFAULT partition, the partitions of the days whose rows are in it
/// (moved out), and of today and `ahead` days after. Returns (partitions made, rows moved).
pub async fn init(c: &mut Client, ahead: i64) -> Result<(usize, u64), tokio_postgres::Error> {
    c.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {DEFAULT} PARTITION OF packets DEFAULT"
    ))
    .await?;
    let stray: Vec<i64> = c
        .query(
            &format!(
                "SELECT DISTINCT floor(extract(epoch FROM time) / {DAY})::bigint FROM {DEFAULT}"
            ),
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let t = today();
    let (mut made, mut moved) = (0, 0);
    for d in stray.into_iter().chain(t..=t + ahead) {
        if !exists(c, &name(d)).await? {
            moved += create_day(c, d).await?;
            made += 1;
        }
    }
    Ok((made, moved))
}

/// Seconds since the epoch before which `--db-retain` keeps nothing.
fn cutoff(keep: Duration) -> i64 {
    SystemTime::now()
        .checked_sub(keep)
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}

/// The partitions this connection knows exist, and retention's state.
pub struct Parts {
    known: HashSet<i64>,
    /// False once the server said this role may not create partitions.
    may_create: bool,
    /// Said once: why partitions are not created.
    note: Option<String>,
    retain: Option<Duration>,
    next_retain: Instant,
    retain_failed: bool,
}

impl Parts {
    pub fn new(retain: Option<Duration>) -> Parts {
        Parts {
            known: HashSet::new(),
            may_create: true,
            note: None,
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
            if exists(c, &name(d)).await? {
                self.known.insert(d);
                continue;
            }
            if !self.may_create {
                continue;
            }
            match create_day(c, d).await {
                Ok(_) => {
                    self.known.insert(d);
                    // A replay of records older than `--db-retain` made a partition that
                    // retention already dropped: look again right after this batch, so an
                    // expired day never outlives the batch that brought it back.
                    if self
                        .retain
                        .is_some_and(|keep| (d + 1) * DAY <= cutoff(keep))
                    {
                        self.next_retain = Instant::now();
                    }
                }
                Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                    self.may_create = false;
                    self.note = Some(format!(
                        "cannot create partition {} ({}): rows of days without a partition go \
                         to {DEFAULT} if `fwlog db init` made it; run `fwlog db init` daily as \
                         the schema's owner",
                        name(d),
                        super::pg_rows::server_message(&e)
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether a row of UTC day `d` may go in without [`ensure`](Self::ensure) first: its
    /// partition was seen on this connection, or this role cannot create partitions anyway.
    pub fn knows(&self, d: i64) -> bool {
        !self.may_create || self.known.contains(&d)
    }

    /// Why partitions are not created, once.
    pub fn take_note(&mut self) -> Option<String> {
        self.note.take()
    }

    /// Drop the partitions older than `--db-retain`, if it is time to look. Returns a message
    /// the first time it fails.
    pub async fn retain(&mut self, c: &mut Client) -> Option<String> {
        let keep = self.retain?;
        if Instant::now() < self.next_retain {
            return None;
        }
        self.next_retain = Instant::now() + RETAIN_EVERY;
        match self.drop_old(c, cutoff(keep)).await {
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
