//! The log as an output: one warning per failed run, with what an engineer needs to follow it
//! up.

use crate::report::{CycleReport, Outcome, ProbeResult, Sink, TargetLabels, or_dash};

/// Writes a warning for every failed run: of a cycle's steps and of the probes beside them
/// (a lost or duplicated event notification among them).
#[derive(Debug, Default)]
pub struct Log;

impl Log {
    fn warn(target: &str, key: &str, r: &ProbeResult) {
        if let Some(Outcome::Failure(f)) = &r.outcome {
            tracing::warn!(target = %target, probe = r.probe.as_str(),
                reason = f.reason.as_str(), code = or_dash(&f.code), request_id = or_dash(&f.request_id),
                key = %key, "probe failed: {}", f.message);
        }
    }
}

impl Sink for Log {
    fn cycle(&self, _t: &TargetLabels, report: &CycleReport) {
        for r in &report.results {
            Log::warn(&report.target, &report.key, r);
        }
    }

    fn result(&self, t: &TargetLabels, key: &str, r: &ProbeResult) {
        Log::warn(&t.target, key, r);
    }
}
