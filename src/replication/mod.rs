//! Cross-region replication lag, measured end to end: a canary PUT on the source bucket, HEAD
//! polls on the destination until the copy appears, both copies deleted.
//!
//! Polls are fine early and coarse later: the gap after a poll at `t` is `t/10`, at least
//! 200 ms and at most 60 s. The lag is estimated as the midpoint between the last poll that
//! missed and the first that hit, so its error is at most half a gap: max(100 ms, 5% of the
//! lag). The source's `x-amz-replication-status` is read every fifth poll, so a FAILED
//! replication is reported without waiting for the timeout.
//!
//! Canary keys encode their write time (`<prefix>replication/<name>/<unix_ms>-<random>`), so a
//! restarted daemon finds canaries that were in flight, measures the young ones and deletes
//! the rest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::canary;
use crate::config::Replication;
use crate::report::Sink;
use crate::report::{
    Failure, MAX_MESSAGE, PairLabels, ReplicationEvent, ReplicationFailure, bounded_text, or_dash,
    unix_seconds,
};
use crate::s3::{Bucket, Condition};

mod status;
use status::Memory;
pub use status::{LastFailure, PendingCanary, STALL_NO_LAG, STALL_PENDING, State, Status};

/// Shortest gap between two destination polls.
pub const MIN_GAP: Duration = Duration::from_millis(200);
/// Longest gap between two destination polls.
pub const MAX_GAP: Duration = Duration::from_secs(60);
/// The source's replication status is read on every this-many-th poll.
pub const STATUS_EVERY: u32 = 5;
/// Most canaries of one replication in flight at once; beyond it a canary is not written and
/// counted as `reason="in_flight_cap"`.
pub const MAX_IN_FLIGHT: usize = 64;

/// The gap before the next destination poll, for a poll made `elapsed` after the write.
pub fn next_gap(elapsed: Duration) -> Duration {
    (elapsed / 10).clamp(MIN_GAP, MAX_GAP)
}

/// How one canary ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CanaryOutcome {
    /// Seen on the destination after this lag, with this many destination HEADs.
    Replicated {
        lag: Duration,
        heads: u32,
    },
    TimedOut {
        heads: u32,
    },
    Failed(ReplicationFailure),
    /// Shutdown came first; the canary was deleted unmeasured.
    Cancelled,
}

/// One `[[replication]]` pair at run time.
pub struct Monitor {
    pub cfg: Replication,
    source: Bucket,
    destination: Bucket,
    /// `<source prefix>replication/<name>/`
    pub prefix: String,
    labels: PairLabels,
    sink: Arc<dyn Sink>,
    /// Canaries not yet seen on the destination: key -> write acknowledged at.
    pending: Mutex<HashMap<String, Instant>>,
    /// How canaries ended: the last lag and the last failure.
    memory: Memory,
    /// Canaries written and canaries timed out, for the status page.
    written: AtomicU64,
    timed_out: AtomicU64,
}

impl Monitor {
    /// A monitor for `cfg`, writing through `source` and reading through `destination`
    /// (the buckets of its two targets), reporting to `sink`.
    pub fn new(
        cfg: Replication,
        source: Bucket,
        destination: Bucket,
        sink: Arc<dyn Sink>,
    ) -> Arc<Self> {
        let (src, dst) = (&cfg.source, &cfg.destination);
        let labels = PairLabels([
            cfg.name.clone(),
            src.bucket.clone(),
            src.region.clone(),
            dst.bucket.clone(),
            dst.region.clone(),
        ]);
        sink.pair_added(&labels);
        Arc::new(Monitor {
            prefix: format!("{}replication/{}/", src.prefix, cfg.name),
            cfg,
            source,
            destination,
            labels,
            sink,
            pending: Mutex::new(HashMap::new()),
            memory: Memory::default(),
            written: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
        })
    }

