//! `fwlog read FILE...`: capture files through the same decode and format path as live packets.

use std::collections::HashMap;
use std::io::{self, Write};

use crate::cli::{IfNames, ReadArgs};
use crate::exit;
use crate::format::{Formatter, NoNames};
use crate::packet::Iface;
use crate::pcap::{read_file, to_packet, ReadError};
use crate::sink::open_plain_output;

/// Run the subcommand; one-line errors go to stderr, the worst outcome is the exit status.
pub fn run(args: &ReadArgs) -> i32 {
    let mut out = match open_plain_output(&args.output) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("fwlog: {e}");
            return exit::OUTPUT;
        }
    };
    let formatter = Formatter::new(args.fmt.format, crate::cmd::format_options(&args.fmt));
    let mut ifnames = HostIfNames::default();
    let mut status = exit::OK;
    let mut buf = Vec::with_capacity(1 << 16);
    let mut write_error: Option<io::Error> = None;

    for path in &args.files {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("fwlog: {}: {e}", path.display());
                status = status.max(exit::NO_INPUT);
                continue;
            }
        };
        let result = read_file(io::BufReader::with_capacity(1 << 16, file), |rec| {
            let mut p = to_packet(rec);
            if args.ifnames == IfNames::Host {
                ifnames.fill(&mut p);
            }
            formatter.packet(&p, &NoNames, &mut buf);
            if buf.len() >= 1 << 15 {
                if let Err(e) = out.write_all(&buf) {
                    write_error = Some(e);
                    return false;
                }
                buf.clear();
            }
            true
        });
        if write_error.is_none() && !buf.is_empty() {
            if let Err(e) = out.write_all(&buf) {
                write_error = Some(e);
            }
            buf.clear();
        }
        if let Some(e) = write_error.take() {
            return output_failed(&args.output, e);
        }
        match result {
            Ok(_) => {}
            Err(ReadError::Stopped) => {}
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
    if let Err(e) = out.flush() {
        return output_failed(&args.output, e);
    }
    status
}

fn output_failed(target: &str, e: io::Error) -> i32 {
    // `fwlog read ... | head` closes the pipe early: that is the reader's choice, not an error.
    if e.kind() == io::ErrorKind::BrokenPipe {
        return exit::OK;
    }
    eprintln!("fwlog: cannot write to {target}: {e}");
    exit::OUTPUT
}

/// Interface names looked up on this host, for captures that carry only indexes.
#[derive(Default)]
struct HostIfNames {
    names: HashMap<u32, Option<Vec<u8>>>,
}

impl HostIfNames {
    fn lookup(&mut self, index: u32) {
        self.names
            .entry(index)
            .or_insert_with(|| crate::ifname::index_to_name(index));
    }

    fn fill<'a>(&'a mut self, p: &mut crate::packet::Packet<'a>) {
        let ifaces = [p.indev, p.outdev, p.physindev, p.physoutdev];
        for i in ifaces.iter().flatten() {
            if i.name.is_none() {
                self.lookup(i.index);
            }
        }
        let names = &self.names;
        let name_of = |slot: Option<Iface<'a>>| -> Option<Iface<'a>> {
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
