//! Every Prometheus series the daemon exports, in one struct on an explicit [`Registry`].
//!
//! Probe code never touches these directly: a cycle produces a [`CycleReport`] and
//! [`Metrics::record_cycle`] turns it into series, so the figures have one source of truth.
//! Per-attempt S3 request series are the exception: they are recorded by the SDK interceptor in
//! `s3.rs`, because only it sees every retry attempt.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::config::{Probe, Target};
use crate::probe::{Check, CycleReport, Outcome, Reason};
use crate::series;

/// Latency buckets for S3 requests and probe steps: 5 ms to 30 s. Same-region S3 answers a
/// small PUT/GET in 10-100 ms; first-byte latency targets are around 100-200 ms; the top end
/// covers SDK timeouts.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Staleness buckets: a violation lasts from one re-read (tens of ms) to the cycle timeout.
pub const STALENESS_BUCKETS: &[f64] =
    &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

const TARGET_LABELS: &[&str] = &["target", "bucket", "region"];

/// Labels of every replication series.
pub const REPLICATION_LABELS: &[&str] = &[
    "replication",
    "source_bucket",
    "source_region",
    "destination_bucket",
    "destination_region",
];

/// Replication lag buckets: 0.5 s to 1 h (S3 RTC promises 15 minutes for 99.99% of objects).
pub const REPLICATION_LAG_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
];

/// The label values that identify one target on every probe series.
#[derive(Debug, Clone)]
pub struct TargetLabels {
    pub target: String,
    pub bucket: String,
    pub region: String,
}

impl TargetLabels {
    /// Labels of `t`.
    pub fn of(t: &Target) -> Self {
        TargetLabels {
            target: t.name.clone(),
            bucket: t.bucket.clone(),
            region: t.region.clone(),
        }
    }

    fn with<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec![
            self.target.as_str(),
            self.bucket.as_str(),
            self.region.as_str(),
        ];
        v.extend_from_slice(extra);
        v
    }
}

/// Every metric of the contract (probe, request and meta series).
pub struct Metrics {
    /// Registration checks names and label sets for duplicates; rendering goes through
    /// `collectors`, one family at a time.
    registry: Registry,
    collectors: Vec<Box<dyn Collector>>,
    pub probe_runs: series::CounterVec,
    pub probe_failures: series::CounterVec,
    pub probe_success: series::GaugeVec,
    pub probe_duration: series::HistogramVec,
    pub last_success: series::GaugeVec,
    pub request_duration: series::HistogramVec,
    pub request_errors: series::CounterVec,
    pub violations: series::CounterVec,
    pub staleness: series::HistogramVec,
    pub cycles_skipped: series::CounterVec,
    pub orphans_deleted: series::CounterVec,
    pub replication_canaries: IntCounterVec,
    pub replication_lag: HistogramVec,
    pub replication_pending: IntGaugeVec,
    pub replication_oldest_pending: GaugeVec,
    pub replication_timeouts: IntCounterVec,
    pub replication_failures: IntCounterVec,
    pub cloudwatch_publish: IntCounterVec,
    pub cloudwatch_dropped: prometheus::IntCounter,
    pub target_interval: series::GaugeVec,
    pub build_info: IntGaugeVec,
    pub reload_successful: IntGauge,
    pub reload_success_timestamp: Gauge,
}

fn labels(t: &TargetLabels, extra: &[&str]) -> Vec<String> {
    t.with(extra).into_iter().map(str::to_string).collect()
}

