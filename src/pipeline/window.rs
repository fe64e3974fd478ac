//! The processing loop's window: records taken from the source and not yet printed, in order,
//! and the spare entries they are recycled into.
//!
//! Invariants:
//! - `bytes` is the record data held by `entries` (what [`super::process::WINDOW_BYTES`]
//!   bounds).
//! - An entry leaves the window only to be printed; its buffers (the record, names, addresses)
//!   then go back to the spare list and are reused for a later record, so at steady state the
//!   loop allocates nothing per record. The spare list keeps at most [`SPARE_BYTES`] of record
//!   buffer capacity (a burst of large records must not pin their buffers for ever).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::time::Instant;

use super::record::Record;
use crate::dns::{Lookup, NameMemo, Resolver, SafeName, Slot};
use crate::format::{NameText, Names};
use crate::geo::GeoInfo;

/// Record buffer capacity kept in spare entries at most.
pub const SPARE_BYTES: usize = 4 << 20;

/// One spooled record between the source and the outputs.
pub struct Entry {
    pub seq: u64,
    /// The record, and its parse and decode once made: on entering the window when its
    /// addresses are looked up (DNS, GeoIP), else when it prints; either way once.
    pub rec: Record,
    pub replayed: bool,
    pub deadline: Instant,
    /// The packet's addresses (when it was parsed on entry to look them up).
    pub addrs: Vec<IpAddr>,
    /// Where the loop's memo keeps the answers for those of them the cache knew when the
    /// packet entered the window: printed as taken from the cache then.
    pub lent: Vec<(IpAddr, Slot)>,
    /// When it entered the window, in the memo's seconds (the answers lent must be valid then).
    pub entered_secs: u32,
    /// Names held by the packet itself: those of addresses it waited for, and any the memo no
    /// longer held when it printed. The others are lent by the memo.
    pub names: Vec<(IpAddr, SafeName)>,
    /// Addresses still being looked up; the record waits for them until its deadline.
    pub waiting: Vec<IpAddr>,
    /// What the GeoIP/ASN databases know about its addresses (`--geoip`, `--asn`).
    pub geo: Vec<(IpAddr, Arc<GeoInfo>)>,
}

impl Entry {
    /// The spool record.
    pub fn record(&self) -> &[u8] {
        self.rec.bytes()
    }

    /// The names the entry holds itself when it prints: those of the addresses it waited
    /// for, and of any the memo no longer holds (emptied when full since the packet entered);
    /// the others the memo lends. Those the memo no longer holds are read from the shared cache
    /// as of `now`: a newer answer if it was refreshed, none if it expired or was evicted.
    ///
    /// Which slots the memo still lends is its generation alone (`NameMemo::holds`): printing
    /// then reads each name through its slot once, instead of here and again there.
    pub fn own_names(&mut self, r: &Resolver, memo: &NameMemo, now: std::time::Instant) {
        let lost = |&(ip, slot): &(IpAddr, Slot)| (!memo.holds(slot)).then_some(ip);
        let lost_lent = self.lent.iter().filter_map(lost);
        for ip in self.waiting.iter().copied().chain(lost_lent) {
            if let Lookup::Hit(Some(n)) = r.peek_at(ip, now) {
                self.names.push((ip, n));
            }
        }
    }

    fn new(deadline: Instant) -> Box<Entry> {
        Box::new(Entry {
            seq: 0,
            rec: Record::default(),
            addrs: Vec::new(),
            lent: Vec::new(),
            entered_secs: 0,
            replayed: false,
            deadline,
            names: Vec::new(),
            waiting: Vec::new(),
            geo: Vec::new(),
        })
    }
}

/// The memo, a packet's slots in it, and when the packet entered the window.
pub type Lent<'a> = (&'a NameMemo, &'a [(IpAddr, Slot)], u32);

/// Names of one packet when it prints: its own, else lent by the loop's memo.
pub struct PacketNames<'a> {
    pub own: &'a [(IpAddr, SafeName)],
    pub memo: Option<Lent<'a>>,
    pub geo: &'a [(IpAddr, Arc<GeoInfo>)],
}

impl<'a> PacketNames<'a> {
    /// The names of `e`, lent by `memo` for its slots when given.
    pub fn of(e: &'a Entry, memo: Option<&'a NameMemo>) -> PacketNames<'a> {
        PacketNames {
            own: &e.names,
            memo: memo.map(|m| (m, &e.lent[..], e.entered_secs)),
            geo: &e.geo,
        }
    }
}

impl PacketNames<'_> {
    fn safe_name(&self, addr: IpAddr) -> Option<&SafeName> {
        if let Some((_, n)) = self.own.iter().find(|(a, _)| *a == addr) {
            return Some(n);
        }
        let (memo, lent, secs) = self.memo?;
        let &(_, slot) = lent.iter().find(|(a, _)| *a == addr)?;
        memo.lend(slot, &addr, secs).flatten()
    }
}

impl Names for PacketNames<'_> {
    fn name(&self, addr: IpAddr) -> Option<&str> {
        self.safe_name(addr).map(SafeName::shown)
    }

    fn name_text(&self, addr: IpAddr) -> Option<NameText<'_>> {
        self.safe_name(addr).map(NameText::Safe)
    }

    fn geo(&self, addr: IpAddr) -> Option<&GeoInfo> {
        self.geo.iter().find(|(a, _)| *a == addr).map(|(_, g)| &**g)
    }
}

/// Entries are boxed: an entry with its parse is several hundred bytes, and moving it into
/// the window, out of it and back to the spares cost more than formatting a number; boxes are
/// recycled like the rest, so this allocates only while the window grows.
#[derive(Default)]
pub struct Window {
    pub entries: VecDeque<Box<Entry>>,
    /// Record data held by `entries`.
    pub bytes: usize,
    // Boxed on purpose: an entry moves between `entries` and here by pointer (see above).
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Entry>>,
    /// Record buffer capacity held by `spare`.
    spare_bytes: usize,
}

impl Window {
    pub fn with_capacity(n: usize) -> Window {
        Window {
            entries: VecDeque::with_capacity(n),
            ..Window::default()
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// An empty entry to fill (a spare one if there is one), with `deadline`.
    pub fn blank(&mut self, deadline: Instant) -> Box<Entry> {
        match self.spare.pop() {
            Some(mut e) => {
                self.spare_bytes -= e.rec.capacity();
                e.deadline = deadline;
                e
            }
            None => Entry::new(deadline),
        }
    }

    /// A blank entry that was not used after all.
    pub fn unused(&mut self, e: Box<Entry>) {
        self.recycle(e);
    }

    /// Add a filled entry at the back.
    pub fn push(&mut self, e: Box<Entry>) {
        self.bytes += e.record().len();
        self.entries.push_back(e);
    }

    /// Take the entry at the front, to print it; give it back with [`Window::recycle`].
    pub fn pop(&mut self) -> Option<Box<Entry>> {
        let e = self.entries.pop_front()?;
        self.bytes -= e.record().len();
        Some(e)
    }

    /// Keep a printed entry's buffers for a later record.
    pub fn recycle(&mut self, mut e: Box<Entry>) {
        e.names.clear();
        e.addrs.clear();
        e.lent.clear();
        e.waiting.clear();
        e.geo.clear();
        let data = e.rec.refill();
        data.clear();
        if self.spare_bytes + data.capacity() > SPARE_BYTES {
            *data = Vec::new();
        }
        self.spare_bytes += data.capacity();
        self.spare.push(e);
    }
}
