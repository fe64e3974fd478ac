//! Bounds-checked big-endian reads at an offset. Every header read goes through these, so an
//! offset from a hostile length field can only yield `None`, never a panic.

/// `len` bytes at `off`, if all are present.
pub(crate) fn get(b: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    b.get(off..off.checked_add(len)?)
}

pub(crate) fn u8_at(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}

pub(crate) fn be16(b: &[u8], off: usize) -> Option<u16> {
    let s = get(b, off, 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

pub(crate) fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = get(b, off, 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Four bytes at `off` (the "rest of header" word of ICMP).
pub(crate) fn word(b: &[u8], off: usize) -> Option<[u8; 4]> {
    let s = get(b, off, 4)?;
    Some([s[0], s[1], s[2], s[3]])
}
