//! The spool: recordings in progress under `spool/active/<id>/`, sealed ones under
//! `spool/sealed/<id>/` (docs/live.md, "Spool").
//!
//! Sealing finishes a recording directory (segments.json, mixed.ogg, meta.json, then
//! manifest.json with the SHA-256 and size of every other file), makes every file and the
//! directory durable, and moves it to `sealed/` with one rename, so the uploader never sees
//! half a recording. [`Spool::recover`] does the same, on start, for whatever a crash left in
//! `active/`: Ogg files are cut back to their last whole page and closed, and the recording
//! is marked `"status": "partial"`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use media_core::recording::PRE_SKIP;
use media_core::segments::Segment;
use media_core::time::format_rfc3339;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::replay::{write_json, write_mix, write_segments, TrackOut};

/// Why a spool operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A recording id that cannot name a directory safely.
    #[error(
        "invalid recording id {0:?} (1-128 characters of A-Z a-z 0-9 . _ -, not starting with '.')"
    )]
    BadId(String),
    /// `active/<id>` or `sealed/<id>` exists already.
    #[error("recording {0} already exists in the spool")]
    Exists(String),
    /// No `active/<id>`.
    #[error("recording {0} is not in the spool's active directory")]
    NotActive(String),
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Writing segments.json or mixed.ogg failed.
    #[error("finishing recording {id}: {source:#}")]
    Finish {
        /// The recording.
        id: String,
        /// What failed (with its context chain).
        #[source]
        source: anyhow::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The spool directories of one bot-host.
#[derive(Debug, Clone)]
pub struct Spool {
    active: PathBuf,
    sealed: PathBuf,
    mix: bool,
}

/// A track as the sealer needs it.
#[derive(Debug, Clone)]
pub struct SealTrack {
    /// Participant name (from the roster, else `msi-<n>`).
    pub participant: String,
    /// The speaker's MSI (= SSRC), if known.
    pub msi: Option<u32>,
    /// File name in the recording directory, if the track has audio.
    pub file: Option<String>,
    /// Offset of the track's first packet on the call's time line, ms.
    pub start_ms: f64,
    /// Playable duration, ms.
    pub duration_ms: Option<f64>,
    /// Speech segments from RFC 6464 levels (track time line), if the sender sent levels.
    pub level_segments: Option<Vec<Segment>>,
    /// Counters and whatever else meta.json should say of the track (an object).
    pub details: Value,
}

/// A sealed recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The recording id (directory name).
    pub recording_id: String,
    /// `sealed/<id>`.
    pub path: PathBuf,
    /// Whether the recording was cut short (recovered after a crash, or a write failed).
    pub partial: bool,
}

