//! What `fwlog run` tells its service manager, and when. [`super::Notifier`] carries it.
//!
//! - `READY=1` (with a `STATUS=` line) once the processing loop has installed its signal
//!   handlers. By then the capture socket is bound (what the kernel logs waits in its buffer
//!   for intake), the spool is open and recovered (its replay under way), `--user` is done,
//!   DNS is set up and intake runs: a packet logged once the manager has seen `READY=1` will be
//!   spooled, and a SIGTERM from then on is a clean stop. Units ordered `After=fwlog.service`
//!   start after that point.
//! - `RELOADING=1` (with `MONOTONIC_USEC=`, which systemd 253 and later want with it) before
//!   SIGHUP reopens the outputs, `READY=1` after.
//! - `STOPPING=1` when shutdown begins (SIGTERM, SIGINT, or intake failing).
//! - `STATUS=` with the counters, at most every [`STATUS_EVERY`] and only when they moved.
//! - `WATCHDOG=1` every quarter of `WATCHDOG_USEC` (so a stall is caught only after three
//!   quarters of it, not half), from the processing loop (so only while it goes round), and
//!   only if intake went round its own loop since the previous ping (it does at least every
//!   100 ms, idle or busy). The pings stop, and the manager restarts fwlog, when either thread
//!   is stuck that long: a deadlock, a spool commit that does not return, or an output call that
//!   blocks (a `tcp://` connect or write is limited to 5 s, but name resolution and a stalled
//!   journal are not). A restart unbinds the capture for seconds, losing what the kernel logs
//!   meanwhile, so the packaged unit leaves the watchdog off; fwlog(8) says how to enable it.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Notifier, NotifyState};
use crate::counters::Counters;

/// `STATUS=` updates come at most this often.
pub const STATUS_EVERY: Duration = Duration::from_secs(5);

/// How often a stalled watchdog check looks again: intake may be late, not stuck.
const RECHECK: Duration = Duration::from_millis(50);

pub struct Service {
    notifier: Notifier,
    /// What is captured, for the status line: "NFLOG group 5", "NFQUEUE queue 3".
    label: String,
    counters: Arc<Counters>,
    ready: bool,
    stopping: bool,
    status_at: Instant,
    /// (received, printed) when the last status line went out.
    status_seen: (u64, u64),
    watchdog: Option<Watchdog>,
}

struct Watchdog {
    every: Duration,
    next: Instant,
    /// `Counters::intake_rounds` at the last ping.
    intake_rounds: u64,
    /// A stall was reported on stderr; cleared when intake moves again.
    stall_reported: bool,
}

impl Service {
    pub fn new(notifier: Notifier, label: String, counters: Arc<Counters>) -> Service {
        let now = Instant::now();
        let watchdog = notifier.watchdog_timeout().map(|t| Watchdog {
            every: (t / 4).max(Duration::from_millis(1)),
            next: now,
            intake_rounds: 0,
            stall_reported: false,
        });
        Service {
            notifier,
            label,
            counters,
            ready: false,
            stopping: false,
            status_at: now,
            status_seen: (0, 0),
            watchdog,
        }
    }

    /// Start-up is complete (see the module doc for what that guarantees).
    pub fn ready(&mut self) {
        self.ready = true;
        let status = format!("logging {}", self.label);
        self.notifier
            .send(&[NotifyState::Ready, NotifyState::Status(&status)]);
        let now = Instant::now();
        self.status_at = now + STATUS_EVERY;
        if let Some(w) = &mut self.watchdog {
            w.next = now;
            w.intake_rounds = self.counters.intake_rounds.load(Relaxed);
        }
    }

    /// SIGHUP: the outputs are about to be reopened.
    pub fn reloading(&self) {
        let mut states = vec![NotifyState::Reloading];
        // Without a monotonic clock reading systemd 253+ fails the reload; there is always one
        // on Linux, so this is only belt and braces.
        if let Ok(t) = NotifyState::monotonic_usec_now() {
            states.push(t);
        }
        self.notifier.send(&states);
    }

    /// SIGHUP: the outputs were reopened (failures are reported; the daemon runs on).
    pub fn reloaded(&self) {
        self.notifier.send(&[NotifyState::Ready]);
    }

    /// Shutdown has begun.
    pub fn stopping(&mut self) {
        if !self.stopping {
            self.stopping = true;
            self.notifier.send(&[NotifyState::Stopping]);
        }
    }

