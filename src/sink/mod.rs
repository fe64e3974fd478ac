//! Output targets ("sinks"): what every output receives, and how a batch reaches its target.
//!
//! Two layers:
//! - [`PacketSink`] is what the processing loop talks to: it is handed each packet once,
//!   decoded (once, by the loop, for every output), with its names and its spool record, and
//!   each loss event, then asked to `commit` the batch. Text outputs ([`text::TextSink`]) format into a buffer; outputs that store
//!   records (databases, pcap files) implement the same trait beside them. The spool is
//!   acknowledged only after every output's `commit` returned `Ok`.
//! - [`Sink`] is the byte target behind a text output: a file, stdout, syslog.
//!
//! `PacketSink` contract:
//! - `commit` returning `Ok` means everything handed over since the last `Ok` is durable at the
//!   target (as durable as the output's fsync policy makes it).
//! - After an `Err`, the loop hands over nothing new and calls `commit` again (with back-off);
//!   the output resumes where it stopped, so nothing is lost or written twice.
//!
//! Byte [`Sink`] invariants (the daemon acknowledges spool records on the strength of these):
//! - `write_batch` returning `Ok` means every byte of the batch reached the target: for a file,
//!   written with O_APPEND (and `fdatasync`ed when the sink syncs); for syslog, every message sent.
//! - After an `Err`, the caller passes the *same* batch again; the sink remembers how far it got
//!   and resumes there, so a full disk or a dead syslog never loses or doubles a line.
//! - `reopen` (SIGHUP) opens the path again: lines written before it are in the old (rotated) file,
//!   lines after it in the new one, none in both.
//! - A failed `fdatasync` is never retried ([`SyncFailed`]): Linux reports a write-back error
//!   once and may drop the pages it could not write, so a later sync returning `Ok` would prove
//!   nothing about the lines written before it. The loop stops instead, nothing of the unsynced
//!   lines acknowledged, and the next start prints them again (PostgreSQL stops on a failed
//!   fsync for the same reason).

pub mod file;
pub mod pcap;
pub mod sql;
mod stdout;
pub mod syslog;
pub mod tail;
pub mod text;

use std::io;
use std::str::FromStr;

use crate::decode::Decoded;
use crate::format::{FormatKind, LossEvent, Names};
use crate::packet::Packet;

/// The most one `write` to an output file takes: larger batches are written in pieces.
///
/// Linux puts a write of 2 MiB or more into 2 MiB page-cache folios (filesystems with large
/// folios: ext4, xfs), each a free 2 MiB block of memory. On a virtual machine whose host takes
/// back free blocks of that size (virtio-balloon free page reporting), each such folio is then
/// faulted in from the host: ten times the CPU of the same bytes written 1 MiB at a time (500 MB
/// with `dd` on the project's test VM: bs=1M 0.09 s of system time, bs=2M 1.2 s). Smaller writes
/// get smaller folios from memory the guest still holds; the extra system calls cost nothing
/// next to 1 MiB of copying. A backlog's batches are 4 MiB (`pipeline::commit`).
pub const WRITE_CHUNK: usize = 1 << 20;

/// An output file's `fdatasync` failed: what was written since its last good sync may be lost
/// even if a later sync succeeds, so the loop must stop rather than retry (see the module doc).
#[derive(Debug, thiserror::Error)]
#[error("fdatasync failed: {0}; lines written since the last good sync may be lost, so fwlog stops, and its next start prints them again")]
pub struct SyncFailed(pub io::Error);

/// Whether `e` is (or carries) a [`SyncFailed`].
pub fn is_sync_failure(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<SyncFailed>())
}

/// A copy of an error handed back from another thread (`io::Error` is not `Clone`): the OS
/// error code, or the kind and text, and a [`SyncFailed`] stays one.
pub fn copy_error(e: &io::Error) -> io::Error {
    if let Some(SyncFailed(inner)) = e.get_ref().and_then(|i| i.downcast_ref::<SyncFailed>()) {
        return io::Error::new(e.kind(), SyncFailed(copy_error(inner)));
    }
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// One packet as every output sees it: once, after its names are known.
pub struct PacketView<'a> {
    /// The spool sequence number of the record (unique and increasing within one spool).
    pub seq: u64,
    /// The spool record itself: the NFLOG message plus fwlog's TLVs (what a LINKTYPE_NFLOG
    /// pcap stores).
    pub record: &'a [u8],
    pub packet: &'a Packet<'a>,
    /// The packet's headers, decoded once for every output (`crate::decode::decode`).
    pub decoded: &'a Decoded<'a>,
    pub names: &'a dyn Names,
}

