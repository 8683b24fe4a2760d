//! Per-packet parse cost of the RTP and RTCP parsers, reported as packets/s.
//!
//! The RTP case is the hot path of every recorded stream: parse plus an audio-level lookup
//! (speaker detection reads it on every packet). The RTCP case is a typical compound
//! SR+SDES report, parsed (validated) and then fully iterated.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use media_core::rtcp::{CompoundPacket, RtcpPacket};
use media_core::rtp::RtpPacket;

/// A Chrome-style Opus packet: one-byte extensions audio level (id 1), abs-send-time (id 2)
/// and transport-wide-cc (id 3), then a 20 ms Opus frame of realistic size.
fn opus_packet() -> Vec<u8> {
    let mut p = vec![
        0x90, 0x6f, 0x1a, 0x2b, 0x00, 0x01, 0xe2, 0x40, 0x12, 0x34, 0x56, 0x78, //
        0xbe, 0xde, 0x00, 0x03, //
        0x10, 0xaa, // audio level
        0x22, 0x0b, 0x1c, 0x2d, // abs-send-time
        0x31, 0x04, 0xd2, // transport-cc
        0x00, 0x00, 0x00,
    ];
    p.extend((0..80u8).map(|i| i.wrapping_mul(37)));
    p
}

/// SR with one report block followed by SDES with a CNAME, as browsers send every few seconds.
fn rtcp_compound() -> Vec<u8> {
    let mut p = vec![
        0x81, 200, 0x00, 0x0c, 0x11, 0x22, 0x33, 0x44, 0xe4, 0x6b, 0x2a, 0x3f, 0x80, 0x00, 0x00,
        0x00, 0x00, 0x01, 0xe2, 0x40, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x3e, 0x80, 0x55, 0x66,
        0x77, 0x88, 0x19, 0xff, 0xff, 0xfe, 0x00, 0x01, 0x1a, 0x2b, 0x00, 0x00, 0x00, 0x20, 0x2a,
        0x3f, 0x80, 0x00, 0x00, 0x00, 0x80, 0x00,
    ];
    let cname = b"hV3kQ9xZ2mP7tR1w";
    p.extend_from_slice(&[0x81, 202, 0x00, 0x06, 0x11, 0x22, 0x33, 0x44, 0x01, 16]);
    p.extend_from_slice(cname);
    p.extend_from_slice(&[0x00, 0x00]);
    p
}

fn rtp(c: &mut Criterion) {
    let pkt = opus_packet();
    assert!(RtpPacket::parse(&pkt).unwrap().audio_level(1).is_some());
    let mut g = c.benchmark_group("rtp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse+audio_level/opus_3ext", |b| {
        b.iter(|| {
            let p = RtpPacket::parse(black_box(&pkt)).unwrap();
            black_box((p.sequence, p.payload().len(), p.audio_level(black_box(1))))
        })
    });
    g.finish();
}

fn rtcp(c: &mut Criterion) {
    let pkt = rtcp_compound();
    assert_eq!(CompoundPacket::parse(&pkt).unwrap().iter().count(), 2);
    let mut g = c.benchmark_group("rtcp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse+iterate/sr_sdes", |b| {
        b.iter(|| {
            let compound = CompoundPacket::parse(black_box(&pkt)).unwrap();
            let mut acc = 0u64;
            for packet in compound.iter() {
                match packet.unwrap() {
                    RtcpPacket::SenderReport(sr) => {
                        acc ^= sr.ntp_timestamp;
                        for block in sr.report_blocks() {
                            acc ^= u64::from(block.highest_seq);
                        }
                    }
                    RtcpPacket::SourceDescription(sdes) => {
                        for chunk in sdes.chunks() {
                            acc ^= chunk.cname().map_or(0, |c| c.len() as u64);
                        }
                    }
                    _ => {}
                }
            }
            black_box(acc)
        })
    });
    g.finish();
}

criterion_group!(benches, rtp, rtcp);
criterion_main!(benches);
