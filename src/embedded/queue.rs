//! Event notifications for the embedded server: S3 event records of writes and deletes,
//! delivered to in-memory queues after a configurable delay (or dropped, as a fault), and the
//! few SQS operations the events probe uses, in the AWS JSON 1.0 protocol the SDK speaks
//! (`X-Amz-Target: AmazonSQS.<Operation>`), served on the S3 server's own port.
//!
//! Only what the SDK needs: ReceiveMessage (long polling, visibility timeout), SendMessage,
//! DeleteMessageBatch and ChangeMessageVisibilityBatch. Requests are not authenticated: the
//! server listens on loopback for `demo` and the tests.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::replication::Lag;
use crate::s3::Change;

/// Default visibility timeout of a received message (SQS's default).
const VISIBILITY: Duration = Duration::from_secs(30);
/// Longest long poll SQS allows.
const MAX_WAIT: Duration = Duration::from_secs(20);
/// Longest visibility timeout and message delay SQS allows.
const MAX_VISIBILITY: u64 = 43_200;
const MAX_DELAY: u64 = 900;
/// The operations served (others are refused and not counted).
const OPERATIONS: &[&str] = &[
    "ReceiveMessage",
    "SendMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibilityBatch",
];

/// Notifications of one bucket's changes under a prefix go to a queue, after a delay.
#[derive(Debug, Clone)]
pub struct NotifyRule {
    pub bucket: String,
    pub prefix: String,
    pub queue: String,
    pub delay: Lag,
}

#[derive(Debug)]
struct Message {
    id: String,
    body: String,
    visible_at: Instant,
    receipt: Option<String>,
}

