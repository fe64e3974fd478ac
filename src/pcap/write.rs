//! Writing LINKTYPE_NFLOG (239) pcaps: `fwlog replay --pcap`, and the test harness that records
//! `tests/data/sample.pcap`.
//!
//! A record body is an NFLOG message exactly as spooled (nfgenmsg + kernel TLVs + fwlog's name
//! and receive-time TLVs), so tcpdump and Wireshark show the kernel's metadata and `fwlog read`
//! gets the interface names back. Classic pcap, little-endian, microseconds, snaplen 262144.

use std::io::{self, Write};

pub struct NflogPcapWriter<W: Write> {
    out: W,
}

/// The snap length every pcap fwlog writes declares (and the most a record carries).
pub const SNAPLEN: u32 = 262_144;
/// LINKTYPE_NFLOG: records are NFLOG messages.
pub const LINKTYPE_NFLOG: u32 = 239;
/// LINKTYPE_RAW: records start at the IPv4 or IPv6 header.
pub const LINKTYPE_RAW: u32 = 101;

/// The 24-byte file header fwlog writes: classic pcap, little-endian, microseconds.
pub fn file_header(linktype: u32) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone and sigfigs stay 0.
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&linktype.to_le_bytes());
    h
}

/// Append one record (header and the first [`SNAPLEN`] bytes of `data`) to `out`; `orig_len`
/// is the packet's length before any cut (at least `data.len()`).
pub fn push_record(out: &mut Vec<u8>, sec: i64, usec: u32, data: &[u8], orig_len: usize) {
    let len = data.len().min(SNAPLEN as usize);
    out.extend_from_slice(&(sec.clamp(0, u32::MAX as i64) as u32).to_le_bytes());
    out.extend_from_slice(&usec.min(999_999).to_le_bytes());
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&(orig_len.max(data.len()).min(u32::MAX as usize) as u32).to_le_bytes());
    out.extend_from_slice(&data[..len]);
}

impl<W: Write> NflogPcapWriter<W> {
    /// Write the file header.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(&file_header(LINKTYPE_NFLOG))?;
        Ok(NflogPcapWriter { out })
    }

    /// Append one record. `nflog` is nfgenmsg + TLVs; its TLV headers must be little-endian
    /// (as written by this machine), which matches the file's byte order.
    pub fn write(&mut self, sec: i64, usec: u32, nflog: &[u8]) -> io::Result<()> {
        let mut rec = Vec::with_capacity(16 + nflog.len());
        push_record(&mut rec, sec, usec, nflog, nflog.len());
        self.out.write_all(&rec)
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nflog::attr::{nfula, push_attr, push_ifname};
    use crate::pcap::{read_file, to_packet};

    #[test]
    fn written_nflog_pcap_reads_back_with_names() {
        let mut rec = vec![2, 0, 0, 7];
        push_attr(&mut rec, nfula::PREFIX, b"X \0");
        push_attr(&mut rec, nfula::IFINDEX_OUTDEV, &1u32.to_be_bytes());
        push_ifname(&mut rec, nfula::IFINDEX_OUTDEV, b"lo");
        push_attr(&mut rec, nfula::PAYLOAD, &[0x45, 0, 0, 20]);
        let mut w = NflogPcapWriter::new(Vec::new()).unwrap();
        w.write(1_700_000_000, 42, &rec).unwrap();
        w.write(1_700_000_001, 43, &rec).unwrap();
        let bytes = w.into_inner();
        let mut seen = Vec::new();
        let s = read_file(&bytes[..], |r| {
            let p = to_packet(r);
            seen.push((
                p.group,
                p.outdev.and_then(|i| i.name).map(|n| n.to_vec()),
                p.timestamp.nsec,
            ));
            true
        })
        .unwrap();
        assert_eq!(s.records, 2);
        assert_eq!(seen[0], (7, Some(b"lo".to_vec()), 42_000));
        assert_eq!(seen[1].2, 43_000);
    }

    #[test]
    fn truncated_and_garbage_files_give_errors_not_panics() {
        let mut rec = vec![2, 0, 0, 7];
        push_attr(&mut rec, nfula::PAYLOAD, &[0x45; 40]);
        let mut w = NflogPcapWriter::new(Vec::new()).unwrap();
        w.write(1, 0, &rec).unwrap();
        let bytes = w.into_inner();
        for cut in 0..bytes.len() {
            let r = read_file(&bytes[..cut], |_| true);
            if cut == 24 {
                assert_eq!(r.unwrap().records, 0, "header only is an empty capture");
            } else {
                let e = r.expect_err("a cut file is an error");
                let msg = e.to_string();
                assert!(!msg.contains('\n'), "{msg}");
            }
        }
        let e = read_file(&b"hello world, not a capture at all"[..], |_| true).unwrap_err();
        assert_eq!(e.to_string(), "not a pcap or pcapng file");
    }
}
