//! Command-line interface (clap derive). This file is the one list of every subcommand and
//! flag: `--help`, the man page and the tests are checked against it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::dns::{DnsConfig, DEFAULT_PACKET_TIMEOUT};

use crate::format::LogFlags;

#[derive(Parser, Debug)]
#[command(
    name = "fwlog",
    version,
    about = "Crash-safe, DNS-resolving firewall logger for Linux",
    long_about = "fwlog receives the packets that nftables or iptables send to an NFLOG group, \
                  spools each one to disk before anything else, resolves its addresses to names \
                  asynchronously, and prints it as a fwlog block, the kernel's LOG line or JSON.",
    after_help = "See fwlog(8) for formats, signals, files and the nft/iptables rules to use."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Log the packets of NFLOG groups: capture -> spool -> resolve -> print -> acknowledge
    Run(Box<RunArgs>),
    /// Print the packets of pcap or pcapng capture files (NFLOG, Ethernet, raw IP, Linux cooked)
    Read(ReadArgs),
    /// Print (or export as pcap) what a spool holds, read-only: it changes nothing
    Replay(ReplayArgs),
    /// Summarise what was logged: totals and loss, prefixes, top sources (with names, country
    /// and AS), ports, countries, a per-hour histogram, scans
    Report(ReportArgs),
    /// Database outputs: `fwlog db init URL` creates or upgrades the schema (run as its owner)
    #[command(subcommand)]
    Db(DbCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Create or upgrade the schema of sqlite:PATH, postgresql://... or mysql://..., as its
    /// owner, so that fwlog can then write with a role that may only INSERT and SELECT.
    /// PostgreSQL: also the daily partitions ahead and a DEFAULT partition (run it daily)
    Init(DbInitArgs),
}

#[derive(Args, Debug)]
pub struct DbInitArgs {
    /// The database, as for --output: sqlite:PATH, postgresql://USER@HOST[:PORT]/DB or
    /// mysql://USER@HOST[:PORT]/DB
    #[arg(value_name = "URL")]
    pub url: String,

    /// PostgreSQL: create the daily partitions of this many days after today
    #[arg(long, value_name = "N", default_value_t = 7,
          value_parser = clap::value_parser!(u32).range(0..=366))]
    pub days_ahead: u32,
}

/// Which spooled packets `fwlog replay` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Select {
    /// Not yet printed by the daemon (what it would print at its next start)
    Pending,
    /// Already printed (kept by --retain or --retain-for)
    Printed,
    /// Both
    All,
}

fn time_arg(s: &str) -> Result<i64, String> {
    crate::timearg::parse_time(s)
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Spool directory to read (a copy from another machine works; nothing in it is changed)
    #[arg(long, value_name = "DIR", default_value = "/var/spool/fwlog")]
    pub spool: PathBuf,

    #[command(flatten)]
    pub fmt: FormatArgs,

    /// Where to print, [FORMAT=]TARGET (repeatable), as for fwlog run. Default: - (stdout),
    /// or nothing when --pcap is given
    #[arg(short = 'o', long = "output", value_name = "[FORMAT=]TARGET")]
    pub outputs: Vec<crate::sink::OutputSpec>,

    #[command(flatten)]
    pub dns: DnsArgs,

    #[command(flatten)]
    pub db: DbArgs,

    /// Only packets logged at or after TIME (RFC 3339, "YYYY-MM-DD HH:MM[:SS]" local, or a
    /// duration ago such as 2h)
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    pub since: Option<i64>,

    /// Only packets logged before TIME
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    pub until: Option<i64>,

    /// Which packets: pending (not yet printed), printed, or all
    #[arg(long, value_enum, default_value_t = Select::All)]
    pub select: Select,

    /// Write the selected packets to FILE as a pcap (LINKTYPE_NFLOG, with prefix, hook, mark,
    /// interfaces, uid/gid and timestamps) for tcpdump and Wireshark
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Where the packets are: spool:DIR (read-only, printed and retained packets alike), a
    /// file of fwlog's JSON lines (- for standard input), sqlite:PATH, postgresql://URL or
    /// mysql://URL (mariadb://; a database fwlog's SQL output wrote)
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<String>,

    /// Only packets logged at or after TIME (RFC 3339, "YYYY-MM-DD HH:MM[:SS]" local, or a
    /// duration ago such as 24h)
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    pub since: Option<i64>,

    /// Only packets logged before TIME
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    pub until: Option<i64>,

    /// Only packets with this log prefix (trailing spaces ignored)
    #[arg(long, value_name = "TEXT")]
    pub prefix: Option<String>,

    /// Only packets from or to this address
    #[arg(long, value_name = "ADDR")]
    pub host: Option<std::net::IpAddr>,

    /// Only packets of this NFLOG group
    #[arg(long, value_name = "N")]
    pub group: Option<u16>,

    /// Only packets from this network (ADDR or ADDR/LEN)
    #[arg(long, value_name = "NET")]
    pub src: Option<String>,

    /// Only packets to this destination port
    #[arg(long, value_name = "N")]
    pub dport: Option<u16>,

    /// Rows per table
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,

    /// Print the report as one JSON object
    #[arg(long)]
    pub json: bool,

    /// Write the report as one self-contained HTML page (world map, timeline, tables) to FILE
    /// instead of printing it
    #[arg(long, value_name = "FILE", conflicts_with = "json")]
    pub html: Option<PathBuf>,

    /// GeoIP database (mmdb) for sources stored without geo fields
    #[arg(long, value_name = "PATH")]
    pub geoip: Option<PathBuf>,

    /// ASN database (mmdb) for sources stored without AS fields
    #[arg(long, value_name = "PATH")]
    pub asn: Option<PathBuf>,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s}: {e} (examples: 2s, 500ms, 1m)"))
}

