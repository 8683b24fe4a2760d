//! Segmentation rate, one element = one 20 ms frame, so `elements/s × 0.02` is times
//! realtime per core.
//!
//! - `levels_1h`: one hour of RFC 6464 levels (180,000 frames) through a `Segmenter`, the
//!   live path when senders put levels in their packets (target: at least 1000x realtime);
//! - `pcm_1min`: the PCM VAD on one minute of already decoded 48 kHz audio (decode excluded);
//! - `ogg_1min`: `segments_from_ogg` on the same minute as Ogg Opus, libopus decode included.
//!
//! `cargo bench -p benches --bench segments`. The audio is synthetic but speech-shaped
//! (syllable-rate bursts of noise in turns of a few seconds, pauses over a -60 dBov floor), so
//! the detector opens and closes segments as often as on a real call.

use std::io::Cursor;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use media_core::ogg::{OggOpusWriter, OpusHead};
use media_core::segments::{segments_from_ogg, Segmenter, SegmenterConfig};
use media_core::transcode::{AudioFormat, Transcoder};

const FRAME: usize = 960;

/// A small deterministic generator, so the bench needs no RNG crate and every run sees the
/// same input.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f64 {
        f64::from(self.next()) / f64::from(1u32 << 30) - 1.0
    }
}

/// Whether frame `i` (20 ms) is inside a turn: 3.2 s of speech, then 1.8 s of pause.
fn talking(i: usize) -> bool {
    i % 250 < 160
}

/// One hour of levels: speech at 20-40 -dBov with word dips, pauses at a 60 -dBov floor.
fn levels(frames: usize) -> Vec<(u8, bool)> {
    let mut rng = Lcg(1);
    (0..frames)
        .map(|i| {
            if talking(i) {
                let dip = i % 25 == 24;
                let l = if dip {
                    58
                } else {
                    20 + (rng.next() % 20) as u8
                };
                (l, l <= 55)
            } else {
                (60 + (rng.next() % 3) as u8, false)
            }
        })
        .collect()
}

/// Speech-shaped PCM: noise modulated at 4 Hz (syllables) in turns, low noise in pauses.
fn pcm(frames: usize) -> Vec<i16> {
    let mut rng = Lcg(2);
    (0..frames * FRAME)
        .map(|n| {
            let i = n / FRAME;
            let amp = if talking(i) {
                let t = n as f64 / 48_000.0;
                6000.0 * (0.2 + 0.8 * (std::f64::consts::PI * 4.0 * t).sin().abs())
            } else {
                30.0
            };
            (amp * rng.unit()) as i16
        })
        .collect()
}

/// The PCM as an Ogg Opus track, encoded by libopus through media-core's L16 transcoder.
fn ogg(pcm: &[i16]) -> Vec<u8> {
    let mut enc = Transcoder::new(AudioFormat::L16 {
        rate: 48_000,
        channels: 1,
    })
    .expect("encoder");
    let mut w = OggOpusWriter::new(
        1,
        OpusHead {
            channels: 1,
            pre_skip: enc.pre_skip(),
            input_sample_rate: 48_000,
            output_gain: 0,
        },
        &[],
    );
    let be: Vec<u8> = pcm.iter().flat_map(|s| s.to_be_bytes()).collect();
    for chunk in be.chunks(FRAME * 2) {
        enc.push(chunk, |p, n| w.write_packet(p, n));
    }
    w.finish();
    std::mem::take(w.output())
}

fn segments(c: &mut Criterion) {
    let config = SegmenterConfig::default();

    let hour = levels(180_000);
    let mut g = c.benchmark_group("segments");
    g.throughput(Throughput::Elements(hour.len() as u64));
    g.bench_function("levels_1h", |b| {
        b.iter(|| {
            let mut s = Segmenter::new(config);
            for (i, &(level, voice)) in hour.iter().enumerate() {
                s.push_level(i as u64 * FRAME as u64, FRAME as u32, level, voice);
            }
            black_box(s.finish())
        })
    });

    let minute = pcm(3000);
    let file = ogg(&minute);
    // The bench is only meaningful if the detector finds the turns it is meant to find.
    let found = segments_from_ogg(Cursor::new(&file[..]), config).expect("ogg");
    assert!((10..=14).contains(&found.len()), "{} segments", found.len());
    g.throughput(Throughput::Elements(3000));
    g.bench_function("pcm_1min", |b| {
        b.iter(|| {
            let mut s = Segmenter::new(config);
            for (i, f) in minute.chunks(FRAME).enumerate() {
                s.push_pcm(i as u64 * FRAME as u64, black_box(f));
            }
            black_box(s.finish())
        })
    });
    g.sample_size(20);
    g.bench_function("ogg_1min", |b| {
        b.iter(|| black_box(segments_from_ogg(Cursor::new(&file[..]), config).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, segments);
criterion_main!(benches);
