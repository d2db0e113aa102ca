//! A histogram cell: its classic buckets, count and sum, native buckets when its family keeps
//! them, and each classic bucket's latest request ID when its family keeps exemplars; one
//! copy of each, from which every exposition is written.
//!
//! prometheus-client's histograms would keep the same counts a second time (and its exemplar
//! histogram a third, with its own copy of the request IDs): at 1000 targets those copies were
//! some 5 MiB. Its encoders take the numbers as arguments, so the cell hands them its own; only
//! exemplars cannot be handed to them (they are built inside its exemplar histogram), so a
//! family that keeps them is written by hand ([`Histogram::message`] for protobuf,
//! [`Histogram::openmetrics`] for OpenMetrics).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use prometheus::proto::{self, MetricType};
use prometheus_client::encoding::prometheus_protobuf::prometheus_data_model as pb;
use prometheus_client::encoding::{
    MetricEncoder, NativeHistogram, NativeHistogramBuckets, NoLabelSet,
};

use super::{Buckets, Cell};
use crate::sinks::metrics::native::{self, Native};
use crate::sinks::metrics::series::Family;

/// Most characters of an exemplar's request ID: OpenMetrics allows 128 for an exemplar's
/// label names and values together; S3's IDs have 16.
const MAX_EXEMPLAR_ID: usize = 64;

/// A histogram, under one lock so a scrape never sees an observation half recorded.
#[derive(Debug)]
pub struct Histogram {
    bounds: Arc<[f64]>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Per classic bound, not cumulative; the +Inf bucket is what the count leaves.
    buckets: Box<[u64]>,
    count: u64,
    sum: f64,
    native: Option<Native>,
    /// With exemplars: the latest request in each classic bucket that has had one, by bucket
    /// (+Inf last), in bucket order. Most series see two or three buckets of ten.
    examples: Option<Vec<Example>>,
}

/// A bucket's exemplar: the request ID, the observed value, when.
#[derive(Debug)]
struct Example {
    slot: usize,
    id: Box<str>,
    value: f64,
    at: SystemTime,
}

impl State {
    /// The classic buckets as prometheus-client's encoders take them: (upper bound, count in
    /// it), not cumulative, +Inf last.
    fn classic(&self, bounds: &[f64]) -> Vec<(f64, u64)> {
        let finite: u64 = self.buckets.iter().sum();
        bounds
            .iter()
            .copied()
            .zip(self.buckets.iter().copied())
            .chain([(f64::INFINITY, self.count - finite)])
            .collect()
    }

    /// The exemplar of bucket `slot`, if it has one.
    fn example(&self, slot: usize) -> Option<&Example> {
        let e = self.examples.as_deref()?;
        e.binary_search_by_key(&slot, |e| e.slot)
            .ok()
            .map(|i| &e[i])
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, v: f64) {
        self.observe_at(v, None, SystemTime::now());
    }

    /// Records one observation, with the request ID it is an example of (kept as its
    /// bucket's exemplar when the family keeps them; only printable ASCII, cut to 64).
    pub fn observe_with(&self, v: f64, request_id: Option<&str>) {
        self.observe_at(v, request_id, SystemTime::now());
    }

    /// As [`Self::observe_with`], at `now` (tests give their own times).
    pub(in crate::sinks::metrics) fn observe_at(
        &self,
        v: f64,
        request_id: Option<&str>,
        now: SystemTime,
    ) {
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
        let (Some(examples), Some(id)) = (&mut s.examples, request_id) else {
            return;
        };
        // A few dozen characters, under the lock only where the family keeps exemplars.
        let id: Box<str> = id
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
            .take(MAX_EXEMPLAR_ID)
            .collect();
        if id.is_empty() {
            return;
        }
        let slot = i.unwrap_or(self.bounds.len());
        let example = Example {
            slot,
            id,
            value: v,
            at: now,
        };
        match examples.binary_search_by_key(&slot, |e| e.slot) {
            Ok(at) => examples[at] = example,
            Err(at) => examples.insert(at, example),
        }
    }

