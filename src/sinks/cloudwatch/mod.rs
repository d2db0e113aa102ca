//! The CloudWatch mirror: the same figures as `/metrics`, published with the names of the
//! boto3 S3ConsistencyMonitor so existing CloudWatch alarms keep working.
//!
//! Three parts, none on the probe path:
//! - an aggregator fed by the same cycle reports and replication outcomes as the Prometheus
//!   metrics: per publish interval, per bucket and check, successes, totals and every latency;
//! - a flush that turns one interval into datums (SuccessRate in Percent, Latency in
//!   Milliseconds as Values/Counts so CloudWatch percentiles work, Replication_Lag in Seconds,
//!   Replication_Pending as a Count) and puts them on a bounded queue;
//! - a sender that takes batches within the PutMetricData limits off the queue and retries with
//!   backoff and jitter. When CloudWatch is unreachable the queue fills and the oldest datums
//!   are dropped and counted; probes never wait for CloudWatch.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use tokio::sync::Notify;

mod sender;

pub use sender::{MAX_BYTES_PER_CALL, MAX_DATUMS_PER_CALL, client, next_batch};

use super::metrics::Metrics;
use crate::config::CloudWatchSection;
use crate::report::{
    CycleReport, EventReport, Outcome, PairLabels, Probe, ReplicationEvent, Sink, TargetLabels,
};

/// Most distinct values in one datum (the API limit).
pub const MAX_VALUES_PER_DATUM: usize = 150;
/// Datums kept while CloudWatch is unreachable; beyond this the oldest are dropped.
pub const QUEUE_CAPACITY: usize = 20_000;

/// The check name of a probe in the metric names (the Python monitor's names where it had
/// them).
pub fn check_name(p: Probe) -> &'static str {
    match p {
        Probe::Get => "Read_After_Write",
        Probe::List => "List_After_Write",
        Probe::Overwrite => "Update_Consistency",
        Probe::Put => "Put",
        Probe::Delete => "Delete_Consistency",
        Probe::Conditional => "Conditional_Write",
        Probe::Checksum => "Checksum",
        Probe::Multipart => "Multipart",
        Probe::Events => "Event_Delivery",
        Probe::Cdn => "Cdn_Consistency",
        Probe::Durability => "Durability",
    }
}

#[derive(Debug, Default)]
struct CheckAgg {
    total: u64,
    ok: u64,
    /// Latency in tenths of a millisecond -> count.
    latency: BTreeMap<u64, u32>,
}

