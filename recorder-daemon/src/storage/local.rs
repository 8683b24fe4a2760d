//! The embedded default storage: a directory tree (docs/storage.md, "Local backend").
//!
//! A put writes `.<name>.partial` beside the final name, syncs it, renames it over the final
//! name and syncs the directory, then reads the file back and checks size and MD5. The partial
//! name is fixed per key, so an attempt interrupted by `kill -9` is overwritten by the retry
//! instead of being left beside the new copy. An optional quota (`max_bytes`) makes the storage
//! report `Full` the way a full disk does (ENOSPC), which is how the fault is tested.

use std::io::{Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{ByteStream, ObjectMeta, Storage, StorageError};

/// Suffix of the file a put writes before its rename.
const PARTIAL_SUFFIX: &str = ".partial";

/// A storage under a local directory.
pub struct LocalStorage {
    inner: Arc<Inner>,
}

/// The state, shared with the blocking-pool tasks that do the file I/O.
struct Inner {
    name: String,
    root: PathBuf,
    max_bytes: Option<u64>,
    /// Bytes of the files under the root (partial files excluded), kept by every put and
    /// delete so the quota does not walk the tree each time.
    used: Mutex<u64>,
}

impl LocalStorage {
    /// A storage named `name` under `root` (created when missing), holding at most
    /// `max_bytes` when set.
    pub fn open(name: &str, root: &Path, max_bytes: Option<u64>) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        let used = tree_size(&root)?;
        Ok(Self {
            inner: Arc::new(Inner {
                name: name.to_string(),
                root,
                max_bytes,
                used: Mutex::new(used),
            }),
        })
    }

    /// Runs blocking file I/O (fsyncs, tree walks) on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| self.inner.other(format!("blocking task: {e}")))?
    }
}

impl Inner {
    fn other(&self, detail: impl Into<String>) -> StorageError {
        StorageError::Other {
            storage: self.name.clone(),
            detail: detail.into(),
        }
    }

    /// Maps an I/O error on the storage side: no space is `Full`, a missing root or refused
    /// access means the storage itself is unusable (`Unreachable`), the rest is `Other`.
    fn io(&self, what: &str, e: std::io::Error) -> StorageError {
        use std::io::ErrorKind::*;
        let detail = format!("{what}: {e}");
        match e.kind() {
            StorageFull | QuotaExceeded => StorageError::Full {
                storage: self.name.clone(),
                detail,
            },
            PermissionDenied | ReadOnlyFilesystem => StorageError::Unreachable {
                storage: self.name.clone(),
                detail,
            },
            _ => self.other(detail),
        }
    }

    /// The path of `key`, refusing anything but plain relative `/`-separated names.
    fn path_of(&self, key: &str) -> Result<PathBuf, StorageError> {
        check_key(key).map_err(|e| self.other(e))?;
        Ok(self.root.join(key))
    }

