//! The notifications one target expects: every write and delete of a canary key expects one
//! matching event on the queue. A change is registered before it is sent (its event can arrive
//! before S3's answer), becomes expected when acknowledged, and is then delivered, lost after
//! the timeout, or followed by duplicates.
//!
//! Matching is by key and kind, in order: the n-th notification of a kind for a key answers the
//! n-th acknowledged change of that kind. A change whose answer was lost (a timeout or a 5xx)
//! may have happened: its notification is welcome but not owed. A key is remembered for one
//! timeout after its last change, so late duplicates are still recognised.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::canary;
use crate::report::{
    EventKind, EventReport, Failure, Probe, ProbeResult, Reason, Sink, TargetLabels,
};
use crate::s3::{Change, ChangeObserver, Outcome};

fn kind(c: Change) -> EventKind {
    match c {
        Change::Created => EventKind::ObjectCreated,
        Change::Removed => EventKind::ObjectRemoved,
    }
}

/// One change of a key, sent or acknowledged.
#[derive(Debug)]
struct Expect {
    token: u64,
    /// When S3 acknowledged it; None while its answer is awaited.
    acked_at: Option<Instant>,
    /// When its notification arrived, if before the acknowledgement.
    early: Option<Instant>,
}

/// The changes of one kind of one key.
#[derive(Debug, Default)]
struct Track {
    owed: VecDeque<Expect>,
    /// Changes whose answer was lost: they may have happened.
    maybe: u32,
}

#[derive(Debug, Default)]
struct KeyState {
    tracks: [Track; 2],
    last: Option<Instant>,
}

impl KeyState {
    fn track(&mut self, c: Change) -> &mut Track {
        &mut self.tracks[c as usize]
    }
}

#[derive(Debug, Default)]
struct State {
    next_token: u64,
    tokens: HashMap<u64, (String, Change)>,
    keys: HashMap<String, KeyState>,
}

/// What a received notification was, for the consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// It answered an expected change (or a change that may have happened).
    Matched,
    /// It repeated a notification already received.
    Duplicate,
    /// A canary of this target the ledger does not know: written before this process
    /// started, or forgotten one timeout after its last change.
    Unknown,
}

/// The expected notifications of one target.
pub struct Ledger {
    labels: TargetLabels,
    /// `<prefix><target>/`: the keys whose changes are expected.
    canaries: String,
    timeout: Duration,
    sink: Arc<dyn Sink>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("target", &self.labels.target)
            .field("canaries", &self.canaries)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// A ledger for the canaries under `canaries`, reporting to `sink`.
    pub fn new(
        labels: TargetLabels,
        canaries: String,
        timeout: Duration,
        sink: Arc<dyn Sink>,
    ) -> Self {
        Ledger {
            labels,
            canaries,
            timeout,
            sink,
            state: Mutex::default(),
        }
    }

    /// The key space whose changes this ledger expects.
    pub fn canaries(&self) -> &str {
        &self.canaries
    }

    /// Reports `r` and, when it resolves a notification, the run of the events probe it ends:
    /// a delivery passes and a loss fails, each taking the time since the acknowledgement; a
    /// duplicate fails at once. The one place where the events probe's outcome is decided.
    fn report(&self, r: EventReport) {
        self.sink.event(&self.labels, &r);
        let (key, result, took) = match &r {
            EventReport::Expected(_) => return,
            EventReport::Delivered { after, key, .. } => (key, Ok(()), *after),
            EventReport::Lost { kind, key, after } => {
                let why = format!(
                    "{} notification of {key} not received {} after S3 acknowledged the change",
                    kind.as_str(),
                    humantime::format_duration(Duration::from_secs(after.as_secs()))
                );
                (key, Err(Failure::local(Reason::EventLost, why)), *after)
            }
            EventReport::Duplicate { kind, key } => {
                let why = format!("{} notification of {key} received again", kind.as_str());
                let failure = Failure::local(Reason::EventDuplicate, why);
                (key, Err(failure), Duration::ZERO)
            }
        };
        let run = ProbeResult::ran(Probe::Events, result, took);
        self.sink.result(&self.labels, key, &run);
    }

