//! The HTTP client under every S3 client: hyper's pool over our own connector, so each attempt's
//! phases are measured (dns, connect, tls, first byte, body) while the SDK stays the client
//! (signing, retries, timeouts, parsing).
//!
//! The SDK's own client (aws-smithy-http-client) takes a DNS resolver and a TLS context but not a
//! connector, so connect and TLS could not be told apart inside it. This one is small: [`dial`]
//! opens connections, [`body`] notes when bodies end, and [`TimedConnector`] hands each request
//! to hyper and its answer back to the SDK, classifying failures as the SDK's client does (a
//! connect timeout is a timeout, an I/O failure is retried, a refused certificate is not).
//! Through a proxy (`HTTPS_PROXY` and friends) the SDK's client is used instead: phases are not
//! measured there.

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use http_body::Body as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::capture_connection;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

mod body;
mod dial;
pub mod tls;

use body::{Pending, RequestBody, ResponseBody};
use dial::{Dial, DialError, Establishment};
use tls::TlsSetup;

use super::recorder::RECORDING;
use crate::report::{MAX_TOKEN, RequestPhases, bounded_text};

/// A connector's (connect, read) timeouts.
type Timeouts = (Option<Duration>, Option<Duration>);

/// An SDK HTTP client whose connections are opened by [`Dial`], one per set of trusted roots.
#[derive(Debug, Clone)]
pub struct TimedClient {
    tls: Arc<TlsSetup>,
    /// One connector (and pool) per (connect, read) timeout pair, as the SDK's client keeps.
    connectors: Arc<RwLock<HashMap<Timeouts, SharedHttpConnector>>>,
}

impl TimedClient {
    /// A client trusting the system's roots and `extra_roots` (a target's `ca_file`).
    pub fn new(extra_roots: &[rustls_pki_types::CertificateDer<'static>]) -> Self {
        TimedClient {
            tls: Arc::new(TlsSetup::new(extra_roots)),
            connectors: Arc::default(),
        }
    }
}

impl HttpClient for TimedClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        if let Some(c) = self
            .connectors
            .read()
            .ok()
            .and_then(|m| m.get(&key).cloned())
        {
            return c;
        }
        let mut map = self.connectors.write().unwrap_or_else(|p| p.into_inner());
        map.entry(key)
            .or_insert_with(|| {
                let dial = Dial {
                    tls: self.tls.clone(),
                    connect_timeout: key.0,
                };
                let client = Client::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .build(dial);
                SharedHttpConnector::new(TimedConnector {
                    client,
                    read_timeout: key.1,
                })
            })
            .clone()
    }
}

/// Sends one attempt through hyper's pool and measures its phases.
#[derive(Clone)]
pub struct TimedConnector {
    client: Client<Dial, RequestBody<SdkBody>>,
    read_timeout: Option<Duration>,
}

impl std::fmt::Debug for TimedConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedConnector")
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

/// The read timeout ran out before the response head.
#[derive(Debug, thiserror::Error)]
#[error("no response head within {0:?}")]
struct ReadTimedOut(Duration);

