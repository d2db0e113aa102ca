//! s3canary: a daemon that probes S3 buckets for the behaviour applications rely on
//! (read-after-write, list-after-write, overwrite and delete visibility, conditional writes)
//! and exports what it finds as Prometheus metrics.
//!
//! The binary (`src/main.rs`) only parses the command line and calls [`commands::main`].
//! Producers ([`probe`], [`replication`], [`canary`] sweeps, the S3 attempt recorder in [`s3`])
//! speak the vocabulary of [`report`] to the [`sinks`]; the [`scheduler`] owns every loop and
//! [`app`] builds, reloads and stops them.

pub mod app;
pub mod canary;
pub mod cli;
pub mod commands;
pub mod config;
pub mod durability;
pub mod embedded;
pub mod events;
pub mod http;
pub mod iam;
pub mod multipart;
pub mod once;
pub mod plan;
pub mod probe;
pub mod replication;
pub mod report;
pub mod s3;
pub mod scheduler;
pub mod shard;
pub mod sinks;
