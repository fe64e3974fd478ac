//! `fwlog replay`: print (or export as pcap) what a spool holds, without changing it.
//!
//! The spool is opened read-only: no lock, no truncation, no quarantine, no acknowledgement, so
//! it works on a copy taken off a dead machine, on a read-only mount, and beside a daemon that
//! is using the same directory.

use std::os::unix::fs::OpenOptionsExt;

use fwlog_spool::{LedgerStatus, ReadOnlySpool, ReplayItem};

use crate::config::{ReplayConfig, Select};
use crate::exit;
use crate::nflog::attr::{self, LossRecord, TlvOrder};
use crate::packet::Timestamp;
use crate::pcap::NflogPcapWriter;

const EPOCH: Timestamp = Timestamp::EPOCH;

pub use crate::timearg::parse_time;

struct Filter {
    select: Select,
    since: Option<i64>,
    until: Option<i64>,
}

impl Filter {
    fn keeps_state(&self, acked: bool) -> bool {
        match self.select {
            Select::All => true,
            Select::Pending => !acked,
            Select::Printed => acked,
        }
    }

    fn keeps(&self, acked: bool, data: &[u8]) -> bool {
        if !self.keeps_state(acked) {
            return false;
        }
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let t = attr::parse(data, TlvOrder::NATIVE, EPOCH).timestamp.sec;
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }
}

pub fn run(args: &ReplayConfig) -> i32 {
    let filter = Filter {
        select: args.select,
        since: args.since,
        until: args.until,
    };
    let spool = match ReadOnlySpool::open(&args.spool) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fwlog: spool {}: {e}", args.spool.display());
            return exit::SPOOL;
        }
    };
    // A spool always has a ledger or a segment; a directory with neither is the wrong one, and
    // replaying "nothing" from it would look like an empty spool.
    if spool.segments().is_empty() && matches!(spool.ledger_status(), LedgerStatus::Missing) {
        eprintln!(
            "fwlog: {} holds no spool (no ledger, no segment file): is it the --spool directory of fwlog run?",
            args.spool.display()
        );
        return exit::NO_INPUT;
    }
    if let Some(path) = &args.pcap {
        let status = export_pcap(&spool, &filter, path);
        if args.outputs.specs.is_empty() {
            return status;
        }
    }
    let dir = args.spool.clone();
    // The spool's own stream id, read-only: replayed rows keep their keys, and a database that
    // has them already ignores them.
    let stream = || crate::sink::sql::stream::read(&args.spool);
    super::pipeline::run(
        &args.outputs,
        &args.format,
        &args.dns,
        stream,
        move |mut out| {
            let mut status = exit::OK;
            let mut records = spool.records();
            loop {
                // A buffer the pipeline is done with holds the next record.
                if let Some(b) = out.spare() {
                    records.recycle(b);
                }
                let Some(r) = records.next_item() else {
                    break;
                };
                match r {
                    Ok(ReplayItem::Record(rec)) => {
                        if filter.keeps(rec.acked, &rec.data)
                            && !out.send_seq(rec.seq, rec.data, true)
                        {
                            return status;
                        }
                    }
                    // Damage is reported whatever the time window: when the lost records were
                    // logged is unknown. Keyed by its last number, like the daemon does.
                    Ok(ReplayItem::Lost(l)) => {
                        let data = crate::pipeline::loss::spool_damage(l.first, l.last);
                        if filter.keeps_state(l.last <= spool.acked())
                            && !out.send_seq(l.last, data, false)
                        {
                            return status;
                        }
                    }
                    Err(e) => {
                        eprintln!("fwlog: spool {}: {e}", dir.display());
                        status = exit::DATA;
                        break;
                    }
                }
            }
            report(records.stats());
            status
        },
    )
}

fn report(st: &fwlog_spool::ReplayStats) {
    if st.corrupt_regions_skipped > 0 || st.unreadable_segments > 0 || st.records_lost_in_gaps > 0 {
        eprintln!(
            "fwlog: spool damage skipped: {} corrupt regions ({} bytes), {} unreadable segments, {} records missing",
            st.corrupt_regions_skipped, st.corrupt_bytes_skipped, st.unreadable_segments, st.records_lost_in_gaps
        );
    }
}

fn export_pcap(spool: &ReadOnlySpool, filter: &Filter, path: &std::path::Path) -> i32 {
    // Packet payloads: private like the spool and the logs, whatever the umask. Root does not
    // follow a link (nor truncate a hard-linked file) another user could have planted.
    let untrusted = crate::dirfd::planted_by_others(path);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(!untrusted)
        .mode(0o640)
        .custom_flags(if untrusted { libc::O_NOFOLLOW } else { 0 })
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) if untrusted => std::io::Error::new(
                e.kind(),
                "a symbolic link in a directory other users can write; root does not follow it",
            ),
            _ => e,
        })
        .and_then(|f| {
            use std::os::unix::fs::MetadataExt;
            if untrusted {
                let m = f.metadata()?;
                if m.is_file() && m.nlink() > 1 {
                    return Err(std::io::Error::other(
                        "has more than one hard link in a directory other users can write; root does not write to it",
                    ));
                }
                if m.is_file() {
                    f.set_len(0)?;
                }
            }
            Ok(f)
        });
    let file = match file {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fwlog: {}: {e}", path.display());
            return exit::OUTPUT;
        }
    };
    let mut w = match NflogPcapWriter::new(std::io::BufWriter::new(file)) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("fwlog: {}: {e}", path.display());
            return exit::OUTPUT;
        }
    };
    let mut status = exit::OK;
    let mut records = spool.records();
    for r in &mut records {
        let rec = match r {
            Ok(r) => r,
            Err(e) => {
                eprintln!("fwlog: reading the spool: {e}");
                status = exit::DATA;
                break;
            }
        };
        // Loss reports are not packets: a pcap has no place for them.
        if LossRecord::decode(&rec.data).is_some() || !filter.keeps(rec.acked, &rec.data) {
            continue;
        }
        let t = attr::parse(&rec.data, TlvOrder::NATIVE, EPOCH).timestamp;
        if let Err(e) = w.write(t.sec, t.nsec / 1000, &rec.data) {
            eprintln!("fwlog: {}: {e}", path.display());
            return exit::OUTPUT;
        }
    }
    report(records.stats());
    if let Err(e) = std::io::Write::flush(&mut w.into_inner()) {
        eprintln!("fwlog: {}: {e}", path.display());
        return exit::OUTPUT;
    }
    status
}
