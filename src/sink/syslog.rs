//! Syslog sinks: the local socket (`syslog`), and remote servers (`udp://`, `tcp://`).
//!
//! The `syslog` crate carries the messages (it finds /dev/log, falls back from datagram to stream
//! sockets, and speaks UDP and TCP); fwlog supplies its own RFC 3164 header because the crate's
//! always says `TAG[PID]:`, and fail2ban, psad and logwatch match the kernel's bare `kernel:`.
//! Each line of a batch is one message; fwlog-format blocks therefore arrive as one message per
//! line, with the blank separator lines left out.

use std::io::{self, Write};

use syslog::{Facility, LogFormat, Logger, LoggerBackend, Severity};

use super::{Sink, Target};

#[derive(Clone)]
struct Rfc3164 {
    facility: Facility,
    /// Remote servers get our host name in the header; the local daemon adds its own.
    hostname: Option<String>,
    tag: &'static str,
    /// TCP streams need a frame delimiter (RFC 6587 non-transparent framing: LF).
    newline: bool,
}

impl LogFormat<&str> for Rfc3164 {
    fn format<W: Write>(&self, w: &mut W, severity: Severity, msg: &str) -> syslog::Result<()> {
        let pri = self.facility as u8 | severity as u8;
        let ts = chrono::Local::now().format("%b %e %H:%M:%S");
        let nl = if self.newline { "\n" } else { "" };
        let r = match &self.hostname {
            Some(h) => write!(w, "<{pri}>{ts} {h} {}: {msg}{nl}", self.tag),
            None => write!(w, "<{pri}>{ts} {}: {msg}{nl}", self.tag),
        };
        r.map_err(syslog::Error::Write)
    }
}

pub struct SyslogSink {
    target: Target,
    format: Rfc3164,
    logger: Option<Logger<LoggerBackend, Rfc3164>>,
    /// Byte offset in the current batch of the next line to send.
    done: usize,
}

fn to_io(e: syslog::Error) -> io::Error {
    match e {
        // A write past TCP_TIMEOUT fails with EAGAIN: to the processing loop that means "a
        // stream not read yet" (retried at once, quietly); a collector that stalls for seconds
        // is a failure to report and back off from.
        syslog::Error::Io(e) | syslog::Error::Write(e) if e.kind() == io::ErrorKind::WouldBlock => {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the server accepted nothing for {} s",
                    TCP_TIMEOUT.as_secs()
                ),
            )
        }
        syslog::Error::Io(e) | syslog::Error::Write(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

impl SyslogSink {
    pub fn open(target: Target, kernel_tag: bool) -> io::Result<SyslogSink> {
        let remote = !matches!(target, Target::Syslog);
        let format = Rfc3164 {
            facility: Facility::LOG_DAEMON,
            hostname: remote.then(crate::hostname::short_hostname),
            tag: if kernel_tag { "kernel" } else { "fwlog" },
            newline: matches!(target, Target::Tcp(_)),
        };
        let mut s = SyslogSink {
            target,
            format,
            logger: None,
            done: 0,
        };
        s.connect()?;
        Ok(s)
    }

    fn connect(&mut self) -> io::Result<()> {
        let f = self.format.clone();
        let logger = match &self.target {
            Target::Udp(addr) => {
                let local = if addr.starts_with('[') {
                    "[::]:0"
                } else {
                    "0.0.0.0:0"
                };
                syslog::udp(f, local, addr.as_str())
            }
            Target::Tcp(addr) => tcp_connect(addr).map(|stream| Logger {
                formatter: f,
                backend: LoggerBackend::Tcp(std::io::BufWriter::new(stream)),
            }),
            _ => syslog::unix(f).map_err(|_| syslog::Error::Io(local_syslog_missing())),
        }
        .map_err(|e| match e {
            syslog::Error::Io(io) => {
                io::Error::new(io.kind(), format!("{}: {io}", self.describe()))
            }
            e => io::Error::other(format!("{}: {e}", self.describe())),
        })?;
        self.logger = Some(logger);
        Ok(())
    }
}

/// Longest a `tcp://` output may take to connect to one address, or to accept a write: the
/// sink runs on the processing loop, and a collector behind a firewall that drops packets would
/// otherwise hold it for minutes (the kernel's SYN retries), so the loop could not go round.
/// Past it the write fails, is reported, and is retried with back-off; packets wait in the spool.
const TCP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Connects to each address `addr` resolves to in turn, each within [`TCP_TIMEOUT`], and sets
/// the same limit on writes. (The syslog crate's `tcp` has neither.) Name resolution itself uses
/// the system resolver and is not bounded here.
fn tcp_connect(addr: &str) -> syslog::Result<std::net::TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for a in addr.to_socket_addrs().map_err(syslog::Error::Io)? {
        match std::net::TcpStream::connect_timeout(&a, TCP_TIMEOUT) {
            Ok(s) => {
                s.set_write_timeout(Some(TCP_TIMEOUT))
                    .map_err(syslog::Error::Io)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(syslog::Error::Io(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "no address")
    })))
}

