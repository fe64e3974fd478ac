//! Behaviour of the spool on the real filesystem: round trips, acknowledgement and deletion,
//! reopening, locking, the size cap, waiting, and read-only replay.

use std::time::{Duration, Instant};

use fwlog_spool::{
    AppendError, Error, FsyncPolicy, Options, ReadOnlySpool, Spool, LEDGER_FILE, LOCK_FILE,
};

fn small() -> Options {
    Options {
        segment_bytes: 4096,
        ..Options::default()
    }
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq as usize * 31 + i) as u8).collect()
}

fn drain(r: &mut fwlog_spool::Reader) -> Vec<fwlog_spool::Record> {
    let mut v = Vec::new();
    while let Some(rec) = r.next().expect("next") {
        v.push(rec);
    }
    v
}

#[test]
fn append_commit_read_ack_reopen() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("spool");
    let (mut w, mut r, rep) = Spool::open(&dir, small()).unwrap();
    assert_eq!(rep.next_seq, 1);
    assert_eq!(rep.segments, 1);
    for i in 1..=100u64 {
        assert_eq!(w.append(&payload(i, 100 + i as usize)).unwrap(), i);
        if i == 5 {
            // Not visible before commit.
            assert!(r.next().unwrap().is_none());
        }
    }
    // Segment rollover committed all but the records in the last segment implicitly.
    assert!(r.next().unwrap().is_some());
    assert!(w.batch_len() > 0);
    let c = w.commit().unwrap();
    assert_eq!(c.written, 100);
    assert_eq!(c.durable, 100);
    let mut got = vec![fwlog_spool::Record {
        seq: 1,
        data: payload(1, 101),
        recovered: false,
    }];
    got.extend(drain(&mut r));
    assert_eq!(got.len(), 100);
    for (i, rec) in got.iter().enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(rec.seq, seq);
        assert_eq!(rec.data, payload(seq, 100 + seq as usize));
        assert!(!rec.recovered);
    }
    // Small segments: many were created.
    let segs_before = w.stats().segments;
    assert!(segs_before > 3, "{segs_before}");
    r.ack(60).unwrap();
    let st = r.stats();
    assert!(st.segments < segs_before);
    assert_eq!(st.acked_seq, 60);
    assert_eq!(st.pending_records, 40);
    assert!(matches!(
        r.ack(101),
        Err(Error::AckBeyondDelivered { upto: 101, .. })
    ));
    drop((w, r));

    let (mut w, mut r, rep) = Spool::open(&dir, small()).unwrap();
    assert_eq!(rep.acked_seq, 60);
    assert_eq!(rep.next_seq, 101);
    assert_eq!(rep.bytes_truncated, 0);
    assert!(rep.quarantined.is_empty());
    let got = drain(&mut r);
    assert_eq!(got.first().map(|r| r.seq), Some(61));
    assert_eq!(got.len(), 40);
    assert!(got.iter().all(|r| r.recovered));
    assert_eq!(w.append(b"after reopen").unwrap(), 101);
    w.commit().unwrap();
    let rec = r.next().unwrap().unwrap();
    assert_eq!((rec.seq, rec.recovered), (101, false));
    r.ack(101).unwrap();
    assert_eq!(r.stats().segments, 1);
}

#[test]
fn second_open_is_locked_and_lock_released_on_drop() {
    let d = tempfile::tempdir().unwrap();
    let (w, r, _) = Spool::open(d.path(), Options::default()).unwrap();
    match Spool::open(d.path(), Options::default()) {
        Err(Error::Locked { lock, .. }) => assert_eq!(lock, d.path().join(LOCK_FILE)),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("second open succeeded"),
    }
    // The writer alone keeps the lock too.
    drop(r);
    assert!(Spool::open(d.path(), Options::default()).is_err());
    drop(w);
    Spool::open(d.path(), Options::default()).unwrap();
}

