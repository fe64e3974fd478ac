//! The kernel is the oracle for `--format kernel`: inside a namespace this test creates, every
//! packet is logged by the kernel's LOG target (read back from /dev/kmsg) and by NFLOG
//! (recorded by tcpdump), and fwlog's kernel-format line for each NFLOG record must equal the
//! kernel's own line for the same packet, byte for byte (kmsg escapes unprintables as `\xNN`,
//! and so does fwlog).
//!
//! Traffic: real TCP/UDP/ICMP/ICMPv6 on lo (output and input hooks), over a veth pair (input
//! with a real Ethernet header), and packets crafted with raw sockets: TCP flag and option
//! combinations, reserved bits, IPv4 options, fragments, AH/ESP/GRE/SCTP, truncated headers,
//! ICMP errors of several types, IPv6 extension headers and fragments.
//! Two rule pairs: default flags, and nft `log flags all` vs `LogFlags::ALL`. A third NFLOG
//! rule with `snaplen 40` must give marked partial records in the fwlog and json formats.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Stdio;
use std::time::Duration;

use fwlog::format::{FormatKind, FormatOptions, Formatter, LogFlags, NameTables, NoNames};
use fwlog::nflog::attr::{self, TlvOrder};
use fwlog::packet::{Iface, TimeSource, Timestamp};
use support::{kmsg, netns::NetNs};

// ---------- packet crafting ----------

use support::packets::{self, icmp, udp, Ip4};

/// IPv4 packet to/from 127.0.0.1 (the kernel fills total length and checksum for IP_HDRINCL).
fn ip4(proto: u8, id: u16, tos: u8, frag: u16, opts: &[u8], payload: &[u8]) -> Vec<u8> {
    let lo = [127, 0, 0, 1];
    let h = Ip4 {
        tos,
        id,
        frag,
        opts,
        ..Ip4::new(proto, lo, lo)
    };
    h.packet(payload)
}

/// IPv6 packet ::1 -> ::1 (the kernel fills the payload length).
fn ip6(next: u8, flow: u32, payload: &[u8]) -> Vec<u8> {
    let w: u32 = (6 << 28) | (0x12 << 20) | (flow & 0xfffff);
    packets::ip6(w, next, "::1", "::1", payload)
}

#[allow(clippy::too_many_arguments)]
fn tcp(
    sport: u16,
    dport: u16,
    seq: u32,
    b12: u8,
    flags: u8,
    win: u16,
    urg: u16,
    opts: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&0x1111_2222u32.to_be_bytes());
    v.push(b12);
    v.push(flags);
    v.extend_from_slice(&win.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&urg.to_be_bytes());
    v.extend_from_slice(opts);
    v
}

struct Raw {
    fd4: i32,
    fd6: i32,
}

impl Raw {
    fn open() -> Raw {
        // SAFETY: plain socket(2) calls; fds are closed in Drop.
        let fd4 = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        let fd6 = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        assert!(
            fd4 >= 0 && fd6 >= 0,
            "raw sockets: {}",
            std::io::Error::last_os_error()
        );
        Raw { fd4, fd6 }
    }

    fn send4(&self, pkt: &[u8]) {
        let rc = packets::send_raw(self.fd4, Ipv4Addr::LOCALHOST.into(), pkt);
        assert_eq!(
            rc,
            pkt.len() as isize,
            "send4: {}",
            std::io::Error::last_os_error()
        );
        std::thread::sleep(Duration::from_millis(3));
    }

    fn send6(&self, pkt: &[u8]) {
        let rc = packets::send_raw(self.fd6, Ipv6Addr::LOCALHOST.into(), pkt);
        assert_eq!(
            rc,
            pkt.len() as isize,
            "send6: {}",
            std::io::Error::last_os_error()
        );
        std::thread::sleep(Duration::from_millis(3));
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: fds owned by this struct.
        unsafe {
            libc::close(self.fd4);
            libc::close(self.fd6);
        }
    }
}

/// ICMP echo request via a raw ICMP socket (the kernel answers it).
fn ping4(dst: Ipv4Addr, id: u16, seq: u16) {
    packets::ping(
        dst.into(),
        id,
        seq,
        b"fwlog-oracle",
        Duration::from_millis(20),
    );
}

