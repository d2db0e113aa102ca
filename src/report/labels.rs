//! Label values: what identifies a target or a replication pair on its series, and the closed
//! sets of operations and error codes.

/// The label values that identify one target on every probe series.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetLabels {
    pub target: String,
    pub bucket: String,
    pub region: String,
}

impl TargetLabels {
    /// The label values followed by `extra`.
    pub fn with<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec![
            self.target.as_str(),
            self.bucket.as_str(),
            self.region.as_str(),
        ];
        v.extend_from_slice(extra);
        v
    }
}

/// What an output learns of a target when it is scheduled: its labels, the probes it runs and
/// its interval, so the series the alerts read can exist from the first scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetInfo {
    pub labels: TargetLabels,
    pub probes: Vec<super::Probe>,
    pub interval: std::time::Duration,
}

impl TargetInfo {
    /// Whether the target runs `probe`.
    pub fn runs(&self, probe: super::Probe) -> bool {
        self.probes.contains(&probe)
    }
}

/// The label values of one replication pair: name, source bucket and region, destination
/// bucket and region.
#[derive(Debug, Clone, PartialEq)]
pub struct PairLabels(pub [String; 5]);

impl PairLabels {
    /// The label values followed by `extra`.
    pub fn with<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut v: Vec<&str> = self.0.iter().map(String::as_str).collect();
        v.extend_from_slice(extra);
        v
    }

    /// The source bucket.
    pub fn source_bucket(&self) -> &str {
        &self.0[1]
    }

    /// The destination bucket.
    pub fn destination_bucket(&self) -> &str {
        &self.0[3]
    }
}

/// S3 operations the daemon sends, as `operation` label values ("other" for anything else).
pub const OPERATIONS: &[&str] = &[
    "PutObject",
    "GetObject",
    "HeadObject",
    "ListObjectsV2",
    "DeleteObject",
    "other",
];

/// S3 error codes kept as label values; anything else is counted as "other".
pub const KNOWN_CODES: &[&str] = &[
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "NoSuchBucket",
    "NoSuchKey",
    "NotFound",
    "PreconditionFailed",
    "ConditionalRequestConflict",
    "SlowDown",
    "Throttling",
    "RequestLimitExceeded",
    "TooManyRequests",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "KMS.DisabledException",
    "KMS.NotFoundException",
];

/// Codes of attempts that got no S3 answer at all.
pub const TRANSPORT_CODES: &[&str] = &["timeout", "connection"];

/// Bounds a free-form code to [`KNOWN_CODES`] or "other".
pub fn bounded_code(code: &str) -> &'static str {
    KNOWN_CODES
        .iter()
        .chain(TRANSPORT_CODES)
        .find(|c| **c == code)
        .copied()
        .unwrap_or("other")
}
