//! The SDK's errors in plain words: "connection refused by 127.0.0.1:9", "timed out after 5s
//! waiting for the response", "no AWS credentials found (...)". What a person reads on the
//! page, in the JSON, from `once` and in the log; the SDK's own debug form goes to the log at
//! debug level only, bounded.
//!
//! The words come from the error itself (its kind, the I/O error under it, the credential
//! chain's answer) and from where the request went ([`Peer`]); nothing is guessed.

use std::error::Error;
use std::io::ErrorKind;
use std::time::Duration;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::report::{MAX_MESSAGE, bounded_text};

/// Where requests go and how long they may take: what a failure's words name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// `host:port` of a configured endpoint, or the AWS host the SDK sends to.
    pub authority: String,
    /// How long a connection may take to open.
    pub connect: Duration,
    /// How long all attempts of one request may take together.
    pub total: Duration,
    /// How long one attempt may take.
    pub attempt: Duration,
    /// The region the target says its bucket is in (empty where it does not apply).
    pub region: String,
}

impl Peer {
    /// The peer of a client with `endpoint` (a URL), else AWS's `default_host`, with its
    /// connect, attempt and total timeouts.
    pub fn new(endpoint: Option<&str>, default_host: &str, timeouts: [Duration; 3]) -> Peer {
        let [connect, attempt, total] = timeouts;
        let authority = match endpoint {
            Some(e) => authority_of(e),
            None => format!("{default_host}:443"),
        };
        Peer {
            authority,
            connect,
            total,
            attempt,
            region: String::new(),
        }
    }
}

/// The `host:port` of a URL (the scheme's port when it names none), without credentials or
/// path; the URL itself bounded when it does not parse.
pub fn authority_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let rest = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let has_port = match host.rfind(']') {
        Some(end) => host[end..].contains(':'),
        None => host.contains(':'),
    };
    let text = if has_port || host.is_empty() {
        host.to_string()
    } else {
        let port = if scheme.eq_ignore_ascii_case("http") {
            80
        } else {
            443
        };
        format!("{host}:{port}")
    };
    bounded_text(&text, 200)
}

/// `d` as a person writes it, to a tenth of a second past one: "5s", "1s 500ms", "250ms".
pub fn duration(d: Duration) -> String {
    humantime::format_duration(if d >= Duration::from_secs(1) {
        Duration::from_millis(d.as_millis() as u64 / 100 * 100)
    } else {
        Duration::from_millis(d.as_millis() as u64)
    })
    .to_string()
}

/// The words of a failure whose cause is the credentials (the chain found none, the token
/// file is gone, STS refused or did not answer); None for any other failure.
pub fn credentials_failure<E, R>(e: &SdkError<E, R>) -> Option<String>
where
    E: Error + 'static,
    R: std::fmt::Debug,
{
    chain(e.source())
        .find_map(|e| e.downcast_ref::<CredentialsError>())
        .map(credentials)
}

/// A failed request that got no usable answer from the service, in words. A service error
/// (an answer with a status) is described by [`answered`].
pub fn unanswered<E, R>(e: &SdkError<E, R>, peer: &Peer) -> String
where
    E: Error + 'static,
    R: std::fmt::Debug,
{
    if tracing::enabled!(tracing::Level::DEBUG) {
        let detail = aws_smithy_types::error::display::DisplayErrorContext(e).to_string();
        tracing::debug!(peer = %peer.authority, "the SDK's error: {}", bounded_text(&detail, 2048));
    }
    let chain = || chain(e.source());
    if let Some(c) = chain().find_map(|e| e.downcast_ref::<CredentialsError>()) {
        return credentials(c);
    }
    match e {
        SdkError::TimeoutError(_) => {
            // The SDK says which of its timeouts ran out only in its words.
            let within = if e
                .source()
                .is_some_and(|s| s.to_string().contains("attempt"))
            {
                peer.attempt
            } else {
                peer.total
            };
            return format!(
                "timed out after {} waiting for the response",
                duration(within)
            );
        }
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            return format!(
                "timed out after {} connecting to {}",
                duration(peer.connect),
                peer.authority
            );
        }
        SdkError::ConstructionFailure(_) => {
            return format!("the request could not be built: {}", innermost(chain()));
        }
        SdkError::ResponseError(_) => {
            return format!(
                "{} sent an answer that could not be read: {}",
                peer.authority,
                innermost(chain())
            );
        }
        _ => {}
    }
    transport(e.source(), &peer.authority)
}

