//! Builds the running daemon from a checked config and owns its life: start, apply a config,
//! reload, shutdown.
//!
//! One [`CancellationToken`] stops everything: loops stop scheduling, in-flight cycles skip
//! their remaining steps and delete their canaries, the HTTP server drains, and a
//! [`TaskTracker`] lets shutdown wait for all of it within a grace period. The loops themselves
//! are the scheduler's; the outputs are the sinks'.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod consumers;
pub mod loops;

use crate::config::{self, Config, Replication, Target};
use crate::events::Ledger;
use crate::replication::Monitor;
use crate::report::{Sink, Sinks};
use crate::s3::{Bucket, ClientFactory};
use crate::shard::Shard;
use crate::sinks::cloudwatch::Mirror;
use crate::sinks::history::History;
use crate::sinks::log::Log;
use crate::sinks::metrics::Metrics;
pub use loops::Loops;

/// How long shutdown waits for in-flight cycles to finish or clean up.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// How long a reload may take to read the config file.
pub const RELOAD_READ_LIMIT: Duration = Duration::from_secs(5);

/// A target's loops, as started.
struct Running {
    target: Target,
    bucket: Bucket,
    token: CancellationToken,
    /// The notifications it expects, with the events probe.
    ledger: Option<Arc<Ledger>>,
}

/// A replication pair's loop, as started.
struct RunningReplication {
    cfg: Replication,
    token: CancellationToken,
    monitor: Arc<Monitor>,
}

/// The daemon's shared state: what the HTTP handlers and signal handlers act on.
pub struct Daemon {
    /// The Prometheus series.
    pub metrics: Arc<Metrics>,
    /// Recent results of each target (for the status page and API).
    pub history: Arc<History>,
    /// The CloudWatch mirror, when `[cloudwatch] enabled`.
    mirror: Option<Arc<Mirror>>,
    factory: ClientFactory,
    loops: Loops,
    config_path: Option<PathBuf>,
    /// The whole config, as loaded; the daemon runs `shard`'s part of it.
    config: RwLock<Config>,
    shard: Shard,
    running: tokio::sync::Mutex<HashMap<String, Running>>,
    replications: Mutex<HashMap<String, RunningReplication>>,
    consumers: tokio::sync::Mutex<HashMap<consumers::QueueKey, consumers::RunningConsumer>>,
    ready: AtomicBool,
    /// The last reload error, if the last reload failed.
    reload_error: Mutex<Option<String>>,
    /// Held while a reload runs, so two never interleave.
    reloading: tokio::sync::Mutex<()>,
}

impl Daemon {
    /// A daemon for `config`, not yet started. `config_path` is re-read on reload (None: the
    /// config is fixed, as in `demo`).
    pub fn new(config: Config, config_path: Option<PathBuf>, factory: ClientFactory) -> Arc<Self> {
        Self::sharded(config, config_path, factory, Shard::WHOLE)
    }

