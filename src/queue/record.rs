//! One queued packet -> one NFLOG-shaped spool record (layout: see the module docs of
//! [`crate::queue`]).
//!
//! [`QueuedPacket`] is the plain view of an `nfq::Message` that the encoder needs; it exists so
//! the mapping can be tested without a kernel (an `nfq::Message` can only come from a socket).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::capture::IfNameCache;
use crate::nflog::attr::encode_packet;
use crate::packet::{family, Iface, Packet, TimeSource, Timestamp};

/// What the kernel told about one queued packet, borrowed from its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuedPacket<'a> {
    pub queue: u16,
    /// The kernel's packet id (NFQA_PACKET_HDR), per queue instance.
    pub packet_id: u32,
    pub hook: u8,
    /// Ethertype from NFQA_PACKET_HDR.
    pub hw_protocol: u16,
    pub mark: u32,
    /// INDEV, OUTDEV, PHYSINDEV, PHYSOUTDEV; 0 when absent.
    pub ifindex: [u32; 4],
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub hwaddr: Option<&'a [u8]>,
    /// NFQA_TIMESTAMP: only packets the kernel stamped on receipt carry one (and it stamps
    /// them only while some socket has asked for timestamps).
    pub kernel_time: Option<SystemTime>,
    /// From the network header on, cut to the copy range.
    pub payload: &'a [u8],
    /// The packet's full length (NFQA_CAP_LEN when cut, else the payload's length).
    pub orig_len: usize,
}

impl<'a> QueuedPacket<'a> {
    pub fn from_message(m: &'a nfq::Message) -> Self {
        QueuedPacket {
            queue: m.get_queue_num(),
            packet_id: m.get_packet_id(),
            hook: m.get_hook(),
            hw_protocol: m.get_hw_protocol(),
            mark: m.get_nfmark(),
            ifindex: [
                m.get_indev(),
                m.get_outdev(),
                m.get_physindev(),
                m.get_physoutdev(),
            ],
            uid: m.get_uid(),
            gid: m.get_gid(),
            hwaddr: m.get_hw_addr(),
            kernel_time: m.get_timestamp(),
            payload: m.get_payload(),
            orig_len: m.get_original_len(),
        }
    }

    /// The address family, from the IP version nibble (`nfq` does not expose nfgenmsg's
    /// family); the ethertype decides for a payload too short to tell.
    pub fn family(&self) -> u8 {
        match (self.payload.first().map(|b| b >> 4), self.hw_protocol) {
            (Some(4), _) => family::INET,
            (Some(6), _) => family::INET6,
            (None, 0x0800) => family::INET,
            (None, 0x86DD) => family::INET6,
            _ => family::UNSPEC,
        }
    }
}

