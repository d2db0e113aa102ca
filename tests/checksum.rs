//! The checksum probe against the embedded server: every algorithm in both forms a current SDK
//! sends passes on a store that checks and keeps checksums, and each way a store or proxy gets
//! checksums wrong gives its own reason (the fault layer answers as R2, moto and s3rver did).

pub mod common;

use common::{cycle, outcome, reason, rig};
use s3canary::embedded::FaultConfig;
use s3canary::report::{CycleReport, Outcome, Reason};

const ONE: &str = r#"probes = ["put", "get", "list", "overwrite", "delete", "conditional", "checksum"]
[target.checksum]
algorithms = ["crc32c"]"#;

fn failure(report: &CycleReport) -> s3canary::report::Failure {
    match outcome(report, "checksum") {
        Some(Outcome::Failure(f)) => f,
        other => panic!("checksum did not fail: {other:?}"),
    }
}

/// Ten cycles visit the five algorithms in both forms; each passes, nothing is left behind and
/// no request counts as an error (the refused wrong checksum is the expected answer).
#[tokio::test]
async fn every_algorithm_in_both_forms_passes_on_a_store_that_checks() {
    let r = rig(r#"probes = ["put", "checksum"]"#).await;
    for i in 0..10 {
        let report = cycle(&r).await;
        assert!(
            matches!(outcome(&report, "checksum"), Some(Outcome::Success)),
            "cycle {i}: {:?}",
            report.results
        );
        assert!(report.cleaned_up);
    }
    assert!(r.s3.keys("canary").is_empty(), "{:?}", r.s3.keys("canary"));
    let text = r.metrics.render();
    assert_eq!(
        common::total(&text, "s3canary_s3_request_errors_total", &[]),
        0.0
    );
    common::assert_stayed_in_prefix(&r);
}

/// A store that refuses aws-chunked trailer uploads (as R2 answered) passes the header form and
/// fails the trailer form with `checksum_unsupported`, naming what was refused.
#[tokio::test]
async fn a_store_refusing_trailers_is_checksum_unsupported_in_the_trailer_form_only() {
    let r = rig(ONE).await;
    r.s3.faults
        .set_all(FaultConfig::profile("no-trailers").unwrap());
    let header = cycle(&r).await;
    assert!(
        matches!(outcome(&header, "checksum"), Some(Outcome::Success)),
        "{:?}",
        header.results
    );
    let trailer = cycle(&r).await;
    let f = failure(&trailer);
    assert_eq!(f.reason, Reason::ChecksumUnsupported, "{f:?}");
    assert_eq!(f.code.as_deref(), Some("NotImplemented"));
    assert!(
        f.message.contains("STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
        "{}",
        f.message
    );
    assert!(f.message.contains("CRC32C"), "{}", f.message);
    assert!(f.message.contains("501"), "{}", f.message);
    // The other steps are plain PUTs and pass.
    assert!(matches!(
        outcome(&trailer, "conditional"),
        Some(Outcome::Success)
    ));
}

/// A store that accepts a wrong checksum (moto) is `checksum_ignored`, and the object it
/// accepted is deleted.
#[tokio::test]
async fn a_wrong_checksum_accepted_is_checksum_ignored_and_deleted() {
    let r = rig(ONE).await;
    r.s3.faults
        .set_all(FaultConfig::profile("ignore-checksums").unwrap());
    for _ in 0..2 {
        let report = cycle(&r).await;
        let f = failure(&report);
        assert_eq!(f.reason, Reason::ChecksumIgnored, "{f:?}");
        assert!(f.message.contains("wrong CRC32C checksum"), "{}", f.message);
        assert!(report.cleaned_up);
    }
    assert!(r.s3.keys("canary").is_empty());
}

/// A store that keeps no checksum (s3rver) is `checksum_ignored` at the read.
#[tokio::test]
async fn a_store_keeping_no_checksum_is_checksum_ignored() {
    let r = rig(ONE).await;
    r.s3.faults
        .set_all(FaultConfig::profile("no-checksums").unwrap());
    let f = failure(&cycle(&r).await);
    assert_eq!(f.reason, Reason::ChecksumIgnored);
    assert_eq!(f.operation, Some("GetObject"));
    assert!(
        f.message.contains("returned no CRC32C checksum"),
        "{}",
        f.message
    );
}

/// A store that keeps a trailer upload undecoded (s3rver) corrupts what current SDKs upload:
/// the trailer form is `content_mismatch`, found before the missing checksum, and says why;
/// the header form is only `checksum_ignored`.
#[tokio::test]
async fn a_trailer_upload_kept_undecoded_is_a_content_mismatch_that_says_so() {
    let r = rig(ONE).await;
    r.s3.faults
        .set_all(FaultConfig::profile("undecoded-trailers").unwrap());
    let header = failure(&cycle(&r).await);
    assert_eq!(header.reason, Reason::ChecksumIgnored, "{header:?}");
    let trailer = failure(&cycle(&r).await);
    assert_eq!(trailer.reason, Reason::ContentMismatch, "{trailer:?}");
    assert!(
        trailer
            .message
            .contains("the store kept the aws-chunked encoding"),
        "{}",
        trailer.message
    );
    assert!(r.s3.keys("canary").is_empty());
}

/// A checksum returned that is not the bytes' is `checksum_mismatch`, not a body failure.
#[tokio::test]
async fn a_wrong_checksum_returned_is_checksum_mismatch() {
    let r = rig(ONE).await;
    r.s3.faults
        .set_all(FaultConfig::profile("wrong-checksum").unwrap());
    let report = cycle(&r).await;
    let f = failure(&report);
    assert_eq!(f.reason, Reason::ChecksumMismatch, "{f:?}");
    assert!(
        f.message.contains("the bytes written have"),
        "{}",
        f.message
    );
    // The plain reads are not in checksum mode: they see the right bytes.
    assert_eq!(reason(&report, "get"), None);
}

/// Without the probe named, no checksummed request is sent.
#[tokio::test]
async fn the_default_probes_send_no_checksum() {
    let r = rig("").await;
    r.s3.faults
        .set_all(FaultConfig::profile("no-trailers").unwrap());
    for _ in 0..2 {
        let report = cycle(&r).await;
        assert!(outcome(&report, "checksum").is_none());
        assert!(
            report
                .results
                .iter()
                .all(|x| matches!(x.outcome, Some(Outcome::Success)))
        );
    }
}
