//! Opening a spool directory: classification of its files, and (in writable mode) recovery.
//!
//! Recovery never trusts anything but the files themselves (there is no index that could run
//! ahead of the data). In writable mode it:
//!
//! 1. creates the directory if needed and takes the `flock` on `LOCK` (a second opener fails
//!    with [`Error::Locked`]);
//! 2. reads (or durably creates) the ledger;
//! 3. checks every segment header. A file with a valid header whose `first_seq` matches its name is
//!    kept. A half-created segment (at most a header long and a prefix of the header it should
//!    have, or zero bytes) is removed: it cannot hold a record. Anything else with a segment
//!    name, and any `*.seg` file whose name does not parse, is renamed into `quarantine/` and
//!    counted. Files with other names are left alone and listed as foreign;
//! 4. deletes segments that are fully acknowledged (their successor starts at or below
//!    `acked + 1`), except what the retention options keep (by size, and by age measured from
//!    each file's mtime, read here before step 5 can change it);
//! 5. scans the last segment record by record, resynchronising over damage (see `segment`), and
//!    truncates it (`ftruncate` + `fdatasync`) after the last whole valid record when no valid
//!    record follows: that is the torn tail of the batch that was being written at the crash.
//!    Damage with valid records after it is kept (listed in [`OpenReport::damaged`]). Truncating *before* the writer appends again is what keeps later appends from
//!    being stranded behind unreadable bytes;
//! 6. picks the next sequence number: one past the highest of (last record on disk, first_seq of
//!    the last segment minus one, acknowledged position). The last term matters with the relaxed
//!    fsync policies: the reader may have acknowledged records that a power cut then took away,
//!    and new records must never reuse an acknowledged number (they would be skipped as done);
//! 7. appends to the last segment if it continues exactly at that number and has room (and, under
//!    retention by age, holds no record yet: the age of its oldest record is unknown), otherwise
//!    starts a new segment (header written and synced, directory synced).
//!
//! Only I/O errors (e.g. permission denied, disk gone) make opening fail, never file contents.
//! Segments other than the last are checked record by record only when read; a bad record there is
//! real corruption (every segment is fully synced before its successor is created), handled by the
//! reader by resynchronising and reporting the lost range.

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{self, Invalid, MAX_SEQ, SEGMENT_HEADER_LEN};
use crate::fs::{Fs, FsFile};
use crate::ledger::{Ledger, LedgerStatus};
use crate::options::Options;
use crate::segment::{Cursor, Step};
use crate::shared::{doomed, segment_path, Counters, SegMeta};

/// Lock file taken with `flock(LOCK_EX)` by the writable opener.
pub const LOCK_FILE: &str = "LOCK";
/// Subdirectory unreadable files are moved into.
pub const QUARANTINE_DIR: &str = "quarantine";

/// A file renamed into `quarantine/` at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    pub from: PathBuf,
    pub to: PathBuf,
    pub reason: String,
}

/// A segment cut back at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    pub path: PathBuf,
    /// File size before and after.
    pub from_len: u64,
    pub to_len: u64,
    /// Why the first removed byte was not a valid record.
    pub reason: String,
}

/// What opening found and did. Everything here is also reflected in [`crate::Stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    pub ledger: LedgerStatus,
    /// Acknowledged position read from the ledger.
    pub acked_seq: u64,
    /// Sequence number the next append gets.
    pub next_seq: u64,
    /// `next_seq - 1 - acked_seq`: records on disk that will be (re-)delivered, gaps included.
    pub pending_records: u64,
    /// Live segments after recovery.
    pub segments: usize,
    pub truncated: Vec<Truncation>,
    /// Total bytes removed by truncation and by removing half-created segments.
    pub bytes_truncated: u64,
    /// Half-created segments (no record could be in them) that were removed.
    pub removed_partial: Vec<PathBuf>,
    pub quarantined: Vec<Quarantined>,
    /// Fully acknowledged segments deleted at open (left over from a crash between ack and unlink).
    pub deleted_acked: usize,
    /// Entries that are not the spool's; left untouched.
    pub foreign: Vec<String>,
    /// Segments kept although they hold damaged records followed by valid ones (the reader
    /// reports the sequence numbers the damage took as lost).
    pub damaged: Vec<PathBuf>,
    /// The ledger named an acknowledged position beyond anything ever written (this value); it
    /// was clamped to `acked_seq`.
    pub ledger_clamped: Option<u64>,
}

