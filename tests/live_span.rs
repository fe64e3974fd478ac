//! Live traffic through a real daemon: lines reach the output file at once, while the file's
//! `fdatasync` and the spool's acknowledgement (the ledger's sync) come once per live span
//! (100 ms), not once per intake commit; and once traffic stops, the last span is synced and
//! acknowledged without any further traffic (the `pending` counter reaches 0).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::daemon::{lines, send_udp, wait_for, RunArgs};
use support::netns::NetNs;

/// The ledger's (generation, acknowledged position): the newest of its two slots (see
/// fwlog-spool(5)). Each acknowledgement stored is one generation.
fn ledger(spool: &Path) -> (u64, u64) {
    let b = std::fs::read(spool.join("ledger")).unwrap_or_default();
    [0usize, 512]
        .iter()
        .filter_map(|&at| b.get(at..at + 24))
        .filter(|s| s[..4] == *b"FWLA")
        .map(|s| {
            let n = |r: std::ops::Range<usize>| u64::from_le_bytes(s[r].try_into().unwrap());
            (n(8..16), n(16..24))
        })
        .max()
        .unwrap_or((0, 0))
}

/// The last `fwlog: received=...` line's counter `name` after a SIGUSR1.
fn counter(stderr: &str, name: &str) -> Option<u64> {
    let line = stderr.lines().rev().find(|l| l.contains(" printed="))?;
    let v = line
        .split(' ')
        .find_map(|w| w.strip_prefix(&format!("{name}=")))?;
    v.parse().ok()
}

#[test]
fn live_traffic_is_acknowledged_once_per_span_and_the_last_span_without_more_traffic() {
    require_root!();
    let ns = NetNs::new("livespan");
    ns.output_rules(&["udp dport 9999 log prefix \"LIVE \" group 7"]);
    let dir = tempfile::tempdir().unwrap();
    let args = RunArgs::new(dir.path())
        .group(7)
        .output(Some("json"), "out.json");
    let out = args.path("out.json");
    let spool = args.spool();
    let d = args.start(&ns);
    let (gen0, _) = ledger(&spool);

    // 30 bursts 40 ms apart: each its own intake commit and its own batch of lines.
    let bursts = 30u32;
    let t = Instant::now();
    let mut seen_at_once = 0;
    for b in 0..bursts {
        send_udp(&ns, 9999, b * 10..b * 10 + 10);
        std::thread::sleep(Duration::from_millis(40));
        // Lines are written at once, not held for the span's sync.
        if lines(&out).len() as u32 >= (b + 1) * 10 {
            seen_at_once += 1;
        }
    }
    let sending = t.elapsed();
    wait_for("every line", Duration::from_secs(10), || {
        lines(&out).len() == bursts as usize * 10
    });

    // No more traffic: the span's deadline alone syncs it and acknowledges the spool.
    let quiet = Instant::now();
    wait_for("pending=0", Duration::from_secs(10), || {
        d.signal(libc::SIGUSR1);
        std::thread::sleep(Duration::from_millis(20));
        let e = d.stderr_text();
        counter(&e, "pending") == Some(0) && counter(&e, "printed") == Some(300)
    });
    let settled = quiet.elapsed();
    let (gen1, acked) = ledger(&spool);
    let stores = gen1 - gen0;
    eprintln!(
        "live span: {bursts} bursts in {sending:?}, {seen_at_once} seen in the file within 40 ms, \
         {stores} acknowledgements stored, settled {settled:?} after the last line"
    );
    assert!(acked > 0, "the ledger holds the position");
    // One store per span of at least 100 ms (and the last one), where a sync per batch would
    // have stored one per burst.
    let spans = sending.as_millis() as u64 / 100 + 3;
    assert!(
        stores <= spans && stores < u64::from(bursts),
        "{stores} acknowledgements for {bursts} bursts in {sending:?} (at most {spans})"
    );
    assert!(
        seen_at_once >= bursts / 2,
        "lines waited: {seen_at_once} of {bursts} bursts were in the file within 40 ms"
    );
    assert_eq!(d.stop(), 0);
    assert_eq!(support::crash::unacked(&spool), 0);
}
