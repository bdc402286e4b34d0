//! `tributary decode`: run a whole source definition on a file of records.
//!
//! Bare JSON input is one record per line; every other format (Avro,
//! Protobuf, anything framed by a registry) is one base64 payload per line.
//! Glue Schema Registry schemas are read with the AWS credentials of the
//! environment (and the registry's or source's role). Every line is decoded as the worker would (preproc, cdc), then the
//! source's rules apply (`where`, `since`/`until`, `disorder`, `sample`), the
//! lines standing for records in arrival order. Written rows go to Parquet,
//! rejections to JSON lines, and the last line printed is
//! `rows=N rejected=M filtered=F late=L` (late rows kept by `late: keep` are
//! in `rows` too). It is both a way to try a definition on sample data and the
//! codec's end-to-end benchmark entry.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use arrow_array::RecordBatch;
use base64::Engine as _;
use chrono::Utc;
use clap::Args;
use parquet::arrow::ArrowWriter;
use tributary_codec::{DecodeError, DecodedBatch, Decoder, OutcomeCounts, RecordMeta, Registries, SourceRules};
use tributary_sink::writer_properties;
use tributary_source::{AwsSettings, ClientFactory, Format, live, load_file, validate_raw_sources};

/// Rows per decoded batch.
const BATCH_ROWS: usize = 8192;
/// Attempts at a record while the schema registry is unavailable.
const REGISTRY_ATTEMPTS: u32 = 5;

#[derive(Debug, Args)]
pub(crate) struct DecodeArgs {
    /// The definition file holding the source.
    #[arg(long)]
    definition: PathBuf,
    /// The source's name in that file.
    #[arg(long)]
    source: String,
    /// Records: bare JSON, one per line; any other format, one base64 payload per line.
    #[arg(long)]
    input: PathBuf,
    /// Write accepted rows here (Parquet, zstd).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Write rejections here, one JSON object per line.
    #[arg(long)]
    errors: Option<PathBuf>,
}

