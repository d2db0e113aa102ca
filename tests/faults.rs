//! Every fault an operator meets, reproduced in the embedded server: each moves exactly the
//! metrics it should (reason, code, check, latency), and none makes the daemon panic.

pub mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{cycle, rig, sample, wait_until};
use s3canary::embedded::{FaultConfig, HttpFault, Op};
use s3canary::report::{CycleReport, Outcome, Reason};
use tokio::time::Instant;

/// Every non-zero sample of `name`, as "labels without target/bucket/region" -> value.
fn nonzero(text: &str, name: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            let v: f64 = v.parse().ok()?;
            let labels: Vec<&str> = series[name.len() + 1..series.len() - 1]
                .split(',')
                .filter(|kv| {
                    !kv.starts_with("target=")
                        && !kv.starts_with("bucket=")
                        && !kv.starts_with("region=")
                })
                .collect();
            (v != 0.0).then(|| (labels.join(","), v))
        })
        .collect()
}

fn failures(report: &CycleReport) -> Vec<(String, Reason)> {
    report
        .results
        .iter()
        .filter_map(|r| match &r.outcome {
            Some(Outcome::Failure(f)) => Some((r.probe.as_str().to_string(), f.reason)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn each_s3_error_code_maps_to_its_reason_and_code_and_nothing_else() {
    // (code, reason, attempts: the SDK retries throttling and 5xx, not 4xx)
    let cases = [
        ("SlowDown", Reason::Throttled, 3.0),
        ("InternalError", Reason::ServerError, 3.0),
        ("ServiceUnavailable", Reason::ServerError, 3.0),
        ("AccessDenied", Reason::AccessDenied, 1.0),
        ("NoSuchBucket", Reason::NoSuchBucket, 1.0),
    ];
    for (code, reason, attempts) in cases {
        let r = rig("").await;
        r.s3.faults
            .set_all(FaultConfig::error(code, 1.0, vec![Op::PutObject]));
        let report = cycle(&r).await;
        assert_eq!(
            failures(&report),
            vec![("put".to_string(), reason)],
            "{code}"
        );
        let text = r.metrics.render();
        let want_failures =
            BTreeMap::from([(format!("probe=\"put\",reason=\"{}\"", reason.as_str()), 1.0)]);
        assert_eq!(
            nonzero(&text, "s3canary_probe_failures_total"),
            want_failures,
            "{code}"
        );
        let want_errors =
            BTreeMap::from([(format!("code=\"{code}\",operation=\"PutObject\""), attempts)]);
        assert_eq!(
            nonzero(&text, "s3canary_s3_request_errors_total"),
            want_errors,
            "{code}"
        );
        assert!(
            nonzero(&text, "s3canary_consistency_violations_total").is_empty(),
            "{code}"
        );
    }
}

/// S3's answers on an SSE-KMS bucket whose key throttles, refuses or is disabled, as AWS words
/// them: each gets its own reason (not throttled, access_denied or client_error), its code as
/// S3 sent it, and S3's message.
#[tokio::test]
async fn answers_that_come_from_kms_get_their_own_reasons() {
    let cases = [
        (
            FaultConfig::kms_throttled(),
            Reason::KmsThrottled,
            "SlowDown",
            "AWS KMS",
        ),
        (
            FaultConfig::kms_denied(),
            Reason::KmsDenied,
            "AccessDenied",
            "kms:GenerateDataKey",
        ),
        (
            FaultConfig::kms_disabled(),
            Reason::KmsUnavailable,
            "KMS.DisabledException",
            "is disabled",
        ),
    ];
    for (fault, reason, code, words) in cases {
        let r = rig("sse = \"aws:kms\"").await;
        r.s3.faults.set_all(fault);
        let report = cycle(&r).await;
        assert_eq!(
            failures(&report),
            vec![("put".to_string(), reason)],
            "{code}"
        );
        let f = first_failure(&report);
        assert_eq!(f.code.as_deref(), Some(code));
        assert!(f.message.contains(words), "{code}: {}", f.message);
        let text = r.metrics.render();
        let want = format!("probe=\"put\",reason=\"{}\"", reason.as_str());
        assert_eq!(
            nonzero(&text, "s3canary_probe_failures_total"),
            BTreeMap::from([(want, 1.0)]),
            "{code}"
        );
        let errors = nonzero(&text, "s3canary_s3_request_errors_total");
        assert!(
            errors
                .keys()
                .all(|k| k.contains(&format!("code=\"{code}\""))),
            "{code}: {errors:?}"
        );
    }
}

#[tokio::test]
async fn added_latency_shifts_every_request_and_fails_nothing() {
    let r = rig("").await;
    r.s3.faults.set_all(FaultConfig {
        latency: Duration::from_millis(110),
        ..Default::default()
    });
    let report = cycle(&r).await;
    assert!(failures(&report).is_empty(), "{:?}", failures(&report));
    let text = r.metrics.render();
    for op in [
        "PutObject",
        "GetObject",
        "HeadObject",
        "ListObjectsV2",
        "DeleteObject",
    ] {
        let o = format!("operation=\"{op}\"");
        let total = sample(&text, "s3canary_s3_request_duration_seconds_count", &[&o]).unwrap();
        let fast = sample(
            &text,
            "s3canary_s3_request_duration_seconds_bucket",
            &[&o, "le=\"0.1\""],
        )
        .unwrap();
        let under_250 = sample(
            &text,
            "s3canary_s3_request_duration_seconds_bucket",
            &[&o, "le=\"0.25\""],
        )
        .unwrap();
        assert_eq!(
            fast, 0.0,
            "{op}: a request under 100 ms despite 110 ms injected"
        );
        assert_eq!(under_250, total, "{op}: more than 140 ms of overhead");
    }
    assert!(nonzero(&text, "s3canary_s3_request_errors_total").is_empty());
}

#[tokio::test]
async fn conditional_refusals_answered_with_409_or_304_count_as_enforced() {
    for status in [409u16, 304] {
        let r = rig("").await;
        r.s3.faults.set_all(FaultConfig {
            conditional_status: Some(status),
            ..Default::default()
        });
        let report = cycle(&r).await;
        assert!(
            failures(&report).is_empty(),
            "{status}: {:?}",
            failures(&report)
        );
        assert!(report.violations.is_empty());
    }
}

#[tokio::test]
async fn broken_http_exchanges_are_failures_with_a_reason_never_panics() {
    // (fault, operation hit, the probes using that operation, reason)
    let cases = [
        (
            HttpFault::Reset,
            Op::PutObject,
            &["put"][..],
            Reason::Connection,
        ),
        (
            HttpFault::Truncate,
            Op::GetObject,
            &["get", "overwrite"][..],
            Reason::Connection,
        ),
        (
            HttpFault::GarbageXml,
            Op::ListObjectsV2,
            &["list", "delete"][..],
            Reason::Other,
        ),
        (
            HttpFault::HugeHeader,
            Op::GetObject,
            &["get", "overwrite"][..],
            Reason::Connection,
        ),
    ];
    for (fault, op, probes, reason) in cases {
        let r = rig("").await;
        r.s3.faults.set_all(FaultConfig {
            http: Some((fault, vec![op])),
            ..Default::default()
        });
        let report = cycle(&r).await;
        let f = failures(&report);
        // Exactly the probes that use the broken operation fail, with the expected reason.
        let want: Vec<(String, Reason)> = probes.iter().map(|p| (p.to_string(), reason)).collect();
        assert_eq!(f, want, "{fault:?}");
        r.s3.faults.clear();
        let again = cycle(&r).await;
        assert!(
            failures(&again).is_empty(),
            "{fault:?}: no recovery: {:?}",
            failures(&again)
        );
        assert_eq!(r.s3.keys("canary"), Vec::<String>::new(), "{fault:?}");
    }
}

#[tokio::test]
async fn throttling_everything_stays_within_three_attempts_per_request() {
    let r = rig("").await;
    r.s3.faults
        .set_all(FaultConfig::error("SlowDown", 1.0, vec![]));
    for _ in 0..5 {
        let report = cycle(&r).await;
        assert_eq!(
            failures(&report),
            vec![("put".to_string(), Reason::Throttled)]
        );
    }
    // Per cycle: the PUT and the cleanup DELETE, three attempts each.
    assert_eq!(r.s3.log.count(Op::PutObject), 15);
    assert_eq!(r.s3.log.count(Op::DeleteObject), 15);
    assert_eq!(r.s3.log.entries().len(), 30);
    let text = r.metrics.render();
    assert_eq!(
        sample(
            &text,
            "s3canary_s3_request_errors_total",
            &["operation=\"DeleteObject\"", "code=\"SlowDown\""]
        ),
        Some(15.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_random_faults_keeps_counters_consistent_and_leaves_no_canary() {
    let r = rig("timeout = \"2s\"\ninterval = \"3s\"").await;
    let ms = Duration::from_millis;
    let profiles = [
        FaultConfig::default(),
        FaultConfig {
            stale_after_overwrite: ms(30),
            list_lag: ms(20),
            read_after_delete: ms(20),
            ..Default::default()
        },
        FaultConfig::error("InternalError", 0.1, vec![]),
        FaultConfig {
            http: Some((HttpFault::Reset, vec![])),
            http_rate: 0.05,
            ..Default::default()
        },
        FaultConfig {
            ignore_conditional: true,
            ..Default::default()
        },
    ];
    let rss = || -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u64>().ok())
            .unwrap_or(0)
            * 4096
    };
    let cycles = 400;
    let mut rss_at = Vec::new();
    let (mut written, mut reported_clean) = (0, 0);
    for i in 0..cycles {
        r.s3.faults
            .set_all(profiles[rand::random_range(0..profiles.len())].clone());
        let report = cycle(&r).await;
        written += usize::from(report.results[0].outcome.is_some());
        reported_clean += usize::from(report.cleaned_up);
        if i == 100 || i == cycles - 1 {
            rss_at.push(rss());
        }
    }
    eprintln!(
        "soak: {cycles} cycles, {} requests, RSS after 100 cycles {} KiB, after {cycles} {} KiB",
        r.s3.log.entries().len(),
        rss_at[0] / 1024,
        rss_at[1] / 1024
    );
    let text = r.metrics.render();
    // Runs = successes + failures for every probe, with successes counted independently from
    // the reports' outcomes by the status history.
    for p in ["put", "get", "list", "overwrite", "delete", "conditional"] {
        let probe = format!("probe=\"{p}\"");
        let runs = sample(&text, "s3canary_probe_runs_total", &[&probe]).unwrap();
        let failed: f64 = nonzero(&text, "s3canary_probe_failures_total")
            .iter()
            .filter(|(k, _)| k.contains(&probe))
            .map(|(_, v)| v)
            .sum();
        let durations = sample(&text, "s3canary_probe_duration_seconds_count", &[&probe]).unwrap();
        assert_eq!(runs, durations, "{p}");
        assert!(failed <= runs, "{p}");
    }
    assert_eq!(written, cycles);
    // Canaries whose cleanup was cut by a fault are exactly what the sweep finds and deletes.
    let left = r.s3.keys("canary").len();
    assert!(
        cycles - reported_clean >= left,
        "{left} left, {} cleanups reported failed",
        cycles - reported_clean
    );
    r.s3.faults.clear();
    let far_future = std::time::SystemTime::now() + Duration::from_secs(86_400);
    let swept = s3canary::canary::sweep_orphans(&r.bucket, &r.target, far_future)
        .await
        .unwrap();
    assert_eq!(swept, left);
    assert_eq!(r.s3.keys("canary"), Vec::<String>::new());
}

/// The healthy target has its own, wider timeout: on a loaded machine a cycle of thirteen
/// requests may need more than the hung target's 500 ms, and this test is about isolation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_bucket_does_not_slow_the_other_targets_of_the_daemon() {
    let s3 = s3canary::embedded::EmbeddedS3::start(&["hung", "fine"])
        .await
        .unwrap();
    let all = vec![
        Op::PutObject,
        Op::GetObject,
        Op::HeadObject,
        Op::ListObjectsV2,
        Op::DeleteObject,
    ];
    s3.faults.set_bucket(
        "hung",
        FaultConfig {
            hang: all,
            ..Default::default()
        },
    );
    let text = format!(
        "[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\
         [[target]]\nname = \"hung\"\nbucket = \"hung\"\nregion = \"us-east-1\"\nendpoint = \"{e}\"\npath_style = true\n\
         [[target]]\nname = \"fine\"\nbucket = \"fine\"\nregion = \"us-east-1\"\nendpoint = \"{e}\"\npath_style = true\n\
         timeout = \"850ms\"\n",
        e = s3.endpoint
    );
    let cfg = s3canary::config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let daemon = s3canary::app::Daemon::new(cfg, None, common::factory());
    let started = Instant::now();
    daemon.start().await;
    // Watch until the hung target has timed out four times.
    let timed_out = wait_until(Duration::from_secs(30), || async {
        let m = daemon.metrics.render();
        let labels = ["target=\"hung\"", "reason=\"timeout\""];
        sample(&m, "s3canary_probe_failures_total", &labels).is_some_and(|n| n >= 4.0)
    });
    assert!(timed_out.await, "the hung target never timed out");
    let elapsed = started.elapsed().as_secs_f64();
    assert!(daemon.shutdown(Duration::from_secs(15)).await);
    let m = daemon.metrics.render();
    let fine = sample(
        &m,
        "s3canary_probe_runs_total",
        &["target=\"fine\"", "probe=\"put\""],
    )
    .unwrap();
    // One cycle a second from an offset below one second: every tick of the window ran, for
    // the healthy target and for the hung one (its cleanup gives up before its next tick).
    let ticks = (elapsed - 1.0).floor();
    assert!(fine >= ticks, "{fine} healthy cycles in {elapsed:.1}s");
    let hung = sample(
        &m,
        "s3canary_probe_runs_total",
        &["target=\"hung\"", "probe=\"put\""],
    );
    assert!(
        hung.is_some_and(|n| n >= ticks),
        "{hung:?} cycles of the hung target in {elapsed:.1}s"
    );
    let skipped = sample(&m, "s3canary_cycles_skipped_total", &["target=\"hung\""]);
    assert_eq!(skipped, Some(0.0), "the hung target skipped ticks");
    assert!(
        nonzero(&m, "s3canary_probe_failures_total")
            .keys()
            .all(|k| !k.is_empty())
    );
    let fine_failures: f64 = m
        .lines()
        .filter(|l| {
            l.starts_with("s3canary_probe_failures_total{") && l.contains("target=\"fine\"")
        })
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(fine_failures, 0.0);
    eprintln!("isolation: {fine} healthy cycles in {elapsed:.1}s while the other target hung");
}

/// Why it failed, in words the on-call engineer acts on: an expired session, a skewed clock, a
/// bucket in another region and a denial by a VPC endpoint policy each get their reason (the
/// denial stays access_denied) and a message that says what to check, from S3's own answer
/// (its code, message, `x-amz-bucket-region` and `Date`).
#[tokio::test]
async fn credentials_clock_region_and_denials_are_told_apart() {
    let cases = [
        (
            "expired-token",
            Reason::CredentialsExpired,
            "ExpiredToken",
            "The provided token has expired.",
        ),
        (
            "clock-skew",
            Reason::ClockSkew,
            "RequestTimeTooSkewed",
            "behind S3's (S3 refuses requests signed more than 15 minutes off)",
        ),
        (
            "wrong-region",
            Reason::WrongRegion,
            "PermanentRedirect",
            "the bucket is in eu-west-1, not in us-east-1 as configured: set region = \"eu-west-1\"",
        ),
        (
            "vpce-denied",
            Reason::AccessDenied,
            "AccessDenied",
            "denied by the VPC endpoint policy (an explicit Deny): check the policy of the VPC endpoint",
        ),
    ];
    for (profile, reason, code, words) in cases {
        let r = rig("").await;
        r.s3.faults.set_all(FaultConfig::profile(profile).unwrap());
        let report = cycle(&r).await;
        assert_eq!(
            failures(&report),
            vec![("put".to_string(), reason)],
            "{profile}"
        );
        let f = first_failure(&report);
        assert_eq!(f.code.as_deref(), Some(code), "{profile}");
        assert!(f.message.contains(words), "{profile}: {}", f.message);
        let text = r.metrics.render();
        let skew = sample(&text, "s3canary_clock_skew_seconds", &[]);
        if profile == "clock-skew" {
            // S3's Date is 20 minutes ahead of this host's clock; whole seconds, and the
            // answer took less than a few of them.
            let s = skew.expect("the skew gauge is set");
            assert!((-1205.0..=-1195.0).contains(&s), "{s}");
            assert!(
                f.message.contains("the host clock is 20m behind")
                    || f.message.contains("the host clock is 19m 5"),
                "{}",
                f.message
            );
        } else {
            let s = skew.expect("every answer has a Date");
            assert!(s.abs() <= 5.0, "{profile}: {s}");
        }
    }
}

/// A 301 without `x-amz-bucket-region` (a proxy sending http to https) is not a wrong region.
#[tokio::test]
async fn a_redirect_without_the_bucket_region_is_not_a_wrong_region() {
    let r = rig("").await;
    r.s3.faults.set_all(FaultConfig::answer(
        "Moved",
        301,
        "Moved Permanently: use https",
        vec![],
    ));
    let report = cycle(&r).await;
    let got = failures(&report);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_ne!(got[0].1, Reason::WrongRegion, "{got:?}");
}

/// The first failure of a cycle (the test asserted there is one).
fn first_failure(report: &CycleReport) -> s3canary::report::Failure {
    report
        .results
        .iter()
        .find_map(|r| match &r.outcome {
            Some(Outcome::Failure(f)) => Some(f.clone()),
            _ => None,
        })
        .expect("a failed step")
}
