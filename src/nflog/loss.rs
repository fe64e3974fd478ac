//! The one loss vocabulary: the list of causes ([`Cause`], its byte on disk), a loss as intake
//! notices it and outputs print it ([`LossEvent`]), and how the spool stores it ([`LossRecord`]).
//!
//! The cause byte is on disk, so [`Cause`] values are never renumbered; the same enum names the
//! cause when it prints (`format::LossCause` is this type). Intake turns every loss it sees
//! (NFLOG sequence gaps and restarts, ENOBUFS, cut or malformed datagrams, NFQUEUE id gaps, a
//! full spool) into a [`LossEvent`], says it on stderr (its `Display`), counts it and spools it as
//! a [`LossRecord`]; the processing loop reads the record back into the same [`LossEvent`].

use crate::packet::{TimeSource, Timestamp};

use super::attr::{be32, be64, fwlog, push_attr, push_recv_time, NFGENMSG_LEN, NLA_TYPE_MASK};

/// Why records were lost. The discriminant is the cause byte of a spooled loss record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Cause {
    /// A gap in NFLOG sequence numbers (or NFQUEUE packet ids).
    SeqGap = 0,
    /// The netlink socket overflowed (ENOBUFS): the count is a lower bound or unknown.
    Enobufs = 1,
    /// Records the kernel logged while fwlog was not running (seen as a sequence jump).
    Restart = 2,
    /// The spool was full.
    SpoolFull = 3,
    /// Spool records that failed their checksum, or records that could not be read.
    Corrupt = 4,
}

/// A cause byte that no [`Cause`] has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown loss cause {0}")]
pub struct UnknownCause(pub u8);

impl TryFrom<u8> for Cause {
    type Error = UnknownCause;

    fn try_from(b: u8) -> Result<Cause, UnknownCause> {
        Ok(match b {
            0 => Cause::SeqGap,
            1 => Cause::Enobufs,
            2 => Cause::Restart,
            3 => Cause::SpoolFull,
            4 => Cause::Corrupt,
            _ => return Err(UnknownCause(b)),
        })
    }
}

impl Cause {
    /// The name outputs print.
    pub fn name(self) -> &'static str {
        match self {
            Cause::SeqGap => "seq-gap",
            Cause::Enobufs => "enobufs",
            Cause::SpoolFull => "spool-full",
            Cause::Restart => "restart",
            Cause::Corrupt => "corrupt",
        }
    }
}

/// One loss: what intake reports and every output prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossEvent {
    /// When it was noticed (fwlog's clock).
    pub time: Timestamp,
    /// The NFLOG group or NFQUEUE queue, `None` for socket-wide or spool-wide losses.
    pub group: Option<u16>,
    /// How many records were lost; 0 when unknown (an ENOBUFS episode, a cut datagram).
    pub count: u64,
    /// First and last missing global sequence number, when known.
    pub seq_global: Option<(u32, u32)>,
    /// First and last spool sequence number of records the spool found damaged or missing.
    pub spool_seq: Option<(u64, u64)>,
    pub cause: Cause,
}

impl LossEvent {
    /// A loss noticed now.
    pub fn now(
        cause: Cause,
        group: Option<u16>,
        count: u64,
        seq_global: Option<(u32, u32)>,
    ) -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        LossEvent {
            time: Timestamp {
                sec: d.as_secs() as i64,
                nsec: d.subsec_nanos(),
                source: TimeSource::Local,
            },
            group,
            count,
            seq_global,
            spool_seq: None,
            cause,
        }
    }

    /// How the spool stores it.
    pub fn record(&self) -> LossRecord {
        LossRecord {
            group: self.group,
            cause: self.cause as u8,
            count: (self.count > 0).then_some(self.count),
            seq_global: self.seq_global,
            spool_seq: self.spool_seq,
        }
    }

    /// Encode as a spool record (its time is the receive time).
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.record().encode(self.time.sec, self.time.nsec, out);
    }
}

/// The one-line stderr message.
impl std::fmt::Display for LossEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.cause {
            Cause::SeqGap => "sequence gap",
            Cause::Enobufs => "socket receive buffer overflowed (ENOBUFS)",
            Cause::Restart => "records logged across a restart",
            Cause::SpoolFull => "the spool was full",
            Cause::Corrupt => "datagram truncated or malformed",
        };
        write!(f, "NFLOG loss: {what}")?;
        if let Some(g) = self.group {
            write!(f, ", group {g}")?;
        }
        match self.count {
            0 => {}
            n if self.cause == Cause::Restart => write!(f, ", up to {n} records")?,
            n => write!(f, ", {n} records")?,
        }
        if let Some((a, b)) = self.seq_global {
            write!(f, ", seq_global {a}..={b}")?;
        }
        Ok(())
    }
}

