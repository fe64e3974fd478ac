//! Retention under concurrency: the reader's reclaim (after ack) and the writer's tick / size-cap reclaim race on the
//! real filesystem with a tiny retain_age; every record must be delivered once, in order, with
//! no gap and no error, and after reopen nothing unacknowledged is missing.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fwlog_spool::{Options, Spool};

#[test]
fn reader_and_writer_reclaim_concurrently_without_losing_unacked_records() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        segment_bytes: 4096,
        max_bytes: 64 * 1024,
        retain_age: Some(Duration::from_millis(20)),
        retain_bytes: Some(8 * 1024),
        ..Options::default()
    };
    let (mut w, mut r, _) = Spool::open(dir.path(), opts.clone()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let reader = std::thread::spawn(move || {
        let mut expect = 1u64;
        let mut n = 0u64;
        loop {
            let mut last = None;
            while let Some(rec) = r.next().unwrap() {
                assert_eq!(rec.seq, expect, "gap or reorder");
                assert_eq!(rec.data, format!("rec {}", rec.seq).into_bytes());
                expect += 1;
                last = Some(rec.seq);
                n += 1;
                if n.is_multiple_of(7) {
                    break;
                }
            }
            if let Some(l) = last {
                r.ack(l).unwrap();
                if n.is_multiple_of(3) {
                    std::thread::sleep(Duration::from_micros(300));
                }
            } else if d2.load(Ordering::SeqCst) {
                // drain
                if r.next().unwrap().is_none() {
                    break;
                }
                panic!("unexpected record after done");
            } else {
                r.wait(Duration::from_millis(5));
            }
        }
        assert_eq!(r.stats().records_lost_in_gaps, 0);
        expect - 1
    });
    let start = Instant::now();
    let mut full = 0u64;
    let mut seq = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        let want = w.next_seq();
        match w.append(format!("rec {want}").as_bytes()) {
            Ok(s) => seq = s,
            Err(_) => {
                full += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        if seq.is_multiple_of(5) {
            w.commit().unwrap();
        }
        w.tick().unwrap();
    }
    w.commit().unwrap();
    let last = w.position().written;
    drop(w);
    done.store(true, Ordering::SeqCst);
    let got = reader.join().unwrap();
    assert_eq!(got, last);
    eprintln!("{last} records, {full} refused as full");
}
