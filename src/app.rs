//! Builds the running daemon from a checked config and owns its life: start, reload, shutdown.
//!
//! One [`CancellationToken`] stops everything: target loops stop scheduling, in-flight cycles
//! skip their remaining steps and delete their canaries, the HTTP server drains, and a
//! [`TaskTracker`] lets shutdown wait for all of it within a grace period.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{self, Config, Replication, Target};
use crate::metrics::{Metrics, TargetLabels};
use crate::probe::{self, CycleReport};
use crate::replication::Monitor;
use crate::s3::{Bucket, ClientFactory};
use crate::scheduler::{self, Schedule};

/// How long shutdown waits for in-flight cycles to finish or clean up.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// A target's loop, as started.
struct Running {
    target: Target,
    bucket: Bucket,
    token: CancellationToken,
}

/// A replication pair's loop, as started.
struct RunningReplication {
    cfg: Replication,
    source: Target,
    destination: Target,
    token: CancellationToken,
    monitor: Arc<Monitor>,
}

/// The daemon's shared state: what the HTTP handlers and signal handlers act on.
pub struct Daemon {
    pub metrics: Arc<Metrics>,
    factory: ClientFactory,
    token: CancellationToken,
    tracker: TaskTracker,
    config_path: Option<PathBuf>,
    config: RwLock<Config>,
    running: tokio::sync::Mutex<HashMap<String, Running>>,
    replications: Mutex<HashMap<String, RunningReplication>>,
    ready: AtomicBool,
    /// Recent results of each target (for the status page and API).
    pub history: crate::status::History,
    /// The last reload error, if the last reload failed.
    pub reload_error: Mutex<Option<String>>,
    /// The CloudWatch mirror, when `[cloudwatch] enabled`.
    pub mirror: Mutex<Option<Arc<crate::cloudwatch::Mirror>>>,
}

impl Daemon {
    /// A daemon for `config`, not yet started. `config_path` is re-read on reload (None: the
    /// config is fixed, as in `demo`).
    pub fn new(config: Config, config_path: Option<PathBuf>, factory: ClientFactory) -> Arc<Self> {
        let metrics = Arc::new(Metrics::new(&config.labels));
        metrics.config_loaded(true);
        Arc::new(Daemon {
            metrics,
            factory,
            token: CancellationToken::new(),
            tracker: TaskTracker::new(),
            config_path,
            config: RwLock::new(config),
            running: tokio::sync::Mutex::new(HashMap::new()),
            replications: Mutex::new(HashMap::new()),
            ready: AtomicBool::new(false),
            history: Default::default(),
            reload_error: Mutex::new(None),
            mirror: Mutex::new(None),
        })
    }

    /// The token whose cancellation shuts everything down.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// True once the config is loaded and every target is scheduled.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// A copy of the config in force.
    pub fn config(&self) -> Config {
        self.config.read().unwrap().clone()
    }

