//! Checks of a sealed recording shared by the end-to-end tests: the manifest against the
//! directory, and every track decoded with libopus (not with our own reader's idea of it).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use audiopus::coder::Decoder;
use audiopus::{Channels, SampleRate};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A track file decoded with libopus.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Samples per channel the decoder produced, pre-skip removed.
    pub samples: u64,
    /// Granule position of the last page, pre-skip removed.
    pub granule: u64,
    /// Audio packets.
    pub packets: u64,
    /// RMS of the decoded audio (first channel).
    pub rms: f64,
}

impl Decoded {
    /// Decoded duration in milliseconds.
    pub fn ms(&self) -> f64 {
        self.samples as f64 / 48.0
    }
}

/// Decodes an Ogg Opus file: OpusHead, OpusTags, then every audio packet through libopus.
pub fn decode_ogg_opus(path: &Path) -> Decoded {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = ogg::PacketReader::new(std::io::BufReader::new(file));
    let head = reader
        .read_packet()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .expect("OpusHead");
    assert_eq!(&head.data[..8], b"OpusHead", "{}", path.display());
    let channels = head.data[9];
    let pre_skip = u64::from(u16::from_le_bytes([head.data[10], head.data[11]]));
    let tags = reader.read_packet().unwrap().expect("OpusTags");
    assert_eq!(&tags.data[..8], b"OpusTags", "{}", path.display());
    let mut decoder = Decoder::new(
        SampleRate::Hz48000,
        if channels == 2 {
            Channels::Stereo
        } else {
            Channels::Mono
        },
    )
    .unwrap();
    let ch = usize::from(channels.max(1));
    let mut pcm = vec![0i16; 5760 * ch];
    let (mut samples, mut packets, mut granule, mut energy) = (0u64, 0u64, 0u64, 0f64);
    let mut saw_eos = false;
    while let Some(p) = reader
        .read_packet()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    {
        assert!(!saw_eos, "{}: packets after end of stream", path.display());
        let n = decoder
            .decode(Some(&p.data[..]), &mut pcm[..], false)
            .unwrap_or_else(|e| {
                panic!("{}: packet {packets} does not decode: {e}", path.display())
            });
        for frame in pcm[..n * ch].chunks_exact(ch) {
            energy += f64::from(frame[0]).powi(2);
        }
        samples += n as u64;
        packets += 1;
        granule = p.absgp_page();
        saw_eos = p.last_in_stream();
    }
    assert!(saw_eos, "{}: no end-of-stream page", path.display());
    let samples = samples.saturating_sub(pre_skip);
    Decoded {
        samples,
        granule: granule.saturating_sub(pre_skip),
        packets,
        rms: (energy / samples.max(1) as f64).sqrt(),
    }
}

/// `manifest.json` must name every other file of `dir`, sorted, with its size and SHA-256.
pub fn check_manifest(dir: &Path) {
    let manifest: Value = read_json(&dir.join("manifest.json"));
    assert_eq!(manifest["algorithm"], "sha256");
    let listed: Vec<&Value> = manifest["files"]
        .as_array()
        .expect("files")
        .iter()
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "manifest.json")
        .collect();
    on_disk.sort();
    let names: Vec<&str> = listed.iter().map(|f| f["file"].as_str().unwrap()).collect();
    assert_eq!(names, on_disk, "manifest of {}", dir.display());
    for f in listed {
        let bytes = std::fs::read(dir.join(f["file"].as_str().unwrap())).unwrap();
        assert_eq!(f["size"].as_u64(), Some(bytes.len() as u64), "{f}");
        let sha = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        assert_eq!(f["sha256"].as_str(), Some(sha.as_str()), "{f}");
    }
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One track of a sealed recording: its meta.json entry and its decoded file.
#[derive(Debug, Clone)]
pub struct SealedTrack {
    /// The MSI (= SSRC).
    pub msi: u64,
    /// Its `tracks[]` entry.
    pub meta: Value,
    /// The file, decoded.
    pub decoded: Decoded,
}

/// A sealed recording, checked: manifest, meta.json's status, every track decoded and its
/// `duration_ms` agreeing with the decoded length.
pub fn check_sealed(dir: &Path, status: &str) -> (Value, Vec<SealedTrack>) {
    check_manifest(dir);
    let meta = read_json(&dir.join("meta.json"));
    assert_eq!(meta["status"], status, "{meta:#}");
    let mut tracks = Vec::new();
    for t in meta["tracks"].as_array().expect("tracks") {
        let Some(file) = t["file"].as_str() else {
            continue;
        };
        let decoded = decode_ogg_opus(&dir.join(file));
        // The last page's granule is where its last packet ends.
        assert_eq!(decoded.granule, decoded.samples, "{file}: {decoded:?}");
        let meta_ms = t["duration_ms"].as_f64().expect("duration_ms");
        assert!(
            (meta_ms - decoded.ms()).abs() <= 1.0,
            "{file}: meta.json says {meta_ms} ms, decoded {} ms",
            decoded.ms()
        );
        tracks.push(SealedTrack {
            msi: t["msi"].as_u64().expect("msi"),
            meta: t.clone(),
            decoded,
        });
    }
    (meta, tracks)
}

/// Waits until `dir/meta.json` exists (a sealed directory appears by rename, whole).
pub fn wait_sealed(dir: &Path, within: Duration) -> PathBuf {
    let deadline = Instant::now() + within;
    while !dir.join("meta.json").exists() {
        assert!(
            Instant::now() < deadline,
            "{} not sealed within {within:?}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    dir.to_path_buf()
}

/// Entries of `dir` (none when it does not exist).
pub fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}
