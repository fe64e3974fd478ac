//! The set of outputs: each with its own format and sink, written as one batch.
//!
//! A batch is acknowledged in the spool only when every output has written it. An output that
//! fails keeps its formatted batch and is retried (its sink resumes where it stopped); the
//! outputs that succeeded are not written twice.

use std::io;

use crate::format::{FormatOptions, Formatter, LossEvent, Names};
use crate::packet::Packet;
use crate::sink::{self, OutputSpec, Sink};

struct Output {
    sink: Box<dyn Sink>,
    formatter: Formatter,
    /// Formatted lines not yet written.
    buf: Vec<u8>,
}

pub struct Outputs {
    outs: Vec<Output>,
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
            let kind = spec.format.unwrap_or(default_kind);
            let mut o = opts.clone();
            if spec.target.is_syslog() {
                o.syslog_framing = false;
            }
            let kernel_tag = kind == crate::format::FormatKind::Kernel;
            let sink = sink::open(&spec.target, kernel_tag, sync_files)
                .map_err(|e| format!("cannot open output: {e}"))?;
            outs.push(Output {
                sink,
                formatter: Formatter::new(kind, o),
                buf: Vec::with_capacity(1 << 16),
            });
        }
        Ok(Outputs { outs })
    }

    pub fn packet(&mut self, p: &Packet<'_>, names: &dyn Names) {
        for o in &mut self.outs {
            o.formatter.packet(p, names, &mut o.buf);
        }
    }

    pub fn loss(&mut self, ev: &LossEvent) {
        for o in &mut self.outs {
            o.formatter.loss(ev, &mut o.buf);
        }
    }

    pub fn pending_bytes(&self) -> usize {
        self.outs.iter().map(|o| o.buf.len()).sum()
    }

    /// Write every output's batch. On error, says which output failed.
    pub fn write(&mut self) -> Result<(), (String, io::Error)> {
        for o in &mut self.outs {
            if o.buf.is_empty() {
                continue;
            }
            o.sink
                .write_batch(&o.buf)
                .map_err(|e| (o.sink.describe(), e))?;
            o.buf.clear();
        }
        Ok(())
    }

    /// SIGHUP: reopen every output (files renamed by logrotate). Errors are reported and the
    /// old handle kept, so lines keep flowing to the renamed file rather than nowhere.
    pub fn reopen(&mut self) {
        for o in &mut self.outs {
            if let Err(e) = o.sink.reopen() {
                eprintln!("fwlog: SIGHUP: cannot reopen {}: {e}", o.sink.describe());
            }
        }
    }
}
