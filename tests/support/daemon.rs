//! A `fwlog run` process inside a test namespace.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::netns::NetNs;

pub struct Daemon {
    pub child: Child,
    pub stderr: PathBuf,
}

/// Wait until `f` is true, polling; panics with `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Daemon {
    /// Start `fwlog run ARGS` in `ns`, stderr to `dir/stderr.N`, and wait until it listens.
    pub fn start(ns: &NetNs, dir: &Path, args: &[&str]) -> Daemon {
        let d = Daemon::spawn(ns, dir, args);
        let path = d.stderr.clone();
        wait_for("fwlog to start", Duration::from_secs(20), || {
            std::fs::read_to_string(&path)
                .map(|s| s.contains("fwlog: logging NFLOG group"))
                .unwrap_or(false)
        });
        d
    }

    /// Start without waiting (for tests of start-up failures and kill -9 during start-up).
    pub fn spawn(ns: &NetNs, dir: &Path, args: &[&str]) -> Daemon {
        Daemon::spawn_env(ns, dir, args, &[])
    }

    /// [`Daemon::spawn`] with extra environment variables (`ip netns exec` passes them on).
    pub fn spawn_env(
        ns: &NetNs,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Daemon {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stderr = dir.join(format!("stderr.{n}"));
        let err = std::fs::File::create(&stderr).expect("stderr file");
        let child = ns
            .command(super::fwlog_bin())
            .arg("run")
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn fwlog run");
        Daemon { child, stderr }
    }

    pub fn signal(&self, sig: i32) {
        // `ip netns exec` execs fwlog, so the child's pid is fwlog's.
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(mut self) -> i32 {
        self.signal(libc::SIGTERM);
        self.wait(Duration::from_secs(20))
    }

    pub fn kill9(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    pub fn wait(&mut self, timeout: Duration) -> i32 {
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st.code().unwrap_or(-1);
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!("fwlog did not exit; stderr:\n{}", self.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Send `n` UDP datagrams to 127.0.0.1:`port` from inside `ns`, payload "pkt-<i>".
pub fn send_udp(ns: &NetNs, port: u16, range: std::ops::Range<u32>) {
    ns.enter(|| {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        for i in range {
            s.send_to(format!("pkt-{i}").as_bytes(), ("127.0.0.1", port))
                .expect("send");
        }
    });
}

/// Another fwlog, on a spool of its own under `dir`, logs `n` packets sent to `port` (logged to
/// `group` by the namespace's rules) and stops: the namespace's global NFLOG numbers then start
/// past them, as when another NFLOG user ran before the fwlog under test.
pub fn numbers_taken_by_another_run(ns: &NetNs, dir: &Path, group: u16, port: u16, n: u32) {
    let other = RunArgs::new(dir)
        .group(group)
        .spool_at(&dir.join("other-spool"))
        .output(Some("json"), "other.json");
    let d = other.start(ns);
    send_udp(ns, port, 0..n);
    wait_for("the other run's packets", Duration::from_secs(30), || {
        lines(&other.path("other.json")).len() >= n as usize
    });
    assert_eq!(d.stop(), 0);
}

/// Lines of a file (empty if it does not exist yet).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// A `fwlog run` command line for a test, built from what the test cares about: the spool in
/// its temp dir and `--no-dns` are there from the start; groups, outputs and flags are added.
#[derive(Clone, Debug)]
pub struct RunArgs {
    dir: PathBuf,
    args: Vec<String>,
}

impl RunArgs {
    /// `--spool DIR/spool --no-dns`.
    pub fn new(dir: &Path) -> RunArgs {
        let spool = dir.join("spool").to_string_lossy().into_owned();
        RunArgs {
            dir: dir.to_path_buf(),
            args: vec!["--spool".into(), spool, "--no-dns".into()],
        }
    }

    /// `--group N`.
    pub fn group(self, n: u16) -> RunArgs {
        self.arg("--group").arg(n.to_string())
    }

    /// `--output [FORMAT=]DIR/FILE`.
    pub fn output(self, format: Option<&str>, file: &str) -> RunArgs {
        let path = self.path(file).to_string_lossy().into_owned();
        let spec = match format {
            Some(f) => format!("{f}={path}"),
            None => path,
        };
        self.arg("--output").arg(spec)
    }

    /// `--output TARGET`, the target as is (a database URL, a path outside the directory).
    pub fn output_to(self, target: impl Into<String>) -> RunArgs {
        self.arg("--output").arg(target)
    }

    /// Resolve names with the DNS server at `server` (in place of `--no-dns`).
    pub fn dns(mut self, server: impl Into<String>) -> RunArgs {
        self.args.retain(|a| a != "--no-dns");
        self.arg("--dns-server").arg(server)
    }

    /// More arguments, as they are.
    pub fn with(self, args: &[&str]) -> RunArgs {
        args.iter().fold(self, |r, a| r.arg(*a))
    }

    /// The spool directory somewhere else than `DIR/spool`.
    pub fn spool_at(mut self, spool: &Path) -> RunArgs {
        self.args[1] = spool.to_string_lossy().into_owned();
        self
    }

    /// The spool directory.
    pub fn spool(&self) -> PathBuf {
        PathBuf::from(&self.args[1])
    }

    /// Any other argument, as is.
    pub fn arg(mut self, a: impl Into<String>) -> RunArgs {
        self.args.push(a.into());
        self
    }

    /// `name` inside the test's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    /// [`Daemon::start`] with these arguments.
    pub fn start(&self, ns: &NetNs) -> Daemon {
        Daemon::start(ns, &self.dir, &self.args())
    }

    /// [`Daemon::spawn_env`] with these arguments and extra environment variables.
    pub fn spawn_env(&self, ns: &NetNs, env: &[(&str, &std::ffi::OsStr)]) -> Daemon {
        Daemon::spawn_env(ns, &self.dir, &self.args(), env)
    }

    /// [`Daemon::spawn`] with these arguments (no wait).
    pub fn spawn(&self, ns: &NetNs) -> Daemon {
        Daemon::spawn(ns, &self.dir, &self.args())
    }
}
