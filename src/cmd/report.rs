//! `fwlog report`: flags to [`crate::report::ReportConfig`], then print.

use std::io::Write;

use crate::cli::ReportArgs;
use crate::exit;
use crate::report::{Filter, ReportConfig, ReportError, Source, SourceError};

pub fn run(args: &ReportArgs) -> i32 {
    let mut sources = Vec::with_capacity(args.sources.len());
    for s in &args.sources {
        match s.parse::<Source>() {
            Ok(src) => sources.push(src),
            Err(e) => {
                eprintln!("fwlog: {e}");
                return exit::USAGE;
            }
        }
    }
    let cfg = ReportConfig {
        sources,
        filter: Filter {
            since: args.since,
            until: args.until,
            prefix: args.prefix.clone(),
            host: args.host,
            group: args.group,
            src_net: args.src,
            dport: args.dport,
        },
        top: args.top.max(1),
        geo: crate::geo::GeoConfig {
            geoip: args.geoip.clone(),
            asn: args.asn.clone(),
        },
        json: args.json,
    };
    let (agg, stats) = match crate::report::collect(&cfg) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("fwlog: {e}");
            return match e {
                ReportError::Geo(_) => exit::NO_INPUT,
                ReportError::Source(SourceError::Spool { .. }) => exit::SPOOL,
                ReportError::Source(SourceError::Read { .. }) => exit::NO_INPUT,
                ReportError::Source(SourceError::SqlNotYet(_)) => exit::USAGE,
            };
        }
    };
    let text = if cfg.json {
        let mut t = crate::report::text::render_json(&agg, &stats, cfg.top).to_string();
        t.push('\n');
        t
    } else {
        crate::report::text::render_text(&agg, &stats, cfg.top)
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => exit::OK,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            eprintln!("fwlog: cannot write the report: {e}");
            exit::OUTPUT
        }
    }
}
