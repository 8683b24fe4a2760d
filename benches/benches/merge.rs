//! Dual-bot merge rate: two one-hour legs of one participant (180,000 frames of 20 ms each,
//! 80-byte payloads as at 32 kbit/s, independent 5% loss per leg, the paired leg's clock
//! 800 ms ahead), Ogg files in memory, merged into an in-memory Ogg file. The whole
//! `merge_legs` call is measured: reading and CRC-checking both files, alignment, writing.
//!
//! Two measurements of the same work: `merge_legs` (wall clock, criterion's default) and
//! `merge_legs_cpu` (this thread's CPU time from `/proc/thread-self/schedstat`), because on a
//! shared machine the wall clock also counts the time the thread waited for a core, while
//! "per core" means CPU time.
//!
//! One element is one frame of the call (a 20 ms slot of the merged track), so the report
//! reads as call frames merged per second on one core; each slot is two frames read (one
//! per leg), so the rate over frames read is twice that.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use media_core::merge::{merge_legs, LegTrack};
use media_core::ogg::{OggOpusWriter, OpusHead};
use media_core::opus::silence_fill;
use std::io::Cursor;
use std::time::{Duration, Instant};

const FRAMES: usize = 180_000;

/// A frame's payload: a CELT 20 ms TOC and 79 bytes that depend on the frame number, so
/// every payload is distinct like real speech.
fn payload(i: usize, buf: &mut [u8; 80]) {
    buf[0] = 0xF8;
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in buf[1..].iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

/// One leg as the recorder writes it: lost frames filled with silence.
fn leg(seed: u64) -> Vec<u8> {
    let head = OpusHead {
        channels: 1,
        pre_skip: 312,
        input_sample_rate: 48_000,
        output_gain: 0,
    };
    let mut w = OggOpusWriter::new(1, head, &[("CALL_ID", "bench")]);
    let mut out = Vec::new();
    let mut rng = seed | 1;
    let mut buf = [0u8; 80];
    for i in 0..FRAMES {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // 5% loss, but never the first frame (a track starts at its first packet).
        if i > 0 && rng % 100 < 5 {
            silence_fill(960, 1, |p, n| w.write_packet(p, n));
        } else {
            payload(i, &mut buf);
            w.write_packet(&buf, 960);
        }
        out.append(w.output());
    }
    w.finish();
    out.append(w.output());
    out
}

/// CPU time this thread has run, from the kernel's scheduler statistics (ns).
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn merge(c: &mut Criterion) {
    let (a, b) = (leg(1), leg(2));
    let mut group = c.benchmark_group("merge_two_one_hour_legs");
    group.throughput(Throughput::Elements(FRAMES as u64));
    group.sample_size(20);
    let mut out = Vec::with_capacity(a.len() * 2);
    let run = |out: &mut Vec<u8>| {
        out.clear();
        let (stats, start) = merge_legs(
            LegTrack {
                reader: Cursor::new(black_box(&a)),
                start_unix_ms: 1_764_115_200_000.0,
            },
            LegTrack {
                reader: Cursor::new(black_box(&b)),
                start_unix_ms: 1_764_115_200_800.0,
            },
            "bench",
            "A",
            &mut *out,
        )
        .unwrap();
        assert_eq!(
            stats.frames_primary + stats.frames_paired + stats.frames_lost_both,
            FRAMES as u64
        );
        black_box((start, out.len()));
    };
    group.bench_function("merge_legs", |bench| bench.iter(|| run(&mut out)));
    group.bench_function("merge_legs_cpu", |bench| {
        bench.iter_custom(|iters| {
            let (t0, w0) = (thread_cpu(), Instant::now());
            for _ in 0..iters {
                run(&mut out);
            }
            match (t0, thread_cpu()) {
                (Some(a), Some(b)) => b - a,
                // No schedstat (not Linux): fall back to the wall clock.
                _ => w0.elapsed(),
            }
        })
    });
    group.finish();
}

criterion_group!(benches, merge);
criterion_main!(benches);
