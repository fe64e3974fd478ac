//! A text output: one formatter (fwlog, kernel or JSON) in front of one byte [`Sink`].
//!
//! Lines are formatted into a buffer as packets arrive; `commit` hands the buffer to the sink,
//! which resumes a partly written batch itself (see the parent module's contract), so the
//! buffer is cleared only once every byte of it reached the target. A buffer a backlog grew
//! (batches of megabytes) is given back once batches are small again, so a burst does not pin
//! its peak for the life of the daemon.
//!
//! The batch can also be [detached](TextSink::detach) with the sink and written on another
//! thread while lines go into a second buffer. Invariants:
//! - At most one batch is out at a time, and while it is out nothing else is written.
//! - A batch whose write failed (or was not tried) comes back as `held` and is the next one
//!   written, before anything formatted since: bytes reach the target in the order they were
//!   formatted, and the sink gets the failed batch again, byte for byte, as its resume needs.
//! - A SIGHUP while the sink is out is done when it comes back, between whole batches.
//! - A batch detached without `sync` is written and not synced ([`Sink::write_unsynced`]);
//!   the output then owes a sync, which the next batch detached with `sync` (or, with nothing
//!   pending, a detached sync alone) pays for every batch written since. It stays owed until a
//!   sync returned Ok, whatever failed meanwhile.

use std::io;

use super::{PacketSink, PacketView, Sink};
use crate::format::{Formatter, LossEvent};

/// The buffer's usual capacity, and what it returns to after a burst.
const BUF_BYTES: usize = 1 << 16;
/// A buffer larger than this is shrunk back once a batch fills less than a quarter of it.
const KEEP_BYTES: usize = 1 << 20;

/// Empty a written batch's buffer for reuse; one a backlog grew (over [`KEEP_BYTES`]) is
/// replaced by a small one once the batch in it filled less than a quarter of it.
fn give_back(buf: &mut Vec<u8>) {
    if buf.capacity() > KEEP_BYTES && buf.len() < buf.capacity() / 4 {
        *buf = Vec::with_capacity(BUF_BYTES);
    } else {
        buf.clear();
    }
}

pub struct TextSink {
    formatter: Formatter,
    out: Batches,
}

/// A byte sink with its batches: the one being formatted into, and one held back after a
/// failure; what [`TextSink`] writes through (and the loop's model test with it).
pub struct Batches {
    /// `None` while detached.
    sink: Option<Box<dyn Sink>>,
    /// Formatted lines not yet written.
    pub buf: Vec<u8>,
    /// A batch whose write failed or was not tried: written before `buf`.
    held: Vec<u8>,
    /// An empty buffer to swap in for `buf` when a batch is detached (the last one back).
    spare: Vec<u8>,
    /// SIGHUP came while the sink was detached.
    reopen_wanted: bool,
    /// Batches were written without a sync since the last sync that returned Ok.
    owed: bool,
    name: String,
}

/// A text output's batch and sink, out for a write on another thread (see
/// [`PacketSink::detach`]).
pub struct Detached {
    sink: Box<dyn Sink>,
    /// Empty for a sync alone.
    batch: Vec<u8>,
    /// Synced (with what was written unsynced before it), or only written.
    sync: bool,
    outcome: Option<io::Result<()>>,
}

impl Detached {
    /// Write the batch (with the sink's sync, unless detached without); the outcome goes back
    /// with `attach`.
    pub fn run(&mut self) -> &io::Result<()> {
        let r = if self.batch.is_empty() {
            self.sink.sync()
        } else if self.sync {
            self.sink.write_batch(&self.batch)
        } else {
            self.sink.write_unsynced(&self.batch)
        };
        self.outcome.insert(r)
    }

    /// Whether the batch is synced when it is written.
    pub fn syncs(&self) -> bool {
        self.sync
    }

    /// Whether [`run`](Self::run) only copies the batch into the page cache (an unsynced
    /// write of a local regular file, see [`Sink::copies_only`]): cheap enough for the processing
    /// loop's own thread.
    pub fn copies_only(&self) -> bool {
        !self.sync && !self.batch.is_empty() && self.sink.copies_only(self.batch.len())
    }

    /// Bytes in the batch.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// Whether the batch is empty (never, as detached).
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// `None` until [`run`](Self::run).
    pub fn outcome(&self) -> Option<&io::Result<()>> {
        self.outcome.as_ref()
    }
}

