//! Asynchronous, cached, bounded reverse DNS.
//!
//! The kernel logs numbers; names are why fwlog exists, and also its main attack surface: a PTR
//! record is written by whoever owns the address, so for a logged attacker by the attacker.
//!
//! # How the pipeline uses it
//! Packets are printed in order. For each address of a packet the pipeline calls
//! [`Resolver::cached`] (synchronous, no await). On [`Lookup::Miss`] / [`Lookup::Pending`] it
//! calls [`Resolver::start`], which starts the lookup or joins the one already running for that
//! address (one query per address however many packets carry it), and waits on the returned
//! [`PendingLookup`] until the packet's deadline (kernel time + `--dns-timeout`) with
//! [`PendingLookup::wait_until`]. After the deadline the packet prints with what is known; the
//! lookup still finishes and fills the cache. [`Resolver::resolve`] does all of that in one call.
//! When the pending set is full `start` returns `None` (counted as `dropped`) and the packet
//! prints without that name.
//!
//! # Printing names
//! Names reach formatters only as [`SafeName`]: built from raw label bytes, allow-list
//! `A-Za-z0-9-_.`, everything else (the backslash included) escaped as `\DDD` (decimal byte
//! value), at most [`MAX_NAME_LEN`] bytes, with marks `~` (truncated), `?` (failed forward
//! confirmation, `--verify-names`) and `(!ip)` (looks like an IP address) appended by `Display`.
//! The formatter always prints the address beside the name. See `safe_name.rs` for the exact
//! guarantees. hickory's `Name::to_string()` / `to_utf8()` are never used: they decode punycode
//! into raw control bytes.
//!
//! # Caching
//! Keyed by address, positive and negative answers, bounded by `--dns-cache-size` entries.
//! Positive answers live for their TTL (smallest TTL in the answer, CNAME chain included)
//! clamped to [`--dns-min-ttl`, `--dns-max-ttl`]; NXDOMAIN / no-PTR answers for the server's
//! negative TTL clamped to at most `negative_ttl`; failures (timeout, SERVFAIL, malformed) are
//! remembered as "no name" for `error_ttl` so a dead server does not cost every packet its
//! deadline. hickory's own cache is off and `/etc/hosts` is never read (see `config.rs`).
//!
//! # Flags the configuration expects (the CLI wires them)
//! | flag | field | default |
//! |---|---|---|
//! | `--dns-server IP[:PORT]` (repeatable) | `servers` ([`parse_server`]) | `/etc/resolv.conf` nameservers |
//! | `--no-dns` | (the pipeline builds no `Resolver`) | off |
//! | `--dns-timeout DURATION` (per packet) | pipeline deadline | [`DEFAULT_PACKET_TIMEOUT`] = 2 s |
//! | `--dns-query-timeout DURATION` (per try) | `query_timeout` | 500 ms |
//! | `--dns-attempts N` (retries after the first try) | `attempts` | 1 |
//! | `--dns-cache-size N` | `cache_entries` | 65536 |
//! | `--dns-min-ttl DURATION` | `min_ttl` | 60 s |
//! | `--dns-max-ttl DURATION` | `max_ttl` | 3600 s |
//! | `--verify-names` | `verify_names` | off |
//!
//! Not flags (yet): `negative_ttl` 300 s, `error_ttl` 10 s, `max_in_flight` 64,
//! `max_pending` 4096. With the defaults a dead server costs a lookup at most 1 s
//! (2 tries x 500 ms), inside the default 2 s packet deadline.
//!
//! # The printing thread's memo
//! The processing loop asks [`Resolver::check`] with its own [`NameMemo`]: a hit is copied
//! once into the memo, and the loop then borrows names from it for printing, with no lock or
//! reference count per address (see `memo.rs`). A memo entry is a copy of a shared entry with
//! its expiry, and never changes once written: a packet prints the answer that was valid when
//! it entered the window, even if a newer one arrived since. Only when the memo was emptied
//! before the packet printed does it ask the shared cache again, as of the print time, and may
//! then get a newer answer, or none if the shared entry expired or was evicted meanwhile.
//!
//! # Counters
//! [`Resolver::stats`] returns [`DnsStats`], whose `Display` is the one-line SIGUSR1 dump.

mod cache;
mod config;
mod memo;
mod query;
mod resolver;
mod safe_name;
mod stats;

pub use config::{parse_server, DnsConfig, DnsConfigError, DEFAULT_PACKET_TIMEOUT};
pub use memo::{NameMemo, Slot, MEMO_ENTRIES};
pub use resolver::{Check, Lookup, PendingLookup, Resolver};
pub use safe_name::{SafeName, MAX_NAME_LEN};
pub use stats::DnsStats;
