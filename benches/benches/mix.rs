//! Mixed download cost: decode + align + mix + limit + encode + Ogg of a two-speaker call, as
//! times-realtime on one core, against libopus encoding the same mixed PCM alone.
//!
//! `cargo bench -p benches --bench mix [-- SECONDS]` (default 120: two minutes of call,
//! which keeps the run under a minute; the rates are per second of audio, so they
//! extrapolate linearly to an hour). Prints figures; not a criterion bench, because one
//! iteration is a whole call of minutes, and criterion's sampling would take far longer
//! than what it measures.
//!
//! References, same PCM, same rate, bitrate (32 kbit/s), complexity (5) and application:
//! - `libopus encode alone`: the mixed PCM pushed through `media_core::transcode` as L16
//!   (libopus VoIP encode with a copy into a 20 ms frame buffer, in-process). The mix does
//!   more codec work than this: it must also decode every track.
//! - `libopus decode 2 + encode`: the same codec work as the mix, done by libopus alone: both
//!   tracks' Opus packets decoded (straight from memory, no Ogg), summed, encoded. The ratio to
//!   it is the cost of our pipeline itself (Ogg reading and writing, alignment, limiter);
//! - `opusenc`: the mixed PCM written to a WAV and encoded by `opusenc --comp 5
//!   --framesize 20 --bitrate 32` (process start and WAV reading included; skipped if
//!   opus-tools is not installed).

use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use media_core::mix::{mix, MixConfig, MixInput};
use media_core::ogg::{OggOpusWriter, OpusHead};
use media_core::transcode::{AudioFormat, Transcoder};

/// Runs of each measurement; the fastest is reported (least disturbed by other load). Our
/// pipeline and the reference alternate, so a change in the machine's load hits both.
const RUNS: usize = 5;

fn wav(name: &str) -> Vec<i16> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/calls")
        .join(name);
    let data = std::fs::read(path).unwrap();
    let at = data.windows(4).position(|w| w == b"data").unwrap() + 8;
    data[at..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Mono PCM at `rate` as big-endian L16 (what `Transcoder` takes).
fn l16(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().flat_map(|s| s.to_be_bytes()).collect()
}

/// A participant track: 48 kHz mono speech encoded by libopus (32 kbit/s, VoIP, 20 ms) into
/// Ogg Opus, like a recorded sender's.
fn track(pcm: &[i16], serial: u32) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut t = Transcoder::new(AudioFormat::L16 {
        rate: 48_000,
        channels: 1,
    })
    .unwrap();
    let head = OpusHead {
        channels: 1,
        pre_skip: t.pre_skip(),
        input_sample_rate: 48_000,
        output_gain: 0,
    };
    let mut w = OggOpusWriter::new(serial, head, &[]);
    let mut out = Vec::new();
    let mut packets = Vec::new();
    for chunk in l16(pcm).chunks(1920) {
        t.push(chunk, |p, n| {
            packets.push(p.to_vec());
            w.write_packet(p, n)
        });
        out.append(w.output());
    }
    t.flush(|p, n| {
        packets.push(p.to_vec());
        w.write_packet(p, n)
    });
    w.finish();
    out.append(w.output());
    (out, packets)
}

/// libopus alone doing the mix's codec work: decode both packet streams at `rate`, sum with
/// the mixer's headroom, encode (VoIP, same bitrate and complexity).
fn decode_mix_encode(packets: [&[Vec<u8>]; 2], rate: u32, complexity: u8) -> usize {
    use audiopus::coder::{Decoder, Encoder};
    use audiopus::{Application, Bitrate, Channels, SampleRate};
    let sr = match rate {
        16_000 => SampleRate::Hz16000,
        48_000 => SampleRate::Hz48000,
        _ => unreachable!("the bench runs 16 and 48 kHz"),
    };
    let mut decoders = [
        Decoder::new(sr, Channels::Mono).unwrap(),
        Decoder::new(sr, Channels::Mono).unwrap(),
    ];
    let mut encoder = Encoder::new(sr, Channels::Mono, Application::Voip).unwrap();
    encoder.set_bitrate(Bitrate::BitsPerSecond(32_000)).unwrap();
    encoder.set_complexity(complexity).unwrap();
    let frame = (rate / 50) as usize;
    let (mut a, mut b, mut out) = (vec![0f32; frame], vec![0f32; frame], [0u8; 4000]);
    let mut total = 0;
    for (pa, pb) in packets[0].iter().zip(packets[1]) {
        decoders[0]
            .decode_float(Some(&pa[..]), &mut a[..], false)
            .unwrap();
        decoders[1]
            .decode_float(Some(&pb[..]), &mut b[..], false)
            .unwrap();
        for (x, y) in a.iter_mut().zip(&b) {
            *x = (*x + y) * std::f32::consts::FRAC_1_SQRT_2;
        }
        total += encoder.encode_float(&a, &mut out).unwrap();
    }
    total
}

