//! The fault layer's named profiles: what `demo --faults`, `POST /-/demo/faults/{profile}`
//! and the suites switch on by name, each one way S3, a store or the path to it misbehaves.

use std::time::Duration;

use super::faults::{FaultConfig, HttpFault, Op};

impl FaultConfig {
    /// A named profile, as `demo --faults` accepts: none, slow, stall (3 s on every request),
    /// flaky, stale, throttled, outage (503), denied (403), hang (GetObject), unreachable (every request
    /// hangs), slow-get (3 s on
    /// GetObject), stale-reads (404 for 60 s after a write), list-lag (listings 60 s behind),
    /// unconditional, lost-events (half of the event notifications never delivered), reset,
    /// kms-throttled, kms-denied, kms-disabled, clock-skew (403 RequestTimeTooSkewed, S3's
    /// clock 20 minutes ahead), wrong-region (301, the bucket in eu-west-1), expired-token,
    /// vpce-denied (writes denied by a VPC endpoint policy), no-trailers (aws-chunked uploads refused),
    /// ignore-checksums (wrong ones accepted), no-checksums (none kept), wrong-checksum, complete-error (CompleteMultipartUpload answers 200
    /// with an `<Error>`), lost-part.
    pub fn profile(name: &str) -> Option<FaultConfig> {
        let ms = Duration::from_millis;
        let f = match name {
            "none" => FaultConfig::default(),
            "slow" => FaultConfig {
                latency: ms(300),
                latency_jitter: ms(400),
                ..Default::default()
            },
            "flaky" => FaultConfig::error("InternalError", 0.2, vec![]),
            "stall" => FaultConfig {
                latency: ms(3000),
                ..Default::default()
            },
            "stale" => FaultConfig {
                stale_after_overwrite: ms(1500),
                list_lag: ms(800),
                read_after_delete: ms(500),
                ..Default::default()
            },
            "throttled" => FaultConfig::error("SlowDown", 0.5, vec![Op::PutObject]),
            "outage" => FaultConfig::error("ServiceUnavailable", 1.0, vec![]),
            "denied" => FaultConfig::error("AccessDenied", 1.0, vec![]),
            "slow-get" => FaultConfig {
                latency: ms(3000),
                latency_ops: vec![Op::GetObject],
                ..Default::default()
            },
            "stale-reads" => FaultConfig {
                stale_after_write: Duration::from_secs(60),
                ..Default::default()
            },
            "list-lag" => FaultConfig {
                list_lag: Duration::from_secs(60),
                ..Default::default()
            },
            "hang" => FaultConfig {
                hang: vec![Op::GetObject],
                ..Default::default()
            },
            "unreachable" => FaultConfig {
                hang: Op::ALL.to_vec(),
                ..Default::default()
            },
            "unconditional" => FaultConfig {
                ignore_conditional: true,
                ..Default::default()
            },
            "lost-events" => FaultConfig {
                drop_events: 0.5,
                ..Default::default()
            },
            "reset" => FaultConfig {
                http: Some((HttpFault::Reset, vec![])),
                http_rate: 0.3,
                ..Default::default()
            },
            "kms-throttled" => FaultConfig::kms_throttled(),
            "kms-denied" => FaultConfig::kms_denied(),
            "kms-disabled" => FaultConfig::kms_disabled(),
            "clock-skew" => FaultConfig::clock_skewed(20 * 60),
            "wrong-region" => FaultConfig::wrong_region("eu-west-1"),
            "expired-token" => FaultConfig::expired_token(),
            "vpce-denied" => FaultConfig::vpce_denied(),
            "no-trailers" => FaultConfig {
                refuse_trailers: true,
                ..Default::default()
            },
            "ignore-checksums" => FaultConfig {
                ignore_checksums: true,
                ..Default::default()
            },
            "no-checksums" => FaultConfig {
                drop_checksums: true,
                ..Default::default()
            },
            "undecoded-trailers" => FaultConfig {
                keep_chunked: true,
                drop_checksums: true,
                ..Default::default()
            },
            "wrong-checksum" => FaultConfig {
                wrong_checksum: true,
                ..Default::default()
            },
            "complete-error" => FaultConfig {
                http: Some((HttpFault::ErrorIn200, vec![Op::CompleteMultipartUpload])),
                ..Default::default()
            },
            "lost-part" => FaultConfig {
                lose_part: true,
                ..Default::default()
            },
            _ => return None,
        };
        let name = FaultConfig::PROFILES.iter().find(|p| **p == name).copied();
        Some(FaultConfig { name, ..f })
    }

    /// Its profile's name: "none" for no faults, "custom" for faults built by hand.
    pub fn label(&self) -> &'static str {
        match self.name {
            Some(n) => n,
            None if *self == FaultConfig::default() => "none",
            None => "custom",
        }
    }

    /// The names [`FaultConfig::profile`] accepts.
    pub const PROFILES: &'static [&'static str] = &[
        "none",
        "slow",
        "stall",
        "flaky",
        "stale",
        "throttled",
        "outage",
        "denied",
        "hang",
        "unreachable",
        "slow-get",
        "stale-reads",
        "list-lag",
        "unconditional",
        "lost-events",
        "reset",
        "kms-throttled",
        "kms-denied",
        "kms-disabled",
        "clock-skew",
        "wrong-region",
        "expired-token",
        "vpce-denied",
        "no-trailers",
        "ignore-checksums",
        "no-checksums",
        "undecoded-trailers",
        "wrong-checksum",
        "complete-error",
        "lost-part",
    ];
}
