//! `/metrics` renders the same text for the same sequence of reports: a fixed sequence of cycle
//! reports, request attempts, skips, sweeps and replication outcomes is recorded and the
//! rendered text compared with `tests/testdata/metrics.txt` (written before the architecture
//! step moved the code that produces it; changed since only where behaviour was meant to change:
//! an ignored precondition is no longer observed in `s3canary_staleness_seconds`, and
//! `s3canary_credentials_refresh_failures_total` exists at 0 for every target).
//!
//! To accept an intended change of the exposition, run with `S3CANARY_BLESS=1` and review the
//! diff of the testdata file.

pub mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use s3canary::report::Sink;
use s3canary::report::{
    Check, CycleReport, Failure, Outcome, Probe, ProbeResult, Reason, RequestPhases, Violation,
};
use s3canary::sinks::metrics::Metrics;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata/metrics.txt");

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn result(probe: Probe, outcome: Option<Outcome>, ms: u64, finished: u64) -> ProbeResult {
    ProbeResult {
        probe,
        not_run: outcome
            .is_none()
            .then_some(s3canary::report::Skip::After(Probe::Put)),
        outcome,
        duration: Duration::from_millis(ms),
        finished_at: at(finished),
    }
}

fn failure(reason: Reason, operation: &'static str, code: Option<&str>) -> Outcome {
    Outcome::Failure(Failure {
        reason,
        operation: Some(operation),
        status: None,
        code: code.map(str::to_string),
        message: "injected".into(),
        request_id: Some("REQ1".into()),
        extended_request_id: None,
        unsent: false,
    })
}

fn report(
    target: &str,
    start: u64,
    results: Vec<ProbeResult>,
    violations: Vec<Violation>,
) -> CycleReport {
    CycleReport {
        target: target.into(),
        key: format!("s3canary/{target}/{start:013}-0123456789abcdef"),
        started_at: at(start),
        results,
        violations,
        requests: 13,
        cleaned_up: true,
    }
}

/// Every probe passing, with durations spread over the buckets.
fn healthy(target: &str, start: u64, scale: u64) -> CycleReport {
    let results = Probe::DEFAULTS
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let ms = (i as u64 + 1) * 7 * scale;
            result(*p, Some(Outcome::Success), ms, start + 100 * (i as u64 + 1))
        })
        .collect();
    report(target, start, results, vec![])
}

