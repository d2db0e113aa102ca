//! S3 access for probes: clients shared by targets with the same region, endpoint and
//! settings, the few operations probes need, and the mapping of SDK errors onto a bounded set of
//! reasons and codes.
//!
//! Clients come from aws-config's standard credential chain with explicit timeouts and at most
//! three attempts per request. An interceptor records every attempt's latency and error code, so
//! a retried request shows up as the slow or failed attempts it really was.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    Region, RequestChecksumCalculation, ResponseChecksumValidation, SharedCredentialsProvider,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::{RequestId, RequestIdExt};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use bytes::Bytes;
use tokio::time::Instant;

use crate::config::{Sse, Target};
use crate::metrics::{Metrics, TargetLabels};
use crate::probe::Reason;

/// Most attempts per S3 request (the first plus two retries).
pub const MAX_ATTEMPTS: u32 = 3;

/// S3 error codes kept as label values; anything else is counted as "other".
pub const KNOWN_CODES: &[&str] = &[
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "NoSuchBucket",
    "NoSuchKey",
    "NotFound",
    "PreconditionFailed",
    "ConditionalRequestConflict",
    "SlowDown",
    "Throttling",
    "RequestLimitExceeded",
    "TooManyRequests",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "KMS.DisabledException",
    "KMS.NotFoundException",
];

/// Bounds a free-form code to [`KNOWN_CODES`] or "other".
pub fn bounded_code(code: &str) -> &'static str {
    KNOWN_CODES
        .iter()
        .find(|c| **c == code)
        .copied()
        .unwrap_or("other")
}

/// Maps an S3 error code and HTTP status to a probe failure reason.
pub fn reason_for(code: Option<&str>, status: u16) -> Reason {
    match code.unwrap_or("") {
        "AccessDenied"
        | "AllAccessDisabled"
        | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "InvalidToken" => return Reason::AccessDenied,
        "NoSuchBucket" => return Reason::NoSuchBucket,
        "SlowDown"
        | "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequests" => return Reason::Throttled,
        _ => {}
    }
    match status {
        403 => Reason::AccessDenied,
        429 => Reason::Throttled,
        500..=599 => Reason::ServerError,
        400..=499 => Reason::ClientError,
        _ => Reason::Other,
    }
}

/// What went wrong with one S3 request, with what AWS support asks for.
#[derive(Debug, Clone, serde::Serialize)]
pub struct S3Failure {
    pub reason: Reason,
    pub status: Option<u16>,
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
    pub extended_request_id: Option<String>,
}

impl S3Failure {
    fn from_sdk<E>(e: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (request_id, extended_request_id) = match e.raw_response() {
            Some(r) => (
                r.headers().get("x-amz-request-id").map(str::to_string),
                r.headers().get("x-amz-id-2").map(str::to_string),
            ),
            None => (None, None),
        };
        // Only failures without an S3 answer need the SDK's whole error chain; refused
        // conditional writes (every cycle) must not pay for formatting it.
        let detail = || aws_smithy_types::error::display::DisplayErrorContext(e).to_string();
        let (reason, status, code, message) = match e {
            SdkError::TimeoutError(_) => (Reason::Timeout, None, None, detail()),
            SdkError::DispatchFailure(d) if d.is_timeout() => {
                (Reason::Timeout, None, None, detail())
            }
            SdkError::DispatchFailure(_) => (Reason::Connection, None, None, detail()),
            SdkError::ServiceError(s) => {
                let status = s.raw().status().as_u16();
                let code = s.err().code().map(str::to_string);
                let message = s
                    .err()
                    .message()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("HTTP {status}"));
                (
                    reason_for(code.as_deref(), status),
                    Some(status),
                    code,
                    message,
                )
            }
            _ => (Reason::Other, None, None, detail()),
        };
        S3Failure {
            reason,
            status,
            code,
            message,
            request_id,
            extended_request_id,
        }
    }

    /// A failure that is not an S3 error (the cycle ran out of time, or was cancelled).
    pub fn local(reason: Reason, message: impl Into<String>) -> Self {
        S3Failure {
            reason,
            status: None,
            code: None,
            message: message.into(),
            request_id: None,
            extended_request_id: None,
        }
    }

    fn is_not_found<E>(e: &SdkError<E, HttpResponse>) -> bool {
        // Over real TCP a missing key surfaces with different SDK variants per operation
        // (NoSuchKey, NotFound, unhandled); the 404 status is the one reliable signal.
        matches!(e, SdkError::ServiceError(s) if s.raw().status().as_u16() == 404)
    }
}

