//! PostgreSQL's binary COPY format (`COPY ... TO STDOUT (FORMAT binary)`), decoded by hand.
//!
//! Why by hand: the report reads every row of a large table, and going through tokio-postgres's
//! rows cost a `Row` per packet (its column ranges collected, the statement shared) and a type
//! check per column read: most of this process's time before the fold. No maintained crate
//! decodes the binary COPY stream into borrowed fields (postgres-types' `BinaryCopyOutStream`
//! builds a row with owned ranges per packet, as `Row` does). The format is small and fixed
//! (PostgreSQL's documentation, COPY, "Binary Format"):
//!
//! - a header: the 11-byte signature `PGCOPY\n\xff\r\n\0`, a 32-bit flags field (bit 16: OIDs
//!   included, which a `COPY (SELECT ...)` never sends; bits 0-15 are critical: both refused;
//!   bits 17-31 ignored), a 32-bit header extension length and that many bytes (skipped);
//! - tuples: a 16-bit field count, then per field a 32-bit length (-1 is NULL) and its bytes;
//! - a trailer: the 16-bit field count -1.
//!
//! All integers are big-endian. The server sends one CopyData message per tuple (the header
//! with the first), but nothing here relies on that: the stream is bytes, and a tuple split
//! across chunks is put together in a carry buffer (the common case, whole tuples in a chunk,
//! is decoded in place, without copying).
//!
//! Invariants: any byte string is decoded or refused with a [`CopyError`], never a panic and
//! never a read outside the input; a tuple with another field count than expected, bytes after
//! the trailer, or a stream that ends before the trailer are errors (a truncated stream never
//! passes for a shorter table).

/// The signature that starts the stream.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// At most this many columns per tuple (the fields of one tuple are kept on the stack).
pub const MAX_FIELDS: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CopyError {
    #[error("binary COPY stream: not PostgreSQL's binary COPY header")]
    Signature,
    #[error("binary COPY stream: header flags {0:#x} not understood")]
    Flags(u32),
    #[error("binary COPY stream: a tuple of {got} fields where {expected} were asked for")]
    FieldCount { expected: usize, got: i16 },
    #[error("binary COPY stream: a field of length {0}")]
    FieldLength(i32),
    #[error("binary COPY stream: data after the trailer")]
    AfterTrailer,
    #[error("binary COPY stream: ended before its trailer")]
    Truncated,
    #[error("column {column}: {why}")]
    Value { column: &'static str, why: String },
}

/// One tuple's fields, in the order asked for; `None` is NULL. They borrow the stream's buffer.
pub type Fields<'a> = [Option<&'a [u8]>];

/// A decoder of one binary COPY stream of tuples of `ncols` fields.
#[derive(Debug)]
pub struct CopyReader {
    ncols: usize,
    header: bool,
    done: bool,
    /// The start of a tuple (or of the header) whose end is in a later chunk.
    carry: Vec<u8>,
}

/// What one step of decoding found at the start of a buffer.
enum Step {
    /// Not enough bytes yet.
    Short,
    /// A tuple of this many bytes (its fields were handed over).
    Tuple(usize),
    /// The trailer (2 bytes).
    Trailer,
}

impl CopyReader {
    /// A decoder for tuples of `ncols` fields (at most [`MAX_FIELDS`]).
    pub fn new(ncols: usize) -> CopyReader {
        CopyReader {
            ncols: ncols.min(MAX_FIELDS),
            header: false,
            done: false,
            carry: Vec::new(),
        }
    }

