//! Rules for the names and addresses a config holds: target and replication names, S3 bucket
//! names, regions, endpoints and Prometheus label names.

/// Label names the daemon sets itself; `[labels]` may not reuse them.
pub(super) const RESERVED_LABELS: &[&str] = &[
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

pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// S3 bucket naming rules (general purpose buckets), loosely: 3-63 chars of [a-z0-9.-],
/// starting and ending with a letter or digit.
pub(super) fn valid_bucket(s: &str) -> bool {
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
pub(super) fn valid_region(s: &str, has_endpoint: bool) -> bool {
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

pub(super) fn check_endpoint(s: &str) -> Result<(), String> {
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

pub(super) fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        assert!(valid_region("us-east-1", false));
        assert!(valid_region("us-gov-west-1", false));
        assert!(!valid_region("useast1", false));
        assert!(!valid_region("US-EAST-1", false));
        assert!(valid_region("auto", true));
    }
}
