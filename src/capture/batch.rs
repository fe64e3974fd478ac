//! The output of one receive call: spool records stored back to back, plus loss events.
//!
//! Layout: `data` holds the records contiguously; record `i` is `data[ends[i-1]..ends[i]]`
//! (`ends[-1]` = 0). Every record starts 4-byte aligned relative to `data` (each is padded to
//! a multiple of 4), so a spool can write `data()` in one go and keep `ends()` as its index.
//! The buffers are kept between calls: after the first few batches, receiving allocates
//! nothing.

use super::record::NewRecord;
use crate::nflog::loss::LossEvent;

/// Where a receive call puts what it found, in kernel order: each loss before the record
/// whose sequence number revealed it. A [`RecordBatch`] collects both; the daemon's intake
/// appends each record straight into the spool writer's buffer instead (one copy fewer).
pub trait RecordSink {
    /// A loss noticed while receiving.
    fn loss(&mut self, ev: LossEvent);
    /// The next record.
    fn record(&mut self, rec: &NewRecord<'_>);
}

/// What the receive path's one attribute scan found in a record, kept beside it so that
/// nothing later in intake walks the record's attributes again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordMeta {
    pub group: Option<u16>,
    /// NFULA_SEQ.
    pub seq: Option<u32>,
    /// NFULA_SEQ_GLOBAL.
    pub seq_global: Option<u32>,
}

#[derive(Debug, Default)]
pub struct RecordBatch {
    pub(crate) data: Vec<u8>,
    pub(crate) ends: Vec<usize>,
    /// One per record (same length as `ends`).
    pub(crate) meta: Vec<RecordMeta>,
    /// (number of records in the batch before the loss, event).
    pub(crate) loss: Vec<(usize, LossEvent)>,
}

impl RecordBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pre-size for `bytes` of records and `records` records.
    pub fn with_capacity(bytes: usize, records: usize) -> Self {
        RecordBatch {
            data: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(records),
            meta: Vec::with_capacity(records),
            loss: Vec::new(),
        }
    }

    /// Forget the contents, keep the memory.
    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.meta.clear();
        self.loss.clear();
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// No records (there may still be loss events: see [`Self::loss_events`]).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Record `i`: one NFLOG record (nfgenmsg + TLVs, fwlog's included).
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.data[start..end])
    }

    pub fn iter(&self) -> Records<'_> {
        Records {
            batch: self,
            next: 0,
        }
    }

    /// All records, back to back.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// End offset of each record in [`Self::data`].
    pub fn ends(&self) -> &[usize] {
        &self.ends
    }

    /// What the receive path's scan found in each record, in record order.
    pub fn meta(&self) -> &[RecordMeta] {
        &self.meta
    }

    /// Losses noticed while receiving this batch, each with the number of records of this
    /// batch that precede it (so the daemon can print the loss line in the right place).
    pub fn loss_events(&self) -> &[(usize, LossEvent)] {
        &self.loss
    }

    pub(crate) fn push_loss(&mut self, e: LossEvent) {
        self.loss.push((self.ends.len(), e));
    }

    /// Hand every record and loss to `out`, in order, and leave `self` empty.
    pub(crate) fn drain_into(&mut self, out: &mut impl RecordSink) {
        let mut li = 0;
        for i in 0..self.len() {
            while li < self.loss.len() && self.loss[li].0 <= i {
                out.loss(self.loss[li].1);
                li += 1;
            }
            if let Some(rec) = self.get(i) {
                out.record(&NewRecord::built(rec, self.meta[i]));
            }
        }
        for (_, ev) in &self.loss[li..] {
            out.loss(*ev);
        }
        self.clear();
    }
}

impl RecordSink for RecordBatch {
    fn loss(&mut self, ev: LossEvent) {
        self.push_loss(ev);
    }

    fn record(&mut self, rec: &NewRecord<'_>) {
        rec.write_to(&mut self.data);
        self.ends.push(self.data.len());
        self.meta.push(rec.meta());
    }
}

/// Iterator over the records of a [`RecordBatch`].
pub struct Records<'a> {
    batch: &'a RecordBatch,
    next: usize,
}

impl<'a> Iterator for Records<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let r = self.batch.get(self.next)?;
        self.next += 1;
        Some(r)
    }
}

impl<'a> IntoIterator for &'a RecordBatch {
    type Item = &'a [u8];
    type IntoIter = Records<'a>;
    fn into_iter(self) -> Records<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nflog::loss::Cause;

    #[test]
    fn drain_into_rebases_offsets_and_loss_positions() {
        let mut a = RecordBatch::new();
        a.data.extend_from_slice(&[1, 1, 1, 1]);
        a.ends.push(4);
        a.meta.push(RecordMeta::default());
        let mut b = RecordBatch::new();
        b.data.extend_from_slice(&[2; 8]);
        b.ends.push(8);
        b.meta.push(RecordMeta {
            group: Some(2),
            seq: Some(3),
            seq_global: Some(4),
        });
        b.push_loss(LossEvent::now(Cause::Enobufs, None, 0, None));
        b.drain_into(&mut a);
        assert!(b.is_empty() && b.loss_events().is_empty());
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            vec![&[1u8; 4][..], &[2u8; 8][..]]
        );
        assert_eq!(a.loss_events()[0].0, 2);
        assert_eq!(a.meta().len(), 2);
        assert_eq!(a.meta()[1].seq_global, Some(4));
    }
}
