//! The embedded server's access log: every object request it answered (or was asked for), in
//! order, so tests can count what a cycle really sent and check it stayed in its prefix.

use std::sync::Mutex;

use super::faults::Op;

/// One object access the server answered (or was asked for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub op: Op,
    pub bucket: String,
    /// The key, or the prefix of a listing ("" when the listing had none).
    pub key: String,
}

/// Every object access, in order (bounded: the oldest entries are dropped past 1,000,000).
#[derive(Debug, Default)]
pub struct AccessLog(Mutex<Vec<Access>>);

impl AccessLog {
    pub(super) fn push(&self, op: Op, bucket: &str, key: &str) {
        let mut v = self.0.lock().unwrap();
        if v.len() >= 1_000_000 {
            v.drain(..1000);
        }
        v.push(Access {
            op,
            bucket: bucket.to_string(),
            key: key.to_string(),
        });
    }

    /// A copy of the log.
    pub fn entries(&self) -> Vec<Access> {
        self.0.lock().unwrap().clone()
    }

    /// How many requests of `op` were answered.
    pub fn count(&self, op: Op) -> usize {
        self.0.lock().unwrap().iter().filter(|a| a.op == op).count()
    }
}

/// The server's own time for each request: from the request's arrival to its response's
/// headers (the injected latency included), newest last, at most [`Timings::KEPT`]. The
/// benchmark subtracts it from what the daemon reports to isolate the client side.
#[derive(Debug, Default)]
pub struct Timings(Mutex<std::collections::VecDeque<(Op, std::time::Duration)>>);

impl Timings {
    /// Most timings kept.
    pub const KEPT: usize = 10_000;

    pub(super) fn push(&self, op: Op, d: std::time::Duration) {
        let mut v = self.0.lock().unwrap();
        if v.len() >= Self::KEPT {
            v.pop_front();
        }
        v.push_back((op, d));
    }

    /// Takes every timing recorded so far.
    pub fn take(&self) -> Vec<(Op, std::time::Duration)> {
        self.0.lock().unwrap().drain(..).collect()
    }
}

/// The `x-amz-request-id` of every answer the server sent (S3 requests; SQS answers carry their
/// own), oldest first, at most [`Answered::KEPT`]: what a test compares with the IDs the daemon
/// reports.
#[derive(Debug, Default)]
pub struct Answered(Mutex<std::collections::VecDeque<String>>);

impl Answered {
    /// Most IDs kept.
    pub const KEPT: usize = 10_000;

    pub(super) fn push(&self, id: String) {
        let mut v = self.0.lock().unwrap();
        if v.len() >= Self::KEPT {
            v.pop_front();
        }
        v.push_back(id);
    }

    /// The IDs kept, oldest first.
    pub fn ids(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().cloned().collect()
    }
}
