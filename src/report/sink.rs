//! The interface between producers and outputs: producers (cycles, the S3 attempt recorder,
//! replication canaries, the events ledger, sweeps) call a [`Sink`] and never know which outputs
//! are behind it; [`Sinks`] hands every report to each output in turn. Everything a sink is
//! given is this module's vocabulary, so the outputs depend on `report` and nothing here
//! depends on them.

use std::sync::Arc;
use std::time::Duration;

use super::{
    CycleReport, DurabilityCount, EventReport, PairLabels, ProbeResult, ReplicationEvent,
    RequestPhases, TargetInfo, TargetLabels,
};

/// One S3 request attempt, as the attempt recorder reports it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The SDK's operation name (PutObject, ...).
    pub operation: &'a str,
    pub took: Duration,
    /// The bounded error code, unless it succeeded or got an expected answer.
    pub error: Option<&'a str>,
    /// The answer's `x-amz-request-id`, bounded.
    pub request_id: Option<&'a str>,
}

/// What producers report. Every method has an empty default, so an output implements only what
/// it shows.
pub trait Sink: Send + Sync {
    /// A target is scheduled: its series exist from now on, so rates and absence alerts work
    /// from the first scrape instead of from the first failure.
    fn target_added(&self, _t: &TargetInfo) {}
    /// A target was removed or changed by a reload: forget it.
    fn target_removed(&self, _t: &TargetLabels) {}
    /// A cycle of `t` finished.
    fn cycle(&self, _t: &TargetLabels, _report: &CycleReport) {}
    /// A run of a probe that reports on its own time ended: the events probe, one run per
    /// expected notification resolved (delivered, or lost after the timeout) and one failed
    /// run per duplicate. `key` is the canary it was about. A sink counts it exactly as it
    /// counts a result of [`Sink::cycle`].
    fn result(&self, _t: &TargetLabels, _key: &str, _r: &ProbeResult) {}
    /// A tick of the target found its previous cycle still running.
    fn cycle_skipped(&self, _t: &TargetLabels) {}
    /// The orphan sweep deleted `n` canaries of earlier runs.
    fn orphans_swept(&self, _t: &TargetLabels, _n: u64) {}
    /// A sweep of the target's multipart uploads ended.
    fn uploads_swept(&self, _t: &TargetLabels, _s: &crate::report::UploadSweep) {}
    /// One S3 request attempt of a target ended after `took`, with an error code unless it
    /// succeeded (or got an answer the probes expect, such as a 404 after a delete), and the
    /// `x-amz-request-id` of its answer when it had one.
    fn attempt(&self, _t: &TargetLabels, _a: &Attempt<'_>) {}
    /// An S3 request attempt of the target got an answer: where its time went.
    fn request_phases(&self, _t: &TargetLabels, _p: &RequestPhases) {}
    /// An answer of S3 to the target carried a `Date`: the local clock minus it, in whole
    /// seconds.
    fn clock_skew(&self, _t: &TargetLabels, _seconds: i64) {}
    /// The credentials the target's requests are signed with: when they expire (None for
    /// static keys) and how many loads of them failed since the start.
    fn credentials(
        &self,
        _t: &TargetLabels,
        _expiry: Option<std::time::SystemTime>,
        _failures: u64,
    ) {
    }
    /// A replication pair is scheduled.
    fn pair_added(&self, _p: &PairLabels) {}
    /// A replication pair was removed or changed by a reload.
    fn pair_removed(&self, _p: &PairLabels) {}
    /// A replication canary of the pair was written, measured, lost or failed.
    fn replication(&self, _p: &PairLabels, _e: ReplicationEvent) {}
    /// Canaries of the pair in flight now, and the age of the oldest (before every scrape,
    /// flush and status request).
    fn replication_pending(&self, _p: &PairLabels, _count: usize, _oldest: Duration) {}
    /// An S3 event notification of the target was expected, delivered, lost or duplicated:
    /// the per-kind figures (the run it ends is reported to [`Sink::result`]).
    fn event(&self, _t: &TargetLabels, _r: &EventReport) {}
    /// Notifications of the target expected and not yet received, and the age of the oldest.
    fn events_pending(&self, _t: &TargetLabels, _count: usize, _oldest: Duration) {}
    /// A message on `queue` about no key of any target was left on the queue.
    fn foreign_message(&self, _queue: &str) {}
    /// The target's durability set was counted.
    fn durability(&self, _t: &TargetLabels, _c: DurabilityCount) {}
}

/// Every output of the daemon: each report goes to each sink, in order.
#[derive(Clone, Default)]
pub struct Sinks(Vec<Arc<dyn Sink>>);

impl Sinks {
    /// Outputs `sinks`.
    pub fn new(sinks: Vec<Arc<dyn Sink>>) -> Self {
        Sinks(sinks)
    }
}

impl std::fmt::Debug for Sinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sinks({})", self.0.len())
    }
}

