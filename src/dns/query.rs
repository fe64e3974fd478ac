//! One reverse lookup through hickory, reduced to what the cache needs: a safe name or not,
//! for how long, and what kind of outcome it was (for the counters).
//!
//! - Only PTR records count: a CNAME chain (RFC 2317 classless delegation) shows up in the
//!   answers too, but its TTL does bound the answer's lifetime.
//! - Several PTR records: the candidates are ordered by their case-folded raw bytes (stable
//!   whatever order the server rotates them in) and the first is printed; with verification the
//!   first that forward-confirms (up to [`MAX_VERIFY`] are tried), else the first, marked.
//! - The name is turned into a [`SafeName`] from its raw labels, here and nowhere else.

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;

use super::SafeName;

/// Most PTR names forward-checked for one address (each costs one more query).
pub(crate) const MAX_VERIFY: usize = 4;

/// What became of a lookup.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A name, valid for the answer's TTL (smallest TTL in the answer, CNAMEs included).
    Name { name: SafeName, ttl: u32 },
    /// NXDOMAIN; `ttl` is the server's negative TTL (RFC 2308) when it sent an SOA.
    NxDomain { ttl: Option<u32> },
    /// The name exists but has no PTR record.
    NoData { ttl: Option<u32> },
    /// No answer in time.
    Timeout,
    /// Any other failure (SERVFAIL, REFUSED, malformed, I/O); not cached by TTL.
    Error,
}

/// The reverse-lookup name of `ip` (`4.3.2.1.in-addr.arpa.` / nibbles `.ip6.arpa.`), absolute so
/// no search domain is ever appended. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is looked
/// up as the IPv4 address it carries, where its PTR lives.
fn arpa_name(ip: IpAddr) -> Name {
    let mut n = Name::from(ip.to_canonical());
    n.set_fqdn(true);
    n
}

fn sort_key(n: &Name) -> Vec<Vec<u8>> {
    n.iter().map(|l| l.to_ascii_lowercase()).collect()
}

pub(crate) async fn reverse(hickory: &TokioResolver, ip: IpAddr, verify: bool) -> Outcome {
    let lookup = match hickory.lookup(arpa_name(ip), RecordType::PTR).await {
        Ok(l) => l,
        Err(e) => return failure(&e),
    };
    let mut ttl = u32::MAX;
    let mut names: Vec<Name> = Vec::new();
    for r in lookup.answers() {
        ttl = ttl.min(r.ttl);
        if let RData::PTR(p) = &r.data {
            names.push(p.0.clone());
        }
    }
    if names.is_empty() {
        return Outcome::NoData { ttl: None };
    }
    names.sort_by_cached_key(sort_key);
    names.dedup_by(|a, b| sort_key(a) == sort_key(b));
    if verify {
        for n in names.iter().take(MAX_VERIFY) {
            if forward_confirms(hickory, n, ip).await {
                return Outcome::Name {
                    name: SafeName::from_name(n),
                    ttl,
                };
            }
        }
        return Outcome::Name {
            name: SafeName::from_name(&names[0]).into_unverified(),
            ttl,
        };
    }
    Outcome::Name {
        name: SafeName::from_name(&names[0]),
        ttl,
    }
}

/// Does an A (for IPv4) or AAAA (for IPv6) lookup of `name` return `ip`? Any failure is "no".
async fn forward_confirms(hickory: &TokioResolver, name: &Name, ip: IpAddr) -> bool {
    let mut name = name.clone();
    name.set_fqdn(true);
    let ip = ip.to_canonical();
    let rtype = match ip {
        IpAddr::V4(_) => RecordType::A,
        IpAddr::V6(_) => RecordType::AAAA,
    };
    let Ok(lookup) = hickory.lookup(name, rtype).await else {
        return false;
    };
    lookup.answers().iter().any(|r| match (&r.data, ip) {
        (RData::A(a), IpAddr::V4(v4)) => a.0 == v4,
        (RData::AAAA(a), IpAddr::V6(v6)) => a.0 == v6,
        _ => false,
    })
}

fn failure(e: &NetError) -> Outcome {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => {
            if nr.response_code == ResponseCode::NXDomain {
                Outcome::NxDomain {
                    ttl: nr.negative_ttl,
                }
            } else {
                Outcome::NoData {
                    ttl: nr.negative_ttl,
                }
            }
        }
        NetError::Timeout => Outcome::Timeout,
        NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => Outcome::Timeout,
        _ => Outcome::Error,
    }
}

/// How long to remember an outcome, or `None` for "do not cache".
pub(crate) fn cache_ttl(o: &Outcome, cfg: &super::DnsConfig) -> Option<Duration> {
    let clamp = |d: Duration, max: Duration| d.min(max).max(cfg.min_ttl.min(max));
    match o {
        Outcome::Name { ttl, .. } => Some(clamp(Duration::from_secs(u64::from(*ttl)), cfg.max_ttl)),
        Outcome::NxDomain { ttl } | Outcome::NoData { ttl } => {
            let t = ttl.map_or(cfg.negative_ttl, |t| Duration::from_secs(u64::from(t)));
            Some(clamp(t, cfg.negative_ttl))
        }
        Outcome::Timeout | Outcome::Error => (!cfg.error_ttl.is_zero()).then_some(cfg.error_ttl),
    }
}
