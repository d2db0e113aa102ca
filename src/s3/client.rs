//! S3 clients: one per distinct (region, endpoint, addressing style, role, timeout), shared by
//! every target with those settings, built on one configuration loaded from aws-config's
//! standard chain with explicit timeouts and at most [`MAX_ATTEMPTS`] attempts per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    Region, RequestChecksumCalculation, ResponseChecksumValidation, SharedCredentialsProvider,
};

use super::Bucket;
use super::connect::TimedClient;
use super::credentials::{CredentialWatch, Watched};
use super::limit::BodyLimit;
use super::recorder::{AttemptRecorder, Recording};
use super::words::Peer;
use crate::config::Target;
use crate::report::Sink;

/// Most attempts per S3 request (the first plus two retries).
pub const MAX_ATTEMPTS: u32 = 3;

/// What makes two targets' clients different; targets with the same key share one client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ClientKey {
    region: String,
    endpoint: Option<String>,
    path_style: bool,
    role_arn: Option<String>,
    ca: Option<crate::config::CaFile>,
    timeout: Duration,
}

impl ClientKey {
    fn of(t: &Target) -> Self {
        ClientKey {
            region: t.region.clone(),
            endpoint: t.endpoint.clone(),
            path_style: t.path_style,
            role_arn: t.role_arn.clone(),
            ca: t.ca.clone(),
            timeout: t.timeout,
        }
    }
}

/// The clients built so far, each with the watch of the credentials it signs with.
type Clients = HashMap<ClientKey, (aws_sdk_s3::Client, Arc<CredentialWatch>)>;

/// Builds clients; holds what every client shares.
#[derive(Clone, Default)]
pub struct ClientFactory {
    /// Replaces the standard credential chain (the embedded server in `demo` and tests).
    pub credentials: Option<SharedCredentialsProvider>,
    /// The configuration loaded once from the standard chain and shared by every client: one
    /// HTTP client (and TLS setup and connection pool) and one credentials cache for all
    /// targets, instead of one per target.
    base: Arc<tokio::sync::OnceCell<aws_config::SdkConfig>>,
    /// The base configuration's credentials, watched (clients without a role of their own).
    base_watch: Arc<CredentialWatch>,
    /// One client per distinct [`ClientKey`]. A client costs about 20 KiB (its runtime
    /// plugins and configuration layers); a thousand targets in one region need one, not a
    /// thousand. Entries live as long as the factory; a reload that changes regions or
    /// endpoints adds a few.
    clients: Arc<tokio::sync::Mutex<Clients>>,
    /// The HTTP clients under the S3 clients, one per set of trusted roots (the system's, or
    /// with a target's `ca_file`): each times the phases of every attempt.
    http: Arc<std::sync::Mutex<HashMap<Option<crate::config::CaFile>, TimedClient>>>,
}

impl ClientFactory {
    /// A factory whose clients use `credentials` instead of the standard chain.
    pub fn with_credentials(credentials: SharedCredentialsProvider) -> Self {
        ClientFactory {
            credentials: Some(credentials),
            ..Default::default()
        }
    }

    /// The bucket of `t`, its request attempts reported to `sink` under the target's labels.
    pub async fn bucket(&self, t: &Target, sink: Arc<dyn Sink>) -> Bucket {
        let key = ClientKey::of(t);
        let (client, credentials) = {
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
            peer: Arc::new(s3_peer(t)),
            name: t.bucket.clone(),
            sse: t.sse.clone(),
            max_body: t.object_size as usize + super::limit::GET_MARGIN,
            recording: Arc::new(Recording {
                sink,
                labels: t.labels(),
                credentials,
            }),
            changes: None,
            turns: Arc::default(),
        }
    }

