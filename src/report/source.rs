//! Report sources: where events come from.
//!
//! - `spool:DIR`: a spool opened read-only (as `fwlog replay` does): every record still on
//!   disk, acknowledged or not; loss records count as loss. Damaged regions are skipped by the
//!   spool reader and said once on standard error.
//! - a path, or `-` for standard input: fwlog's JSON lines (`--format json`). A line that is not
//!   a packet or loss object of that schema is counted as unreadable, never fatal.
//! - `sqlite:PATH`: a database of fwlog's SQLite output, read-only ([`super::sqlite`]).
//! - `postgresql://...`, `postgres://...`: a database of fwlog's PostgreSQL output, read-only
//!   ([`super::pg`]).
//! - `mysql://...`, `mariadb://...`: a database of fwlog's MariaDB/MySQL output, read-only,
//!   rows streamed ([`super::mysql`]).
//!
//! Databases are read in parts ([`super::parts`]), not through [`Source::read`].

use std::borrow::Cow;
use std::io::BufRead;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::Event;
use crate::decode::{self, Net, Transport};
use crate::nflog::attr::{self, LossRecord, TlvOrder};
use crate::pipeline::loss::EPOCH;

/// One `SOURCE` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Spool(PathBuf),
    /// A JSON lines file; `-` is standard input.
    JsonLines(PathBuf),
    /// `sqlite:PATH`
    Sqlite(PathBuf),
    /// `postgresql://...` as given (it may hold a password: never printed as is).
    Postgres(String),
    /// `mysql://...` or `mariadb://...` as given (it may hold a password: never printed as is).
    Mysql(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Usage(String),
    #[error("{what}: {message}")]
    Sql { what: String, message: String },
    #[error("spool:{}: {source}", path.display())]
    Spool {
        path: PathBuf,
        source: fwlog_spool::Error,
    },
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl std::str::FromStr for Source {
    type Err = SourceError;

    fn from_str(s: &str) -> Result<Source, SourceError> {
        if let Some(dir) = s.strip_prefix("spool:") {
            return Ok(Source::Spool(dir.into()));
        }
        if let Some(path) = s.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(SourceError::Usage("sqlite: expected sqlite:PATH".into()));
            }
            return Ok(Source::Sqlite(path.into()));
        }
        if s.starts_with("postgresql://") || s.starts_with("postgres://") {
            crate::sink::sql::pg::check_url(s).map_err(SourceError::Usage)?;
            return Ok(Source::Postgres(s.into()));
        }
        if s.starts_with("mysql://") || s.starts_with("mariadb://") {
            crate::sink::sql::my::check_url(s).map_err(SourceError::Usage)?;
            return Ok(Source::Mysql(s.into()));
        }
        Ok(Source::JsonLines(s.into()))
    }
}

/// What reading the sources skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// JSON lines that are not fwlog packet or loss objects.
    pub unreadable_lines: u64,
    /// Spool damage the reader skipped (corrupt regions, unreadable segments).
    pub spool_damage: u64,
}

impl Source {
    /// Hand every event of a spool or JSON lines source to `f` (a database is read in parts:
    /// [`super::sqlite::aggregate`], [`super::pg::aggregate`]).
    pub fn read(
        &self,
        stats: &mut ReadStats,
        f: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), SourceError> {
        match self {
            Source::Spool(dir) => read_spool(dir, stats, f),
            Source::Sqlite(_) | Source::Postgres(_) | Source::Mysql(_) => Err(SourceError::Usage(
                "a database source is read in parts (report::parts), not through Source::read"
                    .into(),
            )),
            Source::JsonLines(path) => {
                let read_err = |source| SourceError::Read {
                    path: path.clone(),
                    source,
                };
                if path.as_os_str() == "-" {
                    read_json(std::io::stdin().lock(), stats, f).map_err(read_err)
                } else {
                    let file = std::fs::File::open(path).map_err(read_err)?;
                    read_json(std::io::BufReader::new(file), stats, f).map_err(read_err)
                }
            }
        }
    }
}

