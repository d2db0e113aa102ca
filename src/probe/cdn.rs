//! cdn: the canary read through a CDN or caching proxy, as users read the bucket. Before the
//! put a GET expects a miss (404, or 403 as CloudFront answers for a missing key without
//! s3:ListBucket), which is what a hasty client does and what seeds a negative cache entry;
//! after the put the CDN must serve the new bytes (cdn_read_after_write: a cached miss), after
//! the overwrite never the old ones (cdn_read_after_overwrite). A stale answer is re-read
//! until it is current or the deadline, like S3's, to measure how long the CDN served it.
//!
//! What the CDN says about its cache (`X-Cache`, `Age`, `CF-Cache-Status`, `Via`,
//! `X-Cache-Status`) goes into the failure's message, never into a label.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use super::{Cycle, Seen, Step};
use crate::report::{Check, Failure, MAX_MESSAGE, Probe, ProbeResult, Reason, Skip, bounded_text};
use crate::s3::Read;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// Headers in which CDNs and proxies say whether an answer came from their cache.
const CACHE_HEADERS: &[&str] = &["x-cache", "cf-cache-status", "x-cache-status", "age", "via"];

/// One HTTP(S) client for every target's CDN reads: the system's root certificates, HTTP/1.1,
/// connections kept for reuse.
fn client() -> &'static Client<Https, Empty<Bytes>> {
    static CLIENT: OnceLock<Client<Https, Empty<Bytes>>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let provider = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider();
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match builder.with_provider_and_native_roots(provider) {
            Ok(b) => b,
            Err(e) => {
                // No usable root certificates: http:// URLs still work, https:// ones fail
                // with this reason in their message.
                tracing::warn!(error = %e, "no root certificates for the cdn probe's HTTPS");
                let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(
                    tokio_rustls::rustls::crypto::aws_lc_rs::default_provider().into(),
                )
                .with_safe_default_protocol_versions()
                .expect("the default protocol versions are supported")
                .with_root_certificates(tokio_rustls::rustls::RootCertStore::empty())
                .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
            }
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(3)));
        http.set_nodelay(true);
        let https = builder.https_or_http().enable_http1().wrap_connector(http);
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .build(https)
    })
}

/// The CDN's answer to one GET.
struct Answer {
    status: u16,
    body: Bytes,
    /// The cache headers, as "name: value; ..." (bounded).
    cache: String,
}

/// GET `url` through the CDN; the body read up to `max` bytes.
async fn fetch(url: &str, max: usize) -> Result<Answer, Failure> {
    let req = http::Request::get(url)
        .header(http::header::USER_AGENT, "s3canary")
        .body(Empty::<Bytes>::new())
        .map_err(|e| Failure::local(Reason::ClientError, format!("CDN URL {url}: {e}")))?;
    let resp = client().request(req).await.map_err(|e| {
        let peer = crate::s3::words::authority_of(url);
        let why = crate::s3::words::transport(Some(&e), &peer);
        Failure::local(Reason::Connection, bounded_text(&why, MAX_MESSAGE))
    })?;
    let status = resp.status().as_u16();
    let cache = CACHE_HEADERS
        .iter()
        .filter_map(|h| {
            let v = resp.headers().get(*h)?.to_str().ok()?;
            Some(format!("{h}: {v}"))
        })
        .collect::<Vec<_>>()
        .join("; ");
    // Only a 200's body is compared; an error page of any size is not read.
    let body = if status == 200 {
        Limited::new(resp.into_body(), max)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| {
                let why = format!("reading the CDN's answer failed: {e}");
                Failure::local(Reason::Connection, bounded_text(&why, MAX_MESSAGE))
            })?
    } else {
        Bytes::new()
    };
    Ok(Answer {
        status,
        body,
        cache: bounded_text(&cache, MAX_MESSAGE),
    })
}

/// The cache headers for a message: " (X-Cache: ...)" or nothing.
fn said(a: &Answer) -> String {
    if a.cache.is_empty() {
        String::new()
    } else {
        format!(" ({})", a.cache)
    }
}

/// A failure of the CDN itself (not a stale view): its status mapped like S3's.
fn cdn_error(a: &Answer, when: &str) -> Failure {
    let reason = match a.status {
        429 => Reason::Throttled,
        s if s >= 500 => Reason::ServerError,
        _ => Reason::ClientError,
    };
    let why = format!(
        "GET through the CDN {when} answered {}{}",
        a.status,
        said(a)
    );
    Failure::new(
        reason,
        None,
        Some(a.status),
        None,
        &why,
        &Default::default(),
    )
}

impl Cycle<'_> {
    /// The canary's address on the CDN.
    fn cdn_url(&self) -> Option<String> {
        self.cdn.as_ref().map(|base| format!("{base}{}", self.key))
    }

    /// One GET through the CDN, judged against the versions written: None for a miss.
    async fn cdn_read(&mut self) -> Result<(Answer, Seen), Failure> {
        let url = self.cdn_url().unwrap_or_default();
        let a = fetch(&url, self.max_read()).await?;
        let seen = match a.status {
            200 => {
                let read = Read {
                    body: a.body.clone(),
                    etag: None,
                    ids: Default::default(),
                };
                self.judge(Some(&read))
            }
            403 | 404 => Seen::Stale,
            _ => return Err(cdn_error(&a, "after the write")),
        };
        Ok((a, seen))
    }

    /// Re-reads through the CDN (for [`Cycle::reread_until`]): whether the answer is current.
    pub(super) async fn cdn_reread(&mut self) -> Option<bool> {
        let (_, seen) = self.cdn_read().await.ok()?;
        Some(matches!(seen, Seen::Current))
    }
}

