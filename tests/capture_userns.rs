//! Capture inside a user namespace (a container): CAP_NET_ADMIN there is enough to bind NFLOG
//! groups, but not to force the receive buffer (SO_RCVBUFFORCE checks the initial namespace),
//! so `open` must fall back to SO_RCVBUF with a warning and still capture.
//!
//! The test re-runs its own binary under `unshare --user --map-root-user --net`, since a
//! multi-threaded process cannot enter a new user namespace itself.

mod support;

use fwlog::capture::{NflogConfig, NflogSocket, RecordBatch};
use fwlog::nflog::attr::{parse, TlvOrder};
use fwlog::packet::{TimeSource, Timestamp};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "FWLOG_CAPTURE_USERNS_CHILD";
const TEST: &str = "user_namespace_capture_falls_back_to_a_plain_buffer_with_a_warning";

#[test]
fn user_namespace_capture_falls_back_to_a_plain_buffer_with_a_warning() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    require_root!();
    support::require_tool("unshare");
    support::require_tool("nft");
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--net", "--"])
        .arg(exe)
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run unshare");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("CHILD OK"), "child did not run:\n{text}");
    for line in text.lines().filter(|l| l.starts_with("warnings in")) {
        eprintln!("{line}");
    }
}

fn child() {
    let st = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("ip");
    assert!(st.success());
    let mut nft = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("nft");
    nft.stdin
        .take()
        .expect("stdin")
        .write_all(
            b"table inet t {\n chain o {\n  type filter hook output priority 0;\n  \
              udp dport 9999 log prefix \"UNS \" group 3\n }\n}\n",
        )
        .expect("write ruleset");
    assert!(nft.wait().expect("nft").success());

    let mut sock = NflogSocket::open(&NflogConfig {
        groups: vec![3],
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("open in a user namespace: {e}"));
    let w = sock.warnings().join(" | ");
    assert!(w.contains("cannot force"), "warnings: {w}");
    eprintln!("warnings in the user namespace: {w}");

    let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    tx.send_to(b"from a container", "127.0.0.1:9999")
        .expect("send");
    let mut batch = RecordBatch::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while batch.is_empty() && Instant::now() < deadline {
        sock.recv_batch(&mut batch, Duration::from_millis(100))
            .expect("recv");
    }
    assert_eq!(batch.len(), 1);
    let fallback = Timestamp {
        sec: 0,
        nsec: 0,
        source: TimeSource::Capture,
    };
    let p = parse(batch.get(0).expect("record"), TlvOrder::NATIVE, fallback);
    assert_eq!(p.prefix, Some(&b"UNS "[..]));
    assert_eq!(&p.payload[28..], b"from a container");
    assert_eq!(p.outdev.and_then(|d| d.name), Some(&b"lo"[..]));
    println!("CHILD OK");
}
