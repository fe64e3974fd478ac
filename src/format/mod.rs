//! Output formats: `fwlog` (the default, fwlog 0.8's block layout extended), `kernel` (the
//! kernel LOG target's line, byte for byte), `json` (one object per line) and `ecs` (the JSON
//! mapped onto the Elastic Common Schema).
//!
//! Invariants, for every format:
//! - [`Formatter::packet`] appends the complete output for one packet, newline(s) included, to
//!   the caller's buffer and allocates nothing else per packet (decoding borrows the payload;
//!   numbers and addresses are written in place).
//! - Untrusted bytes (prefix, interface names, resolved names, names from /etc files) pass the
//!   allow-list escaper in [`escape`]: no control byte, DEL, ESC or stray newline can reach the
//!   output, so a packet cannot forge a line. JSON additionally goes through serde_json.
//! - Nothing here panics on any input; what cannot be decoded is marked in the output.
//!
//! The layouts are specified in man/fwlog.8, section FORMATS.

pub mod ecs;
pub mod escape;
mod fwlog;
mod geo;
mod icmp;
mod json;
mod jsonstr;
mod kernel;
pub mod names;
mod tcpopt;
mod time;
mod write;

use std::net::IpAddr;
use std::str::FromStr;

use crate::decode;
use crate::dns::SafeName;
use crate::packet::{Packet, Timestamp};

pub use names::NameTables;

/// The output format (`--format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatKind {
    /// fwlog 0.8's block per packet, extended to every protocol.
    Fwlog,
    /// The kernel LOG target's line, for fail2ban, psad, logwatch.
    Kernel,
    /// One JSON object per line.
    Json,
    /// One JSON object per line in the Elastic Common Schema (fwlog's JSON under `fwlog`).
    Ecs,
}

/// Optional parts of the kernel format, as nft's `log flags` name them.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogFlags {
    /// `tcp sequence`: `SEQ= ACK=`.
    pub tcp_sequence: bool,
    /// `tcp options`: `OPT (...)` after the TCP header.
    pub tcp_options: bool,
    /// `ip options`: `OPT (...)` after the IP header (and IPv6 extension headers).
    pub ip_options: bool,
    /// `skuid`: `UID= GID=` of the local socket.
    pub skuid: bool,
    /// `ether`: `MACSRC= MACDST= MACPROTO=` instead of `MAC=` on Ethernet.
    pub ether: bool,
}

impl LogFlags {
    /// nft's `log flags all`.
    pub const ALL: LogFlags = LogFlags {
        tcp_sequence: true,
        tcp_options: true,
        ip_options: true,
        skuid: true,
        ether: true,
    };
}

/// An unknown name in a `--log-flags` list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log flag {0:?} (known: tcp-sequence, tcp-options, ip-options, skuid, ether, all)")]
pub struct UnknownLogFlag(pub String);

impl FromStr for LogFlags {
    type Err = UnknownLogFlag;

    /// A comma-separated list of `tcp-sequence`, `tcp-options`, `ip-options`, `skuid`, `ether`,
    /// `all` (an empty string is no flags).
    fn from_str(s: &str) -> Result<LogFlags, UnknownLogFlag> {
        let mut f = LogFlags::default();
        for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            match item {
                "tcp-sequence" => f.tcp_sequence = true,
                "tcp-options" => f.tcp_options = true,
                "ip-options" => f.ip_options = true,
                "skuid" => f.skuid = true,
                "ether" => f.ether = true,
                "all" => f = LogFlags::ALL,
                other => return Err(UnknownLogFlag(other.to_string())),
            }
        }
        Ok(f)
    }
}

/// Formatter settings.
#[derive(Clone, Debug, Default)]
pub struct FormatOptions {
    /// Optional fields of the kernel format.
    pub flags: LogFlags,
    /// Kernel format: precede each line with `Mmm dd HH:MM:SS HOST kernel: ` like syslog.
    pub syslog_framing: bool,
    /// The host name for the syslog framing.
    pub hostname: String,
    /// GeoIP/ASN databases are configured: JSON `ip` objects carry `src_geo`, `dst_geo`,
    /// `src_as`, `dst_as` (see `geo`).
    pub geo: bool,
    /// `--no-geo-tag`: the fwlog format leaves out the ` [CC ASn]` tag after addresses.
    pub no_geo_tag: bool,
}

/// A resolved name, and what is known about its bytes.
#[derive(Clone, Copy, Debug)]
pub enum NameText<'a> {
    /// A [`SafeName`]: its printed form holds only bytes that [`escape::name_allowed`] passes
    /// (its one constructor, `SafeName::from_labels`, escapes every other byte and adds only
    /// the marks `~ ? (!ip)`), so it is copied without a check of each byte.
    Safe(&'a SafeName),
    /// Text of any other origin: checked, and escaped where needed.
    Text(&'a str),
}

/// Resolved names for addresses. Implementations return already-sanitised names; formatters
/// escape them again anyway, except a [`NameText::Safe`] name, whose type says it needs none.
pub trait Names {
    fn name(&self, addr: IpAddr) -> Option<&str>;

    /// The name of `addr` with what is known about its bytes: a source that holds
    /// [`SafeName`]s gives them as [`NameText::Safe`]; by default, [`Names::name`]'s text.
    fn name_text(&self, addr: IpAddr) -> Option<NameText<'_>> {
        self.name(addr).map(NameText::Text)
    }

    /// What the GeoIP/ASN databases know about `addr` (`--geoip`, `--asn`).
    fn geo(&self, _addr: IpAddr) -> Option<&crate::geo::GeoInfo> {
        None
    }
}

