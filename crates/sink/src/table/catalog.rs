//! The tables' catalog: where each table's current metadata file is
//! recorded, swapped only from the file a commit was based on.
//!
//! Three kinds keep the pointers: the embedded one, a row per table in
//! Tributary's store, which moves several tables' pointers in one
//! transaction; AWS Glue, shared with query engines, which moves one table
//! at a time; and Iceberg's DynamoDB catalog (`dynamo.rs`), shared by several
//! processes, which moves several tables in one transaction. Either way `metadata/version-hint.text` follows every
//! swap, so path-based readers (pyiceberg's `StaticTable`, DuckDB, Spark's
//! Hadoop tables) find the latest metadata, and a catalog without a table's
//! pointer (a lost store, a new Glue database) finds the table again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use iceberg::io::{FileIO, FileIOBuilder};
use iceberg::spec::{ManifestList, Schema, TableMetadata, TableMetadataBuilder};
use iceberg::table::Table;
use iceberg::{
    Catalog, Error, ErrorKind, MetadataLocation, Namespace, NamespaceIdent, Result, Runtime, TableCommit,
    TableCreation, TableIdent,
};
use tributary_store::Store;

use super::durable;
use super::dynamo::DynamoCatalog;
use super::glue::GlueCatalog;
use super::s3::{S3Storage, S3StorageFactory};

/// The one namespace tables are addressed in (Glue's database is configured apart).
pub const NAMESPACE: &str = "tributary";

/// A check a commit must pass against the table's current metadata, made
/// again on every retry (a retry re-applies the commit to newer metadata).
pub(crate) type CommitGuard<'a> = &'a (dyn Fn(&TableMetadata) -> Result<()> + Sync);

/// Where the tables' current-metadata pointers live.
#[derive(Debug, Clone)]
enum Pointers {
    /// Rows of Tributary's store.
    Store(Arc<Store>),
    /// Glue tables of one database.
    Glue(GlueCatalog),
    /// Items of an Iceberg DynamoDB catalog.
    Dynamo(DynamoCatalog),
}

impl Pointers {
    async fn get(&self, name: &str) -> Result<Option<String>> {
        match self {
            Pointers::Store(store) => store.table_pointer(name).map_err(store_error),
            Pointers::Glue(glue) => glue.pointer(name).await,
            Pointers::Dynamo(dynamo) => dynamo.pointer(name).await,
        }
    }

    async fn swap(&self, name: &str, base: Option<&str>, location: &str, metadata: &TableMetadata) -> Result<bool> {
        match self {
            Pointers::Store(store) => store.swap_table_pointer(name, base, location).map_err(store_error),
            Pointers::Glue(glue) => glue.swap(name, base, location, metadata).await,
            Pointers::Dynamo(dynamo) => dynamo.swap(name, base, location).await,
        }
    }

    async fn names(&self) -> Result<Vec<String>> {
        match self {
            Pointers::Store(store) => {
                Ok(store.table_pointers().map_err(store_error)?.into_iter().map(|(name, _)| name).collect())
            }
            Pointers::Glue(glue) => glue.table_names().await,
            Pointers::Dynamo(dynamo) => dynamo.table_names().await,
        }
    }
}

fn store_error(error: tributary_store::StoreError) -> Error {
    Error::new(ErrorKind::Unexpected, format!("the catalog's store: {error}")).with_retryable(error.is_busy())
}

/// Tables under one warehouse location, and the catalog of their pointers.
#[derive(Debug, Clone)]
pub struct TableCatalog {
    pointers: Pointers,
    file_io: FileIO,
    warehouse: String,
    /// Object storage, and the local directory files are written in before
    /// they are uploaded; `None` for a local warehouse.
    remote: Option<(S3Storage, PathBuf)>,
    /// Who this catalog is, for the warehouse's ownership marker (see
    /// `owner.rs`); `None` checks nothing.
    owner: Option<Arc<str>>,
}

