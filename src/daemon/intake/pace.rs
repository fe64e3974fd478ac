//! When NFLOG intake commits a round's records with the default `--batch-delay auto`: at once
//! on an idle link, and at most about once per gap under sustained traffic.
//!
//! Why: every spool commit costs a write and an `fdatasync`, and downstream the processing
//! loop's output write with its own syncs (one output write per commit once the loop has caught
//! up). With the kernel sending a datagram at each timer tick (`--flush-timeout 0`), committing
//! every round meant one commit per tick at moderate rates (190 a second at 10k packets/s),
//! for batches of a few dozen records. A fixed group-commit delay would also delay the first
//! packet after a quiet spell, which is the one a person tailing the log waits for.
//!
//! Rule ([`decide`], a pure function of times and counts):
//! - nothing appended, a round cut short by its caps (the kernel's queue is still full), or
//!   `--batch-records` reached: commit now (a large batch gains nothing by waiting, and a full
//!   queue must be drained);
//! - the previous commit started at least one gap ago (or there was none): commit now, so an
//!   idle link's first packet is not held back;
//! - otherwise wait for the kernel's next datagram, at most until one gap after the previous
//!   commit started, take it (and whatever else is queued by then) and commit it all together.
//!
//! Measured from start to start, a slow `fdatasync` is part of the gap rather than added to
//! it: on a disk whose syncs take longer than the gap, every round commits at once.
//!
//! With `--flush-timeout 0` the kernel sends each group's datagram at a timer tick, so under
//! sustained traffic at HZ=250 a round is one tick's datagrams, 4 ms apart: a held round
//! waits for the next tick's and one commit takes both, up to halving the commits, and the held
//! records wait one tick (4 ms) longer, the others not at all. The commit is made when the
//! second datagram arrives, not at a fixed time: a sleep to the end of the gap would race the
//! tick at its end, and that tick's records would wait a whole gap more. The gap, 8 ms (two
//! ticks at HZ=250), bounds the wait when no datagram follows (traffic stopped).
//!
//! Invariants: a record waits at most one gap longer than it would with a commit every round;
//! at most two rounds go into one commit; the wait is `ppoll` on the socket, whose timeout runs
//! on a high-resolution timer, not the socket's receive timeout
//! (which the kernel rounds up to whole jiffies); the gap is far below what the socket's
//! buffer holds at full rate, so nothing is dropped for it.

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
