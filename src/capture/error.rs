//! Capture errors: one line each, saying what to do.
//!
//! The kernel answers both "no CAP_NET_ADMIN" and "group bound by another socket" with EPERM.
//! They are told apart by reading this thread's effective capability set first: with
//! CAP_NET_ADMIN present, an EPERM on BIND can only mean another owner.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("invalid capture settings: {0}")]
    InvalidConfig(String),
    #[error(
        "{what}: permission denied: NFLOG needs CAP_NET_ADMIN (run as root or grant the capability)"
    )]
    NoPermission { what: String },
    #[error(
        "NFLOG group {group} is already bound by another process (another fwlog, ulogd, or `tcpdump -i nflog:{group}`?)"
    )]
    GroupBusy { group: u16 },
    #[error(
        "NFLOG is not supported here: {what} (is the nfnetlink_log module available? try `modprobe nfnetlink_log`)"
    )]
    Unsupported { what: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl CaptureError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        CaptureError::Io {
            what: what.into(),
            source,
        }
    }
}

pub(crate) use crate::netlink::has_cap_net_admin;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_fix() {
        let e = CaptureError::NoPermission {
            what: "binding NFLOG group 5".into(),
        };
        assert!(e.to_string().contains("CAP_NET_ADMIN"));
        let e = CaptureError::GroupBusy { group: 5 };
        assert!(e.to_string().contains("already bound by another process"));
    }
}