/// What the manifest says of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// File name inside the recording directory.
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// Recording ids name directories: keep them to a safe alphabet.
pub fn valid_recording_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Spool {
    /// Opens (creating if needed) `<data_dir>/spool/{active,sealed}`.
    pub fn new(data_dir: impl AsRef<Path>) -> io::Result<Spool> {
        let root = data_dir.as_ref().join("spool");
        let active = root.join("active");
        let sealed = root.join("sealed");
        fs::create_dir_all(&active)?;
        fs::create_dir_all(&sealed)?;
        Ok(Spool {
            active,
            sealed,
            mix: true,
        })
    }

    /// Whether sealing writes `mixed.ogg` (default yes). Mixing decodes and re-encodes the
    /// whole call (about 1/75 of its duration in CPU at 48 kHz, `docs/benchmarks.md`), which
    /// on a host recording thousands of calls costs more than recording them; such hosts seal
    /// the tracks only (`"mixed": {"deferred": true}` in meta.json) and leave the mix to a
    /// later stage (`bot-host replay`'s mix code, or the store on first download).
    pub fn with_mix(mut self, mix: bool) -> Spool {
        self.mix = mix;
        self
    }

    /// `spool/active`.
    pub fn active_dir(&self) -> &Path {
        &self.active
    }

    /// `spool/sealed`.
    pub fn sealed_dir(&self) -> &Path {
        &self.sealed
    }

    /// `spool/active/<id>` (whether or not it exists).
    pub fn active_path(&self, id: &str) -> PathBuf {
        self.active.join(id)
    }

    /// Creates `active/<id>` for a new recording.
    pub fn create_recording(&self, id: &str) -> Result<PathBuf, SpoolError> {
        if !valid_recording_id(id) {
            return Err(SpoolError::BadId(id.into()));
        }
        if self.sealed.join(id).exists() {
            return Err(SpoolError::Exists(id.into()));
        }
        let dir = self.active.join(id);
        match fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(SpoolError::Exists(id.into()))
            }
            Err(e) => Err(io_err("cannot create", &dir)(e)),
        }
    }

    /// Total bytes of every file in the spool (active and sealed), for the spool-size gauge.
    pub fn size_bytes(&self) -> u64 {
        fn walk(dir: &Path) -> u64 {
            let Ok(entries) = fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.active) + walk(&self.sealed)
    }

    /// Seals `active/<id>`: writes segments.json, mixed.ogg, meta.json (`meta`, an object,
    /// extended with `status`, `sealed_at`, `tracks` and `mixed`) and manifest.json, syncs
    /// everything and renames the directory to `sealed/<id>`.
    pub fn seal(
        &self,
        id: &str,
        tracks: &[SealTrack],
        meta: Value,
        partial: bool,
    ) -> Result<Sealed, SpoolError> {
        if !valid_recording_id(id) {
            return Err(SpoolError::BadId(id.into()));
        }
        let dir = self.active.join(id);
        if !dir.is_dir() {
            return Err(SpoolError::NotActive(id.into()));
        }
        let target = self.sealed.join(id);
        if target.exists() {
            return Err(SpoolError::Exists(id.into()));
        }
        let finish = |source| SpoolError::Finish {
            id: id.into(),
            source,
        };
        let outs: Vec<TrackOut<'_>> = tracks
            .iter()
            .map(|t| TrackOut {
                participant: &t.participant,
                file: t.file.as_deref(),
                start_ms: t.start_ms,
                level_segments: t.level_segments.as_deref(),
                duration_ms: t.duration_ms,
            })
            .collect();
        // The tracks are the evidence; segments and the mix are derived from them. A track
        // that cannot be segmented or mixed (damaged by a crash, say) must not keep the
        // recording from being sealed: the failure is recorded in meta.json instead.
        let mut derived_errors = serde_json::Map::new();
        let sources = match write_segments(&dir, &outs) {
            Ok(s) => s,
            Err(e) => {
                derived_errors.insert("segments".into(), json!(format!("{e:#}")));
                write_json(&dir.join("segments.json"), &json!([])).map_err(finish)?;
                vec!["none"; outs.len()]
            }
        };
        let call_id = meta["call_id"].as_str().unwrap_or(id).to_string();
        let targeted = meta["targeted"].as_str().map(str::to_string);
        let mixed = match self
            .mix
            .then(|| write_mix(&dir, &call_id, &outs, targeted.as_deref()))
        {
            None => json!({ "deferred": true }),
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                derived_errors.insert("mixed".into(), json!(format!("{e:#}")));
                // A half-written mix is our own output, not evidence.
                let _ = fs::remove_file(dir.join("mixed.ogg"));
                Value::Null
            }
        };

        let mut meta = match meta {
            Value::Object(m) => m,
            Value::Null => serde_json::Map::new(),
            other => {
                let mut m = serde_json::Map::new();
                m.insert("host".into(), other);
                m
            }
        };
        meta.insert("recording_id".into(), json!(id));
        meta.insert(
            "status".into(),
            json!(if partial { "partial" } else { "complete" }),
        );
        meta.insert("sealed_at".into(), json!(format_rfc3339(unix_micros())));
        meta.insert(
            "tracks".into(),
            Value::Array(
                tracks
                    .iter()
                    .zip(&sources)
                    .map(|(t, from)| {
                        let mut j = match &t.details {
                            Value::Object(m) => m.clone(),
                            _ => serde_json::Map::new(),
                        };
                        j.insert("participant".into(), json!(t.participant));
                        j.insert("msi".into(), json!(t.msi));
                        j.insert("file".into(), json!(t.file));
                        j.insert("start_ms".into(), json!(t.start_ms));
                        j.insert("duration_ms".into(), json!(t.duration_ms));
                        j.insert("segments_from".into(), json!(from));
                        Value::Object(j)
                    })
                    .collect(),
            ),
        );
        meta.insert("mixed".into(), mixed);
        if !derived_errors.is_empty() {
            meta.insert("errors".into(), Value::Object(derived_errors));
        }
        write_json(&dir.join("meta.json"), &Value::Object(meta)).map_err(finish)?;

        let entries = manifest_entries(&dir)?;
        let manifest = json!({
            "algorithm": "sha256",
            "files": entries.iter().map(|e| json!({
                "file": e.file, "size": e.size, "sha256": e.sha256,
            })).collect::<Vec<_>>(),
        });
        write_json(&dir.join("manifest.json"), &manifest).map_err(finish)?;
        // Everything durable before the rename publishes it.
        for e in &entries {
            sync_file(&dir.join(&e.file))?;
        }
        sync_file(&dir.join("manifest.json"))?;
        sync_dir(&dir)?;
        fs::rename(&dir, &target).map_err(io_err("cannot move to sealed/", &dir))?;
        sync_dir(&self.active)?;
        sync_dir(&self.sealed)?;
        Ok(Sealed {
            recording_id: id.into(),
            path: target,
            partial,
        })
    }

    /// Seals every directory left in `active/` (by a crash) with what is on disk; each is
    /// marked `"status": "partial"`. Returns one result per directory found.
    pub fn recover(&self) -> Vec<(String, Result<Sealed, SpoolError>)> {
        let mut ids: Vec<String> = match fs::read_dir(&self.active) {
            Ok(entries) => entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        ids.sort();
        ids.into_iter()
            .map(|id| {
                let r = self.recover_one(&id);
                (id, r)
            })
            .collect()
    }

    fn recover_one(&self, id: &str) -> Result<Sealed, SpoolError> {
        let dir = self.active.join(id);
        // What the live recorder last wrote of the call (meta.json with "status":"recording").
        let live: Value = fs::read(dir.join("meta.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let names: Vec<String> = fs::read_dir(&dir)
            .map_err(io_err("cannot read", &dir))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        // What a crash in the middle of a seal left is derived output, written again below:
        // a stale mix or manifest, or a temporary JSON file.
        for n in &names {
            if n == "mixed.ogg" || n == "manifest.json" || n.ends_with(".tmp") {
                let p = dir.join(n);
                fs::remove_file(&p).map_err(io_err("cannot remove", &p))?;
            }
        }
        let mut files: Vec<String> = names
            .into_iter()
            .filter(|n| n.ends_with(".ogg") && n != "mixed.ogg")
            .collect();
        files.sort();
        let mut tracks = Vec::new();
        for file in files {
            let path = dir.join(&file);
            let repair = repair_ogg(&path)?;
            let stem = file.trim_end_matches(".ogg");
            let msi: Option<u32> = stem.parse().ok();
            let known = live["tracks"]
                .as_array()
                .and_then(|ts| ts.iter().find(|t| t["file"].as_str() == Some(&file)));
            let participant = known
                .and_then(|t| t["participant"].as_str())
                .map(str::to_string)
                .unwrap_or_else(|| match msi {
                    Some(m) => format!("msi-{m}"),
                    None => stem.to_string(),
                });
            let start_ms = known.and_then(|t| t["start_ms"].as_f64()).unwrap_or(0.0);
            let duration_ms = repair
                .last_granule
                .map(|g| g.saturating_sub(u64::from(repair.pre_skip)) as f64 / 48.0);
            tracks.push(SealTrack {
                participant,
                msi,
                file: repair.has_audio.then(|| file.clone()),
                start_ms,
                duration_ms: if repair.has_audio { duration_ms } else { None },
                level_segments: None,
                details: json!({
                    "recovered": {
                        "pages": repair.pages,
                        "trimmed_bytes": repair.trimmed_bytes,
                        "closed": repair.eos_added,
                    },
                    "file_on_disk": file,
                }),
            });
        }
        let mut meta = match live {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        // The live file's track list is superseded by what the seal writes.
        meta.remove("tracks");
        meta.insert("recovered_at".into(), json!(format_rfc3339(unix_micros())));
        self.seal(id, &tracks, Value::Object(meta), true)
    }
}

/// Unix time now, µs.
pub(crate) fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// SHA-256 and size of every file of `dir` except the manifest itself, sorted by name.
pub fn manifest_entries(dir: &Path) -> Result<Vec<ManifestEntry>, SpoolError> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(io_err("cannot read", dir))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "manifest.json" && !n.ends_with(".tmp"))
        .collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    let mut buf = vec![0u8; 64 * 1024];
    for file in names {
        let path = dir.join(&file);
        let mut f = File::open(&path).map_err(io_err("cannot read", &path))?;
        let mut h = Sha256::new();
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(io_err("cannot read", &path))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            size += n as u64;
        }
        let sha256 = h
            .finalize()
            .iter()
            .fold(String::with_capacity(64), |mut s, b| {
                use std::fmt::Write as _;
                let _ = write!(s, "{b:02x}");
                s
            });
        out.push(ManifestEntry { file, size, sha256 });
    }
    Ok(out)
}

