//! S3's answers as failures: error codes and statuses mapped onto the bounded reasons, request
//! IDs kept, failures without an answer in plain words ([`words`]), and the codes of failed
//! attempts bounded for labels.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use std::time::SystemTime;

use super::explain;
use super::words::{self, Peer};
use crate::report::{Failure, Reason, RequestIds};

/// Maps an S3 error code, HTTP status and message to a probe failure reason.
///
/// Answers that come from KMS (an SSE-KMS bucket's data keys) get their own reasons: S3 passes
/// KMS's errors on as `KMS.<Exception>` codes, its throttling as `503 SlowDown` whose message
/// names KMS, and its denials as `AccessDenied` naming the `kms:` action.
pub fn reason_for(code: Option<&str>, status: u16, message: Option<&str>) -> Reason {
    let message = message.unwrap_or("");
    let code = code.unwrap_or("");
    match code {
        "KMS.ThrottlingException" | "KMS.LimitExceededException" => return Reason::KmsThrottled,
        "KMS.AccessDeniedException" => return Reason::KmsDenied,
        "KMS.DisabledException"
        | "KMS.KMSInvalidStateException"
        | "KMS.NotFoundException"
        | "KMS.KeyUnavailableException" => return Reason::KmsUnavailable,
        "SlowDown" | "Throttling" | "ThrottlingException" if message.contains("KMS") => {
            return Reason::KmsThrottled;
        }
        "AccessDenied" if message.contains("kms:") => return Reason::KmsDenied,
        "ExpiredToken" | "ExpiredTokenException" | "TokenRefreshRequired" => {
            return Reason::CredentialsExpired;
        }
        "RequestTimeTooSkewed" => return Reason::ClockSkew,
        "PermanentRedirect" | "IllegalLocationConstraintException" => return Reason::WrongRegion,
        "AuthorizationHeaderMalformed" if message.contains("expecting") => {
            return Reason::WrongRegion;
        }
        "AccessDenied"
        | "AllAccessDisabled"
        | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "InvalidToken" => return Reason::AccessDenied,
        "NoSuchBucket" => return Reason::NoSuchBucket,
        // Also when S3 sends them in the body of a 200 (CompleteMultipartUpload can fail after
        // its status was sent).
        "InternalError" | "ServiceUnavailable" => return Reason::ServerError,
        "SlowDown"
        | "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequests" => return Reason::Throttled,
        _ => {}
    }
    match status {
        403 => Reason::AccessDenied,
        429 => Reason::Throttled,
        500..=599 => Reason::ServerError,
        400..=499 => Reason::ClientError,
        _ => Reason::Other,
    }
}

/// The failure of `operation` that the SDK reports as `e`, classified, with the request IDs of
/// S3's answer when there was one; `sent` says whether any attempt may have reached `peer`.
pub(super) fn failure<E>(
    operation: &'static str,
    e: &SdkError<E, HttpResponse>,
    peer: &Peer,
    sent: bool,
) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (request_id, extended_request_id) = match e.raw_response() {
        Some(r) => (
            r.headers().get("x-amz-request-id").map(str::to_string),
            r.headers().get("x-amz-id-2").map(str::to_string),
        ),
        None => (None, None),
    };
    // Only failures without an S3 answer need their error chain read; refused conditional
    // writes (every cycle) must not pay for it.
    let detail = || words::unanswered(e, peer);
    let credentials = match e {
        SdkError::ServiceError(_) => None,
        _ => words::credentials_failure(e),
    };
    // A refused certificate or a failed handshake: `tls`, not `connection`.
    let tls = match e {
        SdkError::DispatchFailure(_) => std::error::Error::source(e)
            .and_then(super::connect::tls::refused)
            .map(|w| format!("{w} ({})", peer.authority)),
        _ => None,
    };
    let (reason, status, code, message) = match e {
        _ if tls.is_some() => (Reason::Tls, None, None, tls.unwrap_or_default()),
        _ if credentials.is_some() => (
            Reason::CredentialsUnavailable,
            None,
            None,
            credentials.unwrap_or_default(),
        ),
        SdkError::TimeoutError(_) => (Reason::Timeout, None, None, detail()),
        SdkError::DispatchFailure(d) if d.is_timeout() => (Reason::Timeout, None, None, detail()),
        SdkError::DispatchFailure(_) => (Reason::Connection, None, None, detail()),
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let code = s.err().code().map(str::to_string);
            let message = s
                .err()
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {status}"));
            let mut reason = reason_for(code.as_deref(), status, s.err().message());
            // A HEAD's 301 has no body to carry PermanentRedirect: S3's header says it. A 301
            // without it (a proxy sending http to https) is not about regions.
            if status == 301 && s.raw().headers().get("x-amz-bucket-region").is_some() {
                reason = Reason::WrongRegion;
            }
            let message = explained(reason, s.raw(), message, peer);
            (reason, Some(status), code, message)
        }
        _ => (Reason::Other, None, None, detail()),
    };
    let ids = RequestIds {
        request_id,
        extended_request_id,
    };
    let mut f = Failure::new(
        reason,
        Some(operation),
        status,
        code.as_deref(),
        &message,
        &ids,
    );
    f.unsent = !sent;
    f
}

