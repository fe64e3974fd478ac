//! fwlog's spool: a crash-safe, segmented, append-only FIFO of checksummed records.
//!
//! Every packet fwlog receives is appended here before anything else happens to it, and removed
//! only after its output line has been written. This documentation is the specification of the
//! on-disk format; `man 5 fwlog-spool` says the same for operators.
//!
//! # Directory layout
//!
//! ```text
//! <dir>/LOCK                        empty; flock(LOCK_EX) held by the one writable opener
//! <dir>/ledger                      acknowledged position (two checksummed slots)
//! <dir>/00000000000000000001.seg    segment: records with sequence numbers 1, 2, ...
//! <dir>/00000000000000052117.seg    next segment: the 20 digits are its first sequence number
//! <dir>/quarantine/                 files found unreadable at open, moved aside (never read again)
//! ```
//!
//! Anything else in the directory, and any entry that is not a regular file (symlink, FIFO, ...)
//! whatever its name, is never opened: it is left alone and reported as foreign.
//!
//! # Segment file
//!
//! A 32-byte header, then records back to back, nothing else (no index, no footer):
//!
//! ```text
//! header   0..8   magic "FWLSPOOL"
//!          8      format version (1)
//!          9..16  reserved, zero
//!          16..24 first_seq   u64 LE, equal to the number in the file name
//!          24..28 CRC32C of bytes 0..24, u32 LE
//!          28..32 reserved, zero
//! record   0..4   crc        CRC32C over bytes 4..20 and the payload (one range), u32 LE
//!          4..8   len        u32 LE, payload length (at most 16 MiB)
//!          8..16  seq        u64 LE
//!          16     format version (1)
//!          17     kind (0 = data; other values reserved)
//!          18..20 reserved, zero
//!          20..   payload (len bytes, opaque to the spool)
//! ```
//!
//! # Ledger file
//!
//! Two 32-byte slots at offsets 0 and 512 (file size 1024):
//!
//! ```text
//!          0..4   magic "FWLA"
//!          4      format version (1)
//!          5..8   reserved, zero
//!          8..16  generation u64 LE (higher wins)
//!          16..24 acked_seq  u64 LE: every record with seq <= acked_seq has been processed
//!          24..28 CRC32C of bytes 0..24
//!          28..32 reserved, zero
//! ```
//!
//! Each acknowledgement overwrites the older slot and `fdatasync`s (one small write and one sync,
//! no rename): a torn write can only damage the slot being written, so the previous position
//! survives and the worst case is re-delivery (at-least-once); the state found at open is
//! reported as [`LedgerStatus`]. Why a ledger file rather than ack records in the segments: the
//! reader would otherwise write into files the writer owns, and a segment could not be deleted
//! without care for the ack records inside it.
//!
//! # Invariants
//!
//! 1. Sequence numbers start at 1 and increase by one per record within a segment; segment `k+1`
//!    starts after the last record of segment `k` (a jump means records were lost).
//! 2. A record is valid only if its length is in range, its CRC matches, its version and kind are
//!    known and its seq is the next expected one in its segment. Validation never trusts a length
//!    before checking it against the remaining bytes, so bad data cannot cause huge allocations,
//!    panics or loops.
//! 3. Durability (see [`FsyncPolicy`]): under the default `EveryCommit`, a batch is written with one
//!    `pwrite` and made durable with one `fdatasync` before [`Writer::commit`] returns its sequence
//!    number and before the reader can see it (with [`Options::background_sync`], before the
//!    reader can see it, while `commit` returns at once: see "Durability off the caller's
//!    thread"). Creating a segment writes and syncs its header and
//!    then `fsync`s the directory; deleting segments is followed by a directory `fsync`.
//! 4. A segment is fully written and synced before its successor is created, under every policy.
//!    Therefore only the last segment can end in a torn record after a crash, and recovery
//!    truncates exactly that tail before anything is appended again.
//! 5. There is no index: recovery derives everything from the segment files and the ledger.
//! 6. New sequence numbers are always above the acknowledged position, so a record is never
//!    skipped as "already done" because of a number reused after a crash.
//! 7. Deleted = fully acknowledged, not the writer's segment, and not kept by retention.
//!    Acknowledged and deleted are kept apart so that retention can keep acknowledged segments
//!    (see below); an unacknowledged record is never deleted, however old or whatever the cap.
//!
//! # Durability off the caller's thread
//!
//! With [`Options::background_sync`] (under `EveryCommit`) the active segment's `fdatasync` runs
//! on a thread the spool owns (`fwlog-spool-sync`): [`Writer::commit`] writes the batch (one
//! `pwrite` on the caller's thread) and hands the sync over, so the caller goes on (receiving
//! packets) while the disk syncs. Guarantees are those of invariant 3, shifted in time:
//!
//! - The reader (and the in-memory hand-off) is shown records only after a sync covering them
//!   returned, in commit order; the sync thread (or the writer, for a sync in place)
//!   publishes them and calls the [`Writer::set_publish_hook`].
//! - One sync at a time; commits made while it runs only write, and the next sync covers them
//!   all (one `fdatasync` per disk round trip). `Commit::durable` may lag `written`; a later
//!   commit reports how far the syncs got, and [`Writer::commit_due`] turns true when a sync
//!   ends so a caller committing when due hears of it. [`Writer::commit_wait`] returns only
//!   once its records are durable (for callers that act on durability).
//! - A failed sync is never retried and publishes nothing; the next commit (or rollover,
//!   close) returns it: `ENOSPC`/`EDQUOT` cut the segment back to the last published record
//!   and drop everything after it, including records written while the failing sync ran
//!   ([`Error::NoSpace`] names them); any other error poisons the writer. A panic on the
//!   thread is an error, never a hang.
//! - A rollover (invariant 4), [`Writer::close`] and dropping the writer wait for the sync,
//!   and the thread ends with the writer. A commit that waits ([`Writer::commit_wait`], a
//!   rollover, a close) while no sync is in flight or pending syncs and publishes on the
//!   caller's thread instead (no hand-off), with the same guarantees. The thread is started
//!   by the first commit, on the committing thread (whose scheduling priority it inherits).
//!   More than 32 MiB written and not yet synced makes a commit wait too, bounding the memory
//!   and the records a slow disk holds in flight.
//!
//! # Recovery at open
//!
//! A writable open takes the lock, reads the ledger (creating it durably if missing), then:
//! removes half-created segments (at most a header long and a prefix of it, or zeros: they
//! cannot hold a record; nothing longer is read to decide); moves segments with any other bad
//! header, a header naming another first sequence number, or a malformed `*.seg` name into
//! `quarantine/` (counted); deletes fully acknowledged segments; truncates the last segment after
//! its last whole valid record *before* anything is appended, but only the torn tail: bytes after
//! which no valid record follows (damage followed by valid records stays, see below); and
//! continues numbering one past the highest of the last record, the last segment's start minus
//! one, the acknowledged position and, if the last segment itself was quarantined, the last valid
//! record found in it (or its first number), so that the reader reports its records as a gap. Sequence numbers above [`MAX_SEQ`] (2^62) are impossible:
//! such a ledger position is clamped to the data on disk ([`OpenReport::ledger_clamped`]), such a
//! name or header is quarantined. Only the last segment is scanned record by record at open (it
//! is the only one a crash can tear, invariant 4), so opening costs one segment's read, not the
//! backlog's. Contents never make opening or reading fail; I/O errors do, with the path in the
//! error. What was done is returned as an [`OpenReport`] (its `Display` is a one-line summary for
//! the log, with planted names escaped by [`escape_name`]).
//!
//! # Damage
//!
//! A bad record anywhere but at the very end of the last segment is damage. The reader (and
//! [`ReadOnlySpool`]) resynchronises: it scans forward byte by byte for the next whole valid
//! record whose sequence number the skipped bytes can explain (at least the expected one, at
//! most one more per [`RECORD_HEADER_LEN`] bytes skipped, below the next segment's first), so a
//! damaged record costs only itself and a duplicated one nothing. Every sequence number not
//! delivered because of damage, quarantine or a missing segment is handed over in line, before
//! the record after it, as a [`Lost`] range by [`Reader::next_item`] (and
//! [`Replay::next_item`]), and counted ([`Stats::corrupt_regions_skipped`],
//! [`Stats::records_lost_in_gaps`]). Damage to the very last record of the last segment cannot be
//! told from a torn write and is cut with the tail.
//!
//! # Reading, acknowledging, deleting
//!
//! The reader reads segment files itself, in order, through a bounded buffer (memory does not
//! depend on the backlog), starting after the acknowledged position. With
//! [`Options::handoff_bytes`] set, the writer also keeps its last committed batches in memory
//! (at most that many bytes of buffers, the oldest dropped first) and the reader takes the next
//! record from there when it is still held: a reader that keeps up reads nothing back from disk,
//! one that fell behind (a backlog, a restart) reads from disk until it catches up. Only
//! committed records are offered, so what is delivered, and when, is the same either way. [`Reader::ack`] persists the
//! new position in the ledger (one write + one `fdatasync`) and only then deletes segments whose
//! records are all acknowledged. After a crash, at most the records delivered but not yet
//! acknowledged are delivered again, flagged [`Record::recovered`] (at-least-once).
//!
//! # Versioning
//!
//! Headers, records and ledger slots carry the format version. This build reads and writes
//! version 1 only. A segment whose header has another version is quarantined by a writable open
//! (and skipped by a read-only one) rather than misread; a future version that changes the record
//! layout must bump the version and either read both or migrate at open.
//!
//! # Size cap (when full)
//!
//! [`Options::max_bytes`] bounds the total size of the segment files. An append that would exceed
//! it fails with [`AppendError::Full`]; nothing is stored, the writer stays usable, and the record
//! is counted in [`Stats::rejected_full_records`]/`rejected_full_bytes`. The oldest records are
//! never dropped to make room: they are not printed yet. The daemon must keep running, count such
//! packets as lost and report them; space returns as soon as acknowledgements delete segments.
//!
//! A full filesystem is handled alike: a write or sync failing with `ENOSPC` or `EDQUOT` cuts the
//! segment back to the last commit (`ftruncate` needs no space), drops the records appended since
//! and names them in [`Error::NoSpace`] (their numbers are used again: no reader saw them); a
//! segment that cannot be created is removed again. The writer stays usable and appends succeed
//! once there is room. Any other write or sync error poisons the writer until a reopen.
//!
//! # Retention
//!
//! Acknowledged segments may be kept for replay tools, by size ([`Options::retain_bytes`]) and/or
//! by age ([`Options::retain_age`]); one rule, applied after every acknowledgement, at every
//! [`Writer::tick`] and at open, deletes the oldest fully acknowledged segment while either limit
//! is exceeded. Retained segments are deleted before an append is refused for lack of room.
//!
//! Age needs no new on-disk field: a segment's age is the time its newest record was written,
//! which is the file's mtime (the last `pwrite` before the segment was sealed; Kafka's
//! time-based retention worked the same way before it had per-record timestamps). The spool keeps
//! it in memory while running and reads it back with `stat` at open, before truncating a torn
//! tail (which would reset it). Because deletion is per segment and the writer's segment is never
//! deleted, [`Writer::tick`] seals the active segment once its oldest record is `retain_age / 8`
//! old; and under retention by age, recovery does not reuse a last segment that holds records
//! (its oldest record's time is unknown). A record therefore stays between `retain_age` and about
//! `9/8 retain_age` plus two ticks (one to seal, one to delete) after it was written, once
//! acknowledged. A clock set back makes
//! segments look younger (kept longer, never an unacknowledged one deleted); a clock set forward
//! deletes acknowledged ones early.
//!
//! # Concurrency and use
//!
//! [`Spool::open`] returns a [`Writer`] for the intake thread and a [`Reader`] for the processing
//! thread, plus an [`OpenReport`] of what recovery did. Group commit is driven by the caller:
//! append a burst, then call [`Writer::commit_if_due`] (or [`Writer::commit`]) and block no longer
//! than [`Writer::commit_deadline`]. A caller that assembles a record from parts builds it in
//! place with [`Writer::append_with`] (its exact length first), so it is copied once, into the
//! batch, through a [`RecordBuf`] that can only append (it cannot shrink or rewrite the records
//! before it; a wrong length or a panic in the filler takes the record back). The reader blocks in [`Reader::wait`] until the writer commits.
//! Segments completed by an [`AckSync`] are unlinked by a deletion thread the spool starts at
//! the first one (freeing a cached segment's pages takes milliseconds); dropping the spool waits
//! for it, and a writer short of room waits for it before deleting more.
//! A second writable open of the same directory (from any process) fails with [`Error::Locked`].
//! [`ReadOnlySpool`] serves replay tools and changes nothing on disk.
//!
//! The lock is held until both the writer and the reader are dropped.
//!
//! ```
//! use std::time::Duration;
//! use fwlog_spool::{Options, Spool};
//!
//! let dir = std::env::temp_dir().join(format!("fwlog-spool-doc-{}", std::process::id()));
//! let (mut writer, mut reader, report) = Spool::open(&dir, Options::default())?;
//! assert_eq!(report.next_seq, 1);
//!
//! // Intake thread: append a burst, commit when due (or right away, as here).
//! let seq = writer.append(b"packet bytes")?;
//! let commit = writer.commit()?;
//! assert!(commit.durable >= seq);
//!
//! // Processing thread: wait, read in order, acknowledge once the output is written.
//! assert!(reader.wait(Duration::from_millis(100)));
//! let rec = reader.next()?.expect("committed record");
//! assert_eq!((rec.seq, rec.data.as_slice()), (seq, &b"packet bytes"[..]));
//! reader.ack(rec.seq)?;
//! drop((writer, reader));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! All I/O goes through the [`Fs`] trait ([`RealFs`] in production), so tests can run the spool on
//! a simulated filesystem that keeps only synced data and crashes at arbitrary points.