impl Metrics {
    /// Builds and registers every metric; `const_labels` is the config's `[labels]` table.
    pub fn new(const_labels: &BTreeMap<String, String>) -> Self {
        let registry = Registry::new();
        let cl: std::collections::HashMap<String, String> = const_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let opts = |name: &str, help: &str| Opts::new(name, help).const_labels(cl.clone());
        let hopts = |name: &str, help: &str, buckets: &[f64]| {
            HistogramOpts::new(name, help)
                .const_labels(cl.clone())
                .buckets(buckets.to_vec())
        };
        let l = |extra: &[&'static str]| -> Vec<&'static str> {
            let mut v = TARGET_LABELS.to_vec();
            v.extend_from_slice(extra);
            v
        };

        let mut m = Metrics {
            probe_runs: series::CounterVec::new(
                opts("s3canary_probe_runs_total", "Probe steps run."),
                &l(&["probe"]),
            )
            .unwrap(),
            probe_failures: series::CounterVec::new(
                opts(
                    "s3canary_probe_failures_total",
                    "Probe steps that failed, by bounded reason.",
                ),
                &l(&["probe", "reason"]),
            )
            .unwrap(),
            probe_success: series::GaugeVec::new(
                opts(
                    "s3canary_probe_success",
                    "1 if the last run of the probe succeeded, else 0.",
                ),
                &l(&["probe"]),
            )
            .unwrap(),
            probe_duration: series::HistogramVec::new(
                hopts(
                    "s3canary_probe_duration_seconds",
                    "Duration of a probe step, including its re-reads.",
                    LATENCY_BUCKETS,
                ),
                &l(&["probe"]),
            )
            .unwrap(),
            last_success: series::GaugeVec::new(
                opts(
                    "s3canary_last_success_timestamp_seconds",
                    "Unix time of the probe's last success.",
                ),
                &l(&["probe"]),
            )
            .unwrap(),
            request_duration: series::HistogramVec::new(
                hopts(
                    "s3canary_s3_request_duration_seconds",
                    "Duration of each S3 request attempt (retries are separate observations).",
                    LATENCY_BUCKETS,
                ),
                &l(&["operation"]),
            )
            .unwrap(),
            request_errors: series::CounterVec::new(
                opts(
                    "s3canary_s3_request_errors_total",
                    "S3 request attempts that failed, by S3 error code.",
                ),
                &l(&["operation", "code"]),
            )
            .unwrap(),
            violations: series::CounterVec::new(
                opts(
                    "s3canary_consistency_violations_total",
                    "Reads or listings that did not reflect an acknowledged write or delete.",
                ),
                &l(&["check"]),
            )
            .unwrap(),
            staleness: series::HistogramVec::new(
                hopts(
                    "s3canary_staleness_seconds",
                    "Per violation: time from the write acknowledgement to the first consistent read.",
                    STALENESS_BUCKETS,
                ),
                &l(&["check"]),
            )
            .unwrap(),
            cycles_skipped: series::CounterVec::new(
                opts(
                    "s3canary_cycles_skipped_total",
                    "Cycles not started because the previous cycle of the target was still running.",
                ),
                TARGET_LABELS,
            )
            .unwrap(),
            orphans_deleted: series::CounterVec::new(
                opts(
                    "s3canary_orphans_deleted_total",
                    "Canaries left by earlier runs and deleted by the orphan sweep.",
                ),
                TARGET_LABELS,
            )
            .unwrap(),
            replication_canaries: IntCounterVec::new(
                opts(
                    "s3canary_replication_canaries_total",
                    "Replication canaries written to the source bucket.",
                ),
                REPLICATION_LABELS,
            )
            .unwrap(),
            replication_lag: HistogramVec::new(
                hopts(
                    "s3canary_replication_lag_seconds",
                    "Source write acknowledgement to the first destination read that finds the copy.",
                    REPLICATION_LAG_BUCKETS,
                ),
                REPLICATION_LABELS,
            )
            .unwrap(),
            replication_pending: IntGaugeVec::new(
                opts(
                    "s3canary_replication_pending",
                    "Replication canaries not yet seen on the destination.",
                ),
                REPLICATION_LABELS,
            )
            .unwrap(),
            replication_oldest_pending: GaugeVec::new(
                opts(
                    "s3canary_replication_oldest_pending_seconds",
                    "Age of the oldest replication canary not yet seen on the destination (0 when none).",
                ),
                REPLICATION_LABELS,
            )
            .unwrap(),
            replication_timeouts: IntCounterVec::new(
                opts(
                    "s3canary_replication_timeouts_total",
                    "Replication canaries not seen on the destination within the timeout.",
                ),
                REPLICATION_LABELS,
            )
            .unwrap(),
            replication_failures: IntCounterVec::new(
                opts(
                    "s3canary_replication_failures_total",
                    "Replication canaries that failed, by reason (put_failed, status_failed, in_flight_cap).",
                ),
                &[REPLICATION_LABELS, &["reason"]].concat(),
            )
            .unwrap(),
            cloudwatch_publish: IntCounterVec::new(
                opts(
                    "s3canary_cloudwatch_publish_total",
                    "PutMetricData calls of the CloudWatch mirror, by result.",
                ),
                &["result"],
            )
            .unwrap(),
            cloudwatch_dropped: prometheus::IntCounter::with_opts(opts(
                "s3canary_cloudwatch_datums_dropped_total",
                "CloudWatch datums dropped because the queue was full.",
            ))
            .unwrap(),
            target_interval: series::GaugeVec::new(
                opts(
                    "s3canary_target_interval_seconds",
                    "Configured probe interval of the target (for staleness alerts).",
                ),
                TARGET_LABELS,
            )
            .unwrap(),
            build_info: IntGaugeVec::new(
                opts("s3canary_build_info", "Always 1; the version label says which build."),
                &["version"],
            )
            .unwrap(),
            reload_successful: IntGauge::with_opts(opts(
                "s3canary_config_last_reload_successful",
                "1 if the last config load or reload succeeded.",
            ))
            .unwrap(),
            reload_success_timestamp: Gauge::with_opts(opts(
                "s3canary_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful config load or reload.",
            ))
            .unwrap(),
            registry,
            collectors: Vec::new(),
        };
        m.add(m.probe_runs.clone());
        m.add(m.probe_failures.clone());
        m.add(m.probe_success.clone());
        m.add(m.probe_duration.clone());
        m.add(m.last_success.clone());
        m.add(m.request_duration.clone());
        m.add(m.request_errors.clone());
        m.add(m.violations.clone());
        m.add(m.staleness.clone());
        m.add(m.cycles_skipped.clone());
        m.add(m.orphans_deleted.clone());
        m.add(m.replication_canaries.clone());
        m.add(m.replication_lag.clone());
        m.add(m.replication_pending.clone());
        m.add(m.replication_oldest_pending.clone());
        m.add(m.replication_timeouts.clone());
        m.add(m.replication_failures.clone());
        m.add(m.cloudwatch_publish.clone());
        m.add(m.cloudwatch_dropped.clone());
        m.add(m.target_interval.clone());
        m.add(m.build_info.clone());
        m.add(m.reload_successful.clone());
        m.add(m.reload_success_timestamp.clone());
        #[cfg(target_os = "linux")]
        m.collectors.push(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        // Families come out sorted by name, as a Registry would write them.
        m.collectors
            .sort_by_cached_key(|c| c.desc().first().map(|d| d.fq_name.clone()));
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Present from the first scrape, so "mirror failing" alerts and panels have a series.
        for result in ["success", "failure"] {
            m.cloudwatch_publish.with_label_values(&[result]);
        }
        m
    }

    /// Creates the series of a target at zero, so rates and absence alerts work from the first
    /// scrape instead of from the first failure.
    pub fn init_target(&self, t: &Target) {
        let tl = TargetLabels::of(t);
        for p in &t.probes {
            let lv = labels(&tl, &[p.as_str()]);
            let lv: Vec<&str> = lv.iter().map(String::as_str).collect();
            self.probe_runs.with_label_values(&lv);
            for check in Check::of_probe(*p) {
                self.violations
                    .with_label_values(&tl.with(&[check.as_str()]));
            }
        }
        self.cycles_skipped.with_label_values(&tl.with(&[]));
        self.target_interval
            .with_label_values(&tl.with(&[]))
            .set(t.interval.as_secs_f64());
    }

    /// Deletes every series of a target (after a reload removed or changed it). The client
    /// library has no partial-match removal, so every label combination the daemon can create
    /// is enumerated; the sets are closed, so this is exact.
    pub fn remove_target(&self, t: &Target) {
        let tl = TargetLabels::of(t);
        const OPS: &[&str] = &[
            "PutObject",
            "GetObject",
            "HeadObject",
            "ListObjectsV2",
            "DeleteObject",
            "other",
        ];
        let mut codes: Vec<&str> = crate::s3::KNOWN_CODES.to_vec();
        codes.extend(["timeout", "connection", "other"]);
        for p in Probe::ALL {
            let lv = tl.with(&[p.as_str()]);
            let _ = self.probe_runs.remove_label_values(&lv);
            let _ = self.probe_success.remove_label_values(&lv);
            let _ = self.probe_duration.remove_label_values(&lv);
            let _ = self.last_success.remove_label_values(&lv);
            for r in Reason::ALL {
                let _ = self
                    .probe_failures
                    .remove_label_values(&tl.with(&[p.as_str(), r.as_str()]));
            }
            for c in Check::of_probe(p) {
                let _ = self.violations.remove_label_values(&tl.with(&[c.as_str()]));
                let _ = self.staleness.remove_label_values(&tl.with(&[c.as_str()]));
            }
        }
        for op in OPS {
            let _ = self.request_duration.remove_label_values(&tl.with(&[op]));
            for code in &codes {
                let _ = self
                    .request_errors
                    .remove_label_values(&tl.with(&[op, code]));
            }
        }
        let _ = self.cycles_skipped.remove_label_values(&tl.with(&[]));
        let _ = self.orphans_deleted.remove_label_values(&tl.with(&[]));
        let _ = self.target_interval.remove_label_values(&tl.with(&[]));
    }

    /// Records one finished cycle: runs, failures, success gauges, durations, violations.
    pub fn record_cycle(&self, tl: &TargetLabels, report: &CycleReport) {
        for r in &report.results {
            let probe = r.probe.as_str();
            let Some(outcome) = &r.outcome else { continue };
            self.probe_runs.with_label_values(&tl.with(&[probe])).inc();
            self.probe_duration
                .with_label_values(&tl.with(&[probe]))
                .observe(r.duration.as_secs_f64());
            match outcome {
                Outcome::Success => {
                    self.probe_success
                        .with_label_values(&tl.with(&[probe]))
                        .set(1.0);
                    self.last_success
                        .with_label_values(&tl.with(&[probe]))
                        .set(unix_seconds(r.finished_at));
                }
                Outcome::Failure(f) => {
                    self.probe_success
                        .with_label_values(&tl.with(&[probe]))
                        .set(0.0);
                    self.probe_failures
                        .with_label_values(&tl.with(&[probe, f.reason.as_str()]))
                        .inc();
                }
            }
        }
        for v in &report.violations {
            self.violations
                .with_label_values(&tl.with(&[v.check.as_str()]))
                .inc();
            self.staleness
                .with_label_values(&tl.with(&[v.check.as_str()]))
                .observe(v.staleness.as_secs_f64());
        }
    }

    /// Counts a cycle that was not started because the previous one still ran.
    pub fn cycle_skipped(&self, tl: &TargetLabels) {
        self.cycles_skipped.with_label_values(&tl.with(&[])).inc();
    }

    /// Records the outcome of a config load or reload.
    pub fn config_loaded(&self, ok: bool) {
        self.reload_successful.set(i64::from(ok));
        if ok {
            self.reload_success_timestamp
                .set(unix_seconds(SystemTime::now()));
        }
    }

    /// Registers `c` (names and labels checked once, here) and keeps it for rendering.
    fn add<C: Collector + Clone + 'static>(&mut self, c: C) {
        self.registry
            .register(Box::new(c.clone()))
            .expect("metric names and label sets are unique");
        self.collectors.push(Box::new(c));
    }

    /// Renders every series in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        for chunk in Render::new(self) {
            out.extend_from_slice(&chunk);
        }
        String::from_utf8(out).expect("the text format is UTF-8")
    }

    /// The Prometheus text in chunks of at most [`RENDER_CHUNK`] series, each rendered when
    /// the iterator is advanced.
    ///
    /// At 1000 targets the whole text is about 16 MiB. `Registry::gather` followed by one
    /// `encode` would copy every series of every family into protobuf structures and then
    /// grow the text by doubling, about 80 MiB at the peak of a scrape. Streamed in chunks
    /// (see `http.rs`), a scrape holds the structures of one family (about 3 MiB for the
    /// largest) and a chunk or two of text.
    pub fn render_chunks(self: &Arc<Self>) -> impl Iterator<Item = Vec<u8>> + Send + 'static {
        Render::new(self.clone())
    }
}