/// Request IDs of a successful request (kept so a wrong answer can be reported to AWS).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Ids {
    pub request_id: Option<String>,
    pub extended_request_id: Option<String>,
}

impl Ids {
    fn of<T: RequestId + RequestIdExt>(o: &T) -> Self {
        Ids {
            request_id: o.request_id().map(str::to_string),
            extended_request_id: o.extended_request_id().map(str::to_string),
        }
    }
}

/// A write condition for PutObject.
#[derive(Debug, Clone)]
pub enum Condition {
    None,
    /// `If-None-Match: *`: create only.
    IfNoneMatchAny,
    /// `If-Match: <etag>`: replace only this version.
    IfMatch(String),
}

/// An acknowledged write.
#[derive(Debug, Clone)]
pub struct Written {
    pub etag: Option<String>,
    pub ids: Ids,
}

/// An object read back.
#[derive(Debug, Clone)]
pub struct Read {
    pub body: Bytes,
    pub etag: Option<String>,
    pub ids: Ids,
}

/// HeadObject's answer.
#[derive(Debug, Clone)]
pub struct Head {
    pub etag: Option<String>,
    pub replication_status: Option<String>,
    pub ids: Ids,
}

/// One bucket of one target: the operations probes use, errors already classified.
///
/// The client is shared with every target that has the same region, endpoint, addressing
/// style, role and timeout; each request is attributed to this target's series through
/// [`RECORDING`].
#[derive(Clone, Debug)]
pub struct Bucket {
    pub client: aws_sdk_s3::Client,
    pub name: String,
    pub sse: Option<Sse>,
    recording: Arc<Recording>,
}

/// Where the attempts of a request are recorded: the daemon's metrics and the target's labels.
#[derive(Debug)]
struct Recording {
    metrics: Arc<Metrics>,
    labels: TargetLabels,
}

tokio::task_local! {
    /// Set by [`Bucket`] around each request; read by [`AttemptRecorder`], which runs inside
    /// the request's future (the SDK's orchestrator calls interceptors inline, not on another
    /// task).
    static RECORDING: Arc<Recording>;
}

impl Bucket {
    /// Runs one request with its attempts recorded under this target's labels.
    async fn recorded<F: std::future::Future>(&self, request: F) -> F::Output {
        RECORDING.scope(self.recording.clone(), request).await
    }

