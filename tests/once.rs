//! `s3canary once` as a user runs it: one cycle of every target and one replication canary per
//! pair against the embedded S3 server, as a table or JSON, with its exit codes.

pub mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::daemon::{BIN, with_embedded_creds, write_config};
use s3canary::embedded::{EmbeddedS3, FaultConfig, Op};

async fn once(config: &Path, format: &str) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args([
        "once",
        "--config",
        config.to_str().unwrap(),
        "--format",
        format,
    ]);
    with_embedded_creds(cmd.as_std_mut());
    cmd.output().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_passes_on_a_healthy_store_and_fails_with_request_ids_on_a_faulty_one() {
    let s3 = EmbeddedS3::start(&["alpha", "beta"]).await.unwrap();
    let (_dir, cfg) = write_config(
        &s3.endpoint,
        "127.0.0.1:0",
        "",
        &[("alpha", "alpha"), ("beta", "beta")],
    );

    let out = once(&cfg, "table").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("TARGET"), "{stdout}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| !l.starts_with("summary") && l.split_whitespace().nth(4) == Some("ok"))
            .count(),
        12,
        "{stdout}"
    );
    assert!(
        stdout.contains("summary: 2 targets, probes ok 12, failed 0, S3 requests 26"),
        "{stdout}"
    );
    assert!(s3.keys("alpha").is_empty() && s3.keys("beta").is_empty());

    s3.faults.set_bucket(
        "beta",
        FaultConfig::error("AccessDenied", 1.0, vec![Op::GetObject]),
    );
    let out = once(&cfg, "table").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL access_denied"), "{stdout}");
    assert!(
        stdout.contains("beta/get: access_denied GetObject AccessDenied"),
        "{stdout}"
    );
    let id_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("x-amz-request-id:"))
        .unwrap();
    assert!(!id_line.ends_with(" -"), "request ID missing: {stdout}");

    let out = once(&cfg, "json").await;
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let beta = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == "beta")
        .unwrap();
    assert_eq!(beta["passed"], false);
    let get = beta["cycle"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["probe"] == "get")
        .unwrap();
    assert_eq!(get["outcome"]["reason"], "access_denied");
    assert!(
        get["outcome"]["request_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    let alpha = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == "alpha")
        .unwrap();
    assert_eq!(alpha["passed"], true);
    assert!(s3.keys("alpha").is_empty() && s3.keys("beta").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_also_measures_one_replication_canary() {
    let s3 = EmbeddedS3::start(&["src", "dst"]).await.unwrap();
    s3.replication.set_rule(s3canary::embedded::Rule::new(
        "src",
        "dst",
        "s3canary/replication/",
        s3canary::embedded::Lag::Fixed(Duration::from_millis(400)),
    ));
    let (dir, cfg) = write_config(
        &s3.endpoint,
        "127.0.0.1:0",
        "",
        &[("src", "src"), ("dst", "dst")],
    );
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("\n[[replication]]\nname = \"src-to-dst\"\nsource = \"src\"\ndestination = \"dst\"\ntimeout = \"20s\"\n");
    std::fs::write(&cfg, text).unwrap();
    let out = once(&cfg, "table").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("src-to-dst"))
        .expect("a replication line");
    let lag: f64 = line
        .split("lag ")
        .nth(1)
        .unwrap()
        .split('s')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.3..0.55).contains(&lag), "{line}");
    assert!(
        stdout.contains("replication canaries ok 1, failed 0"),
        "{stdout}"
    );

    s3.replication.set_failing("src", true);
    let out = once(&cfg, "json").await;
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["replications"][0]["reason"], "status_failed");
    assert!(s3.keys("src").is_empty() && s3.keys("dst").is_empty());
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_region_is_asked_of_the_instance_metadata_service() {
    let s3 = EmbeddedS3::start(&["alpha"]).await.unwrap();
    // A stand-in for the instance metadata service on loopback that counts who calls it.
    let imds = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let imds_url = format!("http://{}", imds.local_addr().unwrap());
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = imds.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(s);
        }
    });
    let (dir, cfg) = write_config(&s3.endpoint, "127.0.0.1:0", "", &[("alpha", "alpha")]);
    let empty_profile = dir.path().join("aws-config");
    std::fs::write(&empty_profile, "").unwrap();
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["once", "--config", cfg.to_str().unwrap()]);
    with_embedded_creds(cmd.as_std_mut());
    // No region in the environment or the profile, and the metadata service reachable (here, the stand-in).
    cmd.env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_CONFIG_FILE", &empty_profile)
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds_url);
    let out = cmd.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "IMDS was called: {stderr}"
    );
    assert!(
        !stderr.contains("imds") && !stderr.contains("WARN"),
        "{stderr}"
    );
}

/// `once` with `cmd`'s environment on `cfg`: its exit code and everything it printed.
async fn run_once(mut cmd: tokio::process::Command, cfg: &Path) -> (Option<i32>, String) {
    cmd.args(["once", "--config", cfg.to_str().unwrap()]);
    let out = cmd.output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_without_an_answer_are_said_in_plain_words() {
    let s3 = EmbeddedS3::start(&["alpha"]).await.unwrap();
    let (dir, cfg) = write_config(&s3.endpoint, "127.0.0.1:0", "", &[("alpha", "alpha")]);

    // No credentials anywhere the chain looks: an empty profile, no keys, no token file, no
    // container endpoint, the instance metadata service disabled.
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let mut cmd = tokio::process::Command::new(BIN);
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "S3CANARY_CONFIG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let (code, text) = run_once(cmd, &cfg).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(
            "no AWS credentials found (environment, profile, web identity, ECS, instance metadata tried)"
        ),
        "{text}"
    );
    // Its own reason, not a connection failure.
    assert!(text.contains("credentials_unavailable"), "{text}");
    assert!(!text.contains("connection"), "{text}");
    // Nothing was sent, so nothing was left behind to delete.
    assert!(!text.contains("could not be deleted"), "{text}");
    assert!(
        s3.log.entries().is_empty(),
        "requests reached the store: {text}"
    );

    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("http://127.0.0.1:{port}");
    let (_dir2, cfg2) = write_config(&closed, "127.0.0.1:0", "", &[("alpha", "alpha")]);
    let mut cmd = tokio::process::Command::new(BIN);
    with_embedded_creds(cmd.as_std_mut());
    let (code, text) = run_once(cmd, &cfg2).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("connection refused by 127.0.0.1:{port}")),
        "{text}"
    );
    assert!(!text.contains("could not be deleted"), "{text}");
    // Never the SDK's debug form.
    for debug in [
        "DispatchFailure",
        "ConnectorError",
        "TokenError",
        "{ ",
        "source:",
    ] {
        assert!(!text.contains(debug), "{debug} in: {text}");
    }
}
