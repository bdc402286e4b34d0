//! What the lease and definitions tables share: one table's calls, each
//! failure named with its call and table, tables created on first use, and
//! scans and queries read to their last page.

use std::collections::HashMap;
use std::fmt::Display;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeDefinition, AttributeValue, KeySchemaElement, KeyType, ScalarAttributeType};

use crate::ClusterError;

/// A row.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// A condition or filter with its placeholders.
pub(crate) struct Expression<'a> {
    pub(crate) text: &'a str,
    pub(crate) names: &'a [(&'a str, &'a str)],
    pub(crate) values: Vec<(&'a str, AttributeValue)>,
}

/// One DynamoDB table.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) client: Client,
    pub(crate) name: String,
}

impl Table {
    pub(crate) fn aws(&self, call: &'static str, error: impl Display) -> ClusterError {
        ClusterError::Aws { call, table: self.name.clone(), detail: error.to_string() }
    }

    pub(crate) fn corrupt(&self, (key, detail): (String, String)) -> ClusterError {
        ClusterError::Corrupt { table: self.name.clone(), key, detail }
    }

    /// The failure of `call`, in the service's words.
    pub(crate) fn failed<E: ProvideErrorMetadata + std::error::Error, R>(
        &self,
        call: &'static str,
        error: &SdkError<E, R>,
    ) -> ClusterError {
        let detail = match error.as_service_error() {
            Some(service) => {
                format!("{}: {}", service.code().unwrap_or("error"), service.message().unwrap_or("no message"))
            }
            None => error.to_string(),
        };
        self.aws(call, detail)
    }

    /// `name` as an attribute definition of `kind`.
    pub(crate) fn attribute(&self, name: &str, kind: ScalarAttributeType) -> Result<AttributeDefinition, ClusterError> {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .map_err(|error| self.aws("CreateTable", error))
    }

    /// `name` as a key of `kind`.
    pub(crate) fn key(&self, name: &str, kind: KeyType) -> Result<KeySchemaElement, ClusterError> {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|error| self.aws("CreateTable", error))
    }

    /// Creates the table with `create` (given its name here) if it is missing,
    /// and waits until it is ACTIVE; another process creating it first is fine.
    pub(crate) async fn ensure(&self, create: CreateTableFluentBuilder) -> Result<(), ClusterError> {
        match self.client.describe_table().table_name(&self.name).send().await {
            Ok(_) => return Ok(()),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {}
            Err(error) => return Err(self.failed("DescribeTable", &error)),
        }
        match create.table_name(&self.name).send().await {
            Ok(_) => {}
            Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(error) => return Err(self.failed("CreateTable", &error)),
        }
        for _ in 0..120 {
            let described = self
                .client
                .describe_table()
                .table_name(&self.name)
                .send()
                .await
                .map_err(|error| self.failed("DescribeTable", &error))?;
            if described.table().and_then(|table| table.table_status()).map(|status| status.as_str()) == Some("ACTIVE")
            {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        Err(self.aws("DescribeTable", "the table did not become ACTIVE within a minute"))
    }

    /// Every row (a consistent scan), or those `filter` keeps.
    pub(crate) async fn scan(&self, filter: Option<Expression<'_>>) -> Result<Vec<Item>, ClusterError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut request =
                self.client.scan().table_name(&self.name).consistent_read(true).set_exclusive_start_key(start);
            if let Some(filter) = &filter {
                request = request.filter_expression(filter.text);
                for (placeholder, name) in filter.names {
                    request = request.expression_attribute_names(*placeholder, *name);
                }
                for (placeholder, value) in &filter.values {
                    request = request.expression_attribute_values(*placeholder, value.clone());
                }
            }
            let page = request.send().await.map_err(|error| self.failed("Scan", &error))?;
            items.extend(page.items().iter().cloned());
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// The rows whose hash key `key` is `value` (a consistent query), in
    /// range-key order; with `newest` only the last one.
    pub(crate) async fn query(&self, key: &str, value: &str, newest: bool) -> Result<Vec<Item>, ClusterError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.name)
                .key_condition_expression("#key = :value")
                .expression_attribute_names("#key", key)
                .expression_attribute_values(":value", AttributeValue::S(value.to_owned()))
                .consistent_read(true)
                .set_exclusive_start_key(start);
            if newest {
                request = request.scan_index_forward(false).limit(1);
            }
            let page = request.send().await.map_err(|error| self.failed("Query", &error))?;
            items.extend(page.items().iter().cloned());
            start = page.last_evaluated_key().cloned();
            if start.is_none() || newest {
                return Ok(items);
            }
        }
    }

    /// Writes `item` if no row has its key (`key_attribute` absent); `false` when one does.
    pub(crate) async fn put_new(&self, item: Item, key_attribute: &str) -> Result<bool, ClusterError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", key_attribute)
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(false)
            }
            Err(error) => Err(self.failed("PutItem", &error)),
        }
    }
}