#[test]
fn full_spool_rejects_counts_and_recovers_after_ack() {
    let d = tempfile::tempdir().unwrap();
    let opts = Options {
        segment_bytes: 4096,
        max_bytes: 16 * 1024,
        ..Options::default()
    };
    let (mut w, mut r, _) = Spool::open(d.path(), opts).unwrap();
    let mut accepted = 0u64;
    let mut rejected = 0u64;
    for i in 0..200u64 {
        match w.append(&payload(i, 300)) {
            Ok(_) => accepted += 1,
            Err(AppendError::Full { limit, .. }) => {
                assert_eq!(limit, 16 * 1024);
                rejected += 1;
            }
            Err(e) => panic!("{e}"),
        }
        w.commit().unwrap();
    }
    assert!(accepted > 0 && rejected > 0);
    let st = w.stats();
    assert_eq!(st.rejected_full_records, rejected);
    assert_eq!(st.rejected_full_bytes, rejected * 300);
    assert!(st.disk_bytes <= 16 * 1024, "{}", st.disk_bytes);
    // Acknowledging everything frees space and appends succeed again.
    let got = drain(&mut r);
    assert_eq!(got.len() as u64, accepted);
    r.ack(got.last().unwrap().seq).unwrap();
    w.append(&payload(1, 300)).unwrap();
    assert!(matches!(
        w.append(&vec![0u8; 2 * 1024 * 1024]),
        Err(AppendError::TooLarge { .. })
    ));
    assert_eq!(w.stats().rejected_too_large, 1);
}

#[test]
fn append_with_builds_the_record_in_place_and_takes_back_a_wrong_length_or_a_panic() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, mut r, _) = Spool::open(d.path(), small()).unwrap();
    let (a, b) = (payload(1, 70), payload(2, 33));
    let whole = [&a[..], &b[..]].concat();
    let seq = w
        .append_with(whole.len(), |buf| {
            buf.extend_from_slice(&a);
            buf.extend_from_slice(&b);
        })
        .unwrap();
    assert_eq!(seq, 1);
    // A filler that writes more or less than it promised stores nothing; the writer goes on.
    for wrong in [whole.len() - 1, whole.len() + 1] {
        let e = w.append_with(whole.len(), |buf| buf.extend_from_slice(&vec![7u8; wrong]));
        assert!(
            matches!(e, Err(AppendError::Length { len, wrote }) if len == whole.len() && wrote == wrong),
            "{e:?}"
        );
    }
    // Refused before the filler runs: it is never called.
    let e = w.append_with(2 * 1024 * 1024, |_| {
        panic!("filler called for a refused record")
    });
    assert!(matches!(e, Err(AppendError::TooLarge { .. })), "{e:?}");
    // A filler that panics halfway: the header and its bytes are taken back as it unwinds, and
    // the records appended before it stay whole.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        w.append_with(100, |buf| {
            buf.extend_from_slice(&[5u8; 60]);
            assert_eq!(buf.len(), 60);
            panic!("filler gave up");
        })
    }));
    assert!(caught.is_err());
    // The filler sees only its own payload: it starts empty whatever the batch holds.
    let e = w.append_with(3, |buf| {
        assert!(buf.is_empty());
        buf.push(1);
        buf.push(2);
    });
    assert!(
        matches!(e, Err(AppendError::Length { len: 3, wrote: 2 })),
        "{e:?}"
    );
    assert_eq!(w.append(&payload(3, 40)).unwrap(), 2);
    w.commit().unwrap();
    let got = drain(&mut r);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].seq, &got[0].data), (1, &whole));
    assert_eq!((got[1].seq, &got[1].data), (2, &payload(3, 40)));
}

#[test]
fn reader_waits_for_writer_thread() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, mut r, _) = Spool::open(d.path(), small()).unwrap();
    let t0 = Instant::now();
    assert!(!r.wait(Duration::from_millis(30)));
    assert!(t0.elapsed() >= Duration::from_millis(30));
    let h = std::thread::spawn(move || {
        for i in 1..=2000u64 {
            w.append(&payload(i, 150)).unwrap();
            if w.batch_len() >= 37 {
                w.commit().unwrap();
            }
        }
        w.close().unwrap();
    });
    let mut next = 1u64;
    loop {
        while let Some(rec) = r.next().unwrap() {
            assert_eq!(rec.seq, next);
            assert_eq!(rec.data, payload(next, 150));
            next += 1;
            if next.is_multiple_of(100) {
                r.ack(rec.seq).unwrap();
            }
        }
        if !r.wait(Duration::from_secs(5)) {
            break;
        }
    }
    h.join().unwrap();
    assert_eq!(next, 2001);
}

