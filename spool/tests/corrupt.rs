//! Corrupted-file fixtures on the real filesystem: flipped bytes, zero-filled tails, truncated
//! headers, foreign files, a damaged ledger, and random damage. Opening must always succeed, the
//! reader must never fail, and every record outside the damaged region must come back intact.

use std::fs;
use std::path::{Path, PathBuf};

use fwlog_spool::{Item, LedgerStatus, Options, ReadOnlySpool, Spool, LEDGER_FILE, QUARANTINE_DIR};

fn opts() -> Options {
    Options {
        segment_bytes: 4096,
        ..Options::default()
    }
}

fn payload(seq: u64) -> Vec<u8> {
    let len = 50 + (seq as usize * 37) % 300;
    (0..len)
        .map(|i| (seq as usize * 131 + i * 7) as u8)
        .collect()
}

/// A closed spool holding records 1..=n; returns its segment files in order.
fn build(dir: &Path, n: u64) -> Vec<PathBuf> {
    let (mut w, _r, _) = Spool::open(dir, opts()).unwrap();
    for s in 1..=n {
        assert_eq!(w.append(&payload(s)).unwrap(), s);
        if s % 10 == 0 {
            w.commit().unwrap();
        }
    }
    w.close().unwrap();
    segments(dir)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn first_seq(p: &Path) -> u64 {
    p.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

fn flip(p: &Path, at: u64) {
    let mut b = fs::read(p).unwrap();
    b[at as usize] ^= 0x40;
    fs::write(p, b).unwrap();
}

/// Opens writable and drains the reader, checking payloads and order; returns the delivered seqs.
fn drain(dir: &Path) -> (Vec<u64>, fwlog_spool::OpenReport, fwlog_spool::Stats) {
    let (_w, mut r, rep) = Spool::open(dir, opts()).expect("open must succeed");
    let mut seqs = Vec::new();
    while let Some(rec) = r.next().expect("reader must not fail on bad data") {
        assert_eq!(rec.data, payload(rec.seq), "payload of {}", rec.seq);
        assert!(seqs.last().is_none_or(|&l| rec.seq > l));
        seqs.push(rec.seq);
    }
    let st = r.stats();
    (seqs, rep, st)
}

fn replay(dir: &Path) -> (Vec<u64>, fwlog_spool::ReplayStats) {
    let ro = ReadOnlySpool::open(dir).expect("read-only open");
    let mut it = ro.records();
    let mut seqs = Vec::new();
    for r in it.by_ref() {
        let r = r.expect("replay must not fail on bad data");
        assert_eq!(r.data, payload(r.seq));
        seqs.push(r.seq);
    }
    (seqs, it.stats().clone())
}

#[test]
fn flipped_byte_in_middle_segment_costs_only_the_record_it_hit() {
    let d = tempfile::tempdir().unwrap();
    let segs = build(d.path(), 200);
    assert!(segs.len() >= 4);
    let victim = &segs[1];
    let first = first_seq(victim);
    // The third record of the segment: header 32 bytes + two records.
    let off = 32
        + (first..first + 2)
            .map(|s| 20 + payload(s).len() as u64)
            .sum::<u64>()
        + 25;
    flip(victim, off);

    let (ro, rs) = replay(d.path());
    assert_eq!(rs.corrupt_regions_skipped, 1);
    let expect: Vec<u64> = (1..=200).filter(|&s| s != first + 2).collect();
    assert_eq!(ro, expect);
    assert_eq!(rs.records_lost_in_gaps, 1);

    let (seqs, rep, st) = drain(d.path());
    assert!(rep.quarantined.is_empty());
    assert_eq!(rep.bytes_truncated, 0);
    assert_eq!(seqs, expect);
    assert_eq!(st.corrupt_regions_skipped, 1);
    assert!(st.corrupt_bytes_skipped > 0);
    assert_eq!(st.records_lost_in_gaps, 1);
}

#[test]
fn bad_header_is_quarantined_and_counted() {
    let d = tempfile::tempdir().unwrap();
    let segs = build(d.path(), 200);
    let victim = segs[1].clone();
    let (first, next_first) = (first_seq(&victim), first_seq(&segs[2]));
    flip(&victim, 3); // magic
    let (seqs, rep, st) = drain(d.path());
    assert_eq!(rep.quarantined.len(), 1);
    assert_eq!(rep.quarantined[0].from, victim);
    assert!(
        rep.quarantined[0].reason.contains("magic"),
        "{:?}",
        rep.quarantined
    );
    assert!(!victim.exists());
    assert!(d
        .path()
        .join(QUARANTINE_DIR)
        .join(victim.file_name().unwrap())
        .exists());
    assert_eq!(st.files_quarantined, 1);
    let expect: Vec<u64> = (1..=200)
        .filter(|&s| s < first || s >= next_first)
        .collect();
    assert_eq!(seqs, expect);
    // Second open: nothing more to do.
    let (_, rep, _) = drain(d.path());
    assert!(rep.quarantined.is_empty());
}

#[test]
fn header_naming_another_sequence_is_quarantined() {
    let d = tempfile::tempdir().unwrap();
    let segs = build(d.path(), 100);
    let renamed = d.path().join("00000000000000000002.seg");
    assert!(first_seq(&segs[0]) == 1);
    fs::rename(&segs[0], &renamed).unwrap();
    let (seqs, rep, _) = drain(d.path());
    assert_eq!(rep.quarantined.len(), 1);
    assert!(rep.quarantined[0].reason.contains("file name says 2"));
    assert_eq!(seqs.first().copied(), Some(first_seq(&segs[1])));
}

#[test]
fn flipped_byte_in_last_segment_is_not_a_torn_tail() {
    let d = tempfile::tempdir().unwrap();
    let segs = build(d.path(), 100);
    let last = segs.last().unwrap();
    let first = first_seq(last);
    let len = fs::metadata(last).unwrap().len();
    let off = 32 + 20 + payload(first).len() as u64 + 21; // inside the second record
    assert!(off + 500 < len, "records follow the damage");
    flip(last, off);
    {
        let (mut w, mut r, rep) = Spool::open(d.path(), opts()).unwrap();
        assert!(rep.truncated.is_empty(), "{rep:?}");
        assert_eq!(rep.bytes_truncated, 0);
        assert_eq!(rep.damaged, std::slice::from_ref(last));
        assert_eq!(rep.next_seq, 101);
        assert_eq!(w.append(&payload(101)).unwrap(), 101);
        w.commit().unwrap();
        let mut seen = Vec::new();
        while let Some(it) = r.next_item().unwrap() {
            match it {
                Item::Record(rec) => {
                    assert_eq!(rec.data, payload(rec.seq));
                    seen.push(rec.seq);
                }
                Item::Lost(l) => {
                    assert_eq!((l.first, l.last), (first + 1, first + 1));
                    seen.push(0);
                }
            }
        }
        let mut expect: Vec<u64> = (1..=101).collect();
        expect[first as usize] = 0;
        assert_eq!(seen, expect);
    }
    let (seqs, rep, _) = drain(d.path());
    assert_eq!(rep.bytes_truncated, 0);
    assert_eq!(
        seqs,
        (1..=101).filter(|&s| s != first + 1).collect::<Vec<_>>()
    );
}

#[test]
fn zero_filled_tail_is_cut() {
    let d = tempfile::tempdir().unwrap();
    let segs = build(d.path(), 57);
    let last = segs.last().unwrap();
    let len = fs::metadata(last).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len + 3000)
        .unwrap();
    let (ro, rs) = replay(d.path());
    assert_eq!(ro, (1..=57).collect::<Vec<_>>());
    assert_eq!(rs.tail_bytes_ignored, 3000);
    let (seqs, rep, _) = drain(d.path());
    assert_eq!(rep.bytes_truncated, 3000);
    assert_eq!(rep.next_seq, 58);
    assert_eq!(seqs, (1..=57).collect::<Vec<_>>());
}

#[test]
fn truncated_headers_partial_removed_garbage_quarantined() {
    let d = tempfile::tempdir().unwrap();
    let segs = build(d.path(), 100);
    let n = segs.len();
    // A half-created segment after the last one: a prefix of its header.
    let last_first = first_seq(&segs[n - 1]);
    let last_records = replay(d.path()).0.len() as u64;
    let partial_seq = last_records + 1;
    let partial = d.path().join(format!("{partial_seq:020}.seg"));
    let header = fs::read(&segs[0]).unwrap()[..32].to_vec();
    // Build a matching header prefix by patching the first_seq field.
    let mut h = header.clone();
    h[16..24].copy_from_slice(&partial_seq.to_le_bytes());
    fs::write(&partial, &h[..11]).unwrap();
    // A zero-length one too, and a short garbage one in the middle of the sequence space.
    let empty = d.path().join(format!("{:020}.seg", partial_seq + 5));
    fs::write(&empty, b"").unwrap();
    let garbage = d.path().join(format!("{:020}.seg", last_first + 1));
    fs::write(&garbage, b"not a header").unwrap();

    let (ro, _) = replay(d.path());
    assert_eq!(ro, (1..=100).collect::<Vec<_>>());
    let (seqs, rep, _) = drain(d.path());
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    assert_eq!(rep.removed_partial.len(), 2, "{rep:?}");
    assert_eq!(rep.bytes_truncated, 11);
    assert_eq!(rep.quarantined.len(), 1);
    assert_eq!(rep.quarantined[0].from, garbage);
    assert!(!partial.exists() && !empty.exists());
    // next_seq respects the quarantined file's number space? It only has to exceed what exists.
    assert_eq!(rep.next_seq, 101);
}

#[test]
fn foreign_files_are_left_alone_and_bad_names_quarantined() {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), 30);
    fs::write(d.path().join("notes.txt"), b"hello").unwrap();
    fs::create_dir(d.path().join("subdir")).unwrap();
    fs::write(d.path().join("123.seg"), b"x").unwrap();
    let ro = ReadOnlySpool::open(d.path()).unwrap();
    assert_eq!(ro.foreign(), ["notes.txt", "subdir", "123.seg"]);
    let (seqs, rep, _) = drain(d.path());
    assert_eq!(seqs, (1..=30).collect::<Vec<_>>());
    assert_eq!(rep.foreign, ["notes.txt", "subdir"]);
    let line = rep.to_string();
    assert!(
        line.contains("1 files quarantined") && line.contains("notes.txt"),
        "{line}"
    );
    assert_eq!(rep.quarantined.len(), 1);
    assert_eq!(fs::read(d.path().join("notes.txt")).unwrap(), b"hello");
    assert!(d.path().join("subdir").is_dir());
    // A second bad file with the same name lands next to the first in quarantine.
    fs::write(d.path().join("123.seg"), b"y").unwrap();
    let (_, rep, _) = drain(d.path());
    assert_eq!(
        rep.quarantined[0].to,
        d.path().join(QUARANTINE_DIR).join("123.seg.1")
    );
}

