//! Names for numbers: IP protocols (/etc/protocols), TCP/UDP ports (/etc/services), ICMP and
//! ICMPv6 types and codes (built in, nft's spelling).
//!
//! The files are read once, when the formatter is built; a missing or unreadable file leaves the
//! built-in table of common names in place (so output does not depend on a container's /etc).
//! File format: `name number[/proto] [aliases...] [# comment]`; the first name given for a
//! number wins, as in getprotobynumber(3)/getservbyport(3). Names from the files are printed
//! through the escaper like any other untrusted text.

use std::collections::HashMap;
use std::path::Path;

/// Protocol and service names, looked up without allocating.
#[derive(Clone, Debug)]
pub struct NameTables {
    protocols: Vec<Option<Box<str>>>,
    tcp: HashMap<u16, Box<str>>,
    udp: HashMap<u16, Box<str>>,
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
        NameTables {
            protocols,
            tcp,
            udp,
        }
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

    /// Service name of a port for TCP (`tcp` true) or UDP.
    pub fn service(&self, port: u16, tcp: bool) -> Option<&str> {
        if tcp {
            self.tcp.get(&port).map(|s| &**s)
        } else {
            self.udp.get(&port).map(|s| &**s)
        }
    }
}

/// ICMP type names (nft's `icmp type` keywords).
pub fn icmp_type(t: u8) -> Option<&'static str> {
    Some(match t {
        0 => "echo-reply",
        3 => "destination-unreachable",
        4 => "source-quench",
        5 => "redirect",
        8 => "echo-request",
        9 => "router-advertisement",
        10 => "router-solicitation",
        11 => "time-exceeded",
        12 => "parameter-problem",
        13 => "timestamp-request",
        14 => "timestamp-reply",
        15 => "info-request",
        16 => "info-reply",
        17 => "address-mask-request",
        18 => "address-mask-reply",
        _ => return None,
    })
}

/// ICMP code names for the types that have named codes.
pub fn icmp_code(t: u8, c: u8) -> Option<&'static str> {
    Some(match (t, c) {
        (3, 0) => "net-unreachable",
        (3, 1) => "host-unreachable",
        (3, 2) => "prot-unreachable",
        (3, 3) => "port-unreachable",
        (3, 4) => "frag-needed",
        (3, 5) => "source-route-failed",
        (3, 6) => "net-unknown",
        (3, 7) => "host-unknown",
        (3, 9) => "net-prohibited",
        (3, 10) => "host-prohibited",
        (3, 11) => "net-tos-unreachable",
        (3, 12) => "host-tos-unreachable",
        (3, 13) => "admin-prohibited",
        (3, 14) => "host-precedence-violation",
        (3, 15) => "precedence-cutoff",
        (5, 0) => "net-redirect",
        (5, 1) => "host-redirect",
        (5, 2) => "tos-net-redirect",
        (5, 3) => "tos-host-redirect",
        (11, 0) => "ttl-exceeded",
        (11, 1) => "reassembly-timeout",
        (12, 0) => "pointer-indicates-error",
        (12, 1) => "missing-option",
        (12, 2) => "bad-length",
        _ => return None,
    })
}

/// ICMPv6 type names (nft's `icmpv6 type` keywords).
pub fn icmpv6_type(t: u8) -> Option<&'static str> {
    Some(match t {
        1 => "destination-unreachable",
        2 => "packet-too-big",
        3 => "time-exceeded",
        4 => "parameter-problem",
        128 => "echo-request",
        129 => "echo-reply",
        130 => "mld-listener-query",
        131 => "mld-listener-report",
        132 => "mld-listener-done",
        133 => "nd-router-solicit",
        134 => "nd-router-advert",
        135 => "nd-neighbor-solicit",
        136 => "nd-neighbor-advert",
        137 => "nd-redirect",
        138 => "router-renumbering",
        141 => "ind-neighbor-solicit",
        142 => "ind-neighbor-advert",
        143 => "mld2-listener-report",
        _ => return None,
    })
}

pub fn icmpv6_code(t: u8, c: u8) -> Option<&'static str> {
    Some(match (t, c) {
        (1, 0) => "no-route",
        (1, 1) => "admin-prohibited",
        (1, 2) => "beyond-scope",
        (1, 3) => "addr-unreachable",
        (1, 4) => "port-unreachable",
        (1, 5) => "policy-fail",
        (1, 6) => "reject-route",
        (3, 0) => "hop-limit-exceeded",
        (3, 1) => "reassembly-timeout",
        (4, 0) => "erroneous-header",
        (4, 1) => "unknown-next-header",
        (4, 2) => "unknown-option",
        _ => return None,
    })
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
    }
}
