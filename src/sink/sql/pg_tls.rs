//! TLS to PostgreSQL (rustls, ring): the URL's `sslmode` and `sslrootcert`.
//!
//! Invariants:
//! - `sslmode=verify-full` with `sslrootcert=PATH`: the server's certificate must chain to a CA
//!   in PATH (PEM) and name the URL's host (a DNS name or an IP address SAN), as libpq does.
//!   PATH is read when the output is checked, before anything else: an unreadable file or one
//!   without a certificate is a usage error, never a late failure.
//! - `sslmode=require`: the connection is encrypted but the certificate is not checked (libpq's
//!   meaning without a root certificate); a server without TLS is refused.
//! - No `sslmode`, `disable`, `allow` or `prefer`: plain TCP, as before (tokio-postgres's own
//!   handling). `verify-ca`, and `sslrootcert` without `verify-full`, are refused: fwlog never
//!   silently checks less than the URL asks.
//! - tokio-postgres knows neither `verify-full` nor `sslrootcert`: [`split`] takes them off the
//!   URL and hands tokio-postgres `sslmode=require`, so it still refuses a plaintext server.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// What the URL asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Tls {
    Plain,
    Require,
    VerifyFull(PathBuf),
}

/// Take `sslmode` and `sslrootcert` off `url`; return the URL for tokio-postgres and the mode.
pub fn split(url: &str) -> Result<(String, Tls), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), Tls::Plain));
    };
    let mut mode = None;
    let mut root = None;
    let mut keep = Vec::new();
    for kv in query.split('&') {
        match kv.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.to_string()),
            Some(("sslrootcert", v)) => root = Some(PathBuf::from(v)),
            _ => keep.push(kv),
        }
    }
    let tls = match (mode.as_deref(), root) {
        (Some("verify-full"), Some(r)) => Tls::VerifyFull(r),
        (Some("verify-full"), None) => {
            return Err("sslmode=verify-full needs sslrootcert=PATH (the CA to trust)".into())
        }
        (Some("require"), None) => Tls::Require,
        (Some("verify-ca"), _) => {
            return Err("sslmode=verify-ca is not supported: use verify-full".into())
        }
        (_, Some(_)) => return Err("sslrootcert is used only with sslmode=verify-full".into()),
        (Some(m), None) => {
            keep.push(match m {
                "disable" => "sslmode=disable",
                "prefer" | "allow" => "sslmode=prefer",
                _ => return Err(format!("sslmode={m}: unknown mode")),
            });
            Tls::Plain
        }
        (None, None) => Tls::Plain,
    };
    if tls != Tls::Plain {
        keep.push("sslmode=require");
    }
    let url = if keep.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", keep.join("&"))
    };
    Ok((url, tls))
}

/// The connector for `tls`, or `None` for plain TCP.
pub fn connector(tls: &Tls) -> Result<Option<MakeRustlsConnect>, String> {
    // ring rather than aws-lc-rs: no C toolchain beyond cc and no cmake for the Debian build;
    // rustls marks it deprecated only because ring lacks post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match tls {
        Tls::Plain => return Ok(None),
        Tls::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
            .with_no_client_auth(),
        Tls::VerifyFull(path) => {
            let shown = path.display();
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {shown}: {e}"))?;
            for c in certs {
                let c = c.map_err(|e| format!("sslrootcert {shown}: {e}"))?;
                roots
                    .add(c)
                    .map_err(|e| format!("sslrootcert {shown}: {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!("sslrootcert {shown}: no certificate in it"));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// `sslmode=require`: encryption without checking who the server is (libpq's meaning). The
/// handshake's signatures are still checked, so the session is with the certificate's key.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_off_the_url() {
        let u = "postgresql://a@h/db";
        assert_eq!(split(u).unwrap(), (u.to_string(), Tls::Plain));
        assert_eq!(
            split("postgresql://a@h/db?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x")
                .unwrap(),
            (
                "postgresql://a@h/db?application_name=x&sslmode=require".to_string(),
                Tls::VerifyFull("/ca.pem".into())
            )
        );
        assert_eq!(
            split("postgresql://a@h/db?sslmode=require").unwrap().1,
            Tls::Require
        );
        assert!(split("postgresql://a@h/db?sslmode=verify-full").is_err());
        assert!(split("postgresql://a@h/db?sslmode=verify-ca&sslrootcert=/x").is_err());
        assert!(split("postgresql://a@h/db?sslmode=require&sslrootcert=/x").is_err());
        assert!(split("postgresql://a@h/db?sslmode=bogus").is_err());
        assert!(connector(&Tls::VerifyFull("/nonexistent/ca.pem".into())).is_err());
    }
}