impl TableCatalog {
    /// A catalog of tables under `warehouse` (a `file://` URL), read and written through `file_io`.
    pub fn new(store: Arc<Store>, file_io: FileIO, warehouse: String) -> TableCatalog {
        TableCatalog {
            pointers: Pointers::Store(store),
            file_io,
            warehouse: warehouse.trim_end_matches('/').to_owned(),
            remote: None,
            owner: None,
        }
    }

    /// A catalog of tables in the local directory `warehouse` (created if missing).
    pub fn local(store: Arc<Store>, warehouse: &std::path::Path) -> std::io::Result<TableCatalog> {
        std::fs::create_dir_all(warehouse)?;
        let absolute = std::fs::canonicalize(warehouse)?;
        Ok(TableCatalog::new(store, FileIO::new_with_fs(), format!("file://{}", absolute.display())))
    }

    /// A catalog of tables under `warehouse` (`s3://bucket/prefix`), through
    /// `client`; data files are written in `spool` and then uploaded.
    pub fn s3(store: Arc<Store>, client: aws_sdk_s3::Client, warehouse: &str, spool: PathBuf) -> Result<TableCatalog> {
        let location = warehouse.trim_end_matches('/');
        super::s3::split_url(&format!("{location}/"))?;
        let factory = S3StorageFactory::new(client.clone());
        Ok(TableCatalog {
            pointers: Pointers::Store(store),
            file_io: FileIOBuilder::new(Arc::new(factory)).build(),
            warehouse: location.to_owned(),
            remote: Some((S3Storage::new(client), spool)),
            owner: None,
        })
    }

    /// The same tables, their pointers kept in `glue` instead of the store.
    pub fn with_glue(self, glue: GlueCatalog) -> TableCatalog {
        TableCatalog { pointers: Pointers::Glue(glue), ..self }
    }

    /// The same tables, their pointers kept in an Iceberg DynamoDB catalog instead of the store.
    pub fn with_dynamo(self, dynamo: DynamoCatalog) -> TableCatalog {
        TableCatalog { pointers: Pointers::Dynamo(dynamo), ..self }
    }

    /// The same tables, owned by the catalog called `owner` (a store's
    /// identity, or a Glue database): a warehouse another owner claimed is refused.
    pub fn with_owner(self, owner: impl Into<String>) -> TableCatalog {
        TableCatalog { owner: Some(Arc::from(owner.into())), ..self }
    }

    pub(crate) fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// The names of the tables this catalog records.
    pub(crate) async fn recorded_table_names(&self) -> Result<Vec<String>> {
        self.pointers.names().await
    }

    /// Which catalog keeps the pointers: `embedded` or `glue:DATABASE`.
    pub fn kind(&self) -> String {
        match &self.pointers {
            Pointers::Store(_) => "embedded".to_owned(),
            Pointers::Glue(glue) => format!("glue:{}", glue.database()),
            Pointers::Dynamo(dynamo) => format!("dynamodb:{}", dynamo.describe()),
        }
    }

    /// Whether one commit can move several tables' pointers together (the
    /// embedded catalog, DynamoDB's transactions); Glue moves one table at a time.
    pub(crate) fn commits_tables_together(&self) -> bool {
        matches!(self.pointers, Pointers::Store(_) | Pointers::Dynamo(_))
    }

    /// Where data files are written before they are uploaded; `None` when
    /// the warehouse is local (they are written in place).
    pub(crate) fn spool(&self) -> Option<&std::path::Path> {
        self.remote.as_ref().map(|(_, spool)| spool.as_path())
    }

    /// Every file under `prefix` (a location URL), with its last change.
    pub(crate) async fn list_files(&self, prefix: &str) -> Result<Vec<(String, SystemTime)>> {
        if let Some((storage, _)) = &self.remote {
            return storage.list(prefix).await;
        }
        let root = prefix.strip_prefix("file://").unwrap_or(prefix);
        let mut found = Vec::new();
        walk(std::path::Path::new(root), &mut found)
            .map_err(|error| Error::new(ErrorKind::Unexpected, format!("listing {root}: {error}")))?;
        Ok(found.into_iter().map(|(path, modified)| (format!("file://{}", path.display()), modified)).collect())
    }

