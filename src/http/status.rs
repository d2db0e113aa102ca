//! The point-in-time view behind `/` and `/api/v1/status`: the daemon's state, each target's
//! history and each replication pair's canaries in flight.

use std::time::SystemTime;

use serde::Serialize;

use crate::app::Daemon;
use crate::sinks::history::{TargetStatus, WINDOW, ts};

/// A point-in-time view of the daemon.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub version: &'static str,
    pub ready: bool,
    #[serde(serialize_with = "ts")]
    pub generated_at: SystemTime,
    pub window_seconds: u64,
    pub config: ConfigStatus,
    pub cloudwatch: CloudWatchStatus,
    pub shard: ShardStatus,
    pub targets: Vec<TargetStatus>,
    pub replications: Vec<crate::replication::Status>,
}

/// Config load state.
#[derive(Debug, Serialize)]
pub struct ConfigStatus {
    pub last_reload_successful: bool,
    pub last_reload_error: Option<String>,
}

/// Which part of the config this process runs (`run --shard I/N`; 0 of 1 without).
#[derive(Debug, Serialize)]
pub struct ShardStatus {
    pub index: u32,
    pub count: u32,
    /// Targets this shard probes.
    pub targets: usize,
    /// Targets in the config, all shards together.
    pub configured_targets: usize,
}

/// CloudWatch mirror state.
#[derive(Debug, Serialize)]
pub struct CloudWatchStatus {
    pub enabled: bool,
    pub namespace: String,
}

/// Collects the snapshot. It reads the config in place: a copy of it (every target of every
/// shard) for each request to `/` or `/api/v1/status` is what a client polling the page would
/// cost.
pub fn snapshot(d: &Daemon) -> Snapshot {
    d.refresh_gauges();
    let now = SystemTime::now();
    let reload_error = d.reload_error();
    let shard = d.shard();
    let (cloudwatch, shard_status, targets) = d.with_config(|whole| {
        let mine: Vec<TargetStatus> = whole
            .targets
            .iter()
            .filter(|t| shard.owns(t))
            .map(|t| d.history.view(t, now))
            .collect();
        let cloudwatch = CloudWatchStatus {
            enabled: whole.cloudwatch.enabled,
            namespace: whole.cloudwatch.namespace.clone(),
        };
        let shard_status = ShardStatus {
            index: shard.index,
            count: shard.count,
            targets: mine.len(),
            configured_targets: whole.targets.len(),
        };
        (cloudwatch, shard_status, mine)
    });
    Snapshot {
        version: env!("CARGO_PKG_VERSION"),
        ready: d.is_ready(),
        generated_at: now,
        window_seconds: WINDOW.as_secs(),
        config: ConfigStatus {
            last_reload_successful: reload_error.is_none(),
            last_reload_error: reload_error,
        },
        cloudwatch,
        shard: shard_status,
        targets,
        replications: d.replication_status(),
    }
}
