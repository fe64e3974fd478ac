//! Byte layout of segment headers, records and ledger slots (see the crate docs for the prose).
//!
//! Everything is little-endian. Nothing here does I/O: encoding appends to a `Vec<u8>`, decoding
//! looks at a byte slice and says whether it holds a whole, valid item. Decoders never panic on
//! arbitrary input; every length is checked before it is used.

/// Current on-disk format version, written into every segment header, record and ledger slot.
pub const FORMAT_VERSION: u8 = 1;

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"FWLSPOOL";
/// Size of the segment header in bytes.
pub const SEGMENT_HEADER_LEN: usize = 32;

/// Size of the per-record header in bytes.
pub const RECORD_HEADER_LEN: usize = 20;
/// Largest payload the format accepts. A length field above this is treated as corruption, which
/// also bounds how much memory a reader can ever be asked to allocate for one record.
pub const MAX_PAYLOAD_LEN: usize = 16 * 1024 * 1024;
/// Highest sequence number the spool accepts anywhere (file names, headers, records, the ledger).
/// At ten million records a second it takes 29,000 years to get here, so anything above is
/// damage or a planted file; the bound also keeps every `seq + n` in the code from wrapping.
pub const MAX_SEQ: u64 = 1 << 62;
/// Record kind: an opaque payload appended by the user. Other values are reserved.
pub const KIND_DATA: u8 = 0;

/// Magic at the start of each ledger slot.
pub const LEDGER_MAGIC: [u8; 4] = *b"FWLA";
/// Size of one ledger slot.
pub const LEDGER_SLOT_LEN: usize = 32;
/// Offset of slot `i` is `i * LEDGER_SLOT_STRIDE`; separate 512-byte sectors so a torn write of one
/// slot cannot touch the other.
pub const LEDGER_SLOT_STRIDE: u64 = 512;
/// Total ledger file size.
pub const LEDGER_FILE_LEN: u64 = 2 * LEDGER_SLOT_STRIDE;

/// File name of a segment whose first sequence number is `first_seq`.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// Parses a segment file name (`<20 decimal digits>.seg`) back into its first sequence number.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&s| s <= MAX_SEQ)
}

fn crc(parts: &[&[u8]]) -> u32 {
    parts.iter().fold(0u32, |c, p| crc32c::crc32c_append(c, p))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Encodes a segment header for a segment whose first record will carry `first_seq`.
pub fn encode_segment_header(first_seq: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8] = FORMAT_VERSION;
    // 9..16 reserved, zero
    h[16..24].copy_from_slice(&first_seq.to_le_bytes());
    let c = crc(&[&h[0..24]]);
    h[24..28].copy_from_slice(&c.to_le_bytes());
    // 28..32 reserved, zero
    h
}

/// Why a header or record did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not enough bytes: at the end of a file this is a torn tail.
    Short,
    /// Wrong magic bytes.
    Magic,
    /// A format version this build does not know.
    Version(u8),
    /// Checksum mismatch.
    Checksum,
    /// Length field out of range.
    Length(u32),
    /// Sequence number is not the one that must come next in this segment.
    Sequence { expected: u64, found: u64 },
    /// Unknown record kind or non-zero reserved bits.
    Kind(u8),
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::Short => write!(f, "truncated"),
            Invalid::Magic => write!(f, "bad magic"),
            Invalid::Version(v) => write!(f, "unknown format version {v}"),
            Invalid::Checksum => write!(f, "CRC32C mismatch"),
            Invalid::Length(l) => write!(f, "length {l} out of range"),
            Invalid::Sequence { expected, found } => {
                write!(f, "sequence {found} where {expected} was expected")
            }
            Invalid::Kind(k) => write!(f, "unknown record kind {k}"),
        }
    }
}

/// Decodes a segment header, returning its first sequence number.
pub fn decode_segment_header(b: &[u8]) -> Result<u64, Invalid> {
    if b.len() < SEGMENT_HEADER_LEN {
        return Err(Invalid::Short);
    }
    if b[0..8] != SEGMENT_MAGIC {
        return Err(Invalid::Magic);
    }
    if crc(&[&b[0..24]]) != u32_at(b, 24) {
        return Err(Invalid::Checksum);
    }
    if b[8] != FORMAT_VERSION {
        return Err(Invalid::Version(b[8]));
    }
    let first = u64_at(b, 16);
    if first == 0 || first > MAX_SEQ {
        // Sequence numbers start at 1; 0 means "none" throughout the API.
        return Err(Invalid::Sequence {
            expected: 1,
            found: first,
        });
    }
    Ok(first)
}

/// On-disk size of a record with a payload of `payload_len` bytes.
pub fn record_len(payload_len: usize) -> usize {
    RECORD_HEADER_LEN + payload_len
}

