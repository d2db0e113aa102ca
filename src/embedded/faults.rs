//! Faults the embedded S3 server can inject, switchable at run time per bucket.
//!
//! Faults live in the server, not in the client: the daemon under test sees them exactly as it
//! would see a misbehaving S3 (status codes, headers, timing), through the real SDK.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;

/// The S3 operations the embedded server answers, for selecting faults and reading the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    PutObject,
    GetObject,
    HeadObject,
    ListObjectsV2,
    DeleteObject,
    CreateMultipartUpload,
    UploadPart,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListMultipartUploads,
    Other,
}

impl Op {
    /// Every operation, for faults that apply to all.
    pub const ALL: [Op; 11] = [
        Op::PutObject,
        Op::GetObject,
        Op::HeadObject,
        Op::ListObjectsV2,
        Op::DeleteObject,
        Op::CreateMultipartUpload,
        Op::UploadPart,
        Op::CompleteMultipartUpload,
        Op::AbortMultipartUpload,
        Op::ListMultipartUploads,
        Op::Other,
    ];
}

/// An S3 error answered instead of the real result, at `rate` (0..=1).
#[derive(Debug, Clone, PartialEq)]
pub struct InjectedError {
    /// An S3 error code: SlowDown, InternalError, ServiceUnavailable, AccessDenied, NoSuchBucket...
    pub code: String,
    pub rate: f64,
    /// Operations affected; empty means all.
    pub ops: Vec<Op>,
    /// The HTTP status, when not the code's own (KMS's codes are 400).
    pub status: Option<u16>,
    /// The `<Message>`, when not the fault layer's own words.
    pub message: Option<String>,
    /// Headers of the answer, as S3 adds them (`x-amz-bucket-region` to a 301).
    pub headers: Vec<(String, String)>,
    /// Seconds the answer's `Date` is ahead of this host's clock (negative: behind), as a
    /// host whose clock is off sees S3's.
    pub date_offset: Option<i64>,
}

/// A fault below the S3 protocol: what a broken network, proxy or store does to the HTTP
/// exchange itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpFault {
    /// The connection is closed without an answer.
    Reset,
    /// The body ends before the Content-Length it announced.
    Truncate,
    /// A 200 answer whose body is not XML.
    GarbageXml,
    /// An answer with a 1 MiB header.
    HugeHeader,
    /// `200 OK` whose body is an S3 `<Error>` (InternalError), as S3 documents for
    /// CompleteMultipartUpload: the request can fail after the 200 is sent.
    ErrorIn200,
}

/// What one bucket (or every bucket) does wrong.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// Added before every answer (of `latency_ops`).
    pub latency: Duration,
    /// Operations `latency` applies to; empty means all.
    pub latency_ops: Vec<Op>,
    /// Up to this much more, uniformly drawn per request.
    pub latency_jitter: Duration,
    pub error: Option<InjectedError>,
    /// After the first write of a key, reads answer 404 for this long (read_after_write).
    pub stale_after_write: Duration,
    /// After an overwrite, reads return the previous version for this long.
    pub stale_after_overwrite: Duration,
    /// Listings omit a key for this long after it was written.
    pub list_lag: Duration,
    /// After a delete, reads and listings still show the key for this long.
    pub read_after_delete: Duration,
    /// Conditional headers (If-None-Match, If-Match) on PutObject are ignored.
    pub ignore_conditional: bool,
    /// Refused conditional writes are answered with this status instead of 412 (409 or 304,
    /// as some S3-compatible stores do).
    pub conditional_status: Option<u16>,
    /// Requests of these operations never answer.
    pub hang: Vec<Op>,
    /// An HTTP-level fault for these operations (empty: all), at `http_rate`.
    pub http: Option<(HttpFault, Vec<Op>)>,
    /// Share of matching requests that get the HTTP fault (0 means 1: every one).
    pub http_rate: f64,
    /// Share of event notifications of acknowledged changes that are never delivered.
    pub drop_events: f64,
    /// Uploads whose body is aws-chunked with a trailing checksum
    /// (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`) are refused with 501 NotImplemented, as
    /// Cloudflare R2 and some gateways answered.
    pub refuse_trailers: bool,
    /// Checksums sent with an upload are not checked: a wrong one is accepted, and the
    /// object keeps the checksum of its bytes (moto 5.2 does this).
    pub ignore_checksums: bool,
    /// Checksums sent with an upload are neither checked nor kept (s3rver 3.7 does this).
    pub drop_checksums: bool,
    /// Uploads with a trailing checksum are stored as they came, aws-chunked encoding (chunk
    /// header and trailer) included, and no checksum is kept (s3rver 3.7 does this).
    pub keep_chunked: bool,
    /// GetObject and HeadObject return a checksum header that is not the object's.
    pub wrong_checksum: bool,
    /// CompleteMultipartUpload leaves out the last part: the object is shorter than written.
    pub lose_part: bool,
    /// The profile this came from ([`FaultConfig::profile`]); `None` for one built by hand.
    pub name: Option<&'static str>,
}

