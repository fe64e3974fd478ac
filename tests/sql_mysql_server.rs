//! `--output mysql://...` against a MariaDB server with settings of its own, started by each
//! test ([`support::mariadb`]): TLS required (a CA and certificate the test makes), and the
//! `fwlog` database on a small file system that fills up.

mod support;

use std::time::Duration;

use support::daemon::{send_udp, wait_for, RunArgs};
use support::mariadb::{MariaDb, PASSWORD};
use support::netns::NetNs;
use support::tmpfs::Tmpfs;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sample.pcap");

/// `fwlog read --no-dns -o URL SAMPLE` inside `ns`: (status, stderr).
fn read(ns: &NetNs, url: &str) -> (i32, String) {
    let o = ns
        .command(support::fwlog_bin())
        .args(["read", "--no-dns", "-o", url, SAMPLE])
        .env_remove("MYSQL_PWD")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Exit 73 and one line that says `what`; nothing written.
fn refused(ns: &NetNs, db: &MariaDb, url: &str, what: &str) {
    let before = db.count("SELECT count(*) FROM packets");
    let (code, err) = read(ns, url);
    assert_eq!(code, 73, "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(what), "{what}: {err}");
    assert!(!err.contains(PASSWORD), "never the password: {err}");
    assert_eq!(db.count("SELECT count(*) FROM packets"), before);
}

/// Rows + lost packets stored (0 before the schema exists).
fn stored(db: &MariaDb) -> u64 {
    if db.query("SHOW TABLES LIKE 'schema_version'") != "schema_version" {
        return 0;
    }
    db.count("SELECT (SELECT count(*) FROM packets) + (SELECT coalesce(sum(count), 0) FROM losses)")
}

#[test]
fn tls_verify_identity_stores_rows_a_wrong_ca_or_name_is_one_line_and_plain_tcp_is_refused() {
    require_root!();
    support::require_tool("openssl");
    let ns = NetNs::new("mytls");
    let mut db = MariaDb::init(&ns, 53330);
    let certs = db.enable_tls("IP:127.0.0.1");
    // Also on 127.0.0.2, an address of the namespace's loopback the certificate does not name.
    db.add_options(&["--bind-address=0.0.0.0"]);
    db.start();
    let ca = certs.join("ca.pem");
    let base = db.url("fwtest", PASSWORD);
    let (code, err) = read(
        &ns,
        &format!("{base}?ssl-mode=VERIFY_IDENTITY&ssl-ca={}", ca.display()),
    );
    assert_eq!(code, 0, "{err}");
    let n = db.count("SELECT count(*) FROM packets");
    assert!(n > 5, "the sample's packets over TLS");
    // The server saw TLS sessions (and takes no other TCP connection).
    assert!(
        db.query("SHOW GLOBAL STATUS LIKE 'Ssl_accepts'")
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|v| v > 0),
        "TLS accepted"
    );
    // Encrypted without checking the certificate, as the clients' REQUIRED.
    let (code, err) = read(&ns, &format!("{base}?ssl-mode=REQUIRED"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(db.count("SELECT count(*) FROM packets"), 2 * n);
    // A CA that did not sign the server's certificate.
    let other = certs.join("other-ca.pem");
    refused(
        &ns,
        &db,
        &format!("{base}?ssl-mode=VERIFY_IDENTITY&ssl-ca={}", other.display()),
        "UnknownIssuer",
    );
    // Another name than the certificate's.
    let other_name = base.replace("@127.0.0.1:", "@127.0.0.2:");
    refused(
        &ns,
        &db,
        &format!(
            "{other_name}?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
            ca.display()
        ),
        "not valid for name",
    );
    // Plain TCP: the server requires TLS. MariaDB 10.11 says only "Access denied"; fwlog adds
    // what may be meant.
    refused(&ns, &db, &base, "Access denied");
    refused(&ns, &db, &base, "require_secure_transport");
    // A CA file that is not one: a usage error before anything is sent.
    let (code, err) = read(
        &ns,
        &format!(
            "{base}?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
            certs.join("server.csr").display()
        ),
    );
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("no certificate in it"), "{err}");
}

#[test]
fn a_full_disk_under_the_database_keeps_fwlog_spooling_and_everything_is_stored_once_after() {
    require_root!();
    let ns = NetNs::new("myfull");
    ns.output_rules(&["udp dport 9999 counter log prefix \"FULL \" group 5"]);
    let mut db = MariaDb::init(&ns, 53331);
    let small = Tmpfs::mount(&db.dir.path().join("small"), "64m");
    db.database_on(small.path());
    db.start();
    let dir = tempfile::tempdir().unwrap();
    let url = db.url("fwtest", PASSWORD);
    let args = RunArgs::new(dir.path())
        .group(5)
        .with(&["--retain", "256MiB"])
        .output_to(&url);
    let d = args.start(&ns);
    send_udp(&ns, 9999, 0..500);
    wait_for("the first rows", Duration::from_secs(60), || {
        stored(&db) >= 500
    });
    let err = small.while_full(|| {
        send_udp(&ns, 9999, 500..5_500);
        wait_for(
            "the full disk to be reported",
            Duration::from_secs(120),
            || d.stderr_text().contains("cannot write to"),
        );
        std::thread::sleep(Duration::from_secs(3));
        d.stderr_text()
    });
    let said: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("cannot write to"))
        .collect();
    assert_eq!(said.len(), 1, "said once: {err}");
    // MariaDB 10.11 either refuses the statement ("The table 'packets' is full") or, when
    // undoing it needs space it cannot have, aborts ("[FATAL] InnoDB: Error (Out of disk
    // space) in rollback"). Room made, the server is started again as systemd would.
    if !db.running() {
        eprintln!("mariadbd aborted on the full disk:\n{}", db.errors());
        assert!(db.errors().contains("Out of disk space"), "{}", db.errors());
        db.start();
    }
    let end = std::time::Instant::now() + Duration::from_secs(180);
    while stored(&db) < 5_500 {
        assert!(
            std::time::Instant::now() < end,
            "the backlog not stored: {} of 5500; fwlog: {}; server: {}",
            stored(&db),
            d.stderr_text(),
            db.errors()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let err = d.stderr_text();
    assert!(err.contains("works again"), "{err}");
    assert_eq!(d.stop(), 0);
    assert_eq!(stored(&db), ns.counter(), "rows + losses = the nft counter");
    assert_eq!(db.count("SELECT coalesce(sum(count), 0) FROM losses"), 0);
    assert_eq!(
        db.count("SELECT count(*) FROM packets"),
        db.count("SELECT count(DISTINCT seq_global) FROM packets"),
        "a packet stored twice"
    );
}
