//! Allocation-free appenders for numbers and addresses (the formatters run per packet).

use std::cell::RefCell;
use std::net::{Ipv4Addr, Ipv6Addr};

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Every byte's two lowercase hex digits.
static HEX2: [[u8; 2]; 256] = {
    let mut t = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = [HEX_LOWER[b >> 4], HEX_LOWER[b & 15]];
        b += 1;
    }
    t
};

/// Two decimal digits for every value 0..=99, so numbers are written two digits per division.
pub(super) const DIGITS2: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// A string, mostly a literal: copied by `extend_from_slice`, whose fixed-size copy the
/// compiler inlines.
#[inline]
pub fn s(out: &mut Vec<u8>, v: &str) {
    out.extend_from_slice(v.as_bytes());
}

/// Append `b`, of a length known only when it runs (a name, the prefix, an interface). Up to 32
/// bytes are copied as two fixed-size, possibly overlapping pieces, the first and the last
/// bytes: a few moves instead of a call into libc's memcpy, whose length dispatch costs more
/// than the copy. (Literals go through [`s`]: their length is known when compiled.)
#[inline(always)]
pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    let n = b.len();
    if n > 32 {
        out.extend_from_slice(b);
        return;
    }
    out.reserve(32);
    let at = out.len();
    short(&mut out.spare_capacity_mut()[..32], b);
    // SAFETY: `reserve(32)` made room for 32 bytes after `at`, and `short` initialised
    // `[0, n)` of them (n <= 32).
    unsafe { out.set_len(at + n) };
}

/// Write `b` (at most 32 bytes, as `dst` is) to the start of `dst` as two fixed-size, possibly
/// overlapping pieces: for N <= n <= 2N the pieces `[0, N)` and `[n - N, n)` cover `[0, n)`
/// (as n - N <= N), and for n of 1 to 3 the bytes 0, n / 2 and n - 1 are all of them.
#[inline(always)]
fn short(dst: &mut [std::mem::MaybeUninit<u8>], b: &[u8]) {
    let n = b.len();
    if n >= 16 {
        piece::<16>(dst, 0, b, 0);
        piece::<16>(dst, n - 16, b, n - 16);
    } else if n >= 8 {
        piece::<8>(dst, 0, b, 0);
        piece::<8>(dst, n - 8, b, n - 8);
    } else if n >= 4 {
        piece::<4>(dst, 0, b, 0);
        piece::<4>(dst, n - 4, b, n - 4);
    } else if n > 0 {
        piece::<1>(dst, 0, b, 0);
        piece::<1>(dst, n / 2, b, n / 2);
        piece::<1>(dst, n - 1, b, n - 1);
    }
}

/// Copy `b[from..from + N]` to `dst[to..to + N]`, a fixed-size copy (bounds-checked).
#[inline(always)]
fn piece<const N: usize>(dst: &mut [std::mem::MaybeUninit<u8>], to: usize, b: &[u8], from: usize) {
    let mut v = [0u8; N];
    v.copy_from_slice(&b[from..from + N]);
    for (d, x) in dst[to..to + N].iter_mut().zip(v) {
        d.write(x);
    }
}

/// Append the first `len` bytes of `buf`. The whole array is copied into the vector's spare
/// capacity (a fixed-size copy the compiler inlines) and only `len` bytes are kept: cheaper than
/// a copy of a variable length, which is a call into libc's memcpy for every number, and than
/// `extend_from_slice` + `truncate`, which set the length twice.
#[inline(always)]
pub(super) fn put<const N: usize>(out: &mut Vec<u8>, buf: &[u8; N], len: usize) {
    out.reserve(N);
    let at = out.len();
    for (d, &b) in out.spare_capacity_mut()[..N].iter_mut().zip(buf) {
        d.write(b);
    }
    // SAFETY: `reserve(N)` made room for N bytes after `at`, the loop initialised all N of them
    // (the slice `[..N]` would have panicked otherwise), and at most N of them (`len.min(N)`)
    // become part of the vector.
    unsafe { out.set_len(at + len.min(N)) };
}

