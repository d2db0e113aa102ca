//! The built binary: `check-config`, `once`, `run` and their exit codes, against the embedded
//! S3 server on loopback.

pub mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::daemon::{
    BIN, daemon_config, free_port, s3canary, signal, start_daemon, with_embedded_creds,
    write_config,
};
use common::{http, http_get, sample, wait_until};
use s3canary::embedded::{EmbeddedS3, FaultConfig, Op};

/// Problem lines of a bad-config report.
fn problems(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("  - ").map(str::to_string))
        .collect()
}

#[test]
fn every_invalid_config_in_testdata_fails_with_its_exact_messages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !(name.starts_with("invalid-") && name.ends_with(".toml")) {
            continue;
        }
        let expected: Vec<String> = std::fs::read_to_string(path.with_extension("err"))
            .unwrap_or_else(|_| panic!("{name} has no .err file"))
            .lines()
            .map(str::to_string)
            .collect();
        let out = s3canary(&["check-config", "--config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert_eq!(problems(&out.stderr), expected, "{name}");
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} invalid configs found");
}

#[test]
fn shipped_configs_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["config/s3canary.example.toml", "config/demo.toml"] {
        let out = s3canary(&["check-config", "--config", root.join(f).to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn config_path_comes_from_the_environment_and_a_missing_file_is_exit_2() {
    let out = Command::new(BIN)
        .args(["check-config"])
        .env("S3CANARY_CONFIG", "/nonexistent/s3canary.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot read config /nonexistent/s3canary.toml")
    );
    for cmd in ["run", "once"] {
        let out = s3canary(&[cmd, "--config", "/nonexistent/x.toml"]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
    }
}

#[test]
fn every_command_has_help() {
    for cmd in [
        &["--help"][..],
        &["run", "--help"],
        &["demo", "--help"],
        &["check-config", "--help"],
        &["once", "--help"],
    ] {
        let out = s3canary(cmd);
        assert_eq!(out.status.code(), Some(0), "{cmd:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: s3canary"),
            "{cmd:?}"
        );
    }
}

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
        &s3,
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
async fn run_serves_metrics_reloads_and_exits_0_on_sigterm_with_canaries_deleted() {
    let s3 = EmbeddedS3::start(&["alpha", "beta"]).await.unwrap();
    let (addr, dir, cfg) = daemon_config(
        &s3,
        "interval = \"1s\"\ntimeout = \"900ms\"\norphan_ttl = \"1m\"",
        &[("alpha", "alpha")],
    );
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["run", "--config", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    with_embedded_creds(cmd.as_std_mut());
    let mut child = cmd.spawn().unwrap();

    assert!(
        wait_until(Duration::from_secs(20), || async {
            matches!(http_get(&addr, "/-/ready").await, Ok((200, _)))
        })
        .await,
        "never ready"
    );
    let (status, _) = http_get(&addr, "/-/healthy").await.unwrap();
    assert_eq!(status, 200);
    let ran = wait_until(Duration::from_secs(20), || async {
        let (_, text) = http_get(&addr, "/metrics").await.unwrap();
        sample(
            &text,
            "s3canary_probe_runs_total",
            &["target=\"alpha\"", "probe=\"conditional\""],
        )
        .unwrap_or(0.0)
            >= 2.0
    })
    .await;
    assert!(ran, "no cycles ran");
    let (_, text) = http_get(&addr, "/metrics").await.unwrap();
    assert!(text.contains("s3canary_build_info{version=\""));
    assert_eq!(
        sample(&text, "s3canary_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert!(text.contains("process_resident_memory_bytes"));

    // A broken file is refused and the running config kept.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{good}\nbogus = 1\n")).unwrap();
    let (status, body) = http(&addr, "POST", "/-/reload").await.unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("bogus"), "{body}");
    let (_, text) = http_get(&addr, "/metrics").await.unwrap();
    assert_eq!(
        sample(&text, "s3canary_config_last_reload_successful", &[]),
        Some(0.0)
    );

    // A valid file swaps alpha for beta without a restart, and alpha's series go away.
    let swapped = good.replace(
        "name = \"alpha\"\nbucket = \"alpha\"",
        "name = \"beta\"\nbucket = \"beta\"",
    );
    std::fs::write(&cfg, swapped).unwrap();
    let (status, _) = http(&addr, "POST", "/-/reload").await.unwrap();
    assert_eq!(status, 200);
    let beta_runs = wait_until(Duration::from_secs(20), || async {
        let (_, text) = http_get(&addr, "/metrics").await.unwrap();
        sample(
            &text,
            "s3canary_probe_runs_total",
            &["target=\"beta\"", "probe=\"put\""],
        )
        .unwrap_or(0.0)
            >= 1.0
    })
    .await;
    assert!(beta_runs);
    let (_, text) = http_get(&addr, "/metrics").await.unwrap();
    assert!(
        !text.contains("target=\"alpha\""),
        "stale series left:\n{text}"
    );
    assert_eq!(
        sample(&text, "s3canary_config_last_reload_successful", &[]),
        Some(1.0)
    );

    // SIGTERM while cycles run (every request is slowed, so one is in flight): exit 0 and
    // nothing left in the buckets.
    s3.faults.set_all(FaultConfig {
        latency: Duration::from_millis(60),
        ..Default::default()
    });
    let busy = wait_until(Duration::from_secs(10), || async {
        s3.log
            .entries()
            .last()
            .is_some_and(|a| a.op == Op::PutObject)
    })
    .await;
    assert!(busy);
    signal(&child, "TERM");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits within the grace period")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(s3.keys("alpha"), Vec::<String>::new());
    assert_eq!(s3.keys("beta"), Vec::<String>::new());
    drop(dir);
}

#[test]
fn iam_policy_is_the_minimal_set_scoped_to_the_prefix() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = s3canary(&[
        "iam-policy",
        "--config",
        root.join("config/s3canary.example.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the policy is JSON");
    assert_eq!(v["Version"], "2012-10-17");
    let st = v["Statement"].as_array().unwrap();
    let actions: Vec<String> = st
        .iter()
        .flat_map(|s| match &s["Action"] {
            serde_json::Value::String(a) => vec![a.clone()],
            serde_json::Value::Array(a) => {
                a.iter().map(|x| x.as_str().unwrap().to_string()).collect()
            }
            _ => vec![],
        })
        .collect();
    // The example config: two buckets, no KMS, no role, CloudWatch off.
    assert_eq!(
        actions,
        vec![
            "s3:DeleteObject",
            "s3:GetObject",
            "s3:PutObject",
            "s3:ListBucket",
            "s3:ListBucket"
        ]
    );
    assert_eq!(
        st[0]["Resource"],
        serde_json::json!([
            "arn:aws:s3:::my-app-data-dr/s3canary/*",
            "arn:aws:s3:::my-app-data/s3canary/*"
        ])
    );
    assert_eq!(st[1]["Resource"], "arn:aws:s3:::my-app-data");
    assert_eq!(
        st[1]["Condition"]["StringLike"]["s3:prefix"],
        serde_json::json!(["s3canary/*"])
    );
    assert!(st.iter().all(|s| s["Effect"] == "Allow"));

    // With the mirror on, KMS and a role: exactly the extra actions, each scoped.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[[target]]\nname = \"a\"\nbucket = \"b-1\"\nregion = \"eu-west-1\"\nsse = \"aws:kms\"\n\
         kms_key_id = \"arn:aws:kms:eu-west-1:111122223333:key/k1\"\nrole_arn = \"arn:aws:iam::111122223333:role/canary\"\n\
         [cloudwatch]\nenabled = true\nnamespace = \"S3/Consistency\"\n",
    )
    .unwrap();
    let out = s3canary(&["iam-policy", "--config", cfg.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let st = v["Statement"].as_array().unwrap();
    let sids: Vec<&str> = st.iter().map(|s| s["Sid"].as_str().unwrap()).collect();
    assert_eq!(
        sids,
        vec![
            "S3canaryObjects",
            "S3canaryListb1",
            "S3canaryKms",
            "S3canaryAssumeRole",
            "S3canaryCloudWatch"
        ]
    );
    assert_eq!(
        st[2]["Action"],
        serde_json::json!(["kms:Decrypt", "kms:GenerateDataKey"])
    );
    assert_eq!(
        st[2]["Resource"],
        serde_json::json!(["arn:aws:kms:eu-west-1:111122223333:key/k1"])
    );
    assert_eq!(
        st[4]["Condition"]["StringEquals"]["cloudwatch:namespace"],
        "S3/Consistency"
    );
}

#[test]
fn plan_prints_requests_and_cost_per_target() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[[target]]\nname = \"a\"\nbucket = \"b-1\"\nregion = \"us-east-1\"\n",
    )
    .unwrap();
    let out = s3canary(&["plan", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    // 86,400 cycles of 6 PUT, 2 LIST (+ a sweep LIST every 30 min), 2 GET, 1 HEAD, 2 DELETE.
    let line = text.lines().find(|l| l.starts_with("target a ")).unwrap();
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cols[2..],
        ["518,400", "174,240", "172,800", "86,400", "172,800", "3.57"]
    );
    assert!(
        text.contains("put-bucket-lifecycle-configuration --bucket b-1"),
        "{text}"
    );
    let out = s3canary(&[
        "plan",
        "--config",
        cfg.to_str().unwrap(),
        "--put-price",
        "0.01",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("target a ")).unwrap();
    assert!(line.ends_with("7.03"), "{line}");
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
    let (dir, cfg) = write_config(&s3, "127.0.0.1:0", "", &[("src", "src"), ("dst", "dst")]);
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
async fn canaries_left_by_sigkill_are_swept_on_the_next_start_and_nothing_else_is() {
    let s3 = EmbeddedS3::start(&["alpha"]).await.unwrap();
    let (addr, dir, cfg) = daemon_config(
        &s3,
        "interval = \"1s\"\ntimeout = \"500ms\"\norphan_ttl = \"1s\"",
        &[("alpha", "alpha")],
    );
    // Foreign objects, also under the prefix: never touched.
    let client = common::factory()
        .bucket(
            &common::target("alpha", "alpha", &s3.endpoint, ""),
            std::sync::Arc::new(s3canary::sinks::metrics::Metrics::new(&Default::default())),
        )
        .await
        .client;
    let foreign = [
        "s3canary/alpha/keep.txt",
        "s3canary/alpha/0000000000001-notacanary",
        "app/data.json",
    ];
    for k in foreign {
        client
            .put_object()
            .bucket("alpha")
            .key(k)
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    // Deletes hang, so canaries pile up; then the daemon is killed without a chance to clean.
    s3.faults.set_all(FaultConfig {
        hang: vec![Op::DeleteObject],
        ..Default::default()
    });
    let mut child = start_daemon(&cfg, &addr, Stdio::null()).await;
    let piled = wait_until(Duration::from_secs(20), || async {
        s3.keys("alpha").len() >= foreign.len() + 2
    })
    .await;
    assert!(piled);
    child.kill().await.unwrap();
    let orphans: Vec<String> = s3
        .keys("alpha")
        .into_iter()
        .filter(|k| !foreign.contains(&k.as_str()))
        .collect();
    assert!(orphans.len() >= 2, "{orphans:?}");

    s3.faults.clear();
    let mut child = start_daemon(&cfg, &addr, Stdio::null()).await;
    let swept = wait_until(Duration::from_secs(20), || async {
        let keys = s3.keys("alpha");
        orphans.iter().all(|o| !keys.contains(o))
    })
    .await;
    assert!(swept, "orphans not swept: {:?}", s3.keys("alpha"));
    // The sweep counts its deletions when it finishes: wait for the count, too.
    let counted = wait_until(Duration::from_secs(10), || async {
        let (_, text) = http_get(&addr, "/metrics").await.unwrap();
        sample(
            &text,
            "s3canary_orphans_deleted_total",
            &["target=\"alpha\""],
        )
        .unwrap_or(0.0)
            >= orphans.len() as f64
    })
    .await;
    assert!(
        counted,
        "s3canary_orphans_deleted_total does not count the swept canaries"
    );
    signal(&child, "TERM");
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
    let mut left = s3.keys("alpha");
    left.sort();
    let mut want: Vec<String> = foreign.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(left, want);
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_file_keeps_the_running_config() {
    let s3 = EmbeddedS3::start(&["alpha"]).await.unwrap();
    let (addr, dir, cfg) = daemon_config(
        &s3,
        "interval = \"1s\"\ntimeout = \"500ms\"",
        &[("alpha", "alpha")],
    );
    let mut child = start_daemon(&cfg, &addr, Stdio::null()).await;
    std::fs::write(&cfg, "[defaults]\ninterval = \"soon\"\n").unwrap();
    signal(&child, "HUP");
    let refused = wait_until(Duration::from_secs(10), || async {
        let (_, text) = http_get(&addr, "/metrics").await.unwrap();
        sample(&text, "s3canary_config_last_reload_successful", &[]) == Some(0.0)
    })
    .await;
    assert!(refused);
    let (_, status) = http_get(&addr, "/api/v1/status").await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(
        v["config"]["last_reload_error"]
            .as_str()
            .unwrap()
            .contains("defaults.interval")
    );
    assert_eq!(
        v["targets"][0]["name"], "alpha",
        "the running config was kept"
    );
    signal(&child, "TERM");
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_logs_metrics_status_or_errors() {
    let s3 = EmbeddedS3::start(&["alpha"]).await.unwrap();
    let (addr, dir, cfg) = daemon_config(
        &s3,
        "interval = \"1s\"\ntimeout = \"500ms\"",
        &[("alpha", "alpha")],
    );
    let secret = s3canary::embedded::SECRET_KEY;
    let token = "SESSIONTOKEN-do-not-log-0123456789";
    let wrong = "WRONGSECRET-do-not-log-9876543210";
    let log_path = dir.path().join("daemon.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args([
        "--log-level",
        "trace",
        "run",
        "--config",
        cfg.to_str().unwrap(),
    ])
    .stdout(Stdio::null())
    .stderr(log)
    .kill_on_drop(true);
    with_embedded_creds(cmd.as_std_mut());
    let mut child = cmd.spawn().unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || async {
            matches!(http_get(&addr, "/-/ready").await, Ok((200, _)))
        })
        .await
    );
    assert!(
        wait_until(Duration::from_secs(20), || async {
            let (_, text) = http_get(&addr, "/metrics").await.unwrap();
            sample(&text, "s3canary_probe_runs_total", &["probe=\"put\""]).unwrap_or(0.0) >= 2.0
        })
        .await
    );
    let (_, metrics) = http_get(&addr, "/metrics").await.unwrap();
    let (_, status) = http_get(&addr, "/api/v1/status").await.unwrap();
    let (_, page) = http_get(&addr, "/").await.unwrap();
    signal(&child, "TERM");
    assert_eq!(child.wait().await.unwrap().code(), Some(0));

    let mut once_cmd = tokio::process::Command::new(BIN);
    once_cmd.args([
        "--log-level",
        "trace",
        "once",
        "--config",
        cfg.to_str().unwrap(),
        "--format",
        "json",
    ]);
    with_embedded_creds(once_cmd.as_std_mut());
    // A wrong secret (and a session token) covers the error path: signatures do not match.
    once_cmd
        .env("AWS_SESSION_TOKEN", token)
        .env("AWS_SECRET_ACCESS_KEY", wrong);
    let once_out = once_cmd.output().await.unwrap();
    assert_eq!(once_out.status.code(), Some(1), "a wrong secret must fail");
    assert!(String::from_utf8_lossy(&once_out.stdout).contains("access_denied"));

    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.len() > 10_000, "trace logging produced little output");
    for (what, text) in [
        ("daemon log", logs.as_str()),
        ("metrics", metrics.as_str()),
        ("status JSON", status.as_str()),
        ("status page", page.as_str()),
        ("once stdout", &String::from_utf8_lossy(&once_out.stdout)),
        ("once stderr", &String::from_utf8_lossy(&once_out.stderr)),
    ] {
        assert!(
            !text.contains(secret),
            "the secret key appears in the {what}"
        );
        assert!(
            !text.contains(token),
            "the session token appears in the {what}"
        );
        assert!(
            !text.contains(wrong),
            "the wrong secret appears in the {what}"
        );
    }
}

/// `demo` needs no AWS account and no network: it probes its embedded server and logs no
/// warning. A region or credential lookup against the instance metadata service (which the
/// standard chain tries when nothing else names one) would show up as a warning here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_probes_its_embedded_server_without_any_aws_lookup() {
    let addr = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("demo.log");
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["demo", "--listen", &addr])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .kill_on_drop(true);
    for v in [
        "AWS_EC2_METADATA_DISABLED",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        cmd.env_remove(v);
    }
    let mut child = cmd.spawn().unwrap();
    let probed = wait_until(Duration::from_secs(30), || async {
        let Ok((200, text)) = http_get(&addr, "/metrics").await else {
            return false;
        };
        ["source", "replica"].iter().all(|t| {
            let t = format!("target=\"{t}\"");
            sample(&text, "s3canary_probe_success", &[&t, "probe=\"get\""]) == Some(1.0)
        })
    })
    .await;
    child.kill().await.unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(probed, "demo never probed both buckets:\n{log}");
    assert!(!log.to_lowercase().contains("imds"), "{log}");
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
}