    /// PutObject of `body` at `key`, honouring the target's SSE setting and `cond`.
    pub async fn put(
        &self,
        key: &str,
        body: Bytes,
        cond: &Condition,
    ) -> Result<Written, S3Failure> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .content_type("application/octet-stream")
            .body(ByteStream::from(body));
        req = match cond {
            Condition::None => req,
            Condition::IfNoneMatchAny => req.if_none_match("*"),
            Condition::IfMatch(etag) => req.if_match(etag),
        };
        req = match &self.sse {
            None => req,
            Some(Sse::Aes256) => {
                req.server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
            }
            Some(Sse::Kms { key_id }) => {
                let r = req.server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms);
                match key_id {
                    Some(k) => r.ssekms_key_id(k),
                    None => r,
                }
            }
        };
        match self.recorded(req.send()).await {
            Ok(o) => Ok(Written {
                etag: o.e_tag().map(str::to_string),
                ids: Ids::of(&o),
            }),
            Err(e) => Err(S3Failure::from_sdk(&e)),
        }
    }

    /// GetObject; `Ok(None)` when S3 answers 404.
    pub async fn get(&self, key: &str) -> Result<Option<Read>, S3Failure> {
        let req = self.client.get_object().bucket(&self.name).key(key);
        match self.recorded(req.send()).await {
            Ok(o) => {
                let ids = Ids::of(&o);
                let etag = o.e_tag().map(str::to_string);
                let body = o.body.collect().await.map_err(|e| S3Failure {
                    reason: Reason::Connection,
                    status: None,
                    code: None,
                    message: format!("reading the body failed: {e}"),
                    request_id: ids.request_id.clone(),
                    extended_request_id: ids.extended_request_id.clone(),
                })?;
                Ok(Some(Read {
                    body: body.into_bytes(),
                    etag,
                    ids,
                }))
            }
            Err(e) if S3Failure::is_not_found(&e) => Ok(None),
            Err(e) => Err(S3Failure::from_sdk(&e)),
        }
    }

    /// HeadObject; `Ok(None)` when S3 answers 404.
    pub async fn head(&self, key: &str) -> Result<Option<Head>, S3Failure> {
        let req = self.client.head_object().bucket(&self.name).key(key);
        match self.recorded(req.send()).await {
            Ok(o) => Ok(Some(Head {
                etag: o.e_tag().map(str::to_string),
                replication_status: o.replication_status().map(|s| s.as_str().to_string()),
                ids: Ids::of(&o),
            })),
            Err(e) if S3Failure::is_not_found(&e) => Ok(None),
            Err(e) => Err(S3Failure::from_sdk(&e)),
        }
    }

    /// ListObjectsV2 of one page under `prefix`; returns the keys and the request IDs.
    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<(Vec<String>, bool, Ids), S3Failure> {
        let mut req = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .prefix(prefix);
        if let Some(s) = start_after {
            req = req.start_after(s);
        }
        match self.recorded(req.send()).await {
            Ok(o) => {
                let keys = o
                    .contents()
                    .iter()
                    .filter_map(|c| c.key().map(str::to_string))
                    .collect();
                Ok((keys, o.is_truncated().unwrap_or(false), Ids::of(&o)))
            }
            Err(e) => Err(S3Failure::from_sdk(&e)),
        }
    }

    /// DeleteObject (S3 answers 204 whether or not the key existed).
    pub async fn delete(&self, key: &str) -> Result<Ids, S3Failure> {
        let req = self.client.delete_object().bucket(&self.name).key(key);
        match self.recorded(req.send()).await {
            Ok(o) => Ok(Ids::of(&o)),
            Err(e) => Err(S3Failure::from_sdk(&e)),
        }
    }
}

/// What makes two targets' clients different; targets with the same key share one client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ClientKey {
    region: String,
    endpoint: Option<String>,
    path_style: bool,
    role_arn: Option<String>,
    timeout: Duration,
}

impl ClientKey {
    fn of(t: &Target) -> Self {
        ClientKey {
            region: t.region.clone(),
            endpoint: t.endpoint.clone(),
            path_style: t.path_style,
            role_arn: t.role_arn.clone(),
            timeout: t.timeout,
        }
    }
}

/// Builds clients; holds what every client shares.
#[derive(Clone, Default)]
pub struct ClientFactory {
    /// Replaces the standard credential chain (the embedded server in `demo` and tests).
    pub credentials: Option<SharedCredentialsProvider>,
    /// The configuration loaded once from the standard chain and shared by every client: one
    /// HTTP client (and TLS setup and connection pool) and one credentials cache for all
    /// targets, instead of one per target.
    base: Arc<tokio::sync::OnceCell<aws_config::SdkConfig>>,
    /// One client per distinct [`ClientKey`]. A client costs about 20 KiB (its runtime
    /// plugins and configuration layers); a thousand targets in one region need one, not a
    /// thousand. Entries live as long as the factory; a reload that changes regions or
    /// endpoints adds a few.
    clients: Arc<tokio::sync::Mutex<HashMap<ClientKey, aws_sdk_s3::Client>>>,
}

