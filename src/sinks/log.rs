//! The log as an output: one warning per failed probe step, with what an engineer needs to
//! follow it up.

use super::Sink;
use crate::config::Target;
use crate::report::{CycleReport, EventReport, Outcome, TargetLabels, or_dash};

/// Writes a warning for every failed step of a cycle and every lost or duplicated event
/// notification.
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

    fn event(&self, t: &TargetLabels, r: &EventReport) {
        match r {
            EventReport::Lost { kind, key } => tracing::warn!(target = %t.target,
                probe = "events", event = kind.as_str(), key = %key,
                "event notification lost: not received within the events timeout"),
            EventReport::Duplicate { kind, key } => tracing::warn!(target = %t.target,
                probe = "events", event = kind.as_str(), key = %key,
                "event notification duplicated"),
            _ => {}
        }
    }
}
