//! The processing loop: spool -> resolve -> format -> outputs -> acknowledge.
//!
//! Invariants:
//! - Lines come out in spool order, which is arrival order. The packet at the head of the
//!   window waits for its names at most until its deadline (`--dns-timeout` after it entered the
//!   window), then prints with what is known; packets behind it wait for it.
//! - Memory is bounded by the window (`--window` records): when it is full, nothing more is read
//!   from the spool; the backlog stays on disk however large it grows.
//! - A record is acknowledged only after every output wrote its line. While an output fails,
//!   the formatted batch is kept and retried with backoff, nothing new is printed, and intake
//!   keeps spooling.
//! - DNS state lives in the resolver's cache, not here: a packet is ready when every address
//!   of it is a cache hit (a name, a known absence, or a recent failure).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tokio::time::{sleep_until, Instant};

use super::counters::{bump, Counters};
use super::loss;
use super::outputs::Outputs;
use super::source::Source;
use crate::dns::{Lookup, Resolver, SafeName};
use crate::format::Names;
use crate::nflog::attr::{self, LossRecord, TlvOrder};

/// One spooled record between the spool and the outputs.
struct Entry {
    seq: u64,
    data: Vec<u8>,
    replayed: bool,
    deadline: Instant,
    /// Names known when the record entered the window (cache hits).
    names: Vec<(IpAddr, SafeName)>,
    /// Addresses still being looked up; the record waits for them until its deadline.
    waiting: Vec<IpAddr>,
}

/// Names of one packet, borrowed from its entry when it prints.
struct PacketNames<'a>(&'a [(IpAddr, SafeName)]);

impl Names for PacketNames<'_> {
    fn name(&self, addr: IpAddr) -> Option<&str> {
        self.0
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, n)| n.shown())
    }
}

