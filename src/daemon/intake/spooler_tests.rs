//! The spool side of intake on a real spool whose filesystem is made to fail with ENOSPC on
//! demand: every packet ends up committed or refused exactly once, loss reports a full
//! filesystem dropped are spooled again once there is room, in order, and NFQUEUE's dropped
//! packets are not reported as lost.

use std::any::Any;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fwlog_spool::{DirEntry, Fs, FsFile, Item, Options, Reader, RealFs, Spool};
use tokio::sync::Notify;

use super::{Policy, Spooler};
use crate::counters::Counters;
use crate::nflog::attr::LossRecord;
use crate::nflog::loss::{Cause, LossEvent};

/// The real filesystem, except that writes fail with ENOSPC while `full` is set, and syncs
/// while `sync_full` is.
struct Flaky {
    full: Arc<AtomicBool>,
    sync_full: Arc<AtomicBool>,
    sync: Arc<SyncControl>,
}

/// Syncs wait while `hold` is set; a sync that did not wait fails with EIO while `eio` is.
#[derive(Default)]
struct SyncControl {
    hold: AtomicBool,
    eio: AtomicBool,
    /// A sync is waiting in `hold`.
    holding: AtomicBool,
}

struct FlakyFile {
    inner: Box<dyn FsFile>,
    full: Arc<AtomicBool>,
    sync_full: Arc<AtomicBool>,
    sync: Arc<SyncControl>,
}

impl FsFile for FlakyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.full.load(Ordering::Relaxed) {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.inner.write_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        let mut held = false;
        while self.sync.hold.load(Ordering::SeqCst) {
            held = true;
            self.sync.holding.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1));
        }
        if !held && self.sync.eio.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        if self.sync_full.load(Ordering::Relaxed) {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.inner.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl Flaky {
    fn wrap(&self, f: io::Result<Box<dyn FsFile>>) -> io::Result<Box<dyn FsFile>> {
        let (full, sync_full) = (Arc::clone(&self.full), Arc::clone(&self.sync_full));
        let sync = Arc::clone(&self.sync);
        f.map(|inner| {
            Box::new(FlakyFile {
                inner,
                full,
                sync_full,
                sync,
            }) as Box<dyn FsFile>
        })
    }
}

impl Fs for Flaky {
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        RealFs.open_read(path)
    }
    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.wrap(RealFs.open_rw(path))
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.wrap(RealFs.create_new(path))
    }
    fn create_dir(&self, path: &Path) -> io::Result<bool> {
        RealFs.create_dir(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        RealFs.read_dir(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealFs.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealFs.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        RealFs.sync_dir(path)
    }
    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        RealFs.lock_exclusive(path)
    }
    fn modified(&self, path: &Path) -> io::Result<std::time::SystemTime> {
        RealFs.modified(path)
    }
}

struct Rig {
    spool: Spooler<u32>,
    reader: Reader,
    full: Arc<AtomicBool>,
    sync_full: Arc<AtomicBool>,
    sync: Arc<SyncControl>,
    counters: Arc<Counters>,
    _dir: tempfile::TempDir,
}

fn rig(refused_are_lost: bool) -> Rig {
    rig_with(refused_are_lost, Options::default())
}

fn rig_with(refused_are_lost: bool, options: Options) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let full = Arc::new(AtomicBool::new(false));
    let sync_full = Arc::new(AtomicBool::new(false));
    let sync = Arc::new(SyncControl::default());
    let fs = Arc::new(Flaky {
        full: Arc::clone(&full),
        sync_full: Arc::clone(&sync_full),
        sync: Arc::clone(&sync),
    });
    let (writer, reader, _) = Spool::open_with_fs(fs, dir.path(), options).expect("spool");
    let counters = Arc::new(Counters::default());
    let policy = Policy {
        prefix: "test: ".into(),
        refused_are_lost,
        consequence: "counting them",
        outcome: "were refused",
        group: None,
    };
    let spool = Spooler::new(
        writer,
        Arc::clone(&counters),
        Arc::new(Notify::new()),
        policy,
    );
    Rig {
        spool,
        reader,
        full,
        sync_full,
        sync,
        counters,
        _dir: dir,
    }
}

/// A packet record that is not a loss record: a byte naming it.
fn packet(id: u32) -> Vec<u8> {
    vec![2, 0, 0, 5, id as u8]
}

