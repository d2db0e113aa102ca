//! The children of our own families ([`super::series`]): a counter, a gauge and a histogram
//! ([`histogram`]), each its numbers and nothing else, written into every exposition.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::proto::{self, MetricType};
use prometheus_client::encoding::MetricEncoder;

use super::protobuf;

mod histogram;

pub use histogram::Histogram;

/// A histogram family's buckets: its classic upper bounds, and whether the protobuf
/// exposition gets native buckets as well.
#[derive(Debug, Clone)]
pub struct Buckets {
    pub bounds: Arc<[f64]>,
    pub native: bool,
    /// The text expositions show the family as a summary (`_sum` and `_count`, no quantiles)
    /// instead of a histogram with only its +Inf bucket, which would repeat `_count`.
    pub text_summary: bool,
    /// Each classic bucket keeps the request ID of the latest observation in it, an exemplar
    /// of the OpenMetrics exposition.
    pub exemplars: bool,
}

/// What one child holds: a counter, a gauge or a histogram.
pub trait Cell: Send + Sync + 'static {
    /// The family's type.
    const TYPE: MetricType;
    /// A zeroed child; `buckets` are the histogram's (unused by the others).
    fn new(buckets: &Buckets) -> Self;
    /// Writes the child's value into `m`.
    fn write(&self, m: &mut proto::Metric);
    /// Writes the child's value through prometheus-client's encoder (the protobuf and
    /// OpenMetrics expositions).
    fn encode(&self, e: MetricEncoder) -> std::fmt::Result;
    /// The protobuf message of a family of these that keeps exemplars (histograms only).
    fn message_family(_f: &super::series::Family<Self>) -> Option<Vec<Vec<u8>>>
    where
        Self: Sized,
    {
        None
    }
    /// The OpenMetrics text of the children of `keys` of a family of these that keeps
    /// exemplars (histograms only), with the family's `# HELP` and `# TYPE` lines if `header`.
    fn openmetrics_family(
        _f: &super::series::Family<Self>,
        _keys: &[String],
        _header: bool,
    ) -> Option<String>
    where
        Self: Sized,
    {
        None
    }
}

/// A monotonic integer counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Adds `n`.
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Cell for Counter {
    const TYPE: MetricType = MetricType::COUNTER;
    fn new(_: &Buckets) -> Self {
        Counter::default()
    }
    fn write(&self, m: &mut proto::Metric) {
        let mut c = proto::Counter::default();
        c.set_value(self.get() as f64);
        m.set_counter(c);
    }
    fn encode(&self, mut e: MetricEncoder) -> std::fmt::Result {
        protobuf::counter(&mut e, self.get() as f64)
    }
}

/// A gauge holding an `f64`.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl Cell for Gauge {
    const TYPE: MetricType = MetricType::GAUGE;
    fn new(_: &Buckets) -> Self {
        Gauge::default()
    }
    fn write(&self, m: &mut proto::Metric) {
        let mut g = proto::Gauge::default();
        g.set_value(self.get());
        m.set_gauge(g);
    }
    fn encode(&self, mut e: MetricEncoder) -> std::fmt::Result {
        e.encode_gauge(&self.get())
    }
}
