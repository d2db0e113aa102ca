//! One consumer per queue, shared by the targets that name it: long polls (20 s, up to ten
//! messages), hands every notification about a target's key space to that target's ledger and
//! deletes the message in one batch; a message about any other key is made visible again at
//! once (never deleted) and counted once.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ledger::{Ledger, Received};
use super::message::{self, Message};
use crate::config::Target;
use crate::report::Sink;
use crate::report::{MAX_MESSAGE, bounded_text};
use crate::s3::ClientFactory;
use crate::s3::client::sqs_peer;
use crate::s3::words::{self, Peer};

/// Long-poll wait of one ReceiveMessage (the SQS maximum: fewest requests on a quiet queue).
pub const WAIT: Duration = Duration::from_secs(20);
/// Pause after a receive that returned only foreign messages already counted, so a shared
/// queue's other messages (visible again at once) do not make the consumer spin.
pub const FOREIGN_PAUSE: Duration = Duration::from_secs(5);
/// Longest pause after failed receives (doubling from one second).
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a message received stays hidden unless deleted or released. Ours are deleted
/// within one request; a foreign message is released at once, and this bounds how long it
/// stays hidden when that cannot happen: a long poll cut off at shutdown (the queue may have
/// handed out messages the process never read) or a failed release. Short, so another
/// consumer of a shared queue loses seconds, not the queue's own timeout (30 s by default).
pub const RECEIVE_VISIBILITY: Duration = Duration::from_secs(10);
/// Foreign message ids remembered, so each is counted once.
const SEEN_FOREIGN: usize = 10_000;

/// Where the notifications about one target's keys go.
#[derive(Debug, Clone)]
pub struct Route {
    pub bucket: String,
    /// The target's whole key space (`prefix`): notifications about it are consumed.
    pub prefix: String,
    pub ledger: Arc<Ledger>,
}

/// The consumer of one queue.
pub struct Consumer {
    client: aws_sdk_sqs::Client,
    /// Where the client's requests go, for the words of its failures.
    peer: Peer,
    queue_url: String,
    /// The queue's name, in logs and the foreign-message counter.
    queue: String,
    routes: Vec<Route>,
    sink: Arc<dyn Sink>,
    /// Canaries written before this are an earlier process's: consumed, not judged.
    started: SystemTime,
}

/// Remembers recent foreign message ids, oldest forgotten first.
#[derive(Default)]
struct Seen {
    order: VecDeque<String>,
    ids: HashSet<String>,
}

impl Seen {
    /// Whether `id` is remembered.
    fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Whether `id` is new (and remembers it).
    fn first_time(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() >= SEEN_FOREIGN
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        self.order.push_back(id.to_string());
        self.ids.insert(id.to_string());
        true
    }
}

impl Consumer {
    /// A consumer of `queue_url` for `routes`.
    pub fn new(
        client: aws_sdk_sqs::Client,
        peer: Peer,
        queue_url: &str,
        queue: &str,
        routes: Vec<Route>,
        sink: Arc<dyn Sink>,
    ) -> Self {
        Consumer {
            client,
            peer,
            queue_url: queue_url.to_string(),
            queue: queue.to_string(),
            routes,
            sink,
            started: SystemTime::now(),
        }
    }

    /// The consumer of the queue `targets` share, feeding each target's ledger. The first
    /// target's queue, endpoint, region and role are used: one consumer per queue, whatever
    /// the targets' roles (two consumers of one queue would take each other's messages).
    pub async fn for_targets(
        factory: &ClientFactory,
        targets: &[(&Target, Arc<Ledger>)],
        sink: Arc<dyn Sink>,
    ) -> Self {
        let first = targets[0].0;
        let e = first
            .events
            .as_ref()
            .expect("a target with the events probe");
        let region = e.region().unwrap_or(&first.region);
        let client = factory
            .sqs(region, e.endpoint.as_deref(), first.role_arn.as_deref())
            .await;
        let routes = targets
            .iter()
            .map(|(t, l)| Route {
                bucket: t.bucket.clone(),
                prefix: t.prefix.clone(),
                ledger: l.clone(),
            })
            .collect();
        let peer = sqs_peer(region, e.endpoint.as_deref());
        Consumer::new(client, peer, &e.queue_url, e.queue_name(), routes, sink)
    }

