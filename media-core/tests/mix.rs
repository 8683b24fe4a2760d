//! The mixed download checked end to end: tracks recorded from the committed `clean.pcap`
//! fixture through `ParticipantTrack` (as `bot-host replay` does), mixed, then read back with
//! the `ogg` crate and libopus and checked by `opusinfo`/`ogginfo`, against the fixture's
//! truth (turns on the call's time line) and its source WAVs.

mod common;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use audiopus::coder::{Decoder, Encoder};
use audiopus::{Application, Bitrate, Channels, SampleRate};
use media_core::mix::{mix, MixConfig, MixInput, MixStats};
use media_core::ogg::{OggOpusWriter, OpusHead};

/// Counts allocations of the current thread only, so the tests running beside the one that
/// measures do not skew its count.
struct Counting;

thread_local! {
    static ALLOCATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(|c| c.get())
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/calls")
        .join(name)
}

/// One recorded participant: its Ogg Opus bytes and start on the call's time line.
struct Recorded {
    ogg: Vec<u8>,
    start_ms: f64,
}

/// Records every UDP flow of a pcap as a participant track, in memory, the way `bot-host
/// replay` does (a flow = a participant, `now` = capture time, start = first packet written
/// relative to the call's first).
fn record(pcap: &str) -> Vec<Recorded> {
    let flows = common::record_capture(&fixture(pcap));
    let first = |f: &common::RecordedFlow| f.stats.first_arrival.expect("audio");
    let call_start = flows.iter().map(first).min().unwrap();
    flows
        .into_iter()
        .map(|f| Recorded {
            start_ms: first(&f).saturating_since(call_start).0 as f64 / 1000.0,
            ogg: f.ogg,
        })
        .collect()
}

/// Audio packets of an Ogg Opus stream, its channel count and pre-skip, and its last granule.
fn packets(ogg: &[u8]) -> (Vec<Vec<u8>>, u8, u64, u64) {
    let mut r = ogg::PacketReader::new(Cursor::new(ogg));
    let head = r.read_packet().unwrap().unwrap().data;
    assert_eq!(&head[..8], b"OpusHead");
    let _tags = r.read_packet().unwrap().unwrap();
    let mut out = Vec::new();
    let mut granule = 0;
    while let Some(p) = r.read_packet().unwrap() {
        granule = p.absgp_page();
        out.push(p.data);
    }
    (
        out,
        head[9],
        u64::from(u16::from_le_bytes([head[10], head[11]])),
        granule,
    )
}

/// Decodes an Ogg Opus stream with libopus at 48 kHz: interleaved samples, pre-skip dropped
/// and end-trimmed to the last granule, as a player does.
fn decode(ogg: &[u8]) -> (Vec<i16>, usize) {
    let (pkts, channels, pre_skip, granule) = packets(ogg);
    let ch = usize::from(channels);
    let mut dec = Decoder::new(
        SampleRate::Hz48000,
        if ch == 2 {
            Channels::Stereo
        } else {
            Channels::Mono
        },
    )
    .unwrap();
    let mut buf = vec![0i16; 5760 * ch];
    let mut pcm = Vec::new();
    for p in &pkts {
        let n = dec.decode(Some(&p[..]), &mut buf[..], false).unwrap();
        pcm.extend_from_slice(&buf[..n * ch]);
    }
    let frames = (granule - pre_skip) as usize;
    let pcm = pcm[pre_skip as usize * ch..].to_vec();
    assert!(pcm.len() >= frames * ch, "granule beyond the decoded audio");
    (pcm[..frames * ch].to_vec(), ch)
}

/// Mono 16-bit samples of a WAV (the fixtures' sources: 48 kHz, on the call's time line).
fn wav(name: &str) -> Vec<i16> {
    let data = std::fs::read(fixture(name)).unwrap();
    let at = data.windows(4).position(|w| w == b"data").unwrap() + 8;
    data[at..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// RMS per 20 ms frame (960 samples of one channel of interleaved `x`).
fn envelope(x: &[i16], channels: usize, channel: usize) -> Vec<f64> {
    x.chunks(960 * channels)
        .map(|c| {
            let s: f64 = c
                .iter()
                .skip(channel)
                .step_by(channels)
                .map(|&v| f64::from(v).powi(2))
                .sum();
            (s / (c.len() / channels).max(1) as f64).sqrt()
        })
        .collect()
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma).powi(2);
        bb += (y - mb).powi(2);
    }
    ab / (aa * bb).sqrt()
}

