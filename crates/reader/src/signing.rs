//! SigV4 for the reader's own `GetRecords` and `GetShardIterator` calls.
//!
//! The requests have one fixed shape (`POST /`, four or five headers, a small
//! JSON body), so its canonical form is written directly instead of through
//! a general signer, which canonicalizes every header and query of every
//! request (a measured 35 µs per call, as much as the rest of an idle poll).
//! The signing key changes once a day per credentials and is kept; HMAC and
//! key derivation are aws-sigv4's. Tests check every signature against
//! aws-sigv4's for the same request, and moto verifies them end to end.

use std::fmt;
use std::fmt::Write as _;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
use chrono::{DateTime, Datelike, Timelike, Utc};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

pub(crate) const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const SERVICE: &str = "kinesis";

/// The calls the reader makes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    GetRecords,
    GetShardIterator,
}

impl Operation {
    /// The operation's name, as in errors and metrics.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Operation::GetRecords => "GetRecords",
            Operation::GetShardIterator => "GetShardIterator",
        }
    }

    /// Its `X-Amz-Target` header.
    pub(crate) fn target(self) -> &'static str {
        match self {
            Operation::GetRecords => "Kinesis_20131202.GetRecords",
            Operation::GetShardIterator => "Kinesis_20131202.GetShardIterator",
        }
    }
}

/// The values that sign one request, for its headers.
#[derive(Debug)]
pub(crate) struct Signed {
    /// `X-Amz-Date`.
    pub(crate) amz_date: String,
    /// `Authorization`.
    pub(crate) authorization: String,
}

/// Signs the reader's requests to one host in one region.
pub(crate) struct Signer {
    region: String,
    host: String,
    key: Mutex<Option<CachedKey>>,
}

/// A derived signing key and what it was derived from.
struct CachedKey {
    date: String,
    access_key_id: String,
    secret: String,
    key: Vec<u8>,
}

impl fmt::Debug for Signer {
    // No key material in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer").field("region", &self.region).field("host", &self.host).finish()
    }
}

impl Signer {
    /// `host` is the `Host` header as sent (with the port when not the scheme's default).
    pub(crate) fn new(region: String, host: String) -> Signer {
        Signer { region, host, key: Mutex::new(None) }
    }

    /// Signs a `POST /` of `operation` with `body` and the fixed content type, at `now`.
    pub(crate) fn sign(&self, credentials: &Credentials, operation: Operation, body: &[u8], now: SystemTime) -> Signed {
        let amz_date = amz_date(now.into());
        let date = &amz_date[..8];
        let token = credentials.session_token();

        let mut canonical = String::with_capacity(512);
        // Method, path, (empty) query, then the signed headers in name order.
        let _ = write!(
            canonical,
            "POST\n/\n\ncontent-type:{CONTENT_TYPE}\nhost:{}\nx-amz-date:{amz_date}\n",
            self.host.trim()
        );
        if let Some(token) = token {
            let _ = writeln!(canonical, "x-amz-security-token:{}", token.trim());
        }
        let signed_headers = if token.is_some() {
            "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
        } else {
            "content-type;host;x-amz-date;x-amz-target"
        };
        let target = operation.target();
        let _ = write!(canonical, "x-amz-target:{target}\n\n{signed_headers}\n{}", hex::encode(Sha256::digest(body)));

        let scope = format!("{date}/{}/{SERVICE}/aws4_request", self.region);
        let string_to_sign =
            format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical.as_bytes())));
        let signature = calculate_signature(self.signing_key(credentials, date, now), string_to_sign.as_bytes());
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id()
        );
        Signed { amz_date, authorization }
    }

    /// The day's signing key for `credentials`, derived once.
    fn signing_key(&self, credentials: &Credentials, date: &str, now: SystemTime) -> Vec<u8> {
        let mut cached = self.key.lock();
        let current = cached.as_ref().is_some_and(|key| {
            key.date == date
                && key.access_key_id == credentials.access_key_id()
                && key.secret == credentials.secret_access_key()
        });
        if !current {
            let key = generate_signing_key(credentials.secret_access_key(), now, &self.region, SERVICE);
            *cached = Some(CachedKey {
                date: date.to_owned(),
                access_key_id: credentials.access_key_id().to_owned(),
                secret: credentials.secret_access_key().to_owned(),
                key: key.as_ref().to_vec(),
            });
        }
        cached.as_ref().map(|key| key.key.clone()).unwrap_or_default()
    }
}

