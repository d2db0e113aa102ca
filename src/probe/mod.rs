//! The probe cycle: a fresh canary key, the enabled steps in order, cleanup at the end.
//!
//! Each step lives in its own file and is a plain async function doing S3 I/O against the
//! shared [`Cycle`] state. Steps never decide time: the scheduler hands the cycle a deadline,
//! [`run_cycle`] enforces it around every step, and the re-reads that measure a stale view stop
//! at it too.

mod conditional;
mod delete;
mod get;
mod list;
mod overwrite;
mod put;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use md5::{Digest, Md5};
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Probe, Target};
use crate::s3::{Bucket, Ids, S3Failure};

/// Time allowed to delete the canary after the steps, even past the deadline or on shutdown.
pub const CLEANUP_BUDGET: Duration = Duration::from_secs(5);

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
    Other,
}

impl Reason {
    /// Every reason, for docs and tests.
    pub const ALL: [Reason; 12] = [
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
            Reason::Other => "other",
        }
    }
}

/// A consistency guarantee that a step verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    ReadAfterWrite,
    ListAfterWrite,
    ReadAfterOverwrite,
    ReadAfterDelete,
    ListAfterDelete,
    ConditionalCreate,
    ConditionalUpdate,
}

impl Check {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::ReadAfterWrite => "read_after_write",
            Check::ListAfterWrite => "list_after_write",
            Check::ReadAfterOverwrite => "read_after_overwrite",
            Check::ReadAfterDelete => "read_after_delete",
            Check::ListAfterDelete => "list_after_delete",
            Check::ConditionalCreate => "conditional_create",
            Check::ConditionalUpdate => "conditional_update",
        }
    }

    /// The checks a probe performs.
    pub fn of_probe(p: Probe) -> &'static [Check] {
        match p {
            Probe::Put => &[],
            Probe::Get => &[Check::ReadAfterWrite],
            Probe::List => &[Check::ListAfterWrite],
            Probe::Overwrite => &[Check::ReadAfterOverwrite],
            Probe::Delete => &[Check::ReadAfterDelete, Check::ListAfterDelete],
            Probe::Conditional => &[Check::ConditionalCreate, Check::ConditionalUpdate],
        }
    }
}

/// A failed step, with what an engineer needs to follow it up.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub reason: Reason,
    /// The S3 operation that failed or returned the wrong answer.
    pub operation: Option<&'static str>,
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
    pub extended_request_id: Option<String>,
}

impl Failure {
    fn s3(operation: &'static str, f: S3Failure) -> Self {
        Failure {
            reason: f.reason,
            operation: Some(operation),
            code: f.code,
            message: f.message,
            request_id: f.request_id,
            extended_request_id: f.extended_request_id,
        }
    }

    /// A wrong answer to a request that itself succeeded.
    fn wrong_answer(
        reason: Reason,
        operation: &'static str,
        ids: &Ids,
        message: impl Into<String>,
    ) -> Self {
        Failure {
            reason,
            operation: Some(operation),
            code: None,
            message: message.into(),
            request_id: ids.request_id.clone(),
            extended_request_id: ids.extended_request_id.clone(),
        }
    }

    fn timeout(budget: Duration) -> Self {
        Failure {
            reason: Reason::Timeout,
            operation: None,
            code: None,
            message: format!(
                "cycle deadline reached ({} budget)",
                humantime::format_duration(budget)
            ),
            request_id: None,
            extended_request_id: None,
        }
    }
}

/// How a step ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure(Failure),
}

/// One step's result; `outcome` is `None` when the step was not run (its dependency failed,
/// the deadline had passed, or the daemon is shutting down) and then it is not counted.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    pub probe: Probe,
    pub outcome: Option<Outcome>,
    #[serde(with = "secs")]
    pub duration: Duration,
    #[serde(skip)]
    pub finished_at: SystemTime,
}

/// A read or listing that did not reflect an acknowledged write or delete.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub check: Check,
    /// From the write (or delete) acknowledgement to the first consistent answer; when the view
    /// stayed stale until the deadline, the time until the last stale answer (a lower bound).
    #[serde(with = "secs")]
    pub staleness: Duration,
    /// Whether a consistent answer was seen before the deadline.
    pub resolved: bool,
}