    /// Decode `chunk`, the next bytes of the stream: `row` gets every tuple completed by it.
    /// An error of `row`'s stops decoding and is returned.
    pub fn feed<E: From<CopyError>>(
        &mut self,
        chunk: &[u8],
        row: &mut impl FnMut(&Fields<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.carry.is_empty() {
            let used = self.decode(chunk, row)?;
            self.carry.extend_from_slice(&chunk[used..]);
        } else {
            let mut carry = std::mem::take(&mut self.carry);
            carry.extend_from_slice(chunk);
            let used = self.decode(&carry, row);
            let used = match used {
                Ok(n) => n,
                Err(e) => {
                    self.carry = carry;
                    return Err(e);
                }
            };
            carry.drain(..used);
            self.carry = carry;
        }
        Ok(())
    }

    /// The stream ended: an error unless it ended with its trailer.
    pub fn finish(&self) -> Result<(), CopyError> {
        if self.done && self.carry.is_empty() {
            Ok(())
        } else {
            Err(CopyError::Truncated)
        }
    }

    /// Decode what `buf` holds whole; returns how many bytes that was.
    fn decode<E: From<CopyError>>(
        &mut self,
        buf: &[u8],
        row: &mut impl FnMut(&Fields<'_>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let mut at = 0;
        if !self.header {
            match header(buf)? {
                Some(n) => {
                    at = n;
                    self.header = true;
                }
                None => return Ok(0),
            }
        }
        let mut fields: [Option<&[u8]>; MAX_FIELDS] = [None; MAX_FIELDS];
        while at < buf.len() {
            if self.done {
                return Err(CopyError::AfterTrailer.into());
            }
            match tuple(&buf[at..], self.ncols, &mut fields)? {
                Step::Short => break,
                Step::Tuple(n) => {
                    row(&fields[..self.ncols])?;
                    at += n;
                }
                Step::Trailer => {
                    self.done = true;
                    at += 2;
                }
            }
        }
        Ok(at)
    }
}

fn be16(b: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The header's length when `buf` holds all of it, `None` when it may still come.
fn header(buf: &[u8]) -> Result<Option<usize>, CopyError> {
    let sig = buf.len().min(SIGNATURE.len());
    if buf[..sig] != SIGNATURE[..sig] {
        return Err(CopyError::Signature);
    }
    let (Some(flags), Some(ext)) = (be32(buf, 11), be32(buf, 15)) else {
        return Ok(None);
    };
    // Bits 0-15 are critical (unknown: refused), bit 16 (OIDs) would change the tuple
    // layout; bits 17-31 are not critical and ignored, as the format asks.
    if flags & 0x1_ffff != 0 {
        return Err(CopyError::Flags(flags));
    }
    let end = usize::try_from(ext)
        .ok()
        .and_then(|e| e.checked_add(19))
        .ok_or(CopyError::Truncated)?;
    Ok((buf.len() >= end).then_some(end))
}

/// The tuple (or trailer) at the start of `buf`, its fields put in `fields`.
fn tuple<'a>(
    buf: &'a [u8],
    ncols: usize,
    fields: &mut [Option<&'a [u8]>; MAX_FIELDS],
) -> Result<Step, CopyError> {
    let Some(count) = be16(buf, 0) else {
        return Ok(Step::Short);
    };
    if count == -1 {
        return Ok(Step::Trailer);
    }
    if usize::try_from(count).ok() != Some(ncols) {
        return Err(CopyError::FieldCount {
            expected: ncols,
            got: count,
        });
    }
    let mut at = 2;
    for f in fields.iter_mut().take(ncols) {
        let Some(len) = be32(buf, at) else {
            return Ok(Step::Short);
        };
        at += 4;
        let len = len as i32;
        if len == -1 {
            *f = None;
            continue;
        }
        let Ok(n) = usize::try_from(len) else {
            return Err(CopyError::FieldLength(len));
        };
        let Some(v) = buf.get(at..at + n) else {
            return Ok(Step::Short);
        };
        *f = Some(v);
        at += n;
    }
    Ok(Step::Tuple(at))
}

/// Decoders of the binary send formats of the types the report reads; a value of another
/// length or shape is an error naming its column.
pub mod value {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::CopyError;

    fn bad(column: &'static str, why: impl Into<String>) -> CopyError {
        CopyError::Value {
            column,
            why: why.into(),
        }
    }

    fn fixed<const N: usize>(column: &'static str, b: &[u8]) -> Result<[u8; N], CopyError> {
        b.try_into()
            .map_err(|_| bad(column, format!("{} bytes where {N} were expected", b.len())))
    }

    pub fn int2(column: &'static str, b: &[u8]) -> Result<i16, CopyError> {
        Ok(i16::from_be_bytes(fixed(column, b)?))
    }

    pub fn int4(column: &'static str, b: &[u8]) -> Result<i32, CopyError> {
        Ok(i32::from_be_bytes(fixed(column, b)?))
    }

    pub fn int8(column: &'static str, b: &[u8]) -> Result<i64, CopyError> {
        Ok(i64::from_be_bytes(fixed(column, b)?))
    }

    pub fn float8(column: &'static str, b: &[u8]) -> Result<f64, CopyError> {
        Ok(f64::from_be_bytes(fixed(column, b)?))
    }

    /// A `timestamptz` as whole seconds since the epoch, floored (as the other sources give).
    /// On the wire it is microseconds since 2000-01-01 UTC; no calendar is involved.
    pub fn seconds(column: &'static str, b: &[u8]) -> Result<i64, CopyError> {
        Ok(int8(column, b)?.div_euclid(1_000_000) + 946_684_800)
    }

    /// `text` in the client encoding, which tokio-postgres sets to UTF-8.
    pub fn text<'a>(column: &'static str, b: &'a [u8]) -> Result<&'a str, CopyError> {
        std::str::from_utf8(b).map_err(|e| bad(column, format!("not UTF-8 ({e})")))
    }

    /// `inet`: family (2 IPv4, 3 IPv6), prefix length, is-cidr, address length, address. The
    /// address only (a stored packet's address is a host).
    pub fn inet(column: &'static str, b: &[u8]) -> Result<IpAddr, CopyError> {
        match *b {
            [2, _, _, 4, o1, o2, o3, o4] => Ok(Ipv4Addr::new(o1, o2, o3, o4).into()),
            [3, _, _, 16, ref a @ ..] if a.len() == 16 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(a);
                Ok(Ipv6Addr::from(o).into())
            }
            _ => Err(bad(
                column,
                format!("not an inet value ({} bytes)", b.len()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(ext: &[u8]) -> Vec<u8> {
        let mut v = SIGNATURE.to_vec();
        v.extend_from_slice(&0u32.to_be_bytes());
        v.extend_from_slice(&(ext.len() as u32).to_be_bytes());
        v.extend_from_slice(ext);
        v
    }

    fn tuple_bytes(fields: &[Option<&[u8]>]) -> Vec<u8> {
        let mut v = (fields.len() as i16).to_be_bytes().to_vec();
        for f in fields {
            match f {
                None => v.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(b) => {
                    v.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    v.extend_from_slice(b);
                }
            }
        }
        v
    }

    /// A stream of three 2-field tuples and its trailer.
    fn stream() -> Vec<u8> {
        let mut v = header_bytes(b"ext");
        v.extend(tuple_bytes(&[Some(b"a"), None]));
        v.extend(tuple_bytes(&[Some(b""), Some(b"\x00\x01")]));
        v.extend(tuple_bytes(&[None, Some(b"xyz")]));
        v.extend_from_slice(&(-1i16).to_be_bytes());
        v
    }

    type Owned = Vec<Vec<Option<Vec<u8>>>>;

    /// Decode `chunks` in order: the tuples, or the first error.
    fn run(chunks: &[&[u8]], ncols: usize) -> Result<Owned, CopyError> {
        let mut r = CopyReader::new(ncols);
        let mut out = Vec::new();
        for c in chunks {
            r.feed(c, &mut |f: &Fields<'_>| -> Result<(), CopyError> {
                out.push(f.iter().map(|x| x.map(<[u8]>::to_vec)).collect());
                Ok(())
            })?;
        }
        r.finish()?;
        Ok(out)
    }

    fn expected() -> Owned {
        vec![
            vec![Some(b"a".to_vec()), None],
            vec![Some(vec![]), Some(vec![0, 1])],
            vec![None, Some(b"xyz".to_vec())],
        ]
    }

    #[test]
    fn a_stream_decodes_whole_and_cut_at_every_byte() {
        let s = stream();
        assert_eq!(run(&[&s], 2), Ok(expected()));
        for cut in 0..=s.len() {
            assert_eq!(run(&[&s[..cut], &s[cut..]], 2), Ok(expected()), "cut {cut}");
        }
        let bytes: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(run(&bytes, 2), Ok(expected()));
    }

    #[test]
    fn every_truncation_is_an_error_never_a_shorter_table() {
        let s = stream();
        for cut in 0..s.len() {
            assert_eq!(run(&[&s[..cut]], 2), Err(CopyError::Truncated), "cut {cut}");
        }
    }

    #[test]
    fn odd_streams_are_clear_errors() {
        let s = stream();
        assert_eq!(
            run(&[&s], 3).unwrap_err().to_string(),
            "binary COPY stream: a tuple of 2 fields where 3 were asked for"
        );
        assert_eq!(run(&[b"PGCOPX"], 2), Err(CopyError::Signature));
        let mut oids = s.clone();
        oids[12] = 1;
        assert_eq!(run(&[&oids], 2), Err(CopyError::Flags(0x10000)));
        oids[12] = 0;
        oids[14] = 1;
        assert_eq!(run(&[&oids], 2), Err(CopyError::Flags(1)));
        // A non-critical bit is ignored.
        oids[14] = 0;
        oids[11] = 0x80;
        assert_eq!(run(&[&oids], 2), Ok(expected()));
        let mut after = s.clone();
        after.extend(tuple_bytes(&[None, None]));
        assert_eq!(run(&[&after], 2), Err(CopyError::AfterTrailer));
        let mut neg = header_bytes(b"");
        neg.extend_from_slice(&1i16.to_be_bytes());
        neg.extend_from_slice(&(-7i32).to_be_bytes());
        assert_eq!(run(&[&neg], 1), Err(CopyError::FieldLength(-7)));
        // A huge length or extension waits for bytes that never come: truncated, no allocation.
        let mut huge = header_bytes(b"");
        huge.extend_from_slice(&1i16.to_be_bytes());
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(run(&[&huge], 1), Err(CopyError::Truncated));
        let mut ext = SIGNATURE.to_vec();
        ext.extend_from_slice(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(run(&[&ext], 1), Err(CopyError::Truncated));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let base = stream();
        for round in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut s = base.clone();
            // Flip a few bytes of a valid stream (or of pure noise), then cut it somewhere.
            if round % 4 == 0 {
                s.iter_mut().for_each(|b| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    *b = (x >> 56) as u8;
                });
            }
            for _ in 0..3 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let i = (x >> 33) as usize % s.len();
                s[i] = (x >> 13) as u8;
            }
            let cut = (x >> 20) as usize % (s.len() + 1);
            let _ = run(&[&s[..cut], &s[cut..]], 2);
        }
    }

    #[test]
    fn values_decode_or_name_their_column() {
        use std::net::IpAddr;
        assert_eq!(value::seconds("time", &0i64.to_be_bytes()), Ok(946_684_800));
        assert_eq!(
            value::seconds("time", &(-1i64).to_be_bytes()),
            Ok(946_684_799)
        );
        assert_eq!(value::int2("proto", &[0, 6]), Ok(6));
        assert_eq!(value::int4("dport", &[0, 0, 0, 22]), Ok(22));
        assert_eq!(value::float8("lat", &1.5f64.to_be_bytes()), Ok(1.5));
        let v4: IpAddr = "81.2.69.160".parse().unwrap();
        assert_eq!(value::inet("src", &[2, 32, 0, 4, 81, 2, 69, 160]), Ok(v4));
        let mut v6 = vec![3, 128, 0, 16];
        v6.extend_from_slice(
            &"2a02:ec0::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        assert_eq!(value::inet("src", &v6), Ok("2a02:ec0::1".parse().unwrap()));
        let e = value::int4("dport", &[0, 22]).unwrap_err();
        assert_eq!(e.to_string(), "column dport: 2 bytes where 4 were expected");
        assert!(value::inet("dst", &[2, 32, 0, 16, 1, 2, 3, 4]).is_err());
        assert!(value::inet("dst", &[]).is_err());
        assert!(value::text("prefix", b"\xff").is_err());
        assert_eq!(value::text("prefix", b"ssh "), Ok("ssh "));
    }
}
