//! The probe cycle: a fresh canary key, the enabled steps in order, cleanup at the end.
//!
//! Each step lives in its own file and is a plain async function doing S3 I/O against the
//! shared [`Cycle`] state. Steps never decide time: the scheduler hands the cycle a deadline,
//! [`run_cycle`] enforces it around every step, and the re-reads that measure a stale view
//! ([`Cycle::reread_until`]) stop at it too.

mod cdn;
mod conditional;
mod delete;
mod get;
mod list;
mod overwrite;
mod put;

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::canary;
use crate::canary::md5_hex;
use crate::config::Target;
use crate::report::{
    Check, CycleReport, Failure, Outcome, Probe, ProbeResult, RequestIds, Violation, or_dash,
};
use crate::s3::{Bucket, Condition, Read, Written};
use cdn::{CdnRun, Phase};

/// Most time allowed to delete the canary after the steps. On shutdown it is all given; while
/// the daemon runs, cleanup also ends [`CLEANUP_SLACK`] before the target's next cycle is due,
/// so a target whose requests hang still starts a cycle at every tick.
pub const CLEANUP_BUDGET: Duration = Duration::from_secs(5);

/// How long before the next tick the cleanup of a cycle gives up at the latest.
pub const CLEANUP_SLACK: Duration = Duration::from_millis(20);

/// How a read compares with what was written.
pub(crate) enum Seen {
    Current,
    /// 404, or an older version's bytes.
    Stale,
    /// Bytes of no version this cycle wrote, or the right bytes with a wrong ETag.
    Corrupt(String),
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
    /// On a versioned bucket, every version and delete marker this cycle created, oldest
    /// first: cleanup deletes each by its id, so nothing is left behind.
    pub created: Vec<String>,
    /// Whether a write whose outcome is unknown (timed out, 5xx) may have created a version
    /// whose id the cycle never learnt.
    pub unknown_write: bool,
    pub violations: Vec<Violation>,
    /// The failure a step had established when the deadline cut it short.
    pub pending_failure: Option<Failure>,
    pub requests: u32,
    /// The CDN's base URL, with the cdn probe.
    pub cdn: Option<String>,
    /// GETs sent through the CDN.
    pub cdn_requests: u32,
}