/// The rendered text without the process collector's lines, which change between runs.
fn render(m: &Metrics) -> String {
    m.render()
        .lines()
        .filter(|l| !l.contains("process_"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn the_exposition_of_a_fixed_sequence_of_reports_is_unchanged() {
    let labels = BTreeMap::from([("env".to_string(), "golden".to_string())]);
    let m = Metrics::new(&labels);
    let alpha = common::target("alpha", "alpha-bucket", "http://127.0.0.1:1", "");
    let beta = common::target(
        "beta",
        "beta-bucket",
        "http://127.0.0.1:1",
        "probes = [\"put\", \"get\", \"delete\"]\ninterval = \"15s\"",
    );
    m.target_added(&alpha.info());
    m.target_added(&beta.info());

    m.cycle(&alpha.labels(), &healthy("alpha", 1_700_000_000_000, 1));
    m.cycle(&alpha.labels(), &healthy("alpha", 1_700_000_030_000, 40));
    // A stale read that resolved, a list that never showed the key, a conditional write
    // ignored, a step not run.
    m.cycle(
        &alpha.labels(),
        &report(
            "alpha",
            1_700_000_060_000,
            vec![
                result(Probe::Put, Some(Outcome::Success), 30, 1_700_000_060_030),
                result(
                    Probe::Get,
                    Some(failure(Reason::StaleRead, "GetObject", None)),
                    420,
                    1_700_000_060_450,
                ),
                result(
                    Probe::List,
                    Some(failure(Reason::MissingFromList, "ListObjectsV2", None)),
                    2_600,
                    1_700_000_063_050,
                ),
                result(Probe::Overwrite, None, 0, 1_700_000_063_050),
                result(
                    Probe::Delete,
                    Some(failure(Reason::Timeout, "DeleteObject", None)),
                    9_000,
                    1_700_000_070_000,
                ),
                result(
                    Probe::Conditional,
                    Some(failure(Reason::PreconditionIgnored, "PutObject", None)),
                    12,
                    1_700_000_070_012,
                ),
            ],
            vec![
                Violation {
                    check: Check::ReadAfterWrite,
                    staleness: Some(Duration::from_millis(380)),
                    resolved: true,
                },
                Violation {
                    check: Check::ListAfterWrite,
                    staleness: Some(Duration::from_millis(2_550)),
                    resolved: false,
                },
                Violation {
                    check: Check::ConditionalCreate,
                    staleness: None,
                    resolved: false,
                },
            ],
        ),
    );
    m.cycle(
        &beta.labels(),
        &report(
            "beta",
            1_700_000_001_000,
            vec![
                result(
                    Probe::Put,
                    Some(failure(
                        Reason::AccessDenied,
                        "PutObject",
                        Some("AccessDenied"),
                    )),
                    25,
                    1_700_000_001_025,
                ),
                result(Probe::Get, None, 0, 1_700_000_001_025),
                result(Probe::Delete, None, 0, 1_700_000_001_025),
            ],
            vec![],
        ),
    );
    m.cycle(&beta.labels(), &healthy_of(&beta, 1_700_000_016_000));
    m.cycle_skipped(&beta.labels());
    m.cycle_skipped(&beta.labels());
    m.orphans_deleted
        .with_label_values(&["alpha", "alpha-bucket", "us-east-1"])
        .inc_by(3);

    // Request attempts as the SDK interceptor records them.
    for (op, secs) in [
        ("PutObject", 0.004),
        ("PutObject", 0.120),
        ("GetObject", 0.031),
        ("ListObjectsV2", 2.2),
        ("DeleteObject", 11.0),
    ] {
        m.request_duration
            .with_label_values(&["alpha", "alpha-bucket", "us-east-1", op])
            .observe(secs);
    }
    for (op, code) in [
        ("PutObject", "AccessDenied"),
        ("PutObject", "AccessDenied"),
        ("GetObject", "timeout"),
        ("HeadObject", "other"),
    ] {
        m.request_errors
            .with_label_values(&["beta", "beta-bucket", "us-east-1", op, code])
            .inc();
    }

    // Two attempts' phases: one that opened a TLS connection by name, one that reused it.
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_002);
    let opened = RequestPhases {
        at,
        new_connection: true,
        dns: Some(Duration::from_millis(2)),
        connect: Some(Duration::from_millis(1)),
        tls: Some(Duration::from_millis(9)),
        first_byte: Some(Duration::from_millis(30)),
        body: Some(Duration::from_millis(1)),
        request_id: Some("REQ1".into()),
        tls_not_after: Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
    };
    let reused = RequestPhases {
        new_connection: false,
        dns: None,
        connect: None,
        tls: None,
        body: None,
        tls_not_after: None,
        ..opened.clone()
    };
    m.request_phases(&alpha.labels(), &opened);
    m.request_phases(&alpha.labels(), &reused);

    // One replication pair: series created, two canaries, one lag, one timeout, one failure.
    let pair = [
        "a-to-b",
        "alpha-bucket",
        "us-east-1",
        "beta-bucket",
        "us-east-1",
    ];
    m.replication_canaries.with_label_values(&pair).inc_by(2);
    m.replication_lag.with_label_values(&pair).observe(3.2);
    m.replication_timeouts.with_label_values(&pair).inc();
    m.replication_pending.with_label_values(&pair).set(1.0);
    m.replication_oldest_pending
        .with_label_values(&pair)
        .set(42.5);
    m.replication_failures
        .with_label_values(&[pair.as_slice(), &["status_failed"]].concat())
        .inc();
    m.cloudwatch_publish
        .with_label_values(&["success"])
        .inc_by(4);
    m.cloudwatch_dropped.get().inc_by(2);

    let got = render(&m);
    if std::env::var_os("S3CANARY_BLESS").is_some() {
        std::fs::write(GOLDEN, &got).unwrap();
    }
    let want = std::fs::read_to_string(GOLDEN).expect("tests/testdata/metrics.txt");
    if got != want {
        let diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .enumerate()
            .filter(|(_, (w, g))| w != g)
            .take(10)
            .map(|(i, (w, g))| format!("line {}:\n  want {w}\n  got  {g}", i + 1))
            .collect();
        panic!(
            "the exposition changed ({} lines wanted, {} rendered); first differences:\n{}",
            want.lines().count(),
            got.lines().count(),
            diff.join("\n")
        );
    }
}

/// Every probe of `t` passing.
fn healthy_of(t: &s3canary::config::Target, start: u64) -> CycleReport {
    let results = t
        .probes
        .iter()
        .map(|p| result(*p, Some(Outcome::Success), 45, start + 50))
        .collect();
    report(&t.name, start, results, vec![])
}