impl Sink for SyslogSink {
    fn write_batch(&mut self, lines: &[u8]) -> io::Result<()> {
        if self.logger.is_none() {
            self.connect()?;
        }
        while self.done < lines.len() {
            let rest = &lines[self.done..];
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let line = &rest[..end];
            if !line.is_empty() {
                // Formatters emit ASCII only; from_utf8 failing would be a formatter bug, and
                // sending a lossy copy beats dropping the line.
                let text = String::from_utf8_lossy(line);
                let logger = self
                    .logger
                    .as_mut()
                    .ok_or_else(|| io::Error::other("not connected"))?;
                if let Err(e) = logger.warning(text.as_ref()) {
                    // Reconnect on the next try: the daemon may have restarted.
                    self.logger = None;
                    return Err(to_io(e));
                }
            }
            self.done += (end + 1).min(rest.len());
        }
        self.done = 0;
        Ok(())
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.logger = None;
        self.connect()
    }

    fn describe(&self) -> String {
        match &self.target {
            Target::Syslog => "syslog".into(),
            Target::Udp(a) => format!("udp://{a}"),
            Target::Tcp(a) => format!("tcp://{a}"),
            Target::Stdout => "-".into(),
            Target::File(p) => p.display().to_string(),
            Target::Pcap(s) => s.text.clone(),
            Target::Sqlite(p) => format!("sqlite:{}", p.display()),
            Target::Postgres(_) => "postgresql".into(),
            Target::MySql(_) => "mysql".into(),
        }
    }
}

/// Whether a syslog daemon takes messages on /dev/log: checked before `fwlog run` creates
/// anything, so `--output syslog` on a machine without one fails at once and leaves no spool.
pub fn check_local_syslog() -> io::Result<()> {
    std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.connect("/dev/log"))
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("no syslog daemon listens on /dev/log ({e})"),
            )
        })
}

/// Why the local syslog cannot be reached, in words: the syslog crate tries /dev/log and
/// /var/run/syslog and reports only its own wrapper of the last error.
fn local_syslog_missing() -> io::Error {
    match check_local_syslog() {
        Ok(()) => io::Error::other("the syslog socket /dev/log refused the connection"),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_messages_carry_a_bare_kernel_tag_one_per_line() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let addr = server.local_addr().unwrap().to_string();
        let mut s = SyslogSink::open(Target::Udp(addr), true).unwrap();
        s.write_batch(b"IN= OUT=lo SRC=1.2.3.4 \n\nsecond\n")
            .unwrap();
        let mut buf = [0u8; 2048];
        let n = server.recv(&mut buf).unwrap();
        let first = std::str::from_utf8(&buf[..n]).unwrap().to_string();
        let n = server.recv(&mut buf).unwrap();
        let second = std::str::from_utf8(&buf[..n]).unwrap().to_string();
        assert!(first.starts_with("<28>"), "{first}"); // daemon.warning
        assert!(
            first.ends_with(" kernel: IN= OUT=lo SRC=1.2.3.4 "),
            "{first}"
        );
        assert!(second.ends_with(" kernel: second"), "{second}");
    }
}
