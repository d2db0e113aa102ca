//! The events probe against the embedded server's notifications and queue: every change
//! notified once and its delivery time measured, lost notifications counted after the timeout,
//! and a message about other keys left on the queue, counted once.

pub mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{factory, target, wait_until};
use s3canary::embedded::queue::NotifyRule;
use s3canary::embedded::{EmbeddedS3, FaultConfig, Lag};
use s3canary::events::consumer::Route;
use s3canary::events::{Consumer, Ledger};
use s3canary::probe::run_alone;
use s3canary::report::Sink;
use s3canary::report::{EventReport, TargetLabels};
use s3canary::s3::Bucket;
use tokio_util::sync::CancellationToken;

/// Keeps what the events probe reports.
#[derive(Default)]
struct Heard {
    reports: Mutex<Vec<EventReport>>,
    foreign: Mutex<Vec<String>>,
}

impl Sink for Heard {
    fn event(&self, _t: &TargetLabels, r: &EventReport) {
        self.reports.lock().unwrap().push(r.clone());
    }
    fn foreign_message(&self, queue: &str) {
        self.foreign.lock().unwrap().push(queue.to_string());
    }
}

impl Heard {
    fn count(&self, f: impl Fn(&EventReport) -> bool) -> usize {
        self.reports.lock().unwrap().iter().filter(|r| f(r)).count()
    }
}

/// A server whose bucket "notified" notifies queue "events" `delay` after each change, a target
/// with the events probe (timeout `timeout`) and its bucket, ledger and running consumer.
async fn setup(
    delay: Duration,
    timeout: &str,
) -> (
    EmbeddedS3,
    s3canary::config::Target,
    Bucket,
    Arc<Ledger>,
    Arc<Heard>,
    CancellationToken,
) {
    let s3 = EmbeddedS3::start(&["notified"]).await.unwrap();
    let queue_url = format!("{}/000000000000/events", s3.endpoint);
    let extra = format!(
        "probes = [\"put\", \"get\", \"overwrite\", \"delete\", \"conditional\", \"events\"]\n\
         [target.events]\nqueue_url = \"{queue_url}\"\nendpoint = \"{}\"\ntimeout = \"{timeout}\"",
        s3.endpoint
    );
    let t = target("ev", "notified", &s3.endpoint, &extra);
    s3.queues.notify(NotifyRule {
        bucket: "notified".into(),
        prefix: "s3canary/".into(),
        queue: "events".into(),
        delay: Lag::Fixed(delay),
    });
    let heard = Arc::new(Heard::default());
    let e = t.events.clone().unwrap();
    let ledger = Arc::new(Ledger::new(
        t.labels(),
        t.canary_prefix(),
        e.timeout,
        heard.clone(),
    ));
    let f = factory();
    let mut bucket = f.bucket(&t, heard.clone()).await;
    bucket.changes = Some(ledger.clone());
    let route = Route {
        bucket: "notified".into(),
        prefix: t.prefix.clone(),
        ledger: ledger.clone(),
    };
    let client = f.sqs("us-east-1", Some(&s3.endpoint), None).await;
    let token = CancellationToken::new();
    let peer = s3canary::s3::client::sqs_peer("us-east-1", Some(&s3.endpoint));
    let consumer = Consumer::new(
        client,
        peer,
        &queue_url,
        "events",
        vec![route],
        heard.clone(),
    );
    tokio::spawn(consumer.run(token.clone()));
    (s3, t, bucket, ledger, heard, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_notified_once_and_its_delivery_time_measured() {
    let delay = Duration::from_millis(300);
    let (s3, t, bucket, ledger, heard, token) = setup(delay, "1m").await;
    for _ in 0..3 {
        assert!(run_alone(&bucket, &t).await.passed());
    }
    let expected = heard.count(|r| matches!(r, EventReport::Expected(_)));
    // put, overwrite, the conditional re-create and update; the delete step and cleanup.
    assert_eq!(expected, 3 * 6);
    let all = wait_until(Duration::from_secs(20), || async {
        ledger.tick(tokio::time::Instant::now());
        heard.count(|r| matches!(r, EventReport::Delivered { .. })) == expected
    })
    .await;
    assert!(all, "not every notification was delivered");
    let reports = heard.reports.lock().unwrap().clone();
    for r in &reports {
        if let EventReport::Delivered { after, .. } = r {
            // Queued just before S3's answer, visible `delay` later: measured from the answer,
            // at most a few milliseconds less.
            assert!(*after >= delay - Duration::from_millis(50), "{after:?}");
        }
    }
    assert_eq!(
        heard.count(|r| matches!(r, EventReport::Duplicate { .. })),
        0
    );
    // The batch delete follows the reading: wait for it.
    let deleted = wait_until(Duration::from_secs(20), || async {
        s3.queues.len("events") == 0
    })
    .await;
    assert!(deleted, "every notification is deleted once read");
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_notifications_are_lost_after_the_timeout() {
    let (s3, t, bucket, ledger, heard, token) = setup(Duration::ZERO, "2s").await;
    s3.faults.set_bucket(
        "notified",
        FaultConfig {
            drop_events: 1.0,
            ..Default::default()
        },
    );
    assert!(run_alone(&bucket, &t).await.passed());
    let lost = wait_until(Duration::from_secs(20), || async {
        ledger.tick(tokio::time::Instant::now());
        heard.count(|r| matches!(r, EventReport::Lost { .. })) == 6
    })
    .await;
    assert!(lost, "the dropped notifications were not reported lost");
    assert_eq!(
        heard.count(|r| matches!(r, EventReport::Delivered { .. })),
        0
    );
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_about_other_keys_stays_on_the_queue_and_is_counted_once() {
    let (s3, t, bucket, _ledger, heard, token) = setup(Duration::ZERO, "1m").await;
    let foreign = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"notified"},"object":{"key":"app/orders.csv"}}}]}"#;
    s3.queues
        .send("events", foreign.to_string(), Duration::ZERO);
    s3.queues
        .send("events", "not an S3 event".to_string(), Duration::ZERO);
    assert!(run_alone(&bucket, &t).await.passed());
    let counted = wait_until(Duration::from_secs(20), || async {
        heard.foreign.lock().unwrap().len() == 2
    })
    .await;
    assert!(counted, "the foreign messages were not counted");
    // The consumer pauses after a receive of only known foreign messages, then receives
    // them again: they stay, and are not counted twice.
    let requests = |s3: &EmbeddedS3| {
        s3.queues
            .requests()
            .get("ReceiveMessage")
            .copied()
            .unwrap_or(0)
    };
    let before = requests(&s3);
    assert!(
        wait_until(Duration::from_secs(20), || async {
            requests(&s3) >= before + 2
        })
        .await
    );
    assert_eq!(heard.foreign.lock().unwrap().len(), 2);
    let mut left = s3.queues.bodies("events");
    left.sort();
    assert_eq!(
        left,
        vec!["not an S3 event".to_string(), foreign.to_string()]
    );
    token.cancel();
}
