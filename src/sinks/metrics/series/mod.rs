//! Compact labelled series: the one family type every metric of the daemon is made of.
//!
//! The prometheus crate's metric vectors give every child its own copy of the family's
//! descriptor (name, help text, label names) and of its label pairs: about 1 KiB for a counter
//! and 2 KiB for a histogram. A target has about 45 children, so at 1000 targets those copies
//! were some 30 MiB of the daemon's memory. These vectors keep one descriptor per family and,
//! per child, only its label values (joined in one string) and its numbers, about 100 bytes
//! plus 8 per histogram bucket; label pairs are built when a scrape collects the family.
//!
//! The API is the subset of the crate's vectors the daemon uses (`with_label_values`,
//! `remove_label_values`, `inc`, `set`, `observe`) plus [`Family::remove_prefix`] (every
//! series of one target or pair, whatever its other labels), and they implement the crate's
//! [`Collector`], so they are registered on its `Registry` (which checks names and label sets).
//! An unlabelled metric is a family without labels, its one child created with it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use prometheus::Opts;
use prometheus::core::{Collector, Desc, Describer};
use prometheus::proto;
use prometheus_client::encoding::DescriptorEncoder;

mod histogram;

use super::protobuf::{self, Exposable};

/// Separates label values in a child's key. Label values here are target names, buckets,
/// regions and closed sets (probes, operations, reasons, codes): none holds this character.
const SEP: char = '\u{1f}';

pub use super::cells::{Buckets, Cell, Counter, Gauge, Histogram};

