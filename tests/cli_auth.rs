//! A server with a token: every client call carries it, from the variable or a file.

mod support;

use support::server::ServerProcess;
use support::{stdout, tributary};

#[test]
fn clients_send_the_token_from_a_file_and_reads_need_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "file-token-0123456789\n").expect("write token");
    let token_path = token_file.to_str().expect("utf-8");
    let server = ServerProcess::start(&dir.path().join("data"), &["--token-file", token_path]);
    let url = server.url();

    let output = tributary(&["status", "--server", &url], &[]);
    assert_ne!(output.status.code(), Some(0), "a read without the token is refused");
    assert!(String::from_utf8_lossy(&output.stderr).contains("401"), "{}", String::from_utf8_lossy(&output.stderr));

    let output = tributary(&["status", "--server", &url, "--json"], &[("TRIBUTARY_TOKEN_FILE", token_path)]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout(&output).contains("\"sources\""), "{}", stdout(&output));
    let output = tributary(&["status", "--server", &url], &[("TRIBUTARY_TOKEN", "file-token-0123456789")]);
    assert_eq!(output.status.code(), Some(0), "the variable works as well");

    // Liveness stays open for probes.
    assert!(ureq::get(&format!("{url}/healthz")).call().is_ok());
    assert!(server.stop(), "a clean stop");

    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").expect("write");
    let output = tributary(
        &[
            "serve",
            "--data-dir",
            dir.path().join("d2").to_str().expect("utf-8"),
            "--token-file",
            empty.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2), "an empty token file is an error, never \"no token\"");
}
