//! TLS to MariaDB/MySQL (mysql_async with rustls and ring: no OpenSSL): the URL's `ssl-mode`
//! and `ssl-ca`, named and meant as the `mariadb`/`mysql` clients' `--ssl-mode` and
//! `--ssl-ca` options.
//!
//! Invariants:
//! - `ssl-mode=VERIFY_IDENTITY` with `ssl-ca=PATH`: the server's certificate must chain to a
//!   CA in PATH (PEM) and name the URL's host (a DNS name or an IP address SAN).
//! - `VERIFY_CA` (the chain without the name) is refused: mysql_async's way to skip the name
//!   check matches rustls's error text of an older version, so with this rustls it checks the
//!   name anyway; a mode that does something else than it says is not offered.
//! - `ssl-mode=REQUIRED`: the connection is encrypted but the certificate is not checked (the
//!   clients' meaning); a server without TLS is refused. The handshake's signatures are still
//!   checked.
//! - No `ssl-mode`, or `DISABLED`: plain TCP. `PREFERRED` is refused (it falls back to plain
//!   text without a word), as are `VERIFY_*` without `ssl-ca` and `ssl-ca` with any other
//!   mode: fwlog never silently checks less than the URL asks. Modes are case-insensitive.
//! - PATH is read when the URL is checked, before anything else and before `--user` drops
//!   privileges: an unreadable file or one without a certificate is a usage error, never a
//!   late failure. Only its CAs are trusted (no built-in roots).
//! - mysql_async knows neither parameter: [`split`] takes them off the URL.

use mysql_async::SslOpts;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// What the URL asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Disabled,
    Required,
    VerifyIdentity,
}

/// Take `ssl-mode` and `ssl-ca` off `url`: the URL for mysql_async, the mode, and the TLS
/// options (None for plain TCP).
pub fn split(url: &str) -> Result<(String, Mode, Option<SslOpts>), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), Mode::Disabled, None));
    };
    let mut mode = None;
    let mut ca = None;
    let mut keep = Vec::new();
    for kv in query.split('&') {
        match kv.split_once('=') {
            Some(("ssl-mode", v)) => mode = Some(v.to_ascii_uppercase()),
            Some(("ssl-ca", v)) => ca = Some(v.to_string()),
            _ => keep.push(kv),
        }
    }
    let mode =
        match mode.as_deref() {
            None | Some("DISABLED") => Mode::Disabled,
            Some("REQUIRED") => Mode::Required,
            Some("VERIFY_CA") => return Err(
                "ssl-mode=VERIFY_CA is not supported (the driver checks the host name anyway): \
                 use VERIFY_IDENTITY, with a certificate that names the URL's host"
                    .into(),
            ),
            Some("VERIFY_IDENTITY") => Mode::VerifyIdentity,
            Some("PREFERRED") => {
                return Err(
                    "ssl-mode=PREFERRED is not supported (it falls back to plain text): use \
                 REQUIRED or VERIFY_IDENTITY"
                        .into(),
                )
            }
            Some(m) => {
                return Err(format!(
                    "ssl-mode={m}: unknown mode (DISABLED, REQUIRED, VERIFY_IDENTITY)"
                ))
            }
        };
    let opts = match (&mode, ca) {
        (Mode::Disabled, None) => None,
        (Mode::Required, None) => Some(
            SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        ),
        (Mode::VerifyIdentity, Some(path)) => Some(
            SslOpts::default()
                .with_root_certs(vec![read_ca(&path)?.into()])
                .with_disable_built_in_roots(true),
        ),
        (Mode::VerifyIdentity, None) => {
            return Err("ssl-mode=VERIFY_IDENTITY needs ssl-ca=PATH (the CA to trust)".into())
        }
        (_, Some(_)) => return Err("ssl-ca is used only with ssl-mode=VERIFY_IDENTITY".into()),
    };
    let url = if keep.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", keep.join("&"))
    };
    Ok((url, mode, opts))
}

/// The CA file's bytes, once it is known to hold at least one PEM certificate.
fn read_ca(path: &str) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("ssl-ca {path}: {e}"))?;
    let mut n = 0;
    for c in CertificateDer::pem_slice_iter(&bytes) {
        c.map_err(|e| format!("ssl-ca {path}: {e}"))?;
        n += 1;
    }
    if n == 0 {
        return Err(format!("ssl-ca {path}: no certificate in it"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_mode_and_ssl_ca_are_taken_off_the_url_and_checked() {
        let u = "mysql://a@h/db";
        let (url, mode, opts) = split(u).unwrap();
        assert_eq!((url.as_str(), mode, opts), (u, Mode::Disabled, None));
        let (url, mode, opts) = split("mysql://a@h/db?ssl-mode=required&compress=true").unwrap();
        assert_eq!(
            (url.as_str(), mode),
            ("mysql://a@h/db?compress=true", Mode::Required)
        );
        assert!(opts.unwrap().accept_invalid_certs());
        assert!(split("mysql://a@h/db?ssl-mode=VERIFY_IDENTITY").is_err());
        assert!(split("mysql://a@h/db?ssl-mode=PREFERRED").is_err());
        assert!(split("mysql://a@h/db?ssl-mode=bogus").is_err());
        assert!(split("mysql://a@h/db?ssl-mode=REQUIRED&ssl-ca=/x.pem").is_err());
        assert!(split("mysql://a@h/db?ssl-ca=/x.pem").is_err());
        assert!(split("mysql://a@h/db?ssl-mode=VERIFY_CA&ssl-ca=/x.pem").is_err());
        let e = split("mysql://a@h/db?ssl-mode=VERIFY_IDENTITY&ssl-ca=/nonexistent/ca.pem")
            .unwrap_err();
        assert!(e.starts_with("ssl-ca /nonexistent/ca.pem: "), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "not a certificate\n").unwrap();
        let e = split(&format!(
            "mysql://a@h/db?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
            not_pem.display()
        ))
        .unwrap_err();
        assert!(e.contains("no certificate in it"), "{e}");
    }
}