/// Append the spool record for `q` to `out`. `recv` is fwlog's clock when the batch was read
/// (used when the kernel sent no timestamp); interface names are resolved now, through `names`.
pub fn encode_record(
    q: &QueuedPacket<'_>,
    recv: (i64, u32),
    names: &mut IfNameCache,
    now: Instant,
    out: &mut Vec<u8>,
) {
    // Names are copied out of the cache first: four borrows of it cannot coexist.
    let mut buf = [[0u8; libc::IFNAMSIZ]; 4];
    let mut len = [None::<usize>; 4];
    for (k, &idx) in q.ifindex.iter().enumerate() {
        if idx == 0 {
            continue;
        }
        if let Some(n) = names.get(idx, now) {
            let n = &n[..n.len().min(libc::IFNAMSIZ)];
            buf[k][..n.len()].copy_from_slice(n);
            len[k] = Some(n.len());
        }
    }
    let iface = |k: usize| {
        (q.ifindex[k] != 0).then(|| Iface {
            index: q.ifindex[k],
            name: len[k].map(|n| &buf[k][..n]),
        })
    };
    let timestamp = match q
        .kernel_time
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
    {
        Some(d) => Timestamp {
            sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nsec: d.subsec_nanos(),
            source: TimeSource::Kernel,
        },
        None => Timestamp {
            sec: recv.0,
            nsec: recv.1,
            source: TimeSource::Local,
        },
    };
    let mut p = Packet::new(q.payload, timestamp);
    p.family = q.family();
    p.group = q.queue;
    p.hook = Some(q.hook);
    p.hw_protocol = Some(q.hw_protocol);
    p.mark = q.mark;
    p.indev = iface(0);
    p.outdev = iface(1);
    p.physindev = iface(2);
    p.physoutdev = iface(3);
    p.hwaddr = q.hwaddr;
    p.uid = q.uid;
    p.gid = q.gid;
    p.seq = Some(q.packet_id);
    if q.orig_len > q.payload.len() {
        p.orig_len = Some(u32::try_from(q.orig_len).unwrap_or(u32::MAX));
    }
    encode_packet(&p, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nflog::attr::{parse, LossRecord, TlvOrder};
    use crate::packet::Timestamp;
    const EPOCH: Timestamp = Timestamp::EPOCH;
    use std::time::Duration;

    fn udp4() -> Vec<u8> {
        let mut b = vec![0x45, 0, 0, 33, 0, 0, 0x40, 0, 64, 17, 0, 0];
        b.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
        b.extend_from_slice(&[0x30, 0x39, 0x27, 0x0f, 0, 13, 0, 0]);
        b.extend_from_slice(b"hello");
        b
    }

    fn sample(payload: &[u8]) -> QueuedPacket<'_> {
        QueuedPacket {
            queue: 7,
            packet_id: 41,
            hook: crate::packet::hook::LOCAL_OUT,
            hw_protocol: 0x0800,
            mark: 0x2a,
            ifindex: [0, 1, 0, 0],
            uid: Some(1000),
            gid: Some(100),
            hwaddr: None,
            kernel_time: None,
            payload,
            orig_len: payload.len(),
        }
    }

    #[test]
    fn record_reads_back_as_the_packet() {
        let payload = udp4();
        let q = sample(&payload);
        let mut names = IfNameCache::new().expect("socket");
        let mut out = Vec::new();
        encode_record(&q, (1_700_000_000, 5), &mut names, Instant::now(), &mut out);
        assert_eq!(
            LossRecord::decode(&out),
            None,
            "a packet, not a loss record"
        );
        let p = parse(&out, TlvOrder::NATIVE, EPOCH);
        assert_eq!(p.damage, None);
        assert_eq!((p.family, p.group, p.seq), (family::INET, 7, Some(41)));
        assert_eq!(
            (p.hook, p.hw_protocol, p.mark),
            (Some(3), Some(0x0800), 0x2a)
        );
        assert_eq!(
            (p.uid, p.gid, p.prefix, p.orig_len),
            (Some(1000), Some(100), None, None)
        );
        assert_eq!(p.indev, None);
        assert_eq!(
            p.outdev,
            Some(Iface {
                index: 1,
                name: Some(b"lo")
            })
        );
        assert_eq!(p.payload, &payload[..]);
        assert_eq!(
            p.timestamp,
            Timestamp {
                sec: 1_700_000_000,
                nsec: 5,
                source: TimeSource::Local
            }
        );
    }

    #[test]
    fn kernel_time_cut_packets_and_ipv6() {
        let mut payload = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        payload.extend_from_slice(&[0; 32]);
        let mut q = sample(&payload);
        q.kernel_time = Some(UNIX_EPOCH + Duration::new(1_600_000_000, 250_000_000));
        q.orig_len = 1500;
        q.hwaddr = Some(&[1, 2, 3, 4, 5, 6]);
        q.ifindex = [0x7fff_fff0, 0, 0, 0];
        let mut names = IfNameCache::new().expect("socket");
        let mut out = Vec::new();
        encode_record(&q, (1, 0), &mut names, Instant::now(), &mut out);
        let p = parse(&out, TlvOrder::NATIVE, EPOCH);
        assert_eq!(p.family, family::INET6);
        assert_eq!(
            (p.timestamp.sec, p.timestamp.nsec, p.timestamp.source),
            (1_600_000_000, 250_000_000, TimeSource::Kernel)
        );
        assert_eq!(p.orig_len, Some(1500));
        assert_eq!(p.hwaddr, Some(&[1, 2, 3, 4, 5, 6][..]));
        // An index nobody has keeps its number and gets no name.
        assert_eq!(
            p.indev,
            Some(Iface {
                index: 0x7fff_fff0,
                name: None
            })
        );
    }

    #[test]
    fn family_falls_back_to_the_ethertype() {
        let mut q = sample(&[]);
        assert_eq!(q.family(), family::INET);
        q.hw_protocol = 0x86DD;
        assert_eq!(q.family(), family::INET6);
        q.hw_protocol = 0x0806;
        assert_eq!(q.family(), family::UNSPEC);
        assert_eq!(sample(&[0x12]).family(), family::UNSPEC);
    }
}
