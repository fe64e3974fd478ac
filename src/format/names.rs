//! Names for numbers: IP protocols (/etc/protocols), TCP/UDP ports (/etc/services), and the
//! labels the formats give the transport protocols fwlog decodes. ICMP and ICMPv6 type and
//! code names are in `icmp.rs`.
//!
//! The files are read once, when the formatter is built; a missing or unreadable file leaves the
//! built-in table of common names in place (so output does not depend on a container's /etc).
//! File format: `name number[/proto] [aliases...] [# comment]`; the first name given for a
//! number wins, as in getprotobynumber(3)/getservbyport(3). Names from the files are printed
//! through the escaper like any other untrusted text.

use std::collections::HashMap;
use std::path::Path;

use crate::decode::proto;

/// How each format labels a transport protocol the decoder reads: the fwlog format's line tag,
/// the JSON `transport.protocol` value, the kernel format's `PROTO=` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProtoLabel {
    pub fwlog: &'static str,
    pub json: &'static str,
    pub kernel: &'static str,
}

const fn label(fwlog: &'static str, json: &'static str, kernel: &'static str) -> ProtoLabel {
    ProtoLabel {
        fwlog,
        json,
        kernel,
    }
}

const PROTO_LABELS: &[(u8, ProtoLabel)] = &[
    (proto::TCP, label("TCP", "tcp", "TCP")),
    (proto::UDP, label("UDP", "udp", "UDP")),
    (proto::UDPLITE, label("UDPLITE", "udplite", "UDPLITE")),
    (proto::ICMP, label("ICMP", "icmp", "ICMP")),
    (proto::ICMPV6, label("ICMP6", "icmp6", "ICMPv6")),
    (proto::AH, label("AH", "ah", "AH")),
    (proto::ESP, label("ESP", "esp", "ESP")),
];

/// The label of a protocol with a decoder, or for any other number (`DATA`, `other`; the
/// kernel format prints the number).
pub(crate) fn proto_label(n: u8) -> ProtoLabel {
    PROTO_LABELS
        .iter()
        .find(|(k, _)| *k == n)
        .map_or(label("DATA", "other", ""), |(_, l)| *l)
}

/// Protocol and service names, looked up without allocating.
#[derive(Clone, Debug)]
pub struct NameTables {
    protocols: Vec<Option<Box<str>>>,
    tcp: HashMap<u16, Box<str>>,
    udp: HashMap<u16, Box<str>>,
    /// The same names as the formats print them, made once when the tables are (see
    /// [`Shown`]): `protocols` by number, services sorted by port.
    shown_protocols: Vec<Option<Shown>>,
    shown_tcp: Ports,
    shown_udp: Ports,
}

/// A name from the tables, escaped and framed as each format prints it, so a packet costs one
/// copy per name instead of an escaper and a JSON serialiser.
#[derive(Clone, Debug)]
pub(crate) struct Shown {
    /// ` (NAME)` for the fwlog format (escaped like every untrusted string).
    pub fwlog: Box<[u8]>,
    /// `"NAME"`: the escaped name as a JSON string.
    pub json: Box<[u8]>,
}

impl Shown {
    fn of(name: &str) -> Shown {
        let mut fwlog = b" (".to_vec();
        super::escape::escape_into(&mut fwlog, name.as_bytes());
        fwlog.push(b')');
        let mut json = Vec::new();
        super::jsonstr::escaped(&mut json, name.as_bytes());
        Shown {
            fwlog: fwlog.into(),
            json: json.into(),
        }
    }
}

/// Service names by port, sorted by port; in front of them one bit per port (8 KiB), so a
/// port without a name (most source ports) costs one load, and a named port's place among the
/// names is the count of named ports below it: the bits below it in its word plus that word's
/// rank (how many named ports the words before it hold). No search, no hash.
#[derive(Clone, Debug, Default)]
struct Ports {
    names: Vec<Shown>,
    /// Bit `p` set when port `p` has a name: always 1024 words (8 KiB) when built by
    /// [`Ports::of`], even with no named port; empty (every lookup a miss) only in the
    /// `Default` value.
    named: Box<[u64]>,
    /// Per word of `named`: how many bits the words before it have set (as long as `named`).
    rank: Box<[u32]>,
}

impl Ports {
    fn of(m: &HashMap<u16, Box<str>>) -> Ports {
        let mut v: Vec<(u16, &str)> = m.iter().map(|(p, n)| (*p, &**n)).collect();
        v.sort_unstable_by_key(|x| x.0);
        let mut named = vec![0u64; 1 << 10].into_boxed_slice();
        for &(p, _) in &v {
            named[usize::from(p >> 6)] |= 1 << (p & 63);
        }
        let rank = named
            .iter()
            .scan(0u32, |below, w| {
                let r = *below;
                *below += w.count_ones();
                Some(r)
            })
            .collect();
        Ports {
            names: v.iter().map(|x| Shown::of(x.1)).collect(),
            named,
            rank,
        }
    }