    /// The path of an existing `key`, refusing one that a symbolic link leads out of the root.
    fn existing(&self, key: &str) -> Result<Option<PathBuf>, StorageError> {
        let p = self.path_of(key)?;
        match p.canonicalize() {
            Ok(c) if c.starts_with(&self.root) && c.is_file() => Ok(Some(c)),
            Ok(_) => Err(self.other(format!("{key} is not a file under the storage root"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(key, e)),
        }
    }

    fn put_blocking(
        &self,
        key: &str,
        src: &Path,
        size: u64,
        md5: [u8; 16],
    ) -> Result<ObjectMeta, StorageError> {
        let dst = self.path_of(key)?;
        let dir = dst
            .parent()
            .ok_or_else(|| self.other("key without parent"))?;
        let file_name = dst
            .file_name()
            .ok_or_else(|| self.other("key without file name"))?
            .to_string_lossy()
            .into_owned();
        let old = std::fs::metadata(&dst).map(|m| m.len()).unwrap_or(0);
        // Reserve the space first so that concurrent puts cannot overshoot the quota together.
        {
            let mut used = self.used.lock().map_err(|_| self.other("quota lock"))?;
            if let Some(max) = self.max_bytes {
                let after = used.saturating_sub(old).saturating_add(size);
                if after > max {
                    return Err(StorageError::Full {
                        storage: self.name.clone(),
                        detail: format!("quota of {max} bytes: {} used, {key} needs {size}", *used),
                    });
                }
            }
            *used = used.saturating_sub(old).saturating_add(size);
        }
        let r = self.write_verified(dir, &file_name, &dst, key, src, size, md5);
        if r.is_err() {
            // Give the reservation back; what is on disk under the final name is unchanged
            // unless the rename happened, in which case the size is the new one anyway.
            let now = std::fs::metadata(&dst).map(|m| m.len()).unwrap_or(0);
            if let Ok(mut used) = self.used.lock() {
                *used = used.saturating_sub(size).saturating_add(now);
            }
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn write_verified(
        &self,
        dir: &Path,
        file_name: &str,
        dst: &Path,
        key: &str,
        src: &Path,
        size: u64,
        md5: [u8; 16],
    ) -> Result<ObjectMeta, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| self.io("creating the directory", e))?;
        let tmp = dir.join(format!(".{file_name}{PARTIAL_SUFFIX}"));
        let mut input = std::fs::File::open(src).map_err(|e| StorageError::Source {
            path: src.to_path_buf(),
            source: e,
        })?;
        let mut out = std::fs::File::create(&tmp).map_err(|e| self.io("creating", e))?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut hasher = Md5::new();
        let mut copied = 0u64;
        loop {
            let n = input.read(&mut buf).map_err(|e| StorageError::Source {
                path: src.to_path_buf(),
                source: e,
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| self.io("writing", e))?;
            copied += n as u64;
        }
        // The source must be what the caller described, or the verification below would
        // prove the wrong thing.
        let sent: [u8; 16] = hasher.finalize().into();
        if copied != size || sent != md5 {
            let _ = std::fs::remove_file(&tmp);
            return Err(StorageError::Source {
                path: src.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{copied} bytes read, {size} expected, or MD5 differs"),
                ),
            });
        }
        out.sync_all().map_err(|e| self.io("syncing", e))?;
        drop(out);
        std::fs::rename(&tmp, dst).map_err(|e| self.io("renaming", e))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io("syncing the directory", e))?;
        let (found_size, found_md5) = file_md5(dst).map_err(|e| self.io("reading back", e))?;
        if found_size != size || found_md5 != md5 {
            return Err(StorageError::Mismatch {
                storage: self.name.clone(),
                key: key.to_string(),
                detail: format!(
                    "{size} bytes MD5 {} sent, {found_size} bytes MD5 {} stored",
                    hex::encode(md5),
                    hex::encode(found_md5)
                ),
            });
        }
        Ok(ObjectMeta {
            key: key.to_string(),
            size,
            md5: Some(md5),
        })
    }

    fn list_blocking(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        let trimmed = prefix.trim_end_matches('/');
        let start = if trimmed.is_empty() {
            self.root.clone()
        } else {
            self.path_of(trimmed)?
        };
        let mut out = Vec::new();
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io("listing", e)),
            };
            for entry in rd {
                let entry = entry.map_err(|e| self.io("listing", e))?;
                let ft = entry.file_type().map_err(|e| self.io("listing", e))?;
                let path = entry.path();
                if ft.is_dir() {
                    stack.push(path);
                } else if ft.is_file() && !is_partial(&entry.file_name().to_string_lossy()) {
                    let rel = path
                        .strip_prefix(&self.root)
                        .map_err(|e| self.other(e.to_string()))?;
                    let key = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("/");
                    let size = entry.metadata().map_err(|e| self.io("listing", e))?.len();
                    out.push(ObjectMeta {
                        key,
                        size,
                        md5: None,
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Storage for LocalStorage {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "local"
    }

    async fn put_file(
        &self,
        key: &str,
        src: &Path,
        size: u64,
        md5: [u8; 16],
    ) -> Result<ObjectMeta, StorageError> {
        let key = key.to_string();
        let src = src.to_path_buf();
        self.blocking(move |s| s.put_blocking(&key, &src, size, md5))
            .await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        let Some(p) = self.inner.existing(key)? else {
            return Ok(None);
        };
        let size = tokio::fs::metadata(&p)
            .await
            .map_err(|e| self.inner.io(key, e))?
            .len();
        Ok(Some(ObjectMeta {
            key: key.to_string(),
            size,
            md5: None,
        }))
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
        let p = self
            .inner
            .existing(key)?
            .ok_or_else(|| StorageError::NotFound {
                storage: self.inner.name.clone(),
                key: key.to_string(),
            })?;
        let mut f = tokio::fs::File::open(&p)
            .await
            .map_err(|e| self.inner.io(key, e))?;
        let len = f.metadata().await.map_err(|e| self.inner.io(key, e))?.len();
        let r = range.unwrap_or(0..len);
        if r.start > r.end || r.end > len {
            return Err(self
                .inner
                .other(format!("range {r:?} outside {key} of {len} bytes")));
        }
        f.seek(std::io::SeekFrom::Start(r.start))
            .await
            .map_err(|e| self.inner.io(key, e))?;
        Ok(Box::pin(tokio_util::io::ReaderStream::new(
            f.take(r.end - r.start),
        )))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        let prefix = prefix.to_string();
        self.blocking(move |s| s.list_blocking(&prefix)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let p = self.inner.path_of(key)?;
        let size = match tokio::fs::metadata(&p).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.inner.io(key, e)),
        };
        match tokio::fs::remove_file(&p).await {
            Ok(()) => {
                if let Ok(mut used) = self.inner.used.lock() {
                    *used = used.saturating_sub(size);
                }
                // Empty date directories are left: they cost nothing and a concurrent put may
                // be about to use them.
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.inner.io(key, e)),
        }
    }

    async fn probe(&self) -> Result<(), StorageError> {
        self.blocking(|s| {
            let root = s.root.clone();
            let probe = root.join(".probe.partial");
            if !root.is_dir() {
                return Err(StorageError::Unreachable {
                    storage: s.name.clone(),
                    detail: format!("{} is not a directory", root.display()),
                });
            }
            std::fs::write(&probe, b"probe")
                .and_then(|()| std::fs::remove_file(&probe))
                .map_err(|e| match s.io("writing a probe file", e) {
                    StorageError::Other { storage, detail } => {
                        StorageError::Unreachable { storage, detail }
                    }
                    e => e,
                })
        })
        .await
    }

    async fn consumed_bytes(&self) -> Result<Option<u64>, StorageError> {
        Ok(Some(
            *self
                .inner
                .used
                .lock()
                .map_err(|_| self.inner.other("quota lock"))?,
        ))
    }
}

/// Refuses keys that could leave the root or collide with partial files: empty segments,
/// `.`/`..`, a leading `/`, backslashes, NUL, segments starting with a dot.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 1024 {
        return Err("a key has 1..1024 characters".into());
    }
    if key.contains('\0') || key.contains('\\') {
        return Err(format!("{key:?}: NUL and backslash are not allowed"));
    }
    for seg in key.split('/') {
        if seg.is_empty() || seg.starts_with('.') {
            return Err(format!("{key:?} is not a plain relative key"));
        }
    }
    Ok(())
}

fn is_partial(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(PARTIAL_SUFFIX)
}

/// Size and MD5 of a file.
pub fn file_md5(path: &Path) -> std::io::Result<(u64, [u8; 16])> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut h = Md5::new();
    let mut n_total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        n_total += n as u64;
    }
    Ok((n_total, h.finalize().into()))
}

