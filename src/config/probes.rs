//! The checks of the probes' own tables (`[target.events]`, `[target.cdn]`,
//! `[target.durability]`): each present exactly when its probe is named, each value checked.

use std::time::Duration;

use super::check::required;
use super::names::{check_endpoint, redact_url};
use super::raw::{RawChecksum, RawEvents, RawMultipart};
use super::{Cdn, Checksum, Durability, Events, Multipart, Via};
use crate::report::Probe;
use crate::s3::checksum::Algorithm;

fn fmt_d(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A probe's sub-table (`[target.<name>]`): present exactly when the probe is named.
pub(super) fn sub_table<'a, T>(
    at: &str,
    (probe, probes): (Probe, &[Probe]),
    table: Option<&'a T>,
    problems: &mut Vec<String>,
) -> Option<&'a T> {
    let name = probe.as_str();
    match (probes.contains(&probe), table) {
        (true, None) => {
            problems.push(format!(
                "{at}.probes names \"{name}\" but the target has no [target.{name}] table"
            ));
            None
        }
        (false, Some(_)) => {
            problems.push(format!(
                "{at}.{name} is set but \"{name}\" is not in {at}.probes: add it, or remove the table"
            ));
            None
        }
        (_, t) => t,
    }
}

/// Default time an expected event may take before it counts as lost.
const DEFAULT_EVENTS_TIMEOUT: Duration = Duration::from_secs(300);

/// `[target.events]` at key path `at`.
pub(super) fn check_events(at: &str, e: &RawEvents, problems: &mut Vec<String>) -> Option<Events> {
    let before = problems.len();
    if required(at, "queue_url", &e.queue_url, problems)
        && let Err(why) = check_endpoint(&e.queue_url)
    {
        problems.push(format!(
            "{at}.queue_url ({:?}) {why}",
            redact_url(&e.queue_url)
        ));
    }
    let via = match e.via.as_deref() {
        None | Some("s3") => Via::S3,
        Some("eventbridge") => Via::EventBridge,
        Some(other) => {
            problems.push(format!(
                "{at}.via ({other:?}) must be \"s3\" or \"eventbridge\""
            ));
            Via::S3
        }
    };
    let timeout = e.timeout.unwrap_or(DEFAULT_EVENTS_TIMEOUT);
    if timeout < Duration::from_secs(1) || timeout > Duration::from_secs(12 * 3600) {
        problems.push(format!(
            "{at}.timeout ({}) must be between 1s and 12h",
            fmt_d(timeout)
        ));
    }
    if let Some(endpoint) = &e.endpoint
        && let Err(why) = check_endpoint(endpoint)
    {
        problems.push(format!("{at}.endpoint ({:?}) {why}", redact_url(endpoint)));
    }
    let events = Events {
        queue_url: e.queue_url.clone(),
        via,
        timeout,
        endpoint: e.endpoint.clone(),
    };
    if problems.len() == before && events.endpoint.is_none() && events.region().is_none() {
        problems.push(format!(
            "{at}.queue_url ({:?}) is not an SQS queue URL like \"https://sqs.us-east-1.amazonaws.com/123456789012/name\" (set endpoint for other servers)",
            e.queue_url
        ));
    }
    (problems.len() == before).then_some(events)
}

/// `[target.cdn]` at key path `at`.
pub(super) fn check_cdn(at: &str, url: &str, problems: &mut Vec<String>) -> Option<Cdn> {
    let before = problems.len();
    if required(at, "url", url, problems) {
        if let Err(why) = check_endpoint(url) {
            problems.push(format!("{at}.url ({:?}) {why}", redact_url(url)));
        } else if !url.ends_with('/') {
            problems.push(format!(
                "{at}.url ({url:?}) must end with \"/\": <url><key> is the canary's address"
            ));
        }
    }
    (problems.len() == before).then(|| Cdn {
        url: url.to_string(),
    })
}

