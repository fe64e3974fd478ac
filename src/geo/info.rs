//! [`GeoInfo`]: what the databases say about one address, made safe to print, and which
//! addresses are looked up at all ([`lookup_worthy`]).
//!
//! Invariants:
//! - every string is built by [`crate::dns::SafeName`] from the database's raw bytes, exactly as
//!   a DNS name is: only `A-Z a-z 0-9 - _` pass, every other byte (space, dot, control, UTF-8)
//!   is `\DDD`, at most 253 bytes (cut ones end in `~`). A database is as untrusted as a PTR
//!   record: whoever builds it chooses its bytes.
//! - latitude and longitude are finite and inside [-90, 90] and [-180, 180], or absent;
//! - an ASN of 0 is absent (no network is announced by AS 0);
//! - [`GeoInfo::rendered`] is output text made from the fields, once, when a formatter first
//!   prints the address; it is only ever filled once the info is final (shared behind the
//!   cache's `Arc`), is never compared, and starts empty in a clone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use crate::dns::SafeName;

/// Country, city, location and autonomous system of one address; every part optional.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GeoInfo {
    /// ISO 3166-1 alpha-2 code (`DE`), escaped.
    pub country_code: Option<SafeName>,
    /// English country name, escaped (`United\032Kingdom`).
    pub country: Option<SafeName>,
    /// English city name, escaped.
    pub city: Option<SafeName>,
    /// Latitude and longitude in degrees.
    pub location: Option<(f64, f64)>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Autonomous system organisation, escaped.
    pub as_org: Option<SafeName>,
    /// The formats' text for these fields, made on first use (see [`Rendered`]).
    pub rendered: Rendered,
}

/// The output text of one [`GeoInfo`], kept beside it in the lookup cache so that a warm
/// address costs a line a copy instead of escaping and number formatting: what to render and
/// how is the formats' business (`src/format/geo.rs`), this is only the slot. It goes with its
/// `GeoInfo`: evicted from the cache with it, and gone with the old databases when SIGHUP
/// replaces them (the cache is emptied then), so it can never show stale data.
#[derive(Default)]
pub struct Rendered(OnceLock<Parts>);

impl Rendered {
    /// The text, made by `make` the first time (every later call returns the same parts).
    pub fn get_or_init(&self, make: impl FnOnce() -> Parts) -> &Parts {
        self.0.get_or_init(make)
    }
}

/// [`PARTS`] byte strings in one allocation.
pub struct Parts {
    text: Box<[u8]>,
    ends: [usize; PARTS],
}

/// How many texts a [`Rendered`] holds.
pub const PARTS: usize = 3;

impl Parts {
    /// The parts, in order.
    pub fn new(parts: [&[u8]; PARTS]) -> Parts {
        let mut text = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0; PARTS];
        for (end, p) in ends.iter_mut().zip(parts) {
            text.extend_from_slice(p);
            *end = text.len();
        }
        Parts {
            text: text.into_boxed_slice(),
            ends,
        }
    }

    /// Part `i` (empty for `i >= PARTS`).
    #[inline]
    pub fn get(&self, i: usize) -> &[u8] {
        let start = match i {
            0 => 0,
            _ => self.ends.get(i - 1).copied().unwrap_or(self.text.len()),
        };
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.text.get(start..end).unwrap_or_default()
    }
}

/// A clone renders again: its fields may be changed before it is printed.
impl Clone for Rendered {
    fn clone(&self) -> Rendered {
        Rendered::default()
    }
}

/// A cache, not data: two infos with the same fields are equal whatever was rendered.
impl PartialEq for Rendered {
    fn eq(&self, _: &Rendered) -> bool {
        true
    }
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Rendered(..)"
        } else {
            "Rendered(-)"
        })
    }
}

impl GeoInfo {
    /// True when no database knew anything about the address.
    pub fn is_empty(&self) -> bool {
        self == &GeoInfo::default()
    }

