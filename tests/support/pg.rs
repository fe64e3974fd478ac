//! A PostgreSQL server a test starts (Debian's `postgresql` package: initdb and pg_ctl as the
//! `postgres` system user, which PostgreSQL requires) in a temporary directory, inside the
//! test's network namespace on a loopback port; never the machine's own cluster.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::netns::NetNs;

pub const BIN: &str = "/usr/lib/postgresql/15/bin";
pub const PASSWORD: &str = "s3cret-test";

/// A server inside a test's network namespace (where the daemon under test runs), so that
/// `127.0.0.1` means the same place to both.
pub struct Pg {
    pub _dir: tempfile::TempDir,
    pub data: PathBuf,
    pub port: u16,
    pub ns: String,
}

/// Run `args` as the postgres user inside namespace `ns`.
pub fn as_postgres(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns, "runuser", "-u", "postgres", "--"])
        .args(args)
        .output()
        .expect("runuser")
}

impl Pg {
    /// initdb (superuser `fwtest`, password auth on TCP) without starting it.
    pub fn init(ns: &NetNs, port: u16) -> Pg {
        assert!(
            Path::new(BIN).join("initdb").exists(),
            "PostgreSQL 15 is not installed: run tests/run.sh, which installs postgresql"
        );
        let dir = tempfile::tempdir().unwrap();
        let c = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path; uid/gid of the postgres user as id(1) reports them.
        let (uid, gid) = (user_id("-u"), user_id("-g"));
        assert_eq!(unsafe { libc::chown(c.as_ptr(), uid, gid) }, 0);
        let pw = dir.path().join("pw");
        std::fs::write(&pw, PASSWORD).unwrap();
        assert_eq!(unsafe { libc::chown(c_path(&pw).as_ptr(), uid, gid) }, 0);
        let data = dir.path().join("data");
        let o = as_postgres(
            &ns.name,
            &[
                &format!("{BIN}/initdb"),
                "-D",
                data.to_str().unwrap(),
                "-U",
                "fwtest",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--pwfile",
                pw.to_str().unwrap(),
            ],
        );
        assert!(
            o.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Pg {
            _dir: dir,
            data,
            port,
            ns: ns.name.clone(),
        }
    }

    pub fn start(&self) {
        self.start_with("");
    }

    /// Start with extra server options (`-c name=value ...`).
    pub fn start_with(&self, extra: &str) {
        let sock = self.data.to_str().unwrap();
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {sock} -c fsync=off {extra}",
            self.port
        );
        let log = self.data.join("log");
        let o = as_postgres(
            &self.ns,
            &[
                &format!("{BIN}/pg_ctl"),
                "-D",
                sock,
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        assert!(
            o.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    pub fn url(&self, password: &str) -> String {
        format!(
            "postgresql://fwtest:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// One value from psql.
    pub fn query(&self, sql: &str) -> String {
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "fwtest",
            ])
            .args(["-d", "postgres", "-tAc", sql])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .expect("psql");
        assert!(
            o.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    pub fn count(&self, sql: &str) -> u64 {
        self.query(sql).parse().unwrap()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = as_postgres(
            &self.ns,
            &[
                &format!("{BIN}/pg_ctl"),
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ],
        );
    }
}

pub fn c_path(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

pub fn user_id(flag: &str) -> u32 {
    let o = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .expect("a postgres user")
}
