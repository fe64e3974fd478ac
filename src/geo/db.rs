//! One opened mmdb database: read once into memory, checked whole, and asked per address.
//!
//! Read, not memory-mapped: `geoipupdate` replaces the file while fwlog runs, and a mapping of
//! a file that another program truncates or rewrites in place turns into SIGBUS on the next
//! lookup. A copy in memory costs the file's size (GeoLite2-City: about 60 MB) and can never
//! change under us; a SIGHUP reads the new file and swaps it in.
//!
//! A database is checked in full when opened ([`maxminddb::Reader::verify`]), so a truncated
//! or corrupt file is one error at start (or at SIGHUP) rather than lookups failing later.
//! Lookups still never trust it: a decoding error is counted and the address gets no data.

use std::fs::File;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{geoip2, path, MaxMindDbError, Reader};

use super::info::{location, safe_text, GeoInfo};

/// Largest database read (the biggest commercial City databases are a few hundred MB).
pub const MAX_DB_BYTES: u64 = 1 << 30;

/// Why a database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{what} database {}: cannot read it: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} database {}: larger than {} MiB, not a database fwlog reads", path.display(), MAX_DB_BYTES >> 20)]
    TooLarge { what: &'static str, path: PathBuf },
    #[error("{what} database {}: not a valid MaxMind DB (mmdb) file, truncated or corrupt: {source}", path.display())]
    Invalid {
        what: &'static str,
        path: PathBuf,
        source: MaxMindDbError,
    },
}

/// Which of the two flags a database came from: what it is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    /// `--geoip`: country, city, location (City or Country databases).
    Place,
    /// `--asn`: autonomous system number and organisation.
    Asn,
}

impl DbKind {
    pub fn what(self) -> &'static str {
        match self {
            DbKind::Place => "GeoIP",
            DbKind::Asn => "ASN",
        }
    }
}

pub struct Db {
    kind: DbKind,
    reader: Reader<Vec<u8>>,
}

impl Db {
    /// Read, parse and verify the database at `path`.
    pub fn open(kind: DbKind, path: &Path) -> Result<Db, DbError> {
        let what = kind.what();
        let read_err = |source| DbError::Read {
            what,
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(read_err)?;
        let mut buf = Vec::new();
        file.take(MAX_DB_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(read_err)?;
        if buf.len() as u64 > MAX_DB_BYTES {
            return Err(DbError::TooLarge {
                what,
                path: path.to_path_buf(),
            });
        }
        let invalid = |source| DbError::Invalid {
            what,
            path: path.to_path_buf(),
            source,
        };
        let reader = Reader::from_source(buf).map_err(invalid)?;
        reader.verify().map_err(invalid)?;
        Ok(Db { kind, reader })
    }

    /// The database's own name for its type (`GeoLite2-City`), for messages.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// Fill this database's part of `info`. Errors (an address of the wrong family for the
    /// database, a record that does not decode) leave it empty and are returned for counting.
    pub fn fill(&self, ip: IpAddr, info: &mut GeoInfo) -> Result<(), MaxMindDbError> {
        let r = self.reader.lookup(ip)?;
        if !r.has_data() {
            return Ok(());
        }
        match self.kind {
            DbKind::Place => {
                // GeoIP2/GeoLite2 and DB-IP City/Country records; IPinfo Lite's flat record
                // (`country_code`, `country` as strings) does not decode as one and is read by
                // path below.
                if let Ok(Some(c)) = r.decode::<geoip2::City>() {
                    info.country_code = safe_text(c.country.iso_code);
                    info.country = safe_text(c.country.names.english);
                    info.city = safe_text(c.city.names.english);
                    info.location = location(c.location.latitude, c.location.longitude);
                }
                if info.country_code.is_none() {
                    info.country_code = safe_text(r.decode_path(&path!["country_code"])?);
                    if info.country.is_none() {
                        info.country = safe_text(r.decode_path(&path!["country"]).ok().flatten());
                    }
                }
            }
            DbKind::Asn => {
                if let Ok(Some(a)) = r.decode::<geoip2::Asn>() {
                    info.asn = a.autonomous_system_number.filter(|&n| n != 0);
                    info.as_org = safe_text(a.autonomous_system_organization);
                }
                if info.asn.is_none() {
                    // IPinfo Lite: `asn` is the text `AS3320`, `as_name` the organisation.
                    let text: Option<&str> = r.decode_path(&path!["asn"]).ok().flatten();
                    info.asn = text
                        .and_then(|t| t.strip_prefix("AS"))
                        .and_then(|n| n.parse().ok())
                        .filter(|&n| n != 0);
                    if info.as_org.is_none() {
                        info.as_org = safe_text(r.decode_path(&path!["as_name"]).ok().flatten());
                    }
                }
            }
        }
        Ok(())
    }
}
