//! Replication lag monitoring against the embedded server's simulated replication, over real
//! TCP with the real aws-sdk-s3 client. Lags are real time (short ones), because the SDK's own
//! timeouts would fire under paused time while a socket is waiting.

pub mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use common::{sample, wait_until};
use s3canary::embedded::{EmbeddedS3, Lag, Rule};
use s3canary::replication::{CanaryOutcome, Monitor};
use s3canary::report::ReplicationFailure;
use s3canary::sinks::metrics::Metrics;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

async fn monitor(
    s3: &EmbeddedS3,
    metrics: &Arc<Metrics>,
    name: &str,
    pair: (&str, &str),
    interval: Duration,
    timeout: Duration,
) -> Arc<Monitor> {
    s3.replication_monitor(name, pair, (interval, timeout), metrics.clone())
        .await
}

/// An embedded server that replicates bucket "src" to "dst" by a rule of `lag` (changed by
/// `tweak`), and a monitor "r" of that pair.
async fn src_to_dst(
    lag: Duration,
    tweak: impl FnOnce(&mut Rule),
    interval: Duration,
    timeout: Duration,
) -> (EmbeddedS3, Arc<Metrics>, Arc<Monitor>) {
    let s3 = EmbeddedS3::start(&["src", "dst"]).await.unwrap();
    let metrics = Arc::new(Metrics::new(&Default::default()));
    let mut rule = Rule::new("src", "dst", "s3canary/replication/", Lag::Fixed(lag));
    tweak(&mut rule);
    s3.replication.set_rule(rule);
    let m = monitor(&s3, &metrics, "r", ("src", "dst"), interval, timeout).await;
    (s3, metrics, m)
}

