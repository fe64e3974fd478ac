//! Plain configuration for each subcommand: what the command line asked for, already checked
//! and converted, with no clap type in it.
//!
//! The app layer (`crate::app`) builds these once from the parsed command line; everything
//! below it (`daemon`, `cmd`, `pipeline`, the capture and queue sockets) takes them. Defaults
//! that a flag shares with a library type live in that type's `Default` (`DnsConfig`,
//! `NflogConfig`, `QueueConfig`, the spool's `Options`), and the CLI shows them from there.

use std::path::PathBuf;
use std::time::Duration;

use fwlog_spool::Options as SpoolOptions;

use crate::capture::NflogConfig;
use crate::dns::DnsConfig;
use crate::format::{FormatKind, FormatOptions};
use crate::queue::QueueConfig;
use crate::sink::{OutputSpec, Target};

/// Reverse DNS: whether to resolve, how the resolver is set up, and the per-packet deadline.
#[derive(Clone, Debug)]
pub struct DnsSettings {
    /// `None` with `--no-dns`.
    pub resolver: Option<DnsConfig>,
    /// `--dns-timeout`: longest a packet waits for its names (the pipeline's deadline).
    pub packet_timeout: Duration,
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            resolver: Some(DnsConfig::default()),
            packet_timeout: crate::dns::DEFAULT_PACKET_TIMEOUT,
        }
    }
}

/// How lines are written.
#[derive(Clone, Debug)]
pub struct FormatConfig {
    /// `--format`: the default for outputs that name none.
    pub kind: FormatKind,
    pub options: FormatOptions,
    /// `--geoip`, `--asn`: the databases (`options.geo` says whether any is given).
    pub geo: crate::geo::GeoConfig,
}

/// What database outputs store besides the packet (`--host-name`, `--db-payload`,
/// `--db-retain`; see fwlog-sql(5)).
#[derive(Clone, Debug, Default)]
pub struct DbOptions {
    /// The `host` column; `None`: this machine's host name.
    pub host_name: Option<String>,
    pub payload: bool,
    /// Delete rows older than this.
    pub retain: Option<Duration>,
}

/// Where lines go.
#[derive(Clone, Debug)]
pub struct OutputsConfig {
    /// Never empty: the subcommand's default target is filled in.
    pub specs: Vec<OutputSpec>,
    /// fdatasync output files with every batch (off with `--fsync never`, and for read/replay).
    pub sync_files: bool,
    pub db: DbOptions,
}

impl OutputsConfig {
    /// `given`, or `default` when none is given.
    pub fn or_default(given: &[OutputSpec], default: Target, sync_files: bool) -> OutputsConfig {
        let specs = if given.is_empty() {
            vec![OutputSpec {
                format: None,
                target: default,
            }]
        } else {
            given.to_vec()
        };
        OutputsConfig {
            specs,
            sync_files,
            db: DbOptions::default(),
        }
    }

    /// The database files (SQLite), which `--user` is given too.
    pub fn databases(&self) -> impl Iterator<Item = &PathBuf> {
        self.specs.iter().filter_map(|s| match &s.target {
            Target::Sqlite(p) => Some(p),
            _ => None,
        })
    }

    /// The output files, which `--user` is given (a rotating pcap output's files are made
    /// as it goes: its directory must be writable by the user instead).
    pub fn files(&self) -> impl Iterator<Item = &PathBuf> {
        self.specs.iter().filter_map(|s| match &s.target {
            Target::File(p) => Some(p),
            Target::Pcap(p) if !p.rotates() => Some(&p.path),
            _ => None,
        })
    }
}

/// The spool of `fwlog run`.
#[derive(Clone, Debug)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub options: SpoolOptions,
}

/// Where `fwlog run` takes packets from.
#[derive(Clone, Debug)]
pub enum CaptureConfig {
    /// NFLOG groups (`--group`).
    Nflog(NflogConfig),
    /// NFQUEUE audit mode (`--queue`); the config carries `--fail-open`.
    Queue(QueueConfig),
}

/// The processing loop's bounds.
#[derive(Clone, Copy, Debug)]
pub struct LoopConfig {
    /// `--window`: records held in memory between the spool and the outputs (at least 1).
    pub window: usize,
    /// How long shutdown may take to print what is ready.
    pub stop_grace: Duration,
    /// Keep retrying a failed output (the daemon) rather than failing (read, replay).
    pub retry_outputs: bool,
    /// Live, how long the outputs' syncs and the spool's acknowledgement may wait for more
    /// batches to share them (see `pipeline::commit`); zero: one sync per batch.
    pub live_span: Duration,
}

impl LoopConfig {
    /// The daemon's loop: retries outputs, two seconds to finish at stop.
    pub fn daemon(window: usize, live_span: Duration) -> LoopConfig {
        LoopConfig {
            window: window.max(1),
            stop_grace: Duration::from_secs(2),
            retry_outputs: true,
            live_span,
        }
    }

    /// `fwlog read` and `fwlog replay`: an output error ends the run.
    pub fn batch() -> LoopConfig {
        LoopConfig {
            window: 4096,
            stop_grace: Duration::from_millis(200),
            retry_outputs: false,
            live_span: Duration::ZERO,
        }
    }
}

/// `fwlog run`.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub spool: SpoolConfig,
    pub capture: CaptureConfig,
    /// `--batch-records`: most packets per spool commit (NFQUEUE intake batches by it too).
    pub batch_records: usize,
    /// `--batch-delay auto`: NFLOG intake paces its commits with this gap (see
    /// `daemon::intake::pace`); `None`: an explicit delay, applied by the spool writer.
    pub commit_gap: Option<std::time::Duration>,
    pub outputs: OutputsConfig,
    pub format: FormatConfig,
    pub dns: DnsSettings,
    /// `--user`: who to become once everything that needs root is open.
    pub user: Option<String>,
    pub processing: LoopConfig,
    /// `--metrics`: serve the counters for Prometheus here.
    pub metrics: Option<std::net::SocketAddr>,
}

/// How to name an interface that a capture knows only by its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfNames {
    /// `if<N>`.
    Index,
    /// Looked up on this host.
    Host,
}

/// `fwlog read`.
#[derive(Clone, Debug)]
pub struct ReadConfig {
    pub files: Vec<PathBuf>,
    pub ifnames: IfNames,
    pub outputs: OutputsConfig,
    pub format: FormatConfig,
    pub dns: DnsSettings,
}

/// Which spooled packets `fwlog replay` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select {
    Pending,
    Printed,
    All,
}

/// `fwlog replay`.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    pub spool: PathBuf,
    pub select: Select,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
    pub pcap: Option<PathBuf>,
    /// Empty when only `--pcap` is wanted.
    pub outputs: OutputsConfig,
    pub format: FormatConfig,
    pub dns: DnsSettings,
}
