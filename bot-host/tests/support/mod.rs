//! Shared by the end-to-end tests: checks of a sealed recording (the manifest against the
//! directory, every track decoded with libopus, not with our own reader's idea of it), and a
//! real-time call played with the simulator's parts (notifications, SDP, SRTP streams).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use audiopus::coder::Decoder;
use audiopus::{Channels, SampleRate};
use bot_host::simulate::media::{MediaSource, SpeechLibrary};
use bot_host::simulate::notify::{self, LegIds, NoteKind, Recipient, Role};
use bot_host::simulate::run::default_speech_dir;
use bot_host::simulate::scenario::{catalogue, Codec, Impairments, Leg, Span};
use bot_host::simulate::sdp;
use rand::RngCore;
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

/// An internal call to a trader where both sides talk without a pause from 0.6 s to 60 s:
/// every 20 ms frame of both streams is sent, so the audio a recording holds can be compared
/// frame for frame with what left the sender.
pub fn long_call() -> Leg {
    let scenario = catalogue()
        .into_iter()
        .find(|s| s.name == "internal-p2p-in")
        .expect("scenario internal-p2p-in");
    assert_eq!(scenario.codec, Codec::Opus);
    let mut leg = scenario.legs[0].clone();
    for p in &mut leg.participants {
        p.speech.as_mut().expect("both sides speak").spans = vec![Span {
            start_ms: 600,
            end_ms: 60_000,
        }];
    }
    leg.end_ms = 60_000;
    leg
}

pub fn uuid() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// What left the sender before it stopped.
#[derive(Debug)]
pub struct Played {
    /// The Graph call id.
    pub call_id: String,
    /// Its recording, from `GET /api/calls/{id}`.
    pub recording_id: String,
    /// Per SSRC: leg time of the first frame's start and of the last frame's end, ms.
    pub sent: HashMap<u32, (u64, u64)>,
}

/// Plays `leg` as call `call_id` against the bot-host at `http` (media at `media`) in real
/// time until `stop_at` of leg time, then returns at once (a caller may stop the bot right
/// after): the invitation and its answer, state and roster notifications at their times,
/// SRTP frames every 20 ms.
pub async fn play_until(
    http_addr: SocketAddr,
    media_addr: SocketAddr,
    leg: Leg,
    call_id: String,
    stop_at: Duration,
) -> Played {
    let leg = &leg;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://{http_addr}");
    let info: Value = http
        .get(format!("{base}/api/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["media"], media_addr.to_string());

    let library = SpeechLibrary::load(&default_speech_dir(), &[Codec::Opus]).unwrap();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut key = [0u8; 30];
    rand::thread_rng().fill_bytes(&mut key);
    let offer = sdp::offer(socket.local_addr().unwrap(), Codec::Opus, &key, 1);
    let ids = LegIds {
        call_id,
        chain_id: uuid(),
        thread_id: None,
        policy_participant_id: uuid(),
        other_participant_id: uuid(),
    };
    let to = Recipient {
        role: Role::Primary,
        paired: false,
    };
    let notes = notify::leg_timeline(leg, &ids, to, &offer);
    assert_eq!(notes[0].kind, NoteKind::Incoming);
    let url = format!("{base}/api/calls");

    let leg_start = tokio::time::Instant::now();
    let answer: Value = http
        .post(&url)
        .json(&notes[0].body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = &answer["value"][0];
    assert_eq!(entry["action"], "answer", "{answer}");
    let parsed = sdp::parse_answer(entry["mediaConfig"]["blob"].as_str().unwrap()).unwrap();
    assert_eq!(parsed.direction, sdp::AnswerDirection::Receive);
    assert_eq!(parsed.media, media_addr);
    let status: Value = http
        .get(format!("{base}/api/calls/{}", ids.call_id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let recording_id = status["recordingId"]
        .as_str()
        .unwrap_or_else(|| panic!("no recordingId: {status}"))
        .to_string();

    let mut media =
        MediaSource::new(&library, leg, Codec::Opus, &key, Impairments::default(), 7).unwrap();
    let mut notes = notes.into_iter().skip(1).peekable();
    let mut sent: HashMap<u32, (u64, u64)> = HashMap::new();
    let answered = leg_start.elapsed().as_millis() as u64;
    let mut t_ms = answered.div_ceil(20) * 20;
    let stop_ms = stop_at.as_millis() as u64;
    while t_ms < stop_ms {
        tokio::time::sleep_until(leg_start + Duration::from_millis(t_ms)).await;
        while notes.peek().is_some_and(|n| n.at_ms <= t_ms) {
            let note = notes.next().unwrap();
            assert_ne!(
                note.kind,
                NoteKind::Terminated,
                "the call must outlive the test"
            );
            let r = http.post(&url).json(&note.body).send().await.unwrap();
            assert!(r.status().is_success(), "{:?}", r.status());
        }
        media.tick(leg, t_ms).unwrap();
        while let Some(p) = media.pop_due(u64::MAX) {
            socket.send_to(&p, media_addr).await.unwrap();
            let ssrc = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
            let e = sent.entry(ssrc).or_insert((t_ms, t_ms));
            e.1 = t_ms + 20;
        }
        t_ms += 20;
    }
    assert_eq!(sent.len(), 2, "both sides sent");
    Played {
        call_id: ids.call_id,
        recording_id,
        sent,
    }
}
