//! The sending side of the mirror: batches within the PutMetricData limits taken off the
//! bounded queue, retried with backoff and jitter, one log line on failure and on recovery.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudwatch::types::MetricDatum;
use tokio_util::sync::CancellationToken;

use super::{Mirror, QUEUE_CAPACITY};
use crate::config::CloudWatchSection;

/// Most datums in one PutMetricData call (the API limit).
pub const MAX_DATUMS_PER_CALL: usize = 1000;
/// Most bytes of datums in one call: the API takes 1 MB; the estimate keeps a margin.
pub const MAX_BYTES_PER_CALL: usize = 800 * 1024;
/// A rough size of a datum in a request, for batching under the payload limit.
pub(super) fn estimated_size(d: &MetricDatum) -> usize {
    let dims: usize = d
        .dimensions()
        .iter()
        .map(|x| x.name().map_or(0, str::len) + x.value().map_or(0, str::len) + 16)
        .sum();
    64 + d.metric_name().map_or(0, str::len) + dims + 18 * d.values().len() + 18 * d.counts().len()
}

/// Takes the next batch off the front of `queue`: at most [`MAX_DATUMS_PER_CALL`] datums and
/// [`MAX_BYTES_PER_CALL`] estimated bytes.
pub fn next_batch(queue: &mut VecDeque<MetricDatum>) -> Vec<MetricDatum> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while let Some(d) = queue.front() {
        let size = estimated_size(d);
        if batch.len() == MAX_DATUMS_PER_CALL
            || (!batch.is_empty() && bytes + size > MAX_BYTES_PER_CALL)
        {
            break;
        }
        bytes += size;
        batch.push(queue.pop_front().expect("front exists"));
    }
    batch
}

impl Mirror {
    /// Sends queued datums until `token` is cancelled; then makes a last attempt to send what
    /// is left within `final_budget`.
    pub async fn run_sender(
        self: Arc<Self>,
        client: aws_sdk_cloudwatch::Client,
        token: CancellationToken,
        final_budget: Duration,
    ) {
        let mut failing = false;
        let mut backoff = Duration::from_secs(1);
        loop {
            if token.is_cancelled() {
                break;
            }
            let batch = next_batch(&mut self.queue.lock().unwrap());
            if batch.is_empty() {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = self.queued.notified() => continue,
                }
            }
            match self.send(&client, batch).await {
                Ok(()) => {
                    if failing {
                        tracing::info!(namespace = %self.cfg.namespace, "CloudWatch publishing recovered");
                        failing = false;
                    }
                    backoff = Duration::from_secs(1);
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(namespace = %self.cfg.namespace, error = %e,
                            "CloudWatch publishing failed; datums are kept (bounded) and retried");
                        failing = true;
                    }
                    // Full jitter: wait a random part of the backoff, at most a minute.
                    let wait = backoff.mul_f64(rand::random::<f64>());
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        // Final flush: whatever is queued gets one try each, within the budget.
        let end = tokio::time::Instant::now() + final_budget;
        while tokio::time::Instant::now() < end {
            let batch = next_batch(&mut self.queue.lock().unwrap());
            if batch.is_empty() {
                return;
            }
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.send(&client, batch)).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        let lost = self.queue_len();
        if lost > 0 {
            self.metrics.cloudwatch_dropped.get().inc_by(lost as u64);
            tracing::warn!(datums = lost, "CloudWatch datums not sent before shutdown");
        }
    }

    /// One PutMetricData call; on failure the batch goes back to the front of the queue.
    async fn send(
        &self,
        client: &aws_sdk_cloudwatch::Client,
        batch: Vec<MetricDatum>,
    ) -> Result<(), String> {
        let r = client
            .put_metric_data()
            .namespace(&self.cfg.namespace)
            .set_metric_data(Some(batch.clone()))
            .send()
            .await;
        match r {
            Ok(_) => {
                self.metrics
                    .cloudwatch_publish
                    .with_label_values(&["success"])
                    .inc();
                Ok(())
            }
            Err(e) => {
                self.metrics
                    .cloudwatch_publish
                    .with_label_values(&["failure"])
                    .inc();
                let mut q = self.queue.lock().unwrap();
                for d in batch.into_iter().rev() {
                    q.push_front(d);
                }
                let over = q.len().saturating_sub(QUEUE_CAPACITY);
                if over > 0 {
                    q.drain(..over);
                    self.metrics.cloudwatch_dropped.get().inc_by(over as u64);
                }
                Err(crate::s3::words::of(&e, &peer(&self.cfg)))
            }
        }
    }
}

/// The connect, attempt and total timeouts of a CloudWatch call (one attempt).
const TIMEOUTS: [Duration; 3] = [
    Duration::from_secs(3),
    Duration::from_secs(10),
    Duration::from_secs(10),
];

/// Where the mirror's calls go, for the words of their failures.
fn peer(cfg: &CloudWatchSection) -> crate::s3::words::Peer {
    let aws = format!("monitoring.{}.amazonaws.com", cfg.region);
    crate::s3::words::Peer::new(cfg.endpoint.as_deref(), &aws, TIMEOUTS)
}

/// A CloudWatch client for the mirror: its own region and endpoint, one attempt per call (the
/// sender retries with backoff), short timeouts.
pub async fn client(
    cfg: &CloudWatchSection,
    credentials: Option<aws_sdk_s3::config::SharedCredentialsProvider>,
) -> aws_sdk_cloudwatch::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(cfg.region.clone()));
    if let Some(c) = credentials {
        loader = loader.credentials_provider(c);
    }
    let base = loader.load().await;
    let mut b = aws_sdk_cloudwatch::config::Builder::from(&base)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(TIMEOUTS[0])
                .operation_timeout(TIMEOUTS[2])
                .build(),
        );
    if let Some(e) = &cfg.endpoint {
        b = b.endpoint_url(e);
    }
    aws_sdk_cloudwatch::Client::from_conf(b.build())
}
