//! Every fixture capture, committed and generated, recorded by `bot-host replay` and judged
//! against the generator's ground truth and against tools we did not write (libopus,
//! opusinfo, ogginfo).

use std::path::{Path, PathBuf};
use std::process::Command;

use audiopus::coder::Decoder;
use audiopus::{Channels, SampleRate};
use bot_host::replay::{replay, KeySpec, ReplayOptions};
use serde::Deserialize;

#[derive(Deserialize, Debug)]
struct Truth {
    variant: String,
    /// Non-Opus audio (G.711, L16): transcoded, so packets are not compared bit-exact.
    #[serde(default)]
    transcoded: bool,
    capture: String,
    srtp_key: Option<String>,
    flows: Vec<TruthFlow>,
}

#[derive(Deserialize, Debug)]
struct TruthFlow {
    participant: String,
    src: String,
    dst: String,
    ssrcs: Vec<u32>,
    source_wav: String,
    start_ms: f64,
    duration_ms: f64,
    sent: u64,
    lost: u64,
    duplicated: u64,
    late: u64,
    garbage: u64,
    undecryptable: u64,
    /// This speaker's speech on the call time line, ms.
    turns: Vec<[f64; 2]>,
    packets: Vec<TruthPacket>,
}

#[derive(Deserialize, Debug)]
struct TruthPacket {
    pos_ms: f64,
    fnv: String,
    on_wire: bool,
    #[serde(default)]
    late: bool,
}

fn fixture_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    vec![root.join("calls"), root.join("generated")]
}

fn truths() -> Vec<(PathBuf, Truth)> {
    let mut out = Vec::new();
    for dir in fixture_dirs() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("note: {} absent (run fixtures/generate.sh)", dir.display());
            continue;
        };
        let mut paths: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(".truth.json"))
            .collect();
        paths.sort();
        for p in paths {
            // The hour-long dual legs are checked by media-core's merge test, in release.
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("dual-long"))
            {
                continue;
            }
            let t: Truth = serde_json::from_slice(&std::fs::read(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            out.push((dir.clone(), t));
        }
    }
    assert!(!out.is_empty(), "no fixtures found");
    out
}

fn fnv64(data: &[u8]) -> String {
    format!("{:016x}", media_core::merge::fnv1a64(data))
}

/// Reads an Ogg Opus file: (channels, pre-skip, audio packets, final granule).
fn read_ogg(path: &Path) -> (u8, u16, Vec<Vec<u8>>, u64) {
    let f = std::fs::File::open(path).unwrap();
    let mut r = ogg::PacketReader::new(f);
    let head = r.read_packet_expected().unwrap();
    assert_eq!(&head.data[..8], b"OpusHead");
    let channels = head.data[9];
    let pre_skip = u16::from_le_bytes([head.data[10], head.data[11]]);
    let tags = r.read_packet_expected().unwrap();
    assert_eq!(&tags.data[..8], b"OpusTags");
    let mut packets = Vec::new();
    let mut last_granule = 0;
    let mut saw_eos = false;
    while let Some(p) = r.read_packet().unwrap() {
        assert!(!saw_eos, "packet after EOS");
        saw_eos = p.last_in_stream();
        last_granule = p.absgp_page();
        packets.push(p.data);
    }
    assert!(saw_eos, "{}: no EOS", path.display());
    let samples: u64 = packets
        .iter()
        .map(|p| media_core::opus::packet_samples_48k(p).unwrap() as u64)
        .sum();
    // RFC 7845: the granule counts every decoded sample, pre-skip included; only the last
    // page may end earlier (end trimming, at most one packet).
    assert!(
        last_granule <= samples && samples - last_granule < 5760,
        "final granule {last_granule} for {samples} samples"
    );
    (channels, pre_skip, packets, last_granule)
}