    /// The pair's state for the status page.
    pub fn status(&self) -> Status {
        let mut pending: Vec<PendingCanary> = self
            .pending
            .lock()
            .unwrap()
            .iter()
            .map(|(k, t)| PendingCanary {
                key: k.clone(),
                age_seconds: t.elapsed().as_secs_f64(),
            })
            .collect();
        pending.sort_by(|a, b| b.age_seconds.total_cmp(&a.age_seconds));
        let oldest = pending.first().map_or(0.0, |p| p.age_seconds);
        let now = SystemTime::now();
        let (last, state, last_failure) = self.memory.view(Duration::from_secs_f64(oldest), now);
        let [name, sb, sr, db, dr] = self.labels.0.clone();
        Status {
            name,
            source_bucket: sb,
            source_region: sr,
            destination_bucket: db,
            destination_region: dr,
            state,
            last_lag_seconds: last.map(|(_, d)| d.as_secs_f64()),
            last_lag_at: last.map(|(t, _)| unix_seconds(t)),
            last_lag_age_seconds: last
                .map(|(t, _)| now.duration_since(t).unwrap_or_default().as_secs_f64()),
            last_failure,
            canaries_total: self.written.load(Ordering::Relaxed),
            timeouts_total: self.timed_out.load(Ordering::Relaxed),
            pending,
        }
    }

    /// Reports the canaries in flight and the age of the oldest (before every scrape, flush
    /// and status request).
    pub fn report_pending(&self) {
        let pending = self.pending.lock().unwrap();
        let oldest = pending
            .values()
            .map(|t| t.elapsed())
            .max()
            .unwrap_or_default();
        self.sink
            .replication_pending(&self.labels, pending.len(), oldest);
    }

    /// Forgets this pair's series (after a reload removed or changed it).
    pub fn remove_series(&self) {
        self.sink.pair_removed(&self.labels);
    }

    /// Counts a failed canary and remembers why, in `words`, for the status page.
    fn fail(&self, r: ReplicationFailure, words: &str) {
        self.memory
            .failed(r.as_str(), bounded_text(words, MAX_MESSAGE));
        self.sink
            .replication(&self.labels, ReplicationEvent::Failed(r));
    }

    /// Writes one canary and follows it to the end (measured, timed out, failed or cancelled).
    pub async fn run_canary(self: &Arc<Self>, token: &CancellationToken) -> CanaryOutcome {
        if self.pending.lock().unwrap().len() >= MAX_IN_FLIGHT {
            let words = format!(
                "{MAX_IN_FLIGHT} canaries already wait for their copies; this one was not written"
            );
            self.fail(ReplicationFailure::InFlightCap, &words);
            return CanaryOutcome::Failed(ReplicationFailure::InFlightCap);
        }
        let key = canary::new_key(&self.prefix);
        let body = Bytes::from(format!("s3canary replication canary {key}\n"));
        let put_budget = Duration::from_secs(30).min(self.cfg.timeout);
        let put =
            tokio::time::timeout(put_budget, self.source.put(&key, body, &Condition::None)).await;
        let acked = Instant::now();
        let version = match put {
            Ok(Ok(w)) => w.version_id,
            Ok(Err(e)) => {
                tracing::warn!(replication = %self.cfg.name, reason = e.reason.as_str(),
                    code = or_dash(&e.code), request_id = or_dash(&e.request_id),
                    "replication canary write failed: {}", e.message);
                let words = format!(
                    "writing the canary to the source failed: {} {}{}",
                    e.reason.as_str(),
                    e.code
                        .as_deref()
                        .map_or(String::new(), |c| format!("{c}: ")),
                    e.message
                );
                self.fail(ReplicationFailure::PutFailed, &words);
                self.delete_both(&key, None).await;
                return CanaryOutcome::Failed(ReplicationFailure::PutFailed);
            }
            Err(_) => {
                tracing::warn!(replication = %self.cfg.name, "replication canary write timed out");
                let words = format!(
                    "writing the canary to the source timed out after {}",
                    humantime::format_duration(put_budget)
                );
                self.fail(ReplicationFailure::PutFailed, &words);
                self.delete_both(&key, None).await;
                return CanaryOutcome::Failed(ReplicationFailure::PutFailed);
            }
        };
        self.written.fetch_add(1, Ordering::Relaxed);
        self.sink
            .replication(&self.labels, ReplicationEvent::Written);
        self.follow(key, acked, version, token).await
    }

