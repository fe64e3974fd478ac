//! The writer's hand-offs with the spool's sync thread (`Options::background_sync`) and the
//! reader: a commit that waits (`commit_wait`) while the thread is idle syncs and publishes on
//! the caller's thread, with every guarantee of a sync on the thread (order of publishes, a full
//! filesystem's cut-back, poisoning); a busy thread is still waited for; and no wake-up is
//! lost now that the thread and the reader are woken only when they sleep.

mod gatefs;
mod simfs;

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use fwlog_spool::{Error, Options};
use gatefs::{append_n, drain, is_sync_eio, open, opts, payload, read_n, GateFs, Next};

const THREAD: &str = "fwlog-spool-sync";

fn me() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

#[test]
fn commit_wait_on_an_idle_thread_syncs_in_place_and_a_busy_one_is_waited_for() {
    let fs = GateFs::new();
    let (mut w, mut r) = open(&fs, opts());
    let base = fs.sync_threads.lock().unwrap().len();
    let hooked = Arc::new(Mutex::new(Vec::new()));
    let h = Arc::clone(&hooked);
    w.set_publish_hook(move || h.lock().unwrap().push(me()));
    let mut id = 1;
    for _ in 0..20 {
        for _ in 0..5 {
            w.append(&payload(id)).unwrap();
            id += 1;
        }
        let c = w.commit_wait().unwrap();
        assert_eq!((c.written, c.durable), (id - 1, id - 1));
        // Shown to the reader before the call returned, without waiting.
        let got = drain(&mut r);
        assert_eq!(got.len(), 5);
        assert_eq!(got.last(), Some(&(id - 1, id - 1)));
    }
    assert!(w.sync_thread_id().is_some(), "the first commit started it");
    let here = me();
    assert!(fs.sync_threads.lock().unwrap().iter().all(|t| *t == here));
    assert!(hooked.lock().unwrap().iter().all(|t| *t == here));
    assert_eq!(hooked.lock().unwrap().len(), 20);

    // A sync in flight on the thread: the waiting commit goes through it, after it.
    fs.close();
    w.append(&payload(id)).unwrap();
    w.commit().unwrap();
    fs.until_waiting();
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        for i in id + 1..id + 11 {
            w.append(&payload(i)).unwrap();
        }
        tx.send(w.commit_wait().unwrap()).unwrap();
        w
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "returned while the sync it needs was held"
    );
    assert!(drain(&mut r).is_empty());
    fs.open();
    let c = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(c.durable, id + 10);
    let w = t.join().unwrap();
    assert_eq!(drain(&mut r).len(), 11, "shown before commit_wait returned");
    let syncs = fs.sync_threads.lock().unwrap();
    assert_eq!(syncs.len(), base + 22, "{syncs:?}");
    assert!(syncs[base + 20..].iter().all(|t| t == THREAD), "{syncs:?}");
    drop(syncs);
    w.close().unwrap();
}

#[test]
fn no_space_in_place_cuts_back_to_the_last_publish_and_the_writer_goes_on() {
    let fs = GateFs::new();
    let (mut w, mut r) = open(&fs, opts());
    append_n(&mut w, 1..11);
    w.commit_wait().unwrap();
    assert_eq!(drain(&mut r).len(), 10);
    let base = fs.sync_threads.lock().unwrap().len();
    fs.then(Next::Fail(28));
    append_n(&mut w, 11..21);
    match w.commit_wait() {
        Err(Error::NoSpace { dropped, op, .. }) => {
            assert_eq!(op, "fdatasync");
            assert_eq!(dropped, Some((11, 20)));
        }
        r => panic!("{r:?}"),
    }
    assert!(drain(&mut r).is_empty(), "a failed sync published");
    assert_eq!(w.stats().dropped_no_space_records, 10);
    assert_eq!(
        fs.sync_threads.lock().unwrap().len(),
        base,
        "failed: not logged"
    );
    // The numbers are used again, and both paths work after it.
    assert_eq!(w.append(&payload(11)).unwrap(), 11);
    w.commit_wait().unwrap();
    assert_eq!(drain(&mut r), [(11, 11)]);
    w.append(&payload(12)).unwrap();
    w.commit().unwrap();
    let mut got = Vec::new();
    read_n(&mut r, &mut got, 1);
    assert_eq!(got, [(12, 12)]);
    w.close().unwrap();
    drop(r);
    let (_w, mut r) = open(&fs, opts());
    assert_eq!(drain(&mut r).len(), 12, "after a reopen too");
}

