//! Which catalog owns a warehouse's tables.
//!
//! Two catalogs recording tables under one warehouse (two servers with their
//! own stores, or a store and a Glue database) would each take the other's
//! files for orphans and delete them. So the first catalog to create a table
//! under a warehouse writes its identity beside the tables
//! (`{warehouse}/.tributary-catalog`), and a server whose catalog is another
//! refuses to start there. A server whose store was lost is another catalog
//! too: its operator says so with `serve --take-over-warehouse`, which
//! rewrites the marker (the new store then adopts the tables through their
//! version hints). Servers sharing one Glue database share one catalog.
//!
//! The marker is read and written at start-up and when a table is created,
//! never on the commit path. Two first starts racing on an empty warehouse
//! can both write it (the last one stays): the check guards against
//! configuration mistakes, not against writers that race to set up.

use iceberg::{Error, ErrorKind, Result};
use serde_json::json;

use super::TableCatalog;
use super::durable;

/// The marker's name under the warehouse.
const MARKER: &str = ".tributary-catalog";

/// What start-up found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarehouseClaim {
    /// No catalog has claimed the warehouse yet (the first table will).
    Unclaimed,
    /// This catalog owns it (or just claimed the tables it already records).
    Ours,
    /// Another catalog owned it; `--take-over-warehouse` made it this one's.
    TakenOver {
        /// The catalog that owned it.
        from: String,
    },
}

impl TableCatalog {
    fn marker_location(&self) -> String {
        format!("{}/{MARKER}", self.warehouse())
    }

    /// The owner the marker names, if there is one.
    async fn marked_owner(&self) -> Result<Option<String>> {
        let location = self.marker_location();
        if !self.file_io().exists(&location).await? {
            return Ok(None);
        }
        let bytes = self.file_io().new_input(&location)?.read().await?;
        let marker: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|error| Error::new(ErrorKind::DataInvalid, format!("{location}: {error}")))?;
        let owner = marker.get("owner").and_then(serde_json::Value::as_str);
        owner
            .map(|owner| Some(owner.to_owned()))
            .ok_or_else(|| Error::new(ErrorKind::DataInvalid, format!("{location}: no `owner`")))
    }

    async fn mark(&self, owner: &str) -> Result<()> {
        let location = self.marker_location();
        let body = json!({ "owner": owner, "written_at": chrono::Utc::now().to_rfc3339() }).to_string().into_bytes();
        match self.local_path(&location) {
            Some(path) => durable::write_atomically(path, body).await,
            None => self.file_io().new_output(&location)?.write(bytes::Bytes::from(body)).await,
        }
    }

    /// At start-up: refuses a warehouse another catalog owns (unless
    /// `take_over`), and claims one whose tables this catalog already records.
    pub async fn claim_warehouse(&self, take_over: bool) -> Result<WarehouseClaim> {
        let Some(owner) = self.owner() else { return Ok(WarehouseClaim::Unclaimed) };
        match self.marked_owner().await? {
            Some(marked) if marked == owner => Ok(WarehouseClaim::Ours),
            Some(marked) if take_over => {
                self.mark(owner).await?;
                Ok(WarehouseClaim::TakenOver { from: marked })
            }
            Some(marked) => Err(Error::new(
                ErrorKind::PreconditionFailed,
                format!(
                    "the tables under {} belong to another catalog ({marked}; this one is {owner}): two catalogs on one warehouse delete each other's files as orphans. Point this server at that catalog or another warehouse, or, if that catalog is gone for good (a lost store), start once with --take-over-warehouse",
                    self.warehouse()
                ),
            )),
            None if take_over || !self.recorded_table_names().await?.is_empty() => {
                self.mark(owner).await?;
                Ok(WarehouseClaim::Ours)
            }
            None => Ok(WarehouseClaim::Unclaimed),
        }
    }

    /// Before a table is created: the warehouse must be unclaimed (this
    /// catalog then claims it) or this catalog's.
    pub(crate) async fn claim_for_new_table(&self) -> Result<()> {
        let Some(owner) = self.owner() else { return Ok(()) };
        match self.marked_owner().await? {
            Some(marked) if marked == owner => Ok(()),
            Some(marked) => Err(Error::new(
                ErrorKind::PreconditionFailed,
                format!("the tables under {} belong to another catalog ({marked})", self.warehouse()),
            )),
            None => self.mark(owner).await,
        }
    }
}
