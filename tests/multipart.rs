//! The multipart probe and its upload sweep against the embedded server: an upload passes and
//! leaves nothing behind; each way a store breaks multipart uploads (a 200 with an `<Error>`,
//! a lost part, KMS) fails with its own reason and the upload is aborted; shutdown aborts an
//! upload in flight; the sweep aborts only our old uploads.

pub mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{rig, sample, wait_until};
use s3canary::embedded::{FaultConfig, Op};
use s3canary::multipart::{Monitor, sweep};
use s3canary::report::{Outcome, ProbeResult, Reason, Sink};
use tokio_util::sync::CancellationToken;

const MULTIPART: &str = r#"probes = ["put", "multipart"]
interval = "30s"
[target.multipart]
parts = 3
part_size = "5MiB"
interval = "30s""#;

async fn upload(r: &common::Rig) -> ProbeResult {
    let m = Monitor::new(&r.target).expect("the target runs multipart");
    let result = m.run(&r.bucket, &CancellationToken::new()).await;
    r.metrics.result(&r.target.labels(), "", &result);
    result
}

fn failure(r: &ProbeResult) -> s3canary::report::Failure {
    match &r.outcome {
        Some(Outcome::Failure(f)) => f.clone(),
        other => panic!("the upload did not fail: {other:?}"),
    }
}

/// Runs one upload of `r` and cancels it (shutdown) once the server has seen `op`; the result.
async fn cancelled_at(r: &common::Rig, op: Op) -> ProbeResult {
    let m = Monitor::new(&r.target).unwrap();
    let token = CancellationToken::new();
    let run = m.run(&r.bucket, &token);
    let cancel = async {
        let seen = wait_until(Duration::from_secs(10), || async {
            r.s3.log.count(op) >= 1
        })
        .await;
        assert!(seen, "no {op:?} reached the server");
        token.cancel();
    };
    let (result, ()) = tokio::join!(run, cancel);
    result
}