/// Default size of a durability set.
const DEFAULT_DURABILITY_OBJECTS: u32 = 16;

/// `[target.durability]` at key path `at`.
pub(super) fn check_durability(
    at: &str,
    objects: Option<u32>,
    problems: &mut Vec<String>,
) -> Option<Durability> {
    let objects = objects.unwrap_or(DEFAULT_DURABILITY_OBJECTS);
    if !(1..=1000).contains(&objects) {
        problems.push(format!(
            "{at}.objects ({objects}) must be between 1 and 1000"
        ));
        return None;
    }
    Some(Durability { objects })
}

/// Smallest part S3 accepts for every part of a multipart upload but the last.
pub const MIN_PART_SIZE: u64 = 5 << 20;

/// Largest part the multipart probe uploads: a part is held in memory while it is sent.
pub const MAX_PART_SIZE: u64 = 64 << 20;

/// Default time between two multipart uploads.
const DEFAULT_MULTIPART_INTERVAL: Duration = Duration::from_secs(600);

/// `[target.multipart]` of the target at key path `target`, whose cycles run every `interval`,
/// time out after `timeout` and whose canaries are orphans after `orphan_ttl`.
pub(super) fn check_multipart(
    target: &str,
    m: &RawMultipart,
    (interval, timeout, orphan_ttl): (Duration, Duration, Duration),
    problems: &mut Vec<String>,
) -> Option<Multipart> {
    let at = &format!("{target}.multipart");
    let before = problems.len();
    let parts = m.parts.unwrap_or(2);
    if !(2..=100).contains(&parts) {
        problems.push(format!("{at}.parts ({parts}) must be between 2 and 100"));
    }
    let part_size = m.part_size.unwrap_or(MIN_PART_SIZE);
    if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size) {
        problems.push(format!(
            "{at}.part_size ({part_size} bytes) must be between 5MiB (S3's smallest part but the last) and 64MiB"
        ));
    }
    let every = m.interval.unwrap_or(DEFAULT_MULTIPART_INTERVAL);
    if every < interval {
        problems.push(format!(
            "{at}.interval ({}) must not be shorter than the target's interval ({})",
            fmt_d(every),
            fmt_d(interval)
        ));
    }
    let m = Multipart {
        parts,
        part_size,
        interval: every,
    };
    // The sweeps judge an upload by its key's time: one still running must not look orphaned.
    if orphan_ttl <= m.budget(timeout) {
        problems.push(format!(
            "{target}.orphan_ttl ({}) must be longer than a multipart upload may take ({}: the timeout, at least 30s, at most [target.multipart] interval), or live uploads would be swept",
            fmt_d(orphan_ttl),
            fmt_d(m.budget(timeout))
        ));
    }
    (problems.len() == before).then_some(m)
}

/// `[target.checksum]` at key path `at` (left out: every algorithm).
pub(super) fn check_checksum(
    at: &str,
    c: Option<&RawChecksum>,
    problems: &mut Vec<String>,
) -> Option<Checksum> {
    let Some(names) = c.and_then(|c| c.algorithms.as_ref()) else {
        return Some(Checksum {
            algorithms: Algorithm::ALL.to_vec(),
        });
    };
    let before = problems.len();
    let mut algorithms = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match Algorithm::parse(name) {
            Some(a) if !algorithms.contains(&a) => algorithms.push(a),
            Some(_) => problems.push(format!("{at}.algorithms[{i}] ({name:?}) is listed twice")),
            None => {
                let known: Vec<&str> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();
                problems.push(format!(
                    "{at}.algorithms[{i}] ({name:?}) is not one of {}",
                    known.join(", ")
                ));
            }
        }
    }
    if names.is_empty() {
        problems.push(format!(
            "{at}.algorithms is empty: list at least one, or leave the key out for all five"
        ));
    }
    (problems.len() == before).then_some(Checksum { algorithms })
}
