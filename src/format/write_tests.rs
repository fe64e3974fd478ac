//! Tests of the appenders in `write.rs`: each against `core::fmt` (what the formats printed
//! before), over every value of the small types and a million of the large ones.

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

/// Every u16 (ports, IP IDs, window sizes, lengths), then u32s (sequence numbers, marks):
/// the edges of every length and a million values spread over every length.
#[test]
fn dec_writes_every_u16_and_a_million_u32_as_core_fmt() {
    let mut v = Vec::new();
    for n in 0..=u16::MAX {
        v.clear();
        dec(&mut v, n.into());
        assert_eq!(v, n.to_string().as_bytes());
    }
    let mut edges = vec![u32::MAX, u32::MAX - 1, 99_999_999, 100_000_000, 100_000_001];
    for p in 0..10 {
        let t = 10u32.pow(p);
        edges.extend([t - 1, t, t + 1]);
    }
    let mut x = 0x1234_5678_9abc_def1u64;
    for i in 0..1_000_000usize {
        let r = rng(&mut x);
        let n = match edges.get(i) {
            Some(&e) => e,
            None => (r as u32) >> ((r >> 32) % 32),
        };
        v.clear();
        dec(&mut v, n.into());
        assert_eq!(v, n.to_string().as_bytes());
    }
}

/// The lanes of [`eight_digits`] do not disturb each other (see its doc), so every value
/// of each four-digit lane, beside a few values of the other, covers every input.
#[test]
fn eight_digits_every_lane_value() {
    for v in 0..10_000u32 {
        for other in [0, 1, 99, 100, 4_999, 9_999] {
            for n in [v * 10_000 + other, other * 10_000 + v] {
                assert_eq!(
                    eight_digits(n).to_le_bytes(),
                    format!("{n:08}").as_bytes(),
                    "{n}"
                );
            }
        }
    }
}

/// Addresses that share a slot of the text cache, in turns, and 0.0.0.0 (every slot's
/// first content): each prints its own text whether its slot held it or another.
#[test]
fn ipv4_cache_slots_shared_by_addresses() {
    let slot = |a: u32| a.wrapping_mul(0x9e37_79b1) >> 24;
    let first = 0x0a00_0001u32;
    let same: Vec<u32> = (first..)
        .filter(|&a| slot(a) == slot(first))
        .take(4)
        .collect();
    let mut v = Vec::new();
    for round in 0..3 {
        for &a in same.iter().chain(&[0, 0xffff_ffff, 0x0101_0101]) {
            let a = Ipv4Addr::from(a);
            v.clear();
            ipv4(&mut v, a);
            assert_eq!(v, a.to_string().as_bytes(), "round {round}");
        }
    }
}

/// Every octet value in every position of an address, beside short and long neighbours.
#[test]
fn ipv4_every_octet_in_every_position() {
    let mut v = Vec::new();
    for o in 0..=255u8 {
        for other in [0u8, 7, 10, 99, 100, 255] {
            for at in 0..4 {
                let mut b = [other; 4];
                b[at] = o;
                let a = Ipv4Addr::from(b);
                v.clear();
                ipv4(&mut v, a);
                assert_eq!(v, a.to_string().as_bytes());
            }
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
        // The one-append forms: a key, then the number or address as above.
        v.clear();
        key_dec(&mut v, ", seq_global ", n);
        assert_eq!(v, format!(", seq_global {n}").as_bytes());
        v.clear();
        key_dec(&mut v, "PKT (replayed): mark ", n);
        assert_eq!(v, format!("PKT (replayed): mark {n}").as_bytes());
        v.clear();
        key_hex(&mut v, ", seq 0x", n, w);
        assert_eq!(v, format!(", seq 0x{n:0w$x}").as_bytes());
    }
}

/// `framed`: every length of the middle part around the one-append limit, after what the
/// vector holds, with keys and tails of every size it takes in one append and beyond.
#[test]
fn framed_writes_key_bytes_tail_whole() {
    let src: Vec<u8> = (0..80u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    let mut x = 7u64;
    for pre in [0usize, 1, 31] {
        for n in 0..=src.len() {
            let mut v = vec![b'-'; pre];
            framed(&mut v, ", physoutdev ", &src[..n], "\"\n");
            framed(&mut v, "", &src[80 - n..], "");
            framed(&mut v, "a key of seventeen", &src[..n], "a tail of nine");
            let mut want = vec![b'-'; pre];
            want.extend_from_slice(b", physoutdev ");
            want.extend_from_slice(&src[..n]);
            want.extend_from_slice(b"\"\n");
            want.extend_from_slice(&src[80 - n..]);
            want.extend_from_slice(b"a key of seventeen");
            want.extend_from_slice(&src[..n]);
            want.extend_from_slice(b"a tail of nine");
            assert_eq!(v, want, "pre {pre} n {n}");
            if rng(&mut x).is_multiple_of(2) {
                v.shrink_to_fit();
            }
        }
    }
    // The most one append takes (16 + 32 + 8 = 56 bytes), into a vector with no spare room.
    let mut v = b"x".to_vec();
    v.shrink_to_fit();
    framed(&mut v, "sixteen byte key", &src[..32], "8 bytes!");
    let mut want = b"xsixteen byte key".to_vec();
    want.extend_from_slice(&src[..32]);
    want.extend_from_slice(b"8 bytes!");
    assert_eq!(v, want);
}
