//! AWS DynamoDB as the tables' catalog, in the item layout of Iceberg's own
//! DynamoDB catalog (Java's `DynamoDbCatalog`, pyiceberg's
//! `DynamoDbCatalog`), so those catalogs read the tables Tributary writes.
//!
//! One DynamoDB table (`iceberg` by default): hash key `identifier`, range
//! key `namespace`, a `namespace-identifier` index (keys only) for listings,
//! `PAY_PER_REQUEST`. The namespace is an item whose `identifier` is
//! `NAMESPACE`; a table is the item `{namespace}.{table}` holding its current
//! metadata file in `p.metadata_location` (and `p.previous_metadata_location`,
//! `p.table_type` = `ICEBERG`), a version `v` (a random id, new on every
//! commit), and `created_at` / `updated_at` in milliseconds. Only `S` and `N`
//! attributes are written: pyiceberg reads no other type.
//!
//! A commit is an update conditioned on the `v` it read and on the metadata
//! it was based on; DynamoDB enforces the condition, so of two writers
//! committing from one base exactly one lands. Several tables (a dataset and
//! its rejected table) move in one `TransactWriteItems`, all or none.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, GlobalSecondaryIndex, KeyType, Projection, ProjectionType, ScalarAttributeType,
    TransactWriteItem, Update,
};
use iceberg::{Error, ErrorKind, Result};
use tributary_source::dynamodb::{DynamoError, DynamoTable, Transacted};

const IDENTIFIER: &str = "identifier";
const NAMESPACE_KEY: &str = "namespace";
const VERSION: &str = "v";
const CREATED_AT: &str = "created_at";
const UPDATED_AT: &str = "updated_at";
const NAMESPACE_ITEM: &str = "NAMESPACE";
const NAMESPACE_INDEX: &str = "namespace-identifier";
const METADATA_LOCATION: &str = "p.metadata_location";
const PREVIOUS_METADATA_LOCATION: &str = "p.previous_metadata_location";
const TABLE_TYPE: &str = "p.table_type";

/// The default DynamoDB table of Iceberg's DynamoDB catalogs.
pub const DEFAULT_DYNAMODB_CATALOG_TABLE: &str = "iceberg";

/// Tables of one namespace in an Iceberg DynamoDB catalog.
#[derive(Debug, Clone)]
pub struct DynamoCatalog {
    table: DynamoTable,
    namespace: String,
}

/// A table item as read: its metadata file and the version to commit from.
struct Pointer {
    metadata_location: String,
    version: String,
}

fn now_millis() -> AttributeValue {
    AttributeValue::N(chrono::Utc::now().timestamp_millis().to_string())
}

fn new_version() -> AttributeValue {
    AttributeValue::S(format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)))
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

impl DynamoCatalog {
    /// Namespace `namespace` of the catalog kept in DynamoDB table `table`.
    pub fn new(client: Client, table: impl Into<String>, namespace: impl Into<String>) -> DynamoCatalog {
        DynamoCatalog { table: DynamoTable::new(client, table), namespace: namespace.into() }
    }

    /// `table/namespace`, for status.
    pub fn describe(&self) -> String {
        format!("{}/{}", self.table.name, self.namespace)
    }

    fn client(&self) -> &Client {
        &self.table.client
    }

    fn failed<E: ProvideErrorMetadata + std::error::Error, R>(
        &self,
        call: &'static str,
        error: &SdkError<E, R>,
    ) -> Error {
        unavailable(self.table.failed(call, error))
    }

    fn key(&self, identifier: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([(IDENTIFIER.to_owned(), s(identifier)), (NAMESPACE_KEY.to_owned(), s(&self.namespace))])
    }

    fn identifier(&self, name: &str) -> String {
        format!("{}.{name}", self.namespace)
    }

    /// Creates the catalog's DynamoDB table (Iceberg's schema) and the
    /// namespace's item when they are missing.
    pub async fn ensure(&self) -> Result<()> {
        let table = &self.table;
        let index = GlobalSecondaryIndex::builder()
            .index_name(NAMESPACE_INDEX)
            .key_schema(table.key(NAMESPACE_KEY, KeyType::Hash).map_err(unavailable)?)
            .key_schema(table.key(IDENTIFIER, KeyType::Range).map_err(unavailable)?)
            .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
            .build()
            .map_err(|error| unavailable(table.error("CreateTable", error)))?;
        let create = table
            .client
            .create_table()
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(table.attribute(IDENTIFIER, ScalarAttributeType::S).map_err(unavailable)?)
            .attribute_definitions(table.attribute(NAMESPACE_KEY, ScalarAttributeType::S).map_err(unavailable)?)
            .key_schema(table.key(IDENTIFIER, KeyType::Hash).map_err(unavailable)?)
            .key_schema(table.key(NAMESPACE_KEY, KeyType::Range).map_err(unavailable)?)
            .global_secondary_indexes(index);
        table.ensure(create).await.map_err(unavailable)?;
        let mut namespace = self.key(NAMESPACE_ITEM);
        namespace.insert(VERSION.to_owned(), new_version());
        namespace.insert(CREATED_AT.to_owned(), now_millis());
        namespace.insert(UPDATED_AT.to_owned(), now_millis());
        // An existing namespace item stays as it is.
        table.put_new(namespace, NAMESPACE_KEY).await.map_err(unavailable)?;
        Ok(())
    }