impl std::fmt::Display for OpenReport {
    /// One line for the daemon's log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "spool opened: acked up to {}, {} pending, next seq {}, {} segments",
            self.acked_seq, self.pending_records, self.next_seq, self.segments
        )?;
        match &self.ledger {
            LedgerStatus::Loaded | LedgerStatus::Missing => {}
            LedgerStatus::Unreadable(why) => {
                write!(f, "; ledger unreadable ({why}): everything re-delivered")?
            }
        }
        if self.bytes_truncated > 0 {
            write!(
                f,
                "; {} bytes of torn tail cut ({} files, {} half-created removed)",
                self.bytes_truncated,
                self.truncated.len(),
                self.removed_partial.len()
            )?;
        }
        if !self.quarantined.is_empty() {
            write!(f, "; {} files quarantined:", self.quarantined.len())?;
            for q in &self.quarantined {
                let name = q.from.file_name().unwrap_or_default().to_string_lossy();
                write!(f, " {} ({})", escape(&name), q.reason)?;
            }
        }
        if !self.damaged.is_empty() {
            write!(f, "; damaged records inside")?;
            for p in &self.damaged {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                write!(f, " {}", escape(&name))?;
            }
            write!(f, " (skipped when read, reported as lost)")?;
        }
        if let Some(v) = self.ledger_clamped {
            write!(
                f,
                "; ledger position {v} is impossible, used {}",
                self.acked_seq
            )?;
        }
        if self.deleted_acked > 0 {
            write!(f, "; {} acknowledged segments deleted", self.deleted_acked)?;
        }
        if !self.foreign.is_empty() {
            write!(f, "; foreign entries left alone:")?;
            for (i, name) in self.foreign.iter().enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                write!(f, "{sep}{}", escape(name))?;
            }
        }
        Ok(())
    }
}

/// A file name made safe for a log line: control characters, backslashes and non-ASCII
/// bytes shown as `\xNN` (a planted name must not forge or colour a line).
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_graphic() && b != b'\\' || b == b' ' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Directory contents, classified by name only.
pub(crate) struct Listing {
    /// `first_seq` from the names, ascending.
    pub segments: Vec<u64>,
    /// `*.seg` files whose names do not parse.
    pub bad_names: Vec<String>,
    pub foreign: Vec<String>,
}

pub(crate) fn list(fs: &dyn Fs, dir: &Path) -> Result<Listing> {
    let entries = fs
        .read_dir(dir)
        .map_err(|e| Error::io("read directory", dir, e))?;
    let mut segs = BTreeSet::new();
    let mut bad_names = Vec::new();
    let mut foreign = Vec::new();
    for e in entries {
        let name = e.name;
        if e.is_dir {
            if name != QUARANTINE_DIR {
                foreign.push(name);
            }
        } else if !e.is_file {
            // Symlinks, FIFOs, sockets, devices: never opened, whatever their name.
            foreign.push(name);
        } else if name == LOCK_FILE || name == crate::ledger::LEDGER_FILE {
            // ours
        } else if let Some(seq) = format::parse_segment_file_name(&name) {
            if seq == 0 {
                bad_names.push(name);
            } else {
                segs.insert(seq);
            }
        } else if name.ends_with(".seg") {
            bad_names.push(name);
        } else {
            foreign.push(name);
        }
    }
    foreign.sort();
    bad_names.sort();
    Ok(Listing {
        segments: segs.into_iter().collect(),
        bad_names,
        foreign,
    })
}