    /// Whether any of the country, city or location parts is known.
    pub fn has_place(&self) -> bool {
        self.country_code.is_some()
            || self.country.is_some()
            || self.city.is_some()
            || self.location.is_some()
    }
}

/// A string from a database, escaped like a one-label DNS name; empty strings are absent.
pub fn safe_text(raw: Option<&str>) -> Option<SafeName> {
    let raw = raw?;
    if raw.is_empty() {
        return None;
    }
    Some(SafeName::from_labels(std::iter::once(raw.as_bytes())))
}

/// A coordinate pair when both are finite and in range.
pub fn location(lat: Option<f64>, lon: Option<f64>) -> Option<(f64, f64)> {
    let (lat, lon) = (lat?, lon?);
    let ok = lat.is_finite()
        && lon.is_finite()
        && (-90.0..=90.0).contains(&lat)
        && (-180.0..=180.0).contains(&lon);
    ok.then_some((lat, lon))
}

/// False for addresses no public database places: private, shared (CGNAT), loopback,
/// link-local, documentation, benchmarking, multicast, unspecified, broadcast and reserved
/// ranges. IPv4-mapped IPv6 addresses are judged (and looked up) as IPv4.
pub fn lookup_worthy(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(a) => v4_worthy(a),
        IpAddr::V6(a) => v6_worthy(a),
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`; anything else unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn v4_worthy(a: Ipv4Addr) -> bool {
    let o = a.octets();
    !(a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_documentation()
        || a.is_multicast()
        || a.is_broadcast()
        || a.is_unspecified()
        || o[0] == 0
        // 100.64.0.0/10 shared address space (carrier-grade NAT)
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        // 192.0.0.0/24 protocol assignments, 198.18.0.0/15 benchmarking, 240.0.0.0/4 reserved
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        || o[0] >= 240)
}

fn v6_worthy(a: Ipv6Addr) -> bool {
    let s = a.segments();
    !(a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local, 2001:db8::/32 and 3fff::/20 documentation
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] & 0xfff0) == 0x3ff0
        // 64:ff9b:1::/48 local-use NAT64, ::/96 IPv4-compatible (deprecated), 100::/64 discard
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1)
        || s[..6] == [0; 6]
        || (s[0] == 0x100 && s[1..4] == [0; 3]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worthy(s: &str) -> bool {
        lookup_worthy(s.parse().unwrap())
    }

    #[test]
    fn public_addresses_are_looked_up() {
        for a in [
            "81.2.69.160",
            "8.8.8.8",
            "2a02:ec0::1",
            "::ffff:81.2.69.160",
            "100.128.0.1",
        ] {
            assert!(worthy(a), "{a}");
        }
    }

    #[test]
    fn local_and_documentation_ranges_are_not() {
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.1.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.5",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "240.0.0.1",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "2001:db8::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:192.0.2.1",
            "3fff::1",
        ] {
            assert!(!worthy(a), "{a}");
        }
    }

    #[test]
    fn hostile_strings_are_escaped_like_dns_names() {
        let n = safe_text(Some("Evil\n[US AS1] \u{1b}[31m.x")).unwrap();
        assert_eq!(
            n.shown(),
            "Evil\\010\\091US\\032AS1\\093\\032\\027\\09131m\\046x"
        );
        assert!(safe_text(Some("")).is_none());
        let long = "é".repeat(300);
        let n = safe_text(Some(&long)).unwrap();
        assert!(n.is_truncated() && n.shown().ends_with('~'));
    }

    #[test]
    fn bad_coordinates_are_dropped() {
        assert_eq!(location(Some(52.5), Some(13.4)), Some((52.5, 13.4)));
        assert_eq!(location(Some(f64::NAN), Some(1.0)), None);
        assert_eq!(location(Some(91.0), Some(1.0)), None);
        assert_eq!(location(Some(1.0), Some(f64::INFINITY)), None);
        assert_eq!(location(Some(1.0), None), None);
    }
}