fn time(f: &mut impl FnMut()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn best(mut f: impl FnMut()) -> Duration {
    (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

fn main() {
    let seconds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(120);
    // The fixture's two speakers (12 s each, already on the call's time line, taking
    // turns with some overlap), repeated to the call's length.
    let (a, b) = (wav("speech.A.wav"), wav("speech.B.wav"));
    let reps = (seconds * 48_000).div_ceil(a.len());
    let (a, b) = (a.repeat(reps), b.repeat(reps));
    let audio_s = a.len() as f64 / 48_000.0;
    let tracks = [track(&a, 1), track(&b, 2)];
    // The mixed PCM the encoder sees (headroom 1/sqrt(2), as the mixer's).
    let mixed: Vec<i16> = a
        .iter()
        .zip(&b)
        .map(|(&x, &y)| ((f32::from(x) + f32::from(y)) * std::f32::consts::FRAC_1_SQRT_2) as i16)
        .collect();
    println!(
        "two-speaker call: {audio_s:.0} s, tracks {} + {} bytes; {} core(s) available, one used",
        tracks[0].0.len(),
        tracks[1].0.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!();
    println!("| rate | pipeline | time | x realtime per core | ratio to libopus alone |");
    println!("| --- | --- | --- | --- | --- |");
    for rate in [48_000u32, 16_000] {
        let config = MixConfig {
            sample_rate: rate,
            ..MixConfig::default()
        };
        let mut out_len = 0;
        let mut run_ours = || {
            let inputs = tracks
                .iter()
                .enumerate()
                .map(|(i, t)| MixInput {
                    reader: Cursor::new(&t.0[..]),
                    start_ms: 0.0,
                    targeted: i == 0,
                })
                .collect();
            let mut out = Vec::with_capacity(1 << 20);
            mix(inputs, "bench", &config, &mut out).unwrap();
            out_len = out.len();
        };
        // The same mixed PCM at the coding rate (plain decimation for 16 kHz: the encoder's
        // cost does not depend on the aliasing that leaves).
        let step = (48_000 / rate) as usize;
        let pcm: Vec<i16> = mixed.iter().step_by(step).copied().collect();
        let bytes = l16(&pcm);
        let frame = (rate / 50) as usize * 2;
        let mut run_reference = || {
            let mut t = Transcoder::with_complexity(
                AudioFormat::L16 { rate, channels: 1 },
                config.complexity,
            )
            .unwrap();
            let mut n = 0usize;
            for chunk in bytes.chunks(frame) {
                t.push(chunk, |p, _| n += p.len());
            }
            std::hint::black_box(n);
        };
        let mut run_codec = || {
            std::hint::black_box(decode_mix_encode(
                [&tracks[0].1, &tracks[1].1],
                rate,
                config.complexity,
            ));
        };
        let (mut ours, mut reference, mut codec) = (Duration::MAX, Duration::MAX, Duration::MAX);
        for _ in 0..RUNS {
            ours = ours.min(time(&mut run_ours));
            reference = reference.min(time(&mut run_reference));
            codec = codec.min(time(&mut run_codec));
        }
        let xrt = |d: Duration| audio_s / d.as_secs_f64();
        println!(
            "| {} kHz | mix (decode 2 + mix + limit + encode + Ogg), {} bytes out | {:.2} s | {:.0}x | {:.2} |",
            rate / 1000,
            out_len,
            ours.as_secs_f64(),
            xrt(ours),
            ours.as_secs_f64() / reference.as_secs_f64()
        );
        println!(
            "| {} kHz | libopus encode alone (in-process) | {:.2} s | {:.0}x | 1.00 |",
            rate / 1000,
            reference.as_secs_f64(),
            xrt(reference)
        );
        println!(
            "| {} kHz | libopus decode 2 + sum + encode (in-process, no Ogg) | {:.2} s | {:.0}x | {:.2} (ours / this: {:.2}) |",
            rate / 1000,
            codec.as_secs_f64(),
            xrt(codec),
            codec.as_secs_f64() / reference.as_secs_f64(),
            ours.as_secs_f64() / codec.as_secs_f64()
        );
        if rate == 48_000 {
            for (comp, what) in [("5", "--comp 5"), ("10", "defaults (--comp 10)")] {
                if let Some(d) = opusenc(&mixed, comp) {
                    println!(
                        "| 48 kHz | opusenc {what} --framesize 20 --bitrate 32 (process) | {:.2} s | {:.0}x | {:.2} |",
                        d.as_secs_f64(),
                        xrt(d),
                        ours.as_secs_f64() / d.as_secs_f64()
                    );
                }
            }
        }
    }
}

/// Times `opusenc` at `complexity` on the PCM written as a 48 kHz mono WAV; `None` if it is not installed.
fn opusenc(pcm: &[i16], complexity: &str) -> Option<Duration> {
    let dir = std::env::temp_dir();
    let wav = dir.join(format!("mix-bench-{}.wav", std::process::id()));
    let opus = dir.join(format!("mix-bench-{}.opus", std::process::id()));
    let data_len = (pcm.len() * 2) as u32;
    let mut w = Vec::with_capacity(44 + pcm.len() * 2);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&48_000u32.to_le_bytes());
    w.extend_from_slice(&96_000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    w.extend(pcm.iter().flat_map(|s| s.to_le_bytes()));
    std::fs::write(&wav, &w).ok()?;
    let mut ok = true;
    let d = best(|| {
        let status = Command::new("opusenc")
            .args([
                "--quiet",
                "--comp",
                complexity,
                "--framesize",
                "20",
                "--bitrate",
                "32",
            ])
            .arg(&wav)
            .arg(&opus)
            .status();
        ok &= status.is_ok_and(|s| s.success());
    });
    let _ = std::fs::remove_file(&wav);
    let _ = std::fs::remove_file(&opus);
    ok.then_some(d)
}