/// Result of looking at a segment's header.
pub(crate) enum HeaderCheck {
    Good(Cursor),
    /// Cannot contain a record (torn creation); safe to remove. Holds the file size.
    Partial(u64),
    Bad(String),
}

pub(crate) fn check_header(
    fs: &dyn Fs,
    path: &Path,
    name_seq: u64,
    chunk: usize,
) -> io::Result<HeaderCheck> {
    let why = match Cursor::open(fs, path, chunk)? {
        Ok(c) if c.first_seq == name_seq => return Ok(HeaderCheck::Good(c)),
        Ok(c) => format!(
            "header says first sequence {}, file name says {name_seq}",
            c.first_seq
        ),
        Err(why) => format!("segment header: {why}"),
    };
    // Distinguish a torn creation (nothing could have been stored) from damage. Creation writes
    // and syncs the header before any record, so a torn one is at most a header long: only the
    // header's worth of bytes is read, whatever the file's size (a huge sparse file of zeros
    // must not be read to the end, and is damage, not a torn creation).
    let f = fs.open_read(path)?;
    let len = f.len()?;
    if len > SEGMENT_HEADER_LEN as u64 {
        return Ok(HeaderCheck::Bad(why));
    }
    let mut buf = [0u8; SEGMENT_HEADER_LEN];
    let mut got = 0;
    while got < len as usize {
        let n = f.read_at(&mut buf[got..len as usize], got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let expected = format::encode_segment_header(name_seq);
    let seen = &buf[..got];
    Ok(
        if seen.iter().all(|&b| b == 0) || seen == &expected[..got] {
            HeaderCheck::Partial(len)
        } else {
            HeaderCheck::Bad(why)
        },
    )
}

/// Step 3 of recovery: segments whose names or headers are bad are quarantined, half-created
/// ones removed; the good ones come back in order with a cursor past their header.
struct Headers {
    segs: Vec<(SegMeta, Cursor)>,
    /// The last segment was quarantined: the highest sequence number it may have held.
    quarantined_last: Option<u64>,
    /// The directory changed and needs a sync.
    dir_dirty: bool,
}

fn check_headers(
    fs: &dyn Fs,
    dir: &Path,
    opts: &Options,
    listing: &Listing,
    q: &mut Quarantiner<'_>,
    report: &mut OpenReport,
) -> Result<Headers> {
    let mut dir_dirty = false;
    for name in &listing.bad_names {
        report
            .quarantined
            .push(q.move_aside(name, "not a valid segment file name".into())?);
        dir_dirty = true;
    }

    let mut quarantined_last = None;
    let mut segs: Vec<(SegMeta, Cursor)> = Vec::new();
    for &seq in &listing.segments {
        let path = segment_path(dir, seq);
        let check = match check_header(fs, &path, seq, opts.read_buffer_bytes) {
            Ok(c) => c,
            // Vanished between listing and opening: nothing to recover.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        match check {
            HeaderCheck::Good(c) => {
                let len = c.file_len().map_err(|e| Error::io("stat", &path, e))?;
                // Read before step 5 may truncate the file (which would make it look new).
                let newest = fs
                    .modified(&path)
                    .map_err(|e| Error::io("stat", &path, e))?;
                segs.push((
                    SegMeta {
                        first_seq: seq,
                        bytes: len,
                        newest,
                    },
                    c,
                ));
            }
            HeaderCheck::Partial(len) => {
                fs.remove_file(&path)
                    .map_err(|e| Error::io("remove", &path, e))?;
                report.bytes_truncated += len;
                report.removed_partial.push(path);
                dir_dirty = true;
            }
            HeaderCheck::Bad(reason) => {
                if listing.segments.last() == Some(&seq) {
                    // No successor tells where its records ended: look for the last valid one
                    // (bounded: a real segment is not much larger than the segment size), so
                    // that new numbers start above them and the reader reports the gap.
                    let limit = opts.segment_bytes + format::MAX_PAYLOAD_LEN as u64 + 64;
                    let highest = highest_record(fs, &path, seq, opts.read_buffer_bytes, limit)
                        .map_err(|e| Error::io("read", &path, e))?;
                    quarantined_last = Some(highest.unwrap_or(seq));
                }
                let name = format::segment_file_name(seq);
                report.quarantined.push(q.move_aside(&name, reason)?);
                dir_dirty = true;
            }
        }
    }
    Ok(Headers {
        segs,
        quarantined_last,
        dir_dirty,
    })
}

/// The counters a freshly opened spool starts from.
fn counters_after_open(report: &OpenReport, segments: &VecDeque<SegMeta>) -> Counters {
    let c = Counters::default();
    c.files_quarantined
        .store(report.quarantined.len() as u64, Relaxed);
    c.bytes_truncated.store(report.bytes_truncated, Relaxed);
    c.disk_bytes
        .store(segments.iter().map(|m| m.bytes).sum(), Relaxed);
    c
}

/// Step 4 of recovery: deletes the fully acknowledged segments the retention does not keep,
/// oldest first. Returns how many.
fn delete_acked(
    fs: &dyn Fs,
    dir: &Path,
    segments: &mut VecDeque<SegMeta>,
    acked: u64,
    opts: &Options,
) -> Result<usize> {
    let k = doomed(segments, acked, opts.retention(), fs.now(), 0);
    for m in segments.drain(..k) {
        let path = segment_path(dir, m.first_seq);
        match fs.remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &path, e)),
        }
    }
    Ok(k)
}