fn tree_size(root: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() && !is_partial(&entry.file_name().to_string_lossy()) {
                total += entry.metadata()?.len();
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    async fn collect(s: ByteStream) -> Vec<u8> {
        let mut out = Vec::new();
        let mut s = s;
        while let Some(b) = s.next().await {
            out.extend_from_slice(&b.unwrap());
        }
        out
    }

    fn src(dir: &Path, name: &str, data: &[u8]) -> (PathBuf, u64, [u8; 16]) {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        (p, data.len() as u64, Md5::digest(data).into())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn put_get_ranges_list_delete_and_replay() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::open("local", &dir.path().join("root"), None).unwrap();
        s.probe().await.unwrap();
        let (p, size, md5) = src(dir.path(), "a", b"0123456789");
        let m = s
            .put_file("2026/11/26/r1/a.ogg", &p, size, md5)
            .await
            .unwrap();
        assert_eq!(m.size, 10);
        // A replay of the same put succeeds and leaves one object.
        s.put_file("2026/11/26/r1/a.ogg", &p, size, md5)
            .await
            .unwrap();
        let listed = s.list("2026/11/26/r1/").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key, "2026/11/26/r1/a.ogg");
        assert_eq!(s.consumed_bytes().await.unwrap(), Some(10));
        let all = collect(s.get("2026/11/26/r1/a.ogg", None).await.unwrap()).await;
        assert_eq!(all, b"0123456789");
        let part = collect(s.get("2026/11/26/r1/a.ogg", Some(2..5)).await.unwrap()).await;
        assert_eq!(part, b"234");
        assert!(s.get("2026/11/26/r1/a.ogg", Some(5..11)).await.is_err());
        assert_eq!(
            s.head("2026/11/26/r1/a.ogg").await.unwrap().unwrap().size,
            10
        );
        assert!(s.head("2026/11/26/r1/b.ogg").await.unwrap().is_none());
        assert!(matches!(
            s.get("2026/11/26/r1/b.ogg", None).await,
            Err(StorageError::NotFound { .. })
        ));
        s.delete("2026/11/26/r1/a.ogg").await.unwrap();
        s.delete("2026/11/26/r1/a.ogg").await.unwrap();
        assert!(s.list("").await.unwrap().is_empty());
        assert_eq!(s.consumed_bytes().await.unwrap(), Some(0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_left_over_partial_file_is_replaced_and_never_listed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("x")).unwrap();
        std::fs::write(root.join("x/.a.partial"), b"half").unwrap();
        let s = LocalStorage::open("local", &root, None).unwrap();
        assert_eq!(s.consumed_bytes().await.unwrap(), Some(0));
        assert!(s.list("").await.unwrap().is_empty());
        let (p, size, md5) = src(dir.path(), "a", b"whole file");
        s.put_file("x/a", &p, size, md5).await.unwrap();
        let names: Vec<_> = std::fs::read_dir(root.join("x"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["a"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_quota_reports_full_and_a_wrong_source_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::open("small", &dir.path().join("root"), Some(15)).unwrap();
        let (p, size, md5) = src(dir.path(), "a", b"0123456789");
        s.put_file("r/a", &p, size, md5).await.unwrap();
        // Replacing the same key needs no extra room.
        s.put_file("r/a", &p, size, md5).await.unwrap();
        let e = s.put_file("r/b", &p, size, md5).await.unwrap_err();
        assert!(matches!(e, StorageError::Full { .. }), "{e}");
        assert!(e.is_storage_down());
        assert!(s.head("r/b").await.unwrap().is_none());
        // The caller's hash does not match the file: nothing is stored.
        let (p, size, _) = src(dir.path(), "b", b"xyz");
        let e = s.put_file("r/c", &p, size, [0; 16]).await.unwrap_err();
        assert!(matches!(e, StorageError::Source { .. }), "{e}");
        assert_eq!(s.consumed_bytes().await.unwrap(), Some(10));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_stay_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let s = LocalStorage::open("local", &root, None).unwrap();
        let (p, size, md5) = src(dir.path(), "a", b"x");
        for bad in [
            "../x",
            "/etc/passwd",
            "a/../../b",
            "",
            "a\\b",
            "a\0b",
            "a//b",
            ".x",
        ] {
            assert!(s.put_file(bad, &p, size, md5).await.is_err(), "{bad:?}");
            assert!(s.get(bad, None).await.is_err(), "{bad:?}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path(), root.join("link")).unwrap();
            assert!(s.get("link/a", None).await.is_err());
        }
    }
}
