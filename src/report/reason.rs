//! Why a run failed: a closed set, so it can be a label, each with a hint for a person and a
//! runbook section.

use serde::Serialize;

/// Why a probe step failed: a closed set, so it can be a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Timeout,
    Connection,
    Throttled,
    AccessDenied,
    NoSuchBucket,
    ServerError,
    ClientError,
    StaleRead,
    MissingFromList,
    ContentMismatch,
    PreconditionIgnored,
    /// An expected S3 event notification did not arrive within the events timeout.
    EventLost,
    /// An S3 event notification arrived more often than its write or delete happened.
    EventDuplicate,
    /// An object of the durability set is gone.
    ObjectLost,
    /// An object of the durability set has other bytes than its key's SHA-256.
    ObjectCorrupt,
    /// KMS throttled the data-key calls of an SSE-KMS request (S3's 503 SlowDown naming KMS,
    /// or `KMS.ThrottlingException`).
    KmsThrottled,
    /// The KMS key's policy or the caller's IAM policy refused a `kms:` action S3 needed.
    KmsDenied,
    /// The KMS key is disabled, pending deletion, in an invalid state or does not exist.
    KmsUnavailable,
    /// The store refused a checksum form or algorithm a current SDK sends by default.
    ChecksumUnsupported,
    /// The store accepted a wrong checksum, or kept none.
    ChecksumIgnored,
    /// The store returned a checksum that differs from the bytes written.
    ChecksumMismatch,
    /// The credentials in use have expired (ExpiredToken, TokenRefreshRequired): a session
    /// that was not refreshed.
    CredentialsExpired,
    /// No credentials could be had: the chain found none, the web-identity token file is
    /// missing or unreadable, STS refused or did not answer.
    CredentialsUnavailable,
    /// S3 refused the request's time (RequestTimeTooSkewed): the host clock is off.
    ClockSkew,
    /// The bucket is in another region than configured (301 PermanentRedirect,
    /// AuthorizationHeaderMalformed naming the expected region).
    WrongRegion,
    /// The endpoint's TLS certificate was refused: expired, not for the endpoint's host, or
    /// signed by a CA the daemon does not trust.
    Tls,
    Other,
}

