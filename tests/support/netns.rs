//! Network namespaces created (and removed) by a test.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace owned by the test; deleted (with everything in it) on drop.
pub struct NetNs {
    pub name: String,
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl NetNs {
    /// Create a namespace with `lo` up. `tag` makes the name readable in `ip netns list`.
    pub fn new(tag: &str) -> NetNs {
        super::require_tool("ip");
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // Names are limited to what fits a file name; keep them short.
        let name = format!(
            "fwl-{}-{}-{n}",
            &tag[..tag.len().min(12)],
            std::process::id()
        );
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NS ARGS...`
    pub fn ip(&self, args: &[&str]) -> Output {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Load an nft ruleset (text for `nft -f -`) inside the namespace.
    pub fn nft(&self, ruleset: &str) {
        super::require_tool("nft");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nft");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(ruleset.as_bytes())
            .expect("write ruleset");
        let out = child.wait_with_output().expect("wait nft");
        assert!(
            out.status.success(),
            "nft -f failed: {}\nruleset:\n{ruleset}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The tests' usual rule set: table `inet t`, chain `o` on the output hook, holding
    /// `rules` (one rule each, e.g. `udp dport 9999 log prefix "X " group 5`).
    pub fn output_rules(&self, rules: &[impl AsRef<str>]) {
        let mut r =
            String::from("table inet t {\n chain o {\n  type filter hook output priority 0;\n");
        for rule in rules {
            r.push_str("  ");
            r.push_str(rule.as_ref());
            r.push('\n');
        }
        r.push_str(" }\n}\n");
        self.nft(&r);
    }

    /// The packet count of the first `counter` in the namespace's rule set (what the rule
    /// that logs counted: the measure of loss).
    pub fn counter(&self) -> u64 {
        let o = self
            .command("nft")
            .args(["list", "ruleset"])
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&o.stdout).into_owned();
        s.split("counter packets ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no counter in {s}"))
    }

    /// A command that runs inside the namespace (`ip netns exec NS PROG`).
    pub fn command(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(prog);
        c
    }

    /// Run `f` on a thread that has joined this namespace. Sockets it opens belong to the
    /// namespace (and stay there if returned), so tests can send and receive packets inside.
    pub fn enter<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                use std::os::fd::AsRawFd;
                // SAFETY: fd is a valid namespace file; setns affects only this thread.
                let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("thread inside the namespace panicked")
        })
    }

    /// Add a veth pair between this namespace and a new peer namespace, with addresses
    /// `10.200.N.1/24` here and `10.200.N.2/24` there (and fd00:200:N::1/2 for IPv6).
    /// Both ends live in namespaces this test created, so nothing is routed off the machine.
    /// Returns the peer namespace and the local interface name.
    pub fn veth(&self, n: u8) -> (NetNs, String) {
        let peer = NetNs::new(&format!("peer{n}"));
        let here = format!("vh{n}");
        let there = format!("vp{n}");
        run(Command::new("ip").args([
            "link", "add", &here, "netns", &self.name, "type", "veth", "peer", "name", &there,
            "netns", &peer.name,
        ]));
        for (ns, dev, host) in [(self, &here, 1), (&peer, &there, 2)] {
            ns.ip(&["addr", "add", &format!("10.200.{n}.{host}/24"), "dev", dev]);
            ns.ip(&[
                "-6",
                "addr",
                "add",
                &format!("fd00:200:{n}::{host}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            ns.ip(&["link", "set", dev, "up"]);
        }
        (peer, here)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}