/// ICMPv6 echo request (the kernel computes the checksum for raw ICMPv6 sockets).
fn ping6(dst: Ipv6Addr, id: u16, seq: u16) {
    packets::ping(dst.into(), id, seq, b"fwlog6", Duration::from_millis(20));
}

fn settle() {
    std::thread::sleep(Duration::from_millis(30));
}

/// Real sockets on lo: UDP to closed ports (ICMP errors), TCP handshake with data, TCP to a
/// closed port (RST), echo requests, for IPv4 and IPv6.
fn real_traffic_lo() {
    let l4 = TcpListener::bind("127.0.0.1:0").expect("listen4");
    let l6 = TcpListener::bind("[::1]:0").expect("listen6");
    let u = UdpSocket::bind("127.0.0.1:0").expect("udp4");
    u.send_to(b"to a closed port", "127.0.0.1:9999")
        .expect("send");
    u.send_to(b"marked", "127.0.0.1:7777").expect("send");
    settle();
    let u6 = UdpSocket::bind("[::1]:0").expect("udp6");
    u6.send_to(b"closed6", "[::1]:9999").expect("send6");
    settle();
    for l in [&l4, &l6] {
        let addr = l.local_addr().expect("addr");
        let mut c = TcpStream::connect(addr).expect("connect");
        use std::io::Write;
        c.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("write");
        let (s, _) = l.accept().expect("accept");
        settle();
        drop(c);
        settle();
        drop(s);
        settle();
    }
    // Closed TCP ports: RST.
    let _ = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], 9998)),
        Duration::from_millis(300),
    );
    let _ = TcpStream::connect_timeout(
        &"[::1]:9998".parse().expect("addr"),
        Duration::from_millis(300),
    );
    ping4(Ipv4Addr::LOCALHOST, 0x4242, 1);
    ping6(Ipv6Addr::LOCALHOST, 0x4343, 2);
    settle();
}