fn metric(m: &Metrics, name: &str, labels: &[&str]) -> f64 {
    sample(&m.render(), name, labels).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measured_lag_matches_the_simulated_lag_within_the_stated_resolution() {
    let lags = [0.35, 1.5, 4.0];
    let s3 = EmbeddedS3::with_lagged_pairs(&lags).await.unwrap();
    let metrics = Arc::new(Metrics::new(&Default::default()));
    let mut runs = Vec::new();
    for i in 0..lags.len() {
        let (src, dst) = (format!("src{i}"), format!("dst{i}"));
        let m = monitor(
            &s3,
            &metrics,
            &format!("r{i}"),
            (&src, &dst),
            Duration::from_secs(60),
            Duration::from_secs(30),
        )
        .await;
        runs.push(tokio::spawn(async move {
            m.run_canary(&CancellationToken::new()).await
        }));
    }
    for (i, run) in runs.into_iter().enumerate() {
        let CanaryOutcome::Replicated { lag, heads } = run.await.unwrap() else {
            panic!("canary {i} not replicated")
        };
        let want = lags[i];
        let resolution = (0.1f64).max(0.05 * want);
        // 30 ms of slack for request round trips on loopback.
        let err = (lag.as_secs_f64() - want).abs();
        assert!(
            err <= resolution + 0.03,
            "lag {want}s measured {lag:?} (error {err:.3}s > {resolution}s)"
        );
        let source_heads = heads / s3canary::replication::STATUS_EVERY;
        eprintln!(
            "simulated {want}s: measured {:.3}s, error {err:.3}s, {heads} destination HEADs (+{source_heads} on the source)",
            lag.as_secs_f64()
        );
        assert!(heads <= 20, "{heads} HEADs for a {want}s lag");
    }
    assert_eq!(
        metric(
            &metrics,
            "s3canary_replication_lag_seconds_count",
            &["replication=\"r1\""]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "s3canary_replication_canaries_total",
            &[
                "replication=\"r2\"",
                "source_bucket=\"src2\"",
                "destination_region=\"us-east-1\""
            ]
        ),
        1.0
    );
    for b in (0..lags.len()).flat_map(|i| [format!("src{i}"), format!("dst{i}")]) {
        assert!(s3.keys(&b).is_empty(), "{b} not cleaned: {:?}", s3.keys(&b));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_grows_oldest_pending_ends_in_timeouts_and_recovery_clears_it() {
    let (s3, metrics, m) = src_to_dst(
        Duration::from_millis(100),
        |r| r.stalled = true,
        Duration::from_millis(300),
        Duration::from_millis(1500),
    )
    .await;
    let (tracker, token) = (TaskTracker::new(), CancellationToken::new());
    let loops = s3canary::app::Loops {
        tracker: tracker.clone(),
        sink: metrics.clone(),
        shutdown: token.clone(),
    };
    loops.start_replication(m.clone(), token.clone());

    let oldest = |m: &Monitor| {
        m.report_pending();
        metric(&metrics, "s3canary_replication_oldest_pending_seconds", &[])
    };
    // Read the gauges when canaries are pending, then again later: the oldest has aged.
    let pending = wait_until(Duration::from_secs(5), || async { oldest(&m) >= 0.5 });
    assert!(pending.await, "nothing pending");
    let first = oldest(&m);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = oldest(&m);
    assert!(
        second > first + 0.3,
        "oldest pending did not grow: {first} -> {second}"
    );
    assert!(metric(&metrics, "s3canary_replication_pending", &[]) >= 2.0);
    let timed_out = wait_until(Duration::from_secs(10), || async {
        metric(&metrics, "s3canary_replication_timeouts_total", &[]) >= 1.0
    });
    assert!(timed_out.await, "no timeout counted");
    let st = m.status();
    assert_eq!(st.state, s3canary::replication::State::Failing);
    let f = st.last_failure.expect("the timeout is remembered");
    assert_eq!(f.reason, "timed_out");
    assert!(
        f.message.contains("was not seen on dst within 1s 500ms"),
        "{}",
        f.message
    );
    assert_eq!(
        metric(&metrics, "s3canary_replication_lag_seconds_count", &[]),
        0.0
    );

    // Recovery: new canaries are measured again and the oldest pending age falls back.
    s3.replication.set_stalled("src", false);
    let measured = wait_until(Duration::from_secs(20), || async {
        metric(&metrics, "s3canary_replication_lag_seconds_count", &[]) >= 3.0
    });
    assert!(measured.await, "no lag measured after recovery");
    // Canaries written during the stall are seen at their next poll (or time out); after that
    // the oldest pending is a fresh canary again.
    let fresh = wait_until(Duration::from_secs(25), || async { oldest(&m) < 1.0 });
    assert!(fresh.await, "oldest pending still {}", oldest(&m));
    token.cancel();
    tracker.close();
    tracker.wait().await;
    m.report_pending();
    assert_eq!(metric(&metrics, "s3canary_replication_pending", &[]), 0.0);
    assert_eq!(oldest(&m), 0.0);
    assert!(s3.keys("src").is_empty(), "{:?}", s3.keys("src"));
    assert!(s3.keys("dst").is_empty(), "{:?}", s3.keys("dst"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_replication_status_is_reported_promptly_and_both_sides_are_cleaned() {
    let (s3, metrics, m) = src_to_dst(
        Duration::from_millis(50),
        |r| r.failing = true,
        Duration::from_secs(60),
        Duration::from_secs(60),
    )
    .await;
    let start = Instant::now();
    let outcome = m.run_canary(&CancellationToken::new()).await;
    assert_eq!(
        outcome,
        CanaryOutcome::Failed(ReplicationFailure::StatusFailed)
    );
    // Five polls at 200 ms, far from the 60 s timeout.
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(
        metric(
            &metrics,
            "s3canary_replication_failures_total",
            &["reason=\"status_failed\""]
        ),
        1.0
    );
    assert_eq!(
        metric(&metrics, "s3canary_replication_timeouts_total", &[]),
        0.0
    );
    let deletes: Vec<_> = s3
        .log
        .entries()
        .into_iter()
        .filter(|a| a.op == s3canary::embedded::Op::DeleteObject)
        .map(|a| a.bucket)
        .collect();
    assert_eq!(deletes, vec!["src".to_string(), "dst".to_string()]);
    assert!(s3.keys("src").is_empty() && s3.keys("dst").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_measures_young_canaries_and_deletes_the_rest() {
    let (s3, metrics, m) = src_to_dst(
        Duration::from_millis(500),
        |_| {},
        Duration::from_secs(60),
        Duration::from_secs(10),
    )
    .await;

    // What a killed daemon leaves: a canary written 1 s ago and still replicating, a canary
    // past the timeout on both sides, and a copy whose source was already deleted.
    let client = common::factory()
        .bucket(
            &common::target("src", "src", &s3.endpoint, ""),
            metrics.clone(),
        )
        .await
        .client;
    let ms = |ago: Duration| {
        (SystemTime::now() - ago)
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    let young = format!(
        "s3canary/replication/r/{:013}-00000000000000aa",
        ms(Duration::from_secs(1))
    );
    let old = format!(
        "s3canary/replication/r/{:013}-00000000000000bb",
        ms(Duration::from_secs(60))
    );
    let dest_only = format!(
        "s3canary/replication/r/{:013}-00000000000000cc",
        ms(Duration::from_secs(5))
    );
    let unrelated = "s3canary/replication/r/notes.txt".to_string();
    for (bucket, key) in [
        ("src", &old),
        ("dst", &old),
        ("dst", &dest_only),
        ("src", &unrelated),
    ] {
        client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    let written = Instant::now();
    client
        .put_object()
        .bucket("src")
        .key(&young)
        .body(ByteStream::from_static(b"y"))
        .send()
        .await
        .unwrap();

    let (tracker, token) = (TaskTracker::new(), CancellationToken::new());
    let (resumed, deleted) = m.recover(&tracker, &token).await.unwrap();
    assert_eq!((resumed, deleted), (1, 2));
    tracker.close();
    tracker.wait().await;
    assert!(written.elapsed() < Duration::from_secs(5));
    let text = metrics.render();
    assert_eq!(
        sample(&text, "s3canary_replication_lag_seconds_count", &[]),
        Some(1.0)
    );
    // Measured from the key's write time: 1 s before the PUT, plus the 0.5 s lag.
    let lag = sample(&text, "s3canary_replication_lag_seconds_sum", &[]).unwrap();
    assert!((1.3..1.8).contains(&lag), "resumed canary lag {lag}");
    // Only canaries are touched: the unrelated object (and its replica) stay.
    assert_eq!(s3.keys("src"), vec![unrelated.clone()]);
    assert_eq!(s3.keys("dst"), vec![unrelated]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_says_failing_with_the_last_failure_and_ok_again_after_a_measured_lag() {
    let (s3, _metrics, m) = src_to_dst(
        Duration::from_millis(50),
        |_| {},
        Duration::from_secs(60),
        Duration::from_secs(60),
    )
    .await;
    let before = m.status();
    assert_eq!(before.state, s3canary::replication::State::Ok);
    assert!(before.last_failure.is_none() && before.last_lag_age_seconds.is_none());

    s3.faults.set_bucket(
        "src",
        s3canary::embedded::FaultConfig::error(
            "AccessDenied",
            1.0,
            vec![s3canary::embedded::Op::PutObject],
        ),
    );
    let outcome = m.run_canary(&CancellationToken::new()).await;
    assert_eq!(
        outcome,
        CanaryOutcome::Failed(ReplicationFailure::PutFailed)
    );
    let failing = m.status();
    assert_eq!(failing.state, s3canary::replication::State::Failing);
    let f = failing.last_failure.expect("the failure is remembered");
    assert_eq!(f.reason, "put_failed");
    assert!(
        f.message
            .starts_with("writing the canary to the source failed: access_denied AccessDenied: "),
        "{}",
        f.message
    );
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - f.at).abs() < 30.0,
        "failure at {} vs now {now}",
        f.at
    );
    let json = serde_json::to_value(m.status()).unwrap();
    assert_eq!(json["state"], "failing");
    assert_eq!(json["last_failure"]["reason"], "put_failed");

    s3.faults.set_bucket("src", Default::default());
    let outcome = m.run_canary(&CancellationToken::new()).await;
    assert!(
        matches!(outcome, CanaryOutcome::Replicated { .. }),
        "{outcome:?}"
    );
    let ok = m.status();
    assert_eq!(ok.state, s3canary::replication::State::Ok);
    assert!(
        ok.last_lag_age_seconds
            .is_some_and(|a| (0.0..30.0).contains(&a))
    );
    // The failure stays on show, older than the lag that resolved it.
    assert!(
        ok.last_failure
            .is_some_and(|f| f.at <= ok.last_lag_at.unwrap())
    );
}