/// A duration whose default `--help` shows from the library's own default value.
fn shown_duration(s: &str) -> Result<humantime::Duration, String> {
    duration(s).map(Into::into)
}

fn size(s: &str) -> Result<u64, String> {
    parse_size::parse_size(s).map_err(|e| format!("{s}: {e} (examples: 64MiB, 4G, 1500)"))
}

fn host_name(s: &str) -> Result<String, String> {
    crate::sink::sql::check_host_name(s).map_err(|e| e.to_string())
}

/// Flags of the database outputs (`--output sqlite:PATH`; see fwlog-sql(5)).
#[derive(Args, Debug, Clone, Default)]
pub struct DbArgs {
    /// The host column of database rows. Default: this machine's host name
    #[arg(long, value_name = "NAME", value_parser = host_name)]
    pub host_name: Option<String>,

    /// Store each packet's bytes (from the network header on) in database rows
    #[arg(long)]
    pub db_payload: bool,

    /// Delete database rows older than DURATION (30d, 12h): SQLite and MariaDB a chunk at a
    /// time, PostgreSQL whole daily partitions. Default: keep
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub db_retain: Option<Duration>,
}

/// `--fsync`: when the spool calls fdatasync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncArg {
    /// Every group commit (default): nothing accepted is lost to a crash or a power cut.
    Batch,
    /// At most once per interval: a power cut can lose up to that much.
    Interval(Duration),
    /// Leave it to the kernel: survives kill -9, not a power cut.
    Never,
}

/// `--batch-delay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchDelay {
    /// Commit pacing (`daemon::intake::pace`): at once when idle, gathered when busy.
    Auto,
    /// The spool writer's group commit: a batch waits at most this long.
    Fixed(Duration),
}

fn batch_delay_arg(s: &str) -> Result<BatchDelay, String> {
    match s {
        "auto" => Ok(BatchDelay::Auto),
        _ => duration(s)
            .map(BatchDelay::Fixed)
            .map_err(|_| format!("{s}: expected auto or a duration such as 2ms")),
    }
}

fn fsync_arg(s: &str) -> Result<FsyncArg, String> {
    match s {
        "batch" => Ok(FsyncArg::Batch),
        "never" => Ok(FsyncArg::Never),
        _ => duration(s)
            .map(FsyncArg::Interval)
            .map_err(|_| format!("{s}: expected batch, never, or an interval such as 100ms")),
    }
}

/// Reverse-DNS flags (see fwlog(8), DNS).
#[derive(Args, Debug, Clone)]
pub struct DnsArgs {
    /// Do not resolve addresses to names
    #[arg(long)]
    pub no_dns: bool,

    /// Name server to ask, IP[:PORT] (repeatable); default: the nameservers of /etc/resolv.conf
    #[arg(long = "dns-server", value_name = "IP[:PORT]")]
    pub dns_servers: Vec<String>,