/// A family of children of one kind, keyed by their label values.
pub struct Family<C> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    desc: Desc,
    buckets: Buckets,
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
        Self::with_desc(
            opts.variable_labels(to_owned(labels)).describe()?,
            &[],
            false,
        )
    }

    /// A family without labels, its one series present (at zero) from the start.
    pub fn single(opts: Opts) -> prometheus::Result<Self> {
        let f = Self::new(opts, &[])?;
        f.with_label_values(&[]);
        Ok(f)
    }

    /// The one series of a family without labels.
    pub fn get(&self) -> Arc<C> {
        self.with_label_values(&[])
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
    fn with_desc(desc: Desc, bounds: &[f64], native: bool) -> prometheus::Result<Self> {
        Ok(Family {
            inner: Arc::new(Inner {
                desc,
                buckets: Buckets {
                    bounds: bounds.into(),
                    native,
                    text_summary: false,
                    exemplars: false,
                },
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
            .or_insert_with(|| Arc::new(C::new(&self.inner.buckets)))
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

    /// Deletes every child whose first label values are `values` (a target's or a pair's,
    /// whatever its other labels); how many there were.
    pub fn remove_prefix(&self, values: &[&str]) -> usize {
        let whole = key(values);
        let mut children = self.inner.children.write().unwrap();
        let before = children.len();
        children.retain(|k, _| {
            let rest = k.strip_prefix(whole.as_str());
            !rest.is_some_and(|r| r.is_empty() || r.starts_with(SEP))
        });
        before - children.len()
    }
}

/// Label value `i` of a child's key.
fn field(key: &str, i: usize) -> &str {
    key.split(SEP).nth(i).unwrap_or("")
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
        f.set_field_type(if self.inner.buckets.text_summary {
            proto::MetricType::SUMMARY
        } else {
            C::TYPE
        });
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
        if self.inner.buckets.text_summary {
            let h = m.get_histogram().clone();
            m.set_histogram(proto::Histogram::default());
            let mut summary = proto::Summary::default();
            summary.set_sample_count(h.get_sample_count());
            summary.set_sample_sum(h.get_sample_sum());
            m.set_summary(summary);
        }
        m
    }
}

impl<C: Cell> Exposable for Family<C> {
    /// The children's keys ordered as `Registry::gather` orders series: by their label values,
    /// labels taken in name order.
    ///
    /// The constant labels are the same in every series, so the order is that of the variable
    /// labels' values taken in their names' order, compared in place: a scrape at 1000 targets
    /// sorted 8,000 keys of one family, and a copy of each key's values to sort by was 5 MiB.
    fn part_keys(&self) -> Option<Vec<String>> {
        let names = &self.inner.desc.variable_labels;
        let mut by_name: Vec<usize> = (0..names.len()).collect();
        by_name.sort_by_key(|&i| &names[i]);
        let mut keys: Vec<String> = self
            .inner
            .children
            .read()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        // Keys are unique, so no two compare equal: an unstable sort is as good.
        keys.sort_unstable_by(|a, b| {
            let a = by_name.iter().map(|&i| field(a, i));
            a.cmp(by_name.iter().map(|&i| field(b, i)))
        });
        Some(keys)
    }

    fn remove_series(&self, names: &[&str], values: &[&str]) -> usize {
        if !self
            .inner
            .desc
            .variable_labels
            .starts_with(&to_owned(names))
        {
            return 0;
        }
        self.remove_prefix(values)
    }

    fn collect_part(&self, keys: &[String]) -> proto::MetricFamily {
        let children = self.inner.children.read().unwrap();
        let metrics = keys
            .iter()
            .filter_map(|k| children.get(k).map(|c| self.metric(k, c)))
            .collect();
        self.family(metrics)
    }

    fn protobuf_by_hand(&self) -> Option<Vec<Vec<u8>>> {
        if !self.inner.buckets.exemplars {
            return None;
        }
        C::message_family(self)
    }

    fn openmetrics_by_hand(&self, keys: &[String], header: bool) -> Option<String> {
        if self.inner.buckets.exemplars {
            return C::openmetrics_family(self, keys, header);
        }
        if !self.inner.buckets.text_summary {
            return None;
        }
        Some(super::openmetrics::summary(self.collect_part(keys), header))
    }

    fn encode(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let children = self.inner.children.read().unwrap();
        self.encode_children(e, children.iter())
    }

    fn encode_part(&self, keys: &[String], e: &mut DescriptorEncoder) -> std::fmt::Result {
        let children = self.inner.children.read().unwrap();
        let part: Vec<_> = keys
            .iter()
            .filter_map(|k| children.get_key_value(k))
            .collect();
        self.encode_children(e, part.into_iter())
    }
}

impl<C: Cell> Family<C> {
    /// Writes `children` as this family into prometheus-client's encoder; nothing for none.
    fn encode_children<'a>(
        &self,
        e: &mut DescriptorEncoder,
        children: impl ExactSizeIterator<Item = (&'a String, &'a Arc<C>)>,
    ) -> std::fmt::Result
    where
        C: 'a,
    {
        let d = &self.inner.desc;
        if children.len() == 0 {
            return Ok(());
        }
        let name = protobuf::base_name(&d.fq_name, C::TYPE);
        let mut family = e.encode_descriptor(name, &d.help, None, protobuf::pc_type(C::TYPE))?;
        for (k, c) in children {
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
    use prometheus::{Encoder, HistogramOpts, TextEncoder};

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

    /// A target's series leave a family whatever their other labels; a pair's family, whose
    /// first labels are other names, keeps series with the same values.
    #[test]
    fn remove_series_takes_one_targets_children_only() {
        let ours = CounterVec::new(opts("x_total"), &["target", "bucket", "region", "probe"]);
        let ours = ours.unwrap();
        for v in [
            ["a", "b", "r", "put"],
            ["a", "b", "r", "get"],
            ["ab", "b", "r", "put"],
        ] {
            ours.with_label_values(&v).inc();
        }
        ours.with_label_values(&["a", "b", "rr", "put"]).inc();
        let pairs = CounterVec::new(opts("y_total"), &["replication", "x", "y"]).unwrap();
        pairs.with_label_values(&["a", "b", "r"]).inc();

        let target = ["target", "bucket", "region"];
        assert_eq!(ours.remove_series(&target, &["a", "b", "r"]), 2);
        assert_eq!(pairs.remove_series(&target, &["a", "b", "r"]), 0);
        let left = text(&ours);
        assert!(left.contains("target=\"ab\""), "{left}");
        assert!(left.contains("region=\"rr\""), "{left}");
        assert!(!left.contains("probe=\"get\""), "{left}");
        assert!(text(&pairs).contains("replication=\"a\""));
        assert_eq!(
            pairs.remove_series(&["replication", "x", "y"], &["a", "b", "r"]),
            1
        );
    }
}
