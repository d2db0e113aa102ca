//! Configuration: strict TOML, named defaults, and a separate [`RawConfig::check`] step that
//! reports every problem at once with its key path.
//!
//! Parsing (`serde`, `deny_unknown_fields`) rejects unknown keys and wrong types with the line
//! they are on; `check()` then validates meaning (timeouts shorter than intervals, names,
//! references between sections) and turns the raw tree into a resolved [`Config`] in which every
//! target carries its effective settings.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Default location of the config file.
pub const DEFAULT_PATH: &str = "/etc/s3canary/s3canary.toml";

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema (unknown key, wrong type).
    #[error("invalid config {path}:\n  - {message}")]
    Parse { path: PathBuf, message: String },
    /// The file parsed but its values are inconsistent; every problem is listed.
    #[error("invalid config {path}:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

impl ConfigError {
    /// The individual problems, one line each (what tests compare against testdata).
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Read { source, .. } => vec![source.to_string()],
            ConfigError::Parse { message, .. } => vec![message.clone()],
            ConfigError::Invalid { problems, .. } => problems.clone(),
        }
    }
}

/// One step of a probe cycle, in the order the cycle runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    Put,
    Get,
    List,
    Overwrite,
    Delete,
    Conditional,
}

impl Probe {
    /// Every probe, in cycle order.
    pub const ALL: [Probe; 6] = [
        Probe::Put,
        Probe::Get,
        Probe::List,
        Probe::Overwrite,
        Probe::Delete,
        Probe::Conditional,
    ];

    /// The name used in config and in the `probe` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Probe::Put => "put",
            Probe::Get => "get",
            Probe::List => "list",
            Probe::Overwrite => "overwrite",
            Probe::Delete => "delete",
            Probe::Conditional => "conditional",
        }
    }

    fn parse(s: &str) -> Option<Probe> {
        Probe::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Server-side encryption requested on canary writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    Aes256,
    Kms { key_id: Option<String> },
}

// ---------------------------------------------------------------------------------------------
// Raw, as written in the file.

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

fn default_listen() -> String {
    "0.0.0.0:9340".to_string()
}
fn default_interval() -> Duration {
    Duration::from_secs(30)
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
    Probe::ALL.iter().map(|p| p.as_str().to_string()).collect()
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
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    #[serde(default = "default_listen")]
    pub listen: String,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: default_listen(),
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
        }
    }
}

/// `[[target]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub name: String,
    pub bucket: String,
    pub region: String,
    pub endpoint: Option<String>,
    #[serde(default)]
    pub path_style: bool,
    pub role_arn: Option<String>,
    pub sse: Option<String>,
    pub kms_key_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
    pub prefix: Option<String>,
    pub object_size: Option<u64>,
    pub probes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub orphan_ttl: Option<Duration>,
}

/// `[[replication]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReplication {
    pub name: String,
    pub source: String,
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

// ---------------------------------------------------------------------------------------------
// Resolved, after check().

/// A checked config: every target carries its effective settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub labels: BTreeMap<String, String>,
    pub targets: Vec<Target>,
    pub replications: Vec<Replication>,
    pub cloudwatch: CloudWatchSection,
}

/// One bucket to probe, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub bucket: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub path_style: bool,
    pub role_arn: Option<String>,
    pub sse: Option<Sse>,
    pub interval: Duration,
    pub timeout: Duration,
    pub prefix: String,
    pub object_size: u64,
    /// Enabled probes, in cycle order, without duplicates.
    pub probes: Vec<Probe>,
    pub orphan_ttl: Duration,
}

impl Target {
    /// The key space of this target's probe canaries: `<prefix><target>/`.
    pub fn canary_prefix(&self) -> String {
        format!("{}{}/", self.prefix, self.name)
    }

    /// Whether `probe` is enabled for this target.
    pub fn runs(&self, probe: Probe) -> bool {
        self.probes.contains(&probe)
    }
}

/// A replication pair, resolved to its two targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Replication {
    pub name: String,
    pub source: String,
    pub destination: String,
    pub interval: Duration,
    pub timeout: Duration,
}

/// Largest canary body accepted: probes should be cheap, and a single PUT is limited anyway.
pub const MAX_OBJECT_SIZE: u64 = 16 * 1024 * 1024;

/// Smallest canary body: enough for a header naming the key and version plus random bytes,
/// so two versions never have the same bytes by chance.
pub const MIN_OBJECT_SIZE: u64 = 64;