pub(crate) fn run(args: DecodeArgs) -> ExitCode {
    match decode(&args) {
        Ok(Totals { counts, rejected }) => {
            println!("rows={} rejected={rejected} filtered={} late={}", counts.rows, counts.filtered, counts.late);
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// What a run did with the lines.
struct Totals {
    counts: OutcomeCounts,
    rejected: u64,
}

fn decode(args: &DecodeArgs) -> Result<Totals, String> {
    let file = load_file(&args.definition).map_err(|e| e.to_string())?;
    let sources = validate_raw_sources(&file.sources, Utc::now())
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))?;
    let source = sources
        .iter()
        .find(|s| s.name == args.source)
        .ok_or_else(|| format!("no source `{}` in {}", args.source, args.definition.display()))?;
    // Everything but bare JSON text is binary.
    let base64_lines = !matches!(source.kinesis.format, Format::Json { glue: None });
    // A Glue registry is asked through the AWS SDK, which wants a runtime for as long as the decoder lives.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("starting the AWS client's runtime: {e}"))?;
    let registries = match source.kinesis.format.glue_registry() {
        Some(_) => runtime.block_on(async {
            let factory = ClientFactory::load(AwsSettings::default(), live::DEFAULT_TIMEOUT).await;
            tributary_server::registries_for(&factory, source).await
        }),
        None => Ok(Registries::default()),
    }
    .map_err(|e| format!("source `{}`: schema registry: {e}", source.name))?;
    let mut decoder =
        Decoder::with_registries(source, registries).map_err(|e| format!("source `{}`: {e}", source.name))?;
    decoder.expect_rows(BATCH_ROWS);
    let mut rules = SourceRules::new(source, None);

    let input = File::open(&args.input).map_err(|e| format!("{}: {e}", args.input.display()))?;
    // The writer starts with the first batch, whose values choose the columns' encodings.
    let mut output = match &args.output {
        Some(path) => Output::Unstarted(File::create(path).map_err(|e| format!("{}: {e}", path.display()))?),
        None => Output::None,
    };
    let mut errors = match &args.errors {
        Some(path) => Some(BufWriter::new(File::create(path).map_err(|e| format!("{}: {e}", path.display()))?)),
        None => None,
    };

    let arrival = Utc::now().timestamp_micros();
    let (mut counts, mut rejected) = (OutcomeCounts::default(), 0u64);
    let mut flush = |decoder: &mut Decoder, output: &mut Output, errors: &mut Option<BufWriter<File>>| {
        let DecodedBatch { batch, rejections } = decoder.flush().map_err(|e| e.to_string())?;
        let applied = rules.apply(&batch).map_err(|e| format!("applying the source's rules: {e}"))?;
        applied.outcomes.iter().for_each(|outcome| counts.add(*outcome));
        rejected += rejections.len() as u64;
        output.write(&applied.batch)?;
        if let Some(out) = errors {
            for rejection in rejections {
                let line = serde_json::json!({
                    "line": rejection.sequence_number,
                    "code": rejection.code().as_str(),
                    "field": &*rejection.field,
                    "message": rejection.message(),
                    "payload": readable(&rejection.payload),
                });
                writeln!(out, "{line}").map_err(|e| e.to_string())?;
            }
        }
        Ok::<(), String>(())
    };

    let mut base64_failures = 0u64;
    for (index, line) in BufReader::new(input).split(b'\n').enumerate() {
        let mut line = line.map_err(|e| format!("{}: {e}", args.input.display()))?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let number = (index + 1).to_string();
        let payload = if base64_lines {
            match base64::engine::general_purpose::STANDARD.decode(line.trim_ascii()) {
                Ok(bytes) => bytes,
                Err(e) => {
                    base64_failures += 1;
                    if let Some(out) = &mut errors {
                        let entry = serde_json::json!({"line": number, "code": "MALFORMED", "field": "",
                            "message": format!("the line is not base64: {e}"), "payload": readable(&line)});
                        writeln!(out, "{entry}").map_err(|e| e.to_string())?;
                    }
                    continue;
                }
            }
        } else {
            line
        };
        let meta = RecordMeta {
            shard_id: "file",
            sequence_number: &number,
            sub_sequence: None,
            partition_key: "",
            arrival_time_micros: arrival,
        };
        let mut attempt = 0;
        loop {
            match decoder.decode(&payload, &meta) {
                Ok(_) => break,
                Err(DecodeError::BatchFull) => flush(&mut decoder, &mut output, &mut errors)?,
                Err(e @ DecodeError::RegistryUnavailable(_)) if attempt + 1 < REGISTRY_ATTEMPTS => {
                    attempt += 1;
                    eprintln!("warning: line {number}: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(200 << attempt));
                }
                Err(e) => return Err(format!("line {number}: {e}")),
            }
        }
        if decoder.len() + decoder.rejected() >= BATCH_ROWS {
            flush(&mut decoder, &mut output, &mut errors)?;
        }
    }
    flush(&mut decoder, &mut output, &mut errors)?;
    if let Output::Started(writer) = output {
        writer.close().map_err(|e| e.to_string())?;
    }
    if let Some(mut out) = errors {
        out.flush().map_err(|e| e.to_string())?;
    }
    Ok(Totals { counts, rejected: rejected + base64_failures })
}

/// Where accepted rows go.
enum Output {
    None,
    /// The file, before the first batch.
    Unstarted(File),
    Started(Box<ArrowWriter<File>>),
}

impl Output {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), String> {
        let mut writer = match std::mem::replace(self, Output::None) {
            Output::None => return Ok(()),
            Output::Unstarted(file) => {
                let properties = writer_properties(batch).map_err(|e| e.to_string())?;
                Box::new(ArrowWriter::try_new(file, batch.schema(), Some(properties)).map_err(|e| e.to_string())?)
            }
            Output::Started(writer) => writer,
        };
        let written = writer.write(batch).map_err(|e| e.to_string());
        *self = Output::Started(writer);
        written
    }
}

/// A payload as text when it is UTF-8, else base64.
fn readable(payload: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(payload) {
        Ok(text) => serde_json::json!(text),
        Err(_) => serde_json::json!({ "base64": base64::engine::general_purpose::STANDARD.encode(payload) }),
    }
}