    /// Polls the destination for `key`, written at `acked` as `version` (on a versioned
    /// bucket), then deletes both copies.
    async fn follow(
        &self,
        key: String,
        acked: Instant,
        version: Option<String>,
        token: &CancellationToken,
    ) -> CanaryOutcome {
        self.pending.lock().unwrap().insert(key.clone(), acked);
        let outcome = self.poll(&key, acked, token).await;
        self.pending.lock().unwrap().remove(&key);
        match &outcome {
            CanaryOutcome::Replicated { lag, .. } => {
                self.memory.replicated(*lag);
                self.sink
                    .replication(&self.labels, ReplicationEvent::Replicated(*lag));
            }
            CanaryOutcome::TimedOut { .. } => {
                self.timed_out.fetch_add(1, Ordering::Relaxed);
                let words = format!(
                    "{key} was not seen on {} within {}",
                    self.cfg.destination.bucket,
                    humantime::format_duration(self.cfg.timeout)
                );
                self.memory
                    .failed("timed_out", bounded_text(&words, MAX_MESSAGE));
                self.sink
                    .replication(&self.labels, ReplicationEvent::TimedOut);
                tracing::warn!(replication = %self.cfg.name, key = %key,
                    timeout = %humantime::format_duration(self.cfg.timeout),
                    "replication canary not seen on the destination in time");
            }
            CanaryOutcome::Failed(r) => {
                let words =
                    format!("S3 reports x-amz-replication-status FAILED on the source for {key}");
                self.fail(*r, &words);
                tracing::warn!(replication = %self.cfg.name, key = %key,
                    "S3 reports replication status FAILED");
            }
            CanaryOutcome::Cancelled => {}
        }
        self.delete_both(&key, version.as_deref()).await;
        outcome
    }

    async fn poll(&self, key: &str, acked: Instant, token: &CancellationToken) -> CanaryOutcome {
        let deadline = acked + self.cfg.timeout;
        let mut heads = 0u32;
        // The first poll comes one minimum gap after the write; the lag lies between the last
        // miss (or the write) and the first hit.
        let mut last_miss = acked;
        let mut next = acked + MIN_GAP;
        loop {
            if next >= deadline {
                tokio::select! {
                    _ = token.cancelled() => return CanaryOutcome::Cancelled,
                    _ = tokio::time::sleep_until(deadline) => return CanaryOutcome::TimedOut { heads },
                }
            }
            tokio::select! {
                _ = token.cancelled() => return CanaryOutcome::Cancelled,
                _ = tokio::time::sleep_until(next) => {}
            }
            let sent = Instant::now();
            heads += 1;
            if let Ok(Some(_)) = self.destination.head(key).await {
                let lag = (last_miss - acked) + (sent - last_miss) / 2;
                return CanaryOutcome::Replicated { lag, heads };
            }
            last_miss = sent;
            if heads.is_multiple_of(STATUS_EVERY)
                && let Ok(Some(h)) = self.source.head(key).await
                && h.replication_status.as_deref() == Some("FAILED")
            {
                return CanaryOutcome::Failed(ReplicationFailure::StatusFailed);
            }
            next = sent + next_gap(sent - acked);
        }
    }

    /// Deletes the canary on both sides: by its version on versioned buckets (replication
    /// keeps the version id, so the copy has the source's), else the key.
    async fn delete_both(&self, key: &str, version: Option<&str>) {
        for (side, b) in [("source", &self.source), ("destination", &self.destination)] {
            let deleted = match version {
                Some(v) => b.delete_version(key, v).await.map(|_| ()),
                None => b.delete(key).await.map(|_| ()),
            };
            if let Err(e) = deleted {
                tracing::warn!(replication = %self.cfg.name, key = %key, side,
                    reason = e.reason.as_str(), "replication canary cleanup failed; the next sweep retries");
            }
        }
    }

