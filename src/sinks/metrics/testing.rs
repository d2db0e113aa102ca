//! What the expositions' unit tests share: metrics with a `vantage` label and one target, and
//! GetObject and throttled PutObject attempts recorded as the attempt recorder records them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::Metrics;
use crate::report::{Attempt, Sink, TargetLabels};

/// Metrics labelled `vantage="eu"`, and target t1 on bucket b in us-east-1.
pub fn metrics_and_target() -> (Arc<Metrics>, TargetLabels) {
    let labels = BTreeMap::from([("vantage".to_string(), "eu".to_string())]);
    let t = TargetLabels {
        target: "t1".into(),
        bucket: "b".into(),
        region: "us-east-1".into(),
    };
    (Arc::new(Metrics::new(&labels)), t)
}

/// A GetObject attempt of `ms` milliseconds with `request_id`.
pub fn get(m: &Metrics, t: &TargetLabels, ms: u64, request_id: Option<&str>) {
    m.attempt(
        t,
        &Attempt {
            operation: "GetObject",
            took: Duration::from_millis(ms),
            error: None,
            request_id,
        },
    );
}

/// A PutObject attempt of 20 ms that S3 throttled (`SlowDown`).
pub fn throttled_put(m: &Metrics, t: &TargetLabels) {
    m.attempt(
        t,
        &Attempt {
            operation: "PutObject",
            took: Duration::from_millis(20),
            error: Some("SlowDown"),
            request_id: None,
        },
    );
}