mod error;
mod format;
mod fs;
mod handoff;
mod ledger;
mod options;
mod reader;
mod readonly;
mod reaper;
mod record_buf;
mod recovery;
mod segment;
mod shared;
mod syncer;
mod writer;

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

pub use error::{AppendError, Error, Result};
pub use format::{FORMAT_VERSION, MAX_PAYLOAD_LEN, MAX_SEQ, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
pub use fs::{DirEntry, Fs, FsFile, RealFs};
pub use ledger::{LedgerStatus, LEDGER_FILE};
pub use options::{FsyncPolicy, Options};
pub use reader::{AckSync, Item, Lost, Next, Reader, Record, StatsHandle};
pub use readonly::{ReadOnlySpool, Replay, ReplayItem, ReplayRecord, ReplayStats};
pub use record_buf::RecordBuf;
pub use recovery::{
    escape as escape_name, OpenReport, Quarantined, Truncation, LOCK_FILE, QUARANTINE_DIR,
};
pub use shared::Stats;
pub use writer::{Commit, Writer};

use shared::{Shared, State};

/// Entry point for the writable spool.
pub struct Spool;

impl Spool {
    /// Opens (creating `dir` itself if needed, not its parents) the spool in `dir` on the real
    /// filesystem, recovering from whatever a crash left (see [`OpenReport`]). Fails only on I/O
    /// errors, invalid options, or [`Error::Locked`], never because of file contents.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<(Writer, Reader, OpenReport)> {
        Self::open_with_fs(Arc::new(RealFs), dir, opts)
    }

    /// Like [`open`](Self::open), through the given filesystem.
    pub fn open_with_fs(
        fs: Arc<dyn Fs>,
        dir: impl AsRef<Path>,
        opts: Options,
    ) -> Result<(Writer, Reader, OpenReport)> {
        opts.validate().map_err(Error::Options)?;
        let dir = dir.as_ref().to_path_buf();
        let rec = recovery::recover(fs.clone(), &dir, &opts)?;
        let last = rec.next_seq - 1;
        let shared = Arc::new(Shared {
            fs,
            dir,
            state: Mutex::new(State {
                committed: last,
                durable: last,
                acked: rec.acked,
                segments: rec.segments,
                writer_alive: true,
                rewinds: 0,
                handoff: handoff::HandOff::new(opts.handoff_bytes),
                readers_waiting: 0,
            }),
            cond: Condvar::new(),
            counters: rec.counters,
            retention: opts.retention(),
            reaper: std::sync::OnceLock::new(),
            on_publish: std::sync::OnceLock::new(),
            _lock: rec.lock,
        });
        let reader = Reader::new(
            shared.clone(),
            rec.ledger,
            rec.acked,
            last,
            opts.read_buffer_bytes,
        );
        let writer = Writer::new(shared, opts, rec.active, rec.next_seq);
        Ok((writer, reader, rec.report))
    }
}
