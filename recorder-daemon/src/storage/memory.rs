//! An in-memory [`Storage`]: objects in a map, with a switch that makes every call fail as an
//! unreachable storage would. Tests of the retention cycle and downloads use it where a real
//! backend would add nothing but setup.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use super::{ByteStream, ObjectMeta, Storage, StorageError};

/// A storage held in memory.
pub struct MemoryStorage {
    name: String,
    objects: Mutex<BTreeMap<String, Bytes>>,
    down: AtomicBool,
}

impl MemoryStorage {
    /// An empty storage named `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            objects: Mutex::new(BTreeMap::new()),
            down: AtomicBool::new(false),
        }
    }

    /// Stores `data` under `key` directly (test setup).
    pub fn insert(&self, key: &str, data: impl Into<Bytes>) {
        self.map().insert(key.to_string(), data.into());
    }

    /// Every key, in order.
    pub fn keys(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }

    /// While `true`, every call fails with [`StorageError::Unreachable`].
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
        // A panic while holding the lock leaves a map that is still consistent (every
        // operation is one insert or remove), so a poisoned lock is taken over.
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check(&self) -> Result<(), StorageError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StorageError::Unreachable {
                storage: self.name.clone(),
                detail: "switched off".into(),
            })
        } else {
            Ok(())
        }
    }

    fn meta(key: &str, data: &Bytes) -> ObjectMeta {
        use md5::Digest;
        ObjectMeta {
            key: key.to_string(),
            size: data.len() as u64,
            md5: Some(md5::Md5::digest(data).into()),
        }
    }
}

#[async_trait::async_trait]
impl Storage for MemoryStorage {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn put_file(
        &self,
        key: &str,
        src: &Path,
        size: u64,
        md5: [u8; 16],
    ) -> Result<ObjectMeta, StorageError> {
        self.check()?;
        let data = tokio::fs::read(src)
            .await
            .map_err(|source| StorageError::Source {
                path: src.to_path_buf(),
                source,
            })?;
        let data = Bytes::from(data);
        let meta = Self::meta(key, &data);
        if meta.size != size || meta.md5 != Some(md5) {
            return Err(StorageError::Mismatch {
                storage: self.name.clone(),
                key: key.to_string(),
                detail: format!("{size} bytes expected, {} read", meta.size),
            });
        }
        self.map().insert(key.to_string(), data);
        Ok(meta)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        self.check()?;
        Ok(self.map().get(key).map(|d| Self::meta(key, d)))
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
        self.check()?;
        let data = self
            .map()
            .get(key)
            .cloned()
            .ok_or_else(|| StorageError::NotFound {
                storage: self.name.clone(),
                key: key.to_string(),
            })?;
        let len = data.len() as u64;
        let slice = match range {
            Some(r) => data.slice(r.start.min(len) as usize..r.end.min(len) as usize),
            None => data,
        };
        Ok(Box::pin(futures_util::stream::once(
            async move { Ok(slice) },
        )))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        self.check()?;
        Ok(self
            .map()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, d)| Self::meta(k, d))
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.check()?;
        self.map().remove(key);
        Ok(())
    }

    async fn probe(&self) -> Result<(), StorageError> {
        self.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn list_is_by_prefix_and_down_refuses_everything() {
        let s = MemoryStorage::new("m");
        s.insert("2026/06/01/a/x.ogg", &b"abc"[..]);
        s.insert("2026/06/01/ab/x.ogg", &b"d"[..]);
        let l = s.list("2026/06/01/a/").await.unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].size, 3);
        let mut st = s.get("2026/06/01/a/x.ogg", Some(1..3)).await.unwrap();
        assert_eq!(&st.next().await.unwrap().unwrap()[..], b"bc");
        s.set_down(true);
        assert!(s
            .delete("2026/06/01/a/x.ogg")
            .await
            .unwrap_err()
            .is_storage_down());
        s.set_down(false);
        s.delete("2026/06/01/a/x.ogg").await.unwrap();
        s.delete("2026/06/01/a/x.ogg").await.unwrap();
        assert_eq!(s.keys(), vec!["2026/06/01/ab/x.ogg".to_string()]);
    }
}