/// Everything one cycle found.
#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    pub target: String,
    pub key: String,
    #[serde(with = "unix")]
    pub started_at: SystemTime,
    pub results: Vec<ProbeResult>,
    pub violations: Vec<Violation>,
    /// Requests sent by this cycle (first attempts; the SDK's retries are not included).
    pub requests: u32,
    /// Whether the canary is known to be gone at the end (deleted, or never written).
    pub cleaned_up: bool,
}

impl CycleReport {
    /// True when every step that ran succeeded.
    pub fn passed(&self) -> bool {
        self.results
            .iter()
            .all(|r| !matches!(r.outcome, Some(Outcome::Failure(_))))
    }
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

mod unix {
    pub fn serialize<S: serde::Serializer>(
        t: &std::time::SystemTime,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(crate::metrics::unix_seconds(*t))
    }
}

/// A version of the canary that S3 acknowledged.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub body: Bytes,
    pub etag: Option<String>,
    pub acked_at: Instant,
}

/// State shared by the steps of one cycle.
pub(crate) struct Cycle<'a> {
    pub bucket: &'a Bucket,
    pub key: String,
    size: usize,
    pub deadline: Instant,
    /// Acknowledged versions, oldest first.
    pub versions: Vec<Version>,
    /// Whether the canary may exist in the bucket (so cleanup must delete it).
    pub may_exist: bool,
    pub violations: Vec<Violation>,
    /// The failure a step had established when the deadline cut it short.
    pub pending_failure: Option<Failure>,
    pub requests: u32,
}

impl<'a> Cycle<'a> {
    /// A body that differs from every earlier version: a header naming key and version, then
    /// random bytes.
    pub fn new_body(&self) -> Bytes {
        let mut body = vec![0u8; self.size];
        rand::fill(&mut body[..]);
        // Printable, so a canary opened by hand reads as text (a slight bias is harmless).
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        for b in body.iter_mut() {
            *b = ALPHABET[usize::from(*b) % ALPHABET.len()];
        }
        let header = format!("s3canary {} v{}\n", self.key, self.versions.len() + 1);
        let n = header.len().min(self.size.saturating_sub(16));
        body[..n].copy_from_slice(&header.as_bytes()[..n]);
        Bytes::from(body)
    }

    /// The version that should be visible now.
    pub fn current(&self) -> Option<&Version> {
        self.versions.last()
    }

    /// Counts a request about to be sent (for the cost figures).
    pub fn count(&mut self) {
        self.requests += 1;
    }

    /// Records a newly seen violation; returns its index for [`Cycle::settle`].
    pub fn violation(&mut self, check: Check, since: Instant) -> usize {
        self.violations.push(Violation {
            check,
            staleness: since.elapsed(),
            resolved: false,
        });
        self.violations.len() - 1
    }

    /// Updates the staleness of violation `i` after another read.
    pub fn settle(&mut self, i: usize, since: Instant, resolved: bool) {
        let v = &mut self.violations[i];
        v.staleness = since.elapsed();
        v.resolved = resolved;
    }

    /// Waits before the next re-read: short at first, coarser later, never past the deadline.
    /// Returns false when no time is left for another read.
    pub async fn pause_before_reread(&self, attempt: u32) -> bool {
        let delay = Duration::from_millis(20)
            .saturating_mul(2u32.saturating_pow(attempt.min(5)))
            .min(Duration::from_millis(500));
        if Instant::now() + delay >= self.deadline {
            return false;
        }
        tokio::time::sleep(delay).await;
        true
    }
}

/// Hex MD5 of `b`, the ETag S3 gives a single-part, non-KMS object.
pub fn md5_hex(b: &[u8]) -> String {
    let d = Md5::digest(b);
    d.iter().map(|x| format!("{x:02x}")).collect()
}

/// A fresh canary key: `<prefix><target>/<unix_ms>-<16 hex>`.
pub fn new_key(canary_prefix: &str) -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!("{canary_prefix}{ms:013}-{:016x}", rand::random::<u64>())
}

/// If `key` is a canary under `canary_prefix` (exact format), its write time.
pub fn parse_key(canary_prefix: &str, key: &str) -> Option<SystemTime> {
    let rest = key.strip_prefix(canary_prefix)?;
    let (ms, rand) = rest.split_once('-')?;
    if ms.len() != 13
        || !ms.bytes().all(|b| b.is_ascii_digit())
        || rand.len() != 16
        || !rand.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_millis(ms.parse().ok()?))
}

