//! The whole per-packet path of media-core on a one-hour two-speaker call:
//! SRTP unprotect (or plain RTP) + RTP parse + reorder + time line + Ogg page building.
//!
//! `cargo bench -p benches --bench pipeline`. Throughput is reported per packet; one 20 ms
//! speaker stream is 50 packets/s, so concurrent streams per core = rate / 50.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use media_core::recording::{ParticipantTrack, TrackConfig};
use media_core::srtp::SrtpProfile;
use media_core::time::Micros;

fn run_call(call: &[(usize, u64, Vec<u8>)], srtp: Option<SrtpProfile>, buf: &mut Vec<u8>) -> u64 {
    let mut tracks: Vec<ParticipantTrack> = (0..2)
        .map(|i| {
            let mut cfg = TrackConfig::new("bench", format!("p{i}"));
            cfg.srtp = srtp.map(benches::bench_key);
            ParticipantTrack::new(cfg)
        })
        .collect();
    let mut bytes = 0u64;
    for (s, at, datagram) in call {
        // The copy stands for the socket read into a reused buffer; unprotect is in place.
        buf.clear();
        buf.extend_from_slice(datagram);
        let t = &mut tracks[*s];
        t.handle_datagram(Micros(*at), buf);
        let out = t.output();
        bytes += out.len() as u64;
        out.clear();
    }
    for t in &mut tracks {
        t.finish();
        bytes += t.output().len() as u64;
    }
    bytes
}

fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline_1h_two_speakers");
    g.sample_size(10);
    for (name, srtp) in [
        ("srtp_aes_cm_80", Some(SrtpProfile::AesCm128HmacSha1_80)),
        ("srtp_aead_gcm", Some(SrtpProfile::AeadAes128Gcm)),
        ("plain_rtp", None),
    ] {
        let call = benches::call(2, benches::PACKETS_PER_HOUR, srtp);
        g.throughput(Throughput::Elements(call.len() as u64));
        let mut buf = Vec::with_capacity(2048);
        g.bench_function(name, |b| {
            b.iter_batched(
                || (),
                |_| run_call(&call, srtp, &mut buf),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