/// The server's queues and notification rules.
#[derive(Debug, Default)]
pub struct Queues {
    queues: Mutex<HashMap<String, VecDeque<Message>>>,
    rules: Mutex<Vec<NotifyRule>>,
    arrived: tokio::sync::Notify,
    seq: AtomicU64,
    /// SQS requests answered, by operation (what the events probe costs).
    requests: Mutex<HashMap<String, u64>>,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl Queues {
    /// Creates queue `name` (empty), if it does not exist.
    pub fn create(&self, name: &str) {
        self.queues
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default();
    }

    /// Adds a notification rule (its queue is created).
    pub fn notify(&self, rule: NotifyRule) {
        self.create(&rule.queue);
        self.rules.lock().unwrap().push(rule);
    }

    /// Sends `body` to `queue`, visible after `delay`; false if there is no such queue.
    pub fn send(&self, queue: &str, body: String, delay: Duration) -> bool {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut queues = self.queues.lock().unwrap();
        let Some(q) = queues.get_mut(queue) else {
            return false;
        };
        q.push_back(Message {
            id: format!(
                "{n:08x}-0000-4000-8000-{:012x}",
                rand::random::<u64>() >> 16
            ),
            body,
            visible_at: Instant::now() + delay,
            receipt: None,
        });
        drop(queues);
        self.arrived.notify_waiters();
        true
    }

    /// A change S3 acknowledged: an S3 event record to every queue whose rule covers it,
    /// unless `dropped` (the fault layer loses it).
    pub fn on_change(&self, bucket: &str, key: &str, change: Change, dropped: bool) {
        if dropped {
            return;
        }
        let rules: Vec<NotifyRule> = self
            .rules
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.bucket == bucket && key.starts_with(&r.prefix))
            .cloned()
            .collect();
        for r in rules {
            let name = match change {
                Change::Created => "ObjectCreated:Put",
                Change::Removed => "ObjectRemoved:Delete",
            };
            let record = json!({"Records": [{
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": rfc3339(SystemTime::now()),
                "eventName": name,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "s3canary",
                    "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
                    "object": {"key": key, "sequencer": format!("{:016X}", self.seq.load(Ordering::Relaxed))},
                },
            }]});
            self.send(&r.queue, record.to_string(), r.delay.sample());
        }
    }

    /// Up to `max` visible messages of `queue`, waiting up to `wait` for the first; they stay
    /// invisible for `visibility` unless deleted.
    async fn receive(
        &self,
        queue: &str,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Option<Vec<(String, String, String)>> {
        let until = Instant::now() + wait.min(MAX_WAIT);
        loop {
            let arrived = self.arrived.notified();
            let next = {
                let mut queues = self.queues.lock().unwrap();
                let q = queues.get_mut(queue)?;
                let now = Instant::now();
                let mut got = Vec::new();
                for m in q.iter_mut().filter(|m| m.visible_at <= now).take(max) {
                    let receipt = format!("{}-{:016x}", m.id, rand::random::<u64>());
                    m.receipt = Some(receipt.clone());
                    m.visible_at = now + visibility;
                    got.push((m.id.clone(), receipt, m.body.clone()));
                }
                if !got.is_empty() || now >= until {
                    return Some(got);
                }
                q.iter()
                    .map(|m| m.visible_at)
                    .min()
                    .unwrap_or(until)
                    .min(until)
            };
            tokio::select! {
                _ = arrived => {}
                _ = tokio::time::sleep_until(next) => {}
            }
        }
    }

    /// Applies `f` to the message of `queue` with `receipt`; false if there is none.
    fn with_receipt(
        &self,
        queue: &str,
        receipt: &str,
        f: impl FnOnce(&mut VecDeque<Message>, usize),
    ) -> bool {
        let mut queues = self.queues.lock().unwrap();
        let Some(q) = queues.get_mut(queue) else {
            return false;
        };
        match q.iter().position(|m| m.receipt.as_deref() == Some(receipt)) {
            Some(i) => {
                f(q, i);
                true
            }
            None => false,
        }
    }

    /// Messages on `queue` now, visible or not (0 for no such queue).
    pub fn len(&self, queue: &str) -> usize {
        self.queues
            .lock()
            .unwrap()
            .get(queue)
            .map_or(0, VecDeque::len)
    }

    /// The bodies of the messages on `queue` now.
    pub fn bodies(&self, queue: &str) -> Vec<String> {
        let queues = self.queues.lock().unwrap();
        let q = queues.get(queue);
        q.map(|q| q.iter().map(|m| m.body.clone()).collect())
            .unwrap_or_default()
    }

    /// SQS requests answered so far, by operation.
    pub fn requests(&self) -> HashMap<String, u64> {
        self.requests.lock().unwrap().clone()
    }

    /// Answers one SQS request (`target` is the operation's `X-Amz-Target`): status and JSON.
    pub async fn handle(&self, target: &str, body: &[u8]) -> (u16, String) {
        let op = target.strip_prefix("AmazonSQS.").unwrap_or("");
        if let Some(op) = OPERATIONS.iter().find(|o| **o == op) {
            *self
                .requests
                .lock()
                .unwrap()
                .entry(op.to_string())
                .or_default() += 1;
        }
        let input: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => return error("InvalidParameterValue", "the request is not JSON"),
        };
        let queue = input["QueueUrl"]
            .as_str()
            .and_then(|u| u.trim_end_matches('/').rsplit('/').next())
            .unwrap_or("")
            .to_string();
        if !self.queues.lock().unwrap().contains_key(&queue) {
            return error("QueueDoesNotExist", "The specified queue does not exist.");
        }
        match target.strip_prefix("AmazonSQS.").unwrap_or("") {
            "ReceiveMessage" => {
                let max = input["MaxNumberOfMessages"]
                    .as_u64()
                    .unwrap_or(1)
                    .clamp(1, 10) as usize;
                let wait = Duration::from_secs(input["WaitTimeSeconds"].as_u64().unwrap_or(0));
                let visibility = input["VisibilityTimeout"]
                    .as_u64()
                    .map_or(VISIBILITY, |s| Duration::from_secs(s.min(MAX_VISIBILITY)));
                let got = self
                    .receive(&queue, max, wait, visibility)
                    .await
                    .unwrap_or_default();
                let messages: Vec<Value> = got
                    .into_iter()
                    .map(|(id, receipt, body)| {
                        let md5 = crate::canary::md5_hex(body.as_bytes());
                        json!({"MessageId": id, "ReceiptHandle": receipt, "MD5OfBody": md5, "Body": body})
                    })
                    .collect();
                (200, json!({"Messages": messages}).to_string())
            }
            "SendMessage" => {
                let Some(body) = input["MessageBody"].as_str() else {
                    return error("MissingParameter", "MessageBody is required");
                };
                let delay =
                    Duration::from_secs(input["DelaySeconds"].as_u64().unwrap_or(0).min(MAX_DELAY));
                self.send(&queue, body.to_string(), delay);
                let md5 = crate::canary::md5_hex(body.as_bytes());
                (
                    200,
                    json!({"MessageId": "0", "MD5OfMessageBody": md5}).to_string(),
                )
            }
            op @ ("DeleteMessageBatch" | "ChangeMessageVisibilityBatch") => {
                let entries: Vec<Entry> =
                    serde_json::from_value(input["Entries"].clone()).unwrap_or_default();
                let (mut ok, mut failed) = (Vec::new(), Vec::new());
                for e in entries {
                    let done = if op == "DeleteMessageBatch" {
                        self.with_receipt(&queue, &e.receipt_handle, |q, i| {
                            q.remove(i);
                        })
                    } else {
                        let at =
                            Instant::now() + Duration::from_secs(e.visibility_timeout.unwrap_or(0));
                        let done = self.with_receipt(&queue, &e.receipt_handle, |q, i| {
                            q[i].visible_at = at;
                        });
                        self.arrived.notify_waiters();
                        done
                    };
                    if done {
                        ok.push(json!({"Id": e.id}));
                    } else {
                        failed.push(json!({"Id": e.id, "Code": "ReceiptHandleIsInvalid",
                            "SenderFault": true, "Message": "The receipt handle is not valid."}));
                    }
                }
                (200, json!({"Successful": ok, "Failed": failed}).to_string())
            }
            other => error(
                "InvalidAction",
                &format!("{other} is not served by the embedded queue"),
            ),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    id: String,
    receipt_handle: String,
    visibility_timeout: Option<u64>,
}

fn error(code: &str, message: &str) -> (u16, String) {
    let body = json!({"__type": format!("com.amazonaws.sqs#{code}"), "message": message});
    (400, body.to_string())
}
