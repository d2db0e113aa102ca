//! The log as an output: one warning per failed probe step, with what an engineer needs to
//! follow it up.

use super::Sink;
use crate::config::Target;
use crate::report::{CycleReport, Outcome, or_dash};

/// Writes a warning for every failed step of a cycle.
#[derive(Debug, Default)]
pub struct Log;

impl Sink for Log {
    fn cycle(&self, _t: &Target, report: &CycleReport) {
        for r in &report.results {
            if let Some(Outcome::Failure(f)) = &r.outcome {
                tracing::warn!(target = %report.target, probe = r.probe.as_str(),
                    reason = f.reason.as_str(), code = or_dash(&f.code), request_id = or_dash(&f.request_id),
                    key = %report.key, "probe failed: {}", f.message);
            }
        }
    }
}
