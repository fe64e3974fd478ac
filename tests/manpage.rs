//! The man pages stay in step with the command line: every subcommand and every long flag that
//! clap knows appears in fwlog(8), and both pages are clean under `mandoc -Tlint`.

use std::path::Path;
use std::process::Command;

use clap::CommandFactory;

fn page(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("man").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn every_subcommand_and_flag_is_documented() {
    let man = page("fwlog.8");
    let cmd = fwlog::cli::Cli::command();
    let mut missing = Vec::new();
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() {
            continue;
        }
        let name = sub.get_name();
        if !man.contains(&format!(".SS \"fwlog {name}"))
            && !man.contains(&format!(".B fwlog {name}"))
        {
            missing.push(format!("subcommand {name}"));
        }
        for arg in sub.get_arguments() {
            if arg.is_hide_set() {
                continue;
            }
            if let Some(long) = arg.get_long() {
                // man(7) source writes a hyphen as \-.
                let escaped = format!("\\-\\-{}", long.replace('-', "\\-"));
                if !man.contains(&escaped) {
                    missing.push(format!("fwlog {name} --{long}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "not in man/fwlog.8: {missing:?}");
}

#[test]
fn man_pages_are_lint_clean() {
    if Command::new("mandoc").arg("-V").output().is_err() {
        panic!("mandoc is not installed: run tests/run.sh, which installs it");
    }
    for name in ["fwlog.8", "fwlog-spool.5", "fwlog-sql.5"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("man").join(name);
        let out = Command::new("mandoc")
            .args(["-Tlint", "-W", "warning"])
            .arg(&p)
            .output()
            .expect("run mandoc");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(text.trim().is_empty(), "mandoc -Tlint {name}:\n{text}");
    }
}