#[test]
fn group_commit_deadline() {
    let d = tempfile::tempdir().unwrap();
    let opts = Options {
        batch_max_records: 3,
        batch_max_delay: Duration::from_millis(20),
        ..Options::default()
    };
    let (mut w, _r, _) = Spool::open(d.path(), opts).unwrap();
    assert!(w.commit_deadline().is_none());
    w.append(b"a").unwrap();
    assert!(!w.commit_due());
    assert!(w.commit_if_due().unwrap().is_none());
    std::thread::sleep(Duration::from_millis(25));
    assert!(w.commit_due());
    assert_eq!(w.commit_if_due().unwrap().unwrap().durable, 1);
    for _ in 0..3 {
        w.append(b"b").unwrap();
    }
    assert!(w.commit_due());
    assert_eq!(w.commit_if_due().unwrap().unwrap().written, 4);
}

#[test]
fn relaxed_fsync_policies_report_durable_separately() {
    let d = tempfile::tempdir().unwrap();
    let opts = Options {
        fsync: FsyncPolicy::Never,
        ..Options::default()
    };
    let (mut w, mut r, _) = Spool::open(d.path(), opts).unwrap();
    w.append(b"x").unwrap();
    let c = w.commit().unwrap();
    assert_eq!((c.written, c.durable), (1, 0));
    // Visible to the reader once written.
    assert_eq!(r.next().unwrap().unwrap().seq, 1);
    assert_eq!(w.close().unwrap().durable, 1);

    let d = tempfile::tempdir().unwrap();
    let opts = Options {
        fsync: FsyncPolicy::Interval(Duration::from_millis(30)),
        ..Options::default()
    };
    let (mut w, _r, _) = Spool::open(d.path(), opts).unwrap();
    std::thread::sleep(Duration::from_millis(35));
    w.append(b"x").unwrap();
    assert_eq!(w.commit().unwrap().durable, 1);
    w.append(b"y").unwrap();
    assert_eq!(
        w.commit().unwrap(),
        fwlog_spool::Commit {
            written: 2,
            durable: 1
        }
    );
    // The pending sync makes a commit due even with nothing new appended.
    assert!(w.commit_deadline().is_some());
    std::thread::sleep(Duration::from_millis(35));
    assert!(w.commit_due());
    assert_eq!(w.commit_if_due().unwrap().unwrap().durable, 2);
    assert!(w.commit_deadline().is_none());
}

#[test]
fn read_only_replay_sees_everything_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("s");
    {
        let (mut w, mut r, _) = Spool::open(&dir, small()).unwrap();
        for i in 1..=50u64 {
            w.append(&payload(i, 200)).unwrap();
        }
        w.commit().unwrap();
        for _ in 0..20 {
            r.next().unwrap();
        }
        r.ack(20).unwrap();
        // A torn tail: half a record at the end of the last segment.
        w.append(&payload(51, 200)).unwrap();
        w.commit().unwrap();
    }
    let last = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .max()
        .unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    f.set_len(len - 50).unwrap();
    std::fs::remove_file(dir.join(LOCK_FILE)).unwrap();
    let before = snapshot(&dir);

    let ro = ReadOnlySpool::open(&dir).unwrap();
    assert_eq!(ro.acked(), 20);
    let mut it = ro.records();
    let recs: Vec<_> = it.by_ref().map(|r| r.unwrap()).collect();
    // Segments wholly at or below 20 were deleted; the rest are all there, tail excluded.
    assert_eq!(recs.last().unwrap().seq, 50);
    assert!(recs.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    for rec in &recs {
        assert_eq!(rec.data, payload(rec.seq, 200));
        assert_eq!(rec.acked, rec.seq <= 20);
    }
    assert!(recs.iter().any(|r| r.acked) && recs.iter().any(|r| !r.acked));
    assert!(it.stats().tail_bytes_ignored > 0);
    assert_eq!(
        before,
        snapshot(&dir),
        "read-only open changed the directory"
    );
    assert!(!dir.join(LOCK_FILE).exists());
    // It also works while a writer holds the spool.
    let (_w, _r, rep) = Spool::open(&dir, small()).unwrap();
    assert!(rep.bytes_truncated > 0);
    let n = ReadOnlySpool::open(&dir).unwrap().records().count();
    assert_eq!(n, recs.len());
    assert!(dir.join(LEDGER_FILE).exists());
}

