//! One kernel NFLOG message -> one spool record (see the layout in `capture/mod.rs`).
//!
//! The scan here reads only what intake needs (group, SEQ, SEQ_GLOBAL, the four IFINDEX_*
//! attributes) and stops quietly at the first malformed attribute: the record is copied
//! verbatim regardless, and the full parser marks the damage when the record is read back.

use super::batch::{RecordBatch, RecordMeta};
use super::ifname::IfNameCache;
use super::loss::LossTracker;
use crate::nflog::attr::{self, fwlog, nfula, NFGENMSG_LEN};
use std::time::Instant;

/// What intake needs from a record.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    pub group: Option<u16>,
    pub seq: Option<u32>,
    pub seq_global: Option<u32>,
    /// INDEV, OUTDEV, PHYSINDEV, PHYSOUTDEV.
    pub ifindex: [Option<u32>; 4],
}

fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

/// Scan an NFLOG record (nfgenmsg + host-order TLVs, as netlink delivers it).
pub(crate) fn scan(msg: &[u8]) -> Scan {
    let mut s = Scan::default();
    if msg.len() < NFGENMSG_LEN {
        return s;
    }
    s.group = Some(u16::from_be_bytes([msg[2], msg[3]]));
    let mut off = NFGENMSG_LEN;
    while let Some(h) = msg.get(off..off + 4) {
        let len = u16::from_ne_bytes([h[0], h[1]]) as usize;
        let ty = u16::from_ne_bytes([h[2], h[3]]) & 0x3fff;
        let Some(v) = msg.get(off + 4..off + len.max(4)) else {
            break;
        };
        if len < 4 {
            break;
        }
        match ty {
            nfula::SEQ => s.seq = be32(v),
            nfula::SEQ_GLOBAL => s.seq_global = be32(v),
            nfula::IFINDEX_INDEV..=nfula::IFINDEX_PHYSOUTDEV => {
                s.ifindex[(ty - nfula::IFINDEX_INDEV) as usize] = be32(v)
            }
            _ => {}
        }
        off += (len + 3) & !3;
    }
    s
}

/// The group and NFULA_SEQ of a spool record or kernel message, when it has both (loss
/// records have no SEQ).
pub fn scan_group_seq(msg: &[u8]) -> Option<(u16, u32)> {
    let s = scan(msg);
    s.group.zip(s.seq)
}

/// The NFLOG group of a spool record or kernel message (the nfgenmsg's resource id): two
/// bytes read, no TLV walk, for intake's per-group count.
pub fn record_group(msg: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(msg.get(2..4)?.try_into().ok()?))
}

/// The NFULA_SEQ_GLOBAL of a spool record or kernel message: a TLV scan, for intake's
/// per-packet bookkeeping, which must not pay for a full parse.
pub fn scan_seq_global(msg: &[u8]) -> Option<u32> {
    scan(msg).seq_global
}

/// Receive-time context shared by every record of one receive call.
pub(crate) struct Stamp {
    pub sec: i64,
    pub nsec: u32,
    pub now: Instant,
}