    /// The Glue database and catalog id (`None`: the caller's account) of a Glue catalog.
    pub fn glue_database(&self) -> Option<(&str, Option<&str>)> {
        match &self.pointers {
            Pointers::Glue(glue) => Some((glue.database(), glue.catalog_id())),
            _ => None,
        }
    }

    /// The warehouse location (a URL).
    pub fn warehouse(&self) -> &str {
        &self.warehouse
    }

    /// Where table `name` lives.
    pub fn table_location(&self, name: &str) -> String {
        format!("{}/{name}", self.warehouse)
    }

    /// The storage the tables are on.
    pub fn file_io(&self) -> &FileIO {
        &self.file_io
    }

    /// Only a table name may become a path under the warehouse.
    fn check_ident(ident: &TableIdent) -> Result<()> {
        Self::check_namespace(ident.namespace())?;
        if is_table_name(ident.name()) {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::DataInvalid, format!("`{}` is not a table name", ident.name().escape_debug())))
        }
    }

    fn check_namespace(namespace: &NamespaceIdent) -> Result<()> {
        if namespace.as_ref().as_slice() == [NAMESPACE] {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::NamespaceNotFound, format!("only the `{NAMESPACE}` namespace exists")))
        }
    }

    fn table(&self, ident: TableIdent, metadata: TableMetadata, location: String) -> Result<Table> {
        Table::builder()
            .identifier(ident)
            .metadata(metadata)
            .metadata_location(location)
            .file_io(self.file_io.clone())
            .runtime(Runtime::current())
            .build()
    }

    /// The table's current metadata file: the catalog's pointer or, when it
    /// has none (a lost store, a new Glue database), the version hint the last
    /// commit left beside the table. Only reads: a writer adopts the hint
    /// first ([`TableCatalog::adopt`]); a status, a listing or a dry run never
    /// changes the catalog.
    async fn current_location(&self, ident: &TableIdent) -> Result<Option<String>> {
        Self::check_ident(ident)?;
        if let Some(location) = self.pointers.get(ident.name()).await? {
            return Ok(Some(location));
        }
        self.hinted_location(ident.name()).await
    }

    /// The metadata file `version-hint.text` names, if the table has one.
    async fn hinted_location(&self, name: &str) -> Result<Option<String>> {
        let hint = version_hint_path(&self.table_location(name));
        if !self.file_io.exists(&hint).await? {
            return Ok(None);
        }
        let content = self.file_io.new_input(&hint)?.read().await?;
        let file = String::from_utf8_lossy(&content).trim().to_owned();
        if file.is_empty() || file.contains('/') {
            return Err(Error::new(ErrorKind::DataInvalid, format!("{hint}: not a metadata file name")));
        }
        let file = if file.ends_with(".metadata.json") { file } else { format!("{file}.metadata.json") };
        Ok(Some(format!("{}/metadata/{file}", self.table_location(name))))
    }

    /// Before writing a table: when the catalog has no pointer for it but
    /// the warehouse holds it (a lost store, a new Glue database), points the
    /// catalog at the metadata its version hint names.
    pub(crate) async fn adopt(&self, ident: &TableIdent) -> Result<()> {
        Self::check_ident(ident)?;
        if self.pointers.get(ident.name()).await?.is_some() {
            return Ok(());
        }
        let Some(location) = self.hinted_location(ident.name()).await? else { return Ok(()) };
        tracing_adopted(ident.name(), &location);
        let metadata = TableMetadata::read_from(&self.file_io, &location).await?;
        // Another start may have adopted (or committed) first: then its pointer stands.
        self.pointers.swap(ident.name(), None, &location, &metadata).await?;
        Ok(())
    }

    /// Commits `commit` if no other commit swapped the pointer since the
    /// metadata it applies to was read.
    async fn update(&self, commit: TableCommit) -> Result<Table> {
        let ident = commit.identifier().clone();
        let base = self.load_table(&ident).await?;
        let base_location = base.metadata_location_result()?.to_owned();
        let staged = commit.apply(base)?;
        let location = MetadataLocation::from_str(staged.metadata_location_result()?)?;
        self.install(ident, &base_location, staged.metadata().clone(), location).await
    }

    /// A new current schema for `base` (fields keep their ids; see `table_schema`).
    pub(crate) async fn evolve_schema(&self, base: &Table, schema: Schema) -> Result<Table> {
        let base_location = base.metadata_location_result()?.to_owned();
        let metadata = base
            .metadata()
            .clone()
            .into_builder(Some(base_location.clone()))
            .add_current_schema(schema)?
            .build()?
            .metadata;
        self.replace_metadata(base, metadata).await
    }

    /// Makes `metadata` (built from `base`'s) the table's, if the table is still at `base`.
    pub(crate) async fn replace_metadata(&self, base: &Table, metadata: TableMetadata) -> Result<Table> {
        let base_location = base.metadata_location_result()?.to_owned();
        let location = MetadataLocation::from_str(&base_location)?.with_next_version().with_new_metadata(&metadata);
        self.install(base.identifier().clone(), &base_location, metadata, location).await
    }

    /// Writes `metadata` at `location` and points the table at it, if it
    /// still points at `base_location`.
    async fn install(
        &self,
        ident: TableIdent,
        base_location: &str,
        metadata: TableMetadata,
        location: MetadataLocation,
    ) -> Result<Table> {
        self.write_metadata(&metadata, &location).await?;
        let location = location.to_string();
        let swapped = self.pointers.swap(ident.name(), Some(base_location), &location, &metadata).await?;
        if !swapped {
            // Never pointed at: nobody reads it.
            let _ = self.file_io.delete(&location).await;
            return Err(Error::new(ErrorKind::CatalogCommitConflicts, "another commit moved the table first")
                .with_retryable(true));
        }
        self.write_version_hint(ident.name(), &location).await?;
        self.table(ident, metadata, location)
    }

    /// The hint is rewritten in place: on a local warehouse through a renamed
    /// temporary file, so a reader or a restart never finds it empty.
    async fn write_version_hint(&self, name: &str, metadata_location: &str) -> Result<()> {
        let file_name = metadata_location.rsplit('/').next().unwrap_or(metadata_location);
        let stem = file_name.strip_suffix(".metadata.json").unwrap_or(file_name);
        let hint = version_hint_path(&self.table_location(name));
        match self.local_path(&hint) {
            Some(path) => durable::write_atomically(path, stem.as_bytes().to_vec()).await,
            None => self.file_io.new_output(&hint)?.write(bytes::Bytes::from(stem.to_owned())).await,
        }
    }

    /// The local path of `location` when the warehouse is a local directory.
    pub(crate) fn local_path(&self, location: &str) -> Option<PathBuf> {
        if self.remote.is_some() { None } else { durable::local_file(location) }
    }

    /// Writes `metadata` at `location` so that it, and the manifest list and
    /// manifests of its current snapshot, outlive a power cut before any
    /// pointer names them (on an object store a PUT is durable already).
    pub(crate) async fn write_metadata(&self, metadata: &TableMetadata, location: &MetadataLocation) -> Result<()> {
        let url = location.to_string();
        let Some(path) = self.local_path(&url) else {
            return metadata.write_to(&self.file_io, location).await;
        };
        if location.compression_codec() != iceberg::compression::CompressionCodec::None {
            return Err(unsupported("write compressed metadata files on a local warehouse"));
        }
        self.sync_current_snapshot(metadata).await?;
        let bytes = serde_json::to_vec(metadata)
            .map_err(|error| Error::new(ErrorKind::DataInvalid, format!("serialising {url}: {error}")))?;
        durable::write_atomically(path, bytes).await
    }

    /// Syncs the files iceberg wrote for `metadata`'s current snapshot (its
    /// manifest list, and the manifests that snapshot added).
    async fn sync_current_snapshot(&self, metadata: &TableMetadata) -> Result<()> {
        let Some(snapshot) = metadata.current_snapshot() else { return Ok(()) };
        let list_url = snapshot.manifest_list();
        let bytes = self.file_io.new_input(list_url)?.read().await?;
        let list = ManifestList::parse_with_version(&bytes, metadata.format_version())?;
        let added = list
            .entries()
            .iter()
            .filter(|manifest| manifest.added_snapshot_id == snapshot.snapshot_id())
            .map(|manifest| manifest.manifest_path.as_str());
        let paths = std::iter::once(list_url).chain(added).filter_map(|url| self.local_path(url)).collect();
        durable::sync_files(paths).await
    }
}

