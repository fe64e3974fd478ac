//! Datagrams fed through the receive path without a socket: what intake runs on each datagram
//! after `recvmmsg` returned, for instruction counts of that path (`examples/intake_cg.rs`),
//! which live traffic cannot give reproducibly. Not part of the daemon.

use super::batch::RecordSink;
use super::socket::{process_datagram, stamp_now, Intake};
use std::io;

/// The receive path's state (sequence tracking, interface names) for datagrams handed in.
#[doc(hidden)]
pub struct Feeder {
    intake: Intake,
}

impl Feeder {
    pub fn new() -> io::Result<Feeder> {
        Ok(Feeder {
            intake: Intake::new()?,
        })
    }

    /// The sequence tracking so far.
    pub fn tracker(&self) -> &super::LossTracker {
        &self.intake.tracker
    }

    /// What one receive call does with the datagrams it fetched (one clock read for all of
    /// them, then each datagram's messages in order); returns the records handed to `out`.
    pub fn feed<'a>(
        &mut self,
        datagrams: impl IntoIterator<Item = &'a [u8]>,
        out: &mut impl RecordSink,
    ) -> usize {
        let stamp = stamp_now();
        datagrams
            .into_iter()
            .map(|d| process_datagram(d, &stamp, &mut self.intake, out, &mut |_, _| {}))
            .sum()
    }
}
