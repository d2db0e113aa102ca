//! The Prometheus protobuf exposition of [`Metrics`], with native histograms.
//!
//! A Prometheus started with `--enable-feature=native-histograms` asks for the protobuf format
//! first (`Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;
//! encoding=delimited`). Then every latency histogram of the daemon is served with both its
//! classic buckets and native (exponential, schema 3: eight buckets per doubling) buckets, so
//! percentiles have full resolution from one series per histogram. The encoding is the
//! Prometheus project's own Rust client (`prometheus-client`); the daemon's families write
//! into its encoder, one family per length-delimited message, streamed like the text.

use std::fmt;
use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::proto::{self, MetricType};
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType as PcType;
use prometheus_client::metrics::exemplar::Exemplar;
#[cfg(test)]
use prometheus_client::metrics::histogram::NativeHistogramConfig;

use super::Metrics;

mod parts;
use parts::by_parts;
pub(super) use parts::{METRIC_FIELD, Part};

/// The content type a scraper asks for, and gets, for this exposition.
pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Whether an `Accept` header asks for the protobuf exposition before the text one (Prometheus
/// sends both, with the protobuf format first, when native histograms are on).
pub fn wanted(accept: &str) -> bool {
    let first = accept.split(',').next().unwrap_or("");
    first.contains("application/vnd.google.protobuf")
        && first.contains("proto=io.prometheus.client.MetricFamily")
        && first.contains("encoding=delimited")
}

/// prometheus-client's configuration of the native buckets every latency histogram keeps
/// (`native.rs`: schema 3, a bucket every 9%; at most 160 buckets, where 5 ms to 30 s needs
/// about 100; the default zero bucket): the reference the cells are tested against.
#[cfg(test)]
pub fn native_config() -> NativeHistogramConfig {
    NativeHistogramConfig::with_schema(3).max_buckets(160)
}

/// A collector both expositions render: every family of the daemon ([`super::series::Family`])
/// and the process collector.
///
/// The protobuf and OpenMetrics expositions write it with [`Exposable::encode`], or a family of
/// the daemon's a part at a time with [`Exposable::encode_part`]; the default converts
/// what the collector gives the text exposition (classic histograms only), and the families
/// write their cells directly, native buckets included. The text exposition renders a
/// collector that can collect its series in parts ([`Exposable::part_keys`]) a few hundred
/// series at a time, instead of all its series at once (about 12 MiB for the request
/// histograms of 1000 targets). A target's or pair's series leave every family through
/// [`Exposable::remove_series`].
pub trait Exposable: Collector {
    /// Writes this collector's families into prometheus-client's encoder (protobuf or
    /// OpenMetrics).
    fn encode(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        for f in self.collect() {
            encode_family(&f, e)?;
        }
        Ok(())
    }

    /// The OpenMetrics text of the series of `keys` (from [`Exposable::part_keys`]) that still
    /// exist, when prometheus-client cannot write it (a summary; a histogram with exemplars):
    /// with the family's `# HELP` and `# TYPE` lines if `header`, empty when none exists.
    fn openmetrics_by_hand(&self, _keys: &[String], _header: bool) -> Option<String> {
        None
    }

    /// This collector's protobuf messages when prometheus-client cannot write them (native
    /// buckets beside exemplars), length-delimited, in chunks.
    fn protobuf_by_hand(&self) -> Option<Vec<Vec<u8>>> {
        None
    }

    /// The keys of this collector's series in exposition order, when it has one family and
    /// can collect a part of it ([`Exposable::collect_part`]); `None`: collect it whole.
    fn part_keys(&self) -> Option<Vec<String>> {
        None
    }

    /// The family with the series of `keys` (from [`Exposable::part_keys`]) that still exist.
    fn collect_part(&self, _keys: &[String]) -> proto::MetricFamily {
        unreachable!("collect_part of a collector without part_keys")
    }

    /// Writes the series of `keys` (from [`Exposable::part_keys`]) that still exist into
    /// prometheus-client's encoder; nothing when none does.
    fn encode_part(&self, _keys: &[String], _e: &mut DescriptorEncoder) -> fmt::Result {
        unreachable!("encode_part of a collector without part_keys")
    }

    /// Deletes the series whose first labels are `names` with `values` (a target's or a
    /// pair's), whatever their other labels; how many there were. None by default.
    fn remove_series(&self, _names: &[&str], _values: &[&str]) -> usize {
        0
    }
}

/// The name prometheus-client is given for a family: it appends `_total` to counters itself.
pub(crate) fn base_name(name: &str, t: MetricType) -> &str {
    match t {
        MetricType::COUNTER => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    }
}

/// prometheus-client's type for one of the prometheus crate's.
pub(crate) fn pc_type(t: MetricType) -> PcType {
    match t {
        MetricType::COUNTER => PcType::Counter,
        MetricType::GAUGE => PcType::Gauge,
        MetricType::HISTOGRAM => PcType::Histogram,
        _ => PcType::Unknown,
    }
}

/// Writes one family of the prometheus crate's model.
fn encode_family(f: &proto::MetricFamily, e: &mut DescriptorEncoder) -> fmt::Result {
    if f.get_metric().is_empty() {
        return Ok(());
    }
    let t = f.get_field_type();
    let mut family = e.encode_descriptor(base_name(f.name(), t), f.help(), None, pc_type(t))?;
    for m in f.get_metric() {
        let labels: Vec<(String, String)> = m
            .get_label()
            .iter()
            .map(|l| (l.name().to_string(), l.value().to_string()))
            .collect();
        let mut one = family.encode_family(&labels)?;
        match t {
            MetricType::COUNTER => counter(&mut one, m.get_counter().get_value())?,
            MetricType::HISTOGRAM => {
                let h = m.get_histogram();
                // prometheus-client wants counts per bucket, the +Inf one last.
                let mut below = 0;
                let mut buckets: Vec<(f64, u64)> = Vec::new();
                for b in h.get_bucket() {
                    buckets.push((b.upper_bound(), b.cumulative_count() - below));
                    below = b.cumulative_count();
                }
                buckets.push((f64::INFINITY, h.get_sample_count().saturating_sub(below)));
                one.encode_histogram::<NoLabelSet>(
                    h.get_sample_sum(),
                    h.get_sample_count(),
                    &buckets,
                    None,
                )?;
            }
            MetricType::GAUGE => one.encode_gauge(&m.get_gauge().get_value())?,
            // The daemon exports no untyped series.
            _ => {}
        }
    }
    Ok(())
}

/// Writes a counter's value (no exemplar).
pub(crate) fn counter(e: &mut MetricEncoder, v: f64) -> fmt::Result {
    e.encode_counter::<NoLabelSet, f64, f64>(&v, None::<&Exemplar<NoLabelSet, f64>>)
}

/// One collector of the daemon's, as prometheus-client's registry wants it.
pub(super) struct One {
    pub metrics: Arc<Metrics>,
    pub index: usize,
}

impl fmt::Debug for One {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "collector {}", self.index)
    }
}