fn read_spool(
    dir: &std::path::Path,
    stats: &mut ReadStats,
    f: &mut dyn FnMut(Event<'_>),
) -> Result<(), SourceError> {
    let spool = fwlog_spool::ReadOnlySpool::open(dir).map_err(|source| SourceError::Spool {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut records = spool.records();
    for r in &mut records {
        match r {
            Ok(rec) => f(spool_event(&rec.data)),
            Err(e) => {
                eprintln!("fwlog: spool {}: {e}", dir.display());
                stats.spool_damage += 1;
                break;
            }
        }
    }
    let st = records.stats();
    stats.spool_damage += st.corrupt_regions_skipped + st.unreadable_segments;
    Ok(())
}

/// The event for one spool record (a packet or a loss record).
pub fn spool_event(data: &[u8]) -> Event<'static> {
    let p = attr::parse(data, TlvOrder::NATIVE, EPOCH);
    let mut e = Event {
        time: p.timestamp.sec,
        group: Some(p.group),
        ..Event::default()
    };
    if let Some(l) = LossRecord::decode(data) {
        e.group = l.group;
        // A loss of unknown size (ENOBUFS) is at least one packet.
        e.lost = l.count.unwrap_or(1).max(1);
        return e;
    }
    if let Some(pre) = p.prefix {
        let mut v = Vec::with_capacity(pre.len());
        crate::format::escape::escape_into(&mut v, pre);
        e.prefix = Some(String::from_utf8_lossy(&v).into_owned().into());
    }
    let d = decode::decode(&p);
    let transport = match &d.net {
        Net::Ipv4(v4) => {
            e.src = Some(v4.src.into());
            e.dst = Some(v4.dst.into());
            e.proto = Some(v4.protocol);
            Some(&v4.transport)
        }
        Net::Ipv6(v6) => {
            e.src = Some(v6.src.into());
            e.dst = Some(v6.dst.into());
            e.proto = Some(v6.protocol);
            Some(&v6.transport)
        }
        _ => None,
    };
    e.dport = match transport {
        Some(Transport::Tcp(t)) => Some(t.dst_port),
        Some(Transport::Udp(u)) => Some(u.dst_port),
        _ => None,
    };
    e
}

/// The parts of fwlog's JSON schema the report reads (see fwlog(8), FORMATS, json).
#[derive(Deserialize)]
struct Line {
    event: String,
    time: String,
    group: Option<u16>,
    prefix: Option<String>,
    count: Option<u64>,
    ip: Option<IpPart>,
    transport: Option<TransportPart>,
}

#[derive(Deserialize)]
struct IpPart {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    src_name: Option<String>,
    protocol: Option<u8>,
    src_geo: Option<GeoPart>,
    src_as: Option<AsPart>,
}

#[derive(Deserialize)]
struct GeoPart {
    country_code: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
}

#[derive(Deserialize)]
struct AsPart {
    number: Option<u32>,
    org: Option<String>,
}

#[derive(Deserialize)]
struct TransportPart {
    dst_port: Option<u16>,
}

fn read_json(
    input: impl BufRead,
    stats: &mut ReadStats,
    f: &mut dyn FnMut(Event<'_>),
) -> std::io::Result<()> {
    for line in input.split(b'\n') {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Line>(&line)
            .ok()
            .and_then(json_event)
        {
            Some(e) => f(e),
            None => stats.unreadable_lines += 1,
        }
    }
    Ok(())
}

fn json_event(l: Line) -> Option<Event<'static>> {
    let time = chrono::DateTime::parse_from_rfc3339(&l.time)
        .ok()?
        .timestamp();
    let mut e = Event {
        time,
        group: l.group,
        prefix: l.prefix.map(Cow::Owned),
        ..Event::default()
    };
    match l.event.as_str() {
        "loss" => {
            e.lost = l.count.unwrap_or(1).max(1);
            return Some(e);
        }
        "packet" => {}
        _ => return None,
    }
    if let Some(ip) = l.ip {
        e.src = ip.src;
        e.dst = ip.dst;
        e.proto = ip.protocol;
        e.src_name = ip.src_name.map(Cow::Owned);
        if let Some(g) = ip.src_geo {
            e.src_country = g.country_code.map(Cow::Owned);
            e.src_location = crate::geo::info::location(g.lat, g.lon);
        }
        if let Some(a) = ip.src_as {
            e.src_asn = a.number;
            e.src_org = a.org.map(Cow::Owned);
        }
    }
    e.dport = l.transport.and_then(|t| t.dst_port);
    Some(e)
}
