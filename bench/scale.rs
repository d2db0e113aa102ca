//! What s3canary costs Prometheus and how it splits: series per target and scrape cost at a
//! given number of targets, and rendezvous sharding of many targets over 1..N processes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use s3canary::embedded::EmbeddedS3;
use s3canary::report::Sink;
use s3canary::report::{Attempt, TargetLabels};
use s3canary::shard::Shard;
use s3canary::sinks::metrics::Metrics;
use serde_json::json;

use crate::pct;

/// The request attempts of one real cycle, to replay for every simulated target.
#[derive(Default)]
struct Attempts(Mutex<Vec<Recorded>>);

/// An attempt as recorded: operation, duration, error code, request ID.
type Recorded = (String, Duration, Option<String>, Option<String>);

impl Sink for Attempts {
    fn attempt(&self, _t: &TargetLabels, a: &Attempt<'_>) {
        self.0.lock().unwrap().push((
            a.operation.to_string(),
            a.took,
            a.error.map(str::to_string),
            a.request_id.map(str::to_string),
        ));
    }
}

/// /metrics after one healthy cycle of every target (six probes, the default), at each count
/// of targets: series per target, bytes and render time, as text (classic histograms) and as
/// protobuf (classic and native buckets).
pub async fn scrape(counts: Vec<usize>) -> serde_json::Value {
    let s3 = EmbeddedS3::start(&["bench"]).await.unwrap();
    let t = s3.target("t", "bench", "");
    let attempts = Arc::new(Attempts::default());
    let b = EmbeddedS3::client_factory()
        .bucket(&t, attempts.clone())
        .await;
    let report = s3canary::probe::run_alone(&b, &t).await;
    let attempts = attempts.0.lock().unwrap().clone();
    let mut out = Vec::new();
    for targets in counts {
        let metrics = Metrics::new(&Default::default());
        for i in 0..targets {
            let mut ti = t.clone();
            ti.name = format!("target-{i:04}");
            ti.bucket = format!("bucket-{i:04}");
            metrics.target_added(&ti.info());
            metrics.cycle(&ti.labels(), &report);
            for (op, took, e, id) in &attempts {
                let a = Attempt {
                    operation: op,
                    took: *took,
                    error: e.as_deref(),
                    request_id: id.as_deref(),
                };
                metrics.attempt(&ti.labels(), &a);
            }
        }
        let mut times = Vec::new();
        let mut text = String::new();
        for _ in 0..20 {
            let s = std::time::Instant::now();
            text = metrics.render();
            times.push(s.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let metrics = Arc::new(metrics);
        let mut ptimes = Vec::new();
        let mut pbytes = 0;
        for _ in 0..20 {
            let s = std::time::Instant::now();
            pbytes = metrics.render_protobuf().len();
            ptimes.push(s.elapsed().as_secs_f64() * 1000.0);
        }
        ptimes.sort_by(f64::total_cmp);
        let series = |l: &&str| !l.starts_with('#') && l.contains("target=\"");
        let per_target = text
            .lines()
            .filter(series)
            .filter(|l| l.contains("target=\"target-0000\""))
            .count();
        out.push(json!({"targets": targets, "series_per_target": per_target,
            "series": text.lines().filter(series).count(), "bytes": text.len(),
            "render_p50_ms": pct(&times, 0.5), "render_max_ms": times.last(),
            "protobuf_bytes": pbytes, "protobuf_render_p50_ms": pct(&ptimes, 0.5)}));
    }
    json!({"scrape": out, "cycle_requests": attempts.len()})
}

/// `targets` target names over 1..=`max` shards: how even the split is (largest shard over
/// the mean) and what share of the targets moves when one shard is added.
pub fn shards(targets: usize, max: u32) -> serde_json::Value {
    let keys: Vec<String> = (0..targets).map(|i| format!("target app-{i:05}")).collect();
    let mut rows = Vec::new();
    let mut before: Option<Vec<u32>> = None;
    for n in 1..=max {
        let owners: Vec<u32> = keys.iter().map(|k| Shard::owner(k, n)).collect();
        let mut counts = vec![0usize; n as usize];
        for o in &owners {
            counts[*o as usize] += 1;
        }
        let mean = targets as f64 / f64::from(n);
        let largest = *counts.iter().max().unwrap_or(&0);
        let moved = before.as_ref().map(|b| {
            let m = b.iter().zip(&owners).filter(|(x, y)| x != y).count();
            m as f64 / targets as f64
        });
        rows.push(
            json!({"shards": n, "largest": largest, "smallest": counts.iter().min(),
            "balance": largest as f64 / mean, "moved_from_previous": moved,
            "ideal_move": (n > 1).then(|| 1.0 / f64::from(n))}),
        );
        before = Some(owners);
    }
    json!({"shards": {"targets": targets, "rows": rows}})
}
