//! How each report becomes series: the [`Sink`] side of [`Metrics`].

use std::time::Duration;

use super::Metrics;
use crate::report::{
    Attempt, Check, CycleReport, EventKind, EventReport, PairLabels, Probe, ProbeResult,
    ReplicationEvent, RequestPhases, Sink, TargetInfo, TargetLabels, unix_seconds,
};

/// Operations whose attempts are counted in `s3canary_s3_request_errors_total` but not timed in
/// the request histogram: the multipart probe's, one upload every ten minutes by default. Twelve
/// classic series each would cost 60 of the 160 series a target may have with multipart and
/// checksum on, for one observation per ten minutes; the upload's time is the multipart
/// probe's duration, and a failing one names its operation.
pub const UNTIMED: [&str; 5] = [
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "ListMultipartUploads",
];

impl Sink for Metrics {
    fn target_added(&self, t: &TargetInfo) {
        let tl = &t.labels;
        self.network.target_added(tl);
        for p in &t.probes {
            // What the fast alerts read exists from the first scrape: a series that first
            // appears at 1 is invisible to increase() and rate().
            self.probe_runs.with_label_values(&tl.with(&[p.as_str()]));
            self.consecutive_failures
                .with_label_values(&tl.with(&[p.as_str()]))
                .set(0.0);
            for r in p.alerted_reasons() {
                self.probe_failures
                    .with_label_values(&tl.with(&[p.as_str(), r.as_str()]));
            }
            // Every enabled check's violations exist at 0 (seven series for the six steps):
            // rate(), increase() and absent() on them work before the first violation.
            for check in Check::of_probe(*p) {
                self.violations
                    .with_label_values(&tl.with(&[check.as_str()]));
            }
        }
        if t.runs(Probe::Events) {
            for k in EventKind::ALL {
                let lv = tl.with(&[k.as_str()]);
                self.events_expected.with_label_values(&lv);
                self.events_lost.with_label_values(&lv);
                self.event_duplicates.with_label_values(&lv);
            }
            self.events_pending
                .with_label_values(&tl.with(&[]))
                .set(0.0);
            self.events_oldest_pending
                .with_label_values(&tl.with(&[]))
                .set(0.0);
        }
        if t.runs(Probe::Multipart) {
            self.multipart_uploads_open
                .with_label_values(&tl.with(&[]))
                .set(0.0);
        }
        if t.runs(Probe::Durability) {
            for state in ["present", "lost", "corrupt"] {
                self.durability_objects
                    .with_label_values(&tl.with(&[state]))
                    .set(0.0);
            }
        }
        self.cycles_skipped.with_label_values(&tl.with(&[]));
        self.credentials_failures.with_label_values(&tl.with(&[]));
        self.target_interval
            .with_label_values(&tl.with(&[]))
            .set(t.interval.as_secs_f64());
    }

    /// The client library has no partial-match removal, so every label combination the daemon
    /// can create is enumerated; the sets are closed, so this is exact.
    fn target_removed(&self, tl: &TargetLabels) {
        self.remove_series(super::TARGET_LABELS, &tl.with(&[]));
    }

    /// Runs, failures, success gauges, durations, violations.
    fn cycle(&self, tl: &TargetLabels, report: &CycleReport) {
        for r in &report.results {
            self.record_run(tl, r);
        }
        for v in &report.violations {
            self.violations
                .with_label_values(&tl.with(&[v.check.as_str()]))
                .inc();
            if let Some(staleness) = v.staleness {
                self.staleness
                    .with_label_values(&tl.with(&[v.check.as_str()]))
                    .observe(staleness.as_secs_f64());
            }
        }
    }

    fn result(&self, tl: &TargetLabels, _key: &str, r: &ProbeResult) {
        self.record_run(tl, r);
    }

    /// The events probe's per-kind figures: notifications expected, delivery times, lost and
    /// duplicated (the runs they end arrive through [`Sink::result`]).
    fn event(&self, tl: &TargetLabels, r: &EventReport) {
        match r {
            EventReport::Expected(k) => self
                .events_expected
                .with_label_values(&tl.with(&[k.as_str()]))
                .inc(),
            EventReport::Delivered { kind, after, .. } => self
                .event_delivery
                .with_label_values(&tl.with(&[kind.as_str()]))
                .observe(after.as_secs_f64()),
            EventReport::Lost { kind, .. } => self
                .events_lost
                .with_label_values(&tl.with(&[kind.as_str()]))
                .inc(),
            EventReport::Duplicate { kind, .. } => self
                .event_duplicates
                .with_label_values(&tl.with(&[kind.as_str()]))
                .inc(),
        }
    }

    fn events_pending(&self, tl: &TargetLabels, count: usize, oldest: Duration) {
        self.events_pending
            .with_label_values(&tl.with(&[]))
            .set(count as f64);
        self.events_oldest_pending
            .with_label_values(&tl.with(&[]))
            .set(oldest.as_secs_f64());
    }