impl FaultConfig {
    /// Answers `code` to a share `rate` (0..=1) of the requests of `ops` (every operation when
    /// empty), and nothing else wrong.
    pub fn error(code: &str, rate: f64, ops: Vec<Op>) -> FaultConfig {
        FaultConfig {
            error: Some(InjectedError {
                code: code.into(),
                rate,
                ops,
                status: None,
                message: None,
                headers: Vec::new(),
                date_offset: None,
            }),
            ..Default::default()
        }
    }

    /// Answers every request of `ops` (all when empty) with S3's error `code`, `status` and
    /// `message`, as AWS words it.
    pub fn answer(code: &str, status: u16, message: &str, ops: Vec<Op>) -> FaultConfig {
        FaultConfig {
            error: Some(InjectedError {
                code: code.into(),
                rate: 1.0,
                ops,
                status: Some(status),
                message: Some(message.into()),
                headers: Vec::new(),
                date_offset: None,
            }),
            ..Default::default()
        }
    }

    pub(crate) fn delay(&self, op: Op) -> Duration {
        if !self.latency_ops.is_empty() && !self.latency_ops.contains(&op) {
            return Duration::ZERO;
        }
        if self.latency_jitter.is_zero() {
            return self.latency;
        }
        let extra = rand::rng().random_range(0..=self.latency_jitter.as_micros() as u64);
        self.latency + Duration::from_micros(extra)
    }

    pub(crate) fn http_fault_for(&self, op: Op) -> Option<HttpFault> {
        let (fault, ops) = self.http.as_ref()?;
        if !ops.is_empty() && !ops.contains(&op) {
            return None;
        }
        let rate = if self.http_rate > 0.0 {
            self.http_rate
        } else {
            1.0
        };
        (rand::rng().random::<f64>() < rate).then_some(*fault)
    }

    /// Whether the notification of one change is lost.
    pub(crate) fn drops_event(&self) -> bool {
        self.drop_events > 0.0 && rand::rng().random::<f64>() < self.drop_events
    }

    pub(crate) fn error_for(&self, op: Op) -> Option<&InjectedError> {
        let e = self.error.as_ref()?;
        if !e.ops.is_empty() && !e.ops.contains(&op) {
            return None;
        }
        (rand::rng().random::<f64>() < e.rate).then_some(e)
    }
}

/// Fault settings: one for every bucket, optionally overridden per bucket, for good or for a
/// number of requests.
#[derive(Debug, Default)]
pub struct Faults {
    all: Mutex<FaultConfig>,
    per_bucket: Mutex<HashMap<String, Override>>,
}

/// The fault profiles in force, as `GET /-/demo/faults` shows them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Profiles {
    /// Every bucket's, unless it has its own.
    pub all: &'static str,
    /// Buckets with a profile of their own.
    pub buckets: std::collections::BTreeMap<String, BucketProfile>,
}

/// A bucket's own profile.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BucketProfile {
    pub profile: &'static str,
    /// S3 requests it still applies to; null: until changed.
    pub requests_left: Option<u64>,
}

/// A bucket's own faults, and how many more S3 requests they apply to (None: until changed).
#[derive(Debug)]
struct Override {
    faults: FaultConfig,
    requests_left: Option<u64>,
}

