//! `fwlog run`: the daemon. capture -> spool -> resolve -> format -> sink -> acknowledge.
//!
//! Two threads: the intake thread ([`intake`]) receives from NFLOG (or with `--queue` from
//! NFQUEUE, giving each packet its verdict after the commit) and appends to the spool, nothing
//! else; the processing loop ([`process`], on a single-threaded
//! tokio runtime that also runs the DNS lookups) reads the spool back in order, waits for names, prints, and
//! acknowledges. They share only the spool (whose reader sees what the writer committed), a
//! wake-up, a stop flag and the counters. Start-up order: the descriptors the service manager
//! passed from its fd store (`LISTEN_FDS`, claimed before anything opens an fd: see [`fdkeep`]),
//! its notify socket (`NOTIFY_SOCKET`, connected while root: see [`crate::sdnotify`]), the checks that change
//! nothing ([`preflight`]: a usage error leaves no file behind), the spool (its lock tells a
//! second fwlog to go away), the outputs, the NFLOG socket (taken back from the fd store or
//! opened, then stored there; packets wait in its buffer until intake starts), `--user` (needs everything before it done as root), then DNS and the
//! threads; `READY=1` goes out once the signal handlers ([`crate::signals`]) are installed and the processing loop runs, the point from
//! which a packet the kernel logs is sure to be spooled.

mod error;
mod fdkeep;
pub mod intake;
mod positions;
mod precedence;
mod preflight;
mod seqfile;

use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use fwlog_spool::{Error as SpoolError, Reader, Spool, Writer};

use crate::capture::NflogSocket;
use crate::config::{CaptureConfig, RunConfig, SpoolConfig};
use crate::exit;
use crate::pipeline::build::{DnsStart, Engine, Shared};
use crate::pipeline::outputs::{sql_config, Outputs};
use crate::queue::QueueSocket;
use crate::sdnotify::fdstore::Handed;
use crate::sdnotify::Notifier;

pub use error::DaemonError;

/// Run the daemon; returns the process exit status.
pub fn run(cfg: &RunConfig) -> i32 {
    match run_daemon(cfg) {
        Ok(()) => exit::OK,
        Err(e) => {
            crate::say!("fwlog: {e}");
            crate::stderr::flush(STDERR_FLUSH);
            e.exit_code()
        }
    }
}

/// How long exit waits for a stderr nobody reads (see [`crate::stderr`]).
const STDERR_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);

