use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    s3canary::commands::main(s3canary::cli::Cli::parse())
}
