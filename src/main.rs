//! The `tributary` command line: thin, everything real lives in the crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod validate;

/// Ingest AWS Kinesis Data Streams into typed Arrow datasets.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate definition files; exit 0 when valid, 1 when invalid, 2 when a file cannot be read or parsed.
    ///
    /// Prints one line per error: `CODE source.field: message`. All files form one commit:
    /// source names must be unique across them.
    Validate(validate::ValidateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => validate::run(args),
    }
}
