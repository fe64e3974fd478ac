//! A `losses` row the database refuses (a site's trigger on `losses`) never stops logging, on
//! every engine: the batch commits without it, the packet rows are stored, and fwlog says on
//! stderr how many packets the refused rows stood for and why. SQLite in a temporary file;
//! PostgreSQL and MariaDB are real servers each test starts ([`support::pg`],
//! [`support::mariadb`]).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fwlog::nflog::attr::LossRecord;
use support::mariadb::{self, MariaDb};
use support::netns::NetNs;
use support::packets::udp_record;
use support::pg::{self, Pg};

/// Packets in the capture; spool record 3 is a packet a site rule refuses.
const PACKETS: u64 = 10;
/// The kernel drop recorded between the packets: 7 packets, NFLOG sequence 100..=106.
const DROPPED: u64 = 7;

/// A spool of [`PACKETS`] UDP packets with a loss record (a sequence gap) after the fourth,
/// as intake writes them.
fn spool(path: &Path) {
    let base = 1_700_000_000;
    let (mut w, _r, _) = fwlog_spool::Spool::open(path, fwlog_spool::Options::default()).unwrap();
    for i in 0..PACKETS as usize {
        if i == 4 {
            let mut rec = Vec::new();
            LossRecord {
                group: Some(5),
                cause: 0,
                count: Some(DROPPED),
                seq_global: Some((100, 106)),
                spool_seq: None,
            }
            .encode(base + i as i64, 0, &mut rec);
            w.append(&rec).unwrap();
        }
        let rec = udp_record(i as u8, base + i as i64, 0, None, b"LOSS ");
        w.append(&rec).unwrap();
    }
    w.commit().unwrap();
    w.close().unwrap();
    fwlog::sink::sql::stream::open_or_create(path).unwrap();
}

/// fwlog, to run in `ns` when given.
fn fwlog_in(ns: Option<&NetNs>) -> Command {
    match ns {
        Some(ns) => ns.command(support::fwlog_bin()),
        None => Command::new(support::fwlog_bin()),
    }
}

/// `fwlog db init TARGET` (in `ns` when given), which must succeed.
fn db_init(ns: Option<&NetNs>, target: &str) {
    let o = fwlog_in(ns).args(["db", "init", target]).output().unwrap();
    assert!(o.status.success(), "{o:?}");
}

/// `err` says one losses row was refused for the [`DROPPED`] packets it stood for, and `why`.
fn refused_one(err: &str, why: &str) {
    assert!(
        err.contains(&format!(
            "refused 1 losses row(s) for {DROPPED} lost packet(s)"
        )),
        "{err}"
    );
    assert!(err.contains(why), "{err}");
}

