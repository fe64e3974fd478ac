//! `fwlog run` under a service manager (`Type=notify`), against the real kernel in namespaces
//! the tests create. The test plays systemd: it binds the `NOTIFY_SOCKET` datagram socket and
//! reads what fwlog sends.
//!
//! What is checked: `READY=1` comes only once fwlog logs (at that moment it has said so on
//! stderr, and with `--user` it already runs as that user), and a packet the kernel logs right
//! after `READY=1` is in the output: the guarantee units ordered `After=fwlog.service` rely on.
//! SIGHUP gives `RELOADING=1` then `READY=1`, SIGTERM `STOPPING=1`. With `--user nobody` the
//! notifications still arrive through a socket nobody may not reach. With `WATCHDOG_USEC`
//! pings come at a quarter of the interval, and go on while a FIFO output is not read (the
//! loop is not stuck).
//! Without `NOTIFY_SOCKET` the other daemon tests run as before.

mod support;

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::daemon::{lines, send_udp, wait_for, Daemon, RunArgs};
use support::netns::NetNs;

/// The service manager's end: the socket fwlog's NOTIFY_SOCKET names, and what came so far.
struct Manager {
    sock: UnixDatagram,
    path: PathBuf,
    seen: Vec<String>,
    /// `wait` looks at datagrams from here on: what it returned and everything before is done.
    cursor: usize,
}

impl Manager {
    fn bind(dir: &Path) -> Manager {
        let path = dir.join("notify");
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        Manager {
            sock,
            path,
            seen: Vec::new(),
            cursor: 0,
        }
    }

    /// The next datagram within `timeout`.
    fn recv(&mut self, timeout: Duration) -> Option<String> {
        self.sock
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = self.sock.recv(&mut buf).ok()?;
        let m = String::from_utf8(buf[..n].to_vec()).expect("notifications are UTF-8");
        self.seen.push(m.clone());
        Some(m)
    }

    /// Wait for the next datagram (after the one `wait` returned last) with a line starting
    /// with `line`; return it.
    fn wait(&mut self, line: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            let hit = self.seen[self.cursor..]
                .iter()
                .position(|m| m.lines().any(|l| l.starts_with(line)));
            if let Some(i) = hit {
                self.cursor += i + 1;
                return self.seen[self.cursor - 1].clone();
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("no {line:?} within {timeout:?}; received: {:?}", self.seen);
            }
            self.recv(left);
        }
    }

    /// Datagrams with a `line` line among those received so far.
    fn count(&self, line: &str) -> usize {
        self.seen
            .iter()
            .filter(|m| m.lines().any(|l| l == line))
            .count()
    }
}

/// Packet lines in a JSON output.
fn packets(path: &Path) -> usize {
    lines(path)
        .iter()
        .filter(|l| l.contains("\"event\":\"packet\""))
        .count()
}

