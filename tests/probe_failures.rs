//! Probe cycles that fail: denied, throttled, server errors, missing buckets, refused
//! connections, hangs and shutdown, each with its bounded reason, and the canary still deleted.

pub mod common;

use std::time::Duration;

use common::{cycle, outcome, reason, rig, sample};
use s3canary::embedded::{FaultConfig, Op};
use s3canary::probe::run_cycle;
use s3canary::report::Sink;
use s3canary::report::{CycleReport, Outcome, Reason};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// DeleteObject requests the rig's server received.
fn deletes(r: &common::Rig) -> usize {
    let log = r.s3.log.entries();
    log.iter().filter(|a| a.op == Op::DeleteObject).count()
}

/// A rig whose every PutObject fails with S3 error `code`, and one cycle run on it.
async fn cycle_with_failing_puts(code: &str) -> (common::Rig, CycleReport) {
    let r = rig("").await;
    r.s3.faults
        .set_all(FaultConfig::error(code, 1.0, vec![Op::PutObject]));
    let report = cycle(&r).await;
    (r, report)
}

#[tokio::test]
async fn access_denied_is_bounded_reason_and_code_and_skips_dependents() {
    let (r, report) = cycle_with_failing_puts("AccessDenied").await;
    assert_eq!(reason(&report, "put"), Some(Reason::AccessDenied));
    for p in ["get", "list", "overwrite", "delete", "conditional"] {
        assert!(outcome(&report, p).is_none(), "{p} ran after put failed");
    }
    let Some(Outcome::Failure(f)) = outcome(&report, "put") else {
        unreachable!()
    };
    assert_eq!(f.code.as_deref(), Some("AccessDenied"));
    assert!(f.request_id.is_some());
    let text = r.metrics.render();
    assert_eq!(
        sample(
            &text,
            "s3canary_s3_request_errors_total",
            &["operation=\"PutObject\"", "code=\"AccessDenied\""]
        ),
        Some(1.0),
        "AccessDenied is not retried"
    );
    assert_eq!(
        sample(&text, "s3canary_probe_runs_total", &["probe=\"get\""]),
        Some(0.0)
    );
}

#[tokio::test]
async fn throttling_is_retried_at_most_three_times() {
    let (r, report) = cycle_with_failing_puts("SlowDown").await;
    assert_eq!(reason(&report, "put"), Some(Reason::Throttled));
    let text = r.metrics.render();
    assert_eq!(
        sample(
            &text,
            "s3canary_s3_request_errors_total",
            &["operation=\"PutObject\"", "code=\"SlowDown\""]
        ),
        Some(3.0)
    );
    assert_eq!(r.s3.log.count(Op::PutObject), 3);
    // Each attempt is its own latency observation.
    assert_eq!(
        sample(
            &text,
            "s3canary_s3_request_duration_seconds_count",
            &["operation=\"PutObject\""]
        ),
        Some(3.0)
    );
}

#[tokio::test]
async fn server_errors_and_missing_buckets_have_their_reasons() {
    let r = rig("").await;
    r.s3.faults.set_all(FaultConfig::error(
        "InternalError",
        1.0,
        vec![Op::GetObject],
    ));
    let report = cycle(&r).await;
    assert_eq!(reason(&report, "get"), Some(Reason::ServerError));
    assert_eq!(r.s3.keys("canary"), Vec::<String>::new());

    let s3 = &r.s3;
    let t = common::target("t2", "no-such-bucket", &s3.endpoint, "");
    let b = common::factory().bucket(&t, r.metrics.clone()).await;
    let report = common::one_cycle(&b, &t).await;
    assert_eq!(reason(&report, "put"), Some(Reason::NoSuchBucket));
}

