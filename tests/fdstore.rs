//! `fwlog run` keeping its NFLOG socket in the service manager's fd store, against the real
//! kernel in namespaces the tests create. The test plays systemd: it owns the notify socket,
//! keeps the fds sent with `FDSTORE=1` (deduplicated by inode, removed by `FDSTOREREMOVE=1`),
//! and starts each next `fwlog run` with them from fd 3 on, `LISTEN_FDS`, `LISTEN_FDNAMES`,
//! and `LISTEN_PID` set to the new process's own pid (a shell exports `$$`, then execs `ip
//! netns exec`, which execs fwlog: one pid throughout).

mod support;

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::daemon::{lines, send_udp, wait_for, Daemon};
use support::netns::NetNs;

/// The fd store and what the service manager was told.
#[derive(Default)]
struct Store {
    fds: Vec<(String, OwnedFd)>,
    messages: Vec<String>,
}

/// The service manager's end: a notify socket read by a thread into a [`Store`].
struct Manager {
    path: PathBuf,
    store: Arc<Mutex<Store>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn inode(fd: RawFd) -> (u64, u64) {
    // SAFETY: plain data filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is valid for writes.
    assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0);
    (st.st_dev, st.st_ino)
}

/// One datagram and the fds that came with it.
fn recv_with_fds(sock: &UnixDatagram) -> Option<(String, Vec<OwnedFd>)> {
    let mut buf = [0u8; 4096];
    let mut cbuf = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: plain data; pointers set below stay valid during recvmsg.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf.as_mut_ptr().cast();
    mh.msg_controllen = std::mem::size_of_val(&cbuf);
    // SAFETY: mh describes live buffers.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut mh, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return None;
    }
    let mut fds = Vec::new();
    // SAFETY: walking the control buffer the kernel filled, with the libc macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&mh);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                let count = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / 4;
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            c = libc::CMSG_NXTHDR(&mh, c);
        }
    }
    Some((
        String::from_utf8_lossy(&buf[..n as usize]).into_owned(),
        fds,
    ))
}

impl Store {
    /// What systemd does with one notify datagram (the parts fwlog uses).
    fn handle(&mut self, msg: String, fds: Vec<OwnedFd>) {
        let field = |k: &str| {
            msg.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(str::to_string)
        };
        let name = field("FDNAME=").unwrap_or_else(|| "stored".into());
        if field("FDSTORE=").as_deref() == Some("1") {
            for fd in fds {
                let id = inode(fd.as_raw_fd());
                if !self.fds.iter().any(|(_, f)| inode(f.as_raw_fd()) == id) {
                    self.fds.push((name.clone(), fd));
                }
            }
        } else if field("FDSTOREREMOVE=").as_deref() == Some("1") {
            self.fds.retain(|(n, _)| *n != name);
        }
        self.messages.push(msg);
    }
}

impl Manager {
    fn bind(dir: &Path) -> Manager {
        let path = dir.join("notify");
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let store = Arc::new(Mutex::new(Store::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (Arc::clone(&store), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                if let Some((m, fds)) = recv_with_fds(&sock) {
                    st.lock().unwrap().handle(m, fds);
                }
            }
        });
        Manager {
            path,
            store,
            stop,
            thread: Some(thread),
        }
    }

    fn names(&self) -> Vec<String> {
        let s = self.store.lock().unwrap();
        s.fds.iter().map(|(n, _)| n.clone()).collect()
    }

    fn messages_with(&self, line: &str) -> usize {
        let s = self.store.lock().unwrap();
        s.messages.iter().filter(|m| m.contains(line)).count()
    }

    /// Start `fwlog run ARGS` in `ns` with the stored fds, as systemd starts the next process.
    fn spawn(&self, ns: &NetNs, dir: &Path, args: &[&str]) -> Daemon {
        let (copies, names): (Vec<OwnedFd>, Vec<String>) = {
            let s = self.store.lock().unwrap();
            s.fds
                .iter()
                .map(|(n, f)| (dup_high(f.as_raw_fd()), n.clone()))
                .unzip()
        };
        spawn_with(ns, dir, args, copies, &names, &self.path, None)
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A close-on-exec copy of `fd` numbered 100 or above, out of the way of fds 3...
fn dup_high(fd: RawFd) -> OwnedFd {
    // SAFETY: fcntl F_DUPFD_CLOEXEC returns a new fd we own; checked.
    let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) };
    assert!(n >= 0);
    // SAFETY: fresh fd.
    unsafe { OwnedFd::from_raw_fd(n) }
}

