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
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Replication, Target};
use crate::metrics::Metrics;
use crate::probe;
use crate::s3::{Bucket, Condition};

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

/// Bounded reasons of `s3canary_replication_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// The source canary could not be written.
    PutFailed,
    /// S3 reported `x-amz-replication-status: FAILED`.
    StatusFailed,
    /// Too many canaries in flight: this one was not written.
    InFlightCap,
}

impl FailReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::PutFailed => "put_failed",
            FailReason::StatusFailed => "status_failed",
            FailReason::InFlightCap => "in_flight_cap",
        }
    }
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
    Failed(FailReason),
    /// Shutdown came first; the canary was deleted unmeasured.
    Cancelled,
}

/// The label values of one replication pair.
#[derive(Debug, Clone)]
pub struct ReplicationLabels(pub [String; 5]);

impl ReplicationLabels {
    fn with<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut v: Vec<&str> = self.0.iter().map(String::as_str).collect();
        v.extend_from_slice(extra);
        v
    }
}

/// One `[[replication]]` pair at run time.
pub struct Monitor {
    pub cfg: Replication,
    source: Bucket,
    destination: Bucket,
    /// `<source prefix>replication/<name>/`
    pub prefix: String,
    labels: ReplicationLabels,
    metrics: Arc<Metrics>,
    /// Canaries not yet seen on the destination: key -> write acknowledged at.
    pending: Mutex<HashMap<String, Instant>>,
    /// The last measured lag and when it was measured.
    last_lag: Mutex<Option<(SystemTime, Duration)>>,
    /// The CloudWatch mirror, when it is on.
    mirror: Mutex<Option<Arc<crate::cloudwatch::Mirror>>>,
}

/// A canary waiting for its copy, for the status page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PendingCanary {
    pub key: String,
    pub age_seconds: f64,
}

/// A replication pair as the status page shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub name: String,
    pub source_bucket: String,
    pub source_region: String,
    pub destination_bucket: String,
    pub destination_region: String,
    pub last_lag_seconds: Option<f64>,
    pub last_lag_at: Option<f64>,
    pub canaries_total: u64,
    pub timeouts_total: u64,
    /// Oldest first.
    pub pending: Vec<PendingCanary>,
}

impl Monitor {
    /// A monitor for `cfg` between the `source` and `destination` targets and their clients.
    pub fn new(
        cfg: Replication,
        (src_t, source): (&Target, Bucket),
        (dst_t, destination): (&Target, Bucket),
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let labels = ReplicationLabels([
            cfg.name.clone(),
            src_t.bucket.clone(),
            src_t.region.clone(),
            dst_t.bucket.clone(),
            dst_t.region.clone(),
        ]);
        let l = labels.with(&[]);
        metrics.replication_canaries.with_label_values(&l);
        metrics.replication_timeouts.with_label_values(&l);
        metrics.replication_pending.with_label_values(&l).set(0);
        metrics
            .replication_oldest_pending
            .with_label_values(&l)
            .set(0.0);
        Arc::new(Monitor {
            prefix: format!("{}replication/{}/", src_t.prefix, cfg.name),
            cfg,
            source,
            destination,
            labels,
            metrics,
            pending: Mutex::new(HashMap::new()),
            last_lag: Mutex::new(None),
            mirror: Mutex::new(None),
        })
    }

    /// Sends measured lags to the CloudWatch mirror as well.
    pub fn set_mirror(&self, m: Arc<crate::cloudwatch::Mirror>) {
        *self.mirror.lock().unwrap() = Some(m);
    }

    /// The pair's state for the status page.
    pub fn status(&self) -> Status {
        let l = self.labels.with(&[]);
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
        let last = *self.last_lag.lock().unwrap();
        let [name, sb, sr, db, dr] = self.labels.0.clone();
        Status {
            name,
            source_bucket: sb,
            source_region: sr,
            destination_bucket: db,
            destination_region: dr,
            last_lag_seconds: last.map(|(_, d)| d.as_secs_f64()),
            last_lag_at: last.map(|(t, _)| crate::metrics::unix_seconds(t)),
            canaries_total: self
                .metrics
                .replication_canaries
                .with_label_values(&l)
                .get(),
            timeouts_total: self
                .metrics
                .replication_timeouts
                .with_label_values(&l)
                .get(),
            pending,
        }
    }

    /// Sets the pending gauges from the canaries in flight (called before every scrape).
    pub fn refresh_gauges(&self) {
        let pending = self.pending.lock().unwrap();
        let oldest = pending
            .values()
            .map(|t| t.elapsed())
            .max()
            .unwrap_or_default();
        let l = self.labels.with(&[]);
        self.metrics
            .replication_pending
            .with_label_values(&l)
            .set(pending.len() as i64);
        self.metrics
            .replication_oldest_pending
            .with_label_values(&l)
            .set(oldest.as_secs_f64());
    }

    /// Deletes this pair's series (after a reload removed or changed it).
    pub fn remove_series(&self) {
        let l = self.labels.with(&[]);
        let m = &self.metrics;
        let _ = m.replication_canaries.remove_label_values(&l);
        let _ = m.replication_lag.remove_label_values(&l);
        let _ = m.replication_pending.remove_label_values(&l);
        let _ = m.replication_oldest_pending.remove_label_values(&l);
        let _ = m.replication_timeouts.remove_label_values(&l);
        for r in [
            FailReason::PutFailed,
            FailReason::StatusFailed,
            FailReason::InFlightCap,
        ] {
            let _ = m
                .replication_failures
                .remove_label_values(&self.labels.with(&[r.as_str()]));
        }
    }

    fn fail(&self, r: FailReason) {
        self.metrics
            .replication_failures
            .with_label_values(&self.labels.with(&[r.as_str()]))
            .inc();
    }

