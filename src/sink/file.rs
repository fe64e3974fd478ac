//! File and stdout sinks: O_APPEND writes, resumable after a failure, optionally fdatasync'd.
//!
//! What an output path may be:
//! - a regular file (created 0640 if missing): appended to, `fdatasync`ed per batch when the
//!   sink syncs, or only at the [`Sink::sync`] that follows a run of
//!   [`Sink::write_unsynced`] batches (the processing loop's open span: a backlog draining, or
//!   live traffic's last `live_span`, see `pipeline::commit`); at open, only a torn tail fwlog
//!   itself left is cut (see [`super::tail`]). The batch start recorded for that cut stays at
//!   the oldest batch not yet synced, so a crash anywhere in an unsynced run leaves a tail
//!   fwlog may cut;
//! - a FIFO, socket or character device (`/dev/null`, a terminal): an unsyncable stream. It is
//!   never synced (fdatasync fails there) or cut, and it is written non-blocking: a full one is
//!   waited on for room at most `STREAM_WAIT` (10 ms) per batch, then the write returns
//!   [`io::ErrorKind::WouldBlock`] (the caller waits and retries) instead of blocking the
//!   processing loop and its signals;
//! - `-` (standard output): the same when it is a pipe, socket or device (see
//!   `sink/stdout.rs`); a regular file or a terminal is written blocking.
//!
//! SIGHUP ([`Sink::reopen`]) never splits a batch: while part of a batch is written and the
//! rest is not, the reopen waits until the batch is whole in the old file; while batches are
//! written and not synced, it waits for the sync (the next batch is then written synced). A reopen that fails
//! keeps the old file and is tried again, at most once a second, before later batches.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::stdout::Stdout;
use super::tail::{self, Settled};
use super::{Sink, WRITE_CHUNK};

/// An unsynced batch this large (a backlog's) starts its writeback at once; smaller ones (live
/// traffic, a few KiB each) are left to the sync that closes the span: a writeback per small
/// batch would cost the block I/O per batch that the span saves.
const WRITEBACK_FROM: usize = 1 << 20;

/// A failed reopen is tried again at most this often.
const REOPEN_RETRY: Duration = Duration::from_secs(1);

/// A full pipe, FIFO or socket is waited on for room this long per batch before the write
/// returns WouldBlock: a reader that keeps reading (`fwlog read x.pcap | grep`) frees room in
/// microseconds, and returning at once would make the caller sleep its retry interval per
/// pipeful (a fifth of the throughput, measured); a reader that stopped costs the processing
/// loop at most this long per attempt, so it still answers its signals.
const STREAM_WAIT: Duration = Duration::from_millis(10);

/// Wait until `fd` can take more (or has an error for the next write to report), at most
/// until `until`.
fn writable(fd: RawFd, until: Instant) -> bool {
    let left = until.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return false;
    }
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // Rounded up: a 0 ms timeout would not wait at all.
    let ms = left.as_millis().max(1).min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd for the call.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

pub struct FileSink {
    path: Option<PathBuf>,
    file: Option<File>,
    /// How standard output is written when there is no path (see [`super::stdout`]).
    stdout: Stdout,
    /// Not a regular file: never synced, cut or marked.
    stream: bool,
    /// A regular file on a local filesystem ([`LOCAL_FS`]): an unsynced write only copies.
    local: bool,
    sync: bool,
    /// Bytes of the current batch already written (resumption point after an error).
    done: usize,
    /// Batches were written to the file and not yet synced (see [`Sink::write_unsynced`]).
    owed: bool,
    /// SIGHUP asked for a reopen not done yet (a batch was half written, or the open failed),
    /// and when it was last tried.
    reopen_wanted: Option<Option<Instant>>,
    /// The batch start recorded on the file (see [`tail`]); `None` where it cannot be recorded.
    marked: Option<u64>,
    can_mark: bool,
}

struct Opened {
    file: File,
    stream: bool,
    local: bool,
}

/// Filesystems whose writes land in this machine's page cache and block devices: ext2/3/4,
/// XFS, Btrfs, tmpfs, F2FS, overlayfs, ZFS, bcachefs. Anything else (NFS, SMB, FUSE, Ceph, a
/// type not listed) may wait for a server on a plain write.
const LOCAL_FS: [u32; 8] = [
    0xEF53,
    0x5846_5342,
    0x9123_683E,
    0x0102_1994,
    0xF2F5_2010,
    0x794C_7630,
    0x2FC1_2FC1,
    0xCA45_1A4E,
];

