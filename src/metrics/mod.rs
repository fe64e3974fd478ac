//! `fwlog run --metrics ADDR:PORT`: the daemon's counters in the Prometheus text format.
//!
//! Spec:
//! - `GET /metrics` (and `HEAD`) answers 200 with the OpenMetrics text format (which
//!   Prometheus scrapes natively), encoded by the
//!   `prometheus-client` crate from a fresh snapshot of the counters the daemon already keeps
//!   (the same atomics SIGUSR1 prints, so a scrape and a SIGUSR1 line agree). Any other path
//!   is 404, any other method 405; nothing else is served.
//! - The endpoint runs on its own thread with its own single-threaded runtime: a scrape never
//!   runs on the intake thread or the processing loop, and slow or hostile clients cost them
//!   nothing (see [`server`] for the limits).
//! - Metric names are stable (documented in fwlog(8)); counters end in `_total`.

pub mod groups;
pub mod server;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::counters::{now_unix_ms, Counters};
use crate::dns::{DnsStats, Resolver};
use crate::pipeline::outputs::OutputStats;

/// What a scrape reads.
#[derive(Clone)]
pub struct MetricsSource {
    pub counters: Arc<Counters>,
    pub resolver: Option<Resolver>,
    /// `--spool-max`, for the free-space gauge's limit.
    pub spool_max: u64,
    /// The live spool's own counters (backlog, bytes on disk).
    pub spool: fwlog_spool::StatsHandle,
    /// Every output's counters.
    pub outputs: Vec<Arc<OutputStats>>,
    /// NFQUEUE audit mode (`--queue`): report the verdicts.
    pub queue: bool,
    /// Printed and lost per group (filled by a [`groups::GroupSink`] among the outputs).
    pub groups: groups::GroupTable,
}

type Labels = Vec<(String, String)>;

fn counter(reg: &mut Registry, name: &str, help: &str, v: u64) {
    let c: Counter = Counter::default();
    c.inc_by(v);
    reg.register(name, help, c);
}

fn gauge(reg: &mut Registry, name: &str, help: &str, v: i64) {
    let g: Gauge = Gauge::default();
    g.set(v);
    reg.register(name, help, g);
}

fn gauge_f(reg: &mut Registry, name: &str, help: &str, v: f64) {
    let g: Gauge<f64, AtomicU64> = Gauge::default();
    g.set(v);
    reg.register(name, help, g);
}

