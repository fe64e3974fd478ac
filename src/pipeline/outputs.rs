//! The set of outputs: each with its own format and sink, written as one batch.
//!
//! A batch is acknowledged in the spool only when every output has written it. An output that
//! fails keeps its formatted batch and is retried (its sink resumes where it stopped); the
//! outputs that succeeded are not written twice.

use std::io;

use crate::format::{FormatOptions, Formatter, LossEvent};
use crate::sink::text::TextSink;
use crate::sink::{self, OutputSpec, PacketSink, PacketView};

pub struct Outputs {
    outs: Vec<Box<dyn PacketSink>>,
}

impl Outputs {
    /// Open every output. `default_kind` applies where the spec names no format; syslog
    /// targets get no syslog header from the formatter (the sink frames them).
    pub fn open(
        specs: &[OutputSpec],
        default_kind: crate::format::FormatKind,
        opts: &FormatOptions,
        sync_files: bool,
    ) -> Result<Outputs, String> {
        let mut outs = Vec::with_capacity(specs.len());
        for spec in specs {
            if let sink::Target::Pcap(p) = &spec.target {
                let o = sink::pcap::PcapSink::open(p, sync_files)
                    .map_err(|e| format!("cannot open output: {e}"))?;
                outs.push(Box::new(o) as Box<dyn PacketSink>);
                continue;
            }
            let kind = spec.format.unwrap_or(default_kind);
            let mut o = opts.clone();
            if spec.target.is_syslog() {
                o.syslog_framing = false;
            }
            let kernel_tag = kind == crate::format::FormatKind::Kernel;
            let sink = sink::open(&spec.target, kernel_tag, sync_files)
                .map_err(|e| format!("cannot open output: {e}"))?;
            outs.push(Box::new(TextSink::new(sink, Formatter::new(kind, o))) as Box<dyn PacketSink>);
        }
        Ok(Outputs { outs })
    }

    pub fn packet(&mut self, p: &PacketView<'_>) {
        for o in &mut self.outs {
            o.packet(p);
        }
    }

    pub fn loss(&mut self, ev: &LossEvent, seq: u64) {
        for o in &mut self.outs {
            o.loss(ev, seq);
        }
    }

    pub fn pending_bytes(&self) -> usize {
        self.outs.iter().map(|o| o.pending()).sum()
    }

    /// Commit every output's batch. On error, says which output failed; the outputs before it
    /// have committed and hold nothing, so a retry commits only the failed ones.
    pub fn write(&mut self) -> Result<(), (String, io::Error)> {
        for o in &mut self.outs {
            if o.pending() == 0 {
                continue;
            }
            o.commit().map_err(|e| (o.describe(), e))?;
        }
        Ok(())
    }

    /// SIGHUP: reopen every output (files renamed by logrotate). Errors are reported and the
    /// old handle kept, so lines keep flowing to the renamed file rather than nowhere.
    pub fn reopen(&mut self) {
        for o in &mut self.outs {
            if let Err(e) = o.reopen() {
                eprintln!("fwlog: SIGHUP: cannot reopen {}: {e}", o.describe());
            }
        }
    }
}
