//! Command line -> configuration: the one place that turns clap's structs into
//! [`crate::config`] values. Defaults that are not clap's own come from the library types.

use fwlog_spool::{FsyncPolicy, Options as SpoolOptions};

use crate::capture::NflogConfig;
use crate::cli::{self, BatchDelay, DnsArgs, FormatArgs, FsyncArg, ReadArgs, ReplayArgs, RunArgs};
use crate::config::{
    CaptureConfig, DbOptions, DnsSettings, FormatConfig, IfNames, LoopConfig, OutputsConfig,
    ReadConfig, ReplayConfig, RunConfig, Select, SpoolConfig,
};
use crate::dns::{DnsConfig, DnsConfigError};
use crate::format::{FormatKind, FormatOptions};
use crate::queue::QueueConfig;
use crate::sink::Target;

/// A command line that parsed but does not make a configuration.
pub type ConfigError = DnsConfigError;

pub fn dns_settings(args: &DnsArgs) -> Result<DnsSettings, ConfigError> {
    let resolver = if args.no_dns {
        None
    } else {
        let mut cfg = DnsConfig::default();
        for s in &args.dns_servers {
            cfg.servers.push(crate::dns::parse_server(s)?);
        }
        cfg.query_timeout = args.dns_query_timeout.into();
        cfg.attempts = args.dns_attempts;
        cfg.cache_entries = args.dns_cache_size;
        cfg.min_ttl = args.dns_min_ttl.into();
        cfg.max_ttl = args.dns_max_ttl.into();
        cfg.verify_names = args.verify_names;
        Some(cfg)
    };
    Ok(DnsSettings {
        resolver,
        packet_timeout: args.dns_timeout.into(),
    })
}

pub fn format_config(args: &FormatArgs) -> FormatConfig {
    let geo = crate::geo::GeoConfig {
        geoip: args.geoip.clone(),
        asn: args.asn.clone(),
    };
    FormatConfig {
        kind: match args.format {
            cli::FormatArg::Fwlog => FormatKind::Fwlog,
            cli::FormatArg::Kernel => FormatKind::Kernel,
            cli::FormatArg::Json => FormatKind::Json,
            cli::FormatArg::Ecs => FormatKind::Ecs,
        },
        options: FormatOptions {
            flags: args.log_flags,
            syslog_framing: !args.no_syslog_header,
            hostname: crate::hostname::short_hostname(),
            geo: !geo.is_empty(),
            no_geo_tag: args.no_geo_tag,
        },
        geo,
    }
}

/// `--batch-records` for NFLOG when not given. Commit pacing gathers the datagrams of up to one
/// gap (8 ms) into a commit unless this many records come first: at 2048, commits stay at about
/// one per gap up to 256k records/s and then come every 2048 records, where at 256 they came
/// every 256 records from 32k records/s on (16k packets/s logged to two groups), each paying
/// its own write, sync and output write. A record waits at most the pacing gap, as any held
/// round does.
pub const NFLOG_BATCH_RECORDS: usize = 2048;
/// `--batch-records` for NFQUEUE when not given: the kernel holds each packet of a batch until
/// its verdict, which follows the batch's sync, so its batches stay small.
pub const QUEUE_BATCH_RECORDS: usize = 256;

fn batch_records(args: &RunArgs) -> usize {
    args.batch_records.unwrap_or(if args.queue.is_some() {
        QUEUE_BATCH_RECORDS
    } else {
        NFLOG_BATCH_RECORDS
    })
}

fn spool_options(args: &RunArgs) -> SpoolOptions {
    SpoolOptions {
        segment_bytes: args.segment_size,
        max_bytes: args.spool_max,
        batch_max_records: batch_records(args),
        // With pacing the writer's own delay is 0: intake decides when a round commits.
        batch_max_delay: match args.batch_delay {
            BatchDelay::Auto => std::time::Duration::ZERO,
            BatchDelay::Fixed(d) => d,
        },
        fsync: match args.fsync {
            FsyncArg::Batch => FsyncPolicy::EveryCommit,
            FsyncArg::Interval(d) => FsyncPolicy::Interval(d),
            FsyncArg::Never => FsyncPolicy::Never,
        },
        // 0 means "not by size"; with neither limit, printed packets are deleted.
        retain_bytes: (args.retain > 0).then_some(args.retain),
        retain_age: args.retain_for.filter(|d| !d.is_zero()),
        // Fresh batches reach the processing loop from memory; 4 MiB is about 100 ms of
        // traffic at full rate, so only a loop that fell further behind reads back from disk.
        handoff_bytes: 4 << 20,
        // Intake hands each commit's fdatasync to the spool's sync thread and goes on
        // receiving: a slow disk makes batches bigger, never the kernel drop packets.
        background_sync: true,
        ..SpoolOptions::default()
    }
}