/// Scans the last segment and cuts what follows its last valid record, if no valid record
/// follows it (the torn tail). Damage with valid records after it is not a tail: it stays (the
/// reader reports the records it hit as lost). Returns the last record's sequence number (or
/// `first_seq - 1`).
fn cut_torn_tail(
    fs: &dyn Fs,
    meta: &mut SegMeta,
    cur: &mut Cursor,
    report: &mut OpenReport,
) -> Result<u64> {
    let path = cur.path.clone();
    let io = |e| Error::io("read", &path, e);
    let mut valid_end = cur.offset();
    let mut why = None;
    loop {
        match cur.next_step().map_err(io)? {
            Step::Record { .. } => valid_end = cur.offset(),
            Step::End => break,
            Step::Bad { why: w, .. } => {
                why = Some(w);
                if cur.resync(MAX_SEQ, meta.bytes).map_err(io)?.is_none() {
                    break;
                }
                if report.damaged.last() != Some(&path) {
                    report.damaged.push(path.clone());
                }
            }
        }
    }
    let len = meta.bytes;
    if valid_end < len {
        let f = fs.open_rw(&path).map_err(|e| Error::io("open", &path, e))?;
        f.set_len(valid_end)
            .map_err(|e| Error::io("ftruncate", &path, e))?;
        f.sync_data()
            .map_err(|e| Error::io("fdatasync", &path, e))?;
        report.bytes_truncated += len - valid_end;
        report.truncated.push(Truncation {
            path,
            from_len: len,
            to_len: valid_end,
            reason: why.unwrap_or(Invalid::Short).to_string(),
        });
        meta.bytes = valid_end;
    }
    Ok(cur.next_seq - 1)
}

/// The highest sequence number of a valid record in the first `limit` bytes of a segment whose
/// header is unreadable, reading it as if the header said `first_seq`.
fn highest_record(
    fs: &dyn Fs,
    path: &Path,
    first_seq: u64,
    chunk: usize,
    limit: u64,
) -> io::Result<Option<u64>> {
    let mut cur = Cursor::open_headless(fs, path, chunk, first_seq)?;
    let limit = limit.min(cur.file_len()?);
    let mut highest = None;
    while cur.offset() < limit {
        match cur.next_step()? {
            Step::Record { seq, .. } => highest = Some(seq),
            Step::End => break,
            Step::Bad { .. } => {
                if cur.resync(MAX_SEQ, limit)?.is_none() {
                    break;
                }
            }
        }
    }
    Ok(highest)
}

