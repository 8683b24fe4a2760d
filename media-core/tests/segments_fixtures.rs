//! Segmentation against the fixtures' known turns (docs/fixtures.md, docs/segments.md).
//!
//! Each capture is read with `pcap-parser` + `etherparse` (not bot-host: media-core cannot
//! depend on it), each UDP flow is recorded by a `ParticipantTrack` into an in-memory Ogg
//! Opus file, and the participant is segmented twice: (a) `segments_from_ogg` (libopus
//! decode + PCM VAD) and (b) a `Segmenter` fed the packets' RFC 6464 levels. Both are compared
//! with the truth `turns` on the call's time line: frame-level agreement over 10 ms frames
//! and the median distance of each truth boundary to the nearest detected one.
//!
//! Run with `--nocapture` to see the figures table.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use etherparse::{SlicedPacket, TransportSlice};
use media_core::opus::packet_samples_48k;
use media_core::recording::{ParticipantTrack, TrackConfig};
use media_core::rtp::{self, RtpPacket};
use media_core::segments::{segments_from_ogg, Segment, Segmenter, SegmenterConfig};
use media_core::time::Micros;
use serde_json::Value;

const MIN_AGREEMENT: f64 = 0.95;
const MAX_MEDIAN_BOUNDARY_MS: f64 = 100.0;
/// The id the fixtures' RFC 8285 one-byte extension uses for RFC 6464 levels.
const AUDIO_LEVEL_ID: u8 = 1;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One flow's datagrams in capture order, with capture time.
struct Flow {
    datagrams: Vec<(Micros, Vec<u8>)>,
}

/// UDP flows of an Ethernet pcap, keyed by source port (the fixtures' flows differ there).
fn read_flows(capture: &[u8]) -> BTreeMap<u16, Flow> {
    let cap = pcap_parser::PcapCapture::from_file(capture).expect("pcap");
    let mut flows: BTreeMap<u16, Flow> = BTreeMap::new();
    for b in &cap.blocks {
        let now = Micros(u64::from(b.ts_sec) * 1_000_000 + u64::from(b.ts_usec));
        let Ok(p) = SlicedPacket::from_ethernet(b.data) else {
            continue;
        };
        if let Some(TransportSlice::Udp(udp)) = p.transport {
            flows
                .entry(udp.source_port())
                .or_insert(Flow {
                    datagrams: Vec::new(),
                })
                .datagrams
                .push((now, udp.payload().to_vec()));
        }
    }
    flows
}

/// The flow recorded into an Ogg Opus file in memory, the way bot-host replay drives a track.
fn record(flow: &Flow, participant: &str) -> Vec<u8> {
    let mut track = ParticipantTrack::new(TrackConfig::new("segments-test", participant));
    let mut file = Vec::new();
    for (now, d) in &flow.datagrams {
        if track.poll_timeout().is_some_and(|t| t <= *now) {
            track.handle_timeout(*now);
        }
        let mut d = d.clone();
        track.handle_datagram(*now, &mut d);
        file.append(track.output());
    }
    track.finish();
    file.append(track.output());
    file
}

/// Level-based segmentation: positions from the RTP timestamps relative to the first packet
/// received (the recorded track's origin), lost packets pushed as gaps.
fn level_segments(flow: &Flow, config: SegmenterConfig) -> Vec<Segment> {
    let mut seg = Segmenter::new(config);
    let mut ts0 = None;
    let mut next = 0u64;
    for (_, d) in &flow.datagrams {
        if rtp::is_rtcp(d) {
            continue;
        }
        let Ok(p) = RtpPacket::parse(d) else {
            continue;
        };
        let Some(level) = p.audio_level(AUDIO_LEVEL_ID) else {
            continue;
        };
        let ts0 = *ts0.get_or_insert(p.timestamp);
        let start = u64::from(p.timestamp.wrapping_sub(ts0));
        let samples = packet_samples_48k(p.payload()).unwrap_or(960);
        if start > next {
            seg.push_gap(next, (start - next) as u32);
        }
        seg.push_level(start, samples, level.level, level.voice);
        next = next.max(start + u64::from(samples));
    }
    seg.finish()
}

/// Speech or not, per 10 ms frame of the call, judged at the frame's middle.
fn frames(intervals: &[(f64, f64)], call_ms: f64) -> Vec<bool> {
    (0..(call_ms / 10.0) as usize)
        .map(|i| {
            let t = i as f64 * 10.0 + 5.0;
            intervals.iter().any(|&(s, e)| s <= t && t < e)
        })
        .collect()
}

#[derive(Debug)]
struct Score {
    agreement: f64,
    /// Each truth boundary's distance to the nearest detected boundary, ms.
    errors: Vec<f64>,
}