/// Write `n` as decimal ending just before `buf[end]`, two digits at a time; returns where it
/// starts. `buf` must have room for the digits (20 for any u64).
#[inline(always)]
fn digits_before(buf: &mut [u8], end: usize, mut n: u64) -> usize {
    let mut i = end;
    while n >= 100 {
        let r = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGITS2[r..r + 2]);
    }
    if n >= 10 {
        let r = n as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGITS2[r..r + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    i
}

/// How many decimal digits `n` has (1 for 0). Nearly every number printed is below 100,000:
/// a few predictable compares beat `ilog10`.
#[inline(always)]
fn dec_len(n: u64) -> usize {
    if n < 10 {
        1
    } else if n < 100 {
        2
    } else if n < 1_000 {
        3
    } else if n < 10_000 {
        4
    } else if n < 100_000 {
        5
    } else {
        n.ilog10() as usize + 1
    }
}

/// Decimal. Most numbers of a line are below 100 (mark, hook, group, TTL, protocol, lengths):
/// those are one table read and a two-byte copy at the call site; longer ones take the loop.
#[inline(always)]
pub fn dec(out: &mut Vec<u8>, n: u64) {
    if n < 100 {
        let r = n as usize * 2;
        // One digit: the table's leading zero is skipped.
        let one = usize::from(n < 10);
        put(out, &[DIGITS2[r + one], DIGITS2[r + 1]], 2 - one);
        return;
    }
    dec_long(out, n);
}

/// `key` (a literal) then `n` in decimal. Below 100 (most values of a line) as one append of
/// up to 16 bytes, so a field costs one capacity check and one length update instead of two.
#[inline(always)]
pub fn key_dec(out: &mut Vec<u8>, key: &str, n: u64) {
    let k = key.as_bytes();
    // `k.len()` is a constant at every call: the test and the copies are resolved when compiled.
    if n < 100 && k.len() <= 14 {
        let mut buf = [0u8; 16];
        buf[..k.len()].copy_from_slice(k);
        let r = n as usize * 2;
        // One digit: the table's leading zero is skipped.
        let one = usize::from(n < 10);
        buf[k.len()] = DIGITS2[r + one];
        buf[k.len() + 1] = DIGITS2[r + 1];
        put(out, &buf, k.len() + 2 - one);
        return;
    }
    // Ports, IDs, sequence numbers: the key and all eight digits in one append, the leading
    // zeros cut by where the number starts.
    if n < 100_000_000 && k.len() <= 16 {
        let x = eight_digits(n as u32);
        // n >= 100, so `lead` is at most 5.
        let lead = ((x - ZEROS).trailing_zeros() / 8) as usize;
        let mut buf = [0u8; 32];
        buf[..k.len()].copy_from_slice(k);
        buf[k.len()..k.len() + 8].copy_from_slice(&(x >> (lead * 8)).to_le_bytes());
        put(out, &buf, k.len() + 8 - lead);
        return;
    }
    s(out, key);
    dec(out, n);
}

/// `key` (a literal of up to 16 bytes), then `b` (up to 32 bytes), then `tail` (a literal of
/// up to 8 bytes), as one append: an interface after its key, a name in parentheses. Longer
/// parts take three appends.
#[inline(always)]
pub fn framed(out: &mut Vec<u8>, key: &str, b: &[u8], tail: &str) {
    let (k, t, n) = (key.as_bytes(), tail.as_bytes(), b.len());
    if k.len() > 16 || t.len() > 8 || n > 32 {
        s(out, key);
        bytes(out, b);
        s(out, tail);
        return;
    }
    out.reserve(56);
    let at = out.len();
    let dst = &mut out.spare_capacity_mut()[..56];
    for (d, &x) in dst[..k.len()].iter_mut().zip(k) {
        d.write(x);
    }
    let dst_b = &mut dst[k.len()..k.len() + 32];
    short(dst_b, b);
    for (d, &x) in dst[k.len() + n..k.len() + n + t.len()].iter_mut().zip(t) {
        d.write(x);
    }
    debug_assert!(k.len() + n + t.len() <= 56);
    // SAFETY: `reserve(56)` made room for 56 bytes after `at`; `dst[..k]` holds the key,
    // `dst[k..k + n]` the bytes (`short` writes all of `[0, n)`, see [`bytes`]) and
    // `dst[k + n..k + n + t]` the tail, k + n + t <= 56.
    unsafe { out.set_len(at + k.len() + n + t.len()) };
}

/// Numbers of three digits or more: ports, IP IDs, window sizes, the NFLOG sequence numbers.
/// Below 10^8 (nearly all of them) the digits come from [`eight_digits`] and the length from
/// its leading zeros, without a loop or a branch per digit pair.
#[inline(never)]
fn dec_long(out: &mut Vec<u8>, n: u64) {
    if n < 100_000_000 {
        let x = eight_digits(n as u32);
        // n >= 1, so at least one digit is not a leading zero and `lead` is at most 7.
        let lead = (x - ZEROS).trailing_zeros() / 8;
        put(out, &(x >> (lead * 8)).to_le_bytes(), 8 - lead as usize);
        return;
    }
    if n < 10_000_000_000_000_000 {
        // The high part as above, then the low eight digits in full.
        let (hi, lo) = ((n / 100_000_000) as u32, (n % 100_000_000) as u32);
        let x = eight_digits(hi);
        let lead = (x - ZEROS).trailing_zeros() / 8;
        let mut buf = [0u8; 16];
        buf[..8].copy_from_slice(&(x >> (lead * 8)).to_le_bytes());
        let len = 8 - lead as usize;
        buf[len..len + 8].copy_from_slice(&eight_digits(lo).to_le_bytes());
        put(out, &buf, len + 8);
        return;
    }
    let mut buf = [0u8; 20];
    let len = dec_len(n);
    digits_before(&mut buf, len, n);
    put(out, &buf, len);
}

/// Eight ASCII `0`s: what [`eight_digits`] gives for 0.
const ZEROS: u64 = 0x3030_3030_3030_3030;

/// The eight decimal digits of `n` (< 10^8), zero-padded, as ASCII bytes in the order of
/// `to_le_bytes` (the first byte is the most significant digit). All lanes at once: `n` splits
/// into two halves of four digits (32-bit lanes), each into two pairs (16-bit lanes), each pair
/// into two digits (bytes). A division by 100 of a lane below 10^4 is `* 10486 >> 20` and by 10
/// of a lane below 100 is `* 103 >> 10`, both exact in those ranges; no product leaves its lane
/// (10^4 * 10486 < 2^32, 100 * 103 < 2^16), so the lanes never disturb each other.
#[inline(always)]
pub(super) fn eight_digits(n: u32) -> u64 {
    debug_assert!(n < 100_000_000);
    let x = u64::from(n / 10_000) | (u64::from(n % 10_000) << 32);
    let q = ((x * 10_486) >> 20) & 0x0000_007f_0000_007f;
    let x = q | ((x - q * 100) << 16);
    let q = ((x * 103) >> 10) & 0x000f_000f_000f_000f;
    let x = q | ((x - q * 10) << 8);
    x | ZEROS
}

/// Decimal, zero-padded to `width` digits.
pub fn dec_pad(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let len = dec_len(n).max(width.min(20));
    digits_before(&mut buf, len, n);
    put(out, &buf, len);
}

/// Hex digits of `n` right-aligned in `buf[..len]` (the rest of `buf[..len]` keeps its fill).
#[inline(always)]
fn hex_into(buf: &mut [u8; 16], len: usize, mut n: u64, t: &[u8; 16]) {
    let mut i = len;
    while n != 0 && i > 0 {
        i -= 1;
        buf[i] = t[(n & 15) as usize];
        n >>= 4;
    }
}

/// How many hex digits `n` has (1 for 0).
#[inline(always)]
fn hex_len(n: u64) -> usize {
    n.checked_ilog2().map_or(1, |l| l as usize / 4 + 1)
}

/// The eight hex digits of `n`, zero-padded, as ASCII bytes in the order of `to_le_bytes` (the
/// first byte is the most significant digit). The nibbles are spread one per byte (lowest
/// first), the bytes reversed, and each digit d becomes `'0' + d`, plus the distance to `'a'`
/// (or `'A'`) where d >= 10: `d + 6` carries into bit 4 exactly then, and no lane overflows.
#[inline(always)]
fn eight_hex(n: u32, upper: bool) -> u64 {
    let x = u64::from(n);
    let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    let x = ((x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f).swap_bytes();
    let ten_up = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    let step = if upper {
        b'A' - b'0' - 10
    } else {
        b'a' - b'0' - 10
    };
    x + ZEROS + ten_up * u64::from(step)
}

/// The last `len` (1 to 8) of `n`'s eight hex digits, in the first bytes of the word.
#[inline(always)]
fn hex_word(n: u64, len: usize, upper: bool) -> u64 {
    eight_hex(n as u32, upper) >> ((8 - len) * 8)
}

/// Hex without leading zeros (`%x`), lowercase.
pub fn hex(out: &mut Vec<u8>, n: u64) {
    hex_pad(out, n, 1, false);
}

/// Hex zero-padded to `width` digits (`%0Nx` / `%0NX`). Inlined: `width` and `upper` are
/// constants at every call, and a call cost the kernel format's short fields more than the
/// digits.
#[inline(always)]
pub fn hex_pad(out: &mut Vec<u8>, n: u64, width: usize, upper: bool) {
    let len = hex_len(n).max(width.min(16));
    if len <= 8 {
        put(out, &hex_word(n, len, upper).to_le_bytes(), len);
        return;
    }
    let t = if upper { HEX_UPPER } else { HEX_LOWER };
    let mut buf = [b'0'; 16];
    hex_into(&mut buf, len, n, t);
    put(out, &buf, len);
}

/// `key` (a literal of up to 16 bytes), then `n` in lowercase hex zero-padded to `width`
/// digits, as one append (`, seq 0x` and eight digits).
#[inline(always)]
pub fn key_hex(out: &mut Vec<u8>, key: &str, n: u64, width: usize) {
    let k = key.as_bytes();
    let len = hex_len(n).max(width.min(16));
    if len > 8 || k.len() > 16 {
        s(out, key);
        hex_pad(out, n, width, false);
        return;
    }
    let mut buf = [0u8; 24];
    buf[..k.len()].copy_from_slice(k);
    buf[k.len()..k.len() + 8].copy_from_slice(&hex_word(n, len, false).to_le_bytes());
    put(out, &buf, k.len() + len);
}

/// Bytes as contiguous uppercase hex (the kernel's `OPT (...)`).
pub fn hex_bytes_upper(out: &mut Vec<u8>, b: &[u8]) {
    out.reserve(b.len() * 2);
    for &x in b {
        out.extend_from_slice(&[HEX_UPPER[(x >> 4) as usize], HEX_UPPER[(x & 15) as usize]]);
    }
}

/// Bytes as contiguous lowercase hex.
pub fn hex_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.reserve(b.len() * 2);
    for &x in b {
        out.extend_from_slice(&[HEX_LOWER[(x >> 4) as usize], HEX_LOWER[(x & 15) as usize]]);
    }
}

/// Bytes as `aa:bb:cc` (the kernel's `MAC=` and `%pM`).
pub fn colon_hex(out: &mut Vec<u8>, b: &[u8]) {
    if b.is_empty() {
        return;
    }
    // Hardware addresses and Ethernet headers (6 and 14 bytes, 16 with a tag) through a buffer
    // of the size they need, longer link-layer headers (up to 32 bytes: SIT) through a bigger
    // one; two digits per table read.
    if b.len() <= 16 {
        return colon_hex_in::<48>(out, b);
    }
    if b.len() <= 32 {
        return colon_hex_in::<96>(out, b);
    }
    let Some((first, rest)) = b.split_first() else {
        return;
    };
    out.reserve(b.len() * 3);
    out.extend_from_slice(&[
        HEX_LOWER[(first >> 4) as usize],
        HEX_LOWER[(first & 15) as usize],
    ]);
    for &x in rest {
        out.extend_from_slice(&[
            b':',
            HEX_LOWER[(x >> 4) as usize],
            HEX_LOWER[(x & 15) as usize],
        ]);
    }
}

/// [`colon_hex`] of up to `N / 3` bytes through one stack buffer of `N`.
#[inline(always)]
fn colon_hex_in<const N: usize>(out: &mut Vec<u8>, b: &[u8]) {
    let mut buf = [b':'; N];
    for (i, &x) in b.iter().enumerate() {
        buf[i * 3..i * 3 + 2].copy_from_slice(&HEX2[usize::from(x)]);
    }
    put(out, &buf, b.len() * 3 - 1);
}

/// Every octet's decimal digits followed by a `.`, in the order of `to_le_bytes` (low four
/// bytes), and how many bytes that is (bits 32 and up).
static OCTETS: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut o = 0;
    while o < 256 {
        let (h, te, u) = (
            b'0' as u64 + (o / 100) as u64,
            b'0' as u64 + (o / 10 % 10) as u64,
            b'0' as u64 + (o % 10) as u64,
        );
        let dot = b'.' as u64;
        t[o] = if o >= 100 {
            h | te << 8 | u << 16 | dot << 24 | 4 << 32
        } else if o >= 10 {
            te | u << 8 | dot << 16 | 3 << 32
        } else {
            u | dot << 8 | 2 << 32
        };
        o += 1;
    }
    t
};

