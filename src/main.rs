//! The `tributary` command line: thin, everything real lives in the crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod client;
mod decode;
mod metadata;
mod serve;
mod validate;

/// Ingest AWS Kinesis Data Streams into typed Arrow datasets.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
    /// Run the API and one continuous ingest worker per committed source.
    Serve(Box<serve::ServeArgs>),
    /// Commit definition files to a server: validate and store a new version of each source.
    Commit(client::CommitArgs),
    /// Show the sources, or one source's workers, shards, checkpoints, lag and counts.
    Status(client::StatusArgs),
    /// Show the cluster's nodes (id, address, shards held, last heartbeat); cluster mode only.
    Cluster(client::ClusterArgs),
    /// Show the datasets' Iceberg tables (location, current snapshot, rows, files), or one table's first rows.
    Tables(client::TablesArgs),
    /// Show a source's rejected rows, newest first, with reason, field, shard, sequence and payload.
    Errors(client::ErrorsArgs),
    /// Replay a source's rejected rows: land those that now decode with the current version,
    /// exactly once; with `--dry-run`, only say how many would (also with a definition file
    /// not committed yet), by old reason.
    Replay(client::ReplayArgs),
    /// OpenMetadata's Kinesis metadata workflow: publish topics, sample data, schemas and lineage.
    #[command(subcommand)]
    Metadata(metadata::MetadataCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Decode(args) => decode::run(args),
        Command::Serve(args) => serve::run(*args),
        Command::Commit(args) => client::commit(args),
        Command::Status(args) => client::status(args),
        Command::Errors(args) => client::errors(args),
        Command::Replay(args) => client::replay(args),
        Command::Tables(args) => client::tables(args),
        Command::Cluster(args) => client::cluster(args),
        Command::Metadata(command) => metadata::run_command(command),
    }
}
