//! The stored merge of a Pro recording's two legs (docs/storage.md, "Merged recordings").
//!
//! The primary and the paired bot record the same call on different hosts, and each leg
//! reaches storage on its own. Once both are stored (the store then marks the interaction's
//! merge `pending`), the merge task fetches them into a scratch directory, verifies them,
//! merges them with bot-host's [`bot_host::pair::merge_sealed`] (frames bit-exact from
//! whichever leg had them, aligned by content), and stores the merged directory under
//! `<primary leg's media path>/merged/`, with a manifest like a sealed leg's: inside the
//! primary's prefix, so the retention cycle, which deletes everything under each leg's media
//! path, deletes the merge with the legs. The player's "merged" choice serves it; either leg
//! stays playable on its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::StreamExt;
use md5::{Digest as _, Md5};
use serde::Serialize;
use sha2::Sha256;
use tokio::io::AsyncWriteExt;

use crate::model::{BotRole, Leg, MediaStatus};
use crate::rbac::Scope;
use crate::storage::{ObjectMeta, StorageError, Storages};
use crate::store::{MergeOutcome, Store};

/// The directory, under the primary leg's media path, that holds the merged recording.
pub const MERGED_DIR: &str = "merged";

/// The storage a leg names, `local` when it names none (the embedded default).
pub fn leg_storage(leg: &Leg) -> &str {
    if leg.metadata.storage.is_empty() {
        "local"
    } else {
        &leg.metadata.storage
    }
}

/// The media path of the merged recording of a call whose primary leg is stored at
/// `primary_media_path`.
pub fn merged_media_path(primary_media_path: &str) -> String {
    format!("{}/{MERGED_DIR}", primary_media_path.trim_end_matches('/'))
}

/// Why a merge did not store anything.
#[derive(Debug, thiserror::Error)]
pub enum MergeFailure {
    /// Worth another attempt later: a storage that is down, a local disk problem.
    #[error("{0}")]
    Retry(String),
    /// The content refuses to merge (not the same call, not alignable, a leg that does not
    /// verify or is missing from storage): recorded as `failed`, not retried.
    #[error("{0}")]
    Refused(String),
}

impl MergeFailure {
    fn storage(e: StorageError) -> Self {
        match e {
            StorageError::NotFound { .. } | StorageError::Mismatch { .. } => {
                MergeFailure::Refused(e.to_string())
            }
            _ => MergeFailure::Retry(e.to_string()),
        }
    }

    fn local(what: &str, e: impl std::fmt::Display) -> Self {
        MergeFailure::Retry(format!("{what}: {e}"))
    }
}

/// A merged recording now in storage.
#[derive(Debug, Clone)]
pub struct MergedRecording {
    /// Storage holding it (the primary leg's).
    pub storage: String,
    /// Its media path.
    pub media_path: String,
    /// The stored files.
    pub files: Vec<ObjectMeta>,
    /// Its `meta.json` (merge counters per track).
    pub meta: serde_json::Value,
}

/// Fetches both legs from storage, merges them and stores the result. `scratch` is a
/// directory on local disk with room for both legs; nothing is left in it afterwards.
pub async fn merge_stored(
    storages: &Storages,
    primary: &Leg,
    paired: &Leg,
    scratch: &Path,
) -> Result<MergedRecording, MergeFailure> {
    std::fs::create_dir_all(scratch)
        .map_err(|e| MergeFailure::local(&format!("creating {}", scratch.display()), e))?;
    let work = tempfile::TempDir::new_in(scratch).map_err(|e| MergeFailure::local("scratch", e))?;
    let p_dir = fetch(storages, primary, &work.path().join("primary")).await?;
    let q_dir = fetch(storages, paired, &work.path().join("paired")).await?;
    // verify_recording's Ok lines describe each good file; any problem is an Err.
    for (dir, leg) in [(&p_dir, primary), (&q_dir, paired)] {
        let d = dir.clone();
        tokio::task::spawn_blocking(move || crate::verify::verify_recording(&d))
            .await
            .map_err(|e| MergeFailure::local("verify task", e))?
            .map_err(|e| {
                MergeFailure::Refused(format!(
                    "stored recording {} does not verify: {e:#}",
                    leg.recording_id
                ))
            })?;
    }
    let out = work.path().join("merged");
    let (p, q, o) = (p_dir.clone(), q_dir.clone(), out.clone());
    let merged = tokio::task::spawn_blocking(move || -> Result<serde_json::Value> {
        bot_host::pair::merge_sealed(&p, &q, &o)?;
        write_manifest(&o)?;
        let meta = std::fs::read(o.join("meta.json")).context("merged meta.json")?;
        serde_json::from_slice(&meta).context("merged meta.json")
    })
    .await
    .map_err(|e| MergeFailure::local("merge task", e))?;
    let meta = merged.map_err(|e| {
        // Reading and writing the scratch copies is local I/O, worth a retry; anything else
        // the merge refuses is the content's doing.
        let io = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>().is_some()
                || matches!(
                    c.downcast_ref::<media_core::merge::MergeError>(),
                    Some(media_core::merge::MergeError::Io(_))
                )
        });
        if io {
            MergeFailure::Retry(format!("{e:#}"))
        } else {
            MergeFailure::Refused(format!("{e:#}"))
        }
    })?;

    let name = leg_storage(primary).to_string();
    let target = storages
        .get(&name)
        .ok_or_else(|| MergeFailure::Refused(format!("no storage named {name:?} is configured")))?;
    let primary_path = primary.media_path.as_deref().ok_or_else(|| {
        MergeFailure::Refused(format!("leg {} is not in storage", primary.recording_id))
    })?;
    let media_path = merged_media_path(primary_path);
    let mut files = Vec::new();
    for (file, path) in dir_files(&out).map_err(|e| MergeFailure::local("merged files", e))? {
        let (size, md5) =
            size_and_md5(&path).map_err(|e| MergeFailure::local("merged files", e))?;
        let key = format!("{media_path}/{file}");
        files.push(
            target
                .put_file(&key, &path, size, md5)
                .await
                .map_err(MergeFailure::storage)?,
        );
    }
    Ok(MergedRecording {
        storage: name,
        media_path,
        files,
        meta,
    })
}