/// Whether `f` is on a filesystem of [`LOCAL_FS`] (false if that cannot be told).
fn on_local_fs(f: &File) -> bool {
    // SAFETY: an all-zero statfs is a valid value for fstatfs to fill.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a valid, writable statfs.
    if unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    // `f_type` is a signed word of the platform's size: 32-bit targets see Btrfs' magic as
    // negative; the magic numbers are 32-bit values either way.
    LOCAL_FS.contains(&(st.f_type as u32))
}

fn open_output(path: &Path) -> io::Result<Opened> {
    let untrusted = crate::dirfd::planted_by_others(path);
    // O_NONBLOCK: an open of a FIFO never waits for a reader (with O_RDWR it would not anyway)
    // and its writes never block; no effect on regular files. O_NOFOLLOW where another user
    // could have planted a link for root to write through.
    let nofollow = if untrusted { libc::O_NOFOLLOW } else { 0 };
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC | nofollow)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) if untrusted => io::Error::new(
                e.kind(),
                "a symbolic link in a directory other users can write; root does not follow it",
            ),
            _ => e,
        })?;
    let meta = file.metadata()?;
    {
        use std::os::unix::fs::MetadataExt;
        if untrusted && meta.file_type().is_file() && meta.nlink() > 1 {
            return Err(io::Error::other(
                "has more than one hard link in a directory other users can write; root does not write to it",
            ));
        }
    }
    let stream = !meta.file_type().is_file();
    let local = !stream && on_local_fs(&file);
    if !stream {
        match tail::settle(&file, path)? {
            Settled::Clean => {}
            Settled::Cut(n) => crate::say!(
                "fwlog: {}: removed {n} bytes fwlog left at a crash during a write (a partial last line or lines torn by a power cut); their packets are printed again",
                path.display()
            ),
            Settled::Terminated => crate::say!(
                "fwlog: {}: does not end in a newline and fwlog did not leave that tail; kept it and added a newline",
                path.display()
            ),
        }
    }
    Ok(Opened {
        file,
        stream,
        local,
    })
}