/// Label names the daemon sets itself; `[labels]` may not reuse them.
const RESERVED_LABELS: &[&str] = &[
    "target",
    "bucket",
    "region",
    "probe",
    "reason",
    "operation",
    "code",
    "check",
    "replication",
    "source_bucket",
    "source_region",
    "destination_bucket",
    "destination_region",
    "result",
    "version",
    "job",
    "instance",
];

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and checks `text`; `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: describe_toml_error(text, &e),
    })?;
    raw.check().map_err(|problems| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    })
}

/// One line naming the key path and line: "target[0].bukket (line 5): unknown field ...".
/// (toml's own rendering spans several lines and has no key path.)
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else { return message };
    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
    match key_path_at(text, line) {
        Some(path) => format!("{path} (line {line}): {message}"),
        None => format!("line {line}: {message}"),
    }
}

/// The dotted key path of a `key = value` line, from the table headers above it
/// (`[[target]]` headers are counted, so the second target's keys are `target[1].key`).
fn key_path_at(text: &str, line: usize) -> Option<String> {
    let mut section = String::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for l in text.lines().take(line.saturating_sub(1)) {
        let l = l.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let n = counts.entry(name.trim().to_string()).or_insert(0);
            section = format!("{}[{n}]", name.trim());
            *n += 1;
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.split(']').next()) {
            section = name.trim().to_string();
        }
    }
    let (key, _) = text.lines().nth(line - 1)?.split_once('=')?;
    let key = key.trim();
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return None;
    }
    Some(if section.is_empty() {
        key.to_string()
    } else {
        format!("{section}.{key}")
    })
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// S3 bucket naming rules (general purpose buckets), loosely: 3-63 chars of [a-z0-9.-],
/// starting and ending with a letter or digit.
fn valid_bucket(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !s.contains("..")
}

/// AWS region shape (`us-east-1`, `eu-central-2`, `us-gov-west-1`); S3-compatible stores with
/// a custom endpoint may use any lowercase token (`auto`, `garage`, ...).
fn valid_region(s: &str, has_endpoint: bool) -> bool {
    if has_endpoint {
        return valid_name(s);
    }
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

fn check_endpoint(s: &str) -> Result<(), String> {
    let uri: http::Uri = s.parse().map_err(|e| format!("is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err("must start with http:// or https://".to_string()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host".to_string());
    }
    Ok(())
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

fn fmt_d(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Shared checks for the settings that `[defaults]` and a `[[target]]` both carry.
struct Settings<'a> {
    interval: Duration,
    timeout: Duration,
    prefix: &'a str,
    object_size: u64,
    probes: &'a [String],
    orphan_ttl: Duration,
}

impl Settings<'_> {
    /// Problems with these settings; `at` is the key path of the section ("defaults",
    /// "target[1]"), `own` says which keys this section sets itself (others are inherited and
    /// already reported under `defaults`).
    fn check(&self, at: &str, own: impl Fn(&str) -> bool, problems: &mut Vec<String>) {
        if own("interval") && self.interval < Duration::from_secs(1) {
            problems.push(format!(
                "{at}.interval ({}) must be at least 1s",
                fmt_d(self.interval)
            ));
        }
        if own("timeout") && self.timeout.is_zero() {
            problems.push(format!("{at}.timeout must be greater than 0"));
        }
        if (own("timeout") || own("interval")) && self.timeout >= self.interval {
            problems.push(format!(
                "{at}.timeout ({}) must be shorter than interval ({})",
                fmt_d(self.timeout),
                fmt_d(self.interval)
            ));
        }
        if own("prefix") {
            if self.prefix.is_empty() {
                problems.push(format!(
                    "{at}.prefix must not be empty: the daemon only ever touches keys under it"
                ));
            } else if !self.prefix.ends_with('/') {
                problems.push(format!(
                    "{at}.prefix ({:?}) must end with \"/\"",
                    self.prefix
                ));
            } else if self.prefix.starts_with('/') {
                problems.push(format!(
                    "{at}.prefix ({:?}) must not start with \"/\"",
                    self.prefix
                ));
            }
        }
        if own("object_size") && !(MIN_OBJECT_SIZE..=MAX_OBJECT_SIZE).contains(&self.object_size) {
            problems.push(format!(
                "{at}.object_size ({}) must be between {MIN_OBJECT_SIZE} and {MAX_OBJECT_SIZE} bytes",
                self.object_size
            ));
        }
        if own("probes") {
            if self.probes.is_empty() {
                problems.push(format!("{at}.probes must name at least one probe"));
            }
            let mut seen = HashSet::new();
            for p in self.probes {
                match Probe::parse(p) {
                    None => problems.push(format!(
                        "{at}.probes: unknown probe {p:?} (known: put, get, list, overwrite, delete, conditional)"
                    )),
                    Some(probe) if !seen.insert(probe) => {
                        problems.push(format!("{at}.probes: {p:?} is listed twice"))
                    }
                    Some(_) => {}
                }
            }
            if !seen.is_empty() && !seen.contains(&Probe::Put) {
                problems.push(format!(
                    "{at}.probes must include \"put\": every other probe reads the canary it writes"
                ));
            }
        }
        if (own("orphan_ttl") || own("timeout")) && self.orphan_ttl <= self.timeout {
            problems.push(format!(
                "{at}.orphan_ttl ({}) must be longer than timeout ({}), or live canaries would be swept",
                fmt_d(self.orphan_ttl),
                fmt_d(self.timeout)
            ));
        }
    }

    fn probes(&self) -> Vec<Probe> {
        let mut v: Vec<Probe> = self.probes.iter().filter_map(|p| Probe::parse(p)).collect();
        v.sort();
        v.dedup();
        v
    }
}

impl RawConfig {
    /// Validates every value and resolves defaults; returns all problems at once.
    pub fn check(&self) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();

        let listen = match self.server.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                problems.push(format!(
                    "server.listen ({:?}) must be an address like \"0.0.0.0:9340\"",
                    self.server.listen
                ));
                None
            }
        };

        for (k, v) in &self.labels {
            if !valid_label_name(k) {
                problems.push(format!("labels.{k} is not a valid Prometheus label name"));
            } else if RESERVED_LABELS.contains(&k.as_str()) {
                problems.push(format!(
                    "labels.{k} is set by s3canary itself and cannot be used as a constant label"
                ));
            }
            if v.is_empty() {
                problems.push(format!("labels.{k} must not be empty"));
            }
        }

        let d = &self.defaults;
        let defaults = Settings {
            interval: d.interval,
            timeout: d.timeout,
            prefix: &d.prefix,
            object_size: d.object_size,
            probes: &d.probes,
            orphan_ttl: d.orphan_ttl,
        };
        defaults.check("defaults", |_| true, &mut problems);

        if self.targets.is_empty() {
            problems.push("no [[target]] is configured: add at least one bucket to probe".into());
        }
        let mut names = HashSet::new();
        let mut targets = Vec::new();
        for (i, t) in self.targets.iter().enumerate() {
            let at = format!("target[{i}]");
            if !valid_name(&t.name) {
                problems.push(format!(
                    "{at}.name ({:?}) must match [a-z0-9_-]+ (at most 63 characters)",
                    t.name
                ));
            } else if !names.insert(t.name.as_str()) {
                problems.push(format!(
                    "{at}.name ({:?}) is used by another target",
                    t.name
                ));
            }
            if !valid_bucket(&t.bucket) {
                problems.push(format!(
                    "{at}.bucket ({:?}) is not a valid bucket name",
                    t.bucket
                ));
            }
            if !valid_region(&t.region, t.endpoint.is_some()) {
                problems.push(format!(
                    "{at}.region ({:?}) is not a region like \"us-east-1\"",
                    t.region
                ));
            }
            if let Some(e) = &t.endpoint
                && let Err(why) = check_endpoint(e)
            {
                problems.push(format!("{at}.endpoint ({e:?}) {why}"));
            }
            if let Some(arn) = &t.role_arn
                && !(arn.starts_with("arn:aws") && arn.contains(":iam::") && arn.contains(":role/"))
            {
                problems.push(format!(
                    "{at}.role_arn ({arn:?}) is not an IAM role ARN like \"arn:aws:iam::123456789012:role/name\""
                ));
            }
            let sse = match (t.sse.as_deref(), &t.kms_key_id) {
                (None, None) => None,
                (Some("AES256"), None) => Some(Sse::Aes256),
                (Some("aws:kms"), k) => Some(Sse::Kms { key_id: k.clone() }),
                (Some("AES256"), Some(_)) | (None, Some(_)) => {
                    problems.push(format!("{at}.kms_key_id needs sse = \"aws:kms\""));
                    None
                }
                (Some(other), _) => {
                    problems.push(format!(
                        "{at}.sse ({other:?}) must be \"AES256\" or \"aws:kms\""
                    ));
                    None
                }
            };
            let s = Settings {
                interval: t.interval.unwrap_or(d.interval),
                timeout: t.timeout.unwrap_or(d.timeout),
                prefix: t.prefix.as_deref().unwrap_or(&d.prefix),
                object_size: t.object_size.unwrap_or(d.object_size),
                probes: t.probes.as_deref().unwrap_or(&d.probes),
                orphan_ttl: t.orphan_ttl.unwrap_or(d.orphan_ttl),
            };
            s.check(
                &at,
                |key| match key {
                    "interval" => t.interval.is_some(),
                    "timeout" => t.timeout.is_some(),
                    "prefix" => t.prefix.is_some(),
                    "object_size" => t.object_size.is_some(),
                    "probes" => t.probes.is_some(),
                    "orphan_ttl" => t.orphan_ttl.is_some(),
                    _ => false,
                },
                &mut problems,
            );
            targets.push(Target {
                name: t.name.clone(),
                bucket: t.bucket.clone(),
                region: t.region.clone(),
                endpoint: t.endpoint.clone(),
                path_style: t.path_style,
                role_arn: t.role_arn.clone(),
                sse,
                interval: s.interval,
                timeout: s.timeout,
                prefix: s.prefix.to_string(),
                object_size: s.object_size,
                probes: s.probes(),
                orphan_ttl: s.orphan_ttl,
            });
        }

        let mut rnames = HashSet::new();
        for (i, r) in self.replications.iter().enumerate() {
            let at = format!("replication[{i}]");
            if !valid_name(&r.name) {
                problems.push(format!("{at}.name ({:?}) must match [a-z0-9_-]+", r.name));
            } else if !rnames.insert(r.name.as_str()) {
                problems.push(format!(
                    "{at}.name ({:?}) is used by another replication",
                    r.name
                ));
            }
            for (key, value) in [("source", &r.source), ("destination", &r.destination)] {
                if !names.contains(value.as_str()) {
                    problems.push(format!(
                        "{at}.{key} ({value:?}) is not the name of a target"
                    ));
                }
            }
            if r.source == r.destination {
                problems.push(format!("{at}.destination must differ from source"));
            }
            if r.interval < Duration::from_secs(1) {
                problems.push(format!("{at}.interval must be at least 1s"));
            }
            if r.timeout.is_zero() {
                problems.push(format!("{at}.timeout must be greater than 0"));
            }
        }

        let cw = &self.cloudwatch;
        if cw.enabled {
            if !valid_region(&cw.region, cw.endpoint.is_some()) {
                problems.push(format!(
                    "cloudwatch.region ({:?}) is not a region like \"us-east-1\"",
                    cw.region
                ));
            }
            if cw.namespace.is_empty() || cw.namespace.len() > 255 {
                problems.push("cloudwatch.namespace must be 1 to 255 characters".into());
            } else if cw.namespace.starts_with("AWS/") {
                problems.push(format!(
                    "cloudwatch.namespace ({:?}) must not start with \"AWS/\" (reserved by AWS)",
                    cw.namespace
                ));
            }
            if cw.interval < Duration::from_secs(1) {
                problems.push("cloudwatch.interval must be at least 1s".into());
            }
            if let Some(e) = &cw.endpoint
                && let Err(why) = check_endpoint(e)
            {
                problems.push(format!("cloudwatch.endpoint ({e:?}) {why}"));
            }
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            listen: listen.expect("checked above"),
            labels: self.labels.clone(),
            targets,
            replications: self
                .replications
                .iter()
                .map(|r| Replication {
                    name: r.name.clone(),
                    source: r.source.clone(),
                    destination: r.destination.clone(),
                    interval: r.interval,
                    timeout: r.timeout,
                })
                .collect(),
            cloudwatch: cw.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse(text, Path::new("t.toml")) {
            Ok(_) => vec![],
            Err(e) => e.problems(),
        }
    }

    const ONE: &str = "[[target]]\nname = \"a\"\nbucket = \"my-bucket\"\nregion = \"us-east-1\"\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(ONE, Path::new("t.toml")).unwrap();
        let t = &c.targets[0];
        assert_eq!(t.interval, Duration::from_secs(30));
        assert_eq!(t.timeout, Duration::from_secs(10));
        assert_eq!(t.prefix, "s3canary/");
        assert_eq!(t.probes, Probe::ALL.to_vec());
        assert_eq!(t.canary_prefix(), "s3canary/a/");
        assert_eq!(c.listen.to_string(), "0.0.0.0:9340");
    }

    #[test]
    fn target_overrides_and_inherited_errors_are_reported_once() {
        let text = format!("[defaults]\ntimeout = \"40s\"\n{ONE}");
        assert_eq!(
            problems(&text),
            vec!["defaults.timeout (40s) must be shorter than interval (30s)"]
        );
        let text = format!("{ONE}interval = \"5s\"\n");
        assert_eq!(
            problems(&text),
            vec!["target[0].timeout (10s) must be shorter than interval (5s)"]
        );
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = format!("{ONE}bukket = \"x\"\n");
        let p = problems(&text);
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("target[0].bukket (line 5): unknown field `bukket`"),
            "{p:?}"
        );
    }

    #[test]
    fn regions() {
        assert!(valid_region("us-east-1", false));
        assert!(valid_region("us-gov-west-1", false));
        assert!(!valid_region("useast1", false));
        assert!(!valid_region("US-EAST-1", false));
        assert!(valid_region("auto", true));
    }
}
