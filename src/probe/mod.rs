//! The probe cycle: a fresh canary key, the enabled steps in order, cleanup at the end.
//!
//! Each step lives in its own file and is a plain async function doing S3 I/O against the
//! shared [`Cycle`] state. Steps never decide time: the scheduler hands the cycle a deadline,
//! [`run_cycle`] enforces it around every step, and the re-reads that measure a stale view
//! ([`Cycle::reread_until`]) stop at it too.

mod cdn;
mod checksum;
mod conditional;
mod cycle;
mod delete;
mod get;
mod list;
mod overwrite;
mod put;

use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::canary;
use crate::config::Target;
use crate::report::{CycleReport, Failure, Probe, ProbeResult, Skip, or_dash};
use crate::s3::Bucket;
use cdn::CdnRun;
pub(crate) use cycle::{Cycle, Seen, Want};

/// Most time allowed to delete the canary after the steps. On shutdown it is all given; while
/// the daemon runs, cleanup also ends [`CLEANUP_SLACK`] before the target's next cycle is due,
/// so a target whose requests hang still starts a cycle at every tick.
pub const CLEANUP_BUDGET: Duration = Duration::from_secs(5);

/// How long before the next tick the cleanup of a cycle gives up at the latest.
pub const CLEANUP_SLACK: Duration = Duration::from_millis(20);

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
    let cdn_url = target
        .cdn
        .as_ref()
        .filter(|_| target.runs(Probe::Cdn))
        .map(|c| c.url.clone());
    let size = target.object_size as usize;
    let mut c = Cycle::new(bucket, key.clone(), size, deadline, cdn_url);
    // The checksum probe takes the next algorithm and form in its rotation each cycle.
    if let Some(cfg) = target
        .checksum
        .as_ref()
        .filter(|_| target.runs(Probe::Checksum))
    {
        let n = bucket.next_turn();
        c.checksum = Some(checksum::rotation(&cfg.algorithms, n));
    }
    let mut results = Vec::with_capacity(target.probes.len());
    let mut put_ok = false;
    // The cdn probe watches the steps from beside them: before the first and after each that
    // passed. A CDN phase may use half the cycle's budget, so a CDN that caches longer than
    // that cannot keep the S3 steps after it from running.
    let mut cdn = c.cdn.is_some().then(|| CdnRun::new(target.timeout / 2));
    if let Some(cdn) = &mut cdn {
        cdn.before_steps(&mut c).await;
    }
    for step in target.probes.iter().filter_map(|p| Step::of(*p)) {
        let skip = if step != Step::Put && !put_ok {
            Some(Skip::After(Probe::Put))
        } else if token.is_cancelled() {
            Some(Skip::Shutdown)
        } else if Instant::now() >= deadline {
            Some(Skip::Deadline)
        } else {
            None
        };
        if let Some(why) = skip {
            results.push(ProbeResult::not_run(step.probe(), why));
            continue;
        }
        let start = Instant::now();
        c.pending_failure = None;
        // Cancellation is honoured between steps, not inside one: an abandoned PUT could land
        // after the cleanup DELETE and leave a canary behind. A step is bounded by the deadline.
        // Boxed: a step's future (the SDK's request futures inside) is large; kept inline it
        // would make every cycle's future as large, and debug builds copy it on the stack.
        let run = Box::pin(step.run(&mut c));
        let result = match tokio::time::timeout_at(deadline, run).await {
            Ok(r) => r,
            Err(_) => Err(c
                .pending_failure
                .take()
                .unwrap_or_else(|| Failure::timeout(start.elapsed(), budget))),
        };
        let passed = result.is_ok();
        if step == Step::Put {
            put_ok = passed;
        }
        results.push(ProbeResult::ran(step.probe(), result, start.elapsed()));
        if let Some(cdn) = &mut cdn
            && passed
        {
            cdn.after(&mut c, step).await;
        }
    }
    results.extend(cdn.map(|cdn| cdn.result(put_ok)));

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
        requests: c.requests(),
        violations: c.violations,
        cleaned_up,
    }
}

/// One cycle of `target` and the probe beside it that runs once per cycle: the durability
/// set's check (one object read, within its own budget), when the target has `durability`.
/// What the daemon's loops and `once` both run; events need no call here (the ledger watches
/// the bucket's writes) and cdn is part of the cycle.
pub async fn run_target(
    bucket: &Bucket,
    target: &Target,
    durability: Option<&crate::durability::Monitor>,
    deadline: Instant,
    token: &CancellationToken,
) -> CycleReport {
    let mut report = run_cycle(bucket, target, deadline, token).await;
    if let Some(d) = durability
        && !token.is_cancelled()
        && let Ok(r) = tokio::time::timeout(d.budget(), d.check(bucket)).await
    {
        report.results.push(r);
    }
    report
}

/// One cycle of `target` from now, with its own timeout and nothing cancelling it: what `once`,
/// the tests and the benchmark run.
pub async fn run_alone(bucket: &Bucket, target: &Target) -> CycleReport {
    let deadline = Instant::now() + target.timeout;
    run_cycle(bucket, target, deadline, &CancellationToken::new()).await
}

/// A step of the cycle: the probes that run in order on one canary, each needing the put
/// before it. The other probes (cdn, events, durability) run beside the steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Writes the canary (the steps after it need it).
    Put,
    /// Reads it back: read-after-write.
    Get,
    /// Lists the prefix for it: list-after-write.
    List,
    /// Overwrites it and reads the new bytes: read-after-overwrite.
    Overwrite,
    /// Deletes it, then reads and lists: read- and list-after-delete.
    Delete,
    /// Conditional writes that must be refused: If-None-Match and If-Match.
    Conditional,
    /// An upload with a checksum as current SDKs send it, read back with checksum mode on.
    Checksum,
}

impl Step {
    /// The probe this step reports as.
    pub fn probe(self) -> Probe {
        match self {
            Step::Put => Probe::Put,
            Step::Get => Probe::Get,
            Step::List => Probe::List,
            Step::Overwrite => Probe::Overwrite,
            Step::Delete => Probe::Delete,
            Step::Conditional => Probe::Conditional,
            Step::Checksum => Probe::Checksum,
        }
    }

    /// The step of `probe`, if it is one (the steps' order is [`Probe::STEPS`]).
    pub fn of(probe: Probe) -> Option<Step> {
        Some(match probe {
            Probe::Put => Step::Put,
            Probe::Get => Step::Get,
            Probe::List => Step::List,
            Probe::Overwrite => Step::Overwrite,
            Probe::Delete => Step::Delete,
            Probe::Conditional => Step::Conditional,
            Probe::Checksum => Step::Checksum,
            Probe::Multipart | Probe::Events | Probe::Cdn | Probe::Durability => return None,
        })
    }

    async fn run(self, c: &mut Cycle<'_>) -> Result<(), Failure> {
        match self {
            Step::Put => put::run(c).await,
            Step::Get => get::run(c).await,
            Step::List => list::run(c).await,
            Step::Overwrite => overwrite::run(c).await,
            Step::Delete => delete::run(c).await,
            Step::Conditional => conditional::run(c).await,
            Step::Checksum => checksum::run(c).await,
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

    use super::{Probe, Step};

    /// The steps are the probes that are steps, in cycle order, and each has its `Step`.
    #[test]
    fn steps_are_the_step_probes_in_order() {
        let steps: Vec<Probe> = Probe::ALL.into_iter().filter(|p| p.is_step()).collect();
        assert_eq!(steps, Probe::STEPS);
        for p in Probe::ALL {
            assert_eq!(Step::of(p).map(Step::probe), p.is_step().then_some(p));
        }
    }

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
