//! The daemon's loops: a target's cycles and orphan sweeps, an events ledger's clock, a
//! replication pair's canaries, the CloudWatch flush. Each is its own task on the daemon's
//! tracker; when its ticks come is the scheduler's business.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::canary;
use crate::config::Target;
use crate::probe;
use crate::replication::Monitor;
use crate::report::Sink;
use crate::report::or_dash;
use crate::s3::Bucket;
use crate::scheduler::{Schedule, every, orphan_sweep_interval, replication_sweep_interval, run};

/// What the daemon's loops share: where tasks are tracked, where reports go, and the token
/// that shuts the whole daemon down.
#[derive(Clone)]
pub struct Loops {
    pub tracker: TaskTracker,
    pub sink: Arc<dyn Sink>,
    pub shutdown: CancellationToken,
}

impl Loops {
    /// Starts the cycles of `t` on `bucket` and its orphan sweeps, until `token` (a child of
    /// the shutdown token) is cancelled.
    pub fn start_target(&self, t: Target, bucket: Bucket, token: CancellationToken) {
        let t = Arc::new(t);
        self.start_sweeper(t.clone(), bucket.clone(), token.clone());
        if let Some(m) = crate::multipart::Monitor::new(&t) {
            self.start_multipart(t.clone(), Arc::new(m), bucket.clone(), token.clone());
        }
        let schedule =
            Schedule::spread(&t.name, t.interval, t.timeout).confirming(t.confirm_interval);
        let (sink, labels) = (self.sink.clone(), t.labels());
        let (me, loop_token) = (self.clone(), token.clone());
        let durability = crate::durability::Monitor::new(&t, self.sink.clone()).map(Arc::new);
        self.tracker.spawn(run(
            schedule,
            token,
            self.tracker.clone(),
            move || sink.cycle_skipped(&labels),
            move |deadline: Instant, cycle_token: CancellationToken| {
                let (me, t, bucket) = (me.clone(), t.clone(), bucket.clone());
                let loop_token = loop_token.clone();
                let durability = durability.clone();
                async move {
                    let d = durability.as_deref();
                    let report = probe::run_target(&bucket, &t, d, deadline, &cycle_token).await;
                    // A target removed by a reload has had its series deleted: do not bring
                    // them back. On shutdown (the daemon's token) the figures are still kept.
                    if loop_token.is_cancelled() && !me.shutdown.is_cancelled() {
                        return true;
                    }
                    me.sink.cycle(&t.labels(), &report);
                    report.passed()
                }
            },
        ));
    }

    /// The multipart probe of `t`: an upload every `[target.multipart] interval` from the
    /// target's spread slot, and the upload sweep at that slot and every
    /// [`orphan_sweep_interval`], until `token` is cancelled.
    fn start_multipart(
        &self,
        t: Arc<Target>,
        m: Arc<crate::multipart::Monitor>,
        bucket: Bucket,
        token: CancellationToken,
    ) {
        let first = Schedule::spread(&t.name, t.interval, t.timeout).offset;
        let uploads = Schedule {
            interval: m.cfg().interval,
            timeout: m.budget(),
            offset: first,
            confirm: Duration::ZERO,
        };
        let (sink, labels, b) = (self.sink.clone(), t.labels(), bucket.clone());
        let (me, upload_token) = (self.clone(), token.clone());
        self.tracker.spawn(every(uploads, token.clone(), move |_| {
            let (m, b, sink, labels) = (m.clone(), b.clone(), sink.clone(), labels.clone());
            let (me, upload_token) = (me.clone(), upload_token.clone());
            async move {
                let result = Box::pin(m.run(&b, &upload_token)).await;
                // As a cycle's: a removed target's series are not brought back.
                if upload_token.is_cancelled() && !me.shutdown.is_cancelled() {
                    return;
                }
                if result.outcome.is_some() {
                    sink.result(&labels, "", &result);
                }
            }
        }));
        let sweeps = Schedule {
            interval: orphan_sweep_interval(&t),
            timeout: t.timeout,
            offset: first,
            confirm: Duration::ZERO,
        };
        let (sink, me) = (self.sink.clone(), self.clone());
        let sweep_token = token.clone();
        self.tracker.spawn(every(sweeps, token, move |_| {
            let (t, bucket, sink) = (t.clone(), bucket.clone(), sink.clone());
            let (me, sweep_token) = (me.clone(), sweep_token.clone());
            async move {
                let sweep = Box::pin(crate::multipart::sweep::sweep(
                    &bucket,
                    &t,
                    SystemTime::now(),
                ));
                let swept = tokio::time::timeout(t.timeout, sweep).await;
                // A removed target's series are not brought back.
                if sweep_token.is_cancelled() && !me.shutdown.is_cancelled() {
                    return;
                }
                match swept {
                    Ok(Ok(s)) => {
                        if let Some(why) = &s.unsupported {
                            tracing::warn!(target = %t.name, "multipart upload sweep skipped: {why}");
                        }
                        if s.aborted > 0 {
                            tracing::info!(target = %t.name, aborted = s.aborted,
                                "incomplete multipart uploads of earlier runs aborted");
                        }
                        if let Some(why) = &s.abort_error {
                            tracing::warn!(target = %t.name, failed = s.abort_failed,
                                "incomplete multipart uploads of earlier runs could not be aborted: {why}");
                        }
                        sink.uploads_swept(&t.labels(), &s);
                    }
                    Ok(Err(e)) => tracing::warn!(target = %t.name, reason = e.reason.as_str(),
                        code = or_dash(&e.code), "multipart upload sweep failed: {}", e.message),
                    Err(_) => tracing::warn!(target = %t.name, "multipart upload sweep timed out"),
                }
            }
        }));
    }

