//! `fwlog read FILE...`: capture files through the same pipeline as live packets.
//!
//! A reader thread turns each capture record into an NFLOG-shaped record (see
//! [`crate::nflog::attr::encode_packet`]) and hands it to the pipeline, which resolves, formats
//! and writes exactly as `fwlog run` does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::{IfNames, ReadConfig};
use crate::exit;
use crate::nflog::attr::encode_packet;
use crate::packet::{Iface, Packet};
use crate::pcap::{read_file, to_packet, ReadError};
use crate::pipeline::source::Producer;

pub fn run(cfg: &ReadConfig) -> i32 {
    if let Some(e) = output_is_input(&cfg.outputs.specs, &cfg.files) {
        eprintln!("fwlog: {e}");
        return exit::USAGE;
    }
    let files = cfg.files.clone();
    let ifnames = cfg.ifnames;
    // A capture file has no spool: each read is a stream of its own.
    let stream = crate::sink::sql::StreamId::random;
    super::pipeline::run(&cfg.outputs, &cfg.format, &cfg.dns, stream, move |p| {
        produce(&files, ifnames, p)
    })
}

/// An output that is one of the input files (the same file, by any name) would be appended to
/// while it is read: refused before anything is opened.
fn output_is_input(
    specs: &[crate::sink::OutputSpec],
    files: &[std::path::PathBuf],
) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let id = |p: &std::path::Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    for spec in specs {
        let crate::sink::Target::File(out) = &spec.target else {
            continue;
        };
        let Some(o) = id(out) else { continue };
        if let Some(f) = files.iter().find(|f| id(f) == Some(o)) {
            return Some(format!(
                "{}: is also the input {}; refusing to write to a file being read",
                out.display(),
                f.display()
            ));
        }
    }
    None
}

fn produce(files: &[std::path::PathBuf], ifnames: IfNames, mut out: Producer) -> i32 {
    let mut host = HostIfNames::default();
    let mut status = exit::OK;
    for path in files {
        let file = match open_input(path, out.gone()) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("fwlog: {}: {e}", path.display());
                status = status.max(exit::NO_INPUT);
                continue;
            }
        };
        let mut gone = false;
        let result = read_file(std::io::BufReader::with_capacity(1 << 16, file), |rec| {
            let mut p = to_packet(rec);
            if ifnames == IfNames::Host {
                host.fill(&mut p);
            }
            let mut buf = out.spare().unwrap_or_default();
            buf.reserve(rec.data.len() + 128);
            encode_packet(&p, &mut buf);
            gone = !out.send(buf, false);
            !gone
        });
        if gone {
            return status;
        }
        match result {
            Ok(_) | Err(ReadError::Stopped) => {}
            Err(e @ ReadError::Io(_)) => {
                eprintln!("fwlog: {}: {e}", path.display());
                status = status.max(exit::NO_INPUT);
            }
            Err(e) => {
                eprintln!("fwlog: {}: {e}", path.display());
                status = status.max(exit::DATA);
            }
        }
    }
    status
}

/// Open a capture to read. O_NONBLOCK makes the open of a FIFO return at once even with no
/// writer yet (a blocked open would ignore SIGTERM); reads then wait for data in [`Input`].
fn open_input(path: &std::path::Path, gone: Arc<AtomicBool>) -> std::io::Result<Input> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let t = file.metadata()?.file_type();
    if t.is_dir() {
        return Err(std::io::Error::other("is a directory, not a capture file"));
    }
    Ok(Input {
        file,
        seen_data: false,
        gone,
    })
}

/// A capture being read; for a FIFO, reads wait for a writer in short polls so that the
/// thread notices when the pipeline has gone (SIGTERM) instead of blocking forever.
struct Input {
    file: std::fs::File,
    /// Data was read: a later end of file is the writer closing, not "no writer yet".
    seen_data: bool,
    /// The pipeline has ended (see [`Producer::gone`]).
    gone: Arc<AtomicBool>,
}

impl std::io::Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match (&self.file).read(buf) {
                Ok(0) if !self.seen_data && is_fifo(&self.file) => {}
                Ok(n) => {
                    self.seen_data |= n > 0;
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if self.gone.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("interrupted by a signal"));
            }
            let mut pfd = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&self.file),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            unsafe { libc::poll(&mut pfd, 1, 100) };
            if pfd.revents & libc::POLLHUP != 0 && !self.seen_data {
                // No writer has opened it yet: POLLHUP is immediate; wait instead of spinning.
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

fn is_fifo(f: &std::fs::File) -> bool {
    use std::os::unix::fs::FileTypeExt;
    f.metadata().is_ok_and(|m| m.file_type().is_fifo())
}

/// Interface names looked up on this host, for captures that carry only indexes.
#[derive(Default)]
struct HostIfNames {
    names: HashMap<u32, Option<Vec<u8>>>,
}

impl HostIfNames {
    fn fill<'a>(&'a mut self, p: &mut Packet<'a>) {
        for i in [p.indev, p.outdev, p.physindev, p.physoutdev]
            .iter()
            .flatten()
        {
            if i.name.is_none() {
                self.names
                    .entry(i.index)
                    .or_insert_with(|| crate::capture::index_to_name(i.index));
            }
        }
        let names = &self.names;
        let name_of = |slot: Option<Iface<'a>>| {
            slot.map(|i| Iface {
                index: i.index,
                name: i
                    .name
                    .or_else(|| names.get(&i.index).and_then(|n| n.as_deref())),
            })
        };
        p.indev = name_of(p.indev);
        p.outdev = name_of(p.outdev);
        p.physindev = name_of(p.physindev);
        p.physoutdev = name_of(p.physoutdev);
    }
}