fn sync_file(path: &Path) -> Result<(), SpoolError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err("cannot sync", path))
}

fn sync_dir(path: &Path) -> Result<(), SpoolError> {
    // A directory's entries (new files, renames) are durable once the directory is synced.
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err("cannot sync directory", path))
}

/// The Ogg page CRC (RFC 3533 section 6): polynomial 0x04c11db7, no reflection, zero init
/// and final XOR. Not one of the `crc` crate's catalogue entries.
const OGG_CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::Algorithm {
    width: 32,
    poly: 0x04c1_1db7,
    init: 0,
    refin: false,
    refout: false,
    xorout: 0,
    check: 0x89a1_897f,
    residue: 0,
});

/// What [`repair_ogg`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OggRepair {
    /// Whole, valid pages kept.
    pub pages: u64,
    /// Bytes cut from the end (a page the crash interrupted, or garbage).
    pub trimmed_bytes: u64,
    /// Whether the last page was marked end-of-stream by the repair.
    pub eos_added: bool,
    /// Whether any audio page (beyond OpusHead and OpusTags) survived.
    pub has_audio: bool,
    /// Granule position of the last audio page.
    pub last_granule: Option<u64>,
    /// Pre-skip from OpusHead.
    pub pre_skip: u16,
}

/// Cuts an Ogg Opus file a crash interrupted back to its last whole, CRC-valid page that
/// ends a packet, and marks that page end-of-stream (re-computing its CRC), so every Ogg
/// reader plays it and checkers that require EOS accept it. A file that is already complete
/// is left byte for byte as it is.
pub fn repair_ogg(path: &Path) -> Result<OggRepair, SpoolError> {
    let data = fs::read(path).map_err(io_err("cannot read", path))?;
    let mut pos = 0usize;
    // (start, end, header_type, granule) of whole pages that end with a complete packet.
    let mut good_end = 0usize;
    let mut last_page: Option<(usize, u8, u64)> = None;
    let mut pages = 0u64;
    let mut audio_pages = 0u64;
    let mut pre_skip = PRE_SKIP;
    let mut pages_total = 0u64;
    while let Some((len, header_type, granule, ends_packet)) = parse_page(&data[pos..]) {
        if pages_total == 0 {
            let body_start = 27 + usize::from(data[pos + 26]);
            let body = &data[pos + body_start..pos + len];
            if body.len() >= 12 && body.starts_with(b"OpusHead") {
                pre_skip = u16::from_le_bytes([body[10], body[11]]);
            }
        }
        pages_total += 1;
        if ends_packet {
            pages = pages_total;
            good_end = pos + len;
            last_page = Some((pos, header_type, granule));
            if pages_total > 2 {
                audio_pages += 1;
            }
        }
        pos += len;
        if header_type & 0x04 != 0 {
            break;
        }
    }
    let trimmed = (data.len() - good_end) as u64;
    let mut repair = OggRepair {
        pages,
        trimmed_bytes: trimmed,
        eos_added: false,
        has_audio: audio_pages > 0,
        last_granule: if audio_pages > 0 {
            last_page.map(|(_, _, g)| g)
        } else {
            None
        },
        pre_skip,
    };
    if trimmed == 0 && last_page.is_some_and(|(_, t, _)| t & 0x04 != 0) {
        return Ok(repair);
    }
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err("cannot repair", path))?;
    f.set_len(good_end as u64)
        .map_err(io_err("cannot truncate", path))?;
    if let Some((start, header_type, _)) = last_page {
        if repair.has_audio && header_type & 0x04 == 0 {
            let mut page = data[start..good_end].to_vec();
            page[5] |= 0x04;
            page[22..26].fill(0);
            let crc = OGG_CRC.checksum(&page);
            page[22..26].copy_from_slice(&crc.to_le_bytes());
            f.seek(SeekFrom::Start(start as u64))
                .and_then(|_| f.write_all(&page[..27]))
                .map_err(io_err("cannot repair", path))?;
            repair.eos_added = true;
        }
    }
    f.sync_all().map_err(io_err("cannot sync", path))?;
    Ok(repair)
}

