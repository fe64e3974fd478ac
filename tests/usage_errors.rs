//! A mistake on the command line is reported in one plain sentence and changes nothing: no
//! spool, no lock, no empty output file (with the default paths that would be a stray
//! /var/spool/fwlog and /var/log/fwlog).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::fwlog_bin;

fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(fwlog_bin())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("fwlog runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The directory holds exactly `expected` (names), nothing fwlog created.
fn assert_holds(dir: &Path, expected: &[&str], what: &str) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, expected, "{what} left files behind");
}

#[test]
fn usage_errors_create_no_file() {
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--dns-server", "1.2.3"], 64, "--dns-server \"1.2.3\""),
        (
            &["--dns-server", "localhost"],
            64,
            "--dns-server \"localhost\"",
        ),
        (&["--dns-server", "127.0.0.1:99999"], 64, "127.0.0.1:99999"),
        (&["--dns-query-timeout", "0s"], 64, "--dns-query-timeout"),
        (&["--user", "no-such-user-fwlog-test"], 64, "no such user"),
        (
            &["--no-dns", "--output", "missing-dir/x.log"],
            73,
            "directory missing-dir",
        ),
        (&["--no-dns", "--output", "."], 73, "is a directory"),
        (
            &[
                "--no-dns",
                "--output",
                "pcap:missing-dir/x.pcap?max-size=1MiB",
            ],
            73,
            "directory missing-dir",
        ),
    ];
    for (extra, code, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["run", "--group", "7", "--spool", "S"];
        if !extra.contains(&"--output") {
            args.extend(["--output", "O"]);
        }
        args.extend_from_slice(extra);
        let o = run_in(dir.path(), &args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(*code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert_holds(dir.path(), &[], &format!("{args:?}"));
    }
}

#[test]
fn a_spool_path_that_is_a_file_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("somefile"), b"x").unwrap();
    let o = run_in(
        dir.path(),
        &[
            "run",
            "--group",
            "7",
            "--no-dns",
            "--spool",
            "./somefile",
            "--output",
            "O",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(75), "{err}");
    assert!(
        err.contains("./somefile") && err.contains("is not a directory"),
        "{err}"
    );
    assert!(!err.contains("os error"), "{err}");
    assert_holds(dir.path(), &["somefile"], "a spool path that is a file");
}

#[test]
fn replay_of_a_directory_that_holds_no_spool_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("notaspool")).unwrap();
    let o = run_in(dir.path(), &["replay", "--spool", "notaspool", "--no-dns"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(66), "{err}");
    assert!(err.contains("notaspool holds no spool"), "{err}");
    assert!(o.stdout.is_empty());
}

/// Root only: a mount namespace hides the machine's resolv.conf and syslog socket.
fn in_private_mounts(dir: &Path, setup: &str, args: &[&str]) -> Output {
    let fwlog = fwlog_bin();
    let script = format!("{setup} && exec \"$0\" \"$@\"");
    Command::new("unshare")
        .current_dir(dir)
        .args(["-m", "sh", "-c", &script])
        .arg(&fwlog)
        .args(args)
        .output()
        .expect("unshare runs")
}

#[test]
fn an_empty_resolv_conf_is_a_usage_error_before_any_file() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty"), b"").unwrap();
    let o = in_private_mounts(
        dir.path(),
        "mount --bind \"$PWD/empty\" /etc/resolv.conf",
        &["run", "--group", "7", "--spool", "S", "--output", "O"],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(64), "{err}");
    assert!(err.contains("has no nameserver"), "{err}");
    assert_holds(dir.path(), &["empty"], "an empty resolv.conf");
}

#[test]
fn syslog_output_without_a_syslog_daemon_says_so_before_any_file() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plain"), b"").unwrap();
    // Whatever listens on this machine's /dev/log, in this namespace it is a plain file.
    let o = in_private_mounts(
        dir.path(),
        "{ [ ! -e /dev/log ] || mount --bind \"$PWD/plain\" /dev/log; }",
        &[
            "run",
            "--group",
            "7",
            "--no-dns",
            "--spool",
            "S",
            "--output",
            "kernel=syslog",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(73), "{err}");
    assert!(
        err.contains("no syslog daemon listens on /dev/log"),
        "{err}"
    );
    assert!(!err.contains("Initialization error"), "{err}");
    assert_holds(dir.path(), &["plain"], "a syslog output without syslog");
}
