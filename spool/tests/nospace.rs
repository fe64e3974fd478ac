//! A full filesystem (ENOSPC) on the simulated filesystem: commits that do not fit drop exactly
//! the records appended since the last commit and say which; the writer keeps working, nothing
//! dropped is ever delivered, everything committed is, and appends succeed again once
//! acknowledgements free space.

mod simfs;

use std::sync::Arc;

use fwlog_spool::{AppendError, Error, FsyncPolicy, Options, Spool};
use simfs::SimFs;

fn opts() -> Options {
    Options {
        segment_bytes: 4096,
        fsync: FsyncPolicy::EveryCommit,
        ..Options::default()
    }
}

fn payload(id: u64) -> Vec<u8> {
    let mut v = id.to_le_bytes().to_vec();
    v.resize(100 + (id as usize * 7) % 200, id as u8);
    v
}

fn id_of(data: &[u8]) -> u64 {
    u64::from_le_bytes(data[..8].try_into().unwrap())
}

#[test]
fn a_full_filesystem_drops_only_the_uncommitted_batch_and_recovers() {
    let fs = SimFs::new();
    let (mut w, mut r, _) = Spool::open_with_fs(Arc::new(fs.clone()), "/spool", opts()).unwrap();
    fs.set_capacity(Some(12 * 1024)); // ledger 1 KiB + about 2.7 segments
    let mut committed_ids = Vec::new();
    let mut batch = Vec::new();
    let (mut dropped, mut refused, mut no_space_commits) = (0u64, 0u64, 0);
    let mut delivered = Vec::new();
    let mut id = 0u64;
    for round in 0..400u64 {
        for _ in 0..5 {
            id += 1;
            match w.append(&payload(id)) {
                Ok(seq) => batch.push((seq, id)),
                Err(AppendError::Spool(Error::NoSpace { dropped: d, .. })) => {
                    // A rollover found no room: this record, and whatever `d` names.
                    refused += 1;
                    if let Some((a, b)) = d {
                        assert_eq!(batch.first().map(|x| x.0), Some(a));
                        // The batch, and this record too if it was already in it.
                        let last = batch.last().unwrap().0;
                        assert!(b == last || b == last + 1, "{b} {last}");
                        dropped += batch.len() as u64;
                        batch.clear();
                    }
                }
                Err(e) => panic!("append: {e}"),
            }
        }
        match w.commit() {
            Ok(c) => {
                assert_eq!(batch.last().map_or(c.written, |x| x.0), c.written);
                committed_ids.extend(batch.drain(..).map(|x| x.1));
            }
            Err(Error::NoSpace { dropped: d, .. }) => {
                no_space_commits += 1;
                let want = batch.first().map(|f| (f.0, batch.last().unwrap().0));
                assert_eq!(d, want, "the error names exactly the uncommitted batch");
                dropped += batch.len() as u64;
                batch.clear();
            }
            Err(e) => panic!("commit is not poisoned by a full disk: {e}"),
        }
        // The reader keeps up only every sixteenth round, so the disk really fills.
        if round % 16 == 15 {
            while let Some(rec) = r.next().unwrap() {
                delivered.push(id_of(&rec.data));
                assert_eq!(rec.data, payload(id_of(&rec.data)));
                r.ack(rec.seq).unwrap();
            }
        }
    }
    while let Some(rec) = r.next().unwrap() {
        delivered.push(id_of(&rec.data));
        r.ack(rec.seq).unwrap();
    }
    eprintln!("commits refused {no_space_commits}, records dropped {dropped}, refused at rollover {refused}");
    assert!(no_space_commits > 10, "the disk filled: {no_space_commits}");
    assert!(dropped + refused > 100);
    assert_eq!(
        delivered, committed_ids,
        "exactly what was committed, in order"
    );
    assert_eq!(committed_ids.len() as u64 + dropped + refused, id);
    let st = w.stats();
    assert_eq!(st.dropped_no_space_records, dropped);
    // Space returned at the end: the last rounds committed something.
    assert!(committed_ids.last().is_some_and(|&l| l > id - 200));
    // Reopening finds exactly what was committed after the last acknowledgement: nothing.
    drop((w, r));
    fs.set_capacity(None);
    let (_w, mut r, rep) = Spool::open_with_fs(Arc::new(fs.clone()), "/spool", opts()).unwrap();
    assert_eq!(rep.pending_records, 0, "{rep}");
    assert!(r.next().unwrap().is_none());
}
