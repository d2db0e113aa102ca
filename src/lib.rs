//! s3canary: a daemon that probes S3 buckets for the behaviour applications rely on
//! (read-after-write, list-after-write, overwrite and delete visibility, conditional writes)
//! and exports what it finds as Prometheus metrics.
//!
//! The binary (`src/main.rs`) only parses the command line and calls [`commands::main`].

pub mod app;
pub mod cli;
pub mod cloudwatch;
pub mod commands;
pub mod config;
pub mod embedded;
pub mod http;
pub mod metrics;
pub mod output;
pub mod plan;
pub mod probe;
pub mod replication;
pub mod s3;
pub mod scheduler;
pub mod series;
pub mod status;
