//! Live NFLOG capture against the real kernel, each test in a namespace of its own: nft rules
//! log to NFLOG groups, a thread inside the namespace sends UDP, an `NflogSocket` opened inside
//! the namespace receives, and every spool record is parsed back with the project's parser.

mod support;

use fwlog::capture::{CaptureError, NflogConfig, NflogSocket, RecordBatch};
use fwlog::nflog::attr::{parse, TlvOrder};
use fwlog::nflog::loss::{Cause as LossCause, LossEvent};
use fwlog::packet::{hook, Packet, TimeSource, Timestamp};
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use support::netns::NetNs;

const FALLBACK: Timestamp = Timestamp {
    sec: 0,
    nsec: 0,
    source: TimeSource::Capture,
};

fn payload(i: usize) -> Vec<u8> {
    format!("fwlog-capture-test packet {i:06}").into_bytes()
}

fn open_in(ns: &NetNs, cfg: &NflogConfig) -> NflogSocket {
    ns.enter(|| NflogSocket::open(cfg))
        .unwrap_or_else(|e| panic!("open NFLOG socket: {e}"))
}

/// Receive until `want` records arrived (or nothing came for 1 s, or 10 s passed), then
/// briefly more to catch duplicates. Returns owned records (the batch is reused) and every loss event.
fn receive(sock: &mut NflogSocket, want: usize) -> (Vec<Vec<u8>>, Vec<LossEvent>) {
    let mut batch = RecordBatch::new();
    let mut recs = Vec::new();
    let mut loss = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut quiet_until = None;
    let mut last_progress = Instant::now();
    loop {
        let n = sock
            .recv_batch(&mut batch, Duration::from_millis(50))
            .expect("recv_batch");
        recs.extend(batch.iter().map(<[u8]>::to_vec));
        loss.extend(batch.loss_events().iter().map(|(_, e)| *e));
        let now = Instant::now();
        if n > 0 {
            last_progress = now;
        }
        if recs.len() >= want && quiet_until.is_none() {
            quiet_until = Some(now + Duration::from_millis(200));
        }
        // Fewer than `want` (records were lost): give up once nothing came for a second.
        let idle = now.duration_since(last_progress) > Duration::from_secs(1);
        if quiet_until.is_some_and(|q| now >= q) || idle || now >= deadline {
            return (recs, loss);
        }
    }
}

fn parsed(rec: &[u8]) -> Packet<'_> {
    let p = parse(rec, TlvOrder::NATIVE, FALLBACK);
    assert_eq!(p.damage, None, "record parses cleanly");
    p
}

fn udp_data<'a>(p: &Packet<'a>) -> &'a [u8] {
    // IPv4 without options (20) + UDP (8).
    &p.payload[28..]
}

#[test]
fn every_packet_once_in_order_with_metadata_and_names() {
    require_root!();
    let ns = NetNs::new("capone");
    ns.output_rules(&["udp dport 9999 meta mark set 0x2a log prefix \"CAP5 \" group 5"]);
    let mut sock = open_in(
        &ns,
        &NflogConfig {
            groups: vec![5],
            ..Default::default()
        },
    );
    assert!(sock.warnings().is_empty(), "{:?}", sock.warnings());
    const N: usize = 500;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    ns.enter(|| {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        for i in 0..N {
            s.send_to(&payload(i), "127.0.0.1:9999").expect("send");
        }
    });
    let (recs, loss) = receive(&mut sock, N);
    assert!(loss.is_empty(), "{loss:?}");
    assert_eq!(recs.len(), N, "every packet exactly once");
    for (i, rec) in recs.iter().enumerate() {
        let p = parsed(rec);
        assert_eq!(p.group, 5);
        assert_eq!(p.family, 2);
        assert_eq!(p.prefix, Some(&b"CAP5 "[..]));
        assert_eq!(p.hook, Some(hook::LOCAL_OUT));
        assert_eq!(p.mark, 0x2a);
        assert_eq!(p.seq, Some(i as u32), "per-group sequence is consecutive");
        let out = p.outdev.expect("outdev");
        assert_eq!((out.index, out.name), (1, Some(&b"lo"[..])));
        assert_eq!(p.indev, None);
        assert_eq!(udp_data(&p), &payload(i)[..], "payload of packet {i}");
        assert_eq!(p.payload.len(), 28 + payload(i).len());
        // Locally generated: no kernel timestamp, so fwlog's receive time is used.
        assert_eq!(p.timestamp.source, TimeSource::Local);
        assert!(p.timestamp.sec >= before && p.timestamp.sec <= before + 60);
    }
    let st = sock.stats();
    assert_eq!(st.records, N as u64);
    assert_eq!(sock.tracker().lost_records(), 0);
}

