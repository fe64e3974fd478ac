//! When NFLOG intake commits a round's records with the default `--batch-delay auto`: at once
//! on an idle link, and at most about once per gap under sustained traffic.
//!
//! Why: every spool commit costs a write and an `fdatasync`, and downstream the processing
//! loop's output write with its own syncs (one output write per commit once the loop has caught
//! up). With the kernel sending a datagram at each timer tick (`--flush-timeout 0`), committing
//! every round means one commit per tick at moderate rates (190 a second at 10k packets/s),
//! for batches of a few dozen records; with the default 10 ms flush timeout the kernel's own
//! datagrams come about 12 ms apart, and a round seldom waits. A fixed group-commit delay would
//! also delay the first packet after a quiet spell, which is the one a person tailing the log
//! waits for.
//!
//! Rule ([`decide`], a pure function of times and counts):
//! - nothing appended, a round cut short by its caps (the kernel's queue is still full), or
//!   `--batch-records` reached: commit now (a large batch gains nothing by waiting, and a full
//!   queue must be drained);
//! - the previous commit started at least one gap ago (or there was none): commit now, so an
//!   idle link's first packet is not held back;
//! - otherwise take the kernel's datagrams as they arrive until one gap after the previous
//!   commit started, then commit them all together ([`Hold::take_more`]: stop early once the caps or
//!   `--batch-records` are reached, or when the next datagram, at the pace they have arrived
//!   since the round was held, would come after the gap).
//!
//! Measured from start to start, a slow `fdatasync` is part of the gap rather than added to
//! it: on a disk whose syncs take longer than the gap, every round commits at once.
//!
//! With `--flush-timeout 0` the kernel sends each group's datagram at a timer tick, so under
//! sustained traffic at HZ=250 a round is one tick's datagrams, 4 ms apart: a held round takes
//! the next tick's and commits both, up to halving the commits, and the held records wait one
//! tick (4 ms) longer, the others not at all. The commit is made when that datagram arrives, not
//! at the end of the gap: the next tick is 4 ms away, past the gap's end, and a wait for it would
//! only end in a timeout, a wake-up for nothing, and start the next commit late (its gap counts
//! from there), a lag every later commit would keep. A sleep to the end of the gap without
//! watching the socket would race the tick at its end, and that tick's records would wait a
//! whole gap more. The gap, 8 ms (two ticks at HZ=250), bounds the wait when no datagram
//! follows (traffic stopped).
//!
//! Above `--qthresh` records per group in a flush timeout (1024 by default), or once its 128 KiB
//! datagram is full, the kernel sends a group's datagram at once, several per gap at high rates:
//! a held round then takes all that arrive within the gap. Taking only the first of them
//! committed every second datagram, about 250 commits a second at 100k packets/s logged to two
//! groups instead of 125 (BENCHMARKS.md, "commit pacing above the queue threshold").
//!
//! Invariants: a record waits at most one gap longer than it would with a commit every round;
//! a held round commits by the end of its gap; the waits are `ppoll` on the socket, whose
//! timeout runs on a high-resolution timer, not the socket's receive timeout (which the kernel
//! rounds up to whole jiffies); the gap is far below what the socket's buffer holds at full
//! rate, so nothing is dropped for it.

use std::time::{Duration, Instant};

/// The default least time between the starts of two commits under sustained traffic (see the
/// module docs and BENCHMARKS.md, "commit pacing").
pub const DEFAULT_GAP: Duration = Duration::from_millis(8);

/// What intake does with a round's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Commit at the end of this round.
    Now,
    /// Wait at most until then for the next datagram, take it, then commit.
    Until(Instant),
}

/// The state of the round that is about to commit.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    /// Records appended and not yet committed.
    pub appended: u64,
    /// The round stopped at its datagram or byte cap: the kernel's queue may still be full.
    pub capped: bool,
}

/// See the module docs. `last_commit`: when the previous commit started.
pub fn decide(
    now: Instant,
    last_commit: Option<Instant>,
    gap: Duration,
    max_records: u64,
    round: Round,
) -> Decision {
    if round.appended == 0 || round.capped || round.appended >= max_records {
        return Decision::Now;
    }
    match last_commit {
        Some(at) if now.saturating_duration_since(at) < gap => {
            Decision::Until((at + gap).min(now + gap))
        }
        _ => Decision::Now,
    }
}

/// A held round's wait for the kernel's next datagrams (see [`decide`] and the module docs).
#[derive(Debug)]
pub struct Hold {
    /// When the round was held.
    since: Instant,
    /// The end of its gap, as [`decide`] gave it.
    until: Instant,
    /// Datagrams taken since (wake-ups that found one).
    wakes: u32,
}

impl Hold {
    pub fn new(since: Instant, until: Instant) -> Hold {
        Hold {
            since,
            until,
            wakes: 0,
        }
    }

    /// How long to wait from `now` for the next datagram.
    pub fn wait(&self, now: Instant) -> Duration {
        self.until.saturating_duration_since(now)
    }

