//! The PostgreSQL output streams a batch's rows to the server while the processing loop is
//! still adding to it (a COPY begun before the commit). These tests drive the output as the
//! loop does (packets, loss events, commit) against a real server the test starts, through
//! the paths a streamed batch can take: streamed and committed whole; given up because the
//! loop went quiet, a row needs a partition the connection has not seen or has a value in a
//! column the stream left out, then stored whole
//! at the commit; a replay of rows already stored; loss rows in the same transaction.
//! Judged by the rows in the database: every packet once, none twice.

mod support;

use std::time::Duration;

use fwlog::format::{LossCause, LossEvent, NoNames};
use fwlog::packet::{family, Iface, Packet, TimeSource, Timestamp};
use fwlog::sink::sql::{pg, SqlConfig, StreamId};
use fwlog::sink::{PacketSink, PacketView};
use support::netns::NetNs;
use support::pg::{Pg, PASSWORD};

/// An IPv4/UDP packet, distinct per `i`.
fn payload(i: u32) -> Vec<u8> {
    let s = i.to_be_bytes();
    let mut p = vec![0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 17, 0, 0];
    p.extend_from_slice(&[10, s[1], s[2], s[3], 192, 0, 2, 1]);
    p.extend_from_slice(&[(i >> 8) as u8, i as u8, 0, 80, 0, 12, 0, 0]);
    p.extend_from_slice(b"test");
    p
}

/// Hand packet `seq` to `sink` with time `sec`.
fn packet(sink: &mut dyn PacketSink, seq: u64, sec: i64) {
    packet_via(sink, seq, sec, None)
}

/// [`packet`], with an output interface (a column the other packets leave NULL).
fn packet_via(sink: &mut dyn PacketSink, seq: u64, sec: i64, out: Option<&[u8]>) {
    let b = payload(seq as u32);
    let mut p = Packet::new(
        &b,
        Timestamp {
            sec,
            nsec: 0,
            source: TimeSource::Kernel,
        },
    );
    p.family = family::INET;
    p.group = 5;
    p.prefix = Some(b"DROP ");
    p.seq_global = Some(seq as u32);
    p.indev = Some(Iface {
        index: 2,
        name: Some(b"eth0"),
    });
    p.outdev = out.map(|name| Iface {
        index: 3,
        name: Some(name),
    });
    sink.packet(&PacketView {
        seq,
        record: &b,
        packet: &p,
        decoded: &fwlog::decode::decode(&p),
        names: &NoNames,
    });
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn streamed_batches_paused_crossing_days_replayed_or_with_losses_store_every_row_once() {
    require_root!();
    let ns = NetNs::new("pgstream");
    let pg = Pg::init(&ns, 55457);
    pg.start();
    let url = pg.url(PASSWORD);
    let cfg = SqlConfig {
        host: "fw1".into(),
        stream: StreamId([3; 16]),
        payload: false,
        retain: None,
        sync: true,
    };
    let t = now();
    // The output's worker thread is started on a thread inside the namespace, where the
    // server's loopback address is.
    let mut sink = ns.enter(|| pg::open(&url, &cfg).expect("open"));
    let rows = |pg: &Pg| pg.count("SELECT count(*) FROM packets");
    let distinct = |pg: &Pg| pg.count("SELECT count(DISTINCT (host, stream, seq)) FROM packets");

    // Streamed whole: several chunks handed over before the commit.
    for s in 0..1000 {
        packet(&mut sink, s, t);
    }
    sink.commit().expect("a streamed batch");
    assert_eq!(rows(&pg), 1000);

    // The loop goes quiet mid-batch for longer than the worker keeps a stream open: the
    // stream is given up and the batch stored whole at the commit.
    for s in 1000..1300 {
        packet(&mut sink, s, t);
    }
    std::thread::sleep(Duration::from_millis(1600));
    for s in 1300..1600 {
        packet(&mut sink, s, t);
    }
    sink.commit().expect("a batch whose stream was given up");
    assert_eq!(rows(&pg), 1600);

    // Rows of a day whose partition this connection has not seen, after a chunk of today's.
    let old = t - 10 * 86_400;
    for s in 1600..1900 {
        packet(&mut sink, s, t);
    }
    for s in 1900..2200 {
        packet(&mut sink, s, old);
    }
    sink.commit().expect("a batch reaching an unseen day");
    assert_eq!(rows(&pg), 2200);
    assert_eq!(
        pg.count(&format!(
            "SELECT count(*) FROM packets WHERE time < to_timestamp({})",
            t - 86_400
        )),
        300
    );

    // A row with a value in a column no row had before (the stream's COPY leaves out the
    // columns no row has used): the stream is given up and the batch stored whole.
    for s in 2200..2500 {
        packet(&mut sink, s, t);
    }
    for s in 2500..2800 {
        packet_via(&mut sink, s, t, Some(b"wan0"));
    }
    sink.commit().expect("a batch with a new column");
    assert_eq!(rows(&pg), 2800);
    assert_eq!(
        pg.count("SELECT count(*) FROM packets WHERE out_if = 'wan0'"),
        300
    );
    // ... and streamed again with that column from then on.
    for s in 2800..3400 {
        packet_via(&mut sink, s, t, (s % 2 == 0).then_some(&b"wan0"[..]));
    }
    sink.commit().expect("a streamed batch with the new column");
    assert_eq!(
        pg.count("SELECT count(*) FROM packets WHERE out_if = 'wan0'"),
        600
    );

    // A replay: rows already stored, streamed again with new ones after them.
    for s in 0..600 {
        packet(&mut sink, s, t);
    }
    for s in 3400..3700 {
        packet(&mut sink, s, t);
    }
    sink.commit().expect("a replayed batch");
    assert_eq!(rows(&pg), 3700);

    // Loss events in a streamed batch go in with its rows.
    for s in 3700..4000 {
        packet(&mut sink, s, t);
    }
    let ev = LossEvent {
        time: Timestamp {
            sec: t,
            nsec: 0,
            source: TimeSource::Local,
        },
        group: Some(5),
        count: 7,
        seq_global: None,
        spool_seq: None,
        cause: LossCause::SeqGap,
    };
    sink.loss(&ev, 4000);
    for s in 4001..4300 {
        packet(&mut sink, s, t);
    }
    sink.commit().expect("a batch with a loss event");
    assert_eq!(rows(&pg), 4299);
    assert_eq!(pg.count("SELECT coalesce(sum(count), 0) FROM losses"), 7);
    assert_eq!(distinct(&pg), rows(&pg), "no row twice");
    assert_eq!(sink.pending(), 0);
}
