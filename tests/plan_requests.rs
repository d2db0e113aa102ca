//! `plan` prices the requests a cycle really sends: for several probe lists, a healthy cycle
//! on the embedded server is counted by the server itself (its access log, per operation) and
//! by the cycle's report, and both equal `plan::requests_per_cycle`.

pub mod common;

use std::sync::Arc;

use s3canary::embedded::{EmbeddedS3, Op};
use s3canary::plan::requests_per_cycle;
use s3canary::report::Sinks;

const PROBE_LISTS: &[&str] = &[
    "[\"put\", \"get\", \"list\", \"overwrite\", \"delete\", \"conditional\"]",
    "[\"put\"]",
    "[\"put\", \"get\"]",
    "[\"put\", \"overwrite\", \"conditional\"]",
    "[\"put\", \"delete\"]",
    "[\"put\", \"list\", \"delete\", \"durability\"]",
];

#[tokio::test]
async fn plan_counts_what_a_healthy_cycle_sends() {
    let s3 = EmbeddedS3::start(&["canary"])
        .await
        .expect("embedded S3 starts");
    for (i, probes) in PROBE_LISTS.iter().enumerate() {
        let mut extra = format!("probes = {probes}");
        if probes.contains("durability") {
            extra.push_str("\n[target.durability]\nobjects = 1");
        }
        let t = common::target(&format!("p{i}"), "canary", &s3.endpoint, &extra);
        let bucket = common::factory()
            .bucket(&t, Arc::new(Sinks::default()))
            .await;
        let durability = s3canary::durability::Monitor::new(&t, Arc::new(Sinks::default()));
        if let Some(d) = &durability {
            // Seeding and the first count are not a cycle's cost: done before counting.
            let _ = d.check(&bucket).await;
        }
        let before = s3.log.entries().len();
        let deadline = tokio::time::Instant::now() + t.timeout;
        let token = tokio_util::sync::CancellationToken::new();
        let report =
            s3canary::probe::run_target(&bucket, &t, durability.as_ref(), deadline, &token).await;
        assert!(
            report.passed(),
            "{probes}: a healthy cycle passes: {report:?}"
        );
        let sent = &s3.log.entries()[before..];
        let count = |op: Op| sent.iter().filter(|a| a.op == op).count() as f64;
        let plan = requests_per_cycle(&t);
        let seen = (
            count(Op::PutObject),
            count(Op::GetObject),
            count(Op::HeadObject),
            count(Op::ListObjectsV2),
            count(Op::DeleteObject),
        );
        // With one object, the durability set is counted with a LIST every cycle.
        let planned = (plan.put, plan.get, plan.head, plan.list, plan.delete);
        assert_eq!(
            seen, planned,
            "{probes}: (put, get, head, list, delete) sent vs planned"
        );
        let steps_only = plan.total()
            - if durability.is_some() {
                2.0 // the durability check's GET and LIST are not the cycle's own
            } else {
                0.0
            };
        assert_eq!(
            f64::from(report.requests),
            steps_only,
            "{probes}: the cycle counts the requests it sends"
        );
    }
}
