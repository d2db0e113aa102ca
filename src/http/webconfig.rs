//! `server.web_config_file`: TLS and basic auth for every HTTP path, in the Prometheus
//! exporter-toolkit web-config format, so a Prometheus `scrape_config` written for any exporter
//! works unchanged:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative paths are relative to this file
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
//!   client_ca_file: ca.crt
//!   min_version: TLS12             # TLS12 (default) or TLS13
//! basic_auth_users:
//!   prometheus: $2y$10$...         # bcrypt hashes (htpasswd -nBC 10 "" | tr -d ':\n')
//! ```
//!
//! Keys s3canary does not implement (cipher_suites, curve_preferences, http_server_config, ...)
//! are refused by name rather than ignored. The file is read at start.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_rustls::rustls;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: String,
    key_file: String,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    min_version: Option<String>,
}

/// A loaded web config: the TLS server config, when TLS is on, and the users of basic auth.
#[derive(Clone, Default)]
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub auth: Option<Arc<BasicAuth>>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("basic_auth", &self.auth.is_some())
            .finish()
    }
}

/// Why a web config could not be loaded; the message names the key or file.
#[derive(Debug, thiserror::Error)]
#[error("web config {path}: {message}")]
pub struct WebConfigError {
    pub path: PathBuf,
    pub message: String,
}

impl WebConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let fail = |message: String| WebConfigError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let raw: RawWebConfig = serde_norway::from_str(&text).map_err(|e| {
            fail(format!(
                "{e} (supported: tls_server_config with cert_file, key_file, client_auth_type, \
                 client_ca_file, min_version; basic_auth_users)"
            ))
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let tls = match raw.tls_server_config {
            Some(t) => Some(Arc::new(tls_config(&t, dir).map_err(fail)?)),
            None => None,
        };
        for (user, hash) in &raw.basic_auth_users {
            if !hash.starts_with("$2") {
                return Err(fail(format!(
                    "basic_auth_users.{user} is not a bcrypt hash (it must start with $2)"
                )));
            }
        }
        let auth = (!raw.basic_auth_users.is_empty())
            .then(|| Arc::new(BasicAuth::new(raw.basic_auth_users)));
        Ok(WebConfig { tls, auth })
    }
}