impl FileSink {
    pub fn open(path: &Path, sync: bool) -> io::Result<FileSink> {
        let o = open_output(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(FileSink {
            path: Some(path.to_path_buf()),
            file: Some(o.file),
            stdout: Stdout::Blocking,
            stream: o.stream,
            local: o.local,
            sync,
            done: 0,
            owed: false,
            reopen_wanted: None,
            marked: None,
            can_mark: true,
        })
    }

    /// Standard output: non-blocking when it is a pipe, socket or device (see
    /// [`super::stdout`]), so a stalled reader cannot hold the processing loop.
    pub fn stdout() -> FileSink {
        FileSink {
            path: None,
            file: None,
            stdout: Stdout::open(),
            stream: true,
            local: false,
            sync: false,
            done: 0,
            owed: false,
            reopen_wanted: None,
            marked: None,
            can_mark: false,
        }
    }

    /// The descriptor a non-blocking write goes to (None: blocking stdout).
    fn raw_fd(&self) -> Option<RawFd> {
        match &self.file {
            Some(f) => Some(f.as_raw_fd()),
            None => self.stdout.raw_fd(),
        }
    }

    /// Between batches: do a reopen SIGHUP asked for, if it is due.
    fn reopen_if_wanted(&mut self) {
        let Some(last) = self.reopen_wanted else {
            return;
        };
        if self.done > 0 || self.owed || last.is_some_and(|t| t.elapsed() < REOPEN_RETRY) {
            return;
        }
        let first_try = last.is_none();
        match self.try_reopen() {
            Ok(()) if !first_try => {
                crate::say!("fwlog: {}: reopened", self.describe());
            }
            Ok(()) => {}
            Err(e) => {
                // A reopen that waited for a batch or a sync fails here, not in `reopen`: said
                // once, as `reopen`'s caller says an immediate failure.
                if first_try {
                    crate::say!("fwlog: SIGHUP: cannot reopen {}: {e}", self.describe());
                }
                self.reopen_wanted = Some(Some(Instant::now()));
            }
        }
    }

    fn try_reopen(&mut self) -> io::Result<()> {
        if let Some(p) = &self.path {
            let o = open_output(p)?;
            self.file = Some(o.file);
            self.stream = o.stream;
            self.local = o.local;
            self.marked = None;
            self.can_mark = true;
        }
        self.reopen_wanted = None;
        Ok(())
    }

    /// Record where this batch starts, so that a crash in it leaves a tail fwlog may cut. Not
    /// while earlier batches are unsynced: the mark stays at the oldest of them, since a power
    /// cut may leave any of them torn.
    fn mark_batch_start(&mut self) -> io::Result<()> {
        let Some(f) = &self.file else {
            return Ok(());
        };
        if self.stream || !self.can_mark || self.done > 0 || self.owed {
            return Ok(());
        }
        let at = f.metadata()?.len();
        if self.marked != Some(at) {
            self.can_mark = tail::record_start(f, at);
            self.marked = Some(at);
        }
        Ok(())
    }
}

impl FileSink {
    /// Write the rest of the batch (from `done`), without syncing.
    fn write_lines(&mut self, lines: &[u8]) -> io::Result<()> {
        self.mark_batch_start()?;
        let wait_until = Instant::now() + STREAM_WAIT;
        while self.done < lines.len() {
            // At most WRITE_CHUNK per call: see there for what a larger write costs.
            let rest = &lines[self.done..];
            let rest = &rest[..rest.len().min(WRITE_CHUNK)];
            let n = match &mut self.file {
                Some(f) => f.write(rest),
                None => self.stdout.write(rest),
            };
            match n {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "wrote nothing")),
                Ok(n) => self.done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        && self.raw_fd().is_some_and(|fd| writable(fd, wait_until)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sync what was written (a syncing regular file), flush standard output.
    fn sync_now(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) if self.sync && !self.stream => f
                .sync_data()
                .map_err(|e| io::Error::new(e.kind(), super::SyncFailed(e)))?,
            Some(_) => {}
            None => self.stdout.flush()?,
        }
        self.owed = false;
        Ok(())
    }
}

impl Sink for FileSink {
    fn write_batch(&mut self, lines: &[u8]) -> io::Result<()> {
        self.reopen_if_wanted();
        self.write_lines(lines)?;
        self.sync_now()?;
        self.done = 0;
        self.reopen_if_wanted();
        Ok(())
    }

    fn write_unsynced(&mut self, lines: &[u8]) -> io::Result<()> {
        let syncs = self.sync && !self.stream && self.file.is_some();
        if !syncs || self.reopen_wanted.is_some() {
            // Nothing to defer, or a reopen waits for this file's sync: written whole now.
            return self.write_batch(lines);
        }
        self.write_lines(lines)?;
        self.owed = true;
        self.done = 0;
        match &self.file {
            Some(f) if lines.len() >= WRITEBACK_FROM => {
                // Start the writeback of what is dirty now, so that the sync that closes the
                // run waits for less. On the committer thread, which is otherwise idle while
                // the loop formats the next batch. Advisory: an error shows at that sync.
                // SAFETY: a valid descriptor; offset 0 and length 0 mean the whole file.
                unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
            }
            _ => {}
        }
        Ok(())
    }

    fn copies_only(&self, len: usize) -> bool {
        // A large batch starts its writeback (`sync_file_range`, which may wait for the
        // device's queue); a reopen makes the write a synced one; a network filesystem's
        // write may wait for its server.
        len < WRITEBACK_FROM && self.local && self.file.is_some() && self.reopen_wanted.is_none()
    }

    fn sync(&mut self) -> io::Result<()> {
        if self.owed {
            self.sync_now()?;
        }
        self.reopen_if_wanted();
        Ok(())
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.reopen_wanted = Some(None);
        if self.done > 0 || self.owed {
            // Half a batch is in the old file, or batches not yet synced: the rest goes there
            // too and is synced there, then the reopen.
            return Ok(());
        }
        let r = self.try_reopen();
        if r.is_err() {
            self.reopen_wanted = Some(Some(Instant::now()));
        }
        r
    }

    fn describe(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "-".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_larger_than_a_write_chunk_lands_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut s = FileSink::open(&path, true).unwrap();
        let lines: Vec<u8> = (0..2 * WRITE_CHUNK + 777)
            .map(|i| {
                if i % 80 == 79 {
                    b'\n'
                } else {
                    b'a' + (i % 26) as u8
                }
            })
            .collect();
        s.write_batch(b"first\n").unwrap();
        s.write_unsynced(&lines).unwrap();
        s.sync().unwrap();
        let back = std::fs::read(&path).unwrap();
        assert_eq!(&back[..6], b"first\n");
        assert!(back[6..] == lines[..], "every chunk once, in order");
    }

