//! The NFLOG receiver: batches of records from the capture socket, the kernel's loss reports in
//! line with them, `fwlog.seq_global` after each commit, and hold mode while the socket is
//! kept in the service manager's fd store.
//!
//! Refused packets are lost: the kernel sent a copy and the packet went on, so all intake can do
//! is count them and report them in the stream (cause `spool-full`).

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use fwlog_spool::{Commit, RecordBuf};

use super::pace::{self, Decision, Hold, Round};
use super::spooler::{Policy, Spooler};
use super::Receiver;
use crate::capture::{NewRecord, NflogSocket, RecordBatch, RecordSink};
use crate::daemon::seqfile::SeqFile;
use crate::nflog::loss::LossEvent;

/// Most datagrams one round takes. While the kernel keeps the socket's queue full, a round
/// goes on receiving (without waiting) up to this many, or [`ROUND_BYTES`] of records, so a
/// loaded intake commits, and with `--fsync batch` syncs the spool, once per up to 64
/// datagrams (at most 2 MiB of records, [`ROUND_BYTES`]) rather than once per
/// receive call. The sync itself runs on the spool's sync thread and does not block intake
/// (NFLOG's normal mode); fewer commits still mean fewer writes and wake-ups downstream.
const ROUND_DATAGRAMS: u64 = 64;

/// Most record bytes one round appends before it commits: what the spool writer buffers for
/// a commit (and the hand-off keeps of it) stays small with large packets too.
const ROUND_BYTES: usize = 2 << 20;

/// Whether `fd` becomes readable within `wait`: `ppoll`, whose timeout runs on a
/// high-resolution timer (the socket's receive timeout is rounded up to whole jiffies, 4 ms
/// and more at HZ=250). An interrupted wait counts as readable: the caller looks again.
fn readable_within(fd: RawFd, wait: Duration) -> std::io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: wait.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: wait.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one valid pollfd and a valid timespec, both alive for the call; no signal mask.
    let r = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return if e.kind() == std::io::ErrorKind::Interrupted {
            Ok(true)
        } else {
            Err(e)
        };
    }
    Ok(r > 0)
}

/// Hold mode (the socket kept in the fd store) is on when the spooler holds the positions file
/// ([`Spooler::held`]).
pub struct NflogReceiver {
    sock: NflogSocket,
    batch: RecordBatch,
    seq_file: SeqFile,
    /// `--batch-delay auto`: the commit pacing's gap (see `pace`); `None` with an explicit
    /// delay, which the spool writer's group commit applies instead.
    gap: Option<Duration>,
    /// `--batch-records`.
    max_records: u64,
    /// When the last commit started (the end of its round's receiving).
    last_commit: Option<Instant>,
    /// `Commit::written` of the last commit that wrote records.
    last_written: u64,
    /// When this round's receiving ended: its commit's start.
    round_end: Instant,
}

/// A round's progress against its caps.
struct Budget {
    start: u64,
    bytes: usize,
}

impl NflogReceiver {
    /// `gap`: pace commits (`--batch-delay auto`, see `pace`); `max_records`: `--batch-records`.
    pub fn new(
        sock: NflogSocket,
        seq_file: SeqFile,
        gap: Option<Duration>,
        max_records: usize,
    ) -> Self {
        NflogReceiver {
            sock,
            batch: RecordBatch::new(),
            seq_file,
            gap,
            max_records: max_records as u64,
            last_commit: None,
            last_written: 0,
            round_end: Instant::now(),
        }
    }

    /// What refused packets mean here.
    pub fn policy() -> Policy {
        Policy {
            prefix: "fwlog: ".into(),
            refused_are_lost: true,
            consequence: "counting them as lost",
            outcome: "were lost",
            group: None,
        }
    }

    /// Hold mode: before appending the batch, mark each of its groups unsure from its first
    /// number in it (see `positions`), the others where they are.
    fn intend(&mut self, spool: &mut Spooler<()>) {
        let Some(p) = &mut spool.held else { return };
        let mut firsts: Vec<(u16, u32)> = Vec::new();
        for m in self.batch.meta() {
            if let Some((g, s)) = m.group.zip(m.seq) {
                if !firsts.iter().any(|f| f.0 == g) {
                    firsts.push((g, s));
                }
            }
        }
        let tracked = self.sock.tracker().group_positions();
        let mut entries: Vec<_> = tracked
            .filter(|(g, _)| !firsts.iter().any(|f| f.0 == *g))
            .map(|(g, s)| (g, s, false))
            .collect();
        entries.extend(firsts.iter().map(|&(g, s)| (g, s, true)));
        p.begin(entries.into_iter());
    }