    /// The configuration every client starts from, loaded once.
    async fn base(&self) -> &aws_config::SdkConfig {
        self.base
            .get_or_init(|| async {
                // The region is set per client below; this one only serves the credential
                // chain's own calls (STS, SSO) when nothing else names one.
                let loader = aws_config::defaults(BehaviorVersion::latest())
                    .http_client(shared_https_client(None));
                let loader = match &self.credentials {
                    // Without the chain nothing needs that region: looking it up would ask
                    // the instance metadata service, a network call `demo` must not make.
                    Some(c) => loader
                        .credentials_provider(c.clone())
                        .region(Region::new("us-east-1")),
                    // Every target names its region. The chain's own calls (STS for web
                    // identity, SSO) take one from the environment or the profile; never from
                    // the instance metadata service, which costs a second at every start and
                    // longer on EKS, where pods often cannot reach it.
                    None => loader.region(
                        aws_config::meta::region::RegionProviderChain::first_try(
                            aws_config::environment::EnvironmentVariableRegionProvider::new(),
                        )
                        .or_else(aws_config::profile::ProfileFileRegionProvider::new())
                        .or_else("us-east-1"),
                    ),
                };
                let config = loader.load().await;
                // Every load of the chain's credentials is watched (expiry, failures).
                match config.credentials_provider() {
                    Some(p) => config
                        .into_builder()
                        .credentials_provider(Watched::provider(p, self.base_watch.clone()))
                        .build(),
                    None => config,
                }
            })
            .await
    }

    /// An SQS client for the events probe's queue: its region, an optional endpoint and
    /// assumed role, short timeouts around the 20 s long poll, at most [`MAX_ATTEMPTS`]
    /// attempts, and replies bounded like S3's.
    pub async fn sqs(
        &self,
        region: &str,
        endpoint: Option<&str>,
        role_arn: Option<&str>,
    ) -> aws_sdk_sqs::Client {
        let region = Region::new(region.to_string());
        let base = self.base().await;
        let mut b = aws_sdk_sqs::config::Builder::from(base).region(region.clone());
        if let Some(arn) = role_arn {
            let provider = aws_config::sts::AssumeRoleProvider::builder(arn)
                .session_name("s3canary")
                .region(region)
                .configure(base)
                .build()
                .await;
            b = b.credentials_provider(provider);
        }
        if let Some(e) = endpoint {
            b = b.endpoint_url(e);
        }
        let [connect, attempt, total] = SQS_TIMEOUTS;
        b = b
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(connect)
                    .operation_attempt_timeout(attempt)
                    .operation_timeout(total)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .interceptor(BodyLimit);
        aws_sdk_sqs::Client::from_conf(b.build())
    }

    /// A client for targets with `key`: their region, endpoint and path style, optional
    /// assumed role, timeouts derived from the cycle timeout, at most [`MAX_ATTEMPTS`]
    /// attempts, and the attempt recorder (which also bounds answers).
    async fn client(&self, key: &ClientKey) -> (aws_sdk_s3::Client, Arc<CredentialWatch>) {
        let region = Region::new(key.region.clone());
        let base = self.base().await;
        let mut b = aws_sdk_s3::config::Builder::from(base).region(region.clone());
        let mut watch = self.base_watch.clone();
        if let Some(arn) = &key.role_arn {
            let provider = aws_config::sts::AssumeRoleProvider::builder(arn)
                .session_name("s3canary")
                .region(region.clone())
                .configure(base)
                .build()
                .await;
            // The role's own sessions, watched apart from the chain that assumes it.
            watch = Arc::new(CredentialWatch::default());
            b = b.credentials_provider(Watched::provider(
                SharedCredentialsProvider::new(provider),
                watch.clone(),
            ));
        }
        if let Some(e) = &key.endpoint {
            b = b.endpoint_url(e);
        }
        // Through a proxy the SDK's own client connects (phases are not timed there); its
        // roots are the system's plus the target's `ca_file`.
        if proxied(key) {
            if let Some(ca) = &key.ca {
                b = b.http_client(shared_https_client(Some(ca)));
            }
        } else {
            let mut http = self.http.lock().unwrap_or_else(|p| p.into_inner());
            let client = http
                .entry(key.ca.clone())
                .or_insert_with(|| TimedClient::new(key.ca.as_ref().map_or(&[], |c| &c.certs)));
            b = b.http_client(client.clone());
        }
        let [connect, attempt, total] = s3_timeouts(key.timeout);
        b = b
            .force_path_style(key.path_style)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(connect)
                    .operation_attempt_timeout(attempt)
                    .operation_timeout(total)
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
            // The recorder also bounds every answer's body (BodyLimit).
            .interceptor(AttemptRecorder);
        (aws_sdk_s3::Client::from_conf(b.build()), watch)
    }
}

