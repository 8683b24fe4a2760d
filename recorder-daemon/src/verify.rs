//! `recorder-daemon verify`: the check the uploader will run before it trusts a recording. It
//! reads a recording directory written by bot-host and checks every Ogg Opus track
//! independently of the code that wrote it (page CRCs and framing by the `ogg` crate, headers
//! and granules by RFC 7845), against what `meta.json` claims.

use std::fs::File;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

use anyhow::{bail, ensure, Context, Result};

/// What one track's file holds.
struct TrackCheck {
    pages: u64,
    packets: u64,
    duration_ms: f64,
}

/// Checks one recording directory; one line per track and for the manifest.
pub fn verify_recording(dir: &Path) -> Result<Vec<String>> {
    let meta_path = dir.join("meta.json");
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&meta_path).with_context(|| format!("reading {}", meta_path.display()))?,
    )
    .with_context(|| format!("parsing {}", meta_path.display()))?;
    let tracks = meta["tracks"]
        .as_array()
        .context("meta.json has no tracks array")?;
    let mut lines = Vec::new();
    for t in tracks {
        let participant = t["participant"].as_str().unwrap_or("?");
        let Some(file) = t["file"].as_str() else {
            lines.push(format!("{}: {participant}: no audio", dir.display()));
            continue;
        };
        let path = dir.join(file);
        let check = verify_track(&path).with_context(|| format!("{}", path.display()))?;
        if let Some(claimed) = t["duration_ms"].as_f64() {
            ensure!(
                (claimed - check.duration_ms).abs() < 1.0,
                "{}: meta.json says {claimed} ms, file holds {} ms",
                path.display(),
                check.duration_ms
            );
        }
        lines.push(format!(
            "{}: {participant}: ok, {:.3} s, {} packets in {} pages",
            path.display(),
            check.duration_ms / 1000.0,
            check.packets,
            check.pages
        ));
    }
    if let Some(line) = verify_manifest(dir)? {
        lines.push(line);
    }
    if let Some(file) = meta["mixed"]["file"].as_str() {
        let path = dir.join(file);
        let check = verify_track(&path).with_context(|| format!("{}", path.display()))?;
        lines.push(format!(
            "{}: mixed: ok, {:.3} s, {} packets in {} pages",
            path.display(),
            check.duration_ms / 1000.0,
            check.packets,
            check.pages
        ));
    }
    // A stored Pro recording carries the merge of its two legs in `merged/`, a recording
    // directory with its own manifest (docs/storage.md, "Merged recordings").
    let merged = dir.join(crate::merge::MERGED_DIR);
    if merged.is_dir() {
        lines.extend(verify_recording(&merged)?);
    }
    Ok(lines)
}

/// Checks a sealed recording's `manifest.json` (bot-host's tamper evidence): every listed
/// file has its size and SHA-256, and no file of the directory is missing from it. `None`
/// for a directory without a manifest (`bot-host replay` output).
fn verify_manifest(dir: &Path) -> Result<Option<String>> {
    use sha2::{Digest, Sha256};
    let path = dir.join("manifest.json");
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(None);
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    ensure!(
        manifest["algorithm"] == "sha256",
        "{}: unknown algorithm {}",
        path.display(),
        manifest["algorithm"]
    );
    let files = manifest["files"]
        .as_array()
        .with_context(|| format!("{}: no files array", path.display()))?;
    let mut listed = std::collections::BTreeSet::new();
    for f in files {
        let name = f["file"].as_str().context("manifest entry without file")?;
        // A manifest names files of its own directory only.
        ensure!(
            !name.contains('/') && !name.contains('\\') && name != ".." && name != ".",
            "{}: entry {name:?} is not a file of the recording",
            path.display()
        );
        let data = std::fs::read(dir.join(name))
            .with_context(|| format!("{}: listed file {name} unreadable", path.display()))?;
        ensure!(
            f["size"].as_u64() == Some(data.len() as u64),
            "{}: {name} is {} bytes, manifest says {}",
            path.display(),
            data.len(),
            f["size"]
        );
        let digest = Sha256::digest(&data);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        ensure!(
            f["sha256"].as_str() == Some(hex.as_str()),
            "{}: {name} does not match its SHA-256 (changed after sealing)",
            path.display()
        );
        listed.insert(name.to_string());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == crate::merge::MERGED_DIR && entry.file_type()?.is_dir() {
            continue; // verified on its own by verify_recording
        }
        ensure!(
            name == "manifest.json" || listed.contains(&name),
            "{}: {name} is not in the manifest (added after sealing)",
            path.display()
        );
    }
    Ok(Some(format!(
        "{}: ok, {} files match their SHA-256",
        path.display(),
        listed.len()
    )))
}

