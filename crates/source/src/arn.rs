//! Stream and role ARNs.
//!
//! A source names its stream by ARN (never by bare name) so the account and
//! region are explicit, and the Kinesis client is built for the ARN's region.
//! The grammars are strict on purpose: a typo caught at commit time is cheaper
//! than a worker that reads nothing.

use std::fmt;
use std::str::FromStr;

use regex::Regex;
use std::sync::LazyLock;

/// An AWS partition Kinesis runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Partition {
    /// `aws`
    Aws,
    /// `aws-cn`
    AwsCn,
    /// `aws-us-gov`
    AwsUsGov,
}

impl Partition {
    /// The partition as written in an ARN.
    pub fn as_str(self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::AwsCn => "aws-cn",
            Partition::AwsUsGov => "aws-us-gov",
        }
    }

    fn parse(text: &str) -> Option<Partition> {
        match text {
            "aws" => Some(Partition::Aws),
            "aws-cn" => Some(Partition::AwsCn),
            "aws-us-gov" => Some(Partition::AwsUsGov),
            _ => None,
        }
    }
}

/// Why an ARN was refused; the message says what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArnError(String);

static REGION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$").expect("static regex"));
static STREAM_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_.\-]{1,128}$").expect("static regex"));
static ROLE_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9+=,.@_\-]{1,64}$").expect("static regex"));
static ROLE_PATH_SEGMENT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[\x21-\x7E]+$").expect("static regex"));

fn check_account(account: &str) -> Result<(), ArnError> {
    if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ArnError(format!(
            "account `{account}` must be exactly 12 digits (found {} characters)",
            account.chars().count()
        )))
    }
}

fn split_arn<'a>(text: &'a str, expected_service: &str) -> Result<(Partition, [&'a str; 3]), ArnError> {
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts[..] else {
        return Err(ArnError(format!(
            "`{text}` is not an ARN: expected `arn:PARTITION:{expected_service}:...` with 6 colon-separated parts"
        )));
    };
    if prefix != "arn" {
        return Err(ArnError(format!("`{text}` does not start with `arn:`")));
    }
    let partition = Partition::parse(partition)
        .ok_or_else(|| ArnError(format!("partition `{partition}` is not one of `aws`, `aws-cn`, `aws-us-gov`")))?;
    if service != expected_service {
        return Err(ArnError(format!("service is `{service}`, expected `{expected_service}`")));
    }
    Ok((partition, [region, account, resource]))
}

/// A validated Kinesis stream ARN:
/// `arn:{partition}:kinesis:{region}:{12 digits}:stream/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamArn {
    text: String,
    partition: Partition,
    region_end: usize,
    account_end: usize,
}

impl StreamArn {
    /// The ARN as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The partition.
    pub fn partition(&self) -> Partition {
        self.partition
    }

    /// The region the stream lives in, e.g. `us-east-1`.
    pub fn region(&self) -> &str {
        let start = "arn:".len() + self.partition.as_str().len() + ":kinesis:".len();
        &self.text[start..self.region_end]
    }

    /// The 12-digit account id.
    pub fn account(&self) -> &str {
        &self.text[self.region_end + 1..self.account_end]
    }

    /// The stream's name.
    pub fn stream_name(&self) -> &str {
        &self.text[self.account_end + 1 + "stream/".len()..]
    }
}

impl FromStr for StreamArn {
    type Err = ArnError;

    fn from_str(text: &str) -> Result<Self, ArnError> {
        let (partition, [region, account, resource]) = split_arn(text, "kinesis")?;
        if !REGION.is_match(region) {
            return Err(ArnError(format!("region `{region}` is not a region name like `us-east-1`")));
        }
        check_account(account)?;
        let Some(name) = resource.strip_prefix("stream/") else {
            return Err(ArnError(format!(
                "resource `{resource}` must be `stream/NAME` (a stream ARN, not a consumer or other resource)"
            )));
        };
        if !STREAM_NAME.is_match(name) {
            return Err(ArnError(format!("stream name `{name}` must be 1-128 characters of A-Z a-z 0-9 _ . -")));
        }
        let region_end = text.len() - resource.len() - account.len() - 2;
        let account_end = region_end + 1 + account.len();
        Ok(StreamArn { text: text.to_owned(), partition, region_end, account_end })
    }
}