/// `YYYYMMDDTHHMMSSZ`, written directly: a strftime pattern is parsed again on every call.
fn amz_date(time: DateTime<Utc>) -> String {
    let mut text = String::with_capacity(16);
    let _ = write!(
        text,
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    );
    text
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;

    use super::*;

    /// The `Authorization` aws-sigv4 computes for the same request.
    fn reference(
        credentials: &Credentials,
        host: &str,
        operation: Operation,
        body: &[u8],
        now: SystemTime,
    ) -> (String, String) {
        let identity = Identity::from(credentials.clone());
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("eu-west-1")
            .name(SERVICE)
            .time(now)
            .settings(SigningSettings::default())
            .build()
            .expect("params")
            .into();
        let headers = [("content-type", CONTENT_TYPE), ("host", host), ("x-amz-target", operation.target())];
        let signable =
            SignableRequest::new("POST", format!("http://{host}/"), headers.into_iter(), SignableBody::Bytes(body))
                .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("signs").into_parts();
        let (headers, _) = instructions.into_parts();
        let value = |name: &str| {
            headers.iter().find(|h| h.name() == name).map(|h| h.value().to_owned()).expect("a signing header")
        };
        (value("authorization"), value("x-amz-date"))
    }

    #[test]
    fn signatures_match_aws_sigv4() {
        let body = br#"{"ShardIterator":"AAAA/+==","Limit":10000,"StreamARN":"arn:aws:kinesis:eu-west-1:1:stream/s"}"#;
        let host = "kinesis.eu-west-1.amazonaws.com";
        let signer = Signer::new("eu-west-1".into(), host.into());
        let keys = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None, None, "test");
        let session =
            Credentials::new("ASIAEXAMPLE", "c2VjcmV0", Some("FwoGZXIvYXdzEJr//token+/=".into()), None, "test");
        let day = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        // The same key twice in a day, another key the next day, and a change of credentials.
        for (credentials, now) in [
            (&keys, day),
            (&keys, day + Duration::from_secs(7)),
            (&keys, day + Duration::from_secs(86_400)),
            (&session, day + Duration::from_secs(86_401)),
        ] {
            let signed = signer.sign(credentials, Operation::GetRecords, body, now);
            let (authorization, amz_date) = reference(credentials, host, Operation::GetRecords, body, now);
            assert_eq!(signed.authorization, authorization);
            assert_eq!(signed.amz_date, amz_date);
        }
        let iterator = br#"{"StreamARN":"arn:aws:kinesis:eu-west-1:1:stream/s","ShardId":"shardId-000000000001","ShardIteratorType":"AFTER_SEQUENCE_NUMBER","StartingSequenceNumber":"49590338271490256608559692538361571095921575989136588898"}"#;
        let signed = signer.sign(&session, Operation::GetShardIterator, iterator, day);
        let (authorization, _) = reference(&session, host, Operation::GetShardIterator, iterator, day);
        assert_eq!(signed.authorization, authorization);
        let with_token = signer.sign(&session, Operation::GetRecords, body, day);
        assert!(with_token.authorization.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;"));
    }

    #[test]
    fn a_host_with_a_port_is_signed_as_sent() {
        let signer = Signer::new("eu-west-1".into(), "127.0.0.1:4567".into());
        let keys = Credentials::new("AKID", "secret", None, None, "test");
        let now = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let (authorization, _) = reference(&keys, "127.0.0.1:4567", Operation::GetRecords, b"{}", now);
        assert_eq!(signer.sign(&keys, Operation::GetRecords, b"{}", now).authorization, authorization);
    }

    #[test]
    fn dates_are_written_with_every_digit() {
        let time = DateTime::parse_from_rfc3339("2001-02-03T04:05:06.789Z").expect("a time").with_timezone(&Utc);
        assert_eq!(amz_date(time), "20010203T040506Z");
    }

    #[test]
    fn debug_output_holds_no_key_material() {
        let signer = Signer::new("eu-west-1".into(), "h".into());
        let keys = Credentials::new("AKID", "very-secret", None, None, "test");
        let _ = signer.sign(&keys, Operation::GetRecords, b"{}", SystemTime::now());
        let printed = format!("{signer:?}");
        assert!(!printed.contains("very-secret") && !printed.contains("AKID"), "{printed}");
    }
}
