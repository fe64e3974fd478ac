//! One kernel NFLOG message -> one spool record (see the layout in `capture/mod.rs`).
//!
//! The scan here reads only what intake needs (group, SEQ, SEQ_GLOBAL, the four IFINDEX_*
//! attributes) and stops quietly at the first malformed attribute: the record is copied
//! verbatim regardless, and the full parser marks the damage when the record is read back.

#[cfg(test)]
use super::batch::RecordBatch;
use super::batch::{RecordMeta, RecordSink};
use super::ifname::IfNameCache;
use super::loss::LossTracker;
use crate::nflog::attr::{self, nfula, TlvOut, NFGENMSG_LEN};
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

/// Attribute types the scan keeps (bit `ty` set): SEQ, SEQ_GLOBAL and the four IFINDEX_*.
const KEPT: u32 = 1 << nfula::SEQ
    | 1 << nfula::SEQ_GLOBAL
    | 1 << nfula::IFINDEX_INDEV
    | 1 << nfula::IFINDEX_OUTDEV
    | 1 << nfula::IFINDEX_PHYSINDEV
    | 1 << nfula::IFINDEX_PHYSOUTDEV;

/// Scan an NFLOG record (nfgenmsg + host-order TLVs, as netlink delivers it). Once per record
/// on the receive path, so each attribute costs one length check and one test of its type
/// against [`KEPT`]: an attribute shorter than its 4-byte header or running past the end ends
/// the scan, one too short for a 4-byte value is skipped.
#[inline]
pub(crate) fn scan(msg: &[u8]) -> Scan {
    let mut s = Scan::default();
    if msg.len() < NFGENMSG_LEN {
        return s;
    }
    s.group = Some(u16::from_be_bytes([msg[2], msg[3]]));
    let mut rest = &msg[NFGENMSG_LEN..];
    while let [l0, l1, t0, t1, tail @ ..] = rest {
        let len = u16::from_ne_bytes([*l0, *l1]) as usize;
        if len < 4 || len - 4 > tail.len() {
            break;
        }
        let ty = u16::from_ne_bytes([*t0, *t1]) & 0x3fff;
        if ty < 32 && KEPT >> ty & 1 != 0 && len >= 8 {
            if let [v0, v1, v2, v3, ..] = tail {
                let v = u32::from_be_bytes([*v0, *v1, *v2, *v3]);
                match ty {
                    nfula::SEQ => s.seq = Some(v),
                    nfula::SEQ_GLOBAL => s.seq_global = Some(v),
                    _ => s.ifindex[usize::from(ty - nfula::IFINDEX_INDEV) & 3] = Some(v),
                }
            }
        }
        // The value's padding; past the end only after the last attribute.
        let step = ((len + 3) & !3).min(rest.len());
        rest = &rest[step..];
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

/// Most bytes fwlog adds to a kernel message: padding to 4, the receive time, four names.
const TAIL_MAX: usize = 3 + attr::RECV_TIME_TLV + 4 * 20;

/// What fwlog adds behind a kernel message, built on the stack before the record's one copy.
struct Tail {
    buf: [u8; TAIL_MAX],
    len: usize,
}

impl TlvOut for Tail {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
}

/// One spool record not yet stored anywhere: the kernel's message, borrowed from the receive
/// slot it arrived in, and what fwlog adds to it. [`NewRecord::len`] is its exact size and
/// [`NewRecord::write_to`] appends it, so the consumer decides where its one copy goes (the
/// spool writer's batch buffer, or a [`RecordBatch`](super::RecordBatch)).
pub struct NewRecord<'a> {
    /// The kernel's message, or a record already built (then nothing is added to it).
    msg: &'a [u8],
    /// Padding after `msg` up to a multiple of 4, fwlog's receive time and the interface
    /// names (each as `attr::push_recv_time` and `attr::push_ifname` build them).
    tail: Tail,
    meta: RecordMeta,
}

impl<'a> NewRecord<'a> {
    /// A record built earlier (kept while `open` waited for acknowledgements).
    pub(crate) fn built(rec: &'a [u8], meta: RecordMeta) -> Self {
        NewRecord {
            msg: rec,
            tail: Tail {
                buf: [0; TAIL_MAX],
                len: 0,
            },
            meta,
        }
    }

    /// Size of the record in bytes.
    pub fn len(&self) -> usize {
        self.msg.len() + self.tail.len
    }

    /// Never true: a record holds at least its kernel message (clippy's pair for `len`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the receive path's scan found in it.
    pub fn meta(&self) -> RecordMeta {
        self.meta
    }

    /// Append the record's [`len`](Self::len) bytes to `out`.
    #[inline]
    pub fn write_to(&self, out: &mut impl TlvOut) {
        out.put(self.msg);
        out.put(&self.tail.buf[..self.tail.len]);
    }
}

/// The spool writer's record being built in place: a filler can only append to it.
impl TlvOut for fwlog_spool::RecordBuf<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Hand the spool record for kernel message `msg` to `out` (after any loss its sequence
/// numbers reveal), unless the previous run on this socket spooled it already. True if a
/// record was handed over.
pub(crate) fn push_record(
    out: &mut impl RecordSink,
    msg: &[u8],
    stamp: &Stamp,
    names: &mut IfNameCache,
    tracker: &mut LossTracker,
) -> bool {
    let s = scan(msg);
    if let Some(group) = s.group {
        if tracker.is_replay(group, s.seq) {
            // Spooled by the previous run on this socket, which died before consuming it.
            return false;
        }
        if let Some(e) = tracker.observe(group, s.seq, s.seq_global) {
            out.loss(e);
        }
    }
    // The kernel pads every attribute, but keep our TLVs aligned whatever it sent: the
    // buffer starts zeroed, so skipping the padding writes it.
    let mut tail = Tail {
        buf: [0; TAIL_MAX],
        len: (4 - msg.len() % 4) % 4,
    };
    attr::push_recv_time(&mut tail, stamp.sec, stamp.nsec);
    for (k, idx) in s.ifindex.iter().enumerate() {
        let Some(idx) = *idx else { continue };
        if let Some(name) = names.get(idx, stamp.now) {
            attr::push_ifname(&mut tail, nfula::IFINDEX_INDEV + k as u16, name);
        }
    }
    let rec = NewRecord {
        msg,
        tail,
        meta: RecordMeta {
            group: s.group,
            seq: s.seq,
            seq_global: s.seq_global,
        },
    };
    out.record(&rec);
    true
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

    /// The scan as first written (a `match` per attribute), kept as the reference.
    fn scan_reference(msg: &[u8]) -> Scan {
        let mut s = Scan::default();
        if msg.len() < NFGENMSG_LEN {
            return s;
        }
        s.group = Some(u16::from_be_bytes([msg[2], msg[3]]));
        let mut rest = &msg[NFGENMSG_LEN..];
        while let [l0, l1, t0, t1, tail @ ..] = rest {
            let len = u16::from_ne_bytes([*l0, *l1]) as usize;
            if len < 4 || len - 4 > tail.len() {
                break;
            }
            if let [v0, v1, v2, v3, ..] = tail {
                if len >= 8 {
                    let v = u32::from_be_bytes([*v0, *v1, *v2, *v3]);
                    match u16::from_ne_bytes([*t0, *t1]) & 0x3fff {
                        nfula::SEQ => s.seq = Some(v),
                        nfula::SEQ_GLOBAL => s.seq_global = Some(v),
                        ty @ nfula::IFINDEX_INDEV..=nfula::IFINDEX_PHYSOUTDEV => {
                            s.ifindex[(ty - nfula::IFINDEX_INDEV) as usize] = Some(v)
                        }
                        _ => {}
                    }
                }
            }
            let step = ((len + 3) & !3).min(rest.len());
            rest = &rest[step..];
        }
        s
    }

    /// Hostile input: kernel messages with bytes changed, cut or appended, and random bytes,
    /// scan exactly as the reference does.
    #[test]
    fn scan_agrees_with_the_reference_on_damaged_and_random_input() {
        let mut d = crate::nflog::damage::Damager::new(0x9e37_79b9_7f4a_7c15);
        let mut base = kernel_msg();
        for ty in [
            nfula::IFINDEX_PHYSINDEV,
            nfula::IFINDEX_INDEV,
            0x4000 | nfula::SEQ,
        ] {
            push_attr(&mut base, ty, &7u32.to_be_bytes());
        }
        for _ in 0..50_000 {
            let m = d.damage(&base);
            assert_eq!(scan(&m), scan_reference(&m), "{m:?}");
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

    /// Checks that every record's `len` is what `write_to` writes.
    #[derive(Default)]
    struct Exact {
        records: Vec<Vec<u8>>,
        losses: usize,
    }

    impl RecordSink for Exact {
        fn loss(&mut self, _: crate::nflog::loss::LossEvent) {
            self.losses += 1;
        }
        fn record(&mut self, rec: &NewRecord<'_>) {
            let mut v = vec![9u8; 3];
            rec.write_to(&mut v);
            assert_eq!(v.len() - 3, rec.len());
            self.records.push(v.split_off(3));
        }
    }

    #[test]
    fn a_new_records_length_is_what_it_writes_and_matches_the_batch() {
        let mut names = IfNameCache::new().expect("socket");
        let stamp = Stamp {
            sec: 5,
            nsec: 6,
            now: Instant::now(),
        };
        // Every interface attribute present (lo and an index that names nothing), an
        // unpadded message (a sequence number repeated) and one too short for a header.
        let mut all = vec![2, 0, 0, 9];
        for ty in nfula::IFINDEX_INDEV..=nfula::IFINDEX_PHYSOUTDEV {
            let idx: u32 = if ty == nfula::IFINDEX_PHYSINDEV {
                999_999
            } else {
                1
            };
            push_attr(&mut all, ty, &idx.to_be_bytes());
        }
        push_attr(&mut all, nfula::SEQ, &1u32.to_be_bytes());
        let mut odd = kernel_msg();
        odd.extend_from_slice(&[1, 2, 3]);
        let msgs = [kernel_msg(), all, odd, vec![1, 2]];
        let (mut exact, mut batch) = (Exact::default(), RecordBatch::new());
        let (mut t1, mut t2) = (LossTracker::new(), LossTracker::new());
        for m in &msgs {
            push_record(&mut exact, m, &stamp, &mut names, &mut t1);
            push_record(&mut batch, m, &stamp, &mut names, &mut t2);
        }
        assert_eq!(
            exact.records,
            batch.iter().map(<[u8]>::to_vec).collect::<Vec<_>>()
        );
        assert_eq!(exact.losses, batch.loss_events().len());
        assert!(exact.records.iter().all(|r| r.len() % 4 == 0));
        // Byte for byte what the attr helpers build: the message, then the receive time, then
        // the name of its one interface (lo).
        let mut want = kernel_msg();
        crate::nflog::attr::push_recv_time(&mut want, 5, 6);
        crate::nflog::attr::push_ifname(&mut want, nfula::IFINDEX_OUTDEV, b"lo");
        assert_eq!(exact.records[0], want);
        let fallback = Timestamp {
            sec: 0,
            nsec: 0,
            source: TimeSource::Capture,
        };
        let p = parse(&exact.records[1], TlvOrder::NATIVE, fallback);
        assert_eq!(p.indev.and_then(|i| i.name), Some(&b"lo"[..]));
        assert_eq!(p.physoutdev.and_then(|i| i.name), Some(&b"lo"[..]));
        assert_eq!(p.physindev.and_then(|i| i.name), None);
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
