//! The probes: their names as labels and in configs, which of them are the cycle's steps, and
//! the failure reasons their alerts read (created at zero with the target).

use std::fmt;

use serde::Serialize;

use super::Reason;

/// One step of a probe cycle, in the order the cycle runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    Put,
    Get,
    List,
    Overwrite,
    Delete,
    Conditional,
    /// A step after the others: an upload with a full-object checksum as current SDKs send it,
    /// read back with checksum mode on, and a wrong checksum that must be refused.
    Checksum,
    /// Not a step: a multipart upload per its own interval, read back across its part
    /// boundaries (see [`crate::multipart`]).
    Multipart,
    /// Not a step: the S3 event notifications of the cycle's writes and deletes, matched on an
    /// SQS queue as they arrive (see [`crate::events`]).
    Events,
    /// Not a step of its own: reads of the canary through a CDN before the put, after it and
    /// after the overwrite (see `probe::cdn`).
    Cdn,
    /// Not a step: one object of the target's durability set read and verified per cycle (see
    /// [`crate::durability`]).
    Durability,
}

impl Probe {
    /// Every probe: the steps in cycle order, then the probes that watch the steps' effects.
    pub const ALL: [Probe; 11] = [
        Probe::Put,
        Probe::Get,
        Probe::List,
        Probe::Overwrite,
        Probe::Delete,
        Probe::Conditional,
        Probe::Checksum,
        Probe::Multipart,
        Probe::Events,
        Probe::Cdn,
        Probe::Durability,
    ];

    /// The default `probes`: the first six steps of a cycle (the first six of [`Probe::ALL`]).
    pub const DEFAULTS: &'static [Probe] = Probe::ALL.split_at(6).0;

    /// The steps of a cycle, in order (the first seven of [`Probe::ALL`]).
    pub const STEPS: &'static [Probe] = Probe::ALL.split_at(7).0;

    /// Whether the probe is a step of the cycle (the others report on their own time).
    pub fn is_step(self) -> bool {
        !matches!(
            self,
            Probe::Multipart | Probe::Events | Probe::Cdn | Probe::Durability
        )
    }

    /// The name used in config and in the `probe` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Probe::Put => "put",
            Probe::Get => "get",
            Probe::List => "list",
            Probe::Overwrite => "overwrite",
            Probe::Delete => "delete",
            Probe::Conditional => "conditional",
            Probe::Checksum => "checksum",
            Probe::Multipart => "multipart",
            Probe::Events => "events",
            Probe::Cdn => "cdn",
            Probe::Durability => "durability",
        }
    }

    /// The failure reasons the alert rules route on for this probe: `access_denied`
    /// (credentials) and the wrong answers it can give (consistency). Their counters are
    /// created at zero with the target, so `increase()` sees the first failure; the other
    /// reasons appear with their first failure.
    pub fn alerted_reasons(self) -> &'static [Reason] {
        use Reason::*;
        match self {
            Probe::Put => &[AccessDenied, ContentMismatch],
            Probe::Get => &[AccessDenied, StaleRead, ContentMismatch],
            Probe::List => &[AccessDenied, MissingFromList],
            Probe::Overwrite => &[AccessDenied, StaleRead, ContentMismatch],
            Probe::Delete => &[AccessDenied, StaleRead],
            Probe::Conditional => &[AccessDenied, PreconditionIgnored, ContentMismatch],
            Probe::Checksum => &[
                AccessDenied,
                ChecksumUnsupported,
                ChecksumIgnored,
                ChecksumMismatch,
            ],
            Probe::Multipart => &[AccessDenied, ContentMismatch],
            Probe::Events => &[EventLost, EventDuplicate],
            Probe::Cdn => &[StaleRead, ContentMismatch],
            Probe::Durability => &[AccessDenied, ObjectLost, ObjectCorrupt],
        }
    }

    /// The probe named `s`, as written in a config.
    pub fn parse(s: &str) -> Option<Probe> {
        Probe::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
