//! fwlog: a crash-safe, DNS-resolving firewall logger for Linux.
//!
//! The data flow is capture -> spool -> resolve -> format -> sink -> acknowledge; see
//! `ARCHITECTURE.md` at the repository root for the map of where each piece lives and why.

pub mod app;
pub mod capture;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod counters;
pub mod daemon;
pub mod decode;
pub mod dirfd;
pub mod dns;
pub mod exit;
pub mod format;
pub mod geo;
pub mod hostname;
pub mod metrics;
pub mod netlink;
pub mod nflog;
pub mod packet;
pub mod pcap;
pub mod pipeline;
pub mod privdrop;
pub mod queue;
pub mod report;
pub mod sdnotify;
pub mod signals;
pub mod sink;
pub mod stderr;
pub mod timearg;
