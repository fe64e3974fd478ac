//! JSON string values of untrusted bytes, written straight into the output.
//!
//! Spec: the value is exactly what serde_json writes for the escaped text, where the escaping
//! is the allow-list escaper's ([`super::escape::escape_into`], for prefixes, interface and
//! table names) or the name escaper's ([`super::escape::escape_name_into`], for resolved
//! names). Either escaped text is printable ASCII, so of JSON's escapes only `\"` and `\\`
//! can occur; the two steps are fused here, with no temporary string, and a value whose bytes
//! all pass unchanged (nearly every one) is copied in one go.

use super::escape::{allowed, name_allowed};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bytes the allow-list escaper keeps that JSON keeps too (everything but `"`).
static PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c >= 0x20 && c <= 0x7e && c != b'\\' && c != b'"';
        b += 1;
    }
    t
};

/// `"` + the escaped `raw` as JSON string content + `"`.
pub fn escaped(out: &mut Vec<u8>, raw: &[u8]) {
    out.push(b'"');
    if raw.iter().all(|&b| PLAIN[usize::from(b)]) {
        out.extend_from_slice(raw);
    } else {
        for &b in raw {
            if b == b'"' {
                out.extend_from_slice(b"\\\"");
            } else if allowed(b) {
                out.push(b);
            } else {
                hex(out, b);
            }
        }
    }
    out.push(b'"');
}

/// `\xNN` for byte `b`, its backslash escaped for JSON.
fn hex(out: &mut Vec<u8>, b: u8) {
    out.extend_from_slice(&[
        b'\\',
        b'\\',
        b'x',
        HEX[(b >> 4) as usize],
        HEX[(b & 15) as usize],
    ]);
}

/// `"` + the name-escaped `raw` as JSON string content + `"`.
pub fn name(out: &mut Vec<u8>, raw: &[u8]) {
    out.push(b'"');
    for &b in raw {
        if b == b'\\' {
            out.extend_from_slice(b"\\\\");
        } else if name_allowed(b) {
            out.push(b);
        } else {
            hex(out, b);
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::super::escape::{escape_into, escape_name_into, Escaped};
    use super::*;

    /// Against the two steps it fuses (escaper, then serde_json), on every byte alone and on
    /// random strings.
    #[test]
    fn same_as_escaping_then_serde_json() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut cases: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b, b'a', b]).collect();
        cases.push(Vec::new());
        cases.push(b"plain-name.example".to_vec());
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 24) as usize;
            let bytes = x.to_le_bytes();
            cases.push((0..n).map(|i| bytes[i % 8].rotate_left(i as u32)).collect());
        }
        for raw in cases {
            let mut got = Vec::new();
            escaped(&mut got, &raw);
            let want = serde_json::to_vec(&Escaped(&raw)).expect("json");
            assert_eq!(got, want, "{raw:?}");
            let mut text = Vec::new();
            escape_into(&mut text, &raw);
            assert_eq!(
                got,
                serde_json::to_vec(&String::from_utf8(text).expect("ascii")).expect("json")
            );
            got.clear();
            name(&mut got, &raw);
            let mut text = Vec::new();
            escape_name_into(&mut text, &raw);
            let want =
                serde_json::to_vec(std::str::from_utf8(&text).expect("ascii")).expect("json");
            assert_eq!(got, want, "{raw:?}");
        }
    }
}