/// Fields of /proc/PID/status line `key`.
fn proc_status(pid: u32, key: &str) -> Vec<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("{key} in {s}"))[key.len()..]
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The first run's checks after READY=1 for a daemon logging UDP port 9999 to `out`: a packet
/// sent at once is logged; SIGHUP reloads (RELOADING=1 with MONOTONIC_USEC, then READY=1) and
/// logging goes on; SIGTERM gives STOPPING=1 and exit status 0.
fn packet_reload_stop(ns: &NetNs, m: &mut Manager, d: Daemon, out: &Path) {
    send_udp(ns, 9999, 0..1);
    wait_for(
        "the packet sent right after READY=1 in the output",
        Duration::from_secs(20),
        || packets(out) >= 1,
    );
    d.signal(libc::SIGHUP);
    let r = m.wait("RELOADING=1", Duration::from_secs(10));
    assert!(r.lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{r:?}");
    m.wait("READY=1", Duration::from_secs(10));
    send_udp(ns, 9999, 1..2);
    wait_for("a packet after the reload", Duration::from_secs(20), || {
        packets(out) >= 2
    });
    let stderr = d.stderr.clone();
    assert_eq!(
        d.stop(),
        0,
        "{}",
        std::fs::read_to_string(stderr).unwrap_or_default()
    );
    m.wait("STOPPING=1", Duration::from_secs(5));
    assert_eq!(packets(out), 2, "each packet once");
    assert_eq!(m.count("READY=1"), 2, "{:?}", m.seen);
    assert_eq!(m.count("STOPPING=1"), 1, "{:?}", m.seen);
}

#[test]
fn ready_once_logging_then_reload_and_stopping() {
    require_root!();
    let ns = NetNs::new("notify");
    ns.output_rules(&["udp dport 9999 log prefix \"NTF \" group 5"]);
    let dir = tempfile::tempdir().unwrap();
    let mut m = Manager::bind(dir.path());
    let out = dir.path().join("out.json");
    let d = RunArgs::new(dir.path())
        .group(5)
        .output_to(format!("json={}", out.display()))
        .spawn_env(&ns, &[("NOTIFY_SOCKET", m.path.as_os_str())]);
    let ready = m.wait("READY=1", Duration::from_secs(20));
    // Checked the moment READY=1 arrives: fwlog says this after binding and starting intake.
    assert!(
        d.stderr_text().contains("fwlog: logging NFLOG group 5"),
        "READY=1 before the group was bound: {}",
        d.stderr_text()
    );
    assert!(
        ready.lines().any(|l| l == "STATUS=logging NFLOG group 5"),
        "{ready:?}"
    );
    // The capture socket goes to the fd store right after binding, before READY=1.
    assert_eq!(
        m.seen
            .iter()
            .filter(|s| !s.starts_with("FDSTORE=1\n"))
            .count(),
        1,
        "READY=1 is the first message besides the fd store's: {:?}",
        m.seen
    );
    packet_reload_stop(&ns, &mut m, d, &out);
}

#[test]
fn user_nobody_notifies_through_a_socket_only_root_can_reach() {
    require_root!();
    let ns = NetNs::new("ntfuser");
    ns.output_rules(&["udp dport 9999 log prefix \"NTU \" group 5"]);
    // The spool and output must be reachable by nobody; the notify socket is not: it lives in
    // a root-only directory, so only a socket connected before the switch can reach it.
    let work = tempfile::tempdir().unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut m = Manager::bind(private.path());
    let out = work.path().join("out.json");
    let d = RunArgs::new(work.path())
        .group(5)
        .with(&["--user", "nobody"])
        .output_to(format!("json={}", out.display()))
        .spawn_env(&ns, &[("NOTIFY_SOCKET", m.path.as_os_str())]);
    m.wait("READY=1", Duration::from_secs(20));
    assert_eq!(
        proc_status(d.child.id(), "Uid:"),
        vec!["65534"; 4],
        "READY=1 came before the switch to nobody"
    );
    // Everything after READY=1 (reload, stop) is sent as nobody.
    packet_reload_stop(&ns, &mut m, d, &out);
}

#[test]
fn queue_mode_is_ready_once_the_queue_is_bound() {
    require_root!();
    let ns = NetNs::new("ntfqueue");
    // No fail-open, no bypass: a packet queued before fwlog binds the queue is dropped, so a
    // logged packet proves the bind came first. (iptables-nft: nft's own `queue` statement is
    // not built into every kernel.)
    support::require_tool("iptables");
    let rule = "-A OUTPUT -p udp --dport 9999 -j NFQUEUE --queue-num 3";
    let st = ns
        .command("iptables")
        .args(rule.split_whitespace())
        .status()
        .unwrap();
    assert!(st.success(), "iptables {rule}");
    let dir = tempfile::tempdir().unwrap();
    let mut m = Manager::bind(dir.path());
    let out = dir.path().join("out.json");
    let d = RunArgs::new(dir.path())
        .with(&["--queue", "3"])
        .output_to(format!("json={}", out.display()))
        .spawn_env(&ns, &[("NOTIFY_SOCKET", m.path.as_os_str())]);
    let ready = m.wait("READY=1", Duration::from_secs(20));
    assert!(
        ready.lines().any(|l| l == "STATUS=logging NFQUEUE queue 3"),
        "{ready:?}"
    );
    packet_reload_stop(&ns, &mut m, d, &out);
}

#[test]
fn watchdog_keeps_pinging_while_a_fifo_output_is_not_read_and_every_packet_arrives() {
    require_root!();
    let ns = NetNs::new("ntfwd");
    ns.output_rules(&["udp dport 9999 log prefix \"NTW \" group 5"]);
    let dir = tempfile::tempdir().unwrap();
    let mut m = Manager::bind(dir.path());
    // The output is a FIFO nobody reads until the test says so: once its 64 KiB are full,
    // writes would block.
    let fifo = dir.path().join("out.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let mut d = RunArgs::new(dir.path())
        .group(5)
        // A FIFO cannot be fdatasync'd.
        .with(&["--fsync", "never"])
        .output_to(format!("json={}", fifo.display()))
        .spawn_env(
            &ns,
            &[
                ("NOTIFY_SOCKET", m.path.as_os_str()),
                ("WATCHDOG_USEC", "800000".as_ref()), // a ping every 200 ms (a quarter)
            ],
        );
    m.wait("READY=1", Duration::from_secs(20));
    // Idle and healthy: pings every 200 ms.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        m.recv(Duration::from_millis(100));
    }
    let idle_pings = m.count("WATCHDOG=1");
    assert!(
        (5..=15).contains(&idle_pings),
        "{idle_pings} pings in 2 s, want about 10: {:?}",
        m.seen
    );

    // Not read: far more than the FIFO holds. A FIFO is written non-blocking, so the loop is
    // not stuck (it still answers signals) and keeps pinging while it waits for the reader.
    const N: u32 = 3000;
    send_udp(&ns, 9999, 0..N);
    let before = m.count("WATCHDOG=1");
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        m.recv(Duration::from_millis(100));
    }
    assert!(
        m.count("WATCHDOG=1") >= before + 5,
        "pings stopped while the FIFO was not read: {:?}",
        &m.seen[m.seen.len().saturating_sub(5)..]
    );
    assert!(
        d.child.try_wait().unwrap().is_none() && d.stderr_text().contains("logging NFLOG group 5"),
        "fwlog is still running while its output is not read"
    );

    // Read the FIFO from now on: pings go on, and every packet is there once.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let drain = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            use std::io::Read;
            let mut reader = reader;
            let mut all = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(n) if n > 0 => all.extend_from_slice(&buf[..n]),
                    _ if stop.load(std::sync::atomic::Ordering::Relaxed) => break,
                    _ => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            all
        })
    };
    let before = m.count("WATCHDOG=1");
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        m.recv(Duration::from_millis(100));
    }
    assert!(
        m.count("WATCHDOG=1") >= before + 3,
        "pings did not resume once the output moved: {:?}",
        &m.seen[m.seen.len().saturating_sub(5)..]
    );
    // The counters moved: a status line within STATUS_EVERY (5 s).
    m.wait("STATUS=logging NFLOG group 5: ", Duration::from_secs(10));
    let stderr = d.stderr.clone();
    assert_eq!(
        d.stop(),
        0,
        "{}",
        std::fs::read_to_string(stderr).unwrap_or_default()
    );
    m.wait("STOPPING=1", Duration::from_secs(5));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let text = String::from_utf8(drain.join().unwrap()).unwrap();
    let n = text
        .lines()
        .filter(|l| l.contains("\"event\":\"packet\""))
        .count();
    assert_eq!(n, N as usize, "every packet once through the FIFO");
}
