//! The one escaper every untrusted byte string passes through (prefix, interface names, DNS
//! names, names read from /etc files).
//!
//! Allow-list: printable ASCII 0x20..=0x7e except the backslash pass unchanged; every other
//! byte (controls, newline, ESC, DEL, backslash, bytes >= 0x80) becomes `\xNN` (lowercase hex).
//! This is exactly how the kernel's /dev/kmsg shows unprintable bytes, so a kernel-format line
//! for a hostile prefix matches what `dmesg` shows, and no byte that a terminal or a line-based
//! parser interprets can reach the output. The backslash is escaped so the escaping is
//! reversible (and so `\x0a` in the input cannot pose as an escaped newline).

use super::NameText;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// [`allowed`] as a table (every byte of every prefix and interface name is checked).
static ALLOWED: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = b >= 0x20 && b <= 0x7e && b != b'\\' as usize;
        b += 1;
    }
    t
};

/// [`allowed`] without `"` (the bytes [`escape_quoted_into`] passes unchanged).
static ALLOWED_IN_QUOTES: [bool; 256] = {
    let mut t = ALLOWED;
    t[b'"' as usize] = false;
    t
};

/// Whether `table` allows every byte of `s`: eight lookups combined without a branch per byte
/// (nearly every string passes whole, so an early exit per byte only costs time).
#[inline]
fn all_allowed(s: &[u8], table: &[bool; 256]) -> bool {
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let mut ok = true;
        for &b in c {
            ok &= table[usize::from(b)];
        }
        if !ok {
            return false;
        }
    }
    chunks
        .remainder()
        .iter()
        .fold(true, |ok, &b| ok & table[usize::from(b)])
}

/// True for bytes that pass unchanged.
#[inline]
pub fn allowed(b: u8) -> bool {
    ALLOWED[usize::from(b)]
}

/// Append `s` escaped. Returns how many bytes the escaping added (3 per escaped byte).
#[inline]
pub fn escape_into(out: &mut Vec<u8>, s: &[u8]) -> usize {
    // Nearly every string needs no escape: one check, one copy.
    if all_allowed(s, &ALLOWED) {
        super::write::bytes(out, s);
        return 0;
    }
    let mut extra = 0;
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        if !allowed(b) {
            out.extend_from_slice(&s[start..i]);
            out.extend_from_slice(&[b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
            extra += 3;
            start = i + 1;
        }
    }
    out.extend_from_slice(&s[start..]);
    extra
}

/// A path for a message on stderr, escaped like every untrusted byte string: a file name
/// planted with a newline or ESC cannot forge a line or drive the terminal.
pub fn path(p: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    escape_into(&mut out, p.as_os_str().as_bytes());
    String::from_utf8_lossy(&out).into_owned()
}

/// Bytes a DNS name may carry as the resolver hands it over (`crate::dns::SafeName`'s text and
/// marks): letters, digits, `-`, `.`, `_`, the backslash that starts its `\DDD` escapes, and the
/// marks `~`, `?`, `(!ip)`. The resolver has escaped everything else already; escaping its
/// backslashes again would only garble the name.
#[inline]
pub fn name_allowed(b: u8) -> bool {
    NAME_ALLOWED[usize::from(b)]
}

/// Whether every byte of `s` is [`name_allowed`].
#[inline]
fn all_name_allowed(s: &[u8]) -> bool {
    all_allowed(s, &NAME_ALLOWED)
}

/// [`name_allowed`] as a table (every byte of every resolved name is checked).
static NAME_ALLOWED: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'_' | b'\\' | b'~' | b'?' | b'(' | b')' | b'!'
            );
        b += 1;
    }
    t
};

