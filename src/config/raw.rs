//! The config file as written: serde structs that reject unknown keys, and the defaults of
//! every key as named functions. Required keys default to empty; the check step says they
//! are missing.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::report::Probe;

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

/// A size in bytes: an integer, or a string with a unit ("5MiB", "8 MiB", "512KiB", "6MB").
pub(super) fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let at = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(at);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected a number and a unit like \"5MiB\""))?;
    let unit_bytes: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        other => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {other:?} (B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    n.checked_mul(unit_bytes)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

fn de_opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Bytes(n) => Ok(Some(n)),
        Size::Text(s) => parse_size(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

fn default_listen() -> String {
    "0.0.0.0:9340".to_string()
}
fn default_interval() -> Duration {
    Duration::from_secs(30)
}
/// After a failed cycle, how soon the next one runs (until one passes).
fn default_confirm_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_prefix() -> String {
    "s3canary/".to_string()
}
fn default_object_size() -> u64 {
    1024
}
fn default_probes() -> Vec<String> {
    Probe::DEFAULTS
        .iter()
        .map(|p| p.as_str().to_string())
        .collect()
}
fn default_orphan_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn default_replication_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_replication_timeout() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_cw_region() -> String {
    "us-east-1".to_string()
}
fn default_cw_namespace() -> String {
    "S3/Consistency".to_string()
}
fn default_cw_interval() -> Duration {
    Duration::from_secs(60)
}

/// The file as parsed, before `check()`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, rename = "target")]
    pub targets: Vec<RawTarget>,
    #[serde(default, rename = "replication")]
    pub replications: Vec<RawReplication>,
    #[serde(default)]
    pub cloudwatch: CloudWatchSection,
    /// The config file's folder: files the config names (`ca_file`) are relative to it.
    #[serde(skip)]
    pub dir: Option<std::path::PathBuf>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// TLS and basic auth for the HTTP server (exporter-toolkit web-config format).
    pub web_config_file: Option<std::path::PathBuf>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: default_listen(),
            web_config_file: None,
        }
    }
}

/// `[defaults]`: every key may be overridden per target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default = "default_interval", deserialize_with = "de_duration")]
    pub interval: Duration,
    #[serde(default = "default_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
    #[serde(default = "default_prefix")]
    pub prefix: String,
    #[serde(default = "default_object_size")]
    pub object_size: u64,
    #[serde(default = "default_probes")]
    pub probes: Vec<String>,
    #[serde(default = "default_orphan_ttl", deserialize_with = "de_duration")]
    pub orphan_ttl: Duration,
    #[serde(default = "default_confirm_interval", deserialize_with = "de_duration")]
    pub confirm_interval: Duration,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            interval: default_interval(),
            timeout: default_timeout(),
            prefix: default_prefix(),
            object_size: default_object_size(),
            probes: default_probes(),
            orphan_ttl: default_orphan_ttl(),
            confirm_interval: default_confirm_interval(),
        }
    }
}

/// `[[target]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    // Required keys default to empty so a missing one is reported by the check step with
    // every other problem (an empty value is reported as missing).
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub bucket: String,
    #[serde(default)]
    pub region: String,
    pub endpoint: Option<String>,
    #[serde(default)]
    pub path_style: bool,
    pub role_arn: Option<String>,
    /// PEM roots for a private endpoint's TLS, added to the system's (relative to the config
    /// file's folder when relative).
    pub ca_file: Option<std::path::PathBuf>,
    pub sse: Option<String>,
    pub kms_key_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub confirm_interval: Option<Duration>,
    pub prefix: Option<String>,
    pub object_size: Option<u64>,
    pub probes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub orphan_ttl: Option<Duration>,
    pub events: Option<RawEvents>,
    pub cdn: Option<RawCdn>,
    pub durability: Option<RawDurability>,
    pub multipart: Option<RawMultipart>,
    pub checksum: Option<RawChecksum>,
}

/// `[target.multipart]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMultipart {
    pub parts: Option<u32>,
    #[serde(default, deserialize_with = "de_opt_size")]
    pub part_size: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub interval: Option<Duration>,
}

/// `[target.checksum]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChecksum {
    pub algorithms: Option<Vec<String>>,
}

/// `[target.durability]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDurability {
    pub objects: Option<u32>,
}

/// `[target.cdn]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCdn {
    #[serde(default)]
    pub url: String,
}

/// `[target.events]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvents {
    #[serde(default)]
    pub queue_url: String,
    pub via: Option<String>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
    pub endpoint: Option<String>,
}

/// `[[replication]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReplication {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub destination: String,
    #[serde(
        default = "default_replication_interval",
        deserialize_with = "de_duration"
    )]
    pub interval: Duration,
    #[serde(
        default = "default_replication_timeout",
        deserialize_with = "de_duration"
    )]
    pub timeout: Duration,
}

/// `[cloudwatch]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchSection {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_cw_region")]
    pub region: String,
    #[serde(default = "default_cw_namespace")]
    pub namespace: String,
    #[serde(default = "default_cw_interval", deserialize_with = "de_duration")]
    pub interval: Duration,
    pub endpoint: Option<String>,
    /// Publish with 1-second storage resolution (high-resolution custom metrics).
    #[serde(default)]
    pub high_resolution: bool,
}

impl Default for CloudWatchSection {
    fn default() -> Self {
        CloudWatchSection {
            enabled: false,
            region: default_cw_region(),
            namespace: default_cw_namespace(),
            interval: default_cw_interval(),
            endpoint: None,
            high_resolution: false,
        }
    }
}
