//! Blocks reserved ahead of the active segment's end (`src/prealloc.rs`), on the simulated
//! filesystem and on the real one: the size never changes meaning, sealed and closed segments
//! hold no reserved blocks, their mtime is kept, a failing or unsupported reservation or
//! give-back loses nothing and is said once, the size cap bounds the reserved blocks too, and a
//! nearly full filesystem takes as many records as without reservations.

mod simfs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fwlog_spool::{FsyncPolicy, Options, Reader, Spool, Writer};
use simfs::SimFs;

const SEG: u64 = 16 * 1024;

fn opts(background_sync: bool) -> Options {
    Options {
        segment_bytes: SEG,
        fsync: FsyncPolicy::EveryCommit,
        background_sync,
        ..Options::default()
    }
}

fn payload(id: u64) -> Vec<u8> {
    let mut v = id.to_le_bytes().to_vec();
    v.resize(200 + (id as usize * 13) % 300, id as u8);
    v
}

fn segments(fs: &SimFs) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs
        .list()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// Appends records `ids` and commits them.
fn commit(w: &mut Writer, ids: std::ops::Range<u64>) {
    for id in ids {
        w.append(&payload(id)).unwrap();
    }
    w.commit_wait().unwrap();
}

/// Every record the spool holds, in order, as ids.
fn read_all(fs: &SimFs, o: Options) -> Vec<u64> {
    let (_w, mut r, _) = Spool::open_with_fs(Arc::new(fs.clone()), "/spool", o.clone()).unwrap();
    let mut ids = Vec::new();
    while let Some(rec) = r.next().unwrap() {
        let id = u64::from_le_bytes(rec.data[..8].try_into().unwrap());
        assert_eq!(rec.data, payload(id));
        ids.push(id);
    }
    ids
}

#[test]
fn the_segment_is_reserved_ahead_and_given_back_at_seal_and_close() {
    for background in [false, true] {
        let fs = SimFs::new();
        let (mut w, r, _) =
            Spool::open_with_fs(Arc::new(fs.clone()), "/spool", opts(background)).unwrap();
        commit(&mut w, 1..4);
        let first = segments(&fs)[0].clone();
        let len = fs.read(&first).unwrap().len() as u64;
        // The size is the bytes written; the rest of the segment is reserved behind it.
        assert_eq!(fs.reserved_past_size(&first), SEG - len, "{background}");
        let written_at = fs.mtime(&first).unwrap();
        // Later than the segment's last write, a record that does not fit seals it.
        fs.advance(Duration::from_secs(60));
        let mut id = 4;
        while segments(&fs).len() == 1 {
            commit(&mut w, id..id + 1);
            id += 1;
        }
        assert_eq!(fs.reserved_past_size(&first), 0, "sealed: given back");
        let last_write = fs.mtime(&first).unwrap();
        assert!(last_write >= written_at);
        let second = segments(&fs)[1].clone();
        assert!(fs.reserved_past_size(&second) > 0);
        fs.advance(Duration::from_secs(60));
        assert_eq!(
            fs.mtime(&first),
            Some(last_write),
            "giving back keeps the mtime"
        );
        drop((w, r));
        assert_eq!(fs.reserved_past_size(&second), 0, "closed: given back");
        assert_eq!(read_all(&fs, opts(background)), (1..id).collect::<Vec<_>>());
        assert_eq!(fs.reserve_calls(), 2, "one per segment");
    }
}

/// A spool whose reservations fail with `errno`, after its first commit (records 1 and 2), and
/// the notice that commit gave.
fn reservations_failing(errno: i32) -> (SimFs, Writer, Reader, String) {
    let fs = SimFs::new();
    fs.fail_reserve(Some(errno));
    let (mut w, r, _) = Spool::open_with_fs(Arc::new(fs.clone()), "/spool", opts(true)).unwrap();
    commit(&mut w, 1..3);
    let notice = w.take_notice().expect("said once");
    (fs, w, r, notice)
}

#[test]
fn a_filesystem_that_cannot_reserve_changes_nothing_and_is_asked_once() {
    let (fs, mut w, r, notice) = reservations_failing(libc::EOPNOTSUPP);
    assert!(
        notice.contains("appending without reserving blocks"),
        "{notice}"
    );
    for id in 3..200 {
        commit(&mut w, id..id + 1);
    }
    assert!(segments(&fs).len() > 3);
    assert!(w.take_notice().is_none(), "said once");
    assert_eq!(fs.reserve_calls(), 1, "not asked again");
    drop((w, r));
    assert_eq!(read_all(&fs, opts(true)), (1..200).collect::<Vec<_>>());
}