fn truth() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture("clean.truth.json")).unwrap()).unwrap()
}

/// Turns of flow `i` in ms.
fn turns(t: &serde_json::Value, i: usize) -> Vec<(f64, f64)> {
    t["flows"][i]["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
        .collect()
}

/// Parts of `a` not overlapping any of `b`, shrunk by `margin` ms at both ends.
fn exclusive(a: &[(f64, f64)], b: &[(f64, f64)], margin: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for &(s, e) in a {
        let mut parts = vec![(s, e)];
        for &(bs, be) in b {
            parts = parts
                .into_iter()
                .flat_map(|(s, e)| {
                    if be <= s || bs >= e {
                        vec![(s, e)]
                    } else {
                        let mut v = Vec::new();
                        if bs > s {
                            v.push((s, bs));
                        }
                        if be < e {
                            v.push((be, e));
                        }
                        v
                    }
                })
                .collect();
        }
        out.extend(
            parts
                .into_iter()
                .map(|(s, e)| (s + margin, e - margin))
                .filter(|(s, e)| e - s >= 200.0),
        );
    }
    out
}

/// Frame indices (20 ms) of a span in ms.
fn frames(span: (f64, f64)) -> std::ops::Range<usize> {
    (span.0 / 20.0).ceil() as usize..(span.1 / 20.0).floor() as usize
}

/// Runs `opusinfo` and `ogginfo` on the stream; fails on any warning or error line.
fn check_with_tools(ogg: &[u8], name: &str) {
    let path =
        std::env::temp_dir().join(format!("media-core-mix-{}-{name}.ogg", std::process::id()));
    std::fs::write(&path, ogg).unwrap();
    for tool in ["opusinfo", "ogginfo"] {
        match Command::new(tool).arg(&path).output() {
            Ok(o) => {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                let bad: Vec<&str> = text
                    .lines()
                    .filter(|l| {
                        let l = l.to_lowercase();
                        l.contains("warning") || l.contains("error")
                    })
                    .collect();
                assert!(o.status.success() && bad.is_empty(), "{tool}:\n{text}");
            }
            Err(_) => eprintln!("note: {tool} not installed (opus-tools / vorbis-tools); skipped"),
        }
    }
    let _ = std::fs::remove_file(&path);
}

fn run_mix(tracks: &[Recorded], targeted: &[bool], config: &MixConfig) -> (Vec<u8>, MixStats) {
    let inputs = tracks
        .iter()
        .zip(targeted)
        .map(|(t, &targeted)| MixInput {
            reader: Cursor::new(&t.ogg[..]),
            start_ms: t.start_ms,
            targeted,
        })
        .collect();
    let mut out = Vec::new();
    let stats = mix(inputs, "clean", config, &mut out).unwrap();
    (out, stats)
}

#[test]
fn recorded_tracks_are_placed_on_the_call_time_line() {
    let tracks = record("clean.pcap");
    assert_eq!(tracks.len(), 2);
    let t = truth();
    for (i, tr) in tracks.iter().enumerate() {
        let want = t["flows"][i]["start_ms"].as_f64().unwrap();
        // Start = first arrival, which carries the capture's network jitter: within a frame.
        assert!(
            (tr.start_ms - want).abs() <= 20.0,
            "{} vs {want}",
            tr.start_ms
        );
    }
}

#[test]
fn mono_mix_of_the_clean_call() {
    let tracks = record("clean.pcap");
    for rate in [48_000, 16_000] {
        let config = MixConfig {
            sample_rate: rate,
            ..MixConfig::default()
        };
        let (ogg, stats) = run_mix(&tracks, &[true, false], &config);
        check_with_tools(&ogg, &format!("mono{rate}"));
        let t = truth();
        let call_ms = t["call_duration_ms"].as_f64().unwrap();
        assert!(!stats.remuxed && stats.tracks == 2);
        assert!((stats.duration_ms - call_ms).abs() <= 20.0, "{stats:?}");
        assert_eq!(stats.clipped_samples, 0);

        let (pcm, ch) = decode(&ogg);
        assert_eq!(ch, 1);
        let decoded_ms = pcm.len() as f64 / 48.0;
        assert!((decoded_ms - call_ms).abs() <= 20.0, "{decoded_ms} ms");

        let mix_env = envelope(&pcm, 1, 0);
        let srcs = [
            envelope(&wav("speech.A.wav"), 1, 0),
            envelope(&wav("speech.B.wav"), 1, 0),
        ];
        let (a, b) = (turns(&t, 0), turns(&t, 1));
        for (who, own, other) in [(0, &a, &b), (1, &b, &a)] {
            for span in exclusive(own, other, 40.0) {
                let r = frames(span);
                let c = correlation(&mix_env[r.clone()], &srcs[who][r.clone()]);
                eprintln!("rate {rate} speaker {who} turn {span:?}: envelope correlation {c:.3}");
                assert!(c > 0.8, "speaker {who} turn {span:?}: correlation {c}");
            }
        }
        // Silence of both (with 150 ms of margin for the codec's and speech's tails): quiet.
        let mut all: Vec<(f64, f64)> = a.iter().chain(&b).copied().collect();
        all.sort_by(|x, y| x.0.total_cmp(&y.0));
        let speech_rms = {
            let e: Vec<f64> = all
                .iter()
                .flat_map(|&s| mix_env[frames(s)].to_vec())
                .collect();
            (e.iter().map(|x| x * x).sum::<f64>() / e.len() as f64).sqrt()
        };
        let mut gaps = vec![(0.0, all[0].0)];
        let mut end = all[0].1;
        for &(s, e) in &all[1..] {
            if s > end {
                gaps.push((end, s));
            }
            end = end.max(e);
        }
        gaps.push((end, call_ms));
        for (s, e) in gaps {
            let span = (s + 150.0, e - 150.0);
            if span.1 - span.0 < 100.0 {
                continue;
            }
            let loudest = mix_env[frames(span)].iter().copied().fold(0.0, f64::max);
            eprintln!(
                "rate {rate} silence {span:?}: loudest {loudest:.1} vs speech {speech_rms:.1}"
            );
            assert!(
                loudest < speech_rms * 0.05,
                "silence {span:?}: {loudest} vs {speech_rms}"
            );
        }
    }
}

#[test]
fn stereo_split_puts_the_targeted_user_left() {
    let tracks = record("clean.pcap");
    let (ogg, stats) = run_mix(&tracks, &[true, false], &MixConfig::stereo_split());
    check_with_tools(&ogg, "stereo");
    assert_eq!(stats.clipped_samples, 0);
    let (pcm, ch) = decode(&ogg);
    assert_eq!(ch, 2);
    let (left, right) = (envelope(&pcm, 2, 0), envelope(&pcm, 2, 1));
    let t = truth();
    let (a, b) = (turns(&t, 0), turns(&t, 1));
    let energy = |e: &[f64], spans: &[(f64, f64)]| -> f64 {
        spans
            .iter()
            .flat_map(|&s| e[frames(s)].iter().map(|x| x * x))
            .sum()
    };
    let a_only = exclusive(&a, &b, 40.0);
    let b_only = exclusive(&b, &a, 40.0);
    let db = |x: f64, y: f64| 10.0 * (x / y.max(1e-9)).log10();
    let a_lr = db(energy(&left, &a_only), energy(&right, &a_only));
    let b_rl = db(energy(&right, &b_only), energy(&left, &b_only));
    eprintln!("A's turns: left {a_lr:.1} dB over right; B's turns: right {b_rl:.1} dB over left");
    assert!(a_lr > 20.0 && b_rl > 20.0, "{a_lr} {b_rl}");
}

/// Encodes mono 48 kHz samples as 20 ms Opus packets into an Ogg Opus stream.
fn encode_track(pcm: &[i16], serial: u32) -> Vec<u8> {
    let mut enc = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip).unwrap();
    enc.set_bitrate(Bitrate::BitsPerSecond(64_000)).unwrap();
    let pre_skip = enc.lookahead().unwrap() as u16;
    let mut w = OggOpusWriter::new(
        serial,
        OpusHead {
            channels: 1,
            pre_skip,
            input_sample_rate: 48_000,
            output_gain: 0,
        },
        &[],
    );
    let mut packet = vec![0u8; 4000];
    let mut out = Vec::new();
    let mut frame = vec![0i16; 960];
    for chunk in pcm.chunks(960) {
        frame.fill(0);
        frame[..chunk.len()].copy_from_slice(chunk);
        let n = enc.encode(&frame, &mut packet).unwrap();
        w.write_packet(&packet[..n], 960);
        out.append(w.output());
    }
    w.finish();
    out.append(w.output());
    out
}