    /// Writes one canary and follows it to the end (measured, timed out, failed or cancelled).
    pub async fn run_canary(self: &Arc<Self>, token: &CancellationToken) -> CanaryOutcome {
        if self.pending.lock().unwrap().len() >= MAX_IN_FLIGHT {
            self.fail(FailReason::InFlightCap);
            return CanaryOutcome::Failed(FailReason::InFlightCap);
        }
        let key = probe::new_key(&self.prefix);
        let body = Bytes::from(format!("s3canary replication canary {key}\n"));
        let put = tokio::time::timeout(
            Duration::from_secs(30).min(self.cfg.timeout),
            self.source.put(&key, body, &Condition::None),
        )
        .await;
        let acked = Instant::now();
        match put {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(replication = %self.cfg.name, reason = e.reason.as_str(),
                    code = ?e.code, request_id = ?e.request_id,
                    "replication canary write failed: {}", e.message);
                self.fail(FailReason::PutFailed);
                self.delete_both(&key).await;
                return CanaryOutcome::Failed(FailReason::PutFailed);
            }
            Err(_) => {
                tracing::warn!(replication = %self.cfg.name, "replication canary write timed out");
                self.fail(FailReason::PutFailed);
                self.delete_both(&key).await;
                return CanaryOutcome::Failed(FailReason::PutFailed);
            }
        }
        self.metrics
            .replication_canaries
            .with_label_values(&self.labels.with(&[]))
            .inc();
        self.follow(key, acked, token).await
    }

    /// Polls the destination for `key`, written at `acked`, then deletes both copies.
    async fn follow(
        &self,
        key: String,
        acked: Instant,
        token: &CancellationToken,
    ) -> CanaryOutcome {
        self.pending.lock().unwrap().insert(key.clone(), acked);
        let outcome = self.poll(&key, acked, token).await;
        self.pending.lock().unwrap().remove(&key);
        let l = self.labels.with(&[]);
        match &outcome {
            CanaryOutcome::Replicated { lag, .. } => {
                *self.last_lag.lock().unwrap() = Some((SystemTime::now(), *lag));
                if let Some(m) = self.mirror.lock().unwrap().as_ref() {
                    m.record_lag(&self.labels.0[1], &self.labels.0[3], *lag);
                }
                self.metrics
                    .replication_lag
                    .with_label_values(&l)
                    .observe(lag.as_secs_f64());
            }
            CanaryOutcome::TimedOut { .. } => {
                self.metrics
                    .replication_timeouts
                    .with_label_values(&l)
                    .inc();
                tracing::warn!(replication = %self.cfg.name, key = %key,
                    timeout = %humantime::format_duration(self.cfg.timeout),
                    "replication canary not seen on the destination in time");
            }
            CanaryOutcome::Failed(r) => {
                self.fail(*r);
                tracing::warn!(replication = %self.cfg.name, key = %key,
                    "S3 reports replication status FAILED");
            }
            CanaryOutcome::Cancelled => {}
        }
        self.delete_both(&key).await;
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
                return CanaryOutcome::Failed(FailReason::StatusFailed);
            }
            next = sent + next_gap(sent - acked);
        }
    }

    async fn delete_both(&self, key: &str) {
        for (side, b) in [("source", &self.source), ("destination", &self.destination)] {
            if let Err(e) = b.delete(key).await {
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
    ) -> Result<(usize, usize), crate::s3::S3Failure> {
        let now = SystemTime::now();
        let source_keys = probe::list_canaries(&self.source, &self.prefix).await?;
        let (mut resumed, mut deleted) = (0, 0);
        for (key, written) in &source_keys {
            if self.pending.lock().unwrap().contains_key(key) {
                continue;
            }
            let age = now.duration_since(*written).unwrap_or_default();
            if age >= self.cfg.timeout {
                self.delete_both(key).await;
                deleted += 1;
            } else {
                let acked = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
                let (me, key, token) = (self.clone(), key.clone(), token.clone());
                // Registered before the task starts, so a sweep right after sees it in flight.
                self.pending.lock().unwrap().insert(key.clone(), acked);
                tracker.spawn(async move {
                    me.follow(key, acked, &token).await;
                });
                resumed += 1;
            }
        }
        for (key, _) in probe::list_canaries(&self.destination, &self.prefix).await? {
            let on_source = source_keys.iter().any(|(k, _)| *k == key);
            let in_flight = self.pending.lock().unwrap().contains_key(&key);
            if !on_source && !in_flight && self.destination.delete(&key).await.is_ok() {
                deleted += 1;
            }
        }
        Ok((resumed, deleted))
    }

    /// Writes a canary every interval until `token` is cancelled, after recovering canaries of
    /// an earlier run; sweeps again every ten intervals (at least every 5 minutes) for copies
    /// that replicated after their canary was given up.
    pub async fn run(self: Arc<Self>, tracker: TaskTracker, token: CancellationToken) {
        let sweep_every = (self.cfg.interval * 10).max(Duration::from_secs(300));
        let mut next_sweep = Instant::now();
        let mut ticker = tokio::time::interval(self.cfg.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                _ = token.cancelled() => break,
                _ = ticker.tick() => {}
            }
            if Instant::now() >= next_sweep {
                next_sweep = Instant::now() + sweep_every;
                match self.recover(&tracker, &token).await {
                    Ok((r, d)) if r + d > 0 => tracing::info!(replication = %self.cfg.name,
                        resumed = r, deleted = d, "replication canaries of an earlier run found"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(replication = %self.cfg.name,
                        reason = e.reason.as_str(), "replication sweep failed: {}", e.message),
                }
            }
            let (me, t) = (self.clone(), token.clone());
            tracker.spawn(async move {
                me.run_canary(&t).await;
            });
        }
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