#[derive(Debug, Default)]
struct Agg {
    /// (bucket, region, check)
    checks: BTreeMap<(String, String, &'static str), CheckAgg>,
    /// (source bucket, destination bucket) -> lag in tenths of a second -> count
    lags: BTreeMap<(String, String), BTreeMap<u64, u32>>,
    /// bucket -> notifications delivered (delivery time in hundredths of a second -> count)
    /// and lost
    events: BTreeMap<String, (BTreeMap<u64, u32>, u64)>,
    /// bucket -> objects of the durability set lost, as last counted
    durability_lost: BTreeMap<String, u32>,
    /// (bucket, region, name) -> the latest value of a per-target gauge in seconds: the clock
    /// skew, and how long until the credentials expire.
    gauges: BTreeMap<(String, String, &'static str), f64>,
}

/// Replication pair -> (source bucket, destination bucket, canaries in flight), as last
/// reported.
type Pending = BTreeMap<String, (String, String, usize)>;

/// The mirror's state, shared by the daemon (which feeds it) and the sender task.
pub struct Mirror {
    pub cfg: CloudWatchSection,
    /// Storage resolution of every datum: 1 (high resolution) or 60.
    pub storage_resolution: i32,
    agg: Mutex<Agg>,
    pending: Mutex<Pending>,
    queue: Mutex<VecDeque<MetricDatum>>,
    queued: Notify,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("namespace", &self.cfg.namespace)
            .finish()
    }
}

fn dim(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

/// Splits a value histogram into datums of at most [`MAX_VALUES_PER_DATUM`] values each.
fn values_datums(
    name: &str,
    dims: &[Dimension],
    unit: StandardUnit,
    values: &BTreeMap<u64, u32>,
    scale: f64,
    at: DateTime,
    resolution: i32,
) -> Vec<MetricDatum> {
    let all: Vec<(f64, f64)> = values
        .iter()
        .map(|(v, c)| (*v as f64 / scale, f64::from(*c)))
        .collect();
    all.chunks(MAX_VALUES_PER_DATUM)
        .map(|chunk| {
            MetricDatum::builder()
                .metric_name(name)
                .set_dimensions(Some(dims.to_vec()))
                .unit(unit.clone())
                .timestamp(at)
                .storage_resolution(resolution)
                .set_values(Some(chunk.iter().map(|(v, _)| *v).collect()))
                .set_counts(Some(chunk.iter().map(|(_, c)| *c).collect()))
                .build()
        })
        .collect()
}

impl Mirror {
    /// A mirror for `cfg`, reporting its own health in `metrics`.
    pub fn new(cfg: CloudWatchSection, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Mirror {
            storage_resolution: if cfg.high_resolution { 1 } else { 60 },
            cfg,
            agg: Mutex::new(Agg::default()),
            pending: Mutex::new(Pending::new()),
            queue: Mutex::new(VecDeque::new()),
            queued: Notify::new(),
            metrics,
        })
    }

    /// Adds a finished cycle of `t`.
    pub fn record_cycle(&self, t: &TargetLabels, report: &CycleReport) {
        let mut agg = self.agg.lock().unwrap();
        for r in &report.results {
            Self::record_result(&mut agg, t, r);
        }
    }

    fn record_result(agg: &mut Agg, t: &TargetLabels, r: &crate::report::ProbeResult) {
        let Some(outcome) = &r.outcome else { return };
        let key = (t.bucket.clone(), t.region.clone(), check_name(r.probe));
        let c = agg.checks.entry(key).or_default();
        c.total += 1;
        if matches!(outcome, Outcome::Success) {
            c.ok += 1;
            let tenths = (r.duration.as_secs_f64() * 10_000.0).round() as u64;
            *c.latency.entry(tenths).or_default() += 1;
        }
    }

    /// Adds a measured replication lag.
    pub fn record_lag(&self, source_bucket: &str, destination_bucket: &str, lag: Duration) {
        let mut agg = self.agg.lock().unwrap();
        let l = agg
            .lags
            .entry((source_bucket.to_string(), destination_bucket.to_string()))
            .or_default();
        *l.entry((lag.as_secs_f64() * 10.0).round() as u64)
            .or_default() += 1;
    }

    /// Closes the current interval: turns it into datums stamped `at` (with the replication
    /// pending counts last reported) and queues them. Returns how many datums were queued.
    pub fn flush(&self, at: SystemTime) -> usize {
        let agg = std::mem::take(&mut *self.agg.lock().unwrap());
        let pending = self.pending.lock().unwrap().clone();
        let at = DateTime::from(at);
        let res = self.storage_resolution;
        let mut datums = Vec::new();
        for ((bucket, region, check), c) in &agg.checks {
            let dims = [dim("BucketName", bucket), dim("Region", region)];
            datums.push(
                MetricDatum::builder()
                    .metric_name(format!("S3Consistency_{check}_SuccessRate"))
                    .set_dimensions(Some(dims.to_vec()))
                    .unit(StandardUnit::Percent)
                    .value(100.0 * c.ok as f64 / c.total.max(1) as f64)
                    .timestamp(at)
                    .storage_resolution(res)
                    .build(),
            );
            datums.extend(values_datums(
                &format!("S3Consistency_{check}_Latency"),
                &dims,
                StandardUnit::Milliseconds,
                &c.latency,
                10.0,
                at,
                res,
            ));
        }
        for ((src, dst), lags) in &agg.lags {
            let dims = [dim("SourceBucket", src), dim("DestinationBucket", dst)];
            datums.extend(values_datums(
                "S3Consistency_Replication_Lag",
                &dims,
                StandardUnit::Seconds,
                lags,
                10.0,
                at,
                res,
            ));
        }
        for (bucket, (delivery, lost)) in &agg.events {
            let dims = [dim("BucketName", bucket)];
            datums.extend(values_datums(
                "S3Consistency_Event_Delivery_Latency",
                &dims,
                StandardUnit::Seconds,
                delivery,
                100.0,
                at,
                res,
            ));
            datums.push(
                MetricDatum::builder()
                    .metric_name("S3Consistency_Event_Lost")
                    .set_dimensions(Some(dims.to_vec()))
                    .unit(StandardUnit::Count)
                    .value(*lost as f64)
                    .timestamp(at)
                    .storage_resolution(res)
                    .build(),
            );
        }
        for ((bucket, region, name), v) in &agg.gauges {
            datums.push(
                MetricDatum::builder()
                    .metric_name(format!("S3Consistency_{name}"))
                    .set_dimensions(Some(vec![dim("BucketName", bucket), dim("Region", region)]))
                    .unit(StandardUnit::Seconds)
                    .value(*v)
                    .timestamp(at)
                    .storage_resolution(res)
                    .build(),
            );
        }
        for (bucket, lost) in &agg.durability_lost {
            datums.push(
                MetricDatum::builder()
                    .metric_name("S3Consistency_Durability_Lost")
                    .set_dimensions(Some(vec![dim("BucketName", bucket)]))
                    .unit(StandardUnit::Count)
                    .value(f64::from(*lost))
                    .timestamp(at)
                    .storage_resolution(res)
                    .build(),
            );
        }
        for (src, dst, n) in pending.values() {
            datums.push(
                MetricDatum::builder()
                    .metric_name("S3Consistency_Replication_Pending")
                    .set_dimensions(Some(vec![
                        dim("SourceBucket", src),
                        dim("DestinationBucket", dst),
                    ]))
                    .unit(StandardUnit::Count)
                    .value(*n as f64)
                    .timestamp(at)
                    .storage_resolution(res)
                    .build(),
            );
        }
        let n = datums.len();
        self.enqueue(datums);
        n
    }

    fn enqueue(&self, datums: Vec<MetricDatum>) {
        let mut q = self.queue.lock().unwrap();
        q.extend(datums);
        let over = q.len().saturating_sub(QUEUE_CAPACITY);
        if over > 0 {
            q.drain(..over);
            self.metrics.cloudwatch_dropped.get().inc_by(over as u64);
        }
        drop(q);
        self.queued.notify_one();
    }

    /// Datums waiting to be sent.
    pub fn queue_len(&self) -> usize {
        self.queue.lock().unwrap().len()
    }

    /// A copy of the datums waiting to be sent, oldest first.
    pub fn queued(&self) -> Vec<MetricDatum> {
        self.queue.lock().unwrap().iter().cloned().collect()
    }
}

impl Sink for Mirror {
    fn cycle(&self, t: &TargetLabels, report: &CycleReport) {
        self.record_cycle(t, report);
    }

