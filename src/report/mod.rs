//! The words every module shares: which probe ran, which consistency check it verifies, why it
//! failed, the report of one cycle, and the [`Sink`] interface through which producers (probes,
//! replication, the events ledger, sweeps, the S3 attempt recorder) speak them to the outputs
//! (Prometheus, CloudWatch, the status history, the log). It depends on nothing else in the
//! crate.

mod durability;
mod events;
mod labels;
mod phases;
mod probe;
mod reason;
mod replication;
mod sink;
mod text;
mod uploads;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub use durability::DurabilityCount;
pub use events::{EventKind, EventReport};
pub use labels::{
    KNOWN_CODES, OPERATIONS, PairLabels, TRANSPORT_CODES, TargetInfo, TargetLabels, bounded_code,
};
pub use phases::{Phase, RequestPhases};
pub use probe::Probe;
pub use reason::Reason;
pub use replication::{ReplicationEvent, ReplicationFailure};
pub use sink::{Attempt, Sink, Sinks};
pub use text::{MAX_MESSAGE, MAX_TOKEN, bounded_text, or_dash};
pub use uploads::UploadSweep;

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
    /// A read through the CDN after the put is 404 (a cached miss) or old.
    CdnReadAfterWrite,
    /// A read through the CDN after the overwrite returns the old bytes.
    CdnReadAfterOverwrite,
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
            Check::CdnReadAfterWrite => "cdn_read_after_write",
            Check::CdnReadAfterOverwrite => "cdn_read_after_overwrite",
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
            Probe::Checksum | Probe::Multipart => &[],
            Probe::Events => &[],
            Probe::Cdn => &[Check::CdnReadAfterWrite, Check::CdnReadAfterOverwrite],
            Probe::Durability => &[],
        }
    }
}

/// The request IDs of an S3 answer, which AWS support asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RequestIds {
    pub request_id: Option<String>,
    pub extended_request_id: Option<String>,
}

/// A failed step or request, with what an engineer needs to follow it up.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub reason: Reason,
    /// The S3 operation that failed or returned the wrong answer.
    pub operation: Option<&'static str>,
    /// The HTTP status of S3's answer, when there was one.
    #[serde(skip)]
    pub status: Option<u16>,
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
    pub extended_request_id: Option<String>,
    /// The request never left: no credentials to sign it, or no connection to send it on.
    #[serde(skip)]
    pub unsent: bool,
}

impl Failure {
    /// A failed request: every piece of text in it (which may come from the network) bounded
    /// and escaped by [`bounded_text`].
    pub fn new(
        reason: Reason,
        operation: Option<&'static str>,
        status: Option<u16>,
        code: Option<&str>,
        message: &str,
        ids: &RequestIds,
    ) -> Self {
        let token = |s: &Option<String>| s.as_deref().map(|s| bounded_text(s, MAX_TOKEN));
        Failure {
            reason,
            operation,
            status,
            code: code.map(|c| bounded_text(c, MAX_TOKEN)),
            message: bounded_text(message, MAX_MESSAGE),
            request_id: token(&ids.request_id),
            extended_request_id: token(&ids.extended_request_id),
            unsent: false,
        }
    }

    /// A wrong answer to a request that itself succeeded.
    pub fn wrong_answer(
        reason: Reason,
        operation: &'static str,
        ids: &RequestIds,
        message: impl Into<String>,
    ) -> Self {
        Failure::new(reason, Some(operation), None, None, &message.into(), ids)
    }

    /// A failure without an S3 answer to show for it.
    pub fn local(reason: Reason, message: impl Into<String>) -> Self {
        Failure::new(
            reason,
            None,
            None,
            None,
            &message.into(),
            &RequestIds::default(),
        )
    }

    /// Whether the request changed nothing: it never left ([`Failure::unsent`]) or was
    /// refused, with a 4xx other than 408 (request timeout) and 429 (too many requests), after
    /// which a write or delete may have happened.
    pub fn changed_nothing(&self) -> bool {
        self.unsent
            || self
                .status
                .is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429)
    }

    /// A step had waited `waited` for its answer when the cycle ran out of its `budget`.
    pub fn timeout(waited: Duration, budget: Duration) -> Self {
        let waited = if waited < Duration::from_secs(1) {
            Duration::from_millis(waited.as_millis() as u64)
        } else {
            Duration::from_millis(waited.as_millis() as u64 / 100 * 100)
        };
        Failure::local(
            Reason::Timeout,
            format!(
                "timed out waiting for the response: the cycle's {} ran out, {} into this step",
                humantime::format_duration(budget),
                humantime::format_duration(waited)
            ),
        )
    }
}

/// How a step ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure(Failure),
}

/// Why a probe did not run in a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A probe it needs failed (the put: no canary to read, list, overwrite or watch).
    After(Probe),
    /// The cycle's deadline had passed.
    Deadline,
    /// The daemon is shutting down.
    Shutdown,
}

impl Skip {
    /// As `not_run_because` in `/api/v1/status`: the probe's name, `deadline` or `shutdown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::After(p) => p.as_str(),
            Skip::Deadline => "deadline",
            Skip::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for Skip {
    /// For a person: "put failed", "cycle deadline passed", "shutting down".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::After(p) => write!(f, "{p} failed"),
            Skip::Deadline => f.write_str("cycle deadline passed"),
            Skip::Shutdown => f.write_str("shutting down"),
        }
    }
}

impl Serialize for Skip {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One run's result; `outcome` is `None` when the probe was not run (`not_run` says why) and
/// then it is counted nowhere.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    pub probe: Probe,
    pub outcome: Option<Outcome>,
    /// Why it did not run, when `outcome` is `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_run: Option<Skip>,
    #[serde(with = "secs")]
    pub duration: Duration,
    #[serde(skip)]
    pub finished_at: SystemTime,
}

impl ProbeResult {
    /// `probe` did not run in this cycle, because of `why`.
    pub fn not_run(probe: Probe, why: Skip) -> Self {
        ProbeResult {
            probe,
            outcome: None,
            not_run: Some(why),
            duration: Duration::ZERO,
            finished_at: SystemTime::now(),
        }
    }

    /// A run of `probe` that ended now after `duration`, passed or failed as `result` says.
    pub fn ran(probe: Probe, result: Result<(), Failure>, duration: Duration) -> Self {
        ProbeResult {
            probe,
            outcome: Some(match result {
                Ok(()) => Outcome::Success,
                Err(f) => Outcome::Failure(f),
            }),
            not_run: None,
            duration,
            finished_at: SystemTime::now(),
        }
    }

    /// Whether it ran: `Some(None)` when it passed, `Some(Some(failure))` when it failed, and
    /// `None` when it did not run (and so counts nowhere).
    pub fn ran_with(&self) -> Option<Option<&Failure>> {
        self.outcome.as_ref().map(|o| match o {
            Outcome::Success => None,
            Outcome::Failure(f) => Some(f),
        })
    }
}

/// A read or listing that did not reflect an acknowledged write or delete, or a conditional
/// write that S3 accepted although it had to refuse it.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub check: Check,
    /// For a stale view: from the write (or delete) acknowledgement to the first consistent
    /// answer; when the view stayed stale until the deadline, the time until the last stale
    /// answer (a lower bound). `None` for an ignored precondition, which is not a stale view
    /// that passes but a write that should not have happened.
    #[serde(with = "opt_secs")]
    pub staleness: Option<Duration>,
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

/// Seconds since the Unix epoch, as Prometheus timestamps are.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

mod opt_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

mod unix {
    pub fn serialize<S: serde::Serializer>(
        t: &std::time::SystemTime,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(super::unix_seconds(*t))
    }
}