fn as_i64(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

fn geo(reg: &mut Registry, c: &Counters) {
    let g = |a: &AtomicU64| a.load(Relaxed);
    counter(
        reg,
        "fwlog_geo_cache_hits",
        "GeoIP/ASN lookups answered from the cache",
        g(&c.geo_hits),
    );
    counter(
        reg,
        "fwlog_geo_cache_misses",
        "GeoIP/ASN lookups that read the databases",
        g(&c.geo_misses),
    );
    counter(
        reg,
        "fwlog_geo_errors",
        "GeoIP/ASN lookups a database could not answer",
        g(&c.geo_errors),
    );
}

fn dns(reg: &mut Registry, d: &DnsStats) {
    counter(
        reg,
        "fwlog_dns_lookups",
        "Addresses the pipeline asked the resolver about",
        d.lookups,
    );
    counter(
        reg,
        "fwlog_dns_cache_hits",
        "Lookups answered from the name cache",
        d.hits,
    );
    counter(
        reg,
        "fwlog_dns_cache_misses",
        "Lookups not in the name cache",
        d.misses,
    );
    counter(
        reg,
        "fwlog_dns_queries",
        "Reverse queries sent to name servers",
        d.queries,
    );
    counter(
        reg,
        "fwlog_dns_timeouts",
        "Reverse queries that got no answer in time",
        d.timeouts,
    );
    counter(
        reg,
        "fwlog_dns_errors",
        "Reverse queries that failed otherwise",
        d.errors,
    );
    gauge(
        reg,
        "fwlog_dns_in_flight",
        "Reverse queries talking to servers now",
        as_i64(d.in_flight),
    );
    gauge(
        reg,
        "fwlog_dns_cached",
        "Addresses in the name cache",
        as_i64(d.cached),
    );
}

fn outputs(reg: &mut Registry, outs: &[Arc<OutputStats>]) {
    let written = Family::<Labels, Counter>::default();
    let errors = Family::<Labels, Counter>::default();
    let retrying = Family::<Labels, Gauge>::default();
    let refused = Family::<Labels, Counter>::default();
    let unrecorded = Family::<Labels, Counter>::default();
    for o in outs {
        // The target as the user wrote it, through the escaper every output uses (the
        // encoder itself escapes only `\`, `"` and newline).
        let mut name = Vec::with_capacity(o.name.len());
        crate::format::escape::escape_into(&mut name, o.name.as_bytes());
        let l = vec![(
            "output".to_string(),
            String::from_utf8_lossy(&name).into_owned(),
        )];
        written
            .get_or_create(&l)
            .inc_by(o.written_bytes.load(Relaxed));
        errors.get_or_create(&l).inc_by(o.errors.load(Relaxed));
        retrying
            .get_or_create(&l)
            .set(o.retrying.load(Relaxed) as i64);
        refused
            .get_or_create(&l)
            .inc_by(o.rows_refused.load(Relaxed));
        unrecorded
            .get_or_create(&l)
            .inc_by(o.losses_unrecorded.load(Relaxed));
    }
    reg.register(
        "fwlog_output_written_bytes",
        "Bytes written to each output",
        written,
    );
    reg.register(
        "fwlog_output_write_errors",
        "Failed writes per output (each retried)",
        errors,
    );
    reg.register(
        "fwlog_output_retrying",
        "1 while the output's last write failed and is being retried",
        retrying,
    );
    reg.register(
        "fwlog_output_rows_refused",
        "Packet rows a database output's target refused (stored as losses rows instead)",
        refused,
    );
    reg.register(
        "fwlog_output_losses_unrecorded",
        "Lost packets whose losses rows a database output's target refused too",
        unrecorded,
    );
}

fn groups(reg: &mut Registry, table: &groups::GroupTable, c: &Counters) {
    let received = Family::<Labels, Counter>::default();
    for (g, n) in c.per_group.snapshot() {
        received
            .get_or_create(&vec![("group".into(), g.to_string())])
            .inc_by(n);
    }
    reg.register(
        "fwlog_group_packets_received",
        "Packets read from the kernel, per NFLOG group (per queue number with --queue)",
        received,
    );
    let printed = Family::<Labels, Counter>::default();
    let lost = Family::<Labels, Counter>::default();
    // A poisoned lock means the sink panicked mid-merge; show what is there.
    let t = table.lock().unwrap_or_else(|e| e.into_inner());
    for (g, c) in t.iter() {
        let group = g.map(|g| g.to_string()).unwrap_or_default();
        if g.is_some() {
            printed
                .get_or_create(&vec![("group".into(), group.clone())])
                .inc_by(c.printed);
        }
        for (reason, n) in &c.lost {
            lost.get_or_create(&vec![
                ("group".into(), group.clone()),
                ("reason".into(), (*reason).into()),
            ])
            .inc_by(*n);
        }
    }
    reg.register(
        "fwlog_group_packets_printed",
        "Packets written to every output, per NFLOG group",
        printed,
    );
    reg.register(
        "fwlog_group_packets_lost",
        "Records lost per NFLOG group (empty: the loss report names none) and reason, from the loss reports printed",
        lost,
    );
}

fn spool(reg: &mut Registry, src: &MetricsSource) {
    let s = src.spool.stats();
    gauge(
        reg,
        "fwlog_spool_backlog_records",
        "Spool records not yet written to every output and acknowledged",
        as_i64(s.pending_records),
    );
    gauge_f(
        reg,
        "fwlog_spool_backlog_age_seconds",
        "Seconds since the oldest record not yet acknowledged was received; 0 when the backlog is empty",
        oldest_age(s.pending_records, &src.counters, now_unix_ms()),
    );
    gauge(
        reg,
        "fwlog_spool_disk_bytes",
        "Bytes in the spool's segment files",
        as_i64(s.disk_bytes),
    );
    gauge(
        reg,
        "fwlog_spool_max_bytes",
        "The spool's size limit (--spool-max)",
        as_i64(src.spool_max),
    );
    gauge(
        reg,
        "fwlog_spool_free_bytes",
        "Room left in the spool before --spool-max refuses packets",
        as_i64(src.spool_max.saturating_sub(s.disk_bytes)),
    );
    gauge(
        reg,
        "fwlog_spool_segments",
        "Segment files in the spool",
        as_i64(s.segments),
    );
}

/// The backlog's age at `now`: 0 when nothing is pending, or the loop holds no record yet
/// (it reads a record within a round of its commit), or the clock was set back below the
/// record's receive time.
fn oldest_age(pending: u64, c: &Counters, now_ms: u64) -> f64 {
    let oldest = c.oldest_unacked_unix_ms.load(Relaxed);
    if pending == 0 || oldest == 0 {
        return 0.0;
    }
    now_ms.saturating_sub(oldest) as f64 / 1000.0
}

fn verdicts(reg: &mut Registry, c: &Counters) {
    let g = |a: &AtomicU64| a.load(Relaxed);
    let verdicts = Family::<Labels, Counter>::default();
    for (v, n) in [
        ("accept", &c.queue_accepted),
        ("drop", &c.queue_dropped),
        ("accept-unlogged", &c.queue_unlogged),
    ] {
        verdicts
            .get_or_create(&vec![("verdict".into(), v.into())])
            .inc_by(g(n));
    }
    reg.register(
        "fwlog_nfqueue_verdicts",
        "NFQUEUE verdicts: accept once spooled, drop when the spool refused, accept-unlogged with --fail-open",
        verdicts,
    );
}

/// The text exposition of one snapshot.
pub fn render(src: &MetricsSource) -> String {
    let c = &src.counters;
    let g = |a: &AtomicU64| a.load(Relaxed);
    let mut reg = Registry::default();
    counter(
        &mut reg,
        "fwlog_packets_received",
        "Packets read from the kernel",
        g(&c.received),
    );
    counter(
        &mut reg,
        "fwlog_intake_rounds",
        "Rounds of the intake loop (receive, append, commit); received packets per round show how much intake takes at once",
        g(&c.intake_rounds),
    );
    counter(
        &mut reg,
        "fwlog_packets_spooled",
        "Packets appended to the spool",
        g(&c.spooled),
    );
    counter(
        &mut reg,
        "fwlog_packets_printed",
        "Packets written to every output",
        g(&c.printed),
    );
    counter(
        &mut reg,
        "fwlog_packets_replayed",
        "Printed packets that came from the spool at start-up",
        g(&c.replayed),
    );
    let lost = Family::<Labels, Counter>::default();
    for (reason, v) in [
        ("seq-gap", &c.lost_seq_gap),
        ("restart", &c.lost_restart),
        ("spool-full", &c.lost_spool_full),
        ("other", &c.lost_other),
    ] {
        lost.get_or_create(&vec![("reason".into(), reason.into())])
            .inc_by(g(v));
    }
    reg.register("fwlog_packets_lost", "Packets lost, by reason", lost);
    counter(
        &mut reg,
        "fwlog_enobufs_events",
        "Netlink receive buffer overflows (each hides packets the gaps count)",
        g(&c.enobufs),
    );
    counter(
        &mut reg,
        "fwlog_output_errors",
        "Failed output writes (each retried until it succeeds)",
        g(&c.output_errors),
    );
    spool(&mut reg, src);
    outputs(&mut reg, &src.outputs);
    groups(&mut reg, &src.groups, c);
    if src.queue {
        verdicts(&mut reg, c);
    }
    let last = g(&c.last_ack_unix_ms);
    if last > 0 {
        let now = now_unix_ms().max(last);
        gauge_f(
            &mut reg,
            "fwlog_last_ack_age_seconds",
            "Seconds since the spool was last acknowledged",
            now.saturating_sub(last) as f64 / 1000.0,
        );
    }
    if let Some(r) = &src.resolver {
        dns(&mut reg, &r.stats());
    }
    if c.geo_on.load(Relaxed) {
        geo(&mut reg, c);
    }
    let mut out = String::with_capacity(4096);
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_age_is_zero_when_empty_and_never_negative() {
        let c = Counters::default();
        assert_eq!(oldest_age(5, &c, 10_000), 0.0, "no record held yet");
        c.oldest_unacked_unix_ms.store(4_000, Relaxed);
        assert_eq!(oldest_age(5, &c, 10_500), 6.5);
        assert_eq!(oldest_age(0, &c, 10_000), 0.0, "nothing pending");
        assert_eq!(oldest_age(5, &c, 3_000), 0.0, "the clock was set back");
    }

    #[test]
    fn every_metric_is_in_the_man_page_and_groups_show_from_zero() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, r, _) =
            fwlog_spool::Spool::open(dir.path(), fwlog_spool::Options::default()).unwrap();
        w.append(b"x").unwrap();
        w.commit().unwrap();
        let counters = Arc::new(Counters::default());
        counters.per_group.bind(&[5, 6]);
        counters.per_group.count([Some(5), Some(5)].into_iter());
        counters
            .oldest_unacked_unix_ms
            .store(now_unix_ms() - 3_000, Relaxed);
        let text = render(&MetricsSource {
            counters,
            resolver: None,
            spool_max: 1 << 20,
            spool: r.stats_handle(),
            outputs: Vec::new(),
            queue: true,
            groups: groups::GroupTable::default(),
        });
        assert!(
            text.contains("fwlog_group_packets_received_total{group=\"5\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("fwlog_group_packets_received_total{group=\"6\"} 0\n"),
            "{text}"
        );
        let age = text
            .lines()
            .find_map(|l| l.strip_prefix("fwlog_spool_backlog_age_seconds "))
            .and_then(|v| v.parse::<f64>().ok())
            .expect("the backlog's age");
        assert!((3.0..60.0).contains(&age), "{age}");
        let man = include_str!("../../man/fwlog.8");
        for name in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let name = name.split(' ').next().unwrap_or_default();
            assert!(man.contains(name), "{name} is not in fwlog(8)");
        }
    }
}
