//! Files a pointer will name, made to outlive a power cut before anything
//! names them, on a local warehouse: a new file is written under a temporary
//! name, synced, renamed into place and its directory synced, so a reader
//! (or a restart after a crash) sees the whole file or none; files another
//! writer made (iceberg's manifests and manifest lists) are synced in place.
//! An object store's PUT is atomic and durable once it answers, so none of
//! this applies there.

use std::io::Write;
use std::path::{Path, PathBuf};

use iceberg::{Error, ErrorKind, Result};

/// The path of a `file://` location; `None` for any other scheme.
pub(crate) fn local_file(location: &str) -> Option<PathBuf> {
    location.strip_prefix("file://").map(PathBuf::from)
}

fn io_error(path: &Path, error: std::io::Error) -> Error {
    Error::new(ErrorKind::Unexpected, format!("{}: {error}", path.display()))
}

async fn on_blocking_thread(work: impl FnOnce() -> Result<()> + Send + 'static) -> Result<()> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Error::new(ErrorKind::Unexpected, format!("a file task: {error}")))?
}

/// Replaces (or creates) `path` with `bytes`: temporary file, fsync, rename, fsync of the directory.
pub(crate) async fn write_atomically(path: PathBuf, bytes: Vec<u8>) -> Result<()> {
    on_blocking_thread(move || {
        let directory = path.parent().unwrap_or(Path::new("/")).to_owned();
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        if !directory.is_dir() {
            // A new table's `metadata/` (and the table's own directory): their entries must last too.
            std::fs::create_dir_all(&directory).map_err(|error| io_error(&directory, error))?;
            for created in directory.ancestors().skip(1).take(2) {
                sync_directory(created)?;
            }
        }
        let temporary = directory.join(format!(".{name}.{}-{:016x}.tmp", std::process::id(), fastrand::u64(..)));
        let written = std::fs::File::create(&temporary)
            .and_then(|mut file| {
                file.write_all(&bytes)?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&temporary, &path));
        if let Err(error) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(io_error(&path, error));
        }
        sync_directory(&directory)
    })
    .await
}

/// Syncs each of `paths` and then each directory holding them.
pub(crate) async fn sync_files(paths: Vec<PathBuf>) -> Result<()> {
    on_blocking_thread(move || {
        let mut directories: Vec<PathBuf> = Vec::new();
        for path in &paths {
            std::fs::File::open(path).and_then(|file| file.sync_all()).map_err(|error| io_error(path, error))?;
            if let Some(directory) = path.parent()
                && !directories.iter().any(|known| known == directory)
            {
                directories.push(directory.to_owned());
            }
        }
        directories.iter().try_for_each(|directory| sync_directory(directory))
    })
    .await
}

fn sync_directory(directory: &Path) -> Result<()> {
    std::fs::File::open(directory).and_then(|dir| dir.sync_all()).map_err(|error| io_error(directory, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_rewrite_leaves_the_whole_new_content_and_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("version-hint.text");
        write_atomically(path.clone(), b"00001-a".to_vec()).await.expect("first");
        write_atomically(path.clone(), b"00002-b".to_vec()).await.expect("second");
        assert_eq!(std::fs::read(&path).expect("read"), b"00002-b");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1, "no temporary file is left");
        sync_files(vec![path]).await.expect("sync");
        let missing = sync_files(vec![dir.path().join("absent")]).await;
        assert!(missing.is_err());
        assert_eq!(local_file("file:///w/t/metadata/x.json"), Some(PathBuf::from("/w/t/metadata/x.json")));
        assert_eq!(local_file("s3://bucket/w"), None);
    }
}
