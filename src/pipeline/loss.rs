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

/// A loss record for spool sequence numbers `first..=last` that the spool found damaged or
/// missing (they were never in the stream as loss records: the spool reports them as it reads).
pub fn spool_damage(first: u64, last: u64) -> Vec<u8> {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut out = Vec::with_capacity(64);
    LossRecord {
        group: None,
        cause: Cause::Corrupt as u8,
        count: Some(last - first + 1),
        seq_global: None,
        spool_seq: Some((first, last)),
    }
    .encode(t.as_secs() as i64, t.subsec_nanos(), &mut out);
    out
}

/// The printable event for a spooled loss record received at `time`.
pub fn event(rec: &LossRecord, time: Timestamp) -> LossEvent {
    LossEvent {
        time,
        group: rec.group,
        count: rec.count.unwrap_or(0),
        seq_global: rec.seq_global,
        spool_seq: rec.spool_seq,
        cause: cause_of(rec.cause),
    }
}
