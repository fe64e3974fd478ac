//! A simulated filesystem that remembers what was synced and can crash.
//!
//! - File contents: each inode has `data` (what reads see) and `synced` (what `sync_data` last
//!   made durable).
//! - Names: `cur` is the namespace as seen by calls; `durable` is what `sync_dir` made durable,
//!   per directory.
//! - `fail_after(n)`: the n-th mutating call from now fails with EIO and so does every call after
//!   it, as if the process died there.
//! - `set_capacity(Some(n))`: the file contents together may hold at most `n` bytes; a write
//!   that would grow them beyond stores what fits and fails with ENOSPC, like a full disk.
//! - `crash(seed)`: what survives is chosen adversarially but within what a real filesystem may
//!   do: every name whose create/remove/rename was not made durable by a directory sync may or may
//!   not have happened; every file keeps its synced bytes, and of the unsynced ones a random mix
//!   (prefix of the new data, zero-filled tail, half-old/half-new overwrite, or nothing).
//!   Afterwards all old handles and locks are dead.
//! - A clock that moves only when the test says so (`advance`); writes stamp the file's mtime with
//!   it, so retention by age can be tested without sleeping. A crash keeps the mtimes (a real
//!   filesystem journals the mtime with the size change that `fdatasync` makes durable).

#![allow(dead_code)]

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fwlog_spool::{DirEntry, Fs, FsFile};

struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
    mtime: SystemTime,
}

impl Default for Inode {
    fn default() -> Self {
        Inode {
            data: Vec::new(),
            synced: Vec::new(),
            mtime: start(),
        }
    }
}

/// The simulated clock starts here (2026-01-01T00:00:00Z).
pub fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

type InodeRef = Arc<Mutex<Inode>>;

#[derive(Clone)]
enum Entry {
    File(Arc<Mutex<Inode>>),
    Dir,
}

#[derive(Default)]
struct State {
    cur: BTreeMap<PathBuf, Entry>,
    durable: BTreeMap<PathBuf, Entry>,
    locks: BTreeSet<PathBuf>,
    generation: u64,
    fail_after: Option<u64>,
    dead: bool,
    ops: u64,
    /// Time elapsed on the simulated clock since `start()`.
    elapsed: Duration,
    capacity: Option<u64>,
}

#[derive(Clone, Default)]
pub struct SimFs(Arc<Mutex<State>>);

fn eio() -> io::Error {
    io::Error::other("simulated I/O failure (process died here)")
}

struct Xorshift(u64);
impl Xorshift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

impl SimFs {
    pub fn new() -> SimFs {
        let fs = SimFs::default();
        {
            let mut st = fs.0.lock().unwrap();
            st.cur.insert(PathBuf::from("/"), Entry::Dir);
            st.durable.insert(PathBuf::from("/"), Entry::Dir);
        }
        fs
    }