    /// The queue's name, as in logs.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The route of a notification about `key` in `bucket`: the target whose canaries it is
    /// about, else any target whose key space holds it.
    /// The longest match wins, so nested prefixes route to the innermost target.
    fn route(&self, bucket: &str, key: &str) -> Option<&Route> {
        let here = || self.routes.iter().filter(move |r| r.bucket == bucket);
        here()
            .filter(|r| key.starts_with(r.ledger.canaries()))
            .max_by_key(|r| r.ledger.canaries().len())
            .or_else(|| {
                here()
                    .filter(|r| key.starts_with(&r.prefix))
                    .max_by_key(|r| r.prefix.len())
            })
    }

    /// Reads one message received at `now`; true if it is ours (to delete).
    fn read(&self, body: &str, now: Instant) -> bool {
        match message::parse(body) {
            // Saving a notification configuration sends one to the queue: on a dedicated
            // queue nobody else would ever remove it.
            Message::Test { bucket } => self.routes.iter().any(|r| r.bucket == bucket),
            Message::Other => false,
            Message::Changes(notices) => {
                let routes: Option<Vec<&Route>> = notices
                    .iter()
                    .map(|n| self.route(&n.bucket, &n.key))
                    .collect();
                // A message that also reports a change outside every key space is not ours.
                let Some(routes) = routes else { return false };
                for (n, r) in notices.iter().zip(routes) {
                    // Other events on our keys (tagging, lifecycle, restore) are ours to consume.
                    let Some(change) = n.change else { continue };
                    if !n.key.starts_with(r.ledger.canaries()) {
                        continue;
                    }
                    if r.ledger.received(&n.key, change, now) == Received::Unknown {
                        let earlier = r.ledger.is_earlier_canary(&n.key, self.started);
                        tracing::debug!(queue = %self.queue, key = %bounded_text(&n.key, MAX_MESSAGE),
                            earlier, "notification of a canary no longer expected, consumed");
                    }
                }
                true
            }
        }
    }

