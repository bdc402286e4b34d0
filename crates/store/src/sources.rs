//! Committed source versions.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use crate::{Store, StoreError};

/// A source version about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVersion {
    /// The source's name.
    pub source: String,
    /// Its definition, as proto3 JSON.
    pub definition: String,
    /// The stream it reads.
    pub stream_arn: String,
    /// Where shards without a checkpoint start: `None` for TRIM_HORIZON, else an
    /// instant (a `latest` source is pinned to its commit time).
    pub start_at: Option<DateTime<Utc>>,
}

/// A stored source version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    /// The source's name.
    pub source: String,
    /// 1 for the first commit of the name, then +1 per commit.
    pub version: u64,
    /// The definition, as proto3 JSON.
    pub definition: String,
    /// The stream it reads.
    pub stream_arn: String,
    /// See [`NewVersion::start_at`].
    pub start_at: Option<DateTime<Utc>>,
    /// When it was committed.
    pub committed_at: DateTime<Utc>,
    /// The commit message.
    pub message: String,
    /// Why this version finished (`until` passed, a bounded source idle), if it did:
    /// a finished version is not started again.
    pub finished_because: Option<String>,
}

/// A source by name: its current version and whether it was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSummary {
    /// The source's name.
    pub name: String,
    /// Its newest version.
    pub current: StoredVersion,
    /// When it was deleted (stopped and archived), if it was.
    pub deleted_at: Option<DateTime<Utc>>,
}

fn micros_to_time(micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros).ok_or(StoreError::Corrupt { what: "timestamp", detail: micros.to_string() })
}

fn version_from_row(row: &Row<'_>) -> rusqlite::Result<(StoredVersion, Option<i64>, i64)> {
    let start_at: Option<i64> = row.get("start_at_micros")?;
    let committed_at: i64 = row.get("committed_at_micros")?;
    Ok((
        StoredVersion {
            source: row.get("source")?,
            version: row.get::<_, i64>("version")? as u64,
            definition: row.get("definition")?,
            stream_arn: row.get("stream_arn")?,
            start_at: None,
            committed_at: DateTime::<Utc>::MIN_UTC,
            message: row.get("message")?,
            finished_because: row.get("finished_because")?,
        },
        start_at,
        committed_at,
    ))
}

fn finish_version(
    (mut version, start_at, committed_at): (StoredVersion, Option<i64>, i64),
) -> Result<StoredVersion, StoreError> {
    version.start_at = start_at.map(micros_to_time).transpose()?;
    version.committed_at = micros_to_time(committed_at)?;
    Ok(version)
}

const VERSION_COLUMNS: &str = "v.source, v.version, v.definition, v.stream_arn, v.start_at_micros, \
     v.committed_at_micros, v.message, v.finished_because";

impl Store {
    /// Stores a new version of each source in one transaction (all or none)
    /// and makes it current; a deleted source comes back to life.
    pub fn commit_versions(
        &self,
        versions: &[NewVersion],
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<StoredVersion>, StoreError> {
        let mut connection = self.connection.lock();
        let transaction = connection.transaction()?;
        let mut stored = Vec::with_capacity(versions.len());
        for new in versions {
            let previous: Option<i64> = transaction
                .query_row("SELECT MAX(version) FROM source_versions WHERE source = ?1", [&new.source], |row| {
                    row.get(0)
                })
                .optional()?
                .flatten();
            let version = previous.unwrap_or(0) + 1;
            transaction.execute(
                "INSERT INTO sources (name, current_version, deleted_at_micros) VALUES (?1, ?2, NULL)
                 ON CONFLICT (name) DO UPDATE SET current_version = excluded.current_version, deleted_at_micros = NULL",
                params![new.source, version],
            )?;
            transaction.execute(
                "INSERT INTO source_versions (source, version, definition, stream_arn, start_at_micros, committed_at_micros, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    new.source,
                    version,
                    new.definition,
                    new.stream_arn,
                    new.start_at.map(|at| at.timestamp_micros()),
                    now.timestamp_micros(),
                    message
                ],
            )?;
            stored.push(StoredVersion {
                source: new.source.clone(),
                version: version as u64,
                definition: new.definition.clone(),
                stream_arn: new.stream_arn.clone(),
                start_at: new.start_at,
                committed_at: now,
                message: message.to_owned(),
                finished_because: None,
            });
        }
        transaction.commit()?;
        Ok(stored)
    }

    /// Makes `version`, numbered elsewhere (cluster mode: the cluster's
    /// shared definitions), this store's current version of its source,
    /// storing it if it is not stored yet (a deleted source comes back to
    /// life). `false` when it was current already.
    pub fn adopt_version(&self, version: &StoredVersion) -> Result<bool, StoreError> {
        let mut connection = self.connection.lock();
        let transaction = connection.transaction()?;
        let current: Option<(i64, Option<i64>)> = transaction
            .query_row(
                "SELECT current_version, deleted_at_micros FROM sources WHERE name = ?1",
                [&version.source],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        if current == Some((version.version as i64, None)) {
            return Ok(false);
        }
        transaction.execute(
            "INSERT INTO sources (name, current_version, deleted_at_micros) VALUES (?1, ?2, NULL)
             ON CONFLICT (name) DO UPDATE SET current_version = excluded.current_version, deleted_at_micros = NULL",
            params![version.source, version.version as i64],
        )?;
        transaction.execute(
            "INSERT OR IGNORE INTO source_versions (source, version, definition, stream_arn, start_at_micros, committed_at_micros, message)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                version.source,
                version.version as i64,
                version.definition,
                version.stream_arn,
                version.start_at.map(|at| at.timestamp_micros()),
                version.committed_at.timestamp_micros(),
                version.message
            ],
        )?;
        transaction.commit()?;
        Ok(true)
    }