#[test]
fn several_groups_on_one_socket() {
    require_root!();
    let ns = NetNs::new("capgroups");
    ns.output_rules(&[
        "udp dport 9999 log prefix \"G5 \" group 5",
        "udp dport 9999 log prefix \"G6 \" group 6",
        "udp dport 9999 ip6 daddr ::1 log prefix \"G7 \" group 7",
    ]);
    let mut sock = open_in(
        &ns,
        &NflogConfig {
            groups: vec![5, 6, 7],
            ..Default::default()
        },
    );
    assert_eq!(sock.groups(), &[5, 6, 7]);
    const N: usize = 300;
    ns.enter(|| {
        let s4 = UdpSocket::bind("127.0.0.1:0").expect("bind v4");
        let s6 = UdpSocket::bind("[::1]:0").expect("bind v6");
        for i in 0..N {
            if i % 3 == 0 {
                s6.send_to(&payload(i), "[::1]:9999").expect("send v6");
            } else {
                s4.send_to(&payload(i), "127.0.0.1:9999").expect("send v4");
            }
        }
    });
    let v6 = N.div_ceil(3);
    let (recs, loss) = receive(&mut sock, 2 * N + v6);
    assert!(loss.is_empty(), "{loss:?}");
    assert_eq!(recs.len(), 2 * N + v6);
    let mut globals = Vec::new();
    for (group, prefix, expect) in [
        (5u16, &b"G5 "[..], (0..N).collect::<Vec<_>>()),
        (6, b"G6 ", (0..N).collect()),
        (7, b"G7 ", (0..N).step_by(3).collect()),
    ] {
        let ps: Vec<Packet> = recs
            .iter()
            .map(|r| parsed(r))
            .filter(|p| p.group == group)
            .collect();
        assert_eq!(ps.len(), expect.len(), "group {group}");
        for (k, (p, &i)) in ps.iter().zip(&expect).enumerate() {
            assert_eq!(p.prefix, Some(prefix));
            assert_eq!(p.seq, Some(k as u32), "group {group} seq");
            let (fam, hdr) = if i % 3 == 0 { (10, 48) } else { (2, 28) };
            assert_eq!(p.family, fam);
            assert_eq!(
                &p.payload[hdr..],
                &payload(i)[..],
                "group {group} packet {i}"
            );
            globals.push(p.seq_global.expect("seq_global"));
        }
    }
    // This namespace's global counter is ours alone: the records use a contiguous range once.
    globals.sort_unstable();
    let first = globals[0];
    assert_eq!(
        globals,
        (first..first + globals.len() as u32).collect::<Vec<_>>()
    );
    assert_eq!(sock.tracker().last_seq_global(), globals.last().copied());
}

