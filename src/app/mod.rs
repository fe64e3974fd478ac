//! The application layer: the only code that sees both the command line and the library.
//!
//! It parses the command line ([`crate::cli`]), converts it once into the plain configuration
//! of [`crate::config`] ([`from_cli`]), checking every argument before anything is opened or
//! created, and hands it to the subcommand (`daemon::run`, `cmd::read`, `cmd::replay`). Library
//! modules never see a clap type.

pub mod completions;
pub mod from_cli;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::exit;

/// Parse the command line and run; returns the process exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    let result = match cli.command {
        Command::Run(args) => from_cli::run_config(&args).map(|c| crate::daemon::run(&c)),
        Command::Read(args) => from_cli::read_config(&args).map(|c| crate::cmd::read::run(&c)),
        Command::Replay(args) => {
            from_cli::replay_config(&args).map(|c| crate::cmd::replay::run(&c))
        }
        Command::Report(args) => match from_cli::report_config(&args) {
            Ok(c) => Ok(crate::cmd::report::run(&c)),
            Err(e) => {
                eprintln!("fwlog: {e}");
                Ok(exit::USAGE)
            }
        },
        Command::Db(crate::cli::DbCommand::Init(args)) => match from_cli::db_init_config(&args) {
            Ok(c) => Ok(crate::cmd::db::init(&c)),
            Err(e) => {
                eprintln!("fwlog: {e}");
                Ok(exit::USAGE)
            }
        },
        Command::Completions { shell } => Ok(completions::run(shell)),
    };
    result.unwrap_or_else(|e| {
        eprintln!("fwlog: {e}");
        exit::USAGE
    })
}
