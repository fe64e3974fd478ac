//! Hold mode (the NFLOG socket kept in the service manager's fd store) takes several datagrams
//! per turn of the intake loop, as the normal receive path does: counted by the loop's own
//! counter (`fwlog_intake_rounds_total`), not by timing. The test plays systemd (see
//! `support::fdstore`).

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::daemon::{lines, send_udp, wait_for, RunArgs};
use support::fdstore::*;
use support::netns::NetNs;

const ADDR: &str = "127.0.0.1:9642";

/// The endpoint's samples by name, scraped with curl inside the namespace.
fn scrape(ns: &NetNs) -> HashMap<String, f64> {
    let o = ns
        .command("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("http://{ADDR}/metrics"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn hold_mode_takes_several_datagrams_per_round() {
    require_root!();
    let ns = NetNs::new("fdbatch");
    rule(&ns, &[(9005, 5)]);
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::bind(dir.path());
    let out = dir.path().join("out.json");
    // qthresh 1: the kernel sends every packet as a datagram of its own.
    let args = RunArgs::new(dir.path())
        .group(5)
        .output(Some("json"), "out.json")
        .with(&["--qthresh", "1", "--metrics", ADDR]);

    let d = m.spawn(&ns, dir.path(), &args.args());
    wait_ready(&d);
    send_udp(&ns, 9005, 0..10);
    wait_for("10 lines", Duration::from_secs(20), || {
        lines(&out).len() >= 10
    });
    assert_eq!(d.stop(), 0);
    assert_eq!(m.names(), ["fwlog-nflog-5"], "the socket went to the store");

    // While no fwlog runs, 400 datagrams wait in the stored socket.
    const QUEUED: usize = 400;
    send_udp(&ns, 9005, 10..10 + QUEUED as u32);

    let d = m.spawn(&ns, dir.path(), &args.args());
    wait_ready(&d);
    assert!(
        d.stderr_text().contains("took the NFLOG socket back"),
        "{}",
        d.stderr_text()
    );
    wait_for("every packet printed", Duration::from_secs(30), || {
        lines(&out).len() >= 10 + QUEUED
    });
    let s = scrape(&ns);
    let received = s["fwlog_packets_received_total"];
    let rounds = s["fwlog_intake_rounds_total"];
    assert_eq!(d.stop(), 0);
    assert_eq!(received, QUEUED as f64, "{s:?}");
    // One datagram per round would take at least 400 rounds; batched, a round takes up to 64,
    // plus the idle rounds until the scrape (at most 10 a second).
    assert!(
        rounds < QUEUED as f64 / 2.0,
        "{rounds} rounds for {received} datagrams: hold mode is not batching"
    );
    let (n, losses) = per_group(&out);
    assert_eq!(n.get(&5), Some(&(10 + QUEUED)));
    assert!(losses.is_empty(), "{losses:#?}");
    assert_eq!(rule_count(&ns, 9005), (10 + QUEUED) as u64);
}
