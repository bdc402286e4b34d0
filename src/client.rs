//! `tributary commit`, `status` and `errors`: clients of a running server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use clap::Args;
use serde_json::Value;
use tributary_proto::v1::{CommitRequest, SourceDefinition};
use tributary_source::{RawSource, load_file, to_commit_sources};

/// Where the server is and how to authenticate.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// The server's URL.
    #[arg(long, env = "TRIBUTARY_SERVER", default_value = "http://127.0.0.1:7878")]
    server: String,
    /// Bearer token (better: the TRIBUTARY_TOKEN environment variable or --token-file; argv is
    /// visible to every local user).
    #[arg(long, env = "TRIBUTARY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Read the bearer token from this file (first line; wins over --token).
    #[arg(long, env = "TRIBUTARY_TOKEN_FILE")]
    token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct CommitArgs {
    /// Definition files (YAML, or JSON when named `*.json`); all form one commit.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Validate on the server without storing anything.
    #[arg(long)]
    dry_run: bool,
    /// A message kept with the new versions.
    #[arg(long, short, default_value = "")]
    message: String,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// A source; all sources when omitted.
    name: Option<String>,
    /// Print the server's JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    /// Print the server's JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TablesArgs {
    /// A table (a dataset's name); all tables when omitted.
    name: Option<String>,
    /// Also print this many rows of the table's current snapshot (at most 1000).
    #[arg(long, default_value_t = 0)]
    rows: usize,
    /// Print the server's JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ErrorsArgs {
    /// The source.
    name: String,
    /// How many rows, newest first.
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Only rows with this reason code (e.g. TYPE_MISMATCH).
    #[arg(long)]
    reason: Option<String>,
    /// Print the server's JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The source.
    name: String,
    /// Only say what a replay would do; without it, land the rows that now decode (exactly once).
    #[arg(long)]
    dry_run: bool,
    /// Only rows rejected for this reason code (e.g. TYPE_MISMATCH).
    #[arg(long)]
    reason: Option<String>,
    /// Decode with this definition file's source of the same name, not committed yet.
    #[arg(long, value_name = "FILE")]
    definition: Option<PathBuf>,
    /// Print the server's JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Exit codes: 0 done, 1 refused (invalid definition, unknown source), 2 cannot ask.
const REFUSED: u8 = 1;
const UNREACHABLE: u8 = 2;

struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// A server answer: status and JSON body.
struct Answer {
    status: u16,
    body: Value,
}

impl Client {
    fn new(args: &ServerArgs) -> Result<Client, String> {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .into();
        let token = match &args.token_file {
            Some(path) => Some(crate::serve::read_token_file(path)?),
            None => args.token.clone(),
        };
        Ok(Client { base: args.server.trim_end_matches('/').to_owned(), token, agent })
    }

    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    fn answer(
        &self,
        url: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, String> {
        let mut response = response.map_err(|error| format!("cannot reach the server at {url}: {error}"))?;
        let status = response.status().as_u16();
        let text =
            response.body_mut().read_to_string().map_err(|error| format!("reading the answer of {url}: {error}"))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
    }

    fn get(&self, path: &str) -> Result<Answer, String> {
        let url = format!("{}{path}", self.base);
        self.answer(&url, self.authorized(self.agent.get(&url)).call())
    }

    fn post(&self, path: &str, body: String) -> Result<Answer, String> {
        let url = format!("{}{path}", self.base);
        let request = self.authorized(self.agent.post(&url)).header("Content-Type", "application/json");
        self.answer(&url, request.send(body))
    }
}

fn error_message(answer: &Answer) -> String {
    match answer.body.get("error").and_then(Value::as_str) {
        Some(message) => format!("HTTP {}: {message}", answer.status),
        None => format!("HTTP {}: {}", answer.status, answer.body),
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

pub(crate) fn commit(args: CommitArgs) -> ExitCode {
    let definitions = match load_definitions(&args.files) {
        Ok(definitions) => definitions,
        Err(code) => return code,
    };
    let request = CommitRequest { sources: definitions, message: args.message.clone() };
    let body = match serde_json::to_string(&request) {
        Ok(body) => body,
        Err(error) => return fail(UNREACHABLE, &format!("encoding the commit: {error}")),
    };
    let path = if args.dry_run { "/api/v1/commit?dry_run=true" } else { "/api/v1/commit" };
    let answer = match Client::new(&args.server).and_then(|client| client.post(path, body)) {
        Ok(answer) => answer,
        Err(error) => return fail(UNREACHABLE, &error),
    };
    if let Some(errors) = answer.body.get("errors").and_then(Value::as_array).filter(|errors| !errors.is_empty()) {
        for error in errors {
            let text = |key: &str| error.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
            println!("{} {}.{}: {}", text("code"), text("source"), text("field"), text("message"));
        }
        return ExitCode::from(REFUSED);
    }
    if answer.status != 200 {
        return fail(REFUSED, &error_message(&answer));
    }
    if args.dry_run {
        println!("valid (dry run, nothing stored)");
        return ExitCode::SUCCESS;
    }
    for version in answer.body.get("versions").and_then(Value::as_array).into_iter().flatten() {
        let source = version.get("source").and_then(Value::as_str).unwrap_or_default();
        // proto3 JSON writes 64-bit integers as strings.
        let number =
            version.get("version").map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).unwrap_or_default();
        println!("committed {source} v{number}");
    }
    ExitCode::SUCCESS
}

/// The sources of definition `files` as a commit sends them; on failure the
/// exit code, its reason printed (a file that cannot be read, or each error
/// of a definition that does not validate).
fn load_definitions(files: &[PathBuf]) -> Result<Vec<SourceDefinition>, ExitCode> {
    let mut sources: Vec<RawSource> = Vec::new();
    for path in files {
        let file = load_file(path).map_err(|error| fail(UNREACHABLE, &error.to_string()))?;
        sources.extend(file.sources);
    }
    to_commit_sources(&sources, Utc::now()).map_err(|errors| {
        errors.iter().for_each(|error| println!("{error}"));
        ExitCode::from(REFUSED)
    })
}

/// A value of the server's answer, safe to print on a terminal.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => terminal_safe(text),
        other => terminal_safe(&other.to_string()),
    }
}

/// GETs `path`: the JSON body to format, or `None` once printed as JSON
/// (`--json`), or the exit code of a failure (already reported).
fn fetch(client: &Client, path: &str, json: bool) -> Result<Option<Value>, ExitCode> {
    let answer = client.get(path).map_err(|error| fail(UNREACHABLE, &error))?;
    if answer.status != 200 {
        return Err(fail(REFUSED, &error_message(&answer)));
    }
    if json {
        println!("{:#}", answer.body);
        return Ok(None);
    }
    Ok(Some(answer.body))
}

pub(crate) fn status(args: StatusArgs) -> ExitCode {
    let client = match Client::new(&args.server) {
        Ok(client) => client,
        Err(error) => return fail(UNREACHABLE, &error),
    };
    let path = match &args.name {
        Some(name) => format!("/api/v1/sources/{}/status", encode(name)),
        None => "/api/v1/sources".to_owned(),
    };
    let body = match fetch(&client, &path, args.json) {
        Ok(Some(body)) => body,
        Ok(None) => return ExitCode::SUCCESS,
        Err(code) => return code,
    };
    let body = &body;
    if args.name.is_none() {
        println!("{:<24} {:>7} {:<9} STREAM", "SOURCE", "VERSION", "STATE");
        for source in body.get("sources").and_then(Value::as_array).into_iter().flatten() {
            println!(
                "{:<24} {:>7} {:<9} {}",
                text(&source["name"]),
                text(&source["version"]),
                text(&source["state"]),
                text(&source["stream_arn"])
            );
        }
        return ExitCode::SUCCESS;
    }
    println!(
        "source {} v{}: {}  rows={} rejected={} filtered={} late={} watermark={} lag={}ms restarts={} last_commit={}",
        text(&body["source"]),
        text(&body["version"]),
        text(&body["state"]),
        text(&body["rows"]),
        text(&body["rejected"]),
        text(&body["filtered"]),
        text(&body["late"]),
        text(&body["watermark"]),
        text(&body["lag_millis"]),
        text(&body["restarts"]),
        text(&body["last_commit_at"])
    );
    if let Some(error) = body["error"].as_str() {
        println!("error: {error}");
    }
    println!(
        "dataset {}: {} rows, {} bytes",
        text(&body["dataset"]["name"]),
        text(&body["dataset"]["rows"]),
        text(&body["dataset"]["bytes"])
    );
    if body["table"].is_object() {
        println!(
            "table {}: snapshot {}, {} rows in {} files at {}",
            text(&body["table"]["name"]),
            text(&body["table"]["snapshot_id"]),
            text(&body["table"]["rows"]),
            text(&body["table"]["files"]),
            text(&body["table"]["location"])
        );
    }
    if body["cluster"].is_object() {
        print_leased_shards(body);
        return ExitCode::SUCCESS;
    }
    println!("{:<24} {:<9} {:>9} {:>9} {:>10}  CHECKPOINT", "SHARD", "STATE", "ROWS", "REJECTED", "LAG_MS");
    for shard in body.get("shards").and_then(Value::as_array).into_iter().flatten() {
        println!(
            "{:<24} {:<9} {:>9} {:>9} {:>10}  {}",
            text(&shard["shard_id"]),
            text(&shard["state"]),
            text(&shard["rows"]),
            text(&shard["rejected"]),
            text(&shard["millis_behind_latest"]),
            checkpoint_text(&shard["checkpoint"])
        );
    }
    ExitCode::SUCCESS
}

/// A checkpoint as `sequence/sub`, a KCL sentinel, or `-`.
fn checkpoint_text(checkpoint: &Value) -> String {
    match checkpoint {
        Value::Null => "-".to_owned(),
        Value::String(_) => text(checkpoint),
        position => match position["sub_sequence"].as_u64() {
            Some(sub) => format!("{}/{sub}", text(&position["sequence_number"])),
            None => text(&position["sequence_number"]),
        },
    }
}

/// Cluster mode: every shard with its lease (owner, address, epoch, age), wherever it is read.
fn print_leased_shards(body: &Value) {
    println!("cluster {} (answered by node {})", text(&body["cluster"]["name"]), text(&body["cluster"]["node_id"]));
    println!(
        "{:<24} {:<9} {:<28} {:<21} {:>5} {:>8} {:>10}  CHECKPOINT",
        "SHARD", "STATE", "OWNER", "ADDRESS", "EPOCH", "AGE_MS", "LAG_MS"
    );
    for shard in body.get("shards").and_then(Value::as_array).into_iter().flatten() {
        let lease = &shard["lease"];
        println!(
            "{:<24} {:<9} {:<28} {:<21} {:>5} {:>8} {:>10}  {}",
            text(&shard["shard_id"]),
            text(&shard["state"]),
            text(&lease["owner"]),
            text(&lease["owner_address"]),
            text(&lease["epoch"]),
            text(&lease["age_millis"]),
            text(&lease["lag_millis"]),
            checkpoint_text(&lease["checkpoint"])
        );
    }
}

/// `tributary cluster`: the cluster's nodes.
pub(crate) fn cluster(args: ClusterArgs) -> ExitCode {
    let client = match Client::new(&args.server) {
        Ok(client) => client,
        Err(error) => return fail(UNREACHABLE, &error),
    };
    let body = match fetch(&client, "/api/v1/cluster", args.json) {
        Ok(Some(body)) => body,
        Ok(None) => return ExitCode::SUCCESS,
        Err(code) => return code,
    };
    println!("cluster {}", text(&body["cluster"]));
    println!("{:<28} {:<21} {:>6} {:<5} {:<32} STARTED", "NODE", "ADDRESS", "SHARDS", "LIVE", "LAST_HEARTBEAT");
    for node in body.get("nodes").and_then(Value::as_array).into_iter().flatten() {
        let marker = if node["this_node"] == true { " (this node)" } else { "" };
        let live = if node["live"] == true { "yes" } else { "no" };
        println!(
            "{:<28} {:<21} {:>6} {live:<5} {:<32} {}{marker}",
            text(&node["id"]),
            text(&node["address"]),
            text(&node["shards_held"]),
            text(&node["last_heartbeat"]),
            text(&node["started_at"])
        );
    }
    ExitCode::SUCCESS
}

pub(crate) fn tables(args: TablesArgs) -> ExitCode {
    let client = match Client::new(&args.server) {
        Ok(client) => client,
        Err(error) => return fail(UNREACHABLE, &error),
    };
    let path = match &args.name {
        Some(name) => format!("/api/v1/tables/{}?rows={}", encode(name), args.rows),
        None => "/api/v1/tables".to_owned(),
    };
    let body = match fetch(&client, &path, args.json) {
        Ok(Some(body)) => body,
        Ok(None) => return ExitCode::SUCCESS,
        Err(code) => return code,
    };
    let tables = match &args.name {
        Some(_) => vec![body.clone()],
        None => body.get("tables").and_then(Value::as_array).cloned().unwrap_or_default(),
    };
    if let (Some(catalog), Some(warehouse)) = (body["catalog"].as_str(), body["warehouse"].as_str()) {
        println!("catalog {}, warehouse {}", terminal_safe(catalog), terminal_safe(warehouse));
    }
    println!("{:<24} {:>20} {:>10} {:>7}  LOCATION", "TABLE", "SNAPSHOT", "ROWS", "FILES");
    for table in &tables {
        println!(
            "{:<24} {:>20} {:>10} {:>7}  {}",
            text(&table["name"]),
            text(&table["snapshot_id"]),
            text(&table["rows"]),
            text(&table["files"]),
            text(&table["location"])
        );
    }
    for row in body.get("sample").and_then(Value::as_array).into_iter().flatten() {
        println!("  {}", terminal_safe(&row.to_string()));
    }
    ExitCode::SUCCESS
}

pub(crate) fn errors(args: ErrorsArgs) -> ExitCode {
    let client = match Client::new(&args.server) {
        Ok(client) => client,
        Err(error) => return fail(UNREACHABLE, &error),
    };
    let mut path = format!("/api/v1/sources/{}/errors?limit={}", encode(&args.name), args.limit);
    if let Some(reason) = &args.reason {
        path.push_str(&format!("&reason={}", encode(reason)));
    }
    let body = match fetch(&client, &path, args.json) {
        Ok(Some(body)) => body,
        Ok(None) => return ExitCode::SUCCESS,
        Err(code) => return code,
    };
    let rows = body.get("errors").and_then(Value::as_array).cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("no rejected rows");
    }
    for row in rows {
        let sequence = match row["sub_sequence"].as_u64() {
            Some(sub) => format!("{}/{sub}", text(&row["sequence_number"])),
            None => text(&row["sequence_number"]),
        };
        let field = row["field"].as_str().filter(|field| !field.is_empty()).unwrap_or("(record)");
        println!(
            "{} {} shard={} seq={sequence} at {}",
            text(&row["reason"]),
            field,
            text(&row["shard_id"]),
            text(&row["arrival_time"])
        );
        println!("  {}", text(&row["message"]));
        let truncated = if row["payload_truncated"].as_bool() == Some(true) {
            format!(" (first {} of {} bytes)", 64 * 1024, text(&row["payload_length"]))
        } else {
            String::new()
        };
        println!("  payload [{}]{truncated}: {}", text(&row["payload_encoding"]), text(&row["payload"]));
    }
    ExitCode::SUCCESS
}