    /// Finds canaries left by an earlier run: on the source, young ones are followed again
    /// (their key gives the write time) and old ones deleted; on the destination, copies whose
    /// source is gone are deleted. Returns (resumed, deleted).
    pub async fn recover(
        self: &Arc<Self>,
        tracker: &TaskTracker,
        token: &CancellationToken,
    ) -> Result<(usize, usize), Failure> {
        let now = SystemTime::now();
        let source_keys = canary::list(&self.source, &self.prefix).await?;
        let (mut resumed, mut deleted) = (0, 0);
        for (key, written) in &source_keys {
            if self.pending.lock().unwrap().contains_key(key) {
                continue;
            }
            let age = now.duration_since(*written).unwrap_or_default();
            if age >= self.cfg.timeout {
                self.delete_both(key, None).await;
                deleted += 1;
            } else {
                let acked = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
                let (me, key, token) = (self.clone(), key.clone(), token.clone());
                // Registered before the task starts, so a sweep right after sees it in flight.
                self.pending.lock().unwrap().insert(key.clone(), acked);
                tracker.spawn(async move {
                    me.follow(key, acked, None, &token).await;
                });
                resumed += 1;
            }
        }
        for (key, _) in canary::list(&self.destination, &self.prefix).await? {
            let on_source = source_keys.iter().any(|(k, _)| *k == key);
            let in_flight = self.pending.lock().unwrap().contains_key(&key);
            if !on_source && !in_flight && self.destination.delete(&key).await.is_ok() {
                deleted += 1;
            }
        }
        Ok((resumed, deleted))
    }

    /// Finds canaries of an earlier run (see [`Monitor::recover`]) and says what it did.
    pub async fn sweep(self: &Arc<Self>, tracker: &TaskTracker, token: &CancellationToken) {
        match self.recover(tracker, token).await {
            Ok((r, d)) if r + d > 0 => tracing::info!(replication = %self.cfg.name,
                resumed = r, deleted = d, "replication canaries of an earlier run found"),
            Ok(_) => {}
            Err(e) => tracing::warn!(replication = %self.cfg.name,
                reason = e.reason.as_str(), "replication sweep failed: {}", e.message),
        }
    }

    /// Writes a canary and follows it in a task of its own.
    pub fn start_canary(self: &Arc<Self>, tracker: &TaskTracker, token: &CancellationToken) {
        let (me, t) = (self.clone(), token.clone());
        tracker.spawn(async move {
            me.run_canary(&t).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates the poll schedule: HEADs until a copy that appears at `lag` is seen, and the
    /// error of the midpoint estimate.
    fn simulate(lag: f64) -> (u32, f64) {
        let (mut t, mut last_miss, mut heads) = (MIN_GAP.as_secs_f64(), 0.0, 1);
        while t < lag {
            last_miss = t;
            t += next_gap(Duration::from_secs_f64(t)).as_secs_f64();
            heads += 1;
        }
        let estimate = last_miss + (t - last_miss) / 2.0;
        (heads, (estimate - lag).abs())
    }

    #[test]
    fn resolution_stays_within_max_100ms_or_5_percent_with_few_heads() {
        for lag in [
            0.05, 0.3, 1.0, 2.0, 5.0, 10.0, 33.0, 60.0, 300.0, 900.0, 3600.0,
        ] {
            let (_, err) = simulate(lag);
            assert!(
                err <= (0.1f64).max(0.05 * lag) + 1e-9,
                "lag {lag}: error {err}"
            );
        }
        // The figures the README quotes.
        assert_eq!(simulate(1.0).0, 5);
        assert_eq!(simulate(10.0).0, 27);
        assert_eq!(simulate(60.0).0, 46);
        assert_eq!(simulate(900.0).0, 75);
    }
}
