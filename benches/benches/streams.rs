//! Many concurrent speaker streams in one process: memory per stream and packet rate when
//! every packet goes to a different stream (cold caches, as in a loaded bot-host worker).
//!
//! `cargo bench -p benches --bench streams [-- STREAMS]` (default 5000). Prints figures; not
//! a criterion bench, because what it measures is a steady state, not a function.

use media_core::recording::{ParticipantTrack, TrackConfig};
use media_core::srtp::{SrtpProfile, SrtpSession};
use media_core::time::Micros;

// Counts live heap bytes so the per-stream footprint is measured, not estimated.
#[global_allocator]
static GLOBAL: benches::CountingAlloc = benches::CountingAlloc;

fn main() {
    let streams: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5000);
    let seconds = 3usize;
    let profile = SrtpProfile::AesCm128HmacSha1_80;

    // Senders first, so that everything allocated after the baseline is the tracks'.
    let mut senders: Vec<SrtpSession> = (0..streams)
        .map(|_| SrtpSession::new(benches::bench_key(profile)))
        .collect();
    let mut buf = Vec::with_capacity(2048);
    let baseline = benches::live_bytes();
    let mut tracks: Vec<ParticipantTrack> = (0..streams)
        .map(|i| {
            let mut cfg = TrackConfig::new("bench", format!("p{i}"));
            cfg.srtp = Some(benches::bench_key(profile));
            ParticipantTrack::new(cfg)
        })
        .collect();
    let at_rest = benches::live_bytes() - baseline;

    let mut fed = 0u64;
    let mut busy = std::time::Duration::ZERO;
    let mut peak = 0isize;
    for i in 0..seconds * 50 {
        // One round of packets, one per stream, built outside the timed loop.
        let round: Vec<Vec<u8>> = senders
            .iter_mut()
            .enumerate()
            .map(|(s, tx)| {
                let len = 60 + (i * 7 + s) % 41;
                let mut p = benches::rtp_packet(s as u32, i as u16, (i * 960) as u32, len);
                tx.protect_rtp(&mut p).unwrap();
                p
            })
            .collect();
        let now = Micros(1_000_000 + i as u64 * 20_000);
        busy += benches::cpu_timed(|| {
            for (t, p) in tracks.iter_mut().zip(&round) {
                buf.clear();
                buf.extend_from_slice(p);
                t.handle_datagram(now, &mut buf);
                // A real writer drains pages to its file as they close.
                t.output().clear();
            }
        });
        fed += streams as u64;
        drop(round);
        peak = peak.max(benches::live_bytes() - baseline);
    }
    let rate = fed as f64 / busy.as_secs_f64();
    println!("streams: {streams} concurrent SRTP (AES_CM_128_HMAC_SHA1_80) 20 ms Opus streams, {seconds} s each");
    println!(
        "memory: {:.0} bytes per stream before the first packet",
        at_rest as f64 / streams as f64
    );
    println!(
        "memory: {:.0} bytes per stream at peak (all media-core state incl. page buffers)",
        peak as f64 / streams as f64
    );
    println!(
        "rate: {:.2} M packets/s on one core with every packet to another stream = {:.0} streams per core",
        rate / 1e6,
        rate / 50.0
    );
    for t in &mut tracks {
        t.finish();
    }
}
