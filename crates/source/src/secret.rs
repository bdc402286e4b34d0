//! Secrets in definitions: registry passwords and tokens.
//!
//! A secret is given inline or as `{env: VAR}`. Either way its value never
//! reaches `Debug`, `Display`, an error message or an API answer: the type
//! prints as `Secret(***)` or `Secret(env: VAR)`.

use std::fmt;

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
    fn resolve_reads_inline_and_reports_unset_variables() {
        assert_eq!(Secret::Inline("v".into()).resolve(), Ok("v".into()));
        let err = Secret::Env("TRIBUTARY_TEST_SURELY_UNSET_VARIABLE".into()).resolve().expect_err("unset");
        assert!(err.contains("TRIBUTARY_TEST_SURELY_UNSET_VARIABLE"));
    }
}
