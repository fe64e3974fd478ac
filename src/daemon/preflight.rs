//! What `fwlog run` checks before it changes anything.
//!
//! A usage error, an unknown `--user`, a spool path that is a file or an output nobody can
//! receive must not leave a spool, a lock or an empty output file behind: with the default paths
//! that would be a stray /var/spool/fwlog and /var/log/fwlog. So everything that can be checked
//! without creating anything is checked here, first; what can only fail when it is done (a full
//! disk, a port in use) still fails later, with its own message.

use std::path::Path;

use super::DaemonError;
use crate::config::RunConfig;
use crate::pipeline::build::BuildError;
use crate::sink::Target;

pub fn check(cfg: &RunConfig) -> Result<(), DaemonError> {
    if let Some(dns) = &cfg.dns.resolver {
        dns.validate()
            .and_then(|()| dns.name_servers().map(drop))
            .map_err(|e| DaemonError::Build(BuildError::Dns(e)))?;
    }
    if let Some(name) = &cfg.user {
        crate::privdrop::lookup(name).map_err(DaemonError::User)?;
    }
    spool_dir(&cfg.spool.dir)?;
    for spec in &cfg.outputs.specs {
        match &spec.target {
            Target::File(p) | Target::Sqlite(p) => output_file(p)?,
            // The file, or with rotation the pattern: either way its directory must exist.
            Target::Pcap(p) => output_file(&p.path)?,
            Target::Syslog => crate::sink::syslog::check_local_syslog()
                .map_err(|e| DaemonError::Outputs(format!("cannot open output: syslog: {e}")))?,
            _ => {}
        }
    }
    Ok(())
}

/// The spool directory may not exist yet (it is created), but if something is there it must
/// be a directory.
fn spool_dir(dir: &Path) -> Result<(), DaemonError> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(DaemonError::SpoolNotDir(dir.to_path_buf())),
        _ => Ok(()),
    }
}

/// An output file may not exist yet, but its directory must, and the path must not be a
/// directory.
fn output_file(path: &Path) -> Result<(), DaemonError> {
    let bad = |why: String| {
        Err(DaemonError::Outputs(format!(
            "cannot open output: {}: {why}",
            shown(path)
        )))
    };
    if let Ok(m) = std::fs::metadata(path) {
        if m.is_dir() {
            return bad("is a directory".into());
        }
        return Ok(());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::metadata(parent) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bad(format!("{} is not a directory", shown(parent))),
        Err(e) => bad(format!("directory {}: {e}", shown(parent))),
    }
}

/// A path for a message: escaped like every untrusted string fwlog prints.
fn shown(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    crate::format::escape::escape_into(&mut out, path.as_os_str().as_bytes());
    String::from_utf8_lossy(&out).into_owned()
}