pub(crate) fn replay(args: ReplayArgs) -> ExitCode {
    let mut request = serde_json::json!({ "dry_run": args.dry_run });
    if let Some(reason) = &args.reason {
        request["reason"] = Value::String(reason.clone());
    }
    if let Some(path) = &args.definition {
        let definitions = match load_definitions(std::slice::from_ref(path)) {
            Ok(definitions) => definitions,
            Err(code) => return code,
        };
        let Some(draft) = definitions.into_iter().find(|definition| definition.name == args.name) else {
            return fail(REFUSED, &format!("{} defines no source named `{}`", path.display(), args.name));
        };
        request["draft"] = match serde_json::to_value(&draft) {
            Ok(draft) => draft,
            Err(error) => return fail(UNREACHABLE, &format!("encoding the draft: {error}")),
        };
    }
    let path = format!("/api/v1/sources/{}/replay", encode(&args.name));
    let answer = match Client::new(&args.server).and_then(|client| client.post(&path, request.to_string())) {
        Ok(answer) => answer,
        Err(error) => return fail(UNREACHABLE, &error),
    };
    if answer.status != 200 {
        return fail(REFUSED, &error_message(&answer));
    }
    let body = answer.body;
    if args.json {
        println!("{body}");
        return ExitCode::SUCCESS;
    }
    if body["dry_run"] == Value::Bool(false) {
        println!(
            "replayed with version {}: {} rows landed, {} filtered by the rules, {} still rejected, {} kept only in part",
            text(&body["version"]),
            text(&body["landed"]),
            text(&body["filtered"]),
            text(&body["still_rejected"]),
            text(&body["truncated"])
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "{} rejected rows examined with {}: {} would land, {} filtered by the rules, {} still rejected, {} kept only in part",
        text(&body["examined"]),
        match &body["decoded_with"] {
            Value::String(draft) => terminal_safe(draft),
            version => format!("version {version}"),
        },
        text(&body["would_land"]),
        text(&body["filtered"]),
        text(&body["still_rejected"]),
        text(&body["truncated"])
    );
    for reason in body["by_reason"].as_array().into_iter().flatten() {
        println!(
            "{}: {} rows, {} would land, {} filtered, {} still rejected",
            text(&reason["reason"]),
            text(&reason["rows"]),
            text(&reason["would_land"]),
            text(&reason["filtered"]),
            text(&reason["still_rejected"])
        );
        for example in reason["examples"].as_array().into_iter().flatten() {
            let now = &example["now"];
            let outcome = match now["outcome"].as_str() {
                Some("lands" | "filtered") => format!("{} {}", text(&now["outcome"]), text(&now["row"])),
                _ => format!("{} {} {}", text(&now["outcome"]), text(&now["reason"]), text(&now["message"])),
            };
            println!("  shard={} seq={}", text(&example["shard_id"]), text(&example["sequence_number"]));
            println!("    was: {} {}", text(&example["was"]["field"]), text(&example["was"]["message"]));
            println!("    now: {outcome}");
        }
    }
    ExitCode::SUCCESS
}

/// A path segment or query value, percent-encoded (RFC 3986 unreserved characters pass),
/// so a name like `../x` or `a?b` stays one part.
fn encode(text: &str) -> String {
    const COMPONENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(text, COMPONENT).to_string()
}

/// Server text as it may be printed on a terminal: control characters (escape
/// sequences, carriage returns) and bidirectional overrides from a payload are
/// shown escaped, never interpreted.
fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}');
        if c.is_control() || bidi {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parts_are_encoded() {
        assert_eq!(encode("orders"), "orders");
        assert_eq!(encode("../metrics?x=1"), "..%2Fmetrics%3Fx%3D1");
        assert_eq!(encode("TYPE MISMATCH&a"), "TYPE%20MISMATCH%26a");
    }

    #[test]
    fn terminal_escapes_are_shown_not_run() {
        assert_eq!(terminal_safe("ok {\"a\": 1}"), "ok {\"a\": 1}");
        assert_eq!(terminal_safe("\u{1b}]0;pwned\u{7}\u{1b}[2J"), "\\u{1b}]0;pwned\\u{7}\\u{1b}[2J");
        assert_eq!(terminal_safe("a\rb\nc"), "a\\rb\\nc");
        assert_eq!(terminal_safe("x\u{202E}y"), "x\\u{202e}y");
        assert_eq!(terminal_safe("héllo"), "héllo");
    }
}