/// A request to `authority` that failed below HTTP with the error chain from `first`:
/// refused, reset, closed, unresolvable, or in the innermost error's own words.
pub fn transport(first: Option<&(dyn Error + 'static)>, authority: &str) -> String {
    let a = authority;
    let dns = chain(first).any(|e| e.to_string().starts_with("dns error"));
    if let Some(io) = chain(first).find_map(|e| e.downcast_ref::<std::io::Error>()) {
        return match io.kind() {
            _ if dns => format!("could not resolve {}: {}", host_of(a), io_words(io)),
            ErrorKind::ConnectionRefused => format!("connection refused by {a}"),
            ErrorKind::ConnectionReset => format!("connection reset by {a}"),
            ErrorKind::ConnectionAborted => format!("connection aborted by {a}"),
            ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe => {
                format!("{a} closed the connection before answering")
            }
            ErrorKind::TimedOut => format!("timed out connecting to {a}"),
            ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
                format!("{a} is unreachable: {}", io_words(io))
            }
            _ => format!("could not talk to {a}: {}", io_words(io)),
        };
    }
    let incomplete = |e: &(dyn Error + 'static)| {
        e.downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_incomplete_message())
    };
    if chain(first).any(incomplete) {
        return format!("{a} closed the connection before answering");
    }
    format!("could not talk to {a}: {}", innermost(chain(first)))
}

/// A service's answer with an error: its code and message, or the status alone.
pub fn answered<E: ProvideErrorMetadata>(err: &E, status: u16) -> String {
    match (err.code(), err.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => format!("{c} (HTTP {status})"),
        (None, Some(m)) => format!("HTTP {status}: {m}"),
        (None, None) => format!("HTTP {status}"),
    }
}

/// Any SDK failure of a service other than S3 (SQS, CloudWatch, STS) in words.
pub fn of<E>(e: &SdkError<E, HttpResponse>, peer: &Peer) -> String
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let words = match e {
        SdkError::ServiceError(s) => answered(s.err(), s.raw().status().as_u16()),
        _ => unanswered(e, peer),
    };
    bounded_text(&words, MAX_MESSAGE)
}

/// What the credential chain answered.
fn credentials(c: &CredentialsError) -> String {
    let under = || innermost(chain(c.source()));
    match c {
        CredentialsError::CredentialsNotLoaded(_) => "no AWS credentials found (environment, \
             profile, web identity, ECS, instance metadata tried)"
            .to_string(),
        CredentialsError::ProviderTimedOut(t) => format!(
            "no AWS credentials: the credential provider did not answer within {}",
            duration(t.timeout_duration())
        ),
        CredentialsError::InvalidConfiguration(_) => {
            format!(
                "no AWS credentials: the credential configuration is invalid: {}",
                under()
            )
        }
        _ => format!(
            "no AWS credentials: the credential provider failed: {}",
            under()
        ),
    }
}

/// `first` and the errors under it.
///
/// After an `io::Error` the next one is its payload (`get_ref`): `io::Error::source` returns
/// the payload's source and so skips the payload itself (a TLS error inside an I/O error).
pub(crate) fn chain<'a>(
    first: Option<&'a (dyn Error + 'static)>,
) -> impl Iterator<Item = &'a (dyn Error + 'static)> + Clone {
    std::iter::successors(first, |e: &&'a (dyn Error + 'static)| match e
        .downcast_ref::<std::io::Error>()
    {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn Error + 'static)),
        None => (*e).source(),
    })
}

/// The last error of a chain, in its own words (the most specific one); "unknown error" for
/// an empty chain.
fn innermost<'a>(chain: impl Iterator<Item = &'a (dyn Error + 'static)>) -> String {
    chain
        .last()
        .map(|e| e.to_string())
        .unwrap_or_else(|| "unknown error".into())
}

/// An I/O error's words without the "(os error N)" the platform adds.
fn io_words(io: &std::io::Error) -> String {
    let s = io.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The host of a `host:port`.
fn host_of(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_name_host_and_port_and_never_credentials() {
        assert_eq!(authority_of("http://127.0.0.1:9"), "127.0.0.1:9");
        assert_eq!(
            authority_of("https://s3.example.com/path?x"),
            "s3.example.com:443"
        );
        assert_eq!(authority_of("http://minio"), "minio:80");
        assert_eq!(authority_of("http://user:secret@[::1]:9000/"), "[::1]:9000");
        assert_eq!(host_of("minio:80"), "minio");
        assert_eq!(host_of("[::1]:9000"), "[::1]");
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(Duration::from_secs(5)), "5s");
        assert_eq!(duration(Duration::from_millis(1500)), "1s 500ms");
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn missing_credentials_say_what_was_tried() {
        let e = CredentialsError::not_loaded("IMDS disabled");
        assert_eq!(
            credentials(&e),
            "no AWS credentials found (environment, profile, web identity, ECS, instance metadata tried)"
        );
        let e = CredentialsError::provider_error(std::io::Error::other("token file gone"));
        assert_eq!(
            credentials(&e),
            "no AWS credentials: the credential provider failed: token file gone"
        );
    }
}
