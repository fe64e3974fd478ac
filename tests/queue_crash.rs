//! kill -9 at random moments while traffic flows through an NFQUEUE rule (no --queue-bypass),
//! restarting fwlog each time. Afterwards every payload the listener received is in fwlog's
//! JSON output (printed live or replayed from the spool at a restart): a packet gets its
//! ACCEPT only after its record is committed, and the kernel drops whatever a dead fwlog had
//! not yet accepted.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::crash;
use support::daemon::{wait_for, RunArgs};
use support::netns::NetNs;
use support::queue::{queue_rule, settle, start, Listener, Sender};

/// Keys are unique below this many packets (see support::queue).
const MAX_PACKETS: u32 = 64_000;

#[test]
fn kill_9_never_lets_an_unlogged_packet_through() {
    require_root!();
    let rounds = crash::rounds(16);
    let mut rng = crash::seeded("queue crash test", rounds);
    let seed = rng.0;

    let ns = NetNs::new("qcrash");
    queue_rule(&ns, 7, false);
    let dir = tempfile::tempdir().unwrap();
    // Small segments, so kills also land during segment rollover.
    let run = RunArgs::new(dir.path())
        .with(&[
            "--queue",
            "7",
            "--segment-size",
            "64KiB",
            "--copy-range",
            "128",
        ])
        .output(Some("json"), "out.json");
    let out = run.path("out.json");
    let argv = run.args();
    let l = Listener::new(&ns);
    let s = Sender::new(&ns);

    let stop = AtomicBool::new(false);
    let sent = std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < MAX_PACKETS {
                for _ in 0..10 {
                    s.send(i);
                    i += 1;
                }
                std::thread::sleep(Duration::from_micros(700));
            }
            i
        });
        for round in 0..rounds {
            let d = run.spawn(&ns);
            // A third of the kills land in start-up (before or while the queue is bound).
            std::thread::sleep(crash::kill_delay(&mut rng, round));
            d.kill9();
        }
        // Last run: let it work a while, stop the traffic, let everything drain, stop cleanly.
        let d = start(&ns, dir.path(), &argv);
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        let sent = sender.join().unwrap();
        let mut last = usize::MAX;
        wait_for("the listener to settle", Duration::from_secs(30), || {
            std::thread::sleep(Duration::from_millis(300));
            let n = l.count();
            let done = n == last;
            last = n;
            done
        });
        let delivered = l.keys();
        let log = settle(&out, delivered.len());
        assert_eq!(d.stop(), 0);
        (sent, delivered, log)
    });
    let (sent, delivered, log) = sent;
    let replayed_twice = log.packets.values().filter(|&&n| n > 1).count();
    eprintln!(
        "sent {sent}, delivered {}, logged {} distinct ({replayed_twice} printed twice across a crash, {} torn lines), loss lines {:?}",
        delivered.len(),
        log.packets.len(),
        log.torn,
        log.losses
    );
    assert!(
        delivered.len() > 100,
        "too little traffic passed to mean anything"
    );
    let unlogged: Vec<_> = delivered
        .iter()
        .filter(|k| !log.packets.contains_key(k))
        .collect();
    assert!(
        unlogged.is_empty(),
        "{} delivered packets are not in the log (first: {:?}); seed {seed}",
        unlogged.len(),
        unlogged.first()
    );
}