/// Two octets with their dots (`a.b.`) in the order of `to_le_bytes`, and how many bytes.
#[inline(always)]
fn two_octets(a: u8, b: u8) -> (u64, usize) {
    let (x, y) = (OCTETS[usize::from(a)], OCTETS[usize::from(b)]);
    let la = (x >> 32) as u32;
    // `la` is at most 4 bytes: the shift stays below 64.
    (
        (x & 0xffff_ffff) | ((y & 0xffff_ffff) << (la * 8)),
        (la + (y >> 32) as u32) as usize,
    )
}

/// Dotted decimal, built in registers from the octet table: the two halves as two eight-byte
/// words; the last octet's dot is cut off. Returns the text (in the first bytes) and its length.
#[inline(always)]
fn ipv4_text(a: u32) -> ([u8; 16], usize) {
    let [a, b, c, d] = a.to_be_bytes();
    let (hi, lh) = two_octets(a, b);
    let (lo, ll) = two_octets(c, d);
    // `lh` is 4 to 8: the second word fits in the sixteen bytes.
    let mut buf = [0u8; 16];
    buf[..8].copy_from_slice(&hi.to_le_bytes());
    buf[lh..lh + 8].copy_from_slice(&lo.to_le_bytes());
    (buf, lh + ll - 1)
}