    /// Total bytes the files may hold (`None`: unlimited).
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.0.lock().unwrap().capacity = bytes;
    }

    /// The `n`-th mutating operation from now (0 = the next one) fails, and everything after it.
    pub fn fail_after(&self, n: u64) {
        self.0.lock().unwrap().fail_after = Some(n);
    }

    /// Moves the simulated clock forward.
    pub fn advance(&self, d: Duration) {
        self.0.lock().unwrap().elapsed += d;
    }

    /// Moves the simulated clock back (a wall clock set back by NTP or an admin).
    pub fn rewind(&self, d: Duration) {
        let mut st = self.0.lock().unwrap();
        st.elapsed = st.elapsed.saturating_sub(d);
    }

    pub fn is_dead(&self) -> bool {
        self.0.lock().unwrap().dead
    }

    pub fn mutating_ops(&self) -> u64 {
        self.0.lock().unwrap().ops
    }

    /// Power loss: rebuild the state from what was durable, plus an adversarial choice of what
    /// was not.
    pub fn crash(&self, seed: u64) {
        let mut rng = Xorshift(seed | 1);
        let mut st = self.0.lock().unwrap();
        let mut names: BTreeMap<PathBuf, Entry> = BTreeMap::new();
        let keys: BTreeSet<PathBuf> = st.cur.keys().chain(st.durable.keys()).cloned().collect();
        for k in keys {
            let d = st.durable.get(&k).cloned();
            let c = st.cur.get(&k).cloned();
            let same = match (&d, &c) {
                (Some(Entry::File(a)), Some(Entry::File(b))) => Arc::ptr_eq(a, b),
                (Some(Entry::Dir), Some(Entry::Dir)) => true,
                (None, None) => true,
                _ => false,
            };
            let pick = if same || rng.below(2) == 0 { d } else { c };
            if let Some(e) = pick {
                names.insert(k, e);
            }
        }
        // Drop names whose parent directory did not survive.
        let dirs: BTreeSet<PathBuf> = names
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Dir))
            .map(|(k, _)| k.clone())
            .collect();
        names.retain(|k, _| k.parent().is_none_or(|p| dirs.contains(p)));
        // New inodes (old handles must not reach the new state); hard links do not exist, but a
        // file may be reachable under two names after a rename that half-survived: share it.
        let mut fresh: Vec<(InodeRef, InodeRef)> = Vec::new();
        for e in names.values_mut() {
            if let Entry::File(old) = e {
                if let Some((_, n)) = fresh.iter().find(|(o, _)| Arc::ptr_eq(o, old)) {
                    *e = Entry::File(n.clone());
                    continue;
                }
                let (content, mtime) = {
                    let ino = old.lock().unwrap();
                    (survive(&ino.synced, &ino.data, &mut rng), ino.mtime)
                };
                let n = Arc::new(Mutex::new(Inode {
                    data: content.clone(),
                    synced: content,
                    mtime,
                }));
                fresh.push((old.clone(), n.clone()));
                *e = Entry::File(n);
            }
        }
        st.cur = names.clone();
        st.durable = names;
        st.locks.clear();
        st.generation += 1;
        st.fail_after = None;
        st.dead = false;
    }

    /// Damages a file on the medium: byte `offset` is xored with `mask` in what reads see and in
    /// what survives a crash (bit rot, a bad sector), without counting as an operation.
    pub fn corrupt(&self, path: &Path, offset: u64, mask: u8) {
        let st = self.0.lock().unwrap();
        if let Some(Entry::File(i)) = st.cur.get(path) {
            let mut ino = i.lock().unwrap();
            let at = offset as usize;
            if let Some(b) = ino.data.get_mut(at) {
                *b ^= mask;
            }
            if let Some(b) = ino.synced.get_mut(at) {
                *b ^= mask;
            }
        }
    }

    /// Reads a whole file (for tests that corrupt things by hand).
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.0.lock().unwrap();
        match st.cur.get(path) {
            Some(Entry::File(i)) => Some(i.lock().unwrap().data.clone()),
            _ => None,
        }
    }

    pub fn list(&self) -> Vec<PathBuf> {
        self.0.lock().unwrap().cur.keys().cloned().collect()
    }

    fn mutate(&self) -> io::Result<std::sync::MutexGuard<'_, State>> {
        let mut st = self.0.lock().unwrap();
        if st.dead {
            return Err(eio());
        }
        st.ops += 1;
        if let Some(n) = st.fail_after {
            if n == 0 {
                st.dead = true;
                return Err(eio());
            }
            st.fail_after = Some(n - 1);
        }
        Ok(st)
    }

    fn look(&self) -> io::Result<std::sync::MutexGuard<'_, State>> {
        let st = self.0.lock().unwrap();
        if st.dead {
            return Err(eio());
        }
        Ok(st)
    }

    fn handle(&self, st: &State, ino: Arc<Mutex<Inode>>) -> Box<dyn FsFile> {
        Box::new(SimFile {
            fs: self.clone(),
            ino,
            generation: st.generation,
        })
    }
}

/// What of a file survives a crash.
fn survive(synced: &[u8], data: &[u8], rng: &mut Xorshift) -> Vec<u8> {
    if synced == data {
        return synced.to_vec();
    }
    let lo = synced.len().min(data.len());
    let hi = synced.len().max(data.len());
    match rng.below(5) {
        0 => synced.to_vec(),
        1 => data.to_vec(),
        mode => {
            let len = lo + rng.below((hi - lo + 1) as u64) as usize;
            let split = rng.below(len as u64 + 1) as usize;
            (0..len)
                .map(|i| {
                    let (a, b) = if i < split {
                        (data, synced)
                    } else {
                        (synced, data)
                    };
                    if mode == 4 && i >= synced.len() {
                        0 // allocated but never written: zeros
                    } else {
                        a.get(i).or_else(|| b.get(i)).copied().unwrap_or(0)
                    }
                })
                .collect()
        }
    }
}

struct SimFile {
    fs: SimFs,
    ino: Arc<Mutex<Inode>>,
    generation: u64,
}

impl SimFile {
    fn check(&self, st: &State) -> io::Result<()> {
        if st.generation != self.generation {
            return Err(io::Error::other("stale handle from before the crash"));
        }
        Ok(())
    }
}

impl FsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let st = self.fs.look()?;
        self.check(&st)?;
        let ino = self.ino.lock().unwrap();
        let off = offset as usize;
        if off >= ino.data.len() {
            return Ok(0);
        }
        let n = buf.len().min(ino.data.len() - off);
        buf[..n].copy_from_slice(&ino.data[off..off + n]);
        Ok(n)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let st = self.fs.mutate()?;
        self.check(&st)?;
        let room = st.capacity.map(|cap| {
            let used: u64 = st
                .cur
                .values()
                .map(|e| match e {
                    Entry::File(i) if !Arc::ptr_eq(i, &self.ino) => {
                        i.lock().unwrap().data.len() as u64
                    }
                    _ => 0,
                })
                .sum();
            cap.saturating_sub(used) as usize
        });
        let mut ino = self.ino.lock().unwrap();
        if let Some(room) = room {
            let end = offset as usize + buf.len();
            if end > room.max(ino.data.len()) {
                // Store what fits, then fail like a full disk.
                let fits = room
                    .max(ino.data.len())
                    .saturating_sub(offset as usize)
                    .min(buf.len());
                let stop = offset as usize + fits;
                if ino.data.len() < stop {
                    ino.data.resize(stop, 0);
                }
                ino.data[offset as usize..stop].copy_from_slice(&buf[..fits]);
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
        }
        let end = offset as usize + buf.len();
        if ino.data.len() < end {
            ino.data.resize(end, 0);
        }
        ino.data[offset as usize..end].copy_from_slice(buf);
        ino.mtime = start() + st.elapsed;
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        let st = self.fs.mutate()?;
        self.check(&st)?;
        let mut ino = self.ino.lock().unwrap();
        ino.synced = ino.data.clone();
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let st = self.fs.mutate()?;
        self.check(&st)?;
        let mut ino = self.ino.lock().unwrap();
        ino.data.resize(len as usize, 0);
        ino.mtime = start() + st.elapsed;
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        let st = self.fs.look()?;
        self.check(&st)?;
        Ok(self.ino.lock().unwrap().data.len() as u64)
    }
}