impl ClientFactory {
    /// A factory whose clients use `credentials` instead of the standard chain.
    pub fn with_credentials(credentials: SharedCredentialsProvider) -> Self {
        ClientFactory {
            credentials: Some(credentials),
            ..Default::default()
        }
    }

    /// The bucket of `t`, its requests recorded in `metrics` under the target's labels.
    pub async fn bucket(&self, t: &Target, metrics: Arc<Metrics>) -> Bucket {
        let key = ClientKey::of(t);
        let client = {
            let mut clients = self.clients.lock().await;
            match clients.get(&key) {
                Some(c) => c.clone(),
                None => {
                    let c = self.client(&key).await;
                    clients.insert(key, c.clone());
                    c
                }
            }
        };
        Bucket {
            client,
            name: t.bucket.clone(),
            sse: t.sse.clone(),
            recording: Arc::new(Recording {
                metrics,
                labels: TargetLabels::of(t),
            }),
        }
    }

    /// A client for targets with `key`: their region, endpoint and path style, optional
    /// assumed role, timeouts derived from the cycle timeout, at most [`MAX_ATTEMPTS`]
    /// attempts, and the attempt recorder.
    async fn client(&self, key: &ClientKey) -> aws_sdk_s3::Client {
        let region = Region::new(key.region.clone());
        let base = self
            .base
            .get_or_init(|| async {
                // The region is set per client below; this one only serves the credential
                // chain's own calls (STS, SSO) when nothing else names one.
                let loader = aws_config::defaults(BehaviorVersion::latest())
                    .http_client(shared_https_client());
                let loader = match &self.credentials {
                    // Without the chain nothing needs that region: looking it up would ask
                    // the instance metadata service, a network call `demo` must not make.
                    Some(c) => loader
                        .credentials_provider(c.clone())
                        .region(Region::new("us-east-1")),
                    None => loader.region(
                        aws_config::meta::region::RegionProviderChain::default_provider()
                            .or_else("us-east-1"),
                    ),
                };
                loader.load().await
            })
            .await;
        let mut b = aws_sdk_s3::config::Builder::from(base).region(region.clone());
        if let Some(arn) = &key.role_arn {
            let provider = aws_config::sts::AssumeRoleProvider::builder(arn)
                .session_name("s3canary")
                .region(region.clone())
                .configure(base)
                .build()
                .await;
            b = b.credentials_provider(provider);
        }
        if let Some(e) = &key.endpoint {
            b = b.endpoint_url(e);
        }
        // A request may use half the cycle's budget per attempt, so one slow attempt still
        // leaves room to report it; the cycle deadline is the hard bound above this.
        let attempt = key.timeout / 2;
        b = b
            .force_path_style(key.path_style)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(attempt.min(Duration::from_secs(3)))
                    .operation_attempt_timeout(attempt)
                    .operation_timeout(key.timeout)
                    .build(),
            )
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(50))
                    .with_max_backoff(Duration::from_secs(1)),
            )
            // Canary bodies are verified byte for byte by the probes; extra checksum headers
            // only make S3-compatible stores disagree with each other.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .interceptor(AttemptRecorder);
        aws_sdk_s3::Client::from_conf(b.build())
    }
}