/// What the spool holds, in order: `P<id>` for packets, `<cause>:<count>` for loss reports.
fn read_all(r: &mut Reader) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(item) = r.next_item().expect("read") {
        let Item::Record(rec) = item else {
            panic!("damage reported")
        };
        out.push(match LossRecord::decode(&rec.data) {
            Some(l) => format!("{}:{}", l.cause().name(), l.count.unwrap_or(0)),
            None => format!("P{}", rec.data[4]),
        });
    }
    out
}

fn settled(s: &mut Spooler<u32>) -> (Vec<u32>, Vec<u32>) {
    (
        std::mem::take(&mut s.committed),
        std::mem::take(&mut s.refused),
    )
}

#[test]
fn a_dropped_kernel_loss_report_is_spooled_again_before_the_spool_full_report() {
    let mut r = rig(true);
    let s = &mut r.spool;
    s.packet(&packet(1), 1, Some(100));
    s.commit(true).expect("commit");
    assert_eq!(settled(s), (vec![1], vec![]));

    r.full.store(true, Ordering::Relaxed);
    s.loss(LossEvent::now(Cause::Restart, None, 7, Some((101, 107))));
    s.packet(&packet(2), 2, Some(108));
    s.packet(&packet(3), 3, Some(109));
    s.commit(true).expect("a full filesystem is not an error");
    assert_eq!(settled(s), (vec![], vec![2, 3]));
    assert_eq!(
        s.accounted_upto(Some(109)),
        Some(100),
        "not past the owed report"
    );

    r.full.store(false, Ordering::Relaxed);
    s.packet(&packet(4), 4, Some(110));
    s.commit(true).expect("commit");
    assert_eq!(settled(s), (vec![4], vec![]));
    assert_eq!(s.accounted_upto(Some(110)), Some(110));
    assert_eq!(
        read_all(&mut r.reader),
        ["P1", "restart:7", "spool-full:2", "P4"],
        "in order: the owed report first, then what was refused, then the next packet"
    );
    let c = &r.counters;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    assert_eq!(
        (
            get(&c.spooled),
            get(&c.lost_spool_full),
            get(&c.lost_restart)
        ),
        (2, 2, 7),
        "counted once each, however often the report was appended"
    );
}

#[test]
fn while_the_filesystem_stays_full_reports_are_owed_and_count_every_refused_packet_once() {
    let mut r = rig(true);
    let s = &mut r.spool;
    r.full.store(true, Ordering::Relaxed);
    s.loss(LossEvent::now(Cause::SeqGap, Some(5), 3, None));
    s.packet(&packet(1), 1, None);
    s.commit(true).expect("full");
    for i in 2..50 {
        s.packet(&packet(i), i, None);
        s.round();
        s.commit(true).expect("full");
    }
    let (committed, refused) = settled(s);
    assert!(committed.is_empty());
    assert_eq!(
        refused,
        (1..50).collect::<Vec<_>>(),
        "each packet refused once"
    );
    r.full.store(false, Ordering::Relaxed);
    // Within the second after the last attempt nothing may be reported yet (the rate limit);
    // after it, everything owed is.
    s.round();
    s.commit(true).expect("commit");
    let early = read_all(&mut r.reader);
    std::thread::sleep(super::super::spooler::FULL_REPORT_EVERY);
    s.round();
    s.commit(true).expect("commit");
    let mut all = early;
    all.extend(read_all(&mut r.reader));
    assert_eq!(all, ["seq-gap:3", "spool-full:49"]);
}

#[test]
fn dropped_queue_packets_are_refused_but_not_reported_as_lost() {
    let mut r = rig(false);
    let s = &mut r.spool;
    r.full.store(true, Ordering::Relaxed);
    s.packet(&packet(1), 1, None);
    s.commit(true).expect("full");
    r.full.store(false, Ordering::Relaxed);
    s.packet(&packet(2), 2, None);
    s.finish().expect("commit at exit");
    assert_eq!(settled(s), (vec![2], vec![1]));
    assert_eq!(read_all(&mut r.reader), ["P2"]);
    assert_eq!(r.counters.lost_spool_full.load(Ordering::Relaxed), 0);
    assert_eq!(r.counters.spooled.load(Ordering::Relaxed), 1);
}

