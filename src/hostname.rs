//! The host name as syslog framing prints it.

/// The host name up to the first dot, as syslog prints it; "localhost" if it cannot be read.
pub fn short_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length; gethostname NUL-terminates when it fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]);
    let short = name.split('.').next().unwrap_or("");
    // Hostnames are [A-Za-z0-9-]; anything else would let the framing be forged.
    let clean: String = short
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    if clean.is_empty() {
        "localhost".into()
    } else {
        clean
    }
}