/// Everything the writer and reader start from.
pub(crate) struct Recovered {
    pub report: OpenReport,
    pub lock: Box<dyn std::any::Any + Send + Sync>,
    pub ledger: Ledger,
    pub acked: u64,
    pub next_seq: u64,
    pub segments: VecDeque<SegMeta>,
    /// The writer's segment: file, first_seq, valid length.
    pub active: (Box<dyn FsFile>, u64, u64),
    pub counters: Counters,
}

struct Quarantiner<'a> {
    fs: &'a dyn Fs,
    dir: PathBuf,
    qdir: PathBuf,
    existing: Option<BTreeSet<String>>,
}

impl Quarantiner<'_> {
    fn move_aside(&mut self, name: &str, reason: String) -> Result<Quarantined> {
        if self.existing.is_none() {
            if self
                .fs
                .create_dir(&self.qdir)
                .map_err(|e| Error::io("create directory", &self.qdir, e))?
            {
                self.fs
                    .sync_dir(&self.dir)
                    .map_err(|e| Error::io("fsync", &self.dir, e))?;
            }
            let names = self
                .fs
                .read_dir(&self.qdir)
                .map_err(|e| Error::io("read directory", &self.qdir, e))?;
            self.existing = Some(names.into_iter().map(|e| e.name).collect());
        }
        let existing = self.existing.get_or_insert_with(BTreeSet::new);
        let mut target = name.to_string();
        let mut n = 1;
        while existing.contains(&target) {
            target = format!("{name}.{n}");
            n += 1;
        }
        existing.insert(target.clone());
        let from = self.dir.join(name);
        let to = self.qdir.join(&target);
        self.fs
            .rename(&from, &to)
            .map_err(|e| Error::io("rename into quarantine", &from, e))?;
        self.fs
            .sync_dir(&self.qdir)
            .map_err(|e| Error::io("fsync", &self.qdir, e))?;
        Ok(Quarantined { from, to, reason })
    }
}

/// Creates the spool directory (not its parents) if needed, durably.
fn create_spool_dir(fs: &dyn Fs, dir: &Path) -> Result<()> {
    if fs
        .create_dir(dir)
        .map_err(|e| Error::io("create directory", dir, e))?
    {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs.sync_dir(parent)
                .map_err(|e| Error::io("fsync", parent, e))?;
        }
    }
    Ok(())
}

