//! A PostgreSQL server that a test starts (Debian's `postgresql` 15: initdb and pg_ctl as the
//! `postgres` system user, which PostgreSQL requires) in a temporary directory, inside one of
//! the test's network namespaces; never the machine's own cluster.
//!
//! The superuser `fwtest` logs in with a password over TCP (scram-sha-256) from loopback and
//! from `10.200.0.0/16` (hosts joined by [`NetNs::veth`](super::netns::NetNs::veth)); the test
//! itself queries over the Unix socket in the data directory (trust), which keeps working
//! when TCP is TLS-only.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::netns::NetNs;

pub const BIN: &str = "/usr/lib/postgresql/15/bin";
pub const PASSWORD: &str = "s3cret-test";

pub struct PgServer {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub port: u16,
    ns: String,
    /// Extra `-c name=value` options given at every start.
    opts: String,
}

/// The postgres system user's uid and gid.
pub fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let o = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .expect("a postgres user (tests/run.sh installs postgresql)")
    };
    (id("-u"), id("-g"))
}

/// chown `p` to the postgres user.
pub fn give_to_postgres(p: &Path) {
    let (uid, gid) = postgres_ids();
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::chown(c.as_ptr(), uid, gid) },
        0,
        "chown {p:?}"
    );
}

fn check(what: &str, o: Output) -> Output {
    assert!(
        o.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

impl PgServer {
    /// initdb in a new temporary directory, to listen on `port` inside `ns` (not started).
    pub fn init(ns: &NetNs, port: u16) -> PgServer {
        assert!(
            Path::new(BIN).join("initdb").exists(),
            "PostgreSQL 15 is not installed: run tests/run.sh, which installs postgresql"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        give_to_postgres(dir.path());
        let pw = dir.path().join("pw");
        std::fs::write(&pw, PASSWORD).expect("pwfile");
        give_to_postgres(&pw);
        let data = dir.path().join("data");
        let pg = PgServer {
            dir,
            data,
            port,
            ns: ns.name.clone(),
            opts: String::new(),
        };
        let initdb = format!("{BIN}/initdb");
        let args = [
            initdb.as_str(),
            "-D",
            pg.data.to_str().expect("utf-8 path"),
            "-U",
            "fwtest",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--pwfile",
            pw.to_str().expect("utf-8 path"),
        ];
        check("initdb", pg.as_postgres(&args));
        pg.hba_first("host all all 10.200.0.0/16 scram-sha-256");
        pg
    }

    /// Run `args` as the postgres user inside the server's namespace.
    pub fn as_postgres(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, "runuser", "-u", "postgres", "--"])
            .args(args)
            .output()
            .expect("runuser")
    }

    /// Put `line` first in pg_hba.conf (takes effect at the next start).
    pub fn hba_first(&self, line: &str) {
        let hba = self.data.join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).expect("pg_hba.conf");
        std::fs::write(&hba, format!("{line}\n{rules}")).expect("pg_hba.conf");
    }

    /// Server options (`-c name=value ...`) for every start from now on.
    pub fn set_options(&mut self, opts: &str) {
        self.opts = opts.to_string();
    }

    /// Start, listening on every address of the namespace; `fsync=off`: the tests measure
    /// fwlog, not the shared machine's disk.
    pub fn start(&self) {
        let sock = self.data.to_str().expect("utf-8 path");
        let opts = format!(
            "-p {} -c listen_addresses=* -k {sock} -c fsync=off {}",
            self.port, self.opts
        );
        let log = self.data.join("log");
        let pg_ctl = format!("{BIN}/pg_ctl");
        let args = [
            pg_ctl.as_str(),
            "-D",
            sock,
            "-o",
            &opts,
            "-l",
            log.to_str().expect("utf-8 path"),
            "-w",
            "start",
        ];
        check("pg_ctl start", self.as_postgres(&args));
    }

    /// Stop the hard way (a crash: every connection cut, no checkpoint).
    pub fn stop_immediate(&self) {
        let pg_ctl = format!("{BIN}/pg_ctl");
        let data = self.data.to_str().expect("utf-8 path");
        let _ = self.as_postgres(&[&pg_ctl, "-D", data, "-m", "immediate", "stop"]);
    }

    /// `postgresql://USER:PASSWORD@HOST:PORT/postgres` + `query` (e.g. `?sslmode=...`).
    pub fn url(&self, user: &str, password: &str, host: &str, query: &str) -> String {
        format!(
            "postgresql://{user}:{password}@{host}:{}/postgres{query}",
            self.port
        )
    }

    /// Run `sql` as `fwtest` over the Unix socket; the output of `psql -tA`, trimmed.
    pub fn query(&self, sql: &str) -> String {
        let port = self.port.to_string();
        let sock = self.data.to_str().expect("utf-8 path");
        let o = Command::new("ip")
            .args(["netns", "exec", &self.ns, "psql", "-h", sock, "-p", &port])
            .args(["-U", "fwtest", "-d", "postgres", "-v", "ON_ERROR_STOP=1"])
            .args(["-tAc", sql])
            .output()
            .expect("psql");
        let o = check(&format!("psql {sql}"), o);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    pub fn count(&self, sql: &str) -> u64 {
        let s = self.query(sql);
        s.parse()
            .unwrap_or_else(|_| panic!("not a number from {sql}: {s:?}"))
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop_immediate();
    }
}

/// `openssl ARGS` in `dir`.
pub fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (tests/run.sh installs it)");
    check(&format!("openssl {args:?}"), o);
}

/// A self-signed CA in `dir`: `NAME.pem`, `NAME.key`.
pub fn make_ca(dir: &Path, name: &str) {
    let subj = format!("/CN={name}");
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &subj,
            "-keyout", &key, "-out", &pem,
        ],
    );
}

/// In `certs`: a CA (`ca.pem`), a second CA that signs nothing (`other-ca.pem`), and a server
/// key and certificate (`server.key`, `server.crt`, CN db.test) the first CA signs for `san`
/// (e.g. `IP:10.200.1.1,DNS:db.test`).
pub fn server_certs(certs: &Path, san: &str) {
    make_ca(certs, "ca");
    make_ca(certs, "other-ca");
    openssl(
        certs,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=db.test",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(certs.join("ext"), format!("subjectAltName={san}\n")).expect("ext");
    openssl(
        certs,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext",
            "-out",
            "server.crt",
        ],
    );
}

impl PgServer {
    /// Make a CA (`certs/ca.pem`) and a server certificate it signs for `san` (e.g.
    /// `IP:10.200.1.1,DNS:db.test`), and accept TCP connections over TLS only from the next
    /// start on. Returns the certificate directory (also holding `other-ca.pem`, a CA that
    /// signed nothing here).
    pub fn enable_tls(&mut self, san: &str) -> PathBuf {
        let certs = self.dir.path().join("certs");
        std::fs::create_dir(&certs).expect("certs dir");
        server_certs(&certs, san);
        for f in ["server.key", "server.crt"] {
            let p = certs.join(f);
            give_to_postgres(&p);
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod");
        }
        self.hba_first("hostnossl all all 0.0.0.0/0 reject");
        self.set_options(&format!(
            "-c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key",
            certs.display()
        ));
        certs
    }
}