fn capture_config(args: &RunArgs) -> CaptureConfig {
    match args.queue {
        Some(queue) => CaptureConfig::Queue(QueueConfig {
            queue,
            copy_range: u16::try_from(args.copy_range).unwrap_or(u16::MAX),
            fail_open: args.fail_open,
            rcvbuf: usize::try_from(args.rcvbuf).unwrap_or(usize::MAX),
            ..QueueConfig::default()
        }),
        None => CaptureConfig::Nflog(NflogConfig {
            groups: args.groups.clone(),
            copy_range: args.copy_range,
            rcvbuf: args.rcvbuf.min(usize::MAX as u64) as usize,
            nlbufsiz: args.nlbufsiz,
            qthresh: args.qthresh,
            flush_timeout_cs: (args.flush_timeout.as_millis() / 10).min(u32::MAX as u128) as u32,
            ..NflogConfig::default()
        }),
    }
}

pub fn run_config(args: &RunArgs) -> Result<RunConfig, ConfigError> {
    Ok(RunConfig {
        spool: SpoolConfig {
            dir: args.spool.clone(),
            options: spool_options(args),
        },
        capture: capture_config(args),
        batch_records: batch_records(args),
        commit_gap: (args.batch_delay == BatchDelay::Auto)
            .then_some(crate::daemon::intake::DEFAULT_GAP),
        outputs: OutputsConfig {
            db: db_options(&args.db),
            ..OutputsConfig::or_default(
                &args.outputs,
                Target::File("/var/log/fwlog".into()),
                args.fsync != FsyncArg::Never,
            )
        },
        format: format_config(&args.fmt),
        dns: dns_settings(&args.dns)?,
        user: args.user.clone(),
        processing: LoopConfig::daemon(
            args.window,
            crate::pipeline::commit::live_span(match args.fsync {
                FsyncArg::Interval(d) => Some(d),
                _ => None,
            }),
        ),
        metrics: args.metrics,
    })
}

pub fn read_config(args: &ReadArgs) -> Result<ReadConfig, ConfigError> {
    Ok(ReadConfig {
        files: args.files.clone(),
        ifnames: match args.ifnames {
            cli::IfNames::Index => IfNames::Index,
            cli::IfNames::Host => IfNames::Host,
        },
        outputs: OutputsConfig {
            db: db_options(&args.db),
            ..OutputsConfig::or_default(&args.outputs, Target::Stdout, false)
        },
        format: format_config(&args.fmt),
        dns: dns_settings(&args.dns)?,
    })
}

fn db_options(args: &cli::DbArgs) -> DbOptions {
    DbOptions {
        host_name: args.host_name.clone(),
        payload: args.db_payload,
        retain: args.db_retain.filter(|d| !d.is_zero()),
    }
}

pub fn replay_config(args: &ReplayArgs) -> Result<ReplayConfig, ConfigError> {
    // With --pcap and no -o, the pcap is the only output.
    let outputs = if args.pcap.is_some() && args.outputs.is_empty() {
        OutputsConfig {
            specs: Vec::new(),
            sync_files: false,
            db: DbOptions::default(),
        }
    } else {
        OutputsConfig {
            db: db_options(&args.db),
            ..OutputsConfig::or_default(&args.outputs, Target::Stdout, false)
        }
    };
    Ok(ReplayConfig {
        spool: args.spool.clone(),
        select: match args.select {
            cli::Select::Pending => Select::Pending,
            cli::Select::Printed => Select::Printed,
            cli::Select::All => Select::All,
        },
        since: args.since,
        until: args.until,
        pcap: args.pcap.clone(),
        outputs,
        format: format_config(&args.fmt),
        dns: dns_settings(&args.dns)?,
    })
}

/// `fwlog db init`: the target must be a database.
pub fn db_init_config(
    args: &cli::DbInitArgs,
) -> Result<crate::sink::sql::init::InitConfig, String> {
    let target: crate::sink::Target = args.url.parse()?;
    if !target.is_database() {
        return Err(format!(
            "db init {}: not a database (use sqlite:PATH, postgresql://... or mysql://...)",
            crate::sink::sql::row::escaped(args.url.as_bytes())
        ));
    }
    Ok(crate::sink::sql::init::InitConfig {
        target,
        days_ahead: args.days_ahead,
    })
}