    /// Longest a packet waits for its names before it prints with what is known
    #[arg(long, value_name = "DURATION", value_parser = shown_duration,
          default_value_t = DEFAULT_PACKET_TIMEOUT.into())]
    pub dns_timeout: humantime::Duration,

    /// How long one try of one DNS query waits
    #[arg(long, value_name = "DURATION", value_parser = shown_duration,
          default_value_t = DnsConfig::default().query_timeout.into())]
    pub dns_query_timeout: humantime::Duration,

    /// Retries of a DNS query after the first try
    #[arg(long, value_name = "N", default_value_t = DnsConfig::default().attempts)]
    pub dns_attempts: usize,

    /// Addresses kept in the name cache (answers and known non-answers)
    #[arg(long, value_name = "N", default_value_t = DnsConfig::default().cache_entries)]
    pub dns_cache_size: usize,

    /// Shortest time an answer stays cached, whatever its TTL
    #[arg(long, value_name = "DURATION", value_parser = shown_duration,
          default_value_t = DnsConfig::default().min_ttl.into())]
    pub dns_min_ttl: humantime::Duration,

    /// Longest time an answer stays cached, whatever its TTL
    #[arg(long, value_name = "DURATION", value_parser = shown_duration,
          default_value_t = DnsConfig::default().max_ttl.into())]
    pub dns_max_ttl: humantime::Duration,

    /// Forward-confirm names: a name whose A/AAAA records lack the address is marked with `?`
    #[arg(long)]
    pub verify_names: bool,
}

/// The `fwlog run` command line.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// NFLOG group to receive (repeatable): the N of nft `log group N` or iptables
    /// `-j NFLOG --nflog-group N`
    #[arg(
        short = 'g',
        long = "group",
        value_name = "N",
        required_unless_present = "queue",
        conflicts_with = "queue"
    )]
    pub groups: Vec<u16>,

    /// Spool directory: every packet is written here before anything else
    #[arg(long, value_name = "DIR", default_value = "/var/spool/fwlog")]
    pub spool: PathBuf,

    /// Where to print, [FORMAT=]TARGET (repeatable): a file, - (stdout), syslog, udp://HOST:PORT,
    /// tcp://HOST:PORT, or a database, a row per packet: sqlite:PATH, postgresql://USER@HOST/DB,
    /// mysql://USER@HOST/DB (MariaDB/MySQL); FORMAT= (fwlog, kernel, json, ecs)
    /// overrides --format for that output. pcap:PATH or pcap-raw:PATH keep the packets
    /// themselves in a capture file, rotated with ?max-size=100MiB&max-age=1h&keep=24.
    /// Default: /var/log/fwlog
    #[arg(short = 'o', long = "output", value_name = "[FORMAT=]TARGET")]
    pub outputs: Vec<crate::sink::OutputSpec>,

    #[command(flatten)]
    pub fmt: FormatArgs,

    #[command(flatten)]
    pub dns: DnsArgs,

    #[command(flatten)]
    pub db: DbArgs,

    /// When the spool syncs to disk: batch (every group commit), never, or an interval (100ms)
    #[arg(long, value_name = "POLICY", value_parser = fsync_arg, default_value = "batch")]
    pub fsync: FsyncArg,

    /// Group commit: most packets per spool write and sync [default: 2048; 256 with --queue]
    #[arg(long, value_name = "N")]
    pub batch_records: Option<usize>,

    /// Group commit: longest a packet waits for its batch to be written. auto (the default):
    /// at once after a quiet spell; within 8 ms of the last commit, with the kernel's next
    /// datagram. 0: as soon as intake has taken everything the kernel had queued
    #[arg(long, value_name = "DURATION|auto", value_parser = batch_delay_arg, default_value = "auto")]
    pub batch_delay: BatchDelay,

    /// Largest the spool may grow; beyond it new packets are counted as lost and reported
    #[arg(long, value_name = "SIZE", value_parser = size, default_value = "4GiB")]
    pub spool_max: u64,

    /// Keep up to SIZE of already printed packets in the spool for `fwlog replay`, oldest
    /// deleted first; they give way to unprinted packets when the spool is full. Default 0:
    /// delete once printed (unless --retain-for is given)
    #[arg(long, value_name = "SIZE", value_parser = size, default_value = "0")]
    pub retain: u64,

    /// Keep already printed packets in the spool for `fwlog replay` for DURATION after they
    /// were received (e.g. 24h), then delete them (by whole segment: within DURATION/8). With
    /// --retain too, either limit deletes. They give way to unprinted packets when the spool is
    /// full. Default (or 0): not by age
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub retain_for: Option<Duration>,

    /// Size of one spool segment file
    #[arg(long, value_name = "SIZE", value_parser = size, default_value = "64MiB")]
    pub segment_size: u64,

    /// After binding NFLOG and opening the spool and outputs as root, run as this user with no
    /// capabilities left (the spool directory and output files are given to the user)
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,

    /// Packets held in memory between the spool and the outputs (the rest waits on disk)
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub window: usize,

    /// Bytes of each packet to copy from the kernel (from the network header; at most 65535)
    #[arg(long, value_name = "BYTES", default_value_t = 65535)]
    pub copy_range: u32,

    /// Netlink receive buffer (forced with CAP_NET_ADMIN)
    #[arg(long, value_name = "SIZE", value_parser = size, default_value = "64MiB")]
    pub rcvbuf: u64,

    /// Kernel buffer per NFLOG datagram (4096 to 131072)
    #[arg(long, value_name = "BYTES", default_value_t = 131072)]
    pub nlbufsiz: u32,

    /// Packets the kernel queues before it sends a datagram
    #[arg(long, value_name = "N", default_value_t = crate::capture::DEFAULT_QTHRESH)]
    pub qthresh: u32,

    /// Longest a packet waits in the kernel's queue, rounded down to 10ms; 0: until the
    /// kernel's timer next runs, one or two ticks (the kernel's own default is 1s)
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "10ms")]
    pub flush_timeout: Duration,

    // NFQUEUE audit mode: src/queue/ and src/daemon/intake/nfqueue.rs
    /// Audit mode: take packets from NFQUEUE queue N (iptables `-j NFQUEUE --queue-num N`)
    /// instead of NFLOG groups; each packet is let through only once its record is on disk.
    /// Not with --user: the kernel wants CAP_NET_ADMIN for every verdict
    #[arg(long, value_name = "N", conflicts_with = "user")]
    pub queue: Option<u16>,

    /// With --queue: when fwlog cannot keep up (kernel queue or socket full, spool full), let
    /// packets through unlogged (counted and reported as loss) instead of dropping them
    // (conflicts_with too: clap excuses a missing `requires` that conflicts with a given flag)
    #[arg(long, requires = "queue", conflicts_with = "groups")]
    pub fail_open: bool,

    /// Serve the counters in the Prometheus text format at http://ADDR:PORT/metrics (e.g.
    /// 127.0.0.1:9641). Off by default
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<std::net::SocketAddr>,
}

