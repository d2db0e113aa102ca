//! Every output counts a run the same way: a failed step of a real cycle, a lost durability
//! object, a lost event notification and a duplicated one go through the sinks the daemon
//! builds (metrics, status history, CloudWatch mirror) and through `once`'s table, and all of
//! them agree on runs, failures, the failure streak and the last success of each probe.

pub mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use s3canary::embedded::{FaultConfig, Op};
use s3canary::events::Ledger;
use s3canary::report::{Failure, Probe, ProbeResult, Reason, Sink, Sinks};
use s3canary::s3::{Change, ChangeObserver, Outcome as Answer};
use s3canary::sinks::cloudwatch::Mirror;
use s3canary::sinks::history::History;
use s3canary::sinks::metrics::Metrics;
use tokio::time::Instant;

const EXTRA: &str = "probes = [\"put\", \"get\", \"durability\", \"events\"]\n\
    [target.durability]\nobjects = 2\n\
    [target.events]\nqueue_url = \"https://sqs.us-east-1.amazonaws.com/123456789012/q\"\ntimeout = \"1s\"";

#[tokio::test]
async fn metrics_history_cloudwatch_and_once_count_every_run_alike() {
    let s3 = s3canary::embedded::EmbeddedS3::start(&["canary"])
        .await
        .expect("embedded S3 starts");
    let t = common::target("t1", "canary", &s3.endpoint, EXTRA);
    let metrics = Arc::new(Metrics::new(&Default::default()));
    let history = Arc::new(History::default());
    let mirror = Mirror::new(Default::default(), metrics.clone());
    let sinks: Arc<dyn Sink> = Arc::new(Sinks::new(vec![
        metrics.clone(),
        history.clone(),
        mirror.clone(),
    ]));
    sinks.target_added(&t.info());

    // A cycle whose put is refused (get does not run), with a lost object of the set.
    s3.faults.set_all(FaultConfig::error(
        "ServiceUnavailable",
        1.0,
        vec![Op::PutObject],
    ));
    let bucket = common::factory().bucket(&t, sinks.clone()).await;
    let mut report = common::one_cycle(&bucket, &t).await;
    let lost = Failure::local(Reason::ObjectLost, "GetObject answered 404");
    report.results.push(ProbeResult::ran(
        Probe::Durability,
        Err(lost),
        Duration::from_millis(3),
    ));
    sinks.cycle(&t.labels(), &report);

    // The events probe: one notification delivered, one lost, one repeated.
    let ledger = Ledger::new(
        t.labels(),
        t.canary_prefix(),
        Duration::from_secs(1),
        sinks.clone(),
    );
    let (a, b) = (
        format!("{}1-a", t.canary_prefix()),
        format!("{}2-b", t.canary_prefix()),
    );
    let created = ledger.sending(&a, Change::Created);
    ledger.answered(created, Answer::Done);
    let removed = ledger.sending(&b, Change::Removed);
    ledger.answered(removed, Answer::Done);
    // The ledger is given the times: no waiting for its 1 s timeout.
    let arrived = Instant::now() + Duration::from_millis(200);
    ledger.received(&a, Change::Created, arrived);
    ledger.received(&a, Change::Created, arrived);
    ledger.tick(Instant::now() + Duration::from_secs(2));

    let text = metrics.render();
    let view = history.view(&t, SystemTime::now());
    let of = |p: Probe| view.probes.iter().find(|s| s.probe == p).unwrap();
    // (probe, runs, failures, streak, passed at least once)
    let expected = [
        (Probe::Put, 1, 1, 1, false),
        (Probe::Get, 0, 0, 0, false),
        (Probe::Durability, 1, 1, 1, false),
        (Probe::Events, 3, 2, 2, true),
    ];
    for (p, runs, failures, streak, passed) in expected {
        let l = format!("probe=\"{p}\"");
        let m_runs = common::total(&text, "s3canary_probe_runs_total", &[&l]);
        let m_failures = common::total(&text, "s3canary_probe_failures_total", &[&l]);
        let m_streak = common::total(&text, "s3canary_probe_consecutive_failures", &[&l]);
        let m_passed = common::sample(&text, "s3canary_last_success_timestamp_seconds", &[&l]);
        assert_eq!(
            (m_runs, m_failures, m_streak),
            (runs as f64, failures as f64, streak as f64),
            "metrics of {p}"
        );
        assert_eq!(
            m_passed.is_some_and(|v| v > 0.0),
            passed,
            "metrics' last success of {p}"
        );
        let h = of(p);
        assert_eq!(
            (h.runs_total, h.failures_total),
            (runs, failures),
            "history of {p}"
        );
        assert_eq!(
            h.last_success_at.is_some(),
            passed,
            "history's last success of {p}"
        );
        assert_eq!(
            h.failing_since.is_some(),
            streak > 0,
            "history's failing state of {p}"
        );
    }
    let reasons = [
        "event_lost",
        "event_duplicate",
        "object_lost",
        "server_error",
    ];
    for reason in reasons {
        let r = format!("reason=\"{reason}\"");
        let in_metrics = common::total(&text, "s3canary_probe_failures_total", &[&r]);
        let in_history = view
            .recent_failures
            .iter()
            .filter(|f| f.failure.reason.as_str() == reason)
            .map(|f| f.count)
            .sum::<u64>();
        assert_eq!(
            (in_metrics, in_history),
            (1.0, 1),
            "failures with reason {reason}"
        );
    }

    // CloudWatch: the steps' and durability's success rates, the events' lost count.
    assert!(mirror.flush(SystemTime::now()) > 0);
    let datums = mirror.queued();
    let value = |name: &str| {
        datums
            .iter()
            .find(|d| d.metric_name() == Some(name))
            .and_then(|d| d.value())
    };
    assert_eq!(value("S3Consistency_Put_SuccessRate"), Some(0.0));
    assert_eq!(value("S3Consistency_Durability_SuccessRate"), Some(0.0));
    assert_eq!(
        value("S3Consistency_Read_After_Write_SuccessRate"),
        None,
        "get did not run"
    );
    assert_eq!(value("S3Consistency_Event_Lost"), Some(1.0));

    // `once` shows the same runs: its table counts what the sinks counted.
    let heard = Arc::new(Heard::default());
    let ledger = Ledger::new(
        t.labels(),
        t.canary_prefix(),
        Duration::from_secs(60),
        heard.clone(),
    );
    let created = ledger.sending(&a, Change::Created);
    ledger.answered(created, Answer::Done);
    let removed = ledger.sending(&b, Change::Removed);
    ledger.answered(removed, Answer::Done);
    ledger.received(&a, Change::Created, Instant::now());
    ledger.received(&a, Change::Created, Instant::now());
    ledger.give_up();
    report.results.extend(heard.0.lock().unwrap().drain(..));
    let table = s3canary::once::table(&[(t.clone(), report)], &[]);
    assert!(
        table.contains("probes ok 1, failed 4"),
        "once counts the put, durability and two events failures and one delivery:\n{table}"
    );
}

/// Keeps the runs a ledger reports, as `once` does.
#[derive(Default)]
struct Heard(std::sync::Mutex<Vec<ProbeResult>>);

impl Sink for Heard {
    fn result(&self, _t: &s3canary::report::TargetLabels, _key: &str, r: &ProbeResult) {
        self.0.lock().unwrap().push(r.clone());
    }
}
