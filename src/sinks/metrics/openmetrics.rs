//! The OpenMetrics text exposition of [`Metrics`], which Prometheus asks for first by default:
//! prometheus-client's text encoder writes every family a part at a time, then `# EOF`. Two
//! families are written by hand: the request histogram, whose buckets carry the latest request
//! ID in each as an exemplar (prometheus-client builds exemplars only inside its own exemplar
//! histogram, see `cells/histogram.rs`), and the one family the text expositions show as a
//! summary (request phases, `_sum` and `_count`: prometheus-client has no summary type).

use std::sync::Arc;

use prometheus::proto;

use super::Metrics;
use super::exposition::{RENDER_CHUNK, drop_header};
use super::protobuf::{One, Part};

/// The content type of this exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics before anything else (Prometheus' default:
/// `application/openmetrics-text;version=1.0.0,...;q=0.75,text/plain;version=0.0.4;q=0.5,...`).
pub fn wanted(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| {
        first
            .trim_start()
            .starts_with("application/openmetrics-text")
    })
}

impl Metrics {
    /// The whole OpenMetrics exposition (tests; the HTTP server streams
    /// [`Self::openmetrics_chunks`]).
    pub fn render_openmetrics(self: &Arc<Self>) -> String {
        let bytes: Vec<u8> = self.openmetrics_chunks().flatten().collect();
        String::from_utf8(bytes).expect("the exposition is UTF-8")
    }

    /// The OpenMetrics exposition, `# EOF` last: a family of the daemon's [`RENDER_CHUNK`]
    /// series per chunk, each written when the iterator is advanced (as the text is), the
    /// other collectors whole.
    pub fn openmetrics_chunks(self: &Arc<Self>) -> impl Iterator<Item = Vec<u8>> + Send + 'static {
        let metrics = self.clone();
        (0..self.collectors().len())
            .flat_map(move |index| collector(metrics.clone(), index))
            .chain(std::iter::once(b"# EOF\n".to_vec()))
    }
}

/// One collector's chunks: its family in parts when it has one of the daemon's, else whole.
fn collector(metrics: Arc<Metrics>, index: usize) -> Box<dyn Iterator<Item = Vec<u8>> + Send> {
    let Some(keys) = metrics.collectors()[index].part_keys() else {
        return Box::new(std::iter::once(encode(One { metrics, index })));
    };
    let mut header = true;
    let parts = (0..keys.len())
        .step_by(RENDER_CHUNK)
        .filter_map(move |start| {
            let part = &keys[start..(start + RENDER_CHUNK).min(keys.len())];
            let by_hand = metrics.collectors()[index].openmetrics_by_hand(part, header);
            let text = match by_hand {
                Some(text) => text.into_bytes(),
                None => {
                    let mut text = encode(Part {
                        metrics: metrics.clone(),
                        index,
                        keys: part.to_vec(),
                    });
                    if !header && !text.is_empty() {
                        drop_header(&mut text);
                    }
                    text
                }
            };
            // Series removed since the keys were taken are left out; a part of none is skipped.
            if text.is_empty() {
                return None;
            }
            header = false;
            Some(text)
        });
    Box::new(parts)
}

/// What prometheus-client's OpenMetrics encoder writes of `collector`. Writing into a String
/// fails only on a value the format cannot hold; the family is then left out rather than the
/// scrape failed.
fn encode(collector: impl prometheus_client::collector::Collector) -> Vec<u8> {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(collector));
    let mut out = String::new();
    match prometheus_client::encoding::text::encode_registry(&mut out, &registry) {
        Ok(()) => out.into_bytes(),
        Err(e) => {
            tracing::warn!("a metric family could not be encoded as OpenMetrics: {e}");
            Vec::new()
        }
    }
}

