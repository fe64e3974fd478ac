//! Loss accounting from NFLOG sequence numbers.
//!
//! With NFULNL_CFG_F_SEQ the kernel numbers each group's records 0, 1, 2, ... (NFULA_SEQ) when
//! it *builds* them, before it knows whether the datagram will fit in the socket; a datagram
//! dropped on overrun therefore leaves a gap, and the gap size is the exact number of records
//! lost for that group. NFULA_SEQ_GLOBAL is one counter per network namespace shared by every
//! instance with the SEQ_GLOBAL flag (other processes' groups too), so it locates a loss but
//! only bounds its size; it also survives our restart (per-group numbers restart at 0 on every
//! BIND), which is what [`LossTracker::seed`] compares against.
//!
//! Sequence numbers wrap at 2^32; a number more than 2^31 *behind* the expected one is taken
//! as a reset (the group was rebound), not as a loss of four billion records.

use crate::nflog::loss::{Cause, LossEvent};

#[derive(Clone, Copy, Debug)]
struct GroupState {
    group: u16,
    next_seq: u32,
    last_global: Option<u32>,
    /// Seeded from a previous run on the same socket ([`LossTracker::seed_group`]): records
    /// numbered before `next_seq` were spooled by that run and are replays, until the first
    /// record at or after it arrives.
    replays_possible: bool,
}

/// Tracks NFULA_SEQ per group and NFULA_SEQ_GLOBAL; see the module docs.
#[derive(Clone, Debug, Default)]
pub struct LossTracker {
    groups: Vec<GroupState>,
    last_global: Option<u32>,
    seeded: Option<u32>,
    lost: u64,
    /// Some group was seeded exactly ([`LossTracker::seed_group`]).
    exact: bool,
    /// Index in `groups` of the group observed last: consecutive records are mostly of one
    /// group (a datagram holds one group's), so [`LossTracker::observe`] looks there first.
    hint: usize,
}

/// `a` is after `b` in wrapping order.
fn after(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 1 << 31
}

