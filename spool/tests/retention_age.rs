//! Retention by age, on the simulated filesystem with its own clock: an acknowledged segment is
//! kept until its newest record is older than `retain_age` and deleted after that (by the next
//! tick, acknowledgement or open); the writer seals its segment once the oldest record in it is
//! `retain_age / 8` old, so records do not outstay the limit because they share the writer's
//! segment; ages survive a reopen (the files' mtimes); records not yet acknowledged are never
//! deleted, however old.

mod simfs;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fwlog_spool::{Fs, Options, ReadOnlySpool, Reader, Spool, Writer};
use simfs::SimFs;

const DIR: &str = "/spool";
const AGE: Duration = Duration::from_secs(80);

fn opts(age: Option<Duration>, bytes: Option<u64>) -> Options {
    Options {
        segment_bytes: 4096,
        retain_age: age,
        retain_bytes: bytes,
        ..Options::default()
    }
}

fn open(fs: &SimFs, o: Options) -> (Writer, Reader) {
    let (w, r, _) = Spool::open_with_fs(Arc::new(fs.clone()), DIR, o).unwrap();
    (w, r)
}

fn append(w: &mut Writer, n: usize, tag: &str) {
    for i in 0..n {
        w.append(format!("{tag} {i:05} {}", "x".repeat(80)).as_bytes())
            .unwrap();
    }
    w.commit().unwrap();
}

fn read_and_ack_all(r: &mut Reader) -> u64 {
    let mut last = r.acked();
    while let Some(rec) = r.next().unwrap() {
        last = rec.seq;
    }
    r.ack(last).unwrap();
    last
}

/// (seq, acked) of every record a replay sees.
fn replay(fs: &SimFs) -> Vec<(u64, bool)> {
    let ro = ReadOnlySpool::open_with_fs(Arc::new(fs.clone()), DIR).unwrap();
    ro.records()
        .map(|r| r.map(|r| (r.seq, r.acked)).unwrap())
        .collect()
}

fn segments(fs: &SimFs) -> usize {
    fs.read_dir(Path::new(DIR))
        .unwrap()
        .iter()
        .filter(|e| e.name.ends_with(".seg"))
        .count()
}

#[test]
fn printed_records_are_kept_until_older_than_the_limit_then_deleted() {
    let fs = SimFs::new();
    let (mut w, mut r) = open(&fs, opts(Some(AGE), None));
    append(&mut w, 100, "old");
    let last = read_and_ack_all(&mut r);
    // ~100 records of ~110 bytes in 4 KiB segments: three sealed segments and the writer's.
    let n = segments(&fs);
    assert!(n >= 3, "{n} segments");
    assert_eq!(replay(&fs).len() as u64, last, "all kept while young");

    fs.advance(Duration::from_secs(60));
    assert!(w.tick().unwrap().is_none(), "nothing uncommitted to seal");
    // The writer's segment (oldest record 60 s > 80/8 s old) was sealed and a new one started;
    // nothing is old enough to delete yet.
    assert_eq!(segments(&fs), n + 1);
    assert_eq!(replay(&fs).len() as u64, last, "60 s < 80 s: all kept");

    fs.advance(Duration::from_secs(21));
    w.tick().unwrap();
    assert_eq!(
        segments(&fs),
        1,
        "only the new, empty writer's segment is left"
    );
    assert!(replay(&fs).is_empty(), "81 s > 80 s: all deleted");
}

#[test]
fn deletion_goes_by_each_segments_newest_record() {
    let fs = SimFs::new();
    let (mut w, mut r) = open(&fs, opts(Some(AGE), None));
    append(&mut w, 5, "first"); // t = 0
    fs.advance(Duration::from_secs(11));
    w.tick().unwrap(); // 11 s > 10 s: sealed
    append(&mut w, 5, "second"); // t = 11, new segment
    read_and_ack_all(&mut r);
    fs.advance(Duration::from_secs(74)); // t = 85
    w.tick().unwrap();
    let seqs: Vec<u64> = replay(&fs).iter().map(|&(s, _)| s).collect();
    assert_eq!(
        seqs,
        (6..=10).collect::<Vec<_>>(),
        "the first five are 85 s old"
    );
    fs.advance(Duration::from_secs(7)); // t = 92: the second five are 81 s old
    w.tick().unwrap();
    assert!(replay(&fs).is_empty());
}

#[test]
fn an_acknowledgement_deletes_expired_segments_too() {
    let fs = SimFs::new();
    let (mut w, mut r) = open(&fs, opts(Some(AGE), None));
    append(&mut w, 100, "a");
    read_and_ack_all(&mut r);
    fs.advance(Duration::from_secs(100));
    // No tick: a later acknowledgement applies the same rule.
    append(&mut w, 1, "b");
    read_and_ack_all(&mut r);
    let seqs = replay(&fs);
    assert!(
        seqs.iter().all(|&(s, _)| s > 60),
        "the expired sealed segments went: {seqs:?}"
    );
}