/// Names, sizes, contents and modification times of everything in `dir`, recursively.
fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>, std::time::SystemTime)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if m.is_dir() {
            for (n, c, t) in snapshot(&e.path()) {
                v.push((format!("{name}/{n}"), c, t));
            }
        } else {
            v.push((
                name,
                std::fs::read(e.path()).unwrap(),
                m.modified().unwrap(),
            ));
        }
    }
    v.push((
        ".".into(),
        vec![],
        std::fs::metadata(dir).unwrap().modified().unwrap(),
    ));
    v.sort();
    v
}

#[test]
fn read_only_open_of_missing_dir_fails_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let e = ReadOnlySpool::open(d.path().join("nope")).err().unwrap();
    assert!(e.to_string().contains("nope"), "{e}");
}

/// A read-only bind mount of a spool: replay works, a writable open fails with a clear error.
/// Needs root (mount); skipped otherwise.
#[test]
fn read_only_mount() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIP read_only_mount: needs root to bind-mount read-only");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let mnt = d.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    {
        let (mut w, _r, _) = Spool::open(&src, small()).unwrap();
        for i in 1..=30u64 {
            w.append(&payload(i, 300)).unwrap();
        }
        w.commit().unwrap();
    }
    let ok = |args: &[&str]| {
        std::process::Command::new(args[0])
            .args(&args[1..])
            .status()
            .is_ok_and(|s| s.success())
    };
    let (s, m) = (src.to_str().unwrap(), mnt.to_str().unwrap());
    if !ok(&["mount", "--bind", s, m]) {
        println!("SKIP read_only_mount: bind mount failed (no mount privileges here)");
        return;
    }
    struct Unmount<'a>(&'a str);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(m);
    assert!(ok(&["mount", "-o", "remount,bind,ro", m]), "remount ro");
    assert!(
        std::fs::write(mnt.join("probe"), b"x").is_err(),
        "mount is not read-only"
    );
    let ro = ReadOnlySpool::open(&mnt).unwrap();
    let seqs: Vec<u64> = ro.records().map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs, (1..=30).collect::<Vec<_>>());
    let e = Spool::open(&mnt, small())
        .err()
        .expect("writable open on a read-only mount");
    assert!(e.to_string().contains("mnt"), "{e}");
}

#[test]
fn large_uncommitted_batch_is_spilled_but_stays_invisible_until_commit() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, mut r, _) = Spool::open(d.path(), Options::default()).unwrap();
    for i in 1..=4000u64 {
        w.append(&payload(i, 1400)).unwrap();
    }
    // More than 5 MB went to the file already, yet nothing is committed or visible.
    assert!(w.stats().disk_bytes > 5_000_000);
    assert_eq!(w.stats().committed_records, 0);
    assert!(r.next().unwrap().is_none());
    assert_eq!(w.commit().unwrap().durable, 4000);
    let got = drain(&mut r);
    assert_eq!(got.len(), 4000);
    assert!(got.iter().all(|rec| rec.data == payload(rec.seq, 1400)));
}

/// Replay next to a live writer and an acknowledging reader that deletes segments underneath it:
/// never an error, always in order, always intact payloads.
#[test]
fn read_only_replay_next_to_a_live_spool() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    let (mut w, mut r, _) = Spool::open(&dir, small()).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_w = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut i = 1u64;
        while !stop_w.load(std::sync::atomic::Ordering::Relaxed) {
            for _ in 0..7 {
                assert_eq!(w.append(&payload(i, 90 + (i % 200) as usize)).unwrap(), i);
                i += 1;
            }
            w.commit().unwrap();
        }
        i - 1
    });
    let stop_r = stop.clone();
    let reader = std::thread::spawn(move || {
        while !stop_r.load(std::sync::atomic::Ordering::Relaxed) {
            while let Some(rec) = r.next().unwrap() {
                if rec.seq % 5 == 0 {
                    r.ack(rec.seq).unwrap();
                }
            }
            r.wait(Duration::from_millis(5));
        }
    });
    let t0 = Instant::now();
    let mut passes = 0;
    let mut vanished = 0;
    while t0.elapsed() < Duration::from_secs(2) {
        let ro = ReadOnlySpool::open(&dir).unwrap();
        let mut it = ro.records();
        let mut prev = 0;
        for rec in it.by_ref() {
            let rec = rec.unwrap();
            assert!(rec.seq > prev);
            assert_eq!(rec.data, payload(rec.seq, 90 + (rec.seq % 200) as usize));
            prev = rec.seq;
        }
        let st = it.stats();
        assert_eq!(st.corrupt_regions_skipped, 0);
        assert_eq!(st.unreadable_segments, 0);
        assert_eq!(st.records_lost_in_gaps, 0);
        vanished += st.vanished_segments;
        passes += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let last = writer.join().unwrap();
    reader.join().unwrap();
    assert!(last > 100 && passes > 5, "last {last}, passes {passes}");
    println!("{passes} replays next to {last} appends, {vanished} segments vanished mid-replay");
}

