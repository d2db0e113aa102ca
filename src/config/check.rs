//! The check step: every value of a parsed file validated, every problem reported with its key
//! path, and defaults resolved into a [`Config`].

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::names::{
    RESERVED_LABELS, RESERVED_TARGET_NAMES, bucket_problem, check_endpoint, prefix_problem,
    read_ca_file, redact_url, valid_label_name, valid_name, valid_region,
};
use super::probes::{
    check_cdn, check_checksum, check_durability, check_events, check_multipart, sub_table,
};
use super::raw::{Defaults, RawConfig, RawTarget};
use super::{CaFile, Config, MAX_OBJECT_SIZE, MIN_OBJECT_SIZE, Replication, Sse, Target};
use crate::report::Probe;

fn fmt_d(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Least time between a cycle's deadline and the next cycle, for deleting the canary.
pub const MIN_CLEANUP_WINDOW: Duration = Duration::from_millis(100);

/// Shared checks for the settings that `[defaults]` and a `[[target]]` both carry.
struct Settings<'a> {
    interval: Duration,
    timeout: Duration,
    prefix: &'a str,
    object_size: u64,
    probes: &'a [String],
    orphan_ttl: Duration,
    confirm_interval: Duration,
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
        } else if (own("timeout") || own("interval"))
            && self.interval - self.timeout < MIN_CLEANUP_WINDOW
        {
            problems.push(format!(
                "{at}.timeout ({}) must leave at least {} of the interval ({}) to delete the canary",
                fmt_d(self.timeout),
                fmt_d(MIN_CLEANUP_WINDOW),
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
            } else if let Some(why) = prefix_problem(self.prefix) {
                problems.push(format!("{at}.prefix ({:?}) {why}", self.prefix));
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
                    None => {
                        let known: Vec<&str> = Probe::ALL.iter().map(|p| p.as_str()).collect();
                        let known = known.join(", ");
                        problems.push(format!("{at}.probes: unknown probe {p:?} (known: {known})"))
                    }
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
        let confirm = self.confirm_interval;
        if own("confirm_interval") && !confirm.is_zero() && confirm < Duration::from_secs(1) {
            problems.push(format!(
                "{at}.confirm_interval ({}) must be \"0s\" (off) or at least 1s",
                fmt_d(confirm)
            ));
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
        let listen = self.check_server(&mut problems);
        self.check_labels(&mut problems);
        let targets = self.check_targets(&mut problems);
        self.check_replications(&targets, &mut problems);
        self.check_cloudwatch(&mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        let replications = self
            .replications
            .iter()
            .map(|r| {
                let target = |name: &str| {
                    let t = targets.iter().find(|t| t.name == name);
                    t.cloned().expect("checked above: names a target")
                };
                Replication {
                    name: r.name.clone(),
                    source: target(&r.source),
                    destination: target(&r.destination),
                    interval: r.interval,
                    timeout: r.timeout,
                }
            })
            .collect();
        Ok(Config {
            listen: listen.expect("checked above"),
            web_config_file: self.server.web_config_file.clone(),
            labels: self.labels.clone(),
            targets,
            replications,
            cloudwatch: self.cloudwatch.clone(),
        })
    }

    /// `[server]`: the listen address.
    fn check_server(&self, problems: &mut Vec<String>) -> Option<SocketAddr> {
        let listen = self.server.listen.parse::<SocketAddr>().ok();
        if listen.is_none() {
            problems.push(format!(
                "server.listen ({:?}) must be an address like \"0.0.0.0:9340\"",
                self.server.listen
            ));
        }
        listen
    }

    /// `[labels]`: valid names that s3canary does not set itself, and values.
    fn check_labels(&self, problems: &mut Vec<String>) {
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
    }

    /// `[defaults]` and every `[[target]]`, resolved with the defaults applied (targets with
    /// problems are resolved too, so later sections can refer to their names).
    fn check_targets(&self, problems: &mut Vec<String>) -> Vec<Target> {
        let d = &self.defaults;
        let defaults = Settings {
            interval: d.interval,
            timeout: d.timeout,
            prefix: &d.prefix,
            object_size: d.object_size,
            probes: &d.probes,
            orphan_ttl: d.orphan_ttl,
            confirm_interval: d.confirm_interval,
        };
        defaults.check("defaults", |_| true, problems);

        if self.targets.is_empty() {
            problems.push("no [[target]] is configured: add at least one bucket to probe".into());
        }
        let mut names = HashSet::new();
        let mut targets = Vec::new();
        for (i, t) in self.targets.iter().enumerate() {
            let at = format!("target[{i}]");
            if valid_name(&t.name) && !names.insert(t.name.as_str()) {
                problems.push(format!(
                    "{at}.name ({:?}) is used by another target",
                    t.name
                ));
            }
            targets.push(check_target(&at, (t, self.dir.as_deref()), d, problems));
        }
        targets
    }

    /// Every `[[replication]]`: unique names, existing and distinct targets, timings.
    fn check_replications(&self, targets: &[Target], problems: &mut Vec<String>) {
        let mut rnames = HashSet::new();
        for (i, r) in self.replications.iter().enumerate() {
            let at = format!("replication[{i}]");
            let named = required(&at, "name", &r.name, problems);
            if named && !valid_name(&r.name) {
                problems.push(format!("{at}.name ({:?}) must match [a-z0-9_-]+", r.name));
            } else if named && !rnames.insert(r.name.as_str()) {
                problems.push(format!(
                    "{at}.name ({:?}) is used by another replication",
                    r.name
                ));
            }
            for (key, value) in [("source", &r.source), ("destination", &r.destination)] {
                if required(&at, key, value, problems)
                    && !targets
                        .iter()
                        .any(|t| t.name == *value && valid_name(value))
                {
                    problems.push(format!(
                        "{at}.{key} ({value:?}) is not the name of a target"
                    ));
                }
            }
            if !r.source.is_empty() && r.source == r.destination {
                problems.push(format!("{at}.destination must differ from source"));
            }
            if r.interval < Duration::from_secs(1) {
                problems.push(format!("{at}.interval must be at least 1s"));
            }
            if r.timeout.is_zero() {
                problems.push(format!("{at}.timeout must be greater than 0"));
            }
        }
    }

    /// `[cloudwatch]`, when enabled.
    fn check_cloudwatch(&self, problems: &mut Vec<String>) {
        let cw = &self.cloudwatch;
        if !cw.enabled {
            return;
        }
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
            problems.push(format!("cloudwatch.endpoint ({:?}) {why}", redact_url(e)));
        }
    }
}

/// Whether the required `key` of the table at `at` has a `value`; says it is missing when not.
pub(super) fn required(at: &str, key: &str, value: &str, problems: &mut Vec<String>) -> bool {
    if value.is_empty() {
        problems.push(format!("{at}.{key} is required"));
    }
    !value.is_empty()
}

/// One `[[target]]` at key path `at`, with `d`'s defaults for what it does not set.
fn check_target(
    at: &str,
    (t, dir): (&RawTarget, Option<&std::path::Path>),
    d: &Defaults,
    problems: &mut Vec<String>,
) -> Target {
    if required(at, "name", &t.name, problems) && !valid_name(&t.name) {
        problems.push(format!(
            "{at}.name ({:?}) must match [a-z0-9_-]+ (at most 63 characters)",
            t.name
        ));
    } else if RESERVED_TARGET_NAMES.contains(&t.name.as_str()) {
        problems.push(format!(
            "{at}.name ({:?}) is reserved: <prefix>{}/ holds s3canary's own {} objects",
            t.name, t.name, t.name
        ));
    }
    if required(at, "bucket", &t.bucket, problems)
        && let Some(why) = bucket_problem(&t.bucket)
    {
        problems.push(format!(
            "{at}.bucket ({:?}) is not a valid bucket name: {why}",
            t.bucket
        ));
    }
    if required(at, "region", &t.region, problems) && !valid_region(&t.region, t.endpoint.is_some())
    {
        problems.push(format!(
            "{at}.region ({:?}) is not a region like \"us-east-1\"",
            t.region
        ));
    }
    if let Some(e) = &t.endpoint
        && let Err(why) = check_endpoint(e)
    {
        problems.push(format!("{at}.endpoint ({:?}) {why}", redact_url(e)));
    }
    if let Some(arn) = &t.role_arn
        && !(arn.starts_with("arn:aws") && arn.contains(":iam::") && arn.contains(":role/"))
    {
        problems.push(format!(
            "{at}.role_arn ({arn:?}) is not an IAM role ARN like \"arn:aws:iam::123456789012:role/name\""
        ));
    }
    let ca = t.ca_file.as_ref().and_then(|written| {
        let path = match dir {
            Some(d) if written.is_relative() => d.join(written),
            _ => written.clone(),
        };
        match read_ca_file(&path) {
            Ok(certs) => Some(CaFile { path, certs }),
            Err(why) => {
                problems.push(format!(
                    "{at}.ca_file ({:?}) {why}",
                    written.display().to_string()
                ));
                None
            }
        }
    });
    if ca.is_some()
        && t.endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"))
    {
        problems.push(format!(
            "{at}.ca_file is set but {at}.endpoint is http://: the roots would never be used"
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
        confirm_interval: t.confirm_interval.unwrap_or(d.confirm_interval),
    };
    s.check(
        at,
        |key| match key {
            "interval" => t.interval.is_some(),
            "timeout" => t.timeout.is_some(),
            "prefix" => t.prefix.is_some(),
            "object_size" => t.object_size.is_some(),
            "probes" => t.probes.is_some(),
            "orphan_ttl" => t.orphan_ttl.is_some(),
            "confirm_interval" => t.confirm_interval.is_some(),
            _ => false,
        },
        problems,
    );
    let probes = s.probes();
    let events = sub_table(at, (Probe::Events, &probes), t.events.as_ref(), problems)
        .and_then(|e| check_events(&format!("{at}.events"), e, problems));
    let cdn = sub_table(at, (Probe::Cdn, &probes), t.cdn.as_ref(), problems)
        .and_then(|c| check_cdn(&format!("{at}.cdn"), &c.url, problems));
    let durability = sub_table(
        at,
        (Probe::Durability, &probes),
        t.durability.as_ref(),
        problems,
    )
    .and_then(|d| check_durability(&format!("{at}.durability"), d.objects, problems));
    let multipart = sub_table(
        at,
        (Probe::Multipart, &probes),
        t.multipart.as_ref(),
        problems,
    )
    .and_then(|m| check_multipart(at, m, (s.interval, s.timeout, s.orphan_ttl), problems));
    // `[target.checksum]` may be left out (every algorithm); set without the probe, it is an
    // error as every probe's table is.
    let checksum = match (probes.contains(&Probe::Checksum), t.checksum.as_ref()) {
        (true, c) => check_checksum(&format!("{at}.checksum"), c, problems),
        (false, None) => None,
        (false, c) => sub_table(at, (Probe::Checksum, &probes), c, problems).and(None),
    };
    Target {
        name: t.name.clone(),
        bucket: t.bucket.clone(),
        region: t.region.clone(),
        endpoint: t.endpoint.clone(),
        path_style: t.path_style,
        role_arn: t.role_arn.clone(),
        ca,
        sse,
        interval: s.interval,
        timeout: s.timeout,
        prefix: s.prefix.to_string(),
        object_size: s.object_size,
        probes,
        orphan_ttl: s.orphan_ttl,
        // Not shorter than the interval, confirming would only slow the cycles down: off.
        confirm_interval: if s.confirm_interval < s.interval {
            s.confirm_interval
        } else {
            Duration::ZERO
        },
        events,
        cdn,
        durability,
        multipart,
        checksum,
    }
}
