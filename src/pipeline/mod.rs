//! The pipeline after the source: resolve -> format -> outputs -> acknowledge.
//!
//! `fwlog run` feeds it from the spool as intake commits; `fwlog read` from capture files and
//! `fwlog replay` from a spool opened read-only, both through a producer thread and a bounded
//! channel ([`source::ChannelSource`]). Every source hands over NFLOG-shaped records (the spool
//! record format), so one path decodes, resolves, formats and writes them all.

pub mod build;
pub(crate) mod commit;
pub mod loss;
pub mod outputs;
pub mod process;
mod record;
pub mod source;
mod window;

/// The counters moved out of the pipeline (intake updates them too); this path stays for callers.
pub use crate::counters;
