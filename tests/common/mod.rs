//! Helpers shared by every integration test and the benchmark: an embedded S3 server and
//! targets pointed at it, one cycle as the daemon runs it, a bounded wait, a tiny HTTP client
//! for the daemon's endpoints, and the built binary ([`daemon`]).
//!
//! Each test file declares it `pub mod common;`: every suite uses a different part of it, and
//! items exported from the test crate are not reported as unused where one suite does not.

pub mod daemon;

use std::sync::Arc;
use std::time::Duration;

use s3canary::config::Target;
use s3canary::embedded::EmbeddedS3;
use s3canary::report::Sink;
use s3canary::report::{CycleReport, Outcome, Reason};
use s3canary::s3::{Bucket, ClientFactory};
use s3canary::sinks::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client factory that uses the embedded server's credentials.
pub fn factory() -> ClientFactory {
    EmbeddedS3::client_factory()
}

/// A checked target named `name` on `bucket` at `endpoint`, with `extra` TOML lines appended.
pub fn target(name: &str, bucket: &str, endpoint: &str, extra: &str) -> Target {
    s3canary::embedded::target_at(endpoint, name, bucket, extra)
}

/// Everything one probing test needs.
pub struct Rig {
    pub s3: EmbeddedS3,
    pub metrics: Arc<Metrics>,
    pub target: Target,
    pub bucket: Bucket,
}

/// An embedded server with bucket "canary" and a target "t1" on it.
pub async fn rig(extra: &str) -> Rig {
    let s3 = EmbeddedS3::start(&["canary"])
        .await
        .expect("embedded S3 starts");
    let metrics = Arc::new(Metrics::new(&Default::default()));
    let target = target("t1", "canary", &s3.endpoint, extra);
    metrics.target_added(&target.info());
    let bucket = factory().bucket(&target, metrics.clone()).await;
    Rig {
        s3,
        metrics,
        target,
        bucket,
    }
}

/// One cycle of `t` on `b` with the target's own deadline and nothing cancelling it.
pub async fn one_cycle(b: &Bucket, t: &Target) -> CycleReport {
    s3canary::probe::run_alone(b, t).await
}

/// One cycle of the rig's target, recorded in its metrics as the daemon records it.
pub async fn cycle(r: &Rig) -> CycleReport {
    let report = one_cycle(&r.bucket, &r.target).await;
    r.metrics.cycle(&r.target.labels(), &report);
    report
}

/// The outcome of `probe` in `report` (None when it did not run).
pub fn outcome(report: &CycleReport, probe: &str) -> Option<Outcome> {
    report
        .results
        .iter()
        .find(|r| r.probe.as_str() == probe)
        .and_then(|r| r.outcome.clone())
}

/// The failure reason of `probe` in `report`.
pub fn reason(report: &CycleReport, probe: &str) -> Option<Reason> {
    match outcome(report, probe) {
        Some(Outcome::Failure(f)) => Some(f.reason),
        _ => None,
    }
}

/// Every key the server was asked about is under the target's canary prefix.
pub fn assert_stayed_in_prefix(r: &Rig) {
    let prefix = r.target.canary_prefix();
    let log = r.s3.log.entries();
    assert!(!log.is_empty());
    for a in log {
        assert!(
            a.key.starts_with(&prefix),
            "access outside the prefix: {a:?}"
        );
    }
}

/// The peak resident memory (VmHWM) of process `pid`, in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The value of the sample `name{labels}` in a Prometheus text exposition, where `labels` is a
/// list of `key="value"` pairs that must all be present.
pub fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        if n != name || !labels.iter().all(|kv| rest.contains(kv)) {
            return None;
        }
        value.parse().ok()
    })
}

/// The sum of every sample `name{labels}` (as [`sample`] matches them), 0 when none.
pub fn total(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            (n == name && labels.iter().all(|kv| rest.contains(kv))).then_some(value)
        })
        .filter_map(|v| v.parse::<f64>().ok())
        .sum()
}

/// Polls `cond` every 50 ms for up to `limit` (a readiness wait, not a stand-in for one).
pub async fn wait_until<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < end {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// GET `path` from `addr` over plain HTTP/1.1; returns (status, body).
pub async fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    http(addr, "GET", path).await
}

/// A request without a body; returns (status, body).
pub async fn http(addr: &str, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("HTTP read timed out"))??;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
