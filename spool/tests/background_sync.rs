//! The spool's `fdatasync` on its own thread (`Options::background_sync`), over the simulated
//! filesystem with a gate in front of every sync: while a sync is held, commits and appends go
//! on, nothing is shown to the reader, and a crash loses nothing that was shown; a released sync
//! publishes everything written meanwhile at once; a sync that fails (a full filesystem, EIO, a
//! panic) is reported by the next commit as before; a rollover, a close and the cap on unsynced
//! bytes wait for the sync.

mod gatefs;
mod simfs;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fwlog_spool::{AppendError, Error, Item, Options, Writer};
use gatefs::{append_n, drain, is_sync_eio, open, opts, payload, read_n, GateFs, Next};

/// The last progress report before the sender stalled (none for half a second); 0 if none.
fn last_before_stall(rx: &mpsc::Receiver<u64>) -> u64 {
    let mut last = 0;
    while let Ok(i) = rx.recv_timeout(Duration::from_millis(500)) {
        last = i;
    }
    last
}

fn commit_n(w: &mut Writer, ids: std::ops::Range<u64>) -> fwlog_spool::Commit {
    append_n(w, ids);
    w.commit().unwrap()
}

#[test]
fn a_held_sync_blocks_neither_commits_nor_appends_and_one_sync_covers_them_after() {
    let fs = GateFs::new();
    // Segments large enough that no rollover (which waits for the sync) comes in between.
    let big = Options {
        segment_bytes: 1 << 20,
        ..opts()
    };
    let (mut w, mut r) = open(&fs, big);
    let hooked = Arc::new(AtomicU64::new(0));
    let h = Arc::clone(&hooked);
    w.set_publish_hook(move || {
        h.fetch_add(1, SeqCst);
    });
    let c = commit_n(&mut w, 1..11);
    assert_eq!(c.written, 10);
    let mut got = Vec::new();
    read_n(&mut r, &mut got, 10);
    // Called right after the reader is woken, on the sync thread.
    let end = Instant::now() + Duration::from_secs(5);
    while hooked.load(SeqCst) == 0 {
        assert!(Instant::now() < end, "the hook is called after a publish");
        std::thread::sleep(Duration::from_millis(1));
    }

    fs.close();
    let c = commit_n(&mut w, 11..21);
    fs.until_waiting();
    let syncs = fs.syncs.load(SeqCst);
    let t = Instant::now();
    let mut last = c;
    for k in 0..50u64 {
        last = commit_n(&mut w, 21 + k * 10..31 + k * 10);
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "commits waited for the held sync"
    );
    assert_eq!(last.written, 520);
    assert!(last.durable <= 10, "durable before the sync: {last:?}");
    assert!(
        drain(&mut r).is_empty(),
        "shown to the reader before its sync"
    );
    assert_eq!(fs.syncs.load(SeqCst), syncs);

    fs.open();
    read_n(&mut r, &mut got, 520);
    let seqs: Vec<u64> = got.iter().map(|x| x.0).collect();
    assert_eq!(seqs, (1..=520).collect::<Vec<_>>(), "in order, each once");
    assert!(got.iter().all(|&(s, id)| s == id));
    // The held sync and one more for everything written meanwhile.
    let after = fs.syncs.load(SeqCst) - syncs;
    assert!(
        after <= 2,
        "{after} syncs for the commits made during one sync"
    );
    // The next commit reports them durable.
    let end = Instant::now() + Duration::from_secs(5);
    while !w.commit_due() {
        assert!(Instant::now() < end, "a finished sync makes a commit due");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(w.commit().unwrap().durable, 520);
    w.close().unwrap();
}

#[test]
fn a_crash_during_a_held_sync_loses_nothing_the_reader_was_shown() {
    for seed in 1..40u64 {
        let fs = GateFs::new();
        let (mut w, mut r) = open(&fs, opts());
        commit_n(&mut w, 1..21);
        let mut got = Vec::new();
        read_n(&mut r, &mut got, 20);
        fs.close();
        commit_n(&mut w, 21..41);
        fs.until_waiting();
        assert!(drain(&mut r).is_empty());
        // Power cut while the sync waits: the thread's sync then fails on the dead handle.
        fs.sim.crash(seed);
        fs.open();
        let e = loop {
            match w.commit() {
                Err(e) => break e,
                Ok(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        };
        assert!(e.to_string().contains("fdatasync"), "{e}");
        assert!(drain(&mut r).is_empty(), "a failed sync published");
        drop((w, r));
        let (_w, mut r) = open(&fs, opts());
        let again = drain(&mut r);
        assert!(
            again.len() >= 20,
            "seed {seed}: published records lost: {again:?}"
        );
        assert_eq!(&again[..20], &got[..], "seed {seed}");
    }
}

#[test]
fn no_space_from_a_sync_drops_everything_unpublished_and_the_writer_goes_on() {
    let fs = GateFs::new();
    let (mut w, mut r) = open(&fs, opts());
    commit_n(&mut w, 1..11);
    let mut got = Vec::new();
    read_n(&mut r, &mut got, 10);
    fs.close();
    fs.then(Next::Fail(libc_enospc()));
    commit_n(&mut w, 11..21);
    fs.until_waiting();
    // Written while the failing sync runs: dropped with it, never shown.
    for i in 21..31 {
        w.append(&payload(i)).unwrap();
    }
    assert_eq!(w.commit().unwrap().written, 30);
    fs.open();
    let e = loop {
        match w.commit() {
            Err(e) => break e,
            Ok(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    match e {
        Error::NoSpace { dropped, op, .. } => {
            assert_eq!(op, "fdatasync");
            assert_eq!(dropped, Some((11, 30)));
        }
        e => panic!("{e}"),
    }
    assert_eq!(w.stats().dropped_no_space_records, 20);
    assert!(drain(&mut r).is_empty());
    // The numbers are used again, and the writer works.
    assert_eq!(w.append(&payload(11)).unwrap(), 11);
    w.commit_wait().unwrap();
    got.extend(drain(&mut r));
    assert_eq!(got.last(), Some(&(11, 11)));
    assert_eq!(got.len(), 11);
    w.close().unwrap();
    drop(r);
    let (_w, mut r) = open(&fs, opts());
    assert_eq!(drain(&mut r).len(), 11, "after a reopen too");
}

fn libc_enospc() -> i32 {
    28
}

#[test]
fn eio_from_a_sync_poisons_and_a_reopen_keeps_what_was_published() {
    let fs = GateFs::new();
    let (mut w, mut r) = open(&fs, opts());
    commit_n(&mut w, 1..11);
    let mut got = Vec::new();
    read_n(&mut r, &mut got, 10);
    fs.then(Next::Fail(5));
    commit_n(&mut w, 11..21);
    let e = w.commit_wait().unwrap_err();
    assert!(is_sync_eio(&e), "{e}");
    assert!(matches!(w.commit(), Err(Error::Poisoned(_))));
    assert!(matches!(
        w.append(b"x"),
        Err(AppendError::Spool(Error::Poisoned(_)))
    ));
    assert!(drain(&mut r).is_empty(), "never published");
    drop((w, r));
    let (_w, mut r) = open(&fs, opts());
    assert_eq!(
        drain(&mut r).len(),
        20,
        "the unsynced batch is still in the file"
    );
}

#[test]
fn a_panic_on_the_sync_thread_is_an_error_not_a_hang() {
    let fs = GateFs::new();
    let (mut w, _r) = open(&fs, opts());
    fs.then(Next::Panic);
    commit_n(&mut w, 1..5);
    let e = w.commit_wait().unwrap_err();
    assert!(e.to_string().contains("panicked"), "{e}");
    assert!(w.close().is_err());
}

#[test]
fn a_rollover_waits_for_the_sync_and_a_segment_is_synced_before_its_successor() {
    let fs = GateFs::new();
    let (mut w, mut r) = open(&fs, opts());
    fs.close();
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        // 64 KiB segments: records of 100-200 bytes fill one after some 400.
        for i in 1..=1200u64 {
            w.append(&payload(i)).unwrap();
            if i % 20 == 0 {
                w.commit().unwrap();
                tx.send(i).unwrap();
            }
        }
        w.close().unwrap();
    });
    // Commits go on while the first sync is held, until an append must seal the segment.
    let last = last_before_stall(&rx);
    assert!((20..1200).contains(&last), "stuck at {last}");
    fs.open();
    while rx.recv_timeout(Duration::from_secs(10)).is_ok() {}
    t.join().unwrap();
    let mut got = Vec::new();
    read_n(&mut r, &mut got, 1200);
    // Each segment's creation comes after a sync of its predecessor covering its last write.
    let log = fs.log.lock().unwrap();
    let mut creations = 0;
    for (k, (op, path, _)) in log.iter().enumerate() {
        if *op != 'c' {
            continue;
        }
        creations += 1;
        let before = &log[..k];
        let Some((_, prev, _)) = before.iter().rev().find(|(o, p, _)| *o == 'w' && p != path)
        else {
            continue;
        };
        let last_write = before
            .iter()
            .rposition(|(o, p, _)| *o == 'w' && p == prev)
            .unwrap();
        let end = before[last_write].2;
        assert!(
            before[last_write..]
                .iter()
                .any(|(o, p, len)| *o == 's' && p == prev && *len >= end),
            "{} created before {} was synced",
            path.display(),
            prev.display()
        );
    }
    assert!(creations >= 3, "{creations} segments");
}

#[test]
fn unsynced_bytes_are_capped() {
    let fs = GateFs::new();
    let (mut w, mut r) = open(
        &fs,
        Options {
            segment_bytes: 256 << 20,
            max_record_len: 1 << 20,
            ..opts()
        },
    );
    fs.close();
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let big = vec![7u8; 1 << 20];
        for i in 1..=48u64 {
            w.append(&big).unwrap();
            w.commit().unwrap();
            tx.send(i).unwrap();
        }
        w.close().unwrap();
    });
    let last = last_before_stall(&rx);
    // 32 MiB written beyond the last sync: the commit past it waits.
    assert!((30..=34).contains(&last), "stopped at {last} MiB");
    fs.open();
    while rx.recv_timeout(Duration::from_secs(10)).is_ok() {}
    t.join().unwrap();
    let mut n = 0;
    while let Some(it) = r.next_item().unwrap() {
        assert!(matches!(it, Item::Record(_)));
        n += 1;
    }
    assert_eq!(n, 48);
}

#[test]
fn close_and_drop_wait_for_the_last_sync() {
    let fs = GateFs::new();
    let (mut w, r) = open(&fs, opts());
    commit_n(&mut w, 1..11);
    fs.close();
    commit_n(&mut w, 11..21);
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        drop(w);
        tx.send(()).unwrap();
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "dropped before its sync ended"
    );
    fs.open();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    t.join().unwrap();
    drop(r);
    // Power cut right after: all 20 were synced by the drop.
    fs.sim.crash(3);
    let (_w, mut r) = open(&fs, opts());
    assert_eq!(drain(&mut r).len(), 20);
}
