//! Command-line interface (clap derive). One place that lists every flag, so `--help`, the man
//! page and the tests stay in step.

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "fwlog",
    version,
    about = "Crash-safe, DNS-resolving firewall logger for Linux"
)]
pub struct Cli {}

/// Parse the command line and run; returns the process exit status.
pub fn main() -> i32 {
    let _cli = Cli::parse();
    0
}
