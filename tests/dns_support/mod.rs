//! The DNS test helpers live in `support::dns`; this path stays for tests that name it.
#![allow(unused_imports)]

#[path = "../support/dns.rs"]
mod dns;
pub use dns::*;
