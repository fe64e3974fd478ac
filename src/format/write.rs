//! Allocation-free appenders for numbers and addresses (the formatters run per packet).

use std::net::{Ipv4Addr, Ipv6Addr};

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

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
    let dst = &mut out.spare_capacity_mut()[..32];
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
    // SAFETY: `reserve(32)` made room for 32 bytes after `at`, and `dst[..n]` (n <= 32) was
    // initialised just above: for N <= n <= 2N the pieces `[0, N)` and `[n - N, n)` cover
    // `[0, n)` (as n - N <= N), and for n of 1 to 3 the bytes 0, n / 2 and n - 1 are all of
    // them.
    unsafe { out.set_len(at + n) };
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
fn put<const N: usize>(out: &mut Vec<u8>, buf: &[u8; N], len: usize) {
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

#[inline(never)]
fn dec_long(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let len = dec_len(n);
    digits_before(&mut buf, len, n);
    put(out, &buf, len);
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

/// Hex without leading zeros (`%x`), lowercase.
pub fn hex(out: &mut Vec<u8>, n: u64) {
    let mut buf = [b'0'; 16];
    let len = hex_len(n);
    hex_into(&mut buf, len, n, HEX_LOWER);
    put(out, &buf, len);
}

/// Hex zero-padded to `width` digits (`%0Nx` / `%0NX`).
pub fn hex_pad(out: &mut Vec<u8>, n: u64, width: usize, upper: bool) {
    let t = if upper { HEX_UPPER } else { HEX_LOWER };
    let mut buf = [b'0'; 16];
    let len = hex_len(n).max(width.min(16));
    hex_into(&mut buf, len, n, t);
    put(out, &buf, len);
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
    // Link-layer headers (up to 32 bytes: Ethernet with tags, SIT): through one buffer.
    if !b.is_empty() && b.len() <= 32 {
        let mut buf = [b':'; 96];
        for (i, &x) in b.iter().enumerate() {
            buf[i * 3] = HEX_LOWER[(x >> 4) as usize];
            buf[i * 3 + 1] = HEX_LOWER[(x & 15) as usize];
        }
        put(out, &buf, b.len() * 3 - 1);
        return;
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

/// Every octet's decimal digits, then how many there are (in the last byte).
static OCTETS: [[u8; 4]; 256] = {
    let mut t = [[0u8; 4]; 256];
    let mut o = 0;
    while o < 256 {
        let (h, te, u) = (
            b'0' + (o / 100) as u8,
            b'0' + (o / 10 % 10) as u8,
            b'0' + (o % 10) as u8,
        );
        t[o] = if o >= 100 {
            [h, te, u, 3]
        } else if o >= 10 {
            [te, u, 0, 2]
        } else {
            [u, 0, 0, 1]
        };
        o += 1;
    }
    t
};

/// One octet's decimal digits at `buf[at..]`; returns the position after them. Four bytes are
/// copied from the table (one fixed-size store, no branch on the octet's size); the ones past
/// the digits are overwritten by what follows or cut off.
#[inline(always)]
fn octet(buf: &mut [u8; 20], at: usize, o: u8) -> usize {
    let e = &OCTETS[usize::from(o)];
    buf[at..at + 4].copy_from_slice(e);
    at + usize::from(e[3])
}

pub fn ipv4(out: &mut Vec<u8>, a: Ipv4Addr) {
    let [a, b, c, d] = a.octets();
    // At most 15 characters; the last octet's four-byte copy starts at 12 at the latest.
    let mut buf = [0u8; 20];
    let mut i = octet(&mut buf, 0, a);
    buf[i] = b'.';
    i = octet(&mut buf, i + 1, b);
    buf[i] = b'.';
    i = octet(&mut buf, i + 1, c);
    buf[i] = b'.';
    i = octet(&mut buf, i + 1, d);
    put(out, &buf, i);
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
mod tests {
    use super::*;

    #[test]
    fn numbers_and_addresses() {
        let mut v = Vec::new();
        dec(&mut v, 0);
        s(&mut v, " ");
        dec(&mut v, u64::MAX);
        s(&mut v, " ");
        dec_pad(&mut v, 7, 2);
        s(&mut v, " ");
        hex(&mut v, 0x2a);
        s(&mut v, " ");
        hex_pad(&mut v, 0xc0, 2, true);
        s(&mut v, " ");
        hex_pad(&mut v, 0xabc, 8, false);
        s(&mut v, " ");
        colon_hex(&mut v, &[0, 0x1b, 0xff]);
        s(&mut v, " ");
        ipv6_full(&mut v, "2001:db8::1".parse().expect("addr"));
        assert_eq!(
            String::from_utf8(v).expect("utf8"),
            "0 18446744073709551615 07 2a C0 00000abc 00:1b:ff 2001:0db8:0000:0000:0000:0000:0000:0001"
        );
    }

    /// Appended one after the other into one growing vector (no spare capacity to start
    /// with, then whatever growth left): every value lands after the previous one, whole.
    #[test]
    fn appends_after_what_is_there_across_growth() {
        let mut v = Vec::new();
        let mut want = String::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..20_000u64 {
            let r = rng(&mut x);
            let n = if i % 3 == 0 { r % 100 } else { r >> (r % 64) };
            dec(&mut v, n);
            want.push_str(&n.to_string());
            ipv4(&mut v, Ipv4Addr::from(r as u32));
            want.push_str(&Ipv4Addr::from(r as u32).to_string());
            if i % 7 == 0 {
                v.shrink_to_fit();
            }
        }
        assert_eq!(String::from_utf8(v).expect("utf8"), want);
    }

    /// Every length from 0 to 80, after what the vector holds: the bytes land whole, once.
    #[test]
    fn bytes_appends_every_length_whole() {
        let src: Vec<u8> = (0..80u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        for pre in [0usize, 1, 7, 31] {
            for n in 0..=src.len() {
                let mut v = vec![b'-'; pre];
                bytes(&mut v, &src[..n]);
                bytes(&mut v, &src[80 - n..]);
                let mut want = vec![b'-'; pre];
                want.extend_from_slice(&src[..n]);
                want.extend_from_slice(&src[80 - n..]);
                assert_eq!(v, want, "pre {pre} n {n}");
            }
        }
    }

    /// xorshift64*: a fixed-seed stream, so a failure reproduces.
    fn rng(x: &mut u64) -> u64 {
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Each hand-written appender against `core::fmt` (what the formats printed before), on
    /// edge values and a million random ones: numbers of every length, addresses with zero
    /// runs of every length and place, IPv4-mapped and -compatible IPv6.
    #[test]
    fn appenders_write_what_core_fmt_writes() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut edges: Vec<u64> = vec![0, 9, 10, 99, 100, 255, 65_535, u32::MAX as u64, u64::MAX];
        for p in 0..20 {
            let t = 10u64.pow(p);
            edges.extend([t - 1, t, t + 1]);
        }
        let mut v = Vec::new();
        for i in 0..1_000_000u64 {
            let r = rng(&mut x);
            let n = match edges.get(i as usize) {
                Some(&e) => e,
                None => r >> (r % 64),
            };
            let width = (i % 21) as usize;
            v.clear();
            dec(&mut v, n);
            assert_eq!(v, n.to_string().as_bytes());
            v.clear();
            dec_pad(&mut v, n, width);
            assert_eq!(v, format!("{n:0width$}").as_bytes());
            v.clear();
            hex(&mut v, n);
            assert_eq!(v, format!("{n:x}").as_bytes());
            v.clear();
            hex_pad(&mut v, n, width % 17, i % 2 == 0);
            let w = width % 17;
            let want = if i % 2 == 0 {
                format!("{n:0w$X}")
            } else {
                format!("{n:0w$x}")
            };
            assert_eq!(v, want.as_bytes());
            // Addresses: zero groups chosen often, so every run shape occurs.
            let mut seg = [0u16; 8];
            for (k, s) in seg.iter_mut().enumerate() {
                let bits = (r >> (k * 8)) as u16;
                *s = match bits % 4 {
                    0 | 1 => 0,
                    2 => bits >> 8,
                    _ => bits.wrapping_mul(0x9e37),
                };
            }
            if i % 50 == 0 {
                seg[..5].fill(0);
                seg[5] = if i % 100 == 0 { 0xffff } else { 0 };
            }
            let a6 = Ipv6Addr::from(seg);
            v.clear();
            ipv6(&mut v, a6);
            assert_eq!(v, a6.to_string().as_bytes(), "{seg:x?}");
            v.clear();
            ipv6_full(&mut v, a6);
            let full: Vec<String> = seg.iter().map(|g| format!("{g:04x}")).collect();
            assert_eq!(v, full.join(":").as_bytes());
            let bytes = r.to_le_bytes();
            let mac: Vec<u8> = (0..(i % 41) as usize)
                .map(|k| bytes[k % 8] ^ k as u8)
                .collect();
            v.clear();
            colon_hex(&mut v, &mac);
            let want: Vec<String> = mac.iter().map(|x| format!("{x:02x}")).collect();
            assert_eq!(v, want.join(":").as_bytes());
            let a4 = Ipv4Addr::from(r as u32);
            v.clear();
            ipv4(&mut v, a4);
            assert_eq!(v, a4.to_string().as_bytes());
        }
    }
}
