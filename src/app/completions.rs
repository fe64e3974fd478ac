//! `fwlog completions SHELL` (hidden): prints the shell completion script that clap derives
//! from `crate::cli::Cli`, so the scripts the Debian package installs can never drift from the
//! real flags. debian/rules runs it at build time; users rarely need it directly.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::exit;

/// Write the completion script for `shell` to standard output; returns the exit status.
pub fn run(shell: Shell) -> i32 {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "fwlog", &mut out);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&out).and_then(|()| stdout.flush()) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("fwlog: completions: writing to standard output: {e}");
            exit::OUTPUT
        }
    }
}
