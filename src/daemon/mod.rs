//! `fwlog run`: the daemon. capture -> spool -> resolve -> format -> sink -> acknowledge.
//!
//! Two threads: the intake thread ([`intake`]) receives from NFLOG and appends to the spool,
//! nothing else (with `--queue`, [`queue_intake`] receives from NFQUEUE and gives each packet
//! its verdict after the commit); the processing loop ([`process`], on a single-threaded
//! tokio runtime that also runs the DNS lookups) reads the spool back in order, waits for names, prints, and
//! acknowledges. They share only the spool (whose reader sees what the writer committed), a
//! wake-up, a stop flag and the counters. Start-up order: the service manager's notify socket
//! (`NOTIFY_SOCKET`, connected while root: see [`crate::sdnotify`]), the spool (its lock tells a
//! second fwlog to go away), the outputs, the NFLOG socket (packets wait in its buffer until
//! intake starts), `--user` (needs everything before it done as root), then DNS and the
//! threads; `READY=1` goes out once the processing loop has its signal handlers, the point from
//! which a packet the kernel logs is sure to be spooled.

mod intake;
pub mod queue_intake;
mod seqfile;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use fwlog_spool::{Error as SpoolError, FsyncPolicy, Options as SpoolOptions, Spool};
use tokio::sync::Notify;

use crate::capture::{CaptureError, NflogConfig, NflogSocket};
use crate::cli::{DnsArgs, FsyncArg, RunArgs};
use crate::exit;
use crate::sink::{OutputSpec, Target};

use crate::pipeline::counters::Counters;
use crate::pipeline::{outputs, process};

/// Print a one-line error and return `code`.
fn fail(code: i32, msg: impl std::fmt::Display) -> i32 {
    eprintln!("fwlog: {msg}");
    code
}

/// The resolver configuration the flags ask for.
pub fn dns_config(args: &DnsArgs) -> Result<crate::dns::DnsConfig, String> {
    let mut cfg = crate::dns::DnsConfig::default();
    for s in &args.dns_servers {
        cfg.servers
            .push(crate::dns::parse_server(s).map_err(|e| e.to_string())?);
    }
    cfg.query_timeout = args.dns_query_timeout;
    cfg.attempts = args.dns_attempts;
    cfg.cache_entries = args.dns_cache_size;
    cfg.min_ttl = args.dns_min_ttl;
    cfg.max_ttl = args.dns_max_ttl;
    cfg.verify_names = args.verify_names;
    Ok(cfg)
}