/// Append a resolved name: bytes outside [`name_allowed`] (which a name from the resolver never
/// has) are still escaped as `\xNN`, so nothing else can reach the output.
pub fn escape_name_into(out: &mut Vec<u8>, s: &[u8]) {
    if all_name_allowed(s) {
        super::write::bytes(out, s);
        return;
    }
    for &b in s {
        if name_allowed(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
    }
}

/// Append ` (NAME)`, a resolved name in parentheses, escaped as [`escape_name_into`] does. A
/// [`NameText::Safe`] name is copied as it is: its type guarantees every byte is
/// [`name_allowed`] (checked in debug builds), so the check would find nothing to escape.
#[inline]
pub fn name_text_framed(out: &mut Vec<u8>, n: NameText<'_>) {
    match n {
        NameText::Safe(n) => {
            let b = n.shown().as_bytes();
            debug_assert!(all_name_allowed(b), "{b:?}");
            super::write::framed(out, " (", b, ")");
        }
        NameText::Text(t) => {
            super::write::s(out, " (");
            escape_name_into(out, t.as_bytes());
            super::write::s(out, ")");
        }
    }
}

/// `key` (a literal), then `s` escaped as [`escape_into`] does: one append when `s` needs no
/// escape (an interface name).
#[inline(always)]
pub fn escape_after(out: &mut Vec<u8>, key: &str, s: &[u8]) {
    if all_allowed(s, &ALLOWED) {
        super::write::framed(out, key, s, "");
        return;
    }
    super::write::s(out, key);
    escape_into(out, s);
}

/// `key` and `tail` (literals) around `s` escaped as [`escape_quoted_into`] does: one append
/// when `s` needs no escape (the prefix between its quotes).
#[inline(always)]
pub fn escape_quoted_framed(out: &mut Vec<u8>, key: &str, s: &[u8], tail: &str) {
    if all_allowed(s, &ALLOWED_IN_QUOTES) {
        super::write::framed(out, key, s, tail);
        return;
    }
    super::write::s(out, key);
    escape_quoted_into(out, s);
    super::write::s(out, tail);
}

/// Like [`escape_into`], also escaping `"` (for values printed inside double quotes).
pub fn escape_quoted_into(out: &mut Vec<u8>, s: &[u8]) {
    if all_allowed(s, &ALLOWED_IN_QUOTES) {
        super::write::bytes(out, s);
        return;
    }
    for chunk in s.split_inclusive(|&b| b == b'"') {
        match chunk.split_last() {
            Some((&b'"', head)) => {
                escape_into(out, head);
                out.extend_from_slice(b"\\x22");
            }
            _ => {
                escape_into(out, chunk);
            }
        }
    }
}

/// Display adapter producing the escaped form (used to feed serde_json without allocating:
/// serde_json's `collect_str` escapes what this writes, so the JSON value is the escaped text).
pub struct Escaped<'a>(pub &'a [u8]);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        let mut start = 0;
        for (i, &b) in s.iter().enumerate() {
            if !allowed(b) {
                // Safe: everything in s[start..i] is printable ASCII.
                f.write_str(std::str::from_utf8(&s[start..i]).map_err(|_| std::fmt::Error)?)?;
                let esc = [b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]];
                f.write_str(std::str::from_utf8(&esc).map_err(|_| std::fmt::Error)?)?;
                start = i + 1;
            }
        }
        f.write_str(std::str::from_utf8(&s[start..]).map_err(|_| std::fmt::Error)?)
    }
}

