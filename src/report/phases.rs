//! Where the time of one S3 request attempt went: resolving the endpoint's name, opening the
//! TCP connection, the TLS handshake, waiting for the response head, reading the body.

use std::time::{Duration, SystemTime};

use serde::Serialize;

/// A phase of an attempt, as the `phase` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Resolving the endpoint's host name (not when the endpoint is an address).
    Dns,
    /// The TCP handshake.
    Connect,
    /// The TLS handshake (https endpoints only).
    Tls,
    /// From the request written to the response head: the store's own time, plus one round
    /// trip.
    FirstByte,
    /// Reading the response body (answers that have one: GET, LIST, errors).
    Body,
}

impl Phase {
    /// Every phase, in the order they happen.
    pub const ALL: [Phase; 5] = [
        Phase::Dns,
        Phase::Connect,
        Phase::Tls,
        Phase::FirstByte,
        Phase::Body,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::FirstByte => "first_byte",
            Phase::Body => "body",
        }
    }
}

/// The phases of one attempt that got an answer. A phase that did not happen is `None`, never
/// zero: an attempt on a reused connection has no dns, connect or tls.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestPhases {
    /// When the attempt started.
    #[serde(with = "super::unix")]
    pub at: SystemTime,
    /// Whether the attempt opened the connection it was sent on.
    pub new_connection: bool,
    #[serde(with = "super::opt_secs")]
    pub dns: Option<Duration>,
    #[serde(with = "super::opt_secs")]
    pub connect: Option<Duration>,
    #[serde(with = "super::opt_secs")]
    pub tls: Option<Duration>,
    #[serde(with = "super::opt_secs")]
    pub first_byte: Option<Duration>,
    #[serde(with = "super::opt_secs")]
    pub body: Option<Duration>,
    /// The response's `x-amz-request-id`, bounded.
    pub request_id: Option<String>,
    /// The earliest notAfter of the certificate chain a new TLS connection was shown.
    #[serde(skip)]
    pub tls_not_after: Option<SystemTime>,
}

impl RequestPhases {
    /// The phases that happened, in order, with their durations.
    pub fn observed(&self) -> impl Iterator<Item = (Phase, Duration)> + '_ {
        Phase::ALL
            .into_iter()
            .filter_map(|p| self.get(p).map(|d| (p, d)))
    }

    /// The duration of `p`, if it happened.
    pub fn get(&self, p: Phase) -> Option<Duration> {
        match p {
            Phase::Dns => self.dns,
            Phase::Connect => self.connect,
            Phase::Tls => self.tls,
            Phase::FirstByte => self.first_byte,
            Phase::Body => self.body,
        }
    }

    /// The sum of the phases that happened.
    pub fn total(&self) -> Duration {
        self.observed().map(|(_, d)| d).sum()
    }
}