impl TextSink {
    pub fn new(sink: Box<dyn Sink>, formatter: Formatter) -> TextSink {
        TextSink {
            formatter,
            out: Batches::new(sink),
        }
    }
}

impl Batches {
    pub fn new(sink: Box<dyn Sink>) -> Batches {
        Batches {
            name: sink.describe(),
            sink: Some(sink),
            buf: Vec::with_capacity(BUF_BYTES),
            held: Vec::new(),
            spare: Vec::new(),
            reopen_wanted: false,
            owed: false,
        }
    }

    pub fn pending(&self) -> usize {
        self.held.len() + self.buf.len()
    }

    /// Write what is held, then the buffer, here and now.
    pub fn commit(&mut self) -> io::Result<()> {
        let Some(sink) = &mut self.sink else {
            return Err(io::Error::other("internal: commit while the batch is out"));
        };
        if !self.held.is_empty() {
            sink.write_batch(&self.held)?;
            self.held.clear();
            self.owed = false;
        }
        if self.buf.is_empty() {
            if std::mem::take(&mut self.owed) {
                if let Err(e) = sink.sync() {
                    self.owed = true;
                    return Err(e);
                }
            }
            return Ok(());
        }
        sink.write_batch(&self.buf)?;
        self.owed = false;
        give_back(&mut self.buf);
        Ok(())
    }

    pub fn reopen(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Some(s) => s.reopen(),
            None => {
                self.reopen_wanted = true;
                Ok(())
            }
        }
    }

    pub fn describe(&self) -> String {
        self.name.clone()
    }

    /// Batches were written and not yet synced.
    pub fn owes_sync(&self) -> bool {
        self.owed
    }

    /// The held batch if there is one (the sink resumes it), else the buffer; with nothing
    /// pending, a sync alone when `sync` and one is owed.
    pub fn detach(&mut self, sync: bool) -> Option<Detached> {
        if self.pending() == 0 {
            if !(sync && self.owed) {
                return None;
            }
            return Some(Detached {
                sink: self.sink.take()?,
                batch: Vec::new(),
                sync,
                outcome: None,
            });
        }
        let sink = self.sink.take()?;
        let batch = if self.held.is_empty() {
            self.spare.clear();
            std::mem::replace(&mut self.buf, std::mem::take(&mut self.spare))
        } else {
            std::mem::take(&mut self.held)
        };
        Some(Detached {
            sink,
            batch,
            sync,
            outcome: None,
        })
    }

    pub fn attach(&mut self, d: Detached) {
        let Detached {
            sink,
            mut batch,
            sync,
            outcome,
        } = d;
        self.sink = Some(sink);
        if matches!(outcome, Some(Ok(()))) {
            // A synced batch (or a sync alone) pays for every unsynced one before it.
            self.owed = !sync;
            give_back(&mut batch);
            // The larger of the two stays as the next spare: a backlog's batches are large.
            if batch.capacity() > self.spare.capacity() {
                self.spare = batch;
            }
        } else {
            // While it was out, `held` was empty (it is what went out when it was not).
            debug_assert!(self.held.is_empty());
            self.held = batch;
        }
        if std::mem::take(&mut self.reopen_wanted) {
            if let Err(e) = self.reopen() {
                crate::say!("fwlog: SIGHUP: cannot reopen {}: {e}", self.name);
            }
        }
    }
}

impl PacketSink for TextSink {
    fn packet(&mut self, p: &PacketView<'_>) {
        self.formatter
            .packet_decoded(p.packet, p.decoded, p.names, &mut self.out.buf);
    }

    fn loss(&mut self, ev: &LossEvent, _seq: u64) {
        self.formatter.loss(ev, &mut self.out.buf);
    }

    fn pending(&self) -> usize {
        self.out.pending()
    }

    fn commit(&mut self) -> io::Result<()> {
        self.out.commit()
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.out.reopen()
    }

    fn describe(&self) -> String {
        self.out.describe()
    }

    fn detachable(&self) -> bool {
        true
    }

    fn detach(&mut self, sync: bool) -> Option<Detached> {
        self.out.detach(sync)
    }

