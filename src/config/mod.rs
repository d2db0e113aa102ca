//! Configuration: strict TOML, named defaults, and a separate check step that reports every
//! problem at once with its key path.
//!
//! Parsing ([`raw`], `serde` with `deny_unknown_fields`, read by `parse` until every unknown
//! key and wrong type is found) reports each with the line it is on; the check then validates
//! meaning (timeouts shorter than
//! intervals, names, references between sections) and turns the raw tree into a resolved
//! [`Config`] in which every target carries its effective settings and every replication pair
//! its two targets.

mod check;
mod names;
mod parse;
mod probes;
mod target;
pub use names::redact_url;
pub mod raw;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use raw::CloudWatchSection;

use crate::report::{Probe, TargetInfo, TargetLabels};

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
    /// The file is not valid TOML, does not fit the schema (unknown keys, wrong types) or its
    /// values are inconsistent; every problem is listed.
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
            ConfigError::Invalid { problems, .. } => problems.clone(),
        }
    }
}

/// How S3 events reach the queue of the events probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The bucket's notification configuration sends S3 event records to the queue.
    S3,
    /// An EventBridge rule sends the bucket's events to the queue.
    EventBridge,
}

/// `[target.events]`: the SQS queue where the notifications of the target's canaries arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Events {
    pub queue_url: String,
    pub via: Via,
    /// An expected event not received within this is lost.
    pub timeout: Duration,
    /// An SQS-compatible endpoint instead of the queue URL's host (tests, VPC endpoints).
    pub endpoint: Option<String>,
}

impl Events {
    /// The queue's region, from an AWS queue URL (`https://sqs.<region>.amazonaws.com/...`).
    pub fn region(&self) -> Option<&str> {
        let host = self.queue_url.split("://").nth(1)?.split('/').next()?;
        let mut parts = host.split('.');
        match (parts.next(), parts.next()) {
            (Some("sqs"), Some(region)) if region != "amazonaws" => Some(region),
            _ => None,
        }
    }

    /// The queue's ARN, from an AWS queue URL (`.../<account>/<name>`), for the IAM policy.
    pub fn queue_arn(&self) -> Option<String> {
        let mut path = self.queue_url.split("://").nth(1)?.split('/').skip(1);
        let (account, name) = (path.next()?, path.next()?);
        let partition = if self.region()?.starts_with("cn-") {
            "aws-cn"
        } else if self.region()?.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        Some(format!(
            "arn:{partition}:sqs:{}:{account}:{name}",
            self.region()?
        ))
    }

    /// The queue's name: the last segment of its URL.
    pub fn queue_name(&self) -> &str {
        self.queue_url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("")
    }
}

/// `[target.cdn]`: the bucket read through a CDN or caching proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cdn {
    /// `<url><key>` serves `s3://bucket/<key>`; ends with `/`.
    pub url: String,
}

/// `[target.durability]`: long-lived objects that must never change or disappear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durability {
    /// Objects in the set, under `<prefix>durability/<target>/`.
    pub objects: u32,
}

/// `[target.multipart]`: a multipart upload per `interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    /// Parts per upload (at least 2).
    pub parts: u32,
    /// Every part but the last (which is the target's `object_size`); at least 5 MiB.
    pub part_size: u64,
    /// One upload per interval; never shorter than the target's interval.
    pub interval: Duration,
}

impl Multipart {
    /// How long one upload may take for a target whose requests time out after `timeout`: that
    /// timeout, and at least 30 s for the bytes, never more than the probe's interval.
    pub fn budget(&self, timeout: Duration) -> Duration {
        timeout.max(Duration::from_secs(30)).min(self.interval)
    }

    /// Bytes of one upload, the last part being `last` bytes.
    pub fn object_bytes(&self, last: u64) -> u64 {
        u64::from(self.parts - 1) * self.part_size + last
    }
}

/// `[target.checksum]`: the algorithms the checksum probe rotates through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    /// In the order written, without duplicates; never empty.
    pub algorithms: Vec<crate::s3::checksum::Algorithm>,
}

/// Server-side encryption requested on canary writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    Aes256,
    Kms { key_id: Option<String> },
}

/// A checked config: every target carries its effective settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// `server.web_config_file`, relative to the config file's folder when relative.
    pub web_config_file: Option<PathBuf>,
    pub labels: BTreeMap<String, String>,
    pub targets: Vec<Target>,
    pub replications: Vec<Replication>,
    pub cloudwatch: CloudWatchSection,
}

