//! The `tributary` command line: thin, everything real lives in the crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod decode;
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
    /// Decode a file of records with a source's schema: Parquet out, rejections as JSON lines.
    ///
    /// JSON input holds one record per line; Avro input one base64 payload per line.
    /// Prints `rows=N rejected=M` last.
    Decode(decode::DecodeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Decode(args) => decode::run(args),
    }
}