#[test]
fn records_not_yet_printed_are_never_deleted_however_old() {
    let fs = SimFs::new();
    let (mut w, mut r) = open(&fs, opts(Some(AGE), None));
    append(&mut w, 100, "pending");
    fs.advance(Duration::from_secs(10_000));
    w.tick().unwrap();
    let seqs = replay(&fs);
    assert_eq!(seqs.len(), 100);
    assert!(seqs.iter().all(|&(_, acked)| !acked));
    let mut got = 0;
    while r.next().unwrap().is_some() {
        got += 1;
    }
    assert_eq!(got, 100);
}

#[test]
fn ages_survive_a_reopen_and_recovery_applies_them() {
    let fs = SimFs::new();
    {
        let (mut w, mut r) = open(&fs, opts(Some(AGE), None));
        append(&mut w, 100, "a");
        read_and_ack_all(&mut r);
    }
    fs.advance(Duration::from_secs(50));
    {
        // Reopened 50 s later: kept. The last segment holds records, so under retention by age a
        // new one is started rather than reused (its oldest record's age is unknown).
        let (_w, _r) = open(&fs, opts(Some(AGE), None));
        assert_eq!(replay(&fs).len(), 100);
    }
    let n = segments(&fs);
    fs.advance(Duration::from_secs(31));
    {
        // 81 s after they were written: recovery at open deletes them (mtimes, not open time).
        let (_w, _r) = open(&fs, opts(Some(AGE), None));
        assert!(replay(&fs).is_empty());
        assert!(segments(&fs) < n);
    }
}

#[test]
fn with_both_limits_either_one_deletes() {
    let fs = SimFs::new();
    // Size: keep one segment's worth at most; age: 80 s.
    let (mut w, mut r) = open(&fs, opts(Some(AGE), Some(4096)));
    append(&mut w, 100, "a");
    read_and_ack_all(&mut r);
    let young = replay(&fs);
    // One retained segment (~36 records) and the writer's (~27) of the 100.
    assert!(
        young.len() < 70 && young[0].0 > 30,
        "the size limit trimmed the oldest young records: {} kept from {}",
        young.len(),
        young[0].0
    );
    fs.advance(Duration::from_secs(81));
    w.tick().unwrap();
    assert!(replay(&fs).is_empty(), "the age limit took the rest");
}

#[test]
fn retained_segments_give_way_to_new_records_whatever_their_age() {
    let fs = SimFs::new();
    let o = Options {
        max_bytes: 16 * 1024,
        ..opts(Some(Duration::from_secs(3600)), None)
    };
    let (mut w, mut r) = open(&fs, o);
    append(&mut w, 100, "a"); // ~11 KiB
    read_and_ack_all(&mut r);
    // Another ~11 KiB must fit in the 16 KiB cap: printed, young segments make room.
    for i in 0..100 {
        w.append(format!("b {i:05} {}", "y".repeat(80)).as_bytes())
            .unwrap_or_else(|e| panic!("append {i}: {e}"));
        w.commit().unwrap();
    }
}

#[test]
fn the_writer_seals_its_segment_only_after_an_eighth_of_the_limit() {
    let fs = SimFs::new();
    let (mut w, _r) = open(&fs, opts(Some(AGE), None));
    append(&mut w, 3, "a");
    fs.advance(Duration::from_secs(9));
    w.tick().unwrap();
    assert_eq!(segments(&fs), 1, "9 s < 10 s: not sealed");
    // Uncommitted records are committed by the sealing, and reported.
    w.append(b"uncommitted").unwrap();
    fs.advance(Duration::from_secs(1));
    let c = w.tick().unwrap().expect("sealing committed the batch");
    assert_eq!(c.written, 4);
    assert_eq!(segments(&fs), 2);
    // An empty writer's segment is never sealed, however long it waits (and the sealed one
    // holds records not yet printed: kept).
    fs.advance(Duration::from_secs(1000));
    w.tick().unwrap();
    fs.advance(Duration::from_secs(1000));
    w.tick().unwrap();
    assert_eq!(segments(&fs), 2);
}

/// After the wall clock is set back, records written *after* the change (with correct times)
/// share the writer's segment, whose first-write time is then in the future. Unless the writer
/// restarts its window, the segment is not sealed until the clock passes that time again, and
/// they outstay 9/8 of the limit by the size of the jump (here an hour instead of ~90 s).
#[test]
fn a_clock_set_back_does_not_delay_sealing_by_the_jump() {
    let fs = SimFs::new();
    fs.advance(Duration::from_secs(3600));
    let (mut w, mut r) = open(&fs, opts(Some(AGE), None));
    append(&mut w, 3, "before");
    fs.rewind(Duration::from_secs(3600)); // clock set back an hour
    append(&mut w, 3, "after");
    read_and_ack_all(&mut r);
    for _ in 0..20 {
        fs.advance(Duration::from_secs(10));
        w.tick().unwrap();
    }
    // 200 s after the "after" records were written (> 9/8 * 80 s + ticks): they should be gone.
    assert!(
        replay(&fs).is_empty(),
        "still kept 200 s later: {:?}",
        replay(&fs)
    );
}
