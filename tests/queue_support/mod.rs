//! The NFQUEUE test helpers live in `support::queue`; this path stays for tests that name it
//! (they declare `mod support;` too).
#![allow(unused_imports)]

pub use crate::support::queue::*;