fn score(truth: &[(f64, f64)], found: &[(f64, f64)], call_ms: f64) -> Score {
    let (t, f) = (frames(truth, call_ms), frames(found, call_ms));
    let same = t.iter().zip(&f).filter(|(a, b)| a == b).count();
    let detected: Vec<f64> = found.iter().flat_map(|&(s, e)| [s, e]).collect();
    let errors = truth
        .iter()
        .flat_map(|&(s, e)| [s, e])
        .map(|b| {
            detected
                .iter()
                .map(|d| (d - b).abs())
                .fold(f64::INFINITY, f64::min)
        })
        .collect();
    Score {
        agreement: same as f64 / t.len() as f64,
        errors,
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::INFINITY;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Segments one fixture both ways; prints a row per participant and method and returns
/// failures (as text, so every fixture is reported before the test fails).
fn check_fixture(dir: &Path, variant: &str) -> Vec<String> {
    let truth: Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("{variant}.truth.json"))).expect("truth"),
    )
    .expect("truth json");
    let capture = std::fs::read(dir.join(truth["capture"].as_str().unwrap())).expect("capture");
    let call_ms = truth["call_duration_ms"].as_f64().unwrap();
    let flows = read_flows(&capture);
    let config = SegmenterConfig::default();
    let mut failures = Vec::new();
    let mut pooled: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    // Per method, each participant's truth turns and detected segments (call time line).
    type Turns = Vec<(f64, f64)>;
    let mut per_method: BTreeMap<&str, Vec<(Turns, Turns)>> = BTreeMap::new();
    for f in truth["flows"].as_array().unwrap() {
        let who = f["participant"].as_str().unwrap();
        let port: u16 = f["src"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let flow = &flows[&port];
        // The recorded track starts with the first packet that arrived, which is the first
        // one sent unless it was lost.
        let first = f["packets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["on_wire"].as_bool().unwrap())
            .unwrap();
        let origin = f["start_ms"].as_f64().unwrap() + first["pos_ms"].as_f64().unwrap();
        let turns: Vec<(f64, f64)> = f["turns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t[0].as_f64().unwrap(), t[1].as_f64().unwrap()))
            .collect();
        let ogg = record(flow, who);
        let by_pcm = segments_from_ogg(Cursor::new(ogg), config).expect("segments_from_ogg");
        let by_level = level_segments(flow, config);
        for (method, segs) in [("pcm", by_pcm), ("level", by_level)] {
            let found: Vec<(f64, f64)> = segs
                .iter()
                .map(|s| (s.start_ms + origin, s.end_ms + origin))
                .collect();
            // Segments are ordered and do not overlap within one participant.
            assert!(
                found.windows(2).all(|w| w[0].1 <= w[1].0),
                "{variant} {who} {method}: {found:?}"
            );
            let s = score(&turns, &found, call_ms);
            let med = median(&s.errors);
            if std::env::var_os("SEGMENTS_VERBOSE").is_some() {
                println!(
                    "  truth {turns:?}\n  found {found:?}\n  errors {:?}",
                    s.errors
                );
            }
            println!(
                "{variant:<8} {who} {method:<5} agreement {:6.2}%  median boundary error {:5.1} ms  \
                 max {:6.1} ms  segments {} (truth {})",
                s.agreement * 100.0,
                med,
                s.errors.iter().copied().fold(0.0, f64::max),
                found.len(),
                turns.len()
            );
            if s.agreement < MIN_AGREEMENT {
                failures.push(format!(
                    "{variant} {who} {method}: agreement {:.2}% < {:.0}%\n  truth {turns:?}\n  found {found:?}",
                    s.agreement * 100.0,
                    MIN_AGREEMENT * 100.0
                ));
            }
            per_method
                .entry(method)
                .or_default()
                .push((turns.clone(), found.clone()));
            let e = pooled.entry(method).or_default();
            e.0.push(s.agreement);
            e.1.extend(s.errors);
        }
    }
    // Where the truth has both participants talking, both must have a segment there:
    // overlapping speech yields overlapping segments.
    for (method, tracks) in &per_method {
        let [(ta, fa), (tb, fb)] = &tracks[..] else {
            continue;
        };
        let both = |a: &[(f64, f64)], b: &[(f64, f64)]| -> Vec<bool> {
            frames(a, call_ms)
                .iter()
                .zip(frames(b, call_ms))
                .map(|(x, y)| *x && y)
                .collect()
        };
        let (truth_both, found_both) = (both(ta, tb), both(fa, fb));
        let overlap = truth_both.iter().filter(|&&x| x).count();
        let covered = truth_both
            .iter()
            .zip(&found_both)
            .filter(|(t, f)| **t && **f)
            .count();
        println!(
            "{variant:<8} * {method:<5} overlap {} ms, detected as overlap {} ms",
            overlap * 10,
            covered * 10
        );
        if overlap > 0 && (covered as f64) < overlap as f64 * 0.8 {
            failures.push(format!(
                "{variant} {method}: only {covered} of {overlap} overlapping frames found"
            ));
        }
    }
    for (method, (agreements, errors)) in pooled {
        let med = median(&errors);
        println!(
            "{variant:<8} * {method:<5} agreement {:6.2}%  median boundary error {med:5.1} ms (both participants)",
            agreements.iter().sum::<f64>() / agreements.len() as f64 * 100.0,
        );
        if med >= MAX_MEDIAN_BOUNDARY_MS {
            failures.push(format!(
                "{variant} {method}: median boundary error {med:.1} ms >= {MAX_MEDIAN_BOUNDARY_MS} ms"
            ));
        }
    }
    failures
}

fn check_all(dir: &Path, variants: &[&str]) {
    let mut failures = Vec::new();
    for v in variants {
        if !dir.join(format!("{v}.truth.json")).exists() {
            println!(
                "note: {v} not in {} (regenerate: fixtures/generate.sh); skipped",
                dir.display()
            );
            continue;
        }
        failures.extend(check_fixture(dir, v));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn committed_fixtures_segment_like_the_truth() {
    let dir = root().join("fixtures/calls");
    for v in ["clean", "loss5"] {
        assert!(
            dir.join(format!("{v}.truth.json")).exists(),
            "{v} is committed"
        );
    }
    check_all(&dir, &["clean", "loss5"]);
}

#[test]
fn generated_fixtures_segment_like_the_truth() {
    let dir = std::env::var_os("SEGMENTS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("fixtures/generated"));
    if !dir.exists() {
        println!(
            "note: {} absent (fixtures/generate.sh writes it); generated fixtures skipped",
            dir.display()
        );
        return;
    }
    check_all(&dir, &["clean", "loss5", "noise20"]);
}

/// `segments_from_ogg` on files that neither our recorder nor our Ogg writer made: `opusenc`
/// (opus-tools) encodes the fixtures' source WAVs, which start at call start, so segments
/// compare with the truth turns directly. Skipped with a note when `opusenc` is missing.
#[test]
fn opusenc_files_segment_like_the_truth() {
    let mut sets = vec![(root().join("fixtures/calls"), "clean")];
    let generated = root().join("fixtures/generated");
    if generated.join("noise20.truth.json").exists() {
        sets.push((generated.clone(), "clean"));
        sets.push((generated, "noise20"));
    } else {
        println!("note: generated noise20 absent; opusenc check on the committed set only");
    }
    let tmp = std::env::temp_dir().join(format!("segments-opusenc-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut failures = Vec::new();
    for (dir, variant) in sets {
        let truth: Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("{variant}.truth.json"))).unwrap(),
        )
        .unwrap();
        let call_ms = truth["call_duration_ms"].as_f64().unwrap();
        for f in truth["flows"].as_array().unwrap() {
            let who = f["participant"].as_str().unwrap();
            let wav = dir.join(f["source_wav"].as_str().unwrap());
            let out = tmp.join(format!("{variant}.{who}.opus"));
            let status = match std::process::Command::new("opusenc")
                .args(["--quiet", "--bitrate", "32"])
                .arg(&wav)
                .arg(&out)
                .status()
            {
                Ok(s) => s,
                Err(_) => {
                    println!("note: opusenc not installed; skipped");
                    return;
                }
            };
            assert!(status.success(), "opusenc {}", wav.display());
            let file = std::fs::File::open(&out).unwrap();
            let segs = segments_from_ogg(std::io::BufReader::new(file), SegmenterConfig::default())
                .unwrap();
            let found: Vec<(f64, f64)> = segs.iter().map(|s| (s.start_ms, s.end_ms)).collect();
            let turns: Vec<(f64, f64)> = f["turns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| (t[0].as_f64().unwrap(), t[1].as_f64().unwrap()))
                .collect();
            let s = score(&turns, &found, call_ms);
            let med = median(&s.errors);
            println!(
                "opusenc {variant:<8} {who} agreement {:6.2}%  median boundary error {med:5.1} ms",
                s.agreement * 100.0
            );
            if s.agreement < MIN_AGREEMENT || med >= MAX_MEDIAN_BOUNDARY_MS {
                failures.push(format!("opusenc {variant} {who}: {turns:?} vs {found:?}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