/// The split acknowledgement: the position stored from another thread survives a crash by
/// itself (the records are not delivered again), `ack` after it only counts and deletes, and a
/// position not delivered or already acknowledged gives no token.
#[test]
fn ack_sync_from_another_thread_is_durable_and_ack_completes_it() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("spool");
    let (mut w, mut r, _) = Spool::open(&dir, small()).unwrap();
    for i in 1..=50u64 {
        w.append(&payload(i, 64)).unwrap();
    }
    w.commit().unwrap();
    assert_eq!(drain(&mut r).len(), 50);
    assert!(matches!(
        r.ack_sync(51),
        Err(Error::AckBeyondDelivered { upto: 51, .. })
    ));
    let t = r.ack_sync(30).unwrap().expect("a token");
    assert_eq!(t.upto(), 30);
    std::thread::spawn(move || t.store().unwrap())
        .join()
        .unwrap();
    // Stored, not yet completed by `ack`: a crash here delivers from 31.
    assert_eq!(r.stats().acked_seq, 0);
    drop((w, r));
    let (mut w, mut r, _) = Spool::open(&dir, small()).unwrap();
    let again = drain(&mut r);
    assert_eq!(again.first().map(|x| x.seq), Some(31));
    assert_eq!(again.len(), 20);
    // Stored, then completed: counters and deletion as after a plain `ack`.
    let t = r.ack_sync(45).unwrap().expect("a token");
    t.store().unwrap();
    r.ack(45).unwrap();
    assert_eq!(r.stats().acked_seq, 45);
    assert!(r.ack_sync(45).unwrap().is_none(), "acknowledged already");
    w.append(&payload(51, 64)).unwrap();
    w.commit().unwrap();
    drop((w, r));
    let (_w, mut r, _) = Spool::open(&dir, small()).unwrap();
    let left: Vec<u64> = drain(&mut r).iter().map(|x| x.seq).collect();
    assert_eq!(left, (46..=51).collect::<Vec<_>>());
}

/// The token deletes the segments its stored position completes, on its own thread: the
/// reader's `ack` afterwards only counts (and finds nothing left to delete); what is left is
/// what a crash would deliver.
#[test]
fn ack_sync_deletes_the_segments_it_completes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("spool");
    let (mut w, mut r, _) = Spool::open(&dir, small()).unwrap();
    for i in 1..=200u64 {
        w.append(&payload(i, 64)).unwrap();
    }
    w.commit().unwrap();
    assert_eq!(drain(&mut r).len(), 200);
    let before = r.stats();
    assert!(before.segments >= 4, "{before:?}");
    let t = r.ack_sync(190).unwrap().expect("a token");
    std::thread::spawn(move || t.store().unwrap())
        .join()
        .unwrap();
    let stored = r.stats();
    assert!(stored.segments < before.segments, "{stored:?}");
    assert!(stored.segments_deleted > 0, "{stored:?}");
    assert_eq!(stored.acked_seq, 0, "the reader has not taken it in yet");
    r.ack(190).unwrap();
    let acked = r.stats();
    assert_eq!(acked.segments_deleted, stored.segments_deleted);
    assert_eq!(acked.acked_seq, 190);
    drop((w, r));
    let (_w, mut r, _) = Spool::open(&dir, small()).unwrap();
    let left: Vec<u64> = drain(&mut r).iter().map(|x| x.seq).collect();
    assert_eq!(left, (191..=200).collect::<Vec<_>>());
}