/// Appends the encoded record (header + payload) to `out`. The checksum sits first so that it
/// covers one contiguous range (bytes 4.. to the end of the payload).
#[cfg(test)]
pub fn encode_record(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let start = out.len();
    encode_record_unsealed(out, seq, payload);
    seal_records(&mut out[start..]);
}

/// Appends the record with its checksum field still zero; [`seal_records`] fills it in. The
/// writer seals a whole batch at once because computing three CRCs side by side is about three
/// times faster than one after the other (the CRC instruction's latency, not its throughput, is
/// the limit for record-sized inputs).
#[cfg(test)]
pub fn encode_record_unsealed(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    encode_record_header(out, seq, payload.len());
    out.extend_from_slice(payload);
}

/// Appends the header of a record whose `len` payload bytes the caller appends next, with
/// its checksum field still zero (see [`encode_record_unsealed`]).
pub fn encode_record_header(out: &mut Vec<u8>, seq: u64, len: usize) {
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[4..8].copy_from_slice(&(len as u32).to_le_bytes());
    h[8..16].copy_from_slice(&seq.to_le_bytes());
    h[16] = FORMAT_VERSION;
    h[17] = KIND_DATA;
    // 18..20 reserved, zero; 0..4 is the checksum, filled in by `seal_records`
    out.extend_from_slice(&h);
}

/// Fills in the checksum of every record in `buf`, which must be a sequence of whole records
/// produced by [`encode_record_unsealed`] (their length fields are trusted).
pub fn seal_records(buf: &mut [u8]) {
    let mut pending = [(0usize, 0usize); 3];
    let mut k = 0;
    let mut at = 0;
    while at + RECORD_HEADER_LEN <= buf.len() {
        let end = (at + RECORD_HEADER_LEN + u32_at(buf, at + 4) as usize).min(buf.len());
        pending[k] = (at, end);
        k += 1;
        if k == 3 {
            let [(a0, a1), (b0, b1), (c0, c1)] = pending;
            let (x, y, z) = crc32c_3(&buf[a0 + 4..a1], &buf[b0 + 4..b1], &buf[c0 + 4..c1]);
            buf[a0..a0 + 4].copy_from_slice(&x.to_le_bytes());
            buf[b0..b0 + 4].copy_from_slice(&y.to_le_bytes());
            buf[c0..c0 + 4].copy_from_slice(&z.to_le_bytes());
            k = 0;
        }
        at = end;
    }
    for &(s0, s1) in &pending[..k] {
        let c = crc32c_1(&buf[s0 + 4..s1]);
        buf[s0..s0 + 4].copy_from_slice(&c.to_le_bytes());
    }
}

/// CRC32C of three buffers, interleaved.
fn crc32c_3(a: &[u8], b: &[u8], c: &[u8]) -> (u32, u32, u32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU supports SSE 4.2, checked just above.
            return unsafe { crc32c_3_sse42(a, b, c) };
        }
    }
    (crc32c::crc32c(a), crc32c::crc32c(b), crc32c::crc32c(c))
}

/// Inputs from this long on go to the crate's CRC, which splits them three ways from here.
const CRC_SPLIT_FROM: usize = 768;

/// CRC32C of one record-sized buffer (a batch's last records, and each record read back).
/// Shorter than [`CRC_SPLIT_FROM`], the plain loop; longer ones (a full-size packet's record)
/// go to the crate, whose three-way split wins there.
fn crc32c_1(a: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if a.len() < CRC_SPLIT_FROM && std::arch::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU supports SSE 4.2, checked just above.
            return unsafe { !(crc32c_tail_sse42(0xFFFF_FFFF, a) as u32) };
        }
    }
    crc32c::crc32c(a)
}

#[cfg(target_arch = "x86_64")]
fn le64(w: &[u8]) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(w);
    u64::from_le_bytes(x)
}

