//! Tunables, with defaults suited to fwlog's intake (bursts of 100-1600 byte packets).

use std::time::Duration;

/// When the writer calls `fdatasync`. This decides what "durable" means in [`crate::Commit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// One `fdatasync` per commit (default). `Commit::durable == Commit::written`: every committed
    /// record survives a power loss or kernel crash.
    EveryCommit,
    /// `fdatasync` on a commit only if at least this long has passed since the last one (and at
    /// segment rollover and on drop). Committed records survive a process crash (kill -9)
    /// immediately, a power loss only once `Commit::durable` has passed them: up to the interval's
    /// worth of records can be lost to a power cut.
    Interval(Duration),
    /// Never `fdatasync` data on commit (only at segment rollover and on drop); the kernel writes
    /// back dirty pages on its own schedule (`vm.dirty_expire_centisecs`, 30 s by default).
    /// Committed records survive kill -9 but not a power loss. `Commit::durable` reports only what
    /// was synced at a rollover.
    Never,
}

/// Spool options. Construct with `Options::default()` and adjust fields.
#[derive(Debug, Clone)]
pub struct Options {
    /// A segment is closed and a new one started once it would grow beyond this (a single record
    /// larger than this still gets a segment of its own). Default 64 MiB.
    pub segment_bytes: u64,
    /// Size cap over all segment files. Appends that would exceed it fail with
    /// `AppendError::Full` and are counted. Default 4 GiB.
    pub max_bytes: u64,
    /// Largest accepted payload. Default 1 MiB (the format's own limit is 16 MiB).
    pub max_record_len: usize,
    /// Group commit: a batch is due once it holds this many records. Default 256.
    pub batch_max_records: usize,
    /// Group commit: a batch is due once its oldest record has waited this long. Default 2 ms.
    pub batch_max_delay: Duration,
    /// Durability policy. Default `EveryCommit`.
    pub fsync: FsyncPolicy,
    /// Largest size of a reader's buffer: it starts at 16 KiB, doubles while reads fill it, and
    /// exceeds this only to hold a single larger record. Default 256 KiB.
    pub read_buffer_bytes: usize,
    /// Retention by size: keep up to this many bytes of fully acknowledged segments for replay
    /// tools, deleting the oldest first beyond it. `None` (default): no size limit if
    /// `retain_age` is set, otherwise nothing is kept (segments go once acknowledged).
    pub retain_bytes: Option<u64>,
    /// Retention by age: keep a fully acknowledged segment until its newest record is older than
    /// this (by the segment file's modification time), then delete it. With both limits set, a
    /// segment goes as soon as either says so. The writer also starts a new segment once the
    /// active one's oldest record is `retain_age / 8` old (see [`crate::Writer::tick`]), so a
    /// record is deleted at most `retain_age * 9/8` plus two ticks after it was written (if it was
    /// acknowledged by then). `None`
    /// (default): no age limit.
    ///
    /// Retained segments never cost new records their place: when the size cap is reached they
    /// are deleted, oldest first, before an append is refused.
    pub retain_age: Option<Duration>,
    /// In-memory hand-off: committed batches stay in memory, up to this many bytes of buffers,
    /// for the reader to take instead of reading them back from disk (see the crate docs,
    /// "Reading"). 0 (default): off, the reader reads everything from disk.
    pub handoff_bytes: usize,
    /// Under [`FsyncPolicy::EveryCommit`]: run the active segment's `fdatasync` on a thread the
    /// spool owns, so that [`crate::Writer::commit`] returns once the batch is written and the
    /// caller goes on (receiving, for fwlog's intake) while the disk syncs; records reach the
    /// reader when their sync ends, exactly as durable as without it. See the crate docs,
    /// "Durability off the caller's thread". Default false (every commit syncs in place).
    pub background_sync: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_bytes: 64 * 1024 * 1024,
            max_bytes: 4 * 1024 * 1024 * 1024,
            max_record_len: 1024 * 1024,
            batch_max_records: 256,
            batch_max_delay: Duration::from_millis(2),
            fsync: FsyncPolicy::EveryCommit,
            read_buffer_bytes: 256 * 1024,
            retain_bytes: None,
            retain_age: None,
            handoff_bytes: 0,
            background_sync: false,
        }
    }
}

impl Options {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.segment_bytes < 4096 {
            return Err(format!("segment_bytes {} < 4096", self.segment_bytes));
        }
        if self.max_record_len == 0 || self.max_record_len > crate::format::MAX_PAYLOAD_LEN {
            return Err(format!(
                "max_record_len {} not in 1..={}",
                self.max_record_len,
                crate::format::MAX_PAYLOAD_LEN
            ));
        }
        if self.batch_max_records == 0 {
            return Err("batch_max_records is 0".into());
        }
        if self.max_bytes < self.segment_bytes {
            return Err(format!(
                "max_bytes {} < segment_bytes {}",
                self.max_bytes, self.segment_bytes
            ));
        }
        if self.retain_age == Some(Duration::ZERO) {
            return Err("retain_age is 0 (use None to keep nothing)".into());
        }
        Ok(())
    }

    /// What is kept of acknowledged segments.
    pub(crate) fn retention(&self) -> Retention {
        Retention {
            bytes: match (self.retain_bytes, self.retain_age) {
                (Some(b), _) => b,
                (None, Some(_)) => u64::MAX,
                (None, None) => 0,
            },
            age: self.retain_age,
        }
    }
}

/// The retention limits in the form the deletion code uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Retention {
    /// Bytes of acknowledged segments to keep at most (0: none, `u64::MAX`: no size limit).
    pub bytes: u64,
    /// Age beyond which an acknowledged segment goes.
    pub age: Option<Duration>,
}

impl Retention {
    /// True if acknowledged segments are kept at all.
    pub fn keeps(&self) -> bool {
        self.bytes > 0 || self.age.is_some()
    }

    /// How often time-based upkeep should run ([`crate::Writer::tick`]): often enough that a
    /// segment is deleted within a sixteenth of the age limit (at most a second) of expiring.
    pub fn tick_every(&self) -> Option<Duration> {
        self.age
            .map(|a| (a / 16).clamp(Duration::from_millis(10), Duration::from_secs(1)))
    }

    /// How long the writer keeps writing into one segment before starting the next, so that
    /// deletion by age (which is per segment) stays within an eighth of the limit.
    pub fn roll_after(&self) -> Option<Duration> {
        self.age.map(|a| (a / 8).max(Duration::from_millis(1)))
    }
}
