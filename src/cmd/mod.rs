//! One file per subcommand: argument handling and wiring, no packet logic of their own.

pub mod db;
pub mod pipeline;
pub mod read;
pub mod replay;
pub mod report;
