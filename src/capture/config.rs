//! NFLOG socket settings and the netlink CONFIG messages that apply them.
//!
//! One CONFIG message per group, built by hand (host-order netlink headers, big-endian values):
//!
//! ```text
//!   nlmsghdr  len u32 | type u16 = NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG (0x0401)
//!             | flags u16 = REQUEST (|ACK) | seq u32 | pid u32 = 0
//!   nfgenmsg  family u8 = AF_UNSPEC | version u8 = 0 | res_id be16 = group
//!   CFG_CMD      (1)  u8 command                   BIND = 1, UNBIND = 2
//!   CFG_MODE     (2)  be32 copy_range, u8 mode, u8 pad   (packed, 6 bytes) COPY_PACKET = 2
//!   CFG_NLBUFSIZ (3)  be32 bytes                   kernel ignores values outside 4 KiB..128 KiB
//!   CFG_TIMEOUT  (4)  be32 hundredths of a second
//!   CFG_QTHRESH  (5)  be32 records per datagram
//!   CFG_FLAGS    (6)  be16                         SEQ = 1, SEQ_GLOBAL = 2
//! ```
//!
//! The kernel applies the command first (BIND creates the instance owned by this socket's port
//! id), then the other attributes, all within one message: a group never runs with the
//! defaults (1 s flush timeout, no sequence numbers) for more than the time between two
//! statements in the kernel.

use super::error::CaptureError;
use crate::nflog::attr::push_attr;

/// Settings for [`super::NflogSocket::open`]. All fields are public; start from `Default`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NflogConfig {
    /// NFLOG groups to bind on the one socket (`log group N` / `-j NFLOG --nflog-group N`).
    pub groups: Vec<u16>,
    /// Bytes of each packet to copy, from the network header (0xffff = whole packet; the
    /// kernel caps at 0xffff). A rule's own `snaplen` cuts further.
    pub copy_range: u32,
    /// Socket receive buffer in bytes, set with SO_RCVBUFFORCE (needs CAP_NET_ADMIN; falls back
    /// to SO_RCVBUF, capped at net.core.rmem_max, with a warning). The kernel doubles it.
    pub rcvbuf: usize,
    /// Size the kernel allocates for each datagram it batches records into (4096..=131072).
    pub nlbufsiz: u32,
    /// Records after which the kernel sends a datagram without waiting for the timeout
    /// ([`DEFAULT_QTHRESH`]).
    pub qthresh: u32,
    /// Longest a record waits in the kernel, in hundredths of a second (kernel default 100:
    /// far too slow for a log people tail). The kernel arms its flush timer for
    /// `jiffies + timeout * HZ / 100` when a record starts a datagram, so 0 does not mean
    /// "never": the timer is due at once and fires when the timer wheel next runs, one or two
    /// ticks later (a lone packet: 4-8 ms at HZ=250, `tests/capture_flush.rs`); 1 adds
    /// `HZ / 100` ticks. Under load `qthresh` or a full datagram sends it sooner anyway
    /// ([`DEFAULT_FLUSH_TIMEOUT_CS`]).
    pub flush_timeout_cs: u32,
    /// Datagrams fetched per `recvmmsg` call (1..=64); each slot is [`super::MAX_DATAGRAM`]
    /// bytes.
    pub batch_datagrams: usize,
}

impl Default for NflogConfig {
    fn default() -> Self {
        NflogConfig {
            groups: Vec::new(),
            copy_range: 0xffff,
            rcvbuf: 64 << 20,
            nlbufsiz: 131_072,
            qthresh: DEFAULT_QTHRESH,
            flush_timeout_cs: DEFAULT_FLUSH_TIMEOUT_CS,
            batch_datagrams: 8,
        }
    }
}

/// The default flush timeout, 10 ms: the kernel gathers a group's records for two or three
/// timer ticks and sends them as one datagram. 0 (the next timer run) sends a datagram per
/// group at every tick under any steady traffic, about 250 a second at HZ=250, each a wake-up
/// of intake and, on a virtual machine, of an idle CPU through the hypervisor, and a commit per
/// two ticks: 10 ms takes about 30 % off intake's CPU and 20 % off the spool sync's at 25k
/// packets/s (BENCHMARKS.md, "the kernel's 10 ms batches"). The price: a lone packet waits
/// 12-16 ms instead of 4-8 ms, and a line about 2.5 ms longer at the median.
pub const DEFAULT_FLUSH_TIMEOUT_CS: u32 = 1;

/// The default queue threshold: high enough that the flush timer, or a full 128 KiB datagram,
/// sends a group's datagram up to about 100k packets/s to the group; 256 sends one every 5 ms
/// at 50k packets/s, before the timer batches anything.
pub const DEFAULT_QTHRESH: u32 = 1024;

/// Highest per-datagram size the kernel accepts for NFULA_CFG_NLBUFSIZ.
pub const NLBUFSIZ_MAX: u32 = 131_072;
const NLBUFSIZ_MIN: u32 = 4096;
pub(crate) const MAX_SLOTS: usize = 64;

