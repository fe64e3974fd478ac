//! The intake thread: receive from the kernel, append to the spool, commit. One loop
//! ([`run`]) for both sources; each [`Receiver`] (NFLOG in `nflog.rs`, NFQUEUE audit mode in
//! `nfqueue.rs`) implements only what differs, and `spooler.rs` is the spool side they share.
//!
//! It does nothing else (no decoding, no DNS, no printing), so a slow name server or a stuck
//! output can never make the kernel drop packets: the backlog grows on disk instead. Loss
//! reports are spooled in line with the packets around them, so they print in order and
//! survive a crash like packets do.
//!
//! One round of the loop:
//! 1. wait for packets at most until the receiver's deadline (never more than 100 ms, so a stop
//!    request, retention by age and the once-a-second spool-full report are never late), or
//!    not at all once stopping;
//! 2. the receiver appends each packet and each loss it noticed, in kernel order
//!    ([`Spooler::packet`], [`Spooler::loss`]); NFLOG goes on receiving while the kernel's queue
//!    stays full, up to 64 datagrams or 2 MiB (in hold mode each one written out, its positions recorded
//!    and only then dequeued, before the next is looked at), so one commit covers them all;
//! 3. refused packets are reported and owed loss reports retried when due;
//! 4. commit (NFLOG: when the group commit is due, or a sync on the spool's sync thread has
//!    ended, which the commit then reports; the sync never blocks the round. NFQUEUE: every
//!    round, verdicts wait for it and its sync),
//!    retention upkeep, then the receiver settles the packets whose fate is now known
//!    (NFQUEUE: the verdicts);
//! 5. once stopping and nothing more came: report, commit and return.
//!
//! A full spool (the `--spool-max` cap or a full filesystem) never ends the loop: refused
//! packets are lost (NFLOG; NFQUEUE with `--fail-open`) or dropped (NFQUEUE), see `spooler.rs`.
//! Any other spool error does, after the receiver settled what was not stored.

#[doc(hidden)]
pub mod feed;
mod nflog;
mod nfqueue;
mod pace;
mod spooler;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fwlog_spool::Commit;

pub use nflog::NflogReceiver;
pub use nfqueue::{QueueReceiver, READY};
pub use pace::DEFAULT_GAP;
pub use spooler::{Policy, Spooler};

use crate::counters::bump;

/// Longest a round waits for packets.
const MAX_WAIT: Duration = Duration::from_millis(100);

/// What differs between the intake of NFLOG and of NFQUEUE.
pub trait Receiver {
    /// What intake keeps of each appended packet until its fate is known.
    type Packet;

    /// Commit at the end of this round (true), or only when the spool's group commit is due.
    fn commit_now(&self) -> bool;

    /// How long the next receive may wait for packets (capped at 100 ms).
    fn wait(&self, spool: &Spooler<Self::Packet>) -> Duration;

    /// Receive what is queued, waiting at most `wait`, and hand every packet and loss to
    /// `spool` in order. Returns the number of packets received.
    fn receive(
        &mut self,
        wait: Duration,
        stopping: bool,
        spool: &mut Spooler<Self::Packet>,
    ) -> Result<usize, String>;

    /// After a commit attempt: `spool.committed` holds the packets now stored, `spool.refused`
    /// those the spool did not take; `commit` is the commit, if one happened.
    fn settle(
        &mut self,
        commit: Option<Commit>,
        spool: &mut Spooler<Self::Packet>,
    ) -> Result<(), String>;

    /// The loop ended with `result`: last words.
    fn finish(self, result: Result<(), String>) -> Result<(), String>;
}

/// Run `rx` until `stop` is set; then commit what was received and return.
pub fn run<R: Receiver>(
    mut rx: R,
    mut spool: Spooler<R::Packet>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let result = loop {
        let stopping = stop.load(Ordering::Relaxed);
        match round(&mut rx, &mut spool, stopping) {
            Ok(0) if stopping => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
    };
    let result = result.and_then(|()| {
        let c = spool.finish();
        let settled = rx.settle(c.as_ref().ok().copied().flatten(), &mut spool);
        c.and(settled)
    });
    rx.finish(result)
}

/// One round (see the module docs); returns the number of packets received.
fn round<R: Receiver>(
    rx: &mut R,
    spool: &mut Spooler<R::Packet>,
    stopping: bool,
) -> Result<usize, String> {
    let wait = if stopping {
        Duration::ZERO
    } else {
        rx.wait(spool).min(MAX_WAIT)
    };
    let n = rx.receive(wait, stopping, spool)?;
    bump(&spool.counters.received, n as u64);
    bump(&spool.counters.intake_rounds, 1);
    spool.round();
    let mut commit = None;
    let mut r = spool.commit(rx.commit_now()).map(|c| commit = c);
    if r.is_ok() {
        // Retention by age (a no-op without --retain-for); rounds wake it at least every
        // 100 ms, so idle hours still expire.
        r = spool.tick().map(|c| commit = c.or(commit));
    }
    rx.settle(commit, spool)?;
    r.map(|()| n)
}