#[test]
fn packet_over_veth_carries_indev_name_and_link_header() {
    require_root!();
    let ns = NetNs::new("capveth");
    let (peer, dev) = ns.veth(1);
    ns.nft(&format!(
        "table inet t {{\n chain i {{\n  type filter hook input priority 0;\n  \
         iifname \"{dev}\" udp dport 9999 log prefix \"IN \" group 3\n }}\n}}\n"
    ));
    let mut sock = open_in(
        &ns,
        &NflogConfig {
            groups: vec![3],
            ..Default::default()
        },
    );
    let link = String::from_utf8(ns.ip(&["-o", "link", "show", &dev]).stdout).unwrap();
    let index: u32 = link.split(':').next().unwrap().trim().parse().unwrap();
    let peer_link = String::from_utf8(peer.ip(&["-o", "link", "show", "vp1"]).stdout).unwrap();
    let peer_mac = peer_link
        .split("link/ether ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("peer mac")
        .to_string();
    const N: usize = 20;
    peer.enter(|| {
        let s = UdpSocket::bind("10.200.1.2:0").expect("bind");
        for i in 0..N {
            s.send_to(&payload(i), "10.200.1.1:9999").expect("send");
        }
    });
    let (recs, loss) = receive(&mut sock, N);
    assert!(loss.is_empty(), "{loss:?}");
    assert_eq!(recs.len(), N);
    for (i, rec) in recs.iter().enumerate() {
        let p = parsed(rec);
        assert_eq!(p.hook, Some(hook::LOCAL_IN));
        let indev = p.indev.expect("indev");
        assert_eq!((indev.index, indev.name), (index, Some(dev.as_bytes())));
        assert_eq!(p.outdev, None);
        assert_eq!(p.hwtype, Some(1), "ethernet");
        let hw = p.hwheader.expect("hwheader");
        assert_eq!(hw.len(), 14);
        assert_eq!(&hw[12..14], &[0x08, 0x00], "ethertype IPv4");
        let mac: Vec<String> = p
            .hwaddr
            .expect("hwaddr")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(mac.join(":"), peer_mac);
        assert_eq!(p.timestamp.source, TimeSource::Kernel);
        assert_eq!(udp_data(&p), &payload(i)[..]);
    }
}

#[test]
fn receive_returns_on_timeout_so_a_stop_flag_is_seen() {
    require_root!();
    let ns = NetNs::new("capidle");
    let mut sock = open_in(
        &ns,
        &NflogConfig {
            groups: vec![1],
            ..Default::default()
        },
    );
    let mut batch = RecordBatch::new();
    let t = Instant::now();
    assert_eq!(
        sock.recv_batch(&mut batch, Duration::ZERO).expect("recv"),
        0
    );
    assert_eq!(
        sock.recv_batch(&mut batch, Duration::from_millis(100))
            .expect("recv"),
        0
    );
    let waited = t.elapsed();
    // It waited (not a busy return) and came back (not blocked forever); bounds are loose.
    assert!(waited >= Duration::from_millis(90), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert!(batch.is_empty() && batch.loss_events().is_empty());
}

#[test]
fn copy_range_cuts_the_payload() {
    require_root!();
    let ns = NetNs::new("caprange");
    ns.output_rules(&["udp dport 9999 log group 4"]);
    let mut sock = open_in(
        &ns,
        &NflogConfig {
            groups: vec![4],
            copy_range: 24,
            ..Default::default()
        },
    );
    ns.enter(|| {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.send_to(&[7u8; 200], "127.0.0.1:9999").expect("send");
    });
    let (recs, _) = receive(&mut sock, 1);
    assert_eq!(recs.len(), 1);
    let p = parsed(&recs[0]);
    assert_eq!(p.payload.len(), 24);
    // The IP header still tells the real length.
    assert_eq!(u16::from_be_bytes([p.payload[2], p.payload[3]]), 228);
}

#[test]
fn largest_loopback_packets_arrive_whole_up_to_the_kernel_cap() {
    require_root!();
    let ns = NetNs::new("capbig");
    ns.output_rules(&["udp dport 9999 log group 4"]);
    let mut sock = open_in(
        &ns,
        &NflogConfig {
            groups: vec![4],
            ..Default::default()
        },
    );
    // lo's MTU is 64 KiB, so these are single IP packets of up to 65535 bytes.
    let sizes = [60_000usize, 65_000, 65_507, 1, 65_507, 30_000];
    ns.enter(|| {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        for (i, &n) in sizes.iter().enumerate() {
            s.send_to(&vec![i as u8; n], "127.0.0.1:9999")
                .expect("send");
        }
    });
    let (recs, loss) = receive(&mut sock, sizes.len());
    assert!(loss.is_empty(), "{loss:?}");
    assert_eq!(recs.len(), sizes.len());
    for (i, (rec, &n)) in recs.iter().zip(&sizes).enumerate() {
        let p = parsed(rec);
        // The kernel caps the copy so the payload attribute's 16-bit length cannot overflow.
        let want = (28 + n).min(0xffff - 4);
        assert_eq!(p.payload.len(), want, "packet {i}");
        assert!(p.payload[28..].iter().all(|&b| b == i as u8));
        assert_eq!(p.outdev.and_then(|d| d.name), Some(&b"lo"[..]));
    }
}

#[test]
fn group_bound_elsewhere_gives_a_clear_error_and_drop_unbinds() {
    require_root!();
    let ns = NetNs::new("capbusy");
    let cfg = NflogConfig {
        groups: vec![9],
        ..Default::default()
    };
    let first = open_in(&ns, &cfg);
    let err = ns
        .enter(|| NflogSocket::open(&cfg))
        .expect_err("second bind must fail");
    assert!(
        matches!(err, CaptureError::GroupBusy { group: 9 }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("group 9 is already bound by another process"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    // Several groups where only the second is taken: the first is released again.
    let err = ns
        .enter(|| {
            NflogSocket::open(&NflogConfig {
                groups: vec![8, 9],
                ..Default::default()
            })
        })
        .expect_err("group 9 is taken");
    assert!(matches!(err, CaptureError::GroupBusy { group: 9 }));
    drop(first);
    let again = ns.enter(|| {
        NflogSocket::open(&NflogConfig {
            groups: vec![8, 9],
            ..Default::default()
        })
    });
    assert!(again.is_ok(), "groups free after drop: {:?}", again.err());
}

#[test]
fn drop_unbinds_even_while_another_fd_keeps_the_socket_alive() {
    require_root!();
    let ns = NetNs::new("capunbind");
    let cfg = NflogConfig {
        groups: vec![11],
        ..Default::default()
    };
    let sock = open_in(&ns, &cfg);
    // A second descriptor (a forked child, say) keeps the socket, and so its binding, alive;
    // only the explicit UNBIND in Drop frees the group.
    // SAFETY: dup of a descriptor we own; closed below.
    let dup = unsafe { libc::dup(std::os::fd::AsRawFd::as_raw_fd(&sock)) };
    assert!(dup >= 0);
    drop(sock);
    let again = ns.enter(|| NflogSocket::open(&cfg));
    // SAFETY: closing the descriptor dup'ed above.
    unsafe { libc::close(dup) };
    assert!(again.is_ok(), "group freed by Drop: {:?}", again.err());
}

#[test]
fn records_arriving_while_later_groups_are_bound_are_kept() {
    require_root!();
    let ns = NetNs::new("capopen");
    ns.output_rules(&["udp dport 9999 log group 12"]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut opened = Vec::new();
    std::thread::scope(|s| {
        // Traffic flows for group 12 while the socket binds 12, then 13..=20, so records of
        // group 12 reach the socket while open() is still waiting for acknowledgements.
        s.spawn(|| {
            ns.enter(|| {
                let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
                let t = Instant::now();
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && t.elapsed() < Duration::from_secs(5)
                {
                    tx.send_to(b"during open", "127.0.0.1:9999").expect("send");
                }
            })
        });
        std::thread::sleep(Duration::from_millis(20));
        for _ in 0..5 {
            let sock = open_in(
                &ns,
                &NflogConfig {
                    groups: (12..=20).collect(),
                    // One record per datagram: delivered at once, not after the flush timeout.
                    qthresh: 1,
                    ..Default::default()
                },
            );
            opened.push(sock);
            opened.pop(); // drop: unbind, so the next round can bind again
        }
        let sock = open_in(
            &ns,
            &NflogConfig {
                groups: (12..=20).collect(),
                qthresh: 1,
                ..Default::default()
            },
        );
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        opened.push(sock);
    });
    let mut sock = opened.pop().expect("socket");
    let (recs, loss) = receive(&mut sock, usize::MAX);
    assert!(loss.is_empty(), "{loss:?}");
    assert!(!recs.is_empty());
    // The kernel creates a group's instance at BIND and applies the message's settings after
    // it, so a packet logged on another CPU in between comes without NFULA_SEQ (and takes no
    // number). Only such records may come before the numbered ones.
    let seqs: Vec<Option<u32>> = recs.iter().map(|r| parsed(r).seq).collect();
    let unnumbered = seqs.iter().take_while(|s| s.is_none()).count();
    let numbered: Vec<u32> = seqs[unnumbered..].iter().map(|s| s.expect("seq")).collect();
    assert!(!numbered.is_empty());
    assert_eq!(numbered, (0..numbered.len() as u32).collect::<Vec<_>>());
}

/// A run that follows another opens with the last `seq_global` it spooled. Records of the first
/// group can arrive while later groups are still being bound, and they are judged against that
/// number too: the restart's loss report comes before the first numbered record, and covers
/// exactly the numbers before it.
#[test]
fn the_restart_seed_is_in_place_before_records_arrive_during_the_binds() {
    require_root!();
    let ns = NetNs::new("capseed");
    ns.output_rules(&["udp dport 9999 log group 12"]);
    let cfg = NflogConfig {
        groups: (12..=20).collect(),
        // One record per datagram: delivered at once, not after the flush timeout.
        qthresh: 1,
        ..Default::default()
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut opened = None;
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter(|| {
                let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    tx.send_to(b"during open", "127.0.0.1:9999").expect("send");
                }
            })
        });
        // A first run numbers some records, so the counter is well past the seed of 0.
        drop(open_in(&ns, &cfg));
        // Until numbered records arrive during the binds (the tracker then knows group 12).
        for _ in 0..50 {
            let sock = ns
                .enter(|| NflogSocket::open_seeded(&cfg, Some(0)))
                .unwrap_or_else(|e| panic!("open NFLOG socket: {e}"));
            if sock.tracker().group_positions().next().is_some() {
                opened = Some(sock);
                break;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let mut sock = opened.expect("no record arrived while the groups were bound, in 50 opens");
    let mut batch = RecordBatch::new();
    while batch.is_empty() {
        sock.recv_batch(&mut batch, Duration::from_millis(500))
            .expect("recv_batch");
    }
    let (first, g) = batch
        .iter()
        .enumerate()
        .find_map(|(i, r)| parsed(r).seq_global.map(|g| (i, g)))
        .expect("a numbered record");
    let &(at, ev) = batch.loss_events().first().expect("a restart report");
    assert_eq!(ev.cause, LossCause::Restart, "{ev}");
    assert!(
        at <= first,
        "the report comes before the first numbered record"
    );
    assert_eq!(ev.seq_global, Some((1, g - 1)), "{ev}");
}

#[test]
fn without_cap_net_admin_the_error_names_the_capability() {
    require_root!();
    let ns = NetNs::new("capnocap");
    let err = ns.enter(|| {
        // Drop CAP_NET_ADMIN from this thread's effective set only (capabilities are per thread).
        #[repr(C)]
        struct Hdr {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let mut hdr = Hdr {
            version: 0x2008_0522,
            pid: 0,
        };
        let mut d = [Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        // SAFETY: capget/capset with a v3 header and two data structs, as the ABI requires.
        unsafe {
            assert_eq!(libc::syscall(libc::SYS_capget, &mut hdr, d.as_mut_ptr()), 0);
            d[0].effective &= !(1 << 12);
            assert_eq!(libc::syscall(libc::SYS_capset, &mut hdr, d.as_ptr()), 0);
        }
        NflogSocket::open(&NflogConfig {
            groups: vec![5],
            ..Default::default()
        })
        .expect_err("no CAP_NET_ADMIN")
    });
    assert!(matches!(err, CaptureError::NoPermission { .. }), "{err:?}");
    assert!(err.to_string().contains("CAP_NET_ADMIN"), "{err}");
}

#[test]
fn overrun_reports_enobufs_and_seq_gaps_count_the_loss_exactly() {
    require_root!();
    let ns = NetNs::new("caploss");
    ns.output_rules(&["udp dport 9999 log group 2"]);
    let mut sock = open_in(
        &ns,
        &NflogConfig {
            groups: vec![2],
            rcvbuf: 32 * 1024,
            nlbufsiz: 8192,
            qthresh: 16,
            ..Default::default()
        },
    );
    // Nobody reads while a few thousand packets are logged: the socket overflows.
    const FLOOD: usize = 4000;
    ns.enter(|| {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        for i in 0..FLOOD {
            s.send_to(&payload(i), "127.0.0.1:9999").expect("send");
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    let (mut recs, mut loss) = receive(&mut sock, FLOOD);
    // A loss at the very end is visible only once a later record arrives: send a marker.
    ns.enter(|| {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.send_to(b"marker", "127.0.0.1:9999").expect("send");
    });
    let (more, more_loss) = receive(&mut sock, 1);
    recs.extend(more);
    loss.extend(more_loss);

    let sent = FLOOD + 1;
    assert!(recs.len() < sent, "the tiny buffer must overflow");
    assert!(
        loss.iter().any(|e| e.cause == LossCause::Enobufs),
        "ENOBUFS reported: {loss:?}"
    );
    let gaps: u64 = loss
        .iter()
        .filter(|e| e.cause == LossCause::SeqGap)
        .map(|e| e.count)
        .sum();
    assert_eq!(gaps as usize, sent - recs.len(), "{loss:?}");
    assert_eq!(sock.tracker().lost_records(), gaps);
    // What did arrive is in order, and the marker is last.
    let seqs: Vec<u32> = recs.iter().map(|r| parsed(r).seq.expect("seq")).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*seqs.last().unwrap() as usize, FLOOD);
    assert_eq!(udp_data(&parsed(recs.last().unwrap())), b"marker");
    eprintln!(
        "loss test: sent {sent}, received {}, lost {gaps} in {} gaps, rcvbuf {}",
        recs.len(),
        loss.iter().filter(|e| e.cause == LossCause::SeqGap).count(),
        sock.rcvbuf()
    );
}
