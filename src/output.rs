//! Terminal output of `once`.

use std::fmt::Write;

use crate::config::Target;
use crate::probe::{CycleReport, Outcome};

/// A table: one line per probe, then failure details with request IDs, then a summary.
pub fn table(results: &[(Target, CycleReport)]) -> String {
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
                None => "not run".to_string(),
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
            let _ = writeln!(
                details,
                "{}: consistency violation {} lasted {:.3}s{}",
                t.name,
                v.check.as_str(),
                v.staleness.as_secs_f64(),
                if v.resolved {
                    ""
                } else {
                    " (still stale at the deadline)"
                }
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
    if !details.is_empty() {
        let _ = writeln!(out, "\n{details}");
    }
    let requests: u32 = results.iter().map(|(_, r)| r.requests).sum();
    let _ = writeln!(
        out,
        "summary: {} targets, probes ok {passed}, failed {failed}, S3 requests {requests}",
        results.len()
    );
    out
}

/// JSON: one object per target with its cycle report.
pub fn json(results: &[(Target, CycleReport)]) -> String {
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
    serde_json::to_string_pretty(&v).expect("reports serialise")
}