static SPAWNED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Start `fwlog run ARGS` with `fds` at 3.., `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID`
/// (its own pid unless `pid` says otherwise).
fn spawn_with(
    ns: &NetNs,
    dir: &Path,
    args: &[&str],
    fds: Vec<OwnedFd>,
    names: &[String],
    notify: &Path,
    pid: Option<&str>,
) -> Daemon {
    let n = SPAWNED.fetch_add(1, Ordering::Relaxed);
    let stderr = dir.join(format!("stderr.fd{n}"));
    let err = std::fs::File::create(&stderr).unwrap();
    let script = match pid {
        None => "export LISTEN_PID=$$; exec \"$@\"".to_string(),
        Some(p) => format!("export LISTEN_PID={p}; exec \"$@\""),
    };
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script, "sh", "ip", "netns", "exec", &ns.name])
        .arg(support::fwlog_bin())
        .arg("run")
        .args(args)
        .env("NOTIFY_SOCKET", notify)
        .env("LISTEN_FDNAMES", names.join(":"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err);
    if !fds.is_empty() {
        cmd.env("LISTEN_FDS", fds.len().to_string());
    }
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: only dup2 (async-signal-safe) between fork and exec; it clears close-on-exec on
    // the copies at 3.., and the sources (100 and above) close at exec.
    unsafe {
        cmd.pre_exec(move || {
            for (i, &fd) in raw.iter().enumerate() {
                if libc::dup2(fd, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn fwlog run");
    drop(fds);
    Daemon { child, stderr }
}

fn rule(ns: &NetNs, groups: &[(u16, u16)]) {
    let mut r = String::from("table inet t {\n chain o {\n  type filter hook output priority 0;\n");
    for (port, g) in groups {
        r.push_str(&format!(
            "  udp dport {port} counter log prefix \"FD{g} \" group {g}\n"
        ));
    }
    r.push_str(" }\n}\n");
    ns.nft(&r);
}

/// Packets the nft rule for `port` counted.
fn rule_count(ns: &NetNs, port: u16) -> u64 {
    let out = ns
        .command("nft")
        .args(["list", "chain", "inet", "t", "o"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(&format!("dport {port} ")))
        .unwrap_or_else(|| panic!("no rule for {port} in {text}"));
    let after = line.split("packets ").nth(1).expect("a counter");
    after.split_whitespace().next().unwrap().parse().unwrap()
}

/// Per seq_global, the replayed mark of each printing; and the loss events.
fn read_output(out: &Path) -> (BTreeMap<u64, Vec<bool>>, Vec<String>) {
    let mut printed: BTreeMap<u64, Vec<bool>> = BTreeMap::new();
    let mut losses = Vec::new();
    for l in lines(out) {
        let o: serde_json::Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{l}: {e}"));
        if o["event"] == "loss" {
            losses.push(l);
            continue;
        }
        let g = o["seq_global"].as_u64().expect("seq_global");
        printed.entry(g).or_default().push(o["replayed"] == true);
    }
    (printed, losses)
}

fn wait_ready(d: &Daemon) {
    let path = d.stderr.clone();
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&path).is_ok_and(|s| s.contains("fwlog: logging NFLOG group")) {
        assert!(
            std::time::Instant::now() < end,
            "fwlog did not start; stderr:\n{}",
            d.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn settle(out: &Path) {
    let mut last = 0;
    wait_for("the output to settle", Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_millis(500));
        let n = lines(out).len();
        let settled = n == last && n > 0;
        last = n;
        settled
    });
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn kill_9_during_a_flood_under_a_played_systemd_loses_nothing() {
    require_root!();
    let rounds: usize = std::env::var("FWLOG_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let seed = std::env::var("FWLOG_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64);
    eprintln!("fd store crash test: {rounds} kills, seed {seed} (FWLOG_CRASH_SEED to repeat)");
    let mut rng = Lcg(seed);
    let ns = NetNs::new("fdkill");
    rule(&ns, &[(9999, 5)]);
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::bind(dir.path());
    let out = dir.path().join("out.json");
    let spool = dir.path().join("spool");
    let json = format!("json={}", out.display());
    let args = [
        "--group",
        "5",
        "--no-dns",
        "--spool",
        spool.to_str().unwrap(),
        "--segment-size",
        "256KiB",
        "--output",
        &json,
    ];
    let first = m.spawn(&ns, dir.path(), &args);
    wait_ready(&first);
    wait_for("the socket in the store", Duration::from_secs(5), || {
        m.names() == ["fwlog-nflog-5"]
    });
    let stop = AtomicBool::new(false);
    let sent = std::thread::scope(|s| {
        // About 20k packets/s: 20 every millisecond.
        let sender = s.spawn(|| {
            ns.enter(|| {
                let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                let start = std::time::Instant::now();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let due = start.elapsed().as_micros() as u64 * 20 / 1000;
                    while n < due {
                        let _ = sock.send_to(format!("pkt-{n}").as_bytes(), "127.0.0.1:9999");
                        n += 1;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                n
            })
        });
        let mut d = first;
        for round in 0..rounds {
            let ms = if round % 3 == 0 {
                rng.next(30)
            } else {
                50 + rng.next(400)
            };
            std::thread::sleep(Duration::from_millis(ms));
            d.kill9();
            d = m.spawn(&ns, dir.path(), &args);
        }
        wait_ready(&d);
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let sent = sender.join().unwrap();
        settle(&out);
        assert_eq!(d.stop(), 0);
        sent
    });
    let counted = rule_count(&ns, 9999);
    let (printed, losses) = read_output(&out);
    let mut dups = 0;
    for (g, marks) in &printed {
        if marks.len() > 1 {
            dups += marks.len() - 1;
            assert!(
                marks[1..].iter().all(|&r| r),
                "seq_global {g} printed again without the replayed mark"
            );
        }
    }
    let first = *printed.keys().next().unwrap();
    let last = *printed.keys().last().unwrap();
    let missing: Vec<u64> = (first..=last)
        .filter(|g| !printed.contains_key(g))
        .take(10)
        .collect();
    eprintln!(
        "fd store crash test: sent {sent}, the rule counted {counted}, printed {} distinct, {dups} replayed duplicates, {} loss reports",
        printed.len(),
        losses.len()
    );
    assert!(missing.is_empty(), "seq_global not printed: {missing:?}");
    assert!(losses.is_empty(), "loss reported: {losses:#?}");
    assert_eq!(
        printed.len() as u64,
        counted,
        "every packet the rule counted is printed once (distinct seq_global)"
    );
    assert!(
        m.messages_with("FDSTORE=1") >= 1,
        "the socket went to the store"
    );
}

/// Per group, how many packets were printed; and the loss lines.
fn per_group(out: &Path) -> (BTreeMap<u64, usize>, Vec<String>) {
    let mut n: BTreeMap<u64, usize> = BTreeMap::new();
    let mut losses = Vec::new();
    for l in lines(out) {
        let o: serde_json::Value = serde_json::from_str(&l).unwrap();
        if o["event"] == "loss" {
            losses.push(l);
        } else {
            *n.entry(o["group"].as_u64().unwrap()).or_default() += 1;
        }
    }
    (n, losses)
}

fn bound_groups(ns: &NetNs) -> Vec<u16> {
    let out = ns
        .command("cat")
        .arg("/proc/net/netfilter/nfnetlink_log")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn a_restart_adds_and_drops_groups_on_the_kept_socket() {
    require_root!();
    let ns = NetNs::new("fdgroups");
    rule(&ns, &[(9005, 5), (9006, 6)]);
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::bind(dir.path());
    let out = dir.path().join("out.json");
    let spool = dir.path().join("spool");
    let json = format!("json={}", out.display());
    let base = [
        "--no-dns",
        "--spool",
        spool.to_str().unwrap(),
        "--output",
        &json,
    ];
    let with = |groups: &[&'static str]| {
        let mut a: Vec<&str> = Vec::new();
        for g in groups {
            a.extend(["--group", g]);
        }
        a.extend(base.iter().copied());
        a
    };
    let wait_printed = |n: usize| {
        wait_for(&format!("{n} lines"), Duration::from_secs(20), || {
            lines(&out).len() >= n
        })
    };

    let d = m.spawn(&ns, dir.path(), &with(&["5"]));
    wait_ready(&d);
    send_udp(&ns, 9005, 0..10);
    wait_printed(10);
    assert_eq!(d.stop(), 0);
    assert_eq!(m.names(), ["fwlog-nflog-5"]);
    assert_eq!(bound_groups(&ns), [5], "the stored socket keeps group 5");
    // While no fwlog runs: group 5 waits in the stored socket, group 6 has no listener.
    send_udp(&ns, 9005, 10..20);
    send_udp(&ns, 9006, 0..10);

    let d = m.spawn(&ns, dir.path(), &with(&["5", "6"]));
    wait_ready(&d);
    assert!(
        d.stderr_text().contains("took the NFLOG socket back"),
        "{}",
        d.stderr_text()
    );
    assert!(
        d.stderr_text().contains("NFLOG group 6 is new: bound"),
        "{}",
        d.stderr_text()
    );
    wait_for("the renamed store entry", Duration::from_secs(5), || {
        m.names() == ["fwlog-nflog-5-6"]
    });
    send_udp(&ns, 9005, 20..30);
    send_udp(&ns, 9006, 10..20);
    wait_printed(40);
    assert_eq!(d.stop(), 0);

    let d = m.spawn(&ns, dir.path(), &with(&["6"]));
    wait_ready(&d);
    let err = d.stderr_text();
    assert!(
        err.contains("NFLOG group 5 is no longer logged (unbound)"),
        "{err}"
    );
    wait_for("group 5 unbound", Duration::from_secs(5), || {
        bound_groups(&ns) == [6]
    });
    wait_for("the renamed store entry", Duration::from_secs(5), || {
        m.names() == ["fwlog-nflog-6"]
    });
    send_udp(&ns, 9006, 20..25);
    wait_printed(45);
    assert_eq!(d.stop(), 0);

    let (n, losses) = per_group(&out);
    assert_eq!(n.get(&5), Some(&30), "group 5: everything, also while down");
    assert_eq!(n.get(&6), Some(&15), "group 6: from its bind on");
    assert!(losses.is_empty(), "{losses:#?}");
    assert_eq!(
        rule_count(&ns, 9006),
        25,
        "the 10 before the bind were never logged"
    );
}

/// A netfilter netlink socket, unbound.
fn netfilter_socket() -> OwnedFd {
    // SAFETY: plain socket(2); checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    assert!(fd >= 0);
    // SAFETY: fresh fd.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn warnings(d: &Daemon) -> Vec<String> {
    d.stderr_text()
        .lines()
        .filter(|l| l.contains("ignoring"))
        .map(str::to_string)
        .collect()
}

#[test]
fn bad_passed_fds_are_ignored_with_one_warning_each() {
    require_root!();
    let ns = NetNs::new("fdbad");
    rule(&ns, &[(9005, 5)]);
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::bind(dir.path());
    let out = dir.path().join("out.json");
    let spool = dir.path().join("spool");
    let json = format!("json={}", out.display());
    let args = [
        "--group",
        "5",
        "--no-dns",
        "--spool",
        spool.to_str().unwrap(),
        "--output",
        &json,
    ];

    // Garbage counts (no manager listening: nothing gets stored, the group is released).
    for (fds, want) in [("abc", "not a count"), ("1000", "more than the 64")] {
        let d = spawn_env_fds(&ns, dir.path(), &args, &dir.path().join("absent"), fds);
        wait_ready(&d);
        let w = warnings(&d);
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(w[0].contains(want), "{}", w[0]);
        assert_eq!(d.stop(), 0);
    }

    // LISTEN_PID of another process: its fds are not ours, not even looked at.
    let d = spawn_with(
        &ns,
        dir.path(),
        &args,
        vec![netfilter_socket()],
        &["fwlog-nflog-5".into()],
        &m.path,
        Some("1"),
    );
    wait_ready(&d);
    let w = warnings(&d);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(w[0].contains("LISTEN_PID=1 is another process"), "{}", w[0]);
    assert!(!d.stderr_text().contains("took the NFLOG socket back"));
    send_udp(&ns, 9005, 0..5);
    wait_for("5 lines", Duration::from_secs(20), || {
        lines(&out).len() >= 5
    });
    assert_eq!(d.stop(), 0);
    let good = m
        .store
        .lock()
        .unwrap()
        .fds
        .iter()
        .map(|(_, f)| dup_high(f.as_raw_fd()))
        .next();
    let good = good.expect("the run stored its socket");
    let good_inode = inode(good.as_raw_fd());

    // Not a socket, a UDP socket, a netlink socket of another protocol, an unknown name, and a
    // second NFLOG socket after the good one: each one warning, closed, removed from the store.
    let file = std::fs::File::open("/dev/null").unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // SAFETY: plain socket(2); checked.
    let route = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    assert!(route >= 0);
    let fds: Vec<OwnedFd> = vec![
        dup_high(file.as_raw_fd()),
        dup_high(udp.as_raw_fd()),
        // SAFETY: fresh fd.
        dup_high(unsafe { OwnedFd::from_raw_fd(route) }.as_raw_fd()),
        dup_high(netfilter_socket().as_raw_fd()),
        dup_high(good.as_raw_fd()),
        dup_high(netfilter_socket().as_raw_fd()),
    ];
    let names: Vec<String> = [
        "fwlog-nflog-5",
        "fwlog-nflog-5",
        "fwlog-nflog-5",
        "forged\x1b[2Jname",
        "fwlog-nflog-5",
        "fwlog-nflog-7",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let d = spawn_with(&ns, dir.path(), &args, fds, &names, &m.path, None);
    wait_ready(&d);
    let w = warnings(&d);
    assert_eq!(w.len(), 5, "{w:#?}");
    for (w, want) in w.iter().zip([
        "not a socket",
        "not netlink",
        "protocol 0",
        "not a name fwlog gives",
        "second socket",
    ]) {
        assert!(w.contains(want), "{w} lacks {want}");
        assert!(!w.contains('\x1b'), "{w}");
    }
    assert!(d.stderr_text().contains("took the NFLOG socket back"));
    send_udp(&ns, 9005, 5..10);
    wait_for("10 lines", Duration::from_secs(20), || {
        lines(&out).len() >= 10
    });
    assert_eq!(d.stop(), 0);
    assert!(m.messages_with("FDSTOREREMOVE=1\nFDNAME=fwlog-nflog-7") == 1);
    let s = m.store.lock().unwrap();
    assert_eq!(s.fds.len(), 1, "only the good socket stays stored");
    assert_eq!(inode(s.fds[0].1.as_raw_fd()), good_inode);
    drop(s);
    let (n, losses) = per_group(&out);
    assert_eq!(n.get(&5), Some(&10));
    assert!(losses.is_empty(), "{losses:#?}");
}

/// `fwlog run` with `LISTEN_FDS=count` (its own pid) and no fds at all.
fn spawn_env_fds(ns: &NetNs, dir: &Path, args: &[&str], notify: &Path, count: &str) -> Daemon {
    let n = SPAWNED.fetch_add(1, Ordering::Relaxed);
    let stderr = dir.join(format!("stderr.fd{n}"));
    let err = std::fs::File::create(&stderr).unwrap();
    let child = std::process::Command::new("sh")
        .args([
            "-c",
            "export LISTEN_PID=$$; exec \"$@\"",
            "sh",
            "ip",
            "netns",
            "exec",
            &ns.name,
        ])
        .arg(support::fwlog_bin())
        .arg("run")
        .args(args)
        .env("NOTIFY_SOCKET", notify)
        .env("LISTEN_FDS", count)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    Daemon { child, stderr }
}
