//! The web console in a real browser (Debian's chromium through
//! chromedriver), against kinesis-local: the login a token asks for, a
//! source's shards, lag and charts, the rejected rows filtered by reason with
//! a hostile payload shown as text and no script run, and the fix-and-replay
//! flow (dry run, commit the fix, replay, the server killed mid-replay,
//! replay again) ending with every fixed row once in the table, read back by
//! pyiceberg. Screenshots of each page go to `target/tmp/console-screenshots`.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use support::lakehouse::{ids, pyiceberg};
use support::server::ServerProcess;
use support::{Emulators, create_stream, kinesis_client, put_indexed, tributary, unique};

const TOKEN: &str = "console-test-token-5f1d";
const HOSTILE: &str = "<img src=x onerror=alert(1)>";

/// chromedriver on a port of its own, stopped (by PID) when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    /// `None` outside CI when chromedriver is not installed (CI fails instead).
    fn start() -> Option<Driver> {
        let path = std::env::var("TRIBUTARY_TEST_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        if !Path::new(&path).exists() {
            let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!in_ci, "{path} is missing: run through ./scripts/test.sh, which installs chromium-driver");
            eprintln!("SKIPPED the browser test: {path} is missing");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&format!("http://127.0.0.1:{port}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(driver)
    }

    async fn browser(&self, profile: &Path) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": std::env::var("TRIBUTARY_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        // chromedriver on loopback speaks plain HTTP: no TLS stack needed.
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Record `i`: valid; every 20th without `name` (fixable: MISSING_FIELD until
/// `name` is optional); every 20th another with a text id (TYPE_MISMATCH);
/// record 7 the hostile payload (not JSON: MALFORMED).
fn payload(i: usize) -> Vec<u8> {
    if i == 7 {
        return HOSTILE.as_bytes().to_vec();
    }
    match i % 20 {
        19 => format!("{{\"id\": {i}, \"ts\": \"2024-06-01T00:00:00Z\"}}"),
        9 => format!("{{\"id\": \"{HOSTILE}\", \"ts\": \"2024-06-01T00:00:00Z\", \"name\": \"n\"}}"),
        _ => format!("{{\"id\": {i}, \"ts\": \"2024-06-01T12:00:00Z\", \"name\": \"n{i}\"}}"),
    }
    .into_bytes()
}

fn definition(dir: &Path, file: &str, stream_arn: &str, name_type: &str) -> PathBuf {
    let text = format!(
        "sources:\n  - name: web\n    kinesis:\n      stream_arn: {stream_arn}\n      init_position: trim_horizon\n      format: json\n    dataset:\n      name: web_rows\n      format: iceberg\n      fields:\n        - {{name: id, type: int64}}\n        - {{name: ts, type: timestamp}}\n        - {{name: name, type: \"{name_type}\"}}\n      timestamp: ts\n"
    );
    let path = dir.join(file);
    std::fs::write(&path, text).expect("write definition");
    path
}

fn authed_get(server: &ServerProcess, path: &str) -> Value {
    let mut response = ureq::get(&format!("{}{path}", server.url()))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .expect("GET");
    serde_json::from_str(&response.body_mut().read_to_string().expect("body")).expect("JSON")
}

fn wait_for_rows(server: &ServerProcess, total: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = authed_get(server, "/api/v1/sources/web/status");
        let seen = status["rows"].as_u64().unwrap_or(0) + status["rejected"].as_u64().unwrap_or(0);
        if seen >= total {
            return status;
        }
        assert!(Instant::now() < deadline, "only {seen} of {total} records after 60 s: {status:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(screenshots().join(format!("{name}.png")), png).expect("save screenshot");
}

/// Waits until `css` matches an element whose text satisfies `wanted`; its text.
async fn wait_text(browser: &Client, css: &str, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(found) = browser.find(Locator::Css(css)).await
            && let Ok(text) = found.text().await
        {
            if wanted(&text) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    panic!("`{css}` never showed what was wanted; last: {last:?}");
}

/// Opens the console at `url` and signs in with the token.
async fn sign_in(browser: &Client, url: &str) {
    browser.goto(url).await.expect("open the console");
    wait_text(browser, "#login", |text| text.contains("needs its token")).await;
    browser
        .find(Locator::Css("#login input[name=token]"))
        .await
        .expect("token field")
        .send_keys(TOKEN)
        .await
        .expect("type");
    browser.find(Locator::Css("#login button[type=submit]")).await.expect("submit").click().await.expect("sign in");
}

#[test]
fn the_console_shows_sources_and_rejected_rows_as_text_and_replays_a_fix_exactly_once() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(driver) = Driver::start() else { return };
    const RECORDS: usize = 400;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let stream_arn = rt.block_on(create_stream(&emulators.kinesis, &unique("console"), 2, true));
    rt.block_on(put_indexed(&kinesis_client(&emulators.kinesis), &stream_arn, 0..RECORDS, payload));
    let fixable: Vec<i64> = (0..RECORDS).filter(|i| i % 20 == 19).map(|i| i as i64).collect();
    let valid: Vec<i64> = (0..RECORDS).filter(|i| *i != 7 && i % 20 != 19 && i % 20 != 9).map(|i| i as i64).collect();

    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let token_env = [("TRIBUTARY_TOKEN", TOKEN)];
    let flags = ["--history-interval-ms", "300"];
    let server = ServerProcess::start_with_env(&data_dir, &flags, &token_env);
    let v1 = definition(dir.path(), "v1.yaml", &stream_arn, "string");
    let committed = tributary(&["commit", &v1.to_string_lossy(), "--server", &server.url()], &token_env);
    assert!(committed.status.success(), "{}", String::from_utf8_lossy(&committed.stderr));
    wait_for_rows(&server, RECORDS as u64);
    let page_headers = ureq::get(&format!("{}/", server.url())).call().expect("the page, without the token");
    let policy = page_headers.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"), "{policy}");

    let profile = tempfile::tempdir().expect("profile");
    rt.block_on(async {
        let browser = driver.browser(profile.path()).await;
        sign_in(&browser, &format!("{}/", server.url())).await;

        // Sources: the source, running, with its version, rates and lag.
        let row = wait_text(&browser, "tr[data-source=web]", |text| text.contains("running")).await;
        assert!(row.contains(&stream_arn), "{row}");
        screenshot(&browser, "1-sources").await;

        // A source: both shards with state and lag, charts over time, the definition and its versions.
        browser.goto(&format!("{}/#/source/web", server.url())).await.expect("source page");
        wait_text(&browser, "tr[data-shard]", |text| text.contains("shardId-")).await;
        let shards = browser.find_all(Locator::Css("tr[data-shard]")).await.expect("shard rows");
        assert_eq!(shards.len(), 2);
        let charts = browser.find_all(Locator::Css(".chart svg")).await.expect("charts");
        assert!(charts.len() >= 6, "source and shard charts: {}", charts.len());
        let shown = browser.find(Locator::Css("#definition")).await.expect("definition").text().await.expect("text");
        assert!(shown.contains("web_rows"), "{shown}");
        screenshot(&browser, "2-source").await;

        // Rejected rows, filtered by reason: the hostile payload is characters on the page.
        browser.goto(&format!("{}/#/source/web/errors", server.url())).await.expect("errors page");
        let reasons = wait_text(&browser, "#reasons", |text| text.contains("MALFORMED")).await;
        assert!(reasons.contains("All (41)") && reasons.contains("MISSING_FIELD (20)"), "{reasons}");
        browser
            .find(Locator::Css("#reasons button[data-reason=MALFORMED]"))
            .await
            .expect("chip")
            .click()
            .await
            .expect("filter");
        wait_text(&browser, "#rejected-rows", |text| text.contains(HOSTILE)).await;
        let rows = browser.find_all(Locator::Css("#rejected-rows tr")).await.expect("rows");
        assert_eq!(rows.len(), 1, "only the MALFORMED row");
        assert!(
            browser.find_all(Locator::Css("#rejected-rows img")).await.expect("query").is_empty(),
            "no element from a payload"
        );
        browser
            .find(Locator::Css("#reasons button[data-reason=TYPE_MISMATCH]"))
            .await
            .expect("chip")
            .click()
            .await
            .expect("filter");
        let shown = wait_text(&browser, "#rejected-rows", |text| text.contains("TYPE_MISMATCH")).await;
        assert!(shown.contains(HOSTILE) && !shown.contains("MISSING_FIELD"), "{shown}");
        assert!(browser.find_all(Locator::Css("#rejected-rows img")).await.expect("query").is_empty());
        // Had the payload's `onerror=alert(1)` run, an alert would be open now.
        assert!(browser.get_alert_text().await.is_err(), "no alert opened");
        screenshot(&browser, "3-rejected-rows").await;

        // Tables: the dataset's table with its snapshots, schema and first rows.
        browser.goto(&format!("{}/#/table/web_rows", server.url())).await.expect("table page");
        let page = wait_text(&browser, "main", |text| text.contains("Snapshots") && text.contains("First rows")).await;
        assert!(page.contains("append") && page.contains("name"), "{page}");
        screenshot(&browser, "4-table").await;

        // The fix: `name` optional. The dry run (current version) says 20 would land once it is committed.
        let v2 = definition(dir.path(), "v2.yaml", &stream_arn, "optional<string>");
        let fixed = tributary(&["commit", &v2.to_string_lossy(), "--server", &server.url()], &token_env);
        assert!(fixed.status.success(), "{}", String::from_utf8_lossy(&fixed.stderr));
        browser.goto(&format!("{}/#/source/web/errors?reason=MISSING_FIELD", server.url())).await.expect("errors");
        wait_text(&browser, "#reasons", |text| text.contains("MISSING_FIELD")).await;
        browser.find(Locator::Css("#dry-run")).await.expect("dry run").click().await.expect("click");
        let would = wait_text(&browser, "#would-land", |text| !text.is_empty()).await;
        assert_eq!(would, "20");
        screenshot(&browser, "5-dry-run").await;
        browser.close().await.expect("close");
    });

    // The replay dies after its table commit; the next start settles it, and a replay again adds nothing.
    assert!(server.stop());
    let mut dying: Vec<(&str, &str)> = token_env.to_vec();
    dying.push(("TRIBUTARY_FAILPOINT", "replay-after-table-commit"));
    let mut server = ServerProcess::start_with_env(&data_dir, &flags, &dying);
    let profile = tempfile::tempdir().expect("profile");
    rt.block_on(async {
        let browser = driver.browser(profile.path()).await;
        sign_in(&browser, &format!("{}/#/source/web/errors?reason=MISSING_FIELD", server.url())).await;
        wait_text(&browser, "#reasons", |text| text.contains("MISSING_FIELD (20)")).await;
        browser.find(Locator::Css("#replay-now")).await.expect("replay").click().await.expect("click");
        browser.accept_alert().await.expect("confirm the replay");
        wait_text(&browser, "#replay-result", |text| !text.contains("Replaying")).await;
        browser.close().await.expect("close");
    });
    server.restart_after_exit(&token_env, Duration::from_secs(60));
    let profile = tempfile::tempdir().expect("profile");
    rt.block_on(async {
        let browser = driver.browser(profile.path()).await;
        sign_in(&browser, &format!("{}/#/source/web/errors", server.url())).await;
        let reasons = wait_text(&browser, "#reasons", |text| text.contains("All")).await;
        assert!(!reasons.contains("MISSING_FIELD"), "settled at start: the replayed rows left the log: {reasons}");
        browser.find(Locator::Css("#replay-now")).await.expect("replay").click().await.expect("click");
        browser.accept_alert().await.expect("confirm the replay");
        let replayed = wait_text(&browser, "#replayed", |text| text.contains("landed")).await;
        assert!(replayed.contains("0 rows landed") && replayed.contains("21 still rejected"), "{replayed}");
        screenshot(&browser, "6-replayed").await;
        browser.close().await.expect("close");
    });
    if let Some(read) = pyiceberg(data_dir.join("warehouse").join("web_rows"), None) {
        let mut expected: Vec<i64> = valid.iter().chain(&fixable).copied().collect();
        expected.sort_unstable();
        assert_eq!(ids(&read), expected, "every valid and every fixed row, once");
    }
    assert!(server.stop());
}
