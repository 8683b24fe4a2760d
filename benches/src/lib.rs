//! Shared helpers of the benchmarks: synthetic calls built in memory.
//!
//! The packets are shaped like a real Opus voice call (20 ms, ~80-byte payloads, one RFC 8285
//! audio-level extension) so that parsing, crypto and page building see realistic sizes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use media_core::srtp::{SrtpKeyMaterial, SrtpProfile, SrtpSession};

/// Packets per hour of one 20 ms stream.
pub const PACKETS_PER_HOUR: usize = 180_000;

/// The SRTP key used by the benchmarks.
pub fn bench_key(profile: SrtpProfile) -> SrtpKeyMaterial {
    SrtpKeyMaterial::new(profile, &[0x2b; 16], &vec![0x5a; profile.master_salt_len()]).unwrap()
}

/// One RTP packet: header, one-byte extension with audio level, a 20 ms CELT-config Opus
/// payload of `payload_len` bytes (TOC 0xFC: config 31, code 0).
pub fn rtp_packet(ssrc: u32, seq: u16, ts: u32, payload_len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + 8 + payload_len + 16);
    p.extend_from_slice(&[0x90, 111]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    // 0xBEDE, length 1 word: id 1, len 1, voice + level 30, then padding.
    p.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01, 0x10, 0x9E, 0x00, 0x00]);
    p.push(0xF8);
    p.extend((1..payload_len).map(|i| (i as u8).wrapping_mul(31)));
    p
}

/// A call of `streams` speakers lasting `packets_per_stream` packets each, interleaved in
/// arrival order, optionally SRTP-protected. Returns (stream index, arrival us, datagram).
pub fn call(
    streams: usize,
    packets_per_stream: usize,
    srtp: Option<SrtpProfile>,
) -> Vec<(usize, u64, Vec<u8>)> {
    let mut senders: Vec<Option<SrtpSession>> = (0..streams)
        .map(|_| srtp.map(|p| SrtpSession::new(bench_key(p))))
        .collect();
    let mut out = Vec::with_capacity(streams * packets_per_stream);
    for i in 0..packets_per_stream {
        for (s, sender) in senders.iter_mut().enumerate() {
            let ssrc = 0x1000 + s as u32;
            let seq = (i as u32 + s as u32 * 1000) as u16;
            let ts = (i as u32).wrapping_mul(960).wrapping_add(s as u32 * 77_777);
            // Payload sizes vary like VBR speech: 60-100 bytes.
            let len = 60 + (i * 7 + s * 13) % 41;
            let mut p = rtp_packet(ssrc, seq, ts, len);
            if let Some(tx) = sender {
                tx.protect_rtp(&mut p).unwrap();
            }
            out.push((s, 1_000_000 + i as u64 * 20_000 + s as u64 * 37, p));
        }
    }
    out
}

/// A global allocator that counts allocations and live heap bytes, so benches can check the
/// "no allocation per packet" claims and measure memory per stream instead of estimating it.
/// Install with `#[global_allocator] static A: benches::CountingAlloc = benches::CountingAlloc;`.
pub struct CountingAlloc;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

/// Allocations (including reallocations) so far.
pub fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Heap bytes currently allocated.
pub fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

// SAFETY: defers to the system allocator; only adds counters.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (nanoseconds on CPU):
/// on a shared, loaded machine wall time measures the neighbours too, CPU time does not.
/// `None` where the kernel does not provide it.
pub fn thread_cpu_time() -> Option<std::time::Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(std::time::Duration::from_nanos(ns))
}

/// Measures `f` in CPU time when the kernel tells it, else in wall time.
pub fn cpu_timed(f: impl FnOnce()) -> std::time::Duration {
    let (cpu0, wall0) = (thread_cpu_time(), std::time::Instant::now());
    f();
    match (cpu0, thread_cpu_time()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => wall0.elapsed(),
    }
}
