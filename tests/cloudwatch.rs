//! The CloudWatch mirror through the real aws-sdk-cloudwatch client (rpc-v2-cbor) against a
//! small CloudWatch stand-in on 127.0.0.1 that records each PutMetricData call and can be
//! switched to failing or hanging. (What CloudWatch stores is checked against moto's server in
//! tests/cloudwatch/moto_test.sh.)

pub mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use ciborium::value::Value;
use common::{sample, wait_until};
use s3canary::embedded::EmbeddedS3;
use tokio::time::Instant;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Up,
    Failing,
    Hanging,
}

#[derive(Clone)]
struct FakeCloudWatch {
    mode: Arc<Mutex<Mode>>,
    /// Datums of each accepted call.
    calls: Arc<Mutex<Vec<Vec<Value>>>>,
    endpoint: String,
}

fn field<'a>(m: &'a Value, name: &str) -> Option<&'a Value> {
    m.as_map()?
        .iter()
        .find(|(k, _)| k.as_text() == Some(name))
        .map(|(_, v)| v)
}

async fn fake_cloudwatch() -> FakeCloudWatch {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = FakeCloudWatch {
        mode: Arc::new(Mutex::new(Mode::Up)),
        calls: Arc::default(),
        endpoint: format!("http://{}", listener.local_addr().unwrap()),
    };
    let f = fake.clone();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: Bytes| {
            let f = f.clone();
            async move {
                let mode = *f.mode.lock().unwrap();
                match mode {
                    Mode::Hanging => std::future::pending::<()>().await,
                    Mode::Failing => {
                        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
                    }
                    Mode::Up => {}
                }
                assert!(uri.path().ends_with("/operation/PutMetricData"), "{uri}");
                // The SDK gzips large PutMetricData requests.
                let body = if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
                    let mut out = Vec::new();
                    std::io::Read::read_to_end(
                        &mut flate2::read::GzDecoder::new(&body[..]),
                        &mut out,
                    )
                    .unwrap();
                    out
                } else {
                    body.to_vec()
                };
                let v: Value = ciborium::from_reader(&body[..]).expect("a CBOR request");
                assert_eq!(
                    field(&v, "Namespace").and_then(Value::as_text),
                    Some("S3/Consistency")
                );
                let data = field(&v, "MetricData")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                f.calls.lock().unwrap().push(data);
                let mut out = Vec::new();
                ciborium::into_writer(&Value::Map(vec![]), &mut out).unwrap();
                (
                    [
                        ("smithy-protocol", "rpc-v2-cbor"),
                        ("content-type", "application/cbor"),
                    ],
                    out,
                )
                    .into_response()
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    fake
}

fn daemon_config(s3: &EmbeddedS3, targets: &[&str], cw: &str) -> s3canary::config::Config {
    let mut text = format!(
        "[defaults]\ninterval = \"1s\"\ntimeout = \"800ms\"\n\
         [cloudwatch]\nenabled = true\nregion = \"us-east-1\"\ninterval = \"1s\"\nendpoint = \"{cw}\"\n"
    );
    for t in targets {
        text.push_str(&format!(
            "[[target]]\nname = \"{t}\"\nbucket = \"{t}\"\nregion = \"eu-west-1\"\nendpoint = \"{}\"\npath_style = true\n",
            s3.endpoint
        ));
    }
    s3canary::config::parse(&text, Path::new("t.toml")).unwrap()
}

fn metric_names(calls: &[Vec<Value>]) -> std::collections::BTreeSet<String> {
    calls
        .iter()
        .flatten()
        .filter_map(|d| {
            field(d, "MetricName")
                .and_then(Value::as_text)
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_publishes_the_python_monitors_names_with_distributions() {
    let s3 = EmbeddedS3::start(&["alpha"]).await.unwrap();
    let cw = fake_cloudwatch().await;
    let daemon = s3canary::app::Daemon::new(
        daemon_config(&s3, &["alpha"], &cw.endpoint),
        None,
        common::factory(),
    );
    daemon.start().await;
    let called = wait_until(Duration::from_secs(20), || async {
        cw.calls.lock().unwrap().len() >= 3
    });
    assert!(called.await, "no PutMetricData calls");
    assert!(daemon.shutdown(Duration::from_secs(15)).await);
    let calls = cw.calls.lock().unwrap().clone();
    let names = metric_names(&calls);
    for check in [
        "Read_After_Write",
        "List_After_Write",
        "Update_Consistency",
        "Put",
        "Delete_Consistency",
        "Conditional_Write",
    ] {
        assert!(
            names.contains(&format!("S3Consistency_{check}_SuccessRate")),
            "{names:?}"
        );
        assert!(
            names.contains(&format!("S3Consistency_{check}_Latency")),
            "{names:?}"
        );
    }
    assert!(names.contains("S3Consistency_ClockSkew"), "{names:?}");
    let mut latency_count = 0.0;
    for d in calls.iter().flatten() {
        let name = field(d, "MetricName").and_then(Value::as_text).unwrap();
        let dims: Vec<(String, String)> = field(d, "Dimensions")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|x| {
                (
                    field(x, "Name")
                        .and_then(Value::as_text)
                        .unwrap()
                        .to_string(),
                    field(x, "Value")
                        .and_then(Value::as_text)
                        .unwrap()
                        .to_string(),
                )
            })
            .collect();
        assert_eq!(
            dims,
            vec![
                ("BucketName".into(), "alpha".into()),
                ("Region".into(), "eu-west-1".into())
            ]
        );
        let unit = field(d, "Unit").and_then(Value::as_text).unwrap();
        if name.ends_with("_SuccessRate") {
            assert_eq!(unit, "Percent");
            let v = field(d, "Value").and_then(Value::as_float).unwrap();
            assert_eq!(v, 100.0, "{name}");
        } else if name == "S3Consistency_ClockSkew" {
            // The embedded server's Date is this host's clock.
            assert_eq!(unit, "Seconds");
            let v = field(d, "Value").and_then(Value::as_float).unwrap();
            assert!(v.abs() <= 2.0, "{v}");
        } else {
            assert_eq!(unit, "Milliseconds");
            // A distribution, not an average: Values with Counts.
            let values = field(d, "Values").and_then(Value::as_array).unwrap();
            let counts = field(d, "Counts").and_then(Value::as_array).unwrap();
            assert_eq!(values.len(), counts.len());
            if name == "S3Consistency_Read_After_Write_Latency" {
                latency_count += counts.iter().map(|c| c.as_float().unwrap()).sum::<f64>();
            }
        }
    }
    // Every successful get of every cycle is in CloudWatch, as in Prometheus.
    let text = daemon.metrics.render();
    let prom = sample(
        &text,
        "s3canary_probe_duration_seconds_count",
        &["probe=\"get\""],
    )
    .unwrap();
    assert_eq!(latency_count, prom);
    assert_eq!(
        sample(
            &text,
            "s3canary_cloudwatch_publish_total",
            &["result=\"failure\""]
        ),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudwatch_down_never_delays_probes_and_publishing_resumes() {
    let s3 = EmbeddedS3::start(&["alpha"]).await.unwrap();
    let cw = fake_cloudwatch().await;
    *cw.mode.lock().unwrap() = Mode::Failing;
    let daemon = s3canary::app::Daemon::new(
        daemon_config(&s3, &["alpha"], &cw.endpoint),
        None,
        common::factory(),
    );
    let started = Instant::now();
    daemon.start().await;
    let failures = || {
        sample(
            &daemon.metrics.render(),
            "s3canary_cloudwatch_publish_total",
            &["result=\"failure\""],
        )
        .unwrap_or(0.0)
    };
    let failed = wait_until(Duration::from_secs(20), || async { failures() >= 2.0 });
    assert!(failed.await, "no failed publish counted");
    // Then hanging: calls never answer (the client gives up after 10 s).
    *cw.mode.lock().unwrap() = Mode::Hanging;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let text = daemon.metrics.render();
    let runs = sample(&text, "s3canary_probe_runs_total", &["probe=\"put\""]).unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        runs >= (elapsed - 1.0).floor(),
        "{runs} cycles in {elapsed:.1}s with CloudWatch down"
    );
    let queued = daemon.mirror().unwrap().queue_len();
    assert!(queued > 0 && queued <= s3canary::sinks::cloudwatch::QUEUE_CAPACITY);
    assert!(cw.calls.lock().unwrap().is_empty());

    // Back up: the queued datums go out and new intervals follow.
    *cw.mode.lock().unwrap() = Mode::Up;
    let resumed = wait_until(Duration::from_secs(90), || async {
        let text = daemon.metrics.render();
        sample(
            &text,
            "s3canary_cloudwatch_publish_total",
            &["result=\"success\""],
        )
        .is_some_and(|ok| ok >= 2.0)
    });
    assert!(resumed.await, "publishing did not resume");
    assert!(daemon.shutdown(Duration::from_secs(15)).await);
    // What was kept while down arrived, with the timestamps of its intervals.
    let datums: usize = cw.calls.lock().unwrap().iter().map(Vec::len).sum();
    assert!(
        datums >= queued,
        "{datums} datums arrived, {queued} were queued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_targets_are_published_in_calls_within_the_api_limits() {
    let cw = fake_cloudwatch().await;
    let metrics = Arc::new(s3canary::sinks::metrics::Metrics::new(&Default::default()));
    let cfg = s3canary::config::parse(
        &format!("[[target]]\nname = \"x\"\nbucket = \"xx-x\"\nregion = \"us-east-1\"\n[cloudwatch]\nenabled = true\nendpoint = \"{}\"\n", cw.endpoint),
        Path::new("t.toml"),
    )
    .unwrap();
    let mirror = s3canary::sinks::cloudwatch::Mirror::new(cfg.cloudwatch.clone(), metrics.clone());
    // 300 targets, each with a cycle whose six steps took 1..=200 distinct durations.
    for i in 0..300 {
        let mut t = cfg.targets[0].clone();
        t.bucket = format!("bucket-{i:03}");
        for j in 0..3 {
            let report = s3canary::report::CycleReport {
                target: t.name.clone(),
                key: String::new(),
                started_at: std::time::SystemTime::now(),
                results: s3canary::report::Probe::DEFAULTS
                    .iter()
                    .map(|p| s3canary::report::ProbeResult {
                        probe: *p,
                        outcome: Some(s3canary::report::Outcome::Success),
                        not_run: None,
                        duration: Duration::from_micros(1000 + 137 * (i * 3 + j) as u64),
                        finished_at: std::time::SystemTime::now(),
                    })
                    .collect(),
                violations: vec![],
                requests: 13,
                cleaned_up: true,
            };
            mirror.record_cycle(&t.labels(), &report);
        }
    }
    let queued = mirror.flush(std::time::SystemTime::now());
    assert_eq!(queued, 300 * 6 * 2);
    let client = s3canary::sinks::cloudwatch::client(
        &cfg.cloudwatch,
        Some(aws_sdk_s3::config::SharedCredentialsProvider::new(
            EmbeddedS3::credentials(),
        )),
    )
    .await;
    let token = tokio_util::sync::CancellationToken::new();
    let sender = tokio::spawn(mirror.clone().run_sender(
        client,
        token.clone(),
        Duration::from_secs(5),
    ));
    let sent = wait_until(Duration::from_secs(20), || async {
        mirror.queue_len() == 0
    });
    assert!(sent.await, "the queue was not sent");
    token.cancel();
    sender.await.unwrap();
    let calls = cw.calls.lock().unwrap().clone();
    assert_eq!(calls.iter().map(Vec::len).sum::<usize>(), 3600);
    assert!(calls.len() >= 4, "{} calls", calls.len());
    assert!(
        calls.iter().all(|c| c.len() <= 1000),
        "{:?}",
        calls.iter().map(Vec::len).collect::<Vec<_>>()
    );
}
