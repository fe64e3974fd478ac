//! Queue errors: one line each, saying what to do.
//!
//! As for NFLOG, the kernel answers both "no CAP_NET_ADMIN" and "queue bound by another
//! socket" with EPERM; the effective capability set tells them apart.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(
        "{what}: permission denied: NFQUEUE needs CAP_NET_ADMIN (run as root or grant the capability)"
    )]
    NoPermission { what: String },
    #[error(
        "NFQUEUE queue {queue} is already bound by another process (another fwlog, suricata, snort?)"
    )]
    QueueBusy { queue: u16 },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl QueueError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        QueueError::Io {
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
        let e = QueueError::NoPermission {
            what: "binding NFQUEUE queue 3".into(),
        };
        assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
        let e = QueueError::QueueBusy { queue: 3 };
        assert!(e.to_string().contains("already bound"), "{e}");
    }
}
