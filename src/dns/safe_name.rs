//! [`SafeName`]: a DNS name made safe to print in a log line.
//!
//! A PTR name is chosen by whoever controls the reverse zone of an address, so for a logged
//! attacker by the attacker. DNS labels are arbitrary bytes: newline, CR, ESC, NUL, spaces,
//! parentheses, non-ASCII, and `xn--` labels that hickory's `Name::to_string()` / `to_utf8()`
//! punycode-decode into raw control characters. So the text here is built from the raw label
//! bytes (`Name::iter()`), never from hickory's string conversions.
//!
//! Invariants of [`SafeName::as_str`]:
//! - every byte is one of `A-Z a-z 0-9 - _ .` or part of an escape `\DDD`;
//! - `\DDD` is a backslash and exactly three decimal digits giving the byte value (000-255),
//!   the DNS master-file convention that `dig` and zone files use; the backslash itself is never
//!   printed bare (it is written `\092`), so an escape is always unambiguous;
//! - a `.` byte *inside* a label is escaped (`\046`); a bare `.` is always a label separator;
//! - the trailing root dot is not printed (`host.example`); the root name alone prints as `.`;
//! - at most [`MAX_NAME_LEN`] bytes; a longer name is cut at an escape boundary and flagged as
//!   truncated;
//! - internationalised names stay in their ASCII `xn--` form (never decoded).
//!
//! Flags, and how [`Display`](std::fmt::Display) shows them (appended in this order; none of the
//! mark characters `~ ? ( ) !` can occur in the text, so a mark can never be forged by a name):
//! - truncated: `~`              e.g. `aaaa.bbbb~`
//! - unverified (forward confirmation with `--verify-names` did not find the address): `?`
//! - looks like an IP address: `(!ip)`   e.g. `1.2.3.4(!ip)`, `10.0.0.1.evil.example(!ip)`
//!
//! Formatters that want fields separately (JSON) use `as_str()` and the flag accessors.

use std::fmt;
use std::sync::Arc;

/// Longest text a [`SafeName`] holds, in bytes (the longest presentation-form DNS name).
pub const MAX_NAME_LEN: usize = 253;

const F_IP_LOOKALIKE: u8 = 1;
const F_UNVERIFIED: u8 = 2;
const F_TRUNCATED: u8 = 4;

/// A printable, escaped, length-capped DNS name plus marks. Cheap to clone (one `Arc`).
/// See the module docs for the exact guarantees.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SafeName {
    text: Arc<str>,
    flags: u8,
    /// `text` with its marks, made once per answer so printing a packet allocates nothing
    /// (the same allocation as `text` when there is no mark).
    shown: Arc<str>,
}

/// The printed form: the name, then its marks.
fn with_marks(text: &Arc<str>, flags: u8) -> Arc<str> {
    if flags == 0 {
        return Arc::clone(text);
    }
    let mut s = String::with_capacity(text.len() + 7);
    s.push_str(text);
    if flags & F_TRUNCATED != 0 {
        s.push('~');
    }
    if flags & F_UNVERIFIED != 0 {
        s.push('?');
    }
    if flags & F_IP_LOOKALIKE != 0 {
        s.push_str("(!ip)");
    }
    Arc::from(s)
}

/// True for the bytes that pass unescaped inside a label.
fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

impl SafeName {
    /// Build from raw label bytes, most specific label first (what `Name::iter()` yields).
    pub fn from_labels<'a, I>(labels: I) -> SafeName
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut text = String::with_capacity(64);
        let mut truncated = false;
        let mut piece = [0u8; 4];
        'labels: for (i, label) in labels.into_iter().enumerate() {
            if i > 0 {
                if text.len() + 1 > MAX_NAME_LEN {
                    truncated = true;
                    break;
                }
                text.push('.');
            }
            for &b in label {
                let piece: &[u8] = if allowed(b) {
                    piece[0] = b;
                    &piece[..1]
                } else {
                    piece = [b'\\', b'0' + b / 100, b'0' + (b / 10) % 10, b'0' + b % 10];
                    &piece[..]
                };
                if text.len() + piece.len() > MAX_NAME_LEN {
                    truncated = true;
                    break 'labels;
                }
                // Every byte pushed is ASCII (allow-list, backslash, digits), so this is valid UTF-8.
                for &c in piece {
                    text.push(char::from(c));
                }
            }
        }
        if truncated && text.ends_with('.') {
            // Do not end a cut name with a separator that has no label after it.
            text.pop();
        }
        if text.is_empty() && !truncated {
            text.push('.');
        }
        let mut flags = 0;
        if truncated {
            flags |= F_TRUNCATED;
        }
        if looks_like_ip(&text) {
            flags |= F_IP_LOOKALIKE;
        }
        let text: Arc<str> = Arc::from(text);
        SafeName {
            shown: with_marks(&text, flags),
            text,
            flags,
        }
    }

    /// Build from a hickory name, working from its raw label bytes.
    pub fn from_name(name: &hickory_resolver::proto::rr::Name) -> SafeName {
        SafeName::from_labels(name.iter())
    }

    /// The escaped name without marks (see the module docs for what it may contain).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The name (without trailing dot) parses as an IPv4 address the way `inet_aton` would, or
    /// starts with four decimal labels (`1.2.3.4.evil.example`), so a reader could take it for one.
    pub fn is_ip_lookalike(&self) -> bool {
        self.flags & F_IP_LOOKALIKE != 0
    }

    /// `--verify-names` was on and no A/AAAA record of the name holds the address.
    pub fn is_unverified(&self) -> bool {
        self.flags & F_UNVERIFIED != 0
    }

    /// The name was longer than [`MAX_NAME_LEN`] once escaped and was cut.
    pub fn is_truncated(&self) -> bool {
        self.flags & F_TRUNCATED != 0
    }

    /// The same name marked as failing forward confirmation.
    pub fn into_unverified(mut self) -> SafeName {
        self.flags |= F_UNVERIFIED;
        self.shown = with_marks(&self.text, self.flags);
        self
    }

    /// What `Display` prints: the name and its marks, without allocating.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl fmt::Display for SafeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl AsRef<str> for SafeName {
    /// The escaped text without marks, like [`SafeName::as_str`].
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for SafeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The text is already safe; Debug shows exactly what Display prints.
        write!(f, "SafeName({self})")
    }
}