/// A target's `ca_file`: its path and the certificates it held when the config was loaded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CaFile {
    pub path: PathBuf,
    pub certs: Vec<rustls_pki_types::CertificateDer<'static>>,
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
    /// `ca_file`: the endpoint's private roots, read and checked when the config was loaded.
    pub ca: Option<CaFile>,
    pub sse: Option<Sse>,
    pub interval: Duration,
    pub timeout: Duration,
    pub prefix: String,
    pub object_size: u64,
    /// Enabled probes, in cycle order, without duplicates.
    pub probes: Vec<Probe>,
    pub orphan_ttl: Duration,
    /// After a failed cycle, cycles start this often (but never overlap) until one passes;
    /// zero keeps the interval.
    pub confirm_interval: Duration,
    /// The events probe's queue, when `events` is among the probes.
    pub events: Option<Events>,
    /// The cdn probe's CDN, when `cdn` is among the probes.
    pub cdn: Option<Cdn>,
    /// The durability set, when `durability` is among the probes.
    pub durability: Option<Durability>,
    /// The multipart probe's uploads, when `multipart` is among the probes.
    pub multipart: Option<Multipart>,
    /// The checksum probe's algorithms, when `checksum` is among the probes.
    pub checksum: Option<Checksum>,
}

impl Target {
    /// The key space of this target's probe canaries: `<prefix><target>/`.
    pub fn canary_prefix(&self) -> String {
        format!("{}{}/", self.prefix, self.name)
    }

    /// The label values of this target's series.
    pub fn labels(&self) -> TargetLabels {
        TargetLabels {
            target: self.name.clone(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
        }
    }

    /// What the outputs learn of this target when it is scheduled.
    pub fn info(&self) -> TargetInfo {
        TargetInfo {
            labels: self.labels(),
            probes: self.probes.clone(),
            interval: self.interval,
        }
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
    pub source: Target,
    pub destination: Target,
    pub interval: Duration,
    pub timeout: Duration,
}

/// Largest canary body accepted: probes should be cheap, and a single PUT is limited anyway.
pub const MAX_OBJECT_SIZE: u64 = 16 * 1024 * 1024;

/// Smallest canary body: enough for a header naming the key and version plus random bytes,
/// so two versions never have the same bytes by chance.
pub const MIN_OBJECT_SIZE: u64 = 64;

/// Reads and checks the file at `path`.
///
/// Only a regular file of at most [`MAX_FILE_BYTES`] is read: a FIFO or device in its place
/// would block the reader or never end.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if !meta.is_file() {
        return Err(read_error(std::io::Error::other(
            "not a regular file (a directory, FIFO or device cannot be a config)",
        )));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(read_error(std::io::Error::other(format!(
            "{} bytes; a config has at most {MAX_FILE_BYTES}",
            meta.len()
        ))));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| {
            std::io::Read::read_to_string(&mut std::io::Read::take(f, MAX_FILE_BYTES), &mut text)
        })
        .map_err(read_error)?;
    let mut cfg = parse(&text, path)?;
    if let Some(w) = &mut cfg.web_config_file
        && w.is_relative()
        && let Some(dir) = path.parent()
    {
        *w = dir.join(&*w);
    }
    Ok(cfg)
}

/// Largest config file read (a thousand targets take about 200 KiB).
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Parses and checks `text`; `path` is only used in messages.
///
/// Every problem is reported at once: what the check step finds, then each unknown key, wrong
/// type and syntax error with its line ([`parse::read`]).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let read = parse::read(text);
    let invalid = |problems| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    };
    let Some(mut raw) = read.raw else {
        return Err(invalid(read.problems));
    };
    // Files the config names are relative to its folder, as `web_config_file` is.
    raw.dir = path.parent().map(Path::to_path_buf);
    match raw.check() {
        Ok(cfg) if read.problems.is_empty() => Ok(cfg),
        Ok(_) => Err(invalid(read.problems)),
        Err(checked) => {
            let mut problems: Vec<String> = checked
                .into_iter()
                .filter(|p| !parse::about_blanked(p, &read.blanked))
                .collect();
            problems.extend(read.problems);
            Err(invalid(problems))
        }
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
        assert_eq!(t.probes, Probe::DEFAULTS.to_vec());
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
}