    /// Receives until `token` is cancelled.
    pub async fn run(self, token: CancellationToken) {
        let mut seen = Seen::default();
        let mut undeleted = Seen::default();
        let mut pause = Duration::ZERO;
        let mut failures = 0u32;
        loop {
            if !pause.is_zero() {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
            let receive = self
                .client
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(WAIT.as_secs() as i32)
                .visibility_timeout(RECEIVE_VISIBILITY.as_secs() as i32)
                .send();
            let answer = tokio::select! {
                _ = token.cancelled() => return,
                r = receive => r,
            };
            let messages = match answer {
                Ok(o) => {
                    failures = 0;
                    pause = Duration::ZERO;
                    o.messages.unwrap_or_default()
                }
                Err(e) => {
                    failures += 1;
                    pause = (Duration::from_secs(1) * 2u32.saturating_pow(failures - 1))
                        .min(MAX_BACKOFF);
                    let why = words::of(&e, &self.peer);
                    tracing::warn!(queue = %self.queue, retry_in = ?pause,
                        "receiving from the events queue failed: {}", why);
                    continue;
                }
            };
            let now = Instant::now();
            let (mut ours, mut others, mut new_others) = (Vec::new(), Vec::new(), 0);
            for m in messages {
                let Some(handle) = m.receipt_handle else {
                    continue;
                };
                let id = m.message_id.unwrap_or_default();
                // A message read before whose delete failed is back: the queue's redelivery,
                // not the store's duplicate notification.
                if undeleted.contains(&id) || self.read(m.body.as_deref().unwrap_or(""), now) {
                    ours.push((id, handle));
                } else {
                    if seen.first_time(if id.is_empty() { &handle } else { &id }) {
                        self.sink.foreign_message(&self.queue);
                        new_others += 1;
                    }
                    others.push(handle);
                }
            }
            let read_ours = !ours.is_empty();
            for id in self.delete(ours).await {
                undeleted.first_time(&id);
            }
            if !others.is_empty() {
                self.release(others).await;
                if new_others == 0 && !read_ours {
                    pause = FOREIGN_PAUSE;
                }
            }
        }
    }

    /// Deletes the messages read (one batch of at most ten); answers the ids of those not
    /// deleted, which the queue hands out again.
    async fn delete(&self, messages: Vec<(String, String)>) -> Vec<String> {
        if messages.is_empty() {
            return Vec::new();
        }
        let entries = messages.iter().enumerate().filter_map(|(i, (_, h))| {
            aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(h)
                .build()
                .ok()
        });
        let r = self
            .client
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries.collect()))
            .send()
            .await;
        let failed: Vec<usize> = match r {
            Ok(o) => o
                .failed()
                .iter()
                .filter_map(|f| f.id().parse().ok())
                .collect(),
            Err(e) => {
                let why = words::of(&e, &self.peer);
                tracing::warn!(queue = %self.queue, "deleting notifications failed: {}",
                    why);
                (0..messages.len()).collect()
            }
        };
        if !failed.is_empty() {
            tracing::warn!(queue = %self.queue, failed = failed.len(),
                "some notifications could not be deleted; they come back and are consumed again, not counted");
        }
        failed
            .into_iter()
            .filter_map(|i| messages.get(i))
            .map(|(id, _)| id.clone())
            .filter(|id| !id.is_empty())
            .collect()
    }

    /// Makes messages that are not ours visible again at once.
    async fn release(&self, handles: Vec<String>) {
        let entries = handles.into_iter().enumerate().filter_map(|(i, h)| {
            aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(h)
                .visibility_timeout(0)
                .build()
                .ok()
        });
        let r = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries.collect()))
            .send()
            .await;
        if let Err(e) = r {
            let why = words::of(&e, &self.peer);
            tracing::warn!(queue = %self.queue, "releasing other messages failed (they return within 10 s): {}",
                why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Sinks;

    fn route(bucket: &str, prefix: &str, target: &str) -> Route {
        let labels = crate::report::TargetLabels {
            target: target.into(),
            bucket: bucket.into(),
            region: "us-east-1".into(),
        };
        let sink: Arc<dyn Sink> = Arc::new(Sinks::default());
        let canaries = format!("{prefix}{target}/");
        Route {
            bucket: bucket.into(),
            prefix: prefix.into(),
            ledger: Arc::new(Ledger::new(labels, canaries, Duration::from_secs(60), sink)),
        }
    }

    #[test]
    fn nested_key_spaces_route_to_the_innermost_target() {
        let conf = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .build();
        let routes = vec![route("b", "s3canary/", "x"), route("b", "s3canary/x/", "y")];
        let sink: Arc<dyn Sink> = Arc::new(Sinks::default());
        let client = aws_sdk_sqs::Client::from_conf(conf);
        let c = Consumer::new(client, sqs_peer("us-east-1", None), "q", "q", routes, sink);
        let to = |key| c.route("b", key).map(|r| r.ledger.canaries().to_string());
        assert_eq!(to("s3canary/x/y/1-a").as_deref(), Some("s3canary/x/y/"));
        assert_eq!(to("s3canary/x/1-a").as_deref(), Some("s3canary/x/"));
        assert_eq!(
            to("s3canary/replication/r/1-a").as_deref(),
            Some("s3canary/x/")
        );
        assert_eq!(to("app/1-a"), None);
        assert!(c.route("other", "s3canary/x/1-a").is_none());
    }
}
