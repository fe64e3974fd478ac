//! Where the pipeline's records come from.

use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::Arc;

use tokio::sync::Notify;

/// One record: an NFLOG-shaped message (see `crate::nflog`), in source order.
pub struct SourceRecord {
    pub seq: u64,
    pub data: Vec<u8>,
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
    /// The next record if one is ready now.
    fn next(&mut self) -> Result<Option<SourceRecord>, SourceError>;
    /// Every record up to `seq` has been written to every output.
    fn ack(&mut self, seq: u64) -> Result<(), SourceError>;
    /// No record will ever come again (a file read to its end).
    fn finished(&self) -> bool;
    /// Records not yet acknowledged, for the counters.
    fn pending(&self) -> u64;
}

/// The live spool: records appear as intake commits them; never finished.
impl Source for fwlog_spool::Reader {
    fn next(&mut self) -> Result<Option<SourceRecord>, SourceError> {
        match fwlog_spool::Reader::next_item(self) {
            Ok(Some(fwlog_spool::Item::Record(r))) => Ok(Some(SourceRecord {
                seq: r.seq,
                data: r.data,
                replayed: r.recovered,
            })),
            // Printed in line as a loss; acknowledging its last number moves past the range.
            Ok(Some(fwlog_spool::Item::Lost(l))) => Ok(Some(SourceRecord {
                seq: l.last,
                data: super::loss::spool_damage(l.first, l.last),
                replayed: false,
            })),
            Ok(None) => Ok(None),
            Err(e) => Err(SourceError::Read(e)),
        }
    }

    fn ack(&mut self, seq: u64) -> Result<(), SourceError> {
        fwlog_spool::Reader::ack(self, seq).map_err(SourceError::Ack)
    }

    fn finished(&self) -> bool {
        false
    }

    fn pending(&self) -> u64 {
        self.stats().pending_records
    }
}

/// Records made by a producer thread (reading files), passed through a bounded channel so that
/// memory stays bounded however large the input.
pub struct ChannelSource {
    rx: Receiver<SourceRecord>,
    done: bool,
    pending: u64,
}

/// The producer's end: `send` blocks while the pipeline is behind.
pub struct Producer {
    tx: SyncSender<SourceRecord>,
    wake: Arc<Notify>,
    seq: u64,
}

impl Producer {
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
    (
        ChannelSource {
            rx,
            done: false,
            pending: 0,
        },
        Producer { tx, wake, seq: 0 },
    )
}

impl Source for ChannelSource {
    fn next(&mut self) -> Result<Option<SourceRecord>, SourceError> {
        match self.rx.try_recv() {
            Ok(r) => {
                self.pending += 1;
                Ok(Some(r))
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