impl Faults {
    /// Sets the faults of every bucket without its own setting.
    pub fn set_all(&self, f: FaultConfig) {
        let mut all = self.all.lock().unwrap();
        if all.label() != f.label() {
            tracing::info!(
                profile = f.label(),
                "embedded S3: fault profile of every bucket"
            );
        }
        *all = f;
    }

    /// Sets the faults of one bucket.
    pub fn set_bucket(&self, bucket: &str, f: FaultConfig) {
        self.override_bucket(bucket, f, None);
    }

    /// Sets the faults of one bucket for its next `requests` S3 requests only (then the
    /// bucket has no faults of its own): a single slow answer, one failed attempt.
    pub fn set_bucket_for(&self, bucket: &str, f: FaultConfig, requests: u64) {
        self.override_bucket(bucket, f, Some(requests));
    }

    fn override_bucket(&self, bucket: &str, faults: FaultConfig, requests_left: Option<u64>) {
        tracing::info!(
            profile = faults.label(),
            bucket,
            requests = requests_left,
            "embedded S3: fault profile of one bucket"
        );
        let o = Override {
            faults,
            requests_left,
        };
        self.per_bucket
            .lock()
            .unwrap()
            .insert(bucket.to_string(), o);
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.set_all(FaultConfig::default());
        self.per_bucket.lock().unwrap().clear();
    }

    /// The faults in force for `bucket`.
    pub fn for_bucket(&self, bucket: &str) -> FaultConfig {
        if let Some(o) = self.per_bucket.lock().unwrap().get(bucket) {
            return o.faults.clone();
        }
        self.all.lock().unwrap().clone()
    }

    /// The profiles in force: every bucket's, and the buckets with their own.
    pub fn profiles(&self) -> Profiles {
        let buckets = self
            .per_bucket
            .lock()
            .unwrap()
            .iter()
            .map(|(b, o)| {
                let p = BucketProfile {
                    profile: o.faults.label(),
                    requests_left: o.requests_left,
                };
                (b.clone(), p)
            })
            .collect();
        Profiles {
            all: self.all.lock().unwrap().label(),
            buckets,
        }
    }

    /// The faults for one S3 request to `bucket`, counting it against a limited override.
    pub(crate) fn take_for(&self, bucket: &str) -> FaultConfig {
        let mut per_bucket = self.per_bucket.lock().unwrap();
        if let Some(o) = per_bucket.get_mut(bucket) {
            let f = o.faults.clone();
            match &mut o.requests_left {
                Some(0) => {}
                Some(n) => {
                    *n -= 1;
                    if *n == 0 {
                        per_bucket.remove(bucket);
                        tracing::info!(
                            bucket,
                            profile = f.label(),
                            "embedded S3: a bucket's limited fault profile ran out; the shared one applies again"
                        );
                    }
                    return f;
                }
                None => return f,
            }
            per_bucket.remove(bucket);
        }
        drop(per_bucket);
        self.all.lock().unwrap().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limited_override_applies_to_its_requests_then_the_shared_faults_return() {
        let f = Faults::default();
        f.set_all(FaultConfig::profile("slow").unwrap());
        f.set_bucket_for("b", FaultConfig::profile("outage").unwrap(), 2);
        assert!(f.for_bucket("b").error.is_some(), "peeking does not count");
        assert!(f.take_for("b").error.is_some());
        assert!(
            f.take_for("a").error.is_none(),
            "other buckets keep the shared faults"
        );
        assert!(f.take_for("b").error.is_some());
        let after = f.take_for("b");
        assert!(after.error.is_none());
        assert_eq!(after, FaultConfig::profile("slow").unwrap());
        f.set_bucket("b", FaultConfig::profile("denied").unwrap());
        for _ in 0..5 {
            assert!(
                f.take_for("b").error.is_some(),
                "an unlimited override stays"
            );
        }
    }

    #[test]
    fn slow_get_delays_only_get_object() {
        let f = FaultConfig::profile("slow-get").unwrap();
        assert_eq!(f.delay(Op::GetObject), Duration::from_secs(3));
        assert_eq!(f.delay(Op::PutObject), Duration::ZERO);
        assert!(
            FaultConfig::PROFILES
                .iter()
                .all(|p| FaultConfig::profile(p).is_some())
        );
    }
}
