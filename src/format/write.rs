//! Allocation-free appenders for numbers and addresses (the formatters run per packet).

use std::net::{Ipv4Addr, Ipv6Addr};

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

#[inline]
pub fn s(out: &mut Vec<u8>, v: &str) {
    out.extend_from_slice(v.as_bytes());
}

/// Decimal.
pub fn dec(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Decimal, zero-padded to `width` digits.
pub fn dec_pad(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    let mut m = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    let digits = buf.len() - i;
    let start = buf.len() - digits.max(width.min(20));
    out.extend_from_slice(&buf[start..]);
}

/// Hex without leading zeros (`%x`), lowercase.
pub fn hex(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    let mut m = n;
    loop {
        i -= 1;
        buf[i] = HEX_LOWER[(m & 15) as usize];
        m >>= 4;
        if m == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Hex zero-padded to `width` digits (`%0Nx` / `%0NX`).
pub fn hex_pad(out: &mut Vec<u8>, n: u64, width: usize, upper: bool) {
    let t = if upper { HEX_UPPER } else { HEX_LOWER };
    let mut buf = [b'0'; 16];
    let mut i = buf.len();
    let mut m = n;
    loop {
        i -= 1;
        buf[i] = t[(m & 15) as usize];
        m >>= 4;
        if m == 0 {
            break;
        }
    }
    let digits = buf.len() - i;
    let start = buf.len() - digits.max(width.min(16));
    out.extend_from_slice(&buf[start..]);
}

/// Bytes as contiguous uppercase hex (the kernel's `OPT (...)`).
pub fn hex_bytes_upper(out: &mut Vec<u8>, b: &[u8]) {
    for &x in b {
        out.push(HEX_UPPER[(x >> 4) as usize]);
        out.push(HEX_UPPER[(x & 15) as usize]);
    }
}

/// Bytes as contiguous lowercase hex.
pub fn hex_bytes(out: &mut Vec<u8>, b: &[u8]) {
    for &x in b {
        out.push(HEX_LOWER[(x >> 4) as usize]);
        out.push(HEX_LOWER[(x & 15) as usize]);
    }
}

/// Bytes as `aa:bb:cc` (the kernel's `MAC=` and `%pM`).
pub fn colon_hex(out: &mut Vec<u8>, b: &[u8]) {
    for (i, &x) in b.iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        out.push(HEX_LOWER[(x >> 4) as usize]);
        out.push(HEX_LOWER[(x & 15) as usize]);
    }
}

pub fn ipv4(out: &mut Vec<u8>, a: Ipv4Addr) {
    for (i, o) in a.octets().iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        dec(out, *o as u64);
    }
}

/// Fully expanded IPv6 (the kernel's `%pI6`): eight zero-padded lowercase groups.
pub fn ipv6_full(out: &mut Vec<u8>, a: Ipv6Addr) {
    for (i, g) in a.segments().iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        hex_pad(out, *g as u64, 4, false);
    }
}

/// Compressed IPv6 (RFC 5952, what `Ipv6Addr`'s Display prints).
pub fn ipv6(out: &mut Vec<u8>, a: Ipv6Addr) {
    use std::io::Write;
    // Display for Ipv6Addr writes into the Vec directly; writing to a Vec cannot fail.
    let _ = write!(out, "{a}");
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
}