/// A loss report as the spool stores it, so that it reaches the output in order with the
/// packets around it and survives a crash like they do. On disk it is an NFLOG-shaped record
/// with family 0 (AF_UNSPEC, never a packet), the group, fwlog's receive time and a LOSS
/// attribute; pcap export skips it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossRecord {
    pub group: Option<u16>,
    /// Cause code: a [`Cause`] as its byte (kept raw: an unknown byte from a newer fwlog
    /// still decodes, and prints as corrupt).
    pub cause: u8,
    pub count: Option<u64>,
    pub seq_global: Option<(u32, u32)>,
    /// Spool sequence numbers of records found damaged or missing in the spool itself.
    pub spool_seq: Option<(u64, u64)>,
}

impl LossRecord {
    /// Encode as a spool record.
    pub fn encode(&self, sec: i64, nsec: u32, out: &mut Vec<u8>) {
        let g = self.group.unwrap_or(0);
        out.extend_from_slice(&[crate::packet::family::UNSPEC, 0]);
        out.extend_from_slice(&g.to_be_bytes());
        push_recv_time(out, sec, nsec);
        let mut v = [0u8; 36];
        v[..8].copy_from_slice(&self.count.unwrap_or(u64::MAX).to_be_bytes());
        v[8] = self.cause;
        v[9] = u8::from(self.group.is_some())
            | (u8::from(self.seq_global.is_some()) << 1)
            | (u8::from(self.spool_seq.is_some()) << 2);
        let (a, b) = self.seq_global.unwrap_or((0, 0));
        v[12..16].copy_from_slice(&a.to_be_bytes());
        v[16..20].copy_from_slice(&b.to_be_bytes());
        let n = match self.spool_seq {
            Some((a, b)) => {
                v[20..28].copy_from_slice(&a.to_be_bytes());
                v[28..36].copy_from_slice(&b.to_be_bytes());
                36
            }
            None => 20,
        };
        push_attr(out, fwlog::LOSS, &v[..n]);
    }

    /// Decode a spool record that is a loss report; `None` for a packet (or a damaged record,
    /// which then goes through [`super::attr::parse`] and is printed as a marked partial packet).
    ///
    /// Inlined: the processing loop asks this of every record, and only a record of family
    /// UNSPEC (no packet has it) can be a loss report, so the others are told apart by one test.
    #[inline]
    pub fn decode(msg: &[u8]) -> Option<LossRecord> {
        match msg.first() {
            Some(&crate::packet::family::UNSPEC) => Self::decode_unspec(msg),
            _ => None,
        }
    }

    /// [`LossRecord::decode`] for a record of family UNSPEC.
    fn decode_unspec(msg: &[u8]) -> Option<LossRecord> {
        if msg.len() < NFGENMSG_LEN {
            return None;
        }
        let group = u16::from_be_bytes([msg[2], msg[3]]);
        let mut off = NFGENMSG_LEN;
        while off + 4 <= msg.len() {
            let len = u16::from_ne_bytes([msg[off], msg[off + 1]]) as usize;
            let ty = u16::from_ne_bytes([msg[off + 2], msg[off + 3]]) & NLA_TYPE_MASK;
            if len < 4 || off + len > msg.len() {
                return None;
            }
            let v = &msg[off + 4..off + len];
            if ty == fwlog::LOSS && v.len() >= 20 {
                let count = be64(v)?;
                let flags = v[9];
                return Some(LossRecord {
                    group: (flags & 1 != 0).then_some(group),
                    cause: v[8],
                    count: (count != u64::MAX).then_some(count),
                    seq_global: (flags & 2 != 0)
                        .then(|| (be32(&v[12..]).unwrap_or(0), be32(&v[16..]).unwrap_or(0))),
                    spool_seq: (flags & 4 != 0 && v.len() >= 36)
                        .then(|| (be64(&v[20..]).unwrap_or(0), be64(&v[28..]).unwrap_or(0))),
                });
            }
            off += (len + 3) & !3;
        }
        None
    }
}

impl LossRecord {
    /// The cause as a [`Cause`]; a byte no cause has reads as [`Cause::Corrupt`].
    pub fn cause(&self) -> Cause {
        Cause::try_from(self.cause).unwrap_or(Cause::Corrupt)
    }

    /// The event this record reports, received at `time`.
    pub fn event(&self, time: Timestamp) -> LossEvent {
        LossEvent {
            time,
            group: self.group,
            count: self.count.unwrap_or(0),
            seq_global: self.seq_global,
            spool_seq: self.spool_seq,
            cause: self.cause(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cause_bytes_round_trip_and_unknown_is_an_error() {
        for c in [
            Cause::SeqGap,
            Cause::Enobufs,
            Cause::Restart,
            Cause::SpoolFull,
            Cause::Corrupt,
        ] {
            assert_eq!(Cause::try_from(c as u8), Ok(c));
        }
        assert_eq!(Cause::try_from(5), Err(UnknownCause(5)));
        let r = LossRecord {
            group: None,
            cause: 200,
            count: None,
            seq_global: None,
            spool_seq: None,
        };
        assert_eq!(r.cause(), Cause::Corrupt);
    }
}