/// A family of summaries without quantiles (as a `native_only` family collects), in
/// OpenMetrics: `_sum` and `_count` per series. Those lines, their escaping included, are what
/// the text format writes, so the text exposition's encoder writes them.
pub(super) fn summary(f: proto::MetricFamily, header: bool) -> String {
    if f.get_metric().is_empty() {
        return String::new();
    }
    String::from_utf8(super::exposition::encode(f, !header)).expect("the text format is UTF-8")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::report::{RequestPhases, Sink};
    use crate::sinks::metrics::testing::{get, metrics_and_target, throttled_put};

    #[test]
    fn asks_for_openmetrics_only_when_it_comes_first() {
        assert!(wanted(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
             version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!wanted(
            "text/plain;version=0.0.4,application/openmetrics-text"
        ));
        assert!(!wanted(""));
    }

    #[test]
    fn buckets_carry_the_latest_request_id_and_the_text_ends_with_eof() {
        let (m, t) = metrics_and_target();
        for (ms, id) in [
            (3, Some("A1")),
            (4, Some("A2")),
            (40, Some("B1")),
            (41, None),
        ] {
            get(&m, &t, ms, id);
        }
        m.request_phases(
            &t,
            &RequestPhases {
                at: SystemTime::now(),
                new_connection: true,
                dns: None,
                connect: Some(Duration::from_millis(2)),
                tls: None,
                first_byte: Some(Duration::from_millis(3)),
                body: None,
                request_id: None,
                tls_not_after: None,
            },
        );
        let text = m.render_openmetrics();
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
        let bucket = |le: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with("s3canary_s3_request_duration_seconds_bucket{")
                        && l.contains(&format!("le=\"{le}\""))
                })
                .unwrap_or_else(|| panic!("no bucket {le} in {text}"))
                .to_string()
        };
        // The latest request in each bucket is its exemplar; one without an ID replaces none.
        assert!(
            bucket("0.005").contains("# {request_id=\"A2\"} 0.004"),
            "{}",
            bucket("0.005")
        );
        assert!(
            bucket("0.05").contains("# {request_id=\"B1\"} 0.04"),
            "{}",
            bucket("0.05")
        );
        assert!(!bucket("0.1").contains('#'), "{}", bucket("0.1"));
        // Counters are written as OpenMetrics names them: the family without `_total`.
        assert!(
            text.contains("# TYPE s3canary_connections_opened counter\n"),
            "{text}"
        );
        assert!(
            text.contains("s3canary_connections_opened_total{"),
            "{text}"
        );
        // Phases are a summary, as in the text format.
        assert!(
            text.contains("# TYPE s3canary_request_phase_seconds summary\n"),
            "{text}"
        );
        assert!(
            text.contains("s3canary_request_phase_seconds_count{bucket=\"b\",phase=\"connect\",region=\"us-east-1\",target=\"t1\",vantage=\"eu\"} 1\n"),
            "{text}"
        );
        // Every family of the text format is here too.
        let names = |t: &str, suffix_total: bool| -> std::collections::BTreeSet<String> {
            t.lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .map(|l| {
                    let (name, kind) = l.split_once(' ').unwrap();
                    if suffix_total && kind == "counter" {
                        format!("{name}_total")
                    } else {
                        name.to_string()
                    }
                })
                .collect()
        };
        assert_eq!(names(&text, true), names(&m.render(), false));
    }

    #[test]
    fn a_family_written_in_parts_has_its_header_once_and_every_series() {
        let (m, t) = metrics_and_target();
        let n = 2 * RENDER_CHUNK + 7;
        for i in 0..n {
            let t = crate::report::TargetLabels {
                target: format!("t{i}"),
                ..t.clone()
            };
            get(&m, &t, 3, Some("A1"));
            throttled_put(&m, &t);
        }
        let text = m.render_openmetrics();
        // The request histogram (written by hand) and a counter (by prometheus-client).
        for family in [
            "s3canary_s3_request_duration_seconds histogram",
            "s3canary_s3_request_errors counter",
        ] {
            assert_eq!(text.matches(&format!("# TYPE {family}\n")).count(), 1);
            let name = family.split(' ').next().unwrap();
            assert_eq!(text.matches(&format!("# HELP {name} ")).count(), 1);
        }
        let targets = |prefix: &str| -> std::collections::BTreeSet<&str> {
            text.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.split("target=\"").nth(1)?.split('"').next())
                .collect()
        };
        assert_eq!(
            targets("s3canary_s3_request_duration_seconds_count{").len(),
            n
        );
        assert_eq!(targets("s3canary_s3_request_errors_total{").len(), n);
        // Every series' 5 ms bucket has its exemplar.
        let exemplars = text
            .lines()
            .filter(|l| l.contains("le=\"0.005\"") && l.contains("# {request_id=\"A1\"} 0.003 "))
            .count();
        assert_eq!(exemplars, n);
        assert!(text.ends_with("# EOF\n"));
    }
}
