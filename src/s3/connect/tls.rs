//! The TLS side of an S3 connection: the roots it trusts (the system's, plus a target's
//! `ca_file`), the handshake, the earliest expiry of the chain the endpoint presented, and a
//! refused certificate in plain words.

use std::error::Error;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, CertificateError, RootCertStore};

/// The client side of TLS for one set of trusted roots, built at the first https connection:
/// an http endpoint (the embedded server, a local store) never loads the system's roots.
pub struct TlsSetup {
    extra: Vec<CertificateDer<'static>>,
    connector: std::sync::OnceLock<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSetup")
    }
}

/// The system's root certificates (about 0.2 MiB), loaded for each set of roots built: one for
/// the clients without `ca_file`, one per distinct `ca_file`; none is kept beside them.
fn system_roots() -> RootCertStore {
    let loaded = rustls_native_certs::load_native_certs();
    for e in loaded.errors.iter().take(3) {
        tracing::warn!(error = %e, "a system root certificate could not be loaded");
    }
    let mut roots = RootCertStore::empty();
    let (_, ignored) = roots.add_parsable_certificates(loaded.certs);
    if ignored > 0 {
        tracing::debug!(ignored, "system root certificates rustls cannot use");
    }
    roots
}

impl TlsSetup {
    /// Trusting the system's roots and `extra` (a target's `ca_file`).
    pub fn new(extra: &[CertificateDer<'static>]) -> Self {
        TlsSetup {
            extra: extra.to_vec(),
            connector: std::sync::OnceLock::new(),
        }
    }

    /// The connector, built on first use (the dial builds it before its timers start, so
    /// loading the roots is not counted as a phase).
    pub fn connector(&self) -> &tokio_rustls::TlsConnector {
        self.connector.get_or_init(|| {
            let mut roots = system_roots();
            roots.add_parsable_certificates(self.extra.iter().cloned());
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("the aws-lc provider supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            // hyper is set up for HTTP/1.1 only; S3 speaks nothing else.
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            tokio_rustls::TlsConnector::from(Arc::new(config))
        })
    }

    /// The handshake with `host` over `tcp`, and the earliest notAfter of the chain it showed.
    pub async fn handshake(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> io::Result<(TlsStream<TcpStream>, Option<SystemTime>)> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let stream = self.connector().connect(name, tcp).await?;
        let not_after = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.iter().filter_map(|c| not_after(c)).min());
        Ok((stream, not_after))
    }
}

/// A certificate's notAfter.
pub fn not_after(der: &[u8]) -> Option<SystemTime> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let secs = cert
        .tbs_certificate()
        .validity()
        .not_after
        .to_unix_duration()
        .as_secs();
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// The TLS failure under `first` (a refused certificate, a refused or broken handshake), if the
/// failure was one, in plain words.
pub fn refused(first: &(dyn Error + 'static)) -> Option<String> {
    let refused =
        crate::s3::words::chain(Some(first)).find_map(|e| e.downcast_ref::<rustls::Error>())?;
    Some(match refused {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::ExpiredContext { not_after, .. } => format!(
                "the endpoint's certificate has expired (notAfter {})",
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(not_after.as_secs()))
            ),
            CertificateError::Expired => "the endpoint's certificate has expired".to_string(),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the endpoint's certificate is not valid yet (or this host's clock is behind)"
                    .to_string()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the endpoint's certificate is not for its host name (check the endpoint URL)"
                    .to_string()
            }
            CertificateError::UnknownIssuer => {
                "the endpoint's certificate is signed by a CA this host does not trust (set the target's ca_file for a private CA)".to_string()
            }
            CertificateError::Revoked => "the endpoint's certificate is revoked".to_string(),
            other => format!("the endpoint's certificate was refused: {other:?}"),
        },
        rustls::Error::AlertReceived(a) => format!("the endpoint refused the TLS handshake ({a:?})"),
        other => format!("the TLS handshake failed: {other}"),
    })
}