/// Decodes with libopus; every packet must decode. Returns mono PCM without pre-skip.
fn decode(channels: u8, pre_skip: u16, packets: &[Vec<u8>]) -> Vec<f32> {
    let ch = if channels == 2 {
        Channels::Stereo
    } else {
        Channels::Mono
    };
    let mut dec = Decoder::new(SampleRate::Hz48000, ch).unwrap();
    let mut pcm = Vec::new();
    let mut buf = vec![0i16; 5760 * channels as usize];
    for p in packets {
        let n = dec
            .decode(Some(p.as_slice()), &mut buf[..], false)
            .expect("libopus decodes every packet");
        for i in 0..n {
            pcm.push(buf[i * channels as usize] as f32 / 32768.0);
        }
    }
    pcm.drain(..(pre_skip as usize).min(pcm.len()));
    pcm
}

fn read_wav_mono48(path: &Path) -> Vec<f32> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Find the "data" chunk.
    let mut i = 12;
    while i + 8 <= data.len() {
        let id = &data[i..i + 4];
        let len = u32::from_le_bytes(data[i + 4..i + 8].try_into().unwrap()) as usize;
        if id == b"data" {
            return data[i + 8..(i + 8 + len).min(data.len())]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / 32768.0)
                .collect();
        }
        i += 8 + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display());
}

/// 10 ms energy envelope in dB.
fn envelope(pcm: &[f32]) -> Vec<f32> {
    pcm.chunks(480)
        .map(|c| 10.0 * ((c.iter().map(|x| x * x).sum::<f32>() / c.len() as f32) + 1e-9).log10())
        .collect()
}

/// The lag (in 10 ms steps, within +-max) at which `a` best matches `b`, by correlation of
/// their mean-removed envelopes.
fn best_lag(a: &[f32], b: &[f32], max: i64) -> i64 {
    let n = a.len().min(b.len());
    let ma = a[..n].iter().sum::<f32>() / n as f32;
    let mb = b[..n].iter().sum::<f32>() / n as f32;
    let mut best = (f32::MIN, 0);
    for lag in -max..=max {
        let mut s = 0.0;
        for i in 0..n as i64 {
            let j = i + lag;
            if j >= 0 && (j as usize) < b.len() {
                s += (a[i as usize] - ma) * (b[j as usize] - mb);
            }
        }
        if s > best.0 {
            best = (s, lag);
        }
    }
    best.1
}

fn tool_clean(tool: &str, file: &Path) {
    let out = match Command::new(tool).arg(file).output() {
        Ok(o) => o,
        Err(_) => panic!("{tool} not installed (scripts/setup.sh installs it)"),
    };
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{tool} {}: {text}", file.display());
    for line in text.lines() {
        let l = line.to_ascii_lowercase();
        assert!(
            !l.contains("warning") && !l.contains("error"),
            "{tool} {}: {line}",
            file.display()
        );
    }
}

