//! `--output pcap:PATH` and `pcap-raw:PATH`: every packet kept as it happens, for tcpdump and
//! Wireshark.
//!
//! `pcap:` writes LINKTYPE_NFLOG records, each the spool record as is, exactly as `fwlog replay
//! --pcap` writes them (so `fwlog read` of the file prints the same lines, interface names
//! included); `pcap-raw:` writes LINKTYPE_RAW records from the IP header on, for tools that do
//! not know NFLOG (packets that are not IPv4 or IPv6, such as ARP, have no place there and are
//! left out, said once on stderr). Loss reports are not packets and are not written.
//!
//! Contract (the [`PacketSink`] one):
//! - Records are framed into a buffer as packets arrive; `commit` appends whole records with
//!   O_APPEND and, when the output syncs, `fdatasync`s before returning `Ok`, so the spool is
//!   acknowledged only for records on disk.
//! - A failed write is undone back to the last complete record (the file is cut there) and the
//!   same records are written again on the next `commit`; nothing is lost or written twice.
//!   If even the cut fails, the file is closed and cut when it is next opened.
//! - Rotation (`max-size`, `max-age`) happens between records: a file never exceeds
//!   `max-size` unless one record alone does, and holds records for at most `max-age` since it
//!   was started. New files are `STEM-START.EXT` (see [`file`]); `keep` deletes the oldest.
//! - SIGHUP closes the current file: without rotation the path is opened again (after
//!   logrotate renamed it), with rotation a new file is started.

mod file;
pub mod spec;

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use super::{PacketSink, PacketView, WRITE_CHUNK};
use crate::format::LossEvent;
use crate::packet::family;
use crate::pcap::write::{file_header, push_record, LINKTYPE_NFLOG, LINKTYPE_RAW};
pub use spec::{PcapLink, PcapSpec};

/// The file being written.
struct Current {
    file: File,
    path: PathBuf,
    /// Bytes of the header and the complete records in it.
    len: u64,
    records: u64,
    started: Instant,
}

pub struct PcapSink {
    spec: PcapSpec,
    sync: bool,
    header: [u8; 24],
    cur: Option<Current>,
    /// Framed records not yet acknowledged by a successful commit.
    buf: Vec<u8>,
    /// End offset in `buf` of each record.
    ends: Vec<usize>,
    /// Records of `buf` already in a file (`ends[..written]`).
    written: usize,
    /// Packets `pcap-raw` left out because they are not IP.
    skipped: u64,
}

impl PcapSink {
    /// Open the output: without rotation, the file at PATH (appended to after its torn last
    /// record, if any, is cut); with rotation, the newest rotated file is repaired the same way
    /// and a new one is started.
    pub fn open(spec: &PcapSpec, sync: bool) -> io::Result<PcapSink> {
        let header = file_header(match spec.link {
            PcapLink::Nflog => LINKTYPE_NFLOG,
            PcapLink::Raw => LINKTYPE_RAW,
        });
        let mut s = PcapSink {
            spec: spec.clone(),
            sync,
            header,
            cur: None,
            buf: Vec::with_capacity(1 << 16),
            ends: Vec::new(),
            written: 0,
            skipped: 0,
        };
        if spec.rotates() {
            if let Some(last) = file::rotated_files(&spec.path)?.pop() {
                // A crash leaves at most the newest file torn. One that is not ours is left
                // alone (and never appended to: rotation always starts a new file).
                if let Err(e) = file::open_append(&last, &header) {
                    eprintln!("fwlog: {}: {e}", spec.text);
                }
            }
        }
        s.open_file()?;
        Ok(s)
    }

    fn open_file(&mut self) -> io::Result<()> {
        let cur = if self.spec.rotates() {
            self.create_rotated()?
        } else {
            let (file, len) = file::open_append(&self.spec.path, &self.header)?;
            Current {
                file,
                path: self.spec.path.clone(),
                len,
                records: 0,
                started: Instant::now(),
            }
        };
        self.cur = Some(cur);
        if let (Some(keep), Some(c)) = (self.spec.keep, &self.cur) {
            file::prune(&self.spec.path, keep, &c.path)?;
        }
        Ok(())
    }