/// A key time two hours ago, in the canary format's milliseconds: past a 1h orphan_ttl.
fn two_hours_ago_ms() -> u128 {
    SystemTime::now()
        .checked_sub(Duration::from_secs(2 * 3600))
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

async fn open_uploads(r: &common::Rig) -> usize {
    let prefix = r.target.canary_prefix();
    r.bucket
        .list_uploads(&prefix, None)
        .await
        .unwrap()
        .uploads
        .len()
}

#[tokio::test]
async fn an_upload_passes_reads_its_boundaries_and_leaves_nothing() {
    let r = rig(MULTIPART).await;
    let result = upload(&r).await;
    assert!(
        matches!(result.outcome, Some(Outcome::Success)),
        "{result:?}"
    );
    assert!(r.s3.keys("canary").is_empty(), "{:?}", r.s3.keys("canary"));
    assert_eq!(open_uploads(&r).await, 0);
    assert_eq!(r.s3.log.count(Op::UploadPart), 3);
    // Two boundaries, one ranged read each; no abort of a completed upload.
    assert_eq!(r.s3.log.count(Op::GetObject), 2);
    assert_eq!(r.s3.log.count(Op::AbortMultipartUpload), 0);
    // The upload's own operations are not timed in the request histogram (the series budget);
    // its ranged reads and delete are GetObject and DeleteObject.
    let text = r.metrics.render();
    for op in s3canary::sinks::metrics::UNTIMED {
        let o = format!("operation=\"{op}\"");
        let n = sample(&text, "s3canary_s3_request_duration_seconds_count", &[&o]);
        assert_eq!(n, None, "{op}");
    }
    let runs = sample(&text, "s3canary_probe_runs_total", &["probe=\"multipart\""]);
    assert_eq!(runs, Some(1.0), "{text}");
    common::assert_stayed_in_prefix(&r);
}

/// CompleteMultipartUpload answering 200 OK with an `<Error>` body fails with the error's code
/// and says so; the upload is aborted and no object is left.
#[tokio::test]
async fn a_200_with_an_error_body_is_a_failure_and_the_upload_is_aborted() {
    let r = rig(MULTIPART).await;
    r.s3.faults
        .set_all(FaultConfig::profile("complete-error").unwrap());
    let f = failure(&upload(&r).await);
    assert_eq!(f.code.as_deref(), Some("InternalError"), "{f:?}");
    assert_eq!(f.reason, Reason::ServerError);
    assert_eq!(f.operation, Some("CompleteMultipartUpload"));
    assert!(f.message.contains("200 OK"), "{}", f.message);
    let text = r.metrics.render();
    let errors = sample(
        &text,
        "s3canary_s3_request_errors_total",
        &[
            "operation=\"CompleteMultipartUpload\"",
            "code=\"InternalError\"",
        ],
    );
    // Counted per attempt (the SDK retries an InternalError), under the operation's name.
    assert!(errors.is_some_and(|n| n >= 1.0), "{text}");
    r.s3.faults.clear();
    assert_eq!(open_uploads(&r).await, 0);
    assert!(r.s3.log.count(Op::AbortMultipartUpload) >= 1);
    assert!(r.s3.keys("canary").is_empty());
}

/// A store that completes without a part is found by the size and bytes read back.
#[tokio::test]
async fn a_lost_part_is_a_content_mismatch() {
    let r = rig(MULTIPART).await;
    r.s3.faults
        .set_all(FaultConfig::profile("lost-part").unwrap());
    let f = failure(&upload(&r).await);
    assert_eq!(f.reason, Reason::ContentMismatch, "{f:?}");
    assert!(f.message.contains("parts of"), "{}", f.message);
    assert!(r.s3.keys("canary").is_empty(), "{:?}", r.s3.keys("canary"));
}

/// KMS throttling the parts of an SSE-KMS upload is kms_throttled, and the upload is aborted.
#[tokio::test]
async fn kms_throttling_an_upload_is_kms_throttled() {
    let r = rig(&format!("sse = \"aws:kms\"\n{MULTIPART}")).await;
    r.s3.faults.set_all(FaultConfig::answer(
        "SlowDown",
        503,
        "Please reduce your request rate for operations involving AWS KMS.",
        vec![Op::UploadPart],
    ));
    let f = failure(&upload(&r).await);
    assert_eq!(f.reason, Reason::KmsThrottled, "{f:?}");
    assert_eq!(f.operation, Some("UploadPart"));
    r.s3.faults.clear();
    assert_eq!(open_uploads(&r).await, 0);
}

/// Shutdown during a part that never answers: the run stops, is not counted, and the upload
/// is aborted.
#[tokio::test]
async fn shutdown_aborts_an_upload_in_flight() {
    let r = rig(MULTIPART).await;
    r.s3.faults.set_all(FaultConfig {
        hang: vec![Op::UploadPart],
        ..Default::default()
    });
    let result = cancelled_at(&r, Op::UploadPart).await;
    assert!(result.outcome.is_none(), "{result:?}");
    assert_eq!(r.s3.log.count(Op::AbortMultipartUpload), 1);
    r.s3.faults.clear();
    assert_eq!(open_uploads(&r).await, 0);
}

/// The sweep aborts our uploads whose key time is past orphan_ttl, keeps our young ones and
/// never touches an upload whose key is not a canary, under the prefix or not.
#[tokio::test]
async fn the_sweep_aborts_only_our_old_uploads() {
    let r = rig(&format!("orphan_ttl = \"1h\"\n{MULTIPART}")).await;
    let prefix = r.target.canary_prefix();
    let old_ms = two_hours_ago_ms();
    let old = format!("{prefix}{old_ms:013}-00000000000000aa");
    let young = s3canary::canary::new_key(&prefix);
    let foreign = format!("{prefix}{old_ms:013}-not-a-canary");
    // Outside the prefix: the listing under the prefix keeps it out; it must survive too.
    let elsewhere = "other/1700000000000-00000000000000bb".to_string();
    for k in [&old, &young, &foreign, &elsewhere] {
        r.bucket.create_multipart(k).await.unwrap();
    }
    let s = sweep::sweep(&r.bucket, &r.target, SystemTime::now())
        .await
        .unwrap();
    assert_eq!((s.open, s.aborted, s.unsupported.clone()), (1, 1, None));
    let left: Vec<String> = r
        .bucket
        .list_uploads("", None)
        .await
        .unwrap()
        .uploads
        .into_iter()
        .map(|u| u.key)
        .collect();
    assert_eq!(left.len(), 3);
    assert!(!left.contains(&old), "{left:?}");
    r.metrics.uploads_swept(&r.target.labels(), &s);
    let text = r.metrics.render();
    assert_eq!(
        sample(&text, "s3canary_multipart_uploads_open", &[]),
        Some(1.0)
    );
}

/// A store without ListMultipartUploads (s3rver answers 501) makes a sweep that says so, not a
/// failure.
#[tokio::test]
async fn a_store_without_upload_listing_is_reported_not_failed() {
    let r = rig(MULTIPART).await;
    r.s3.faults.set_all(FaultConfig::answer(
        "NotImplemented",
        501,
        "A header you provided implies functionality that is not implemented",
        vec![Op::ListMultipartUploads],
    ));
    let s = sweep::sweep(&r.bucket, &r.target, SystemTime::now())
        .await
        .unwrap();
    assert_eq!(s.open, 0);
    let why = s.unsupported.expect("the sweep says it could not look");
    assert!(why.contains("not implemented"), "{why}");
}

/// The series budget with every step, the checksum probe and the multipart probe on, after a
/// cycle, an upload that had to be aborted and a sweep (every operation seen): at most 160.
#[tokio::test]
async fn multipart_and_checksum_stay_within_the_series_budget() {
    let r = rig(
        r#"probes = ["put", "get", "list", "overwrite", "delete", "conditional", "checksum", "multipart"]
[target.multipart]
parts = 2
part_size = "5MiB"
interval = "30s""#,
    )
    .await;
    let report = common::cycle(&r).await;
    assert!(report.cleaned_up, "{:?}", report.results);
    assert!(matches!(upload(&r).await.outcome, Some(Outcome::Success)));
    r.s3.faults
        .set_all(FaultConfig::profile("complete-error").unwrap());
    failure(&upload(&r).await);
    r.s3.faults.clear();
    let s = sweep::sweep(&r.bucket, &r.target, SystemTime::now())
        .await
        .unwrap();
    r.metrics.uploads_swept(&r.target.labels(), &s);
    let text = r.metrics.render();
    let mine: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("target=\"t1\""))
        .collect();
    for p in ["checksum", "multipart"] {
        let probe = format!("probe=\"{p}\"");
        assert!(
            sample(&text, "s3canary_probe_runs_total", &[&probe]).is_some_and(|n| n >= 1.0),
            "{p} did not run"
        );
    }
    let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
    for l in &mine {
        *by.entry(l.split('{').next().unwrap()).or_default() += 1;
    }
    assert!(
        mine.len() <= 160,
        "{} series for one target: {by:#?}",
        mine.len()
    );
}