    /// The multipart probe's uploads (the events probe's runs are published as delivery
    /// latency and lost notifications instead).
    fn result(&self, t: &TargetLabels, _key: &str, r: &crate::report::ProbeResult) {
        if r.probe != Probe::Events {
            Self::record_result(&mut self.agg.lock().unwrap(), t, r);
        }
    }

    fn replication(&self, p: &PairLabels, e: ReplicationEvent) {
        if let ReplicationEvent::Replicated(lag) = e {
            self.record_lag(p.source_bucket(), p.destination_bucket(), lag);
        }
    }

    fn replication_pending(&self, p: &PairLabels, count: usize, _oldest: Duration) {
        let buckets = (
            p.source_bucket().to_string(),
            p.destination_bucket().to_string(),
        );
        self.pending
            .lock()
            .unwrap()
            .insert(p.0[0].clone(), (buckets.0, buckets.1, count));
    }

    fn pair_removed(&self, p: &PairLabels) {
        self.pending.lock().unwrap().remove(&p.0[0]);
    }

    /// The lost objects of the durability set, per bucket.
    /// The host clock minus S3's, as last seen (`S3Consistency_ClockSkew`).
    fn clock_skew(&self, t: &TargetLabels, seconds: i64) {
        let key = (t.bucket.clone(), t.region.clone(), "ClockSkew");
        self.agg.lock().unwrap().gauges.insert(key, seconds as f64);
    }

    /// How long until the credentials in use expire (`S3Consistency_Credentials_ExpiresIn`;
    /// none for static keys).
    fn credentials(&self, t: &TargetLabels, expiry: Option<SystemTime>, _failures: u64) {
        if let Some(at) = expiry {
            let left = match at.duration_since(SystemTime::now()) {
                Ok(d) => d.as_secs_f64(),
                Err(e) => -e.duration().as_secs_f64(),
            };
            let key = (t.bucket.clone(), t.region.clone(), "Credentials_ExpiresIn");
            self.agg.lock().unwrap().gauges.insert(key, left.round());
        }
    }

    fn durability(&self, t: &TargetLabels, c: crate::report::DurabilityCount) {
        let mut agg = self.agg.lock().unwrap();
        agg.durability_lost.insert(t.bucket.clone(), c.lost);
    }

    /// Delivery times and lost notifications per bucket (`Expected` opens the bucket's
    /// figures, so an interval with expected events and none lost publishes a 0).
    fn event(&self, t: &TargetLabels, r: &EventReport) {
        let mut agg = self.agg.lock().unwrap();
        let e = agg.events.entry(t.bucket.clone()).or_default();
        match r {
            EventReport::Delivered { after, .. } => {
                *e.0.entry((after.as_secs_f64() * 100.0).round() as u64)
                    .or_default() += 1;
            }
            EventReport::Lost { .. } => e.1 += 1,
            EventReport::Expected(_) | EventReport::Duplicate { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests;