fn walk(directory: &std::path::Path, found: &mut Vec<(PathBuf, SystemTime)>) -> std::io::Result<()> {
    if !directory.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(directory)? {
        let entry = entry?;
        let path = entry.path();
        if path.is_dir() {
            walk(&path, found)?;
        } else {
            found.push((path, entry.metadata()?.modified()?));
        }
    }
    Ok(())
}

/// Whether `name` can be a table's: a dataset name (`[a-z][a-z0-9_]{0,62}`),
/// or one with the rejected table's suffix.
pub fn is_table_name(name: &str) -> bool {
    let dataset = name.strip_suffix(tributary_source::REJECTED_SUFFIX).unwrap_or(name);
    let mut chars = dataset.chars();
    chars.next().is_some_and(|first| first.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && dataset.len() <= 63
}

fn version_hint_path(table_location: &str) -> String {
    format!("{table_location}/metadata/version-hint.text")
}

fn tracing_adopted(name: &str, location: &str) {
    tracing::info!(
        table = name,
        metadata = location,
        "the store had no pointer for the table: adopted its version hint"
    );
}

fn unsupported(what: &str) -> Error {
    Error::new(ErrorKind::FeatureUnsupported, format!("Tributary's catalog does not {what}"))
}

#[async_trait]
impl Catalog for TableCatalog {
    async fn list_namespaces(&self, parent: Option<&NamespaceIdent>) -> Result<Vec<NamespaceIdent>> {
        Ok(if parent.is_none() { vec![NamespaceIdent::new(NAMESPACE.to_owned())] } else { Vec::new() })
    }

    async fn create_namespace(&self, _: &NamespaceIdent, _: HashMap<String, String>) -> Result<Namespace> {
        Err(unsupported("create namespaces"))
    }

    async fn get_namespace(&self, namespace: &NamespaceIdent) -> Result<Namespace> {
        Self::check_namespace(namespace)?;
        Ok(Namespace::new(namespace.clone()))
    }

    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        Ok(Self::check_namespace(namespace).is_ok())
    }

    async fn update_namespace(&self, _: &NamespaceIdent, _: HashMap<String, String>) -> Result<()> {
        Err(unsupported("change namespaces"))
    }

    async fn drop_namespace(&self, _: &NamespaceIdent) -> Result<()> {
        Err(unsupported("drop namespaces"))
    }

    async fn list_tables(&self, namespace: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        Self::check_namespace(namespace)?;
        let names = self.pointers.names().await?;
        Ok(names.into_iter().map(|name| TableIdent::new(namespace.clone(), name)).collect())
    }

    async fn create_table(&self, namespace: &NamespaceIdent, creation: TableCreation) -> Result<Table> {
        let ident = TableIdent::new(namespace.clone(), creation.name.clone());
        Self::check_ident(&ident)?;
        let table_location = self.table_location(&creation.name);
        self.claim_for_new_table().await?;
        let creation = TableCreation { location: Some(table_location.clone()), ..creation };
        let metadata = TableMetadataBuilder::from_table_creation(creation)?.build()?.metadata;
        let location = MetadataLocation::new_with_metadata(&table_location, &metadata);
        self.write_metadata(&metadata, &location).await?;
        let location = location.to_string();
        if !self.pointers.swap(ident.name(), None, &location, &metadata).await? {
            let _ = self.file_io.delete(&location).await;
            return Err(Error::new(ErrorKind::TableAlreadyExists, format!("table {} exists", ident.name())));
        }
        self.write_version_hint(ident.name(), &location).await?;
        self.table(ident, metadata, location)
    }

    async fn load_table(&self, ident: &TableIdent) -> Result<Table> {
        let Some(location) = self.current_location(ident).await? else {
            return Err(Error::new(ErrorKind::TableNotFound, format!("no table {}", ident.name())));
        };
        let metadata = TableMetadata::read_from(&self.file_io, &location).await?;
        self.table(ident.clone(), metadata, location)
    }

    async fn drop_table(&self, _: &TableIdent) -> Result<()> {
        Err(unsupported("drop tables"))
    }

    async fn purge_table(&self, _: &TableIdent) -> Result<()> {
        Err(unsupported("purge tables"))
    }

    async fn table_exists(&self, ident: &TableIdent) -> Result<bool> {
        Ok(self.current_location(ident).await?.is_some())
    }

    async fn rename_table(&self, _: &TableIdent, _: &TableIdent) -> Result<()> {
        Err(unsupported("rename tables"))
    }

    async fn register_table(&self, ident: &TableIdent, location: String) -> Result<Table> {
        Self::check_ident(ident)?;
        let metadata = TableMetadata::read_from(&self.file_io, &location).await?;
        if !self.pointers.swap(ident.name(), None, &location, &metadata).await? {
            return Err(Error::new(ErrorKind::TableAlreadyExists, format!("table {} exists", ident.name())));
        }
        self.table(ident.clone(), metadata, location)
    }

    async fn update_table(&self, commit: TableCommit) -> Result<Table> {
        self.update(commit).await
    }
}

