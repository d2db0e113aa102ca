//! S3's refusals in words the on-call engineer acts on: which kind of policy denied a request
//! (current S3 says so in its AccessDenied messages), which region a bucket is really in, and
//! how far the host clock is from S3's. Each reads only what S3 answered (its message and
//! headers) and what the target says; nothing here sends a request.

use std::time::SystemTime;

/// The policy an AccessDenied message names, and whether it denied explicitly or did not
/// allow, in plain words with what to check; None when the message names none (older S3,
/// S3-compatible stores).
///
/// S3 words it as "... because no identity-based policy allows the s3:PutObject action" or
/// "... with an explicit deny in a VPC endpoint policy".
pub fn denial(message: &str) -> Option<String> {
    const POLICIES: [(&str, &str); 7] = [
        (
            "identity-based policy",
            "the IAM policies of the role or user (s3canary iam-policy prints what it needs)",
        ),
        (
            "resource-based policy",
            "the bucket policy (and the KMS key policy for kms: actions)",
        ),
        (
            "VPC endpoint policy",
            "the policy of the VPC endpoint the request went through",
        ),
        (
            "service control policy",
            "the organization's SCPs on the account",
        ),
        (
            "resource control policy",
            "the organization's RCPs on the bucket's account",
        ),
        (
            "session policy",
            "the session policy passed when the role was assumed",
        ),
        (
            "permissions boundary",
            "the permissions boundary of the role or user",
        ),
    ];
    let lower = message.to_ascii_lowercase();
    POLICIES.iter().find_map(|(policy, check)| {
        let p = policy.to_ascii_lowercase();
        let how = if lower.contains(&format!("explicit deny in a {p}"))
            || lower.contains(&format!("explicit deny in an {p}"))
        {
            "an explicit Deny"
        } else if lower.contains(&format!("no {p} allows")) {
            "no statement allowing it"
        } else {
            return None;
        };
        Some(format!("denied by the {policy} ({how}): check {check}"))
    })
}

/// The region a bucket is in, from S3's answer: the `x-amz-bucket-region` header of a 301 or
/// 400, or the region AuthorizationHeaderMalformed expects ("the region 'us-east-1' is wrong;
/// expecting 'eu-west-1'"). Bounded to what a region name can be.
pub fn bucket_region(header: Option<&str>, message: &str) -> Option<String> {
    let from_message = || {
        let after = message.split("expecting '").nth(1)?;
        after.split('\'').next()
    };
    let region = header.or_else(from_message)?.trim();
    let valid = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then(|| region.to_string())
}

/// The message of a wrong-region answer: both regions and the fix.
pub fn wrong_region(actual: Option<&str>, configured: &str, message: &str) -> String {
    match actual {
        Some(a) if a != configured => format!(
            "the bucket is in {a}, not in {configured} as configured: set region = \"{a}\" on the target ({message})"
        ),
        Some(a) => format!(
            "S3 says the bucket is in {a}, as configured, yet redirected the request: check the target's endpoint URL, which may be another region's ({message})"
        ),
        None => format!(
            "the bucket is not in {configured} as configured, and S3 did not say where it is: check the bucket's region ({message})"
        ),
    }
}

/// Local clock minus the time of S3's `Date` header, in whole seconds (as `Date` allows);
/// None when it does not parse.
pub fn clock_skew(date: &str, now: SystemTime) -> Option<i64> {
    let server =
        aws_smithy_types::DateTime::from_str(date, aws_smithy_types::date_time::Format::HttpDate)
            .ok()?;
    let local = aws_smithy_types::DateTime::from(now);
    Some(local.secs() - server.secs())
}

/// The message of a RequestTimeTooSkewed answer, with how far off the clock is when S3's
/// `Date` says.
pub fn skewed(skew: Option<i64>, message: &str) -> String {
    match skew {
        Some(s) => format!(
            "the host clock is {} {} S3's (S3 refuses requests signed more than 15 minutes off): check NTP/chrony on the node ({message})",
            humantime::format_duration(std::time::Duration::from_secs(s.unsigned_abs())),
            if s >= 0 { "ahead of" } else { "behind" }
        ),
        None => format!(
            "the host clock is too far from S3's (more than 15 minutes): check NTP/chrony on the node ({message})"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_name_the_policy_and_how_it_denied() {
        let m = "User: arn:aws:sts::123456789012:assumed-role/s3canary/pod is not authorized to perform: s3:PutObject on resource: \"arn:aws:s3:::b/k\" with an explicit deny in a VPC endpoint policy";
        assert_eq!(
            denial(m).unwrap(),
            "denied by the VPC endpoint policy (an explicit Deny): check the policy of the VPC endpoint the request went through"
        );
        let m = "... because no identity-based policy allows the s3:GetObject action";
        assert!(
            denial(m)
                .unwrap()
                .starts_with("denied by the identity-based policy (no statement allowing it)")
        );
        let m = "... with an explicit deny in a service control policy";
        assert!(denial(m).unwrap().contains("SCPs"));
        assert_eq!(denial("Access Denied"), None);
    }

    #[test]
    fn the_bucket_region_comes_from_the_header_or_the_message() {
        assert_eq!(
            bucket_region(Some("eu-west-1"), ""),
            Some("eu-west-1".into())
        );
        let m = "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-central-1'";
        assert_eq!(bucket_region(None, m), Some("eu-central-1".into()));
        assert_eq!(bucket_region(Some("<script>"), ""), None);
        assert_eq!(bucket_region(None, "no region here"), None);
    }

    #[test]
    fn a_redirect_to_the_configured_region_blames_the_endpoint() {
        let m = wrong_region(Some("us-east-1"), "us-east-1", "HTTP 301");
        assert!(m.contains("check the target's endpoint URL"), "{m}");
        let m = wrong_region(Some("eu-west-1"), "us-east-1", "HTTP 301");
        assert!(
            m.starts_with("the bucket is in eu-west-1, not in us-east-1"),
            "{m}"
        );
    }

    #[test]
    fn clock_skew_is_local_minus_s3_in_whole_seconds() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_000_000);
        let s3 = aws_smithy_types::DateTime::from_secs(1_796_000_000 - 1200)
            .fmt(aws_smithy_types::date_time::Format::HttpDate)
            .unwrap();
        assert_eq!(clock_skew(&s3, now), Some(1200));
        assert_eq!(clock_skew("yesterday", now), None);
        assert!(skewed(Some(1200), "m").starts_with("the host clock is 20m ahead of S3's"));
        assert!(skewed(Some(-61), "m").starts_with("the host clock is 1m 1s behind S3's"));
    }
}
