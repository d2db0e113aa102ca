//! The daemon against endpoints and clients that do not play fair: it stays bounded in memory,
//! output and log lines, and its probes are not hurt by inbound connections.

pub mod common;

use std::process::Stdio;
use std::time::Duration;

use common::daemon::{daemon_config, signal, start_daemon};
use common::{http_get, peak_rss_mib, sample, total, wait_until};
use s3canary::embedded::hostile::{self, Answer};
use tokio::io::AsyncWriteExt;

/// A bound far above the daemon's few tens of MiB, far below what the answers would cost.
const RSS_BOUND_MIB: f64 = 150.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_get_body_is_cut_at_the_canary_size() {
    let h = hostile::start(Answer::EndlessBody).await;
    let (addr, dir, cfg) = daemon_config(
        &h.endpoint,
        "interval = \"2s\"\ntimeout = \"1500ms\"\nprobes = [\"put\", \"get\"]",
        &[("endless", "endless")],
    );
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let mut child = start_daemon(&cfg, &addr, Stdio::from(log)).await;
    let pid = child.id().unwrap();
    // Three failed reads: the body was refused each time, not buffered.
    let failed = wait_until(Duration::from_secs(30), || async {
        let Ok((_, m)) = http_get(&addr, "/metrics").await else {
            return false;
        };
        let labels = ["probe=\"get\"", "reason=\"content_mismatch\""];
        sample(&m, "s3canary_probe_failures_total", &labels).is_some_and(|n| n >= 3.0)
    });
    assert!(
        failed.await,
        "the endless body was not reported as content_mismatch"
    );
    let peak = peak_rss_mib(pid);
    eprintln!("peak RSS with an endless GetObject body: {peak:.1} MiB");
    assert!(peak > 0.0 && peak < RSS_BOUND_MIB, "peak RSS {peak:.1} MiB");
    let (_, status) = http_get(&addr, "/api/v1/status").await.unwrap();
    assert!(status.contains("longer than 2048 bytes"), "{status}");
    signal(&child, "TERM");
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_error_message_is_bounded_everywhere() {
    let h = hostile::start(Answer::ErrorMessage("A".repeat(20 << 20))).await;
    let (addr, dir, cfg) = daemon_config(
        &h.endpoint,
        "interval = \"2s\"\ntimeout = \"1500ms\"",
        &[("huge", "huge")],
    );
    let log_path = dir.path().join("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = start_daemon(&cfg, &addr, Stdio::from(log)).await;
    let pid = child.id().unwrap();
    let failed = wait_until(Duration::from_secs(30), || async {
        let Ok((_, m)) = http_get(&addr, "/metrics").await else {
            return false;
        };
        total(&m, "s3canary_probe_failures_total", &["probe=\"put\""]) >= 3.0
    });
    assert!(failed.await, "the failing store was not reported");
    let (_, status) = http_get(&addr, "/api/v1/status").await.unwrap();
    let (_, page) = http_get(&addr, "/").await.unwrap();
    let peak = peak_rss_mib(pid);
    signal(&child, "TERM");
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
    let log = std::fs::read_to_string(&log_path).unwrap();
    eprintln!(
        "20 MB messages: peak RSS {peak:.1} MiB, status {} B, page {} B, log {} B",
        status.len(),
        page.len(),
        log.len()
    );
    assert!(peak > 0.0 && peak < RSS_BOUND_MIB, "peak RSS {peak:.1} MiB");
    // Ten failures are kept per target, each with a message of at most ~0.5 KB.
    assert!(status.len() < 64 * 1024, "status is {} bytes", status.len());
    assert!(page.len() < 64 * 1024, "page is {} bytes", page.len());
    assert!(log.len() < 256 * 1024, "log is {} bytes", log.len());
    assert!(!status.contains(&"A".repeat(1000)));
    // A log file is not a terminal: no colour codes.
    assert!(!log.contains('\u{1b}'), "colour codes in a log file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newline_in_an_s3_message_cannot_forge_a_log_line() {
    let forged =
        "denied\n2026-11-24T03:00:00.000000Z  INFO s3canary::app: FORGED all probes passed";
    let h = hostile::start(Answer::ErrorMessage(forged.into())).await;
    let (addr, dir, cfg) = daemon_config(
        &h.endpoint,
        "interval = \"2s\"\ntimeout = \"1500ms\"",
        &[("forger", "forger")],
    );
    let log_path = dir.path().join("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = start_daemon(&cfg, &addr, Stdio::from(log)).await;
    let logged = wait_until(Duration::from_secs(30), || async {
        std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains("FORGED"))
    });
    assert!(logged.await, "the message was never logged");
    signal(&child, "TERM");
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("FORGED")).collect();
    assert!(lines.iter().any(|l| l.contains("probe failed")), "{log}");
    for line in lines {
        assert!(
            !line.starts_with("2026-11-24T03:00:00"),
            "a line of its own: {line}"
        );
        assert!(line.contains("denied\\n2026"), "not escaped: {line}");
        assert!(
            !line.contains("code=Some(") && !line.contains("request_id=None"),
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_never_make_the_probes_fail() {
    let s3 = s3canary::embedded::EmbeddedS3::start(&["alpha"])
        .await
        .unwrap();
    let (addr, dir, cfg) = daemon_config(
        &s3.endpoint,
        "interval = \"1s\"\ntimeout = \"800ms\"",
        &[("alpha", "alpha")],
    );
    // The daemon runs with 256 descriptors at most, as in a tight container.
    let mut cmd = tokio::process::Command::new("sh");
    cmd.args(["-c", "ulimit -n 256 && exec \"$0\" run --config \"$1\""])
        .arg(common::daemon::BIN)
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    common::daemon::with_embedded_creds(cmd.as_std_mut());
    let mut child = cmd.spawn().unwrap();
    let ready = wait_until(Duration::from_secs(20), || async {
        matches!(http_get(&addr, "/-/ready").await, Ok((200, _)))
    });
    assert!(ready.await, "daemon never ready");
    // 300 connections that send half a request and then nothing.
    let mut held = Vec::new();
    for _ in 0..300 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await {
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
            held.push(s);
        }
    }
    let before = std::time::Instant::now();
    // While they are held, cycles go on and none fails for lack of a connection.
    let ran = wait_until(Duration::from_secs(30), || async {
        let Ok((200, m)) = http_get(&addr, "/metrics").await else {
            return false;
        };
        sample(&m, "s3canary_probe_runs_total", &["probe=\"put\""]).is_some_and(|n| n >= 8.0)
    });
    assert!(
        ran.await,
        "probes or /metrics stalled under 300 half-open connections"
    );
    let (_, m) = http_get(&addr, "/metrics").await.unwrap();
    let failures: f64 = m
        .lines()
        .filter(|l| l.starts_with("s3canary_probe_failures_total{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(failures, 0.0, "probes failed while connections were held");
    eprintln!(
        "300 half-open connections: /metrics and probes fine after {:.1}s",
        before.elapsed().as_secs_f64()
    );
    drop(held);
    signal(&child, "TERM");
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
    drop(dir);
}
