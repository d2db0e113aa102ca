//! Histogram families: their constructors (classic, with native buckets, native only, with
//! exemplars) and the protobuf message of one that keeps exemplars.

use std::sync::Arc;

use prometheus::HistogramOpts;
use prometheus::core::Describer;

use super::{Family, Histogram, label_pairs, to_owned};
use crate::sinks::metrics::exposition::RENDER_CHUNK;
use crate::sinks::metrics::protobuf::METRIC_FIELD;

impl Family<Histogram> {
    /// A histogram family with the buckets of `opts` and `labels` as its variable labels,
    /// with native buckets too in the protobuf exposition.
    pub fn new(opts: HistogramOpts, labels: &[&str]) -> prometheus::Result<Self> {
        let bounds = opts.buckets.clone();
        Self::with_desc(
            opts.variable_labels(to_owned(labels)).describe()?,
            &bounds,
            true,
        )
    }

    /// A histogram family with native buckets only: a native histogram in the protobuf
    /// exposition, `_sum` and `_count` (a summary without quantiles) in the text ones. One
    /// series per child where native histograms are scraped, two elsewhere.
    pub fn native_only(opts: HistogramOpts, labels: &[&str]) -> prometheus::Result<Self> {
        let mut f = Self::with_desc(
            opts.buckets(vec![])
                .variable_labels(to_owned(labels))
                .describe()?,
            &[],
            true,
        )?;
        Arc::get_mut(&mut f.inner)
            .expect("a new family has no other handle")
            .buckets
            .text_summary = true;
        Ok(f)
    }

    /// As [`Family::new`], each bucket with the request ID of its latest observation as an
    /// exemplar in the OpenMetrics exposition.
    pub fn with_exemplars(opts: HistogramOpts, labels: &[&str]) -> prometheus::Result<Self> {
        let mut f = Self::new(opts, labels)?;
        Arc::get_mut(&mut f.inner)
            .expect("a new family has no other handle")
            .buckets
            .exemplars = true;
        Ok(f)
    }

    /// As [`Family::new`], with the classic buckets only in either exposition.
    pub fn classic(opts: HistogramOpts, labels: &[&str]) -> prometheus::Result<Self> {
        let bounds = opts.buckets.clone();
        Self::with_desc(
            opts.variable_labels(to_owned(labels)).describe()?,
            &bounds,
            false,
        )
    }
}

impl Family<Histogram> {
    /// The protobuf message of a family that keeps exemplars, length-delimited, in chunks:
    /// each child's [`Histogram::message`] under its labels (prometheus-client's data model; its
    /// encoder cannot write exemplars beside native buckets), encoded as soon as it is built,
    /// [`RENDER_CHUNK`] to a chunk, so the family never exists whole as protobuf structures
    /// (about 9 MiB at 1000 targets); the family's length, name, help and type go first.
    pub(in crate::sinks::metrics) fn message(&self) -> Vec<Vec<u8>> {
        use prometheus_client::encoding::prometheus_protobuf::prometheus_data_model as pb;
        use prost::Message;
        let d = &self.inner.desc;
        let children = self.inner.children.read().unwrap();
        if children.is_empty() {
            return Vec::new();
        }
        let mut chunks = vec![Vec::new()];
        for (i, (k, c)) in children.iter().enumerate() {
            if i % RENDER_CHUNK == 0 {
                chunks.push(Vec::new());
            }
            let m = pb::Metric {
                label: label_pairs(d, k)
                    .map(|(name, value)| pb::LabelPair {
                        name: name.into(),
                        value: value.into(),
                    })
                    .collect(),
                histogram: Some(c.message()),
                ..Default::default()
            };
            let body = chunks.last_mut().expect("a chunk was pushed");
            prost::encoding::message::encode(METRIC_FIELD, &m, body);
        }
        let header = pb::MetricFamily {
            name: d.fq_name.clone(),
            help: d.help.clone(),
            r#type: pb::MetricType::Histogram as i32,
            ..Default::default()
        };
        let len = header.encoded_len() + chunks.iter().map(Vec::len).sum::<usize>();
        prost::encoding::encode_varint(len as u64, &mut chunks[0]);
        header
            .encode(&mut chunks[0])
            .expect("a Vec grows as needed");
        chunks
    }
}