fn not_found(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found", p.display()),
    )
}

fn parent_is_dir(st: &State, p: &Path) -> io::Result<()> {
    match p.parent().and_then(|d| st.cur.get(d)) {
        Some(Entry::Dir) => Ok(()),
        _ => Err(not_found(p)),
    }
}

struct LockGuard {
    fs: SimFs,
    path: PathBuf,
    generation: u64,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let mut st = self.fs.0.lock().unwrap();
        if st.generation == self.generation {
            st.locks.remove(&self.path);
        }
    }
}

impl Fs for SimFs {
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let st = self.look()?;
        match st.cur.get(path) {
            Some(Entry::File(i)) => Ok(self.handle(&st, i.clone())),
            Some(Entry::Dir) => Err(io::Error::other("is a directory")),
            None => Err(not_found(path)),
        }
    }
    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.open_read(path)
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut st = self.mutate()?;
        parent_is_dir(&st, path)?;
        if st.cur.contains_key(path) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "exists"));
        }
        let ino = Arc::new(Mutex::new(Inode {
            mtime: start() + st.elapsed,
            ..Inode::default()
        }));
        st.cur.insert(path.to_path_buf(), Entry::File(ino.clone()));
        Ok(self.handle(&st, ino))
    }
    fn create_dir(&self, path: &Path) -> io::Result<bool> {
        let mut st = self.mutate()?;
        match st.cur.get(path) {
            Some(Entry::Dir) => return Ok(false),
            Some(Entry::File(_)) => {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "file exists"))
            }
            None => {}
        }
        parent_is_dir(&st, path)?;
        st.cur.insert(path.to_path_buf(), Entry::Dir);
        Ok(true)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let st = self.look()?;
        match st.cur.get(path) {
            Some(Entry::Dir) => {}
            _ => return Err(not_found(path)),
        }
        Ok(st
            .cur
            .iter()
            .filter(|(k, _)| k.parent() == Some(path))
            .map(|(k, e)| DirEntry {
                name: k.file_name().unwrap().to_string_lossy().into_owned(),
                is_dir: matches!(e, Entry::Dir),
                is_file: matches!(e, Entry::File(_)),
            })
            .collect())
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.mutate()?;
        match st.cur.get(path) {
            Some(Entry::File(_)) => {
                st.cur.remove(path);
                Ok(())
            }
            _ => Err(not_found(path)),
        }
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.mutate()?;
        parent_is_dir(&st, to)?;
        match st.cur.remove(from) {
            Some(e @ Entry::File(_)) => {
                st.cur.insert(to.to_path_buf(), e);
                Ok(())
            }
            Some(e) => {
                st.cur.insert(from.to_path_buf(), e);
                Err(io::Error::other("renaming directories is not simulated"))
            }
            None => Err(not_found(from)),
        }
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.mutate()?;
        if !matches!(st.cur.get(path), Some(Entry::Dir)) {
            return Err(not_found(path));
        }
        let children: Vec<(PathBuf, Entry)> = st
            .cur
            .iter()
            .filter(|(k, _)| k.parent() == Some(path))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        st.durable.retain(|k, _| k.parent() != Some(path));
        st.durable.extend(children);
        Ok(())
    }
    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        let mut st = self.mutate()?;
        parent_is_dir(&st, path)?;
        if !st.cur.contains_key(path) {
            st.cur.insert(
                path.to_path_buf(),
                Entry::File(Arc::new(Mutex::new(Inode::default()))),
            );
        }
        if !st.locks.insert(path.to_path_buf()) {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "locked"));
        }
        Ok(Box::new(LockGuard {
            fs: self.clone(),
            path: path.to_path_buf(),
            generation: st.generation,
        }))
    }
    fn modified(&self, path: &Path) -> io::Result<SystemTime> {
        let st = self.look()?;
        match st.cur.get(path) {
            Some(Entry::File(i)) => Ok(i.lock().unwrap().mtime),
            Some(Entry::Dir) => Ok(start() + st.elapsed),
            None => Err(not_found(path)),
        }
    }
    fn now(&self) -> SystemTime {
        start() + self.0.lock().unwrap().elapsed
    }
}
