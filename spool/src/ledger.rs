//! The acknowledgement ledger: one small file holding the highest acknowledged sequence number.
//!
//! Layout: two 32-byte slots at offsets 0 and 512 (see the crate docs for the slot format). An
//! update writes the slot *not* holding the current value, with a generation one higher, and
//! `fdatasync`s: one small write and one sync per acknowledgement, no rename, no directory sync. A
//! torn update damages only the slot being written, whose CRC then fails, so the other slot (the
//! previous value) wins: the ack position can only move back to the previous acknowledgement,
//! which means re-delivery (at-least-once), never loss. If both slots are unreadable the position
//! falls back to 0 and everything still on disk is re-delivered; that is reported.
//!
//! Why not ack records in the segments: the reader would then write into files the writer owns,
//! and deleting a segment would need care not to delete the ack that made it deletable.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{self, LEDGER_FILE_LEN, LEDGER_SLOT_LEN, LEDGER_SLOT_STRIDE};
use crate::fs::{Fs, FsFile};

/// File name of the ledger inside the spool directory.
pub const LEDGER_FILE: &str = "ledger";

/// What the ledger looked like at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerStatus {
    /// A valid slot was found.
    Loaded,
    /// There was no ledger (new spool, or it was never made durable): position 0.
    Missing,
    /// A ledger exists but neither slot is valid: position 0, everything is re-delivered.
    Unreadable(String),
}

/// Reads the ledger; never fails because of bad contents. Returns `(generation, acked, status)`.
pub(crate) fn read(fs: &dyn Fs, path: &Path) -> Result<(u64, u64, LedgerStatus)> {
    let file = match fs.open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0, LedgerStatus::Missing)),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    read_slots(&*file, path)
}

fn read_slots(file: &dyn FsFile, path: &Path) -> Result<(u64, u64, LedgerStatus)> {
    let mut best: Option<(u64, u64)> = None;
    let mut why = String::new();
    // A ledger whose creation was cut short by a crash holds only zeros (or nothing): no
    // acknowledgement was ever made, which is "missing", not "unreadable".
    let mut blank = true;
    for i in 0..2u64 {
        let mut b = [0u8; LEDGER_SLOT_LEN];
        let mut got = 0;
        while got < b.len() {
            let n = file
                .read_at(&mut b[got..], i * LEDGER_SLOT_STRIDE + got as u64)
                .map_err(|e| Error::io("read", path, e))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        blank &= b[..got].iter().all(|&x| x == 0);
        match format::decode_ledger_slot(&b[..got]) {
            Ok((g, a)) if best.is_none_or(|(bg, _)| g > bg) => best = Some((g, a)),
            Ok(_) => {}
            Err(e) => why = format!("slot {i}: {e}"),
        }
    }
    Ok(match best {
        Some((g, a)) => (g, a, LedgerStatus::Loaded),
        None if blank => (0, 0, LedgerStatus::Missing),
        None => (0, 0, LedgerStatus::Unreadable(why)),
    })
}

/// The writable ledger, owned by the reader.
pub(crate) struct Ledger {
    file: Box<dyn FsFile>,
    path: PathBuf,
    generation: u64,
    /// The position the last successful `store` made durable.
    stored: u64,
}

impl Ledger {
    /// Opens the ledger, creating it (durably: data and directory entry) if missing.
    pub fn open(fs: &dyn Fs, dir: &Path) -> Result<(Ledger, u64, LedgerStatus)> {
        let path = dir.join(LEDGER_FILE);
        match fs.open_rw(&path) {
            Ok(file) => {
                let (generation, acked, status) = read_slots(&*file, &path)?;
                Ok((
                    Ledger {
                        file,
                        path,
                        generation,
                        // Unknown as far as this process goes (recovery may clamp the
                        // position read): the first acknowledgement always stores.
                        stored: 0,
                    },
                    acked,
                    status,
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let file = fs
                    .create_new(&path)
                    .map_err(|e| Error::io("create", &path, e))?;
                let mut l = Ledger {
                    file,
                    path,
                    generation: 0,
                    stored: 0,
                };
                l.file
                    .set_len(LEDGER_FILE_LEN)
                    .map_err(|e| Error::io("ftruncate", &l.path, e))?;
                l.store(0)?;
                fs.sync_dir(dir).map_err(|e| Error::io("fsync", dir, e))?;
                Ok((l, 0, LedgerStatus::Missing))
            }
            Err(e) => Err(Error::io("open", &path, e)),
        }
    }

    /// Durably records `acked` as the acknowledged position.
    pub fn store(&mut self, acked: u64) -> Result<()> {
        // The generation only advances once the slot is durable: a failed attempt is retried
        // into the same slot, so the slot holding the last good value is never the one at risk.
        let next = self.generation + 1;
        let bytes = format::encode_ledger_slot(next, acked);
        self.file
            .write_at(&bytes, (next % 2) * LEDGER_SLOT_STRIDE)
            .map_err(|e| Error::io("write", &self.path, e))?;
        self.file
            .sync_data()
            .map_err(|e| Error::io("fdatasync", &self.path, e))?;
        self.generation = next;
        self.stored = acked;
        Ok(())
    }

    /// The position the last successful [`store`](Self::store) made durable (or the one read at
    /// open).
    pub fn stored(&self) -> u64 {
        self.stored
    }
}
