//! Ogg Opus muxing rate: our page builder against the `ogg` crate's `PacketWriter`.
//!
//! Both write 80-byte packets of 20 ms (a typical 32 kbit/s voice stream) with a page per
//! second (50 packets) into a `Vec` that is cleared after every packet, as the recorder
//! drains its output; one element is one packet, so the report reads as packets/s.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use media_core::ogg::{OggOpusWriter, OpusHead};
use ogg::{PacketWriteEndInfo, PacketWriter};

const PACKET: [u8; 80] = [0x5A; 80];
const SAMPLES: u32 = 960;
const PACKETS_PER_PAGE: u64 = 50;

fn ogg_write(c: &mut Criterion) {
    let mut group = c.benchmark_group("ogg_write_packet_80B_20ms");
    group.throughput(Throughput::Elements(1));

    group.bench_function("media_core", |b| {
        let head = OpusHead {
            channels: 1,
            pre_skip: 312,
            input_sample_rate: 48_000,
            output_gain: 0,
        };
        let mut w = OggOpusWriter::new(1, head, &[("CALL_ID", "bench")]);
        w.output().clear();
        b.iter(|| {
            w.write_packet(black_box(&PACKET), SAMPLES);
            black_box(w.output().len());
            w.output().clear();
        });
    });

    group.bench_function("ogg_crate", |b| {
        let mut w = PacketWriter::new(Vec::with_capacity(64 * 1024));
        let mut granule = 0u64;
        let mut on_page = 0u64;
        b.iter(|| {
            granule += u64::from(SAMPLES);
            on_page += 1;
            // Same page boundaries as ours: a page per 50 packets.
            let end = if on_page == PACKETS_PER_PAGE {
                on_page = 0;
                PacketWriteEndInfo::EndPage
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            // The crate keeps packets as `Cow`; handing it a borrowed slice is its cheapest
            // path, the same copy-free input our writer gets.
            w.write_packet(black_box(&PACKET[..]), 1, end, granule)
                .unwrap();
            black_box(w.inner().len());
            w.inner_mut().clear();
        });
    });
    group.finish();
}

criterion_group!(benches, ogg_write);
criterion_main!(benches);
