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
