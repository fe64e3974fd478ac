//! A window entry's record: its bytes and, once parsed, the packet and decode made from them,
//! kept in one place that is reused for record after record.
//!
//! Why by hand: the parse borrows the bytes, so the two must live together. Crates that hold a
//! value beside what it borrows (`yoke`, `self_cell`, `ouroboros`) build the borrowing value
//! by returning it from a closure and then move it into their holder; at about 520 bytes a
//! parse, those moves (closure result, holder, the entry's slot) were a tenth of the processing
//! loop's time. Here the parse is written in place, into the same memory each time.
//!
//! Invariants (what makes the one `unsafe` sound):
//! - `parse` borrows nothing but `bytes`' heap buffer, and only while `parsed` is true;
//!   otherwise it is [`Parse::empty`], which borrows nothing.
//! - `bytes` is neither written, reallocated nor dropped while `parsed` is true: every way to
//!   it ([`Record::refill`]) first puts `parse` back to empty; the fields drop in declaration
//!   order, `parse` first. Moving a `Record` moves the `Vec`, not its heap buffer.
//! - A parse is handed out only as `&Parse<'s>` for a borrow `'s` of the record (a safe
//!   coercion, which needs `Parse` covariant: the compiler checks it), never as `&mut`, so
//!   nothing taken from it outlives that borrow or is stored into it.
//! - `Record` is not `Clone`: a copy's parse would borrow the original's buffer.
//! - Code in this module never takes a borrow out of `self.parse` at its stored `'static`
//!   lifetime (say `self.parse.packet.payload`); it reads the parse only through `get`.

use super::loss::EPOCH;
use crate::decode::Decoded;
use crate::nflog::attr::{self, TlvOrder};
use crate::packet::Packet;

/// A record's packet and its decoded headers, both borrowing the record's bytes.
pub struct Parse<'a> {
    pub packet: Packet<'a>,
    pub decoded: Decoded<'a>,
}

impl Parse<'static> {
    /// A parse of nothing, borrowing nothing.
    pub fn empty() -> Parse<'static> {
        Parse {
            packet: Packet::new(&[], EPOCH),
            decoded: Decoded::nothing(),
        }
    }
}

/// See the module docs.
pub struct Record {
    // Declared before `bytes`, so dropped before it.
    parse: Parse<'static>,
    parsed: bool,
    bytes: Vec<u8>,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            parse: Parse::empty(),
            parsed: false,
            bytes: Vec::new(),
        }
    }
}

impl Record {
    /// The spool record.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Capacity of the record buffer (what a spare entry keeps).
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// The buffer, to read the next record into (or to clear or drop): any parse of the
    /// record there now is forgotten first.
    pub fn refill(&mut self) -> &mut Vec<u8> {
        if self.parsed {
            self.parse = Parse::empty();
            self.parsed = false;
        }
        &mut self.bytes
    }

    /// The record parsed and decoded, parsing it now if it was not yet: the one parse and
    /// decode every output is handed.
    pub fn parse(&mut self) -> &Parse<'_> {
        if !self.parsed {
            // Set first: from here `parse` may borrow `bytes`, and `refill` must empty it.
            self.parsed = true;
            // SAFETY: the slice is `bytes`' heap buffer, which stays where it is and unchanged
            // while `parsed` is true (module docs: `refill` empties the parse before handing
            // the buffer out; `parse` drops first). The `'static` never leaves this type:
            // the parse is returned as `&Parse<'_>` tied to this borrow of `self`.
            let bytes: &'static [u8] =
                unsafe { std::slice::from_raw_parts(self.bytes.as_ptr(), self.bytes.len()) };
            attr::parse_into(bytes, TlvOrder::NATIVE, EPOCH, &mut self.parse.packet);
            crate::decode::decode_into(&self.parse.packet, &mut self.parse.decoded);
        }
        &self.parse
    }

    /// Whether the record was parsed since it was read.
    pub fn is_parsed(&self) -> bool {
        self.parsed
    }

    /// Parse the record if it was not yet, and mark its packet as replayed from the spool or
    /// not (a plain flag: setting it stores no borrow).
    pub fn parse_as(&mut self, replayed: bool) {
        self.parse();
        self.parse.packet.replayed = replayed;
    }

    /// The parse [`Record::parse`] made, or a parse of nothing before it was made.
    pub fn get(&self) -> &Parse<'_> {
        &self.parse
    }
}

