//! `tributary validate FILE... [--live]`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use clap::Args;
use tributary_codec::compile_check;
use tributary_source::{
    AwsSettings, ClientFactory, RawSource, SecretPolicy, ValidationError, live, load_file, validate_raw_sources_with,
};

/// Exit code when every source is valid.
const VALID: u8 = 0;
/// Exit code when any source is invalid.
const INVALID: u8 = 1;
/// Exit code when a file cannot be read or parsed (clap uses it for usage errors too).
const UNREADABLE: u8 = 2;

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Definition files (YAML, or JSON when named `*.json`).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Also check against AWS: assume the role, describe the stream, prove each read permission.
    #[arg(long)]
    live: bool,
    /// Seconds the live checks of one source may take.
    #[arg(long, default_value_t = live::DEFAULT_TIMEOUT.as_secs_f64(), value_name = "SECONDS")]
    timeout: f64,
    /// Secrets may name (`{env: VAR}`) only environment variables starting with this (as `serve`'s).
    #[arg(long, env = "TRIBUTARY_SECRET_ENV_PREFIX", default_value = tributary_source::DEFAULT_SECRET_ENV_PREFIX, value_parser = crate::serve::parse_prefix)]
    secret_env_prefix: String,
}

pub(crate) fn run(args: ValidateArgs) -> ExitCode {
    let timeout = match Duration::try_from_secs_f64(args.timeout) {
        Ok(timeout) if !timeout.is_zero() => timeout,
        _ => {
            eprintln!("error: --timeout must be a positive number of seconds, got {}", args.timeout);
            return ExitCode::from(UNREADABLE);
        }
    };
    let mut sources: Vec<RawSource> = Vec::new();
    let mut unreadable = false;
    for path in &args.files {
        match load_file(path) {
            Ok(file) => sources.extend(file.sources),
            Err(error) => {
                eprintln!("{error}");
                unreadable = true;
            }
        }
    }
    if unreadable {
        return ExitCode::from(UNREADABLE);
    }
    let policy = SecretPolicy { env_prefix: args.secret_env_prefix.clone() };
    let validated = match validate_raw_sources_with(&sources, Utc::now(), &policy) {
        Ok(validated) => validated,
        Err(errors) => {
            for error in errors {
                println!("{error}");
            }
            return ExitCode::from(INVALID);
        }
    };
    let codec_errors: Vec<ValidationError> =
        validated.iter().filter_map(|source| compile_check(source).err()).collect();
    if !codec_errors.is_empty() {
        for error in codec_errors {
            println!("{error}");
        }
        return ExitCode::from(INVALID);
    }
    if args.live {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("error: cannot start the async runtime: {error}");
                return ExitCode::from(UNREADABLE);
            }
        };
        let failures = runtime.block_on(async {
            let factory = ClientFactory::load(AwsSettings::default(), timeout).await;
            // In definition order, so output is stable; each source has its own timeout.
            let mut failures = Vec::with_capacity(validated.len());
            for source in &validated {
                failures.push(
                    live::check_source(&factory, source, timeout, tributary_codec::check_registered_schema).await.err(),
                );
            }
            failures
        });
        let mut any_failed = false;
        for failure in failures.into_iter().flatten() {
            println!("{failure}");
            any_failed = true;
        }
        if any_failed {
            return ExitCode::from(INVALID);
        }
    }
    let names: Vec<&str> = validated.iter().map(|s| s.name.as_str()).collect();
    let mode = if args.live { "valid (live)" } else { "valid" };
    println!("{mode}: {}", names.join(", "));
    ExitCode::from(VALID)
}
