//! fwlog: a crash-safe, DNS-resolving firewall logger for Linux.
//!
//! The data flow is capture -> spool -> resolve -> format -> sink -> acknowledge; see
//! `ARCHITECTURE.md` at the repository root for the map of where each piece lives and why.

pub mod capture;
pub mod cli;
pub mod cmd;
pub mod daemon;
pub mod decode;
pub mod dns;
pub mod exit;
pub mod format;
pub mod ifname;
pub mod metrics;
pub mod nflog;
pub mod packet;
pub mod pcap;
pub mod pipeline;
pub mod privdrop;
pub mod queue;
pub mod sdnotify;
pub mod sink;