    /// Every source (deleted ones too), by name.
    pub fn sources(&self) -> Result<Vec<SourceSummary>, StoreError> {
        self.summaries(None)
    }

    /// One source by name.
    pub fn source(&self, name: &str) -> Result<Option<SourceSummary>, StoreError> {
        Ok(self.summaries(Some(name))?.pop())
    }

    /// Sources with their current version: all, or the one named.
    fn summaries(&self, name: Option<&str>) -> Result<Vec<SourceSummary>, StoreError> {
        let connection = self.reading();
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS}, s.deleted_at_micros FROM sources s
             JOIN source_versions v ON v.source = s.name AND v.version = s.current_version
             WHERE ?1 IS NULL OR s.name = ?1 ORDER BY s.name"
        ))?;
        let rows = statement
            .query_map([name], |row| Ok((version_from_row(row)?, row.get::<_, Option<i64>>("deleted_at_micros")?)))?;
        let mut summaries = Vec::new();
        for row in rows {
            let (version, deleted_at) = row?;
            let current = finish_version(version)?;
            summaries.push(SourceSummary {
                name: current.source.clone(),
                current,
                deleted_at: deleted_at.map(micros_to_time).transpose()?,
            });
        }
        Ok(summaries)
    }

    /// Every version of a source, oldest first.
    pub fn versions(&self, name: &str) -> Result<Vec<StoredVersion>, StoreError> {
        let connection = self.reading();
        let mut statement = connection.prepare(&format!(
            "SELECT {VERSION_COLUMNS} FROM source_versions v WHERE v.source = ?1 ORDER BY v.version"
        ))?;
        let rows = statement.query_map([name], version_from_row)?;
        rows.map(|row| finish_version(row?)).collect()
    }

    /// Records that `version` of `source` finished, and why.
    pub fn mark_finished(
        &self,
        source: &str,
        version: u64,
        because: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.connection.lock().execute(
            "UPDATE source_versions SET finished_at_micros = ?3, finished_because = ?4 WHERE source = ?1 AND version = ?2",
            params![source, version as i64, now.timestamp_micros(), because],
        )?;
        Ok(())
    }

    /// Marks a source deleted (its versions, checkpoints and error log stay as
    /// an archive). `false` when there is no such live source.
    pub fn delete_source(&self, name: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let connection = self.connection.lock();
        let changed = connection.execute(
            "UPDATE sources SET deleted_at_micros = ?2 WHERE name = ?1 AND deleted_at_micros IS NULL",
            params![name, now.timestamp_micros()],
        )?;
        Ok(changed == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(source: &str, stream: &str) -> NewVersion {
        NewVersion { source: source.into(), definition: "{}".into(), stream_arn: stream.into(), start_at: None }
    }

    #[test]
    fn a_version_numbered_elsewhere_is_adopted_once_and_revives_a_deleted_source() {
        let store = Store::open_in_memory().expect("store");
        let now = Utc::now();
        let fifth = StoredVersion {
            source: "a".into(),
            version: 5,
            definition: "{}".into(),
            stream_arn: "s1".into(),
            start_at: Some(now),
            committed_at: now,
            message: "from node b".into(),
            finished_because: None,
        };
        assert!(store.adopt_version(&fifth).expect("adopt"));
        assert!(!store.adopt_version(&fifth).expect("adopt again"), "already current");
        let a = store.source("a").expect("read").expect("a");
        assert_eq!((a.current.version, a.current.message.as_str()), (5, "from node b"));
        assert!(store.delete_source("a", now).expect("delete"));
        assert!(store.adopt_version(&StoredVersion { version: 7, ..fifth.clone() }).expect("adopt"));
        let a = store.source("a").expect("read").expect("a");
        assert_eq!((a.current.version, a.deleted_at), (7, None));
        assert_eq!(store.versions("a").expect("versions").iter().map(|v| v.version).collect::<Vec<_>>(), [5, 7]);
    }

    #[test]
    fn versions_count_up_per_source_and_deleting_archives() {
        let store = Store::open_in_memory().expect("store");
        let now = Utc::now();
        let first = store.commit_versions(&[new("a", "s1"), new("b", "s2")], "first", now).expect("commit");
        assert_eq!(first.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 1]);
        let second = store.commit_versions(&[new("a", "s3")], "second", now).expect("commit");
        assert_eq!(second[0].version, 2);
        let a = store.source("a").expect("read").expect("a exists");
        assert_eq!((a.current.version, a.current.stream_arn.as_str(), a.current.message.as_str()), (2, "s3", "second"));
        assert_eq!(store.versions("a").expect("versions").len(), 2);

        assert!(store.delete_source("a", now).expect("delete"));
        assert!(!store.delete_source("a", now).expect("delete twice"), "already deleted");
        assert!(store.source("a").expect("read").expect("archived").deleted_at.is_some());
        assert!(!store.delete_source("nope", now).expect("delete unknown"));
        let third = store.commit_versions(&[new("a", "s3")], "back", now).expect("recommit");
        assert_eq!(third[0].version, 3);
        assert!(store.source("a").expect("read").expect("a").deleted_at.is_none());

        // A finished version stays finished; the next version starts unfinished.
        store.mark_finished("a", 3, "no new record for 1s", now).expect("finish");
        let current = store.source("a").expect("read").expect("a").current;
        assert_eq!(current.finished_because.as_deref(), Some("no new record for 1s"));
        assert_eq!(store.versions("a").expect("versions")[1].finished_because, None, "only version 3");
        let fourth = store.commit_versions(&[new("a", "s3")], "again", now).expect("recommit");
        assert_eq!(fourth[0].finished_because, None);
        assert_eq!(store.source("a").expect("read").expect("a").current.finished_because, None);
    }
}