impl NflogConfig {
    /// Check the settings, so the kernel never silently ignores one.
    pub fn validate(&self) -> Result<(), CaptureError> {
        let bad = |m: String| Err(CaptureError::InvalidConfig(m));
        if self.groups.is_empty() {
            return bad("no NFLOG group to bind".into());
        }
        for (i, g) in self.groups.iter().enumerate() {
            if self.groups[..i].contains(g) {
                return bad(format!("NFLOG group {g} is listed twice"));
            }
        }
        if self.copy_range == 0 || self.copy_range > 0xffff {
            return bad(format!(
                "copy range {} is outside 1..=65535",
                self.copy_range
            ));
        }
        if !(NLBUFSIZ_MIN..=NLBUFSIZ_MAX).contains(&self.nlbufsiz) {
            return bad(format!(
                "nlbufsiz {} is outside {NLBUFSIZ_MIN}..={NLBUFSIZ_MAX} (the kernel would ignore it)",
                self.nlbufsiz
            ));
        }
        if self.qthresh == 0 {
            return bad("qthresh must be at least 1".into());
        }
        if !(1..=MAX_SLOTS).contains(&self.batch_datagrams) {
            return bad(format!(
                "batch_datagrams {} is outside 1..={MAX_SLOTS}",
                self.batch_datagrams
            ));
        }
        if self.rcvbuf < 4096 || self.rcvbuf > i32::MAX as usize / 2 {
            return bad(format!(
                "receive buffer {} is outside 4096..={}",
                self.rcvbuf,
                i32::MAX / 2
            ));
        }
        Ok(())
    }
}

/// nfnetlink message type of NFLOG CONFIG and PACKET messages.
pub(crate) const MSG_CONFIG: u16 = (4 << 8) | 1;
pub(crate) const MSG_PACKET: u16 = 4 << 8;

const CFG_CMD: u16 = 1;
const CFG_MODE: u16 = 2;
const CFG_NLBUFSIZ: u16 = 3;
const CFG_TIMEOUT: u16 = 4;
const CFG_QTHRESH: u16 = 5;
const CFG_FLAGS: u16 = 6;
const CMD_BIND: u8 = 1;
const CMD_UNBIND: u8 = 2;
const COPY_PACKET: u8 = 2;
const F_SEQ: u16 = 1;
const F_SEQ_GLOBAL: u16 = 2;

fn message(seq: u32, group: u16, ack: bool, attrs: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut m = Vec::with_capacity(96);
    crate::netlink::nfnl_request(&mut m, MSG_CONFIG, ack, seq, group);
    attrs(&mut m);
    crate::netlink::finish(&mut m);
    m
}

/// BIND `group` and apply every setting of `cfg`, asking for an acknowledgement.
pub(crate) fn bind_message(seq: u32, group: u16, cfg: &NflogConfig) -> Vec<u8> {
    message(seq, group, true, |m| {
        push_attr(m, CFG_CMD, &[CMD_BIND]);
        push_settings(m, cfg);
    })
}

/// BIND `group` with the kernel's default settings, asking for an acknowledgement (a test
/// failpoint's first half: see `socket::failpoint_split_bind`).
pub(crate) fn bind_only_message(seq: u32, group: u16) -> Vec<u8> {
    message(seq, group, true, |m| push_attr(m, CFG_CMD, &[CMD_BIND]))
}

/// Apply every setting of `cfg` to `group`, already bound by this socket, without binding it
/// (a second BIND fails with EBUSY). No acknowledgement: it would queue behind every packet
/// already buffered, and waiting for it would pull them all into memory.
pub(crate) fn reconfigure_message(seq: u32, group: u16, cfg: &NflogConfig) -> Vec<u8> {
    message(seq, group, false, |m| push_settings(m, cfg))
}

fn push_settings(m: &mut Vec<u8>, cfg: &NflogConfig) {
    let mut mode = [0u8; 6];
    mode[..4].copy_from_slice(&cfg.copy_range.to_be_bytes());
    mode[4] = COPY_PACKET;
    push_attr(m, CFG_MODE, &mode);
    push_attr(m, CFG_NLBUFSIZ, &cfg.nlbufsiz.to_be_bytes());
    push_attr(m, CFG_TIMEOUT, &cfg.flush_timeout_cs.to_be_bytes());
    push_attr(m, CFG_QTHRESH, &cfg.qthresh.to_be_bytes());
    push_attr(m, CFG_FLAGS, &(F_SEQ | F_SEQ_GLOBAL).to_be_bytes());
}

/// UNBIND `group`; `ack` asks for an acknowledgement (not from Drop, where nobody would read
/// it).
pub(crate) fn unbind_message(seq: u32, group: u16, ack: bool) -> Vec<u8> {
    message(seq, group, ack, |m| push_attr(m, CFG_CMD, &[CMD_UNBIND]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_message_layout() {
        let cfg = NflogConfig {
            groups: vec![5],
            ..Default::default()
        };
        let m = bind_message(7, 5, &cfg);
        assert_eq!(
            u32::from_ne_bytes(m[..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 0x0401);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 7);
        assert_eq!(&m[16..20], &[0, 0, 0, 5]);
        // CMD: len 5, type 1, BIND, 3 bytes padding.
        assert_eq!(&m[20..28], &[5, 0, 1, 0, 1, 0, 0, 0][..]);
        // MODE: len 10, type 2, be32 0xffff, COPY_PACKET, pad, then 2 bytes padding.
        assert_eq!(&m[28..40], &[10, 0, 2, 0, 0, 0, 0xff, 0xff, 2, 0, 0, 0][..]);
        assert_eq!(m.len() % 4, 0);
    }

    #[test]
    fn validation_names_the_bad_setting() {
        let ok = NflogConfig {
            groups: vec![1, 2],
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        let cases: [(NflogConfig, &str); 4] = [
            (NflogConfig::default(), "no NFLOG group"),
            (
                NflogConfig {
                    groups: vec![3, 3],
                    ..ok.clone()
                },
                "listed twice",
            ),
            (
                NflogConfig {
                    nlbufsiz: 200_000,
                    ..ok.clone()
                },
                "nlbufsiz 200000",
            ),
            (
                NflogConfig {
                    copy_range: 70_000,
                    ..ok.clone()
                },
                "copy range 70000",
            ),
        ];
        for (cfg, want) in cases {
            let e = cfg.validate().expect_err(want).to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
