//! A target's recent failures as the page shows them: identical failures folded into one
//! entry ("12× PutObject ServiceUnavailable, 11:43:30-11:45:08"), a stale read with how long
//! the stale view lasted, and each entry marked resolved once its probe passed again.

use std::collections::VecDeque;
use std::time::SystemTime;

use serde::Serialize;

use super::{opt_ts, ts};
use crate::report::{Check, Failure, Probe, Violation};

/// Entries kept per target; each folds any number of identical failures.
pub const RECENT_FAILURES: usize = 10;

/// How long a stale view lasted.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StaleView {
    /// From the acknowledged write (or delete) to the first consistent answer, or to the last
    /// stale answer when none came before the deadline.
    pub seconds: f64,
    /// Whether a consistent answer came before the deadline (if not, `seconds` is a lower
    /// bound).
    pub ended: bool,
}

impl StaleView {
    /// The stale view among `violations` of `probe`'s checks: the longest, ended only if all
    /// ended; `None` when none of them measured one.
    pub fn of(probe: Probe, violations: &[Violation]) -> Option<StaleView> {
        let checks: &[Check] = Check::of_probe(probe);
        let mine = violations
            .iter()
            .filter(|v| checks.contains(&v.check))
            .filter_map(|v| v.staleness.map(|d| (d, v.resolved)));
        mine.fold(None, |acc: Option<StaleView>, (d, ended)| {
            let seconds = d.as_secs_f64();
            Some(match acc {
                None => StaleView { seconds, ended },
                Some(a) => StaleView {
                    seconds: a.seconds.max(seconds),
                    ended: a.ended && ended,
                },
            })
        })
    }
}

/// One entry of a target's recent failures: one failure, or identical ones folded together.
#[derive(Debug, Clone, Serialize)]
pub struct FailureRecord {
    /// When the latest of them happened.
    #[serde(serialize_with = "ts")]
    pub at: SystemTime,
    /// When the first of them happened.
    #[serde(serialize_with = "ts")]
    pub first_at: SystemTime,
    /// How many identical failures (same probe, reason, operation and code) this entry folds.
    pub count: u64,
    pub probe: Probe,
    /// The latest failure's canary key.
    pub key: String,
    /// For a stale view: how long the latest lasted.
    pub stale_view: Option<StaleView>,
    /// When the probe last passed, if it passed after the latest of them: the failure is
    /// resolved (set when the status is taken).
    #[serde(serialize_with = "opt_ts")]
    pub resolved_at: Option<SystemTime>,
    /// The latest failure: its reason, message and request IDs.
    #[serde(flatten)]
    pub failure: Failure,
}

impl FailureRecord {
    /// Whether `f` of `probe` is the same failure as this entry's.
    fn same(&self, probe: Probe, f: &Failure) -> bool {
        self.probe == probe
            && self.failure.reason == f.reason
            && self.failure.operation == f.operation
            && self.failure.code == f.code
    }
}

/// The recent failures of one target, newest first.
#[derive(Debug, Default)]
pub(super) struct Recent(VecDeque<FailureRecord>);

impl Recent {
    /// Adds failure `f` of `probe` at `at` about canary `key`. It folds into an entry of the
    /// same failure unless the probe has passed since that entry (`last_success`): a failure
    /// after a recovery is a new entry, so the timeline stays true.
    pub fn add(
        &mut self,
        at: SystemTime,
        probe: Probe,
        key: &str,
        f: &Failure,
        stale_view: Option<StaleView>,
        last_success: Option<SystemTime>,
    ) {
        let open = |r: &FailureRecord| last_success.is_none_or(|s| s < r.at);
        let entry = match self.0.iter().position(|r| r.same(probe, f) && open(r)) {
            Some(i) => {
                let mut r = self.0.remove(i).expect("found above");
                r.count += 1;
                r.at = at;
                r.key = key.to_string();
                r.stale_view = stale_view;
                r.failure = f.clone();
                r
            }
            None => FailureRecord {
                at,
                first_at: at,
                count: 1,
                probe,
                key: key.to_string(),
                stale_view,
                resolved_at: None,
                failure: f.clone(),
            },
        };
        self.0.push_front(entry);
        self.0.truncate(RECENT_FAILURES);
    }

    /// The entries, newest first, each marked resolved when `passed_since(probe, at)` says when
    /// its probe passed after it.
    pub fn view(
        &self,
        passed_since: impl Fn(Probe, SystemTime) -> Option<SystemTime>,
    ) -> Vec<FailureRecord> {
        self.0
            .iter()
            .map(|r| FailureRecord {
                resolved_at: passed_since(r.probe, r.at),
                ..r.clone()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Reason, RequestIds};
    use std::time::Duration;

    fn failure(code: &str) -> Failure {
        Failure::new(
            Reason::ServerError,
            Some("PutObject"),
            Some(503),
            Some(code),
            "Please reduce your request rate.",
            &RequestIds::default(),
        )
    }

    #[test]
    fn identical_failures_fold_until_the_probe_passes() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let at = |s| t0 + Duration::from_secs(s);
        let mut r = Recent::default();
        for s in 0..12 {
            r.add(
                at(s),
                Probe::Put,
                "k",
                &failure("ServiceUnavailable"),
                None,
                None,
            );
        }
        r.add(at(12), Probe::Put, "k", &failure("SlowDown"), None, None);
        let v = r.view(|_, _| None);
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].count, v[0].failure.code.as_deref()),
            (1, Some("SlowDown"))
        );
        assert_eq!((v[1].count, v[1].first_at, v[1].at), (12, at(0), at(11)));
        // The same failure after a success is a new entry.
        r.add(
            at(20),
            Probe::Put,
            "k",
            &failure("SlowDown"),
            None,
            Some(at(15)),
        );
        let v = r.view(|_, t| (t < at(15)).then(|| at(15)));
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].resolved_at, None);
        assert_eq!(v[1].resolved_at, Some(at(15)));
    }
}