/// `fwlog replay --spool SPOOL --no-dns --host-name HOST -o TARGET` (in `ns` when given),
/// which must end within 60 s: a batch retried for ever never does. Returns (status, stderr).
fn replay_into(ns: Option<&NetNs>, target: &str, spool: &Path, host: &str) -> (i32, String) {
    let mut cmd = fwlog_in(ns);
    let mut child = cmd
        .args([
            "replay",
            "--no-dns",
            "--host-name",
            host,
            "-o",
            target,
            "--spool",
        ])
        .arg(spool)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let o = child.wait_with_output().unwrap();
            return (
                status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            );
        }
        if Instant::now() > end {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "fwlog replay still retrying after 60 s: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What every engine's run says and stores: the packet rows but the refused one, no loss rows,
/// and one line per kind of refusal with the lost packets counted.
fn check(err: &str, rows: u64, loss_rows: u64, rule: &str) {
    assert_eq!(
        rows,
        PACKETS - 1,
        "every packet row but the refused one: {err}"
    );
    assert_eq!(loss_rows, 0, "the site's rule refused every loss row");
    assert!(
        err.contains("refused 1 row(s)"),
        "the refused packet row: {err}"
    );
    assert!(
        err.contains(&format!(
            "refused 2 losses row(s) for {} lost packet(s)",
            DROPPED + 1
        )),
        "the refused loss rows and the packets they stood for: {err}"
    );
    assert!(err.contains(rule), "the server's reason: {err}");
}

#[test]
fn sqlite_a_refused_losses_row_is_reported_and_the_batch_goes_on() {
    support::require_tool("sqlite3");
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("spool");
    spool(&cap);
    let db = dir.path().join("fw.db");
    let target = format!("sqlite:{}", db.display());
    db_init(None, &target);
    let sql = |q: &str| {
        let o = Command::new("sqlite3").arg(&db).arg(q).output().unwrap();
        assert!(o.status.success(), "{q}: {o:?}");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    sql(
        "CREATE TRIGGER no_seq3 BEFORE INSERT ON packets WHEN NEW.seq = 3 \
         BEGIN SELECT RAISE(ABORT, 'site rule: seq 3 not wanted'); END; \
         CREATE TRIGGER no_losses BEFORE INSERT ON losses \
         BEGIN SELECT RAISE(ABORT, 'site rule: no losses here'); END",
    );
    let (code, err) = replay_into(None, &target, &cap, "first");
    assert_eq!(code, 0, "{err}");
    let n = |q: &str| sql(q).parse::<u64>().unwrap();
    check(
        &err,
        n("SELECT count(*) FROM packets"),
        n("SELECT count(*) FROM losses"),
        "site rule: no losses here",
    );
    assert_eq!(err.lines().count(), 2, "{err}");
    // A trigger that rolls the whole transaction back: the batch is stored again without the
    // refused rows, never retried for ever.
    sql("DROP TRIGGER no_seq3; DROP TRIGGER no_losses; \
         CREATE TRIGGER no_seq3 BEFORE INSERT ON packets WHEN NEW.seq = 3 \
         BEGIN SELECT RAISE(ROLLBACK, 'site rule: seq 3 not wanted'); END; \
         CREATE TRIGGER no_losses BEFORE INSERT ON losses \
         BEGIN SELECT RAISE(ROLLBACK, 'site rule: no losses, rolled back'); END");
    let (code, err) = replay_into(None, &target, &cap, "second");
    assert_eq!(code, 0, "{err}");
    check(
        &err,
        n("SELECT count(*) FROM packets") - (PACKETS - 1),
        n("SELECT count(*) FROM losses"),
        "site rule: no losses, rolled back",
    );
}

#[test]
fn postgresql_a_refused_losses_row_is_reported_and_the_batch_goes_on() {
    require_root!();
    let ns = NetNs::new("pglossrule");
    let pg = Pg::init(&ns, 55440);
    pg.start();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("spool");
    spool(&cap);
    let url = pg.url(pg::PASSWORD);
    db_init(Some(&ns), &url);
    pg.query(
        "CREATE FUNCTION no_seq3() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.seq = 3 THEN RAISE EXCEPTION 'site rule: seq 3 not wanted'; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER no_seq3 BEFORE INSERT ON packets FOR EACH ROW EXECUTE FUNCTION no_seq3(); \
         CREATE FUNCTION no_losses() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         RAISE EXCEPTION 'site rule: no losses here'; END $$; \
         CREATE TRIGGER no_losses BEFORE INSERT ON losses FOR EACH ROW EXECUTE FUNCTION no_losses()",
    );
    let (code, err) = replay_into(Some(&ns), &url, &cap, "first");
    assert_eq!(code, 0, "{err}");
    check(
        &err,
        pg.count("SELECT count(*) FROM packets"),
        pg.count("SELECT count(*) FROM losses"),
        "site rule: no losses here",
    );
    // A CHECK on losses refusing only the large loss: the other loss row is stored.
    pg.query(
        "DROP TRIGGER no_losses ON losses; \
         ALTER TABLE losses ADD CONSTRAINT small_losses CHECK (count < 5)",
    );
    let (code, err) = replay_into(Some(&ns), &url, &cap, "second");
    assert_eq!(code, 0, "{err}");
    refused_one(&err, "small_losses");
    assert_eq!(
        pg.query("SELECT string_agg(seq || '|' || count || '|' || reason, ';') FROM losses"),
        "3|1|refused: site rule: seq 3 not wanted"
    );
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 2 * (PACKETS - 1));
}

#[test]
fn mariadb_a_refused_losses_row_is_reported_and_the_batch_goes_on() {
    require_root!();
    let ns = NetNs::new("mylossrule");
    let mut db = MariaDb::init(&ns, 53320);
    db.start();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("spool");
    spool(&cap);
    let url = db.url("fwtest", mariadb::PASSWORD);
    db_init(Some(&ns), &url);
    db.query(
        "DELIMITER //\nCREATE TRIGGER no_seq3 BEFORE INSERT ON packets FOR EACH ROW \
         IF NEW.seq = 3 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'site rule: seq 3 not wanted'; \
         END IF//\nCREATE TRIGGER no_losses BEFORE INSERT ON losses FOR EACH ROW \
         SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'site rule: no losses here'//\nDELIMITER ;",
    );
    let (code, err) = replay_into(Some(&ns), &url, &cap, "first");
    assert_eq!(code, 0, "{err}");
    check(
        &err,
        db.count("SELECT count(*) FROM packets"),
        db.count("SELECT count(*) FROM losses"),
        "site rule: no losses here",
    );
    // A site's unique index on losses: a duplicate there is a refusal, not a stored row.
    db.query(
        "DROP TRIGGER no_losses; ALTER TABLE losses ADD UNIQUE KEY site_u (count); \
         INSERT INTO losses VALUES (NOW(), 'other', 'x', 1, 5, 7, 'other host', NULL, NULL)",
    );
    let (code, err) = replay_into(Some(&ns), &url, &cap, "second");
    assert_eq!(code, 0, "{err}");
    refused_one(&err, "for key 'site_u'");
    assert_eq!(db.count("SELECT count(*) FROM losses"), 2);
    assert_eq!(db.count("SELECT count(*) FROM packets"), 2 * (PACKETS - 1));
}

#[test]
fn run_keeps_logging_after_a_refused_losses_row_and_rows_plus_unrecorded_equal_the_nft_counter() {
    require_root!();
    support::require_tool("sqlite3");
    let ns = NetNs::new("sqllossrun");
    ns.output_rules(&["udp dport 9999 counter log prefix \"RUN \" group 5"]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fw.db");
    let target = format!("sqlite:{}", db.display());
    db_init(None, &target);
    // The refused packet's loss row is refused too: that batch has a losses row the database
    // will never take.
    let o = Command::new("sqlite3")
        .arg(&db)
        .arg(
            "CREATE TRIGGER no_seq3 BEFORE INSERT ON packets WHEN NEW.seq = 3 \
             BEGIN SELECT RAISE(ABORT, 'site rule: seq 3 not wanted'); END; \
             CREATE TRIGGER no_losses BEFORE INSERT ON losses \
             BEGIN SELECT RAISE(ABORT, 'site rule: no losses here'); END",
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let d = support::daemon::RunArgs::new(dir.path())
        .group(5)
        .with(&["--metrics", "127.0.0.1:9464"])
        .output_to(target.clone())
        .start(&ns);
    support::daemon::send_udp(&ns, 9999, 0..50);
    let rows = || {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.query_row("SELECT count(*) FROM packets", [], |r| r.get::<_, i64>(0))
            .unwrap() as u64
    };
    support::daemon::wait_for("the first packets", Duration::from_secs(30), || {
        rows() >= 49
    });
    // Logging goes on after the refusal.
    support::daemon::send_udp(&ns, 9999, 50..300);
    support::daemon::wait_for("every later packet", Duration::from_secs(30), || {
        rows() >= 299
    });
    // Counted for the monitoring too.
    support::require_tool("curl");
    let o = ns
        .command("curl")
        .args(["-s", "--max-time", "10", "http://127.0.0.1:9464/metrics"])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&o.stdout).into_owned();
    for name in [
        "fwlog_output_rows_refused_total",
        "fwlog_output_losses_unrecorded_total",
    ] {
        let line = format!("{name}{{output=\"{target}\"}} 1\n");
        assert!(metrics.contains(&line), "{line}: {metrics}");
    }
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0);
    assert!(
        err.contains("refused 1 losses row(s) for 1 lost packet(s)"),
        "{err}"
    );
    assert!(!err.contains("cannot write to"), "never a retry: {err}");
    assert_eq!(rows() + 1, ns.counter(), "rows + the unrecorded packet");
}