    fn get(&self, port: u16) -> Option<&Shown> {
        let w = usize::from(port >> 6);
        let bits = *self.named.get(w)?;
        let bit = 1u64 << (port & 63);
        if bits & bit == 0 {
            return None;
        }
        let below = *self.rank.get(w)? + (bits & (bit - 1)).count_ones();
        self.names.get(below as usize)
    }
}

const BUILTIN_PROTOCOLS: &[(u8, &str)] = &[
    (0, "ip"),
    (1, "icmp"),
    (2, "igmp"),
    (4, "ipencap"),
    (6, "tcp"),
    (17, "udp"),
    (33, "dccp"),
    (41, "ipv6"),
    (43, "ipv6-route"),
    (44, "ipv6-frag"),
    (47, "gre"),
    (50, "esp"),
    (51, "ah"),
    (58, "ipv6-icmp"),
    (59, "ipv6-nonxt"),
    (60, "ipv6-opts"),
    (89, "ospf"),
    (103, "pim"),
    (112, "vrrp"),
    (132, "sctp"),
    (136, "udplite"),
];

const BUILTIN_SERVICES: &[(u16, &str, bool, bool)] = &[
    // port, name, tcp, udp
    (20, "ftp-data", true, false),
    (21, "ftp", true, false),
    (22, "ssh", true, false),
    (23, "telnet", true, false),
    (25, "smtp", true, false),
    (53, "domain", true, true),
    (67, "bootps", false, true),
    (68, "bootpc", false, true),
    (69, "tftp", false, true),
    (80, "http", true, false),
    (110, "pop3", true, false),
    (123, "ntp", false, true),
    (143, "imap2", true, false),
    (161, "snmp", true, true),
    (179, "bgp", true, false),
    (389, "ldap", true, false),
    (443, "https", true, true),
    (465, "submissions", true, false),
    (514, "syslog", false, true),
    (587, "submission", true, false),
    (853, "domain-s", true, true),
    (993, "imaps", true, false),
    (995, "pop3s", true, false),
    (3306, "mysql", true, false),
    (5432, "postgresql", true, false),
];

impl Default for NameTables {
    fn default() -> Self {
        Self::builtin()
    }
}

impl NameTables {
    /// Only the built-in names.
    pub fn builtin() -> NameTables {
        let mut protocols: Vec<Option<Box<str>>> = vec![None; 256];
        for &(n, name) in BUILTIN_PROTOCOLS {
            protocols[n as usize] = Some(name.into());
        }
        let mut tcp = HashMap::new();
        let mut udp = HashMap::new();
        for &(port, name, t, u) in BUILTIN_SERVICES {
            if t {
                tcp.insert(port, name.into());
            }
            if u {
                udp.insert(port, name.into());
            }
        }
        let mut t = NameTables {
            protocols,
            tcp,
            udp,
            shown_protocols: Vec::new(),
            shown_tcp: Ports::default(),
            shown_udp: Ports::default(),
        };
        t.index();
        t
    }

    /// Make the printed forms of every name (after any change to the tables).
    fn index(&mut self) {
        self.shown_protocols = self
            .protocols
            .iter()
            .map(|n| n.as_deref().map(Shown::of))
            .collect();
        self.shown_tcp = Ports::of(&self.tcp);
        self.shown_udp = Ports::of(&self.udp);
    }

    /// Built-in names, overridden by /etc/protocols and /etc/services where present.
    pub fn load_system() -> NameTables {
        Self::load(Path::new("/etc/protocols"), Path::new("/etc/services"))
    }

    /// Built-in names, overridden by the given files where readable.
    pub fn load(protocols: &Path, services: &Path) -> NameTables {
        let mut t = Self::builtin();
        if let Ok(text) = std::fs::read(protocols) {
            t.read_protocols(&text);
        }
        if let Ok(text) = std::fs::read(services) {
            t.read_services(&text);
        }
        t.index();
        t
    }

    fn read_protocols(&mut self, text: &[u8]) {
        let mut seen = [false; 256];
        for line in text.split(|&b| b == b'\n') {
            let line = line.split(|&b| b == b'#').next().unwrap_or(&[]);
            let mut f = line
                .split(|b| b.is_ascii_whitespace())
                .filter(|s| !s.is_empty());
            let (Some(name), Some(num)) = (f.next(), f.next()) else {
                continue;
            };
            let Some(n) = std::str::from_utf8(num)
                .ok()
                .and_then(|s| s.parse::<u8>().ok())
            else {
                continue;
            };
            if !seen[n as usize] && name.len() <= 32 {
                seen[n as usize] = true;
                self.protocols[n as usize] = Some(String::from_utf8_lossy(name).into());
            }
        }
    }