/// An address and its dotted decimal text (the first `len` bytes of `text`).
#[derive(Clone, Copy)]
pub(super) struct V4Text {
    addr: u32,
    len: u8,
    text: [u8; 16],
}

/// Every slot starts as 0.0.0.0 and its text, so every slot always holds an address and its
/// own text and a lookup needs no "empty" state.
const V4_ZERO: V4Text = V4Text {
    addr: 0,
    len: 7,
    text: *b"0.0.0.0\0\0\0\0\0\0\0\0\0",
};

// Per thread, the text of recent addresses in 256 slots chosen by a multiplicative hash of the
// address: a log's addresses repeat (the host's own, a scanner's, a flow's packets), and a hit
// is a compare and a 16-byte copy where the text costs some fifty instructions to build. A
// miss builds the text and replaces the slot.
thread_local! {
    static V4_TEXTS: RefCell<[V4Text; 256]> = const { RefCell::new([V4_ZERO; 256]) };
}

pub fn ipv4(out: &mut Vec<u8>, a: Ipv4Addr) {
    let t = V4_TEXTS.with_borrow_mut(|t| cached(t, u32::from(a)));
    ipv4_text_after(out, b"", &t);
}

/// The dotted decimal text of two addresses (an IPv4 line's source and destination) from the
/// per-thread cache, in one access to it: the access is a call through `LocalKey::with` where
/// the compiler does not inline it (some thirty instructions).
pub(super) fn ipv4_texts(a: Ipv4Addr, b: Ipv4Addr) -> [V4Text; 2] {
    // Not reentrant (nothing here calls back), so the borrow is never held already.
    V4_TEXTS.with_borrow_mut(|t| [a, b].map(|x| cached(t, u32::from(x))))
}

