//! The credentials a target signs with, watched: their expiry becomes
//! `s3canary_credentials_expiry_timestamp_seconds`, a load that fails counts in
//! `s3canary_credentials_refresh_failures_total` and the request fails as
//! `credentials_unavailable`, as an IRSA session whose token file stopped rotating does. The
//! provider stands in for STS (it cannot run here with a session short enough to expire
//! during a test); the embedded S3 server, the SDK's identity cache and the daemon's wrapper
//! are the real ones.

pub mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use common::sample;
use s3canary::embedded::EmbeddedS3;
use s3canary::report::{Reason, Sink};
use s3canary::s3::ClientFactory;
use s3canary::sinks::metrics::Metrics;

/// Gives the embedded server's keys as a session expiring at `expiry` once, then fails as a
/// web-identity provider whose token file is gone.
#[derive(Debug)]
struct SessionThenNothing {
    loads: AtomicU32,
    expiry: SystemTime,
}

impl ProvideCredentials for SessionThenNothing {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let first = self.loads.fetch_add(1, Ordering::Relaxed) == 0;
        future::ProvideCredentials::ready(if first {
            Ok(Credentials::new(
                s3canary::embedded::ACCESS_KEY,
                s3canary::embedded::SECRET_KEY,
                Some("session-token".into()),
                Some(self.expiry),
                "test session",
            ))
        } else {
            Err(CredentialsError::provider_error(std::io::Error::other(
                "the web identity token file /var/run/secrets/eks.amazonaws.com/serviceaccount/token is gone",
            )))
        })
    }
}

#[tokio::test]
async fn an_expiring_session_that_cannot_be_refreshed_is_seen_before_and_named_after() {
    let s3 = EmbeddedS3::start(&["canary"]).await.unwrap();
    // Within the identity cache's refresh buffer: the next request loads again.
    let expiry = SystemTime::now() + Duration::from_secs(5);
    let provider = SessionThenNothing {
        loads: AtomicU32::new(0),
        expiry,
    };
    let factory = ClientFactory::with_credentials(SharedCredentialsProvider::new(provider));
    let metrics = Arc::new(Metrics::new(&Default::default()));
    let target = common::target("t1", "canary", &s3.endpoint, "");
    metrics.target_added(&target.info());
    let bucket = factory.bucket(&target, metrics.clone()).await;
    let text = metrics.render();
    assert_eq!(
        sample(&text, "s3canary_credentials_refresh_failures_total", &[]),
        Some(0.0),
        "the failure counter exists from the start"
    );
    let report = common::one_cycle(&bucket, &target).await;
    metrics.cycle(&target.labels(), &report);
    let failed: Vec<_> = report
        .results
        .iter()
        .filter_map(|r| r.ran_with().flatten().map(|f| (r.probe, f.clone())))
        .collect();
    let (_, f) = failed
        .first()
        .expect("a step failed once the session could not be refreshed");
    assert_eq!(f.reason, Reason::CredentialsUnavailable, "{f:?}");
    assert!(f.message.contains("token file"), "{}", f.message);
    let text = metrics.render();
    let at = sample(&text, "s3canary_credentials_expiry_timestamp_seconds", &[])
        .expect("the session's expiry is exported");
    let want = expiry.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((at - want).abs() < 1.0, "{at} vs {want}");
    let failures = sample(&text, "s3canary_credentials_refresh_failures_total", &[]).unwrap();
    assert!(failures >= 1.0, "{text}");
}

/// Static keys have no expiry: the gauge stays absent, and nothing fails.
#[tokio::test]
async fn static_keys_have_no_expiry() {
    let r = common::rig("").await;
    let report = common::cycle(&r).await;
    assert!(
        report
            .results
            .iter()
            .all(|x| matches!(x.ran_with(), Some(None)))
    );
    let text = r.metrics.render();
    assert_eq!(
        sample(&text, "s3canary_credentials_expiry_timestamp_seconds", &[]),
        None
    );
    assert_eq!(
        sample(&text, "s3canary_credentials_refresh_failures_total", &[]),
        Some(0.0)
    );
}
