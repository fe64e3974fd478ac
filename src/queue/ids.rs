//! Packet-id gap tracking.
//!
//! The kernel numbers the packets of one queue instance 1, 2, 3, ... (`id_sequence`, u32,
//! wrapping) when it hands them to the netlink socket, and delivers them in that order. A
//! packet numbered but never read was lost when the socket overflowed, so a jump in the ids
//! counts the loss exactly. The numbering starts over when the queue is bound again (a new
//! fwlog process), so a tracker lives as long as one socket.
//!
//! A gap shows only when a later packet arrives; to see loss at the end of a burst, intake
//! also reads the kernel's counter (`id_sequence` in /proc) when the queue is idle, drains the
//! socket, and calls [`IdTracker::settle`]: every packet numbered up to that reading was in
//! the socket before the drain (the kernel numbers and delivers under one lock), so ids still
//! unseen were lost.

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

    /// The kernel has numbered packets up to `issued` (its `id_sequence`), and the socket was
    /// drained after reading that: ids in between were never delivered. Returns how many, and
    /// moves past them so that they are not counted again by [`observe`](Self::observe).
    pub fn settle(&mut self, issued: u32) -> u64 {
        let last = self.last.unwrap_or(0);
        let gap = issued.wrapping_sub(last);
        if gap == 0 || gap >= 1 << 31 {
            return 0;
        }
        self.last = Some(issued);
        u64::from(gap)
    }
}

/// The kernel's `id_sequence` of queue `queue` (the last packet id it handed out), read from
/// /proc/thread-self/net/netfilter/nfnetlink_queue in the calling thread's network namespace.
/// Line format (kernel `seq_show`): queue, portid, queue_total, copy_mode, copy_range,
/// queue_dropped, queue_user_dropped, id_sequence, 1.
pub fn issued_ids(queue: u16) -> Option<u32> {
    let text = std::fs::read_to_string("/proc/thread-self/net/netfilter/nfnetlink_queue").ok()?;
    parse_issued(&text, queue)
}

fn parse_issued(text: &str, queue: u16) -> Option<u32> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 8 && f[0].parse::<u16>().ok()? == queue)
            .then(|| f[7].parse().ok())
            .flatten()
    })
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
    fn settle_counts_ids_never_delivered_once() {
        let mut t = IdTracker::new();
        assert_eq!(t.settle(0), 0);
        assert_eq!(t.settle(3), 3, "ids 1..=3 issued, none read");
        assert_eq!(t.observe(4), 0);
        assert_eq!(t.settle(4), 0);
        assert_eq!(t.settle(9), 5);
        assert_eq!(t.observe(10), 0, "not counted twice");
        assert_eq!(t.settle(2), 0, "an older reading never invents loss");
    }

    #[test]
    fn proc_lines_parse() {
        let text = "    3  12345     0 2 65535     0     0       17  1\n    9  99     4 2 128     1     2   4000000000  1\n";
        assert_eq!(parse_issued(text, 3), Some(17));
        assert_eq!(parse_issued(text, 9), Some(4_000_000_000));
        assert_eq!(parse_issued(text, 4), None);
        assert_eq!(parse_issued("garbage\n", 3), None);
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