/// One `inet_aton` number part: decimal, octal (leading 0) or `0x` hex.
fn numeric_part(s: &str) -> bool {
    let b = s.as_bytes();
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return hex.bytes().all(|c| c.is_ascii_hexdigit());
    }
    !b.is_empty() && b.iter().all(u8::is_ascii_digit)
}

/// See [`SafeName::is_ip_lookalike`]. `text` is already escaped, so a `:` (IPv6) never
/// survives unescaped and cannot form an IPv6 look-alike.
fn looks_like_ip(text: &str) -> bool {
    let labels: Vec<&str> = text.split('.').filter(|l| !l.is_empty()).collect();
    if labels.is_empty() {
        return false;
    }
    // Whole name is something inet_aton accepts: 1 to 4 numeric parts (e.g. `2130706433`, `127.1`).
    if labels.len() <= 4 && labels.iter().all(|l| numeric_part(l)) {
        return true;
    }
    // Starts with a dotted quad: `1.2.3.4.evil.example` reads as an address at a glance.
    labels.len() >= 4
        && labels[..4]
            .iter()
            .all(|l| (1..=3).contains(&l.len()) && l.bytes().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(labels: &[&[u8]]) -> SafeName {
        SafeName::from_labels(labels.iter().copied())
    }

    #[test]
    fn plain_names_pass_unchanged() {
        let n = name(&[b"host-1", b"Example_x", b"test"]);
        assert_eq!(n.as_str(), "host-1.Example_x.test");
        assert_eq!(n.to_string(), "host-1.Example_x.test");
        assert!(!n.is_ip_lookalike() && !n.is_truncated() && !n.is_unverified());
    }

    #[test]
    fn everything_else_is_escaped_decimal() {
        let n = name(&[b"a\nb\r\x1b\0 ()\\.\xff", b"xn--a\nfake-gva"]);
        assert_eq!(
            n.as_str(),
            "a\\010b\\013\\027\\000\\032\\040\\041\\092\\046\\255.xn--a\\010fake-gva"
        );
    }

    #[test]
    fn root_prints_as_dot() {
        assert_eq!(name(&[]).as_str(), ".");
    }

    #[test]
    fn long_names_are_cut_at_escape_boundaries() {
        let label = [0x1bu8; 63];
        let n = name(&[&label, &label, &label, &label]);
        assert!(n.is_truncated());
        assert!(n.as_str().len() <= MAX_NAME_LEN);
        // 4 bytes per escape, cut on a boundary: the text is whole escapes only.
        assert_eq!(n.as_str().len() % 4, 0);
        assert!(n.to_string().ends_with('~'));
    }

    #[test]
    fn ip_lookalikes_are_marked() {
        for t in [
            &[&b"1"[..], b"2", b"3", b"4"][..],
            &[b"10", b"0", b"0", b"1", b"evil", b"example"],
            &[b"2130706433"],
            &[b"127", b"1"],
            &[b"0x7f", b"1"],
        ] {
            let n = name(t);
            assert!(n.is_ip_lookalike(), "{n}");
            assert!(n.to_string().ends_with("(!ip)"));
        }
        for t in [
            &[&b"192-168-1-1"[..], b"isp", b"example"][..],
            &[b"host1", b"example"],
            &[b"dead", b"beef"],
        ] {
            assert!(!name(t).is_ip_lookalike());
        }
    }

    #[test]
    fn marks_are_appended_in_documented_order() {
        let n = name(&[b"1", b"2", b"3", b"4"]).into_unverified();
        assert_eq!(n.to_string(), "1.2.3.4?(!ip)");
    }
}