fn run_daemon(cfg: &RunConfig) -> Result<(), DaemonError> {
    // Service manager (Type=notify, fd store): first, while root and before any other thread
    // exists.
    // SAFETY: both change the environment; no other thread exists yet (the runtime and intake
    // start below, and nothing before `run` starts one), and no fd was opened yet that could
    // have taken the number of a passed one.
    let mut handed = unsafe { crate::sdnotify::fdstore::take_from_env() };
    // SAFETY: as above.
    let notifier = unsafe { Notifier::from_env() };
    for w in &handed.warnings {
        eprintln!("fwlog: {w}");
    }
    ignore_requests_until_ready();
    preflight::check(cfg)?;
    // Read and verified whole before anything is created: a bad one is the only message.
    let geo = crate::geo::Geo::open(&cfg.format.geo)?;
    if let Some(g) = &geo {
        eprintln!("fwlog: geo databases: {}", g.describe());
    }
    // --user is looked up first: nothing is created for an account that does not exist.
    let user = cfg
        .user
        .as_deref()
        .map(crate::privdrop::lookup)
        .transpose()
        .map_err(DaemonError::User)?;
    let (writer, reader, spool_dir) = open_spool(&cfg.spool, user.as_ref())?;
    // Database outputs: the spool's stream id, created now (under the spool's lock) if new, in
    // the spool directory: with the --user account's filesystem rights.
    let db = crate::dirfd::as_fs_user(user.as_ref().map(|u| (u.uid, u.gid)), || {
        sql_config(&cfg.outputs, || {
            crate::sink::sql::stream::open_or_create(&cfg.spool.dir)
        })
    })
    .map_err(DaemonError::Outputs)?;
    let mut outputs = Outputs::open(
        &cfg.outputs.specs,
        cfg.format.kind,
        &cfg.format.options,
        cfg.outputs.sync_files,
        db.as_ref(),
    )
    .map_err(DaemonError::Outputs)?;
    let capture = open_capture(cfg, &mut handed, &notifier, &spool_dir, user.as_ref())?;
    // While root: up to the intake thread's priority; the threads started from here inherit
    // it, and this one takes its own back down below intake once intake runs.
    let raised = precedence::raise_for_intake();
    drop_privileges(cfg, user.as_ref())?;
    // From here on, messages go through a thread of their own: a stderr nobody reads must not
    // stop the processing loop (created only now: a thread made before --user would keep
    // root's capabilities).
    crate::stderr::start().map_err(DaemonError::StderrThread)?;
    let engine = Engine::start(&cfg.dns, DnsStart::Required)?;
    let shared = Shared::default();
    start_metrics(cfg, &engine, &shared, &reader, &mut outputs)?;
    let control = engine.signals()?;
    let intake = spawn_intake(capture, writer, &shared, cfg)?;
    // This thread runs the processing loop: below intake and ordinary processes, so a
    // saturated CPU backs up into the spool rather than the kernel's socket buffer.
    if let Err(w) = precedence::lower_this_thread(raised) {
        crate::say!("fwlog: {w}");
    }
    let label = announce(cfg);
    // Tests and scripts take that line as "bound and logging": it is out before READY=1 (for a
    // stalled stderr, after at most STDERR_FLUSH).
    crate::stderr::flush(STDERR_FLUSH);
    let service = notifier.enabled().then(|| {
        crate::sdnotify::service::Service::new(
            notifier,
            label,
            std::sync::Arc::clone(&shared.counters),
        )
    });
    let mut processor =
        engine.processor(reader, outputs, cfg.processing, &shared, control, service);
    processor.geo = geo;
    let result = engine.rt.block_on(processor.run());
    // Whatever ended the loop, stop intake and let it commit what it received.
    shared.stop.store(true, Ordering::Relaxed);
    let intake_result = intake
        .join()
        .unwrap_or_else(|_| Err("the intake thread panicked".into()));
    // Read after intake's last commit: what the next start prints.
    let pending = shared.counters.pending_at_exit.load(Ordering::Relaxed);
    crate::say!(
        "{}",
        shared.counters.line(
            pending,
            engine.resolver.as_ref().map(|r| r.stats().to_string())
        )
    );
    crate::stderr::flush(STDERR_FLUSH);
    result?;
    intake_result.map_err(DaemonError::Run)
}

/// SIGHUP (logrotate's postrotate, `systemctl reload`) and SIGUSR1 ask for something, and
/// their default action ends the process: until [`crate::signals`] installs its handlers,
/// ignore them, so one that arrives during start-up does not kill fwlog. (Installing a handler
/// later replaces this disposition.)
fn ignore_requests_until_ready() {
    // SAFETY: signal(2) with SIG_IGN has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGUSR1, libc::SIG_IGN);
    }
}

