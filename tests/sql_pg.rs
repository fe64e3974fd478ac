//! `--output postgresql://...` against a real PostgreSQL server that each test starts (Debian's
//! `postgresql` package: initdb and pg_ctl as the `postgres` system user, which PostgreSQL
//! requires) in a temporary directory on a free loopback port; never the machine's own cluster.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::daemon::{send_udp, wait_for, Daemon};
use support::netns::NetNs;

const BIN: &str = "/usr/lib/postgresql/15/bin";
const PASSWORD: &str = "s3cret-test";

/// A server inside a test's network namespace (where the daemon under test runs), so that
/// `127.0.0.1` means the same place to both.
struct Pg {
    _dir: tempfile::TempDir,
    data: PathBuf,
    port: u16,
    ns: String,
}

/// Run `args` as the postgres user inside namespace `ns`.
fn as_postgres(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns, "runuser", "-u", "postgres", "--"])
        .args(args)
        .output()
        .expect("runuser")
}

impl Pg {
    /// initdb (superuser `fwtest`, password auth on TCP) without starting it.
    fn init(ns: &NetNs, port: u16) -> Pg {
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

    fn start(&self) {
        let sock = self.data.to_str().unwrap();
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {sock} -c fsync=off",
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

    fn url(&self, password: &str) -> String {
        format!(
            "postgresql://fwtest:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// One value from psql.
    fn query(&self, sql: &str) -> String {
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

    fn count(&self, sql: &str) -> u64 {
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

fn c_path(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

fn user_id(flag: &str) -> u32 {
    let o = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .expect("a postgres user")
}

fn stored(pg: &Pg) -> u64 {
    pg.count("SELECT (SELECT count(*) FROM packets) + (SELECT coalesce(sum(count), 0) FROM losses)")
}

fn nft_counter(ns: &NetNs) -> u64 {
    let o = ns
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

fn rule(ns: &NetNs) {
    ns.nft("table inet t {\n chain o {\n  type filter hook output priority 0;\n  udp dport 9999 counter log prefix \"PG \" group 5\n }\n}\n");
}

#[test]
fn unreachable_at_start_then_every_packet_once_with_inet_columns_and_replay_adds_nothing() {
    require_root!();
    let ns = NetNs::new("pgrun");
    rule(&ns);
    let pg = Pg::init(&ns, 55432);
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let url = pg.url(PASSWORD);
    let args = [
        "--group",
        "5",
        "--no-dns",
        "--spool",
        spool.to_str().unwrap(),
        "--retain",
        "64MiB",
        "--host-name",
        "fw1",
        "--output",
        &url,
    ];
    // No server yet: fwlog starts, spools, says so once.
    let d = Daemon::start(&ns, dir.path(), &args);
    send_udp(&ns, 9999, 0..1000);
    wait_for("the outage to be reported", Duration::from_secs(20), || {
        d.stderr_text()
            .contains("cannot write to postgresql://fwtest@127.0.0.1:55432/postgres")
    });
    let err = d.stderr_text();
    assert!(
        !err.contains(PASSWORD),
        "the password is never shown: {err}"
    );
    pg.start();
    wait_for("the backlog stored", Duration::from_secs(60), || {
        pg.query("SELECT to_regclass('packets') IS NOT NULL") == "t" && stored(&pg) >= 1000
    });
    send_udp(&ns, 9999, 1000..3000);
    wait_for("every packet stored", Duration::from_secs(60), || {
        stored(&pg) >= 3000
    });
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0);
    assert_eq!(
        err.matches("cannot write to").count(),
        1,
        "said once: {err}"
    );
    assert!(err.contains("works again"), "and again on recovery: {err}");
    assert_eq!(stored(&pg), nft_counter(&ns));
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 3000);
    assert_eq!(
        pg.count("SELECT count(DISTINCT seq_global) FROM packets"),
        3000
    );
    assert_eq!(
        pg.count("SELECT count(*) FROM packets WHERE src << '127.0.0.0/8'"),
        3000
    );
    assert_eq!(
        pg.query("SELECT DISTINCT host || ' ' || prefix || '|' FROM packets"),
        "fw1 PG |"
    );
    // Replaying the kept spool adds nothing: same keys.
    let o = ns
        .command(support::fwlog_bin())
        .args(["replay", "--spool", spool.to_str().unwrap(), "--no-dns"])
        .args(["--host-name", "fw1", "-o", &url])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 3000);
}

#[test]
fn a_wrong_password_is_one_clear_line_and_the_packets_stay_spooled() {
    require_root!();
    let ns = NetNs::new("pgpw");
    rule(&ns);
    let pg = Pg::init(&ns, 55433);
    pg.start();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let url = pg.url("wrong-password");
    let args = [
        "--group",
        "5",
        "--no-dns",
        "--spool",
        spool.to_str().unwrap(),
        "--output",
        &url,
    ];
    let d = Daemon::start(&ns, dir.path(), &args);
    send_udp(&ns, 9999, 0..300);
    wait_for("the refusal", Duration::from_secs(20), || {
        d.stderr_text().contains("password authentication failed")
    });
    std::thread::sleep(Duration::from_secs(2));
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("password")).collect();
    assert_eq!(lines.len(), 1, "one clear line: {err}");
    assert!(
        !err.contains("wrong-password"),
        "the password is never shown: {err}"
    );
    let pending = fwlog_spool::ReadOnlySpool::open(&spool)
        .unwrap()
        .records()
        .filter(|r| r.as_ref().is_ok_and(|r| !r.acked))
        .count();
    assert_eq!(pending, 300, "the packets stay in the spool");
    assert_eq!(pg.query("SELECT to_regclass('packets') IS NULL"), "t");
}

impl Pg {
    /// Stop the server the hard way (a crash) and start it again.
    fn crash_and_restart(&self) {
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
        self.start();
    }
}

#[test]
fn kill_9_and_a_server_crash_during_a_flood_every_seq_global_is_one_row_or_a_loss() {
    require_root!();
    let ns = NetNs::new("pgcrash");
    rule(&ns);
    let pg = Pg::init(&ns, 55434);
    pg.start();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let url = pg.url(PASSWORD);
    let argv = [
        "--group",
        "5",
        "--no-dns",
        "--spool",
        spool.to_str().unwrap(),
        "--segment-size",
        "64KiB",
        "--output",
        &url,
    ];
    let seed = std::process::id() as u64;
    eprintln!("pg crash test: seed {seed}");
    let mut rng = support::rng::Lcg(seed);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let sender = s.spawn(|| {
            ns.enter(|| {
                let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for _ in 0..20 {
                        let _ = sock.send_to(format!("pkt-{n}").as_bytes(), "127.0.0.1:9999");
                        n += 1;
                    }
                    std::thread::sleep(Duration::from_micros(500));
                }
            })
        });
        for round in 0..10 {
            let d = Daemon::spawn(&ns, dir.path(), &argv);
            if round == 5 {
                std::thread::sleep(Duration::from_millis(300));
                pg.crash_and_restart();
            }
            std::thread::sleep(Duration::from_millis(100 + rng.next(500)));
            d.kill9();
        }
        let d = Daemon::start(&ns, dir.path(), &argv);
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        sender.join().unwrap();
        let mut last = 0;
        wait_for("the rows to settle", Duration::from_secs(90), || {
            std::thread::sleep(Duration::from_millis(700));
            let n = stored(&pg);
            let settled = n == last && n > 0;
            last = n;
            settled
        });
        assert_eq!(d.stop(), 0);
    });
    assert_eq!(
        pg.count("SELECT count(*) FROM packets"),
        pg.count("SELECT count(DISTINCT seq_global) FROM packets"),
        "a packet stored twice"
    );
    let missing = pg.count(
        "SELECT count(*) FROM generate_series((SELECT min(seq_global) FROM packets), \
         (SELECT max(seq_global) FROM packets)) g \
         WHERE NOT EXISTS (SELECT 1 FROM packets WHERE seq_global = g) \
         AND NOT EXISTS (SELECT 1 FROM losses WHERE g BETWEEN seq_global_first AND seq_global_last)",
    );
    assert_eq!(missing, 0, "seq_global values neither a row nor in losses");
    let left = fwlog_spool::ReadOnlySpool::open(&spool)
        .unwrap()
        .records()
        .filter(|r| r.as_ref().is_ok_and(|r| !r.acked))
        .count();
    assert_eq!(left, 0, "unacknowledged records left in the spool");
    eprintln!(
        "pg crash test: nft counted {}, {} rows, {} lost in {} loss rows",
        nft_counter(&ns),
        pg.count("SELECT count(*) FROM packets"),
        pg.count("SELECT coalesce(sum(count), 0) FROM losses"),
        pg.count("SELECT count(*) FROM losses")
    );
}

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sample.pcap");

/// `fwlog read SAMPLE -o URL` inside the server's namespace.
fn read_into(ns: &NetNs, url: &str) -> (i32, String) {
    let o = ns
        .command(support::fwlog_bin())
        .args(["read", "--no-dns", "-o", url, SAMPLE])
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_role_that_may_only_insert_and_select_writes_into_a_schema_its_owner_made() {
    require_root!();
    let ns = NetNs::new("pgrole");
    let pg = Pg::init(&ns, 55435);
    pg.start();
    // The owner's first use creates the schema.
    let (code, err) = read_into(&ns, &pg.url(PASSWORD));
    assert_eq!(code, 0, "{err}");
    let n = pg.count("SELECT count(*) FROM packets");
    assert!(n > 0);
    pg.query("CREATE ROLE writer LOGIN PASSWORD 'w-pass'");
    pg.query("GRANT SELECT ON schema_version TO writer");
    pg.query("GRANT INSERT, SELECT ON packets, losses TO writer");
    pg.query("CREATE ROLE reader LOGIN PASSWORD 'r-pass'");
    pg.query("GRANT SELECT ON schema_version, packets, losses TO reader");
    let as_role =
        |user: &str, pw: &str| format!("postgresql://{user}:{pw}@127.0.0.1:{}/postgres", pg.port);
    let (code, err) = read_into(&ns, &as_role("writer", "w-pass"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 2 * n);
    // Without INSERT: one clear line naming the refusal; nothing written.
    let (code, err) = read_into(&ns, &as_role("reader", "r-pass"));
    assert_eq!(code, 73, "{err}");
    assert!(err.contains("permission denied for table packets"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 2 * n);
    // --db-retain is SQLite's only, said before anything is written.
    let o = ns
        .command(support::fwlog_bin())
        .args([
            "read",
            "--no-dns",
            "--db-retain",
            "30d",
            "-o",
            &pg.url(PASSWORD),
            SAMPLE,
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(73));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--db-retain is not supported"));
}

#[test]
fn a_row_a_site_check_or_trigger_refuses_becomes_a_loss_and_the_rest_is_stored() {
    require_root!();
    let ns = NetNs::new("pgrefuse");
    let pg = Pg::init(&ns, 55436);
    pg.start();
    let url = pg.url(PASSWORD);
    let (code, err) = read_into(&ns, &url);
    assert_eq!(code, 0, "{err}");
    let n = pg.count("SELECT count(*) FROM packets");
    assert!(n > 5, "the sample has packets");
    // A site's trigger refuses spool record 3, a site's CHECK refuses record 5 (NOT VALID: the
    // rows already there are not checked).
    pg.query(
        "CREATE FUNCTION no_seq3() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.seq = 3 THEN RAISE EXCEPTION 'site rule: seq 3 not wanted'; END IF; \
         RETURN NEW; END $$",
    );
    pg.query(
        "CREATE TRIGGER no_seq3 BEFORE INSERT ON packets FOR EACH ROW EXECUTE FUNCTION no_seq3()",
    );
    pg.query("ALTER TABLE packets ADD CONSTRAINT no_seq5 CHECK (seq <> 5) NOT VALID");
    let (code, err) = read_into(&ns, &url);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("refused 2 row(s)"), "{err}");
    assert!(err.contains("site rule: seq 3 not wanted"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 2 * n - 2);
    assert_eq!(
        pg.query("SELECT string_agg(seq || '|' || count || '|' || reason, E'\\n' ORDER BY seq) FROM losses"),
        "3|1|refused: site rule: seq 3 not wanted\n\
         5|1|refused: new row for relation \"packets\" violates check constraint \"no_seq5\""
    );
    // A failure that is not one row's (the role may not insert) still fails the batch, so
    // nothing is acknowledged and nothing becomes a loss.
    pg.query("CREATE ROLE reader LOGIN PASSWORD 'r-pass'");
    pg.query("GRANT SELECT ON schema_version, packets, losses TO reader");
    let reader = format!("postgresql://reader:r-pass@127.0.0.1:{}/postgres", pg.port);
    let (code, err) = read_into(&ns, &reader);
    assert_eq!(code, 73, "{err}");
    assert_eq!(pg.count("SELECT count(*) FROM losses"), 2);
}
