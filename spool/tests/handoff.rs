//! The in-memory hand-off delivers exactly what the disk path delivers.
//!
//! Two spools run the same random program side by side on two simulated filesystems: one with
//! the hand-off off (every record read back from disk), one with it on and a memory bound small
//! enough that the reader keeps crossing between memory and disk. Appends, commits, reads of
//! random length, acknowledgements, early writes (hold mode's `write_out`), a full filesystem,
//! injected I/O failures and power losses are the same for both (reading changes nothing on the
//! filesystem, so the failures hit the same operations). After every step both readers must have
//! delivered the same items (records with their payloads and `recovered` flags, lost ranges) and
//! failed or succeeded alike; after the end both must agree on what is left.

mod simfs;

use std::path::Path;
use std::sync::Arc;

use fwlog_spool::{AppendError, FsyncPolicy, Next, Options, Reader, Spool, Writer};
use proptest::prelude::*;
use simfs::SimFs;

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Commit,
    WriteOut,
    Read(usize),
    Ack,
    /// The filesystem holds at most this many more bytes (None: unlimited again).
    Room(Option<u64>),
    FailAfter(u64),
    Crash(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..900).prop_map(Op::Append),
        3 => Just(Op::Commit),
        1 => Just(Op::WriteOut),
        4 => (1usize..60).prop_map(Op::Read),
        2 => Just(Op::Ack),
        1 => proptest::option::of(0u64..20_000).prop_map(Op::Room),
        1 => (0u64..40).prop_map(Op::FailAfter),
        1 => any::<u64>().prop_map(Op::Crash),
    ]
}

struct Twin {
    fs: SimFs,
    opts: Options,
    o: Option<(Writer, Reader)>,
}

/// What one step showed, compared between the twins.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Appended(Result<u64, String>),
    Committed(Result<u64, String>),
    Items(Vec<(Next, usize, u64)>, Option<String>),
    Other(Result<(), String>),
}

