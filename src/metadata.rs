//! `tributary metadata ingest` and `test-connection`: OpenMetadata's Kinesis
//! workflow YAML, run by Tributary (the crates do the work; this wires them).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use clap::{Args, Subcommand};
use tributary_metadata::{
    DEFAULT_DATABASE_SERVICE, Progress, RunOptions, Summary, WorkflowConfig, run, test_connection,
};

/// Exit codes: 0 all published, 1 something failed, 2 the workflow file is unusable.
const FAILED: u8 = 1;
const INVALID: u8 = 2;

#[derive(Debug, Subcommand)]
pub(crate) enum MetadataCommand {
    /// Run the workflow: list, filter, describe and sample streams, publish topics (and, with a
    /// Tributary server, schemas and lineage). Prints a summary; exit 1 when anything failed.
    Ingest(IngestArgs),
    /// Run each step of OpenMetadata's Kinesis test connection; exit 0 only if all pass.
    TestConnection(ConnectionArgs),
    /// Extract as `ingest` does, but write the entities as JSON lines on stdout instead of
    /// publishing them (the workflow's `sink` is not used): what the Python connector for
    /// OpenMetadata's Custom Messaging service reads. The last line is `{"entity": "summary"}`.
    Extract(ExtractArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ExtractArgs {
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Run again every DURATION (e.g. `1h`, `30m`) until SIGTERM or Ctrl-C, which stop between runs.
    #[arg(long, value_parser = parse_every)]
    every: Option<Duration>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The workflow YAML (OpenMetadata's format; `$VAR` and `${VAR}` are expanded).
    #[arg(short = 'c', long = "config")]
    config: PathBuf,
    /// Sample records per stream when `generateSampleData` is on.
    #[arg(long, default_value_t = 10)]
    sample_size: usize,
    /// Streams described at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Page size of ListStreams and ListShards (Kinesis' defaults when unset).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=10000))]
    page_size: Option<i32>,
    /// A Tributary server whose committed sources add message schemas, lineage and pipeline status.
    #[arg(long, env = "TRIBUTARY_SERVER")]
    tributary_server: Option<String>,
    /// Its bearer token (better: the TRIBUTARY_TOKEN environment variable).
    #[arg(long, env = "TRIBUTARY_TOKEN", hide_env_values = true)]
    tributary_token: Option<String>,
    /// The OpenMetadata database service (your Glue connector's) a source's Glue table is cataloged under.
    #[arg(long, env = "TRIBUTARY_OM_DATABASE_SERVICE", default_value = DEFAULT_DATABASE_SERVICE)]
    database_service: String,
    /// Bound in seconds on each AWS call.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

impl RunArgs {
    fn options(&self) -> RunOptions {
        RunOptions {
            concurrency: usize::from(self.concurrency),
            sample_size: self.sample_size,
            page_size: self.page_size,
            tributary_server: self.tributary_server.clone(),
            tributary_token: self.tributary_token.clone(),
            call_timeout: Duration::from_secs(self.timeout.max(1)),
            database_service: self.database_service.clone(),
            ..RunOptions::default()
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ConnectionArgs {
    /// The workflow YAML.
    #[arg(short = 'c', long = "config")]
    config: PathBuf,
    /// Bound in seconds on each step.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

fn parse_every(text: &str) -> Result<Duration, String> {
    match tributary_source::parse_duration(text)? {
        0 => Err("must be longer than zero".to_owned()),
        seconds => Ok(Duration::from_secs(seconds)),
    }
}

pub(crate) fn run_command(command: MetadataCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::from(FAILED);
        }
    };
    match command {
        MetadataCommand::Ingest(args) => runtime.block_on(ingest(args)),
        MetadataCommand::TestConnection(args) => runtime.block_on(connection(args)),
        MetadataCommand::Extract(args) => runtime.block_on(extract(args)),
    }
}

fn load(path: &std::path::Path) -> Result<WorkflowConfig, ExitCode> {
    WorkflowConfig::load(path).map_err(|error| {
        eprintln!("invalid workflow: {error}");
        ExitCode::from(INVALID)
    })
}

async fn connection(args: ConnectionArgs) -> ExitCode {
    let config = match load(&args.config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let steps = test_connection(&config, Duration::from_secs(args.timeout)).await;
    let mut failed = false;
    for step in steps {
        match step.outcome {
            Some(Ok(detail)) => println!("PASS {}: {detail}", step.name),
            Some(Err(detail)) => {
                failed = true;
                println!("FAIL {}: {detail}", step.name);
            }
            None => println!("SKIP {}: nothing to try it on", step.name),
        }
    }
    if failed { ExitCode::from(FAILED) } else { ExitCode::SUCCESS }
}

async fn ingest(args: IngestArgs) -> ExitCode {
    let config = match load(&args.run.config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let options = args.run.options();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::new(tokio::sync::Notify::new());
    if args.every.is_some() {
        let (stop, stopped) = (Arc::clone(&stop), Arc::clone(&stopped));
        tokio::spawn(async move {
            wait_for_stop_signal().await;
            stop.store(true, Ordering::SeqCst);
            stopped.notify_one();
        });
    }
    let mut run_number = 0u64;
    loop {
        run_number += 1;
        let code = ingest_once(&config, &options, args.every.map(|_| run_number)).await;
        let Some(every) = args.every else { return code };
        if stop.load(Ordering::SeqCst) {
            eprintln!("stopping: signal received");
            return code;
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stopped.notified() => {
                eprintln!("stopping: signal received between runs");
                return code;
            }
        }
    }
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn ingest_once(config: &WorkflowConfig, options: &RunOptions, run_number: Option<u64>) -> ExitCode {
    if let Some(number) = run_number {
        eprintln!("run {number}");
    }
    let progress = ProgressLine::new();
    let outcome = run(config, options, &|update| progress.show(update)).await;
    progress.finish();
    match outcome {
        Ok(summary) => print_summary(&config.service_name, &summary),
        Err(error) => {
            if error.is_access_denied() {
                eprintln!(
                    "error: {error}\n  the workflow's AWS identity needs kinesis:ListStreams (and DescribeStreamSummary, ListShards, GetShardIterator, GetRecords)"
                );
            } else {
                eprintln!("error: {error}");
            }
            println!("{}", Summary::default().line());
            ExitCode::from(FAILED)
        }
    }
}

fn print_summary(service: &str, summary: &Summary) -> ExitCode {
    for (name, why) in &summary.failed {
        println!("FAILED {name}: {why}");
    }
    for warning in &summary.warnings {
        println!("WARNING {warning}");
    }
    for name in &summary.deleted {
        println!("DELETED {name} (stale topic of service `{service}`, soft-deleted)");
    }
    println!("{}", summary.line());
    if summary.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(FAILED) }
}

async fn extract(args: ExtractArgs) -> ExitCode {
    let config = match load(&args.run.config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let options = RunOptions { emit_entities: true, ..args.run.options() };
    let progress = ProgressLine::new();
    let outcome = run(&config, &options, &|update| progress.show(update)).await;
    progress.finish();
    let summary = match outcome {
        Ok(summary) => summary,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(FAILED);
        }
    };
    let mut lines: Vec<serde_json::Value> = Vec::new();
    for (name, error) in &summary.failed {
        lines.push(serde_json::json!({"entity": "failure", "name": name, "error": error}));
    }
    for warning in &summary.warnings {
        lines.push(serde_json::json!({"entity": "warning", "message": warning}));
    }
    lines.push(serde_json::json!({"entity": "summary", "line": summary.line(), "listed": summary.listed,
        "filtered": summary.filtered, "published": summary.published}));
    let mut stdout = std::io::stdout().lock();
    for line in lines {
        if writeln!(stdout, "{line}").is_err() {
            return ExitCode::from(FAILED);
        }
    }
    if summary.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(FAILED) }
}

/// Progress on standard error: one rewritten line on a terminal, a few plain lines otherwise.
struct ProgressLine {
    terminal: bool,
    last_printed: AtomicUsize,
}

impl ProgressLine {
    fn new() -> ProgressLine {
        ProgressLine { terminal: std::io::stderr().is_terminal(), last_printed: AtomicUsize::new(usize::MAX) }
    }

    fn show(&self, progress: Progress) {
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            let width = 30;
            let filled = (progress.done * width).checked_div(progress.total).unwrap_or(width);
            let _ = write!(
                stderr,
                "\r[{}{}] {}/{} streams described",
                "#".repeat(filled),
                " ".repeat(width - filled),
                progress.done,
                progress.total
            );
            let _ = stderr.flush();
            return;
        }
        // About ten lines per run, plus the first and the last.
        let step = (progress.total / 10).max(1);
        let tenth = progress.done / step;
        if progress.done == 0
            || progress.done == progress.total
            || self.last_printed.swap(tenth, Ordering::Relaxed) != tenth
        {
            let _ = writeln!(stderr, "described {}/{} streams", progress.done, progress.total);
        }
    }

    fn finish(&self) {
        if self.terminal {
            let _ = writeln!(std::io::stderr());
        }
    }
}