/// A spool record of a UDP packet (port 50000 to 53) from `src` to `dst`, logged to `group`:
/// for the pipeline's tests.
#[cfg(test)]
pub(crate) fn udp_record(src: std::net::Ipv4Addr, dst: std::net::Ipv4Addr, group: u16) -> Vec<u8> {
    use crate::packet::{family, TimeSource, Timestamp};
    let mut ip = vec![0x45, 0, 0, 28, 0, 1, 0x40, 0, 64, 17, 0, 0];
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(&[0xc3, 0x50, 0, 53, 0, 8, 0, 0]);
    let mut p = Packet::new(
        &ip,
        Timestamp {
            sec: 1_795_507_200,
            nsec: 0,
            source: TimeSource::Kernel,
        },
    );
    p.family = family::INET;
    p.group = group;
    let mut rec = Vec::new();
    attr::encode_packet(&p, &mut rec);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Net;
    use std::net::Ipv4Addr;

    /// A spool record of a UDP packet from 10.0.0.`last` to 10.0.0.1, group 7.
    fn udp(last: u8) -> Vec<u8> {
        udp_record(Ipv4Addr::new(10, 0, 0, last), Ipv4Addr::new(10, 0, 0, 1), 7)
    }

    fn src(r: &Record) -> Option<Ipv4Addr> {
        match &r.get().decoded.net {
            Net::Ipv4(v4) => Some(v4.src),
            _ => None,
        }
    }

    #[test]
    fn a_reused_record_parses_each_new_record_and_forgets_the_old_parse_first() {
        let mut r = Record::default();
        assert!(!r.is_parsed());
        assert_eq!(src(&r), None);
        for last in [2u8, 3, 200] {
            let buf = r.refill();
            assert!(buf.is_empty() || last != 2);
            buf.clear();
            buf.extend_from_slice(&udp(last));
            assert!(!r.is_parsed(), "a refilled record is not parsed");
            assert_eq!(src(&r), None, "nor is any old parse left");
            let p = r.parse();
            assert_eq!(p.packet.group, 7);
            assert_eq!(src(&r), Some(Ipv4Addr::new(10, 0, 0, last)));
            // Parsing again keeps the one parse.
            r.parse();
            assert_eq!(src(&r), Some(Ipv4Addr::new(10, 0, 0, last)));
        }
        // A record whose buffer grew past its old capacity (the heap buffer moved) parses
        // from the new buffer.
        let buf = r.refill();
        buf.clear();
        buf.shrink_to_fit();
        buf.extend_from_slice(&udp(9));
        assert_eq!(
            match &r.parse().decoded.net {
                Net::Ipv4(v4) => Some(v4.src),
                _ => None,
            },
            Some(Ipv4Addr::new(10, 0, 0, 9))
        );
    }

    #[test]
    fn parse_as_parses_once_and_marks_the_packet() {
        let mut r = Record::default();
        r.refill().extend_from_slice(&udp(4));
        r.parse_as(true);
        assert!(r.is_parsed() && r.get().packet.replayed);
        assert_eq!(src(&r), Some(Ipv4Addr::new(10, 0, 0, 4)));
        r.parse_as(false);
        assert!(!r.get().packet.replayed);
        r.refill().clear();
        assert!(!r.is_parsed() && !r.get().packet.replayed);
        assert!(r.bytes().is_empty());
    }

    #[test]
    fn a_record_moved_with_its_entry_keeps_its_parse() {
        let mut r = Record::default();
        r.refill().extend_from_slice(&udp(5));
        r.parse();
        let moved = std::mem::take(&mut r);
        assert_eq!(src(&moved), Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert!(!r.is_parsed());
    }
}