impl Family<Histogram> {
    /// The OpenMetrics text of the children of `keys` (those that still exist) of a family that
    /// keeps exemplars ([`Histogram::openmetrics`]), with the family's `# HELP` and `# TYPE`
    /// lines first if `header`; empty when none exists.
    pub(in crate::sinks::metrics) fn openmetrics(&self, keys: &[String], header: bool) -> String {
        use std::fmt::Write as _;
        let d = &self.inner.desc;
        let children = self.inner.children.read().unwrap();
        let mut out = String::new();
        let mut labels = String::new();
        for (k, c) in keys.iter().filter_map(|k| children.get_key_value(k)) {
            if header && out.is_empty() {
                let _ = write!(
                    out,
                    "# HELP {0} {1}\n# TYPE {0} histogram\n",
                    d.fq_name, d.help
                );
            }
            labels.clear();
            for (i, (name, value)) in label_pairs(d, k).enumerate() {
                if i > 0 {
                    labels.push(',');
                }
                let _ = write!(labels, "{name}=\"{}\"", escape(value));
            }
            c.openmetrics(&mut out, &d.fq_name, &labels);
        }
        out
    }
}

/// A label value as the OpenMetrics text escapes it: backslash, double quote and newline.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use prometheus::HistogramOpts;
    use prometheus_client::metrics::exemplar::HistogramWithExemplars;
    use prometheus_client::registry::Registry;

    use super::*;
    use crate::sinks::metrics::protobuf::Exposable;

    /// A family with a constant label and label values that need escaping writes, by hand, the
    /// OpenMetrics text prometheus-client's exemplar histogram family writes.
    #[test]
    fn openmetrics_by_hand_is_prometheus_clients_family() {
        let bounds = vec![0.01, 0.1];
        let opts = HistogramOpts::new("h_seconds", "A histogram.")
            .const_labels([("vantage".to_string(), "eu".to_string())].into())
            .buckets(bounds.clone());
        let ours = Family::<Histogram>::with_exemplars(opts, &["target", "operation"]).unwrap();
        let theirs: prometheus_client::metrics::family::Family<Vec<(String, String)>, _, _> =
            prometheus_client::metrics::family::Family::new_with_constructor(move || {
                HistogramWithExemplars::<Vec<(&'static str, String)>>::new(
                    bounds.clone().into_iter(),
                )
            });
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_000_000_500);
        for (target, v) in [("a\"quoted\"", 0.005), ("back\\slash\nnewline", 0.05)] {
            let labels = [target, "GetObject"];
            ours.with_label_values(&labels)
                .observe_at(v, Some("REQ"), at);
            let pairs: Vec<(String, String)> = [
                ("target", target),
                ("operation", "GetObject"),
                ("vantage", "eu"),
            ]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
            theirs.get_or_create(&pairs).observe(
                v,
                Some(vec![("request_id", "REQ".to_string())]),
                Some(at),
            );
        }
        let mut r = Registry::default();
        // The registry ends a help text with a full stop; collectors write theirs as given.
        r.register("h_seconds", "A histogram", theirs);
        let mut want = String::new();
        prometheus_client::encoding::text::encode_registry(&mut want, &r).unwrap();

        let mut keys = ours.part_keys().unwrap();
        let got = ours.openmetrics(&keys, true);
        // Series in the same order on both sides: theirs are in a hash map's order.
        let series = |text: &str| -> Vec<String> {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            lines.sort();
            lines
        };
        assert_eq!(series(&got), series(&want));
        assert!(got.contains("target=\"a\\\"quoted\\\"\""), "{got}");
        assert!(got.contains("back\\\\slash\\nnewline"), "{got}");
        // Without the header, and nothing for series that are gone.
        assert!(!ours.openmetrics(&keys, false).contains("# TYPE"));
        keys.iter_mut().for_each(|k| k.push('x'));
        assert_eq!(ours.openmetrics(&keys, true), "");
    }
}
