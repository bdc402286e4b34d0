//! AWS Glue as the tables' shared catalog. Each table is a Glue table of
//! type ICEBERG whose `metadata_location` parameter names its current
//! metadata file, which is what Athena, EMR, Spark's and pyiceberg's Glue
//! catalogs read. A pointer moves by UpdateTable from the Glue version the
//! commit read (Glue's optimistic lock), and only if the table still names
//! the metadata file the commit was based on.

use std::collections::HashMap;

use aws_sdk_glue::Client;
use aws_sdk_glue::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_glue::types::{Column, DatabaseInput, StorageDescriptor, TableInput};
use iceberg::spec::{PrimitiveType, TableMetadata, Type};
use iceberg::{Error, ErrorKind, Result};

const TABLE_TYPE: &str = "table_type";
const ICEBERG: &str = "ICEBERG";
const METADATA_LOCATION: &str = "metadata_location";
const PREVIOUS_METADATA_LOCATION: &str = "previous_metadata_location";

/// One Glue database holding the datasets' tables.
#[derive(Debug, Clone)]
pub struct GlueCatalog {
    client: Client,
    database: String,
    /// The account whose catalog it is; the caller's when `None`.
    catalog_id: Option<String>,
}

/// A Glue table's current metadata file and the Glue version it is at.
struct Pointer {
    metadata_location: String,
    version_id: Option<String>,
}

fn glue_error<E>(call: &str, name: &str, error: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    // No answer, throttling and Glue's own failures are worth another attempt; a refusal is not.
    let retryable = match error.as_service_error() {
        None => true,
        Some(refusal) => matches!(
            refusal.code(),
            Some("ThrottlingException" | "InternalServiceException" | "OperationTimeoutException")
        ),
    };
    Error::new(ErrorKind::Unexpected, format!("Glue {call} {name}: {}", DisplayErrorContext(&error)))
        .with_retryable(retryable)
}

impl GlueCatalog {
    /// The tables of `database` in the catalog of `catalog_id` (the caller's account when `None`).
    pub fn new(client: Client, database: impl Into<String>, catalog_id: Option<String>) -> GlueCatalog {
        GlueCatalog { client, database: database.into(), catalog_id }
    }

    /// The catalog id given (`None`: the caller's account).
    pub fn catalog_id(&self) -> Option<&str> {
        self.catalog_id.as_deref()
    }

