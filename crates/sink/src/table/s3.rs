//! Tables on S3: iceberg-rust's storage interface over aws-sdk-s3 (the
//! standard AWS credential chain; `AWS_ENDPOINT_URL_S3` for emulators).

use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use iceberg::io::{FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig, StorageFactory};
use iceberg::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

/// `s3://bucket/key` → (bucket, key).
pub(crate) fn split_url(url: &str) -> Result<(&str, &str)> {
    url.strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(bucket, _)| !bucket.is_empty())
        .ok_or_else(|| Error::new(ErrorKind::DataInvalid, format!("{url}: not an s3://bucket/key URL")))
}

fn s3_error(what: &str, url: &str, error: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unexpected, format!("S3 {what} {url}: {error}")).with_retryable(true)
}

/// Objects in one S3 account. The client is not serialised (iceberg's
/// storage types must be serde; ours never leave the process).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct S3Storage {
    #[serde(skip)]
    client: Option<Client>,
}

impl S3Storage {
    /// Storage through `client`.
    pub(crate) fn new(client: Client) -> S3Storage {
        S3Storage { client: Some(client) }
    }

    fn client(&self) -> Result<&Client> {
        self.client.as_ref().ok_or_else(|| Error::new(ErrorKind::Unexpected, "an S3 storage without a client"))
    }

    /// Every object under `prefix` (an `s3://` URL), with its last change.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<(String, SystemTime)>> {
        let (bucket, key) = split_url(prefix)?;
        let mut found = Vec::new();
        let mut pages = self.client()?.list_objects_v2().bucket(bucket).prefix(key).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| s3_error("list", prefix, aws_sdk_s3::error::DisplayErrorContext(error)))?;
            for object in page.contents() {
                let (Some(object_key), Some(modified)) = (object.key(), object.last_modified()) else { continue };
                let modified = SystemTime::try_from(*modified).unwrap_or(SystemTime::UNIX_EPOCH);
                found.push((format!("s3://{bucket}/{object_key}"), modified));
            }
        }
        Ok(found)
    }
}

#[async_trait]
#[typetag::serde]
impl Storage for S3Storage {
    async fn exists(&self, path: &str) -> Result<bool> {
        let (bucket, key) = split_url(path)?;
        match self.client()?.head_object().bucket(bucket).key(key).send().await {
            Ok(_) => Ok(true),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
            Err(error) => Err(s3_error("head", path, aws_sdk_s3::error::DisplayErrorContext(error))),
        }
    }

    async fn metadata(&self, path: &str) -> Result<FileMetadata> {
        let (bucket, key) = split_url(path)?;
        let head = self
            .client()?
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| s3_error("head", path, aws_sdk_s3::error::DisplayErrorContext(error)))?;
        Ok(FileMetadata { size: u64::try_from(head.content_length().unwrap_or(0)).unwrap_or(0) })
    }

    async fn read(&self, path: &str) -> Result<Bytes> {
        let (bucket, key) = split_url(path)?;
        let object = self
            .client()?
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| s3_error("get", path, aws_sdk_s3::error::DisplayErrorContext(error)))?;
        let body = object.body.collect().await.map_err(|error| s3_error("read", path, error))?;
        Ok(body.into_bytes())
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn FileRead>> {
        let (bucket, key) = split_url(path)?;
        Ok(Box::new(S3Read { client: self.client()?.clone(), bucket: bucket.to_owned(), key: key.to_owned() }))
    }

    async fn write(&self, path: &str, bytes: Bytes) -> Result<()> {
        let (bucket, key) = split_url(path)?;
        self.client()?
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|error| s3_error("put", path, aws_sdk_s3::error::DisplayErrorContext(error)))?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn FileWrite>> {
        split_url(path)?;
        Ok(Box::new(S3Write { storage: self.clone(), path: path.to_owned(), buffer: Vec::new(), closed: false }))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let (bucket, key) = split_url(path)?;
        self.client()?
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| s3_error("delete", path, aws_sdk_s3::error::DisplayErrorContext(error)))?;
        Ok(())
    }

    async fn delete_prefix(&self, path: &str) -> Result<()> {
        let prefix = if path.ends_with('/') { path.to_owned() } else { format!("{path}/") };
        for (url, _) in self.list(&prefix).await? {
            self.delete(&url).await?;
        }
        Ok(())
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_owned()))
    }

    fn new_output(&self, path: &str) -> Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_owned()))
    }
}

/// Ranged GETs of one object.
#[derive(Debug)]
struct S3Read {
    client: Client,
    bucket: String,
    key: String,
}

#[async_trait]
impl FileRead for S3Read {
    async fn read(&self, range: Range<u64>) -> Result<Bytes> {
        let url = format!("s3://{}/{}", self.bucket, self.key);
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await
            .map_err(|error| s3_error("get", &url, aws_sdk_s3::error::DisplayErrorContext(error)))?;
        let body = object.body.collect().await.map_err(|error| s3_error("read", &url, error))?;
        Ok(body.into_bytes())
    }
}

/// Buffers an object and puts it whole on close (our objects are metadata
/// files and manifests: small, written once).
#[derive(Debug)]
struct S3Write {
    storage: S3Storage,
    path: String,
    buffer: Vec<u8>,
    closed: bool,
}

#[async_trait]
impl FileWrite for S3Write {
    async fn write(&mut self, bytes: Bytes) -> Result<()> {
        self.buffer.extend_from_slice(&bytes);
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if self.closed {
            return Err(Error::new(ErrorKind::Unexpected, format!("{} is closed already", self.path)));
        }
        self.closed = true;
        let bytes = Bytes::from(std::mem::take(&mut self.buffer));
        self.storage.write(&self.path, bytes).await
    }
}

/// Builds [`S3Storage`] for iceberg's `FileIO`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct S3StorageFactory {
    #[serde(skip)]
    storage: S3Storage,
}

impl S3StorageFactory {
    /// A factory whose storage uses `client`.
    pub(crate) fn new(client: Client) -> S3StorageFactory {
        S3StorageFactory { storage: S3Storage::new(client) }
    }
}

#[typetag::serde]
impl StorageFactory for S3StorageFactory {
    fn build(&self, _config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(self.storage.clone()))
    }
}
