//! The service manager's part for the fd store tests: a notify socket that keeps the fds sent
//! with `FDSTORE=1` (deduplicated by inode, as systemd does; removed by `FDSTOREREMOVE=1`), and
//! starting each next `fwlog run` with them from fd 3 on, `LISTEN_FDS`, `LISTEN_FDNAMES`, and
//! `LISTEN_PID` set to the new process's own pid (a shell exports `$$`, then execs `ip netns
//! exec`, which execs fwlog: one pid throughout). Plus the nft rule, its counter, and readers of
//! the JSON output.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::daemon::{lines, wait_for, Daemon};
use super::netns::NetNs;

/// The fd store and what the service manager was told.
#[derive(Default)]
pub struct Store {
    pub fds: Vec<(String, OwnedFd)>,
    pub messages: Vec<String>,
}

/// The service manager's end: a notify socket read by a thread into a [`Store`].
pub struct Manager {
    pub path: PathBuf,
    pub store: Arc<Mutex<Store>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn inode(fd: RawFd) -> (u64, u64) {
    // SAFETY: plain data filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is valid for writes.
    assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0);
    (st.st_dev, st.st_ino)
}

/// One datagram and the fds that came with it.
pub fn recv_with_fds(sock: &UnixDatagram) -> Option<(String, Vec<OwnedFd>)> {
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
    pub fn bind(dir: &Path) -> Manager {
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

    pub fn names(&self) -> Vec<String> {
        let s = self.store.lock().unwrap();
        s.fds.iter().map(|(n, _)| n.clone()).collect()
    }

    pub fn messages_with(&self, line: &str) -> usize {
        let s = self.store.lock().unwrap();
        s.messages.iter().filter(|m| m.contains(line)).count()
    }

    /// Start `fwlog run ARGS` in `ns` with the stored fds, as systemd starts the next process.
    pub fn spawn(&self, ns: &NetNs, dir: &Path, args: &[&str]) -> Daemon {
        self.spawn_env(ns, dir, args, &[])
    }

    /// [`Manager::spawn`] with more environment variables (a test build's failpoints).
    pub fn spawn_env(&self, ns: &NetNs, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let (copies, names): (Vec<OwnedFd>, Vec<String>) = {
            let s = self.store.lock().unwrap();
            s.fds
                .iter()
                .map(|(n, f)| (dup_high(f.as_raw_fd()), n.clone()))
                .unzip()
        };
        spawn_with_env(ns, dir, args, copies, &names, &self.path, None, env)
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
pub fn dup_high(fd: RawFd) -> OwnedFd {
    // SAFETY: fcntl F_DUPFD_CLOEXEC returns a new fd we own; checked.
    let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) };
    assert!(n >= 0);
    // SAFETY: fresh fd.
    unsafe { OwnedFd::from_raw_fd(n) }
}

pub static SPAWNED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Start `fwlog run ARGS` with `fds` at 3.., `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID`
/// (its own pid unless `pid` says otherwise).
pub fn spawn_with(
    ns: &NetNs,
    dir: &Path,
    args: &[&str],
    fds: Vec<OwnedFd>,
    names: &[String],
    notify: &Path,
    pid: Option<&str>,
) -> Daemon {
    spawn_with_env(ns, dir, args, fds, names, notify, pid, &[])
}

#[allow(clippy::too_many_arguments)]
fn spawn_with_env(
    ns: &NetNs,
    dir: &Path,
    args: &[&str],
    fds: Vec<OwnedFd>,
    names: &[String],
    notify: &Path,
    pid: Option<&str>,
    env: &[(&str, &str)],
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
        .arg(super::fwlog_bin())
        .arg("run")
        .args(args)
        .env("NOTIFY_SOCKET", notify)
        .env("LISTEN_FDNAMES", names.join(":"))
        .envs(env.iter().copied())
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

pub fn rule(ns: &NetNs, groups: &[(u16, u16)]) {
    let rules: Vec<String> = groups
        .iter()
        .map(|(port, g)| format!("udp dport {port} counter log prefix \"FD{g} \" group {g}"))
        .collect();
    ns.output_rules(&rules);
}

/// Packets the nft rule for `port` counted.
pub fn rule_count(ns: &NetNs, port: u16) -> u64 {
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
pub fn read_output(out: &Path) -> (BTreeMap<u64, Vec<bool>>, Vec<String>) {
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

pub fn wait_ready(d: &Daemon) {
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

pub fn settle(out: &Path) {
    let mut last = 0;
    wait_for("the output to settle", Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_millis(500));
        let n = lines(out).len();
        let settled = n == last && n > 0;
        last = n;
        settled
    });
}

/// Wait until `d` has printed everything its spool holds: its SIGUSR1 counters say `pending=0`
/// twice in a row. (Waiting for the output to stop growing is not enough on a loaded machine:
/// an output's fdatasync can stall longer than any quiet period one would wait for.)
pub fn drain(d: &Daemon, timeout: Duration) {
    let end = std::time::Instant::now() + timeout;
    let mut zero = 0;
    while zero < 2 {
        d.signal(libc::SIGUSR1);
        std::thread::sleep(Duration::from_millis(300));
        let text = d.stderr_text();
        let pending = text
            .lines()
            .rev()
            .find(|l| l.starts_with("fwlog: received"))
            .and_then(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("pending="))
            })
            .and_then(|n| n.parse::<u64>().ok());
        zero = if pending == Some(0) { zero + 1 } else { 0 };
        assert!(
            std::time::Instant::now() < end,
            "fwlog did not print its backlog within {timeout:?}; last counters: {pending:?}"
        );
    }
}

/// Per group, how many packets were printed; and the loss lines.
pub fn per_group(out: &Path) -> (BTreeMap<u64, usize>, Vec<String>) {
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

pub fn bound_groups(ns: &NetNs) -> Vec<u16> {
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

/// A netfilter netlink socket, unbound.
pub fn netfilter_socket() -> OwnedFd {
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

pub fn warnings(d: &Daemon) -> Vec<String> {
    d.stderr_text()
        .lines()
        .filter(|l| l.contains("ignoring"))
        .map(str::to_string)
        .collect()
}

/// `fwlog run` with `LISTEN_FDS=count` (its own pid) and no fds at all.
pub fn spawn_env_fds(ns: &NetNs, dir: &Path, args: &[&str], notify: &Path, count: &str) -> Daemon {
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
        .arg(super::fwlog_bin())
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