    /// The Glue database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Creates the database (its default location `location`) if it is missing.
    /// It is looked up first, so a principal allowed only to use an existing
    /// database (no `glue:CreateDatabase`) can start.
    pub async fn ensure_database(&self, location: &str) -> Result<()> {
        let found =
            self.client.get_database().set_catalog_id(self.catalog_id.clone()).name(&self.database).send().await;
        match found {
            Ok(_) => return Ok(()),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_entity_not_found_exception()) => {}
            Err(error) => return Err(glue_error("GetDatabase", &self.database, error)),
        }
        let input = DatabaseInput::builder()
            .name(&self.database)
            .description("Datasets ingested by Tributary")
            .location_uri(location)
            .build()
            .map_err(|error| Error::new(ErrorKind::DataInvalid, format!("Glue database input: {error}")))?;
        match self.client.create_database().set_catalog_id(self.catalog_id.clone()).database_input(input).send().await {
            Ok(_) => Ok(()),
            // Created by another start in between.
            Err(error) if error.as_service_error().is_some_and(|e| e.is_already_exists_exception()) => Ok(()),
            Err(error) => Err(glue_error("CreateDatabase", &self.database, error)),
        }
    }

    async fn current(&self, name: &str) -> Result<Option<Pointer>> {
        let found = self
            .client
            .get_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(&self.database)
            .name(name)
            .send()
            .await;
        let output = match found {
            Ok(output) => output,
            Err(error) if error.as_service_error().is_some_and(|e| e.is_entity_not_found_exception()) => {
                return Ok(None);
            }
            Err(error) => return Err(glue_error("GetTable", name, error)),
        };
        let Some(table) = output.table() else { return Ok(None) };
        let parameters = table.parameters();
        if !is_iceberg(table) {
            return Err(Error::new(
                ErrorKind::DataInvalid,
                format!("Glue table {}.{name} exists and is not an Iceberg table", self.database),
            ));
        }
        let metadata_location = parameters.and_then(|p| p.get(METADATA_LOCATION)).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::DataInvalid,
                format!("Glue table {}.{name} has no {METADATA_LOCATION}", self.database),
            )
        })?;
        Ok(Some(Pointer { metadata_location, version_id: table.version_id().map(str::to_owned) }))
    }

    /// Table `name`'s current metadata file, if Glue has the table.
    pub(crate) async fn pointer(&self, name: &str) -> Result<Option<String>> {
        Ok(self.current(name).await?.map(|pointer| pointer.metadata_location))
    }

    /// Points table `name` at `location` (whose content is `metadata`) if it
    /// still points at `base` (`None`: if it does not exist yet). `false`
    /// when another commit moved it first.
    pub(crate) async fn swap(
        &self,
        name: &str,
        base: Option<&str>,
        location: &str,
        metadata: &TableMetadata,
    ) -> Result<bool> {
        let input = table_input(name, location, base, metadata)?;
        let Some(base) = base else {
            let created = self
                .client
                .create_table()
                .set_catalog_id(self.catalog_id.clone())
                .database_name(&self.database)
                .table_input(input)
                .send()
                .await;
            return match created {
                Ok(_) => Ok(true),
                // An earlier attempt of this very call may have created it.
                Err(error) if error.as_service_error().is_some_and(|e| e.is_already_exists_exception()) => {
                    Ok(self.pointer(name).await?.as_deref() == Some(location))
                }
                Err(error) => Err(glue_error("CreateTable", name, error)),
            };
        };
        let Some(current) = self.current(name).await? else { return Ok(false) };
        if current.metadata_location != base {
            return Ok(current.metadata_location == location);
        }
        let updated = self
            .client
            .update_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(&self.database)
            .table_input(input)
            .set_version_id(current.version_id)
            // Iceberg keeps its own history; an archived Glue version per commit would only pile up.
            .skip_archive(true)
            .send()
            .await;
        match updated {
            Ok(_) => Ok(true),
            // Moved since it was read, perhaps by an earlier attempt of this call.
            Err(error) if error.as_service_error().is_some_and(|e| e.is_concurrent_modification_exception()) => {
                Ok(self.pointer(name).await?.as_deref() == Some(location))
            }
            Err(error) => Err(glue_error("UpdateTable", name, error)),
        }
    }

    /// The names of the database's Iceberg tables.
    pub(crate) async fn table_names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut pages = self
            .client
            .get_tables()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(&self.database)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| glue_error("GetTables", &self.database, error))?;
            for table in page.table_list() {
                if is_iceberg(table) {
                    names.push(table.name().to_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }
}

/// Whether a Glue table is an Iceberg table (`table_type`, in any case, as Glue's readers accept).
fn is_iceberg(table: &aws_sdk_glue::types::Table) -> bool {
    table.parameters().and_then(|p| p.get(TABLE_TYPE)).is_some_and(|kind| kind.eq_ignore_ascii_case(ICEBERG))
}

/// The Glue table for `metadata` at `location`: Iceberg's parameters, and
/// the current schema as Hive columns so that Glue's console and Athena's
/// table list show it.
fn table_input(name: &str, location: &str, previous: Option<&str>, metadata: &TableMetadata) -> Result<TableInput> {
    let columns = metadata
        .current_schema()
        .as_struct()
        .fields()
        .iter()
        .map(|field| {
            let parameters = HashMap::from([
                ("iceberg.field.id".to_owned(), field.id.to_string()),
                ("iceberg.field.optional".to_owned(), (!field.required).to_string()),
                ("iceberg.field.current".to_owned(), "true".to_owned()),
            ]);
            Column::builder()
                .name(&field.name)
                .r#type(hive_type(&field.field_type))
                .set_comment(field.doc.clone())
                .set_parameters(Some(parameters))
                .build()
                .map_err(|error| Error::new(ErrorKind::DataInvalid, format!("Glue column {}: {error}", field.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut parameters = HashMap::from([
        (TABLE_TYPE.to_owned(), ICEBERG.to_owned()),
        (METADATA_LOCATION.to_owned(), location.to_owned()),
    ]);
    if let Some(previous) = previous {
        parameters.insert(PREVIOUS_METADATA_LOCATION.to_owned(), previous.to_owned());
    }
    TableInput::builder()
        .name(name)
        .table_type("EXTERNAL_TABLE")
        .set_parameters(Some(parameters))
        .storage_descriptor(
            StorageDescriptor::builder().location(metadata.location()).set_columns(Some(columns)).build(),
        )
        .build()
        .map_err(|error| Error::new(ErrorKind::DataInvalid, format!("Glue table input {name}: {error}")))
}

/// An Iceberg type as Hive (and so Glue and Athena) spells it.
fn hive_type(field_type: &Type) -> String {
    match field_type {
        Type::Primitive(primitive) => match primitive {
            PrimitiveType::Boolean => "boolean".to_owned(),
            PrimitiveType::Int => "int".to_owned(),
            PrimitiveType::Long => "bigint".to_owned(),
            PrimitiveType::Float => "float".to_owned(),
            PrimitiveType::Double => "double".to_owned(),
            PrimitiveType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            PrimitiveType::Date => "date".to_owned(),
            PrimitiveType::Timestamp
            | PrimitiveType::Timestamptz
            | PrimitiveType::TimestampNs
            | PrimitiveType::TimestamptzNs => "timestamp".to_owned(),
            PrimitiveType::Time | PrimitiveType::String | PrimitiveType::Uuid => "string".to_owned(),
            PrimitiveType::Fixed(_) | PrimitiveType::Binary => "binary".to_owned(),
        },
        Type::Struct(fields) => {
            let fields: Vec<String> = fields
                .fields()
                .iter()
                .map(|field| format!("{}:{}", field.name, hive_type(&field.field_type)))
                .collect();
            format!("struct<{}>", fields.join(","))
        }
        Type::List(list) => format!("array<{}>", hive_type(&list.element_field.field_type)),
        Type::Map(map) => {
            format!("map<{},{}>", hive_type(&map.key_field.field_type), hive_type(&map.value_field.field_type))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use iceberg::spec::{ListType, MapType, NestedField, StructType};

    use super::*;

    #[test]
    fn hive_types_spell_nested_iceberg_types_as_athena_reads_them() {
        let nested = Type::Struct(StructType::new(vec![
            Arc::new(NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long))),
            Arc::new(NestedField::optional(
                2,
                "tags",
                Type::List(ListType::new(Arc::new(NestedField::list_element(
                    3,
                    Type::Primitive(PrimitiveType::String),
                    false,
                )))),
            )),
            Arc::new(NestedField::optional(
                4,
                "prices",
                Type::Map(MapType::new(
                    Arc::new(NestedField::map_key_element(5, Type::Primitive(PrimitiveType::String))),
                    Arc::new(NestedField::map_value_element(
                        6,
                        Type::Primitive(PrimitiveType::Decimal { precision: 12, scale: 2 }),
                        false,
                    )),
                )),
            )),
            Arc::new(NestedField::optional(7, "at", Type::Primitive(PrimitiveType::Timestamptz))),
        ]));
        assert_eq!(
            hive_type(&nested),
            "struct<id:bigint,tags:array<string>,prices:map<string,decimal(12,2)>,at:timestamp>"
        );
    }
}
