//! What the events probe reports: one expected S3 event notification at a time.

use std::time::Duration;

/// The kind of an S3 event notification (the `event` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    ObjectCreated,
    ObjectRemoved,
}

impl EventKind {
    /// Both kinds.
    pub const ALL: [EventKind; 2] = [EventKind::ObjectCreated, EventKind::ObjectRemoved];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ObjectCreated => "object_created",
            EventKind::ObjectRemoved => "object_removed",
        }
    }
}

/// What became of an expected notification.
#[derive(Debug, Clone, PartialEq)]
pub enum EventReport {
    /// A write or delete was acknowledged: its notification is expected.
    Expected(EventKind),
    /// It arrived this long after the acknowledgement (zero if it came first).
    Delivered {
        kind: EventKind,
        after: Duration,
        key: String,
    },
    /// It did not arrive within the timeout: it was given up this long after the
    /// acknowledgement.
    Lost {
        kind: EventKind,
        key: String,
        after: Duration,
    },
    /// A notification arrived for a change already notified.
    Duplicate { kind: EventKind, key: String },
}
