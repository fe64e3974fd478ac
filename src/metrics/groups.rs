//! Packets printed and lost per NFLOG group, for `--metrics`.
//!
//! The daemon's own counters are totals; an operator with several groups (one per chain or
//! per policy) wants to know which one is busy or losing. This is an extra output
//! ([`PacketSink`]) that the processing loop hands every packet and loss report like any other:
//! it counts them locally and publishes the counts when its batch is committed, so the shared
//! map is locked once per batch, not per packet, and a scrape sees only committed batches.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use crate::format::LossEvent;
use crate::sink::{PacketSink, PacketView};

/// Per group: packets printed, and records lost by reason.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct GroupCounts {
    pub printed: u64,
    /// (reason, count): the loss reports' causes (`seq-gap`, `restart`, ...).
    pub lost: BTreeMap<&'static str, u64>,
}

/// What a scrape reads: group (None for loss reports that name no group) -> counts.
pub type GroupTable = Arc<Mutex<BTreeMap<Option<u16>, GroupCounts>>>;

pub struct GroupSink {
    table: GroupTable,
    local: BTreeMap<Option<u16>, GroupCounts>,
    /// Packets and loss reports counted since the last publish.
    unpublished: usize,
}

impl GroupSink {
    pub fn new(table: GroupTable) -> GroupSink {
        GroupSink {
            table,
            local: BTreeMap::new(),
            unpublished: 0,
        }
    }
}

impl PacketSink for GroupSink {
    fn packet(&mut self, p: &PacketView<'_>) {
        self.local.entry(Some(p.packet.group)).or_default().printed += 1;
        self.unpublished += 1;
    }

    fn loss(&mut self, ev: &LossEvent, _seq: u64) {
        *self
            .local
            .entry(ev.group)
            .or_default()
            .lost
            .entry(ev.cause.name())
            .or_default() += ev.count;
        self.unpublished += 1;
    }

    fn pending(&self) -> usize {
        self.unpublished
    }

    fn commit(&mut self) -> io::Result<()> {
        // A poisoned lock means a scrape panicked mid-read; the counts are still whole.
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        for (g, c) in std::mem::take(&mut self.local) {
            let e = t.entry(g).or_default();
            e.printed += c.printed;
            for (r, n) in c.lost {
                *e.lost.entry(r).or_default() += n;
            }
        }
        self.unpublished = 0;
        Ok(())
    }

    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        "metrics".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{LossCause, NoNames};
    use crate::packet::{Packet, TimeSource, Timestamp};

    #[test]
    fn counts_are_published_per_commit() {
        let table = GroupTable::default();
        let mut s = GroupSink::new(table.clone());
        let t = Timestamp {
            sec: 1,
            nsec: 0,
            source: TimeSource::Kernel,
        };
        for g in [5, 5, 6] {
            let mut p = Packet::new(&[], t);
            p.group = g;
            s.packet(&PacketView {
                seq: 1,
                record: &[],
                packet: &p,
                decoded: &crate::decode::decode(&p),
                names: &NoNames,
            });
        }
        s.loss(
            &LossEvent {
                time: t,
                group: Some(6),
                count: 4,
                seq_global: None,
                spool_seq: None,
                cause: LossCause::SeqGap,
            },
            2,
        );
        assert!(
            table.lock().unwrap().is_empty(),
            "nothing before the commit"
        );
        assert_eq!(s.pending(), 4);
        s.commit().unwrap();
        let t = table.lock().unwrap();
        assert_eq!(t[&Some(5)].printed, 2);
        assert_eq!(t[&Some(6)].printed, 1);
        assert_eq!(t[&Some(6)].lost["seq-gap"], 4);
    }
}
