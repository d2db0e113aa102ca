//! Every Prometheus series the daemon exports, in one struct on an explicit [`Registry`].
//!
//! Producers never touch these directly: they report cycles, request attempts, sweeps and
//! replication canaries to the [`Sink`](crate::report::Sink) this struct implements, so the figures have one source
//! of truth ([`record`]). The text exposition is in [`exposition`].

use std::collections::BTreeMap;
use std::time::SystemTime;

use prometheus::{HistogramOpts, Opts, Registry};

mod buckets;
mod cells;
pub mod exposition;
mod native;
mod network;
pub mod openmetrics;
#[cfg(target_os = "linux")]
mod process;
pub mod protobuf;
mod record;
pub use record::UNTIMED;
pub mod series;
#[cfg(test)]
mod testing;

pub use buckets::{
    EVENT_DELIVERY_BUCKETS, LATENCY_BUCKETS, PROBE_DURATION_BUCKETS, REPLICATION_LAG_BUCKETS,
    STALENESS_BUCKETS,
};
use protobuf::Exposable;

use crate::report::unix_seconds;

const TARGET_LABELS: &[&str] = &["target", "bucket", "region"];

/// Labels of every replication series.
pub const REPLICATION_LABELS: &[&str] = &[
    "replication",
    "source_bucket",
    "source_region",
    "destination_bucket",
    "destination_region",
];

