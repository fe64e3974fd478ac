//! The daemon's counters: updated lock-free by the intake thread and the processing loop,
//! written to stderr on SIGUSR1 and at exit.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

#[derive(Default, Debug)]
pub struct Counters {
    /// Packets read from the netlink socket.
    pub received: AtomicU64,
    /// Packets appended to the spool.
    pub spooled: AtomicU64,
    /// Packets written by every output (counted once the write succeeded).
    pub printed: AtomicU64,
    /// Printed packets that came from the spool at start-up (possibly printed before a crash).
    pub replayed: AtomicU64,
    /// Loss by cause (records, where the kernel told how many).
    pub lost_seq_gap: AtomicU64,
    pub lost_restart: AtomicU64,
    pub lost_spool_full: AtomicU64,
    pub lost_other: AtomicU64,
    /// ENOBUFS episodes (each hides the records the sequence gaps then count).
    pub enobufs: AtomicU64,
    /// Failed output writes (each retried until it succeeds).
    pub output_errors: AtomicU64,
    /// The spool's unacknowledged records when the processing loop ended (the exit line).
    pub pending_at_exit: AtomicU64,
    /// Times round the intake loop, which goes round at least every 100 ms, idle or busy: the
    /// watchdog's evidence that intake is not stuck (see `sdnotify::service`). Not printed.
    pub intake_rounds: AtomicU64,
    /// NFQUEUE verdicts: accepted once spooled, dropped (spool refused), accepted unlogged
    /// (`--fail-open`). For `--metrics`; the queue intake prints them at exit.
    pub queue_accepted: AtomicU64,
    pub queue_dropped: AtomicU64,
    pub queue_unlogged: AtomicU64,
    /// When the processing loop last acknowledged records: milliseconds since the Unix epoch,
    /// 0 before the first acknowledgement.
    pub last_ack_unix_ms: AtomicU64,
    /// GeoIP/ASN lookups (`--geoip`, `--asn`): answered from the cache, from the databases,
    /// and failed; copied from the processing loop's lookup cache after each fill of its
    /// window (not per lookup). `geo_on` says whether there are databases at all.
    pub geo_on: AtomicBool,
    pub geo_hits: AtomicU64,
    pub geo_misses: AtomicU64,
    pub geo_errors: AtomicU64,
}

pub fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

impl Counters {
    /// Note that the processing loop acknowledged records just now (for `--metrics`).
    pub fn acked(&self) {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.last_ack_unix_ms.store(ms, Relaxed);
    }

    /// Take the lookup cache's figures (see `geo_hits`).
    pub fn set_geo(&self, s: crate::geo::GeoStats) {
        self.geo_on.store(true, Relaxed);
        self.geo_hits.store(s.hits, Relaxed);
        self.geo_misses.store(s.misses, Relaxed);
        self.geo_errors.store(s.errors, Relaxed);
    }

    /// One line: what SIGUSR1 prints. `pending` is the spool's unacknowledged count; `dns` the
    /// resolver's own line when DNS is on.
    pub fn line(&self, pending: u64, dns: Option<String>) -> String {
        let g = |c: &AtomicU64| c.load(Relaxed);
        let mut s = format!(
            "fwlog: received={} spooled={} printed={} replayed={} pending={} lost-seq-gap={} lost-restart={} lost-spool-full={} lost-other={} enobufs-events={} output-errors={}",
            g(&self.received),
            g(&self.spooled),
            g(&self.printed),
            g(&self.replayed),
            pending,
            g(&self.lost_seq_gap),
            g(&self.lost_restart),
            g(&self.lost_spool_full),
            g(&self.lost_other),
            g(&self.enobufs),
            g(&self.output_errors),
        );
        if let Some(d) = dns {
            let _ = write!(s, "; dns {d}");
        }
        if self.geo_on.load(Relaxed) {
            let _ = write!(
                s,
                "; geo hits={} misses={} errors={}",
                g(&self.geo_hits),
                g(&self.geo_misses),
                g(&self.geo_errors)
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geo_figures_join_the_line_only_with_databases() {
        let c = Counters::default();
        assert!(!c.line(0, None).contains("geo"));
        c.set_geo(crate::geo::GeoStats {
            hits: 5,
            misses: 2,
            errors: 0,
        });
        assert!(c.line(0, None).ends_with("; geo hits=5 misses=2 errors=0"));
    }

    #[test]
    fn the_counters_line_is_key_value_words_throughout() {
        let c = Counters::default();
        bump(&c.received, 3);
        let line = c.line(2, Some("lookups=8 hits=6".into()));
        let body = line.strip_prefix("fwlog: ").expect("prefix");
        let (own, dns) = body.split_once("; dns ").expect("dns part");
        for w in own.split(' ').chain(dns.split(' ')) {
            let (k, v) = w
                .split_once('=')
                .unwrap_or_else(|| panic!("{w:?} in {line}"));
            assert!(!k.is_empty() && v.parse::<u64>().is_ok(), "{w:?} in {line}");
        }
        assert!(
            own.starts_with("received=3 ") && own.contains(" pending=2 "),
            "{line}"
        );
        assert!(!dns.contains("dns"), "the word dns once: {line}");
    }
}
