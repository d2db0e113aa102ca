//! Compact labelled series for the per-target metric families.
//!
//! The prometheus crate's metric vectors give every child its own copy of the family's
//! descriptor (name, help text, label names) and of its label pairs: about 1 KiB for a counter
//! and 2 KiB for a histogram. A target has about 45 children, so at 1000 targets those copies
//! were some 30 MiB of the daemon's memory. These vectors keep one descriptor per family and,
//! per child, only its label values (joined in one string) and its numbers, about 100 bytes
//! plus 8 per histogram bucket; label pairs are built when a scrape collects the family.
//!
//! The API is the subset of the crate's vectors the daemon uses (`with_label_values`,
//! `remove_label_values`, `inc`, `set`, `observe`), and they implement its [`Collector`], so
//! they are registered and rendered like any other collector, in the same text.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use prometheus::core::{Collector, Desc, Describer};
use prometheus::proto::{self, MetricType};
use prometheus::{HistogramOpts, Opts};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};

use super::protobuf::{self, Protobuf};

/// Separates label values in a child's key. Label values here are target names, buckets,
/// regions and closed sets (probes, operations, reasons, codes): none holds this character.
const SEP: char = '\u{1f}';

/// What one child holds: a counter, a gauge or a histogram.
pub trait Cell: Send + Sync + 'static {
    /// The family's type.
    const TYPE: MetricType;
    /// A zeroed child; `bounds` are the histogram's upper bounds (unused by the others).
    fn new(bounds: &Arc<[f64]>) -> Self;
    /// Writes the child's value into `m`.
    fn write(&self, m: &mut proto::Metric);
    /// Writes the child's value through prometheus-client's encoder (the protobuf exposition).
    fn encode(&self, e: MetricEncoder) -> std::fmt::Result;
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
    fn new(_: &Arc<[f64]>) -> Self {
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
    fn new(_: &Arc<[f64]>) -> Self {
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
    /// The same observations with native buckets as well, for the protobuf exposition.
    native: prometheus_client::metrics::histogram::Histogram,
}

#[derive(Debug)]
struct HistogramState {
    buckets: Box<[u64]>,
    count: u64,
    sum: f64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let i = self.bounds.iter().position(|b| v <= *b);
        let mut s = self.state.lock().unwrap();
        if let Some(i) = i {
            s.buckets[i] += 1;
        }
        s.count += 1;
        s.sum += v;
        drop(s);
        self.native.observe(v);
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
    fn new(bounds: &Arc<[f64]>) -> Self {
        Histogram {
            bounds: bounds.clone(),
            state: Mutex::new(HistogramState {
                buckets: vec![0; bounds.len()].into_boxed_slice(),
                count: 0,
                sum: 0.0,
            }),
            native: prometheus_client::metrics::histogram::Histogram::new_classic_and_native(
                bounds.iter().copied(),
                protobuf::native_config(),
            ),
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
        // prometheus-client writes the native buckets and the classic ones.
        self.native.encode(e)
    }
}

/// A family of children of one kind, keyed by their label values.
pub struct Family<C> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    desc: Desc,
    bounds: Arc<[f64]>,
    children: RwLock<HashMap<String, Arc<C>>>,
}

impl<C> Clone for Family<C> {
    fn clone(&self) -> Self {
        Family {
            inner: self.inner.clone(),
        }
    }
}

/// Counters by label values.
pub type CounterVec = Family<Counter>;
/// Gauges by label values.
pub type GaugeVec = Family<Gauge>;
/// Histograms by label values.
pub type HistogramVec = Family<Histogram>;

/// Counters and gauges: cells without buckets.
impl<C: Cell + Default> Family<C> {
    /// A family named and labelled by `opts`, with `labels` as its variable labels.
    pub fn new(opts: Opts, labels: &[&str]) -> prometheus::Result<Self> {
        Self::with_desc(opts.variable_labels(to_owned(labels)).describe()?, &[])
    }
}

impl Family<Histogram> {
    /// A histogram family with the buckets of `opts` and `labels` as its variable labels.
    pub fn new(opts: HistogramOpts, labels: &[&str]) -> prometheus::Result<Self> {
        let bounds = opts.buckets.clone();
        Self::with_desc(opts.variable_labels(to_owned(labels)).describe()?, &bounds)
    }
}

fn to_owned(labels: &[&str]) -> Vec<String> {
    labels.iter().map(|s| s.to_string()).collect()
}

fn key(values: &[&str]) -> String {
    let mut k = String::with_capacity(values.iter().map(|v| v.len() + 1).sum());
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            k.push(SEP);
        }
        k.push_str(v);
    }
    k
}

impl<C: Cell> Family<C> {
    fn with_desc(desc: Desc, bounds: &[f64]) -> prometheus::Result<Self> {
        Ok(Family {
            inner: Arc::new(Inner {
                desc,
                bounds: bounds.into(),
                children: RwLock::default(),
            }),
        })
    }

    /// The child with these label values (in the order of the family's labels), created at
    /// zero if it does not exist yet.
    ///
    /// # Panics
    /// When the number of values is not the number of labels, as the crate's vectors do.
    pub fn with_label_values(&self, values: &[&str]) -> Arc<C> {
        assert_eq!(
            values.len(),
            self.inner.desc.variable_labels.len(),
            "{}: wrong number of label values",
            self.inner.desc.fq_name
        );
        let k = key(values);
        if let Some(c) = self.inner.children.read().unwrap().get(&k) {
            return c.clone();
        }
        self.inner
            .children
            .write()
            .unwrap()
            .entry(k)
            .or_insert_with(|| Arc::new(C::new(&self.inner.bounds)))
            .clone()
    }

