//! The events queues' consumers: one per queue for the targets that name it, restarted when
//! those targets change.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Daemon, Running};
use crate::config::Target;
use crate::events::{Consumer, Ledger};

/// What makes two targets share an events queue consumer: one consumer per queue, whatever
/// the targets' roles (two consumers of one queue would take each other's messages for foreign
/// ones). The consumer uses the first target's role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct QueueKey {
    queue_url: String,
    endpoint: Option<String>,
}

/// A queue's consumer, as started, and the ledgers it feeds.
pub(super) struct RunningConsumer {
    ledgers: Vec<Arc<Ledger>>,
    token: CancellationToken,
}

impl Daemon {
    /// One consumer per events queue for the targets that name it: started, restarted when its
    /// targets change, stopped when none is left.
    pub(super) async fn apply_consumers(&self, running: &HashMap<String, Running>) {
        let mut wanted: HashMap<QueueKey, Vec<(&Target, Arc<Ledger>)>> = HashMap::new();
        for r in running.values() {
            let (Some(e), Some(l)) = (&r.target.events, &r.ledger) else {
                continue;
            };
            let key = QueueKey {
                queue_url: e.queue_url.clone(),
                endpoint: e.endpoint.clone(),
            };
            wanted.entry(key).or_default().push((&r.target, l.clone()));
        }
        for targets in wanted.values_mut() {
            targets.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        }
        let mut consumers = self.consumers.lock().await;
        // A consumer is kept only while it feeds exactly the ledgers of the running targets: a
        // changed target has a new ledger, and notifications for the old one would be lost.
        consumers.retain(|key, c| {
            let same = wanted.get(key).is_some_and(|v| {
                v.len() == c.ledgers.len()
                    && v.iter()
                        .zip(&c.ledgers)
                        .all(|((_, l), o)| Arc::ptr_eq(l, o))
            });
            if !same {
                c.token.cancel();
            }
            same
        });
        for (key, targets) in wanted {
            if consumers.contains_key(&key) {
                continue;
            }
            let consumer =
                Consumer::for_targets(&self.factory, &targets, self.loops.sink.clone()).await;
            let queue = consumer.queue().to_string();
            let token = self.token().child_token();
            self.loops.tracker.spawn(consumer.run(token.clone()));
            let names: Vec<&str> = targets.iter().map(|(t, _)| t.name.as_str()).collect();
            tracing::info!(queue = %queue, targets = ?names, "events queue consumer started");
            let ledgers = targets.iter().map(|(_, l)| l.clone()).collect();
            consumers.insert(key, RunningConsumer { ledgers, token });
        }
    }
}
