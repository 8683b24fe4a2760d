//! Durable storage for sealed recordings, behind one trait so that the uploader, the retention
//! cycle and the download endpoint do not care where the bytes live (docs/storage.md).
//!
//! A recording is stored as the files of its sealed spool directory under one prefix, its
//! *media path*: `<yyyy>/<mm>/<dd>/<recording id>/` (the day the call started, UTC), so that an
//! operator browsing a container or a directory finds calls by date, and the retention cycle
//! deletes one prefix per recording. Keys use `/` on every backend.

pub mod azure;
pub mod local;
#[cfg(test)]
pub mod memory;

use std::ops::Range;
use std::path::Path;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;

/// A stream of an object's bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Why a storage operation failed. The variant decides what the uploader does: retry later
/// (and raise `ConnectionFailed` while it lasts), or set the recording aside.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The storage cannot be reached (connection refused, timeout, 5xx): retry with back-off.
    #[error("storage {storage} unreachable: {detail}")]
    Unreachable {
        /// The storage's friendly name.
        storage: String,
        /// What happened.
        detail: String,
    },
    /// Credentials refused or expired (401/403, an expired SAS): retry, the operator must act.
    #[error("storage {storage} refused the credentials: {detail}")]
    Auth {
        /// The storage's friendly name.
        storage: String,
        /// What happened.
        detail: String,
    },
    /// No space (ENOSPC, quota): retry once space is freed.
    #[error("storage {storage} is full: {detail}")]
    Full {
        /// The storage's friendly name.
        storage: String,
        /// What happened.
        detail: String,
    },
    /// The object does not exist.
    #[error("{key} not found in storage {storage}")]
    NotFound {
        /// The storage's friendly name.
        storage: String,
        /// The key.
        key: String,
    },
    /// The stored copy does not match what was sent (size or hash): the upload is retried.
    #[error("storage {storage}: stored {key} does not verify: {detail}")]
    Mismatch {
        /// The storage's friendly name.
        storage: String,
        /// The key.
        key: String,
        /// Expected versus found.
        detail: String,
    },
    /// A local file could not be read (the spool side).
    #[error("reading {path}: {source}")]
    Source {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Anything else the backend reports.
    #[error("storage {storage}: {detail}")]
    Other {
        /// The storage's friendly name.
        storage: String,
        /// What happened.
        detail: String,
    },
}

impl StorageError {
    /// Whether the storage itself is failing (unreachable, credentials, full): the uploader
    /// raises `ConnectionFailed` for these and keeps recordings in the spool.
    pub fn is_storage_down(&self) -> bool {
        matches!(
            self,
            StorageError::Unreachable { .. }
                | StorageError::Auth { .. }
                | StorageError::Full { .. }
        )
    }
}

/// What a storage knows about one stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Key, `/`-separated, relative to the storage's root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// MD5 of the content when the backend keeps one (Azure's `Content-MD5`).
    pub md5: Option<[u8; 16]>,
}

/// A place recordings are kept: local directory tree, Azure Blob container, ...
///
/// Every method is safe to repeat: `put` of an object already stored with the same content
/// succeeds, `delete` of a missing object succeeds. That is what lets the uploader's journal
/// replay after a crash without duplicating anything.
#[async_trait::async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The friendly name (recording profiles name storages by it; alarms carry it).
    fn name(&self) -> &str;

    /// `local`, `azure`, ...
    fn kind(&self) -> &'static str;

    /// Stores the file `src` under `key` and returns once the stored copy is verified against
    /// `size` and `md5` (the service's hash, or a read-back). A partial earlier attempt is
    /// resumed or replaced, never left beside the new copy.
    async fn put_file(
        &self,
        key: &str,
        src: &Path,
        size: u64,
        md5: [u8; 16],
    ) -> Result<ObjectMeta, StorageError>;

    /// Size and hash of `key`, `None` when absent.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError>;

    /// The bytes of `key`, or of `range` of it (for HTTP Range downloads).
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream, StorageError>;

    /// Every object under `prefix` (a media path ending in `/`).
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError>;

    /// Deletes `key`; a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;

    /// A cheap round trip that proves the storage is reachable and the credentials work
    /// (connection status, and clearing the `ConnectionFailed` alarm).
    async fn probe(&self) -> Result<(), StorageError>;

    /// Bytes the storage holds, when the backend can tell cheaply (the status page shows it).
    /// Added after the first version of the trait, with a default, so existing backends
    /// compile unchanged.
    async fn consumed_bytes(&self) -> Result<Option<u64>, StorageError> {
        Ok(None)
    }
}

/// The configured storages by friendly name (the names recording profiles use).
#[derive(Clone, Default)]
pub struct Storages {
    by_name: std::collections::BTreeMap<String, std::sync::Arc<dyn Storage>>,
}

impl Storages {
    /// Adds `s` under its name, replacing any storage of that name.
    pub fn insert(&mut self, s: std::sync::Arc<dyn Storage>) {
        self.by_name.insert(s.name().to_string(), s);
    }

    /// The storage named `name`.
    pub fn get(&self, name: &str) -> Option<&std::sync::Arc<dyn Storage>> {
        self.by_name.get(name)
    }

    /// Every storage, by name.
    pub fn iter(&self) -> impl Iterator<Item = &std::sync::Arc<dyn Storage>> {
        self.by_name.values()
    }
}

impl std::fmt::Debug for Storages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

/// The media path of a recording: `<yyyy>/<mm>/<dd>/<recording id>` from the call's start.
pub fn media_path(start: &chrono::DateTime<chrono::Utc>, recording_id: &str) -> String {
    format!("{}/{recording_id}", start.format("%Y/%m/%d"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_path_is_dated_by_call_start_in_utc() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-26T23:59:59-02:00")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(media_path(&t, "rec-1"), "2026/11/27/rec-1");
    }
}