impl HttpConnector for TimedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let start = Instant::now();
        let at = SystemTime::now();
        let recording = RECORDING.try_with(Arc::clone).ok();
        let mut request = match request.try_into_http1x() {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let capture = capture_connection(&mut request);
        if let Some(smithy) = request.extensions().get::<CaptureSmithyConnection>() {
            let capture = capture.clone();
            smithy.set_connection_retriever(move || {
                if capture.connection_metadata().is_none() {
                    return None;
                }
                let capture = capture.clone();
                Some(
                    ConnectionMetadata::builder()
                        .proxied(false)
                        .poison_fn(move || {
                            if let Some(c) = capture.connection_metadata().as_ref() {
                                c.poison();
                            }
                        })
                        .build(),
                )
            });
        }
        let request = request.map(RequestBody::new);
        let written = request.body().written.clone();
        let sent = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                Some(d) => match tokio::time::timeout(d, sent).await {
                    Ok(r) => r,
                    Err(_) => return Err(ConnectorError::timeout(Box::new(ReadTimedOut(d)))),
                },
                None => sent.await,
            }
            .map_err(classify)?;
            let head = Instant::now();
            let established = capture.connection_metadata().as_ref().and_then(|c| {
                let mut ext = http::Extensions::new();
                c.get_extras(&mut ext);
                ext.get::<Arc<Establishment>>().cloned()
            });
            let phases = phases(
                at,
                start,
                head,
                written.get().copied(),
                established.as_deref(),
                &response,
            );
            let pending = recording.map(|recording| Pending { phases, recording });
            let response = if response.body().is_end_stream() {
                if let Some(p) = pending {
                    p.report(None);
                }
                response.map(SdkBody::from_body_1_x)
            } else {
                response.map(|b| SdkBody::from_body_1_x(ResponseBody::new(b, head, pending)))
            };
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// An attempt's phases up to its response head.
///
/// The connection's phases belong to the first attempt sent on it, and only if it became ready
/// after that attempt started (a connection hyper finished opening in the background, while the
/// attempt took another, cost this attempt nothing). The first byte is waited for from the
/// latest of: the attempt's start, the connection ready, the request body written.
fn phases<B>(
    at: SystemTime,
    start: Instant,
    head: Instant,
    written: Option<Instant>,
    established: Option<&Establishment>,
    response: &http::Response<B>,
) -> RequestPhases {
    let new_connection = established.is_some_and(|e| e.claim());
    let opened = established.filter(|e| new_connection && e.ready >= start);
    let mut from = start;
    if let Some(e) = opened {
        from = from.max(e.ready);
    }
    if let Some(w) = written {
        from = from.max(w);
    }
    RequestPhases {
        at,
        new_connection,
        dns: opened.and_then(|e| e.dns),
        connect: opened.map(|e| e.connect),
        tls: opened.and_then(|e| e.tls),
        first_byte: Some(head.saturating_duration_since(from)),
        body: None,
        request_id: response
            .headers()
            .get("x-amz-request-id")
            .and_then(|v| v.to_str().ok())
            .map(|v| bounded_text(v, MAX_TOKEN)),
        tls_not_after: established
            .filter(|_| new_connection)
            .and_then(|e| e.not_after),
    }
}

/// A failure of hyper's client as the SDK classifies its own: timeouts, retryable I/O (a
/// connection refused, reset or closed), and the rest, which a retry would not fix (a refused
/// certificate among them).
fn classify(err: hyper_util::client::legacy::Error) -> ConnectorError {
    enum Kind {
        Timeout,
        Io,
        User,
        Transient,
        Final,
    }
    let kind = {
        let chain = || super::words::chain(Some(&err as &(dyn Error + 'static)));
        let hyper = chain().find_map(|e| e.downcast_ref::<hyper::Error>());
        if chain().any(|e| e.is::<ReadTimedOut>())
            || chain()
                .any(|e| matches!(e.downcast_ref::<DialError>(), Some(DialError::TimedOut(_))))
            || hyper.is_some_and(|h| h.is_timeout())
        {
            Kind::Timeout
        } else if chain().any(|e| e.is::<tokio_rustls::rustls::Error>()) {
            Kind::Final
        } else if let Some(h) = hyper {
            if h.is_user() {
                Kind::User
            } else if h.is_incomplete_message() {
                Kind::Transient
            } else {
                Kind::Io
            }
        } else if err.is_connect() || chain().any(|e| e.is::<std::io::Error>()) {
            Kind::Io
        } else {
            Kind::Final
        }
    };
    let err = err.into();
    match kind {
        Kind::Timeout => ConnectorError::timeout(err),
        Kind::Io => ConnectorError::io(err),
        Kind::User => ConnectorError::user(err),
        Kind::Transient => ConnectorError::other(err, Some(ErrorKind::TransientError)),
        Kind::Final => ConnectorError::other(err, None),
    }
}