fn tls_config(t: &RawTls, dir: &Path) -> Result<rustls::ServerConfig, String> {
    let file = |f: &str| dir.join(f);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file(&t.cert_file))
        .and_then(|i| i.collect())
        .map_err(|e| format!("tls_server_config.cert_file ({}): {e}", t.cert_file))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config.cert_file ({}) holds no certificate",
            t.cert_file
        ));
    }
    let key = PrivateKeyDer::from_pem_file(file(&t.key_file))
        .map_err(|e| format!("tls_server_config.key_file ({}): {e}", t.key_file))?;
    let versions: &[&rustls::SupportedProtocolVersion] = match t.min_version.as_deref() {
        None | Some("TLS12") => rustls::ALL_VERSIONS,
        Some("TLS13") => &[&rustls::version::TLS13],
        Some(v) => {
            return Err(format!(
                "tls_server_config.min_version ({v:?}) must be TLS12 or TLS13"
            ));
        }
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let verify = |require: bool| -> Result<_, String> {
        let Some(ca) = &t.client_ca_file else {
            return Err("tls_server_config.client_ca_file is needed to verify clients".into());
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(file(ca))
            .map_err(|e| format!("tls_server_config.client_ca_file ({ca}): {e}"))?
        {
            let c = c.map_err(|e| format!("tls_server_config.client_ca_file ({ca}): {e}"))?;
            roots
                .add(c)
                .map_err(|e| format!("tls_server_config.client_ca_file ({ca}): {e}"))?;
        }
        let b = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        );
        let b = if require {
            b
        } else {
            b.allow_unauthenticated()
        };
        b.build()
            .map_err(|e| format!("tls_server_config.client_ca_file ({ca}): {e}"))
    };
    let builder = match t.client_auth_type.as_deref() {
        None | Some("NoClientCert") => builder.with_no_client_auth(),
        Some("RequireAndVerifyClientCert") => builder.with_client_cert_verifier(verify(true)?),
        Some("VerifyClientCertIfGiven") => builder.with_client_cert_verifier(verify(false)?),
        Some(other) => {
            return Err(format!(
                "tls_server_config.client_auth_type ({other:?}) must be NoClientCert, \
                 VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ));
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config: the key does not fit the certificate: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Basic auth against bcrypt hashes. A bcrypt check costs tens of milliseconds, so checks run
/// off the runtime two at a time (a flood of wrong passwords costs two cores' worth of time at
/// most, never the probes' runtime), and the header of a successful check is remembered.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    checks: Semaphore,
    known_good: Mutex<HashSet<Vec<u8>>>,
}

/// Successful `Authorization` headers remembered (a few scrapers at most).
const KNOWN_GOOD: usize = 16;

/// A bcrypt hash no password matches in practice, checked for unknown users so that a wrong
/// user name takes as long as a wrong password.
const DUMMY_HASH: &str = "$2b$10$0000000000000000000000000000000000000000000000000000.";

impl BasicAuth {
    fn new(users: BTreeMap<String, String>) -> Self {
        BasicAuth {
            users,
            checks: Semaphore::new(2),
            known_good: Mutex::new(HashSet::new()),
        }
    }

    /// Whether the `Authorization` header value `h` names a user and the right password.
    pub async fn allows(&self, h: Option<&[u8]>) -> bool {
        let Some(h) = h else { return false };
        if self.known_good.lock().unwrap().contains(h) {
            return true;
        }
        let Some((user, password)) = h
            .strip_prefix(b"Basic ")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
            })
        else {
            return false;
        };
        let hash = self
            .users
            .get(&user)
            .cloned()
            .unwrap_or_else(|| DUMMY_HASH.to_string());
        let Ok(_permit) = self.checks.acquire().await else {
            return false;
        };
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .is_ok_and(|r| r.unwrap_or(false))
            && self.users.contains_key(&user);
        if ok {
            let mut good = self.known_good.lock().unwrap();
            if good.len() < KNOWN_GOOD {
                good.insert(h.to_vec());
            }
        }
        ok
    }
}

/// Middleware: 401 unless the request carries the credentials of a configured user.
pub async fn require_auth(
    State(auth): State<Arc<BasicAuth>>,
    req: Request,
    next: Next,
) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if auth.allows(header).await {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"s3canary\"")],
        "unauthorized\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<WebConfig, WebConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, text).unwrap();
        WebConfig::load(&path)
    }

    #[test]
    fn unsupported_keys_and_plain_passwords_are_refused_by_name() {
        let e = load("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [x]\n")
            .unwrap_err();
        assert!(e.message.contains("cipher_suites"), "{e}");
        let e = load("basic_auth_users:\n  alice: hunter2\n").unwrap_err();
        assert!(
            e.message
                .contains("basic_auth_users.alice is not a bcrypt hash"),
            "{e}"
        );
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = load("tls_server_config:\n  cert_file: missing.crt\n  key_file: b\n").unwrap_err();
        assert!(e.message.contains("cert_file (missing.crt)"), "{e}");
    }

    #[tokio::test]
    async fn basic_auth_checks_bcrypt_hashes() {
        let hash = bcrypt::hash("right", 4).unwrap();
        let w = load(&format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap();
        let auth = w.auth.unwrap();
        let header = |u: &str, p: &str| {
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            format!("Basic {b}").into_bytes()
        };
        assert!(auth.allows(Some(&header("alice", "right"))).await);
        assert!(!auth.allows(Some(&header("alice", "wrong"))).await);
        assert!(!auth.allows(Some(&header("bob", "right"))).await);
        assert!(!auth.allows(Some(b"Bearer x")).await);
        assert!(!auth.allows(None).await);
    }
}