impl LossTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the last NFULA_SEQ_GLOBAL known to be spooled (by a previous run). The first record
    /// observed afterwards is compared with it (see [`Cause::Restart`]).
    pub fn seed(&mut self, last_seq_global: u32) {
        // Groups continued exactly ([`LossTracker::seed_group`]) need no estimate, whether or not
        // records were observed since.
        if !self.exact {
            self.seeded = Some(last_seq_global);
        }
        self.last_global = Some(last_seq_global);
    }

    /// Continue a group's numbering on a socket a previous run received from (kept in the
    /// service manager's fd store): that run spooled every record of `group` numbered before
    /// `next_seq`. Records before it still queued are replays ([`LossTracker::is_replay`]), a
    /// record after it is an exact [`Cause::SeqGap`] (the buffer overflowed while no process
    /// read). Per-group numbers make the global restart estimate unnecessary, so it is dropped.
    pub fn seed_group(&mut self, group: u16, next_seq: u32) {
        self.seeded = None;
        self.exact = true;
        self.groups.retain(|s| s.group != group);
        self.groups.push(GroupState {
            group,
            next_seq,
            last_global: None,
            replays_possible: true,
        });
    }

    /// True when the record (`group`, `seq`) was spooled already by the run that seeded the
    /// group ([`LossTracker::seed_group`]): the caller skips it.
    #[inline]
    pub fn is_replay(&self, group: u16, seq: Option<u32>) -> bool {
        // Only a seeded group can have replays.
        if !self.exact {
            return false;
        }
        let Some(seq) = seq else { return false };
        self.groups
            .iter()
            .find(|s| s.group == group)
            .is_some_and(|s| s.replays_possible && after(s.next_seq, seq))
    }

    /// Each tracked group with the NFULA_SEQ it expects next: what a run that keeps its socket
    /// in the fd store records for the next one.
    pub fn group_positions(&self) -> impl Iterator<Item = (u16, u32)> + '_ {
        self.groups.iter().map(|s| (s.group, s.next_seq))
    }

    /// The highest NFULA_SEQ_GLOBAL seen (or seeded): what the daemon stores to seed the next run.
    pub fn last_seq_global(&self) -> Option<u32> {
        self.last_global
    }

    /// Records counted lost by sequence gaps so far (SeqGap events only: exact).
    pub fn lost_records(&self) -> u64 {
        self.lost
    }

    /// Account for one record. `seq`/`seq_global` are `None` when the record lacks them (the
    /// flags not yet applied, or a foreign source): such records are not tracked.
    #[inline]
    pub fn observe(
        &mut self,
        group: u16,
        seq: Option<u32>,
        seq_global: Option<u32>,
    ) -> Option<LossEvent> {
        // The common case, once per record: the next number of the group seen last, nothing
        // seeded to compare with. What `observe_any` would do for it, without the search.
        if let (None, Some(seq), Some(st)) = (self.seeded, seq, self.groups.get_mut(self.hint)) {
            if st.group == group && seq == st.next_seq {
                st.replays_possible = false;
                st.next_seq = seq.wrapping_add(1);
                if let Some(g) = seq_global {
                    st.last_global = Some(g);
                    if self.last_global.is_none_or(|l| after(g, l)) {
                        self.last_global = Some(g);
                    }
                }
                return None;
            }
        }
        self.observe_any(group, seq, seq_global)
    }

    fn observe_any(
        &mut self,
        group: u16,
        seq: Option<u32>,
        seq_global: Option<u32>,
    ) -> Option<LossEvent> {
        let mut event = None;
        // Only a numbered record ends the wait for the restart gap: the kernel applies a bind's
        // flags just after the bind, so under a flood the first records can come without
        // numbers, and the gap is still to be measured after them.
        let seed = seq_global.and_then(|g| self.seeded.take().map(|s| (s, g)));
        if let Some((seed, g)) = seed {
            if after(g, seed) && g.wrapping_sub(seed) > 1 {
                event = Some(LossEvent::now(
                    Cause::Restart,
                    None,
                    u64::from(g.wrapping_sub(seed) - 1),
                    Some((seed.wrapping_add(1), g.wrapping_sub(1))),
                ));
            }
        }
        if let Some(g) = seq_global {
            if self.last_global.is_none_or(|l| after(g, l)) {
                self.last_global = Some(g);
            }
        }
        let Some(seq) = seq else {
            return event;
        };
        let st = match self.groups.iter().position(|s| s.group == group) {
            Some(i) => {
                self.hint = i;
                &mut self.groups[i]
            }
            None => {
                self.hint = self.groups.len();
                self.groups.push(GroupState {
                    group,
                    next_seq: seq.wrapping_add(1),
                    last_global: seq_global,
                    replays_possible: false,
                });
                return event;
            }
        };
        st.replays_possible = false;
        let prev_global = st.last_global;
        let expected = st.next_seq;
        st.next_seq = seq.wrapping_add(1);
        st.last_global = seq_global.or(prev_global);
        if seq == expected || !after(seq, expected) {
            // In order, or went backwards: the group was rebound and numbering restarted.
            return event;
        }
        let count = u64::from(seq.wrapping_sub(expected));
        self.lost += count;
        let range = match (prev_global, seq_global) {
            (Some(a), Some(b)) if after(b, a.wrapping_add(1)) => {
                Some((a.wrapping_add(1), b.wrapping_sub(1)))
            }
            _ => None,
        };
        // A restart event and a gap cannot coincide: a gap needs an earlier numbered record of
        // the group, and the seed is consumed by the first numbered record (the kernel applies
        // SEQ and SEQ_GLOBAL together).
        Some(LossEvent::now(Cause::SeqGap, Some(group), count, range))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_records_lose_nothing() {
        let mut t = LossTracker::new();
        for i in 0..10 {
            assert_eq!(t.observe(5, Some(i), Some(100 + i)), None);
        }
        assert_eq!(t.last_seq_global(), Some(109));
        assert_eq!(t.lost_records(), 0);
    }

    #[test]
    fn a_gap_counts_exactly_and_locates_the_global_range() {
        let mut t = LossTracker::new();
        t.observe(5, Some(0), Some(10));
        t.observe(6, Some(0), Some(11));
        let e = t.observe(5, Some(4), Some(20)).expect("gap");
        assert_eq!(
            (e.cause, e.group, e.count, e.seq_global),
            (Cause::SeqGap, Some(5), 3, Some((11, 19)))
        );
        assert_eq!(t.observe(6, Some(1), Some(21)), None);
        assert_eq!(t.lost_records(), 3);
        assert!(e
            .to_string()
            .contains("group 5, 3 records, seq_global 11..=19"));
    }

    #[test]
    fn wraps_and_resets() {
        let mut t = LossTracker::new();
        t.observe(1, Some(u32::MAX - 1), None);
        assert_eq!(t.observe(1, Some(u32::MAX), None), None);
        assert_eq!(t.observe(1, Some(0), None), None);
        let e = t.observe(1, Some(3), None).expect("gap across wrap");
        assert_eq!((e.count, e.seq_global), (2, None));
        // Rebound: numbering restarts at 0, which is not a loss.
        assert_eq!(t.observe(1, Some(0), None), None);
        assert_eq!(t.observe(1, Some(1), None), None);
    }

    #[test]
    fn seeded_restart_gap() {
        let mut t = LossTracker::new();
        t.seed(1000);
        let e = t.observe(5, Some(0), Some(1004)).expect("restart gap");
        assert_eq!(e.cause, Cause::Restart);
        assert_eq!((e.count, e.seq_global), (3, Some((1001, 1003))));
        assert_eq!(t.observe(5, Some(1), Some(1005)), None);

        let mut t = LossTracker::new();
        t.seed(1000);
        assert_eq!(t.observe(5, Some(0), Some(1001)), None);
        // A counter reset (reboot): no event.
        let mut t = LossTracker::new();
        t.seed(1000);
        assert_eq!(t.observe(5, Some(0), Some(1)), None);
    }

    /// A (re)start under a flood: the kernel applies the flags just after it binds the group,
    /// so the first records can come without numbers. They must not use up the seed: the
    /// restart gap is measured at the first numbered record.
    #[test]
    fn unnumbered_records_before_the_first_numbered_one_keep_the_restart_gap() {
        let mut t = LossTracker::new();
        t.seed(1000);
        assert_eq!(t.observe(5, None, None), None);
        assert_eq!(t.observe(5, None, None), None);
        let e = t.observe(5, Some(0), Some(1113)).expect("restart gap");
        assert_eq!(e.cause, Cause::Restart);
        assert_eq!((e.count, e.seq_global), (112, Some((1001, 1112))));
        assert_eq!(t.observe(5, Some(1), Some(1114)), None);
        assert_eq!(t.last_seq_global(), Some(1114));
    }

    #[test]
    fn a_seeded_group_skips_replays_and_counts_an_overflow_exactly() {
        let mut t = LossTracker::new();
        t.seed(500);
        t.seed_group(5, 10);
        assert!(t.is_replay(5, Some(8)));
        assert!(t.is_replay(5, Some(9)));
        assert!(!t.is_replay(5, Some(10)));
        assert!(!t.is_replay(6, Some(1)), "other groups are not seeded");
        assert!(!t.is_replay(5, None));
        // No global restart estimate: the first record continues group 5 exactly.
        assert_eq!(t.observe(5, Some(10), Some(900)), None);
        t.seed(500);
        assert_eq!(
            t.observe(5, Some(11), Some(999)),
            None,
            "not even seeded later"
        );
        assert!(
            !t.is_replay(5, Some(9)),
            "replays end with the first new record"
        );
        let mut t = LossTracker::new();
        t.seed_group(5, u32::MAX);
        assert!(t.is_replay(5, Some(u32::MAX - 1)));
        let e = t.observe(5, Some(3), Some(77)).expect("gap across wrap");
        assert_eq!((e.cause, e.count), (Cause::SeqGap, 4));
        assert_eq!(t.group_positions().collect::<Vec<_>>(), vec![(5, 4)]);
    }

    #[test]
    fn records_without_numbers_are_ignored() {
        let mut t = LossTracker::new();
        assert_eq!(t.observe(5, None, None), None);
        t.observe(5, Some(7), None);
        assert_eq!(t.observe(5, None, None), None);
        assert_eq!(t.observe(5, Some(8), None), None);
    }
}