/// Every metric of the contract (probe, request and meta series).
pub struct Metrics {
    /// Registration checks names and label sets for duplicates; rendering goes through
    /// `collectors`, one family at a time.
    registry: Registry,
    collectors: Vec<Box<dyn Exposable>>,
    pub probe_runs: series::CounterVec,
    pub probe_failures: series::CounterVec,
    pub probe_success: series::GaugeVec,
    pub consecutive_failures: series::GaugeVec,
    pub probe_duration: series::HistogramVec,
    pub last_success: series::GaugeVec,
    pub request_duration: series::HistogramVec,
    pub request_errors: series::CounterVec,
    pub violations: series::CounterVec,
    pub staleness: series::HistogramVec,
    pub cycles_skipped: series::CounterVec,
    pub orphans_deleted: series::CounterVec,
    pub event_delivery: series::HistogramVec,
    pub events_expected: series::CounterVec,
    pub events_lost: series::CounterVec,
    pub event_duplicates: series::CounterVec,
    pub events_pending: series::GaugeVec,
    pub events_oldest_pending: series::GaugeVec,
    pub foreign_messages: series::CounterVec,
    pub durability_objects: series::GaugeVec,
    pub multipart_uploads_open: series::GaugeVec,
    pub clock_skew: series::GaugeVec,
    pub credentials_expiry: series::GaugeVec,
    pub credentials_failures: series::CounterVec,
    /// Request phases, connections opened, the endpoint's certificate expiry.
    pub network: network::Network,
    pub replication_canaries: series::CounterVec,
    pub replication_lag: series::HistogramVec,
    pub replication_pending: series::GaugeVec,
    pub replication_oldest_pending: series::GaugeVec,
    pub replication_timeouts: series::CounterVec,
    pub replication_failures: series::CounterVec,
    pub cloudwatch_publish: series::CounterVec,
    pub cloudwatch_dropped: series::CounterVec,
    pub target_interval: series::GaugeVec,
    pub build_info: series::GaugeVec,
    pub reload_successful: series::GaugeVec,
    pub reload_success_timestamp: series::GaugeVec,
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
        // A per-target gauge with no labels of its own.
        let gauge = |name: &str, help: &str| {
            series::GaugeVec::new(opts(name, help), TARGET_LABELS).unwrap()
        };
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
            consecutive_failures: series::GaugeVec::new(
                opts(
                    "s3canary_probe_consecutive_failures",
                    "Runs of the probe in a row that failed, 0 after a success (0 from the start).",
                ),
                &l(&["probe"]),
            )
            .unwrap(),
            probe_duration: series::HistogramVec::new(
                hopts(
                    "s3canary_probe_duration_seconds",
                    "Duration of a probe step, including its re-reads.",
                    PROBE_DURATION_BUCKETS,
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
            request_duration: series::HistogramVec::with_exemplars(
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
            event_delivery: series::HistogramVec::new(
                hopts(
                    "s3canary_event_delivery_seconds",
                    "Write or delete acknowledgement to its S3 event notification received.",
                    EVENT_DELIVERY_BUCKETS,
                ),
                &l(&["event"]),
            )
            .unwrap(),
            events_expected: series::CounterVec::new(
                opts(
                    "s3canary_event_expected_total",
                    "Acknowledged writes and deletes whose S3 event notification is expected.",
                ),
                &l(&["event"]),
            )
            .unwrap(),
            events_lost: series::CounterVec::new(
                opts(
                    "s3canary_event_lost_total",
                    "Expected S3 event notifications not received within the events timeout.",
                ),
                &l(&["event"]),
            )
            .unwrap(),
            event_duplicates: series::CounterVec::new(
                opts(
                    "s3canary_event_duplicates_total",
                    "S3 event notifications received for a change already notified.",
                ),
                &l(&["event"]),
            )
            .unwrap(),
            events_pending: gauge(
                "s3canary_event_pending",
                "Expected S3 event notifications not yet received.",
            ),
            events_oldest_pending: gauge(
                "s3canary_event_oldest_pending_seconds",
                "Age of the oldest expected notification not yet received (0 when none).",
            ),
            durability_objects: series::GaugeVec::new(
                opts(
                    "s3canary_durability_objects",
                    "Objects of the durability set by state (present, lost, corrupt), as last counted.",
                ),
                &l(&["state"]),
            )
            .unwrap(),
            multipart_uploads_open: gauge(
                "s3canary_multipart_uploads_open",
                "The multipart probe's uploads under the prefix still open after the last sweep (in flight or younger than orphan_ttl).",
            ),
            clock_skew: gauge(
                "s3canary_clock_skew_seconds",
                "This host's clock minus the Date of S3's latest answer to the target, in whole seconds (S3 refuses requests signed more than 15 minutes off).",
            ),
            credentials_expiry: gauge(
                "s3canary_credentials_expiry_timestamp_seconds",
                "When the credentials the target's requests are signed with expire (absent for static keys).",
            ),
            credentials_failures: series::CounterVec::new(
                opts(
                    "s3canary_credentials_refresh_failures_total",
                    "Loads of the target's credentials that failed (the chain found nothing, the token file is gone, STS refused or did not answer).",
                ),
                TARGET_LABELS,
            )
            .unwrap(),
            network: network::Network::new(&cl, TARGET_LABELS),
            foreign_messages: series::CounterVec::new(
                opts(
                    "s3canary_event_foreign_messages_total",
                    "Messages on an events queue about no target's keys, left on the queue.",
                ),
                &["queue"],
            )
            .unwrap(),
            replication_canaries: series::CounterVec::new(
                opts(
                    "s3canary_replication_canaries_total",
                    "Replication canaries written to the source bucket.",
                ),
                REPLICATION_LABELS,
            )
            .unwrap(),
            replication_lag: series::HistogramVec::classic(
                hopts(
                    "s3canary_replication_lag_seconds",
                    "Source write acknowledgement to the first destination read that finds the copy.",
                    REPLICATION_LAG_BUCKETS,
                ),
                REPLICATION_LABELS,
            )
            .unwrap(),
            replication_pending: series::GaugeVec::new(
                opts(
                    "s3canary_replication_pending",
                    "Replication canaries not yet seen on the destination.",
                ),
                REPLICATION_LABELS,
            )
            .unwrap(),
            replication_oldest_pending: series::GaugeVec::new(
                opts(
                    "s3canary_replication_oldest_pending_seconds",
                    "Age of the oldest replication canary not yet seen on the destination (0 when none).",
                ),
                REPLICATION_LABELS,
            )
            .unwrap(),
            replication_timeouts: series::CounterVec::new(
                opts(
                    "s3canary_replication_timeouts_total",
                    "Replication canaries not seen on the destination within the timeout.",
                ),
                REPLICATION_LABELS,
            )
            .unwrap(),
            replication_failures: series::CounterVec::new(
                opts(
                    "s3canary_replication_failures_total",
                    "Replication canaries that failed, by reason (put_failed, status_failed, in_flight_cap).",
                ),
                &[REPLICATION_LABELS, &["reason"]].concat(),
            )
            .unwrap(),
            cloudwatch_publish: series::CounterVec::new(
                opts(
                    "s3canary_cloudwatch_publish_total",
                    "PutMetricData calls of the CloudWatch mirror, by result.",
                ),
                &["result"],
            )
            .unwrap(),
            cloudwatch_dropped: series::CounterVec::single(opts(
                "s3canary_cloudwatch_datums_dropped_total",
                "CloudWatch datums dropped because the queue was full.",
            ))
            .unwrap(),
            target_interval: gauge(
                "s3canary_target_interval_seconds",
                "Configured probe interval of the target (for staleness alerts).",
            ),
            build_info: series::GaugeVec::new(
                opts("s3canary_build_info", "Always 1; the version label says which build."),
                &["version"],
            )
            .unwrap(),
            reload_successful: series::GaugeVec::single(opts(
                "s3canary_config_last_reload_successful",
                "1 if the last config load or reload succeeded.",
            ))
            .unwrap(),
            reload_success_timestamp: series::GaugeVec::single(opts(
                "s3canary_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful config load or reload.",
            ))
            .unwrap(),
            registry,
            collectors: Vec::new(),
        };
        // Every family, registered (names and label sets checked once) and kept to render.
        macro_rules! add_all {
            ($($family:ident),*,) => {$( m.add(m.$family.clone()); )*};
        }
        #[rustfmt::skip]
        add_all!(
            probe_runs, probe_failures, probe_success, consecutive_failures, probe_duration,
            last_success, request_duration, request_errors, violations, staleness, cycles_skipped,
            orphans_deleted, event_delivery, events_expected, events_lost, event_duplicates,
            events_pending, events_oldest_pending, foreign_messages, durability_objects,
            multipart_uploads_open, clock_skew, credentials_expiry, credentials_failures, replication_canaries, replication_lag,
            replication_pending, replication_oldest_pending, replication_timeouts,
            replication_failures, cloudwatch_publish, cloudwatch_dropped, target_interval,
            build_info, reload_successful, reload_success_timestamp,
        );
        let network = m.network.clone();
        m.add(network.phases);
        m.add(network.connections_opened);
        m.add(network.tls_expiry);
        #[cfg(target_os = "linux")]
        m.collectors.push(Box::new(process::Process::new()));
        // Families come out sorted by name, as a Registry would write them.
        m.collectors
            .sort_by_cached_key(|c| c.desc().first().map(|d| d.fq_name.clone()));
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1.0);
        // Present from the first scrape, so "mirror failing" alerts and panels have a series.
        for result in ["success", "failure"] {
            m.cloudwatch_publish.with_label_values(&[result]);
        }
        m
    }

    /// Records the outcome of a config load or reload.
    pub fn config_loaded(&self, ok: bool) {
        self.reload_successful.get().set(f64::from(u8::from(ok)));
        if ok {
            self.reload_success_timestamp
                .get()
                .set(unix_seconds(SystemTime::now()));
        }
    }

    /// Registers `c` (names and labels checked once, here) and keeps it for rendering.
    fn add<C: Exposable + Clone + 'static>(&mut self, c: C) {
        self.registry
            .register(Box::new(c.clone()))
            .expect("metric names and label sets are unique");
        self.collectors.push(Box::new(c));
    }

    /// Deletes every series of one target (`names` [`TARGET_LABELS`]) or pair
    /// ([`REPLICATION_LABELS`]) with these label `values`, in every family.
    pub(super) fn remove_series(&self, names: &[&str], values: &[&str]) -> usize {
        self.collectors
            .iter()
            .map(|c| c.remove_series(names, values))
            .sum()
    }

    /// The registry the families are checked on (tests compare its own text with ours).
    #[cfg(test)]
    pub(super) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The collectors to render, sorted by family name.
    pub(super) fn collectors(&self) -> &[Box<dyn Exposable>] {
        &self.collectors
    }
}