#[test]
fn a_failing_give_back_is_said_once_and_loses_nothing() {
    let fs = SimFs::new();
    fs.fail_release(Some(libc::EIO));
    let (mut w, r, _) = Spool::open_with_fs(Arc::new(fs.clone()), "/spool", opts(true)).unwrap();
    let mut notices = 0;
    for id in 1..200 {
        commit(&mut w, id..id + 1);
        notices += usize::from(w.take_notice().is_some());
    }
    assert!(segments(&fs).len() > 3);
    assert_eq!(notices, 1);
    // The blocks stay (until the segments are deleted); nothing else changes.
    assert!(fs.reserved_past_size(&segments(&fs)[0]) > 0);
    drop((w, r));
    fs.fail_release(None);
    assert_eq!(read_all(&fs, opts(true)), (1..200).collect::<Vec<_>>());
}

/// Appends and commits one record at a time until the filesystem refuses; returns how many
/// were committed and the ids read back.
fn fill(fs: &SimFs) -> (u64, Vec<u64>) {
    let (mut w, r, _) = Spool::open_with_fs(Arc::new(fs.clone()), "/spool", opts(true)).unwrap();
    fs.set_capacity(Some(160 * 1024 + 1024));
    let mut committed = 0;
    let mut misses = 0;
    for id in 1..2000 {
        let r = w.append(&payload(id)).map_err(|e| e.to_string());
        let r = r.and_then(|_| w.commit_wait().map_err(|e| e.to_string()));
        match r {
            Ok(_) => committed += 1,
            Err(_) => misses += 1,
        }
        if misses > 20 {
            break;
        }
    }
    drop((w, r));
    fs.set_capacity(None);
    (committed, read_all(fs, opts(true)))
}

#[test]
fn reserved_blocks_never_make_a_nearly_full_filesystem_refuse_records() {
    let plain = SimFs::new();
    plain.fail_reserve(Some(libc::EOPNOTSUPP));
    let (without, ids_without) = fill(&plain);
    let reserving = SimFs::new();
    let (with, ids_with) = fill(&reserving);
    assert!(
        reserving.reserve_calls() > 0,
        "segments were reserved before the disk filled"
    );
    assert!(without > 50, "{without}");
    assert_eq!(with, without);
    assert_eq!(ids_with, ids_without);
}

#[test]
fn a_reservation_that_finds_the_disk_full_is_given_back_at_once() {
    let (fs, mut w, _r, notice) = reservations_failing(libc::ENOSPC);
    assert!(notice.contains("for now"), "{notice}");
    for id in 3..200 {
        commit(&mut w, id..id + 1);
        assert!(w.take_notice().is_none());
    }
    // Asked again per segment, since a full disk is not a lasting refusal.
    assert!(segments(&fs).len() > 3);
    assert_eq!(fs.reserve_calls(), segments(&fs).len() as u64);
    assert!(segments(&fs).iter().all(|s| fs.reserved_past_size(s) == 0));
}

#[test]
fn reserved_blocks_stay_within_the_size_cap() {
    let fs = SimFs::new();
    let o = Options {
        max_bytes: 2 * SEG + SEG / 2,
        ..opts(true)
    };
    let (mut w, _r, _) = Spool::open_with_fs(Arc::new(fs.clone()), "/spool", o.clone()).unwrap();
    let ledger = 1024;
    let mut full = 0;
    for id in 1..400 {
        match w.append(&payload(id)) {
            Ok(_) => {}
            Err(_) => full += 1,
        }
        w.commit_wait().unwrap();
        assert!(
            fs.blocks_used() <= o.max_bytes + ledger,
            "{} > {}",
            fs.blocks_used(),
            o.max_bytes + ledger
        );
    }
    assert!(full > 0, "the cap was reached");
}