    /// Starts the loops of every configured target.
    pub async fn start(self: &Arc<Self>) {
        let cfg = self.config();
        if cfg.cloudwatch.enabled {
            self.start_mirror(&cfg).await;
        }
        self.apply(&cfg).await;
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Brings the running loops in line with `cfg`: starts new targets, restarts changed ones,
    /// stops removed ones and deletes their series.
    async fn apply(self: &Arc<Self>, cfg: &Config) {
        let mut running = self.running.lock().await;
        let wanted: HashMap<&str, &Target> =
            cfg.targets.iter().map(|t| (t.name.as_str(), t)).collect();
        let names: Vec<String> = running.keys().cloned().collect();
        for name in names {
            let keep = wanted
                .get(name.as_str())
                .is_some_and(|t| **t == running[&name].target);
            if !keep {
                let r = running.remove(&name).expect("listed above");
                r.token.cancel();
                self.metrics.remove_target(&r.target);
                self.history.remove(&name);
                tracing::info!(target = %name, "target stopped");
            }
        }
        for t in &cfg.targets {
            if running.contains_key(&t.name) {
                continue;
            }
            let token = self.token.child_token();
            self.metrics.init_target(t);
            let bucket = self.factory.bucket(t, self.metrics.clone()).await;
            self.spawn_target(t.clone(), bucket.clone(), token.clone());
            self.spawn_sweeper(t.clone(), bucket.clone(), token.clone());
            tracing::info!(target = %t.name, bucket = %t.bucket, region = %t.region,
                interval = %humantime::format_duration(t.interval), "target scheduled");
            running.insert(
                t.name.clone(),
                Running {
                    target: t.clone(),
                    bucket,
                    token,
                },
            );
        }
        self.apply_replications(cfg, &running);
    }

    /// Starts, restarts and stops replication loops to match `cfg` (after the targets).
    fn apply_replications(self: &Arc<Self>, cfg: &Config, running: &HashMap<String, Running>) {
        let mut repls = self.replications.lock().unwrap();
        let target = |name: &str| cfg.targets.iter().find(|t| t.name == name);
        let names: Vec<String> = repls.keys().cloned().collect();
        for name in names {
            let r = &repls[&name];
            let keep = cfg.replications.contains(&r.cfg)
                && target(&r.cfg.source) == Some(&r.source)
                && target(&r.cfg.destination) == Some(&r.destination);
            if !keep {
                let r = repls.remove(&name).expect("listed above");
                r.token.cancel();
                r.monitor.remove_series();
                tracing::info!(replication = %name, "replication stopped");
            }
        }
        for c in &cfg.replications {
            if repls.contains_key(&c.name) {
                continue;
            }
            let (Some(src), Some(dst)) = (target(&c.source), target(&c.destination)) else {
                continue; // check() guarantees both exist
            };
            let monitor = Monitor::new(
                c.clone(),
                (src, running[&src.name].bucket.clone()),
                (dst, running[&dst.name].bucket.clone()),
                self.metrics.clone(),
            );
            if let Some(m) = self.mirror.lock().unwrap().as_ref() {
                monitor.set_mirror(m.clone());
            }
            let token = self.token.child_token();
            self.tracker
                .spawn(monitor.clone().run(self.tracker.clone(), token.clone()));
            tracing::info!(replication = %c.name, source = %src.bucket, destination = %dst.bucket,
                interval = %humantime::format_duration(c.interval), "replication scheduled");
            repls.insert(
                c.name.clone(),
                RunningReplication {
                    cfg: c.clone(),
                    source: src.clone(),
                    destination: dst.clone(),
                    token,
                    monitor,
                },
            );
        }
    }

    /// The state of every replication pair, sorted by name.
    pub fn replication_status(&self) -> Vec<crate::replication::Status> {
        let mut v: Vec<_> = self
            .replications
            .lock()
            .unwrap()
            .values()
            .map(|r| r.monitor.status())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Updates gauges that depend on the time of reading (replication pending ages).
    pub fn refresh_gauges(&self) {
        for r in self.replications.lock().unwrap().values() {
            r.monitor.refresh_gauges();
        }
    }

    /// Starts the CloudWatch mirror: a flush every `[cloudwatch] interval` and a sender. On
    /// shutdown the flusher closes the last interval, then the sender gets 5 s to send it.
    async fn start_mirror(self: &Arc<Self>, cfg: &Config) {
        let mirror = crate::cloudwatch::Mirror::new(cfg.cloudwatch.clone(), self.metrics.clone());
        let client =
            crate::cloudwatch::client(&cfg.cloudwatch, self.factory.credentials.clone()).await;
        *self.mirror.lock().unwrap() = Some(mirror.clone());
        let sender_token = CancellationToken::new();
        self.tracker.spawn(mirror.clone().run_sender(
            client,
            sender_token.clone(),
            Duration::from_secs(5),
        ));
        let (daemon, every) = (self.clone(), cfg.cloudwatch.interval);
        self.tracker.spawn(async move {
            let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
            loop {
                let stop = tokio::select! {
                    _ = daemon.token.cancelled() => true,
                    _ = ticker.tick() => false,
                };
                let pending: Vec<(String, String, usize)> = daemon
                    .replication_status()
                    .into_iter()
                    .map(|r| (r.source_bucket, r.destination_bucket, r.pending.len()))
                    .collect();
                mirror.flush(SystemTime::now(), &pending);
                if stop {
                    sender_token.cancel();
                    break;
                }
            }
        });
        tracing::info!(namespace = %cfg.cloudwatch.namespace, region = %cfg.cloudwatch.region,
            interval = %humantime::format_duration(every), "CloudWatch mirror on");
    }

    fn spawn_target(self: &Arc<Self>, t: Target, bucket: Bucket, token: CancellationToken) {
        let schedule = Schedule::spread(&t.name, t.interval, t.timeout);
        let labels = TargetLabels::of(&t);
        let daemon = self.clone();
        let tracker = self.tracker.clone();
        let t = Arc::new(t);
        let metrics = self.metrics.clone();
        let skip_labels = labels.clone();
        let loop_token = token.clone();
        self.tracker.spawn(scheduler::run(
            schedule,
            token,
            tracker,
            move || metrics.cycle_skipped(&skip_labels),
            move |deadline: Instant, cycle_token: CancellationToken| {
                let (daemon, t, bucket, labels) =
                    (daemon.clone(), t.clone(), bucket.clone(), labels.clone());
                let loop_token = loop_token.clone();
                async move {
                    let report = probe::run_cycle(&bucket, &t, deadline, &cycle_token).await;
                    // A target removed by a reload has had its series deleted: do not bring
                    // them back. On shutdown (the daemon's token) the figures are still kept.
                    if loop_token.is_cancelled() && !daemon.token.is_cancelled() {
                        return;
                    }
                    daemon.record(&t, &labels, report);
                }
            },
        ));
    }

    fn record(&self, t: &Target, labels: &TargetLabels, report: CycleReport) {
        self.metrics.record_cycle(labels, &report);
        if let Some(m) = self.mirror.lock().unwrap().as_ref() {
            m.record_cycle(t, &report);
        }
        for r in &report.results {
            if let Some(probe::Outcome::Failure(f)) = &r.outcome {
                tracing::warn!(target = %report.target, probe = r.probe.as_str(),
                    reason = f.reason.as_str(), code = ?f.code, request_id = ?f.request_id,
                    key = %report.key, "probe failed: {}", f.message);
            }
        }
        self.history.record(&report);
    }

    /// Deletes canaries of earlier runs at the target's first slot (its spread offset, so a
    /// thousand targets do not all list at once) and then every half `orphan_ttl` (at least
    /// every interval).
    fn spawn_sweeper(self: &Arc<Self>, t: Target, bucket: Bucket, token: CancellationToken) {
        let metrics = self.metrics.clone();
        let every = (t.orphan_ttl / 2).max(t.interval);
        let first = Schedule::spread(&t.name, t.interval, t.timeout).offset;
        self.tracker.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(first) => {}
            }
            loop {
                let budget = t.timeout;
                // Boxed: the sweep's state (SDK futures) is allocated while it runs, not held
                // by the idle loop of every target.
                let sweep = Box::pin(sweep_orphans(&bucket, &t, SystemTime::now()));
                match tokio::time::timeout(budget, sweep).await {
                    Ok(Ok(n)) if n > 0 => {
                        metrics
                            .orphans_deleted
                            .with_label_values(&[&t.name, &t.bucket, &t.region])
                            .inc_by(n as u64);
                        tracing::info!(target = %t.name, deleted = n, "orphan canaries swept");
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(target = %t.name, reason = e.reason.as_str(),
                        code = ?e.code, "orphan sweep failed: {}", e.message),
                    Err(_) => tracing::warn!(target = %t.name, "orphan sweep timed out"),
                }
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        });
    }

    /// Re-reads the config file; on success applies it, on failure keeps the running config.
    pub async fn reload(self: &Arc<Self>) -> Result<(), String> {
        let Some(path) = &self.config_path else {
            return Err("this daemon has no config file to reload (demo)".into());
        };
        match config::load(path) {
            Ok(cfg) => {
                {
                    let old = self.config.read().unwrap();
                    if old.listen != cfg.listen {
                        tracing::warn!("server.listen changed; it takes effect after a restart");
                    }
                    if old.labels != cfg.labels {
                        tracing::warn!("[labels] changed; they take effect after a restart");
                    }
                }
                self.apply(&cfg).await;
                *self.config.write().unwrap() = cfg;
                self.metrics.config_loaded(true);
                *self.reload_error.lock().unwrap() = None;
                tracing::info!(path = %path.display(), "config reloaded");
                Ok(())
            }
            Err(e) => {
                self.metrics.config_loaded(false);
                let msg = e.to_string();
                *self.reload_error.lock().unwrap() = Some(msg.clone());
                tracing::error!("config reload failed, keeping the running config: {msg}");
                Err(msg)
            }
        }
    }

    /// Cancels everything and waits up to `grace` for tasks to finish; true if they all did.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.ready.store(false, Ordering::Relaxed);
        self.token.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// Deletes canaries under `t`'s canary prefix whose key has the canary format and whose write
/// time is older than `orphan_ttl` at `now`. Any other object is never touched. Returns how
/// many were deleted.
pub async fn sweep_orphans(
    bucket: &Bucket,
    t: &Target,
    now: SystemTime,
) -> Result<usize, crate::s3::S3Failure> {
    let mut deleted = 0;
    for (k, written) in probe::list_canaries(bucket, &t.canary_prefix()).await? {
        if now.duration_since(written).unwrap_or_default() > t.orphan_ttl {
            bucket.delete(&k).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Runs one cycle of every target and one canary of every replication pair, all concurrently
/// (for `once`).
pub async fn run_once(
    cfg: &Config,
    factory: &ClientFactory,
) -> (
    Vec<(Target, CycleReport)>,
    Vec<(String, crate::replication::CanaryOutcome)>,
) {
    let metrics = Arc::new(Metrics::new(&cfg.labels));
    let token = CancellationToken::new();
    let mut buckets = HashMap::new();
    for t in &cfg.targets {
        buckets.insert(t.name.clone(), factory.bucket(t, metrics.clone()).await);
    }
    let cycles = cfg.targets.iter().map(|t| {
        let (token, bucket) = (token.clone(), buckets[&t.name].clone());
        async move {
            let report = probe::run_cycle(&bucket, t, Instant::now() + t.timeout, &token).await;
            (t.clone(), report)
        }
    });
    let canaries = cfg.replications.iter().map(|r| {
        let target = |n: &str| cfg.targets.iter().find(|t| t.name == n).expect("checked");
        let (src, dst) = (target(&r.source), target(&r.destination));
        let monitor = Monitor::new(
            r.clone(),
            (src, buckets[&src.name].clone()),
            (dst, buckets[&dst.name].clone()),
            metrics.clone(),
        );
        let token = token.clone();
        async move { (r.name.clone(), monitor.run_canary(&token).await) }
    });
    futures::future::join(
        futures::future::join_all(cycles),
        futures::future::join_all(canaries),
    )
    .await
}