    #[test]
    fn reopen_after_rename_writes_each_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut s = FileSink::open(&path, true).unwrap();
        s.write_batch(b"one\n").unwrap();
        std::fs::rename(&path, dir.path().join("log.1")).unwrap();
        s.write_batch(b"two\n").unwrap(); // still the old file, as logrotate expects
        s.reopen().unwrap();
        s.write_batch(b"three\n").unwrap();
        let old = std::fs::read_to_string(dir.path().join("log.1")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!((old.as_str(), new.as_str()), ("one\ntwo\n", "three\n"));
    }

    #[test]
    fn a_torn_batch_fwlog_left_is_cut_on_open_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut s = FileSink::open(&path, false).unwrap();
        s.write_batch(b"one\ntwo\n").unwrap();
        s.write_batch(b"three\n").unwrap();
        drop(s);
        if tail::recorded_start(&File::open(&path).unwrap()).is_none() {
            crate::say!("SKIP: no user xattrs on this filesystem");
            return;
        }
        // A crash in the middle of the next batch: its start was recorded before it began.
        let f = OpenOptions::new().append(true).open(&path).unwrap();
        tail::record_start(&f, 14);
        (&f).write_all(b"fou").unwrap();
        let mut s = FileSink::open(&path, false).unwrap();
        s.write_batch(b"four\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "one\ntwo\nthree\nfour\n"
        );
    }