#[tokio::test]
async fn connection_refused_is_connection_in_plain_words_and_leaves_nothing_to_clean_up() {
    // Bind and drop a listener to get a port that nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let t = common::target("t1", "canary", &endpoint, "");
    let metrics = std::sync::Arc::new(s3canary::sinks::metrics::Metrics::new(&Default::default()));
    let b = common::factory().bucket(&t, metrics.clone()).await;
    let report = common::one_cycle(&b, &t).await;
    assert_eq!(reason(&report, "put"), Some(Reason::Connection));
    let Some(Outcome::Failure(f)) = outcome(&report, "put") else {
        unreachable!()
    };
    assert_eq!(f.message, format!("connection refused by 127.0.0.1:{port}"));
    // No attempt connected, so no canary can exist: nothing to delete, nothing left behind.
    assert!(f.unsent);
    assert!(report.cleaned_up);
    metrics.cycle(&t.labels(), &report);
    let text = metrics.render();
    assert!(
        sample(
            &text,
            "s3canary_s3_request_errors_total",
            &["operation=\"PutObject\"", "code=\"connection\""]
        )
        .is_some_and(|n| (1.0..=3.0).contains(&n))
    );
}

#[tokio::test]
async fn hanging_get_times_out_at_the_deadline_and_the_canary_is_still_deleted() {
    let r = rig("interval = \"10s\"\ntimeout = \"2s\"").await;
    r.s3.faults.set_all(FaultConfig {
        hang: vec![Op::GetObject],
        ..Default::default()
    });
    let started = Instant::now();
    let report = cycle(&r).await;
    let took = started.elapsed();
    assert_eq!(reason(&report, "get"), Some(Reason::Timeout));
    let Some(Outcome::Failure(f)) = outcome(&report, "get") else {
        unreachable!()
    };
    // The SDK's timeout or the cycle's deadline, whichever came first, in words.
    assert!(
        f.message.starts_with("timed out ") && f.message.contains(" waiting for the response"),
        "{}",
        f.message
    );
    // The deadline is 2 s; the cleanup DELETE is quick.
    assert!(took < Duration::from_secs(3), "cycle took {took:?}");
    assert!(report.cleaned_up);
    assert_eq!(r.s3.keys("canary"), Vec::<String>::new());
}

#[tokio::test]
async fn cancelled_cycle_skips_remaining_steps_but_deletes_its_canary() {
    let r = rig("").await;
    r.s3.faults.set_all(FaultConfig {
        latency: Duration::from_millis(100),
        ..Default::default()
    });
    let token = CancellationToken::new();
    let t2 = token.clone();
    // Cancel while the put is in flight: it finishes, nothing after it runs.
    let log = r.s3.log.clone();
    tokio::spawn(async move {
        while log.count(Op::PutObject) == 0 {
            tokio::task::yield_now().await;
        }
        t2.cancel();
    });
    let report = run_cycle(
        &r.bucket,
        &r.target,
        Instant::now() + r.target.timeout,
        &token,
    )
    .await;
    assert!(matches!(report.results[0].outcome, Some(Outcome::Success)));
    let not_run = report
        .results
        .iter()
        .filter(|x| x.outcome.is_none())
        .count();
    assert_eq!(not_run, 5, "{:?}", report.results);
    assert!(report.cleaned_up);
    assert_eq!(r.s3.keys("canary"), Vec::<String>::new());
}

