//! A text output: one formatter (fwlog, kernel or JSON) in front of one byte [`Sink`].
//!
//! Lines are formatted into a buffer as packets arrive; `commit` hands the buffer to the sink,
//! which resumes a partly written batch itself (see the parent module's contract), so the
//! buffer is cleared only once every byte of it reached the target.

use std::io;

use super::{PacketSink, PacketView, Sink};
use crate::format::{Formatter, LossEvent};

pub struct TextSink {
    sink: Box<dyn Sink>,
    formatter: Formatter,
    /// Formatted lines not yet written.
    buf: Vec<u8>,
}

impl TextSink {
    pub fn new(sink: Box<dyn Sink>, formatter: Formatter) -> TextSink {
        TextSink {
            sink,
            formatter,
            buf: Vec::with_capacity(1 << 16),
        }
    }
}

impl PacketSink for TextSink {
    fn packet(&mut self, p: &PacketView<'_>) {
        self.formatter
            .packet_decoded(p.packet, p.decoded, p.names, &mut self.buf);
    }

    fn loss(&mut self, ev: &LossEvent, _seq: u64) {
        self.formatter.loss(ev, &mut self.buf);
    }

    fn pending(&self) -> usize {
        self.buf.len()
    }

    fn commit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.sink.write_batch(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.sink.reopen()
    }

    fn describe(&self) -> String {
        self.sink.describe()
    }
}