    /// One receive call; every packet and loss it brought is appended to `spool`.
    fn receive_once(&mut self, wait: Duration, spool: &mut Spooler<()>) -> Result<usize, String> {
        let mut batch = std::mem::take(&mut self.batch);
        let r = self.sock.recv_batch(&mut batch, wait);
        self.batch = batch;
        let n = r.map_err(|e| format!("receiving from NFLOG: {e}"))?;
        let groups = self.batch.iter().map(crate::capture::record_group);
        spool.counters.per_group.count(groups);
        if !self.seq_file.has_value() {
            self.seed_first_run();
        }
        if n > 0 {
            self.intend(spool);
        }
        let losses = self.batch.loss_events();
        let mut li = 0;
        for (i, (rec, m)) in self.batch.iter().zip(self.batch.meta()).enumerate() {
            while li < losses.len() && losses[li].0 <= i {
                crate::say!("fwlog: {}", losses[li].1);
                spool.loss(losses[li].1);
                li += 1;
            }
            spool.packet_scanned(rec, (), m.seq_global, m.group.zip(m.seq));
        }
        for (_, ev) in &losses[li..] {
            crate::say!("fwlog: {ev}");
            spool.loss(*ev);
        }
        Ok(n)
    }

    /// Normal mode's receive call: each record goes from the receive slot straight into the
    /// spool writer's buffer (one copy), each loss report in line before the record that
    /// revealed it. Returns (records, their bytes).
    fn receive_direct(
        &mut self,
        wait: Duration,
        spool: &mut Spooler<()>,
    ) -> Result<(usize, usize), String> {
        let mut sink = ToSpool::new(spool, &mut self.seq_file);
        let r = self.sock.recv_into(&mut sink, wait);
        let bytes = sink.finish();
        let n = r.map_err(|e| format!("receiving from NFLOG: {e}"))?;
        Ok((n, bytes))
    }

    /// Hold mode (socket kept in the fd store): write the records out, say how far each group
    /// is spooled, and only then take the datagram off the socket (see `fdkeep`).
    fn hand_over(&mut self, spool: &mut Spooler<()>) -> Result<(), String> {
        if !self.batch.is_empty() || !self.batch.loss_events().is_empty() {
            // Reports that are due go out with this datagram, as the round would append them.
            spool.round();
            spool.write_out()?;
            // Packets the spool refused are not spooled: leave the positions behind them, so a
            // kill before their report makes the next run see them again, not skip them.
            if spool.unreported().count == 0 {
                if let Some(p) = &mut spool.held {
                    let at = self.sock.tracker().group_positions();
                    p.store(at.map(|(g, s)| (g, s, false)));
                }
            }
        }
        self.sock
            .release()
            .map_err(|e| format!("receiving from NFLOG: {e}"))
    }

    /// Receive calls, the first waiting at most `wait`, until the socket has no more queued or
    /// the round reached its caps; returns the packets received and whether the caps ended it.
    fn take(
        &mut self,
        wait: Duration,
        spool: &mut Spooler<()>,
        budget: &mut Budget,
    ) -> Result<(usize, bool), String> {
        let held = spool.held.is_some();
        let per_call = if held {
            1
        } else {
            self.sock.batch_datagrams() as u64
        };
        let mut n = 0;
        let mut wait = wait;
        loop {
            let before = self.sock.stats().datagrams;
            if held {
                n += self.receive_once(wait, spool)?;
                budget.bytes += self.batch.data().len();
                self.hand_over(spool)?;
            } else {
                let (records, len) = self.receive_direct(wait, spool)?;
                n += records;
                budget.bytes += len;
            }
            let now = self.sock.stats().datagrams;
            let capped = now - budget.start >= ROUND_DATAGRAMS || budget.bytes >= ROUND_BYTES;
            // A call that did not fill its slots found the queue empty.
            if capped || now - before < per_call {
                return Ok((n, capped));
            }
            wait = Duration::ZERO;
        }
    }

    /// First run on this spool (no `fwlog.seq_global` yet): record, before anything is spooled,
    /// that everything before the first packet received was not ours. Without this, a run killed
    /// after a segment rollover had made some packets durable (an implicit commit, which does not
    /// update the file) but before its first explicit commit left no value at all, and the next
    /// run could not report the packets the kernel had handed the dead one.
    fn seed_first_run(&mut self) {
        let first = self.batch.meta().iter().find_map(|m| m.seq_global);
        if let Some(g) = first {
            self.seq_file.store(g.wrapping_sub(1));
        }
    }
}

