//! Splitting the configured targets over N processes: `s3canary run --shard I/N`.
//!
//! Every process reads the same config and keeps the targets that rendezvous (highest random
//! weight) hashing assigns to its shard: each target goes to the shard with the highest
//! SHA-256 score of (ownership key, shard index). No coordination is needed, the split is
//! even, and going from N to N+1 shards moves only the targets the new shard wins, about
//! 1/(N+1) of them.
//!
//! The ownership key is the target's name, except that targets sharing an events queue are
//! hashed by the queue, so that one process consumes each queue (two consumers would take each
//! other's notifications for foreign messages). A replication pair runs on the shard of its
//! source target.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::config::{Config, Target};

/// Largest number of shards accepted.
pub const MAX_SHARDS: u32 = 1000;

/// Shard `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// One process for everything.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Parses `I/N`. `I` is a number, or a name ending in `-<number>` such as a StatefulSet
    /// pod's name (`s3canary-2`), whose ordinal is the index.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .rsplit_once('/')
            .ok_or("expected I/N, e.g. 0/3 or s3canary-0/3")?;
        let count: u32 = n
            .parse()
            .ok()
            .filter(|n| (1..=MAX_SHARDS).contains(n))
            .ok_or_else(|| format!("N must be a number from 1 to {MAX_SHARDS}"))?;
        let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
        let ordinal = match i.rsplit_once('-') {
            _ if digits(i) => Some(i),
            Some((name, ord)) if !name.is_empty() && digits(ord) => Some(ord),
            _ => None,
        };
        let index: u32 = ordinal
            .and_then(|o| o.parse().ok())
            .ok_or("I must be a number or a name ending in -<number> (a pod's ordinal)")?;
        if index >= count {
            return Err("I must be less than N (shards are numbered from 0)".into());
        }
        Ok(Shard { index, count })
    }

    /// Whether this is the only shard.
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// The shard that owns `key` among `count`.
    pub fn owner(key: &str, count: u32) -> u32 {
        (0..count)
            .max_by_key(|i| (score(key, *i), std::cmp::Reverse(*i)))
            .unwrap_or(0)
    }

    /// Whether this shard owns target `t`.
    pub fn owns(&self, t: &Target) -> bool {
        self.is_whole() || Shard::owner(&ownership_key(t), self.count) == self.index
    }

    /// The part of `cfg` this shard runs: its targets and the replication pairs whose source
    /// it owns. Everything else in `cfg` is kept as it is.
    pub fn select(&self, cfg: &Config) -> Config {
        let mut mine = cfg.clone();
        if self.is_whole() {
            return mine;
        }
        mine.targets.retain(|t| self.owns(t));
        mine.replications.retain(|r| self.owns(&r.source));
        mine
    }
}

/// What decides a target's shard: its events queue when it has one, else its name.
pub fn ownership_key(t: &Target) -> String {
    match &t.events {
        Some(e) => format!(
            "queue {} {}",
            e.queue_url,
            e.endpoint.as_deref().unwrap_or("")
        ),
        None => format!("target {}", t.name),
    }
}

/// The rendezvous score of `key` on shard `index`.
fn score(key: &str, index: u32) -> u64 {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update([0]);
    h.update(index.to_le_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes of 32"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_and_pod_names() {
        assert_eq!(Shard::parse("0/3"), Ok(Shard { index: 0, count: 3 }));
        assert_eq!(
            Shard::parse("s3canary-2/3"),
            Ok(Shard { index: 2, count: 3 })
        );
        assert_eq!(Shard::parse("0/1"), Ok(Shard::WHOLE));
        for bad in ["3/3", "1", "a/3", "0/0", "0/1001", "s3canary/2", "-1/3", ""] {
            let e = Shard::parse(bad).unwrap_err();
            assert!(
                e.contains("I/N") || e.contains("N must") || e.contains("I must"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn every_key_has_exactly_one_owner_and_growing_moves_only_to_the_new_shard() {
        let keys: Vec<String> = (0..2000).map(|i| format!("target t{i}")).collect();
        for n in 1..8u32 {
            let before: Vec<u32> = keys.iter().map(|k| Shard::owner(k, n)).collect();
            let after: Vec<u32> = keys.iter().map(|k| Shard::owner(k, n + 1)).collect();
            let mut counts = vec![0usize; (n + 1) as usize];
            for (b, a) in before.iter().zip(&after) {
                // A key moves only to the new shard, never between old ones.
                assert!(a == b || *a == n, "moved from {b} to {a} at {n}+1");
                counts[*a as usize] += 1;
            }
            // Balanced: no shard with more than twice its share (2000 keys: far inside).
            let share = keys.len() / (n as usize + 1);
            assert!(counts.iter().all(|c| *c < 2 * share), "{counts:?}");
        }
    }
}