/// The connect, attempt and total timeouts of an S3 request under a target's `timeout`.
///
/// A request may use half the cycle's budget per attempt, so one slow attempt still leaves
/// room to report it; the cycle deadline is the hard bound above this.
fn s3_timeouts(timeout: Duration) -> [Duration; 3] {
    let attempt = timeout / 2;
    [attempt.min(Duration::from_secs(3)), attempt, timeout]
}

/// Where the S3 requests of `t` go: its endpoint, or the AWS host its bucket is addressed at.
fn s3_peer(t: &Target) -> Peer {
    let aws = if t.path_style {
        format!("s3.{}.amazonaws.com", t.region)
    } else {
        format!("{}.s3.{}.amazonaws.com", t.bucket, t.region)
    };
    Peer {
        region: t.region.clone(),
        ..Peer::new(t.endpoint.as_deref(), &aws, s3_timeouts(t.timeout))
    }
}

/// The connect, attempt and total timeouts of the SQS client: short around the 20 s long poll.
pub const SQS_TIMEOUTS: [Duration; 3] = [
    Duration::from_secs(3),
    Duration::from_secs(30),
    Duration::from_secs(60),
];

/// Where the SQS requests of a queue in `region` go: `endpoint`, or AWS's SQS host.
pub fn sqs_peer(region: &str, endpoint: Option<&str>) -> Peer {
    Peer::new(
        endpoint,
        &format!("sqs.{region}.amazonaws.com"),
        SQS_TIMEOUTS,
    )
}

/// Whether the environment's proxy settings (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and
/// `NO_PROXY`, either case) send requests for `key`'s endpoint through a proxy.
fn proxied(key: &ClientKey) -> bool {
    let endpoint = key
        .endpoint
        .clone()
        .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", key.region));
    endpoint.parse::<http::Uri>().is_ok_and(|uri| {
        hyper_util::client::proxy::matcher::Matcher::from_env()
            .intercept(&uri)
            .is_some()
    })
}

/// One HTTPS client for every S3 client the factory builds.
///
/// Without it each `aws_sdk_s3::Client` builds its own default HTTP client on first use: its own
/// rustls configuration with a copy of the root certificate store (about 0.2 MiB) and its own
/// connection pool. At 1000 targets that was most of the daemon's memory. This client builds
/// one connector per distinct (connect, read) timeout pair and shares it, with its pool, across
/// targets; it is otherwise the SDK's default (rustls with aws-lc, proxy from the environment).
fn shared_https_client(
    ca: Option<&crate::config::CaFile>,
) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{
        Provider, TlsContext, TrustStore, rustls_provider::CryptoMode,
    };
    use aws_smithy_http_client::{Builder, Connector, proxy::ProxyConfig};
    // The system's roots, and a target's `ca_file` (PEM again: the SDK takes roots as PEM).
    let mut roots = TrustStore::default();
    for c in ca.map_or(&[][..], |c| &c.certs) {
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, c.as_ref());
        roots.add_pem_certificate(
            format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n").into_bytes(),
        );
    }
    let context = TlsContext::builder().with_trust_store(roots).build().ok();
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut b = Connector::builder().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
        if let Some(c) = &context {
            b = b.tls_context(c.clone());
        }
        b.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            b.set_sleep_impl(c.sleep_impl());
        }
        b.set_proxy_config(Some(ProxyConfig::from_env()));
        b.build()
    })
}