#[test]
fn limiter_keeps_two_full_scale_sines_from_clipping() {
    let sine = |f: f64| -> Vec<i16> {
        (0..48_000 * 3)
            .map(|i| {
                (32767.0 * (2.0 * std::f64::consts::PI * f * i as f64 / 48_000.0).sin()) as i16
            })
            .collect()
    };
    let tracks = [
        Recorded {
            ogg: encode_track(&sine(440.0), 1),
            start_ms: 0.0,
        },
        Recorded {
            ogg: encode_track(&sine(660.0), 2),
            start_ms: 500.0,
        },
    ];
    for config in [MixConfig::default(), MixConfig::stereo_split()] {
        // Nobody targeted in stereo: both in both channels, so both channels get the sum.
        let (ogg, stats) = run_mix(&tracks, &[false, false], &config);
        check_with_tools(&ogg, "sines");
        assert_eq!(stats.clipped_samples, 0);
        assert!(stats.peak_gain_reduction_db > 1.0, "{stats:?}");
        assert!((stats.duration_ms - 3500.0).abs() <= 20.0, "{stats:?}");
        let (pcm, _) = decode(&ogg);
        let max = pcm.iter().map(|&x| i32::from(x).abs()).max().unwrap();
        eprintln!("{config:?}: decoded peak {max}, {stats:?}");
        assert!(max < 32767, "decoded peak {max}");
    }
}

