//! A family of the daemon's written into the protobuf exposition a part at a time, so no
//! family exists whole as protobuf structures during a scrape.

use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::DescriptorEncoder;

use super::super::Metrics;

/// Some series of one collector's family ([`Exposable::encode_part`]), as prometheus-client's
/// registry wants them.
pub(in crate::sinks::metrics) struct Part {
    pub metrics: Arc<Metrics>,
    pub index: usize,
    pub keys: Vec<String>,
}

impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "collector {}, {} series", self.index, self.keys.len())
    }
}

impl prometheus_client::collector::Collector for Part {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        match self.metrics.collectors().get(self.index) {
            Some(c) => c.encode_part(&self.keys, &mut e),
            None => Ok(()),
        }
    }
}

/// The `metric` field of prometheus-client's `MetricFamily` message.
pub(in crate::sinks::metrics) const METRIC_FIELD: u32 = 4;

/// A family written [`crate::sinks::metrics::exposition::RENDER_CHUNK`] series at a time, as the text is: each
/// part goes through prometheus-client's encoder and its series straight into their encoded
/// `metric` fields, so the family never exists whole as protobuf structures (at 1000 targets
/// the requests counter was 8 MiB of them, and as much again in copied labels). The family's
/// one message is then its length, its name, help and type, and those fields: the first
/// chunk, then a chunk per part. Nothing when every series is gone.
pub(super) fn by_parts(metrics: &Arc<Metrics>, index: usize, keys: &[String]) -> Vec<Vec<u8>> {
    use prometheus_client::encoding::prometheus_protobuf as pp;
    use prost::Message;
    let mut header: Option<pp::prometheus_data_model::MetricFamily> = None;
    let mut chunks = vec![Vec::new()];
    for part in keys.chunks(crate::sinks::metrics::exposition::RENDER_CHUNK) {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Part {
            metrics: metrics.clone(),
            index,
            keys: part.to_vec(),
        }));
        let families = match pp::encode(&registry) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("a metric family could not be encoded as protobuf: {e}");
                return Vec::new();
            }
        };
        for mut f in families {
            let mut body = Vec::new();
            for m in f.metric.drain(..) {
                prost::encoding::message::encode(METRIC_FIELD, &m, &mut body);
            }
            chunks.push(body);
            header.get_or_insert(f);
        }
    }
    let Some(header) = header else {
        return Vec::new();
    };
    let len = header.encoded_len() + chunks.iter().map(Vec::len).sum::<usize>();
    let mut first = Vec::with_capacity(header.encoded_len() + 10);
    prost::encoding::encode_varint(len as u64, &mut first);
    header.encode(&mut first).expect("a Vec grows as needed");
    chunks[0] = first;
    chunks
}