impl serde::Serialize for Escaped<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_bytes_are_escaped_and_printables_kept() {
        let mut v = Vec::new();
        let extra = escape_into(&mut v, b"a b\n\x1b[31m\\\x7f\xff\"");
        assert_eq!(v, b"a b\\x0a\\x1b[31m\\x5c\\x7f\\xff\"".to_vec());
        assert_eq!(extra, 15);
        let mut q = Vec::new();
        escape_quoted_into(&mut q, b"x\"y\"");
        assert_eq!(q, b"x\\x22y\\x22".to_vec());
        assert_eq!(Escaped(b"\x00ok").to_string(), "\\x00ok");
        for b in 0..=255u8 {
            assert_eq!(
                name_allowed(b),
                b.is_ascii_alphanumeric() || b"-._\\~?()!".contains(&b)
            );
            let mut o = Vec::new();
            escape_into(&mut o, &[b]);
            assert!(o.iter().all(|&c| allowed(c) || c == b'\\'));
        }
    }

    /// Every length around the eight-byte steps, with one byte that must be escaped at every
    /// position: the name escaper agrees with escaping byte by byte.
    #[test]
    fn name_check_finds_a_bad_byte_anywhere() {
        for len in 0..40 {
            let clean: Vec<u8> = (0..len).map(|i| b"ab-._9\\~?"[i % 9]).collect();
            let mut o = Vec::new();
            escape_name_into(&mut o, &clean);
            assert_eq!(o, clean);
            for at in 0..len {
                for bad in [b' ', b'\n', 0x1b, 0xff, b'"'] {
                    let mut s = clean.clone();
                    s[at] = bad;
                    let mut o = Vec::new();
                    escape_name_into(&mut o, &s);
                    let mut want = Vec::new();
                    for &b in &s {
                        if name_allowed(b) {
                            want.push(b);
                        } else {
                            want.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                        }
                    }
                    assert_eq!(o, want, "len {len} at {at} byte {bad}");
                }
            }
        }
    }

    /// What makes copying a [`NameText::Safe`] name without a check sound: whatever bytes its
    /// labels hold (every byte value, dots inside labels, names cut short, names that look like
    /// addresses, the unverified mark), a `SafeName`'s printed form passes the name check, so
    /// both paths print the same bytes.
    #[test]
    fn safe_names_need_no_escape() {
        use crate::dns::SafeName;
        let every: Vec<u8> = (0..=255u8).collect();
        let long = vec![0xffu8; 300];
        let cases: Vec<Vec<&[u8]>> = vec![
            vec![&every[..]],
            vec![&every[..128], &every[128..]],
            vec![b"a.b", b"\\", b"(x)~?!"],
            vec![&long[..], b"example"],
            vec![b"1", b"2", b"3", b"4", b"evil"],
            vec![b"10", b"0", b"0", b"1"],
            vec![],
        ];
        for labels in cases {
            for n in [
                SafeName::from_labels(labels.iter().copied()),
                SafeName::from_labels(labels.iter().copied()).into_unverified(),
            ] {
                let b = n.shown().as_bytes();
                assert!(all_name_allowed(b), "{b:?}");
                let (mut fast, mut checked) = (Vec::new(), b" (".to_vec());
                name_text_framed(&mut fast, NameText::Safe(&n));
                escape_name_into(&mut checked, b);
                checked.push(b')');
                assert_eq!(fast, checked);
            }
        }
    }

    /// The same for the general and the quoted escaper: a byte to escape at every position of
    /// every length around the eight-byte steps is found, and escaped as byte by byte.
    #[test]
    fn general_checks_find_a_bad_byte_anywhere() {
        let by_byte = |s: &[u8], quote: bool| {
            let mut want = Vec::new();
            for &b in s {
                if allowed(b) && !(quote && b == b'"') {
                    want.push(b);
                } else {
                    want.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                }
            }
            want
        };
        for len in 0..40 {
            let clean: Vec<u8> = (0..len).map(|i| b"ab -._9~?("[i % 10]).collect();
            for at in 0..=len {
                for bad in [b'\\', b'\n', 0x1b, 0x7f, 0xff, b'"'] {
                    let mut s = clean.clone();
                    if at < len {
                        s[at] = bad;
                    }
                    let mut o = Vec::new();
                    let extra = escape_into(&mut o, &s);
                    assert_eq!(o, by_byte(&s, false), "len {len} at {at} byte {bad}");
                    assert_eq!(extra, o.len() - s.len());
                    let mut q = Vec::new();
                    escape_quoted_into(&mut q, &s);
                    assert_eq!(q, by_byte(&s, true), "quoted: len {len} at {at} byte {bad}");
                }
            }
        }
    }
}