/// Payloads compared by length and a hash (a failing case prints short).
fn digest(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn kind<T>(r: Result<T, impl std::fmt::Display>) -> Result<T, String> {
    // Messages name paths and offsets that are the same in both; keep them whole.
    r.map_err(|e| e.to_string())
}

impl Twin {
    fn open(opts: Options) -> Twin {
        let fs = SimFs::new();
        let mut t = Twin { fs, opts, o: None };
        t.reopen();
        t
    }

    fn reopen(&mut self) {
        let (w, r, _) = Spool::open_with_fs(
            Arc::new(self.fs.clone()),
            Path::new("/spool"),
            self.opts.clone(),
        )
        .expect("open after a crash");
        self.o = Some((w, r));
    }

    fn crash(&mut self, seed: u64) {
        self.fs.fail_after(0);
        drop(self.o.take());
        self.fs.crash(seed);
        self.reopen();
    }

    fn step(&mut self, op: &Op, unique: u64) -> Seen {
        let (w, r) = self.o.as_mut().expect("open");
        match *op {
            Op::Append(len) => {
                let mut p = unique.to_le_bytes().to_vec();
                p.resize(8 + len, (unique % 251) as u8);
                Seen::Appended(match w.append(&p) {
                    Ok(s) => Ok(s),
                    Err(AppendError::Full { .. }) => Err("full".into()),
                    Err(e) => Err(e.to_string()),
                })
            }
            Op::Commit => Seen::Committed(kind(w.commit()).map(|c| c.written)),
            Op::WriteOut => Seen::Other(kind(w.write_out())),
            Op::Read(n) => {
                let mut items = Vec::new();
                let mut buf = Vec::new();
                for _ in 0..n {
                    match r.next_into(&mut buf) {
                        Ok(Some(it)) => items.push((it, buf.len(), digest(&buf))),
                        Ok(None) => break,
                        Err(e) => return Seen::Items(items, Some(e.to_string())),
                    }
                }
                Seen::Items(items, None)
            }
            Op::Ack => Seen::Other(kind(r.ack(r.delivered()))),
            Op::Room(room) => {
                let used: u64 = self
                    .fs
                    .list()
                    .iter()
                    .filter_map(|p| self.fs.read(p))
                    .map(|d| d.len() as u64)
                    .sum();
                self.fs.set_capacity(room.map(|b| used + b));
                Seen::Other(Ok(()))
            }
            Op::FailAfter(n) => {
                self.fs.fail_after(n);
                Seen::Other(Ok(()))
            }
            Op::Crash(seed) => {
                self.crash(seed);
                Seen::Other(Ok(()))
            }
        }
    }

    /// Everything still deliverable after a final power loss.
    fn rest(&mut self) -> Vec<(Next, usize, u64)> {
        self.fs.set_capacity(None);
        self.crash(0x5eed);
        let (_, r) = self.o.as_mut().expect("open");
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(it) = r.next_into(&mut buf).expect("read after the end") {
            out.push((it, buf.len(), digest(&buf)));
        }
        out
    }
}

fn options(handoff_bytes: usize, fsync: FsyncPolicy) -> Options {
    Options {
        segment_bytes: 4096,
        max_bytes: 1 << 30,
        read_buffer_bytes: 4096,
        fsync,
        handoff_bytes,
        ..Options::default()
    }
}

fn run(ops: Vec<Op>, handoff: usize, fsync: FsyncPolicy) -> Result<(), TestCaseError> {
    let mut disk = Twin::open(options(0, fsync));
    let mut mem = Twin::open(options(handoff, fsync));
    for (i, op) in ops.iter().enumerate() {
        let unique = i as u64 + 1;
        let a = disk.step(op, unique);
        let before = mem.fs.mutating_ops();
        let b = mem.step(op, unique);
        if matches!(op, Op::Read(_)) {
            prop_assert_eq!(
                before,
                mem.fs.mutating_ops(),
                "reading changed the filesystem"
            );
        }
        prop_assert_eq!(&a, &b, "step {} ({:?}) differs", i, op);
        let dead = disk.fs.is_dead();
        prop_assert_eq!(dead, mem.fs.is_dead());
        if dead {
            // The process died: both start again from what the medium kept.
            let seed = unique.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            disk.crash(seed);
            mem.crash(seed);
        }
    }
    prop_assert_eq!(disk.rest(), mem.rest(), "after the end");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("FWLOG_SPOOL_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    /// One chunk in memory at a time: every other batch comes from disk.
    #[test]
    fn memory_and_disk_deliver_the_same_one_chunk(ops in proptest::collection::vec(op(), 1..150)) {
        run(ops, 64 * 1024, FsyncPolicy::EveryCommit)?;
    }

    #[test]
    fn memory_and_disk_deliver_the_same_many_chunks(ops in proptest::collection::vec(op(), 1..150)) {
        run(ops, 1 << 20, FsyncPolicy::EveryCommit)?;
    }

    #[test]
    fn memory_and_disk_deliver_the_same_without_fsync(ops in proptest::collection::vec(op(), 1..150)) {
        run(ops, 200 * 1024, FsyncPolicy::Never)?;
    }
}

/// A reader that keeps up takes what it reads from memory: the segment file is not opened for
/// reading at all after the first chunk (checked by removing read access: the simulated file is
/// replaced under the same name after the commit, so a disk read would see other bytes).
#[test]
fn a_reader_that_keeps_up_reads_from_memory() {
    let fs = SimFs::new();
    let (mut w, mut r, _) = Spool::open_with_fs(
        Arc::new(fs.clone()),
        "/spool",
        options(1 << 20, FsyncPolicy::EveryCommit),
    )
    .unwrap();
    let mut buf = Vec::new();
    for round in 0..50u64 {
        for k in 0..10u64 {
            w.append(format!("record {round} {k}").as_bytes()).unwrap();
        }
        w.commit().unwrap();
        // Damage every record on the medium: only memory can still deliver them intact.
        for p in fs.list() {
            if p.extension().is_some_and(|e| e == "seg") {
                let len = fs.read(&p).map_or(0, |d| d.len() as u64);
                for off in 32..len {
                    fs.corrupt(&p, off, 0x55);
                }
            }
        }
        for k in 0..10u64 {
            let n = r.next_into(&mut buf).unwrap().unwrap();
            assert!(
                matches!(
                    n,
                    Next::Record {
                        recovered: false,
                        ..
                    }
                ),
                "{n:?}"
            );
            assert_eq!(buf, format!("record {round} {k}").as_bytes());
        }
        assert_eq!(r.next_into(&mut buf).unwrap(), None);
        r.ack(r.delivered()).unwrap();
    }
}