    /// Every second, reports the notifications `ledger` waited for too long as lost and how
    /// many are pending, until `token` is cancelled.
    pub fn start_ledger(&self, ledger: Arc<crate::events::Ledger>, token: CancellationToken) {
        let schedule = Schedule {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            offset: Duration::from_secs(1),
            confirm: Duration::ZERO,
        };
        self.tracker.spawn(every(schedule, token, move |_| {
            ledger.tick(Instant::now());
            std::future::ready(())
        }));
    }

    /// Deletes canaries of earlier runs at the target's first slot (its spread offset, so a
    /// thousand targets do not all list at once) and then every [`orphan_sweep_interval`].
    fn start_sweeper(&self, t: Arc<Target>, bucket: Bucket, token: CancellationToken) {
        let first = Schedule::spread(&t.name, t.interval, t.timeout).offset;
        let schedule = Schedule {
            interval: orphan_sweep_interval(&t),
            timeout: t.timeout,
            offset: first,
            confirm: Duration::ZERO,
        };
        let sink = self.sink.clone();
        self.tracker.spawn(every(schedule, token, move |_| {
            let (t, bucket, sink) = (t.clone(), bucket.clone(), sink.clone());
            async move {
                // Boxed: the sweep's state (SDK futures) is allocated while it runs, not held
                // by the idle loop of every target.
                let sweep = Box::pin(canary::sweep_orphans(&bucket, &t, SystemTime::now()));
                match tokio::time::timeout(t.timeout, sweep).await {
                    Ok(Ok(n)) if n > 0 => {
                        sink.orphans_swept(&t.labels(), n as u64);
                        tracing::info!(target = %t.name, deleted = n, "orphan canaries swept");
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(target = %t.name, reason = e.reason.as_str(),
                        code = or_dash(&e.code), "orphan sweep failed: {}", e.message),
                    Err(_) => tracing::warn!(target = %t.name, "orphan sweep timed out"),
                }
            }
        }));
    }

    /// Looks for canaries of an earlier run at once, then writes a canary of `m`'s pair every
    /// interval (from the pair's spread slot) until `token` is cancelled, looking again every
    /// [`replication_sweep_interval`].
    pub fn start_replication(&self, m: Arc<Monitor>, token: CancellationToken) {
        let schedule = Schedule::spread(&m.cfg.name, m.cfg.interval, m.cfg.timeout);
        let sweep_every = replication_sweep_interval(&m.cfg);
        let tracker = self.tracker.clone();
        self.tracker.spawn(async move {
            m.sweep(&tracker, &token).await;
            let mut next_sweep = Instant::now() + sweep_every;
            every(schedule, token.clone(), move |_| {
                let sweep = Instant::now() >= next_sweep;
                if sweep {
                    next_sweep = Instant::now() + sweep_every;
                }
                let (m, tracker, token) = (m.clone(), tracker.clone(), token.clone());
                async move {
                    if sweep {
                        m.sweep(&tracker, &token).await;
                    }
                    m.start_canary(&tracker, &token);
                }
            })
            .await;
        });
    }

    /// Calls `flush` every `interval` (first after one interval) and once more on shutdown,
    /// then cancels `after_last`.
    pub fn start_flush(
        &self,
        interval: Duration,
        flush: impl Fn() + Send + Sync + 'static,
        after_last: CancellationToken,
    ) {
        let schedule = Schedule {
            interval,
            timeout: interval,
            offset: interval,
            confirm: Duration::ZERO,
        };
        let token = self.shutdown.clone();
        self.tracker.spawn(async move {
            every(schedule, token, |_| {
                flush();
                std::future::ready(())
            })
            .await;
            flush();
            after_last.cancel();
        });
    }
}