/// An output as the processing loop sees it. See the module docs for the contract.
pub trait PacketSink: Send {
    /// Take one packet into the current batch.
    fn packet(&mut self, p: &PacketView<'_>);
    /// Take one loss event (`seq` is the spool sequence number of the loss record).
    fn loss(&mut self, ev: &LossEvent, seq: u64);
    /// How much is waiting for `commit` (bytes or an estimate of them); 0 when nothing is.
    /// A batch handed to a thread of the sink's own and not yet answered is still waiting:
    /// the loop commits (and so retries) only outputs whose `pending` is not 0.
    fn pending(&self) -> usize;
    /// Make the batch durable at the target; on `Err`, keep it to be committed again.
    fn commit(&mut self) -> io::Result<()>;
    /// Open the target again (SIGHUP).
    fn reopen(&mut self) -> io::Result<()>;
    /// For messages: the target as the user wrote it.
    fn describe(&self) -> String;
    /// Rows a database output's target refused since start (see [`sql::refusal`]); nothing
    /// for the other outputs.
    fn refused(&self) -> sql::refusal::Counts {
        sql::refusal::Counts::default()
    }
    /// Whether [`detach`](Self::detach) can hand this output's batches to another thread.
    fn detachable(&self) -> bool {
        false
    }
    /// Hand the batch that `commit` would commit next, with the byte sink it goes to, over to
    /// be committed on another thread ([`text::Detached::run`]), while new packets go into a
    /// fresh batch; `pending` no longer counts it. `None` when there is nothing to commit or
    /// the output is not [`detachable`](Self::detachable). Nothing else is committed until
    /// [`attach`](Self::attach) gives it back.
    ///
    /// `sync`: the batch is written and synced, with everything written unsynced before it
    /// (then a detach with nothing pending still hands over a sync when one is owed); false:
    /// written only, to be synced by a later detach with `sync` ([`Sink::write_unsynced`]).
    fn detach(&mut self, _sync: bool) -> Option<text::Detached> {
        None
    }
    /// Take a detached batch back with the outcome of its commit: committed (done), or failed
    /// or not tried (kept and committed first next time, resumed where it stopped).
    fn attach(&mut self, _d: text::Detached) {}
}

/// Where an output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `-`
    Stdout,
    /// A file path, appended to.
    File(std::path::PathBuf),
    /// `syslog`: the local syslog socket (/dev/log).
    Syslog,
    /// `udp://HOST:PORT`: a remote syslog server (RFC 3164 over UDP).
    Udp(String),
    /// `tcp://HOST:PORT`: a remote syslog server (RFC 3164 over TCP, newline-framed).
    Tcp(String),
    /// `pcap:PATH` or `pcap-raw:PATH`: a capture file of the packets themselves.
    Pcap(pcap::PcapSpec),
    /// `sqlite:PATH`: an SQLite database, one row per packet (see [`sql`]).
    Sqlite(std::path::PathBuf),
    /// `postgresql://...` or `postgres://...`: a PostgreSQL server (the URL as given).
    Postgres(String),
    /// `mysql://...` or `mariadb://...`: a MariaDB or MySQL server (the URL as given).
    MySql(String),
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Target, String> {
        let remote = |rest: &str, scheme: &str| -> Result<String, String> {
            match rest.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    Ok(rest.to_string())
                }
                _ => Err(format!("{scheme}://{rest}: expected {scheme}://HOST:PORT")),
            }
        };
        Ok(match s {
            "" => return Err("empty output target".into()),
            "-" => Target::Stdout,
            "syslog" => Target::Syslog,
            _ if s.starts_with("udp://") => Target::Udp(remote(&s[6..], "udp")?),
            _ if s.starts_with("tcp://") => Target::Tcp(remote(&s[6..], "tcp")?),
            _ if s.starts_with("pcap:") => {
                Target::Pcap(pcap::PcapSpec::parse(pcap::PcapLink::Nflog, &s[5..])?)
            }
            _ if s.starts_with("pcap-raw:") => {
                Target::Pcap(pcap::PcapSpec::parse(pcap::PcapLink::Raw, &s[9..])?)
            }
            _ if s.starts_with("sqlite:") => match &s[7..] {
                "" => return Err("sqlite: expected sqlite:PATH".into()),
                p => Target::Sqlite(p.into()),
            },
            _ if s.starts_with("postgresql://") || s.starts_with("postgres://") => {
                sql::pg::check_url(s)?;
                Target::Postgres(s.to_string())
            }
            _ if s.starts_with("mysql://") || s.starts_with("mariadb://") => {
                sql::my::check_url(s)?;
                Target::MySql(s.to_string())
            }
            _ if s.contains("://") => {
                return Err(format!("{s}: unknown scheme (use udp:// or tcp://)"))
            }
            _ => Target::File(s.into()),
        })
    }
}