/// S3's message, with what it means where the answer says more: which policy denied, where
/// the bucket really is, how far the clock is off.
fn explained(reason: Reason, raw: &HttpResponse, message: String, peer: &Peer) -> String {
    let header = |name: &str| raw.headers().get(name);
    match reason {
        Reason::WrongRegion => {
            let actual = explain::bucket_region(header("x-amz-bucket-region"), &message);
            explain::wrong_region(actual.as_deref(), &peer.region, &message)
        }
        Reason::ClockSkew => {
            let skew = header("date").and_then(|d| explain::clock_skew(d, SystemTime::now()));
            explain::skewed(skew, &message)
        }
        Reason::AccessDenied | Reason::KmsDenied => match explain::denial(&message) {
            Some(cause) => format!("{cause}; S3 said: {message}"),
            None => message,
        },
        _ => message,
    }
}

/// Whether `e` is S3's 404.
pub(super) fn is_not_found<E>(e: &SdkError<E, HttpResponse>) -> bool {
    // Over real TCP a missing key surfaces with different SDK variants per operation
    // (NoSuchKey, NotFound, unhandled); the 404 status is the one reliable signal.
    matches!(e, SdkError::ServiceError(s) if s.raw().status().as_u16() == 404)
}

/// A refusal a probe asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A conditional write that must fail its precondition.
    Precondition,
    /// An upload whose checksum is wrong: any 400 (BadDigest on S3).
    Digest,
}

/// Answers that are part of a probe's expected flow, not errors: a 404 after a delete and the
/// refusal a probe asked for. They are judged by the probes, not counted as request errors.
///
/// A refusal is expected only of the writes that must be refused (`refusal`); any other 412,
/// 409, 304 or 400 is an error like any other.
pub(super) fn expected_answer(code: &str, status: Option<u16>, refusal: Option<Refusal>) -> bool {
    matches!(code, "NotFound" | "NoSuchKey")
        || match refusal {
            Some(Refusal::Precondition) => is_refusal(Some(code), status),
            Some(Refusal::Digest) => status == Some(400),
            None => false,
        }
}

/// Whether an answer is S3 refusing a conditional write: 412 PreconditionFailed, or the 409
/// ConditionalRequestConflict and 304 some stores answer.
pub fn is_refusal(code: Option<&str>, status: Option<u16>) -> bool {
    matches!(
        code,
        Some("PreconditionFailed" | "ConditionalRequestConflict")
    ) || matches!(status, Some(412 | 409 | 304))
}

/// Whether a failed attempt certainly never reached the store: its connection was never made
/// (refused, unresolvable, unreachable, or the connect timeout ran out).
pub(super) fn never_connected(
    e: &aws_smithy_runtime_api::client::orchestrator::OrchestratorError<
        aws_smithy_runtime_api::client::interceptors::context::Error,
    >,
) -> bool {
    let Some(c) = e.as_connector_error() else {
        return false;
    };
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(c);
    while let Some(e) = next {
        if e.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(|h| h.is_connect())
            || e.to_string().starts_with("HTTP connect timeout")
        {
            return true;
        }
        next = e.source();
    }
    false
}

pub(super) fn attempt_error_code(
    op: &str,
    e: &aws_smithy_runtime_api::client::orchestrator::OrchestratorError<
        aws_smithy_runtime_api::client::interceptors::context::Error,
    >,
    status: Option<u16>,
) -> String {
    if e.is_timeout_error() {
        return "timeout".into();
    }
    if e.is_connector_error() {
        return "connection".into();
    }
    let code = e.as_operation_error().and_then(|err| {
        use aws_sdk_s3::operation::*;
        let c = match op {
            "PutObject" => err
                .downcast_ref::<put_object::PutObjectError>()
                .and_then(|x| x.code()),
            "GetObject" => err
                .downcast_ref::<get_object::GetObjectError>()
                .and_then(|x| x.code()),
            "HeadObject" => err
                .downcast_ref::<head_object::HeadObjectError>()
                .and_then(|x| x.code()),
            "ListObjectsV2" => err
                .downcast_ref::<list_objects_v2::ListObjectsV2Error>()
                .and_then(|x| x.code()),
            "DeleteObject" => err
                .downcast_ref::<delete_object::DeleteObjectError>()
                .and_then(|x| x.code()),
            "CreateMultipartUpload" => err
                .downcast_ref::<create_multipart_upload::CreateMultipartUploadError>()
                .and_then(|x| x.code()),
            "UploadPart" => err
                .downcast_ref::<upload_part::UploadPartError>()
                .and_then(|x| x.code()),
            "CompleteMultipartUpload" => err
                .downcast_ref::<complete_multipart_upload::CompleteMultipartUploadError>()
                .and_then(|x| x.code()),
            "AbortMultipartUpload" => err
                .downcast_ref::<abort_multipart_upload::AbortMultipartUploadError>()
                .and_then(|x| x.code()),
            "ListMultipartUploads" => err
                .downcast_ref::<list_multipart_uploads::ListMultipartUploadsError>()
                .and_then(|x| x.code()),
            _ => None,
        };
        c.map(str::to_string)
    });
    match (code, status) {
        (Some(c), _) => c,
        (None, Some(404)) => "NotFound".into(),
        _ => "other".into(),
    }
}
