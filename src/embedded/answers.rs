//! S3's answers as AWS words them, for the fault layer: what an SSE-KMS bucket answers when
//! its key throttles, refuses or is disabled; what a host with a skewed clock, expired
//! credentials or the wrong region hears; an AccessDenied that names the policy that denied.

use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;

use super::faults::{FaultConfig, InjectedError, Op};

impl FaultConfig {
    /// S3's answer to a write on an SSE-KMS bucket whose KMS key throttles: 503 SlowDown naming
    /// KMS.
    pub fn kms_throttled() -> FaultConfig {
        FaultConfig::answer(
            "SlowDown",
            503,
            "Please reduce your request rate for operations involving AWS KMS.",
            vec![Op::PutObject, Op::UploadPart, Op::CreateMultipartUpload],
        )
    }

    /// S3's answer when the role may write but not use the bucket's KMS key.
    pub fn kms_denied() -> FaultConfig {
        FaultConfig::answer(
            "AccessDenied",
            403,
            "User: arn:aws:sts::123456789012:assumed-role/s3canary/pod is not authorized to \
             perform: kms:GenerateDataKey on resource: arn:aws:kms:us-east-1:123456789012:key/\
             1234abcd-12ab-34cd-56ef-1234567890ab because no identity-based policy allows the \
             kms:GenerateDataKey action",
            vec![Op::PutObject, Op::UploadPart, Op::CreateMultipartUpload],
        )
    }

    /// S3's answer when the bucket's KMS key is disabled.
    pub fn kms_disabled() -> FaultConfig {
        FaultConfig::answer(
            "KMS.DisabledException",
            400,
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab is \
             disabled.",
            vec![],
        )
    }

    /// S3's answer to a host whose clock is `offset` seconds behind S3's (negative: ahead):
    /// 403 RequestTimeTooSkewed, with S3's own time in `Date`.
    pub fn clock_skewed(offset: i64) -> FaultConfig {
        let mut f = FaultConfig::answer(
            "RequestTimeTooSkewed",
            403,
            "The difference between the request time and the current time is too large.",
            vec![],
        );
        if let Some(e) = f.error.as_mut() {
            e.date_offset = Some(offset);
        }
        f
    }

    /// S3's answer when the bucket is in `actual` and the request went to another region: 301
    /// PermanentRedirect with `x-amz-bucket-region`.
    pub fn wrong_region(actual: &str) -> FaultConfig {
        let mut f = FaultConfig::answer(
            "PermanentRedirect",
            301,
            "The bucket you are attempting to access must be addressed using the specified \
             endpoint. Please send all future requests to this endpoint.",
            vec![],
        );
        if let Some(e) = f.error.as_mut() {
            e.headers = vec![("x-amz-bucket-region".into(), actual.into())];
        }
        f
    }

    /// S3's answer to requests signed with a session that expired and was not refreshed.
    pub fn expired_token() -> FaultConfig {
        FaultConfig::answer(
            "ExpiredToken",
            400,
            "The provided token has expired.",
            vec![],
        )
    }

    /// S3's AccessDenied for writes when a VPC endpoint policy denies them explicitly, worded
    /// as current S3 words it.
    pub fn vpce_denied() -> FaultConfig {
        FaultConfig::answer(
            "AccessDenied",
            403,
            "User: arn:aws:sts::123456789012:assumed-role/s3canary/pod is not authorized to \
             perform: s3:PutObject on resource: \"arn:aws:s3:::canary/s3canary/\" with an explicit \
             deny in a VPC endpoint policy",
            vec![Op::PutObject],
        )
    }
}

/// The headers an injected error is answered with: its own, and a `Date` off by its
/// `date_offset`. Names or values that are not valid HTTP are left out.
pub(super) fn headers(e: &InjectedError) -> http::HeaderMap {
    let mut out = http::HeaderMap::new();
    for (name, value) in &e.headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            out.insert(n, v);
        }
    }
    if let Some(offset) = e.date_offset {
        let now = DateTime::from(std::time::SystemTime::now());
        let date = DateTime::from_secs(now.secs() + offset);
        if let Some(v) = date
            .fmt(Format::HttpDate)
            .ok()
            .and_then(|d| http::HeaderValue::from_str(&d).ok())
        {
            out.insert(http::header::DATE, v);
        }
    }
    out
}
