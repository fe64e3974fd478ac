//! Where the pipeline's records come from.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::Arc;

use tokio::sync::Notify;

/// One record: an NFLOG-shaped message (see `crate::nflog`), in source order, as a producer
/// thread hands it over.
pub struct SourceRecord {
    pub seq: u64,
    pub data: Vec<u8>,
    /// Possibly printed before (spool replay at start-up, or `fwlog replay`).
    pub replayed: bool,
}

/// What a source says about the record it put into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    pub seq: u64,
    /// Possibly printed before (spool replay at start-up, or `fwlog replay`).
    pub replayed: bool,
}

/// A source that cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("reading the spool: {0}")]
    Read(#[source] fwlog_spool::Error),
    #[error("spool acknowledgement: {0}")]
    Ack(#[source] fwlog_spool::Error),
}

pub trait Source {
    /// The next record if one is ready now, its bytes in `buf` (replacing what was there). The
    /// loop hands in buffers it reuses, so a source that copies into them allocates nothing per
    /// record.
    fn next(&mut self, buf: &mut Vec<u8>) -> Result<Option<RecordMeta>, SourceError>;
    /// Every record up to `seq` has been written to every output.
    fn ack(&mut self, seq: u64) -> Result<(), SourceError>;
    /// The slow, durable half of `ack(seq)`, to run on another thread once every output has
    /// written up to `seq`; `ack(seq)` must follow it on the loop's thread and then only does
    /// the rest. `None`: `ack` does all of it (a source without a durable position).
    fn ack_sync(&mut self, _seq: u64) -> Result<Option<AckSync>, SourceError> {
        Ok(None)
    }
    /// No record will ever come again (a file read to its end).
    fn finished(&self) -> bool;
    /// Records not yet acknowledged, for the counters.
    fn pending(&self) -> u64;
}

/// See [`Source::ack_sync`].
pub type AckSync = Box<dyn FnOnce() -> Result<(), SourceError> + Send>;

/// The live spool: records appear as intake commits them; never finished. Fresh records come
/// from the spool writer's memory when the daemon turned the hand-off on
/// (`fwlog_spool::Options::handoff_bytes`), from disk otherwise and whenever the loop has fallen
/// behind what memory holds (a backlog, a restart): the spool's reader decides, and delivers the
/// same records in the same order either way.
impl Source for fwlog_spool::Reader {
    fn next(&mut self, buf: &mut Vec<u8>) -> Result<Option<RecordMeta>, SourceError> {
        match self.next_into(buf) {
            Ok(Some(fwlog_spool::Next::Record { seq, recovered })) => Ok(Some(RecordMeta {
                seq,
                replayed: recovered,
            })),
            // Printed in line as a loss; acknowledging its last number moves past the range.
            Ok(Some(fwlog_spool::Next::Lost(l))) => {
                super::loss::spool_damage_into(l.first, l.last, buf);
                Ok(Some(RecordMeta {
                    seq: l.last,
                    replayed: false,
                }))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(SourceError::Read(e)),
        }
    }

    fn ack(&mut self, seq: u64) -> Result<(), SourceError> {
        fwlog_spool::Reader::ack(self, seq).map_err(SourceError::Ack)
    }

    fn ack_sync(&mut self, seq: u64) -> Result<Option<AckSync>, SourceError> {
        let t = fwlog_spool::Reader::ack_sync(self, seq).map_err(SourceError::Ack)?;
        Ok(t.map(|t| Box::new(move || t.store().map_err(SourceError::Ack)) as AckSync))
    }

    fn finished(&self) -> bool {
        false
    }

    fn pending(&self) -> u64 {
        self.stats().pending_records
    }
}

/// Records made by a producer thread (reading files), passed through a bounded channel so that
/// memory stays bounded however large the input. The buffers travel back the other way (the
/// loop's previous buffer for each record it takes), so a producer that takes them with
/// [`Producer::spare`] allocates nothing per record either.
pub struct ChannelSource {
    rx: Receiver<SourceRecord>,
    back: SyncSender<Vec<u8>>,
    done: bool,
    pending: u64,
    /// Set when this end is dropped (the pipeline ended, e.g. on SIGTERM).
    gone: Arc<AtomicBool>,
}

impl Drop for ChannelSource {
    fn drop(&mut self) {
        self.gone.store(true, Ordering::Relaxed);
    }
}

/// Buffers with more capacity than this are not sent back (a few large records must not stay
/// pinned as spares).
const RECYCLE_MAX: usize = 64 << 10;

/// The producer's end: `send` blocks while the pipeline is behind.
pub struct Producer {
    tx: SyncSender<SourceRecord>,
    back: Receiver<Vec<u8>>,
    wake: Arc<Notify>,
    seq: u64,
    gone: Arc<AtomicBool>,
}

impl Producer {
    /// True once the pipeline has ended: a producer waiting for input (a FIFO with no writer)
    /// polls this and gives up.
    pub fn gone(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.gone)
    }

    /// An empty buffer the pipeline is done with, to fill with the next record (`None`: none
    /// has come back yet; make one).
    pub fn spare(&mut self) -> Option<Vec<u8>> {
        self.back.try_recv().ok().map(|mut b| {
            b.clear();
            b
        })
    }

    /// Hand one record over; false when the pipeline has gone (stop producing).
    pub fn send(&mut self, data: Vec<u8>, replayed: bool) -> bool {
        self.send_seq(self.seq + 1, data, replayed)
    }

    /// Hand over a record that has its own sequence number (a spool's, in `fwlog replay`, so
    /// database rows keep the key the daemon gave them).
    pub fn send_seq(&mut self, seq: u64, data: Vec<u8>, replayed: bool) -> bool {
        self.seq = seq;
        let ok = self
            .tx
            .send(SourceRecord {
                seq: self.seq,
                data,
                replayed,
            })
            .is_ok();
        self.wake.notify_one();
        ok
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // Wake the pipeline so it sees the channel close.
        self.wake.notify_one();
    }
}

/// A source and its producer end; `wake` is the pipeline's data wake-up.
pub fn channel(capacity: usize, wake: Arc<Notify>) -> (ChannelSource, Producer) {
    let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
    let (back_tx, back_rx) = std::sync::mpsc::sync_channel(capacity);
    let gone = Arc::new(AtomicBool::new(false));
    (
        ChannelSource {
            rx,
            back: back_tx,
            done: false,
            pending: 0,
            gone: Arc::clone(&gone),
        },
        Producer {
            tx,
            back: back_rx,
            wake,
            seq: 0,
            gone,
        },
    )
}

impl Source for ChannelSource {
    fn next(&mut self, buf: &mut Vec<u8>) -> Result<Option<RecordMeta>, SourceError> {
        match self.rx.try_recv() {
            Ok(r) => {
                self.pending += 1;
                // The producer made this buffer; taking it is cheaper than copying it. The
                // loop's buffer goes back for a later record (dropped if the way back is full).
                let old = std::mem::replace(buf, r.data);
                if old.capacity() > 0 && old.capacity() <= RECYCLE_MAX {
                    let _ = self.back.try_send(old);
                }
                Ok(Some(RecordMeta {
                    seq: r.seq,
                    replayed: r.replayed,
                }))
            }
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => {
                self.done = true;
                Ok(None)
            }
        }
    }

    fn ack(&mut self, _seq: u64) -> Result<(), SourceError> {
        self.pending = 0;
        Ok(())
    }

    fn finished(&self) -> bool {
        self.done
    }

    fn pending(&self) -> u64 {
        self.pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loop's buffers go back to the producer, which fills them again: once the first
    /// few have made the round, no record needs a new buffer.
    #[test]
    fn buffers_come_back_to_the_producer() {
        let (mut src, mut prod) = channel(4, Arc::new(Notify::new()));
        let mut seen = std::collections::HashSet::new();
        let mut loop_buf = Vec::new();
        for i in 0..100u8 {
            let mut b = prod.spare().unwrap_or_else(|| Vec::with_capacity(64));
            assert!(b.is_empty());
            b.extend_from_slice(&[i; 10]);
            seen.insert(b.as_ptr() as usize);
            assert!(prod.send(b, false));
            let meta = src.next(&mut loop_buf).expect("next").expect("a record");
            assert_eq!(meta.seq, u64::from(i) + 1);
            assert_eq!(loop_buf, [i; 10]);
        }
        assert!(seen.len() <= 3, "{} buffers for 100 records", seen.len());
    }
}
