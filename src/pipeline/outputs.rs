//! The set of outputs: each with its own format and sink, written as one batch.
//!
//! A batch is acknowledged in the spool only when every output has written it. An output that
//! fails keeps its formatted batch and is retried (its sink resumes where it stopped); the
//! outputs that succeeded are not written twice.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::config::OutputsConfig;
use crate::format::{FormatOptions, Formatter, LossEvent};
use crate::sink::sql::my;
use crate::sink::sql::pg;
use crate::sink::sql::sqlite::SqliteSink;
use crate::sink::sql::stream::StreamError;
use crate::sink::sql::{SqlConfig, StreamId};
use crate::sink::text::{Detached, TextSink};
use crate::sink::{self, OutputSpec, PacketSink, PacketView, Target};

/// What database outputs need, when `cfg` has one (None otherwise, so nothing is created for
/// a run without one). `stream` gives the stream id: the spool's, or a new random one.
pub fn sql_config(
    cfg: &OutputsConfig,
    stream: impl FnOnce() -> Result<StreamId, StreamError>,
) -> Result<Option<SqlConfig>, String> {
    if !cfg.specs.iter().any(|s| s.target.is_database()) {
        return Ok(None);
    }
    Ok(Some(SqlConfig {
        host: cfg
            .db
            .host_name
            .clone()
            .unwrap_or_else(crate::sink::sql::system_host_name),
        stream: stream().map_err(|e| e.to_string())?,
        payload: cfg.db.payload,
        retain: cfg.db.retain,
        sync: cfg.sync_files,
    }))
}

pub struct Outputs {
    outs: Vec<Box<dyn PacketSink>>,
    stats: Vec<Arc<OutputStats>>,
    /// Bytes of the batches detached by [`Outputs::detach`] and not yet back.
    out_bytes: usize,
}

/// The outputs' batches out for a commit on another thread (see [`Outputs::detach`]).
pub struct OutBatches(Vec<(usize, Detached)>);

impl OutBatches {
    /// Commit each batch in turn, stopping at the first failure (the rest are kept, untried).
    /// True when every one was committed.
    pub fn run(&mut self) -> bool {
        self.0.iter_mut().all(|(_, d)| d.run().is_ok())
    }

    /// Whether running them only copies bytes into the page cache (every one an unsynced
    /// write of a local regular file: [`Detached::copies_only`]).
    pub fn copies_only(&self) -> bool {
        self.0.iter().all(|(_, d)| d.copies_only())
    }

    /// Bytes in the batches.
    pub fn bytes(&self) -> usize {
        self.0.iter().map(|(_, d)| d.len()).sum()
    }
}

/// One output's counters, readable from other threads (`--metrics`).
#[derive(Debug, Default)]
pub struct OutputStats {
    /// The target as the user wrote it.
    pub name: String,
    /// Bytes committed (formatted text, or framed pcap records).
    pub written_bytes: AtomicU64,
    /// Failed commits.
    pub errors: AtomicU64,
    /// True while the last commit failed and is being retried.
    pub retrying: AtomicBool,
    /// Packet rows the database refused (stored as `losses` rows instead).
    pub rows_refused: AtomicU64,
    /// Lost packets whose `losses` rows the database refused too.
    pub losses_unrecorded: AtomicU64,
}

