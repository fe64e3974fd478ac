//! Intake's rounds on datagrams handed in rather than received: the receive path after
//! `recvmmsg` ([`Feeder`]), the direct append into the spool writer's buffer, the round's
//! commit and settling, as [`NflogReceiver`](super::NflogReceiver) runs them in normal mode.
//! For instruction counts of intake per record (`examples/intake_cg.rs`, under callgrind),
//! which live traffic cannot give reproducibly. Not used by the daemon.

use std::path::Path;
use std::sync::Arc;

use fwlog_spool::{Options, Reader, Spool};
use tokio::sync::Notify;

use super::nflog::{NflogReceiver, ToSpool};
use super::spooler::Spooler;
use crate::capture::Feeder;
use crate::counters::{bump, Counters};
use crate::daemon::seqfile::SeqFile;

/// A spool and the receive path's state, fed datagrams round by round.
#[doc(hidden)]
pub struct FedIntake {
    feeder: Feeder,
    spool: Spooler<()>,
    seq_file: SeqFile,
}

impl FedIntake {
    /// Open (or create) the spool in `dir` with `opts`; the reader is returned unused (keep it
    /// alive: a spool without one behaves differently).
    pub fn open(dir: &Path, opts: Options) -> Result<(FedIntake, Reader), String> {
        let (writer, reader, _) =
            Spool::open(dir, opts).map_err(|e| format!("{}: {e}", dir.display()))?;
        let spool = Spooler::new(
            writer,
            Arc::new(Counters::default()),
            Arc::new(Notify::new()),
            NflogReceiver::policy(),
        );
        let dfd = crate::dirfd::open_dir(None, dir).map_err(|e| format!("{e}"))?;
        let (seq_file, _) = SeqFile::open(&dfd, dir);
        let feeder = Feeder::new().map_err(|e| format!("interface-name socket: {e}"))?;
        Ok((
            FedIntake {
                feeder,
                spool,
                seq_file,
            },
            reader,
        ))
    }

    /// One round: each element of `calls` is what one `recvmmsg` returned (its datagrams),
    /// appended record by record; then the round's commit and settling. Returns the records.
    pub fn round(&mut self, calls: &[Vec<&[u8]>]) -> Result<usize, String> {
        let mut n = 0;
        for call in calls {
            let mut sink = ToSpool::new(&mut self.spool, &mut self.seq_file);
            n += self.feeder.feed(call.iter().copied(), &mut sink);
            sink.finish();
        }
        let spool = &mut self.spool;
        bump(&spool.counters.received, n as u64);
        spool.round();
        let c = spool.commit(false)?;
        let c = spool.tick()?.or(c);
        spool.committed.clear();
        spool.refused.clear();
        if let Some(c) = c {
            let upto = spool.accounted_upto(self.feeder.tracker().last_seq_global());
            self.seq_file.committed(c, upto);
        }
        Ok(n)
    }

    /// Commit what is left and wait for its sync.
    pub fn finish(&mut self) -> Result<(), String> {
        self.spool.finish().map(|_| ())
    }
}
