//! Interface index -> name, cached, resolved in the capture socket's network namespace; the
//! one place fwlog asks the kernel for an interface's name (`fwlog read --ifnames` uses
//! [`index_to_name`]).
//!
//! NFLOG gives interface *indexes*; names must be taken at receive time because interfaces
//! come and go. A lookup is one `ioctl(SIOCGIFNAME)` on a socket of our own, which resolves in
//! the namespace the socket was created in (not the calling thread's current one), so a cache
//! created next to the NFLOG socket stays right even if the thread later moves.
//!
//! Staleness policy: an entry (a name, or "no such interface") is trusted for `ttl` (1 s by
//! default) and re-checked with one ioctl on the first use after that. A deleted interface
//! whose index is reused by a new one is thus misnamed for at most `ttl`, and the cost is one
//! syscall per interface per second however high the packet rate. Subscribing to RTNLGRP_LINK
//! would shorten the window but adds a second socket to the receive loop, and cannot close the
//! window anyway: a record is logged before we read it, so a rename between the two is
//! invisible to either approach.
//!
//! The cache is a short vector searched linearly (a firewall sees a handful of interfaces);
//! it is emptied if it ever reaches [`MAX_ENTRIES`], so a flood of distinct indexes cannot grow
//! it without bound.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Most entries kept before the cache starts over.
pub const MAX_ENTRIES: usize = 1024;
const IFNAMSIZ: usize = libc::IFNAMSIZ;

#[derive(Clone, Copy)]
struct Entry {
    index: u32,
    /// Name bytes; `len == 0` means "no interface has this index".
    name: [u8; IFNAMSIZ],
    len: u8,
    /// Trusted until then (checked + ttl): one comparison per use, no clock arithmetic.
    until: Instant,
}

pub struct IfNameCache {
    sock: OwnedFd,
    entries: Vec<Entry>,
    ttl: Duration,
    lookups: u64,
}

impl std::fmt::Debug for IfNameCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IfNameCache")
            .field("entries", &self.entries.len())
            .field("ttl", &self.ttl)
            .field("lookups", &self.lookups)
            .finish()
    }
}

impl IfNameCache {
    /// A cache for the calling thread's current network namespace, entries trusted for 1 s.
    pub fn new() -> io::Result<Self> {
        Self::with_ttl(Duration::from_secs(1))
    }

    pub fn with_ttl(ttl: Duration) -> io::Result<Self> {
        // Any socket will do for SIOCGIFNAME; an AF_UNIX datagram socket exists everywhere.
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(IfNameCache {
            // SAFETY: fd is a freshly created descriptor that nothing else owns.
            sock: unsafe { OwnedFd::from_raw_fd(fd) },
            entries: Vec::with_capacity(16),
            ttl,
            lookups: 0,
        })
    }

    /// Number of ioctl lookups done so far (misses and re-checks).
    pub fn kernel_lookups(&self) -> u64 {
        self.lookups
    }

    /// The name of interface `index`, `None` if no interface has that index (now). `now` is
    /// passed in so a batch of records costs one clock read, not one per record.
    pub fn get(&mut self, index: u32, now: Instant) -> Option<&[u8]> {
        let pos = match self.entries.iter().position(|e| e.index == index) {
            Some(i) if now < self.entries[i].until => i,
            Some(i) => {
                self.entries[i] = self.resolve(index, now);
                i
            }
            None => {
                if self.entries.len() >= MAX_ENTRIES {
                    self.entries.clear();
                }
                let e = self.resolve(index, now);
                self.entries.push(e);
                self.entries.len() - 1
            }
        };
        let e = &self.entries[pos];
        (e.len > 0).then(|| &e.name[..e.len as usize])
    }

    fn resolve(&mut self, index: u32, now: Instant) -> Entry {
        self.lookups += 1;
        let mut e = Entry {
            index,
            name: [0; IFNAMSIZ],
            len: 0,
            until: now.checked_add(self.ttl).unwrap_or(now),
        };
        let Ok(idx) = libc::c_int::try_from(index) else {
            return e;
        };
        // SAFETY: ifreq is plain data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        req.ifr_ifru.ifru_ifindex = idx;
        // SAFETY: SIOCGIFNAME reads ifr_ifindex and writes ifr_name within the struct we own.
        let rc = unsafe { libc::ioctl(self.sock.as_raw_fd(), libc::SIOCGIFNAME, &mut req) };
        if rc == 0 {
            for (i, &c) in req.ifr_name.iter().enumerate() {
                if c == 0 {
                    break;
                }
                e.name[i] = c as u8;
                e.len = i as u8 + 1;
            }
        }
        // ENODEV (index unknown) and any other failure leave the entry empty: the record keeps
        // its index and simply has no name TLV.
        e
    }
}

/// The name of interface `index` in the calling thread's network namespace, if one has that
/// index now (a cache of its own, for callers that look each index up once).
pub fn index_to_name(index: u32) -> Option<Vec<u8>> {
    let mut cache = IfNameCache::new().ok()?;
    cache.get(index, Instant::now()).map(<[u8]>::to_vec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_index_1_and_hits_are_cached() {
        let mut c = IfNameCache::new().expect("socket");
        let now = Instant::now();
        assert_eq!(c.get(1, now), Some(&b"lo"[..]));
        assert_eq!(c.get(1, now), Some(&b"lo"[..]));
        assert_eq!(c.kernel_lookups(), 1);
        // An index nobody has: cached as absent, too.
        assert_eq!(c.get(0x7fff_fff0, now), None);
        assert_eq!(c.get(0x7fff_fff0, now), None);
        assert_eq!(c.kernel_lookups(), 2);
        // After the ttl, one re-check.
        let later = now + Duration::from_secs(2);
        assert_eq!(c.get(1, later), Some(&b"lo"[..]));
        assert_eq!(c.kernel_lookups(), 3);
        // Indexes beyond c_int never reach the kernel.
        assert_eq!(c.get(u32::MAX, later), None);
        assert_eq!(index_to_name(1).as_deref(), Some(&b"lo"[..]));
        assert_eq!(index_to_name(0x7fff_fff0), None);
    }
}