pub struct Processor<S: Source> {
    pub source: S,
    pub outputs: Outputs,
    pub resolver: Option<Resolver>,
    pub dns_timeout: Duration,
    pub window_cap: usize,
    pub counters: Arc<Counters>,
    /// Poked by intake after each commit.
    pub data_wake: Arc<Notify>,
    /// Set on SIGTERM/SIGINT: intake stops; this loop finishes what is ready and returns.
    pub stop: Arc<AtomicBool>,
    /// How long shutdown may take to print what is ready.
    pub stop_grace: Duration,
    /// Keep retrying a failed output (the daemon) rather than failing (read, replay).
    pub retry_outputs: bool,
    /// The service manager to tell about readiness, reloads, stopping and liveness (`fwlog
    /// run` started by systemd); `None` for read and replay.
    pub service: Option<crate::sdnotify::service::Service>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Outputs are written (and synced, and the spool acknowledged) at most this often while little
/// is pending: every write costs an fdatasync of the output and one of the spool's ledger, and
/// under load a cycle per intake commit (every 2 ms) spent most of fwlog's CPU in the kernel.
/// It adds at most this much to a line's latency.
const WRITE_INTERVAL: Duration = Duration::from_millis(10);
/// ... unless this much is waiting.
const WRITE_BYTES: usize = 256 * 1024;

/// An output failed where retrying is not wanted. A closed pipe (`fwlog read | head`) is the
/// reader's choice, not an error: it ends the run quietly.
struct OutputFailed {
    target: String,
    error: std::io::Error,
}

/// The message for a closed pipe; callers treat it as success.
pub const BROKEN_PIPE: &str = "output closed";

impl OutputFailed {
    fn into_message(self) -> String {
        if self.error.kind() == std::io::ErrorKind::BrokenPipe {
            return BROKEN_PIPE.into();
        }
        format!("cannot write to {}: {}", self.target, self.error)
    }
}

impl<S: Source> Processor<S> {
    pub async fn run(mut self) -> Result<(), String> {
        let sig =
            |k: SignalKind| signal(k).map_err(|e| format!("cannot install signal handler: {e}"));
        let mut hup = sig(SignalKind::hangup())?;
        let mut usr1 = sig(SignalKind::user_defined1())?;
        let mut term = sig(SignalKind::terminate())?;
        let mut int = sig(SignalKind::interrupt())?;
        // Ready only now: a SIGTERM that follows READY=1 must find its handler.
        if let Some(s) = &mut self.service {
            s.ready();
        }
        let dns_wake = Arc::new(Notify::new());
        let mut window: VecDeque<Entry> = VecDeque::with_capacity(self.window_cap.min(1 << 16));
        let mut last_printed: Option<u64> = None;
        let mut retry_at: Option<Instant> = None;
        let mut last_write = Instant::now();
        let mut backoff = Duration::from_millis(100);
        let mut failing: Option<String> = None;
        let mut stop_at: Option<Instant> = None;

        loop {
            if stop_at.is_none() && self.stop.load(Ordering::Relaxed) {
                // Intake ended (an error it has reported): finish like on SIGTERM.
                self.begin_stop(&mut stop_at);
            }
            let now = Instant::now();
            // Watchdog and status: only reached when the loop goes round (see sdnotify::service).
            let source = &self.source;
            let service_at = self
                .service
                .as_mut()
                .and_then(|s| s.tick(now.into_std(), || source.pending()))
                .map(Instant::from_std);
            let retry_due = retry_at.is_none_or(|t| now >= t);
            // When the window was full, the source may hold more: once draining makes room, go
            // round again at once instead of waiting for a wake-up (a backlog or a replay would
            // otherwise move one window per tick).
            let mut more = false;
            if failing.is_none() {
                let mut full = false;
                if stop_at.is_none() {
                    self.fill(&mut window, &dns_wake)?;
                    full = window.len() >= self.window_cap;
                }
                last_printed = self.drain(&mut window).or(last_printed);
                more = full && window.len() < self.window_cap;
            }
            let pending = self.outputs.pending_bytes();
            let write_due = pending >= WRITE_BYTES
                || now >= last_write + WRITE_INTERVAL
                || stop_at.is_some()
                || self.source.finished();
            if pending > 0 && retry_due && write_due {
                last_write = now;
                match self.outputs.write() {
                    Ok(()) => {
                        if let Some(what) = failing.take() {
                            eprintln!("fwlog: output {what} works again; catching up");
                        }
                        retry_at = None;
                        backoff = Duration::from_millis(100);
                    }
                    Err((what, e)) => {
                        bump(&self.counters.output_errors, 1);
                        if !self.retry_outputs {
                            return Err(OutputFailed {
                                target: what,
                                error: e,
                            }
                            .into_message());
                        }
                        if failing.is_none() {
                            eprintln!("fwlog: cannot write to {what}: {e}; nothing is acknowledged, packets stay in the spool, retrying");
                        }
                        failing = Some(what);
                        // From the end of the attempt, not from `now`: an attempt can take as
                        // long as the back-off (a 5 s TCP connect limit), and counting from its
                        // start would retry at once, again and again, and the loop would not get
                        // to its signals (SIGTERM waited for seconds).
                        retry_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            // Acknowledge only what every output has written: formatted lines may wait in the
            // buffers for the next write (WRITE_INTERVAL), and a crash must replay them.
            if failing.is_none() && self.outputs.pending_bytes() == 0 {
                if let Some(seq) = last_printed.take() {
                    self.source.ack(seq)?;
                    self.counters.acked();
                }
            }
            if self.source.finished() && window.is_empty() && self.outputs.pending_bytes() == 0 {
                break;
            }
            if let Some(t) = stop_at {
                let idle = window.is_empty() && self.outputs.pending_bytes() == 0;
                // A failing output is not retried while stopping: a retry can take seconds (a
                // 5 s TCP connect limit), and what it would print stays in the spool anyway.
                if idle || failing.is_some() || Instant::now() >= t {
                    break;
                }
            }

            let head = window.front().map(|e| e.deadline);
            let wake_at = [
                head,
                retry_at,
                stop_at,
                service_at,
                Some(Instant::now() + Duration::from_millis(250)),
                more.then(Instant::now),
                (self.outputs.pending_bytes() > 0).then_some(last_write + WRITE_INTERVAL),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(Instant::now);
            tokio::select! {
                _ = self.data_wake.notified() => {}
                _ = dns_wake.notified() => {}
                _ = sleep_until(wake_at) => {}
                _ = hup.recv() => {
                    if let Some(s) = &self.service {
                        s.reloading();
                    }
                    self.outputs.reopen();
                    if let Some(s) = &self.service {
                        s.reloaded();
                    }
                }
                _ = usr1.recv() => {
                    let dns = self.resolver.as_ref().map(|r| r.stats().to_string());
                    eprintln!("{}", self.counters.line(self.source.pending(), dns));
                }
                _ = term.recv() => self.begin_stop(&mut stop_at),
                _ = int.recv() => self.begin_stop(&mut stop_at),
            }
        }
        Ok(())
    }

    fn begin_stop(&mut self, stop_at: &mut Option<Instant>) {
        if stop_at.is_none() {
            if let Some(s) = &mut self.service {
                s.stopping();
            }
            self.stop.store(true, Ordering::Relaxed);
            *stop_at = Some(Instant::now() + self.stop_grace);
        }
    }

    /// Read committed records into the window until it is full or the reader caught up, and
    /// start name lookups for their addresses.
    fn fill(&mut self, window: &mut VecDeque<Entry>, dns_wake: &Arc<Notify>) -> Result<(), String> {
        // One clock read per fill, not per record: records read together enter the window
        // together and share a deadline.
        let now = Instant::now();
        while window.len() < self.window_cap {
            let Some(rec) = self.source.next()? else {
                return Ok(());
            };
            let mut names = Vec::new();
            let mut waiting = Vec::new();
            if let (Some(r), None) = (&self.resolver, LossRecord::decode(&rec.data)) {
                let p = attr::parse(&rec.data, TlvOrder::NATIVE, loss::EPOCH);
                for ip in crate::decode::addresses(&p) {
                    match r.cached(ip) {
                        Lookup::Hit(Some(n)) => names.push((ip, n)),
                        Lookup::Hit(None) => {}
                        Lookup::Pending => waiting.push(ip),
                        Lookup::Miss => {
                            // Only the packet that starts a lookup waits on it for a wake-up;
                            // packets behind it in the window wait behind it anyway.
                            if let Some(pending) = r.start(ip) {
                                let wake = Arc::clone(dns_wake);
                                let deadline = now + self.dns_timeout;
                                tokio::spawn(async move {
                                    let _ = pending.wait_until(deadline).await;
                                    wake.notify_one();
                                });
                                waiting.push(ip);
                            }
                        }
                    }
                }
            }
            window.push_back(Entry {
                seq: rec.seq,
                data: rec.data,
                replayed: rec.replayed,
                deadline: now + self.dns_timeout,
                names,
                waiting,
            });
        }
        Ok(())
    }

    /// Format every ready record at the head of the window. Returns the last seq formatted.
    fn drain(&mut self, window: &mut VecDeque<Entry>) -> Option<u64> {
        let mut last = None;
        let now = Instant::now();
        while let Some(head) = window.front() {
            let ready = match &self.resolver {
                None => true,
                Some(r) => {
                    now >= head.deadline
                        || head
                            .waiting
                            .iter()
                            .all(|&ip| matches!(r.peek(ip), Lookup::Hit(_)))
                }
            };
            if !ready {
                break;
            }
            let Some(mut e) = window.pop_front() else {
                break;
            };
            if let Some(l) = LossRecord::decode(&e.data) {
                let t = attr::parse(&e.data, TlvOrder::NATIVE, loss::EPOCH).timestamp;
                self.outputs.loss(&loss::event(&l, t), e.seq);
            } else {
                if let Some(r) = &self.resolver {
                    for &ip in &e.waiting {
                        if let Lookup::Hit(Some(n)) = r.peek(ip) {
                            e.names.push((ip, n));
                        }
                    }
                }
                let mut p = attr::parse(&e.data, TlvOrder::NATIVE, loss::EPOCH);
                p.replayed = e.replayed;
                self.outputs.packet(&crate::sink::PacketView {
                    seq: e.seq,
                    record: &e.data,
                    packet: &p,
                    names: &PacketNames(&e.names),
                });
                bump(&self.counters.printed, 1);
                if e.replayed {
                    bump(&self.counters.replayed, 1);
                }
            }
            last = Some(e.seq);
        }
        last
    }
}
