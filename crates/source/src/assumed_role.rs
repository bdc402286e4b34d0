//! Credentials of a role assumed with a source identity.
//!
//! aws-config's `AssumeRoleProvider` has no way to set `SourceIdentity`, so a
//! reader role defined with one is assumed here, with the same session name,
//! external id and source identity the commit's live check used. The clients
//! that use these credentials cache them and ask again before they expire.

use std::fmt;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials, future};

use crate::AssumeRole;

/// Assumes `role` through `sts` whenever credentials are asked for.
pub(crate) struct SourceIdentityRole {
    sts: aws_sdk_sts::Client,
    role: AssumeRole,
}

impl SourceIdentityRole {
    pub(crate) fn new(sts: aws_sdk_sts::Client, role: AssumeRole) -> SourceIdentityRole {
        SourceIdentityRole { sts, role }
    }

    async fn assume(&self) -> provider::Result {
        let role = &self.role;
        let mut request = self.sts.assume_role().role_arn(role.role_arn.as_str()).role_session_name(&role.session_name);
        if let Some(external_id) = &role.external_id {
            request = request.external_id(external_id);
        }
        if let Some(source_identity) = &role.source_identity {
            request = request.source_identity(source_identity);
        }
        let output = request.send().await.map_err(CredentialsError::provider_error)?;
        let Some(credentials) = output.credentials() else {
            return Err(CredentialsError::unhandled(format!(
                "AssumeRole of {} answered without credentials",
                role.role_arn
            )));
        };
        Ok(Credentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            Some(credentials.session_token().to_owned()),
            SystemTime::try_from(*credentials.expiration()).ok(),
            "tributary-assume-role",
        ))
    }
}

impl ProvideCredentials for SourceIdentityRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.assume())
    }
}

impl fmt::Debug for SourceIdentityRole {
    // The role only: no external id in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceIdentityRole").field("role_arn", &self.role.role_arn.as_str()).finish_non_exhaustive()
    }
}
