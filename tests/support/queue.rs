//! Helpers for the NFQUEUE tests (tests/queue_*.rs): iptables rules, keyed UDP traffic, a
//! listener, and reading back which packets fwlog logged.
//!
//! fwlog's output does not print payload bytes, so every test packet carries a *key* that is
//! visible both to the receiving socket and in the JSON line: (UDP source port, payload
//! length). Packet `i` goes out of sender socket `i % SOCKETS` with a payload of
//! `8 + (i / SOCKETS) % 1000` bytes reading `pkt-<i>` (padded with '.'), and the listener
//! checks that each payload it receives is the one its key names, so "the key is in the log"
//! means "this payload is in the log".
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::daemon::{Daemon, RunArgs};
use crate::support::netns::NetNs;

pub const PORT: u16 = 9999;
pub const SOCKETS: u32 = 64;
/// What `fwlog run --queue` prints once it is ready (src/daemon/intake/nfqueue.rs READY).
pub const READY: &str = "fwlog: auditing NFQUEUE queue";

/// (UDP source port, payload length).
pub type Key = (u16, usize);

/// `iptables ARGS` inside `ns` (iptables-nft: nft's own `queue` statement is not built into
/// every kernel).
pub fn iptables(ns: &NetNs, args: &str) {
    crate::support::require_tool("iptables");
    let out = ns
        .command("iptables")
        .args(args.split_whitespace())
        .output()
        .expect("run iptables");
    assert!(
        out.status.success(),
        "iptables {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The usual rule: locally sent UDP to PORT goes through queue `q`.
pub fn queue_rule(ns: &NetNs, q: u16, bypass: bool) {
    iptables(
        ns,
        &format!(
            "-A OUTPUT -p udp --dport {PORT} -j NFQUEUE --queue-num {q}{}",
            if bypass { " --queue-bypass" } else { "" }
        ),
    );
}

/// Start `fwlog run ARGS` in `ns` and wait until it has bound its queue.
pub fn start(ns: &NetNs, dir: &Path, args: &[&str]) -> Daemon {
    let mut d = Daemon::spawn(ns, dir, args);
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let s = d.stderr_text();
        if s.contains(READY) {
            return d;
        }
        if let Ok(Some(st)) = d.child.try_wait() {
            panic!("fwlog exited ({st}) before it was ready:\n{s}");
        }
        assert!(Instant::now() < end, "fwlog did not start:\n{s}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What most queue tests start from: a namespace whose locally sent UDP to PORT goes through
/// queue `q`, a temp dir for the spool and the JSON output `out.json`, a listener and a sender.
pub struct QueueSetup {
    pub l: Listener,
    pub s: Sender,
    pub out: PathBuf,
    pub dir: tempfile::TempDir,
    pub ns: NetNs,
    q: u16,
}

impl QueueSetup {
    pub fn new(tag: &str, q: u16, bypass: bool) -> QueueSetup {
        let ns = NetNs::new(tag);
        queue_rule(&ns, q, bypass);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.json");
        let l = Listener::new(&ns);
        let s = Sender::new(&ns);
        QueueSetup {
            l,
            s,
            out,
            dir,
            ns,
            q,
        }
    }

    /// `fwlog run --queue Q` with the spool in the temp dir, the JSON output, and `extra`.
    pub fn args(&self, extra: &[&str]) -> RunArgs {
        RunArgs::new(self.dir.path())
            .arg("--queue")
            .arg(self.q.to_string())
            .output(Some("json"), "out.json")
            .with(extra)
    }

    /// [`start`] with [`QueueSetup::args`].
    pub fn start(&self, extra: &[&str]) -> Daemon {
        start(&self.ns, self.dir.path(), &self.args(extra).args())
    }
}

/// Sockets inside `ns` that send keyed packets to 127.0.0.1:PORT.
pub struct Sender {
    socks: Vec<UdpSocket>,
}

impl Sender {
    pub fn new(ns: &NetNs) -> Sender {
        let socks = ns.enter(|| {
            (0..SOCKETS)
                .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind sender"))
                .collect()
        });
        Sender { socks }
    }

    pub fn key(&self, i: u32) -> Key {
        let port = self.socks[(i % SOCKETS) as usize]
            .local_addr()
            .expect("addr")
            .port();
        (port, payload_len(i))
    }

    pub fn send(&self, i: u32) {
        let s = &self.socks[(i % SOCKETS) as usize];
        s.send_to(&payload(i), ("127.0.0.1", PORT)).expect("send");
    }

    /// Key -> packet number, for every packet this sender can make below `n`.
    pub fn keys(&self, n: u32) -> BTreeMap<Key, u32> {
        (0..n).map(|i| (self.key(i), i)).collect()
    }
}

fn payload_len(i: u32) -> usize {
    8 + ((i / SOCKETS) % 1000) as usize
}

pub fn payload(i: u32) -> Vec<u8> {
    let mut p = format!("pkt-{i}").into_bytes();
    p.resize(payload_len(i), b'.');
    p
}

/// A UDP socket bound to 127.0.0.1:PORT inside `ns`, read by a thread that records the key of
/// every datagram (and panics on a payload that does not match its key).
pub struct Listener {
    pub got: Arc<Mutex<BTreeSet<Key>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    pub fn new(ns: &NetNs) -> Listener {
        let sock = ns.enter(|| UdpSocket::bind(("127.0.0.1", PORT)).expect("bind listener"));
        // Bursts of accepted packets must not overflow the listener itself (that would look
        // like packets the firewall did not let through): 32 MiB, forced (the tests are root).
        let size: libc::c_int = 32 << 20;
        // SAFETY: setsockopt with a pointer to a local c_int and its size.
        let rc = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&sock),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let got = Arc::new(Mutex::new(BTreeSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, st) = (Arc::clone(&got), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !st.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&buf[..n]);
                let i: u32 = text
                    .trim_end_matches('.')
                    .strip_prefix("pkt-")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("unexpected payload {text:?}"));
                assert_eq!(&buf[..n], &payload(i)[..], "payload of packet {i}");
                g.lock().unwrap().insert((from.port(), n));
            }
        });
        Listener {
            got,
            stop,
            thread: Some(thread),
        }
    }

    pub fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    pub fn keys(&self) -> BTreeSet<Key> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a JSON output file holds.
#[derive(Default, Debug)]
pub struct Logged {
    /// Key -> how many lines (more than one only for lines replayed after a crash).
    pub packets: BTreeMap<Key, usize>,
    /// (cause, count) of each loss line.
    pub losses: Vec<(String, u64)>,
    /// Queue packet ids (the `seq` field) in output order.
    pub ids: Vec<u64>,
    /// Lines cut short by a kill -9 during an output write (see `logged`).
    pub torn: usize,
}

pub fn logged(out: &Path) -> Logged {
    let mut l = Logged::default();
    for line in crate::support::daemon::lines(out) {
        let o: serde_json::Value = match serde_json::from_str(&line) {
            Ok(o) => o,
            Err(e) => {
                // kill -9 in the middle of an output write leaves a torn line, and the next
                // run appends to it. The torn packet was not acknowledged, so it is printed
                // again (replayed) later: only the complete line glued behind it counts.
                let at = line.rfind("{\"event\":").filter(|&i| i > 0);
                let Some(at) = at else {
                    panic!("not JSON {line:?}: {e}")
                };
                l.torn += 1;
                serde_json::from_str(&line[at..])
                    .unwrap_or_else(|e| panic!("not JSON after a torn line {line:?}: {e}"))
            }
        };
        if o["event"] == "loss" {
            l.losses.push((
                o["cause"].as_str().unwrap_or("?").to_string(),
                o["count"].as_u64().unwrap_or(0),
            ));
            continue;
        }
        assert_eq!(o["event"], "packet", "{line}");
        let sport = o["transport"]["src_port"].as_u64().expect("src_port") as u16;
        let len = o["transport"]["length"].as_u64().expect("udp length") as usize - 8;
        *l.packets.entry((sport, len)).or_default() += 1;
        l.ids.push(o["seq"].as_u64().expect("seq = packet id"));
    }
    l
}

/// Wait until `out` stops growing (checked every 300 ms) and holds at least `min` packets,
/// or 20 s have passed: then return what it holds, so that the caller's assertions say what
/// is missing (a timeout here would hide it).
pub fn settle(out: &Path, min: usize) -> Logged {
    let end = Instant::now() + Duration::from_secs(20);
    let mut last = usize::MAX;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let l = logged(out);
        let n = l.packets.values().sum::<usize>() + l.losses.len();
        if (n == last && l.packets.len() >= min) || Instant::now() > end {
            return l;
        }
        last = n;
    }
}

/// Send packets `range`, then give the listener `grace` to receive what passes.
pub fn send_and_wait(s: &Sender, l: &Listener, range: std::ops::Range<u32>, grace: Duration) {
    let want = l.count() + range.len();
    for i in range {
        s.send(i);
    }
    let end = Instant::now() + grace;
    while l.count() < want && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The number just before the last occurrence of `before` in `text` (a figure of the exit
/// tally line, e.g. `" (spool refused)"`).
pub fn stderr_number(text: &str, before: &str) -> u64 {
    let at = text
        .rfind(before)
        .unwrap_or_else(|| panic!("{before:?} not in stderr:\n{text}"));
    let head = text[..at].trim_end();
    let start = head
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    head[start..]
        .parse()
        .unwrap_or_else(|_| panic!("no number before {before:?} in:\n{text}"))
}
