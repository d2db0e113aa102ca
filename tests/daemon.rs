//! `s3canary run` and `demo` as processes: metrics, reload by SIGHUP and HTTP, exit 0 on SIGTERM
//! with canaries deleted, orphans of a SIGKILL swept on the next start, no secret anywhere.

pub mod common;

use std::process::Stdio;
use std::time::Duration;

use common::daemon::{BIN, daemon_config, free_port, signal, start_daemon, with_embedded_creds};
use common::{http, http_get, sample, wait_until};
use s3canary::embedded::{EmbeddedS3, FaultConfig, Op};

/// An embedded server with bucket "alpha" and a config of one target on it, with `defaults`.
async fn alpha(defaults: &str) -> (EmbeddedS3, String, tempfile::TempDir, std::path::PathBuf) {
    let s3 = EmbeddedS3::start(&["alpha"]).await.unwrap();
    let (addr, dir, cfg) = daemon_config(&s3.endpoint, defaults, &[("alpha", "alpha")]);
    (s3, addr, dir, cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_metrics_reloads_and_exits_0_on_sigterm_with_canaries_deleted() {
    let s3 = EmbeddedS3::start(&["alpha", "beta"]).await.unwrap();
    let (addr, dir, cfg) = daemon_config(
        &s3.endpoint,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_left_by_sigkill_are_swept_on_the_next_start_and_nothing_else_is() {
    let (s3, addr, dir, cfg) =
        alpha("interval = \"1s\"\ntimeout = \"500ms\"\norphan_ttl = \"1s\"").await;
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
    let (_s3, addr, dir, cfg) = alpha("interval = \"1s\"\ntimeout = \"500ms\"").await;
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
    let (_s3, addr, dir, cfg) = alpha("interval = \"1s\"\ntimeout = \"500ms\"").await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_from_a_fifo_neither_blocks_nor_delays_sigterm() {
    let (_s3, addr, dir, cfg) = alpha("interval = \"1s\"\ntimeout = \"500ms\"").await;
    let mut child = start_daemon(&cfg, &addr, Stdio::null()).await;
    // The config path becomes a FIFO nobody writes to: opening it for reading would block.
    std::fs::remove_file(&cfg).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&cfg)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo failed");
    signal(&child, "HUP");
    let (status, body) = http(&addr, "POST", "/-/reload").await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not a regular file"), "{body}");
    let (status, _) = http_get(&addr, "/metrics").await.unwrap();
    assert_eq!(status, 200, "the daemon stopped answering");
    signal(&child, "TERM");
    let exited = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    assert_eq!(
        exited.expect("SIGTERM was held up").unwrap().code(),
        Some(0)
    );
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_target_is_confirmed_within_seconds_and_its_streak_exists_from_the_first_scrape()
{
    // A name whose first cycle comes 2-5 s after start, so the first scrape precedes it.
    let interval = Duration::from_secs(30);
    let name = (0..)
        .map(|i| format!("denied-{i}"))
        .find(|n| {
            let o =
                s3canary::scheduler::Schedule::spread(n, interval, Duration::from_secs(5)).offset;
            (Duration::from_secs(2)..Duration::from_secs(5)).contains(&o)
        })
        .unwrap();
    let s3 = EmbeddedS3::start(&["alpha"]).await.unwrap();
    s3.faults
        .set_all(FaultConfig::error("AccessDenied", 1.0, vec![]));
    let (addr, dir, cfg) = daemon_config(
        &s3.endpoint,
        "interval = \"30s\"\ntimeout = \"5s\"\nconfirm_interval = \"1s\"",
        &[(&name, "alpha")],
    );
    let started = std::time::Instant::now();
    let _child = start_daemon(&cfg, &addr, Stdio::null()).await;
    let put = ["probe=\"put\"", "target=\"denied-"];
    let (_, first) = http_get(&addr, "/metrics").await.unwrap();
    let runs = sample(&first, "s3canary_probe_runs_total", &put);
    if runs == Some(0.0) {
        // Scraped before the first cycle: what the fast alerts read is already there, at 0.
        assert_eq!(
            sample(&first, "s3canary_probe_consecutive_failures", &put),
            Some(0.0)
        );
        let denied = ["probe=\"put\"", "reason=\"access_denied\""];
        assert_eq!(
            sample(&first, "s3canary_probe_failures_total", &denied),
            Some(0.0)
        );
    }
    // Denied every time: the streak grows at the confirm interval, not the 30 s interval.
    let confirmed = wait_until(Duration::from_secs(25), || async {
        let (_, text) = http_get(&addr, "/metrics").await.unwrap();
        sample(&text, "s3canary_probe_consecutive_failures", &put).unwrap_or(0.0) >= 3.0
    })
    .await;
    assert!(confirmed, "three failures in a row were not seen");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "three failures took {:?}: not confirmed faster than the interval",
        started.elapsed()
    );
    // Healed: the next cycle passes and the streak is 0 again.
    s3.faults.clear();
    let healed = wait_until(Duration::from_secs(15), || async {
        let (_, text) = http_get(&addr, "/metrics").await.unwrap();
        sample(&text, "s3canary_probe_consecutive_failures", &put) == Some(0.0)
            && sample(&text, "s3canary_probe_success", &put) == Some(1.0)
    })
    .await;
    assert!(healed, "the streak did not end after the fault was removed");
    drop(dir);
}

/// The demo is quiet under faults: each change of fault profile is one log line, not one line
/// per injected error, and `GET /-/demo/faults` shows the profiles in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_logs_each_fault_profile_change_once_and_shows_the_profiles_in_force() {
    let addr = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("demo.log");
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["demo", "--listen", &addr, "--faults", "outage"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .kill_on_drop(true)
        .env_remove("RUST_LOG");
    let mut child = cmd.spawn().unwrap();
    let failures = || async {
        let Ok((200, text)) = http_get(&addr, "/metrics").await else {
            return 0.0;
        };
        common::total(&text, "s3canary_probe_failures_total", &["probe=\"put\""])
    };
    // Several failed puts, each of them answered by injected 503s (retries included).
    let failed = wait_until(Duration::from_secs(30), || async {
        failures().await >= 4.0
    })
    .await;
    let (status, shown) = http_get(&addr, "/-/demo/faults").await.unwrap();
    assert_eq!(status, 200, "{shown}");
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v["all"], "outage", "{v}");
    assert!(v["known"].as_array().is_some_and(|k| k.len() >= 10), "{v}");
    let (status, _) = http(&addr, "POST", "/-/demo/faults/stale?bucket=replica")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (_, shown) = http_get(&addr, "/-/demo/faults").await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v["buckets"]["replica"]["profile"], "stale", "{v}");
    assert_eq!(v["all"], "outage", "{v}");
    child.kill().await.unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(failed, "the outage never failed a put:\n{log}");
    let changes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("fault profile"))
        .collect();
    assert_eq!(changes.len(), 2, "one line per change:\n{log}");
    assert!(
        changes[0].contains("outage") && changes[1].contains("stale"),
        "{log}"
    );
    // No line per injected error from the embedded server, while the daemon's own stay.
    assert!(!log.contains("s3s"), "{log}");
    assert!(log.contains("probe failed"), "{log}");
}
