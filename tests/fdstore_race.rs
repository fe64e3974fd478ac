//! The one moment hold mode could repeat a packet: a kill after an append sealed a spool
//! segment in the middle of a datagram (publishing its first part, which the processing loop
//! printed, acknowledged and deleted) and before the datagram was written out. The test build's
//! failpoint (`FWLOG_FAILPOINT=kill-after-seal`) kills fwlog at exactly that point; the next
//! run on the stored socket must print the rest, nothing twice unmarked, nothing lost.

mod support;

use std::time::Duration;

use support::daemon::{send_udp, wait_for};
use support::fdstore::*;
use support::netns::NetNs;

#[test]
fn a_kill_after_a_seal_in_the_middle_of_a_datagram_repeats_and_loses_nothing() {
    require_root!();
    let ns = NetNs::new("fdseal");
    rule(&ns, &[(9005, 5)]);
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::bind(dir.path());
    let out = dir.path().join("out.json");
    let spool = dir.path().join("spool");
    let json = format!("json={}", out.display());
    // 4 KiB segments hold about twenty records: a burst's datagrams (up to 128 KiB) span several.
    let args = [
        "--group",
        "5",
        "--no-dns",
        "--spool",
        spool.to_str().unwrap(),
        "--segment-size",
        "4KiB",
        "--output",
        &json,
    ];
    let mut first = m.spawn_env(
        &ns,
        dir.path(),
        &args,
        &[("FWLOG_FAILPOINT", "kill-after-seal")],
    );
    wait_ready(&first);
    wait_for("the socket in the store", Duration::from_secs(5), || {
        m.names() == ["fwlog-nflog-5"]
    });
    send_udp(&ns, 9005, 0..600);
    let status = first.wait(Duration::from_secs(30));
    assert_eq!(
        status,
        -1,
        "the failpoint killed fwlog (SIGKILL); stderr:\n{}",
        first.stderr_text()
    );
    let before = read_output(&out).0.len();
    assert!(
        before > 0,
        "the sealed part was printed before the kill (else the test proves nothing)"
    );

    let second = m.spawn(&ns, dir.path(), &args);
    wait_ready(&second);
    assert!(
        second
            .stderr_text()
            .contains("continuing where its last run stopped"),
        "{}",
        second.stderr_text()
    );
    send_udp(&ns, 9005, 600..650);
    drain(&second, Duration::from_secs(60));
    assert_eq!(second.stop(), 0);

    let (printed, losses) = read_output(&out);
    let unmarked: Vec<u64> = printed
        .iter()
        .filter(|(_, marks)| marks.len() > 1 && !marks[1..].iter().all(|&r| r))
        .map(|(g, _)| *g)
        .take(10)
        .collect();
    let counted = rule_count(&ns, 9005);
    eprintln!(
        "seal race: printed {before} before the kill, {} distinct in all; the rule counted {counted}",
        printed.len()
    );
    assert!(
        unmarked.is_empty(),
        "printed again without the replayed mark: seq_global {unmarked:?}"
    );
    assert!(losses.is_empty(), "loss reported: {losses:#?}");
    assert_eq!(printed.len() as u64, counted, "every packet printed");
}