#[test]
fn recovery_gives_back_what_a_crash_left_on_the_last_segment() {
    // With retention by age a last segment holding records is sealed at open, not reused.
    let o = Options {
        retain_age: Some(Duration::from_secs(3600)),
        ..opts(true)
    };
    for seed in 1..20 {
        let fs = SimFs::new();
        let (mut w, _r, _) =
            Spool::open_with_fs(Arc::new(fs.clone()), "/spool", o.clone()).unwrap();
        commit(&mut w, 1..4);
        let seg = segments(&fs)[0].clone();
        assert!(fs.reserved_past_size(&seg) > 0);
        std::mem::forget(w); // no close: the process dies
        fs.crash(seed);
        let (_w, _r, rep) = Spool::open_with_fs(Arc::new(fs.clone()), "/spool", o.clone()).unwrap();
        assert_eq!(rep.next_seq, 4, "{rep}");
        assert_eq!(fs.reserved_past_size(&seg), 0, "seed {seed}");
    }
}

#[test]
fn a_process_killed_at_any_call_loses_nothing_committed() {
    // Every mutating call (reservations and give-backs among them) as the last one.
    for n in 0..60 {
        let fs = SimFs::new();
        let (mut w, _r, _) =
            Spool::open_with_fs(Arc::new(fs.clone()), "/spool", opts(false)).unwrap();
        fs.fail_after(n);
        let mut committed = 0;
        for id in 1..80 {
            if w.append(&payload(id)).is_err() || w.commit().is_err() {
                break;
            }
            committed = id;
        }
        std::mem::forget(w);
        fs.crash(n + 1);
        let ids = read_all(&fs, opts(false));
        assert!(
            ids.len() as u64 >= committed,
            "{n}: {} < {committed}",
            ids.len()
        );
        assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>(), "{n}");
    }
}

/// Blocks of the real file at `p` (`st_blocks` in bytes).
fn blocks(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().blocks() * 512
}

#[test]
fn on_the_real_filesystem_sealed_segments_keep_their_size_mtime_and_no_tail() {
    use std::os::unix::fs::MetadataExt;
    let d = tempfile::tempdir_in("/var/tmp").unwrap();
    let o = Options {
        segment_bytes: 1 << 20,
        fsync: FsyncPolicy::EveryCommit,
        background_sync: true,
        ..Options::default()
    };
    let (mut w, _r, _) = Spool::open(d.path(), o.clone()).unwrap();
    commit(&mut w, 1..10);
    let seg = |i: usize| {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        v.sort();
        v[i].clone()
    };
    let first = seg(0);
    let size = std::fs::metadata(&first).unwrap().len();
    // Where the filesystem reserves (ext4, XFS, tmpfs, ...), the whole segment is allocated.
    let reserved = blocks(&first) >= o.segment_bytes;
    eprintln!(
        "size {size}, blocks {}, reserved {reserved}",
        blocks(&first)
    );
    let mut id = 10;
    // Fill the segment up to the record that seals it, then wait so that a later mtime would
    // show.
    while !w.seals_before(payload(id).len()) {
        commit(&mut w, id..id + 1);
        id += 1;
    }
    let m = std::fs::metadata(&first).unwrap();
    let (mtime_s, mtime) = (m.mtime(), m.mtime_nsec());
    std::thread::sleep(Duration::from_millis(1100));
    commit(&mut w, id..id + 1);
    let m = std::fs::metadata(&first).unwrap();
    assert!(m.len() <= o.segment_bytes);
    assert!(
        blocks(&first) < m.len() + 4096 + 4096,
        "no tail: {} blocks for {} bytes",
        blocks(&first),
        m.len()
    );
    assert_eq!((m.mtime(), m.mtime_nsec()), (mtime_s, mtime), "mtime kept");
    let second = seg(1);
    if reserved {
        assert!(blocks(&second) >= o.segment_bytes / 2);
    }
    assert!(w.take_notice().is_none() || !reserved);
    drop(w);
    let m = std::fs::metadata(&second).unwrap();
    assert!(blocks(&second) < m.len() + 8192, "closed: no tail");
}

#[test]
fn on_tmpfs_nothing_is_reserved() {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("no /dev/shm: skipped");
        return;
    }
    let d = tempfile::tempdir_in(shm).unwrap();
    let o = Options {
        segment_bytes: 1 << 20,
        fsync: FsyncPolicy::EveryCommit,
        ..Options::default()
    };
    let (mut w, r, _) = Spool::open(d.path(), o.clone()).unwrap();
    commit(&mut w, 1..10);
    let seg = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    assert!(
        blocks(&seg) < len + 8192,
        "{} blocks for {len} bytes",
        blocks(&seg)
    );
    assert!(w.take_notice().is_none(), "not a failure");
    drop((w, r));
}