/// One `--output [FORMAT=]TARGET`: where, and in which format (None: the `--format` default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputSpec {
    pub format: Option<FormatKind>,
    pub target: Target,
}

impl FromStr for OutputSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<OutputSpec, String> {
        if let Some((f, rest)) = s.split_once('=') {
            let format = match f {
                "fwlog" => Some(FormatKind::Fwlog),
                "kernel" => Some(FormatKind::Kernel),
                "json" => Some(FormatKind::Json),
                "ecs" => Some(FormatKind::Ecs),
                _ => None,
            };
            if format.is_some() {
                let target: Target = rest.parse()?;
                if let Target::Pcap(p) = &target {
                    return Err(format!("{f}={}: a pcap output has no text format", p.text));
                }
                if target.is_database() {
                    return Err(format!("{s}: a database output takes no format"));
                }
                return Ok(OutputSpec { format, target });
            }
        }
        Ok(OutputSpec {
            format: None,
            target: s.parse()?,
        })
    }
}

impl Target {
    /// Syslog targets frame messages themselves: the formatter must not add a syslog header.
    pub fn is_syslog(&self) -> bool {
        matches!(self, Target::Syslog | Target::Udp(_) | Target::Tcp(_))
    }

    /// Database targets store rows, not formatted lines.
    pub fn is_database(&self) -> bool {
        matches!(
            self,
            Target::Sqlite(_) | Target::Postgres(_) | Target::MySql(_)
        )
    }
}

/// A place lines go to. See the module docs for the contract.
pub trait Sink: Send {
    /// Write one batch of complete lines (each ending in `\n`).
    fn write_batch(&mut self, lines: &[u8]) -> io::Result<()>;
    /// Write one batch as `write_batch` does but leave its sync to a later [`sync`](Self::sync)
    /// (or `write_batch`), which makes every batch written since durable at once: nothing of
    /// it may be acknowledged before then. Same resume contract after an `Err`. Sinks that
    /// never sync write it as `write_batch`.
    fn write_unsynced(&mut self, lines: &[u8]) -> io::Result<()> {
        self.write_batch(lines)
    }
    /// Make every batch written by [`write_unsynced`](Self::write_unsynced) durable; after an
    /// `Err`, call it (or `write_batch`) again.
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Whether [`write_unsynced`](Self::write_unsynced) of `len` bytes now normally only
    /// copies them into the page cache: it waits for no reader or server and syncs nothing (a
    /// regular file on a local filesystem, with no reopen waiting). It can still wait for the
    /// disk at times (the page cache throttling a writer far ahead of its disk, a journal):
    /// such a write may run on the processing loop's own thread instead of the committer's
    /// (`pipeline::commit`), which stops doing so for a while after one was slow; anything else
    /// (a FIFO, a pipe, a terminal, syslog, a file on NFS) keeps the committer thread. False by
    /// default.
    fn copies_only(&self, _len: usize) -> bool {
        false
    }
    /// Open the target again (SIGHUP, after logrotate renamed the file).
    fn reopen(&mut self) -> io::Result<()>;
    /// For messages: the target as the user wrote it.
    fn describe(&self) -> String;
}