/// Writable open: lock, ledger, recovery. See the module docs for the steps.
pub(crate) fn recover(fs: Arc<dyn Fs>, dir: &Path, opts: &Options) -> Result<Recovered> {
    let fs: &dyn Fs = &*fs;
    create_spool_dir(fs, dir)?;
    let lock_path = dir.join(LOCK_FILE);
    let lock = match fs.lock_exclusive(&lock_path) {
        Ok(g) => g,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            return Err(Error::Locked {
                path: dir.to_path_buf(),
                lock: lock_path,
            })
        }
        Err(e) => return Err(Error::io("lock", &lock_path, e)),
    };
    let (ledger, mut acked, ledger_status) = Ledger::open(fs, dir)?;
    let listing = list(fs, dir)?;
    let mut q = Quarantiner {
        fs,
        dir: dir.to_path_buf(),
        qdir: dir.join(QUARANTINE_DIR),
        existing: None,
    };
    let mut report = OpenReport {
        ledger: ledger_status,
        acked_seq: acked,
        next_seq: 0,
        pending_records: 0,
        segments: 0,
        truncated: Vec::new(),
        bytes_truncated: 0,
        removed_partial: Vec::new(),
        quarantined: Vec::new(),
        deleted_acked: 0,
        foreign: listing.foreign.clone(),
        damaged: Vec::new(),
        ledger_clamped: None,
    };
    // Step 3: names and headers.
    let Headers {
        mut segs,
        quarantined_last,
        mut dir_dirty,
    } = check_headers(fs, dir, opts, &listing, &mut q, &mut report)?;

    // Step 5: the last segment's torn tail.
    let last_seq = match segs.last_mut() {
        Some((meta, cur)) => cut_torn_tail(fs, meta, cur, &mut report)?,
        None => 0,
    };

    // Step 6.
    let last_first = segs.last().map_or(0, |(m, _)| m.first_seq);
    if acked > MAX_SEQ {
        // Not a position any spool reached: damage or a planted ledger. Taking it would wrap
        // the numbering; the data on disk is what is known.
        report.ledger_clamped = Some(acked);
        acked = last_seq.max(last_first.saturating_sub(1));
        report.acked_seq = acked;
    }
    let next_seq = last_seq
        .max(acked)
        .max(last_first.saturating_sub(1))
        .max(quarantined_last.unwrap_or(0))
        + 1;

    // Step 7.
    // With retention by age the writer must know when the active segment's oldest record was
    // written, which a file's times do not tell: a segment with records is then never reused.
    let reuse = segs.last().is_some_and(|(m, c)| {
        c.next_seq == next_seq
            && m.bytes < opts.segment_bytes
            && (opts.retain_age.is_none() || m.bytes <= SEGMENT_HEADER_LEN as u64)
    });
    let active = if reuse {
        let (m, _) = segs.last().expect("checked by is_some_and");
        let path = segment_path(dir, m.first_seq);
        let f = fs.open_rw(&path).map_err(|e| Error::io("open", &path, e))?;
        (f, m.first_seq, m.bytes)
    } else {
        let (f, bytes) = create_segment(fs, dir, next_seq)?;
        dir_dirty = false; // create_segment synced the directory
        (f, next_seq, bytes)
    };
    let mut segments: VecDeque<SegMeta> = segs.into_iter().map(|(m, _)| m).collect();
    if !reuse {
        segments.push_back(SegMeta {
            first_seq: next_seq,
            bytes: active.2,
            newest: fs.now(),
        });
    }

    // Step 4 (after 7 so that a segment made obsolete by a new one is collected too).
    // Fully acknowledged segments beyond the retention go, oldest first.
    report.deleted_acked = delete_acked(fs, dir, &mut segments, acked, opts)?;
    if dir_dirty || report.deleted_acked > 0 {
        fs.sync_dir(dir).map_err(|e| Error::io("fsync", dir, e))?;
    }

    report.next_seq = next_seq;
    report.pending_records = next_seq - 1 - acked;
    report.segments = segments.len();
    let counters = counters_after_open(&report, &segments);
    Ok(Recovered {
        report,
        lock,
        ledger,
        acked,
        next_seq,
        segments,
        active,
        counters,
    })
}

/// Creates segment `first_seq` durably: header written and synced, then the directory synced.
/// Returns the file and its length.
pub(crate) fn create_segment(
    fs: &dyn Fs,
    dir: &Path,
    first_seq: u64,
) -> Result<(Box<dyn FsFile>, u64)> {
    let path = segment_path(dir, first_seq);
    let f = fs
        .create_new(&path)
        .map_err(|e| Error::io("create", &path, e))?;
    f.write_at(&format::encode_segment_header(first_seq), 0)
        .map_err(|e| Error::io("write", &path, e))?;
    f.sync_data()
        .map_err(|e| Error::io("fdatasync", &path, e))?;
    fs.sync_dir(dir).map_err(|e| Error::io("fsync", dir, e))?;
    Ok((f, SEGMENT_HEADER_LEN as u64))
}