/// The catalog as one multi-table commit sees it: each table's update is
/// applied to its current metadata (the guarded table's after `guard`
/// accepts it) and written, but no pointer moves until
/// [`Staging::install`] swaps them all at once.
pub(crate) struct Staging<'a> {
    pub(crate) inner: &'a TableCatalog,
    /// The table whose updates `guard` checks.
    pub(crate) guarded: &'a str,
    pub(crate) guard: CommitGuard<'a>,
    staged: parking_lot::Mutex<Vec<Staged>>,
}

struct Staged {
    ident: TableIdent,
    base_location: String,
    location: String,
    metadata: TableMetadata,
}

impl<'a> Staging<'a> {
    pub(crate) fn new(inner: &'a TableCatalog, guarded: &'a str, guard: CommitGuard<'a>) -> Staging<'a> {
        Staging { inner, guarded, guard, staged: parking_lot::Mutex::new(Vec::new()) }
    }

    /// Moves every staged table's pointer, all or none; on a conflict the
    /// written metadata files are deleted (nothing points at them).
    pub(crate) async fn install(self) -> Result<Vec<Table>> {
        let staged = self.staged.into_inner();
        let swapped = match (&self.inner.pointers, staged.as_slice()) {
            (pointers, [one]) => {
                pointers.swap(one.ident.name(), Some(&one.base_location), &one.location, &one.metadata).await?
            }
            (Pointers::Store(store), several) => {
                let swaps: Vec<(&str, &str, &str)> =
                    several.iter().map(|s| (s.ident.name(), s.base_location.as_str(), s.location.as_str())).collect();
                store.swap_table_pointers(&swaps).map_err(store_error)?
            }
            (Pointers::Dynamo(dynamo), several) => {
                let swaps: Vec<(&str, Option<&str>, &str)> = several
                    .iter()
                    .map(|s| (s.ident.name(), Some(s.base_location.as_str()), s.location.as_str()))
                    .collect();
                dynamo.swap_all(&swaps).await?
            }
            (Pointers::Glue(_), _) => {
                return Err(Error::new(ErrorKind::FeatureUnsupported, "Glue commits one table at a time"));
            }
        };
        if !swapped {
            for table in &staged {
                let _ = self.inner.file_io.delete(&table.location).await;
            }
            return Err(Error::new(ErrorKind::CatalogCommitConflicts, "another commit moved a table first")
                .with_retryable(true));
        }
        let mut tables = Vec::with_capacity(staged.len());
        for table in staged {
            self.inner.write_version_hint(table.ident.name(), &table.location).await?;
            tables.push(self.inner.table(table.ident, table.metadata, table.location)?);
        }
        Ok(tables)
    }
}

impl std::fmt::Debug for Staging<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staging").field("inner", self.inner).field("guarded", &self.guarded).finish_non_exhaustive()
    }
}

