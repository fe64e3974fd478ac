//! Packet-id gap tracking.
//!
//! The kernel numbers the packets of one queue instance 1, 2, 3, ... (`id_sequence`, u32,
//! wrapping) when it hands them to the netlink socket, and delivers them in that order. A
//! packet numbered but never read was lost when the socket overflowed, so a jump in the ids
//! counts the loss exactly. The numbering starts over when the queue is bound again (a new
//! fwlog process), so a tracker lives as long as one socket.

/// Remembers the last packet id seen.
#[derive(Debug, Default, Clone)]
pub struct IdTracker {
    last: Option<u32>,
}

impl IdTracker {
    pub fn new() -> Self {
        IdTracker::default()
    }

    /// Account for packet `id`; returns how many ids were skipped before it (0 normally).
    /// An id that goes backwards (never seen from a real kernel) is accepted as the new
    /// position and counts nothing: a wrong guess must not invent losses.
    pub fn observe(&mut self, id: u32) -> u64 {
        let expected = self.last.map_or(1, |l| l.wrapping_add(1));
        self.last = Some(id);
        let gap = id.wrapping_sub(expected);
        if gap < 1 << 31 {
            u64::from(gap)
        } else {
            0
        }
    }

    /// The last id seen.
    pub fn last(&self) -> Option<u32> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_gaps_from_the_first_id() {
        let mut t = IdTracker::new();
        assert_eq!(t.observe(1), 0);
        assert_eq!(t.observe(2), 0);
        assert_eq!(t.observe(10), 7);
        assert_eq!(t.observe(11), 0);
        let mut t = IdTracker::new();
        assert_eq!(t.observe(4), 3, "ids 1..=3 were never read");
    }

    #[test]
    fn wraps_and_never_invents_loss_on_going_back() {
        let mut t = IdTracker::new();
        t.observe(u32::MAX - 1);
        assert_eq!(t.observe(u32::MAX), 0);
        assert_eq!(t.observe(0), 0);
        assert_eq!(t.observe(2), 1);
        assert_eq!(t.observe(1), 0);
        assert_eq!(t.last(), Some(1));
    }
}