    fn create_rotated(&self) -> io::Result<Current> {
        let stamp = file::stamp_now();
        for n in 0..1000 {
            let path = file::rotated_name(&self.spec.path, &stamp, n);
            match file::create(&path, &self.header) {
                Ok(f) => {
                    if self.sync {
                        sync_dir(&path)?;
                    }
                    return Ok(Current {
                        file: f,
                        path,
                        len: 24,
                        records: 0,
                        started: Instant::now(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(format!(
            "{}: a thousand files started within one second",
            self.spec.text
        )))
    }

    /// Make the current file durable (when syncing) and let it go.
    fn close_file(&mut self) -> io::Result<()> {
        if let Some(c) = &self.cur {
            if self.sync {
                c.file.sync_data()?;
            }
        }
        self.cur = None;
        Ok(())
    }

    /// True when the record of `len` bytes must go to a new file.
    fn must_rotate(&self, c: &Current, len: usize) -> bool {
        if c.records == 0 {
            return false;
        }
        let full = self.spec.max_size.is_some_and(|m| c.len + len as u64 > m);
        let old = self.spec.max_age.is_some_and(|a| c.started.elapsed() >= a);
        full || old
    }

    /// Write the next run of records that fit the current file.
    fn write_some(&mut self) -> io::Result<()> {
        let start = if self.written == 0 {
            0
        } else {
            self.ends[self.written - 1]
        };
        let first_len = self.ends[self.written] - start;
        if self
            .cur
            .as_ref()
            .is_some_and(|c| self.must_rotate(c, first_len))
        {
            self.close_file()?;
        }
        if self.cur.is_none() {
            self.open_file()?;
        }
        let Some(c) = self.cur.as_mut() else {
            return Ok(());
        };
        // Records that fit under max-size, at least one.
        let mut n = 1;
        while self.written + n < self.ends.len() {
            let end = self.ends[self.written + n];
            if self
                .spec
                .max_size
                .is_some_and(|m| c.len + (end - start) as u64 > m)
            {
                break;
            }
            n += 1;
        }
        let end = self.ends[self.written + n - 1];
        // At most WRITE_CHUNK per call: see there for what a larger write costs.
        let wrote = self.buf[start..end]
            .chunks(WRITE_CHUNK)
            .try_for_each(|chunk| c.file.write_all(chunk));
        if let Err(e) = wrote {
            // Undo the part written, so the retry writes whole records after whole records.
            if c.file.set_len(c.len).is_err() {
                self.cur = None;
            }
            return Err(e);
        }
        c.len += (end - start) as u64;
        c.records += n as u64;
        self.written += n;
        Ok(())
    }
}

fn sync_dir(path: &std::path::Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// The length of an IP packet from its header, when the header says (for `orig_len`).
fn ip_len(b: &[u8]) -> Option<usize> {
    match b.first()? >> 4 {
        4 if b.len() >= 4 => Some(u16::from_be_bytes([b[2], b[3]]) as usize),
        6 if b.len() >= 6 => Some(40 + u16::from_be_bytes([b[4], b[5]]) as usize),
        _ => None,
    }
}

impl PacketSink for PcapSink {
    fn packet(&mut self, p: &PacketView<'_>) {
        let t = &p.packet.timestamp;
        let usec = t.nsec / 1000;
        match self.spec.link {
            PcapLink::Nflog => push_record(&mut self.buf, t.sec, usec, p.record, p.record.len()),
            PcapLink::Raw => {
                let b = p.packet.payload;
                let ip = matches!(p.packet.family, family::INET | family::INET6)
                    && matches!(b.first().map(|v| v >> 4), Some(4 | 6));
                if !ip {
                    if self.skipped == 0 {
                        eprintln!(
                            "fwlog: {}: leaving out packets that are not IPv4 or IPv6 (LINKTYPE_RAW cannot hold them)",
                            self.spec.text
                        );
                    }
                    self.skipped += 1;
                    return;
                }
                let orig = p.packet.orig_len.map(|o| o as usize).or_else(|| ip_len(b));
                push_record(&mut self.buf, t.sec, usec, b, orig.unwrap_or(b.len()));
            }
        }
        self.ends.push(self.buf.len());
    }

    fn loss(&mut self, _ev: &LossEvent, _seq: u64) {}

    fn pending(&self) -> usize {
        self.buf.len()
    }

    fn commit(&mut self) -> io::Result<()> {
        while self.written < self.ends.len() {
            self.write_some()?;
        }
        if let Some(c) = &self.cur {
            if self.sync && !self.buf.is_empty() {
                c.file.sync_data()?;
            }
        }
        self.buf.clear();
        self.ends.clear();
        self.written = 0;
        Ok(())
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.close_file()?;
        self.open_file()
    }

    fn describe(&self) -> String {
        self.spec.text.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::NoNames;
    use crate::packet::{Packet, TimeSource, Timestamp};

    fn feed(s: &mut PcapSink, n: u32) {
        let payload = [
            0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        for i in 0..n {
            let mut p = Packet::new(
                &payload,
                Timestamp {
                    sec: 1_800_000_000 + i as i64,
                    nsec: 0,
                    source: TimeSource::Kernel,
                },
            );
            p.family = family::INET;
            let record = [i as u8; 100];
            s.packet(&PacketView {
                seq: i as u64,
                record: &record,
                packet: &p,
                decoded: &crate::decode::decode(&p),
                names: &NoNames,
            });
        }
    }

    /// A `pcap:` sink at `DIR/fw.pcap` without rotation, and its path.
    fn unrotated(dir: &std::path::Path, sync: bool) -> (PathBuf, PcapSink) {
        let path = dir.join("fw.pcap");
        let spec = PcapSpec::parse(PcapLink::Nflog, path.to_str().unwrap()).unwrap();
        (path.clone(), PcapSink::open(&spec, sync).unwrap())
    }

    #[test]
    fn a_commit_larger_than_a_write_chunk_is_every_record_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut s) = unrotated(dir.path(), false);
        let n = (2 * WRITE_CHUNK / 116 + 5) as u32;
        feed(&mut s, n);
        s.commit().unwrap();
        let b = std::fs::read(&path).unwrap();
        assert_eq!(b.len(), 24 + n as usize * 116);
        for (i, rec) in b[24..].chunks(116).enumerate() {
            assert_eq!(&rec[8..12], &100u32.to_le_bytes());
            assert!(rec[16..].iter().all(|&x| x == i as u8), "record {i}");
        }
    }

    #[test]
    fn rotation_by_age_and_size_keeps_whole_records_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let pat = dir.path().join("fw.pcap");
        let spec = PcapSpec::parse(
            PcapLink::Nflog,
            &format!("{}?max-size=1KiB&max-age=1s&keep=3", pat.display()),
        )
        .unwrap();
        let mut s = PcapSink::open(&spec, true).unwrap();
        // 116 bytes a record: 8 fit in 1KiB after the header, so 20 records make 3 files.
        feed(&mut s, 20);
        s.commit().unwrap();
        let files = file::rotated_files(&pat).unwrap();
        assert_eq!(files.len(), 3);
        let lens: Vec<u64> = files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .collect();
        assert_eq!(lens, vec![24 + 8 * 116, 24 + 8 * 116, 24 + 4 * 116]);
        // Age: the next record after a second goes to a new file; keep=3 deletes the oldest.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        feed(&mut s, 1);
        s.commit().unwrap();
        let after = file::rotated_files(&pat).unwrap();
        assert_eq!(after.len(), 3);
        assert_eq!(&after[..2], &files[1..]);
        assert_eq!(std::fs::metadata(&after[2]).unwrap().len(), 24 + 116);
    }

    #[test]
    fn sighup_after_a_rename_starts_the_path_again() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut s) = unrotated(dir.path(), true);
        feed(&mut s, 2);
        s.commit().unwrap();
        std::fs::rename(&path, dir.path().join("fw.pcap.1")).unwrap();
        feed(&mut s, 1); // still the renamed file, as logrotate expects
        s.commit().unwrap();
        s.reopen().unwrap();
        feed(&mut s, 4);
        s.commit().unwrap();
        let old = std::fs::read(dir.path().join("fw.pcap.1")).unwrap();
        let new = std::fs::read(&path).unwrap();
        assert_eq!((old.len(), new.len()), (24 + 3 * 116, 24 + 4 * 116));
        assert_eq!(&new[..24], &file_header(LINKTYPE_NFLOG));
        // With rotation, SIGHUP starts a new file.
        let pat = dir.path().join("r.pcap");
        let spec =
            PcapSpec::parse(PcapLink::Nflog, &format!("{}?max-age=1h", pat.display())).unwrap();
        let mut s = PcapSink::open(&spec, false).unwrap();
        feed(&mut s, 1);
        s.commit().unwrap();
        s.reopen().unwrap();
        feed(&mut s, 1);
        s.commit().unwrap();
        let files = file::rotated_files(&pat).unwrap();
        assert_eq!(files.len(), 2);
        for f in files {
            assert_eq!(std::fs::metadata(f).unwrap().len(), 24 + 116);
        }
    }

    #[test]
    fn raw_records_start_at_the_ip_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raw.pcap");
        let spec = PcapSpec::parse(PcapLink::Raw, path.to_str().unwrap()).unwrap();
        let mut s = PcapSink::open(&spec, false).unwrap();
        feed(&mut s, 2);
        s.commit().unwrap();
        let b = std::fs::read(&path).unwrap();
        assert_eq!(&b[..24], &file_header(LINKTYPE_RAW));
        assert_eq!(b.len(), 24 + 2 * (16 + 20));
        assert_eq!(b[24 + 16], 0x45);
        // Reopened (a restart): appended after the records already there.
        drop(s);
        let mut s = PcapSink::open(&spec, false).unwrap();
        feed(&mut s, 1);
        s.commit().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 24 + 3 * 36);
    }
}