fn check_fixture(dir: &Path, truth: &Truth) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let keys: Vec<KeySpec> = truth
        .srtp_key
        .iter()
        .map(|k| k.parse().expect("truth key parses"))
        .collect();
    let summary = replay(&ReplayOptions {
        capture: dir.join(&truth.capture),
        out: out.clone(),
        keys,
        call_id: Some(format!("test-{}", truth.variant)),
        targeted: None,
    })
    .unwrap_or_else(|e| panic!("{}: replay failed: {e:#}", truth.variant));
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    let tracks = meta["tracks"].as_array().unwrap();
    assert_eq!(
        tracks.len(),
        truth.flows.len(),
        "{}: track count",
        truth.variant
    );

    for flow in &truth.flows {
        let ctx = format!("{} {}", truth.variant, flow.participant);
        let t = tracks
            .iter()
            .find(|t| {
                t["flow"]["src"] == flow.src.as_str() && t["flow"]["dst"] == flow.dst.as_str()
            })
            .unwrap_or_else(|| panic!("{ctx}: no track for flow {} -> {}", flow.src, flow.dst));
        let p = &t["packets"];
        let n = |k: &str| p[k].as_u64().unwrap();

        if flow.undecryptable > 0 {
            // Wrong key: counted, reported, and no file at all rather than a corrupt one.
            assert_eq!(
                n("undecryptable"),
                flow.undecryptable,
                "{ctx}: undecryptable"
            );
            assert_eq!(n("written"), 0, "{ctx}");
            assert!(t["file"].is_null(), "{ctx}: no file expected");
            assert!(
                !summary.problems.is_empty(),
                "{ctx}: wrong key must be reported"
            );
            continue;
        }
        assert_eq!(n("lost"), flow.lost, "{ctx}: lost");
        assert_eq!(n("duplicated"), flow.duplicated, "{ctx}: duplicated");
        assert_eq!(n("late"), flow.late, "{ctx}: late");
        assert_eq!(n("malformed"), flow.garbage, "{ctx}: malformed (garbage)");
        assert_eq!(n("undecryptable"), 0, "{ctx}: undecryptable");
        let ssrcs: Vec<u32> = t["ssrcs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(ssrcs, flow.ssrcs, "{ctx}: ssrcs");
        let expected_written = flow.sent - flow.lost - flow.late;
        assert_eq!(n("written"), expected_written, "{ctx}: written");

        let file = out.join(t["file"].as_str().unwrap());
        tool_clean("opusinfo", &file);
        tool_clean("ogginfo", &file);
        let (channels, pre_skip, packets, granule) = read_ogg(&file);
        let samples: u64 = packets
            .iter()
            .map(|p| media_core::opus::packet_samples_48k(p).unwrap() as u64)
            .sum();
        assert_eq!(granule, samples, "{ctx}: tracks are not end-trimmed");

        // Every received packet is in the file, bit-exact, in order, at its time.
        let mut pos = 0u64;
        let mut ours = Vec::new();
        for pkt in &packets {
            let samples = media_core::opus::packet_samples_48k(pkt).unwrap() as u64;
            if !media_core::merge::is_silence(pkt, samples as u32, channels) {
                ours.push((pos as f64 / 48.0, fnv64(pkt)));
            }
            pos += samples;
        }
        if truth.transcoded {
            assert_eq!(t["codec"], "PCMU", "{ctx}: codec");
        } else {
            assert_eq!(t["codec"], "opus", "{ctx}: codec");
            let expected: Vec<&TruthPacket> = flow
                .packets
                .iter()
                .filter(|p| p.on_wire && !p.late)
                .collect();
            assert_eq!(ours.len(), expected.len(), "{ctx}: audio packets in file");
            let mut worst = 0.0f64;
            for (i, ((at, h), e)) in ours.iter().zip(&expected).enumerate() {
                assert_eq!(h, &e.fnv, "{ctx}: packet {i} differs");
                worst = worst.max((at - e.pos_ms).abs());
            }
            assert!(
                worst <= 45.0,
                "{ctx}: a packet plays {worst} ms away from its time"
            );
        }

        // Duration within 20 ms of the stream's real duration.
        let duration = pos as f64 / 48.0;
        assert!(
            (duration - flow.duration_ms).abs() <= 20.0,
            "{ctx}: duration {duration} ms vs {} ms",
            flow.duration_ms
        );

        // Decodes with libopus, and the content sits where the source audio is.
        let pcm = decode(channels, pre_skip, &packets);
        assert!((pcm.len() as f64 / 48.0 - (duration - pre_skip as f64 / 48.0)).abs() < 1.0);
        let wav = read_wav_mono48(&dir.join(&flow.source_wav));
        let offset = (flow.start_ms * 48.0) as usize;
        let src = &wav[offset.min(wav.len())..];
        let lag = best_lag(&envelope(&pcm), &envelope(src), 50);
        assert!(lag.abs() <= 2, "{ctx}: content is {} ms off", lag * 10);
    }
    check_segments_and_mix(truth, tracks, &out);
    let _ = std::fs::remove_dir_all(&out);
}