/// Append the spool record for kernel message `msg` to `out`, and account for its sequence
/// numbers.
pub(crate) fn push_record(
    out: &mut RecordBatch,
    msg: &[u8],
    stamp: &Stamp,
    names: &mut IfNameCache,
    tracker: &mut LossTracker,
) {
    let s = scan(msg);
    if let Some(group) = s.group {
        if tracker.is_replay(group, s.seq) {
            // Spooled by the previous run on this socket, which died before consuming it.
            return;
        }
        if let Some(e) = tracker.observe(group, s.seq, s.seq_global) {
            out.push_loss(e);
        }
    }
    let data = &mut out.data;
    data.extend_from_slice(msg);
    // The kernel pads every attribute, but keep our TLVs aligned whatever it sent.
    let pad = (4 - data.len() % 4) % 4;
    data.extend_from_slice(&[0u8; 3][..pad]);
    attr::push_recv_time(data, stamp.sec, stamp.nsec);
    for (k, idx) in s.ifindex.iter().enumerate() {
        let Some(idx) = *idx else { continue };
        if let Some(name) = names.get(idx, stamp.now) {
            // Same TLV as attr::push_ifname, built on the stack: that helper allocates a Vec
            // per call, which this path (once per record) avoids.
            let mut v = [0u8; libc::IFNAMSIZ + 1];
            let n = name.len().min(libc::IFNAMSIZ);
            v[..n].copy_from_slice(&name[..n]);
            attr::push_attr(data, fwlog::INDEV_NAME + k as u16, &v[..n + 1]);
        }
    }
    out.ends.push(out.data.len());
    out.meta.push(RecordMeta {
        group: s.group,
        seq: s.seq,
        seq_global: s.seq_global,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nflog::attr::{parse, push_attr, TlvOrder};
    use crate::packet::{TimeSource, Timestamp};

    fn kernel_msg() -> Vec<u8> {
        let mut b = vec![2, 0, 0, 7];
        push_attr(&mut b, nfula::PACKET_HDR, &[0x08, 0, 3, 0]);
        push_attr(&mut b, nfula::IFINDEX_OUTDEV, &1u32.to_be_bytes());
        push_attr(&mut b, nfula::PREFIX, b"X\0");
        push_attr(&mut b, nfula::SEQ, &4u32.to_be_bytes());
        push_attr(&mut b, nfula::SEQ_GLOBAL, &40u32.to_be_bytes());
        push_attr(&mut b, nfula::PAYLOAD, &[0x45, 0, 0, 20, 1]);
        b
    }

    #[test]
    fn scan_finds_what_intake_needs() {
        let s = scan(&kernel_msg());
        assert_eq!(
            s,
            Scan {
                group: Some(7),
                seq: Some(4),
                seq_global: Some(40),
                ifindex: [None, Some(1), None, None],
            }
        );
        for n in 0..kernel_msg().len() {
            let _ = scan(&kernel_msg()[..n]);
        }
    }

    #[test]
    fn record_reads_back_with_name_and_receive_time() {
        let mut out = RecordBatch::new();
        let mut names = IfNameCache::new().expect("socket");
        let mut tracker = LossTracker::new();
        let stamp = Stamp {
            sec: 1_700_000_000,
            nsec: 123,
            now: Instant::now(),
        };
        let msg = kernel_msg();
        push_record(&mut out, &msg, &stamp, &mut names, &mut tracker);
        let rec = out.get(0).expect("one record");
        assert_eq!(&rec[..msg.len()], &msg[..]);
        assert_eq!(rec.len() % 4, 0);
        let fallback = Timestamp {
            sec: 0,
            nsec: 0,
            source: TimeSource::Capture,
        };
        let p = parse(rec, TlvOrder::NATIVE, fallback);
        assert_eq!(p.damage, None);
        assert_eq!(p.outdev.and_then(|i| i.name), Some(&b"lo"[..]));
        assert_eq!(p.payload, &[0x45, 0, 0, 20, 1]);
        assert_eq!(
            (p.timestamp.sec, p.timestamp.nsec, p.timestamp.source),
            (1_700_000_000, 123, TimeSource::Local)
        );
        assert_eq!(tracker.last_seq_global(), Some(40));
        let m = out.meta()[0];
        assert_eq!((m.group, m.seq, m.seq_global), (Some(7), Some(4), Some(40)));
    }

    #[test]
    fn malformed_message_is_still_copied() {
        let mut msg = kernel_msg();
        msg.extend_from_slice(&[200, 0, 1, 0]); // attribute claiming 200 bytes
        let mut out = RecordBatch::new();
        let mut names = IfNameCache::new().expect("socket");
        let stamp = Stamp {
            sec: 1,
            nsec: 0,
            now: Instant::now(),
        };
        push_record(&mut out, &msg, &stamp, &mut names, &mut LossTracker::new());
        push_record(
            &mut out,
            &[1, 2],
            &stamp,
            &mut names,
            &mut LossTracker::new(),
        );
        assert_eq!(out.len(), 2);
        assert_eq!(&out.get(0).unwrap()[..msg.len()], &msg[..]);
    }
}
