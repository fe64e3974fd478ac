//! `fwlog report`: collect, then print the text or JSON, or write the HTML page.

use std::io::Write;

use crate::exit;
use crate::report::{ReportConfig, ReportError, SourceError};

pub fn run(cfg: &ReportConfig) -> i32 {
    let (agg, stats) = match crate::report::collect(cfg) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("fwlog: {e}");
            return match e {
                ReportError::Geo(_) => exit::NO_INPUT,
                ReportError::Source(SourceError::Spool { .. }) => exit::SPOOL,
                ReportError::Source(SourceError::Read { .. }) => exit::NO_INPUT,
                ReportError::Source(SourceError::Usage(_)) => exit::USAGE,
                ReportError::Source(SourceError::Sql { .. }) => exit::NO_INPUT,
            };
        }
    };
    if let Some(path) = &cfg.html {
        let page = crate::report::html::render_html(&agg, &stats, cfg.top);
        return match write_new(path, page.as_bytes()) {
            Ok(()) => exit::OK,
            Err(e) => {
                eprintln!("fwlog: {}: {e}", path.display());
                exit::OUTPUT
            }
        };
    }
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

/// Write `data` to `path`, replacing a regular file but never following a symbolic link there
/// (a report run as root must not write through a link another user planted).
fn write_new(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}
