//! What the status page and `/api/v1/status` say about a replication pair: its state (ok,
//! failing, stalled), its last failure with reason, time and words, and how old its last lag
//! figure is.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::report::unix_seconds;

/// A pair is stalled when its oldest pending canary has waited this long…
pub const STALL_PENDING: Duration = Duration::from_secs(120);
/// …and no canary reached the destination within this long (the S3ReplicationStalled alert).
pub const STALL_NO_LAG: Duration = Duration::from_secs(300);

/// How a pair is doing, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// No failure since the last measured lag, and nothing stalled (also before the first
    /// canary has completed).
    Ok,
    /// The latest canary to end failed: not written, FAILED on the source, or timed out.
    Failing,
    /// Canaries are written but none arrives: the oldest has waited over [`STALL_PENDING`]
    /// and none arrived within [`STALL_NO_LAG`].
    Stalled,
}

impl State {
    /// The state of a pair whose oldest pending canary has waited `oldest`, whose last lag
    /// was measured `since_lag` ago (never: `None`), and whose latest ended canary `failed`.
    pub fn of(oldest: Duration, since_lag: Option<Duration>, failed: bool) -> State {
        let no_recent_lag = since_lag.is_none_or(|d| d > STALL_NO_LAG);
        if oldest > STALL_PENDING && no_recent_lag {
            State::Stalled
        } else if failed {
            State::Failing
        } else {
            State::Ok
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Failing => "failing",
            State::Stalled => "stalled",
        }
    }
}

/// The last canary that failed.
#[derive(Debug, Clone, Serialize)]
pub struct LastFailure {
    /// `put_failed`, `status_failed`, `in_flight_cap` or `timed_out`.
    pub reason: &'static str,
    /// Unix seconds.
    pub at: f64,
    /// What happened, in words (bounded, escaped where shown).
    pub message: String,
}

/// A canary waiting for its copy, for the status page.
#[derive(Debug, Clone, Serialize)]
pub struct PendingCanary {
    pub key: String,
    pub age_seconds: f64,
}

/// A replication pair as the status page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub name: String,
    pub source_bucket: String,
    pub source_region: String,
    pub destination_bucket: String,
    pub destination_region: String,
    pub state: State,
    pub last_lag_seconds: Option<f64>,
    /// Unix seconds.
    pub last_lag_at: Option<f64>,
    /// How old the last lag figure is, in seconds, when this status was taken.
    pub last_lag_age_seconds: Option<f64>,
    pub last_failure: Option<LastFailure>,
    pub canaries_total: u64,
    pub timeouts_total: u64,
    /// Oldest first.
    pub pending: Vec<PendingCanary>,
}

/// How the pair's canaries ended, remembered for its status.
#[derive(Debug, Default)]
pub(super) struct Memory {
    inner: Mutex<Ends>,
}

#[derive(Debug, Default)]
struct Ends {
    /// The last measured lag and when.
    lag: Option<(SystemTime, Duration)>,
    /// The last failure: when, why, in words.
    failure: Option<(SystemTime, &'static str, String)>,
}

impl Memory {
    pub fn replicated(&self, lag: Duration) {
        self.inner.lock().unwrap().lag = Some((SystemTime::now(), lag));
    }

    pub fn failed(&self, reason: &'static str, message: String) {
        self.inner.lock().unwrap().failure = Some((SystemTime::now(), reason, message));
    }

    /// The lag figure, its age, the state and the last failure, given the oldest pending
    /// canary's wait, at `now`.
    #[allow(clippy::type_complexity)]
    pub fn view(
        &self,
        oldest: Duration,
        now: SystemTime,
    ) -> (Option<(SystemTime, Duration)>, State, Option<LastFailure>) {
        let ends = self.inner.lock().unwrap();
        let since_lag = ends
            .lag
            .map(|(at, _)| now.duration_since(at).unwrap_or_default());
        // Failing when the latest ended canary failed: a failure after the last lag.
        let failed = match (&ends.failure, ends.lag) {
            (Some((f, ..)), Some((l, _))) => *f >= l,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let last_failure = ends
            .failure
            .as_ref()
            .map(|(at, reason, message)| LastFailure {
                reason,
                at: unix_seconds(*at),
                message: message.clone(),
            });
        (ends.lag, State::of(oldest, since_lag, failed), last_failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn stalled_needs_an_old_pending_canary_and_no_recent_lag() {
        assert_eq!(State::of(S(121), None, false), State::Stalled);
        assert_eq!(State::of(S(121), Some(S(301)), false), State::Stalled);
        // A lag measured within five minutes: slow, not stalled.
        assert_eq!(State::of(S(121), Some(S(60)), false), State::Ok);
        assert_eq!(State::of(S(119), None, false), State::Ok);
        // A stall outranks the last canary's failure.
        assert_eq!(State::of(S(200), None, true), State::Stalled);
        assert_eq!(State::of(S(5), Some(S(1)), true), State::Failing);
    }

    #[test]
    fn the_latest_end_decides_between_ok_and_failing() {
        let m = Memory::default();
        assert_eq!(m.view(S(0), SystemTime::now()).1, State::Ok);
        m.failed(
            "put_failed",
            "PutObject: connection refused by 127.0.0.1:9".into(),
        );
        let (_, state, f) = m.view(S(0), SystemTime::now());
        assert_eq!(state, State::Failing);
        assert_eq!(f.unwrap().reason, "put_failed");
        m.replicated(S(2));
        let (lag, state, f) = m.view(S(0), SystemTime::now());
        assert_eq!(state, State::Ok);
        assert_eq!(lag.map(|(_, l)| l), Some(S(2)));
        // The last failure stays on show after recovery, with its time.
        assert!(f.is_some());
    }
}