impl Reason {
    /// Every reason, for docs and tests.
    pub const ALL: [Reason; 27] = [
        Reason::Timeout,
        Reason::Connection,
        Reason::Throttled,
        Reason::AccessDenied,
        Reason::NoSuchBucket,
        Reason::ServerError,
        Reason::ClientError,
        Reason::StaleRead,
        Reason::MissingFromList,
        Reason::ContentMismatch,
        Reason::PreconditionIgnored,
        Reason::EventLost,
        Reason::EventDuplicate,
        Reason::ObjectLost,
        Reason::ObjectCorrupt,
        Reason::KmsThrottled,
        Reason::KmsDenied,
        Reason::KmsUnavailable,
        Reason::ChecksumUnsupported,
        Reason::ChecksumIgnored,
        Reason::ChecksumMismatch,
        Reason::CredentialsExpired,
        Reason::CredentialsUnavailable,
        Reason::ClockSkew,
        Reason::WrongRegion,
        Reason::Tls,
        Reason::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::Connection => "connection",
            Reason::Throttled => "throttled",
            Reason::AccessDenied => "access_denied",
            Reason::NoSuchBucket => "no_such_bucket",
            Reason::ServerError => "server_error",
            Reason::ClientError => "client_error",
            Reason::StaleRead => "stale_read",
            Reason::MissingFromList => "missing_from_list",
            Reason::ContentMismatch => "content_mismatch",
            Reason::PreconditionIgnored => "precondition_ignored",
            Reason::EventLost => "event_lost",
            Reason::EventDuplicate => "event_duplicate",
            Reason::ObjectLost => "object_lost",
            Reason::ObjectCorrupt => "object_corrupt",
            Reason::KmsThrottled => "kms_throttled",
            Reason::KmsDenied => "kms_denied",
            Reason::KmsUnavailable => "kms_unavailable",
            Reason::ChecksumUnsupported => "checksum_unsupported",
            Reason::ChecksumIgnored => "checksum_ignored",
            Reason::ChecksumMismatch => "checksum_mismatch",
            Reason::CredentialsExpired => "credentials_expired",
            Reason::CredentialsUnavailable => "credentials_unavailable",
            Reason::ClockSkew => "clock_skew",
            Reason::WrongRegion => "wrong_region",
            Reason::Tls => "tls",
            Reason::Other => "other",
        }
    }

    /// One line for a person: what the reason means and what to check first. Shown next to
    /// the reason on the status page and in `once`; the runbook section says more.
    pub fn hint(self) -> &'static str {
        match self {
            Reason::Timeout => {
                "no answer within the timeout: check the network path (NAT, VPC endpoint, proxy) and the AWS Health Dashboard"
            }
            Reason::Connection => {
                "no connection to the endpoint: check DNS, the endpoint URL, security groups, the proxy and the VPC endpoint"
            }
            Reason::Throttled => {
                "S3 throttled the request (503 SlowDown or 429): check other clients' request rate on the bucket and prefix"
            }
            Reason::AccessDenied => {
                "the request was refused: check the credentials, the IAM and bucket policies (s3canary iam-policy), SCPs and KMS key policy"
            }
            Reason::NoSuchBucket => {
                "the bucket does not exist: check it was not deleted or renamed, and the target's region and endpoint"
            }
            Reason::ServerError => {
                "S3 answered 5xx: check the AWS Health Dashboard, then open a support case with the request IDs"
            }
            Reason::ClientError => {
                "S3 rejected the request (4xx): read its code and message; check the endpoint, region and addressing style"
            }
            Reason::StaleRead => {
                "a read after a write returned old bytes or 404: a consistency violation; look for caches or proxies in the path, then AWS support"
            }
            Reason::MissingFromList => {
                "a listing after a write did not show the new key: a consistency violation; give AWS support the request IDs"
            }
            Reason::ContentMismatch => {
                "the bytes read differ from the bytes written: look for a proxy or gateway that rewrites bodies"
            }
            Reason::PreconditionIgnored => {
                "a conditional write (If-None-Match / If-Match) was not refused: applications relying on it can overwrite each other"
            }
            Reason::EventLost => {
                "an event notification never reached the queue: check the bucket's notification configuration and the queue policy"
            }
            Reason::EventDuplicate => {
                "an event notification arrived more than once: check for overlapping notification rules; consumers must be idempotent"
            }
            Reason::ObjectLost => {
                "an object written long ago is gone: check lifecycle rules and deletes by other writers under the prefix"
            }
            Reason::ObjectCorrupt => {
                "an object written long ago has other bytes: check other writers under the prefix, then AWS support"
            }
            Reason::KmsThrottled => {
                "KMS throttled S3's data-key calls for SSE-KMS: check the KMS request quota, S3 Bucket Keys, other KMS users"
            }
            Reason::KmsDenied => {
                "a kms: action was refused: check the KMS key policy and the role's kms:GenerateDataKey / kms:Decrypt grants"
            }
            Reason::KmsUnavailable => {
                "the bucket's KMS key is disabled, pending deletion or gone: check the key in KMS before every writer fails"
            }
            Reason::ChecksumUnsupported => {
                "the store or a proxy refused a checksum current SDKs send by default: every updated client will fail the same way"
            }
            Reason::ChecksumIgnored => {
                "a wrong checksum was accepted or none was kept: the store does not verify what clients send"
            }
            Reason::ChecksumMismatch => {
                "the checksum returned differs from the bytes written: look for a proxy that rewrites bodies or a store bug"
            }
            Reason::CredentialsExpired => {
                "the credentials expired and were not refreshed: check the web-identity token file rotation (IRSA, Pod Identity) and STS"
            }
            Reason::CredentialsUnavailable => {
                "no credentials could be had: check the pod's service account annotation, the token file, AWS_* variables and STS reachability"
            }
            Reason::ClockSkew => {
                "S3 refused the request's time: the host clock is off (see s3canary_clock_skew_seconds); check NTP/chrony on the node"
            }
            Reason::WrongRegion => {
                "the bucket is in another region than configured: set the target's region to the one the message names"
            }
            Reason::Tls => {
                "the endpoint's TLS certificate was refused (expired, wrong host or unknown CA): check the certificate, the endpoint URL and ca_file"
            }
            Reason::Other => "an answer s3canary does not classify: read its code and message",
        }
    }

    /// Where the runbook says more: its section's anchor, relative to where the docs are
    /// published (as the alerts' `runbook_url`).
    pub fn runbook(self) -> String {
        format!("docs/runbook.md#{}", self.anchor())
    }

    /// The anchor of its runbook section (`reason-<name>`), also on the daemon's `/runbook`.
    pub fn anchor(self) -> String {
        format!("reason-{}", self.as_str())
    }
}