    /// A notification of `change` to `key` arrived at `at`.
    pub fn received(&self, key: &str, change: Change, at: Instant) -> Received {
        let mut st = self.state.lock().unwrap();
        let Some(k) = st.keys.get_mut(key) else {
            return Received::Unknown;
        };
        k.last = Some(at);
        let t = k.track(change);
        if let Some(i) = t.owed.iter().position(|e| e.early.is_none()) {
            let e = &mut t.owed[i];
            match e.acked_at {
                Some(acked) => {
                    t.owed.remove(i);
                    drop(st);
                    self.report(EventReport::Delivered {
                        kind: kind(change),
                        after: at.saturating_duration_since(acked),
                        key: key.to_string(),
                    });
                }
                None => e.early = Some(at),
            }
            return Received::Matched;
        }
        if t.maybe > 0 {
            t.maybe -= 1;
            return Received::Matched;
        }
        drop(st);
        self.report(EventReport::Duplicate {
            kind: kind(change),
            key: key.to_string(),
        });
        Received::Duplicate
    }

    /// Reports expected notifications older than the timeout as lost, forgets keys quiet for
    /// a timeout, and reports how many are pending and the age of the oldest.
    pub fn tick(&self, now: Instant) {
        self.expire(now, self.timeout);
    }

    /// Reports every acknowledged notification not yet received as lost now: `once`, which
    /// waits less than a long events timeout, ends its wait with this.
    pub fn give_up(&self) {
        self.expire(Instant::now(), Duration::ZERO);
    }

    /// [`Ledger::tick`] with acknowledged changes older than `limit` lost.
    fn expire(&self, now: Instant, limit: Duration) {
        let mut lost = Vec::new();
        let (mut pending, mut oldest) = (0usize, Duration::ZERO);
        {
            let mut st = self.state.lock().unwrap();
            let State { tokens, keys, .. } = &mut *st;
            keys.retain(|key, k| {
                for (i, change) in [Change::Created, Change::Removed].into_iter().enumerate() {
                    let t = &mut k.tracks[i];
                    let active = k
                        .last
                        .is_none_or(|l| now.saturating_duration_since(l) <= self.timeout);
                    t.owed.retain(|e| match e.acked_at {
                        Some(acked)
                            if limit.is_zero() || now.saturating_duration_since(acked) > limit =>
                        {
                            let after = now.saturating_duration_since(acked);
                            lost.push((kind(change), key.clone(), after));
                            false
                        }
                        Some(acked) => {
                            pending += 1;
                            oldest = oldest.max(now.saturating_duration_since(acked));
                            true
                        }
                        // An answer awaited for longer than the timeout will not come.
                        None if active => true,
                        None => {
                            tokens.remove(&e.token);
                            false
                        }
                    });
                }
                let quiet = k
                    .last
                    .is_none_or(|l| now.saturating_duration_since(l) > self.timeout);
                !(quiet && k.tracks.iter().all(|t| t.owed.is_empty()))
            });
        }
        for (kind, key, after) in lost {
            self.report(EventReport::Lost { kind, key, after });
        }
        self.sink.events_pending(&self.labels, pending, oldest);
    }

    /// Whether `key` is one of this target's canaries written before `since` (a notification
    /// of an earlier process, consumed without judging it).
    pub fn is_earlier_canary(&self, key: &str, since: SystemTime) -> bool {
        canary::parse_key(&self.canaries, key).is_some_and(|written| written < since)
    }
}

impl ChangeObserver for Ledger {
    fn sending(&self, key: &str, change: Change) -> u64 {
        if !key.starts_with(&self.canaries) {
            return 0;
        }
        let mut st = self.state.lock().unwrap();
        st.next_token += 1;
        let token = st.next_token;
        st.tokens.insert(token, (key.to_string(), change));
        let k = st.keys.entry(key.to_string()).or_default();
        k.last = Some(Instant::now());
        k.track(change).owed.push_back(Expect {
            token,
            acked_at: None,
            early: None,
        });
        token
    }