impl Outputs {
    /// Open every output. `default_kind` applies where the spec names no format; syslog
    /// targets get no syslog header from the formatter (the sink frames them). `db` is what
    /// database outputs need (None when there are none).
    pub fn open(
        specs: &[OutputSpec],
        default_kind: crate::format::FormatKind,
        opts: &FormatOptions,
        sync_files: bool,
        db: Option<&SqlConfig>,
    ) -> Result<Outputs, String> {
        let mut outs = Vec::with_capacity(specs.len());
        for spec in specs {
            if let Target::Pcap(p) = &spec.target {
                let o = sink::pcap::PcapSink::open(p, sync_files)
                    .map_err(|e| format!("cannot open output: {e}"))?;
                outs.push(Box::new(o) as Box<dyn PacketSink>);
                continue;
            }
            if let Target::Sqlite(path) = &spec.target {
                let cfg = db.ok_or("database outputs are not available here")?;
                let s =
                    SqliteSink::open(path, cfg).map_err(|e| format!("cannot open output: {e}"))?;
                outs.push(Box::new(s) as Box<dyn PacketSink>);
                continue;
            }
            if let Target::Postgres(url) = &spec.target {
                let cfg = db.ok_or("database outputs are not available here")?;
                let s = pg::open(url, cfg).map_err(|e| format!("cannot open output: {e}"))?;
                outs.push(Box::new(s) as Box<dyn PacketSink>);
                continue;
            }
            if let Target::MySql(url) = &spec.target {
                let cfg = db.ok_or("database outputs are not available here")?;
                let s = my::open(url, cfg).map_err(|e| format!("cannot open output: {e}"))?;
                outs.push(Box::new(s) as Box<dyn PacketSink>);
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
        Ok(Outputs::from_sinks(outs))
    }

    /// Outputs that are already open (a test's sinks, or sinks opened elsewhere).
    pub fn from_sinks(outs: Vec<Box<dyn PacketSink>>) -> Outputs {
        let stats = outs
            .iter()
            .map(|o| {
                Arc::new(OutputStats {
                    name: o.describe(),
                    ..OutputStats::default()
                })
            })
            .collect();
        Outputs {
            outs,
            stats,
            out_bytes: 0,
        }
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

    /// What is waiting to be committed, batches out on another thread included.
    pub fn pending_bytes(&self) -> usize {
        self.unsent_bytes() + self.out_bytes
    }

    /// What is waiting to be committed and still here (not out on another thread).
    pub fn unsent_bytes(&self) -> usize {
        self.outs.iter().map(|o| o.pending()).sum()
    }

    /// Commit every output's batch. On error, says which output failed; the outputs before it
    /// have committed and hold nothing, so a retry commits only the failed ones.
    pub fn write(&mut self) -> Result<(), (String, io::Error)> {
        for i in 0..self.outs.len() {
            let n = self.outs[i].pending();
            if n > 0 {
                let r = self.outs[i].commit();
                self.counted(i, n, r)?;
            }
        }
        Ok(())
    }

    /// The first half of [`write`](Self::write) with the text outputs' writes on another
    /// thread: outputs that cannot detach are committed here and now (an error stops it as in
    /// `write`, nothing detached); then every text output's batch is detached, to be run
    /// ([`OutBatches::run`]) elsewhere and given back to [`attach`](Self::attach). While they are
    /// out, the outputs take new packets into fresh batches. `None` when nothing is pending.
    ///
    /// `sync` false: the text outputs' batches are written and not synced (a backlog
    /// draining); the next detach with `sync` syncs them, with its own batches (or alone, for
    /// an output with nothing pending that owes a sync). Outputs that commit in place commit
    /// fully either way.
    pub fn detach(&mut self, sync: bool) -> Result<Option<OutBatches>, (String, io::Error)> {
        for i in 0..self.outs.len() {
            let n = self.outs[i].pending();
            if n > 0 && !self.outs[i].detachable() {
                let r = self.outs[i].commit();
                self.counted(i, n, r)?;
            }
        }
        let mut out = Vec::new();
        for (i, o) in self.outs.iter_mut().enumerate() {
            if let Some(d) = o.detach(sync) {
                self.out_bytes += d.len();
                out.push((i, d));
            }
        }
        Ok((!out.is_empty()).then_some(OutBatches(out)))
    }

    /// Take detached batches back with their outcomes: `Ok` when every one was committed,
    /// otherwise the first failure (the failed batch and any not tried are kept, to be
    /// committed first next time).
    pub fn attach(&mut self, b: OutBatches) -> Result<(), (String, io::Error)> {
        let mut first = Ok(());
        for (i, d) in b.0 {
            self.out_bytes -= d.len();
            let n = d.len();
            let r = match d.outcome() {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => Err(crate::sink::copy_error(e)),
                None => {
                    self.outs[i].attach(d);
                    continue;
                }
            };
            self.outs[i].attach(d);
            let r = self.counted(i, n, r);
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// Count one output's commit of `n` bytes in its counters; the error with its name.
    fn counted(&self, i: usize, n: usize, r: io::Result<()>) -> Result<(), (String, io::Error)> {
        // Outputs added with `push` (not the user's) keep no counters.
        let st = self.stats.get(i);
        if let Err(e) = r {
            if let Some(st) = st {
                st.errors.fetch_add(1, Relaxed);
                st.retrying.store(true, Relaxed);
            }
            return Err((self.outs[i].describe(), e));
        }
        if let Some(st) = st {
            st.written_bytes.fetch_add(n as u64, Relaxed);
            st.retrying.store(false, Relaxed);
            let r = self.outs[i].refused();
            st.rows_refused.store(r.rows, Relaxed);
            st.losses_unrecorded.store(r.unrecorded, Relaxed);
        }
        Ok(())
    }

    /// Add an output after the user's (committed after them, so it sees only what they wrote).
    pub fn push(&mut self, o: Box<dyn PacketSink>) {
        self.outs.push(o);
    }

    /// Every output's counters, in the order of the specs.
    pub fn stats(&self) -> Vec<Arc<OutputStats>> {
        self.stats.clone()
    }

    /// SIGHUP: reopen every output (files renamed by logrotate). Errors are reported and the
    /// old handle kept, so lines keep flowing to the renamed file rather than nowhere.
    pub fn reopen(&mut self) {
        for o in &mut self.outs {
            if let Err(e) = o.reopen() {
                crate::say!("fwlog: SIGHUP: cannot reopen {}: {e}", o.describe());
            }
        }
    }
}