    fn durability(&self, tl: &TargetLabels, c: crate::report::DurabilityCount) {
        for (state, n) in [
            ("present", c.present),
            ("lost", c.lost),
            ("corrupt", c.corrupt),
        ] {
            self.durability_objects
                .with_label_values(&tl.with(&[state]))
                .set(f64::from(n));
        }
    }

    fn foreign_message(&self, queue: &str) {
        self.foreign_messages.with_label_values(&[queue]).inc();
    }

    fn uploads_swept(&self, tl: &TargetLabels, s: &crate::report::UploadSweep) {
        if s.unsupported.is_none() {
            self.multipart_uploads_open
                .with_label_values(&tl.with(&[]))
                .set(s.open as f64);
        }
    }

    fn credentials(&self, tl: &TargetLabels, expiry: Option<std::time::SystemTime>, failures: u64) {
        if let Some(at) = expiry {
            self.credentials_expiry
                .with_label_values(&tl.with(&[]))
                .set(unix_seconds(at));
        }
        // The watch counts per client; each target's counter follows it (never backwards).
        let counter = self.credentials_failures.with_label_values(&tl.with(&[]));
        if failures > counter.get() {
            counter.inc_by(failures - counter.get());
        }
    }

    fn request_phases(&self, tl: &TargetLabels, p: &RequestPhases) {
        self.network.record(tl, p);
    }

    fn clock_skew(&self, tl: &TargetLabels, seconds: i64) {
        self.clock_skew
            .with_label_values(&tl.with(&[]))
            .set(seconds as f64);
    }

    fn cycle_skipped(&self, tl: &TargetLabels) {
        self.cycles_skipped.with_label_values(&tl.with(&[])).inc();
    }

    fn orphans_swept(&self, tl: &TargetLabels, n: u64) {
        self.orphans_deleted
            .with_label_values(&tl.with(&[]))
            .inc_by(n);
    }

    fn attempt(&self, tl: &TargetLabels, a: &Attempt<'_>) {
        if !UNTIMED.contains(&a.operation) {
            self.request_duration
                .with_label_values(&tl.with(&[a.operation]))
                .observe_with(a.took.as_secs_f64(), a.request_id);
        }
        if let Some(code) = a.error {
            self.request_errors
                .with_label_values(&tl.with(&[a.operation, code]))
                .inc();
        }
    }

    fn pair_added(&self, p: &PairLabels) {
        let l = p.with(&[]);
        self.replication_canaries.with_label_values(&l);
        self.replication_timeouts.with_label_values(&l);
        self.replication_pending.with_label_values(&l).set(0.0);
        self.replication_oldest_pending
            .with_label_values(&l)
            .set(0.0);
    }

    fn pair_removed(&self, p: &PairLabels) {
        self.remove_series(super::REPLICATION_LABELS, &p.with(&[]));
    }

    fn replication(&self, p: &PairLabels, e: ReplicationEvent) {
        let l = p.with(&[]);
        match e {
            ReplicationEvent::Written => self.replication_canaries.with_label_values(&l).inc(),
            ReplicationEvent::Replicated(lag) => self
                .replication_lag
                .with_label_values(&l)
                .observe(lag.as_secs_f64()),
            ReplicationEvent::TimedOut => self.replication_timeouts.with_label_values(&l).inc(),
            ReplicationEvent::Failed(r) => self
                .replication_failures
                .with_label_values(&p.with(&[r.as_str()]))
                .inc(),
        }
    }

    fn replication_pending(&self, p: &PairLabels, count: usize, oldest: Duration) {
        let l = p.with(&[]);
        self.replication_pending
            .with_label_values(&l)
            .set(count as f64);
        self.replication_oldest_pending
            .with_label_values(&l)
            .set(oldest.as_secs_f64());
    }
}

impl Metrics {
    /// One run of a probe, in a cycle or on its own time: its run, duration, success gauge,
    /// failure streak, last success and failure reason. A result that did not run counts
    /// nowhere.
    fn record_run(&self, tl: &TargetLabels, r: &ProbeResult) {
        let Some(failure) = r.ran_with() else { return };
        let probe = r.probe.as_str();
        self.probe_runs.with_label_values(&tl.with(&[probe])).inc();
        self.probe_duration
            .with_label_values(&tl.with(&[probe]))
            .observe(r.duration.as_secs_f64());
        let success = self.probe_success.with_label_values(&tl.with(&[probe]));
        let streak = self
            .consecutive_failures
            .with_label_values(&tl.with(&[probe]));
        match failure {
            None => {
                success.set(1.0);
                streak.set(0.0);
                self.last_success
                    .with_label_values(&tl.with(&[probe]))
                    .set(unix_seconds(r.finished_at));
            }
            Some(f) => {
                success.set(0.0);
                streak.set(streak.get() + 1.0);
                self.probe_failures
                    .with_label_values(&tl.with(&[probe, f.reason.as_str()]))
                    .inc();
            }
        }
    }
}