/// One HTTPS client for every S3 client the factory builds.
///
/// Without it each `aws_sdk_s3::Client` builds its own default HTTP client on first use: its own
/// rustls configuration with a copy of the root certificate store (about 0.2 MiB) and its own
/// connection pool. At 1000 targets that was most of the daemon's memory. This client builds
/// one connector per distinct (connect, read) timeout pair and shares it, with its pool, across
/// targets; it is otherwise the SDK's default (rustls with aws-lc, proxy from the environment).
fn shared_https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Builder, Connector, proxy::ProxyConfig};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut b = Connector::builder().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
        b.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            b.set_sleep_impl(c.sleep_impl());
        }
        b.set_proxy_config(Some(ProxyConfig::from_env()));
        b.build()
    })
}

/// Records each attempt's duration and error code under the labels of the target whose
/// [`Bucket`] sent the request (from [`RECORDING`]).
#[derive(Debug)]
struct AttemptRecorder;

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

#[derive(Debug, Clone)]
struct AttemptStart(Instant);

impl Storable for AttemptStart {
    type Storer = StoreReplace<Self>;
}

/// Answers that are part of a probe's expected flow, not errors: a 404 after a delete and a
/// refused conditional write. They are judged by the probes, not counted as request errors.
fn expected_answer(code: &str) -> bool {
    matches!(
        code,
        "NotFound" | "NoSuchKey" | "PreconditionFailed" | "ConditionalRequestConflict"
    )
}

fn attempt_error_code(
    op: &str,
    e: &aws_smithy_runtime_api::client::orchestrator::OrchestratorError<
        aws_smithy_runtime_api::client::interceptors::context::Error,
    >,
    status: Option<u16>,
) -> String {
    if e.is_timeout_error() {
        return "timeout".into();
    }
    if e.is_connector_error() {
        return "connection".into();
    }
    let code = e.as_operation_error().and_then(|err| {
        use aws_sdk_s3::operation::*;
        let c = match op {
            "PutObject" => err
                .downcast_ref::<put_object::PutObjectError>()
                .and_then(|x| x.code()),
            "GetObject" => err
                .downcast_ref::<get_object::GetObjectError>()
                .and_then(|x| x.code()),
            "HeadObject" => err
                .downcast_ref::<head_object::HeadObjectError>()
                .and_then(|x| x.code()),
            "ListObjectsV2" => err
                .downcast_ref::<list_objects_v2::ListObjectsV2Error>()
                .and_then(|x| x.code()),
            "DeleteObject" => err
                .downcast_ref::<delete_object::DeleteObjectError>()
                .and_then(|x| x.code()),
            _ => None,
        };
        c.map(str::to_string)
    });
    match (code, status) {
        (Some(c), _) => c,
        (None, Some(404)) => "NotFound".into(),
        _ => "other".into(),
    }
}

impl Intercept for AttemptRecorder {
    fn name(&self) -> &'static str {
        "s3canary::AttemptRecorder"
    }

    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state()
            .store_put(AttemptStart(Instant::now()));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // An attempt that failed before transmitting (signing, credentials) has no start.
        let Some(start) = cfg.load::<AttemptStart>().cloned() else {
            return Ok(());
        };
        let op = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_else(|| "other".into());
        // Requests are only sent through `Bucket`, which always sets the recording.
        let Ok(rec) = RECORDING.try_with(Arc::clone) else {
            return Ok(());
        };
        let tl = &rec.labels;
        rec.metrics
            .request_duration
            .with_label_values(&[&tl.target, &tl.bucket, &tl.region, &op])
            .observe(start.0.elapsed().as_secs_f64());
        if let Some(Err(e)) = ctx.output_or_error() {
            let status = ctx.response().map(|r| r.status().as_u16());
            let code = attempt_error_code(&op, e, status);
            if !expected_answer(&code) {
                let code = match code.as_str() {
                    "timeout" | "connection" => code.as_str(),
                    other => bounded_code(other),
                };
                rec.metrics
                    .request_errors
                    .with_label_values(&[&tl.target, &tl.bucket, &tl.region, &op, code])
                    .inc();
            }
        }
        // The next attempt of a retried request stores its own start.
        cfg.interceptor_state().unset::<AttemptStart>();
        Ok(())
    }
}
