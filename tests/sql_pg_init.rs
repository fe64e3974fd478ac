//! `fwlog db init` against a real PostgreSQL server the test starts (as the `postgres` system
//! user, in a temporary directory, on a loopback port inside the test's namespace), and the
//! password file: an INSERT/SELECT-only role writes into a schema its owner made, days without
//! a partition land in the DEFAULT partition and move to their own on the next `db init`; a
//! password file (`PGPASSFILE`, or `.pgpass` in a `HOME` the test makes) is used at mode 0600
//! and refused in one line at 0644, as a symbolic link, or owned by another user.

mod support;

use std::path::Path;
use std::process::Command;

use support::netns::NetNs;
use support::pg::{Pg, PASSWORD};

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sample.pcap");

/// A started server in `ns`.
fn server(ns: &NetNs, port: u16) -> Pg {
    let pg = Pg::init(ns, port);
    pg.start();
    pg
}

/// `postgresql://USER[:PW]@127.0.0.1:PORT/postgres`.
fn url(pg: &Pg, user: &str, pw: &str) -> String {
    let pw = if pw.is_empty() {
        String::new()
    } else {
        format!(":{pw}")
    };
    format!("postgresql://{user}{pw}@127.0.0.1:{}/postgres", pg.port)
}

/// `fwlog ARGS` in `ns` with `env`, without PGPASSWORD or PGPASSFILE from the test's own.
fn fwlog(ns: &NetNs, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let o = ns
        .command(support::fwlog_bin())
        .args(args)
        .env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn db_init_lets_an_insert_select_role_write_and_moves_default_partition_rows_to_their_day() {
    require_root!();
    let ns = NetNs::new("pginit");
    let pg = server(&ns, 55451);
    let owner = url(&pg, "fwtest", PASSWORD);
    let (code, out, err) = fwlog(&ns, &["db", "init", "--days-ahead", "2", &owner], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("schema version 4 ready"), "{out}");
    assert!(!out.contains(PASSWORD) && !err.contains(PASSWORD));
    let day = |offset: i32| {
        pg.query(&format!(
            "SELECT to_regclass('packets_p' || to_char(now() AT TIME ZONE 'UTC' \
             + interval '{offset} days', 'YYYYMMDD')) IS NOT NULL"
        ))
    };
    assert_eq!(
        (day(0), day(2), day(3)),
        ("t".into(), "t".into(), "f".into())
    );
    assert_eq!(
        pg.query("SELECT to_regclass('packets_default') IS NOT NULL"),
        "t"
    );
    // Running it again changes nothing and says the same.
    let (code, _, err) = fwlog(&ns, &["db", "init", "--days-ahead", "2", &owner], &[]);
    assert_eq!(code, 0, "{err}");
    pg.query("CREATE ROLE writer LOGIN PASSWORD 'w-pass'");
    pg.query("GRANT SELECT ON schema_version TO writer");
    pg.query("GRANT INSERT, SELECT ON packets, losses TO writer");
    // The sample's packets are from a day without a partition, which the writer may not
    // create: they go to the DEFAULT partition, said once, and nothing is refused.
    let writer = url(&pg, "writer", "w-pass");
    let (code, _, err) = fwlog(&ns, &["read", "--no-dns", "-o", &writer, SAMPLE], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches("cannot create partition").count(), 1, "{err}");
    assert!(err.contains("fwlog db init"), "{err}");
    let n = pg.count("SELECT count(*) FROM packets");
    assert!(n > 5, "the sample has packets");
    assert_eq!(pg.count("SELECT count(*) FROM packets_default"), n);
    assert_eq!(pg.count("SELECT count(*) FROM losses"), 0);
    // The owner's next db init moves them into their day's partition.
    let (code, out, err) = fwlog(&ns, &["db", "init", "--days-ahead", "2", &owner], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("({n} rows moved")), "{out}");
    assert_eq!(pg.count("SELECT count(*) FROM packets_default"), 0);
    assert_eq!(pg.count("SELECT count(*) FROM packets"), n);
    assert_eq!(
        pg.count(
            "SELECT count(*) FROM packets WHERE tableoid::regclass::text <> \
             'packets_p' || to_char(time AT TIME ZONE 'UTC', 'YYYYMMDD')"
        ),
        0,
        "every row in its day's partition"
    );
    // Now that the day exists, the writer's rows go there.
    let (code, _, err) = fwlog(&ns, &["read", "--no-dns", "-o", &writer, SAMPLE], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 2 * n);
    assert_eq!(pg.count("SELECT count(*) FROM packets_default"), 0);
    // A SELECT-only role: one line, nothing written.
    pg.query("CREATE ROLE reader LOGIN PASSWORD 'r-pass'");
    pg.query("GRANT SELECT ON schema_version, packets, losses TO reader");
    let reader = url(&pg, "reader", "r-pass");
    let (code, _, err) = fwlog(&ns, &["read", "--no-dns", "-o", &reader, SAMPLE], &[]);
    assert_eq!(code, 73, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("permission denied"), "{err}");
    // db init as a role that may not create the schema: one line.
    let (code, _, err) = fwlog(&ns, &["db", "init", &reader], &[]);
    assert_eq!(code, 73, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(pg.count("SELECT count(*) FROM packets"), 2 * n);
}

#[test]
fn db_init_refuses_what_is_not_a_database_and_makes_an_sqlite_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(support::fwlog_bin())
        .args(["db", "init", dir.path().join("x.log").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a database"));
    assert!(!dir.path().join("x.log").exists(), "nothing created");
    let db = dir.path().join("x.db");
    let url = format!("sqlite:{}", db.display());
    for _ in 0..2 {
        let out = Command::new(support::fwlog_bin())
            .args(["db", "init", &url])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("schema version 2 ready"));
    }
    let c = rusqlite_free_check(&db);
    assert!(c.contains("packets"), "{c}");
}

/// The tables of an SQLite file, by the `sqlite3` shell.
fn rusqlite_free_check(db: &Path) -> String {
    support::require_tool("sqlite3");
    let o = Command::new("sqlite3")
        .arg(db)
        .arg(".tables")
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_password_file_is_used_at_mode_0600_and_refused_in_one_line_at_0644() {
    require_root!();
    use std::os::unix::fs::PermissionsExt;
    let ns = NetNs::new("pgpass");
    let pg = server(&ns, 55452);
    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("pgpass");
    std::fs::write(
        &pass,
        format!(
            "# fwlog's\n127.0.0.1:{}:other:fwtest:wrong\n127.0.0.1:{}:postgres:fwtest:{PASSWORD}\n",
            pg.port, pg.port
        ),
    )
    .unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let url = url(&pg, "fwtest", "");
    let env = [("PGPASSFILE", pass.to_str().unwrap())];
    let (code, _, err) = fwlog(&ns, &["read", "--no-dns", "-o", &url, SAMPLE], &env);
    assert_eq!(code, 0, "{err}");
    let n = pg.count("SELECT count(*) FROM packets");
    assert!(n > 0);
    // Without it (and no PGPASSWORD): the server refuses, in one line.
    let (code, _, err) = fwlog(&ns, &["read", "--no-dns", "-o", &url, SAMPLE], &[]);
    assert_eq!(code, 73, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Readable by others: refused before anything is sent, one line, nothing written.
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = fwlog(&ns, &["read", "--no-dns", "-o", &url, SAMPLE], &env);
    assert_ne!(code, 0, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("group or world access (mode 0644)"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    // A symbolic link to a good file is not followed.
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&pass, &link).unwrap();
    let env = [("PGPASSFILE", link.to_str().unwrap())];
    let (code, _, err) = fwlog(&ns, &["read", "--no-dns", "-o", &url, SAMPLE], &env);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(pg.count("SELECT count(*) FROM packets"), n);
}

#[test]
fn dot_pgpass_in_home_is_used_and_refused_at_0644_as_a_link_or_owned_by_another_user() {
    require_root!();
    use std::os::unix::fs::PermissionsExt;
    let ns = NetNs::new("pgpasshome");
    let pg = server(&ns, 55453);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let pass = home.join(".pgpass");
    let line = format!("127.0.0.1:{}:postgres:fwtest:{PASSWORD}\n", pg.port);
    std::fs::write(&pass, &line).unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let url = url(&pg, "fwtest", "");
    let env = [("HOME", home.to_str().unwrap())];
    let read = |env: &[(&str, &str)]| fwlog(&ns, &["read", "--no-dns", "-o", &url, SAMPLE], env);
    let (code, _, err) = read(&env);
    assert_eq!(code, 0, "HOME/.pgpass at 0600 is used: {err}");
    let n = pg.count("SELECT count(*) FROM packets");
    assert!(n > 0);
    let refused = |env: &[(&str, &str)], why: &str| {
        let (code, _, err) = read(env);
        assert_ne!(code, 0, "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(&pass.display().to_string()), "{err}");
        assert!(err.contains(why), "{why}: {err}");
        assert!(!err.contains(PASSWORD), "{err}");
    };
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
    refused(&env, "group or world access (mode 0644)");
    // Owned by another user (nobody), even at 0600.
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = support::pg::c_path(&pass);
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
    refused(&env, "belongs to uid 65534");
    // A symbolic link to a good file is not followed.
    let real = dir.path().join("real-pgpass");
    std::fs::write(&real, &line).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(&pass).unwrap();
    std::os::unix::fs::symlink(&real, &pass).unwrap();
    refused(&env, "symbolic link");
    // A HOME without .pgpass: no password, the server's one line.
    std::fs::remove_file(&pass).unwrap();
    let (code, _, err) = read(&env);
    assert_eq!(code, 73, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(pg.count("SELECT count(*) FROM packets"), n);
}
