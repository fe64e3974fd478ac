//! Segments completed by an `AckSync` are unlinked by the spool's deletion thread: gone from
//! the spool at once, from the directory once the thread is done, which closing the spool waits
//! for; the writer needing room waits for it too.

use std::path::Path;

use fwlog_spool::{Options, Spool};

fn small() -> Options {
    Options {
        segment_bytes: 4096,
        ..Options::default()
    }
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn closing_the_spool_waits_for_the_deletions_an_ack_sync_handed_over() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("spool");
    let (mut w, mut r, _) = Spool::open(&dir, small()).unwrap();
    for i in 1..=400u64 {
        w.append(&[i as u8; 64]).unwrap();
    }
    w.commit().unwrap();
    let mut buf = Vec::new();
    while r.next_into(&mut buf).unwrap().is_some() {}
    let files_before = segment_files(&dir);
    let before = r.stats();
    assert!(before.segments >= 6, "{before:?}");
    let t = r.ack_sync(380).unwrap().expect("a token");
    std::thread::spawn(move || t.store().unwrap())
        .join()
        .unwrap();
    let stored = r.stats();
    // Out of the spool at once, counted, and their bytes counted free.
    assert!(stored.segments < before.segments, "{stored:?}");
    assert_eq!(
        stored.segments_deleted,
        before.segments - stored.segments,
        "{stored:?}"
    );
    assert!(stored.disk_bytes < before.disk_bytes, "{stored:?}");
    r.ack(380).unwrap();
    drop((w, r));
    // Closed: every file the spool let go of is gone from the directory.
    let left = segment_files(&dir);
    assert_eq!(
        left.len() as u64,
        stored.segments,
        "before {files_before:?}, left {left:?}"
    );
    let (_w, mut r, _) = Spool::open(&dir, small()).unwrap();
    let mut seqs = Vec::new();
    while let Some(fwlog_spool::Next::Record { seq, .. }) = r.next_into(&mut buf).unwrap() {
        seqs.push(seq);
    }
    assert_eq!(seqs, (381..=400).collect::<Vec<_>>());
}

#[test]
fn many_tokens_in_a_row_leave_only_the_unacknowledged_segments() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("spool");
    let (mut w, mut r, _) = Spool::open(&dir, small()).unwrap();
    let mut buf = Vec::new();
    let mut acked = 0;
    for round in 0..20u64 {
        for i in 0..50u64 {
            w.append(&[(round * 50 + i) as u8; 100]).unwrap();
        }
        w.commit().unwrap();
        while let Some(fwlog_spool::Next::Record { seq, .. }) = r.next_into(&mut buf).unwrap() {
            acked = seq;
        }
        // As the daemon does: the durable half on another thread, then `ack` here.
        let t = r.ack_sync(acked).unwrap().expect("a token");
        std::thread::spawn(move || t.store().unwrap())
            .join()
            .unwrap();
        r.ack(acked).unwrap();
    }
    let live = r.stats().segments;
    drop((w, r));
    assert_eq!(segment_files(&dir).len() as u64, live);
    assert!(live <= 2, "{live}");
}
