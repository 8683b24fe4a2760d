//! Builds sealed recording directories as bot-host writes them (docs/live.md, "Spool"), for the
//! upload benchmark and the tests: `mixed.ogg` (opaque bytes here), `segments.json`,
//! `meta.json` with an interaction, and `manifest.json` with each file's size and SHA-256.

use std::path::{Path, PathBuf};

use anyhow::Result;
use sha2::{Digest, Sha256};

/// What a synthetic recording looks like.
pub struct SealedSpec<'a> {
    /// Recording id (the directory name).
    pub id: &'a str,
    /// Friendly storage name.
    pub storage: &'a str,
    /// `Essentials` or `Pro`.
    pub double_recording_type: &'a str,
    /// Call start (RFC 3339).
    pub start_time: &'a str,
    /// The bytes of `mixed.ogg`.
    pub mixed: &'a [u8],
    /// One speaker track (`1001.ogg`, Ogg Opus) and its duration in ms, listed in `meta.json`
    /// so that verification checks its pages and granules, not only its hash.
    pub track: Option<(&'a [u8], f64)>,
    /// `meta.json`'s `status` says `partial`, as after bot-host recovered the recording from
    /// `active/` following a crash.
    pub partial: bool,
}

/// Writes `<spool>/sealed/<id>/` and returns it. The directory is written under a dot name and
/// renamed into place, as bot-host seals, so that a running uploader never sees half of it.
pub fn write_sealed(spool: &Path, spec: &SealedSpec<'_>) -> Result<PathBuf> {
    let sealed = spool.join("sealed");
    std::fs::create_dir_all(&sealed)?;
    let tmp = sealed.join(format!(".{}.tmp", spec.id));
    std::fs::create_dir_all(&tmp)?;
    let tracks = match spec.track {
        Some((_, ms)) => {
            serde_json::json!([{"participant": "p", "msi": 1001, "file": "1001.ogg", "duration_ms": ms}])
        }
        None => serde_json::json!([]),
    };
    let meta = serde_json::json!({
        "recording_id": spec.id,
        "status": if spec.partial { "partial" } else { "complete" },
        "tracks": tracks,
        "interaction": {
            "callId": format!("call-{}", spec.id),
            "recordingId": spec.id,
            "botRole": "primary",
            "pairingKey": format!("pk-{}", spec.id),
            "startTime": spec.start_time,
            "direction": "Incoming",
            "callType": "PSTN p2p",
            "mediaStatus": "Recording",
            "storage": spec.storage,
            "doubleRecordingType": spec.double_recording_type,
            "retentionDays": 30,
            "targets": [{"kind": "user", "id": "u1", "displayName": "Ann", "upn": "ann@contoso.example"}],
        }
    });
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        ("meta.json", serde_json::to_vec_pretty(&meta)?),
        ("mixed.ogg", spec.mixed.to_vec()),
        ("segments.json", b"[]".to_vec()),
    ];
    if let Some((track, _)) = spec.track {
        files.insert(0, ("1001.ogg", track.to_vec()));
    }
    let mut listed = Vec::new();
    for (name, data) in &files {
        std::fs::write(tmp.join(name), data)?;
        listed.push(serde_json::json!({
            "file": name,
            "size": data.len(),
            "sha256": hex::encode(Sha256::digest(data)),
        }));
    }
    std::fs::write(
        tmp.join("manifest.json"),
        serde_json::to_vec_pretty(&serde_json::json!({"algorithm": "sha256", "files": listed}))?,
    )?;
    let dir = sealed.join(spec.id);
    std::fs::rename(&tmp, &dir)?;
    Ok(dir)
}