    /// A daemon that runs only `shard`'s part of `config` (and of every reloaded config).
    pub fn sharded(
        config: Config,
        config_path: Option<PathBuf>,
        factory: ClientFactory,
        shard: Shard,
    ) -> Arc<Self> {
        let metrics = Arc::new(Metrics::new(&config.labels));
        metrics.config_loaded(true);
        let history = Arc::new(History::default());
        let mirror = config
            .cloudwatch
            .enabled
            .then(|| Mirror::new(config.cloudwatch.clone(), metrics.clone()));
        let mut sinks: Vec<Arc<dyn Sink>> = vec![metrics.clone(), history.clone(), Arc::new(Log)];
        if let Some(m) = &mirror {
            sinks.push(m.clone());
        }
        Arc::new(Daemon {
            metrics,
            history,
            mirror,
            factory,
            loops: Loops {
                tracker: TaskTracker::new(),
                sink: Arc::new(Sinks::new(sinks)),
                shutdown: CancellationToken::new(),
            },
            config_path,
            config: RwLock::new(config),
            shard,
            running: tokio::sync::Mutex::new(HashMap::new()),
            replications: Mutex::new(HashMap::new()),
            consumers: tokio::sync::Mutex::new(HashMap::new()),
            ready: AtomicBool::new(false),
            reload_error: Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// Which part of the config this daemon runs.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// The token whose cancellation shuts everything down.
    pub fn token(&self) -> &CancellationToken {
        &self.loops.shutdown
    }

    /// True once the config is loaded and every target is scheduled.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// A copy of the config in force.
    pub fn config(&self) -> Config {
        self.config.read().unwrap().clone()
    }

    /// `f` of the config in force, read in place (a reload waits for it).
    pub fn with_config<R>(&self, f: impl FnOnce(&Config) -> R) -> R {
        f(&self.config.read().unwrap())
    }

    /// The error of the last reload, if it failed.
    pub fn reload_error(&self) -> Option<String> {
        self.reload_error.lock().unwrap().clone()
    }

    /// The CloudWatch mirror, when it is on.
    pub fn mirror(&self) -> Option<&Arc<Mirror>> {
        self.mirror.as_ref()
    }

    /// Starts the loops of every configured target.
    pub async fn start(self: &Arc<Self>) {
        let cfg = self.config();
        if let Some(m) = &self.mirror {
            self.start_mirror(m.clone(), &cfg).await;
        }
        self.apply(&cfg).await;
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Brings the running loops in line with `cfg`: starts new targets, restarts changed ones,
    /// stops removed ones and deletes their series.
    async fn apply(self: &Arc<Self>, whole: &Config) {
        let cfg = &self.shard.select(whole);
        if !self.shard.is_whole() {
            tracing::info!(shard = %self.shard, targets = cfg.targets.len(),
                configured = whole.targets.len(), replications = cfg.replications.len(),
                "this shard's part of the config");
        }
        let mut running = self.running.lock().await;
        let wanted: HashMap<&str, &Target> =
            cfg.targets.iter().map(|t| (t.name.as_str(), t)).collect();
        running.retain(|name, r| {
            let keep = wanted.get(name.as_str()) == Some(&&r.target);
            if !keep {
                r.token.cancel();
                self.loops.sink.target_removed(&r.target.labels());
                tracing::info!(target = %name, "target stopped");
            }
            keep
        });
        for t in &cfg.targets {
            if running.contains_key(&t.name) {
                continue;
            }
            let token = self.token().child_token();
            self.loops.sink.target_added(&t.info());
            let mut bucket = self.factory.bucket(t, self.loops.sink.clone()).await;
            let ledger = t.events.as_ref().map(|e| {
                let l = Arc::new(Ledger::new(
                    t.labels(),
                    t.canary_prefix(),
                    e.timeout,
                    self.loops.sink.clone(),
                ));
                self.loops.start_ledger(l.clone(), token.clone());
                l
            });
            bucket.changes = ledger
                .clone()
                .map(|l| l as Arc<dyn crate::s3::ChangeObserver>);
            self.loops
                .start_target(t.clone(), bucket.clone(), token.clone());
            tracing::info!(target = %t.name, bucket = %t.bucket, region = %t.region,
                interval = %humantime::format_duration(t.interval), "target scheduled");
            running.insert(
                t.name.clone(),
                Running {
                    target: t.clone(),
                    bucket,
                    token,
                    ledger,
                },
            );
        }
        self.apply_replications(cfg, &running).await;
        self.apply_consumers(&running).await;
    }

    /// Starts, restarts and stops replication loops to match `cfg` (after the targets). A
    /// pair's destination may be a target of another shard: it then gets a client of its own.
    async fn apply_replications(&self, cfg: &Config, running: &HashMap<String, Running>) {
        let starting: Vec<&Replication> = {
            let mut repls = self.replications.lock().unwrap();
            repls.retain(|name, r| {
                let keep = cfg.replications.contains(&r.cfg);
                if !keep {
                    r.token.cancel();
                    r.monitor.remove_series();
                    tracing::info!(replication = %name, "replication stopped");
                }
                keep
            });
            cfg.replications
                .iter()
                .filter(|c| !repls.contains_key(&c.name))
                .collect()
        };
        for c in starting {
            let source = self.bucket_of(&c.source, running).await;
            let destination = self.bucket_of(&c.destination, running).await;
            let monitor = Monitor::new(c.clone(), source, destination, self.loops.sink.clone());
            let token = self.token().child_token();
            self.loops.start_replication(monitor.clone(), token.clone());
            tracing::info!(replication = %c.name, source = %c.source.bucket,
                destination = %c.destination.bucket,
                interval = %humantime::format_duration(c.interval), "replication scheduled");
            self.replications.lock().unwrap().insert(
                c.name.clone(),
                RunningReplication {
                    cfg: c.clone(),
                    token,
                    monitor,
                },
            );
        }
    }

    /// The running target's bucket client, or a new one for a target of another shard.
    async fn bucket_of(&self, t: &Target, running: &HashMap<String, Running>) -> Bucket {
        match running.get(&t.name) {
            Some(r) => r.bucket.clone(),
            None => self.factory.bucket(t, self.loops.sink.clone()).await,
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

    /// Reports the figures that depend on the time of reading (replication canaries in flight
    /// and their ages); called before every scrape and flush.
    pub fn refresh_gauges(&self) {
        for r in self.replications.lock().unwrap().values() {
            r.monitor.report_pending();
        }
    }

    /// Starts the CloudWatch mirror: a flush every `[cloudwatch] interval` and a sender. On
    /// shutdown the last interval is flushed, then the sender gets 5 s to send it.
    async fn start_mirror(self: &Arc<Self>, mirror: Arc<Mirror>, cfg: &Config) {
        let client =
            crate::sinks::cloudwatch::client(&cfg.cloudwatch, self.factory.credentials.clone())
                .await;
        let sender_token = CancellationToken::new();
        self.loops.tracker.spawn(mirror.clone().run_sender(
            client,
            sender_token.clone(),
            Duration::from_secs(5),
        ));
        let daemon = self.clone();
        let every = cfg.cloudwatch.interval;
        self.loops.start_flush(
            every,
            move || {
                daemon.refresh_gauges();
                mirror.flush(SystemTime::now());
            },
            sender_token,
        );
        tracing::info!(namespace = %cfg.cloudwatch.namespace, region = %cfg.cloudwatch.region,
            interval = %humantime::format_duration(every), "CloudWatch mirror on");
    }

    /// Re-reads the config file; on success applies it, on failure keeps the running config.
    pub async fn reload(self: &Arc<Self>) -> Result<(), String> {
        let Some(path) = &self.config_path else {
            return Err("this daemon has no config file to reload (demo)".into());
        };
        // Serialised, and read off the runtime with a bound: a config on a hung network file
        // system must not stall the daemon or its shutdown.
        let _one_at_a_time = self.reloading.lock().await;
        let read = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || config::load(&path))
        };
        let loaded = match tokio::time::timeout(RELOAD_READ_LIMIT, read).await {
            Ok(Ok(r)) => r.map_err(|e| e.to_string()),
            Ok(Err(e)) => Err(format!("reading {} failed: {e}", path.display())),
            Err(_) => Err(format!(
                "reading {} took longer than {}s",
                path.display(),
                RELOAD_READ_LIMIT.as_secs()
            )),
        };
        match loaded {
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
            Err(msg) => {
                self.metrics.config_loaded(false);
                *self.reload_error.lock().unwrap() = Some(msg.clone());
                tracing::error!("config reload failed, keeping the running config: {msg}");
                Err(msg)
            }
        }
    }

    /// Cancels everything and waits up to `grace` for tasks to finish; true if they all did.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.ready.store(false, Ordering::Relaxed);
        self.loops.shutdown.cancel();
        self.loops.tracker.close();
        tokio::time::timeout(grace, self.loops.tracker.wait())
            .await
            .is_ok()
    }
}
