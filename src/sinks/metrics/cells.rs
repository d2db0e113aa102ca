//! The children of our own families ([`super::series`]): a counter, a gauge and a histogram,
//! each its numbers and nothing else, written into the text and the protobuf exposition.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::proto::{self, MetricType};
use std::time::SystemTime;

use prometheus_client::encoding::prometheus_protobuf::prometheus_data_model as pb;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::exemplar::HistogramWithExemplars;

use super::native::Native;

use super::protobuf;

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

/// The label set of an exemplar: the request ID.
type Exemplar = Vec<(&'static str, String)>;

/// Most characters of an exemplar's request ID: OpenMetrics allows 128 for an exemplar's
/// label names and values together; S3's IDs have 16.
const MAX_EXEMPLAR_ID: usize = 64;

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

/// A histogram: per-bucket counts (not cumulative), the count and the sum, under one lock so a
/// scrape never sees an observation half recorded.
#[derive(Debug)]
pub struct Histogram {
    bounds: Arc<[f64]>,
    state: Mutex<HistogramState>,
    /// The same observations for the protobuf exposition (with native buckets when the family
    /// keeps them), unless the family keeps exemplars: its protobuf message is built from
    /// `state` ([`Histogram::message`]).
    exposed: Option<prometheus_client::metrics::histogram::Histogram>,
    /// And for the OpenMetrics one, with each bucket's latest request ID, when the family
    /// keeps exemplars.
    with_exemplars: Option<HistogramWithExemplars<Exemplar>>,
}

#[derive(Debug)]
struct HistogramState {
    buckets: Box<[u64]>,
    count: u64,
    sum: f64,
    /// With exemplars: per classic bucket (+Inf last) the latest request ID in it, its value
    /// and time; and the native buckets.
    examples: Box<[Option<Example>]>,
    native: Option<Native>,
}

/// A bucket's exemplar: the request ID, the observed value, when.
#[derive(Debug, Clone)]
struct Example {
    id: String,
    value: f64,
    at: SystemTime,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, v: f64) {
        self.observe_with(v, None);
    }

    /// Records one observation, with the request ID it is an example of (kept as its
    /// bucket's exemplar when the family keeps them; only printable ASCII, cut to 64).
    pub fn observe_with(&self, v: f64, request_id: Option<&str>) {
        let now = SystemTime::now();
        let id = self.with_exemplars.as_ref().and(request_id).map(|id| {
            id.chars()
                .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
                .take(MAX_EXEMPLAR_ID)
                .collect::<String>()
        });
        let id = id.filter(|id| !id.is_empty());
        if let Some(h) = &self.with_exemplars {
            h.observe(v, id.clone().map(|id| vec![("request_id", id)]), Some(now));
        }
        let i = self.bounds.iter().position(|b| v <= *b);
        let mut s = self.state.lock().unwrap();
        if let Some(i) = i {
            s.buckets[i] += 1;
        }
        s.count += 1;
        s.sum += v;
        if let Some(n) = &mut s.native {
            n.observe(v);
        }
        if let Some(id) = id {
            let slot = i.unwrap_or(self.bounds.len());
            if let Some(e) = s.examples.get_mut(slot) {
                *e = Some(Example {
                    id,
                    value: v,
                    at: now,
                });
            }
        }
        drop(s);
        if let Some(e) = &self.exposed {
            e.observe(v);
        }
    }

    /// The protobuf message of a histogram that keeps exemplars: cumulative classic buckets
    /// (+Inf last), each with its latest request ID, and the native buckets, in
    /// prometheus-client's own data model.
    pub(super) fn message(&self) -> pb::Histogram {
        let s = self.state.lock().unwrap();
        let stamp = prost_types::Timestamp::from;
        let uppers = self.bounds.iter().copied().chain([f64::INFINITY]);
        let counts = s.buckets.iter().copied().chain([0]);
        let mut cumulative = 0;
        let bucket =
            uppers
                .zip(counts)
                .enumerate()
                .map(|(i, (upper_bound, n))| {
                    cumulative += n;
                    pb::Bucket {
                        cumulative_count: if upper_bound.is_infinite() {
                            s.count
                        } else {
                            cumulative
                        },
                        upper_bound,
                        exemplar: s.examples.get(i).and_then(Option::as_ref).map(|e| {
                            pb::Exemplar {
                                label: vec![pb::LabelPair {
                                    name: "request_id".into(),
                                    value: e.id.clone(),
                                }],
                                value: e.value,
                                timestamp: Some(stamp(e.at)),
                            }
                        }),
                        ..Default::default()
                    }
                })
                .collect();
        let mut h = pb::Histogram {
            sample_count: s.count,
            sample_sum: s.sum,
            bucket,
            ..Default::default()
        };
        if let Some(n) = &s.native {
            let (spans, deltas) = n.spans_and_deltas();
            h.schema = n.schema;
            h.zero_threshold = super::native::ZERO_THRESHOLD;
            h.zero_count = n.zero;
            h.positive_span = spans
                .into_iter()
                .map(|(offset, length)| pb::BucketSpan { offset, length })
                .collect();
            h.positive_delta = deltas;
            h.start_timestamp = Some(stamp(n.created));
        }
        h
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.state.lock().unwrap().count
    }

    /// The sum of the observations so far.
    pub fn sum(&self) -> f64 {
        self.state.lock().unwrap().sum
    }
}

