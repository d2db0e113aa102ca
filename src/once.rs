//! The `once` command: one cycle of every target and one canary of every replication pair,
//! all concurrently, then a table or JSON of what they found.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Target};
use crate::events::{Consumer, Ledger};
use crate::probe;
use crate::replication::{CanaryOutcome, Monitor};
use crate::report::{CycleReport, Outcome, ProbeResult, Sink, Sinks, TargetLabels};
use crate::s3::ClientFactory;

/// Longest `once` waits for the notifications of its cycle (less if the events timeout is).
pub const EVENTS_WAIT: Duration = Duration::from_secs(120);

/// The runs of the events probe of one `once` cycle, as the ledger decided them.
#[derive(Default)]
struct Heard {
    runs: Mutex<Vec<ProbeResult>>,
    pending: Mutex<usize>,
}

impl Sink for Heard {
    fn result(&self, _t: &TargetLabels, _key: &str, r: &ProbeResult) {
        self.runs.lock().unwrap().push(r.clone());
    }
    fn events_pending(&self, _t: &TargetLabels, count: usize, _oldest: Duration) {
        *self.pending.lock().unwrap() = count;
    }
}

/// Waits until every notification `ledger` expects arrived, or `wait`, then gives up on the
/// rest: the events probe's runs, one per expected notification and one per duplicate.
async fn events_results(ledger: &Ledger, heard: &Heard, wait: Duration) -> Vec<ProbeResult> {
    let start = Instant::now();
    loop {
        ledger.tick(Instant::now());
        if *heard.pending.lock().unwrap() == 0 || start.elapsed() >= wait {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ledger.give_up();
    std::mem::take(&mut *heard.runs.lock().unwrap())
}

/// What one run found: each target's cycle and each pair's canary.
pub type Found = (Vec<(Target, CycleReport)>, Vec<(String, CanaryOutcome)>);

/// Runs one cycle of every target and one canary of every replication pair, all concurrently.
/// Nothing is exported: the reports are the output.
pub async fn run(cfg: &Config, factory: &ClientFactory) -> Found {
    let sink: Arc<dyn Sink> = Arc::new(Sinks::default());
    let token = CancellationToken::new();
    let mut buckets = HashMap::new();
    let mut ledgers = HashMap::new();
    for t in &cfg.targets {
        let mut bucket = factory.bucket(t, sink.clone()).await;
        if let Some(e) = &t.events {
            let heard = Arc::new(Heard::default());
            let ledger = Arc::new(Ledger::new(
                t.labels(),
                t.canary_prefix(),
                e.timeout,
                heard.clone(),
            ));
            bucket.changes = Some(ledger.clone());
            let consumer =
                Consumer::for_targets(factory, &[(t, ledger.clone())], sink.clone()).await;
            tokio::spawn(consumer.run(token.clone()));
            ledgers.insert(t.name.clone(), (ledger, heard, e.timeout.min(EVENTS_WAIT)));
        }
        buckets.insert(t.name.clone(), bucket);
    }
    let cycles = cfg.targets.iter().map(|t| {
        let bucket = buckets[&t.name].clone();
        let events = ledgers.get(&t.name).cloned();
        async move {
            let durability = crate::durability::Monitor::new(t, Arc::new(Sinks::default()));
            let deadline = Instant::now() + t.timeout;
            let (d, token) = (durability.as_ref(), CancellationToken::new());
            let mut report = probe::run_target(&bucket, t, d, deadline, &token).await;
            if let Some(m) = crate::multipart::Monitor::new(t) {
                report.results.push(Box::pin(m.run(&bucket, &token)).await);
            }
            if let Some((ledger, heard, wait)) = events {
                let runs = events_results(&ledger, &heard, wait).await;
                report.results.extend(runs);
            }
            (t.clone(), report)
        }
    });
    let canaries = cfg.replications.iter().map(|r| {
        let monitor = Monitor::new(
            r.clone(),
            buckets[&r.source.name].clone(),
            buckets[&r.destination.name].clone(),
            sink.clone(),
        );
        let token = token.clone();
        async move { (r.name.clone(), monitor.run_canary(&token).await) }
    });
    let found = futures::future::join(
        futures::future::join_all(cycles),
        futures::future::join_all(canaries),
    )
    .await;
    token.cancel();
    found
}

/// Whether everything passed (the exit code of `once`).
pub fn passed((results, repls): &Found) -> bool {
    repls
        .iter()
        .all(|(_, o)| matches!(o, CanaryOutcome::Replicated { .. }))
        && results.iter().all(|(_, r)| r.passed())
}

/// A table: one line per probe, then failure details with request IDs, then a summary.
pub fn table(results: &[(Target, CycleReport)], repls: &[(String, CanaryOutcome)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<24} {:<14} {:<12} {:<22} {:>10}",
        "TARGET", "BUCKET", "REGION", "PROBE", "RESULT", "DURATION"
    );
    let mut details = String::new();
    let (mut passed, mut failed) = (0, 0);
    for (t, r) in results {
        for p in &r.results {
            let result = match &p.outcome {
                None => p
                    .not_run
                    .map_or("not run".to_string(), |w| format!("not run: {w}")),
                Some(Outcome::Success) => {
                    passed += 1;
                    "ok".to_string()
                }
                Some(Outcome::Failure(f)) => {
                    failed += 1;
                    let _ = writeln!(
                        details,
                        "{}/{}: {} {} {}: {}\n    key: {}\n    x-amz-request-id: {}\n    x-amz-id-2: {}",
                        t.name,
                        p.probe,
                        f.reason.as_str(),
                        f.operation.unwrap_or("-"),
                        f.code.as_deref().unwrap_or("-"),
                        f.message,
                        r.key,
                        f.request_id.as_deref().unwrap_or("-"),
                        f.extended_request_id.as_deref().unwrap_or("-"),
                    );
                    format!("FAIL {}", f.reason.as_str())
                }
            };
            let _ = writeln!(
                out,
                "{:<16} {:<24} {:<14} {:<12} {:<22} {:>8.1}ms",
                t.name,
                t.bucket,
                t.region,
                p.probe.as_str(),
                result,
                p.duration.as_secs_f64() * 1000.0
            );
        }
        for v in &r.violations {
            let what = match v.staleness {
                None => "S3 accepted a conditional write it had to refuse".to_string(),
                Some(s) => format!(
                    "lasted {:.3}s{}",
                    s.as_secs_f64(),
                    if v.resolved {
                        ""
                    } else {
                        " (still stale at the deadline)"
                    }
                ),
            };
            let _ = writeln!(
                details,
                "{}: consistency violation {} {what}",
                t.name,
                v.check.as_str(),
            );
        }
        if !r.cleaned_up {
            let _ = writeln!(
                details,
                "{}: canary {} could not be deleted; the daemon's orphan sweep removes it",
                t.name, r.key
            );
        }
    }
    if !repls.is_empty() {
        let _ = writeln!(out, "\n{:<24} {:<40}", "REPLICATION", "RESULT");
    }
    let mut repl_failed = 0;
    for (name, o) in repls {
        let result = match o {
            CanaryOutcome::Replicated { lag, heads } => {
                format!("ok, lag {:.2}s ({heads} HEADs)", lag.as_secs_f64())
            }
            CanaryOutcome::TimedOut { heads } => {
                repl_failed += 1;
                format!("FAIL timeout (not seen after {heads} HEADs)")
            }
            CanaryOutcome::Failed(r) => {
                repl_failed += 1;
                format!("FAIL {}", r.as_str())
            }
            CanaryOutcome::Cancelled => "cancelled".to_string(),
        };
        let _ = writeln!(out, "{name:<24} {result}");
    }
    if !details.is_empty() {
        let _ = writeln!(out, "\n{details}");
    }
    let requests: u32 = results.iter().map(|(_, r)| r.requests).sum();
    let _ = writeln!(
        out,
        "summary: {} target{}, probes ok {passed}, failed {failed}, S3 requests {requests}{}",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        if repls.is_empty() {
            String::new()
        } else {
            format!(
                "; replication canaries ok {}, failed {repl_failed}",
                repls.len() - repl_failed
            )
        }
    );
    out
}

/// JSON: one object per target with its cycle report.
pub fn json(results: &[(Target, CycleReport)], repls: &[(String, CanaryOutcome)]) -> String {
    let v: Vec<serde_json::Value> = results
        .iter()
        .map(|(t, r)| {
            serde_json::json!({
                "target": t.name,
                "bucket": t.bucket,
                "region": t.region,
                "passed": r.passed(),
                "cycle": r,
            })
        })
        .collect();
    let r: Vec<serde_json::Value> = repls
        .iter()
        .map(|(name, o)| match o {
            CanaryOutcome::Replicated { lag, heads } => serde_json::json!({
                "replication": name, "passed": true, "lag_seconds": lag.as_secs_f64(), "heads": heads,
            }),
            CanaryOutcome::TimedOut { heads } => serde_json::json!({
                "replication": name, "passed": false, "reason": "timeout", "heads": heads,
            }),
            CanaryOutcome::Failed(reason) => serde_json::json!({
                "replication": name, "passed": false, "reason": reason.as_str(),
            }),
            CanaryOutcome::Cancelled => serde_json::json!({
                "replication": name, "passed": false, "reason": "cancelled",
            }),
        })
        .collect();
    let doc = serde_json::json!({"targets": v, "replications": r});
    serde_json::to_string_pretty(&doc).expect("reports serialise")
}