/// Continue the internal CRC state `x` (inverted, as the instruction keeps it) over `b`.
/// Records are a few hundred bytes: a plain loop of the CRC instruction, then 4, 2 and 1
/// byte steps, beats the crate's entry point here (its dispatch and its three-way split for
/// long inputs cost more than they save on a tail of a few bytes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn crc32c_tail_sse42(mut x: u64, b: &[u8]) -> u64 {
    use std::arch::x86_64::{_mm_crc32_u16, _mm_crc32_u32, _mm_crc32_u64, _mm_crc32_u8};
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        x = _mm_crc32_u64(x, le64(w));
    }
    let mut rest = words.remainder();
    let mut y = x as u32;
    if let [b0, b1, b2, b3, more @ ..] = rest {
        y = _mm_crc32_u32(y, u32::from_le_bytes([*b0, *b1, *b2, *b3]));
        rest = more;
    }
    if let [b0, b1, more @ ..] = rest {
        y = _mm_crc32_u16(y, u16::from_le_bytes([*b0, *b1]));
        rest = more;
    }
    if let [b0] = rest {
        y = _mm_crc32_u8(y, *b0);
    }
    u64::from(y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn crc32c_3_sse42(a: &[u8], b: &[u8], c: &[u8]) -> (u32, u32, u32) {
    use std::arch::x86_64::_mm_crc32_u64;
    // Internal CRC state: the inverted running value (the standard pre/post conditioning).
    let (mut x, mut y, mut z) = (0xFFFF_FFFFu64, 0xFFFF_FFFFu64, 0xFFFF_FFFFu64);
    let n = a.len().min(b.len()).min(c.len()) & !7;
    let (pa, pb, pc) = (a.as_ptr(), b.as_ptr(), c.as_ptr());
    let mut at = 0;
    while at < n {
        // SAFETY: `at + 8 <= n`, and `n` is at most each slice's length.
        let (wa, wb, wc) = unsafe {
            (
                u64::from_le(pa.add(at).cast::<u64>().read_unaligned()),
                u64::from_le(pb.add(at).cast::<u64>().read_unaligned()),
                u64::from_le(pc.add(at).cast::<u64>().read_unaligned()),
            )
        };
        x = _mm_crc32_u64(x, wa);
        y = _mm_crc32_u64(y, wb);
        z = _mm_crc32_u64(z, wc);
        at += 8;
    }
    // Each goes on alone from the end of the common prefix.
    (
        !(crc32c_tail_sse42(x, &a[n..]) as u32),
        !(crc32c_tail_sse42(y, &b[n..]) as u32),
        !(crc32c_tail_sse42(z, &c[n..]) as u32),
    )
}

/// A record decoded in place: its sequence number and where its payload lies in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodedRecord {
    pub seq: u64,
    pub payload_start: usize,
    pub payload_len: usize,
}

#[cfg(test)]
impl DecodedRecord {
    /// Total encoded size (header + payload).
    pub fn total_len(&self) -> usize {
        RECORD_HEADER_LEN + self.payload_len
    }
}

/// Reads only the payload length of the record header at the start of `b`, so a reader knows how
/// many bytes to fetch. Returns `Short` if fewer than a header's worth of bytes are present.
pub fn peek_record_len(b: &[u8]) -> Result<usize, Invalid> {
    if b.len() < RECORD_HEADER_LEN {
        return Err(Invalid::Short);
    }
    let len = u32_at(b, 4);
    if len as usize > MAX_PAYLOAD_LEN {
        return Err(Invalid::Length(len));
    }
    Ok(RECORD_HEADER_LEN + len as usize)
}

/// For resynchronisation after damage: if `b` starts with what could be a record header (known
/// version and kind, zero reserved bytes, length in range), its sequence number and total
/// length. Cheap enough to try at every byte offset; the caller then checks the CRC with
/// [`decode_record`].
pub fn plausible_record_header(b: &[u8]) -> Option<(u64, usize)> {
    if b.len() < RECORD_HEADER_LEN || b[16] != FORMAT_VERSION || b[17] != KIND_DATA {
        return None;
    }
    if b[18] != 0 || b[19] != 0 {
        return None;
    }
    let total = peek_record_len(b).ok()?;
    Some((u64_at(b, 8), total))
}

/// Decodes the record at the start of `b`, which must carry sequence number `expected`.
pub fn decode_record(b: &[u8], expected: u64) -> Result<DecodedRecord, Invalid> {
    let total = peek_record_len(b)?;
    if b.len() < total {
        return Err(Invalid::Short);
    }
    if crc32c_1(&b[4..total]) != u32_at(b, 0) {
        return Err(Invalid::Checksum);
    }
    if b[16] != FORMAT_VERSION {
        return Err(Invalid::Version(b[16]));
    }
    if b[17] != KIND_DATA || b[18] != 0 || b[19] != 0 {
        return Err(Invalid::Kind(b[17]));
    }
    let seq = u64_at(b, 8);
    if seq != expected {
        return Err(Invalid::Sequence {
            expected,
            found: seq,
        });
    }
    Ok(DecodedRecord {
        seq,
        payload_start: RECORD_HEADER_LEN,
        payload_len: total - RECORD_HEADER_LEN,
    })
}

/// Encodes a ledger slot.
pub fn encode_ledger_slot(generation: u64, acked: u64) -> [u8; LEDGER_SLOT_LEN] {
    let mut s = [0u8; LEDGER_SLOT_LEN];
    s[0..4].copy_from_slice(&LEDGER_MAGIC);
    s[4] = FORMAT_VERSION;
    // 5..8 reserved
    s[8..16].copy_from_slice(&generation.to_le_bytes());
    s[16..24].copy_from_slice(&acked.to_le_bytes());
    let c = crc(&[&s[0..24]]);
    s[24..28].copy_from_slice(&c.to_le_bytes());
    s
}

