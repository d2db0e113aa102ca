//! The scheduler owns time: when each target's cycles start, how long they may run, and what
//! happens when one is still running at the next tick.
//!
//! Every target has its own loop task, so a slow or hanging target cannot delay another. Start
//! times are spread over the interval by a per-target offset, so a thousand targets with the
//! same interval do not fire at once. Cycles run in their own tasks (tracked by a
//! [`TaskTracker`] so shutdown can wait for their cleanup); a tick that finds the previous cycle
//! still running is skipped and counted, never queued.

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// When a target's cycles run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub interval: Duration,
    /// The hard deadline of a cycle, from its start.
    pub timeout: Duration,
    /// Delay of the first cycle, in `[0, interval)`.
    pub offset: Duration,
}

impl Schedule {
    /// A schedule whose offset is spread over the interval by hashing `name`: stable across
    /// restarts (a target keeps its slot) and uniform over many targets.
    pub fn spread(name: &str, interval: Duration, timeout: Duration) -> Self {
        let mut h = DefaultHasher::new();
        name.hash(&mut h);
        let nanos = interval.as_nanos().max(1) as u64;
        Schedule {
            interval,
            timeout,
            offset: Duration::from_nanos(h.finish() % nanos),
        }
    }
}

/// Extra time a cycle gets past its deadline to clean up before the scheduler abandons it.
pub const CLEANUP_GRACE: Duration = crate::probe::CLEANUP_BUDGET;

/// Runs `cycle` on `schedule` until `token` is cancelled.
///
/// `cycle` receives the deadline of that cycle and a token that is cancelled on shutdown.
/// `skipped` is called for every tick at which the previous cycle was still running. The cycle
/// is dropped if it runs past its deadline plus [`CLEANUP_GRACE`], so even a cycle that ignores
/// its deadline cannot block the target forever.
pub async fn run<F, Fut>(
    schedule: Schedule,
    token: CancellationToken,
    tracker: TaskTracker,
    mut skipped: impl FnMut(),
    mut cycle: F,
) where
    F: FnMut(Instant, CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut ticker = tokio::time::interval_at(Instant::now() + schedule.offset, schedule.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut running: Option<JoinHandle<()>> = None;
    loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => break,
            _ = ticker.tick() => {}
        }
        if running.as_ref().is_some_and(|h| !h.is_finished()) {
            skipped();
            continue;
        }
        let deadline = Instant::now() + schedule.timeout;
        let fut = cycle(deadline, token.clone());
        running = Some(tracker.spawn(async move {
            if tokio::time::timeout_at(deadline + CLEANUP_GRACE, fut)
                .await
                .is_err()
            {
                tracing::error!("cycle abandoned: it ran past its deadline and cleanup grace");
            }
        }));
    }
}