    fn read_services(&mut self, text: &[u8]) {
        let mut seen_tcp = std::collections::HashSet::new();
        let mut seen_udp = std::collections::HashSet::new();
        for line in text.split(|&b| b == b'\n') {
            let line = line.split(|&b| b == b'#').next().unwrap_or(&[]);
            let mut f = line
                .split(|b| b.is_ascii_whitespace())
                .filter(|s| !s.is_empty());
            let (Some(name), Some(pp)) = (f.next(), f.next()) else {
                continue;
            };
            let Ok(pp) = std::str::from_utf8(pp) else {
                continue;
            };
            let Some((port, proto)) = pp.split_once('/') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            if name.len() > 32 {
                continue;
            }
            let name: Box<str> = String::from_utf8_lossy(name).into();
            match proto {
                "tcp" if seen_tcp.insert(port) => {
                    self.tcp.insert(port, name);
                }
                "udp" if seen_udp.insert(port) => {
                    self.udp.insert(port, name);
                }
                _ => {}
            }
        }
    }

    pub fn protocol(&self, n: u8) -> Option<&str> {
        self.protocols.get(n as usize).and_then(|o| o.as_deref())
    }

    /// A protocol's name as the formats print it.
    pub(crate) fn protocol_shown(&self, n: u8) -> Option<&Shown> {
        self.shown_protocols
            .get(n as usize)
            .and_then(Option::as_ref)
    }

    /// A port's service name as the formats print it, for TCP (`tcp` true) or UDP.
    pub(crate) fn service_shown(&self, port: u16, tcp: bool) -> Option<&Shown> {
        if tcp {
            self.shown_tcp.get(port)
        } else {
            self.shown_udp.get(port)
        }
    }

    /// Service name of a port for TCP (`tcp` true) or UDP.
    pub fn service(&self, port: u16, tcp: bool) -> Option<&str> {
        if tcp {
            self.tcp.get(&port).map(|s| &**s)
        } else {
            self.udp.get(&port).map(|s| &**s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_override_builtins_first_name_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("protocols");
        let s = dir.path().join("services");
        std::fs::write(
            &p,
            "ip 0 IP\nhopopt 0 HOPOPT\n# c\nfoo\t253\tFOO # x\nbad 999\n",
        )
        .expect("write");
        std::fs::write(
            &s,
            "www 80/tcp http\nhttp 80/tcp\nmyudp 9999/udp\njunk x/tcp\n",
        )
        .expect("write");
        let t = NameTables::load(&p, &s);
        assert_eq!(t.protocol(0), Some("ip"));
        assert_eq!(t.protocol(253), Some("foo"));
        assert_eq!(t.protocol(6), Some("tcp"), "built-in kept");
        assert_eq!(t.service(80, true), Some("www"));
        assert_eq!(t.service(9999, false), Some("myudp"));
        assert_eq!(t.service(9999, true), None);
        let missing = NameTables::load(&dir.path().join("nope"), &dir.path().join("nope2"));
        assert_eq!(missing.service(53, false), Some("domain"));
        // The printed forms follow the files too, escaped.
        std::fs::write(&s, "we\"b\x1b 80/tcp\n").expect("write");
        let t = NameTables::load(&p, &s);
        let shown = t.service_shown(80, true).expect("80/tcp");
        assert_eq!(&*shown.fwlog, b" (we\"b\\x1b)");
        assert_eq!(&*shown.json, b"\"we\\\"b\\\\x1b\"");
        assert_eq!(&*t.protocol_shown(253).expect("253").fwlog, b" (foo)");
        assert!(t.service_shown(81, true).is_none() && t.protocol_shown(254).is_none());
        for port in 0..=u16::MAX {
            for tcp in [true, false] {
                assert_eq!(
                    t.service_shown(port, tcp).is_some(),
                    t.service(port, tcp).is_some()
                );
            }
        }
    }

    /// Every port's printed name is its own (the rank of its bit finds its place among the
    /// names): the built-in table, and a file naming ports at word edges and densely.
    #[test]
    fn every_port_prints_its_own_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = dir.path().join("services");
        let mut text = String::new();
        for p in (0..=u16::MAX).filter(|p| p % 7 == 0 || p % 64 == 63 || p % 64 == 0) {
            text.push_str(&format!("s{p} {p}/tcp\n"));
        }
        text.push_str("last 65535/udp\nzero 0/udp\n");
        std::fs::write(&s, text).expect("write");
        let builtin = NameTables::load(&dir.path().join("nope"), &dir.path().join("nope"));
        let file = NameTables::load(&dir.path().join("nope"), &s);
        for t in [&builtin, &file] {
            for port in 0..=u16::MAX {
                for tcp in [true, false] {
                    let want = t.service(port, tcp).map(|n| format!(" ({n})").into_bytes());
                    let got = t.service_shown(port, tcp).map(|x| x.fwlog.to_vec());
                    assert_eq!(got, want, "port {port} tcp {tcp}");
                }
            }
        }
    }
}