pub fn run(args: &RunArgs) -> i32 {
    // --- service manager (Type=notify): first, while root and before any other thread exists
    // SAFETY: from_env changes the environment; no other thread exists yet (the runtime and
    // intake start below, and nothing before `run` starts one).
    let notifier = unsafe { crate::sdnotify::Notifier::from_env() };
    // SIGHUP (logrotate's postrotate, `systemctl reload`) and SIGUSR1 ask for something, and
    // their default action ends the process: until the processing loop installs its handlers,
    // ignore them, so one that arrives during start-up does not kill fwlog. (Installing a
    // handler later replaces this disposition.)
    // SAFETY: signal(2) with SIG_IGN has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGUSR1, libc::SIG_IGN);
    }

    // --- spool
    let opts = SpoolOptions {
        segment_bytes: args.segment_size,
        max_bytes: args.spool_max,
        batch_max_records: args.batch_records,
        batch_max_delay: args.batch_delay,
        fsync: match args.fsync {
            FsyncArg::Batch => FsyncPolicy::EveryCommit,
            FsyncArg::Interval(d) => FsyncPolicy::Interval(d),
            FsyncArg::Never => FsyncPolicy::Never,
        },
        // 0 means "not by size"; with neither limit, printed packets are deleted.
        retain_bytes: (args.retain > 0).then_some(args.retain),
        retain_age: args.retain_for.filter(|d| !d.is_zero()),
        ..SpoolOptions::default()
    };
    if let Err(e) = std::fs::create_dir_all(&args.spool) {
        return fail(
            exit::SPOOL,
            format!("spool directory {}: {e}", args.spool.display()),
        );
    }
    let (writer, reader, report) = match Spool::open(&args.spool, opts) {
        Ok(x) => x,
        Err(e @ SpoolError::Locked { .. }) => return fail(exit::SPOOL, e),
        Err(e) => {
            return fail(
                exit::SPOOL,
                format!("spool {} is unusable: {e}", args.spool.display()),
            )
        }
    };
    for q in &report.quarantined {
        eprintln!("fwlog: spool: moved an unreadable file aside: {q:?}");
    }
    if report.bytes_truncated > 0 {
        eprintln!(
            "fwlog: spool: cut {} bytes of torn records left by a crash",
            report.bytes_truncated
        );
    }
    if report.pending_records > 0 {
        eprintln!(
            "fwlog: spool holds {} packets from before; printing them first (marked replayed)",
            report.pending_records
        );
    }

    // --- outputs
    let specs: Vec<OutputSpec> = if args.outputs.is_empty() {
        vec![OutputSpec {
            format: None,
            target: Target::File("/var/log/fwlog".into()),
        }]
    } else {
        args.outputs.clone()
    };
    let fmt_opts = crate::cmd::format_options(&args.fmt);
    let sync_outputs = args.fsync != FsyncArg::Never;
    let outputs = match outputs::Outputs::open(&specs, args.fmt.format, &fmt_opts, sync_outputs) {
        Ok(o) => o,
        Err(e) => return fail(exit::OUTPUT, e),
    };

    // --- capture: NFLOG, or NFQUEUE audit mode with --queue (see queue_intake)
    let (mut nflog, mut queue) = (None, None);
    match args.queue {
        None => match open_nflog(args) {
            Ok(x) => nflog = Some(x),
            Err(code) => return code,
        },
        Some(n) => match queue_intake::open(args, n) {
            Ok(q) => {
                for w in q.warnings() {
                    eprintln!("fwlog: {w}");
                }
                queue = Some(q);
            }
            Err(e @ crate::queue::QueueError::NoPermission { .. }) => {
                return fail(exit::NO_PERM, e)
            }
            Err(e) => return fail(exit::FAILURE, e),
        },
    }

    // --- privileges: everything that needs root is done
    if let Some(name) = &args.user {
        let user = match crate::privdrop::lookup(name) {
            Ok(u) => u,
            Err(e) => return fail(exit::USAGE, e),
        };
        let mut owned = vec![args.spool.clone()];
        owned.extend(specs.iter().filter_map(|s| match &s.target {
            Target::File(p) => Some(p.clone()),
            Target::Pcap(s) if !s.rotates() => Some(s.path.clone()),
            _ => None,
        }));
        for p in &owned {
            if let Err(e) = crate::privdrop::hand_over(p, &user) {
                return fail(exit::NO_PERM, e);
            }
        }
        if let Err(e) = crate::privdrop::become_user(&user) {
            return fail(exit::NO_PERM, e);
        }
    }

    // --- runtime and DNS
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(exit::FAILURE, format!("cannot start the runtime: {e}")),
    };
    let resolver = if args.dns.no_dns {
        None
    } else {
        let cfg = match dns_config(&args.dns) {
            Ok(c) => c,
            Err(e) => return fail(exit::USAGE, e),
        };
        match crate::dns::Resolver::new(cfg, rt.handle().clone()) {
            Ok(r) => Some(r),
            Err(e) => return fail(exit::USAGE, e),
        }
    };

    // --- run
    let counters = Arc::new(Counters::default());
    let mut outputs = outputs;
    if let Some(addr) = args.metrics {
        let groups = crate::metrics::groups::GroupTable::default();
        outputs.push(Box::new(crate::metrics::groups::GroupSink::new(
            groups.clone(),
        )));
        let src = crate::metrics::MetricsSource {
            groups,
            counters: Arc::clone(&counters),
            resolver: resolver.clone(),
            spool_max: args.spool_max,
            spool: reader.stats_handle(),
            outputs: outputs.stats(),
            queue: args.queue.is_some(),
        };
        match crate::metrics::server::spawn(addr, src) {
            Ok(a) => eprintln!("fwlog: metrics at http://{a}/metrics"),
            Err(e) => return fail(exit::USAGE, e),
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(Notify::new());
    type IntakeFn = Box<dyn FnOnce() -> Result<(), String> + Send>;
    let intake: IntakeFn = match (nflog, queue) {
        (Some((sock, seq_file)), _) => {
            let intake = intake::Intake {
                sock,
                writer,
                stop: Arc::clone(&stop),
                wake: Arc::clone(&wake),
                counters: Arc::clone(&counters),
                seq_file,
            };
            Box::new(move || intake.run())
        }
        (None, Some(sock)) => {
            let intake = queue_intake::QueueIntake {
                sock,
                writer,
                stop: Arc::clone(&stop),
                wake: Arc::clone(&wake),
                counters: Arc::clone(&counters),
                fail_open: args.fail_open,
                batch_max: args.batch_records.max(1),
            };
            Box::new(move || intake.run())
        }
        (None, None) => return fail(exit::FAILURE, "no packet source"),
    };
    let (intake_stop, intake_wake) = (Arc::clone(&stop), Arc::clone(&wake));
    let intake = match std::thread::Builder::new()
        .name("fwlog-intake".into())
        .spawn(move || {
            let (stop, wake) = (intake_stop, intake_wake);
            let r = intake();
            if r.is_err() {
                // Tell the processing loop to finish what it has and exit.
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                wake.notify_one();
            }
            r
        }) {
        Ok(h) => h,
        Err(e) => {
            return fail(
                exit::FAILURE,
                format!("cannot start the intake thread: {e}"),
            )
        }
    };
    let label = if let Some(n) = args.queue {
        eprintln!(
            "{} {n} (spool {})",
            queue_intake::READY,
            args.spool.display()
        );
        format!("NFQUEUE queue {n}")
    } else {
        let label = format!(
            "NFLOG group{} {}",
            if args.groups.len() > 1 { "s" } else { "" },
            args.groups
                .iter()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        );
        eprintln!("fwlog: logging {label} (spool {})", args.spool.display());
        label
    };
    let service = notifier
        .enabled()
        .then(|| crate::sdnotify::service::Service::new(notifier, label, Arc::clone(&counters)));
    let processor = process::Processor {
        source: reader,
        outputs,
        resolver: resolver.clone(),
        dns_timeout: if args.dns.no_dns {
            Duration::ZERO
        } else {
            args.dns.dns_timeout
        },
        window_cap: args.window.max(1),
        counters: Arc::clone(&counters),
        data_wake: wake,
        stop: Arc::clone(&stop),
        stop_grace: Duration::from_secs(2),
        retry_outputs: true,
        service,
    };
    let result = rt.block_on(processor.run());
    // Whatever ended the loop, stop intake and let it commit what it received.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let intake_result = intake
        .join()
        .unwrap_or_else(|_| Err("the intake thread panicked".into()));
    eprintln!(
        "{}",
        counters.line(0, resolver.as_ref().map(|r| r.stats().to_string()))
    );
    match (result, intake_result) {
        (Ok(()), Ok(())) => exit::OK,
        (Err(e), _) | (_, Err(e)) => fail(exit::FAILURE, e),
    }
}

/// Open the NFLOG socket for `--group` and seed its sequence tracking from the last run.
fn open_nflog(args: &RunArgs) -> Result<(NflogSocket, seqfile::SeqFile), i32> {
    let cfg = NflogConfig {
        groups: args.groups.clone(),
        copy_range: args.copy_range,
        rcvbuf: args.rcvbuf.min(usize::MAX as u64) as usize,
        nlbufsiz: args.nlbufsiz,
        qthresh: args.qthresh,
        flush_timeout_cs: (args.flush_timeout.as_millis() / 10).clamp(1, u32::MAX as u128) as u32,
        ..NflogConfig::default()
    };
    let mut sock = match NflogSocket::open(&cfg) {
        Ok(s) => s,
        Err(e @ CaptureError::NoPermission { .. }) => return Err(fail(exit::NO_PERM, e)),
        Err(e @ CaptureError::InvalidConfig(_)) => return Err(fail(exit::USAGE, e)),
        Err(e) => return Err(fail(exit::FAILURE, e)),
    };
    for w in sock.warnings() {
        eprintln!("fwlog: {w}");
    }
    let (seq_file, previous) = seqfile::SeqFile::open(&args.spool);
    if let Some(s) = previous {
        sock.seed_seq_global(s);
    }
    Ok((sock, seq_file))
}