    /// The round has just taken a datagram at `now`: whether to wait for more before
    /// committing. The next is expected one mean spacing of those taken so far after this one.
    pub fn take_more(&mut self, now: Instant, max_records: u64, round: Round) -> bool {
        self.wakes += 1;
        let spacing = now.saturating_duration_since(self.since) / self.wakes;
        let left = self.wait(now);
        !round.capped && round.appended < max_records && !left.is_zero() && left >= spacing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: Duration = Duration::from_millis(8);

    fn round(appended: u64) -> Round {
        Round {
            appended,
            capped: false,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_idle_links_first_packet_commits_at_once() {
        let t = Instant::now();
        assert_eq!(decide(t, None, GAP, 256, round(1)), Decision::Now);
        assert_eq!(
            decide(t + ms(8), Some(t), GAP, 256, round(1)),
            Decision::Now
        );
        assert_eq!(
            decide(t + ms(500), Some(t), GAP, 256, round(3)),
            Decision::Now
        );
    }

    #[test]
    fn sustained_traffic_waits_for_one_gap_after_the_last_commit() {
        let t = Instant::now();
        assert_eq!(
            decide(t + ms(1), Some(t), GAP, 256, round(40)),
            Decision::Until(t + ms(8))
        );
        assert_eq!(
            decide(t + ms(7), Some(t), GAP, 256, round(1)),
            Decision::Until(t + ms(8))
        );
    }

    #[test]
    fn a_wait_never_exceeds_one_gap() {
        let t = Instant::now();
        for since in 0..20 {
            if let Decision::Until(at) = decide(t + ms(since), Some(t), GAP, 256, round(5)) {
                assert!(at - (t + ms(since)) <= GAP);
                assert!(at > t + ms(since));
            }
        }
    }

    #[test]
    fn a_full_batch_or_a_capped_round_commits_at_once() {
        let t = Instant::now();
        let last = Some(t);
        assert_eq!(decide(t + ms(1), last, GAP, 256, round(256)), Decision::Now);
        assert_eq!(
            decide(t + ms(1), last, GAP, 256, round(9000)),
            Decision::Now
        );
        let capped = Round {
            appended: 10,
            capped: true,
        };
        assert_eq!(decide(t + ms(1), last, GAP, 256, capped), Decision::Now);
    }

    #[test]
    fn a_held_round_takes_datagrams_while_the_next_is_due_within_its_gap() {
        let t = Instant::now();
        // Datagrams every 1.3 ms (the queue threshold filling at 100k records/s to a group),
        // the round held at 1.3 ms: those at 2.6, 3.9, 5.2 and 6.5 ms leave time for the next,
        // the one at 7.8 ms does not.
        let mut hold = Hold::new(t + Duration::from_micros(1300), t + GAP);
        let mut taken = 0;
        let mut at = t + Duration::from_micros(1300);
        loop {
            at += Duration::from_micros(1300);
            taken += 1;
            if !hold.take_more(at, 2048, round(100 * taken)) {
                break;
            }
        }
        assert_eq!(taken, 5);
        assert_eq!(at, t + Duration::from_micros(7800));
    }

    #[test]
    fn tick_paced_a_held_round_commits_with_the_next_tick() {
        let t = Instant::now();
        // The previous commit started 1.2 ms after its tick: the gap ends 1.2 ms after the
        // next tick but one, and the tick after that is 4 ms away.
        let until = t + ms(1) + Duration::from_micros(200) + GAP;
        let mut hold = Hold::new(t + ms(4), until);
        assert!(!hold.take_more(t + ms(8), 2048, round(80)));
        // The two groups' datagrams of a tick in separate wake-ups: the second group's datagram
        // of the held tick is taken, and at the next tick the mean spacing over both is still
        // half a tick.
        let mut hold = Hold::new(t + ms(4), until);
        assert!(hold.take_more(t + ms(4) + Duration::from_micros(10), 2048, round(40)));
        assert!(!hold.take_more(t + ms(8), 2048, round(80)));
        // Past the end of the gap (a late wake-up): commit.
        let mut hold = Hold::new(until, until);
        assert!(!hold.take_more(until + ms(1), 2048, round(80)));
        assert_eq!(hold.wait(until + ms(1)), Duration::ZERO);
    }

    #[test]
    fn a_held_round_commits_at_once_when_full_or_capped() {
        let t = Instant::now();
        let fresh = || Hold::new(t, t + GAP);
        assert!(fresh().take_more(t + ms(1), 256, round(255)));
        assert!(!fresh().take_more(t + ms(1), 256, round(256)));
        let capped = Round {
            appended: 10,
            capped: true,
        };
        assert!(!fresh().take_more(t + ms(1), 256, capped));
    }

    #[test]
    fn nothing_appended_is_nothing_to_hold() {
        let t = Instant::now();
        assert_eq!(decide(t, Some(t), GAP, 256, round(0)), Decision::Now);
    }

    #[test]
    fn a_zero_gap_commits_every_round() {
        let t = Instant::now();
        assert_eq!(
            decide(t, Some(t), Duration::ZERO, 256, round(1)),
            Decision::Now
        );
    }

    #[test]
    fn a_clock_behind_the_last_commit_waits_at_most_one_gap() {
        // Instants are monotonic, but a caller may pass a `now` taken before the commit ended.
        let t = Instant::now() + ms(5);
        match decide(t - ms(2), Some(t), GAP, 256, round(1)) {
            Decision::Until(at) => assert_eq!(at, t - ms(2) + GAP),
            Decision::Now => panic!("should wait"),
        }
    }
}