#[inline(always)]
fn cached(t: &mut [V4Text; 256], addr: u32) -> V4Text {
    let e = &mut t[(addr.wrapping_mul(0x9e37_79b1) >> 24) as usize];
    if e.addr != addr {
        *e = v4_text(addr);
    }
    *e
}

#[inline(never)]
fn v4_text(addr: u32) -> V4Text {
    let (text, len) = ipv4_text(addr);
    V4Text {
        addr,
        len: len as u8,
        text,
    }
}

/// `key` (a literal of up to 8 bytes: `, from `, ` to `), then an address's text, as one
/// append.
#[inline(always)]
pub(super) fn ipv4_text_after<const K: usize>(out: &mut Vec<u8>, key: &[u8; K], t: &V4Text) {
    if K > 8 {
        out.extend_from_slice(key);
        return put(out, &t.text, usize::from(t.len));
    }
    let mut buf = [0u8; 24];
    buf[..K].copy_from_slice(key);
    buf[K..K + 16].copy_from_slice(&t.text);
    put(out, &buf, K + usize::from(t.len));
}

/// Fully expanded IPv6 (the kernel's `%pI6`): eight zero-padded lowercase groups.
pub fn ipv6_full(out: &mut Vec<u8>, a: Ipv6Addr) {
    let mut buf = [0u8; 39];
    for (i, x) in a.octets().iter().enumerate() {
        // Group g = i / 2 starts at 5 * g; its second byte follows the first.
        let at = i / 2 * 5 + (i % 2) * 2;
        buf[at] = HEX_LOWER[(x >> 4) as usize];
        buf[at + 1] = HEX_LOWER[(x & 15) as usize];
        if i % 2 == 1 && i < 15 {
            buf[at + 2] = b':';
        }
    }
    out.extend_from_slice(&buf);
}