#[test]
fn single_track_is_remuxed_bit_exact() {
    let tracks = record("clean.pcap");
    // B joined 1 s after A: its packets follow a silence prefix of that length.
    let b = &tracks[1];
    let (ogg, stats) = run_mix(std::slice::from_ref(b), &[false], &MixConfig::default());
    check_with_tools(&ogg, "remux");
    assert!(stats.remuxed);
    let (input, _, in_skip, in_granule) = packets(&b.ogg);
    let (output, _, out_skip, out_granule) = packets(&ogg);
    assert_eq!(in_skip, out_skip);
    let prefix = output.len() - input.len();
    assert!(prefix > 0);
    assert_eq!(&output[prefix..], &input[..], "packets not bit-exact");
    let shift_ms = (out_granule - in_granule) as f64 / 48.0;
    assert!(
        (shift_ms - b.start_ms).abs() <= 2.5,
        "{shift_ms} vs {}",
        b.start_ms
    );
    assert!((stats.duration_ms - 12_000.0).abs() <= 20.0, "{stats:?}");
    // A starts the call: nothing is prefixed, the stream is the same packets.
    let (ogg, _) = run_mix(
        std::slice::from_ref(&tracks[0]),
        &[true],
        &MixConfig::default(),
    );
    assert_eq!(packets(&ogg).0, packets(&tracks[0].ogg).0);
}