impl Receiver for NflogReceiver {
    /// The packet's NFULA_SEQ_GLOBAL is all a refused packet needs (its report's range).
    type Packet = ();

    /// Only when the spool's group commit is due (`--batch-records`, `--batch-delay`): under
    /// load the batch grows while the delay runs, and a user who asked for a long delay gets it.
    fn commit_now(&self) -> bool {
        false
    }

    fn wait(&self, spool: &Spooler<()>) -> Duration {
        spool
            .writer
            .commit_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::MAX)
    }

    /// Receive calls until the socket has no more queued or the round has [`ROUND_DATAGRAMS`]
    /// datagrams or [`ROUND_BYTES`] of records. Normal mode: `recvmmsg` of up to `batch_datagrams` per call. Hold mode: one
    /// datagram per call, peeked at, appended, written out and only then taken off the socket
    /// ([`NflogReceiver::hand_over`]) before the next is looked at (the kernel cannot peek
    /// past the head of the queue). The round's commit (and so its `fdatasync`), upkeep and
    /// settling are shared by all of them. With commit pacing, a round that should not commit
    /// yet also takes the kernel's next datagrams, waiting for them at most until the end of
    /// its gap (see `pace`).
    fn receive(
        &mut self,
        wait: Duration,
        stopping: bool,
        spool: &mut Spooler<()>,
    ) -> Result<usize, String> {
        let mut budget = Budget {
            start: self.sock.stats().datagrams,
            bytes: 0,
        };
        let (mut n, capped) = self.take(wait, spool, &mut budget)?;
        if let Some(gap) = self.gap.filter(|_| !stopping) {
            let round = Round {
                appended: spool.writer.batch_len(),
                capped,
            };
            let mut now = Instant::now();
            let max = self.max_records;
            if let Decision::Until(at) = pace::decide(now, self.last_commit, gap, max, round) {
                let mut hold = Hold::new(now, at);
                while readable_within(self.sock.as_raw_fd(), hold.wait(now))
                    .map_err(|e| format!("waiting for NFLOG: {e}"))?
                {
                    let (taken, capped) = self.take(Duration::ZERO, spool, &mut budget)?;
                    n += taken;
                    let round = Round {
                        appended: spool.writer.batch_len(),
                        capped,
                    };
                    now = Instant::now();
                    if !hold.take_more(now, max, round) {
                        break;
                    }
                }
            }
        }
        self.round_end = Instant::now();
        Ok(n)
    }

    /// After any commit (explicit, or by `tick` sealing a segment; both write everything
    /// appended so far): tell the seq file how far the kernel's numbers are accounted for once
    /// this commit is durable.
    fn settle(&mut self, commit: Option<Commit>, spool: &mut Spooler<()>) -> Result<(), String> {
        spool.committed.clear();
        spool.refused.clear();
        if let Some(a) = spool.rewound.take() {
            self.seq_file.rewound(a);
        }
        if let Some(c) = commit {
            // Only a commit that wrote something paces the next: one made because a sync
            // ended, with nothing new, must not hold back an idle link's first packet.
            if c.written > self.last_written {
                self.last_written = c.written;
                self.last_commit = Some(self.round_end);
            }
            let upto = spool.accounted_upto(self.sock.tracker().last_seq_global());
            self.seq_file.committed(c, upto);
        }
        Ok(())
    }

    fn finish(self, result: Result<(), String>) -> Result<(), String> {
        // Keep the socket, and so its groups, until the process exits (the kernel closes it
        // then): what the rules log during the rest of the shutdown lands in its buffer with a
        // sequence number, which the next run counts as a restart gap. Closed now, the groups
        // would be unbound, and the kernel would drop those packets without numbering them.
        std::mem::forget(self.sock);
        result
    }
}

/// Normal mode's [`RecordSink`]: appends each record to the spool as it is received.
pub(super) struct ToSpool<'a> {
    spool: &'a mut Spooler<()>,
    seq_file: &'a mut SeqFile,
    /// The current run of same-group records, for the per-group counters.
    run: Option<(u16, u64)>,
    /// Record bytes appended.
    bytes: usize,
}

impl<'a> ToSpool<'a> {
    pub(super) fn new(spool: &'a mut Spooler<()>, seq_file: &'a mut SeqFile) -> Self {
        ToSpool {
            spool,
            seq_file,
            run: None,
            bytes: 0,
        }
    }

