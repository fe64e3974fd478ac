//! Damage that must be reported, never silently lost: a duplicated record, a damaged segment
//! header, a huge all-zero segment, an impossible ledger position, planted names. Every record
//! is either delivered or inside a lost range, in the live reader and in replay.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use fwlog_spool::{Item, Options, ReadOnlySpool, ReplayItem, Spool, LEDGER_FILE};

fn opts() -> Options {
    Options {
        segment_bytes: 4096,
        ..Options::default()
    }
}

fn payload(seq: u64) -> Vec<u8> {
    vec![seq as u8; 40 + (seq as usize * 13) % 90]
}

fn build(dir: &Path, n: u64) -> Vec<PathBuf> {
    let (mut w, _r, _) = Spool::open(dir, opts()).unwrap();
    for s in 1..=n {
        assert_eq!(w.append(&payload(s)).unwrap(), s);
        if s % 10 == 0 {
            w.commit().unwrap();
        }
    }
    w.close().unwrap();
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

/// Delivered seqs and lost ranges from a writable open, in order.
fn live(dir: &Path) -> (Vec<u64>, Vec<(u64, u64)>, fwlog_spool::OpenReport) {
    let (_w, mut r, rep) = Spool::open(dir, opts()).unwrap();
    let (mut got, mut lost) = (Vec::new(), Vec::new());
    while let Some(it) = r.next_item().unwrap() {
        match it {
            Item::Record(rec) => {
                assert_eq!(rec.data, payload(rec.seq));
                got.push(rec.seq);
            }
            Item::Lost(l) => lost.push((l.first, l.last)),
        }
    }
    (got, lost, rep)
}

fn replay(dir: &Path) -> (Vec<u64>, Vec<(u64, u64)>) {
    let ro = ReadOnlySpool::open(dir).unwrap();
    let mut it = ro.records();
    let (mut got, mut lost) = (Vec::new(), Vec::new());
    while let Some(x) = it.next_item() {
        match x.unwrap() {
            ReplayItem::Record(r) => got.push(r.seq),
            ReplayItem::Lost(l) => lost.push((l.first, l.last)),
        }
    }
    (got, lost)
}

/// Every number in 1..=n is delivered exactly once or inside exactly one lost range.
fn covered(n: u64, got: &[u64], lost: &[(u64, u64)]) {
    let mut all: Vec<u64> = got.to_vec();
    for &(a, b) in lost {
        all.extend(a..=b);
    }
    all.sort();
    assert_eq!(
        all,
        (1..=n).collect::<Vec<_>>(),
        "got {got:?} lost {lost:?}"
    );
}

#[test]
fn duplicated_record_in_last_segment_is_skipped_without_cutting_what_follows() {
    let d = tempfile::tempdir().unwrap();
    let segs = build(d.path(), 60);
    let last = segs.last().unwrap();
    let first = first_seq(last);
    let mut b = fs::read(last).unwrap();
    // Duplicate the segment's second record in place.
    let r1 = 32 + 20 + payload(first).len();
    let r2 = r1 + 20 + payload(first + 1).len();
    let dup = b[r1..r2].to_vec();
    b.splice(r2..r2, dup);
    fs::write(last, &b).unwrap();
    let (got, lost) = replay(d.path());
    assert_eq!(got, (1..=60).collect::<Vec<_>>());
    assert!(lost.is_empty());
    let (got, lost, rep) = live(d.path());
    assert_eq!(rep.bytes_truncated, 0, "{rep}");
    assert_eq!(got, (1..=60).collect::<Vec<_>>());
    assert!(lost.is_empty());
    assert_eq!(rep.next_seq, 61);
}

#[test]
fn flipped_header_byte_reports_the_segments_range_as_lost() {
    let d = tempfile::tempdir().unwrap();
    let segs = build(d.path(), 200);
    let (first, next) = (first_seq(&segs[1]), first_seq(&segs[2]));
    let mut b = fs::read(&segs[1]).unwrap();
    b[20] ^= 1; // inside first_seq: the header CRC no longer matches
    fs::write(&segs[1], &b).unwrap();
    let (got, lost) = replay(d.path());
    assert_eq!(lost, [(first, next - 1)]);
    covered(200, &got, &lost);
    let (got, lost, rep) = live(d.path());
    assert_eq!(rep.quarantined.len(), 1);
    assert_eq!(lost, [(first, next - 1)]);
    covered(200, &got, &lost);
}

#[test]
fn huge_all_zero_segment_is_quarantined_at_once_and_its_range_reported() {
    let d = tempfile::tempdir().unwrap();
    let segs = build(d.path(), 200);
    let (first, next) = (first_seq(&segs[1]), first_seq(&segs[2]));
    let f = fs::File::create(&segs[1]).unwrap();
    f.set_len(20 << 30).unwrap(); // 20 GiB of holes
    drop(f);
    let t = Instant::now();
    let (got, lost, rep) = live(d.path());
    let took = t.elapsed();
    eprintln!("open with a 20 GiB all-zero segment: {took:?}");
    assert_eq!(rep.quarantined.len(), 1, "{rep}");
    assert!(rep.removed_partial.is_empty());
    assert_eq!(lost, [(first, next - 1)]);
    covered(200, &got, &lost);
    // Not a timing assertion on speed, a guard against reading 20 GiB: that takes many seconds.
    assert!(took.as_secs() < 5, "open took {took:?}");
}

#[test]
fn impossible_ledger_position_is_clamped_and_numbering_does_not_wrap() {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), 30);
    // A valid slot (magic, version, generation 9, acked u64::MAX, CRC) in both places.
    let mut slot = [0u8; 32];
    slot[0..4].copy_from_slice(b"FWLA");
    slot[4] = 1;
    slot[8..16].copy_from_slice(&9u64.to_le_bytes());
    slot[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    let c = crc32c::crc32c(&slot[0..24]);
    slot[24..28].copy_from_slice(&c.to_le_bytes());
    let mut ledger = vec![0u8; 1024];
    ledger[0..32].copy_from_slice(&slot);
    ledger[512..544].copy_from_slice(&slot);
    fs::write(d.path().join(LEDGER_FILE), &ledger).unwrap();
    {
        let (mut w, mut r, rep) = Spool::open(d.path(), opts()).unwrap();
        assert_eq!(rep.ledger_clamped, Some(u64::MAX));
        assert_eq!(rep.acked_seq, 30);
        assert!(rep.to_string().contains("impossible"), "{rep}");
        assert_eq!(w.append(b"after").unwrap(), 31);
        w.commit().unwrap();
        let rec = r.next().unwrap().unwrap();
        assert_eq!((rec.seq, rec.data.as_slice()), (31, &b"after"[..]));
        r.ack(31).unwrap();
    }
    let (_w, _r, rep) = Spool::open(d.path(), opts()).unwrap();
    assert_eq!(
        (rep.ledger_clamped, rep.acked_seq, rep.next_seq),
        (None, 31, 32)
    );
    drop((_w, _r));
    // Read-only, the impossible position counts as none: nothing is taken as printed.
    fs::write(d.path().join(LEDGER_FILE), &ledger).unwrap();
    assert_eq!(ReadOnlySpool::open(d.path()).unwrap().acked(), 0);
}

