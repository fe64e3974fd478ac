//! Packet crafting helpers shared by the tests that build headers by hand.

/// The Internet checksum (RFC 1071) of `data`: ones' complement of the ones' complement sum.
pub fn csum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += w as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 header to put in front of a payload: the fields tests vary, the rest fixed
/// (version 4, header length from the options, total length from the payload).
#[derive(Clone, Copy, Debug)]
pub struct Ip4<'a> {
    pub tos: u8,
    pub id: u16,
    /// Flags and fragment offset (0x4000: DF).
    pub frag: u16,
    pub ttl: u8,
    pub proto: u8,
    pub src: [u8; 4],
    pub dst: [u8; 4],
    /// Option bytes (a multiple of 4).
    pub opts: &'a [u8],
    /// Fill in the header checksum (else 0: raw sockets with IP_HDRINCL fill it).
    pub checksum: bool,
}

impl Ip4<'_> {
    /// TOS 0, id 0, no flags, TTL 64, no options, no checksum.
    pub fn new(proto: u8, src: [u8; 4], dst: [u8; 4]) -> Ip4<'static> {
        Ip4 {
            tos: 0,
            id: 0,
            frag: 0,
            ttl: 64,
            proto,
            src,
            dst,
            opts: &[],
            checksum: false,
        }
    }

    /// The header followed by `payload`.
    pub fn packet(&self, payload: &[u8]) -> Vec<u8> {
        let hl = 20 + self.opts.len();
        assert!(hl.is_multiple_of(4));
        let mut v = vec![0x40 | (hl / 4) as u8, self.tos];
        v.extend_from_slice(&((hl + payload.len()) as u16).to_be_bytes());
        v.extend_from_slice(&self.id.to_be_bytes());
        v.extend_from_slice(&self.frag.to_be_bytes());
        v.extend_from_slice(&[self.ttl, self.proto, 0, 0]);
        v.extend_from_slice(&self.src);
        v.extend_from_slice(&self.dst);
        v.extend_from_slice(self.opts);
        if self.checksum {
            let c = csum(&v);
            v[10..12].copy_from_slice(&c.to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }
}

/// An IPv6 header (`first_word`: version, traffic class and flow label; hop limit 64) in
/// front of `payload`.
pub fn ip6(first_word: u32, next: u8, src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = first_word.to_be_bytes().to_vec();
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(&[next, 64]);
    for a in [src, dst] {
        v.extend_from_slice(&a.parse::<std::net::Ipv6Addr>().expect("address").octets());
    }
    v.extend_from_slice(payload);
    v
}

/// A UDP header (checksum 0) and `data`.
pub fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut v = sport.to_be_bytes().to_vec();
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(data);
    v
}

/// An ICMP message with its checksum: type, code, the rest-of-header word, body.
pub fn icmp(t: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = vec![t, code, 0, 0];
    v.extend_from_slice(&rest);
    v.extend_from_slice(body);
    let c = csum(&v);
    v[2..4].copy_from_slice(&c.to_be_bytes());
    v
}

/// An echo's rest-of-header word: identifier and sequence number.
pub fn echo_rest(id: u16, seq: u16) -> [u8; 4] {
    let (i, s) = (id.to_be_bytes(), seq.to_be_bytes());
    [i[0], i[1], s[0], s[1]]
}

/// `sendto(fd, pkt, dst)` on a raw socket; returns what sendto returned.
pub fn send_raw(fd: i32, dst: std::net::IpAddr, pkt: &[u8]) -> isize {
    use std::net::IpAddr;
    // SAFETY: the sockaddr structs are plain data built here; pkt outlives the call.
    unsafe {
        match dst {
            IpAddr::V4(a) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as u16;
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
                libc::sendto(
                    fd,
                    pkt.as_ptr().cast(),
                    pkt.len(),
                    0,
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                )
            }
            IpAddr::V6(a) => {
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as u16;
                sa.sin6_addr.s6_addr = a.octets();
                libc::sendto(
                    fd,
                    pkt.as_ptr().cast(),
                    pkt.len(),
                    0,
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as u32,
                )
            }
        }
    }
}

/// One echo request through the calling thread's IP stack (a raw ICMP or ICMPv6 socket; the
/// kernel answers it, and computes the ICMPv6 checksum itself); `data` is the body. Waits
/// `pause` before closing the socket, so replies and their log lines come in order.
pub fn ping(dst: std::net::IpAddr, id: u16, seq: u16, data: &[u8], pause: std::time::Duration) {
    let (family, proto, msg) = match dst {
        std::net::IpAddr::V4(_) => (
            libc::AF_INET,
            libc::IPPROTO_ICMP,
            icmp(8, 0, echo_rest(id, seq), data),
        ),
        std::net::IpAddr::V6(_) => {
            let mut m = vec![128u8, 0, 0, 0];
            m.extend_from_slice(&echo_rest(id, seq));
            m.extend_from_slice(data);
            (libc::AF_INET6, libc::IPPROTO_ICMPV6, m)
        }
    };
    // SAFETY: plain socket(2); the fd is closed below.
    let fd = unsafe { libc::socket(family, libc::SOCK_RAW, proto) };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    let rc = send_raw(fd, dst, &msg);
    assert!(rc > 0, "sendto: {}", std::io::Error::last_os_error());
    std::thread::sleep(pause);
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
}

/// The record intake spools for one UDP datagram 192.0.2.`i`:1234 -> 192.0.2.250:53 ("test"),
/// logged to group 5 at `sec`.`nsec` (kernel time) with `hook` and `prefix`: the rows the SQL
/// tests store and count.
pub fn udp_record(i: u8, sec: i64, nsec: u32, hook: Option<u8>, prefix: &[u8]) -> Vec<u8> {
    use fwlog::packet::{family, Packet, TimeSource, Timestamp};
    let mut payload = vec![0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 17, 0, 0];
    payload.extend_from_slice(&[192, 0, 2, i, 192, 0, 2, 250]);
    payload.extend_from_slice(&[0x04, 0xd2, 0, 53, 0, 12, 0, 0]);
    payload.extend_from_slice(b"test");
    let mut p = Packet::new(
        &payload,
        Timestamp {
            sec,
            nsec,
            source: TimeSource::Kernel,
        },
    );
    p.family = family::INET;
    p.group = 5;
    p.hook = hook;
    p.prefix = Some(prefix);
    let mut rec = Vec::new();
    fwlog::nflog::attr::encode_packet(&p, &mut rec);
    rec
}