/// Open (and recover) the spool, saying what recovery found; also returns the spool directory's
/// fd. The directory is checked (a real directory, owner, mode) before anything in it is read
/// or changed; with `--user`, it is handed over and everything in it is then done with that
/// user's filesystem rights, so what the user planted there can never make root act on a file
/// it could not touch (see [`crate::dirfd`]).
fn open_spool(
    cfg: &SpoolConfig,
    user: Option<&crate::privdrop::User>,
) -> Result<(Writer, Reader, OwnedFd), DaemonError> {
    std::fs::create_dir_all(&cfg.dir).map_err(|source| DaemonError::SpoolDir {
        path: cfg.dir.clone(),
        source,
    })?;
    let fs_user = user.map(|u| (u.uid, u.gid));
    let dir = crate::dirfd::check_spool_dir(&cfg.dir, fs_user)?;
    if let Some(u) = user {
        crate::privdrop::hand_over_dir(&dir, &cfg.dir, u).map_err(DaemonError::Privileges)?;
    }
    let opened = crate::dirfd::as_fs_user(fs_user, || Spool::open(&cfg.dir, cfg.options.clone()));
    let (writer, reader, report) = match opened {
        Ok(x) => x,
        Err(e @ SpoolError::Locked { .. }) => return Err(DaemonError::SpoolLocked(e)),
        Err(source) => {
            return Err(DaemonError::Spool {
                path: cfg.dir.clone(),
                source,
            })
        }
    };
    // Damage, planted entries, torn tails: one line, names escaped (the report's Display).
    // The daemon's own file beside the spool is not foreign to it.
    let mut shown = report.clone();
    shown.foreign.retain(|n| n != seqfile::NAME);
    if shown.bytes_truncated > 0
        || !shown.quarantined.is_empty()
        || !shown.damaged.is_empty()
        || !shown.foreign.is_empty()
        || shown.ledger_clamped.is_some()
    {
        eprintln!("fwlog: {shown}");
    }
    if report.pending_records > 0 {
        eprintln!(
            "fwlog: spool holds {} packets from before; printing them first (marked replayed)",
            report.pending_records
        );
    }
    Ok((writer, reader, dir))
}

/// The packet source, open and bound.
enum Capture {
    /// The socket, `fwlog.seq_global`, and `fwlog.nflog_positions` when the socket is kept in
    /// the fd store.
    Nflog(
        Box<NflogSocket>,
        seqfile::SeqFile,
        Option<positions::Positions>,
    ),
    /// The socket, and whether it was taken back from the fd store.
    Queue(QueueSocket, bool),
}

/// NFLOG, or NFQUEUE audit mode with `--queue` (see [`intake`]); taken back from the
/// service manager's fd store when it holds one, and stored there (see [`fdkeep`]). What it
/// reads and writes in the spool directory, it does with the --user account's filesystem rights.
fn open_capture(
    cfg: &RunConfig,
    handed: &mut Handed,
    notifier: &Notifier,
    spool_dir: &OwnedFd,
    user: Option<&crate::privdrop::User>,
) -> Result<Capture, DaemonError> {
    match &cfg.capture {
        CaptureConfig::Nflog(nflog) => {
            let fs_user = user.map(|u| (u.uid, u.gid));
            // Sequence tracking starts from the last run's number, so packets logged meanwhile
            // count (the socket takes it before it binds a group). In the spool directory: with
            // the --user account's filesystem rights.
            let (seq_file, previous) = crate::dirfd::as_fs_user(fs_user, || {
                seqfile::SeqFile::open(spool_dir, &cfg.spool.dir)
            });
            // setfsuid drops only the filesystem capabilities: binding NFLOG still works.
            let (mut sock, stored_as) = crate::dirfd::as_fs_user(fs_user, || {
                fdkeep::nflog_socket(nflog, handed, &cfg.spool.dir, previous)
            })?;
            for w in sock.warnings() {
                eprintln!("fwlog: {w}");
            }
            let held = crate::dirfd::as_fs_user(fs_user, || {
                fdkeep::store_nflog(notifier, &mut sock, stored_as, handed, &cfg.spool.dir)
            });
            Ok(Capture::Nflog(Box::new(sock), seq_file, held))
        }
        CaptureConfig::Queue(queue) => {
            let (q, adopted) = fdkeep::queue_socket(queue, handed, notifier)?;
            for w in q.warnings() {
                eprintln!("fwlog: {w}");
            }
            Ok(Capture::Queue(q, adopted))
        }
    }
}