    /// Batches written unsynced keep the torn-tail mark at the first of them (a power cut may
    /// tear any of them); the sync ends the run and the next batch is marked afresh.
    #[test]
    fn unsynced_batches_keep_the_mark_at_the_oldest_until_the_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut s = FileSink::open(&path, true).unwrap();
        s.write_batch(b"zero\n").unwrap();
        let mark = || tail::recorded_start(&File::open(&path).unwrap());
        if mark().is_none() {
            crate::say!("SKIP: no user xattrs on this filesystem");
            return;
        }
        s.write_unsynced(b"one\n").unwrap();
        assert_eq!(mark(), Some(5));
        s.write_unsynced(b"two\n").unwrap();
        s.write_unsynced(b"three\n").unwrap();
        assert_eq!(mark(), Some(5), "the mark moved past an unsynced batch");
        assert!(s.owed);
        s.sync().unwrap();
        assert!(!s.owed);
        s.write_unsynced(b"four\n").unwrap();
        assert_eq!(mark(), Some(19));
        // A synced batch after unsynced ones syncs them all, and is not marked on its own.
        s.write_batch(b"five\n").unwrap();
        assert_eq!(mark(), Some(19));
        assert!(!s.owed);
        s.write_batch(b"six\n").unwrap();
        assert_eq!(mark(), Some(29));
        // A crash in the middle of an unsynced run: everything from its start that is not a
        // whole line is cut at the next open, the whole lines stay (printed again later).
        s.write_unsynced(b"seven\n").unwrap();
        s.write_unsynced(b"eight\n").unwrap();
        drop(s);
        let f = OpenOptions::new().append(true).open(&path).unwrap();
        (&f).write_all(b"nin").unwrap();
        drop(FileSink::open(&path, true).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "zero\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\n"
        );
    }

    /// A reopen asked for while batches are unsynced waits for their sync in the old file.
    #[test]
    fn a_reopen_waits_for_the_sync_of_unsynced_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut s = FileSink::open(&path, true).unwrap();
        s.write_unsynced(b"one\n").unwrap();
        std::fs::rename(&path, dir.path().join("log.1")).unwrap();
        s.reopen().unwrap();
        // The next batch, asked for unsynced, goes whole to the old file, synced, then the
        // reopen.
        s.write_unsynced(b"two\n").unwrap();
        assert!(!s.owed);
        s.write_unsynced(b"three\n").unwrap();
        s.sync().unwrap();
        let old = std::fs::read_to_string(dir.path().join("log.1")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!((old.as_str(), new.as_str()), ("one\ntwo\n", "three\n"));
    }

    /// Only a local regular file's small unsynced write is a copy into the page cache: not a FIFO
    /// (its reader may be slow), not standard output, not a batch large enough to start its
    /// writeback, not while a reopen waits (the write is a synced one then).
    #[test]
    fn only_a_regular_files_small_unsynced_write_copies_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut s = FileSink::open(&path, true).unwrap();
        if !s.local {
            eprintln!("SKIP: the temporary directory is not on a filesystem of LOCAL_FS");
            return;
        }
        assert!(s.copies_only(64 << 10));
        assert!(!s.copies_only(WRITEBACK_FROM));
        s.write_unsynced(b"one\n").unwrap();
        assert!(s.copies_only(4));
        s.reopen().unwrap();
        assert!(!s.copies_only(4), "a reopen waits for the sync");
        s.write_unsynced(b"two\n").unwrap();
        assert!(s.copies_only(4), "reopened");
        assert!(!FileSink::stdout().copies_only(4));
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Read-write, so the non-blocking open finds a reader.
        let f = FileSink::open(&fifo, true).unwrap();
        assert!(!f.copies_only(4));
    }

    #[test]
    fn local_filesystems_are_told_by_their_type() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("x")).unwrap();
        // SAFETY: as in `on_local_fs`.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: a valid descriptor and a valid, writable statfs.
        assert_eq!(unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) }, 0);
        let listed = LOCAL_FS.contains(&(st.f_type as u32));
        assert_eq!(on_local_fs(&f), listed);
        assert_eq!(
            FileSink::open(&dir.path().join("log"), true).unwrap().local,
            listed
        );
        // /proc is no filesystem to write lines to, and not in the list; tmpfs is local.
        assert!(!on_local_fs(&File::open("/proc/self/stat").unwrap()));
        let shm = tempfile::tempfile_in("/dev/shm").unwrap();
        assert!(on_local_fs(&shm), "tmpfs");
    }

    #[test]
    fn a_half_written_batch_is_finished_in_the_old_file_before_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut s = FileSink::open(&path, false).unwrap();
        s.write_batch(b"one\n").unwrap();
        // As if a write had failed half way through the next batch.
        s.done = 2;
        std::fs::write(&path, b"one\ntw").unwrap();
        std::fs::rename(&path, dir.path().join("log.1")).unwrap();
        s.reopen().unwrap();
        s.write_batch(b"two\n").unwrap();
        s.write_batch(b"three\n").unwrap();
        let old = std::fs::read_to_string(dir.path().join("log.1")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!((old.as_str(), new.as_str()), ("one\ntwo\n", "three\n"));
    }

    #[test]
    fn a_failed_reopen_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("log");
        let mut s = FileSink::open(&path, false).unwrap();
        std::fs::rename(&sub, dir.path().join("gone")).unwrap();
        assert!(s.reopen().is_err(), "the directory is gone");
        s.write_batch(b"one\n").unwrap();
        std::fs::create_dir(&sub).unwrap();
        std::thread::sleep(REOPEN_RETRY);
        // The retry comes before the batch: it goes whole to the new file.
        s.write_batch(b"two\n").unwrap();
        let old = std::fs::read_to_string(dir.path().join("gone/log")).unwrap();
        assert_eq!(old, "one\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
    }

    #[test]
    fn a_full_stream_is_waited_on_until_room_or_the_deadline() {
        use std::io::Read;
        use std::os::fd::{FromRawFd, OwnedFd};
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        assert_eq!(
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) },
            0
        );
        // SAFETY: both were just created and belong to nobody else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let (mut r, mut w) = (File::from(r), File::from(w));
        while w.write(&[0u8; 4096]).is_ok() {}
        let t = Instant::now();
        assert!(!writable(w.as_raw_fd(), t + Duration::from_millis(30)));
        assert!(
            t.elapsed() >= Duration::from_millis(25),
            "{:?}",
            t.elapsed()
        );
        assert!(
            !writable(w.as_raw_fd(), t),
            "a deadline passed waits for nothing"
        );
        let mut buf = vec![0u8; 65536];
        assert!(r.read(&mut buf).unwrap() > 0);
        assert!(writable(
            w.as_raw_fd(),
            Instant::now() + Duration::from_secs(5)
        ));
    }

    #[test]
    fn unwritable_path_is_a_clear_error() {
        let e = FileSink::open(Path::new("/nonexistent-dir/x/log"), false)
            .err()
            .expect("error");
        assert!(e.to_string().contains("/nonexistent-dir/x/log"), "{e}");
    }
}
