//! Secrets in definitions: registry passwords and tokens.
//!
//! A secret is given inline or as `{env: VAR}`. Either way its value never
//! reaches `Debug`, `Display`, an error message or an API answer: the type
//! prints as `Secret(***)` or `Secret(env: VAR)`.
//!
//! Whoever can commit a definition decides where the worker sends a secret
//! (the registry URL is theirs too), so `{env: VAR}` may name only variables
//! with an allowed prefix ([`SecretPolicy`]): never the server's own AWS keys
//! or API token.

use std::fmt;

/// The prefix environment variables named by definitions must carry, unless the server says otherwise.
pub const DEFAULT_SECRET_ENV_PREFIX: &str = "TRIBUTARY_SECRET_";

/// Which environment variables a definition may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretPolicy {
    /// Only variables whose names start with this may be referenced.
    pub env_prefix: String,
}

impl Default for SecretPolicy {
    fn default() -> Self {
        SecretPolicy { env_prefix: DEFAULT_SECRET_ENV_PREFIX.to_owned() }
    }
}

impl SecretPolicy {
    /// Why `var` may not be referenced, if it may not.
    pub fn refuse(&self, var: &str) -> Option<String> {
        if var.starts_with(&self.env_prefix) && var.len() > self.env_prefix.len() {
            return None;
        }
        Some(format!(
            "`{{env: {var}}}` is not allowed: a definition may read only environment variables named `{}...` \
             (the server's own credentials are not for definitions to send)",
            self.env_prefix
        ))
    }
}

/// A secret value or the environment variable that holds it.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The value itself.
    Inline(String),
    /// The name of an environment variable read when the secret is used.
    Env(String),
}

impl Secret {
    /// The value: the inline text, or the variable's current value.
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            Secret::Inline(value) => Ok(value.clone()),
            Secret::Env(var) => std::env::var(var).map_err(|_| format!("environment variable `{var}` is not set")),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("Secret(***)"),
            Secret::Env(var) => write!(f, "Secret(env: {var})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::Inline("hunter2".to_owned());
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", Secret::Env("TOKEN".into())), "Secret(env: TOKEN)");
    }

    #[test]
    fn only_prefixed_variables_may_be_named() {
        let policy = SecretPolicy::default();
        assert!(policy.refuse("TRIBUTARY_SECRET_REGISTRY").is_none());
        for var in ["AWS_SECRET_ACCESS_KEY", "TRIBUTARY_TOKEN", "TRIBUTARY_SECRET_", "tributary_secret_x"] {
            assert!(policy.refuse(var).is_some_and(|why| why.contains(var)), "{var}");
        }
        assert!(SecretPolicy { env_prefix: "MY_".into() }.refuse("MY_PASSWORD").is_none());
    }

    #[test]
    fn resolve_reads_inline_and_reports_unset_variables() {
        assert_eq!(Secret::Inline("v".into()).resolve(), Ok("v".into()));
        let err = Secret::Env("TRIBUTARY_TEST_SURELY_UNSET_VARIABLE".into()).resolve().expect_err("unset");
        assert!(err.contains("TRIBUTARY_TEST_SURELY_UNSET_VARIABLE"));
    }
}
