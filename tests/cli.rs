//! The built binary's commands that need no daemon: `check-config` and its exit codes, `--help`,
//! `iam-policy` and `plan`.

pub mod common;

use std::path::Path;
use std::process::Command;

use common::daemon::{BIN, s3canary};

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
    // `demo --help` names every fault profile there is (it once left out lost-events).
    let help = String::from_utf8_lossy(&s3canary(&["demo", "--help"]).stdout).to_string();
    for p in s3canary::embedded::FaultConfig::PROFILES {
        assert!(help.contains(p), "demo --help does not name {p}: {help}");
    }
    let out = s3canary(&["demo", "--faults", "teleport"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lost-events"));
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
            "s3:DeleteObjectVersion",
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

/// With the multipart probe on a target: aborting its own uploads under the prefix and listing
/// uploads of its bucket, nothing for the target without it.
#[test]
fn iam_policy_adds_multipart_actions_only_for_the_targets_that_run_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[[target]]\nname = \"a\"\nbucket = \"b-1\"\nregion = \"eu-west-1\"\n\
         probes = [\"put\", \"multipart\"]\n[target.multipart]\nparts = 2\npart_size = \"5MiB\"\n\
         [[target]]\nname = \"b\"\nbucket = \"b-2\"\nregion = \"eu-west-1\"\n",
    )
    .unwrap();
    let out = s3canary(&["iam-policy", "--config", cfg.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let st = v["Statement"].as_array().unwrap();
    let by_sid = |sid: &str| st.iter().find(|s| s["Sid"] == sid).cloned();
    let abort = by_sid("S3canaryMultipartAbort").expect("an abort statement");
    assert_eq!(abort["Action"], "s3:AbortMultipartUpload");
    assert_eq!(
        abort["Resource"],
        serde_json::json!(["arn:aws:s3:::b-1/s3canary/*"])
    );
    let list = by_sid("S3canaryMultipartList").expect("a list statement");
    assert_eq!(list["Action"], "s3:ListBucketMultipartUploads");
    assert_eq!(list["Resource"], serde_json::json!(["arn:aws:s3:::b-1"]));
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
    assert!(!text.contains("custom endpoint"), "{text}");

    // A store of its own: its prices are said not to be AWS's, and its lifecycle command goes
    // to its endpoint, under its own heading rather than the CloudWatch line.
    std::fs::write(
        &cfg,
        "[[target]]\nname = \"minio\"\nbucket = \"b-2\"\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:9000\"\npath_style = true\n",
    )
    .unwrap();
    let out = s3canary(&["plan", "--config", cfg.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Targets with a custom endpoint (minio): their USD are AWS's prices"),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    let heading = lines
        .iter()
        .position(|l| l.starts_with("Safety net: "))
        .unwrap();
    let cloudwatch = lines
        .iter()
        .position(|l| l.starts_with("CloudWatch mirror"))
        .unwrap();
    assert!(cloudwatch < heading, "{text}");
    assert!(
        lines[heading + 1].contains(
            "put-bucket-lifecycle-configuration --endpoint-url http://127.0.0.1:9000 --bucket b-2"
        ),
        "{text}"
    );
}

#[test]
fn credentials_in_an_endpoint_are_refused_and_never_repeated() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/invalid-names.toml");
    let out = s3canary(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("must not carry credentials"), "{all}");
    for secret in ["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI"] {
        assert!(!all.contains(secret), "{secret} repeated: {all}");
    }
}