#[test]
fn damaged_ledger_slots() {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), 100);
    {
        let (_w, mut r, _) = Spool::open(d.path(), opts()).unwrap();
        for _ in 0..40 {
            r.next().unwrap();
        }
        r.ack(30).unwrap();
        r.ack(40).unwrap();
    }
    let ledger = d.path().join(LEDGER_FILE);
    // Damage the newer slot: the older position (30) is used, so 31..=40 come again.
    let b = fs::read(&ledger).unwrap();
    let gen = |at: usize| u64::from_le_bytes(b[at + 8..at + 16].try_into().unwrap());
    let newer = if gen(0) > gen(512) { 0 } else { 512 };
    flip(&ledger, newer as u64 + 17);
    let (seqs, rep, _) = drain(d.path());
    assert_eq!(rep.ledger, LedgerStatus::Loaded);
    assert_eq!(rep.acked_seq, 30);
    // Segments holding only records <= 40 may be gone; whatever is left above 30 comes back.
    assert!(seqs.iter().all(|&s| s > 30));
    assert_eq!(*seqs.last().unwrap(), 100);
    assert!(seqs.contains(&41));
    // Both slots damaged: position 0, everything still on disk is delivered again.
    let b = fs::read(&ledger).unwrap();
    let mut z = b.clone();
    z[0] ^= 1;
    z[512] ^= 1;
    fs::write(&ledger, z).unwrap();
    let (seqs, rep, _) = drain(d.path());
    assert!(matches!(rep.ledger, LedgerStatus::Unreadable(_)));
    assert_eq!(rep.acked_seq, 0);
    assert_eq!(*seqs.last().unwrap(), 100);
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn random_damage_never_breaks_open_or_reading() {
    let d = tempfile::tempdir().unwrap();
    let pristine = d.path().join("pristine");
    build(&pristine, 150);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for round in 0..80 {
        let dir = d.path().join(format!("r{round}"));
        copy_dir(&pristine, &dir);
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for _ in 0..1 + rng.below(4) {
            let f = &files[rng.below(files.len() as u64) as usize];
            let mut b = fs::read(f).unwrap();
            match rng.below(5) {
                0 if !b.is_empty() => {
                    let i = rng.below(b.len() as u64) as usize;
                    b[i] ^= 1 << rng.below(8);
                }
                1 => b.truncate(rng.below(b.len() as u64 + 1) as usize),
                2 => b.extend(std::iter::repeat_n(0u8, rng.below(5000) as usize)),
                3 if !b.is_empty() => {
                    let i = rng.below(b.len() as u64) as usize;
                    let n = (rng.below(64) as usize).min(b.len() - i);
                    for x in &mut b[i..i + n] {
                        *x = rng.next() as u8;
                    }
                }
                _ => b = (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
            }
            fs::write(f, b).unwrap();
        }
        let (ro, _) = replay(&dir);
        let (seqs, _, _) = drain(&dir);
        // Both views agree on what they deliver above the (possibly damaged) ack position.
        assert!(seqs.iter().all(|s| ro.contains(s)), "round {round}");
        // And the spool keeps working after recovery.
        let (mut w, mut r, _) = Spool::open(&dir, opts()).unwrap();
        let s = w.append(&payload(999)).unwrap();
        w.commit().unwrap();
        let mut last = None;
        while let Some(rec) = r.next().unwrap() {
            last = Some(rec.seq);
        }
        assert_eq!(last, Some(s), "round {round}");
        drop((w, r));
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn zeroed_ledger_counts_as_missing() {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), 10);
    fs::write(d.path().join(LEDGER_FILE), vec![0u8; 1024]).unwrap();
    let (seqs, rep, _) = drain(d.path());
    assert_eq!(rep.ledger, LedgerStatus::Missing);
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
}

#[test]
fn fifo_and_symlink_under_segment_names_are_not_opened() {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), 20);
    let fifo = d.path().join("00000000000000009999.seg");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/etc/passwd", d.path().join("00000000000000009000.seg")).unwrap();
    let ro = ReadOnlySpool::open(d.path()).unwrap();
    assert_eq!(ro.records().count(), 20);
    let (seqs, rep, _) = drain(d.path());
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    assert_eq!(
        rep.foreign,
        ["00000000000000009000.seg", "00000000000000009999.seg"]
    );
    assert_eq!(rep.next_seq, 21);
}