    /// Called each time round the processing loop: a watchdog ping and a status line when due.
    /// `pending` gives the spool's backlog (called only for a status line). Returns when the
    /// loop must come round again at the latest.
    pub fn tick(&mut self, now: Instant, pending: impl FnOnce() -> u64) -> Option<Instant> {
        if !self.ready || !self.notifier.enabled() {
            return None;
        }
        if !self.stopping && now >= self.status_at {
            self.status(pending);
            self.status_at = now + STATUS_EVERY;
        }
        let w = self.watchdog.as_mut()?;
        if now >= w.next {
            let rounds = self.counters.intake_rounds.load(Relaxed);
            if rounds != w.intake_rounds || self.stopping {
                self.notifier.send(&[NotifyState::Watchdog]);
                w.intake_rounds = rounds;
                w.next = now + w.every;
                w.stall_reported = false;
            } else {
                if !w.stall_reported && now >= w.next + w.every {
                    eprintln!(
                        "fwlog: watchdog: the intake thread has not gone round for {:?}; no keep-alive is sent while it is stuck",
                        w.every * 2
                    );
                    w.stall_reported = true;
                }
                return Some(now + RECHECK.min(w.every));
            }
        }
        Some(w.next)
    }

    fn status(&mut self, pending: impl FnOnce() -> u64) {
        let seen = (
            self.counters.received.load(Relaxed),
            self.counters.printed.load(Relaxed),
        );
        if seen == self.status_seen {
            return;
        }
        self.status_seen = seen;
        let line = format!(
            "logging {}: {} received, {} printed, {} waiting in the spool",
            self.label,
            seen.0,
            seen.1,
            pending()
        );
        self.notifier.send(&[NotifyState::Status(&line)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    fn setup(watchdog: Option<Duration>) -> (tempfile::TempDir, UnixDatagram, Service) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_nonblocking(true).unwrap();
        let n = Notifier::connect(path.into_os_string(), watchdog);
        let s = Service::new(n, "NFLOG group 5".into(), Arc::new(Counters::default()));
        (dir, rx, s)
    }

    fn drain(rx: &UnixDatagram) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = rx.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    #[test]
    fn ready_reload_stop_in_order_and_stop_once() {
        let (_d, rx, mut s) = setup(None);
        assert_eq!(s.tick(Instant::now(), || 0), None, "nothing before ready");
        s.ready();
        s.reloading();
        s.reloaded();
        s.stopping();
        s.stopping();
        let m = drain(&rx);
        assert_eq!(m.len(), 4, "{m:?}");
        assert_eq!(m[0], "READY=1\nSTATUS=logging NFLOG group 5\n");
        assert!(m[1].starts_with("RELOADING=1\nMONOTONIC_USEC="), "{m:?}");
        assert_eq!(m[2], "READY=1\n");
        assert_eq!(m[3], "STOPPING=1\n");
    }

    #[test]
    fn status_only_when_the_counters_moved_and_not_too_often() {
        let (_d, rx, mut s) = setup(None);
        s.ready();
        drain(&rx);
        let t0 = Instant::now();
        s.tick(t0 + STATUS_EVERY, || 0);
        assert!(drain(&rx).is_empty(), "counters did not move");
        s.counters.received.store(3, Relaxed);
        s.counters.printed.store(2, Relaxed);
        s.tick(t0 + STATUS_EVERY, || 1);
        assert!(drain(&rx).is_empty(), "too soon after the last check");
        s.tick(t0 + STATUS_EVERY * 2, || 1);
        assert_eq!(
            drain(&rx),
            ["STATUS=logging NFLOG group 5: 3 received, 2 printed, 1 waiting in the spool\n"]
        );
    }

    #[test]
    fn watchdog_pings_at_a_quarter_of_the_timeout_only_while_intake_goes_round() {
        let (_d, rx, mut s) = setup(Some(Duration::from_secs(4)));
        s.ready();
        drain(&rx);
        let t0 = Instant::now();
        // Intake went round: ping, next one a second later.
        s.counters.intake_rounds.store(1, Relaxed);
        let next = s.tick(t0, || 0).unwrap();
        assert_eq!(drain(&rx), ["WATCHDOG=1\n"]);
        assert_eq!(next, t0 + Duration::from_secs(1));
        assert_eq!(s.tick(t0 + Duration::from_millis(500), || 0), Some(next));
        assert!(drain(&rx).is_empty(), "not due yet");
        // Intake stuck: no ping, look again soon.
        let again = s.tick(next, || 0).unwrap();
        assert!(drain(&rx).is_empty(), "intake did not go round");
        assert!(again <= next + RECHECK);
        // It moves again: ping at once.
        s.counters.intake_rounds.store(2, Relaxed);
        s.tick(again, || 0);
        assert_eq!(drain(&rx), ["WATCHDOG=1\n"]);
    }

    #[test]
    fn no_watchdog_without_watchdog_usec() {
        let (_d, rx, mut s) = setup(None);
        s.ready();
        drain(&rx);
        s.counters.intake_rounds.store(1, Relaxed);
        assert_eq!(s.tick(Instant::now() + Duration::from_secs(1), || 0), None);
        assert!(drain(&rx).is_empty());
    }
}