impl<'a> Cycle<'a> {
    /// A body that differs from every earlier version: a header naming key and version, then
    /// random bytes.
    pub fn new_body(&self) -> Bytes {
        let mut body = vec![0u8; self.size];
        rand::fill(&mut body[..]);
        // Printable, so a canary opened by hand reads as text: six random bits a byte, shown
        // as '0' to 'o' (a mask and an add the compiler vectorizes; a remainder into an
        // alphabet cost a division per byte, about 1% of a cycle's CPU).
        for b in body.iter_mut() {
            *b = b'0' + (*b & 63);
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

    /// PutObject of a new body under `cond`; an acknowledged write becomes the current version.
    /// Returns S3's answer and the body sent.
    ///
    /// A write that timed out, lost its connection or got a 5xx may have landed, so the canary
    /// may exist from then on and cleanup deletes it. A write S3 refused with a 4xx (denied, no
    /// such bucket, a failed condition) wrote nothing: it changes nothing to clean up.
    pub async fn write(&mut self, cond: &Condition) -> Result<(Written, Bytes), Failure> {
        let body = self.new_body();
        let existed = self.may_exist;
        self.may_exist = true;
        self.count();
        match self.bucket.put(&self.key, body.clone(), cond).await {
            Ok(w) => {
                self.acknowledged(body.clone(), &w);
                Ok((w, body))
            }
            Err(f) => {
                if f.status
                    .is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429)
                {
                    self.may_exist = existed;
                }
                Err(f)
            }
        }
    }

    /// Deletes what the cycle left: every version it created by its id (on a versioned bucket a
    /// plain delete would only add a delete marker), and the key itself when it may exist
    /// without a known version (an unversioned bucket, or a write whose answer was lost).
    async fn clean_up(&mut self) -> Result<(), Failure> {
        let versioned = !self.created.is_empty();
        while let Some(v) = self.created.last().cloned() {
            self.count();
            self.bucket.delete_version(&self.key, &v).await?;
            self.created.pop();
        }
        if self.may_exist && (!versioned || self.unknown_write) {
            self.count();
            self.bucket.delete(&self.key).await?;
        }
        self.may_exist = false;
        Ok(())
    }

    /// Records `body`, written with answer `w`, as the current version.
    pub fn acknowledged(&mut self, body: Bytes, w: &Written) {
        if let Some(v) = &w.version_id {
            self.created.push(v.clone());
        }
        self.versions.push(Version {
            body,
            etag: w.etag.clone(),
            acked_at: Instant::now(),
        });
    }

    /// How `read` (None: 404) compares with the versions this cycle wrote.
    pub fn judge(&self, read: Option<&Read>) -> Seen {
        let Some(cur) = self.current() else {
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
        } else if self.versions.iter().rev().skip(1).any(|v| v.body == r.body) {
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

    /// Records a newly seen violation of `check` whose staleness counts from `since`; returns
    /// its index.
    pub fn violation(&mut self, check: Check, since: Instant) -> usize {
        self.violations.push(Violation {
            check,
            staleness: Some(since.elapsed()),
            resolved: false,
        });
        self.violations.len() - 1
    }

    /// Records that S3 accepted a conditional write of `check` it had to refuse.
    pub fn precondition_ignored(&mut self, check: Check) {
        self.violations.push(Violation {
            check,
            staleness: None,
            resolved: false,
        });
    }

    /// After violation `i`, re-reads until the answer is what `want` says or the deadline, to
    /// measure how long the stale view lasted (from `since`). Waits are short at first and
    /// coarser later; each read is counted.
    pub async fn reread_until(&mut self, i: usize, since: Instant, want: Want) {
        let mut attempt = 0u32;
        loop {
            let delay = Duration::from_millis(20)
                .saturating_mul(2u32.saturating_pow(attempt.min(5)))
                .min(Duration::from_millis(500));
            if Instant::now() + delay >= self.deadline {
                return;
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
            if !matches!(want, Want::Cdn) {
                self.count();
            }
            let Some(consistent) = self.reread(want).await else {
                continue;
            };
            let v = &mut self.violations[i];
            v.staleness = Some(since.elapsed());
            v.resolved = consistent;
            if consistent {
                return;
            }
        }
    }
}

impl Cycle<'_> {
    /// ListObjectsV2 with the canary's key as prefix: whether the key is listed. Listing the
    /// full key costs one request and returns at most one entry, however many other objects the
    /// bucket holds.
    pub async fn list_shows_key(&self) -> Result<(bool, RequestIds), Failure> {
        let (keys, _, ids) = self.bucket.list(&self.key, None).await?;
        Ok((keys.contains(&self.key), ids))
    }
}

/// What a consistent answer to a re-read is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Want {
    /// GetObject returns the current version (a failed GET is no answer).
    Current,
    /// HeadObject finds nothing (a failed HEAD counts as stale).
    Absent,
    /// ListObjectsV2 shows the key, or does not (a failed listing counts as stale).
    Listed(bool),
    /// A GET through the CDN returns the current version.
    Cdn,
}

impl Cycle<'_> {
    /// One re-read: `Some(true)` for a consistent answer, `Some(false)` for a stale one, `None`
    /// for no answer to judge (which leaves the measurement as it was).
    async fn reread(&mut self, want: Want) -> Option<bool> {
        match want {
            Want::Current => {
                let again = self.bucket.get(&self.key).await.ok()?;
                Some(matches!(self.judge(again.as_ref()), Seen::Current))
            }
            Want::Absent => Some(matches!(self.bucket.head(&self.key).await, Ok(None))),
            Want::Listed(present) => {
                let listing = self.list_shows_key().await;
                Some(listing.is_ok_and(|(shown, _)| shown == present))
            }
            Want::Cdn => self.cdn_reread().await,
        }
    }
}

/// Runs one cycle of `target`'s enabled probes against `bucket` and always cleans up.
///
/// Steps stop at `deadline`; when `token` is cancelled the step in flight finishes (bounded by
/// the deadline) and the remaining steps are not run. The canary is then deleted within
/// [`CLEANUP_BUDGET`], whatever happened before, and before the next cycle is due (the cycle
/// started at `deadline - timeout`, the next one is due an interval later).
pub async fn run_cycle(
    bucket: &Bucket,
    target: &Target,
    deadline: Instant,
    token: &CancellationToken,
) -> CycleReport {
    let key = canary::new_key(&target.canary_prefix());
    let started_at = SystemTime::now();
    let budget = target.timeout;
    let mut c = Cycle {
        bucket,
        key: key.clone(),
        size: target.object_size as usize,
        deadline,
        versions: Vec::new(),
        may_exist: false,
        created: Vec::new(),
        unknown_write: false,
        violations: Vec::new(),
        pending_failure: None,
        requests: 0,
        cdn: target
            .cdn
            .as_ref()
            .filter(|_| target.runs(Probe::Cdn))
            .map(|c| c.url.clone()),
        cdn_requests: 0,
    };
    let mut results = Vec::with_capacity(target.probes.len());
    let mut put_ok = false;
    let mut cdn = CdnRun::default();
    // A CDN phase (its re-reads of a stale view) may use half the cycle's budget, so a CDN that
    // caches longer than that cannot keep the S3 steps after it from running.
    let cdn_budget = target.timeout / 2;
    if c.cdn.is_some() {
        cdn.phase(&mut c, deadline, cdn_budget, Phase::BeforePut)
            .await;
    }
    for &probe in target.probes.iter().filter(|p| p.is_step()) {
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
        // Boxed: a step's future (the SDK's request futures inside) is large; kept inline it
        // would make every cycle's future as large, and debug builds copy it on the stack.
        let step = Box::pin(run_step(probe, &mut c));
        let outcome = match tokio::time::timeout_at(deadline, step).await {
            Ok(Ok(())) => Outcome::Success,
            Ok(Err(f)) => Outcome::Failure(f),
            Err(_) => Outcome::Failure(
                c.pending_failure
                    .take()
                    .unwrap_or_else(|| Failure::timeout(budget)),
            ),
        };
        if probe == Probe::Put {
            put_ok = matches!(outcome, Outcome::Success);
        }
        let passed = matches!(outcome, Outcome::Success);
        results.push(ProbeResult {
            probe,
            outcome: Some(outcome),
            duration: start.elapsed(),
            finished_at: SystemTime::now(),
        });
        if c.cdn.is_some() && passed {
            match probe {
                Probe::Put => {
                    cdn.phase(&mut c, deadline, cdn_budget, Phase::AfterWrite)
                        .await
                }
                Probe::Overwrite => {
                    cdn.phase(&mut c, deadline, cdn_budget, Phase::AfterOverwrite)
                        .await
                }
                _ => {}
            }
        }
    }

    if c.cdn.is_some() {
        let took = cdn.took;
        results.push(ProbeResult {
            probe: Probe::Cdn,
            outcome: cdn.outcome(put_ok),
            duration: took,
            finished_at: SystemTime::now(),
        });
    }

    let mut until = Instant::now() + CLEANUP_BUDGET;
    if !token.is_cancelled() {
        let next_cycle = deadline - target.timeout + target.interval;
        until = until.min(next_cycle - CLEANUP_SLACK);
    }
    let cleaned_up = match tokio::time::timeout_at(until, c.clean_up()).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(target = %target.name, key = %key, reason = e.reason.as_str(),
                code = or_dash(&e.code), "canary cleanup failed; the orphan sweep will retry");
            false
        }
        Err(_) => {
            tracing::warn!(target = %target.name, key = %key,
                "canary cleanup timed out; the orphan sweep will retry");
            false
        }
    };
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