#[test]
fn allocations_do_not_grow_with_the_call() {
    // Speech-like input: the fixture's speakers, repeated to make calls of 12 s and 60 s.
    let (a, b) = (wav("speech.A.wav"), wav("speech.B.wav"));
    let call = |reps: usize| -> [Recorded; 2] {
        [
            Recorded {
                ogg: encode_track(&a.repeat(reps), 1),
                start_ms: 0.0,
            },
            Recorded {
                ogg: encode_track(&b.repeat(reps), 2),
                start_ms: 1000.0,
            },
        ]
    };
    let measure = |tracks: &[Recorded], config: &MixConfig| -> u64 {
        let inputs: Vec<_> = tracks
            .iter()
            .map(|t| MixInput {
                reader: Cursor::new(&t.ogg[..]),
                start_ms: t.start_ms,
                targeted: false,
            })
            .collect();
        let before = allocations();
        mix(inputs, "alloc", config, std::io::sink()).unwrap();
        allocations() - before
    };
    let (short, long) = (call(1), call(5));
    for config in [
        MixConfig::default(),
        MixConfig {
            sample_rate: 16_000,
            ..MixConfig::stereo_split()
        },
    ] {
        let (s, l) = (measure(&short, &config), measure(&long, &config));
        eprintln!("{config:?}: {s} allocations for 12 s, {l} for 60 s");
        assert_eq!(s, l, "allocations grew with the call's length");
        // The remux path too.
        let (s, l) = (measure(&short[..1], &config), measure(&long[..1], &config));
        assert_eq!(s, l, "remux allocations grew with the call's length");
    }
}

/// Byte offsets of the pages of an Ogg stream.
fn page_offsets(ogg: &[u8]) -> Vec<usize> {
    let mut at = 0;
    let mut out = Vec::new();
    while at + 27 <= ogg.len() {
        assert_eq!(&ogg[at..at + 4], b"OggS");
        out.push(at);
        let segs = usize::from(ogg[at + 26]);
        let body: usize = ogg[at + 27..at + 27 + segs]
            .iter()
            .map(|&l| usize::from(l))
            .sum();
        at += 27 + segs + body;
    }
    out
}

#[test]
fn damaged_tracks_still_mix() {
    let tracks = record("clean.pcap");
    let pages = page_offsets(&tracks[0].ogg);
    assert!(pages.len() > 8);

    // A file cut mid-page (a killed recorder): plays up to its last complete page.
    let cut = Recorded {
        ogg: tracks[0].ogg[..pages[6] + 100].to_vec(),
        start_ms: 0.0,
    };
    // A flipped byte in the body of an audio page: that page (a second) is skipped.
    let mut flipped = tracks[1].ogg.clone();
    let at = page_offsets(&flipped)[4] + 200;
    flipped[at] ^= 0x55;
    let flipped = Recorded {
        ogg: flipped,
        start_ms: tracks[1].start_ms,
    };
    let (ogg, stats) = run_mix(&[cut, flipped], &[true, false], &MixConfig::default());
    check_with_tools(&ogg, "damaged");
    assert_eq!(stats.bad_pages, 1, "{stats:?}");
    // B is intact to its end, so the call still lasts until then.
    assert!((stats.duration_ms - 11_993.5).abs() <= 20.0, "{stats:?}");
    let (pcm, _) = decode(&ogg);
    assert!((pcm.len() as f64 / 48.0 - stats.duration_ms).abs() < 1.0);
}

#[test]
fn late_joiner_and_early_leaver_are_placed() {
    // Two tracks cut from the same tone, placed 2 s and 5 s into the call: silence before
    // each start, and the mix's energy starts where each does.
    let tone: Vec<i16> = (0..48_000)
        .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * 300.0 * i as f64 / 48_000.0).sin()) as i16)
        .collect();
    let tracks = [
        Recorded {
            ogg: encode_track(&tone, 1),
            start_ms: 2000.0,
        },
        Recorded {
            ogg: encode_track(&tone, 2),
            start_ms: 5000.0,
        },
    ];
    let (ogg, stats) = run_mix(&tracks, &[false, false], &MixConfig::default());
    check_with_tools(&ogg, "late");
    // Each track lasts 1 s minus its pre-skip; the last one ends at 5 s + that.
    assert!((stats.duration_ms - 5993.5).abs() <= 20.0, "{stats:?}");
    let (pcm, _) = decode(&ogg);
    let env = envelope(&pcm, 1, 0);
    for (f, &e) in env.iter().enumerate() {
        let ms = f as f64 * 20.0;
        let inside = (2020.0..2960.0).contains(&ms) || (5020.0..5960.0).contains(&ms);
        let outside = ms < 1960.0 || (3040.0..4960.0).contains(&ms);
        if inside {
            assert!(e > 1000.0, "{ms} ms should have the tone: {e}");
        }
        if outside {
            assert!(e < 50.0, "{ms} ms should be silent: {e}");
        }
    }
}
