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

/// Target names that would put a target's canaries under a key space the daemon uses for
/// something else (`<prefix>replication/`, `<prefix>durability/`).
pub(super) const RESERVED_TARGET_NAMES: &[&str] = &["replication", "durability"];

/// Why S3 would refuse `s` as a general purpose bucket name, or `None` when it would not:
/// every rule it breaks, in S3's documentation's words.
pub(super) fn bucket_problem(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut broken: Vec<String> = Vec::new();
    if !(3..=63).contains(&b.len()) {
        broken.push(format!(
            "it must be 3 to 63 characters long (it is {})",
            b.len()
        ));
    }
    let mut bad: Vec<char> = Vec::new();
    for c in s.chars() {
        let allowed = c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
        if !allowed && !bad.contains(&c) && bad.len() < 8 {
            bad.push(c);
        }
    }
    if !bad.is_empty() {
        let found: Vec<String> = bad.iter().map(|c| format!("{:?}", c.to_string())).collect();
        broken.push(format!(
            "only lowercase letters, digits, dots and hyphens are allowed (found {})",
            found.join(", ")
        ));
    }
    let alnum = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ends_ok = alnum(b.first()) && alnum(b.last());
    if !b.is_empty() && !ends_ok {
        broken.push("it must begin and end with a lowercase letter or digit".into());
    }
    if s.contains("..") {
        broken.push("it must not contain two adjacent dots".into());
    }
    if !broken.is_empty() {
        return Some(broken.join("; "));
    }
    if s.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some("S3 refuses names formatted as an IP address".into());
    }
    const PREFIXES: &[&str] = &["xn--", "sthree-", "amzn-s3-demo-"];
    const SUFFIXES: &[&str] = &["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    if PREFIXES.iter().any(|p| s.starts_with(p)) {
        return Some("S3 reserves the prefixes xn--, sthree- and amzn-s3-demo-".into());
    }
    if SUFFIXES.iter().any(|x| s.ends_with(x)) {
        return Some(
            "S3 reserves the suffixes -s3alias, --ol-s3, .mrap, --x-s3 and --table-s3".into(),
        );
    }
    None
}

/// Why `p` is not a plain key prefix, or `None`: every segment between slashes must be
/// non-empty and neither `.` nor `..` (S3 keys are not paths, but SDKs, consoles and lifecycle
/// rules treat such keys inconsistently), and no control character may appear.
pub(super) fn prefix_problem(p: &str) -> Option<&'static str> {
    let body = p.strip_suffix('/').unwrap_or(p);
    if body
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Some("must be plain key segments: no empty, \".\" or \"..\" segment");
    }
    if p.chars().any(char::is_control) {
        return Some("must not contain control characters");
    }
    None
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

/// `url` with any `user:password@` replaced by `***@`, for messages: a URL's userinfo is never
/// repeated anywhere.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("***{}", &authority[at..]),
        None => authority.to_string(),
    };
    match scheme {
        Some(s) => format!("{s}://{authority}{path}"),
        None => format!("{authority}{path}"),
    }
}

pub(super) fn check_endpoint(s: &str) -> Result<(), String> {
    if s.split_once("://")
        .map_or(s, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .is_some_and(|authority| authority.contains('@'))
    {
        return Err(
            "must not carry credentials (user:password@): s3canary takes them from the AWS \
             credential chain"
                .to_string(),
        );
    }
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

/// The certificates of a `ca_file`, or why it cannot serve as roots: unreadable, too large, not
/// PEM, no certificate in it, or one that is not a CA certificate rustls can use.
pub(super) fn read_ca_file(
    path: &std::path::Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    /// A bundle of every public root is about 220 KiB.
    const MAX_CA_FILE: u64 = 1024 * 1024;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() || meta.len() > MAX_CA_FILE {
        return Err(format!(
            "must be a regular file of at most {MAX_CA_FILE} bytes"
        ));
    }
    let pem = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_string());
    }
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for c in &certs {
        roots
            .add(c.clone())
            .map_err(|e| format!("holds a certificate that cannot be a root: {e}"))?;
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_s3_would_refuse() {
        for ok in ["my-bucket", "a.b.c", "abc", "logs-2026"] {
            assert_eq!(bucket_problem(ok), None, "{ok}");
        }
        // Each name is told every rule it breaks.
        let rules = |name| bucket_problem(name).unwrap_or_default();
        assert_eq!(
            rules("My_Bucket..Data"),
            "only lowercase letters, digits, dots and hyphens are allowed \
             (found \"M\", \"_\", \"B\", \"D\"); \
             it must begin and end with a lowercase letter or digit; \
             it must not contain two adjacent dots"
        );
        assert_eq!(rules("ab"), "it must be 3 to 63 characters long (it is 2)");
        for bad in ["-abc", "abc-"] {
            assert_eq!(
                rules(bad),
                "it must begin and end with a lowercase letter or digit"
            );
        }
        assert_eq!(rules("a..b"), "it must not contain two adjacent dots");
        for bad in [
            "192.168.1.1",
            "xn--abc",
            "sthree-x",
            "x-s3alias",
            "abc--ol-s3",
            "a.mrap",
        ] {
            assert!(bucket_problem(bad).is_some_and(|p| !p.is_empty()), "{bad}");
        }
    }

    #[test]
    fn prefixes_are_plain_key_prefixes() {
        for ok in ["s3canary/", "a/b/", "canaries-2/"] {
            assert_eq!(prefix_problem(ok), None, "{ok}");
        }
        for bad in ["./", "../", "a//", "a/./", "a/../b/", "a\nb/"] {
            assert!(prefix_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn urls_never_show_their_userinfo() {
        let url = "http://AKIAEXAMPLE:secret@127.0.0.1:9000/path";
        assert_eq!(redact_url(url), "http://***@127.0.0.1:9000/path");
        assert!(check_endpoint(url).unwrap_err().contains("credentials"));
        assert!(!check_endpoint(url).unwrap_err().contains("secret"));
        assert_eq!(
            redact_url("https://s3.amazonaws.com"),
            "https://s3.amazonaws.com"
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