/// One Ogg page at the start of `data`: (length, header type, granule, whether its last
/// segment ends a packet); `None` if the page is incomplete or its CRC is wrong.
fn parse_page(data: &[u8]) -> Option<(usize, u8, u64, bool)> {
    if data.len() < 27 || &data[..4] != b"OggS" || data[4] != 0 {
        return None;
    }
    let nsegs = usize::from(data[26]);
    let header_len = 27 + nsegs;
    let lacing = data.get(27..header_len)?;
    let body_len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
    let len = header_len + body_len;
    let page = data.get(..len)?;
    let stored = u32::from_le_bytes([page[22], page[23], page[24], page[25]]);
    let mut digest = OGG_CRC.digest();
    digest.update(&page[..22]);
    digest.update(&[0; 4]);
    digest.update(&page[26..]);
    if digest.finalize() != stored {
        return None;
    }
    let granule = u64::from_le_bytes(page[6..14].try_into().ok()?);
    let ends_packet = lacing.last().is_some_and(|&l| l < 255);
    Some((len, page[5], granule, ends_packet))
}

#[cfg(test)]
mod tests {
    use super::*;
    use media_core::ogg::{OggOpusWriter, OpusHead};

    /// A valid Ogg Opus stream of `n` 20 ms silent packets, one page per 10 packets.
    fn ogg(n: usize, finish: bool) -> Vec<u8> {
        let mut w = OggOpusWriter::new(
            7,
            OpusHead {
                channels: 1,
                pre_skip: PRE_SKIP,
                input_sample_rate: 48_000,
                output_gain: 0,
            },
            &[],
        );
        let mut out = Vec::new();
        for i in 0..n {
            // An Opus CELT-only 20 ms mono silence frame (TOC 0xf8 + payload).
            w.write_packet(&[0xf8, 0xff, 0xfe], 960);
            if i % 10 == 9 {
                w.flush();
            }
            out.append(w.output());
        }
        if finish {
            w.finish();
        }
        out.append(w.output());
        out
    }