impl Sink for Sinks {
    fn target_added(&self, t: &TargetInfo) {
        self.0.iter().for_each(|s| s.target_added(t));
    }
    fn target_removed(&self, t: &TargetLabels) {
        self.0.iter().for_each(|s| s.target_removed(t));
    }
    fn cycle(&self, t: &TargetLabels, report: &CycleReport) {
        self.0.iter().for_each(|s| s.cycle(t, report));
    }
    fn result(&self, t: &TargetLabels, key: &str, r: &ProbeResult) {
        self.0.iter().for_each(|s| s.result(t, key, r));
    }
    fn cycle_skipped(&self, t: &TargetLabels) {
        self.0.iter().for_each(|s| s.cycle_skipped(t));
    }
    fn uploads_swept(&self, t: &TargetLabels, s: &crate::report::UploadSweep) {
        self.0.iter().for_each(|x| x.uploads_swept(t, s));
    }
    fn request_phases(&self, t: &TargetLabels, p: &RequestPhases) {
        self.0.iter().for_each(|s| s.request_phases(t, p));
    }
    fn clock_skew(&self, t: &TargetLabels, seconds: i64) {
        self.0.iter().for_each(|s| s.clock_skew(t, seconds));
    }
    fn credentials(&self, t: &TargetLabels, expiry: Option<std::time::SystemTime>, failures: u64) {
        self.0
            .iter()
            .for_each(|s| s.credentials(t, expiry, failures));
    }
    fn orphans_swept(&self, t: &TargetLabels, n: u64) {
        self.0.iter().for_each(|s| s.orphans_swept(t, n));
    }
    fn attempt(&self, t: &TargetLabels, a: &Attempt<'_>) {
        self.0.iter().for_each(|s| s.attempt(t, a));
    }
    fn pair_added(&self, p: &PairLabels) {
        self.0.iter().for_each(|s| s.pair_added(p));
    }
    fn pair_removed(&self, p: &PairLabels) {
        self.0.iter().for_each(|s| s.pair_removed(p));
    }
    fn replication(&self, p: &PairLabels, e: ReplicationEvent) {
        self.0.iter().for_each(|s| s.replication(p, e));
    }
    fn event(&self, t: &TargetLabels, r: &EventReport) {
        self.0.iter().for_each(|s| s.event(t, r));
    }
    fn events_pending(&self, t: &TargetLabels, count: usize, oldest: Duration) {
        self.0
            .iter()
            .for_each(|s| s.events_pending(t, count, oldest));
    }
    fn foreign_message(&self, queue: &str) {
        self.0.iter().for_each(|s| s.foreign_message(queue));
    }
    fn durability(&self, t: &TargetLabels, c: DurabilityCount) {
        self.0.iter().for_each(|s| s.durability(t, c));
    }
    fn replication_pending(&self, p: &PairLabels, count: usize, oldest: Duration) {
        self.0
            .iter()
            .for_each(|s| s.replication_pending(p, count, oldest));
    }
}