/// Downloads every object of `leg`'s media path into `dir`. Objects in subdirectories (the
/// merged recording under the primary's path) are not part of the leg and are skipped.
async fn fetch(storages: &Storages, leg: &Leg, dir: &Path) -> Result<PathBuf, MergeFailure> {
    let Some(media_path) = &leg.media_path else {
        return Err(MergeFailure::Refused(format!(
            "leg {} is not in storage",
            leg.recording_id
        )));
    };
    let name = leg_storage(leg);
    let s = storages.get(name).ok_or_else(|| {
        MergeFailure::Refused(format!(
            "leg {}: no storage named {name:?} is configured",
            leg.recording_id
        ))
    })?;
    let prefix = format!("{}/", media_path.trim_end_matches('/'));
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| MergeFailure::local("scratch", e))?;
    let objects = s.list(&prefix).await.map_err(MergeFailure::storage)?;
    let mut fetched = 0;
    for o in objects {
        let file = o.key.strip_prefix(&prefix).unwrap_or(&o.key);
        if file.contains('/') {
            continue;
        }
        // Names come from the storage listing: only plain file names land on local disk.
        if file.is_empty() || file.contains('\\') || file.starts_with('.') {
            return Err(MergeFailure::Refused(format!(
                "leg {}: unexpected object {}",
                leg.recording_id, o.key
            )));
        }
        let mut body = s.get(&o.key, None).await.map_err(MergeFailure::storage)?;
        let path = dir.join(file);
        let mut f = tokio::fs::File::create(&path)
            .await
            .map_err(|e| MergeFailure::local(&path.display().to_string(), e))?;
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| MergeFailure::Retry(format!("reading {}: {e}", o.key)))?;
            f.write_all(&chunk)
                .await
                .map_err(|e| MergeFailure::local(&path.display().to_string(), e))?;
        }
        f.flush()
            .await
            .map_err(|e| MergeFailure::local(&path.display().to_string(), e))?;
        fetched += 1;
    }
    if fetched == 0 {
        return Err(MergeFailure::Refused(format!(
            "leg {}: nothing stored under {prefix}",
            leg.recording_id
        )));
    }
    Ok(dir.to_path_buf())
}

/// Regular files of `dir` by name, sorted.
fn dir_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        if e.file_type()?.is_file() {
            v.push((e.file_name().to_string_lossy().into_owned(), e.path()));
        }
    }
    v.sort();
    Ok(v)
}

/// `manifest.json` as bot-host's spool writes it: every other file's size and SHA-256.
fn write_manifest(dir: &Path) -> Result<()> {
    let mut files = Vec::new();
    for (name, path) in dir_files(dir)? {
        if name == "manifest.json" {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        files.push(serde_json::json!({
            "file": name,
            "size": bytes.len(),
            "sha256": hex::encode(Sha256::digest(&bytes)),
        }));
    }
    let m = serde_json::json!({ "algorithm": "sha256", "files": files });
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec_pretty(&m)?)?;
    Ok(())
}

/// Size and MD5 of a file, streamed.
pub fn size_and_md5(path: &Path) -> Result<(u64, [u8; 16])> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, h.finalize().into()))
}

/// How often `serve` looks for pending merges.
pub const MERGE_INTERVAL: Duration = Duration::from_secs(15);

/// Merges running at once: each holds both legs on the scratch disk and one merge thread of
/// the blocking pool, on hosts whose cores also serve the API and the uploader.
pub const MERGE_CONCURRENCY: usize = 2;

/// Pending interactions read from the store at a time.
const PAGE: u32 = 64;

/// What one round of the merge task did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MergeReport {
    /// Merged recordings stored.
    pub merged: u64,
    /// Interactions whose legs refused to merge (now `failed`).
    pub failed: u64,
    /// Interactions left pending for the next round (storage or disk trouble).
    pub waiting: u64,
}

