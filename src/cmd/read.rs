//! `fwlog read FILE...`: capture files through the same pipeline as live packets.
//!
//! A reader thread turns each capture record into an NFLOG-shaped record (see
//! [`crate::nflog::attr::encode_packet`]) and hands it to the pipeline, which resolves, formats
//! and writes exactly as `fwlog run` does.

use std::collections::HashMap;

use crate::config::{IfNames, ReadConfig};
use crate::exit;
use crate::nflog::attr::encode_packet;
use crate::packet::{Iface, Packet};
use crate::pcap::{read_file, to_packet, ReadError};
use crate::pipeline::source::Producer;

pub fn run(cfg: &ReadConfig) -> i32 {
    let files = cfg.files.clone();
    let ifnames = cfg.ifnames;
    // A capture file has no spool: each read is a stream of its own.
    let stream = crate::sink::sql::StreamId::random;
    super::pipeline::run(&cfg.outputs, &cfg.format, &cfg.dns, stream, move |p| {
        produce(&files, ifnames, p)
    })
}

fn produce(files: &[std::path::PathBuf], ifnames: IfNames, mut out: Producer) -> i32 {
    let mut host = HostIfNames::default();
    let mut status = exit::OK;
    for path in files {
        let file = match std::fs::File::open(path) {
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
            let mut buf = Vec::with_capacity(rec.data.len() + 128);
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
                    .or_insert_with(|| crate::ifname::index_to_name(i.index));
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
