//! Rows a database refuses (a site's trigger, CHECK constraint or unique index), and what every
//! engine does about them.
//!
//! Invariants:
//! - A refusal never stops logging: the batch commits without the refused row, and nothing is
//!   retried in a loop. Any error that is not a refusal (connection, permission, disk full,
//!   lock) still fails the batch as a whole, which is retried and never turned into losses.
//! - A refused `packets` row is stored as a `losses` row (`count` 1, reason `refused: MESSAGE`)
//!   in the same transaction.
//! - A refused `losses` row (a loss event, or the loss row standing for a refused packet) has
//!   nowhere else to go in that database: it is left out, the rest of the batch commits, and
//!   fwlog says so on stderr with how many packets it stood for, why they were lost, and the
//!   server's reason. The loss event itself reached every other output (the processing loop
//!   hands each loss to every output); only this database lacks its record.
//! - One stderr line per kind per committed batch, counted since start ([`Counts`], which
//!   `--metrics` shows as `fwlog_output_rows_refused_total` and
//!   `fwlog_output_losses_unrecorded_total`); the server's message is escaped before it is
//!   shown.

use super::row::{escaped, LossRow};

/// What the server refused in one committed batch, in spool order.
#[derive(Debug, Default)]
pub struct Refusals {
    /// `packets` rows refused (spool sequence number, the server's message): each is stored
    /// as a `losses` row instead.
    pub rows: Vec<(u64, String)>,
    /// `losses` rows refused (the row, its reason column, the server's message): not stored.
    pub losses: Vec<(LossRow, String, String)>,
}

/// Refusals since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// `packets` rows refused (stored as losses).
    pub rows: u64,
    /// `losses` rows refused (not stored).
    pub losses: u64,
    /// The packets those `losses` rows stood for.
    pub unrecorded: u64,
}

impl Refusals {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.losses.is_empty()
    }

    /// Count the refusals and say so on stderr (at most two lines); `shown` names the output.
    pub fn report(&self, shown: &str, counts: &mut Counts) {
        if let Some((seq, m)) = self.rows.first() {
            counts.rows += self.rows.len() as u64;
            eprintln!(
                "fwlog: {shown}: the database refused {} row(s) (first: spool record {seq}: {}); stored in losses as refused",
                self.rows.len(),
                escaped(m.as_bytes()),
            );
        }
        if let Some((l, reason, m)) = self.losses.first() {
            let packets: u64 = self.losses.iter().map(|(l, _, _)| l.count).sum();
            counts.losses += self.losses.len() as u64;
            counts.unrecorded += packets;
            eprintln!(
                "fwlog: {shown}: the database refused {} losses row(s) for {packets} lost packet(s) \
                 (first: spool record {}, {} packet(s), {}: {}); not stored there, the batch went on",
                self.losses.len(),
                l.seq,
                l.count,
                escaped(reason.as_bytes()),
                escaped(m.as_bytes()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_and_the_packets_a_refused_loss_stood_for_too() {
        let loss = |seq, count| LossRow {
            seq,
            time: (0, 0),
            nflog_group: Some(5),
            count,
            reason: "seq-gap",
            seq_global: None,
        };
        let r = Refusals {
            rows: vec![(3, "no".into())],
            losses: vec![
                (loss(3, 1), "refused: no".into(), "nope\n".into()),
                (loss(9, 7), "seq-gap".into(), "nope".into()),
            ],
        };
        let mut c = Counts::default();
        r.report("sqlite:x", &mut c);
        assert_eq!(
            c,
            Counts {
                rows: 1,
                losses: 2,
                unrecorded: 8
            }
        );
        assert!(Refusals::default().is_empty());
    }
}
