//! Why `fwlog run` could not start or stopped with an error, and the exit status of each.

use std::path::PathBuf;

use fwlog_spool::Error as SpoolError;

use crate::capture::CaptureError;
use crate::exit;
use crate::pipeline::build::BuildError;
use crate::pipeline::process::ProcessError;
use crate::queue::QueueError;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("spool directory {}: it exists and is not a directory", .0.display())]
    SpoolNotDir(PathBuf),
    #[error("spool directory {}: {source}", path.display())]
    SpoolDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another fwlog holds the spool: its own message says so.
    #[error(transparent)]
    SpoolLocked(SpoolError),
    #[error("spool {} is unusable: {source}", path.display())]
    Spool { path: PathBuf, source: SpoolError },
    #[error("{0}")]
    Outputs(String),
    /// A `--geoip`/`--asn` database that cannot be used.
    #[error(transparent)]
    Geo(#[from] crate::geo::DbError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// `--user` names no usable user.
    #[error("{0}")]
    User(String),
    /// Handing files over or switching user failed.
    #[error("{0}")]
    Privileges(String),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("cannot start the intake thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The intake thread ended with an error.
    #[error("{0}")]
    Run(String),
}

impl DaemonError {
    /// The process exit status (sysexits values, see [`crate::exit`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            DaemonError::SpoolDir { .. }
            | DaemonError::SpoolNotDir(_)
            | DaemonError::SpoolLocked(_)
            | DaemonError::Spool { .. } => exit::SPOOL,
            DaemonError::Outputs(_) => exit::OUTPUT,
            DaemonError::Geo(_) => exit::NO_INPUT,
            DaemonError::Capture(CaptureError::NoPermission { .. })
            | DaemonError::Queue(QueueError::NoPermission { .. })
            | DaemonError::Privileges(_) => exit::NO_PERM,
            DaemonError::Capture(CaptureError::InvalidConfig(_)) | DaemonError::User(_) => {
                exit::USAGE
            }
            DaemonError::Build(BuildError::Dns(_)) => exit::USAGE,
            DaemonError::Capture(_)
            | DaemonError::Queue(_)
            | DaemonError::Build(BuildError::Runtime(_))
            | DaemonError::Build(BuildError::Signals(_))
            | DaemonError::Thread(_)
            | DaemonError::Process(_)
            | DaemonError::Run(_) => exit::FAILURE,
        }
    }
}
