//! The stored merge of a Pro recording's two legs (docs/storage.md, "Merged recordings").
//!
//! The primary and the paired bot record the same call on different hosts, and each leg
//! reaches storage on its own. Once both are stored and verified, the daemon fetches them into
//! a scratch directory, merges them with bot-host's [`bot_host::pair::merge_sealed`] (frames
//! bit-exact from whichever leg had them, aligned by content), and stores the merged directory
//! beside them under `<yyyy>/<mm>/<dd>/<primary recording id>.merged/`, with a manifest like a
//! sealed leg's. The player's "merged" choice serves it; either leg stays playable on its own.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use md5::{Digest as _, Md5};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;

use crate::model::Leg;
use crate::storage::{self, ObjectMeta, Storages};

/// The storage a leg names, `local` when it names none (the embedded default).
pub fn leg_storage(leg: &Leg) -> &str {
    if leg.metadata.storage.is_empty() {
        "local"
    } else {
        &leg.metadata.storage
    }
}

/// The media path of the merged recording of a call whose primary leg is `primary`.
pub fn merged_media_path(primary: &Leg) -> String {
    storage::media_path(
        &primary.metadata.start_time,
        &format!("{}.merged", primary.recording_id),
    )
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
) -> Result<MergedRecording> {
    std::fs::create_dir_all(scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let work = tempfile::TempDir::new_in(scratch).context("scratch directory")?;
    let p_dir = fetch(storages, primary, &work.path().join("primary")).await?;
    let q_dir = fetch(storages, paired, &work.path().join("paired")).await?;
    for dir in [&p_dir, &q_dir] {
        let problems = crate::verify::verify_recording(dir)?;
        if !problems.is_empty() {
            bail!("{} does not verify: {}", dir.display(), problems.join("; "));
        }
    }
    let out = work.path().join("merged");
    let (p, q, o) = (p_dir.clone(), q_dir.clone(), out.clone());
    tokio::task::spawn_blocking(move || bot_host::pair::merge_sealed(&p, &q, &o))
        .await
        .context("merge task")??;
    write_manifest(&out)?;
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("meta.json")).context("merged meta.json")?)
            .context("merged meta.json")?;

    let name = leg_storage(primary).to_string();
    let target = storages
        .get(&name)
        .with_context(|| format!("no storage named {name:?}"))?;
    let media_path = merged_media_path(primary);
    let mut files = Vec::new();
    for (file, path) in dir_files(&out)? {
        let (size, md5) = size_and_md5(&path)?;
        let key = format!("{media_path}/{file}");
        files.push(target.put_file(&key, &path, size, md5).await?);
    }
    Ok(MergedRecording {
        storage: name,
        media_path,
        files,
        meta,
    })
}

/// Downloads every object of `leg`'s media path into `dir`.
async fn fetch(storages: &Storages, leg: &Leg, dir: &Path) -> Result<PathBuf> {
    let Some(media_path) = &leg.media_path else {
        bail!("leg {} is not in storage yet", leg.recording_id);
    };
    let name = leg_storage(leg);
    let s = storages
        .get(name)
        .with_context(|| format!("leg {}: no storage named {name:?}", leg.recording_id))?;
    let prefix = format!("{media_path}/");
    tokio::fs::create_dir_all(dir).await?;
    let objects = s.list(&prefix).await?;
    if objects.is_empty() {
        bail!("leg {}: nothing stored under {prefix}", leg.recording_id);
    }
    for o in objects {
        let file = o.key.strip_prefix(&prefix).unwrap_or(&o.key);
        // Names come from the storage listing: only plain file names land on local disk.
        if file.is_empty() || file.contains('/') || file.contains('\\') || file.starts_with('.') {
            bail!("leg {}: unexpected object {}", leg.recording_id, o.key);
        }
        let mut body = s.get(&o.key, None).await?;
        let mut f = tokio::fs::File::create(dir.join(file)).await?;
        while let Some(chunk) = body.next().await {
            f.write_all(&chunk?).await?;
        }
        f.flush().await?;
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
