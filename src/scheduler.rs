//! The scheduler owns time and nothing else: when each target's cycles start, how long they may
//! run, what happens when one is still running at the next tick, and the cadence of every
//! other periodic loop (orphan sweeps, replication canaries, CloudWatch flushes). What those
//! loops do is `app::loops`.
//!
//! Every loop is its own task, so a slow or hanging target cannot delay another. Start times are
//! spread over the interval by a per-name offset, so a thousand targets with the same interval do
//! not fire at once. Cycles run in their own tasks (tracked by a [`TaskTracker`] so shutdown can
//! wait for their cleanup); a tick that finds the previous cycle still running is skipped and
//! counted, never queued. The cadence functions here are the ones `plan` prices.

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Replication, Target};
use crate::probe;

/// When a loop's ticks come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub interval: Duration,
    /// The hard deadline of a cycle, from its start.
    pub timeout: Duration,
    /// Delay of the first tick, in `[0, interval)`.
    pub offset: Duration,
    /// After a failed cycle, the next one starts this long after the failed one started (or
    /// as soon as it ended, if later), until one passes; zero keeps the interval.
    pub confirm: Duration,
}

impl Schedule {
    /// A schedule whose offset is spread over the interval by hashing `name`: stable across
    /// restarts (a target keeps its slot) and uniform over many targets. No confirm cadence.
    pub fn spread(name: &str, interval: Duration, timeout: Duration) -> Self {
        let mut h = DefaultHasher::new();
        name.hash(&mut h);
        let nanos = interval.as_nanos().max(1) as u64;
        Schedule {
            interval,
            timeout,
            offset: Duration::from_nanos(h.finish() % nanos),
            confirm: Duration::ZERO,
        }
    }

    /// The same schedule with a confirm cadence (see [`Schedule::confirm`]).
    pub fn confirming(self, confirm: Duration) -> Self {
        Schedule { confirm, ..self }
    }

    /// The first regular tick after `now`, on the grid `first + k * interval`.
    fn tick_after(&self, first: Instant, now: Instant) -> Instant {
        if now < first {
            return first;
        }
        let k = (now - first).as_nanos() / self.interval.as_nanos().max(1) + 1;
        first + self.interval * u32::try_from(k).unwrap_or(u32::MAX)
    }
}

/// Extra time a cycle gets past its deadline to clean up before the scheduler abandons it.
pub const CLEANUP_GRACE: Duration = probe::CLEANUP_BUDGET;

/// How long a tick waits for the previous cycle to end before it counts a skip. A cycle ends
/// its cleanup before the next tick (see [`probe::run_cycle`]); this absorbs a busy runtime.
pub const TICK_GRACE: Duration = Duration::from_millis(250);

/// How often a target's orphan sweep runs: every half `orphan_ttl`, at least every interval.
pub fn orphan_sweep_interval(t: &Target) -> Duration {
    (t.orphan_ttl / 2).max(t.interval)
}

/// How often a replication pair looks for canaries of an earlier run: every ten intervals, at
/// least every 5 minutes (copies that replicated after their canary was given up).
pub fn replication_sweep_interval(r: &Replication) -> Duration {
    (r.interval * 10).max(Duration::from_secs(300))
}

/// A cycle in flight: its task (which answers whether the cycle passed) and when it started.
struct Running {
    task: JoinHandle<bool>,
    started: Instant,
}

/// Waits for the cycle in flight, if any (forever if none): whether it passed. A cycle that
/// panicked or was abandoned counts as failed.
async fn ended(running: &mut Option<Running>) -> bool {
    match running {
        Some(r) => (&mut r.task).await.unwrap_or(false),
        None => std::future::pending().await,
    }
}

/// When a target's next cycle is due: on the regular grid, or sooner while confirming a
/// failure.
struct Cadence {
    schedule: Schedule,
    first: Instant,
    /// The next regular tick.
    next: Instant,
    /// Whether the last cycle failed and the grid waits for a passing one.
    confirming: bool,
    /// While confirming, when the next cycle is due (None while a confirming cycle runs).
    confirm_at: Option<Instant>,
}

