//! Test support shared by the integration tests: network namespaces and their rule sets
//! (`netns`), the kernel log, tools, the daemon and its command line (`daemon`), packets and
//! checksums (`packets`), a seeded generator (`rng`), DNS servers (`dns`), NFQUEUE rules and
//! traffic (`queue`), systemd's fd store played by a test (`fdstore`), the kill -9 tests'
//! flood and accounting (`crash`), GeoIP test databases written by MaxMind's own writer
//! (`geo`, `mkmmdb.pl`), small file systems (`tmpfs`), PostgreSQL servers in a test's namespace
//! (`pg`; `pg_fleet`: one reachable from several namespaces, with TLS), a MariaDB server in a
//! test namespace (`mariadb`).
//!
//! Every test that touches the kernel creates its own namespace (unique name, removed on drop),
//! so tests run in parallel without seeing each other's packets, and nothing leaves the machine.
#![allow(dead_code)]

pub mod crash;
pub mod daemon;
pub mod dns;
pub mod fdstore;
pub mod geo;
pub mod kmsg;
pub mod mariadb;
pub mod netns;
pub mod packets;
pub mod pg;
pub mod pg_fleet;
pub mod queue;
pub mod rng;
pub mod tmpfs;

/// True when running as root (the kernel tests need CAP_NET_ADMIN and CAP_SYS_ADMIN).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Skip the calling test (return early) with a clear message unless running as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::support::is_root() {
            eprintln!(
                "SKIP {}: needs root (network namespaces, nftables, NFLOG); run tests/run.sh as root",
                module_path!()
            );
            return;
        }
    };
}

/// Panics with an actionable message when a command-line tool the test needs is missing.
/// (As root, tests/run.sh installs them; a missing tool there is a setup bug, not a skip.)
pub fn require_tool(name: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(name).is_file());
    assert!(
        found,
        "{name} is not installed: run tests/run.sh, which installs the test dependencies"
    );
}

/// The fwlog binary built for this test run.
pub fn fwlog_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_fwlog"))
}