/// Open a sink. `kernel_tag` selects the syslog tag `kernel` (what fail2ban and psad match)
/// rather than `fwlog`; `sync` makes file sinks fdatasync each batch.
pub fn open(target: &Target, kernel_tag: bool, sync: bool) -> io::Result<Box<dyn Sink>> {
    Ok(match target {
        Target::Stdout => Box::new(file::FileSink::stdout()),
        Target::File(p) => Box::new(file::FileSink::open(p, sync)?),
        Target::Syslog | Target::Udp(_) | Target::Tcp(_) => {
            Box::new(syslog::SyslogSink::open(target.clone(), kernel_tag)?)
        }
        Target::Pcap(p) => {
            return Err(io::Error::other(format!(
                "{}: a pcap output takes packets, not lines",
                p.text
            )))
        }
        Target::Sqlite(_) | Target::Postgres(_) | Target::MySql(_) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a database is not a byte sink",
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_sync_stays_one_when_copied_and_other_errors_keep_code_and_text() {
        let eio = io::Error::from_raw_os_error(libc::EIO);
        let failed = io::Error::other(SyncFailed(eio));
        let copy = copy_error(&failed);
        assert!(is_sync_failure(&copy));
        assert!(copy.to_string().contains("fdatasync failed"), "{copy}");
        let full = copy_error(&io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(!is_sync_failure(&full));
        assert_eq!(full.raw_os_error(), Some(libc::ENOSPC));
        let other = copy_error(&io::Error::new(io::ErrorKind::WriteZero, "wrote nothing"));
        assert_eq!(other.kind(), io::ErrorKind::WriteZero);
        assert_eq!(other.to_string(), "wrote nothing");
    }

    #[test]
    fn targets_and_per_output_formats_parse() {
        assert_eq!("-".parse::<Target>().unwrap(), Target::Stdout);
        assert_eq!("syslog".parse::<Target>().unwrap(), Target::Syslog);
        assert_eq!(
            "udp://127.0.0.1:514".parse::<Target>().unwrap(),
            Target::Udp("127.0.0.1:514".into())
        );
        assert_eq!(
            "tcp://[::1]:514".parse::<Target>().unwrap(),
            Target::Tcp("[::1]:514".into())
        );
        assert!("udp://nohost".parse::<Target>().is_err());
        assert!("http://x:1".parse::<Target>().is_err());
        let o: OutputSpec = "pcap:/var/log/fw.pcap?max-size=1MiB&keep=3"
            .parse()
            .unwrap();
        assert!(matches!(o.target, Target::Pcap(ref p) if p.keep == Some(3)));
        assert!("json=pcap:/x.pcap".parse::<OutputSpec>().is_err());
        assert!("pcap-raw:/x.pcap?keep=1".parse::<Target>().is_err());
        assert_eq!(
            "sqlite:/var/lib/fwlog/db".parse::<Target>().unwrap(),
            Target::Sqlite("/var/lib/fwlog/db".into())
        );
        assert!("sqlite:".parse::<Target>().is_err());
        assert_eq!(
            "postgres://u@h/db".parse::<Target>().unwrap(),
            Target::Postgres("postgres://u@h/db".into())
        );
        for bad in [
            "bogus",
            "verify-ca",
            "verify-full",
            "verify-full&sslrootcert=/nonexistent",
        ] {
            let e = format!("postgresql://u:pw@h/db?sslmode={bad}").parse::<Target>();
            assert!(e.as_ref().is_err_and(|e| !e.contains("pw")), "{e:?}");
        }
        assert!("postgresql://u@h/db?sslmode=require"
            .parse::<Target>()
            .is_ok());
        assert_eq!(
            "mariadb://u@h/db".parse::<Target>().unwrap(),
            Target::MySql("mariadb://u@h/db".into())
        );
        assert!("mysql://u@h".parse::<Target>().is_err());
        let o: OutputSpec = "kernel=syslog".parse().unwrap();
        assert_eq!(
            (o.format, o.target),
            (Some(FormatKind::Kernel), Target::Syslog)
        );
        let o: OutputSpec = "/var/log/a=b".parse().unwrap();
        assert_eq!(
            (o.format, o.target),
            (None, Target::File("/var/log/a=b".into()))
        );
    }
}
