//! A text output: one formatter (fwlog, kernel or JSON) in front of one byte [`Sink`].
//!
//! Lines are formatted into a buffer as packets arrive; `commit` hands the buffer to the sink,
//! which resumes a partly written batch itself (see the parent module's contract), so the
//! buffer is cleared only once every byte of it reached the target. A buffer a backlog grew
//! (batches of megabytes) is given back once batches are small again, so a burst does not pin
//! its peak for the life of the daemon.

use std::io;

use super::{PacketSink, PacketView, Sink};
use crate::format::{Formatter, LossEvent};

/// The buffer's usual capacity, and what it returns to after a burst.
const BUF_BYTES: usize = 1 << 16;
/// A buffer larger than this is shrunk back once a batch fills less than a quarter of it.
const KEEP_BYTES: usize = 1 << 20;

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
            buf: Vec::with_capacity(BUF_BYTES),
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
        if self.buf.capacity() > KEEP_BYTES && self.buf.len() < self.buf.capacity() / 4 {
            self.buf = Vec::with_capacity(BUF_BYTES);
        } else {
            self.buf.clear();
        }
        Ok(())
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.sink.reopen()
    }

    fn describe(&self) -> String {
        self.sink.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{FormatKind, FormatOptions, NameTables};

    struct Count(usize);

    impl Sink for Count {
        fn write_batch(&mut self, lines: &[u8]) -> io::Result<()> {
            self.0 += lines.len();
            Ok(())
        }
        fn reopen(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn describe(&self) -> String {
            "count".into()
        }
    }

    #[test]
    fn a_burst_buffer_is_given_back_once_batches_are_small() {
        let f = Formatter::with_tables(
            FormatKind::Fwlog,
            FormatOptions::default(),
            NameTables::builtin(),
        );
        let mut t = TextSink::new(Box::new(Count(0)), f);
        // A backlog's batches: the buffer grows and is kept while they stay large.
        for _ in 0..3 {
            t.buf.resize(3 << 20, b'x');
            t.commit().unwrap();
            assert!(t.buf.capacity() >= 3 << 20);
        }
        // Live again: a small batch gives the burst's memory back.
        t.buf.extend_from_slice(b"line\n");
        t.commit().unwrap();
        assert!(t.buf.is_empty());
        assert_eq!(t.buf.capacity(), BUF_BYTES);
    }
}
