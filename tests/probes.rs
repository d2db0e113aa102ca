//! Probe cycles against the embedded S3 server over real TCP, with the real aws-sdk-s3 client.
//! Faults are injected in the server, never in the client.

pub mod common;

use std::time::{Duration, SystemTime};

use common::{cycle, rig, sample};
use s3canary::embedded::{FaultConfig, Op};
use s3canary::probe::run_cycle;
use s3canary::report::{Check, CycleReport, Outcome, Reason};
use s3canary::sinks::Sink;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn outcome(report: &CycleReport, probe: &str) -> Option<Outcome> {
    report
        .results
        .iter()
        .find(|r| r.probe.as_str() == probe)
        .and_then(|r| r.outcome.clone())
}

fn reason(report: &CycleReport, probe: &str) -> Option<Reason> {
    match outcome(report, probe) {
        Some(Outcome::Failure(f)) => Some(f.reason),
        _ => None,
    }
}

/// Every key the server was asked about is under the target's canary prefix.
fn assert_stayed_in_prefix(r: &common::Rig) {
    let prefix = r.target.canary_prefix();
    let log = r.s3.log.entries();
    assert!(!log.is_empty());
    for a in log {
        assert!(
            a.key.starts_with(&prefix),
            "access outside the prefix: {a:?}"
        );
    }
}

