//! Loss causes as spooled (one byte in a loss record) and as printed.

use crate::format::{LossCause, LossEvent};
use crate::nflog::attr::LossRecord;
use crate::packet::{TimeSource, Timestamp};

/// Placeholder time for parsing records whose own time is not needed.
pub const EPOCH: Timestamp = Timestamp {
    sec: 0,
    nsec: 0,
    source: TimeSource::Local,
};

/// The cause byte of a spooled loss record. Values are on disk: never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Cause {
    SeqGap = 0,
    Enobufs = 1,
    Restart = 2,
    SpoolFull = 3,
    Corrupt = 4,
}

fn cause_of(b: u8) -> LossCause {
    match b {
        0 => LossCause::SeqGap,
        1 => LossCause::Enobufs,
        2 => LossCause::Restart,
        3 => LossCause::SpoolFull,
        _ => LossCause::Corrupt,
    }
}

/// The printable event for a spooled loss record received at `time`.
pub fn event(rec: &LossRecord, time: Timestamp) -> LossEvent {
    LossEvent {
        time,
        group: rec.group,
        count: rec.count.unwrap_or(0),
        seq_global: rec.seq_global,
        cause: cause_of(rec.cause),
    }
}