/// Compressed IPv6 as `Ipv6Addr`'s Display writes it (RFC 5952): groups in lowercase hex
/// without leading zeros, the longest run of two or more zero groups (the first of equals)
/// as `::`, and an IPv4-mapped address as `::ffff:a.b.c.d`. Written by hand because going
/// through `core::fmt` cost more than the rest of an address line.
pub fn ipv6(out: &mut Vec<u8>, a: Ipv6Addr) {
    if let Some(v4) = a.to_ipv4_mapped() {
        s(out, "::ffff:");
        ipv4(out, v4);
        return;
    }
    let g = a.segments();
    // The longest run of zero groups, the first one when runs are equally long.
    let (mut best_at, mut best_len, mut run_at, mut run_len) = (0, 0, 0, 0);
    for (i, &x) in g.iter().enumerate() {
        if x == 0 {
            if run_len == 0 {
                run_at = i;
            }
            run_len += 1;
            if run_len > best_len {
                (best_at, best_len) = (run_at, run_len);
            }
        } else {
            run_len = 0;
        }
    }
    let mut buf = [0u8; 40];
    let mut n = 0;
    let group = |buf: &mut [u8; 40], n: &mut usize, x: u16| {
        let len = hex_len(x.into());
        for k in 0..len {
            buf[*n + k] = HEX_LOWER[((x >> (4 * (len - 1 - k))) & 15) as usize];
        }
        *n += len;
    };
    if best_len > 1 {
        for (k, &x) in g[..best_at].iter().enumerate() {
            if k > 0 {
                buf[n] = b':';
                n += 1;
            }
            group(&mut buf, &mut n, x);
        }
        buf[n..n + 2].copy_from_slice(b"::");
        n += 2;
        for (k, &x) in g[best_at + best_len..].iter().enumerate() {
            if k > 0 {
                buf[n] = b':';
                n += 1;
            }
            group(&mut buf, &mut n, x);
        }
    } else {
        for (k, &x) in g.iter().enumerate() {
            if k > 0 {
                buf[n] = b':';
                n += 1;
            }
            group(&mut buf, &mut n, x);
        }
    }
    put(out, &buf, n);
}

/// What a loss covers, as the fwlog and kernel formats' loss lines say it: `, group G`,
/// `, seq_global A-B`, `, spool_seq A-B`, each only when known.
pub fn loss_scope(ev: &super::LossEvent, out: &mut Vec<u8>) {
    if let Some(g) = ev.group {
        s(out, ", group ");
        dec(out, g as u64);
    }
    if let Some((a, b)) = ev.seq_global {
        s(out, ", seq_global ");
        dec(out, a as u64);
        s(out, "-");
        dec(out, b as u64);
    }
    if let Some((a, b)) = ev.spool_seq {
        s(out, ", spool_seq ");
        dec(out, a);
        s(out, "-");
        dec(out, b);
    }
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