    async fn current(&self, name: &str) -> Result<Option<Pointer>> {
        let found = self
            .client()
            .get_item()
            .table_name(&self.table.name)
            .set_key(Some(self.key(&self.identifier(name))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| self.failed("GetItem", &error))?;
        let Some(item) = found.item() else { return Ok(None) };
        let text = |attribute: &str| match item.get(attribute) {
            Some(AttributeValue::S(text)) => Some(text.clone()),
            _ => None,
        };
        if text(TABLE_TYPE).is_some_and(|kind| !kind.eq_ignore_ascii_case("ICEBERG")) {
            return Err(Error::new(
                ErrorKind::DataInvalid,
                format!("{} in `{}` exists and is not an Iceberg table", self.identifier(name), self.table.name),
            ));
        }
        let (Some(metadata_location), Some(version)) = (text(METADATA_LOCATION), text(VERSION)) else {
            return Err(Error::new(
                ErrorKind::DataInvalid,
                format!("{} in `{}` has no {METADATA_LOCATION} or {VERSION}", self.identifier(name), self.table.name),
            ));
        };
        Ok(Some(Pointer { metadata_location, version }))
    }

    /// Table `name`'s current metadata file, if the catalog has the table.
    pub(crate) async fn pointer(&self, name: &str) -> Result<Option<String>> {
        Ok(self.current(name).await?.map(|pointer| pointer.metadata_location))
    }

    /// The conditional update that moves `name` from `base` (read as `current`) to `location`.
    fn update(&self, name: &str, current: &Pointer, location: &str) -> Result<Update> {
        Update::builder()
            .table_name(&self.table.name)
            .set_key(Some(self.key(&self.identifier(name))))
            .update_expression("SET #location = :location, #previous = :base, #v = :new_v, #updated = :now")
            .condition_expression("#v = :v AND #location = :base")
            .expression_attribute_names("#location", METADATA_LOCATION)
            .expression_attribute_names("#previous", PREVIOUS_METADATA_LOCATION)
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_names("#updated", UPDATED_AT)
            .expression_attribute_values(":location", s(location))
            .expression_attribute_values(":base", s(&current.metadata_location))
            .expression_attribute_values(":v", s(&current.version))
            .expression_attribute_values(":new_v", new_version())
            .expression_attribute_values(":now", now_millis())
            .build()
            .map_err(|error| Error::new(ErrorKind::Unexpected, error.to_string()))
    }

    /// Points table `name` at `location` if it still points at `base`
    /// (`None`: if it does not exist yet). `false` when another commit moved
    /// it first. A condition that fails because an earlier attempt of this
    /// very call landed (the SDK retried) is read back and counts as landed.
    pub(crate) async fn swap(&self, name: &str, base: Option<&str>, location: &str) -> Result<bool> {
        self.swap_all(&[(name, base, location)]).await
    }

    /// Moves every `(name, base, location)` at once, or none.
    pub(crate) async fn swap_all(&self, swaps: &[(&str, Option<&str>, &str)]) -> Result<bool> {
        let mut writes = Vec::with_capacity(swaps.len());
        for (name, base, location) in swaps {
            let write = match base {
                None => {
                    let mut item = self.key(&self.identifier(name));
                    item.insert(VERSION.to_owned(), new_version());
                    item.insert(CREATED_AT.to_owned(), now_millis());
                    item.insert(UPDATED_AT.to_owned(), now_millis());
                    item.insert(TABLE_TYPE.to_owned(), s("ICEBERG"));
                    item.insert(METADATA_LOCATION.to_owned(), s(location));
                    item.insert(PREVIOUS_METADATA_LOCATION.to_owned(), s(""));
                    let put = aws_sdk_dynamodb::types::Put::builder()
                        .table_name(&self.table.name)
                        .set_item(Some(item))
                        .condition_expression("attribute_not_exists(#identifier)")
                        .expression_attribute_names("#identifier", IDENTIFIER)
                        .build()
                        .map_err(|error| Error::new(ErrorKind::Unexpected, error.to_string()))?;
                    TransactWriteItem::builder().put(put).build()
                }
                Some(base) => {
                    let Some(current) = self.current(name).await? else { return Ok(false) };
                    if current.metadata_location != *base {
                        return self.all_landed(swaps).await;
                    }
                    TransactWriteItem::builder().update(self.update(name, &current, location)?).build()
                }
            };
            writes.push(write);
        }
        match self.table.transact(writes).await.map_err(unavailable)? {
            Transacted::Written => Ok(true),
            Transacted::Canceled(_) => self.all_landed(swaps).await,
        }
    }

    /// Whether every swap's table already points at its new location (an
    /// earlier attempt landed); otherwise another commit came first.
    async fn all_landed(&self, swaps: &[(&str, Option<&str>, &str)]) -> Result<bool> {
        for (name, _, location) in swaps {
            if self.pointer(name).await?.as_deref() != Some(*location) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The names of the namespace's tables.
    pub(crate) async fn table_names(&self) -> Result<Vec<String>> {
        let prefix = format!("{}.", self.namespace);
        let items = self
            .table
            .query(Some(NAMESPACE_INDEX), NAMESPACE_KEY, &self.namespace, false)
            .await
            .map_err(unavailable)?;
        let mut names: Vec<String> = items
            .iter()
            .filter_map(|item| match item.get(IDENTIFIER) {
                Some(AttributeValue::S(identifier)) => identifier.strip_prefix(&prefix).map(str::to_owned),
                _ => None,
            })
            .collect();
        names.sort();
        Ok(names)
    }
}

/// DynamoDB refused or could not be reached: a commit may try again.
fn unavailable(error: DynamoError) -> Error {
    Error::new(ErrorKind::Unexpected, error.to_string()).with_retryable(true)
}