    #[test]
    fn crc_matches_media_core_pages() {
        let data = ogg(30, true);
        let mut pos = 0;
        let mut n = 0;
        while let Some((len, ..)) = parse_page(&data[pos..]) {
            pos += len;
            n += 1;
        }
        assert_eq!(
            pos,
            data.len(),
            "every page written by media-core validates"
        );
        assert!(n >= 5);
    }

    #[test]
    fn repair_cuts_to_whole_pages_and_closes_the_stream() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
        let full = ogg(40, false);
        let path = d.join("1.ogg");
        // Cut in the middle of the last page.
        fs::write(&path, &full[..full.len() - 20]).unwrap();
        let r = repair_ogg(&path).unwrap();
        assert!(r.has_audio && r.eos_added);
        assert!(r.trimmed_bytes > 0);
        let fixed = fs::read(&path).unwrap();
        let mut reader = ogg::PacketReader::new(std::io::Cursor::new(fixed));
        let mut last = None;
        while let Some(p) = reader.read_packet().unwrap() {
            last = Some(p);
        }
        let last = last.unwrap();
        assert!(last.last_in_stream());
        assert_eq!(Some(last.absgp_page()), r.last_granule);
        // A complete file stays as it is.
        let done = ogg(40, true);
        fs::write(&path, &done).unwrap();
        let r = repair_ogg(&path).unwrap();
        assert_eq!((r.trimmed_bytes, r.eos_added), (0, false));
        assert_eq!(fs::read(&path).unwrap(), done);
        // Headers only / garbage: no audio.
        fs::write(&path, b"OggS garbage").unwrap();
        let r = repair_ogg(&path).unwrap();
        assert!(!r.has_audio);
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn ids_are_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
        let s = Spool::new(&d).unwrap();
        for bad in ["", "..", "../x", "a/b", ".hidden", "a b"] {
            assert!(
                matches!(s.create_recording(bad), Err(SpoolError::BadId(_))),
                "{bad}"
            );
        }
        s.create_recording("rec-1").unwrap();
        assert!(matches!(
            s.create_recording("rec-1"),
            Err(SpoolError::Exists(_))
        ));
    }

    #[test]
    fn seal_writes_manifest_and_moves() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
        let s = Spool::new(&d).unwrap();
        let dir = s.create_recording("r1").unwrap();
        fs::write(dir.join("42.ogg"), ogg(50, true)).unwrap();
        let sealed = s
            .seal(
                "r1",
                &[SealTrack {
                    participant: "Alice".into(),
                    msi: Some(42),
                    file: Some("42.ogg".into()),
                    start_ms: 0.0,
                    duration_ms: Some(1000.0 - f64::from(PRE_SKIP) / 48.0),
                    level_segments: Some(Vec::new()),
                    details: json!({"packets": {"received": 50}}),
                }],
                json!({"call_id": "c1", "x": 1}),
                false,
            )
            .unwrap();
        assert!(!dir.exists());
        assert_eq!(sealed.path, s.sealed_dir().join("r1"));
        let meta: Value =
            serde_json::from_slice(&fs::read(sealed.path.join("meta.json")).unwrap()).unwrap();
        assert_eq!(meta["status"], "complete");
        assert_eq!(meta["x"], 1);
        assert_eq!(meta["tracks"][0]["packets"]["received"], 50);
        let manifest: Value =
            serde_json::from_slice(&fs::read(sealed.path.join("manifest.json")).unwrap()).unwrap();
        let files: Vec<&str> = manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["file"].as_str().unwrap())
            .collect();
        assert_eq!(files, ["42.ogg", "meta.json", "mixed.ogg", "segments.json"]);
        assert_eq!(
            manifest_entries(&sealed.path).unwrap()[0].size,
            fs::metadata(sealed.path.join("42.ogg")).unwrap().len()
        );
    }
}