/// `--format` (the library's `FormatKind`, named for clap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// fwlog 0.8's block per packet, extended to every protocol.
    Fwlog,
    /// The kernel LOG target's line, for fail2ban, psad, logwatch.
    Kernel,
    /// One JSON object per line.
    Json,
    /// One JSON object per line in the Elastic Common Schema (fwlog's JSON under `fwlog`).
    Ecs,
}

/// How lines are written: shared by every subcommand that prints packets.
#[derive(Args, Debug, Clone)]
pub struct FormatArgs {
    /// Output format: fwlog blocks, the kernel's LOG line, one JSON object per line, or JSON
    /// in the Elastic Common Schema (ECS 8.11)
    #[arg(short = 'f', long, value_enum, default_value_t = FormatArg::Fwlog)]
    pub format: FormatArg,

    /// Optional kernel-format fields, as nft's `log flags`: a comma list of tcp-sequence,
    /// tcp-options, ip-options, skuid, ether, or all
    #[arg(long, value_name = "FLAGS", default_value = "")]
    pub log_flags: LogFlags,

    /// With --format kernel, leave out the syslog header "Mmm dd HH:MM:SS HOST kernel: "
    #[arg(long)]
    pub no_syslog_header: bool,

    /// GeoIP database (mmdb, City or Country: GeoLite2, DB-IP Lite, IPinfo Lite): country,
    /// city and location of public addresses in fwlog and JSON output; reread on SIGHUP
    #[arg(long, value_name = "PATH")]
    pub geoip: Option<PathBuf>,

    /// ASN database (mmdb): autonomous system number and organisation of public addresses;
    /// reread on SIGHUP
    #[arg(long, value_name = "PATH")]
    pub asn: Option<PathBuf>,

    /// With --geoip/--asn, leave the " [CC ASn]" tag out of the fwlog format (JSON keeps its
    /// geo fields)
    #[arg(long)]
    pub no_geo_tag: bool,
}

/// How to name an interface that a capture knows only by its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IfNames {
    /// Print `if<N>` (right for a capture taken on any machine)
    Index,
    /// Look the index up on this machine (right only for a capture taken here, in this
    /// network namespace, while the interface existed)
    Host,
}

#[derive(Args, Debug)]
pub struct ReadArgs {
    /// Capture files to read, in order
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub fmt: FormatArgs,

    /// Where to print, [FORMAT=]TARGET (repeatable), as for fwlog run. Default: - (stdout)
    #[arg(short = 'o', long = "output", value_name = "[FORMAT=]TARGET")]
    pub outputs: Vec<crate::sink::OutputSpec>,

    #[command(flatten)]
    pub dns: DnsArgs,

    #[command(flatten)]
    pub db: DbArgs,

    /// Naming of interfaces that the capture records only by index (tcpdump's NFLOG captures;
    /// captures written by fwlog carry names)
    #[arg(long, value_enum, default_value_t = IfNames::Index)]
    pub ifnames: IfNames,
}