/// Orders a family's series by their label values, as `Registry::gather` does, so the text is
/// stable from one scrape to the next.
pub(crate) fn sort_by_label_values(f: &mut prometheus::proto::MetricFamily) {
    f.mut_metric().sort_by_cached_key(|m| {
        m.get_label()
            .iter()
            .map(|l| l.value().to_owned())
            .collect::<Vec<_>>()
    });
}

/// Most series per chunk of the `/metrics` text (about 0.5 MiB for histograms).
pub const RENDER_CHUNK: usize = 256;

/// The state of one `/metrics` rendering: the families of the collector being written and how
/// many series of the first one are written.
struct Render<M> {
    metrics: M,
    next_collector: usize,
    families: std::collections::VecDeque<prometheus::proto::MetricFamily>,
    done_in_family: usize,
}

impl<M: std::ops::Deref<Target = Metrics>> Render<M> {
    fn new(metrics: M) -> Self {
        Render {
            metrics,
            next_collector: 0,
            families: std::collections::VecDeque::new(),
            done_in_family: 0,
        }
    }
}

impl<M: std::ops::Deref<Target = Metrics>> Iterator for Render<M> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        while self.families.is_empty() {
            let c = self.metrics.collectors.get(self.next_collector)?;
            self.next_collector += 1;
            for mut f in c.collect() {
                if f.get_metric().is_empty() {
                    continue;
                }
                sort_by_label_values(&mut f);
                self.families.push_back(f);
            }
            self.done_in_family = 0;
        }
        let family = self.families.front_mut().expect("not empty");
        let total = family.get_metric().len();
        let end = (self.done_in_family + RENDER_CHUNK).min(total);
        // A family of only this chunk's series; the rest stay in place for the next chunks.
        let mut part = prometheus::proto::MetricFamily::default();
        part.set_name(family.name().to_owned());
        part.set_help(family.help().to_owned());
        part.set_field_type(family.get_field_type());
        part.set_metric(
            family.mut_metric()[self.done_in_family..end]
                .iter_mut()
                .map(std::mem::take)
                .collect(),
        );
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&[part], &mut buf)
            .expect("text encoding into a Vec cannot fail");
        if self.done_in_family > 0 {
            // The encoder starts every family with its `# HELP` and `# TYPE` lines; a family
            // split over chunks must have them once. Neither line can hold a raw newline (the
            // encoder escapes them in help texts).
            let header = buf
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(1)
                .map_or(0, |(i, _)| i + 1);
            buf.drain(..header);
        }
        self.done_in_family = end;
        if end == total {
            self.families.pop_front();
            self.done_in_family = 0;
        }
        Some(buf)
    }
}