/// `--metrics`: the endpoint on a thread of its own (started after `--user`, like every
/// thread), and the output that counts packets per group for it.
fn start_metrics(
    cfg: &RunConfig,
    engine: &Engine,
    shared: &Shared,
    reader: &Reader,
    outputs: &mut Outputs,
) -> Result<(), DaemonError> {
    use crate::metrics::groups::{GroupSink, GroupTable};
    let Some(addr) = cfg.metrics else {
        return Ok(());
    };
    let groups = GroupTable::default();
    outputs.push(Box::new(GroupSink::new(groups.clone())));
    // The groups are bound (the socket is open): intake counts packets per group from now on.
    match &cfg.capture {
        CaptureConfig::Nflog(n) => shared.counters.per_group.bind(&n.groups),
        CaptureConfig::Queue(q) => shared.counters.per_group.bind(&[q.queue]),
    }
    let src = crate::metrics::MetricsSource {
        counters: shared.counters.clone(),
        resolver: engine.resolver.clone(),
        spool_max: cfg.spool.options.max_bytes,
        spool: reader.stats_handle(),
        outputs: outputs.stats(),
        queue: matches!(cfg.capture, CaptureConfig::Queue(_)),
        groups,
    };
    let bound = crate::metrics::server::spawn(addr, src).map_err(DaemonError::Metrics)?;
    eprintln!("fwlog: metrics at http://{bound}/metrics");
    Ok(())
}

/// `--user`: everything that needs root is done; give the output files to the user (the spool
/// was handed over before it was opened) and become it.
fn drop_privileges(
    cfg: &RunConfig,
    user: Option<&crate::privdrop::User>,
) -> Result<(), DaemonError> {
    let Some(user) = user else {
        return Ok(());
    };
    // Output files and SQLite database files (their journals too), never through a link.
    let databases = cfg
        .outputs
        .databases()
        .flat_map(|p| crate::sink::sql::sqlite::SqliteSink::files(p));
    for p in cfg.outputs.files().cloned().chain(databases) {
        crate::privdrop::hand_over_file(&p, user).map_err(DaemonError::Privileges)?;
    }
    crate::privdrop::become_user(user).map_err(DaemonError::Privileges)
}

type IntakeResult = Result<(), String>;

/// Start the intake thread; when it fails it tells the processing loop to finish and exit.
fn spawn_intake(
    capture: Capture,
    writer: Writer,
    shared: &Shared,
    cfg: &RunConfig,
) -> Result<JoinHandle<IntakeResult>, DaemonError> {
    let (counters, wake) = (shared.counters.clone(), shared.wake.clone());
    let stop = shared.stop.clone();
    let intake: Box<dyn FnOnce() -> IntakeResult + Send> = match capture {
        Capture::Nflog(sock, seq_file, held) => {
            let rx = intake::NflogReceiver::new(*sock, seq_file, cfg.commit_gap, cfg.batch_records);
            let mut spool =
                intake::Spooler::new(writer, counters, wake, intake::NflogReceiver::policy());
            spool.held = held;
            Box::new(move || intake::run(rx, spool, stop))
        }
        Capture::Queue(sock, adopted) => {
            let fail_open = match &cfg.capture {
                CaptureConfig::Queue(q) => q.fail_open,
                CaptureConfig::Nflog(_) => false,
            };
            let policy = intake::QueueReceiver::policy(sock.queue_num(), fail_open);
            let spool = intake::Spooler::new(writer, counters, wake, policy);
            let rx = intake::QueueReceiver::new(sock, fail_open, cfg.batch_records, adopted)
                .map_err(DaemonError::Run)?;
            Box::new(move || intake::run(rx, spool, stop))
        }
    };
    let (stop, wake) = (shared.stop.clone(), shared.wake.clone());
    std::thread::Builder::new()
        .name("fwlog-intake".into())
        .spawn(move || {
            let r = intake();
            if r.is_err() {
                stop.store(true, Ordering::Relaxed);
                wake.notify_one();
            }
            r
        })
        .map_err(DaemonError::Thread)
}

/// Say on stderr what is being logged; returns the label for the service manager's STATUS.
fn announce(cfg: &RunConfig) -> String {
    let spool = cfg.spool.dir.display();
    match &cfg.capture {
        CaptureConfig::Queue(q) => {
            crate::say!("{} {} (spool {spool})", intake::READY, q.queue);
            format!("NFQUEUE queue {}", q.queue)
        }
        CaptureConfig::Nflog(n) => {
            let label = format!(
                "NFLOG group{} {}",
                if n.groups.len() > 1 { "s" } else { "" },
                n.groups
                    .iter()
                    .map(|g| g.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            crate::say!("fwlog: logging {label} (spool {spool})");
            label
        }
    }
}
