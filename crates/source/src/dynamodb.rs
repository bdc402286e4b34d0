//! One DynamoDB table's calls, as every DynamoDB user in Tributary makes
//! them (the Iceberg catalog, cluster mode's lease and definitions tables):
//! each failure named with its call and table in the service's words, tables
//! created on first use and waited for, scans and queries read to their last
//! page, puts that only create, and transactions whose refusal is an answer.

use std::collections::HashMap;
use std::fmt::Display;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, KeySchemaElement, KeyType, ScalarAttributeType, TransactWriteItem,
};

/// A row.
pub type Item = HashMap<String, AttributeValue>;

/// A DynamoDB call that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DynamoDB {call} on `{table}`: {detail}")]
pub struct DynamoError {
    /// The API call.
    pub call: &'static str,
    /// The table.
    pub table: String,
    /// What the service (or the SDK) said.
    pub detail: String,
}

/// How a transaction went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transacted {
    /// Every item was written.
    Written,
    /// Nothing was written: each item's cancellation code, in the items'
    /// order (`ConditionalCheckFailed`, `TransactionConflict`, or `None` for
    /// an item that was not at fault).
    Canceled(Vec<String>),
}

/// A condition or filter with its placeholders.
#[derive(Debug)]
pub struct Expression<'a> {
    /// The expression.
    pub text: &'a str,
    /// `#name` placeholders.
    pub names: &'a [(&'a str, &'a str)],
    /// `:value` placeholders.
    pub values: Vec<(&'a str, AttributeValue)>,
}

/// One DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoTable {
    /// The client.
    pub client: Client,
    /// The table's name.
    pub name: String,
}

impl DynamoTable {
    /// Table `name` through `client`.
    pub fn new(client: Client, name: impl Into<String>) -> DynamoTable {
        DynamoTable { client, name: name.into() }
    }

    /// A failure of `call` on this table.
    pub fn error(&self, call: &'static str, detail: impl Display) -> DynamoError {
        DynamoError { call, table: self.name.clone(), detail: detail.to_string() }
    }

    /// The failure of `call`, in the service's words.
    pub fn failed<E: ProvideErrorMetadata + std::error::Error, R>(
        &self,
        call: &'static str,
        error: &SdkError<E, R>,
    ) -> DynamoError {
        let detail = match error.as_service_error() {
            Some(service) => {
                format!("{}: {}", service.code().unwrap_or("error"), service.message().unwrap_or("no message"))
            }
            None => error.to_string(),
        };
        self.error(call, detail)
    }

    /// `name` as a string attribute definition.
    pub fn attribute(&self, name: &str, kind: ScalarAttributeType) -> Result<AttributeDefinition, DynamoError> {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .map_err(|error| self.error("CreateTable", error))
    }

    /// `name` as a key of `kind`.
    pub fn key(&self, name: &str, kind: KeyType) -> Result<KeySchemaElement, DynamoError> {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|error| self.error("CreateTable", error))
    }

    /// Creates the table with `create` (given its name here) if it is missing,
    /// and waits until it is ACTIVE; another process creating it first is fine.
    /// Answers whether it existed.
    pub async fn ensure(&self, create: CreateTableFluentBuilder) -> Result<bool, DynamoError> {
        match self.client.describe_table().table_name(&self.name).send().await {
            Ok(_) => return Ok(true),
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
                return Ok(false);
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        Err(self.error("DescribeTable", "the table did not become ACTIVE within a minute"))
    }

    /// Every row (a consistent scan), or those `filter` keeps.
    pub async fn scan(&self, filter: Option<Expression<'_>>) -> Result<Vec<Item>, DynamoError> {
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

    /// The rows whose hash key `key` is `value`, in range-key order: from the
    /// table (read consistently) or from `index` (an index cannot be); with
    /// `newest` only the last one.
    pub async fn query(
        &self,
        index: Option<&str>,
        key: &str,
        value: &str,
        newest: bool,
    ) -> Result<Vec<Item>, DynamoError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.name)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression("#key = :value")
                .expression_attribute_names("#key", key)
                .expression_attribute_values(":value", AttributeValue::S(value.to_owned()))
                .consistent_read(index.is_none())
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

    /// Writes `items` all or none (`TransactWriteItems`, at most 100); a
    /// refused transaction is an answer, [`Transacted::Canceled`], not an error.
    pub async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Transacted, DynamoError> {
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(Transacted::Written),
            Err(error) => match error.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(canceled)) => {
                    let codes = canceled.cancellation_reasons().iter().map(|reason| reason.code().unwrap_or("None"));
                    Ok(Transacted::Canceled(codes.map(str::to_owned).collect()))
                }
                _ => Err(self.failed("TransactWriteItems", &error)),
            },
        }
    }

    /// Writes `item` if no row has its key (`key_attribute` absent); `false` when one does.
    pub async fn put_new(&self, item: Item, key_attribute: &str) -> Result<bool, DynamoError> {
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
