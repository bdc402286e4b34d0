//! What the cluster tests share: moto's DynamoDB, and names no other run uses.

use std::time::Duration;

use tributary_source::{AwsSettings, ClientFactory};

/// moto's endpoint is set (`eval "$(scripts/emulators.sh up)"`, as `./scripts/test.sh` does).
pub(crate) fn moto_is_up() -> bool {
    if std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok_and(|v| !v.is_empty()) {
        return true;
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let opted_out = std::env::var("TRIBUTARY_SKIP_EMULATOR_TESTS").is_ok_and(|v| v == "1");
    assert!(
        opted_out && !in_ci,
        "this test needs moto's DynamoDB: run it through ./scripts/test.sh (TRIBUTARY_SKIP_EMULATOR_TESTS=1 skips it outside CI)"
    );
    eprintln!("SKIPPED: emulators not running and TRIBUTARY_SKIP_EMULATOR_TESTS=1");
    false
}

/// A cluster name no other test or run uses.
pub(crate) fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}{}x{nanos}", std::process::id())
}

/// A DynamoDB client as the server makes it (the standard chain, `AWS_ENDPOINT_URL_DYNAMODB`).
pub(crate) async fn client() -> aws_sdk_dynamodb::Client {
    ClientFactory::load(AwsSettings::default(), Duration::from_secs(10)).await.dynamodb()
}