impl Cadence {
    fn new(schedule: Schedule) -> Self {
        let first = Instant::now() + schedule.offset;
        Cadence {
            schedule,
            first,
            next: first,
            confirming: false,
            confirm_at: None,
        }
    }

    /// When to wake for the next start; None while a confirming cycle runs.
    fn wake(&self) -> Option<Instant> {
        if self.confirming {
            self.confirm_at
        } else {
            Some(self.next)
        }
    }

    /// A cycle that started at `started` ended.
    fn ended(&mut self, passed: bool, started: Instant) {
        let now = Instant::now();
        if !passed && !self.schedule.confirm.is_zero() {
            self.confirming = true;
            self.confirm_at = Some((started + self.schedule.confirm).max(now));
        } else if self.confirming {
            self.confirming = false;
            self.confirm_at = None;
            self.next = self.schedule.tick_after(self.first, now);
        }
    }

    /// The due time was reached: a cycle starts, or a regular tick is skipped.
    fn woke(&mut self) {
        self.confirm_at = None;
        if !self.confirming {
            self.next = self.schedule.tick_after(self.first, Instant::now());
        }
    }
}

/// Runs `cycle` on `schedule` until `token` is cancelled.
///
/// `cycle` receives the deadline of that cycle and a token that is cancelled on shutdown, and
/// answers whether the cycle passed. Cycles start on the grid `offset + k * interval`; after
/// a failed cycle (with a non-zero [`Schedule::confirm`]) the grid waits and the next cycle
/// starts `confirm` after the failed one started, or as soon as it ended if that is later,
/// until a cycle passes; then the grid resumes at its next tick. So two consecutive failures
/// are known seconds apart, and the extra requests are spent only while failing.
///
/// `skipped` is called for every regular tick at which the previous cycle was still running
/// after [`TICK_GRACE`]. The cycle is dropped if it runs past its deadline plus
/// [`CLEANUP_GRACE`], so even a cycle that ignores its deadline cannot block the target forever.
pub async fn run<F, Fut>(
    schedule: Schedule,
    token: CancellationToken,
    tracker: TaskTracker,
    mut skipped: impl FnMut(),
    mut cycle: F,
) where
    F: FnMut(Instant, CancellationToken) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let mut cadence = Cadence::new(schedule);
    let mut running: Option<Running> = None;
    loop {
        let wake = cadence.wake();
        tokio::select! {
            biased;
            _ = token.cancelled() => break,
            passed = ended(&mut running), if running.is_some() => {
                let started = running.take().map_or_else(Instant::now, |r| r.started);
                cadence.ended(passed, started);
                continue;
            }
            _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
        }
        if running.is_some() {
            // A regular tick while the last cycle still runs (a confirming wake only comes
            // after it ended): wait a little for it, else skip this tick.
            let waited = tokio::select! {
                biased;
                _ = token.cancelled() => break,
                r = tokio::time::timeout(TICK_GRACE, ended(&mut running)) => r,
            };
            let Ok(passed) = waited else {
                cadence.woke();
                skipped();
                continue;
            };
            let started = running.take().map_or_else(Instant::now, |r| r.started);
            // A failure known only now is confirmed by the cycle this tick starts.
            cadence.ended(passed, started);
        }
        cadence.woke();
        let started = Instant::now();
        let deadline = started + schedule.timeout;
        let fut = cycle(deadline, token.clone());
        let task = tracker.spawn(async move {
            match tokio::time::timeout_at(deadline + CLEANUP_GRACE, fut).await {
                Ok(passed) => passed,
                Err(_) => {
                    tracing::error!("cycle abandoned: it ran past its deadline and cleanup grace");
                    false
                }
            }
        });
        running = Some(Running { task, started });
    }
}

/// Runs `job` at every tick of `schedule` (the first at its offset) until `token` is
/// cancelled. The job runs inline: ticks that pass while it runs are skipped, never queued.
/// `job` gets the number of the tick, 0 for the first.
pub async fn every<F, Fut>(schedule: Schedule, token: CancellationToken, mut job: F)
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticker = tokio::time::interval_at(Instant::now() + schedule.offset, schedule.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    for n in 0.. {
        tokio::select! {
            biased;
            _ = token.cancelled() => break,
            _ = ticker.tick() => {}
        }
        job(n).await;
    }
}