/// The daemon runs the probe on its own interval and sweeps at start; a store without
/// ListMultipartUploads is said on the status page and in the JSON, not failed; shutdown leaves
/// no upload and no canary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_uploads_sweeps_and_shows_a_store_that_cannot_list_uploads() {
    let s3 = s3canary::embedded::EmbeddedS3::start(&["canary"])
        .await
        .unwrap();
    s3.faults.set_all(FaultConfig::answer(
        "NotImplemented",
        501,
        "A header you provided implies functionality that is not implemented",
        vec![Op::ListMultipartUploads],
    ));
    let text = format!(
        "[defaults]\ninterval = \"3s\"\ntimeout = \"2500ms\"\n\
         [[target]]\nname = \"t1\"\nbucket = \"canary\"\nregion = \"us-east-1\"\nendpoint = \"{e}\"\npath_style = true\n\
         probes = [\"put\", \"multipart\"]\n[target.multipart]\nparts = 2\npart_size = \"5MiB\"\ninterval = \"3s\"\n",
        e = s3.endpoint
    );
    let cfg = s3canary::config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let daemon = s3canary::app::Daemon::new(cfg, None, common::factory());
    daemon.start().await;
    let snap = || serde_json::to_value(s3canary::http::status::snapshot(&daemon)).unwrap();
    let seen = wait_until(Duration::from_secs(30), || async {
        let s = snap();
        let t = &s["targets"][0];
        let runs = t["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["probe"] == "multipart")
            .and_then(|p| p["runs_total"].as_u64());
        t["multipart_uploads"].is_object() && runs >= Some(1)
    });
    assert!(seen.await, "no upload and sweep: {}", snap());
    let s = snap();
    let t = &s["targets"][0];
    let why = t["multipart_uploads"]["unsupported"].as_str().unwrap();
    assert!(why.contains("not implemented"), "{why}");
    let multipart = t["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["probe"] == "multipart")
        .unwrap();
    assert_eq!(multipart["last_result"], "success", "{t}");
    let html = s3canary::http::page::render(&s3canary::http::status::snapshot(&daemon));
    assert!(
        html.contains("Multipart uploads at the last sweep (") && html.contains("could not look: "),
        "{html}"
    );
    assert!(daemon.shutdown(Duration::from_secs(15)).await);
    s3.faults.clear();
    let bucket = common::factory()
        .bucket(
            &common::target("t1", "canary", &s3.endpoint, ""),
            std::sync::Arc::new(s3canary::sinks::metrics::Metrics::new(&Default::default())),
        )
        .await;
    let open = bucket.list_uploads("", None).await.unwrap().uploads;
    assert!(open.is_empty(), "{open:?}");
    assert!(s3.keys("canary").is_empty(), "{:?}", s3.keys("canary"));
}

/// An abort the store refuses does not end the sweep: the upload is counted open and failed,
/// the reason kept, and the gauge S3MultipartUploadsLeaking reads goes up.
#[tokio::test]
async fn a_refused_abort_is_counted_open_and_the_sweep_goes_on() {
    let r = rig(&format!("orphan_ttl = \"1h\"\n{MULTIPART}")).await;
    let prefix = r.target.canary_prefix();
    let old_ms = two_hours_ago_ms();
    for tail in ["00000000000000aa", "00000000000000bb"] {
        let key = format!("{prefix}{old_ms:013}-{tail}");
        r.bucket.create_multipart(&key).await.unwrap();
    }
    r.s3.faults.set_all(FaultConfig::answer(
        "AccessDenied",
        403,
        "not authorized to perform: s3:AbortMultipartUpload",
        vec![Op::AbortMultipartUpload],
    ));
    let s = sweep::sweep(&r.bucket, &r.target, SystemTime::now())
        .await
        .unwrap();
    assert_eq!((s.open, s.aborted, s.abort_failed), (2, 0, 2), "{s:?}");
    assert!(
        s.abort_error
            .as_deref()
            .is_some_and(|e| e.contains("AbortMultipartUpload")),
        "{s:?}"
    );
    r.metrics.uploads_swept(&r.target.labels(), &s);
    let text = r.metrics.render();
    assert_eq!(
        sample(&text, "s3canary_multipart_uploads_open", &[]),
        Some(2.0)
    );
    r.s3.faults.clear();
    let s = sweep::sweep(&r.bucket, &r.target, SystemTime::now())
        .await
        .unwrap();
    assert_eq!((s.open, s.aborted, s.abort_failed), (0, 2, 0), "{s:?}");
}

/// Shutdown while the create is in flight: the create is let answer, so the upload it made is
/// known and aborted, and the run is not counted.
#[tokio::test]
async fn shutdown_during_the_create_still_aborts_the_upload_it_made() {
    let r = rig(MULTIPART).await;
    r.s3.faults.set_all(FaultConfig {
        latency: Duration::from_millis(800),
        latency_ops: vec![Op::CreateMultipartUpload],
        ..Default::default()
    });
    let result = cancelled_at(&r, Op::CreateMultipartUpload).await;
    assert!(result.outcome.is_none(), "{result:?}");
    assert_eq!(r.s3.log.count(Op::UploadPart), 0);
    assert_eq!(r.s3.log.count(Op::AbortMultipartUpload), 1);
    r.s3.faults.clear();
    assert_eq!(open_uploads(&r).await, 0);
}
