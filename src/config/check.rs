//! The check step: every value of a parsed file validated, every problem reported with its key
//! path, and defaults resolved into a [`Config`].

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::names::{
    RESERVED_LABELS, check_endpoint, prefix_problem, redact_url, valid_label_name, valid_name,
    valid_region,
};
use super::raw::RawConfig;
use super::{Config, MAX_OBJECT_SIZE, MIN_OBJECT_SIZE, Replication, Target};
use crate::report::Probe;

fn fmt_d(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Least time between a cycle's deadline and the next cycle, for deleting the canary.
pub const MIN_CLEANUP_WINDOW: Duration = Duration::from_millis(100);

/// Shared checks for the settings that `[defaults]` and a `[[target]]` both carry.
pub(super) struct Settings<'a> {
    pub interval: Duration,
    pub timeout: Duration,
    pub prefix: &'a str,
    pub object_size: u64,
    pub probes: &'a [String],
    pub orphan_ttl: Duration,
    pub confirm_interval: Duration,
}

impl Settings<'_> {
    /// Problems with these settings; `at` is the key path of the section ("defaults",
    /// "target[1]"), `own` says which keys this section sets itself (others are inherited and
    /// already reported under `defaults`).
    pub(super) fn check(&self, at: &str, own: impl Fn(&str) -> bool, problems: &mut Vec<String>) {
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

    pub(super) fn probes(&self) -> Vec<Probe> {
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
            targets.push(super::target::check_target(
                &at,
                (t, self.dir.as_deref()),
                d,
                problems,
            ));
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
