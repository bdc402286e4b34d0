//! Why a cluster operation failed, in the terms a caller branches on.

/// A lease-table or definitions-table failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The lease moved under the caller: another process took, renewed or
    /// released it (its counter or owner is not what the caller last saw).
    #[error("lease `{key}` moved: another process holds it or changed it first")]
    Lost {
        /// The lease (the shard id).
        key: String,
    },
    /// The lease already exists (a create that found it).
    #[error("lease `{key}` already exists")]
    Exists {
        /// The lease.
        key: String,
    },
    /// Another node stored this version of the source first, and trying again
    /// with the next version kept meeting newer ones.
    #[error("source `{source_name}`: another node committed version {version} at the same time; commit again")]
    Conflict {
        /// The source.
        source_name: String,
        /// The version both tried to store.
        version: u64,
    },
    /// The table holds rows the Java KCL 3.x writes: its leader would reassign our leases.
    #[error(
        "lease table `{table}` is managed by the Java KCL 3.x (it has `{entity}` rows); its leader would reassign Tributary's leases: use another cluster name"
    )]
    ForeignTable {
        /// The table.
        table: String,
        /// The `entityType` found.
        entity: String,
    },
    /// A row lacks an attribute every KCL lease (or stored version) has, or holds one of the wrong type.
    #[error("table `{table}`, row `{key}`: {detail}")]
    Corrupt {
        /// The table.
        table: String,
        /// The row's `leaseKey`.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// DynamoDB refused or could not be reached.
    #[error("DynamoDB {call} on `{table}`: {detail}")]
    Aws {
        /// The API call.
        call: &'static str,
        /// The table.
        table: String,
        /// What the SDK said.
        detail: String,
    },
}

impl From<tributary_source::dynamodb::DynamoError> for ClusterError {
    fn from(error: tributary_source::dynamodb::DynamoError) -> ClusterError {
        ClusterError::Aws { call: error.call, table: error.table, detail: error.detail }
    }
}

impl ClusterError {
    /// A row of `table` that is not what it should be (`found`: its key and what is wrong).
    pub(crate) fn corrupt(table: &str, (key, detail): (String, String)) -> ClusterError {
        ClusterError::Corrupt { table: table.to_owned(), key, detail }
    }

    /// Whether trying again later may succeed (DynamoDB unreachable or
    /// throttled), as opposed to a lease that moved or a table not ours.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClusterError::Aws { .. } => true,
            ClusterError::Lost { .. }
            | ClusterError::Exists { .. }
            | ClusterError::Conflict { .. }
            | ClusterError::ForeignTable { .. }
            | ClusterError::Corrupt { .. } => false,
        }
    }
}
