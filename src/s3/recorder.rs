//! Per-attempt request figures: an SDK interceptor times every attempt (retries included) and
//! reports its duration and error code to the [`Sink`] of the target whose [`super::Bucket`]
//! sent the request.
//!
//! One client serves many targets, so the target is not known to the client: each request runs
//! inside the task-local [`RECORDING`] that its bucket sets.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use tokio::time::Instant;

use super::error::{Refusal, attempt_error_code, expected_answer, never_connected};
use super::limit::BodyLimit;
use crate::report::Sink;
use crate::report::{Attempt, MAX_TOKEN, TargetLabels, bounded_code, bounded_text};

/// Where the attempts of a request are reported: the sink and the target's labels.
pub(crate) struct Recording {
    pub sink: Arc<dyn Sink>,
    pub labels: TargetLabels,
    /// The credentials of the target's client, watched.
    pub credentials: Arc<super::credentials::CredentialWatch>,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording")
            .field("target", &self.labels.target)
            .finish()
    }
}

tokio::task_local! {
    /// Set by the bucket around each request; read by [`AttemptRecorder`], which runs inside
    /// the request's future (the SDK's orchestrator calls interceptors inline, not on another
    /// task).
    pub(crate) static RECORDING: Arc<Recording>;

    /// Set by the bucket around each request: whether an attempt may have reached the store.
    pub(crate) static SENT: Arc<Sent>;

    /// Set around a write that must be refused: its refusal is the expected answer, not a
    /// request error.
    pub(crate) static REFUSAL_EXPECTED: Refusal;
}

/// Times each attempt and reports it with its error code (from [`RECORDING`]); it also applies
/// [`BodyLimit`] to every answer.
///
/// One interceptor instead of two: the SDK asks every interceptor at each of the twenty hooks
/// of every request whether it is enabled, a walk over the request's configuration layers, and
/// for a second interceptor those walks were about 1.5% of a cycle's CPU.
#[derive(Debug)]
pub(super) struct AttemptRecorder;

#[derive(Debug, Clone)]
struct AttemptStart(Instant);

impl Storable for AttemptStart {
    type Storer = StoreReplace<Self>;
}

/// Whether any attempt of a request may have reached the store.
///
/// An attempt counts from the moment it is about to be transmitted; only an attempt that is
/// known to have failed to connect is taken back. An attempt cut off by the operation timeout
/// (its hooks never finish) therefore counts as sent, so its write may have landed.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    /// A finished attempt may have reached the store.
    reached: AtomicBool,
    /// An attempt is being transmitted and has not been judged yet.
    in_flight: AtomicBool,
}

impl Sent {
    /// Whether any attempt may have reached the store.
    pub fn may_have_reached(&self) -> bool {
        self.reached.load(Ordering::Relaxed) || self.in_flight.load(Ordering::Relaxed)
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
        let _ = SENT.try_with(|s| s.in_flight.store(true, Ordering::Relaxed));
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        ctx: &mut BeforeDeserializationInterceptorContextMut<'_>,
        rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        BodyLimit.modify_before_deserialization(ctx, rc, cfg)
    }

    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Requests are only sent through a bucket, which always sets the recording.
        let Ok(rec) = RECORDING.try_with(Arc::clone) else {
            return Ok(());
        };
        // Every attempt resolved the credentials first (from the cache, or by a load).
        let c = &rec.credentials;
        rec.sink.credentials(&rec.labels, c.expiry(), c.failures());
        // An attempt that failed before transmitting (signing, credentials) has no start.
        let Some(start) = cfg.load::<AttemptStart>().cloned() else {
            return Ok(());
        };
        let op = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_else(|| "other".into());
        let reached = !matches!(ctx.output_or_error(), Some(Err(e)) if never_connected(e));
        let _ = SENT.try_with(|s| {
            if reached {
                s.reached.store(true, Ordering::Relaxed);
            }
            s.in_flight.store(false, Ordering::Relaxed);
        });
        let error = match ctx.output_or_error() {
            Some(Err(e)) => {
                let status = ctx.response().map(|r| r.status().as_u16());
                let code = attempt_error_code(&op, e, status);
                let refusal = REFUSAL_EXPECTED.try_with(|r| *r).ok();
                (!expected_answer(&code, status, refusal)).then(|| bounded_code(&code))
            }
            _ => None,
        };
        let request_id = ctx
            .response()
            .and_then(|r| r.headers().get("x-amz-request-id"))
            .map(|id| bounded_text(id, MAX_TOKEN));
        rec.sink.attempt(
            &rec.labels,
            &Attempt {
                operation: &op,
                took: start.0.elapsed(),
                error,
                request_id: request_id.as_deref(),
            },
        );
        // Every answer's `Date` says how far this host's clock is from S3's.
        if let Some(skew) = ctx
            .response()
            .and_then(|r| r.headers().get("date"))
            .and_then(|d| super::explain::clock_skew(d, std::time::SystemTime::now()))
        {
            rec.sink.clock_skew(&rec.labels, skew);
        }
        // The next attempt of a retried request stores its own start.
        cfg.interceptor_state().unset::<AttemptStart>();
        Ok(())
    }
}