/// The merge task: finds interactions whose merge is pending and stores their merged
/// recording (docs/storage.md, "Merged recordings").
pub struct Merger {
    store: Arc<dyn Store>,
    storages: Storages,
    scratch: PathBuf,
}

/// What became of one interaction.
enum One {
    Merged,
    Gone,
    Failed,
    Waiting,
}

impl Merger {
    /// A merger over `store` and `storages`, fetching legs into `scratch`.
    pub fn new(store: Arc<dyn Store>, storages: Storages, scratch: PathBuf) -> Self {
        Merger {
            store,
            storages,
            scratch,
        }
    }

    /// One pass over every pending interaction, [`MERGE_CONCURRENCY`] at a time. A storage
    /// failure ends the pass early: the rest would meet the same storage.
    pub async fn round(&self) -> Result<MergeReport> {
        let mut report = MergeReport::default();
        let mut after = 0i64;
        loop {
            let store = self.store.clone();
            let ids = tokio::task::spawn_blocking(move || store.merge_pending(after, PAGE))
                .await
                .context("store task")??;
            let Some(&last) = ids.last() else {
                break;
            };
            after = last;
            let outcomes: Vec<One> = futures_util::stream::iter(ids)
                .map(|id| self.merge_one(id))
                .buffer_unordered(MERGE_CONCURRENCY)
                .collect()
                .await;
            let mut stop = false;
            for o in outcomes {
                match o {
                    One::Merged => report.merged += 1,
                    One::Gone => {}
                    One::Failed => report.failed += 1,
                    One::Waiting => {
                        report.waiting += 1;
                        stop = true;
                    }
                }
            }
            if stop {
                let store = self.store.clone();
                let rest = tokio::task::spawn_blocking(move || store.merge_pending(after, 10_000))
                    .await
                    .context("store task")??;
                report.waiting += rest.len() as u64;
                break;
            }
        }
        Ok(report)
    }

    async fn merge_one(&self, id: i64) -> One {
        match self.try_merge(id).await {
            Ok(o) => o,
            Err(e) => {
                eprintln!("recorder-daemon: merge of interaction {id}: {e:#}");
                One::Waiting
            }
        }
    }

    async fn try_merge(&self, id: i64) -> Result<One> {
        let store = self.store.clone();
        let Some(d) = tokio::task::spawn_blocking(move || store.get(id, &Scope::All))
            .await
            .context("store task")??
        else {
            return Ok(One::Gone); // deleted meanwhile: nothing to do
        };
        let stored = |role: BotRole| {
            d.legs.iter().find(|l| {
                l.bot_role == role
                    && l.media_status == MediaStatus::Available
                    && l.media_path.is_some()
            })
        };
        let outcome = match (stored(BotRole::Primary), stored(BotRole::Paired)) {
            (Some(p), Some(q)) => match merge_stored(&self.storages, p, q, &self.scratch).await {
                Ok(m) => {
                    let done = MergeOutcome::Done {
                        storage: m.storage.clone(),
                        media_path: m.media_path.clone(),
                        at: chrono::Utc::now(),
                    };
                    if self.finish(id, done).await? {
                        eprintln!(
                            "recorder-daemon: interaction {id}: legs merged into {} ({} files, {} tracks)",
                            m.media_path,
                            m.files.len(),
                            m.meta["tracks"].as_array().map_or(0, Vec::len)
                        );
                    } else {
                        // Deleted (or decided) while we merged: what we stored must not outlive
                        // the legs the retention cycle already removed.
                        self.remove(&m).await;
                    }
                    return Ok(One::Merged);
                }
                Err(MergeFailure::Retry(why)) => {
                    eprintln!("recorder-daemon: merge of interaction {id} waits: {why}");
                    return Ok(One::Waiting);
                }
                Err(MergeFailure::Refused(why)) => why,
            },
            _ => "the primary and paired legs are not both stored".to_string(),
        };
        eprintln!("recorder-daemon: interaction {id}: legs not merged: {outcome}");
        self.finish(id, MergeOutcome::Failed { error: outcome })
            .await?;
        Ok(One::Failed)
    }

    async fn finish(&self, id: i64, outcome: MergeOutcome) -> Result<bool> {
        let store = self.store.clone();
        Ok(
            tokio::task::spawn_blocking(move || store.merge_finish(id, &outcome))
                .await
                .context("store task")??,
        )
    }

    async fn remove(&self, m: &MergedRecording) {
        let Some(s) = self.storages.get(&m.storage) else {
            return;
        };
        for f in &m.files {
            if let Err(e) = s.delete(&f.key).await {
                eprintln!("recorder-daemon: removing {}: {e}", f.key);
            }
        }
    }

    /// Runs a round every `interval` until the process ends.
    pub fn spawn(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.round().await {
                    Ok(r) if r == MergeReport::default() => {}
                    Ok(r) => eprintln!(
                        "recorder-daemon: merge round: {}",
                        serde_json::to_string(&r).unwrap_or_default()
                    ),
                    Err(e) => eprintln!("recorder-daemon: merge round failed: {e:#}"),
                }
                tokio::time::sleep(interval).await;
            }
        })
    }
}

#[cfg(test)]
mod tests;