#[tokio::test]
async fn healthy_cycle_passes_every_probe_and_leaves_nothing_behind() {
    let r = rig("").await;
    let report = cycle(&r).await;
    for p in ["put", "get", "list", "overwrite", "delete", "conditional"] {
        assert!(
            matches!(outcome(&report, p), Some(Outcome::Success)),
            "{p}: {:?}",
            outcome(&report, p)
        );
    }
    assert!(report.violations.is_empty());
    assert!(report.cleaned_up);
    assert_eq!(
        r.s3.keys("canary"),
        Vec::<String>::new(),
        "canary left behind"
    );
    assert_stayed_in_prefix(&r);
    // The cycle's request count is what the server answered.
    assert_eq!(report.requests as usize, r.s3.log.entries().len());

    let text = r.metrics.render();
    let t = ["target=\"t1\"", "bucket=\"canary\"", "region=\"us-east-1\""];
    for p in ["put", "get", "list", "overwrite", "delete", "conditional"] {
        let probe = format!("probe=\"{p}\"");
        let l = [t[0], t[1], t[2], probe.as_str()];
        assert_eq!(
            sample(&text, "s3canary_probe_runs_total", &l),
            Some(1.0),
            "{p}"
        );
        assert_eq!(
            sample(&text, "s3canary_probe_success", &l),
            Some(1.0),
            "{p}"
        );
        assert_eq!(
            sample(&text, "s3canary_probe_duration_seconds_count", &l),
            Some(1.0)
        );
        let ts = sample(&text, "s3canary_last_success_timestamp_seconds", &l).unwrap();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((now - ts).abs() < 60.0);
    }
    assert!(!text.contains("s3canary_probe_failures_total{"));
    for check in [
        "read_after_write",
        "list_after_write",
        "read_after_overwrite",
        "read_after_delete",
        "list_after_delete",
        "conditional_create",
        "conditional_update",
    ] {
        let c = format!("check=\"{check}\"");
        assert_eq!(
            sample(&text, "s3canary_consistency_violations_total", &[t[0], &c]),
            Some(0.0)
        );
    }
    // Per-attempt request latency, one series per operation; with 13 requests in the cycle.
    let count = |op: &str| {
        let o = format!("operation=\"{op}\"");
        sample(
            &text,
            "s3canary_s3_request_duration_seconds_count",
            &[t[0], &o],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(count("PutObject"), 6.0);
    assert_eq!(count("GetObject"), 2.0);
    assert_eq!(count("HeadObject"), 1.0);
    assert_eq!(count("ListObjectsV2"), 2.0);
    assert_eq!(count("DeleteObject"), 2.0);
    // A refused conditional write and a 404 after delete are answers, not request errors.
    assert!(!text.contains("s3canary_s3_request_errors_total{"));
}

#[tokio::test]
async fn stale_read_after_overwrite_is_a_violation_with_its_window_measured() {
    let r = rig("timeout = \"5s\"").await;
    let window = Duration::from_millis(700);
    r.s3.faults.set_all(FaultConfig {
        stale_after_overwrite: window,
        ..Default::default()
    });
    let report = cycle(&r).await;
    assert_eq!(reason(&report, "overwrite"), Some(Reason::StaleRead));
    assert!(matches!(outcome(&report, "get"), Some(Outcome::Success)));
    let v: Vec<_> = report
        .violations
        .iter()
        .filter(|v| v.check == Check::ReadAfterOverwrite)
        .collect();
    assert_eq!(v.len(), 1);
    assert!(v[0].resolved);
    // Re-reads back off up to 500 ms, so the measured window is late by at most that.
    let s = v[0].staleness;
    assert!(
        s >= window && s < window + Duration::from_millis(550),
        "staleness {s:?}"
    );
    let text = r.metrics.render();
    assert_eq!(
        sample(
            &text,
            "s3canary_consistency_violations_total",
            &["check=\"read_after_overwrite\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "s3canary_staleness_seconds_count",
            &["check=\"read_after_overwrite\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "s3canary_probe_failures_total",
            &["probe=\"overwrite\"", "reason=\"stale_read\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "s3canary_probe_success", &["probe=\"overwrite\""]),
        Some(0.0)
    );
    // The stale GET's request ID is reported for AWS support.
    let Some(Outcome::Failure(f)) = outcome(&report, "overwrite") else {
        unreachable!()
    };
    assert!(f.request_id.is_some_and(|id| !id.is_empty()));
    assert_eq!(r.s3.keys("canary"), Vec::<String>::new());
}

#[tokio::test]
async fn read_after_write_404_is_a_stale_read() {
    let r = rig("timeout = \"5s\"").await;
    r.s3.faults.set_all(FaultConfig {
        stale_after_write: Duration::from_millis(300),
        ..Default::default()
    });
    let report = cycle(&r).await;
    assert_eq!(reason(&report, "get"), Some(Reason::StaleRead));
    let v = &report.violations[0];
    assert_eq!(v.check, Check::ReadAfterWrite);
    assert!(
        v.resolved && v.staleness >= Duration::from_millis(300),
        "{v:?}"
    );
    assert_eq!(r.s3.keys("canary"), Vec::<String>::new());
}

#[tokio::test]
async fn list_lag_is_missing_from_list() {
    let r = rig("timeout = \"5s\"").await;
    let window = Duration::from_millis(400);
    r.s3.faults.set_all(FaultConfig {
        list_lag: window,
        ..Default::default()
    });
    let report = cycle(&r).await;
    assert_eq!(reason(&report, "list"), Some(Reason::MissingFromList));
    let v: Vec<_> = report
        .violations
        .iter()
        .filter(|v| v.check == Check::ListAfterWrite)
        .collect();
    assert_eq!(v.len(), 1);
    assert!(v[0].resolved && v[0].staleness >= window, "{:?}", v[0]);
    let text = r.metrics.render();
    assert_eq!(
        sample(
            &text,
            "s3canary_probe_failures_total",
            &["probe=\"list\"", "reason=\"missing_from_list\""]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn reads_after_delete_are_violations_of_both_delete_checks() {
    let r = rig("timeout = \"5s\"").await;
    r.s3.faults.set_all(FaultConfig {
        read_after_delete: Duration::from_millis(300),
        ..Default::default()
    });
    let report = cycle(&r).await;
    assert_eq!(reason(&report, "delete"), Some(Reason::StaleRead));
    let checks: Vec<Check> = report.violations.iter().map(|v| v.check).collect();
    assert!(checks.contains(&Check::ReadAfterDelete), "{checks:?}");
    // The listing comes after HEAD has seen the key disappear, so it may or may not be stale.
    assert!(report.violations.iter().all(|v| v.resolved));
}

#[tokio::test]
async fn ignored_conditional_writes_are_precondition_ignored() {
    let r = rig("").await;
    r.s3.faults.set_all(FaultConfig {
        ignore_conditional: true,
        ..Default::default()
    });
    let report = cycle(&r).await;
    assert_eq!(
        reason(&report, "conditional"),
        Some(Reason::PreconditionIgnored)
    );
    let checks: Vec<Check> = report.violations.iter().map(|v| v.check).collect();
    assert_eq!(
        checks,
        vec![Check::ConditionalCreate, Check::ConditionalUpdate]
    );
    let text = r.metrics.render();
    assert_eq!(
        sample(
            &text,
            "s3canary_consistency_violations_total",
            &["check=\"conditional_create\""]
        ),
        Some(1.0)
    );
    // No staleness is observed for a conditional write: nothing was waited for.
    assert_eq!(r.s3.keys("canary"), Vec::<String>::new());
}

#[tokio::test]
async fn access_denied_is_bounded_reason_and_code_and_skips_dependents() {
    let r = rig("").await;
    r.s3.faults
        .set_all(FaultConfig::error("AccessDenied", 1.0, vec![Op::PutObject]));
    let report = cycle(&r).await;
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
    let r = rig("").await;
    r.s3.faults
        .set_all(FaultConfig::error("SlowDown", 1.0, vec![Op::PutObject]));
    let report = cycle(&r).await;
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
async fn connection_refused_is_connection() {
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
    assert!(!report.cleaned_up);
    metrics.cycle(&t, &report);
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
