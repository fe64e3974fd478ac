//! The kernel is the oracle for `--format kernel` in the bridge family: VLAN tags
//! (`VPROTO= VID=`, printed by the kernel only with the ether flag, between MACDST and MACPROTO)
//! and ARP (`ARP HTYPE= PTYPE= OPCODE=` and the Ethernet/IPv4 addresses).
//!
//! Setup: a namespace with a bridge and two veth ports, each leading to a peer namespace. nft
//! `table bridge` chains on prerouting, input, forward and output log every frame twice per
//! flag set: `log prefix P group N` (NFLOG, received by a `fwlog run` daemon writing
//! `--format kernel`) and `log prefix P` (the kernel's own LOG line, read from /dev/kmsg).
//! Two flag sets: the defaults, and `flags all` against `--log-flags all`. Every line fwlog
//! printed must equal the kernel's line for the same frame, byte for byte. The same rules sit
//! in a `table netdev` (ingress on both ports, egress on one: there NFLOG's payload starts at
//! the MAC header and the kernel's IPv4 dump, seeing a non-zero network offset, prints no MARK
//! and no UID) and a `table arp` (ARP to and from the bridge's own address; at the output hook
//! the payload starts with the Ethernet header too).
//!
//! The egress chain is on the port towards the peer whose frames carry no socket of its own
//! (kernel-made replies): a frame written by a packet socket in another namespace keeps that
//! socket through veth and the bridge, NFLOG reports its owner, and the kernel's line does not
//! (it shows same-namespace sockets only); at an egress hook nothing in the record tells such a
//! frame from the namespace's own traffic. fwlog(8) documents this difference.
//!
//! A third NFLOG copy of the `flags all` rule goes to tcpdump; `fwlog read` of that pcap
//! (LINKTYPE_NFLOG, the same TLVs) must print the same lines.
//!
//! Traffic: frames written raw from the peers (AF_PACKET) with 802.1Q tags (priority and DEI
//! bits set, so `VID=` shows the kernel prints the whole TCI), an 802.1ad tag, a double tag,
//! tagged ARP request and reply, ARP with non-Ethernet hardware, ARP cut short, RARP, tagged
//! IPv4 ICMP/TCP and IPv6 UDP; and real untagged traffic from the peers' IP stacks (ARP,
//! ICMP echo, IPv6 neighbour discovery and echo) through the bridge and to the bridge's own
//! address (input and output hooks; the output hook has no input device, so the kernel's
//! Ethernet header comes from NFULA_L2HDR).
//!
//! This kernel has no 8021q module (no VLAN devices) and no bridge VLAN filtering, so tagged
//! frames are written raw; a port receives them with the tag out of band (`skb_vlan_untag`),
//! exactly what the bridge hooks then see.

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use support::daemon::{lines, RunArgs};
use support::{kmsg, netns::NetNs};

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_C: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0c];
const BCAST: [u8; 6] = [0xff; 6];
const IP_A: [u8; 4] = [10, 77, 0, 1];
const IP_C: [u8; 4] = [10, 77, 0, 2];

// ---------- frame crafting ----------

use support::packets::{self, csum, echo_rest, icmp, Ip4};

/// Ethernet frame with the given tags (TPID, TCI), outermost first.
fn eth(dst: [u8; 6], src: [u8; 6], tags: &[(u16, u16)], ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut v = dst.to_vec();
    v.extend_from_slice(&src);
    for (tpid, tci) in tags {
        v.extend_from_slice(&tpid.to_be_bytes());
        v.extend_from_slice(&tci.to_be_bytes());
    }
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut v = vec![0, 1, 0x08, 0x00, 6, 4];
    v.extend_from_slice(&op.to_be_bytes());
    v.extend_from_slice(&sha);
    v.extend_from_slice(&spa);
    v.extend_from_slice(&tha);
    v.extend_from_slice(&tpa);
    v
}

/// IPv4 with a correct header checksum (br_netfilter drops bad ones before the forward hook).
fn ip4(proto: u8, id: u16, src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let h = Ip4 {
        tos: 0x10,
        id,
        frag: 0x4000,
        checksum: true,
        ..Ip4::new(proto, src, dst)
    };
    h.packet(payload)
}

