//! Command-line definitions (clap).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::DEFAULT_PATH;

/// s3canary: tells you, within two minutes, when S3 stops behaving as your application assumes.
#[derive(Debug, Parser)]
#[command(name = "s3canary", version, about, long_about = None)]
pub struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, e.g. "info" or "s3canary=debug" (default: RUST_LOG, else "info").
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Output format of `once`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// The config file option shared by the commands that read one.
#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// Config file (TOML).
    #[arg(long, env = "S3CANARY_CONFIG", default_value = DEFAULT_PATH)]
    pub config: PathBuf,
}

/// What `durability` does.
#[derive(Debug, Subcommand)]
pub enum DurabilityCommand {
    /// Write again the objects of a target's durability set that are missing or corrupt (the
    /// daemon never does: it reports them). Logged; exits 0 when the set is whole again.
    Reseed {
        #[command(flatten)]
        config: ConfigArg,
        /// The target whose set to restore.
        #[arg(long)]
        target: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: probe every target on its interval and serve metrics.
    ///
    /// Exits 0 on SIGTERM/SIGINT after cleaning up in-flight canaries, 2 on a bad config.
    /// SIGHUP or POST /-/reload re-reads the config.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Probe only this shard's part of the targets: I/N, shards numbered from 0. I may be a
        /// StatefulSet pod's name (s3canary-2/3 is shard 2 of 3). Every process reads the same
        /// config; rendezvous hashing of the target names (of the queue, for targets with an
        /// events queue) splits it, and changing N moves about 1/N of the targets.
        #[arg(long, env = "S3CANARY_SHARD", value_parser = crate::shard::Shard::parse)]
        shard: Option<crate::shard::Shard>,
    },
    /// Run against an embedded S3 server on loopback (no AWS account, no network).
    Demo {
        /// The daemon's HTTP address.
        #[arg(long, default_value = "127.0.0.1:9340")]
        listen: SocketAddr,
        /// Fault profile of the embedded server (the README's table says what each does).
        /// Switch at run time with POST /-/demo/faults/{profile}[?bucket=B[&requests=N]]; GET
        /// /-/demo/faults shows the profiles in force.
        #[arg(long, default_value = "none",
            value_parser = clap::builder::PossibleValuesParser::new(crate::embedded::FaultConfig::PROFILES))]
        faults: String,
    },
    /// Validate the config without touching S3. Exits 0 if valid, 2 if not.
    CheckConfig(ConfigArg),
    /// Run every enabled probe once per target and print the results.
    ///
    /// Exits 0 if all passed, 1 if any failed, 2 on a bad config.
    Once {
        #[command(flatten)]
        config: ConfigArg,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Print the least-privilege IAM policy (JSON) for the configured buckets and prefix.
    IamPolicy(ConfigArg),
    /// The durability set: objects that must never change or disappear.
    #[command(subcommand)]
    Durability(DurabilityCommand),
    /// Print S3 requests per month and the estimated monthly cost per target, and a lifecycle
    /// rule as a safety net. Touches nothing.
    Plan {
        #[command(flatten)]
        config: ConfigArg,
        /// USD per 1,000 PUT/COPY/POST/LIST requests.
        #[arg(long, default_value_t = 0.005)]
        put_price: f64,
        /// USD per 1,000 GET/HEAD requests.
        #[arg(long, default_value_t = 0.0004)]
        get_price: f64,
        /// USD per CloudWatch custom metric and month.
        #[arg(long, default_value_t = 0.30)]
        cw_metric_price: f64,
        /// USD per million SQS requests (the events probe's queue).
        #[arg(long, default_value_t = 0.40)]
        sqs_price: f64,
        /// Replication lag assumed for the HEAD polls of replication canaries.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        replication_lag: std::time::Duration,
    },
}