/// Pages of 1000 keys a canary listing reads at most.
pub const MAX_LIST_PAGES: usize = 20;

/// Keys under `prefix` that have the exact canary format, with their write times (at most
/// [`MAX_LIST_PAGES`] pages). Any other key, even under the prefix, is left out.
pub async fn list_canaries(
    b: &Bucket,
    prefix: &str,
) -> Result<Vec<(String, SystemTime)>, S3Failure> {
    let mut out = Vec::new();
    let mut start_after: Option<String> = None;
    for _ in 0..MAX_LIST_PAGES {
        let (keys, truncated, _) = b.list(prefix, start_after.as_deref()).await?;
        out.extend(
            keys.iter()
                .filter_map(|k| parse_key(prefix, k).map(|t| (k.clone(), t))),
        );
        match keys.last() {
            Some(last) if truncated => start_after = Some(last.clone()),
            _ => break,
        }
    }
    Ok(out)
}

/// Runs one cycle of `target`'s enabled probes against `bucket` and always cleans up.
///
/// Steps stop at `deadline`; when `token` is cancelled the step in flight finishes (bounded by
/// the deadline) and the remaining steps are not run. The canary is then deleted within
/// [`CLEANUP_BUDGET`], whatever happened before.
pub async fn run_cycle(
    bucket: &Bucket,
    target: &Target,
    deadline: Instant,
    token: &CancellationToken,
) -> CycleReport {
    let key = new_key(&target.canary_prefix());
    let started_at = SystemTime::now();
    let budget = target.timeout;
    let mut c = Cycle {
        bucket,
        key: key.clone(),
        size: target.object_size as usize,
        deadline,
        versions: Vec::new(),
        may_exist: false,
        violations: Vec::new(),
        pending_failure: None,
        requests: 0,
    };
    let mut results = Vec::with_capacity(target.probes.len());
    let mut put_ok = false;
    for &probe in &target.probes {
        let runnable = probe == Probe::Put || put_ok;
        if !runnable || token.is_cancelled() || Instant::now() >= deadline {
            results.push(ProbeResult {
                probe,
                outcome: None,
                duration: Duration::ZERO,
                finished_at: SystemTime::now(),
            });
            continue;
        }
        let start = Instant::now();
        c.pending_failure = None;
        // Cancellation is honoured between steps, not inside one: an abandoned PUT could land
        // after the cleanup DELETE and leave a canary behind. A step is bounded by the deadline.
        let outcome = match tokio::time::timeout_at(deadline, run_step(probe, &mut c)).await {
            Ok(Ok(())) => Outcome::Success,
            Ok(Err(f)) => Outcome::Failure(f),
            Err(_) => Outcome::Failure(
                c.pending_failure
                    .take()
                    .unwrap_or_else(|| Failure::timeout(budget)),
            ),
        };
        let outcome = Some(outcome);
        if probe == Probe::Put {
            put_ok = matches!(outcome, Some(Outcome::Success));
        }
        results.push(ProbeResult {
            probe,
            outcome,
            duration: start.elapsed(),
            finished_at: SystemTime::now(),
        });
    }

    let mut cleaned_up = !c.may_exist;
    if c.may_exist {
        c.count();
        match tokio::time::timeout(CLEANUP_BUDGET, bucket.delete(&key)).await {
            Ok(Ok(_)) => cleaned_up = true,
            Ok(Err(e)) => tracing::warn!(
                target = %target.name, key = %key, reason = e.reason.as_str(),
                code = ?e.code, "canary cleanup failed; the orphan sweep will retry"
            ),
            Err(_) => tracing::warn!(
                target = %target.name, key = %key,
                "canary cleanup timed out; the orphan sweep will retry"
            ),
        }
    }
    CycleReport {
        target: target.name.clone(),
        key,
        started_at,
        results,
        violations: c.violations,
        requests: c.requests,
        cleaned_up,
    }
}

async fn run_step(probe: Probe, c: &mut Cycle<'_>) -> Result<(), Failure> {
    match probe {
        Probe::Put => put::run(c).await,
        Probe::Get => get::run(c).await,
        Probe::List => list::run(c).await,
        Probe::Overwrite => overwrite::run(c).await,
        Probe::Delete => delete::run(c).await,
        Probe::Conditional => conditional::run(c).await,
    }
}

