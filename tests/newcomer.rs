//! What a newcomer reads and runs first: the README's two commands, what they claim, and the test
//! script's handling of the machine's services. These checks keep the docs true as the tree moves.

use std::path::Path;
use std::process::Command;

fn read(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The shell block under "Try it": the newcomer's two commands.
fn try_it_commands() -> Vec<String> {
    let readme = read("README.md");
    let section = readme
        .split("## Try it")
        .nth(1)
        .expect("README has a 'Try it' section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the Try it section has a sh block");
    block
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn readme_gives_two_commands_and_the_second_is_what_ci_runs() {
    let cmds = try_it_commands();
    assert_eq!(cmds.len(), 2, "README's Try it block: {cmds:?}");
    assert!(cmds[0].starts_with("cargo run --release -- read tests/data/sample.pcap"));
    // No sudo: a bare Debian machine (and most containers) has none.
    assert_eq!(cmds[1], "bash tests/run.sh");
    let ci = read(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == "exec bash tests/run.sh"),
        ".ci/run must run the README's test command:\n{ci}"
    );
}

#[test]
fn project_docs_stand_alone() {
    for doc in [
        "README.md",
        "ARCHITECTURE.md",
        "BENCHMARKS.md",
        "man/fwlog.8",
        "man/fwlog-spool.5",
    ] {
        let text = read(doc);
        assert!(
            !text.contains("shared/notes") && !text.contains("../shared"),
            "{doc} cites files outside the repository"
        );
    }
}

#[test]
fn readme_names_every_package_the_test_script_installs() {
    let script = read("tests/run.sh");
    let deps = script
        .split("deps=(")
        .nth(1)
        .and_then(|d| d.split(')').next())
        .expect("tests/run.sh has a deps=( ... ) table");
    let readme = read("README.md");
    // Quoted "command package" pairs; what lies between the quotes is blank.
    for entry in deps.split('"').skip(1).step_by(2) {
        let package = entry
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("deps entry {entry:?} is not \"command package\""));
        assert!(
            readme.contains(&format!("`{package}`")),
            "README does not name `{package}`, which tests/run.sh installs"
        );
    }
}

#[test]
fn readme_and_unit_agree_on_the_watchdog() {
    let unit = read("debian/fwlog.service");
    let readme = read("README.md");
    let unit_sets = unit
        .lines()
        .any(|l| l.trim_start().starts_with("WatchdogSec="));
    let readme_claims =
        readme.contains("WatchdogSec=") && !readme.contains("sets no `WatchdogSec=`");
    assert_eq!(
        unit_sets, readme_claims,
        "debian/fwlog.service and README disagree about WatchdogSec"
    );
}

fn dry_run(extra: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/run.sh"))
        .arg("--dry-run")
        .args(extra)
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn line<'a>(out: &'a str, what: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no '{what}' line in:\n{out}"))
}

#[test]
fn run_sh_touches_only_services_it_installs() {
    // What this machine lacks anyway is in the baseline plan; assuming more packages missing
    // adds exactly their services, and nothing of a package that is installed.
    let base = dry_run(&[]);
    let base_install = line(&base, "would install:").to_string();
    let out = dry_run(&["--assume-missing", "nsd", "--assume-missing", "tshark"]);
    let install = line(&out, "would install:");
    assert!(
        install.contains("nsd") && install.contains("tshark"),
        "{out}"
    );
    let stop = line(&out, "would keep from starting and disable:");
    assert!(stop.contains("nsd"), "{out}");
    assert!(!stop.contains("tshark"), "tshark has no service: {out}");
    if !base_install.contains("rsyslog") {
        assert!(
            !stop.contains("rsyslog"),
            "rsyslog was installed before: the script must leave it alone\n{out}"
        );
    }
    let out = dry_run(&["--assume-missing", "rsyslog"]);
    let stop = line(&out, "would keep from starting and disable:");
    assert!(stop.contains("rsyslog"), "{out}");
    if !base_install.contains("nsd") {
        assert!(!stop.contains("nsd"), "{out}");
    }
}

#[test]
fn run_sh_refuses_unknown_arguments() {
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/run.sh"))
        .arg("--frobnicate")
        .output()
        .expect("bash runs");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument --frobnicate"));
}