/// Speech segmentation (segments.json) against the truth's turns, and the mixed download.
fn check_segments_and_mix(truth: &Truth, tracks: &[serde_json::Value], out: &Path) {
    let segments: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.join("segments.json")).unwrap()).unwrap();
    let starts: Vec<f64> = segments
        .iter()
        .map(|s| s["start_ms"].as_f64().unwrap())
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] <= w[1]),
        "{}: segments not ordered",
        truth.variant
    );
    let demanding = ["clean", "loss5", "noise20"].contains(&truth.variant.as_str());
    for flow in truth.flows.iter().filter(|f| f.undecryptable == 0) {
        let t = tracks
            .iter()
            .find(|t| t["flow"]["src"] == flow.src.as_str())
            .unwrap();
        let name = t["participant"].as_str().unwrap();
        let ours: Vec<[f64; 2]> = segments
            .iter()
            .filter(|s| s["participant"] == name)
            .map(|s| {
                [
                    s["start_ms"].as_f64().unwrap(),
                    s["end_ms"].as_f64().unwrap(),
                ]
            })
            .collect();
        let end = flow.start_ms + flow.duration_ms;
        let (agreement, median) = segment_scores(&flow.turns, &ours, flow.start_ms, end);
        eprintln!(
            "segments {} {}: agreement {:.1}%, median boundary error {:.0} ms ({} segments from {})",
            truth.variant,
            flow.participant,
            agreement * 100.0,
            median,
            ours.len(),
            t["segments_from"]
        );
        if demanding {
            assert!(
                agreement >= 0.95,
                "{} {}: agreement {agreement}",
                truth.variant,
                flow.participant
            );
            assert!(
                median < 100.0,
                "{} {}: median boundary error {median}",
                truth.variant,
                flow.participant
            );
        }
    }
    let mixed = out.join("mixed.ogg");
    if truth.flows.iter().all(|f| f.undecryptable > 0) {
        assert!(!mixed.exists(), "{}: no audio, no mix", truth.variant);
        return;
    }
    tool_clean("opusinfo", &mixed);
    tool_clean("ogginfo", &mixed);
    let (_, pre_skip, _, granule) = read_ogg(&mixed);
    let ours = (granule - pre_skip as u64) as f64 / 48.0;
    let first = truth
        .flows
        .iter()
        .map(|f| f.start_ms)
        .fold(f64::MAX, f64::min);
    let last = truth
        .flows
        .iter()
        .map(|f| f.start_ms + f.duration_ms)
        .fold(0.0, f64::max);
    // The recorder's call starts at the first packet's arrival, the truth's at its sending:
    // the two first packets' network delays (20-40 ms each) may differ.
    assert!(
        (ours - (last - first)).abs() <= 25.0,
        "{}: mixed lasts {ours} ms, the call {} ms",
        truth.variant,
        last - first
    );
}

/// Frame-level (10 ms) agreement of speech/non-speech over [from, to), and the median
/// distance from each truth boundary to the nearest detected one.
fn segment_scores(truth: &[[f64; 2]], ours: &[[f64; 2]], from: f64, to: f64) -> (f64, f64) {
    let inside = |set: &[[f64; 2]], t: f64| set.iter().any(|s| s[0] <= t && t < s[1]);
    let (mut agree, mut frames) = (0u64, 0u64);
    let mut t = from + 5.0;
    while t < to {
        frames += 1;
        if inside(truth, t) == inside(ours, t) {
            agree += 1;
        }
        t += 10.0;
    }
    let bounds: Vec<f64> = ours.iter().flat_map(|s| [s[0], s[1]]).collect();
    let mut errors: Vec<f64> = truth
        .iter()
        .flat_map(|s| [s[0], s[1]])
        .map(|b| {
            bounds
                .iter()
                .map(|o| (o - b).abs())
                .fold(f64::MAX, f64::min)
        })
        .collect();
    errors.sort_by(f64::total_cmp);
    let median = errors.get(errors.len() / 2).copied().unwrap_or(0.0);
    (agree as f64 / frames.max(1) as f64, median)
}

#[test]
fn every_fixture_records_faithfully() {
    let all = truths();
    let mut failures = Vec::new();
    for (dir, truth) in &all {
        let r = std::panic::catch_unwind(|| check_fixture(dir, truth));
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}/{}: {msg}", dir.display(), truth.variant));
        } else {
            eprintln!("ok: {}/{}", dir.display(), truth.variant);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}
