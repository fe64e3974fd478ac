//! The processing loop's names: every packet prints the name the cache held for its address
//! when it entered the window, whether the loop's memo lends it or the memo was emptied since
//! (more addresses in the window than the memo holds), and every address asked about counts
//! once as a hit.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::unbounded_channel;

use super::*;
use crate::dns::{DnsConfig, SafeName, MEMO_ENTRIES};
use crate::format::LossEvent;
use crate::pipeline::source::{RecordMeta, Source, SourceError};
use crate::sink::{PacketSink, PacketView};

/// Source address of packet `i` (all distinct for the first 2^16).
fn src(i: u32) -> IpAddr {
    Ipv4Addr::new(10, 99, (i >> 8) as u8, i as u8).into()
}

const DST: Ipv4Addr = Ipv4Addr::new(10, 200, 1, 1);

/// A spool record of a UDP packet from `src(i)` to [`DST`].
fn record(i: u32) -> Vec<u8> {
    let src = Ipv4Addr::new(10, 99, (i >> 8) as u8, i as u8);
    crate::pipeline::record::udp_record(src, DST, 5)
}

/// Hands out the queued (sequence number, packet index) pairs as records of those packets.
struct Packets {
    queued: VecDeque<(u64, u32)>,
}

impl Source for Packets {
    fn next(&mut self, buf: &mut Vec<u8>) -> Result<Option<RecordMeta>, SourceError> {
        let Some((seq, i)) = self.queued.pop_front() else {
            return Ok(None);
        };
        *buf = record(i);
        Ok(Some(RecordMeta {
            seq,
            replayed: false,
        }))
    }

    fn ack(&mut self, _seq: u64) -> Result<(), SourceError> {
        Ok(())
    }

    fn finished(&self) -> bool {
        self.queued.is_empty()
    }

    fn pending(&self) -> u64 {
        0
    }
}

/// What each packet printed as the names of its source and destination.
type Printed = Arc<Mutex<Vec<(u64, Option<String>, Option<String>)>>>;

struct NamesSink(Printed, usize);

impl PacketSink for NamesSink {
    fn packet(&mut self, p: &PacketView<'_>) {
        let name = |a: IpAddr| p.names.name(a).map(str::to_owned);
        let (s, d) = match &p.decoded.net {
            crate::decode::Net::Ipv4(v4) => (name(v4.src.into()), name(v4.dst.into())),
            _ => (None, None),
        };
        self.0.lock().unwrap().push((p.seq, s, d));
        self.1 += 1;
    }

    fn loss(&mut self, _ev: &LossEvent, _seq: u64) {}

    fn pending(&self) -> usize {
        self.1
    }

    fn commit(&mut self) -> io::Result<()> {
        self.1 = 0;
        Ok(())
    }

    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        "names".into()
    }
}

fn name_of(i: u32) -> String {
    format!("host-{i}.example")
}

/// Packets `0..n` twice through a loop whose resolver knows a name for every source, none for
/// the destination; `window` records at most ahead of the outputs.
async fn run(n: u32, window: usize) -> (Vec<(u64, Option<String>, Option<String>)>, Resolver) {
    let cfg = DnsConfig {
        // Nothing listens there; every address is in the cache, so nothing is sent.
        servers: vec!["127.0.0.1:9".parse().unwrap()],
        ..DnsConfig::default()
    };
    let resolver = Resolver::new(cfg, tokio::runtime::Handle::current()).unwrap();
    for i in 0..n {
        let label = format!("host-{i}");
        let name = SafeName::from_labels([label.as_bytes(), b"example"]);
        resolver.remember(src(i), Some(name), Duration::from_secs(600));
    }
    resolver.remember(DST.into(), None, Duration::from_secs(600));
    let printed: Printed = Arc::default();
    let seqs = (0..2 * u64::from(n)).map(|s| (s + 1, (s % u64::from(n)) as u32));
    let (_tx, rx) = unbounded_channel();
    let source = Packets {
        queued: seqs.collect(),
    };
    let sinks: Vec<Box<dyn PacketSink>> = vec![Box::new(NamesSink(printed.clone(), 0))];
    let p = super::model::test_processor(source, sinks, Some(resolver.clone()), window, true, rx);
    p.run().await.unwrap();
    let v = std::mem::take(&mut *printed.lock().unwrap());
    (v, resolver)
}

/// Every packet (two per address) printed its source's cached name, in order, and every
/// address asked about counted once as a hit (from the memo or the shared cache), no query.
fn check(printed: &[(u64, Option<String>, Option<String>)], resolver: &Resolver, n: u32) {
    assert_eq!(printed.len(), 2 * n as usize);
    for (k, (seq, s, d)) in printed.iter().enumerate() {
        assert_eq!(*seq, k as u64 + 1, "in order");
        let i = (k as u64 % u64::from(n)) as u32;
        assert_eq!(s.as_deref(), Some(&*name_of(i)), "packet {seq}");
        assert_eq!(d, &None, "the destination has no name");
    }
    let s = resolver.stats();
    assert_eq!(
        (s.hits, s.misses, s.queries),
        (4 * u64::from(n), 0, 0),
        "{s}"
    );
}

#[tokio::test]
async fn names_lent_by_the_memo_are_the_caches_and_every_address_counts_once() {
    let n = 300;
    let (printed, resolver) = run(n, 64).await;
    check(&printed, &resolver, n);
}

#[tokio::test]
async fn more_addresses_in_the_window_than_the_memo_holds_still_print_their_names() {
    // The whole input fits the window, so the memo is emptied while packets whose names it
    // held wait to print: those take their names from the shared cache instead.
    let n = MEMO_ENTRIES as u32 + 500;
    let (printed, resolver) = run(n, 4 * MEMO_ENTRIES).await;
    check(&printed, &resolver, n);
}