impl fmt::Display for StreamArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A validated IAM role ARN: `arn:{partition}:iam::{12 digits}:role/{path/}{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleArn {
    text: String,
    partition: Partition,
}

impl RoleArn {
    /// The ARN as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The partition.
    pub fn partition(&self) -> Partition {
        self.partition
    }
}

impl FromStr for RoleArn {
    type Err = ArnError;

    fn from_str(text: &str) -> Result<Self, ArnError> {
        let (partition, [region, account, resource]) = split_arn(text, "iam")?;
        if !region.is_empty() {
            return Err(ArnError(format!("IAM ARNs have no region, found `{region}`")));
        }
        check_account(account)?;
        let Some(path_and_name) = resource.strip_prefix("role/") else {
            let kind = resource.split('/').next().unwrap_or(resource);
            return Err(ArnError(format!("resource type is `{kind}`, expected `role/` (a role ARN)")));
        };
        let mut segments: Vec<&str> = path_and_name.split('/').collect();
        let name = segments.pop().unwrap_or_default();
        if !ROLE_NAME.is_match(name) {
            return Err(ArnError(format!("role name `{name}` must be 1-64 characters of A-Z a-z 0-9 + = , . @ _ -")));
        }
        if let Some(bad) = segments.iter().find(|s| !ROLE_PATH_SEGMENT.is_match(s)) {
            return Err(ArnError(format!("role path segment `{bad}` is empty or not printable ASCII")));
        }
        Ok(RoleArn { text: text.to_owned(), partition })
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_arn_parts() {
        let arn: StreamArn =
            "arn:aws-us-gov:kinesis:us-gov-west-1:123456789012:stream/my.stream-1".parse().expect("valid");
        assert_eq!(arn.partition(), Partition::AwsUsGov);
        assert_eq!(arn.region(), "us-gov-west-1");
        assert_eq!(arn.account(), "123456789012");
        assert_eq!(arn.stream_name(), "my.stream-1");
        let cn: StreamArn = "arn:aws-cn:kinesis:cn-north-1:000000000000:stream/s".parse().expect("valid");
        assert_eq!(cn.partition(), Partition::AwsCn);
        assert_eq!(cn.region(), "cn-north-1");
    }

    #[test]
    fn stream_arn_name_bounds() {
        let ok = format!("arn:aws:kinesis:eu-west-1:000000000000:stream/{}", "a".repeat(128));
        assert!(ok.parse::<StreamArn>().is_ok());
        let long = format!("arn:aws:kinesis:eu-west-1:000000000000:stream/{}", "a".repeat(129));
        assert!(long.parse::<StreamArn>().is_err());
        let err = "arn:aws:kinesis:eu-west-1:000000000000:stream/a b".parse::<StreamArn>().expect_err("space in name");
        assert!(err.0.contains("stream name"), "{err}");
        assert!("arn:aws:kinesis:eu-west-1:000000000000:stream/".parse::<StreamArn>().is_err());
    }

    #[test]
    fn stream_arn_errors_say_what_is_wrong() {
        let cases = [
            ("arn:aws:sqs:us-east-1:000000000000:stream/s", "service is `sqs`"),
            ("arn:aws:kinesis:us-east-1:000000000000:s", "must be `stream/NAME`"),
            ("arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:1", "stream name"),
            ("arn:aws:kinesis:us-east-1:00000000000:stream/s", "exactly 12 digits"),
            ("arn:aws:kinesis:us-east-1:00000000000a:stream/s", "exactly 12 digits"),
            ("arn:aws:kinesis:Mars:000000000000:stream/s", "region `Mars`"),
            ("arn:aws:kinesis::000000000000:stream/s", "region ``"),
            ("arn:azure:kinesis:us-east-1:000000000000:stream/s", "partition `azure`"),
            ("orders", "not an ARN"),
            ("urn:aws:kinesis:us-east-1:000000000000:stream/s", "does not start with `arn:`"),
        ];
        for (text, expected) in cases {
            let err = text.parse::<StreamArn>().expect_err(text);
            assert!(err.0.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn role_arn_grammar() {
        for ok in [
            "arn:aws:iam::000000000000:role/tributary-reader",
            "arn:aws:iam::000000000000:role/service-role/team/reader+x=y,z.w@v_u-t",
            "arn:aws-cn:iam::123456789012:role/r",
        ] {
            assert!(ok.parse::<RoleArn>().is_ok(), "{ok}");
        }
        let cases = [
            ("arn:aws:iam::000000000000:user/alice", "resource type is `user`"),
            ("arn:aws:iam:us-east-1:000000000000:role/r", "no region"),
            ("arn:aws:sts::000000000000:role/r", "service is `sts`"),
            ("arn:aws:iam::0000:role/r", "12 digits"),
            ("arn:aws:iam::000000000000:role/", "role name"),
            ("arn:aws:iam::000000000000:role//r", "path segment"),
        ];
        for (text, expected) in cases {
            let err = text.parse::<RoleArn>().expect_err(text);
            assert!(err.0.contains(expected), "{text}: {err}");
        }
    }
}