fn icmp_echo(id: u16, seq: u16) -> Vec<u8> {
    icmp(8, 0, echo_rest(id, seq), b"fwlog-vlan")
}

fn tcp_syn(sport: u16, dport: u16) -> Vec<u8> {
    let mut v = sport.to_be_bytes().to_vec();
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&0x0102_0304u32.to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(&[0x60, 0x02, 0x72, 0x10, 0, 0, 0, 0]);
    v.extend_from_slice(&[2, 4, 0x05, 0xb4]);
    v
}

fn ip6_udp(flow: u32) -> Vec<u8> {
    let udp = packets::udp(4000, 9999, b"vlan6!");
    packets::ip6((6u32 << 28) | flow, 17, "fd00:77::1", "fd00:77::2", &udp)
}

/// An AF_PACKET socket bound to one device: frames go out exactly as written.
struct Link {
    fd: i32,
    ifindex: i32,
}

impl Link {
    fn open(dev: &str) -> Link {
        let name = std::ffi::CString::new(dev).expect("name");
        // SAFETY: plain socket(2) and if_nametoindex(3) calls; the fd is closed in Drop.
        let (fd, ifindex) = unsafe {
            (
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW,
                    (libc::ETH_P_ALL as u16).to_be() as i32,
                ),
                libc::if_nametoindex(name.as_ptr()) as i32,
            )
        };
        assert!(
            fd >= 0 && ifindex > 0,
            "AF_PACKET on {dev}: {}",
            std::io::Error::last_os_error()
        );
        Link { fd, ifindex }
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: sockaddr_ll is plain data; frame outlives the call.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_ifindex = self.ifindex;
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&frame[..6]);
        let rc = unsafe {
            libc::sendto(
                self.fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(
            rc,
            frame.len() as isize,
            "send frame: {}",
            std::io::Error::last_os_error()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // SAFETY: fd owned by this struct.
        unsafe { libc::close(self.fd) };
    }
}

/// ICMP echo request through the peer's own IP stack (which resolves the MAC with ARP first).
fn ping4(dst: Ipv4Addr, id: u16, seq: u16) {
    packets::ping(
        dst.into(),
        id,
        seq,
        b"fwlog-vlan",
        Duration::from_millis(150),
    );
}

/// ICMPv6 echo request (the kernel computes the checksum for raw ICMPv6 sockets).
fn ping6(dst: std::net::Ipv6Addr, id: u16, seq: u16) {
    packets::ping(dst.into(), id, seq, b"", Duration::from_millis(150));
}

/// Raw frames from both peers: tagged and untagged ARP, tags of every kind, IPv4 and IPv6.
fn crafted(a: &NetNs, c: &NetNs) {
    a.enter(|| {
        let l = Link::open("va");
        let q = |tci: u16| [(0x8100u16, tci)];
        // 802.1Q VID 10, priority 3: VID= prints the whole TCI (24586).
        l.send(&eth(
            BCAST,
            MAC_A,
            &q(0x600a),
            0x0806,
            &arp(1, MAC_A, IP_A, [0; 6], IP_C),
        ));
        l.send(&eth(
            MAC_C,
            MAC_A,
            &q(0x600a),
            0x0800,
            &ip4(1, 1, IP_A, IP_C, &icmp_echo(7, 1)),
        ));
        l.send(&eth(
            MAC_C,
            MAC_A,
            &q(0x600a),
            0x0800,
            &ip4(6, 2, IP_A, IP_C, &tcp_syn(40000, 80)),
        ));
        // DEI set, priority 1.
        l.send(&eth(MAC_C, MAC_A, &q(0x300a), 0x86dd, &ip6_udp(0x12345)));
        // ARP with IEEE 802 hardware (no addresses printed), ARP cut short, ARP header cut
        // short, tagged and not.
        let mut ieee = arp(1, MAC_A, IP_A, [0; 6], IP_C);
        ieee[1] = 6;
        l.send(&eth(BCAST, MAC_A, &q(0x000a), 0x0806, &ieee));
        let full = arp(1, MAC_A, IP_A, [0; 6], IP_C);
        l.send(&eth(BCAST, MAC_A, &q(0x000a), 0x0806, &full[..20]));
        l.send(&eth(BCAST, MAC_A, &[], 0x0806, &full[..5]));
        // hlen 6 but plen 16: not Ethernet/IPv4, header only.
        let mut odd = full.clone();
        odd[5] = 16;
        l.send(&eth(BCAST, MAC_A, &[], 0x0806, &odd));
        // RARP request (the kernel dumps it as ARP).
        l.send(&eth(
            BCAST,
            MAC_A,
            &[],
            0x8035,
            &arp(3, MAC_A, [0; 4], MAC_A, [0; 4]),
        ));
        // 802.1ad tag, and a double tag (the inner tag stays in the frame: an unknown
        // protocol for the bridge logger).
        l.send(&eth(
            MAC_C,
            MAC_A,
            &[(0x88a8, 0x0064)],
            0x0800,
            &ip4(1, 3, IP_A, IP_C, &icmp_echo(7, 2)),
        ));
        l.send(&eth(
            MAC_C,
            MAC_A,
            &[(0x88a8, 0x0064), (0x8100, 0x000a)],
            0x0800,
            &ip4(1, 4, IP_A, IP_C, &icmp_echo(7, 3)),
        ));
        // An unknown ethertype, untagged.
        l.send(&eth(
            MAC_C,
            MAC_A,
            &[],
            0x88b5,
            b"local experimental ethertype",
        ));
    });
    c.enter(|| {
        let l = Link::open("vc");
        l.send(&eth(
            MAC_A,
            MAC_C,
            &[(0x8100, 0x000a)],
            0x0806,
            &arp(2, MAC_C, IP_C, MAC_A, IP_A),
        ));
        let mut reply = icmp_echo(7, 1);
        reply[0] = 0;
        reply[2..4].copy_from_slice(&[0, 0]);
        let ck = csum(&reply);
        reply[2..4].copy_from_slice(&ck.to_be_bytes());
        l.send(&eth(
            MAC_A,
            MAC_C,
            &[(0x8100, 0xe00a)],
            0x0800,
            &ip4(1, 9, IP_C, IP_A, &reply),
        ));
    });
}

/// Real untagged traffic from the peers' IP stacks: through the bridge, and to the bridge's
/// own address (input and output hooks).
fn real(a: &NetNs, b: &NetNs) {
    a.enter(|| {
        ping4(Ipv4Addr::new(10, 78, 0, 2), 0x7171, 1);
        ping4(Ipv4Addr::new(10, 78, 0, 3), 0x7272, 2);
        ping6("fd00:78::2".parse().expect("a"), 0x7373, 3);
    });
    // From a socket of the bridge's own namespace: its owner is shown at the bridge output
    // hook and, for IPv6, at the netdev egress hook (IPv4 there: the kernel's non-zero
    // network offset hides UID).
    b.enter(|| {
        let u = std::net::UdpSocket::bind("10.78.0.3:0").expect("udp4");
        u.send_to(b"from the bridge", "10.78.0.1:9999")
            .expect("send");
        std::thread::sleep(Duration::from_millis(100));
        let u6 = std::net::UdpSocket::bind("[fd00:78::3]:0").expect("udp6");
        u6.send_to(b"from the bridge", "[fd00:78::1]:9999")
            .expect("send6");
        std::thread::sleep(Duration::from_millis(150));
    });
}

fn set_mac(ns: &NetNs, dev: &str, mac: [u8; 6]) {
    let m: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    ns.ip(&["link", "set", dev, "address", &m.join(":")]);
}

/// Match each of our lines to an unused kernel line nearby (packets on two CPUs may reach the
/// two loggers in different orders). Returns a report of the misses.
fn compare(what: &str, ours: &[String], theirs: &[String]) -> (usize, String) {
    let mut report = String::new();
    let mut failures = 0;
    if ours.len() != theirs.len() {
        report += &format!(
            "{what}: {} lines from fwlog, {} from the kernel\n",
            ours.len(),
            theirs.len()
        );
        failures += 1;
    }
    let mut used = vec![false; theirs.len()];
    for (i, o) in ours.iter().enumerate() {
        let lo = i.saturating_sub(8);
        let hi = (i + 9).min(theirs.len());
        match (lo..hi).find(|&j| !used[j] && &theirs[j] == o) {
            Some(j) => used[j] = true,
            None => {
                failures += 1;
                if failures < 40 {
                    let near = theirs.get(i).map(String::as_str).unwrap_or("<none>");
                    report += &format!("{what} #{i}\n  ours:   {o:?}\n  kernel: {near:?}\n");
                }
            }
        }
    }
    (failures, report)
}

#[test]
fn bridge_vlan_and_arp_lines_match_the_kernels() {
    require_root!();
    support::require_tool("nft");
    support::require_tool("tcpdump");
    let b = NetNs::new("brvlan");
    if !b
        .command("ip")
        .args(["link", "add", "br0", "type", "bridge"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
    {
        eprintln!("SKIP bridge oracle: this kernel cannot create a bridge (no bridge module)");
        return;
    }
    let a = NetNs::new("brpa");
    let c = NetNs::new("brpc");
    for (port, peer, ns, mac) in [("vb1", "va", &a, MAC_A), ("vb2", "vc", &c, MAC_C)] {
        b.ip(&[
            "link", "add", port, "type", "veth", "peer", "name", peer, "netns", &ns.name,
        ]);
        b.ip(&["link", "set", port, "master", "br0"]);
        b.ip(&["link", "set", port, "up"]);
        set_mac(ns, peer, mac);
        ns.ip(&["link", "set", peer, "up"]);
    }
    // Forward at once: no STP listening/learning delay.
    b.ip(&["link", "set", "br0", "type", "bridge", "forward_delay", "0"]);
    b.ip(&["addr", "add", "10.78.0.3/24", "dev", "br0"]);
    b.ip(&["-6", "addr", "add", "fd00:78::3/64", "dev", "br0", "nodad"]);
    b.ip(&["link", "set", "br0", "up"]);
    a.ip(&["addr", "add", "10.78.0.1/24", "dev", "va"]);
    c.ip(&["addr", "add", "10.78.0.2/24", "dev", "vc"]);
    a.ip(&["-6", "addr", "add", "fd00:78::1/64", "dev", "va", "nodad"]);
    c.ip(&["-6", "addr", "add", "fd00:78::2/64", "dev", "vc", "nodad"]);
    kmsg::enable_log_all_netns();

    let pid = std::process::id();
    let (gd, ga) = (41u16, 42u16);
    let pd = format!("B{pid}d ");
    let pa = format!("B{pid}a ");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |n: &str| dir.path().join(n).to_str().expect("utf-8").to_string();
    let daemon = |g: u16, flags: &str, tag: &str| {
        RunArgs::new(dir.path())
            .spool_at(&dir.path().join(format!("spool-{tag}")))
            .group(g)
            .with(&[
                "--format",
                "kernel",
                "--log-flags",
                flags,
                "--no-syslog-header",
            ])
            .output_to(path(&format!("kernel-{tag}.log")))
            .output_to(format!("json={}", path(&format!("json-{tag}.log"))))
            .start(&b)
    };
    let dd = daemon(gd, "", "d");
    let da = daemon(ga, "all", "a");
    // A third NFLOG copy of the `flags all` rule, recorded by tcpdump (LINKTYPE_NFLOG): `fwlog
    // read` must get the VLAN tag and the L2 header from the pcap's TLVs and print the same.
    let gp = 43u16;
    let pcap = path("nflog.pcap");
    let mut dump = b
        .command("tcpdump")
        .args(["-n", "-U", "-i", &format!("nflog:{gp}"), "-w", &pcap])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn tcpdump");
    let mut err = std::io::BufReader::new(dump.stderr.take().expect("stderr"));
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut err, &mut line).expect("tcpdump stderr");
        assert!(n > 0, "tcpdump exited before listening");
        if line.contains("listening on") {
            break;
        }
    }
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut rest);
        rest
    });

    let mut k = kmsg::Kmsg::open_at_end();
    // Priority -300: before br_netfilter's own hooks, so every frame is logged as it came.
    let chain = |name: &str, hook: &str| {
        format!(
            "  chain {name} {{\n   type filter hook {hook} priority -300; policy accept;\n   log prefix \"{pd}\" group {gd}\n   log prefix \"{pd}\"\n   log prefix \"{pa}\" group {ga}\n   log prefix \"{pa}\" flags all\n   log prefix \"{pa}\" group {gp}\n  }}\n"
        )
    };
    b.nft(&format!(
        "table bridge fwlvlan {{\n{}{}{}{}}}\n",
        chain("prerouting", "prerouting"),
        chain("input", "input"),
        chain("forward", "forward"),
        chain("output", "output")
    ));
    // The netdev family on the ports (ingress: the frame as it arrived; egress: as it
    // leaves) and the arp family (ARP to and from the bridge's own address).
    b.nft(&format!(
        "table netdev fwlvlan {{\n{}{}{}}}\ntable arp fwlvlan {{\n{}{}}}\n",
        chain("in1", "ingress device \"vb1\""),
        chain("in2", "ingress device \"vb2\""),
        chain("out1", "egress device \"vb1\""),
        chain("input", "input"),
        chain("output", "output")
    ));

    crafted(&a, &c);
    real(&a, &b);

    std::thread::sleep(Duration::from_millis(300));
    b.nft("delete table bridge fwlvlan\ndelete table netdev fwlvlan\ndelete table arp fwlvlan\n");
    let kernel = k.collect(&format!("B{pid}"), usize::MAX, Duration::from_secs(3));
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
    // NFLOG flushes a partial batch after its timeout; the daemons write within 10 ms.
    for (tag, want) in [("d", kern_d.len()), ("a", kern_a.len())] {
        let p = dir.path().join(format!("kernel-{tag}.log"));
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while lines(&p).len() < want && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(dd.stop(), 0);
    assert_eq!(da.stop(), 0);
    let ours_d = lines(&dir.path().join("kernel-d.log"));
    let ours_a = lines(&dir.path().join("kernel-a.log"));
    // NFLOG flushes tcpdump's last batch after its 1 s timeout.
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling the tcpdump child this test started.
    unsafe { libc::kill(dump.id() as i32, libc::SIGINT) };
    let st = dump.wait().expect("wait tcpdump");
    let tcpdump_err = drain.join().unwrap_or_default();
    assert!(
        st.success() || st.code().is_none(),
        "tcpdump: {st:?} {tcpdump_err}"
    );
    let read = b
        .command(support::fwlog_bin())
        .args([
            "read",
            "--format",
            "kernel",
            "--log-flags",
            "all",
            "--no-syslog-header",
            "--no-dns",
            "--ifnames",
            "host",
            &pcap,
        ])
        .output()
        .expect("run fwlog read");
    assert!(
        read.status.success(),
        "fwlog read: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    let ours_read: Vec<String> = String::from_utf8_lossy(&read.stdout)
        .lines()
        .map(str::to_string)
        .collect();

    // The coverage the test promises, seen in the kernel's own lines.
    let has = |v: &[String], pat: &[&str]| v.iter().any(|l| pat.iter().all(|p| l.contains(p)));
    let want: [(&str, &[String], &[&str]); 17] = [
        ("a local socket's owner at the bridge output hook", &kern_a, &["IN= OUT=vb1 SRC=10.78.0.3 DST=10.78.0.1 ", "DPT=9999 LEN=23 UID=0 GID=0 "]),
        ("a local socket's owner at netdev egress (IPv6)", &kern_a, &["IN= OUT=vb1 SRC=fd00:0078:0000:0000:0000:0000:0000:0003 ", "DPT=9999 LEN=23 UID=0 GID=0 "]),
        ("tagged ARP at netdev egress", &kern_a, &["IN= OUT=vb1 MACSRC=02:00:00:00:00:0c MACDST=02:00:00:00:00:0a VPROTO=8100 VID=10 MACPROTO=0806 ARP HTYPE=1 PTYPE=0x0800 OPCODE=2 MACSRC="]),
        ("arp family input", &kern_a, &["IN=br0 OUT= MACSRC=02:00:00:00:00:0a MACDST=ff:ff:ff:ff:ff:ff MACPROTO=0806 ARP HTYPE=1"]),
        ("arp family output", &kern_a, &["IN= OUT=br0 ARP HTYPE=1 PTYPE=0x0800 OPCODE=2 MACSRC="]),
        (
            "tagged ARP request",
            &kern_a,
            &["VPROTO=8100 VID=24586 MACPROTO=0806 ARP HTYPE=1 PTYPE=0x0800 OPCODE=1 MACSRC="],
        ),
        (
            "tagged ARP reply",
            &kern_a,
            &[
                "VPROTO=8100 VID=10 ",
                "OPCODE=2 MACSRC=02:00:00:00:00:0c IPSRC=10.77.0.2",
            ],
        ),
        (
            "untagged ARP",
            &kern_d,
            &["ARP HTYPE=1 PTYPE=0x0800 OPCODE=1 MACSRC=02:00:00:00:00:0a IPSRC=10.78.0.1"],
        ),
        (
            "ARP at the output hook",
            &kern_a,
            &["IN= OUT=vb1 MACSRC=", "ARP HTYPE=1"],
        ),
        (
            "tagged ICMP",
            &kern_a,
            &[
                "VID=24586 MACPROTO=0800 SRC=10.77.0.1 DST=10.77.0.2",
                "PROTO=ICMP TYPE=8",
            ],
        ),
        (
            "tagged TCP",
            &kern_a,
            &["VID=24586 MACPROTO=0800 ", "PROTO=TCP SPT=40000 DPT=80"],
        ),
        (
            "tagged IPv6",
            &kern_a,
            &["VID=12298 MACPROTO=86dd SRC=fd00:0077:"],
        ),
        (
            "802.1ad tag",
            &kern_a,
            &["VPROTO=88a8 VID=100 MACPROTO=0800"],
        ),
        (
            "IPv6 on the bridge",
            &kern_d,
            &[
                "SRC=fd00:0078:0000:0000:0000:0000:0000:0001",
                "PROTO=ICMPv6 TYPE=128",
            ],
        ),
        (
            "truncated ARP",
            &kern_d,
            &["OPCODE=1 INCOMPLETE [12 bytes]"],
        ),
        ("ARP header cut short", &kern_a, &["IN=vb1 OUT= TRUNCATED"]),
        (
            "non-Ethernet ARP",
            &kern_d,
            &["ARP HTYPE=6 PTYPE=0x0800 OPCODE=1"],
        ),
    ];
    let mut missing = String::new();
    for (what, v, pat) in want {
        if !has(v, pat) {
            missing += &format!("kernel printed no line for {what} ({pat:?})\n");
        }
    }

    // VLAN tags reach the JSON output too.
    let js: Vec<serde_json::Value> = lines(&dir.path().join("json-a.log"))
        .iter()
        .map(|l| serde_json::from_str(l).expect("json line parses"))
        .collect();
    let tagged = js
        .iter()
        .filter(|o| o["vlan"]["id"] == 10 && o["vlan"]["pcp"] == 3 && o["vlan"]["proto"] == 0x8100)
        .count();
    let arps = js
        .iter()
        .filter(|o| o["arp"]["opcode"] == 2 && o["arp"]["sender_proto"] == "10.77.0.2")
        .count();
    if tagged == 0 || arps == 0 {
        missing += &format!("json: {tagged} objects with VLAN 10 pcp 3, {arps} ARP replies\n");
    }

    let (fd, rd) = compare("default", &ours_d, &kern_d);
    let (fa, ra) = compare("flags all", &ours_a, &kern_a);
    let (fr, rr) = compare("fwlog read of the NFLOG pcap", &ours_read, &kern_a);
    if let Ok(p) = std::env::var("FWLOG_ORACLE_DUMP") {
        let mut all = String::new();
        for (o, t) in ours_a.iter().zip(&kern_a).chain(ours_d.iter().zip(&kern_d)) {
            all += &format!("O {o}\nK {t}\n");
        }
        let _ = std::fs::write(p, all);
    }
    eprintln!(
        "bridge oracle: {} + {} lines compared",
        kern_d.len(),
        kern_a.len()
    );
    assert!(kern_d.len() > 30, "too few kernel lines: {}", kern_d.len());
    assert_eq!(fd + fa + fr, 0, "kernel-format mismatches:\n{rd}{ra}{rr}");
    assert!(missing.is_empty(), "{missing}");
}
