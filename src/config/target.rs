//! One `[[target]]` checked: its names, endpoint, role, `ca_file` and encryption, the settings
//! it overrides, and its probes' tables.

use std::time::Duration;

use super::check::{Settings, required};
use super::names::{
    RESERVED_TARGET_NAMES, bucket_problem, check_endpoint, read_ca_file, redact_url, valid_name,
    valid_region,
};
use super::probes::{
    check_cdn, check_checksum, check_durability, check_events, check_multipart, sub_table,
};
use super::raw::{Defaults, RawTarget};
use super::{CaFile, Sse, Target};
use crate::report::Probe;

/// One `[[target]]` at key path `at`, with `d`'s defaults for what it does not set.
pub(super) fn check_target(
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