/// Crafted packets (IP_HDRINCL / IPv6 raw): every decoder path and the kernel's early stops.
fn crafted_traffic() {
    let r = Raw::open();
    let mss_ws = [2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 1, 1]; // MSS, NOP, WS, SACKOK, NOP, NOP
                                                             // TCP flag combinations, reserved bits, AE.
    for (i, (b12, flags)) in [
        (0x50, 0x02),
        (0x50, 0x12),
        (0x50, 0x18),
        (0x50, 0x11),
        (0x50, 0x04),
        (0x50, 0x29),
        (0x50, 0xc2),
        (0x51, 0x00),
        (0x5f, 0xff),
        (0x5e, 0x00),
        (0x52, 0x01),
    ]
    .into_iter()
    .enumerate()
    {
        r.send4(&ip4(
            6,
            100 + i as u16,
            0,
            0,
            &[],
            &tcp(1000, 2000 + i as u16, 0xdead_beef, b12, flags, 512, 7, &[]),
        ));
    }
    // TCP options, and a data offset that claims more than there is.
    r.send4(&ip4(
        6,
        200,
        0x10,
        0x4000,
        &[],
        &tcp(1001, 80, 1, 0x80, 0x02, 65535, 0, &mss_ws),
    ));
    r.send4(&ip4(
        6,
        201,
        0,
        0,
        &[],
        &tcp(1002, 80, 1, 0xf0, 0x02, 1, 0, &[]),
    ));
    // Truncated TCP, UDP, ICMP headers.
    r.send4(&ip4(6, 202, 0, 0, &[], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    r.send4(&ip4(17, 203, 0, 0, &[], &[0, 53, 0]));
    r.send4(&ip4(1, 204, 0, 0, &[], &[8, 0, 0]));
    // IP options (router alert, NOPs), TOS/precedence, the reserved "CE" bit.
    r.send4(&ip4(
        17,
        205,
        0xb8,
        0,
        &[0x94, 4, 0, 0],
        &udp(5000, 9999, b"opts"),
    ));
    r.send4(&ip4(
        17,
        206,
        0x03,
        0x8000,
        &[1, 1, 1, 0],
        &udp(5001, 9999, b"ce"),
    ));
    // Fragments: first (MF), middle (MF + offset), last (offset), for UDP/TCP/ICMP/AH/ESP.
    let u = udp(5002, 9999, &[0x55; 24]);
    r.send4(&ip4(17, 300, 0, 0x2000, &[], &u[..16]));
    r.send4(&ip4(17, 300, 0, 0x2000 | 2, &[], &u[16..24]));
    r.send4(&ip4(17, 300, 0, 3, &[], &u[24..]));
    r.send4(&ip4(6, 301, 0, 5, &[], &[0x66; 16]));
    r.send4(&ip4(1, 302, 0, 5, &[], &[0x66; 16]));
    r.send4(&ip4(51, 303, 0, 5, &[], &[0x66; 16]));
    r.send4(&ip4(50, 304, 0, 5, &[], &[0x66; 16]));
    // AH, ESP, GRE, SCTP, a short AH.
    let mut ah = vec![6, 4, 0, 0, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1];
    ah.extend_from_slice(&[0; 12]);
    ah.extend_from_slice(&tcp(1, 2, 3, 0x50, 0x02, 4, 0, &[]));
    r.send4(&ip4(51, 305, 0, 0, &[], &ah));
    r.send4(&ip4(
        50,
        306,
        0,
        0,
        &[],
        &[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 9, 1, 2, 3, 4],
    ));
    r.send4(&ip4(47, 307, 0, 0, &[], &[0, 0, 0x08, 0x00]));
    r.send4(&ip4(132, 308, 0, 0, &[], &[0; 12]));
    r.send4(&ip4(51, 309, 0, 0, &[], &[6, 4, 0, 0, 1]));
    r.send4(&ip4(50, 310, 0, 0, &[], &[1, 2, 3]));
    // ICMP: errors quoting TCP/UDP/ICMP, redirect, parameter problem, frag needed, short
    // messages, timestamp, an error quoting an IP header with options and a bogus length.
    let inner_udp = ip4(17, 400, 0, 0x4000, &[], &udp(3333, 53, b"q"));
    let inner_tcp = ip4(6, 401, 0, 0, &[], &tcp(4444, 443, 9, 0x50, 0x02, 1, 0, &[]));
    let inner_icmp = ip4(1, 402, 0, 0, &[], &icmp(8, 0, [0, 1, 0, 2], b""));
    let inner_opts = ip4(17, 403, 0, 0, &[0x94, 4, 0, 0], &udp(1, 2, b""));
    let mut inner_badlen = ip4(6, 404, 0, 0, &[], &[0; 8]);
    inner_badlen[0] = 0x4f; // claims 60 header bytes
    r.send4(&ip4(1, 410, 0, 0, &[], &icmp(3, 3, [0; 4], &inner_udp)));
    r.send4(&ip4(
        1,
        411,
        0,
        0,
        &[],
        &icmp(11, 0, [0; 4], &inner_tcp[..28]),
    ));
    r.send4(&ip4(
        1,
        412,
        0,
        0,
        &[],
        &icmp(3, 4, [0, 0, 0x05, 0xdc], &inner_tcp),
    ));
    r.send4(&ip4(
        1,
        413,
        0,
        0,
        &[],
        &icmp(5, 1, [10, 0, 0, 1], &inner_icmp),
    ));
    r.send4(&ip4(
        1,
        414,
        0,
        0,
        &[],
        &icmp(12, 0, [20, 0, 0, 0], &inner_tcp),
    ));
    r.send4(&ip4(1, 415, 0, 0, &[], &icmp(4, 0, [0; 4], &inner_opts)));
    r.send4(&ip4(1, 416, 0, 0, &[], &icmp(3, 1, [0; 4], &inner_badlen)));
    r.send4(&ip4(
        1,
        417,
        0,
        0,
        &[],
        &icmp(3, 3, [0; 4], &inner_udp[..12]),
    ));
    r.send4(&ip4(
        1,
        418,
        0,
        0,
        &[],
        &icmp(13, 0, [0, 1, 0, 1], &[0; 12]),
    ));
    r.send4(&ip4(1, 419, 0, 0, &[], &icmp(13, 0, [0, 1, 0, 1], &[0; 4])));
    r.send4(&ip4(1, 420, 0, 0, &[], &icmp(0, 0, [1, 2, 3, 4], b"")));
    r.send4(&ip4(1, 421, 0, 0, &[], &icmp(42, 7, [1, 2, 3, 4], b"x")));
    r.send4(&ip4(136, 422, 0, 0, &[], &udp(5, 6, b"lite")));

    // IPv6: extension headers, fragments, AH/ESP, ICMPv6 errors.
    let u6 = udp(6000, 9999, b"v6");
    let mut hbh = vec![17, 0, 1, 4, 0, 0, 0, 0]; // PadN
    hbh.extend_from_slice(&u6);
    r.send6(&ip6(0, 1, &hbh));
    let mut dst_rt = vec![43, 0, 1, 4, 0, 0, 0, 0]; // dest opts -> routing
    dst_rt.extend_from_slice(&[6, 0, 4, 0, 0, 0, 0, 0]); // routing type 4, 0 segments left
    dst_rt.extend_from_slice(&tcp(6001, 80, 5, 0x60, 0x02, 100, 0, &[2, 4, 5, 0xa0]));
    r.send6(&ip6(60, 2, &dst_rt));
    let mut frag0 = vec![17, 0, 0x00, 0x01, 0xab, 0xcd, 0xef, 0x01];
    frag0.extend_from_slice(&u6);
    r.send6(&ip6(44, 3, &frag0));
    let mut frag1 = vec![60, 0, 0x00, 0x10, 0xab, 0xcd, 0xef, 0x01];
    frag1.extend_from_slice(&[0x77; 16]);
    r.send6(&ip6(44, 4, &frag1));
    let mut frag2 = vec![6, 0, 0x00, 0x18, 0, 0, 0, 2];
    frag2.extend_from_slice(&[0x77; 16]);
    r.send6(&ip6(44, 5, &frag2));
    let mut ah6 = vec![6, 4, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0, 0, 0, 1];
    ah6.extend_from_slice(&[0; 12]);
    ah6.extend_from_slice(&tcp(7, 8, 9, 0x50, 0x10, 10, 0, &[]));
    r.send6(&ip6(51, 6, &ah6));
    r.send6(&ip6(50, 7, &[0x0b, 0xad, 0xf0, 0x0d, 0, 0, 0, 1, 0, 0]));
    r.send6(&ip6(50, 8, &[0x0b, 0xad]));
    r.send6(&ip6(59, 9, &[1, 2, 3, 4]));
    r.send6(&ip6(0, 10, &[17]));
    r.send6(&ip6(6, 11, &[1, 2, 3]));
    r.send6(&ip6(58, 12, &[128, 0]));
    let inner6 = ip6(17, 0, &udp(1234, 53, b"inner"));
    let mut e = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
    e.extend_from_slice(&inner6);
    r.send6(&ip6(58, 13, &e));
    let mut e = vec![4, 1, 0, 0, 0, 0, 0, 0x28];
    e.extend_from_slice(&inner6);
    r.send6(&ip6(58, 14, &e));
    let mut e = vec![3, 0, 0, 0, 0, 0, 0, 0];
    e.extend_from_slice(&inner6[..30]);
    r.send6(&ip6(58, 15, &e));
    let mut e = vec![1, 4, 0, 0, 0, 0, 0, 0];
    e.extend_from_slice(&ip6(58, 0, &[128, 0, 0, 0, 0, 1, 0, 1]));
    r.send6(&ip6(58, 16, &e));
    r.send6(&ip6(17, 17, &udp(1, 9999, b"")));
    settle();
}

/// From the peer namespace over the veth pair: input with a real Ethernet header.
fn veth_traffic(ns: &NetNs, peer: &NetNs, n: u8) {
    let here4: Ipv4Addr = format!("10.200.{n}.1").parse().expect("addr");
    let here6: Ipv6Addr = format!("fd00:200:{n}::1").parse().expect("addr");
    let listener = ns.enter(move || TcpListener::bind((here4, 0)).expect("listen veth"));
    let port = listener.local_addr().expect("addr").port();
    peer.enter(move || {
        let u = UdpSocket::bind("0.0.0.0:0").expect("udp");
        u.send_to(b"over veth", (here4, 9999)).expect("send");
        settle();
        let u6 = UdpSocket::bind("[::]:0").expect("udp6");
        u6.send_to(b"over veth6", SocketAddr::from((here6, 9999)))
            .expect("send6");
        settle();
        let c =
            TcpStream::connect_timeout(&SocketAddr::from((here4, port)), Duration::from_secs(2))
                .expect("connect over veth");
        settle();
        drop(c);
        ping4(here4, 0x5151, 3);
        ping6(here6, 0x5252, 4);
        settle();
    });
    std::thread::sleep(Duration::from_millis(100));
    drop(listener);
    settle();
}

// ---------- the test ----------

/// Interface names by index, read inside the namespace with if_indextoname(3) so the raw bytes
/// (escape, DEL, backslash) come through unaltered.
fn if_names(ns: &NetNs) -> HashMap<u32, Vec<u8>> {
    ns.enter(|| {
        let mut m = HashMap::new();
        for i in 1..256u32 {
            let mut buf = [0u8; libc::IF_NAMESIZE];
            // SAFETY: buf holds IF_NAMESIZE bytes as if_indextoname requires.
            let r = unsafe { libc::if_indextoname(i, buf.as_mut_ptr().cast()) };
            if !r.is_null() {
                let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                m.insert(i, buf[..len].to_vec());
            }
        }
        m
    })
}

/// Route between two peers through the test namespace: the forward hook, with both devices.
fn forward_traffic(peer: &NetNs, far: &NetNs, n: u8) {
    let far4: Ipv4Addr = format!("10.200.{}.2", n + 1).parse().expect("addr");
    let far6: Ipv6Addr = format!("fd00:200:{}::2", n + 1).parse().expect("addr");
    peer.enter(move || {
        let u = UdpSocket::bind("0.0.0.0:0").expect("udp");
        u.send_to(b"forwarded", (far4, 9999)).expect("send");
        settle();
        let u6 = UdpSocket::bind("[::]:0").expect("udp6");
        u6.send_to(b"forwarded6", SocketAddr::from((far6, 9999)))
            .expect("send6");
        settle();
        ping4(far4, 0x6161, 5);
        std::thread::sleep(Duration::from_millis(50));
    });
    let _ = far;
}

#[test]
fn kernel_format_matches_the_kernels_own_log_lines() {
    require_root!();
    support::require_tool("tcpdump");
    support::require_tool("nft");
    let pid = std::process::id();
    let n = (pid % 150 + 50) as u8;
    let ns = NetNs::new("oracle");
    let (peer, dev) = ns.veth(n);
    // An interface name with bytes the kernel prints raw and /dev/kmsg escapes: ESC, DEL,
    // backslash, double quote. (Linux refuses only '/', ':' and white space in names.)
    let weird = "w\x1b\\\"\x7f";
    ns.ip(&["link", "set", &dev, "down"]);
    ns.ip(&["link", "set", &dev, "name", weird]);
    ns.ip(&["link", "set", weird, "up"]);
    ns.ip(&[
        "-6",
        "addr",
        "replace",
        &format!("fd00:200:{n}::1/64"),
        "dev",
        weird,
        "nodad",
    ]);
    // A second peer routed through this namespace exercises the forward hook.
    let (far, _dev2) = ns.veth(n + 1);
    let sysctl = |k: &str| {
        let st = ns
            .command("sysctl")
            .args(["-qw", k])
            .status()
            .expect("run sysctl");
        assert!(st.success(), "sysctl {k}");
    };
    sysctl("net.ipv4.ip_forward=1");
    sysctl("net.ipv6.conf.all.forwarding=1");
    peer.ip(&[
        "route",
        "add",
        &format!("10.200.{}.0/24", n + 1),
        "via",
        &format!("10.200.{n}.1"),
    ]);
    peer.ip(&[
        "-6",
        "route",
        "add",
        &format!("fd00:200:{}::/64", n + 1),
        "via",
        &format!("fd00:200:{n}::1"),
    ]);
    far.ip(&[
        "route",
        "add",
        &format!("10.200.{n}.0/24"),
        "via",
        &format!("10.200.{}.1", n + 1),
    ]);
    far.ip(&[
        "-6",
        "route",
        "add",
        &format!("fd00:200:{n}::/64"),
        "via",
        &format!("fd00:200:{}::1", n + 1),
    ]);
    kmsg::enable_log_all_netns();

    let (gd, ga, gs) = (31u16, 32u16, 33u16);
    let pd = format!("F{pid}d ");
    let pa = format!("F{pid}a ");
    let ps = format!("F{pid}s ");
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("nflog.pcap");
    let mut dump = ns
        .command("tcpdump")
        .args(["-n", "-U", "-i", &format!("nflog:{gd},{ga},{gs}"), "-w"])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tcpdump");
    let mut err = BufReader::new(dump.stderr.take().expect("stderr"));
    let mut line = String::new();
    loop {
        line.clear();
        let n = err.read_line(&mut line).expect("read tcpdump stderr");
        assert!(n > 0, "tcpdump exited before listening");
        if line.contains("listening on") {
            break;
        }
    }
    // Drain tcpdump's stderr so it never blocks.
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut rest);
        rest
    });

    let mut k = kmsg::Kmsg::open_at_end();
    let rules = |hook: &str| {
        format!(
            "  chain {hook} {{\n   type filter hook {hook} priority 0; policy accept;\n   udp dport 7777 meta mark set 0x2a\n   log prefix \"{pd}\" group {gd}\n   log prefix \"{pd}\"\n   log prefix \"{pa}\" group {ga}\n   log prefix \"{pa}\" flags all\n   log prefix \"{ps}\" group {gs} snaplen 40\n  }}\n"
        )
    };
    ns.nft(&format!(
        "table inet fwloracle {{\n{}{}}}\n",
        rules("input"),
        rules("output") + &rules("forward")
    ));

    ns.enter(real_traffic_lo);
    ns.enter(crafted_traffic);
    veth_traffic(&ns, &peer, n);
    forward_traffic(&peer, &far, n);

    std::thread::sleep(Duration::from_millis(300));
    ns.nft("delete table inet fwloracle\n");
    // NFLOG flushes a partial batch after its 1 s timeout.
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling the tcpdump child this test started.
    unsafe { libc::kill(dump.id() as i32, libc::SIGINT) };
    let status = dump.wait().expect("wait tcpdump");
    let tcpdump_err = drain.join().unwrap_or_default();
    assert!(
        status.success() || status.signal_ok(),
        "tcpdump: {status:?} {tcpdump_err}"
    );

    let data = std::fs::read(&pcap).expect("read pcap");
    let cap = pcap_parser::PcapCapture::from_file(&data).expect("parse pcap");
    let names = if_names(&ns);
    let fmt_d = Formatter::with_tables(
        FormatKind::Kernel,
        FormatOptions::default(),
        NameTables::builtin(),
    );
    let fmt_a = Formatter::with_tables(
        FormatKind::Kernel,
        FormatOptions {
            flags: LogFlags::ALL,
            ..FormatOptions::default()
        },
        NameTables::builtin(),
    );
    let fmt_fw = Formatter::with_tables(
        FormatKind::Fwlog,
        FormatOptions::default(),
        NameTables::builtin(),
    );
    let fmt_js = Formatter::with_tables(
        FormatKind::Json,
        FormatOptions::default(),
        NameTables::builtin(),
    );
    let mut ours_d = Vec::new();
    let mut ours_a = Vec::new();
    let mut partial = 0;
    let mut partial_errors = String::new();
    for b in &cap.blocks {
        let ts = Timestamp {
            sec: b.ts_sec as i64,
            nsec: b.ts_usec * 1000,
            source: TimeSource::Capture,
        };
        let mut p = attr::parse(b.data, TlvOrder::NATIVE, ts);
        assert_eq!(p.damage, None, "NFLOG record damaged");
        // The pcap has interface indexes only; names come from the namespace.
        let named = |i: Iface<'_>| Iface {
            index: i.index,
            name: names.get(&i.index).map(|v| v.as_slice()),
        };
        p.indev = p.indev.map(named);
        p.outdev = p.outdev.map(named);
        let prefix = p
            .prefix
            .map(|x| String::from_utf8_lossy(x).into_owned())
            .unwrap_or_default();
        let mut out = Vec::new();
        if prefix == pd {
            fmt_d.packet(&p, &NoNames, &mut out);
            ours_d.push(
                String::from_utf8(out)
                    .expect("ascii")
                    .trim_end_matches('\n')
                    .to_string(),
            );
        } else if prefix == pa {
            fmt_a.packet(&p, &NoNames, &mut out);
            ours_a.push(
                String::from_utf8(out)
                    .expect("ascii")
                    .trim_end_matches('\n')
                    .to_string(),
            );
        } else if prefix == ps {
            // Copy range 40: a marked partial record whenever the packet was longer.
            let mut fw = Vec::new();
            fmt_fw.packet(&p, &NoNames, &mut fw);
            let mut js = Vec::new();
            fmt_js.packet(&p, &NoNames, &mut js);
            let fw = String::from_utf8(fw).expect("ascii");
            let js = String::from_utf8(js).expect("ascii");
            let v: serde_json::Value = match serde_json::from_str(js.trim_end()) {
                Ok(v) => v,
                Err(e) => {
                    partial_errors += &format!("json does not parse ({e}): {js}\n");
                    serde_json::Value::Null
                }
            };
            let total = match p.payload.first().map(|x| x >> 4) {
                Some(4) => u16::from_be_bytes([p.payload[2], p.payload[3]]) as usize,
                Some(6) => u16::from_be_bytes([p.payload[4], p.payload[5]]) as usize + 40,
                _ => 0,
            };
            assert!(p.payload.len() <= 40);
            if total > p.payload.len() {
                partial += 1;
                let mark = format!("[partial: {} of {} bytes]", p.payload.len(), total);
                if !fw.contains(&mark)
                    || v["partial"]["captured"] != p.payload.len() as u64
                    || v["partial"]["original"] != total as u64
                {
                    partial_errors += &format!("partial record not marked ({mark}):\n{fw}{js}\n");
                }
            } else if fw.contains("[partial") || !v["partial"].is_null() {
                partial_errors += &format!("complete record marked partial:\n{fw}{js}\n");
            }
        }
    }
    assert!(
        ours_d.len() > 100,
        "too few NFLOG records: {}",
        ours_d.len()
    );
    assert_eq!(
        ours_d.len(),
        ours_a.len(),
        "both rule pairs see every packet"
    );
    assert!(
        partial > 10,
        "copy range 40 made only {partial} partial records"
    );

    let kernel = k.collect(
        &format!("F{pid}"),
        ours_d.len() + ours_a.len(),
        Duration::from_secs(5),
    );
    let kern_d: Vec<String> = kernel
        .iter()
        .filter(|l| l.starts_with(&pd))
        .cloned()
        .collect();
    let kern_a: Vec<String> = kernel
        .iter()
        .filter(|l| l.starts_with(&pa))
        .cloned()
        .collect();
    let mut report = String::new();
    let mut failures = 0;
    for (what, ours, theirs) in [
        ("default", &ours_d, &kern_d),
        ("flags all", &ours_a, &kern_a),
    ] {
        if ours.len() != theirs.len() {
            report += &format!(
                "{what}: {} NFLOG records, {} kernel lines\n",
                ours.len(),
                theirs.len()
            );
            failures += 1;
        }
        // Packets handled on two CPUs at once may reach NFLOG and the kernel log in a
        // different order: match each line within a small window, each kernel line once.
        let mut used = vec![false; theirs.len()];
        for (i, o) in ours.iter().enumerate() {
            let lo = i.saturating_sub(6);
            let hi = (i + 7).min(theirs.len());
            let hit = (lo..hi).find(|&j| !used[j] && &theirs[j] == o);
            match hit {
                Some(j) => used[j] = true,
                None => {
                    failures += 1;
                    if failures < 30 {
                        let near = theirs.get(i).map(String::as_str).unwrap_or("<none>");
                        report += &format!("{what} #{i}\n  ours:   {o:?}\n  kernel: {near:?}\n");
                    }
                }
            }
        }
    }
    if let Ok(path) = std::env::var("FWLOG_ORACLE_DUMP") {
        let mut all = String::new();
        for (o, t) in ours_a.iter().zip(kern_a.iter()) {
            all += &format!("O {o}\nK {t}\n");
        }
        for (o, t) in ours_d.iter().zip(kern_d.iter()) {
            all += &format!("O {o}\nK {t}\n");
        }
        let _ = std::fs::write(path, all);
    }
    eprintln!(
        "kernel oracle: {} + {} lines compared, {partial} partial records",
        ours_d.len(),
        ours_a.len()
    );
    assert_eq!(failures, 0, "kernel-format mismatches:\n{report}");
    assert!(partial_errors.is_empty(), "{partial_errors}");
}

trait SignalOk {
    fn signal_ok(&self) -> bool;
}

impl SignalOk for std::process::ExitStatus {
    fn signal_ok(&self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        self.signal() == Some(libc::SIGINT)
    }
}