/// No names known.
pub struct NoNames;

impl Names for NoNames {
    fn name(&self, _addr: IpAddr) -> Option<&str> {
        None
    }
}

/// Why records were lost: the spool's cause byte, see [`crate::nflog::loss::Cause`].
pub use crate::nflog::loss::Cause as LossCause;

/// A loss report: the one loss event, see [`crate::nflog::loss`].
pub use crate::nflog::loss::LossEvent;

/// Formats packets and loss reports in one format.
#[derive(Clone, Debug)]
pub struct Formatter {
    kind: FormatKind,
    opts: FormatOptions,
    tables: NameTables,
}

impl Formatter {
    /// A formatter; reads /etc/protocols and /etc/services once (built-in names otherwise).
    pub fn new(kind: FormatKind, opts: FormatOptions) -> Formatter {
        Self::with_tables(kind, opts, NameTables::load_system())
    }

    /// A formatter with the given name tables (tests use [`NameTables::builtin`] so output does
    /// not depend on the machine's /etc).
    pub fn with_tables(kind: FormatKind, opts: FormatOptions, tables: NameTables) -> Formatter {
        Formatter { kind, opts, tables }
    }

    pub fn kind(&self) -> FormatKind {
        self.kind
    }

    /// Append the complete output for one packet, newline(s) included.
    pub fn packet(&self, p: &Packet<'_>, names: &dyn Names, out: &mut Vec<u8>) {
        self.packet_decoded(p, &decode::decode(p), names, out);
    }

    /// [`Formatter::packet`] for a packet whose headers the caller has decoded already
    /// (`d` is `decode::decode(p)`): the processing loop decodes once for every output.
    pub fn packet_decoded(
        &self,
        p: &Packet<'_>,
        d: &decode::Decoded<'_>,
        names: &dyn Names,
        out: &mut Vec<u8>,
    ) {
        match self.kind {
            FormatKind::Kernel => {
                if self.opts.syslog_framing {
                    self.framing(&p.timestamp, "kernel: ", out);
                }
                kernel::line(p, d, self.opts.flags, out);
                out.push(b'\n');
            }
            FormatKind::Fwlog if self.opts.no_geo_tag => {
                fwlog::block(&self.tables, p, d, &geo::WithoutGeo(names), out)
            }
            FormatKind::Fwlog => fwlog::block(&self.tables, p, d, names, out),
            FormatKind::Json => json::object(&self.tables, p, d, names, self.opts.geo, out),
            FormatKind::Ecs => ecs::object(
                &self.tables,
                &self.opts.hostname,
                p,
                d,
                names,
                self.opts.geo,
                out,
            ),
        }
    }

    /// Append a loss report.
    pub fn loss(&self, ev: &LossEvent, out: &mut Vec<u8>) {
        match self.kind {
            FormatKind::Kernel => {
                if self.opts.syslog_framing {
                    self.framing(&ev.time, "", out);
                }
                kernel::loss(ev, out);
            }
            FormatKind::Fwlog => fwlog::loss(ev, out),
            FormatKind::Json => json::loss(ev, out),
            FormatKind::Ecs => ecs::loss(&self.opts.hostname, ev, out),
        }
    }

    /// `Mmm dd HH:MM:SS HOST TAG` (TAG includes its trailing space when not empty).
    fn framing(&self, t: &Timestamp, tag: &str, out: &mut Vec<u8>) {
        time::syslog(out, t);
        write::s(out, " ");
        let host = if self.opts.hostname.is_empty() {
            "localhost"
        } else {
            &self.opts.hostname
        };
        // A host name with a space would shift every syslog field: escape it too.
        for &b in host.as_bytes() {
            if b == b' ' {
                out.extend_from_slice(b"\\x20");
            } else {
                escape::escape_into(out, &[b]);
            }
        }
        write::s(out, " ");
        write::s(out, tag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_flags_parse() {
        assert_eq!("".parse::<LogFlags>(), Ok(LogFlags::default()));
        assert_eq!("all".parse::<LogFlags>(), Ok(LogFlags::ALL));
        let f: LogFlags = "tcp-sequence, skuid".parse().expect("parse");
        assert!(f.tcp_sequence && f.skuid && !f.ether && !f.ip_options && !f.tcp_options);
        let e = "tcp-sequence,bogus".parse::<LogFlags>().unwrap_err();
        assert!(e.to_string().contains("\"bogus\""), "{e}");
    }
}