#[test]
fn eio_in_place_poisons_and_publishes_nothing() {
    let fs = GateFs::new();
    let (mut w, mut r) = open(&fs, opts());
    append_n(&mut w, 1..11);
    w.commit_wait().unwrap();
    assert_eq!(drain(&mut r).len(), 10);
    fs.then(Next::Fail(5));
    append_n(&mut w, 11..21);
    let e = w.commit_wait().unwrap_err();
    assert!(is_sync_eio(&e), "{e}");
    assert!(matches!(w.commit(), Err(Error::Poisoned(_))));
    assert!(drain(&mut r).is_empty(), "never published");
    drop((w, r));
    let (_w, mut r) = open(&fs, opts());
    assert_eq!(drain(&mut r).len(), 20, "the unsynced batch is in the file");
}

/// Commits that hand the sync over and commits that sync in place, mixed (and rollovers, which
/// wait), publish every record once and in order to a reader on another thread.
#[test]
fn mixed_commits_publish_in_order_each_once() {
    let fs = GateFs::new();
    let (mut w, mut r) = open(&fs, opts());
    const N: u64 = 6000;
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        read_n(&mut r, &mut got, N as usize);
        got
    });
    let mut x = 12345u64;
    let mut id = 1;
    while id <= N {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        for _ in 0..(x >> 60) % 4 + 1 {
            if id <= N {
                w.append(&payload(id)).unwrap();
                id += 1;
            }
        }
        if (x >> 33).is_multiple_of(3) {
            w.commit_wait().unwrap();
        } else {
            w.commit().unwrap();
        }
    }
    w.close().unwrap();
    let got = reader.join().unwrap();
    assert_eq!(got.len(), N as usize);
    assert!(got.iter().zip(1..).all(|(&(s, i), n)| s == n && i == n));
    let syncs = fs.sync_threads.lock().unwrap();
    assert!(syncs.iter().any(|t| t == THREAD), "never on the thread");
    assert!(syncs.iter().any(|t| t != THREAD), "never in place");
}

/// Each commit's records are published with no later commit to push them: the sync thread,
/// asleep or about to sleep when the request comes, is woken. Without the wake-up the first
/// round waits for ever (`read_n` fails after 10 s).
#[test]
fn every_handed_over_sync_runs_without_a_later_commit() {
    let fs = GateFs::new();
    // No rollover (which syncs in place) in between.
    let big = Options {
        segment_bytes: 8 << 20,
        ..opts()
    };
    let (mut w, mut r) = open(&fs, big);
    let base = fs.sync_threads.lock().unwrap().len();
    let mut got = Vec::new();
    for i in 1..=3000u64 {
        w.append(&payload(i)).unwrap();
        w.commit().unwrap();
        read_n(&mut r, &mut got, i as usize);
        if i.is_multiple_of(7) {
            // Sometimes the thread has gone to sleep by the next submit, sometimes not.
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    assert!(got.iter().zip(1..).all(|(&(s, _), n)| s == n));
    let syncs = fs.sync_threads.lock().unwrap();
    assert!(syncs[base..].iter().all(|t| t == THREAD));
}

/// A reader waiting in `Reader::wait` is woken by each publish, in place or from the thread,
/// at once: a lost wake-up shows as a wait that lasts its whole (minute-long) timeout.
#[test]
fn a_waiting_reader_is_woken_by_every_publish() {
    for background_sync in [false, true] {
        let fs = GateFs::new();
        let (mut w, mut r) = open(
            &fs,
            Options {
                background_sync,
                ..opts()
            },
        );
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut n = 0;
            while n < 500 {
                let t = Instant::now();
                if !r.wait(Duration::from_secs(60)) {
                    break;
                }
                let got = drain(&mut r);
                n += got.len();
                tx.send((t.elapsed(), n)).unwrap();
            }
        });
        for i in 1..=500u64 {
            w.append(&payload(i)).unwrap();
            if i.is_multiple_of(2) {
                w.commit_wait().unwrap();
            } else {
                w.commit().unwrap();
            }
            // Lets the reader go back to waiting before the next publish, most rounds.
            let (waited, n) = rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("record {i}: the reader was not woken"));
            assert!(waited < Duration::from_secs(10), "{waited:?}");
            assert_eq!(n as u64, i, "background_sync {background_sync}");
        }
        w.close().unwrap();
        reader.join().unwrap();
    }
}

/// A spool that is only read or never committed to starts no thread.
#[test]
fn the_thread_starts_at_the_first_commit() {
    let fs = GateFs::new();
    let (mut w, _r) = open(&fs, opts());
    w.append(&payload(1)).unwrap();
    assert_eq!(w.sync_thread_id(), None);
    w.commit().unwrap();
    let tid = w.sync_thread_id().expect("started");
    let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap();
    assert_eq!(
        comm.trim(),
        "fwlog-spool-syn",
        "the kernel keeps 15 bytes of the name"
    );
}
