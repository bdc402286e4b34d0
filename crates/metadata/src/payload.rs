//! A sampled payload as the text OpenMetadata shows.
//!
//! Kinesis hands payloads over as bytes (the SDK has already undone the
//! wire's base64): they are decoded **once**. Text is shown as it is, even
//! when it happens to be valid base64 (OpenMetadata's connector decodes it a
//! second time and shows `{"QUFB":"QUFB"}` as `AAAAAA`); anything that is not
//! printable UTF-8 is shown as base64 behind a `base64:` marker, so binary
//! records neither vanish nor garble the rest of the sample.

use base64::Engine;

/// The marker in front of a payload shown as base64.
pub const BASE64_MARKER: &str = "base64:";

/// `data` as sample text.
pub fn sample_text(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) if !text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) => text.to_owned(),
        _ => format!("{BASE64_MARKER}{}", base64::engine::general_purpose::STANDARD.encode(data)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_kept_and_binary_is_marked() {
        // Each of these is also valid base64: they must arrive unchanged.
        for text in [r#"{"QUFB":"QUFB"}"#, "\"aGVsbG8gd29ybGQ=\"", "eyJrIjoidiJ9", "héllo\twörld\n"] {
            assert_eq!(sample_text(text.as_bytes()), text);
        }
        assert_eq!(sample_text(&[0xff, 0x00, 0x10]), "base64:/wAQ");
        assert_eq!(sample_text(b"a\0b"), "base64:YQBi");
        assert_eq!(sample_text(b""), "");
    }
}