/// `fwlog report`: sources parsed, `--src` as a network.
pub fn report_config(args: &cli::ReportArgs) -> Result<crate::report::ReportConfig, String> {
    use crate::report::{parse_net, Filter, ReportConfig, Source};
    let sources = args
        .sources
        .iter()
        .map(|s| s.parse::<Source>().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let src_net = args.src.as_deref().map(parse_net).transpose()?;
    Ok(ReportConfig {
        sources,
        filter: Filter {
            since: args.since,
            until: args.until,
            prefix: args.prefix.clone(),
            host: args.host,
            group: args.group,
            src_net,
            dport: args.dport,
        },
        top: args.top.max(1),
        geo: crate::geo::GeoConfig {
            geoip: args.geoip.clone(),
            asn: args.asn.clone(),
        },
        json: args.json,
        html: args.html.clone(),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn run_args(extra: &[&str]) -> Box<crate::cli::RunArgs> {
        let argv = ["fwlog", "run", "-g", "5"].iter().chain(extra);
        match Cli::try_parse_from(argv).expect("parse").command {
            Command::Run(a) => a,
            _ => panic!("not run"),
        }
    }

    fn nflog(a: &crate::cli::RunArgs) -> crate::capture::NflogConfig {
        match super::capture_config(a) {
            crate::config::CaptureConfig::Nflog(c) => c,
            _ => panic!("not NFLOG"),
        }
    }

    /// The defaults are the capture library's (the kernel batches a group's records for 10 ms)
    /// and pace intake's commits (the writer's own delay is then 0); explicit values keep
    /// their meaning (10ms is one hundredth-second step), 0 included: a commit every round,
    /// no pacing.
    #[test]
    fn flush_timeout_and_batch_delay_defaults_and_explicit_values() {
        let a = run_args(&[]);
        assert_eq!(nflog(&a).flush_timeout_cs, 1);
        assert_eq!(nflog(&a).qthresh, 1024);
        let lib = crate::capture::NflogConfig::default();
        assert_eq!(
            (nflog(&a).flush_timeout_cs, nflog(&a).qthresh),
            (lib.flush_timeout_cs, lib.qthresh)
        );
        let a = run_args(&["--flush-timeout", "0", "--qthresh", "256"]);
        assert_eq!((nflog(&a).flush_timeout_cs, nflog(&a).qthresh), (0, 256));
        let a = run_args(&[]);
        assert!(super::spool_options(&a).batch_max_delay.is_zero());
        let cfg = super::run_config(&a).expect("config");
        assert_eq!(cfg.commit_gap, Some(crate::daemon::intake::DEFAULT_GAP));
        let a = run_args(&["--flush-timeout", "10ms", "--batch-delay", "2ms"]);
        assert_eq!(nflog(&a).flush_timeout_cs, 1);
        assert_eq!(
            super::spool_options(&a).batch_max_delay,
            std::time::Duration::from_millis(2)
        );
        assert_eq!(super::run_config(&a).expect("config").commit_gap, None);
        let a = run_args(&["--batch-delay", "0"]);
        assert!(super::spool_options(&a).batch_max_delay.is_zero());
        assert_eq!(super::run_config(&a).expect("config").commit_gap, None);
        let a = run_args(&["--batch-delay", "auto"]);
        assert!(super::run_config(&a).expect("config").commit_gap.is_some());
        assert!(Cli::try_parse_from(["fwlog", "run", "--batch-delay", "soon"]).is_err());
        let a = run_args(&["--flush-timeout", "25ms"]);
        assert_eq!(nflog(&a).flush_timeout_cs, 2, "rounded down to 10ms steps");
    }

    /// NFLOG commits up to 2048 records by default, NFQUEUE 256; an explicit value is kept.
    #[test]
    fn batch_records_default_by_intake() {
        let a = run_args(&[]);
        assert_eq!(super::spool_options(&a).batch_max_records, 2048);
        assert_eq!(super::run_config(&a).expect("config").batch_records, 2048);
        let q = ["fwlog", "run", "--queue", "3"];
        let Command::Run(a) = Cli::try_parse_from(q).expect("parse").command else {
            panic!("not run");
        };
        assert_eq!(super::spool_options(&a).batch_max_records, 256);
        assert_eq!(super::run_config(&a).expect("config").batch_records, 256);
        let a = run_args(&["--batch-records", "100"]);
        assert_eq!(super::spool_options(&a).batch_max_records, 100);
        assert_eq!(super::run_config(&a).expect("config").batch_records, 100);
    }
}
