//! Where figures go: the outputs behind [`crate::report::Sink`]. They are
//! [`metrics::Metrics`] (the `/metrics` catalogue and its text and protobuf expositions),
//! [`cloudwatch::Mirror`], [`history::History`] (the status page) and [`log::Log`] (a warning
//! per failed run). Each only consumes reports: none decides whether a run passed.

pub mod cloudwatch;
pub mod history;
pub mod log;
pub mod metrics;
