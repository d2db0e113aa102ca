//! The Prometheus text exposition of [`Metrics`], rendered in chunks.
//!
//! At 1000 targets the whole text is about 14 MiB. `Registry::gather` followed by one `encode`
//! would copy every series of every family into protobuf structures and then grow the text by
//! doubling, about 80 MiB at the peak of a scrape. Streamed in chunks (see `http/`), a scrape
//! holds the structures of [`RENDER_CHUNK`] series, the keys of one family, and a chunk or two
//! of text: the daemon's own families are collected a chunk at a time
//! ([`super::protobuf::Exposable::part_keys`]), the few others whole.

use std::sync::Arc;

use prometheus::{Encoder, TextEncoder};

use super::Metrics;

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

/// The state of one `/metrics` rendering: the collector whose series are being written in
/// parts, or the families of a collector collected whole, and how far each is written.
struct Render<M> {
    metrics: M,
    next_collector: usize,
    /// A collector rendered in parts: its index, its series' keys, how many are written, and
    /// whether its `# HELP` and `# TYPE` lines are.
    parts: Option<Parts>,
    families: std::collections::VecDeque<prometheus::proto::MetricFamily>,
    done_in_family: usize,
}

struct Parts {
    collector: usize,
    keys: Vec<String>,
    done: usize,
    header_written: bool,
}

impl<M: std::ops::Deref<Target = Metrics>> Render<M> {
    fn new(metrics: M) -> Self {
        Render {
            metrics,
            next_collector: 0,
            parts: None,
            families: std::collections::VecDeque::new(),
            done_in_family: 0,
        }
    }

    /// The next chunk of the collector rendered in parts; `None` when it yields nothing more.
    fn next_part(&mut self) -> Option<Vec<u8>> {
        let p = self.parts.as_mut()?;
        while p.done < p.keys.len() {
            let end = (p.done + RENDER_CHUNK).min(p.keys.len());
            let part = self.metrics.collectors()[p.collector].collect_part(&p.keys[p.done..end]);
            p.done = end;
            // Series removed since the keys were taken are left out; a chunk of none is skipped.
            if part.get_metric().is_empty() {
                continue;
            }
            let chunk = encode(part, p.header_written);
            p.header_written = true;
            return Some(chunk);
        }
        self.parts = None;
        None
    }

    /// The next chunk of the families collected whole.
    fn next_of_families(&mut self) -> Option<Vec<u8>> {
        let family = self.families.front_mut()?;
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
        let chunk = encode(part, self.done_in_family > 0);
        self.done_in_family = end;
        if end == total {
            self.families.pop_front();
            self.done_in_family = 0;
        }
        Some(chunk)
    }
}

/// `part` in the text format; without its `# HELP` and `# TYPE` lines when they are written
/// already (a family split over chunks must have them once).
pub(super) fn encode(part: prometheus::proto::MetricFamily, header_written: bool) -> Vec<u8> {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&[part], &mut buf)
        .expect("text encoding into a Vec cannot fail");
    if header_written {
        drop_header(&mut buf);
    }
    buf
}

/// Removes a family's `# HELP` and `# TYPE` lines from the start of its text (both formats),
/// for a part of a family whose first part had them. Neither line holds a raw newline: the
/// names cannot, and the daemon's help texts have none (prometheus-client would write one as
/// given).
pub(super) fn drop_header(buf: &mut Vec<u8>) {
    let header = buf
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .map_or(0, |(i, _)| i + 1);
    buf.drain(..header);
}

impl<M: std::ops::Deref<Target = Metrics>> Iterator for Render<M> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(chunk) = self.next_part() {
                return Some(chunk);
            }
            if let Some(chunk) = self.next_of_families() {
                return Some(chunk);
            }
            let index = self.next_collector;
            let c = self.metrics.collectors().get(index)?;
            self.next_collector += 1;
            if let Some(keys) = c.part_keys() {
                self.parts = Some(Parts {
                    collector: index,
                    keys,
                    done: 0,
                    header_written: false,
                });
                continue;
            }
            for mut f in c.collect() {
                if f.get_metric().is_empty() {
                    continue;
                }
                sort_by_label_values(&mut f);
                self.families.push_back(f);
            }
            self.done_in_family = 0;
        }
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
        // Labels are ordered by name in the exposition (bucket, operation, region, target), not
        // as declared (target first): buckets here sort the other way round from targets.
        let n = RENDER_CHUNK * 2 + 7;
        for i in 0..n {
            let (t, b) = (format!("t{i}"), format!("b{:04}", n - i));
            let op = ["GetObject", "PutObject"][i % 2];
            m.request_duration
                .with_label_values(&[&t, &b, "r", op])
                .observe(0.01 * i as f64);
            m.probe_runs.with_label_values(&[&t, &b, "r", "put"]).inc();
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