/// One cycle of `target` from now, with its own timeout and nothing cancelling it: what `once`,
/// the tests and the benchmark run.
pub async fn run_alone(bucket: &Bucket, target: &Target) -> CycleReport {
    let deadline = Instant::now() + target.timeout;
    run_cycle(bucket, target, deadline, &CancellationToken::new()).await
}

async fn run_step(probe: Probe, c: &mut Cycle<'_>) -> Result<(), Failure> {
    match probe {
        Probe::Put => put::run(c).await,
        Probe::Get => get::run(c).await,
        Probe::List => list::run(c).await,
        Probe::Overwrite => overwrite::run(c).await,
        Probe::Delete => delete::run(c).await,
        Probe::Conditional => conditional::run(c).await,
        Probe::Events | Probe::Cdn | Probe::Durability => {
            unreachable!("{probe} is not a step; run_cycle runs steps only")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;

    use crate::embedded::EmbeddedS3;
    use crate::report::Sinks;
    use crate::s3::Condition;

    fn size<T>(_: &T) -> usize {
        std::mem::size_of::<T>()
    }

    /// Futures are moved, so their size is copied: the SDK's request futures (7-10 KiB) are
    /// boxed where a bucket sends them, and nothing around them grows with them. Unboxed, a
    /// PutObject was 38 KiB and a cycle 23 KiB.
    #[tokio::test]
    async fn a_cycle_future_stays_small() {
        let s3 = EmbeddedS3::start(&["bench"]).await.unwrap();
        let t = s3.target("sizes", "bench", "");
        let b = EmbeddedS3::client_factory()
            .bucket(&t, Arc::new(Sinks::default()))
            .await;
        let token = CancellationToken::new();
        let cycle = size(&super::run_cycle(&b, &t, Instant::now(), &token));
        let put = size(&b.put("k", bytes::Bytes::new(), &Condition::None));
        let head = size(&b.head("k"));
        let sdk = size(&b.client.put_object().send());
        assert!(sdk > 4096, "the SDK's PutObject future is {sdk} bytes");
        assert!(cycle < 2048, "a cycle's future is {cycle} bytes");
        assert!(put < 1024 && head < 1024, "put {put}, head {head} bytes");
    }
}