/// How a read compares with what was written.
enum Seen {
    Current,
    /// 404, or an older version's bytes.
    Stale,
    /// Bytes of no version this cycle wrote, or the right bytes with a wrong ETag.
    Corrupt(String),
}

fn judge(c: &Cycle<'_>, read: Option<&crate::s3::Read>) -> Seen {
    let Some(cur) = c.current() else {
        return Seen::Corrupt("no acknowledged version to compare with".into());
    };
    let Some(r) = read else { return Seen::Stale };
    if r.body == cur.body {
        match (&r.etag, &cur.etag) {
            (Some(a), Some(b)) if a != b => {
                Seen::Corrupt(format!("ETag {a} differs from the PUT's ETag {b}"))
            }
            _ => Seen::Current,
        }
    } else if c.versions.iter().rev().skip(1).any(|v| v.body == r.body) {
        Seen::Stale
    } else {
        Seen::Corrupt(format!(
            "{} bytes with MD5 {} match no version written (expected {} bytes, MD5 {})",
            r.body.len(),
            md5_hex(&r.body),
            cur.body.len(),
            md5_hex(&cur.body)
        ))
    }
}

/// GetObject that must return the current version; on a stale answer, records a violation of
/// `check` and keeps re-reading until the answer is current or the deadline, to measure how long
/// the stale view lasted.
async fn read_current(c: &mut Cycle<'_>, check: Check) -> Result<(), Failure> {
    let since = c.current().map(|v| v.acked_at).unwrap_or_else(Instant::now);
    c.count();
    let first = c
        .bucket
        .get(&c.key)
        .await
        .map_err(|e| Failure::s3("GetObject", e))?;
    match judge(c, first.as_ref()) {
        Seen::Current => return Ok(()),
        Seen::Corrupt(why) => {
            let ids = first.map(|r| r.ids).unwrap_or_default();
            return Err(Failure::wrong_answer(
                Reason::ContentMismatch,
                "GetObject",
                &ids,
                why,
            ));
        }
        Seen::Stale => {}
    }
    let ids = first.map(|r| r.ids).unwrap_or_default();
    let what = if c.versions.len() > 1 {
        "an older version"
    } else {
        "404"
    };
    let failure = Failure::wrong_answer(
        Reason::StaleRead,
        "GetObject",
        &ids,
        format!("GetObject after an acknowledged PutObject returned {what}"),
    );
    c.pending_failure = Some(failure.clone());
    let i = c.violation(check, since);
    let mut attempt = 0;
    while c.pause_before_reread(attempt).await {
        attempt += 1;
        c.count();
        let again = match c.bucket.get(&c.key).await {
            Ok(r) => r,
            Err(_) => continue,
        };
        match judge(c, again.as_ref()) {
            Seen::Current => {
                c.settle(i, since, true);
                return Err(failure);
            }
            _ => c.settle(i, since, false),
        }
    }
    Err(failure)
}

/// Lists `c.key` as a prefix and says whether the key is there.
async fn listed(c: &mut Cycle<'_>) -> Result<(bool, Ids), Failure> {
    c.count();
    let (keys, _, ids) = c
        .bucket
        .list(&c.key, None)
        .await
        .map_err(|e| Failure::s3("ListObjectsV2", e))?;
    Ok((keys.contains(&c.key), ids))
}

/// Re-runs `listed` until the key's presence equals `want` or the deadline; updates violation
/// `i` measured from `since`.
async fn relist_until(c: &mut Cycle<'_>, want: bool, i: usize, since: Instant) {
    let mut attempt = 0;
    while c.pause_before_reread(attempt).await {
        attempt += 1;
        match listed(c).await {
            Ok((present, _)) if present == want => {
                c.settle(i, since, true);
                return;
            }
            _ => c.settle(i, since, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_foreign_keys_are_rejected() {
        let k = new_key("s3canary/a/");
        assert!(parse_key("s3canary/a/", &k).is_some());
        assert!(parse_key("s3canary/b/", &k).is_none());
        assert!(parse_key("s3canary/a/", "s3canary/a/important.txt").is_none());
        assert!(parse_key("s3canary/a/", "s3canary/a/1700000000000-0123456789abcdeg").is_none());
        assert!(parse_key("s3canary/a/", "s3canary/a/1700000000000-0123456789abcdef/x").is_none());
        let t = parse_key("s3canary/a/", "s3canary/a/1700000000000-0123456789abcdef").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_millis(1_700_000_000_000));
    }
}