    /// The protobuf message of a histogram that keeps exemplars: cumulative classic buckets
    /// (+Inf last), each with its latest request ID, and the native buckets, in
    /// prometheus-client's own data model.
    pub(in crate::sinks::metrics) fn message(&self) -> pb::Histogram {
        let s = self.state.lock().unwrap();
        let stamp = prost_types::Timestamp::from;
        let mut cumulative = 0;
        let bucket = s
            .classic(&self.bounds)
            .into_iter()
            .enumerate()
            .map(|(i, (upper_bound, n))| {
                cumulative += n;
                pb::Bucket {
                    cumulative_count: cumulative,
                    upper_bound,
                    exemplar: s.example(i).map(|e| pb::Exemplar {
                        label: vec![pb::LabelPair {
                            name: "request_id".into(),
                            value: e.id.to_string(),
                        }],
                        value: e.value,
                        timestamp: Some(stamp(e.at)),
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
            h.zero_threshold = native::ZERO_THRESHOLD;
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

    /// Writes this histogram's OpenMetrics lines as prometheus-client's text encoder writes a
    /// histogram with exemplars: `_sum`, `_count`, then the cumulative buckets (`le` first),
    /// each with its latest request as ` # {request_id="..."} value timestamp`. `labels` are
    /// the child's, escaped and comma-separated.
    pub(in crate::sinks::metrics) fn openmetrics(
        &self,
        out: &mut String,
        name: &str,
        labels: &str,
    ) {
        let s = self.state.lock().unwrap();
        let mut number = dtoa::Buffer::new();
        let (open, close) = if labels.is_empty() {
            ("", "")
        } else {
            ("{", "}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{open}{labels}{close} {}",
            number.format(s.sum)
        );
        let _ = writeln!(out, "{name}_count{open}{labels}{close} {}", s.count);
        let comma = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, (upper, n)) in s.classic(&self.bounds).into_iter().enumerate() {
            cumulative += n;
            let le = if upper.is_infinite() {
                "+Inf"
            } else {
                number.format(upper)
            };
            let _ = write!(
                out,
                "{name}_bucket{{le=\"{le}\"{comma}{labels}}} {cumulative}"
            );
            if let Some(e) = s.example(i) {
                let at =
                    e.at.duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs_f64();
                let _ = write!(
                    out,
                    " # {{request_id=\"{}\"}} {}",
                    e.id,
                    number.format(e.value)
                );
                let _ = write!(out, " {}", number.format(at));
            }
            out.push('\n');
        }
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
    fn message_family(f: &Family<Self>) -> Option<Vec<Vec<u8>>> {
        Some(f.message())
    }
    fn openmetrics_family(f: &Family<Self>, keys: &[String], header: bool) -> Option<String> {
        Some(f.openmetrics(keys, header))
    }
    fn new(buckets: &Buckets) -> Self {
        Histogram {
            bounds: buckets.bounds.clone(),
            state: Mutex::new(State {
                buckets: vec![0; buckets.bounds.len()].into_boxed_slice(),
                count: 0,
                sum: 0.0,
                native: buckets.native.then(Native::default),
                examples: buckets.exemplars.then(Vec::new),
            }),
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
    /// The classic buckets, and the native ones if kept, through prometheus-client's encoder
    /// (protobuf, and OpenMetrics for a family without exemplars: a family with them is
    /// written by hand in both).
    fn encode(&self, mut e: MetricEncoder) -> std::fmt::Result {
        let s = self.state.lock().unwrap();
        let classic = s.classic(&self.bounds);
        let Some(n) = &s.native else {
            return e.encode_histogram::<NoLabelSet>(s.sum, s.count, &classic, None);
        };
        let (spans, deltas) = n.spans_and_deltas();
        let native = NativeHistogram {
            schema: n.schema,
            zero_threshold: native::ZERO_THRESHOLD,
            zero_count: n.zero,
            negative: NativeHistogramBuckets {
                spans: &[],
                deltas: &[],
            },
            positive: NativeHistogramBuckets {
                spans: &spans,
                deltas: &deltas,
            },
            created: Some(n.created),
        };
        e.encode_histogram_with_native::<NoLabelSet>(s.sum, s.count, &classic, None, native)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus_client::encoding::EncodeMetric;
    use prometheus_client::metrics::MetricType as PcType;
    use prometheus_client::metrics::exemplar::HistogramWithExemplars;
    use prometheus_client::registry::Registry;

    use super::*;
    use crate::sinks::metrics::protobuf::native_config;

    const BOUNDS: [f64; 4] = [0.005, 0.025, 0.1, 1.0];
    /// Past the last bound, and buckets reached out of order.
    const VALUES: [f64; 8] = [0.7, 0.003, 0.02, 2.5, 0.0, 0.004, 0.09, 0.02];

    fn cell(native: bool, exemplars: bool) -> Histogram {
        Histogram::new(&Buckets {
            bounds: BOUNDS.into(),
            native,
            text_summary: false,
            exemplars,
        })
    }

    /// Our cell as prometheus-client's registry takes a metric.
    #[derive(Debug)]
    struct Ours(Histogram);
    impl EncodeMetric for Ours {
        fn encode(&self, e: MetricEncoder) -> std::fmt::Result {
            Cell::encode(&self.0, e)
        }
        fn metric_type(&self) -> PcType {
            PcType::Histogram
        }
    }

    fn protobuf(metric: impl prometheus_client::registry::Metric) -> pb::MetricFamily {
        let mut r = Registry::default();
        r.register("h", "A histogram.", metric);
        let mut f = prometheus_client::encoding::prometheus_protobuf::encode(&r)
            .unwrap()
            .remove(0);
        // The native buckets' start: each histogram's own creation.
        for m in &mut f.metric {
            if let Some(h) = &mut m.histogram {
                assert!(h.start_timestamp.take().is_some() || h.schema == 0);
            }
        }
        f
    }

    /// One copy of the counts writes the protobuf message prometheus-client's own histograms
    /// write from theirs, classic and native buckets alike.
    #[test]
    fn the_cell_encodes_as_prometheus_clients_histograms() {
        use prometheus_client::metrics::histogram::Histogram as Theirs;
        for native in [false, true] {
            let ours = cell(native, false);
            let theirs = if native {
                Theirs::new_classic_and_native(BOUNDS, native_config())
            } else {
                Theirs::new(BOUNDS)
            };
            for v in VALUES {
                ours.observe(v);
                theirs.observe(v);
            }
            // Then more native buckets than are kept (160): the schema is lowered, as theirs.
            let mut v = 1e-6;
            while v < 1e6 {
                ours.observe(v);
                theirs.observe(v);
                v *= 1.07;
            }
            let (ours, theirs) = (protobuf(Ours(ours)), protobuf(theirs));
            if native {
                let h = ours.metric[0].histogram.as_ref().unwrap();
                assert!(h.schema < native::SCHEMA, "{}", h.schema);
            }
            assert_eq!(ours, theirs, "native: {native}");
        }
    }

    /// The OpenMetrics lines written by hand are prometheus-client's exemplar histogram's,
    /// byte for byte, exemplars and their timestamps included.
    #[test]
    fn openmetrics_by_hand_is_prometheus_clients_exemplar_histogram() {
        let ours = cell(true, true);
        let theirs = HistogramWithExemplars::new(BOUNDS.into_iter());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_000_000_125);
        for (i, v) in VALUES.into_iter().enumerate() {
            let at = t0 + Duration::from_millis(i as u64 * 250);
            // Every other observation without an ID replaces no exemplar; +Inf has one.
            let id = (i % 2 == 0 || v > 1.0).then(|| format!("REQ{i}"));
            ours.observe_at(v, id.as_deref(), at);
            theirs.observe(v, id.map(|id| vec![("request_id", id)]), Some(at));
        }
        let labels = vec![
            ("target".to_string(), "t1".to_string()),
            ("operation".to_string(), "GetObject".to_string()),
        ];
        let family: prometheus_client::metrics::family::Family<Vec<(String, String)>, _, _> =
            prometheus_client::metrics::family::Family::new_with_constructor(move || {
                theirs.clone()
            });
        drop(family.get_or_create(&labels));
        let mut r = Registry::default();
        // The registry ends a help text with a full stop; collectors write theirs as given.
        r.register("h", "A histogram", family);
        let mut want = String::new();
        prometheus_client::encoding::text::encode_registry(&mut want, &r).unwrap();

        let mut got = String::from("# HELP h A histogram.\n# TYPE h histogram\n");
        ours.openmetrics(&mut got, "h", "target=\"t1\",operation=\"GetObject\"");
        assert_eq!(got, want);
        assert!(got.contains("le=\"0.005\",target=\"t1\""), "{got}");
        assert!(
            got.contains("# {request_id=\"REQ4\"} 0.0 1796000001.125"),
            "{got}"
        );
        let inf =
            "le=\"+Inf\",target=\"t1\",operation=\"GetObject\"} 8 # {request_id=\"REQ3\"} 2.5";
        assert!(got.contains(inf), "{got}");
    }
}
