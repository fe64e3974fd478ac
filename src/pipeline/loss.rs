//! Spooled loss records as printable events.

use crate::format::LossEvent;
use crate::nflog::attr::LossRecord;
use crate::packet::Timestamp;

pub use crate::nflog::loss::Cause;

/// Placeholder time for parsing records whose own time is not needed.
pub const EPOCH: Timestamp = Timestamp::EPOCH;

/// The printable event for a spooled loss record received at `time`.
pub fn event(rec: &LossRecord, time: Timestamp) -> LossEvent {
    LossEvent {
        time,
        group: rec.group,
        count: rec.count.unwrap_or(0),
        seq_global: rec.seq_global,
        cause: rec.cause(),
    }
}