fn verify_track(path: &Path) -> Result<TrackCheck> {
    let mut reader = ogg::PacketReader::new(File::open(path)?);
    let head = reader.read_packet()?.context("empty file")?;
    ensure!(head.first_in_stream(), "first page is not BOS");
    ensure!(
        head.data.len() >= 19 && &head.data[..8] == b"OpusHead",
        "first packet is not OpusHead"
    );
    let pre_skip = u16::from_le_bytes([head.data[10], head.data[11]]) as u64;
    let tags = reader.read_packet()?.context("no OpusTags")?;
    ensure!(
        tags.data.starts_with(b"OpusTags"),
        "second packet is not OpusTags"
    );
    let mut packets = 0;
    let mut samples = 0u64;
    let mut pages = 2;
    let mut eos = false;
    let mut last_page = None;
    while let Some(p) = reader.read_packet()? {
        ensure!(!eos, "data after end of stream");
        let n = media_core::opus::packet_samples_48k(&p.data)
            .with_context(|| format!("packet {packets}"))? as u64;
        samples += n;
        packets += 1;
        if p.last_in_page() {
            pages += 1;
            // RFC 7845: the granule counts every decoded sample, pre-skip included; only the
            // last page may stop short of it (end trimming, less than one packet).
            let granule = p.absgp_page();
            let trimmed = p.last_in_stream() && granule <= samples && samples - granule < n;
            ensure!(
                granule == samples || trimmed,
                "page granule {granule} but {samples} samples decoded"
            );
            last_page = Some(granule);
        }
        eos = p.last_in_stream();
    }
    if !eos {
        bail!("no end-of-stream page (recording cut short?)");
    }
    let Some(last) = last_page else {
        bail!("no audio pages");
    };
    Ok(TrackCheck {
        pages,
        packets,
        duration_ms: last.saturating_sub(pre_skip) as f64 / 48.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use media_core::ogg::{OggOpusWriter, OpusHead};

    /// A recording directory with one 2 s track written by media-core's writer.
    fn recording(name: &str) -> (PathBuf, Vec<u8>) {
        let dir = std::env::temp_dir().join(format!("verify-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let head = OpusHead {
            channels: 1,
            pre_skip: 312,
            input_sample_rate: 48_000,
            output_gain: 0,
        };
        let mut w = OggOpusWriter::new(7, head, &[("PARTICIPANT", "p")]);
        for _ in 0..100 {
            w.write_packet(&[0xF8, 0xFF, 0xFE], 960);
        }
        w.finish();
        let bytes = w.output().clone();
        std::fs::write(dir.join("p.ogg"), &bytes).unwrap();
        let meta = serde_json::json!({
            "tracks": [{ "participant": "p", "file": "p.ogg", "duration_ms": (96_000.0 - 312.0) / 48.0 }]
        });
        std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
        (dir, bytes)
    }

    #[test]
    fn a_good_recording_verifies() {
        let (dir, _) = recording("good");
        let lines = verify_recording(&dir).unwrap();
        assert!(lines[0].contains("ok, 1.994 s, 100 packets"), "{lines:?}");
    }

    #[test]
    fn damage_is_found() {
        // A flipped byte (CRC), a cut file (no EOS), a meta.json that lies about duration.
        let (dir, bytes) = recording("flip");
        let mut flipped = bytes.clone();
        let at = flipped.len() - 2;
        flipped[at] ^= 0x40;
        std::fs::write(dir.join("p.ogg"), &flipped).unwrap();
        assert!(verify_recording(&dir).is_err());

        std::fs::write(dir.join("p.ogg"), &bytes[..bytes.len() - 20]).unwrap();
        assert!(verify_recording(&dir).is_err());

        std::fs::write(dir.join("p.ogg"), &bytes).unwrap();
        let meta = serde_json::json!({ "tracks": [{ "participant": "p", "file": "p.ogg", "duration_ms": 5000.0 }] });
        std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
        let err = verify_recording(&dir).unwrap_err().to_string();
        assert!(err.contains("meta.json says"), "{err}");
    }

    /// Writes a manifest of the directory as bot-host seals it.
    fn seal(dir: &Path) {
        use sha2::{Digest, Sha256};
        let mut files: Vec<serde_json::Value> = Vec::new();
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names {
            let data = std::fs::read(dir.join(&n)).unwrap();
            let hex: String = Sha256::digest(&data)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            files.push(serde_json::json!({ "file": n, "size": data.len(), "sha256": hex }));
        }
        let m = serde_json::json!({ "algorithm": "sha256", "files": files });
        std::fs::write(dir.join("manifest.json"), m.to_string()).unwrap();
    }

    #[test]
    fn the_manifest_catches_changes_after_sealing() {
        let (dir, bytes) = recording("manifest");
        seal(&dir);
        let lines = verify_recording(&dir).unwrap();
        assert!(
            lines.iter().any(|l| l.contains("2 files match")),
            "{lines:?}"
        );

        // meta.json edited (still valid JSON, same track).
        let meta = std::fs::read_to_string(dir.join("meta.json")).unwrap();
        std::fs::write(dir.join("meta.json"), meta.replace("\"p\"", "\"q\"")).unwrap();
        let err = verify_recording(&dir).unwrap_err().to_string();
        assert!(err.contains("meta.json does not match"), "{err}");
        std::fs::write(dir.join("meta.json"), meta).unwrap();
        verify_recording(&dir).unwrap();

        // A file slipped in.
        std::fs::write(dir.join("extra.ogg"), &bytes).unwrap();
        let err = verify_recording(&dir).unwrap_err().to_string();
        assert!(err.contains("extra.ogg is not in the manifest"), "{err}");
        std::fs::remove_file(dir.join("extra.ogg")).unwrap();

        // A listed file removed.
        std::fs::remove_file(dir.join("p.ogg")).unwrap();
        assert!(verify_recording(&dir).is_err());
    }
}