/// fwlog's default group commit (no batch delay): what a round appended is committed at the
/// end of that round, without waiting for more. A batch delay (an explicit `--batch-delay`)
/// still holds the batch back until it has passed or the batch is full.
#[test]
fn without_a_batch_delay_a_round_commits_at_once_and_with_one_it_waits() {
    let opts = |d| Options {
        batch_max_delay: d,
        ..Options::default()
    };
    let mut r = rig_with(true, opts(std::time::Duration::ZERO));
    r.spool.packet(&packet(1), 1, None);
    assert!(r.spool.commit(false).expect("commit").is_some());
    assert_eq!(settled(&mut r.spool).0, vec![1]);
    assert_eq!(
        r.spool.writer.commit_deadline(),
        None,
        "nothing left waiting"
    );

    let mut r = rig_with(true, opts(std::time::Duration::from_secs(60)));
    r.spool.packet(&packet(1), 1, None);
    assert!(r.spool.commit(false).expect("commit").is_none());
    assert!(settled(&mut r.spool).0.is_empty());
    assert!(r.spool.writer.commit_deadline().is_some());
}

/// NFLOG's rig with the spool's sync on its own thread, a commit due every round.
fn background_rig() -> Rig {
    rig_with(
        true,
        Options {
            background_sync: true,
            batch_max_delay: Duration::ZERO,
            ..Options::default()
        },
    )
}

/// Rounds of NFLOG's commit (when due, not waiting for the sync thread) until `done`.
fn rounds_until(s: &mut Spooler<u32>, mut done: impl FnMut(&Spooler<u32>) -> bool) {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while !done(s) {
        assert!(
            std::time::Instant::now() < end,
            "the sync thread never reported"
        );
        s.round();
        s.commit(false).expect("a full filesystem is not an error");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// With the spool's sync on its own thread: a packet counts as stored only once its sync is
/// reported, and a full filesystem found by the sync drops every unpublished packet (those
/// written while it ran too) as spool-full loss, reported in the stream.
#[test]
fn a_full_filesystem_found_by_the_sync_thread_is_spool_full_loss() {
    let mut r = background_rig();
    let s = &mut r.spool;
    s.packet(&packet(1), 1, Some(100));
    rounds_until(s, |s| !s.committed.is_empty());
    assert_eq!(settled(s), (vec![1], vec![]));

    r.sync_full.store(true, Ordering::Relaxed);
    s.packet(&packet(2), 2, Some(101));
    s.packet(&packet(3), 3, Some(102));
    s.commit(false).expect("written, the sync handed over");
    assert_eq!(settled(s), (vec![], vec![]), "not stored before its sync");
    s.packet(&packet(4), 4, Some(103));
    rounds_until(s, |s| s.refused.len() == 3);
    assert_eq!(settled(s), (vec![], vec![2, 3, 4]));
    assert_eq!(s.unreported().count, 3);

    r.sync_full.store(false, Ordering::Relaxed);
    s.packet(&packet(5), 5, Some(104));
    rounds_until(s, |s| s.committed.contains(&5));
    assert_eq!(
        read_all(&mut r.reader),
        ["P1", "spool-full:3", "P5"],
        "nothing the failed sync covered was shown"
    );
    let c = &r.counters;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    assert_eq!((get(&c.spooled), get(&c.lost_spool_full)), (2, 3));
}

/// A sync that fails for good (EIO) after an earlier one published without intake having heard
/// of it yet: the published packets are stored (the processing loop prints them), only those
/// the failed sync covered are refused and counted lost.
#[test]
fn a_failed_sync_refuses_only_what_no_earlier_sync_published() {
    let mut r = background_rig();
    let s = &mut r.spool;
    r.sync.hold.store(true, Ordering::SeqCst);
    s.packet(&packet(1), 1, Some(100));
    s.commit(false).expect("written, its sync held");
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while !r.sync.holding.load(Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < end,
            "the sync thread never synced"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    s.packet(&packet(2), 2, Some(101));
    s.commit(false).expect("written, its sync pending");
    assert_eq!(settled(s), (vec![], vec![]), "nothing reported durable yet");
    r.sync.eio.store(true, Ordering::SeqCst);
    r.sync.hold.store(false, Ordering::SeqCst);

    // The held sync publishes packet 1; the next one fails. Intake learns both at a commit.
    let end = std::time::Instant::now() + Duration::from_secs(10);
    let err = loop {
        assert!(
            std::time::Instant::now() < end,
            "the failure never reached intake"
        );
        if let Err(e) = s.commit(false) {
            break e;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(
        err.contains("Input/output error") || err.contains("EIO"),
        "{err}"
    );
    assert_eq!(settled(s), (vec![1], vec![2]));
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    assert_eq!(get(&r.counters.lost_other), 1);
    assert_eq!(
        read_all(&mut r.reader),
        ["P1"],
        "what was published stays shown"
    );
}