    fn answered(&self, token: u64, outcome: Outcome) {
        let now = Instant::now();
        let mut st = self.state.lock().unwrap();
        let Some((key, change)) = st.tokens.remove(&token) else {
            return;
        };
        let Some(k) = st.keys.get_mut(&key) else {
            return;
        };
        k.last = Some(now);
        let t = k.track(change);
        let Some(i) = t.owed.iter().position(|e| e.token == token) else {
            return;
        };
        let mut reports = Vec::new();
        match outcome {
            Outcome::Done => {
                reports.push(EventReport::Expected(kind(change)));
                match t.owed[i].early {
                    Some(_) => {
                        t.owed.remove(i);
                        reports.push(EventReport::Delivered {
                            kind: kind(change),
                            after: Duration::ZERO,
                            key: key.clone(),
                        });
                    }
                    None => t.owed[i].acked_at = Some(now),
                }
            }
            // Nothing changed, so no notification is owed.
            Outcome::Refused => {
                t.owed.remove(i);
            }
            Outcome::Unknown => {
                if t.owed.remove(i).is_some_and(|e| e.early.is_none()) {
                    t.maybe += 1;
                }
            }
        }
        drop(st);
        for r in reports {
            self.report(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that keeps what the ledger reports.
    #[derive(Default)]
    struct Kept(Mutex<Vec<EventReport>>, Mutex<(usize, Duration)>);

    impl Sink for Kept {
        fn event(&self, _t: &TargetLabels, r: &EventReport) {
            self.0.lock().unwrap().push(r.clone());
        }
        fn events_pending(&self, _t: &TargetLabels, count: usize, oldest: Duration) {
            *self.1.lock().unwrap() = (count, oldest);
        }
    }

    fn ledger() -> (Ledger, Arc<Kept>) {
        let kept = Arc::new(Kept::default());
        let labels = TargetLabels {
            target: "t".into(),
            bucket: "b".into(),
            region: "us-east-1".into(),
        };
        let l = Ledger::new(labels, "p/t/".into(), Duration::from_secs(60), kept.clone());
        (l, kept)
    }

    fn delivered(kept: &Kept) -> Vec<Duration> {
        let reports = kept.0.lock().unwrap();
        reports
            .iter()
            .filter_map(|r| match r {
                EventReport::Delivered { after, .. } => Some(*after),
                _ => None,
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn each_acknowledged_change_expects_one_notification_in_order() {
        let (l, kept) = ledger();
        let a = l.sending("p/t/1-a", Change::Created);
        l.answered(a, Outcome::Done);
        let b = l.sending("p/t/1-a", Change::Created);
        l.answered(b, Outcome::Done);
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(
            l.received("p/t/1-a", Change::Created, Instant::now()),
            Received::Matched
        );
        l.tick(Instant::now());
        assert_eq!(kept.1.lock().unwrap().0, 1, "one still pending");
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(
            l.received("p/t/1-a", Change::Created, Instant::now()),
            Received::Matched
        );
        assert_eq!(
            delivered(&kept),
            vec![Duration::from_millis(300), Duration::from_millis(500)]
        );
        // A third is a duplicate; a removal was never made, so one is a duplicate too.
        assert_eq!(
            l.received("p/t/1-a", Change::Created, Instant::now()),
            Received::Duplicate
        );
        assert_eq!(
            l.received("p/t/1-a", Change::Removed, Instant::now()),
            Received::Duplicate
        );
        assert_eq!(
            l.received("p/t/9-z", Change::Created, Instant::now()),
            Received::Unknown
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_notification_before_the_answer_counts_as_delivered_at_once() {
        let (l, kept) = ledger();
        let a = l.sending("p/t/1-a", Change::Removed);
        assert_eq!(
            l.received("p/t/1-a", Change::Removed, Instant::now()),
            Received::Matched
        );
        tokio::time::advance(Duration::from_millis(50)).await;
        l.answered(a, Outcome::Done);
        assert_eq!(delivered(&kept), vec![Duration::ZERO]);
    }

    #[tokio::test(start_paused = true)]
    async fn unanswered_changes_may_notify_refused_ones_owe_nothing_and_the_rest_is_lost() {
        let (l, kept) = ledger();
        let unknown = l.sending("p/t/1-a", Change::Created);
        l.answered(unknown, Outcome::Unknown);
        let refused = l.sending("p/t/1-a", Change::Created);
        l.answered(refused, Outcome::Refused);
        let owed = l.sending("p/t/1-a", Change::Removed);
        l.answered(owed, Outcome::Done);
        // The unknown write landed: its notification is welcome, not a duplicate.
        assert_eq!(
            l.received("p/t/1-a", Change::Created, Instant::now()),
            Received::Matched
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        l.tick(Instant::now());
        assert_eq!(*kept.1.lock().unwrap(), (1, Duration::from_secs(30)));
        tokio::time::advance(Duration::from_secs(31)).await;
        l.tick(Instant::now());
        let lost: Vec<EventReport> = kept
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|r| matches!(r, EventReport::Lost { .. }))
            .cloned()
            .collect();
        assert_eq!(
            lost,
            vec![EventReport::Lost {
                kind: EventKind::ObjectRemoved,
                key: "p/t/1-a".into(),
                after: Duration::from_secs(61),
            }]
        );
        assert_eq!(*kept.1.lock().unwrap(), (0, Duration::ZERO));
        // Keys outside the canaries are not tracked.
        assert_eq!(l.sending("p/replication/r/1-a", Change::Created), 0);
    }
}
