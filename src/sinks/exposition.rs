//! The Prometheus text exposition of [`Metrics`], rendered in chunks.
//!
//! At 1000 targets the whole text is about 16 MiB. `Registry::gather` followed by one `encode`
//! would copy every series of every family into protobuf structures and then grow the text by
//! doubling, about 80 MiB at the peak of a scrape. Streamed in chunks (see `http/`), a scrape
//! holds the structures of one family (about 3 MiB for the largest) and a chunk or two of text.

use std::sync::Arc;

use prometheus::{Encoder, TextEncoder};

use super::metrics::Metrics;

impl Metrics {
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
            let c = self.metrics.collectors().get(self.next_collector)?;
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn chunked_render_is_the_registry_text() {
        let labels = BTreeMap::from([("env".to_string(), "test".to_string())]);
        let m = Arc::new(Metrics::new(&labels));
        // Enough series that the largest families span several chunks.
        for i in 0..(RENDER_CHUNK * 2 + 7) {
            let t = format!("t{i}");
            m.request_duration
                .with_label_values(&[&t, "b", "r", "GetObject"])
                .observe(0.01 * i as f64);
            m.probe_runs.with_label_values(&[&t, "b", "r", "put"]).inc();
        }
        let mut want = Vec::new();
        TextEncoder::new()
            .encode(&m.registry().gather(), &mut want)
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
        // Nine buckets, +Inf, sum and count a histogram.
        assert!(ours(&want).len() > RENDER_CHUNK * 2 * 12);
        assert_eq!(ours(&got), ours(&want));
        assert_eq!(
            got.matches("# TYPE s3canary_s3_request_duration_seconds histogram")
                .count(),
            1
        );
    }
}
