//! A MariaDB server that a test starts (Debian's `mariadb-server`: `mariadb-install-db`, then
//! `mariadbd --user=mysql`, which drops to the `mysql` system user) in a temporary directory,
//! listening on a loopback port inside one of the test's network namespaces and on a socket in
//! that directory; never the machine's own server.
//!
//! The test queries as the server's `root` over the socket (unix_socket authentication: the
//! test runs as root); fwlog logs in as `fwtest` with [`PASSWORD`] over TCP, owner of the
//! database `fwlog`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::netns::NetNs;

pub const PASSWORD: &str = "m4ria-test";
pub const MARIADBD: &str = "/usr/sbin/mariadbd";

pub struct MariaDb {
    pub dir: tempfile::TempDir,
    pub port: u16,
    ns: String,
    child: Option<Child>,
    /// Server options added at every start ([`MariaDb::set_options`]).
    extra: Vec<String>,
}

fn chown_mysql(p: &Path) {
    let id = |flag: &str| -> u32 {
        let o = Command::new("id")
            .args([flag, "mysql"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .expect("a mysql user (tests/run.sh installs mariadb-server)")
    };
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), id("-u"), id("-g")) }, 0);
}

impl MariaDb {
    /// Create the data directory (not started).
    pub fn init(ns: &NetNs, port: u16) -> MariaDb {
        assert!(
            Path::new(MARIADBD).exists(),
            "MariaDB is not installed: run tests/run.sh, which installs mariadb-server"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        chown_mysql(dir.path());
        let data = dir.path().join("data");
        // A temporary directory of its own: servers bootstrapping at once in the shared /tmp
        // trip over each other's temporary tables.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).expect("tmp");
        chown_mysql(&tmp);
        let o = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=mysql", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .output()
            .expect("mariadb-install-db");
        assert!(o.status.success(), "mariadb-install-db: {o:?}");
        MariaDb {
            dir,
            port,
            ns: ns.name.clone(),
            child: None,
            extra: Vec::new(),
        }
    }

    /// Add server options for every start from the next on (later ones win over the
    /// defaults).
    pub fn add_options(&mut self, opts: &[&str]) {
        self.extra.extend(opts.iter().map(|o| o.to_string()));
    }

    /// Keep the `fwlog` database's files under `dir` (e.g. a small file system the test
    /// mounted): `DATADIR/fwlog` is a symbolic link to `dir/fwlog`. Before the first start.
    pub fn database_on(&self, dir: &Path) {
        chown_mysql(dir);
        let db = dir.join("fwlog");
        std::fs::create_dir(&db).expect("database dir");
        chown_mysql(&db);
        std::os::unix::fs::symlink(&db, self.dir.path().join("data").join("fwlog"))
            .expect("symlink the database dir");
    }

    /// Make a CA (`certs/ca.pem`; also `other-ca.pem`, a CA that signed nothing here) and a
    /// server certificate it signs for `san`, and from the next start on serve TLS and
    /// refuse TCP connections without it (`require_secure_transport`). Returns the directory.
    pub fn enable_tls(&mut self, san: &str) -> PathBuf {
        let certs = self.dir.path().join("certs");
        std::fs::create_dir(&certs).expect("certs dir");
        super::pg_fleet::server_certs(&certs, san);
        chown_mysql(&certs.join("server.key"));
        let opt = |name: &str, file: &str| format!("--{name}={}", certs.join(file).display());
        self.extra = vec![
            opt("ssl-ca", "ca.pem"),
            opt("ssl-cert", "server.crt"),
            opt("ssl-key", "server.key"),
            "--require-secure-transport=ON".into(),
        ];
        certs
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// Start the server and wait until it answers; the first time, create `fwtest` and `fwlog`.
    pub fn start(&mut self) {
        let d = self.dir.path();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, MARIADBD])
            .args(["--no-defaults", "--user=mysql", "--skip-name-resolve"])
            .args([
                "--skip-networking=0",
                "--bind-address=127.0.0.1",
                "--skip-log-bin",
            ])
            .arg(format!("--port={}", self.port))
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--log-error={}", d.join("log").display()))
            .args([
                "--innodb-buffer-pool-size=64M",
                "--innodb-log-file-size=64M",
            ])
            .arg("--innodb-flush-log-at-trx-commit=2")
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mariadbd");
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(60);
        while self.try_query("SELECT 1", "mysql").is_err() {
            assert!(
                Instant::now() < end,
                "mariadbd did not start: {}",
                std::fs::read_to_string(d.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let setup = format!(
            "CREATE USER IF NOT EXISTS 'fwtest'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; \
             CREATE DATABASE IF NOT EXISTS fwlog; \
             GRANT ALL ON fwlog.* TO 'fwtest'@'127.0.0.1'"
        );
        self.try_query(&setup, "mysql")
            .unwrap_or_else(|e| panic!("setup: {e}"));
    }

    /// Whether the server process is still there (it may abort on its own, e.g. out of space).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The server's error log lines that say ERROR, last first.
    pub fn errors(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("log.err")).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .rev()
            .filter(|l| l.contains("ERROR"))
            .take(12)
            .collect();
        lines.join("\n")
    }

    /// Kill the server (a crash: no shutdown).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self, user: &str, password: &str) -> String {
        format!("mysql://{user}:{password}@127.0.0.1:{}/fwlog", self.port)
    }

    fn try_query(&self, sql: &str, db: &str) -> Result<String, String> {
        let o = Command::new("mariadb")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-uroot", "-N", "-B", "-e", sql, db])
            .output()
            .map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&o.stdout).trim_end().to_string())
    }

    /// Run `sql` as the server's root in database `fwlog`; its output.
    pub fn query(&self, sql: &str) -> String {
        self.try_query(sql, "fwlog").unwrap_or_else(|e| {
            panic!(
                "mariadb -e {sql}: {e}\nserver errors (last first):\n{}",
                self.errors()
            )
        })
    }

    pub fn count(&self, sql: &str) -> u64 {
        let s = self.query(sql);
        s.parse()
            .unwrap_or_else(|_| panic!("{sql}: not a number: {s:?}"))
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.kill9();
    }
}
