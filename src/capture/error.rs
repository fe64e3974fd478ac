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

/// CAP_NET_ADMIN's bit in the capability sets.
const CAP_NET_ADMIN: u32 = 12;

/// Whether the calling thread has CAP_NET_ADMIN in its effective set (capabilities are per
/// thread, hence /proc/thread-self). `None` when the status file cannot be read.
pub(crate) fn has_cap_net_admin() -> Option<bool> {
    let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    cap_from_status(&status, CAP_NET_ADMIN)
}

fn cap_from_status(status: &str, bit: u32) -> Option<bool> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    let hex = line["CapEff:".len()..].trim();
    let caps = u64::from_str_radix(hex, 16).ok()?;
    Some(caps & (1u64 << bit) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_effective_set() {
        let s = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t0000000000001000\n";
        assert_eq!(cap_from_status(s, CAP_NET_ADMIN), Some(true));
        let s = "CapEff:\t0000000000000fff\n";
        assert_eq!(cap_from_status(s, CAP_NET_ADMIN), Some(false));
        assert_eq!(cap_from_status("nothing", CAP_NET_ADMIN), None);
    }

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