#[test]
fn planted_entries_are_reported_with_escaped_names_and_never_opened() {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), 20);
    let fifo = d.path().join("00000000000000000500.seg");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/etc/shadow", d.path().join("00000000000000000400.seg")).unwrap();
    fs::write(d.path().join("evil\x1b[31m\nfwlog: forged"), b"x").unwrap();
    let (got, lost, rep) = live(d.path());
    assert_eq!(got, (1..=20).collect::<Vec<_>>());
    assert!(lost.is_empty());
    assert_eq!(rep.foreign.len(), 3);
    let line = rep.to_string();
    assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
    assert!(line.contains("evil\\x1b[31m\\x0afwlog: forged"), "{line}");
    assert!(line.contains("00000000000000000500.seg"), "{line}");
}

#[test]
fn flipped_bytes_anywhere_leave_every_record_delivered_or_reported() {
    let d = tempfile::tempdir().unwrap();
    let pristine = d.path().join("p");
    let segs = build(&pristine, 150);
    let mut k = 0;
    for (i, seg) in segs.iter().enumerate() {
        let len = fs::metadata(seg).unwrap().len();
        for at in (32..len).step_by(97) {
            let dir = d.path().join(format!("c{k}"));
            k += 1;
            fs::create_dir(&dir).unwrap();
            for s in &segs {
                fs::copy(s, dir.join(s.file_name().unwrap())).unwrap();
            }
            let victim = dir.join(seg.file_name().unwrap());
            let mut b = fs::read(&victim).unwrap();
            b[at as usize] ^= 0x10;
            fs::write(&victim, &b).unwrap();
            let (rg, rl) = replay(&dir);
            let (got, lost, _) = live(&dir);
            if i + 1 < segs.len() || at + 200 < len {
                // Not the very end of the spool: nothing may vanish unreported.
                covered(150, &got, &lost);
                covered(150, &rg, &rl);
            }
            fs::remove_dir_all(&dir).unwrap();
        }
    }
}

#[test]
fn damaged_header_of_the_last_segment_still_reports_its_records() {
    let d = tempfile::tempdir().unwrap();
    let segs = build(d.path(), 100);
    let last = segs.last().unwrap();
    let first = first_seq(last);
    assert!(first < 100);
    let mut b = fs::read(last).unwrap();
    b[2] ^= 0x04; // magic
    fs::write(last, &b).unwrap();
    let (mut w, mut r, rep) = Spool::open(d.path(), opts()).unwrap();
    assert_eq!(rep.quarantined.len(), 1, "{rep}");
    assert_eq!(
        rep.next_seq, 101,
        "new numbers start above the quarantined records"
    );
    assert_eq!(w.append(&payload(101)).unwrap(), 101);
    w.commit().unwrap();
    let (mut got, mut lost) = (Vec::new(), Vec::new());
    while let Some(it) = r.next_item().unwrap() {
        match it {
            Item::Record(rec) => got.push(rec.seq),
            Item::Lost(l) => lost.push((l.first, l.last)),
        }
    }
    assert_eq!(lost, [(first, 100)]);
    covered(101, &got, &lost);
}

#[test]
fn huge_all_zero_last_segment_is_quarantined_quickly_and_reported() {
    let d = tempfile::tempdir().unwrap();
    let segs = build(d.path(), 100);
    let last = segs.last().unwrap();
    let first = first_seq(last);
    fs::File::create(last).unwrap().set_len(20 << 30).unwrap();
    let t = Instant::now();
    let (mut w, mut r, rep) = Spool::open(d.path(), opts()).unwrap();
    assert!(t.elapsed().as_secs() < 5, "open took {:?}", t.elapsed());
    assert_eq!(rep.quarantined.len(), 1, "{rep}");
    // Nothing in it tells how many records it held: at least its first number is reported.
    assert_eq!(rep.next_seq, first + 1);
    w.append(b"new").unwrap();
    w.commit().unwrap();
    let mut lost = Vec::new();
    while let Some(it) = r.next_item().unwrap() {
        if let Item::Lost(l) = it {
            lost.push((l.first, l.last));
        }
    }
    assert_eq!(lost, [(first, first)]);
}
