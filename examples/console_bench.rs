//! Measures the web console in headless Chromium: for each page, the bytes
//! transferred (the page, its script and style, and every API answer it
//! fetched) and the time from navigation to its data on screen (the page's
//! `tributary-rendered` performance mark). Each page is a fresh load.
//!
//! ```text
//! cargo run --release --example console_bench -- --server http://127.0.0.1:7878 --chromedriver http://127.0.0.1:9515 \
//!     --token T --page '#/' --page '#/source/events'
//! ```
//!
//! Prints one line per page: `page=... bytes=... requests=... render_ms=...`.

use std::time::{Duration, Instant};

use clap::Parser;
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
struct Args {
    /// The Tributary server.
    #[arg(long)]
    server: String,
    /// chromedriver's address.
    #[arg(long)]
    chromedriver: String,
    /// The server's token, if it has one.
    #[arg(long, env = "TRIBUTARY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Pages (hash routes) to load, in order.
    #[arg(long = "page", required = true)]
    pages: Vec<String>,
    /// Loads of each page; the median render time is printed.
    #[arg(long, default_value_t = 3)]
    loads: usize,
}

async fn browser(chromedriver: &str, profile: &std::path::Path) -> Result<Client, Box<dyn std::error::Error>> {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": std::env::var("TRIBUTARY_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1400,1000",
                     format!("--user-data-dir={}", profile.display())],
        }),
    );
    Ok(ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(chromedriver)
        .await?)
}

/// What one load of a page cost: bytes, requests, and ms to its data on screen.
async fn load(client: &Client, url: &str) -> Result<(u64, u64, f64), Box<dyn std::error::Error>> {
    client.goto("about:blank").await?;
    client.goto(url).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let found = client
            .execute(
                "const mark = performance.getEntriesByName('tributary-rendered')[0];
                 if (!mark) return null;
                 const entries = performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'));
                 return { render: mark.startTime, bytes: entries.reduce((sum, e) => sum + (e.transferSize || 0), 0), requests: entries.length };",
                vec![],
            )
            .await?;
        if let Value::Object(found) = found {
            let number = |key: &str| found.get(key).and_then(Value::as_f64).unwrap_or(0.0);
            return Ok((number("bytes") as u64, number("requests") as u64, number("render")));
        }
        if Instant::now() > deadline {
            return Err(format!("{url} never rendered").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let profile = tempfile::tempdir()?;
    let client = browser(&args.chromedriver, profile.path()).await?;
    // The token lives in the tab's session storage, as the login page keeps it.
    client.goto(&format!("{}/", args.server)).await?;
    if let Some(token) = &args.token {
        client.execute("sessionStorage.setItem('tributary.token', arguments[0]);", vec![json!(token)]).await?;
    }
    for page in &args.pages {
        let url = format!("{}/{page}", args.server);
        let mut renders = Vec::new();
        let mut cost = (0, 0);
        for _ in 0..args.loads.max(1) {
            let (bytes, requests, render) = load(&client, &url).await?;
            cost = (bytes, requests);
            renders.push(render);
        }
        renders.sort_by(f64::total_cmp);
        let median = renders[renders.len() / 2];
        println!("page={page} bytes={} requests={} render_ms={median:.0}", cost.0, cost.1);
    }
    client.close().await?;
    Ok(())
}
