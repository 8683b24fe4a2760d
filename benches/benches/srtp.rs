//! SRTP unprotect throughput: media-core's own framing vs webrtc-rs `rtc-srtp`.
//!
//! Reports packets/s (`Throughput::Elements`) for realistic Opus packet sizes: a 44-octet
//! payload (about 16 kb/s at 20 ms, a 66-octet AES_CM_128_HMAC_SHA1_80 packet) and a
//! 160-octet payload (64 kb/s at 20 ms), for the three suites.
//!
//! Each measured iteration unprotects a batch of consecutive packets with a fresh session,
//! so replay protection sees new packets every time; building the session and copying the
//! batch happen in the untimed setup. media-core runs with its 128-packet replay window;
//! rtc-srtp runs with its default (no replay detector), its cheapest configuration.
//!
//! Run: `cargo bench -p benches --bench srtp -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use media_core::srtp::{SrtpKeyMaterial, SrtpProfile, SrtpSession};
use rtc_srtp::context::Context;
use rtc_srtp::protection_profile::ProtectionProfile;

// Counts heap allocations, so the bench can check the "no allocation per packet" claim
// before measuring anything.
#[global_allocator]
static GLOBAL: benches::CountingAlloc = benches::CountingAlloc;

/// Packets per measured iteration.
const BATCH: usize = 4096;
const MASTER_KEY: [u8; 16] = [
    0x0d, 0xcd, 0x21, 0x3e, 0x4c, 0xbc, 0xf2, 0x8f, 0x01, 0x7f, 0x6d, 0x6f, 0x91, 0x17, 0x1a, 0x3c,
];
const MASTER_SALT: [u8; 14] = [
    0x62, 0x77, 0x60, 0x38, 0xc0, 0x6d, 0xc9, 0x41, 0x9f, 0x6d, 0xd9, 0x43, 0x3e, 0x7c,
];

fn key(profile: SrtpProfile) -> SrtpKeyMaterial {
    SrtpKeyMaterial::new(
        profile,
        &MASTER_KEY,
        &MASTER_SALT[..profile.master_salt_len()],
    )
    .expect("valid key lengths")
}

fn rtc_context(profile: SrtpProfile) -> Context {
    let provider = rtc_crypto::default_provider().expect("rtc-crypto default provider");
    let p = match profile {
        SrtpProfile::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        SrtpProfile::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        SrtpProfile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
    };
    Context::new(
        &MASTER_KEY,
        &MASTER_SALT[..profile.master_salt_len()],
        p,
        None,
        None,
        provider.crypto(),
    )
    .expect("rtc-srtp context")
}

/// `BATCH` consecutive protected packets of one Opus stream, back to back in one buffer
/// (all the same length). Returns (buffer, packet length).
fn protected_batch(profile: SrtpProfile, payload_len: usize) -> (Vec<u8>, usize) {
    let mut tx = SrtpSession::new(key(profile));
    let mut all = Vec::new();
    let mut len = 0;
    for i in 0..BATCH {
        let seq = 1000u16.wrapping_add(i as u16);
        let mut p = Vec::with_capacity(12 + payload_len + 16);
        p.extend_from_slice(&[0x80, 111]);
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(960 * i as u32).to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend((0..payload_len).map(|b| (b * 7 + i) as u8));
        tx.protect_rtp(&mut p).expect("protect");
        len = p.len();
        all.extend_from_slice(&p);
    }
    (all, len)
}

fn unprotect(c: &mut Criterion) {
    for payload_len in [44usize, 160] {
        for profile in SrtpProfile::ALL {
            let (batch, pkt_len) = protected_batch(profile, payload_len);
            let mut group = c.benchmark_group(format!(
                "srtp_unprotect/{}/{}B",
                profile.sdes_name(),
                pkt_len
            ));
            group.throughput(Throughput::Elements(BATCH as u64));

            group.bench_function("media-core", |b| {
                b.iter_batched_ref(
                    || (SrtpSession::new(key(profile)), batch.clone()),
                    |(session, buf)| {
                        for pkt in buf.chunks_exact_mut(pkt_len) {
                            black_box(session.unprotect_rtp(pkt).expect("unprotect"));
                        }
                    },
                    BatchSize::PerIteration,
                );
            });

            group.bench_function("rtc-srtp", |b| {
                b.iter_batched_ref(
                    || (rtc_context(profile), batch.clone()),
                    |(ctx, buf)| {
                        for pkt in buf.chunks_exact(pkt_len) {
                            black_box(ctx.decrypt_rtp(pkt).expect("decrypt_rtp"));
                        }
                    },
                    BatchSize::PerIteration,
                );
            });
            group.finish();
        }
    }
}

/// Unprotects a batch (after the session has seen its first packet) and fails loudly if that
/// allocated: the per-packet path must not touch the heap.
fn assert_no_allocation_per_packet() {
    for profile in SrtpProfile::ALL {
        let (mut batch, pkt_len) = protected_batch(profile, 44);
        let mut session = SrtpSession::new(key(profile));
        let mut packets = batch.chunks_exact_mut(pkt_len);
        session
            .unprotect_rtp(packets.next().expect("batch"))
            .expect("first packet");
        let before = benches::allocations();
        for pkt in packets {
            black_box(session.unprotect_rtp(pkt).expect("unprotect"));
        }
        let allocated = benches::allocations() - before;
        assert_eq!(
            allocated, 0,
            "{profile}: unprotect allocated {allocated} times"
        );
    }
    eprintln!("srtp: unprotect made no heap allocation over {BATCH} packets per suite");
}

criterion_group!(benches, unprotect);

fn main() {
    assert_no_allocation_per_packet();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