#[async_trait]
impl Catalog for Staging<'_> {
    async fn list_namespaces(&self, parent: Option<&NamespaceIdent>) -> Result<Vec<NamespaceIdent>> {
        self.inner.list_namespaces(parent).await
    }
    async fn create_namespace(&self, n: &NamespaceIdent, p: HashMap<String, String>) -> Result<Namespace> {
        self.inner.create_namespace(n, p).await
    }
    async fn get_namespace(&self, namespace: &NamespaceIdent) -> Result<Namespace> {
        self.inner.get_namespace(namespace).await
    }
    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        self.inner.namespace_exists(namespace).await
    }
    async fn update_namespace(&self, n: &NamespaceIdent, p: HashMap<String, String>) -> Result<()> {
        self.inner.update_namespace(n, p).await
    }
    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> Result<()> {
        self.inner.drop_namespace(namespace).await
    }
    async fn list_tables(&self, namespace: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        self.inner.list_tables(namespace).await
    }
    async fn create_table(&self, namespace: &NamespaceIdent, creation: TableCreation) -> Result<Table> {
        self.inner.create_table(namespace, creation).await
    }
    async fn load_table(&self, ident: &TableIdent) -> Result<Table> {
        self.inner.load_table(ident).await
    }
    async fn drop_table(&self, ident: &TableIdent) -> Result<()> {
        self.inner.drop_table(ident).await
    }
    async fn purge_table(&self, ident: &TableIdent) -> Result<()> {
        self.inner.purge_table(ident).await
    }
    async fn table_exists(&self, ident: &TableIdent) -> Result<bool> {
        self.inner.table_exists(ident).await
    }
    async fn rename_table(&self, from: &TableIdent, to: &TableIdent) -> Result<()> {
        self.inner.rename_table(from, to).await
    }
    async fn register_table(&self, ident: &TableIdent, location: String) -> Result<Table> {
        self.inner.register_table(ident, location).await
    }
    async fn update_table(&self, commit: TableCommit) -> Result<Table> {
        let ident = commit.identifier().clone();
        if self.staged.lock().iter().any(|staged| staged.ident == ident) {
            return Err(Error::new(ErrorKind::Unexpected, format!("table {} is staged twice", ident.name())));
        }
        let base = self.inner.load_table(&ident).await?;
        if ident.name() == self.guarded {
            (self.guard)(base.metadata())?;
        }
        let base_location = base.metadata_location_result()?.to_owned();
        let staged = commit.apply(base)?;
        let location = MetadataLocation::from_str(staged.metadata_location_result()?)?;
        self.inner.write_metadata(staged.metadata(), &location).await?;
        let location = location.to_string();
        self.staged.lock().push(Staged {
            ident: ident.clone(),
            base_location,
            location: location.clone(),
            metadata: staged.metadata().clone(),
        });
        self.inner.table(ident, staged.metadata().clone(), location)
    }
}
