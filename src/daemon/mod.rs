//! `fwlog run`: the daemon. capture -> spool -> resolve -> format -> sink -> acknowledge.
//!
//! Two threads: the intake thread ([`intake`]) receives from NFLOG and appends to the spool,
//! nothing else (with `--queue`, [`queue_intake`] receives from NFQUEUE and gives each packet
//! its verdict after the commit); the processing loop ([`process`], on a single-threaded
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
mod intake;
mod positions;
mod preflight;
pub mod queue_intake;
mod seqfile;

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
            eprintln!("fwlog: {e}");
            e.exit_code()
        }
    }
}

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
    let (writer, reader) = open_spool(&cfg.spool)?;
    // Database outputs: the spool's stream id, created now (under the spool's lock) if new.
    let db = sql_config(&cfg.outputs, || {
        crate::sink::sql::stream::open_or_create(&cfg.spool.dir)
    })
    .map_err(DaemonError::Outputs)?;
    let outputs = Outputs::open(
        &cfg.outputs.specs,
        cfg.format.kind,
        &cfg.format.options,
        cfg.outputs.sync_files,
        db.as_ref(),
    )
    .map_err(DaemonError::Outputs)?;
    let capture = open_capture(cfg, &mut handed, &notifier)?;
    drop_privileges(cfg)?;
    let engine = Engine::start(&cfg.dns, DnsStart::Required)?;
    let shared = Shared::default();
    let control = engine.signals()?;
    let intake = spawn_intake(capture, writer, &shared, cfg)?;
    let label = announce(cfg);
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
    eprintln!(
        "{}",
        shared
            .counters
            .line(0, engine.resolver.as_ref().map(|r| r.stats().to_string()))
    );
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

/// Open (and recover) the spool, saying what recovery found.
fn open_spool(cfg: &SpoolConfig) -> Result<(Writer, Reader), DaemonError> {
    std::fs::create_dir_all(&cfg.dir).map_err(|source| DaemonError::SpoolDir {
        path: cfg.dir.clone(),
        source,
    })?;
    let (writer, reader, report) = match Spool::open(&cfg.dir, cfg.options.clone()) {
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
    Ok((writer, reader))
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

/// NFLOG, or NFQUEUE audit mode with `--queue` (see [`queue_intake`]); taken back from the
/// service manager's fd store when it holds one, and stored there (see [`fdkeep`]).
fn open_capture(
    cfg: &RunConfig,
    handed: &mut Handed,
    notifier: &Notifier,
) -> Result<Capture, DaemonError> {
    match &cfg.capture {
        CaptureConfig::Nflog(nflog) => {
            let (mut sock, stored_as) = fdkeep::nflog_socket(nflog, handed, &cfg.spool.dir)?;
            for w in sock.warnings() {
                eprintln!("fwlog: {w}");
            }
            // Seed sequence tracking from the last run, so packets logged meanwhile count.
            let (seq_file, previous) = seqfile::SeqFile::open(&cfg.spool.dir);
            if let Some(s) = previous {
                sock.seed_seq_global(s);
            }
            let held = fdkeep::store_nflog(notifier, &mut sock, stored_as, handed, &cfg.spool.dir);
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

/// `--user`: everything that needs root is done; give the spool and output files to the user
/// and become it.
fn drop_privileges(cfg: &RunConfig) -> Result<(), DaemonError> {
    let Some(name) = &cfg.user else {
        return Ok(());
    };
    let user = crate::privdrop::lookup(name).map_err(DaemonError::User)?;
    let databases = cfg
        .outputs
        .databases()
        .flat_map(|p| crate::sink::sql::sqlite::SqliteSink::files(p));
    for p in std::iter::once(&cfg.spool.dir)
        .chain(cfg.outputs.files())
        .cloned()
        .chain(databases)
    {
        crate::privdrop::hand_over(&p, &user).map_err(DaemonError::Privileges)?;
    }
    crate::privdrop::become_user(&user).map_err(DaemonError::Privileges)
}

type IntakeResult = Result<(), String>;

/// Start the intake thread; when it fails it tells the processing loop to finish and exit.
fn spawn_intake(
    capture: Capture,
    writer: Writer,
    shared: &Shared,
    cfg: &RunConfig,
) -> Result<JoinHandle<IntakeResult>, DaemonError> {
    let intake: Box<dyn FnOnce() -> IntakeResult + Send> = match capture {
        Capture::Nflog(sock, seq_file, held) => {
            let intake = intake::Intake {
                sock: *sock,
                writer,
                stop: shared.stop.clone(),
                wake: shared.wake.clone(),
                counters: shared.counters.clone(),
                seq_file,
                held,
            };
            Box::new(move || intake.run())
        }
        Capture::Queue(sock, adopted) => {
            let fail_open = match &cfg.capture {
                CaptureConfig::Queue(q) => q.fail_open,
                CaptureConfig::Nflog(_) => false,
            };
            let intake = queue_intake::QueueIntake {
                sock,
                writer,
                stop: shared.stop.clone(),
                wake: shared.wake.clone(),
                counters: shared.counters.clone(),
                fail_open,
                batch_max: cfg.batch_records.max(1),
                adopted,
            };
            Box::new(move || intake.run())
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
            eprintln!("{} {} (spool {spool})", queue_intake::READY, q.queue);
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
            eprintln!("fwlog: logging {label} (spool {spool})");
            label
        }
    }
}