    /// Deletes the child with these label values; false when there was none.
    pub fn remove_label_values(&self, values: &[&str]) -> bool {
        self.inner
            .children
            .write()
            .unwrap()
            .remove(&key(values))
            .is_some()
    }
}

/// A child's labels as (name, value): the family's variable labels with the values joined in
/// `key`, then its constant labels.
fn label_pairs<'a>(d: &'a Desc, key: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
    d.variable_labels
        .iter()
        .map(String::as_str)
        .zip(key.split(SEP))
        .chain(d.const_label_pairs.iter().map(|p| (p.name(), p.value())))
}

impl<C: Cell> Collector for Family<C> {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.inner.desc]
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let children = self.inner.children.read().unwrap();
        let metrics = children.iter().map(|(k, c)| self.metric(k, c)).collect();
        vec![self.family(metrics)]
    }
}

impl<C: Cell> Family<C> {
    /// The family with `metrics`.
    fn family(&self, metrics: Vec<proto::Metric>) -> proto::MetricFamily {
        let d = &self.inner.desc;
        let mut f = proto::MetricFamily::default();
        f.set_name(d.fq_name.clone());
        f.set_help(d.help.clone());
        f.set_field_type(C::TYPE);
        f.set_metric(metrics);
        f
    }

    /// The series of the child with `key`.
    fn metric(&self, key: &str, c: &C) -> proto::Metric {
        let mut pairs: Vec<proto::LabelPair> = label_pairs(&self.inner.desc, key)
            .map(|(name, value)| {
                let mut p = proto::LabelPair::default();
                p.set_name(name.to_string());
                p.set_value(value.to_string());
                p
            })
            .collect();
        // The crate's order: label pairs sorted by name.
        pairs.sort();
        let mut m = proto::Metric::from_label(pairs);
        c.write(&mut m);
        m
    }
}

impl<C: Cell> Protobuf for Family<C> {
    /// The children's keys ordered as `Registry::gather` orders series: by their label values,
    /// labels taken in name order.
    fn part_keys(&self) -> Option<Vec<String>> {
        let d = &self.inner.desc;
        let mut keys: Vec<String> = self
            .inner
            .children
            .read()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort_by_cached_key(|k| {
            let mut pairs: Vec<(&str, &str)> = label_pairs(d, k).collect();
            pairs.sort();
            pairs
                .into_iter()
                .map(|(_, v)| v.to_owned())
                .collect::<Vec<_>>()
        });
        Some(keys)
    }

    fn collect_part(&self, keys: &[String]) -> proto::MetricFamily {
        let children = self.inner.children.read().unwrap();
        let metrics = keys
            .iter()
            .filter_map(|k| children.get(k).map(|c| self.metric(k, c)))
            .collect();
        self.family(metrics)
    }

    fn encode_protobuf(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let d = &self.inner.desc;
        let children = self.inner.children.read().unwrap();
        if children.is_empty() {
            return Ok(());
        }
        let name = protobuf::base_name(&d.fq_name, C::TYPE);
        let mut family = e.encode_descriptor(name, &d.help, None, protobuf::pc_type(C::TYPE))?;
        for (k, c) in children.iter() {
            let labels: Vec<(String, String)> = label_pairs(d, k)
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            c.encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, TextEncoder};

    fn text(c: &dyn Collector) -> String {
        let mut families = c.collect();
        families
            .iter_mut()
            .for_each(crate::sinks::metrics::exposition::sort_by_label_values);
        let mut out = Vec::new();
        TextEncoder::new().encode(&families, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn opts(name: &str) -> Opts {
        Opts::new(name, "Help with \"quotes\" and \\ backslash.")
            .const_labels([("env".to_string(), "prod".to_string())].into())
    }

    /// The same operations on the crate's vectors and on these give the same text.
    #[test]
    fn families_render_exactly_as_the_crates_vectors() {
        let labels = ["target", "bucket", "region", "probe"];
        let values = [
            ["a", "b1", "eu-west-1", "put"],
            ["b", "b2", "us-east-1", "get"],
        ];

        let theirs = prometheus::IntCounterVec::new(opts("x_total"), &labels).unwrap();
        let ours = CounterVec::new(opts("x_total"), &labels).unwrap();
        for (i, v) in values.iter().enumerate() {
            theirs.with_label_values(v).inc_by(i as u64 + 3);
            ours.with_label_values(v).inc_by(i as u64 + 3);
        }
        assert_eq!(text(&ours), text(&theirs));

        let theirs = prometheus::GaugeVec::new(opts("x_seconds"), &labels).unwrap();
        let ours = GaugeVec::new(opts("x_seconds"), &labels).unwrap();
        for v in &values {
            theirs.with_label_values(v).set(1795455582.125);
            ours.with_label_values(v).set(1795455582.125);
        }
        assert_eq!(text(&ours), text(&theirs));

        let hopts =
            || HistogramOpts::from(opts("x_duration_seconds")).buckets(vec![0.01, 0.1, 1.0]);
        let theirs = prometheus::HistogramVec::new(hopts(), &labels).unwrap();
        let ours = HistogramVec::new(hopts(), &labels).unwrap();
        for v in &values {
            for x in [0.005, 0.01, 0.05, 0.5, 3.0] {
                theirs.with_label_values(v).observe(x);
                ours.with_label_values(v).observe(x);
            }
        }
        assert_eq!(text(&ours), text(&theirs));
        assert!(text(&ours).contains("le=\"+Inf\""));

        // Removal, as the crate's.
        assert!(ours.remove_label_values(&values[0]));
        assert!(!ours.remove_label_values(&values[0]));
        theirs.remove_label_values(&values[0]).unwrap();
        assert_eq!(text(&ours), text(&theirs));
    }
}
