//! The network path's series: where each attempt's time went (dns, connect, tls, first byte,
//! body), how many connections were opened, and when the endpoint's certificate expires.

use std::collections::HashMap;

use prometheus::{HistogramOpts, Opts};

use super::series;
use crate::report::{RequestPhases, TargetLabels, unix_seconds};

/// The families of the network path, per target.
#[derive(Clone)]
pub struct Network {
    pub phases: series::HistogramVec,
    pub connections_opened: series::CounterVec,
    pub tls_expiry: series::GaugeVec,
}

impl Network {
    /// The families, with the config's `[labels]` as constant labels.
    pub fn new(const_labels: &HashMap<String, String>, target_labels: &[&str]) -> Self {
        let opts =
            |name: &str, help: &str| Opts::new(name, help).const_labels(const_labels.clone());
        let with_phase: Vec<&str> = [target_labels, &["phase"]].concat();
        Network {
            // Per target, not per operation, and without classic buckets: five phases cost
            // five series where native histograms are scraped, ten (sum and count) elsewhere.
            phases: series::HistogramVec::native_only(
                HistogramOpts::new(
                    "s3canary_request_phase_seconds",
                    "Phases of each S3 request attempt that got an answer (dns, connect and tls only when the attempt opened its connection; body when the answer had one).",
                )
                .const_labels(const_labels.clone()),
                &with_phase,
            )
            .unwrap(),
            connections_opened: series::CounterVec::new(
                opts(
                    "s3canary_connections_opened_total",
                    "Connections opened to the target's endpoint (an attempt that reused one opened none).",
                ),
                target_labels,
            )
            .unwrap(),
            tls_expiry: series::GaugeVec::new(
                opts(
                    "s3canary_endpoint_tls_expiry_timestamp_seconds",
                    "The earliest notAfter of the certificate chain the target's endpoint presented on its latest new connection (TLS endpoints only).",
                ),
                target_labels,
            )
            .unwrap(),
        }
    }

    /// A target is scheduled: its connection counter exists at 0.
    pub fn target_added(&self, tl: &TargetLabels) {
        self.connections_opened.with_label_values(&tl.with(&[]));
    }

    /// One attempt's phases.
    pub fn record(&self, tl: &TargetLabels, p: &RequestPhases) {
        for (phase, took) in p.observed() {
            self.phases
                .with_label_values(&tl.with(&[phase.as_str()]))
                .observe(took.as_secs_f64());
        }
        if p.new_connection {
            self.connections_opened
                .with_label_values(&tl.with(&[]))
                .inc();
        }
        if let Some(at) = p.tls_not_after {
            self.tls_expiry
                .with_label_values(&tl.with(&[]))
                .set(unix_seconds(at));
        }
    }
}