/// Seconds since the Unix epoch, as Prometheus timestamps are.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// Reasons are a closed set; this lists them for docs and tests.
pub fn all_reasons() -> Vec<&'static str> {
    Reason::ALL.iter().map(|r| r.as_str()).collect()
}

/// Probes whose success is a consistency check, for docs.
pub fn checks_of(p: Probe) -> Vec<&'static str> {
    Check::of_probe(p).iter().map(|c| c.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_render_is_the_registry_text() {
        let labels = BTreeMap::from([("env".to_string(), "test".to_string())]);
        let m = Arc::new(Metrics::new(&labels));
        // Enough series that the largest families span several chunks.
        for i in 0..(RENDER_CHUNK * 2 + 7) {
            let t = format!("t{i}");
            m.probe_duration
                .with_label_values(&[&t, "b", "r", "put"])
                .observe(0.01 * i as f64);
            m.probe_runs.with_label_values(&[&t, "b", "r", "put"]).inc();
        }
        let mut want = Vec::new();
        TextEncoder::new()
            .encode(&m.registry.gather(), &mut want)
            .unwrap();
        let want = String::from_utf8(want).unwrap();
        let got = m.render();
        // Process figures change between two renders; every s3canary line must be the same,
        // in the same order (families by name, series by label values).
        let ours = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| l.contains("s3canary_"))
                .map(str::to_string)
                .collect()
        };
        assert!(ours(&want).len() > RENDER_CHUNK * 2 * 18);
        assert_eq!(ours(&got), ours(&want));
        assert_eq!(
            got.matches("# TYPE s3canary_probe_duration_seconds histogram")
                .count(),
            1
        );
    }
}
