//! Spooled loss records as printable events.

use crate::nflog::attr::LossRecord;
use crate::packet::Timestamp;

pub use crate::nflog::loss::Cause;

/// Placeholder time for parsing records whose own time is not needed.
pub const EPOCH: Timestamp = Timestamp::EPOCH;

/// A loss record for spool sequence numbers `first..=last` that the spool found damaged or
/// missing (they were never in the stream as loss records: the spool reports them as it reads).
pub fn spool_damage(first: u64, last: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    spool_damage_into(first, last, &mut out);
    out
}

/// [`spool_damage`] into `out` (replacing its contents).
pub fn spool_damage_into(first: u64, last: u64, out: &mut Vec<u8>) {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    out.clear();
    LossRecord {
        group: None,
        cause: Cause::Corrupt as u8,
        count: Some(last - first + 1),
        seq_global: None,
        spool_seq: Some((first, last)),
    }
    .encode(t.as_secs() as i64, t.subsec_nanos(), out);
}