impl Cell for Histogram {
    const TYPE: MetricType = MetricType::HISTOGRAM;
    fn message_family(f: &super::series::Family<Self>) -> Option<Vec<Vec<u8>>> {
        Some(f.message())
    }
    fn new(buckets: &Buckets) -> Self {
        use prometheus_client::metrics::histogram::Histogram as Exposed;
        let bounds = &buckets.bounds;
        let exposed = match (buckets.exemplars, buckets.native) {
            (true, _) => None,
            (false, true) => Some(Exposed::new_classic_and_native(
                bounds.iter().copied(),
                protobuf::native_config(),
            )),
            (false, false) => Some(Exposed::new(bounds.iter().copied())),
        };
        let examples = if buckets.exemplars {
            bounds.len() + 1
        } else {
            0
        };
        Histogram {
            bounds: bounds.clone(),
            state: Mutex::new(HistogramState {
                buckets: vec![0; bounds.len()].into_boxed_slice(),
                count: 0,
                sum: 0.0,
                examples: vec![None; examples].into_boxed_slice(),
                native: (buckets.exemplars && buckets.native).then(Native::default),
            }),
            exposed,
            with_exemplars: buckets
                .exemplars
                .then(|| HistogramWithExemplars::new(bounds.iter().copied())),
        }
    }
    fn write(&self, m: &mut proto::Metric) {
        let s = self.state.lock().unwrap();
        let mut h = proto::Histogram::default();
        h.set_sample_count(s.count);
        h.set_sample_sum(s.sum);
        let mut cumulative = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(s.buckets.iter())
            .map(|(upper, n)| {
                cumulative += n;
                let mut b = proto::Bucket::default();
                b.set_cumulative_count(cumulative);
                b.set_upper_bound(*upper);
                b
            })
            .collect();
        h.set_bucket(buckets);
        m.set_histogram(h);
    }
    fn encode(&self, e: MetricEncoder) -> std::fmt::Result {
        // A family with exemplars reaches prometheus-client's encoder only for OpenMetrics (its
        // protobuf message is built by `message`): its classic buckets with their exemplars.
        // The others: the classic buckets, and the native ones if kept.
        match (&self.with_exemplars, &self.exposed) {
            (Some(h), _) => h.encode(e),
            (None, Some(exposed)) => exposed.encode(e),
            (None, None) => Ok(()),
        }
    }
}