    fn attach(&mut self, d: Detached) {
        self.out.attach(d)
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

    fn counting_sink() -> TextSink {
        let f = Formatter::with_tables(
            FormatKind::Fwlog,
            FormatOptions::default(),
            NameTables::builtin(),
        );
        TextSink::new(Box::new(Count(0)), f)
    }

    #[test]
    fn a_burst_buffer_is_given_back_once_batches_are_small() {
        let mut t = counting_sink();
        // A backlog's batches: the buffer grows and is kept while they stay large.
        for _ in 0..3 {
            t.out.buf.resize(3 << 20, b'x');
            t.commit().unwrap();
            assert!(t.out.buf.capacity() >= 3 << 20);
        }
        // Live again: a small batch gives the burst's memory back.
        t.out.buf.extend_from_slice(b"line\n");
        t.commit().unwrap();
        assert!(t.out.buf.is_empty());
        assert_eq!(t.out.buf.capacity(), BUF_BYTES);
    }

    #[test]
    fn a_burst_buffer_written_on_another_thread_is_given_back_too() {
        let mut t = counting_sink();
        let round = |t: &mut TextSink, len: usize| {
            t.out.buf.resize(len, b'x');
            let mut d = t.detach(true).unwrap();
            assert!(d.run().is_ok());
            t.attach(d);
        };
        for _ in 0..3 {
            round(&mut t, 3 << 20);
        }
        assert!(t.out.buf.capacity() >= 3 << 20 || t.out.spare.capacity() >= 3 << 20);
        // Two small batches: each buffer of the pair goes out once and comes back small.
        round(&mut t, 5);
        round(&mut t, 5);
        assert!(
            t.out.buf.capacity() <= BUF_BYTES,
            "{}",
            t.out.buf.capacity()
        );
        assert!(
            t.out.spare.capacity() <= BUF_BYTES,
            "{}",
            t.out.spare.capacity()
        );
    }

    /// A sink that notes what it was asked: "w" (written and synced), "u" (unsynced), "s"
    /// (a sync alone), failing the next `fail` calls.
    struct Log(std::sync::Arc<std::sync::Mutex<(Vec<String>, usize)>>);

    impl Sink for Log {
        fn write_batch(&mut self, lines: &[u8]) -> io::Result<()> {
            self.note("w", lines)
        }
        fn write_unsynced(&mut self, lines: &[u8]) -> io::Result<()> {
            self.note("u", lines)
        }
        fn sync(&mut self) -> io::Result<()> {
            self.note("s", b"")
        }
        fn reopen(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn describe(&self) -> String {
            "log".into()
        }
    }

    impl Log {
        fn note(&mut self, what: &str, lines: &[u8]) -> io::Result<()> {
            let mut l = self.0.lock().unwrap();
            if l.1 > 0 {
                l.1 -= 1;
                return Err(io::Error::other("failed"));
            }
            l.0.push(format!(
                "{what}{}",
                String::from_utf8_lossy(lines).trim_end()
            ));
            Ok(())
        }
    }

    /// A sync is owed after unsynced batches until a synced batch or a sync alone returned Ok,
    /// also across failures; with nothing owed, nothing is handed over.
    #[test]
    fn a_sync_is_owed_after_unsynced_batches_until_one_succeeds() {
        let log = std::sync::Arc::new(std::sync::Mutex::new((Vec::new(), 0)));
        let mut b = Batches::new(Box::new(Log(log.clone())));
        let round = |b: &mut Batches, line: &str, sync: bool| {
            b.buf.extend_from_slice(line.as_bytes());
            let d = b.detach(sync);
            if let Some(mut d) = d {
                let _ = d.run();
                b.attach(d);
            }
        };
        assert!(b.detach(true).is_none(), "nothing pending, nothing owed");
        round(&mut b, "1\n", false);
        round(&mut b, "2\n", false);
        assert!(b.owes_sync());
        assert!(b.detach(false).is_none(), "no sync alone while deferring");
        // The sync alone fails: still owed, nothing held.
        log.lock().unwrap().1 = 1;
        round(&mut b, "", true);
        assert!(b.owes_sync());
        assert_eq!(b.pending(), 0);
        round(&mut b, "", true);
        assert!(!b.owes_sync());
        // An unsynced batch that fails comes back and is written first, synced, on the retry.
        round(&mut b, "3\n", false);
        log.lock().unwrap().1 = 1;
        round(&mut b, "4\n", false);
        assert_eq!(b.pending(), 2, "the failed batch is held");
        round(&mut b, "5\n", true);
        assert_eq!(b.pending(), 2, "the held batch went first, alone");
        round(&mut b, "", true);
        assert!(!b.owes_sync());
        assert_eq!(
            log.lock().unwrap().0,
            ["u1", "u2", "s", "u3", "w4", "w5"].map(String::from)
        );
    }
}
