//! What happens to a replication canary, as producers report it.

use std::time::Duration;

/// Bounded reasons of a failed replication canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicationFailure {
    /// The source canary could not be written.
    PutFailed,
    /// S3 reported `x-amz-replication-status: FAILED`.
    StatusFailed,
    /// Too many canaries in flight: this one was not written.
    InFlightCap,
}

impl ReplicationFailure {
    /// Every reason.
    pub const ALL: [ReplicationFailure; 3] = [
        ReplicationFailure::PutFailed,
        ReplicationFailure::StatusFailed,
        ReplicationFailure::InFlightCap,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicationFailure::PutFailed => "put_failed",
            ReplicationFailure::StatusFailed => "status_failed",
            ReplicationFailure::InFlightCap => "in_flight_cap",
        }
    }
}

/// What happened to a replication canary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReplicationEvent {
    /// A canary was written to the source.
    Written,
    /// Its copy was found on the destination after this lag.
    Replicated(Duration),
    /// Its copy was not found within the timeout.
    TimedOut,
    Failed(ReplicationFailure),
}
