//! Simulated cross-region replication between buckets of the embedded server.
//!
//! A rule copies new objects under a prefix from a source bucket to a destination bucket after
//! a lag (fixed or drawn from a distribution). The source reports `x-amz-replication-status`
//! as S3 does (PENDING, then COMPLETED or FAILED) and the copy reports REPLICA. A rule can be
//! stalled (nothing is delivered until it is released) or made to fail.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

/// How long replication of one object takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Lag {
    Fixed(Duration),
    /// Uniform between the two bounds.
    Uniform(Duration, Duration),
    /// Exponential with this mean (a long tail, as replication lag has).
    Exponential(Duration),
}

impl Lag {
    pub(crate) fn sample(&self) -> Duration {
        let mut rng = rand::rng();
        match self {
            Lag::Fixed(d) => *d,
            Lag::Uniform(a, b) if b > a => {
                Duration::from_secs_f64(rng.random_range(a.as_secs_f64()..b.as_secs_f64()))
            }
            Lag::Uniform(a, _) => *a,
            Lag::Exponential(mean) => {
                let u: f64 = rng.random_range(f64::EPSILON..1.0);
                Duration::from_secs_f64(-u.ln() * mean.as_secs_f64())
            }
        }
    }
}

/// One replication rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub source: String,
    pub destination: String,
    /// Keys under this prefix are replicated.
    pub prefix: String,
    pub lag: Lag,
    /// Nothing is delivered while set; pending objects are delivered once it is cleared.
    pub stalled: bool,
    /// Objects written while set end as FAILED and are never delivered.
    pub failing: bool,
}

impl Rule {
    /// A rule from `source` to `destination` for keys under `prefix`, with a fixed lag.
    pub fn new(source: &str, destination: &str, prefix: &str, lag: Lag) -> Self {
        Rule {
            source: source.into(),
            destination: destination.into(),
            prefix: prefix.into(),
            lag,
            stalled: false,
            failing: false,
        }
    }
}

/// The replication state of the server: rules and per-object status.
#[derive(Debug, Default)]
pub struct Replicator {
    rules: Mutex<Vec<Rule>>,
    /// (bucket, key) -> PENDING | COMPLETED | FAILED | REPLICA
    status: Mutex<HashMap<(String, String), &'static str>>,
}

impl Replicator {
    /// Adds a rule, replacing one with the same source and destination.
    pub fn set_rule(&self, rule: Rule) {
        let mut rules = self.rules.lock().unwrap();
        rules.retain(|r| !(r.source == rule.source && r.destination == rule.destination));
        rules.push(rule);
    }

    /// Stalls or releases every rule whose source is `source`.
    pub fn set_stalled(&self, source: &str, stalled: bool) {
        self.update(source, |r| r.stalled = stalled);
    }

    /// Makes every rule whose source is `source` fail (or succeed again).
    pub fn set_failing(&self, source: &str, failing: bool) {
        self.update(source, |r| r.failing = failing);
    }

    fn update(&self, source: &str, f: impl Fn(&mut Rule)) {
        for r in self
            .rules
            .lock()
            .unwrap()
            .iter_mut()
            .filter(|r| r.source == source)
        {
            f(r);
        }
    }

    /// The replication status header value of an object, if it has one.
    pub fn status(&self, bucket: &str, key: &str) -> Option<&'static str> {
        self.status
            .lock()
            .unwrap()
            .get(&(bucket.to_string(), key.to_string()))
            .copied()
    }

    fn set_status(&self, bucket: &str, key: &str, s: &'static str) {
        self.status
            .lock()
            .unwrap()
            .insert((bucket.to_string(), key.to_string()), s);
    }

    /// Forgets the status of a deleted object.
    pub(crate) fn forget(&self, bucket: &str, key: &str) {
        self.status
            .lock()
            .unwrap()
            .remove(&(bucket.to_string(), key.to_string()));
    }

    fn rule(&self, source: &str, destination: &str) -> Option<Rule> {
        self.rules
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.source == source && r.destination == destination)
            .cloned()
    }

    /// Called after a write to `bucket/key` (stored under `root`): starts replicating it when
    /// a rule covers it.
    pub(crate) fn on_write(self: &Arc<Self>, root: &Path, bucket: &str, key: &str) {
        let rules: Vec<Rule> = self
            .rules
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.source == bucket && key.starts_with(&r.prefix))
            .cloned()
            .collect();
        for rule in rules {
            self.set_status(bucket, key, "PENDING");
            let failing = rule.failing;
            let lag = rule.lag.sample();
            let (me, root, key) = (self.clone(), root.to_path_buf(), key.to_string());
            tokio::spawn(async move {
                tokio::time::sleep(lag).await;
                // A stall holds delivery until it is released (or the rule is removed).
                loop {
                    match me.rule(&rule.source, &rule.destination) {
                        Some(r) if r.stalled => tokio::time::sleep(Duration::from_millis(20)).await,
                        Some(_) => break,
                        None => return,
                    }
                }
                if failing {
                    me.set_status(&rule.source, &key, "FAILED");
                    return;
                }
                let from = root.join(&rule.source).join(&key);
                let to = root.join(&rule.destination).join(&key);
                let Ok(body) = tokio::fs::read(&from).await else {
                    // Deleted before it was replicated: nothing to deliver.
                    return;
                };
                if let Some(dir) = to.parent() {
                    let _ = tokio::fs::create_dir_all(dir).await;
                }
                // Write beside and rename, so a reader never sees half an object.
                let tmp = root.join(&rule.destination).join(format!(
                    ".replica-{:016x}.internal.part",
                    rand::random::<u64>()
                ));
                let written = tokio::fs::write(&tmp, body).await.is_ok()
                    && tokio::fs::rename(&tmp, &to).await.is_ok();
                if written {
                    me.set_status(&rule.destination, &key, "REPLICA");
                    me.set_status(&rule.source, &key, "COMPLETED");
                } else {
                    me.set_status(&rule.source, &key, "FAILED");
                }
            });
        }
    }
}