impl prometheus_client::collector::Collector for One {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        match self.metrics.collectors().get(self.index) {
            Some(c) => c.encode(&mut e),
            None => Ok(()),
        }
    }
}

impl Metrics {
    /// The whole protobuf exposition (tests; the HTTP server streams [`Self::protobuf_chunks`]).
    pub fn render_protobuf(self: &Arc<Self>) -> Vec<u8> {
        self.protobuf_chunks().flatten().collect()
    }

    /// The protobuf exposition, one collector's families (length-delimited) per chunk, or a
    /// family of the daemon's in several ([`by_parts`]).
    pub fn protobuf_chunks(self: &Arc<Self>) -> impl Iterator<Item = Vec<u8>> + Send + 'static {
        let metrics = self.clone();
        (0..self.collectors().len()).flat_map(move |index| {
            let collector = &metrics.collectors()[index];
            if let Some(chunks) = collector.protobuf_by_hand() {
                return chunks;
            }
            if let Some(keys) = collector.part_keys() {
                return by_parts(&metrics, index, &keys);
            }
            let mut registry = prometheus_client::registry::Registry::default();
            registry.register_collector(Box::new(One {
                metrics: metrics.clone(),
                index,
            }));
            // Encoding into memory fails only on a value the format cannot hold; the family is
            // then left out rather than the scrape failed.
            vec![
                prometheus_client::encoding::prometheus_protobuf::encode_to_vec(&registry)
                    .unwrap_or_else(|e| {
                        tracing::warn!("a metric family could not be encoded as protobuf: {e}");
                        Vec::new()
                    }),
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prometheus_client::encoding::prometheus_protobuf::prometheus_data_model as pb;
    use prost::Message;

    use super::*;
    use crate::report::TargetLabels;
    use crate::sinks::metrics::testing::{get, metrics_and_target, throttled_put};

    fn decode(mut b: &[u8]) -> Vec<pb::MetricFamily> {
        let mut out = Vec::new();
        while !b.is_empty() {
            out.push(pb::MetricFamily::decode_length_delimited(&mut b).unwrap());
        }
        out
    }

    #[test]
    fn a_family_written_in_parts_is_one_message_with_every_series() {
        let (m, t) = metrics_and_target();
        let n = 2 * crate::sinks::metrics::exposition::RENDER_CHUNK + 7;
        for i in 0..n {
            let t = TargetLabels {
                target: format!("t{i}"),
                ..t.clone()
            };
            throttled_put(&m, &t);
        }
        let chunks: Vec<Vec<u8>> = m.protobuf_chunks().collect();
        let families = decode(&chunks.concat());
        let errors: Vec<_> = families
            .iter()
            .filter(|f| f.name == "s3canary_s3_request_errors_total")
            .collect();
        assert_eq!(errors.len(), 1, "one message for the family");
        let targets: BTreeSet<&str> = errors[0]
            .metric
            .iter()
            .map(|m| {
                assert_eq!(m.counter.as_ref().unwrap().value, 1.0);
                m.label
                    .iter()
                    .find(|l| l.name == "target")
                    .unwrap()
                    .value
                    .as_str()
            })
            .collect();
        assert_eq!(targets.len(), n);
        assert_eq!(
            errors[0].help,
            "S3 request attempts that failed, by S3 error code."
        );
        // Written a part at a time: the family's header, then three parts of its series.
        let index = m
            .collectors()
            .iter()
            .position(|c| {
                c.collect()
                    .iter()
                    .any(|f| f.name() == "s3canary_s3_request_errors_total")
            })
            .unwrap();
        let keys = m.collectors()[index].part_keys().unwrap();
        let parts = by_parts(&m, index, &keys);
        assert_eq!(
            parts.len(),
            1 + n.div_ceil(crate::sinks::metrics::exposition::RENDER_CHUNK)
        );
        assert_eq!(decode(&parts.concat())[0], *errors[0]);
    }

    #[test]
    fn asks_for_protobuf_only_when_it_comes_first() {
        let prom = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                    encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert!(wanted(prom));
        assert!(!wanted(
            "text/plain;version=0.0.4;q=1,application/vnd.google.protobuf;\
                         proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5"
        ));
        assert!(!wanted(""));
        assert!(!wanted("*/*"));
    }

    #[test]
    fn the_protobuf_families_are_the_texts_with_native_buckets_added() {
        let (m, t) = metrics_and_target();
        for ms in [3u64, 12, 12, 40, 90, 700, 2500] {
            get(&m, &t, ms, Some(&format!("R{ms}")));
        }
        throttled_put(&m, &t);
        let text = m.render();
        let families = decode(&m.render_protobuf());

        let text_names: BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let pb_names: BTreeSet<&str> = families.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(pb_names, text_names);

        let req = families
            .iter()
            .find(|f| f.name == "s3canary_s3_request_duration_seconds")
            .unwrap();
        let get = req
            .metric
            .iter()
            .find(|m| m.label.iter().any(|l| l.value == "GetObject"))
            .unwrap();
        assert!(
            get.label
                .iter()
                .any(|l| l.name == "vantage" && l.value == "eu")
        );
        let h = get.histogram.as_ref().unwrap();
        assert_eq!(h.sample_count, 7);
        assert_eq!(h.schema, 3);
        let native: i64 = h
            .positive_delta
            .iter()
            .scan(0, |c, d| {
                *c += d;
                Some(*c)
            })
            .sum();
        assert_eq!(
            native + h.zero_count as i64,
            7,
            "every observation in a native bucket"
        );
        // The classic buckets are the text's.
        for b in &h.bucket {
            if b.upper_bound.is_infinite() {
                continue;
            }
            let le = format!("le=\"{}\"", b.upper_bound);
            let line = text
                .lines()
                .find(|l| {
                    l.starts_with("s3canary_s3_request_duration_seconds_bucket{")
                        && l.contains("GetObject")
                        && l.contains(&le)
                })
                .unwrap_or_else(|| panic!("no text bucket {le}"));
            assert_eq!(
                line.rsplit(' ').next().unwrap(),
                b.cumulative_count.to_string(),
                "{le}"
            );
        }
        // Each classic bucket carries the latest request in it; the +Inf one too.
        let exemplar = |le: f64| {
            h.bucket
                .iter()
                .find(|b| b.upper_bound == le)
                .and_then(|b| b.exemplar.as_ref())
                .map(|e| (e.label[0].name.as_str(), e.label[0].value.as_str(), e.value))
        };
        assert_eq!(exemplar(0.025), Some(("request_id", "R12", 0.012)));
        assert_eq!(exemplar(1.0), Some(("request_id", "R700", 0.7)));
        assert_eq!(exemplar(f64::INFINITY), None);
        assert_eq!(exemplar(5.0), Some(("request_id", "R2500", 2.5)));
        assert_eq!(exemplar(0.1), Some(("request_id", "R90", 0.09)));
        assert_eq!(exemplar(0.25), None);
        let inf = h.bucket.last().unwrap();
        assert!(inf.upper_bound.is_infinite() && inf.cumulative_count == 7);
        let errors = families
            .iter()
            .find(|f| f.name == "s3canary_s3_request_errors_total")
            .unwrap();
        assert_eq!(errors.metric[0].counter.as_ref().unwrap().value, 1.0);
    }
}
