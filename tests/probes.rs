//! Probe cycles against the embedded S3 server over real TCP, with the real aws-sdk-s3 client:
//! what each consistency check sees when the store is healthy or shows a stale view. Faults are
//! injected in the server, never in the client.

pub mod common;

use std::time::{Duration, SystemTime};

use common::{assert_stayed_in_prefix, cycle, outcome, reason, rig, sample};
use s3canary::embedded::FaultConfig;
use s3canary::report::{Check, Outcome, Reason};

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
    // Only the series the fast alerts read exist, at 0.
    for l in text
        .lines()
        .filter(|l| l.starts_with("s3canary_probe_failures_total{"))
    {
        assert!(l.ends_with(" 0"), "{l}");
    }
    for l in text
        .lines()
        .filter(|l| l.starts_with("s3canary_probe_consecutive_failures{"))
    {
        assert!(l.ends_with(" 0"), "{l}");
    }
    // Every check of the six steps has its violation counter from the first scrape, at 0.
    let checks: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("s3canary_consistency_violations_total{"))
        .collect();
    assert_eq!(checks.len(), 7, "{checks:?}");
    assert!(checks.iter().all(|l| l.ends_with(" 0")), "{checks:?}");
    // The series budget of a target with the six step probes (issue 20, 7 for the violations
    // of issue 26, the clock skew gauge and the credential refresh failures of issue 28, the
    // connection counter and three phases' sum and count of issue 29): at most 135.
    let series = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(t[0]))
        .count();
    assert!(series <= 135, "{series} series for one target:\n{text}");
    // Phases: one connection opened (by the first request, its connect timed), every request
    // waited for its first byte; no name to resolve (an address) and no TLS (http).
    let phase = |p: &str| {
        let p = format!("phase=\"{p}\"");
        sample(&text, "s3canary_request_phase_seconds_count", &[t[0], &p])
    };
    let opened = sample(&text, "s3canary_connections_opened_total", &[t[0]]);
    assert_eq!(opened, Some(1.0), "one connection for the whole cycle");
    assert_eq!(phase("connect"), opened);
    assert_eq!(phase("first_byte"), Some(13.0));
    assert_eq!(phase("dns"), None);
    assert_eq!(phase("tls"), None);
    // GETs and LISTs have a body, and so do the 412 and 404 answers' XML; PUT, HEAD and
    // DELETE answers have none.
    assert_eq!(phase("body"), Some(6.0));
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
    let s = v[0].staleness.expect("a stale view has a staleness");
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
        v.resolved && v.staleness >= Some(Duration::from_millis(300)),
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
    assert!(
        v[0].resolved && v[0].staleness >= Some(window),
        "{:?}",
        v[0]
    );
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
    // An ignored precondition is its own kind of violation, not a stale view: no staleness.
    assert!(report.violations.iter().all(|v| v.staleness.is_none()));
    assert!(
        !text.contains("s3canary_staleness_seconds_count{") || !text.contains("conditional_"),
        "{text}"
    );
    // The failure names the request and what was expected and received.
    let Some(Outcome::Failure(f)) = outcome(&report, "conditional") else {
        unreachable!()
    };
    assert_eq!(
        f.message,
        "PutObject with If-None-Match: * on an existing key: expected 412, got 200 (the object was replaced)"
    );
    assert_eq!(r.s3.keys("canary"), Vec::<String>::new());
}
