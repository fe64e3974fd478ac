//! Retention: acknowledged segments are kept up to `retain_bytes` (newest kept, oldest deleted
//! first), survive a reopen, are visible to replay as acknowledged, and give way to records not
//! yet acknowledged when the size cap is reached.

use fwlog_spool::{AppendError, Options, ReadOnlySpool, Spool};

fn opts(retain: u64, max: u64) -> Options {
    Options {
        segment_bytes: 4096,
        retain_bytes: (retain > 0).then_some(retain),
        max_bytes: max,
        ..Options::default()
    }
}

fn fill_and_ack(dir: &std::path::Path, o: Options, n: usize) -> u64 {
    let (mut w, mut r, _) = Spool::open(dir, o).unwrap();
    for i in 0..n {
        w.append(format!("record {i:05} {}", "x".repeat(80)).as_bytes())
            .unwrap();
    }
    w.commit().unwrap();
    let mut last = 0;
    while let Some(rec) = r.next().unwrap() {
        last = rec.seq;
    }
    r.ack(last).unwrap();
    last
}

fn segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .count()
}

#[test]
fn without_retention_only_the_writers_segment_is_left() {
    let d = tempfile::tempdir().unwrap();
    fill_and_ack(d.path(), opts(0, 1 << 30), 400);
    assert_eq!(segments(d.path()), 1);
}

#[test]
fn retention_keeps_the_newest_acknowledged_records_for_replay() {
    let d = tempfile::tempdir().unwrap();
    let last = fill_and_ack(d.path(), opts(3 * 4096, 1 << 30), 400);
    // 400 records of ~120 bytes in 4 KiB segments: ~13 segments; 3 retained + the writer's.
    assert_eq!(
        segments(d.path()),
        4,
        "three retained segments and the writer's"
    );
    let ro = ReadOnlySpool::open(d.path()).unwrap();
    let seqs: Vec<(u64, bool)> = ro
        .records()
        .map(|r| r.map(|r| (r.seq, r.acked)).unwrap())
        .collect();
    assert!(seqs.iter().all(|&(_, acked)| acked), "all printed");
    assert_eq!(seqs.last().unwrap().0, last, "the newest are kept");
    assert!(
        seqs.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "contiguous: oldest deleted first"
    );
    assert!(
        seqs.len() > 80 && seqs.len() < 150,
        "{} records kept",
        seqs.len()
    );
    // A reopen (recovery) keeps them too.
    drop(Spool::open(d.path(), opts(3 * 4096, 1 << 30)).unwrap());
    assert_eq!(segments(d.path()), 4);
    // With a smaller retention at the next open, recovery trims the oldest.
    drop(Spool::open(d.path(), opts(4096, 1 << 30)).unwrap());
    assert_eq!(segments(d.path()), 2);
}

/// How many ~110-byte appends fit before `Full`.
fn appends_until_full(w: &mut fwlog_spool::Writer) -> usize {
    for i in 0..10_000 {
        match w.append(format!("new {i:05} {}", "y".repeat(80)).as_bytes()) {
            Ok(_) => w.commit().map(|_| ()).unwrap(),
            Err(AppendError::Full { .. }) => return i,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("never full");
}

#[test]
fn retained_segments_give_way_to_unprinted_records_when_full() {
    // Cap 16 KiB, retention up to 64 KiB. The same 100 records, once printed and once not.
    let o = opts(64 * 1024, 16 * 1024);
    let printed = tempfile::tempdir().unwrap();
    fill_and_ack(printed.path(), o.clone(), 100);
    let (mut w, _r, _) = Spool::open(printed.path(), o.clone()).unwrap();
    let after_printed = appends_until_full(&mut w);

    let unprinted = tempfile::tempdir().unwrap();
    {
        let (mut w, _r, _) = Spool::open(unprinted.path(), o.clone()).unwrap();
        for i in 0..100 {
            w.append(format!("record {i:05} {}", "x".repeat(80)).as_bytes())
                .unwrap();
        }
        w.commit().unwrap();
    }
    let (mut w, _r, _) = Spool::open(unprinted.path(), o).unwrap();
    let after_unprinted = appends_until_full(&mut w);
    // Printed records made room: ~100 records in three 4 KiB segments, of which the two full
    // ones (~70 records) could go; the writer's segment is never deleted. Unprinted ones never do.
    assert!(
        after_printed >= after_unprinted + 60,
        "after printed: {after_printed}, after unprinted: {after_unprinted}"
    );
    let ro = ReadOnlySpool::open(unprinted.path()).unwrap();
    let first = ro.records().next().unwrap().unwrap();
    assert_eq!(
        (first.seq, first.acked),
        (1, false),
        "no unprinted record was reclaimed"
    );
}