    /// Count the last run of same-group records; the record bytes appended.
    pub(super) fn finish(self) -> usize {
        if let Some((g, n)) = self.run {
            self.spool.counters.per_group.add(g, n);
        }
        self.bytes
    }
}

impl RecordSink for ToSpool<'_> {
    fn loss(&mut self, ev: LossEvent) {
        crate::say!("fwlog: {ev}");
        self.spool.loss(ev);
    }

    fn record(&mut self, rec: &NewRecord<'_>) {
        let m = rec.meta();
        if let Some(g) = m.group {
            match &mut self.run {
                Some((rg, n)) if *rg == g => *n += 1,
                run => {
                    if let Some((rg, n)) = run.replace((g, 1)) {
                        self.spool.counters.per_group.add(rg, n);
                    }
                }
            }
        }
        if !self.seq_file.has_value() {
            // First run on this spool: see `NflogReceiver::seed_first_run`.
            if let Some(g) = m.seq_global {
                self.seq_file.store(g.wrapping_sub(1));
            }
        }
        let len = rec.len();
        self.bytes += len;
        let fill = |b: &mut RecordBuf<'_>| rec.write_to(b);
        let group_seq = m.group.zip(m.seq);
        self.spool
            .packet_with(len, fill, (), m.seq_global, group_seq);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fwlog_spool::{Item, Options, Spool};
    use tokio::sync::Notify;

    use super::*;
    use crate::capture::RecordMeta;
    use crate::counters::Counters;
    use crate::nflog::attr::LossRecord;
    use crate::nflog::loss::Cause;

    /// The direct path appends, in kernel order, each loss before the record that revealed
    /// it, each record byte for byte, counts records per group, and seeds `fwlog.seq_global`
    /// before the first record of a first run.
    #[test]
    fn records_and_losses_go_to_the_spool_in_order_with_their_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (writer, mut reader, _) =
            Spool::open(dir.path().join("spool"), Options::default()).expect("spool");
        let counters = Arc::new(Counters::default());
        counters.per_group.bind(&[5, 6]);
        let mut spool = Spooler::new(
            writer,
            Arc::clone(&counters),
            Arc::new(Notify::new()),
            NflogReceiver::policy(),
        );
        let dfd = crate::dirfd::open_dir(None, dir.path()).expect("dir fd");
        let (mut seq_file, before) = SeqFile::open(&dfd, dir.path());
        assert_eq!(before, None);

        // What the receive path found: records of groups 5, 5, 6, and a gap before the third.
        let recs: [&[u8]; 3] = [
            &[2, 0, 0, 5, 1, 0, 0, 0],
            &[2, 0, 0, 5, 2, 0, 0, 0],
            &[2, 0, 0, 6, 3, 0, 0, 0],
        ];
        let mut batch = RecordBatch::new();
        for (i, r) in recs.iter().enumerate() {
            if i == 2 {
                batch.push_loss(LossEvent::now(Cause::SeqGap, Some(6), 4, Some((97, 100))));
            }
            batch.data.extend_from_slice(r);
            batch.ends.push(batch.data.len());
            batch.meta.push(RecordMeta {
                group: Some(r[3].into()),
                seq: Some(i as u32),
                seq_global: Some(101 + i as u32),
            });
        }
        let mut sink = ToSpool {
            spool: &mut spool,
            seq_file: &mut seq_file,
            run: None,
            bytes: 0,
        };
        batch.drain_into(&mut sink);
        assert_eq!(sink.finish(), 24);
        assert!(seq_file.has_value(), "seeded before the first record");
        spool.commit(true).expect("commit");

        let mut got = Vec::new();
        while let Some(item) = reader.next_item().expect("read") {
            let Item::Record(rec) = item else {
                panic!("damage reported")
            };
            got.push(match LossRecord::decode(&rec.data) {
                Some(l) => format!("{}:{}", l.cause().name(), l.count.unwrap_or(0)),
                None => {
                    assert!(recs.contains(&&rec.data[..]), "copied byte for byte");
                    format!("P{}", rec.data[4])
                }
            });
        }
        assert_eq!(got, ["P1", "P2", "seq-gap:4", "P3"]);
        assert_eq!(counters.per_group.snapshot(), vec![(5, 2), (6, 1)]);
        assert_eq!(
            counters.spooled.load(std::sync::atomic::Ordering::Relaxed),
            3
        );
    }
}