/// Targets on the same endpoint share one S3 client; each request must still land in the
/// series of the target that sent it, also when their cycles run at the same time.
#[tokio::test]
async fn targets_sharing_a_client_keep_their_own_request_series() {
    let s3 = s3canary::embedded::EmbeddedS3::start(&["one", "two"])
        .await
        .unwrap();
    let metrics = std::sync::Arc::new(s3canary::sinks::metrics::Metrics::new(&Default::default()));
    let factory = common::factory();
    let a = common::target("a", "one", &s3.endpoint, "");
    let b = common::target("b", "two", &s3.endpoint, "probes = [\"put\", \"get\"]");
    let (ba, bb) = (
        factory.bucket(&a, metrics.clone()).await,
        factory.bucket(&b, metrics.clone()).await,
    );
    let token = CancellationToken::new();
    for _ in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(10);
        let (ra, rb) = tokio::join!(
            run_cycle(&ba, &a, deadline, &token),
            run_cycle(&bb, &b, deadline, &token)
        );
        assert!(ra.violations.is_empty() && rb.violations.is_empty());
    }
    let text = metrics.render();
    let count = |target: &str, op: &str| {
        let (t, o) = (
            format!("target=\"{target}\""),
            format!("operation=\"{op}\""),
        );
        sample(
            &text,
            "s3canary_s3_request_duration_seconds_count",
            &[&t, &o],
        )
        .unwrap_or(0.0)
    };
    // Target a runs every probe: 13 requests a cycle; b runs put and get: 3 (with the delete).
    assert_eq!(count("a", "PutObject"), 18.0);
    assert_eq!(count("a", "ListObjectsV2"), 6.0);
    assert_eq!(count("b", "PutObject"), 3.0);
    assert_eq!(count("b", "GetObject"), 3.0);
    assert_eq!(count("b", "DeleteObject"), 3.0);
    assert_eq!(count("b", "ListObjectsV2"), 0.0);
    // And the server saw exactly that many requests on each bucket.
    let log = s3.log.entries();
    let on = |bucket: &str, op: Op| {
        log.iter()
            .filter(|x| x.bucket == bucket && x.op == op)
            .count()
    };
    assert_eq!(on("two", Op::PutObject), 3);
    assert_eq!(on("one", Op::PutObject), 18);
}

#[tokio::test]
async fn a_refused_write_wrote_nothing_so_no_cleanup_delete_is_sent() {
    for code in ["AccessDenied", "NoSuchBucket"] {
        let (r, report) = cycle_with_failing_puts(code).await;
        assert!(outcome(&report, "put").is_some_and(|o| matches!(o, Outcome::Failure(_))));
        assert!(
            report.cleaned_up,
            "{code}: nothing was written, nothing to clean up"
        );
        let deletes = deletes(&r);
        assert_eq!(
            deletes, 0,
            "{code}: a DELETE was sent for a write S3 refused"
        );
    }
    // A 5xx may have landed: that canary is still deleted.
    let (r, report) = cycle_with_failing_puts("InternalError").await;
    assert!(report.cleaned_up);
    let deletes = deletes(&r);
    assert_eq!(
        deletes, 1,
        "a write that may have landed must be cleaned up"
    );
}

#[tokio::test]
async fn an_unexpected_412_is_a_request_error_an_expected_one_is_not() {
    // Healthy: the two refusals the conditional step asks for are not request errors.
    let r = rig("").await;
    let report = cycle(&r).await;
    assert!(report.passed());
    let text = r.metrics.render();
    assert!(
        !text.contains("s3canary_s3_request_errors_total{"),
        "{text}"
    );
    // Every PUT refused with 412, also the first, which must succeed: counted.
    let (r, report) = cycle_with_failing_puts("PreconditionFailed").await;
    assert!(!report.passed());
    let text = r.metrics.render();
    let errors = sample(
        &text,
        "s3canary_s3_request_errors_total",
        &["operation=\"PutObject\"", "code=\"PreconditionFailed\""],
    );
    assert_eq!(errors, Some(1.0), "{text}");
}

#[tokio::test]
async fn a_write_that_hung_may_have_landed_so_its_canary_is_still_deleted() {
    let r = rig("interval = \"10s\"\ntimeout = \"2s\"").await;
    r.s3.faults.set_all(FaultConfig {
        hang: vec![Op::PutObject],
        ..Default::default()
    });
    // The cycle's deadline comes well after the client's own 2 s timeout, so the SDK's
    // timeout is what cuts the PUT off, in the middle of its attempt.
    let deadline = Instant::now() + Duration::from_secs(6);
    let report = run_cycle(&r.bucket, &r.target, deadline, &CancellationToken::new()).await;
    assert_eq!(reason(&report, "put"), Some(Reason::Timeout));
    let Some(Outcome::Failure(f)) = outcome(&report, "put") else {
        unreachable!()
    };
    assert!(f.message.starts_with("timed out after "), "{}", f.message);
    // The PUT reached the store and was cut off by a timeout: it may have landed.
    assert!(!f.unsent, "{}", f.message);
    assert!(
        deletes(&r) >= 1,
        "no cleanup DELETE for a write that may have landed"
    );
}