/// Before the put: the CDN must not have the new key (a miss, which it may cache).
pub(super) async fn before_put(c: &mut Cycle<'_>) -> Result<(), Failure> {
    let url = c.cdn_url().unwrap_or_default();
    let a = fetch(&url, c.max_read()).await?;
    match a.status {
        403 | 404 => Ok(()),
        200 => Err(Failure::local(
            Reason::ContentMismatch,
            format!(
                "the CDN served the canary before it was written{}",
                said(&a)
            ),
        )),
        _ => Err(cdn_error(&a, "before the write")),
    }
}

/// After an acknowledged write: the CDN must serve it; a stale answer is a violation of
/// `check`, re-read until current or the deadline.
pub(super) async fn after_write(c: &mut Cycle<'_>, check: Check) -> Result<(), Failure> {
    let since = c.current().map(|v| v.acked_at).unwrap_or_else(Instant::now);
    let (a, seen) = c.cdn_read().await?;
    let what = match seen {
        Seen::Current => return Ok(()),
        Seen::Corrupt(why) => {
            return Err(Failure::local(
                Reason::ContentMismatch,
                format!("GET through the CDN: {why}{}", said(&a)),
            ));
        }
        Seen::Stale if a.status == 200 => "the previous version",
        Seen::Stale => "a miss",
    };
    let failure = Failure::new(
        Reason::StaleRead,
        None,
        Some(a.status),
        None,
        &format!(
            "GET through the CDN after an acknowledged PutObject served {what} ({}){}",
            a.status,
            said(&a)
        ),
        &Default::default(),
    );
    Err(c.stale_view(failure, check, since, super::Want::Cdn).await)
}

/// When in the cycle the CDN is read.
#[derive(Debug, Clone, Copy)]
enum Phase {
    BeforePut,
    AfterWrite,
    AfterOverwrite,
}

/// The cdn probe across its phases: the first failure and the time spent.
#[derive(Debug)]
pub(super) struct CdnRun {
    /// Most time one phase may take.
    budget: Duration,
    ran: bool,
    failure: Option<Failure>,
    took: Duration,
}

impl CdnRun {
    /// A run whose phases may each take up to `budget`.
    pub(super) fn new(budget: Duration) -> Self {
        CdnRun {
            budget,
            ran: false,
            failure: None,
            took: Duration::ZERO,
        }
    }

    /// Before the cycle's first step: the CDN must not have the new key.
    pub(super) async fn before_steps(&mut self, c: &mut Cycle<'_>) {
        self.phase(c, Phase::BeforePut).await;
    }

    /// After `step` passed: the CDN must serve what the put or the overwrite wrote.
    pub(super) async fn after(&mut self, c: &mut Cycle<'_>, step: Step) {
        match step {
            Step::Put => self.phase(c, Phase::AfterWrite).await,
            Step::Overwrite => self.phase(c, Phase::AfterOverwrite).await,
            _ => {}
        }
    }

    /// Runs one phase, bounded by the budget and the cycle's deadline; only the first failure
    /// is kept, and a phase the deadline leaves no time for is a timeout.
    async fn phase(&mut self, c: &mut Cycle<'_>, phase: Phase) {
        if self.failure.is_some() {
            return;
        }
        let deadline = c.deadline;
        let start = Instant::now();
        if start >= deadline {
            self.failure = Some(Failure::local(
                Reason::Timeout,
                "timed out: the cycle ran out of time before the CDN was read",
            ));
            return;
        }
        let until = deadline.min(start + self.budget);
        c.pending_failure = None;
        // The re-reads of a stale view stop at the phase's end, not the cycle's.
        let cycle_deadline = std::mem::replace(&mut c.deadline, until);
        // Boxed: the HTTP client's futures are large, and the cycle's own future is polled on
        // the caller's stack (a test thread's 2 MiB in debug builds).
        let step = Box::pin(async {
            match phase {
                Phase::BeforePut => before_put(c).await,
                Phase::AfterWrite => after_write(c, Check::CdnReadAfterWrite).await,
                Phase::AfterOverwrite => after_write(c, Check::CdnReadAfterOverwrite).await,
            }
        });
        let r = tokio::time::timeout_at(until, step).await;
        c.deadline = cycle_deadline;
        self.ran = true;
        self.took += start.elapsed();
        self.failure = match r {
            Ok(r) => r.err(),
            Err(_) => Some(c.pending_failure.take().unwrap_or_else(|| {
                Failure::local(Reason::Timeout, "timed out: the cycle ran out of time")
            })),
        };
    }

    /// The probe's result: not run if the put failed and the CDN had nothing to show.
    pub(super) fn result(self, put_ok: bool) -> ProbeResult {
        match (self.failure, self.ran) {
            (Some(f), _) => ProbeResult::ran(Probe::Cdn, Err(f), self.took),
            (None, true) if put_ok => ProbeResult::ran(Probe::Cdn, Ok(()), self.took),
            // Nothing to compare with: no canary, or no phase had time to run.
            _ if !put_ok => ProbeResult::not_run(Probe::Cdn, Skip::After(Probe::Put)),
            _ => ProbeResult::not_run(Probe::Cdn, Skip::Deadline),
        }
    }
}
