//! The simulated filesystem with a gate in front of every segment `sync_data`, shared by the
//! sync-thread tests: a test holds syncs (`close`/`open`), makes the next one fail or panic
//! (`then`), and reads the log of segment writes, syncs (with the thread that synced) and
//! creations.

#![allow(dead_code)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use fwlog_spool::{DirEntry, Error, Fs, FsFile, Item, Options, Reader, Spool, Writer};

use crate::simfs::SimFs;

/// What the next sync does once the gate lets it through.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Next {
    Sync,
    Fail(i32),
    Panic,
}

#[derive(Default)]
struct Gate {
    closed: bool,
    /// Syncs waiting at the gate.
    waiting: u64,
    next: Option<Next>,
}

/// The simulated filesystem with a gate before every `sync_data` of a segment, and a log of
/// segment writes, syncs and creations.
#[derive(Clone)]
pub struct GateFs {
    pub sim: SimFs,
    gate: Arc<(Mutex<Gate>, Condvar)>,
    pub syncs: Arc<AtomicU64>,
    pub log: Arc<Mutex<Vec<(char, PathBuf, u64)>>>,
    /// The thread (its name) of each segment sync, in order.
    pub sync_threads: Arc<Mutex<Vec<String>>>,
}

impl GateFs {
    pub fn new() -> GateFs {
        GateFs {
            sim: SimFs::new(),
            gate: Arc::default(),
            syncs: Arc::default(),
            log: Arc::default(),
            sync_threads: Arc::default(),
        }
    }

    pub fn close(&self) {
        self.gate.0.lock().unwrap().closed = true;
    }

    pub fn open(&self) {
        self.gate.0.lock().unwrap().closed = false;
        self.gate.1.notify_all();
    }

    /// What the next sync through the gate does (once).
    pub fn then(&self, n: Next) {
        self.gate.0.lock().unwrap().next = Some(n);
    }

    /// Until a sync waits at the closed gate.
    pub fn until_waiting(&self) {
        let (m, c) = &*self.gate;
        let mut g = m.lock().unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        while g.waiting == 0 {
            assert!(Instant::now() < end, "no sync reached the gate");
            g = c.wait_timeout(g, Duration::from_millis(10)).unwrap().0;
        }
    }

    fn wrap(&self, path: &Path, f: Box<dyn FsFile>) -> Box<dyn FsFile> {
        if path.extension().is_some_and(|e| e == "seg") {
            Box::new(GateFile {
                fs: self.clone(),
                path: path.to_path_buf(),
                inner: f,
            })
        } else {
            f
        }
    }
}

struct GateFile {
    fs: GateFs,
    path: PathBuf,
    inner: Box<dyn FsFile>,
}

impl FsFile for GateFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_at(buf, offset)?;
        let end = offset + buf.len() as u64;
        self.fs
            .log
            .lock()
            .unwrap()
            .push(('w', self.path.clone(), end));
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        let next = {
            let (m, c) = &*self.fs.gate;
            let mut g = m.lock().unwrap();
            g.waiting += 1;
            c.notify_all();
            while g.closed {
                g = c.wait(g).unwrap();
            }
            g.waiting -= 1;
            g.next.take().unwrap_or(Next::Sync)
        };
        match next {
            Next::Sync => {}
            Next::Fail(errno) => return Err(io::Error::from_raw_os_error(errno)),
            Next::Panic => panic!("simulated panic in fdatasync"),
        }
        self.inner.sync_data()?;
        self.fs.syncs.fetch_add(1, SeqCst);
        let name = std::thread::current().name().unwrap_or("").to_string();
        self.fs.sync_threads.lock().unwrap().push(name);
        let len = self.inner.len()?;
        self.fs
            .log
            .lock()
            .unwrap()
            .push(('s', self.path.clone(), len));
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl Fs for GateFs {
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.sim.open_read(path)
    }
    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        Ok(self.wrap(path, self.sim.open_rw(path)?))
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let f = self.sim.create_new(path)?;
        if path.extension().is_some_and(|e| e == "seg") {
            self.log.lock().unwrap().push(('c', path.to_path_buf(), 0));
        }
        Ok(self.wrap(path, f))
    }
    fn create_dir(&self, path: &Path) -> io::Result<bool> {
        self.sim.create_dir(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        self.sim.read_dir(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.sim.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.sim.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.sim.sync_dir(path)
    }
    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn std::any::Any + Send + Sync>> {
        self.sim.lock_exclusive(path)
    }
    fn modified(&self, path: &Path) -> io::Result<std::time::SystemTime> {
        self.sim.modified(path)
    }
    fn now(&self) -> std::time::SystemTime {
        self.sim.now()
    }
}

pub fn opts() -> Options {
    Options {
        segment_bytes: 64 * 1024,
        background_sync: true,
        handoff_bytes: 1 << 20,
        ..Options::default()
    }
}

pub fn open(fs: &GateFs, opts: Options) -> (Writer, Reader) {
    let (w, r, _) = Spool::open_with_fs(Arc::new(fs.clone()), "/spool", opts).unwrap();
    (w, r)
}

pub fn payload(i: u64) -> Vec<u8> {
    let mut v = i.to_le_bytes().to_vec();
    v.resize(100 + (i as usize * 7) % 100, i as u8);
    v
}

/// Appends the records whose payload ids are `ids`, without committing.
pub fn append_n(w: &mut Writer, ids: std::ops::Range<u64>) {
    for i in ids {
        w.append(&payload(i)).unwrap();
    }
}

/// Whether `e` is the I/O error of a failed `fdatasync` (not a full disk, not poison).
pub fn is_sync_eio(e: &Error) -> bool {
    matches!(
        e,
        Error::Io {
            op: "fdatasync",
            ..
        }
    )
}

/// Everything the reader has now (it does not wait): (seq, id in the payload).
pub fn drain(r: &mut Reader) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    while let Some(it) = r.next_item().unwrap() {
        match it {
            Item::Record(rec) => {
                let id = u64::from_le_bytes(rec.data[..8].try_into().unwrap());
                assert_eq!(rec.data, payload(id));
                out.push((rec.seq, id));
            }
            Item::Lost(l) => panic!("lost {}-{}", l.first, l.last),
        }
    }
    out
}

/// Waits (bounded) until the reader has `n` records in all, collecting them.
pub fn read_n(r: &mut Reader, got: &mut Vec<(u64, u64)>, n: usize) {
    let end = Instant::now() + Duration::from_secs(10);
    while got.len() < n {
        assert!(
            Instant::now() < end,
            "only {} of {n} records published",
            got.len()
        );
        r.wait(Duration::from_millis(20));
        got.extend(drain(r));
    }
}