/// Decodes a ledger slot into `(generation, acked)`.
pub fn decode_ledger_slot(b: &[u8]) -> Result<(u64, u64), Invalid> {
    if b.len() < LEDGER_SLOT_LEN {
        return Err(Invalid::Short);
    }
    if b[0..4] != LEDGER_MAGIC {
        return Err(Invalid::Magic);
    }
    if crc(&[&b[0..24]]) != u32_at(b, 24) {
        return Err(Invalid::Checksum);
    }
    if b[4] != FORMAT_VERSION {
        return Err(Invalid::Version(b[4]));
    }
    Ok((u64_at(b, 8), u64_at(b, 16)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_bit_flips_detected() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 42, b"hello world");
        let d = decode_record(&buf, 42).expect("valid");
        assert_eq!(
            &buf[d.payload_start..d.payload_start + d.payload_len],
            b"hello world"
        );
        assert_eq!(d.total_len(), buf.len());
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut c = buf.clone();
                c[i] ^= 1 << bit;
                assert!(
                    decode_record(&c, 42).is_err(),
                    "flip at {i}/{bit} undetected"
                );
            }
        }
        assert_eq!(
            decode_record(&buf, 43),
            Err(Invalid::Sequence {
                expected: 43,
                found: 42
            })
        );
        assert_eq!(
            decode_record(&buf[..buf.len() - 1], 42),
            Err(Invalid::Short)
        );
    }

    proptest::proptest! {
        /// Decoders look at arbitrary bytes without panicking, and accept only what the encoders
        /// produce.
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), seq in 0u64..4) {
            let _ = decode_record(&bytes, seq);
            let _ = peek_record_len(&bytes);
            let _ = decode_segment_header(&bytes);
            let _ = decode_ledger_slot(&bytes);
            let _ = parse_segment_file_name(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn record_round_trip(payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000), seq in 1u64..u64::MAX, cut in 0usize..3020) {
            let mut buf = vec![0xAA; 3];
            encode_record(&mut buf, seq, &payload);
            let d = decode_record(&buf[3..], seq).expect("round trip");
            proptest::prop_assert_eq!(&buf[3 + d.payload_start..3 + d.payload_start + d.payload_len], &payload[..]);
            // Any strict prefix is reported as short, never as a record.
            let cut = cut.min(buf.len() - 4);
            proptest::prop_assert_eq!(decode_record(&buf[3..3 + cut], seq), Err(Invalid::Short));
        }
    }

    proptest::proptest! {
        #[test]
        fn interleaved_crc_matches_reference(
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..5000),
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            c in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let r = crc32c_3(&a, &b, &c);
            proptest::prop_assert_eq!(r, (crc32c::crc32c(&a), crc32c::crc32c(&b), crc32c::crc32c(&c)));
            proptest::prop_assert_eq!(crc32c_1(&a), crc32c::crc32c(&a));
            // Either side of the split, whatever the random lengths drew.
            for n in [0, 1, 7, CRC_SPLIT_FROM - 1, CRC_SPLIT_FROM, CRC_SPLIT_FROM + 1] {
                let long: Vec<u8> = a.iter().chain(&b).copied().cycle().take(n).collect();
                proptest::prop_assert_eq!(crc32c_1(&long), crc32c::crc32c(&long));
            }
        }

        #[test]
        fn sealed_batches_decode(lens in proptest::collection::vec(0usize..400, 0..12)) {
            let mut buf = Vec::new();
            for (i, &l) in lens.iter().enumerate() {
                encode_record_unsealed(&mut buf, i as u64 + 1, &vec![i as u8; l]);
            }
            seal_records(&mut buf);
            let mut at = 0;
            for (i, &l) in lens.iter().enumerate() {
                let d = decode_record(&buf[at..], i as u64 + 1).expect("sealed record decodes");
                proptest::prop_assert_eq!(d.payload_len, l);
                at += RECORD_HEADER_LEN + l;
            }
            proptest::prop_assert_eq!(at, buf.len());
        }
    }

    #[test]
    fn header_and_names() {
        let h = encode_segment_header(7);
        assert_eq!(decode_segment_header(&h), Ok(7));
        assert_eq!(decode_segment_header(&[0u8; 32]), Err(Invalid::Magic));
        assert_eq!(parse_segment_file_name(&segment_file_name(7)), Some(7));
        assert_eq!(parse_segment_file_name("7.seg"), None);
        assert_eq!(parse_segment_file_name("0000000000000000000a.seg"), None);
        let s = encode_ledger_slot(3, 99);
        assert_eq!(decode_ledger_slot(&s), Ok((3, 99)));
    }
}
