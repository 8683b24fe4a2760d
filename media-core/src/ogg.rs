//! Ogg Opus files (RFC 3533 pages, RFC 7845 mapping) built in reused buffers.
//!
//! The recorder writes one Ogg Opus stream per participant track and copies the sender's
//! Opus packets into it untouched. This module is on the per-packet path, so it is our own
//! page builder rather than the `ogg` crate's `PacketWriter` (which keeps a `HashMap` of
//! streams and a `Vec` of packets per page, and allocates a header buffer per page): a
//! packet is one `memcpy` into the page body, a page is a header, a lacing table, the body
//! and one CRC pass into a reused output buffer. The `ogg` crate is still the reference: the
//! tests read our pages back with it and compare bytes with its writer.
//!
//! Page policy: a page closes once it holds one second of audio (configurable), when the
//! caller's wall-clock timer calls [`OggOpusWriter::flush`], or when the next packet would
//! not fit (255 lacing values or about 8 KiB of body). A packet never spans pages, so a file
//! cut after any complete page loses nothing before the cut. The most recent packet is
//! always kept pending (pages close when the next packet arrives, and `flush` holds it
//! back), so the EOS page written by [`OggOpusWriter::finish`] always carries a packet.

use crate::opus;

/// The Ogg page CRC: CRC-32, polynomial 0x04c11db7, MSB first, init 0, no final xor
/// (RFC 3533 section 6, "CRC checksum"). None of the `crc` catalog's entries is this exact
/// algorithm (`CRC_32_MPEG_2` starts from all ones, `CRC_32_CKSUM` xors the result), so it is
/// spelled out here and checked against the `ogg` crate in the tests.
const OGG_CRC_ALGORITHM: crc::Algorithm<u32> = crc::Algorithm {
    width: 32,
    poly: 0x04c1_1db7,
    init: 0,
    refin: false,
    refout: false,
    xorout: 0,
    // CRC of b"123456789": the catalog's CRC_32_CKSUM check value without its final xor.
    check: 0x89a1_897f,
    residue: 0,
};

/// Sixteen-way sliced tables: the CRC is the only per-byte work on a page besides the copy,
/// and slicing makes it several times faster than the byte-at-a-time table for 4 KiB pages.
pub(crate) static OGG_CRC: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&OGG_CRC_ALGORITHM);

/// Header type flag: first page of the logical bitstream.
const FLAG_BOS: u8 = 0x02;
/// Header type flag: last page of the logical bitstream.
const FLAG_EOS: u8 = 0x04;
/// Fixed part of the page header, before the lacing table.
const PAGE_HEADER_LEN: usize = 27;
/// Most lacing values a page can hold (the count is one byte).
const MAX_SEGMENTS: usize = 255;
/// Largest packet that fits on one page: 254 full lacing values and a final one of 254.
/// RFC 6716 packets (at most 120 ms of 1275-byte frames) stay below this; only padding
/// abuse can exceed it.
pub const MAX_PACKET_LEN: usize = 255 * (MAX_SEGMENTS - 1) + 254;
/// Body size at which a page is closed before taking another packet. Small pages keep a
/// truncated file's loss small; 8 KiB holds a second of even 64 kbit/s audio.
const SOFT_BODY_LIMIT: usize = 8 * 1024;
/// Grows `buf` to fit `extra` more bytes in 1 KiB steps instead of doubling: a stream's page
/// size settles within the first seconds, after which nothing grows, and thousands of
/// streams should not each carry up to twice the memory they use.
fn reserve_snug(buf: &mut Vec<u8>, extra: usize) {
    let need = buf.len() + extra;
    if need > buf.capacity() {
        buf.reserve_exact(need.next_multiple_of(1024) - buf.len());
    }
}

/// Initial capacity of the page and output buffers: about a second of 16 kbit/s Opus.
const INITIAL_BUFFER: usize = 2048;
/// Default flush interval: one second at 48 kHz.
pub const DEFAULT_FLUSH_INTERVAL_48K: u64 = 48_000;

/// The fields of the Opus identification header that vary, for channel mapping family 0
/// (mono or stereo, RFC 7845 section 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusHead {
    /// Output channel count: 1 or 2 for mapping family 0.
    pub channels: u8,
    /// Samples at 48 kHz to discard from the decoder output at the start: the sender's
    /// encoder delay (312 for libopus in VoIP/audio mode), so that the file starts with the
    /// first captured sample rather than the encoder's lookahead.
    pub pre_skip: u16,
    /// The sender's capture rate, informational only (players may resample to it).
    pub input_sample_rate: u32,
    /// Gain in Q7.8 dB applied on output; 0 keeps the audio as received.
    pub output_gain: i16,
}

impl OpusHead {
    /// Serialises the 19-byte `OpusHead` packet (RFC 7845 section 5.1).
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"OpusHead");
        out.push(1); // version
        out.push(self.channels);
        out.extend_from_slice(&self.pre_skip.to_le_bytes());
        out.extend_from_slice(&self.input_sample_rate.to_le_bytes());
        out.extend_from_slice(&self.output_gain.to_le_bytes());
        out.push(0); // channel mapping family 0: no mapping table
    }
}

/// Builds an Ogg Opus stream page by page into a reused output buffer.
///
/// Sans-IO: the writer never touches a file. The caller drains [`OggOpusWriter::output`]
/// after each call and calls [`OggOpusWriter::flush`] from its own timer.
#[derive(Debug)]
pub struct OggOpusWriter {
    serial: u32,
    channels: u8,
    sequence: u32,
    /// RFC 7845 granule: 48 kHz samples in every audio packet written so far.
    granule: u64,
    /// `granule` when the current page was opened, to measure the flush interval.
    page_start_granule: u64,
    flush_interval: u64,
    lacing: [u8; MAX_SEGMENTS],
    segments: usize,
    /// Packets completed on the page under construction.
    packets: usize,
    body: Vec<u8>,
    out: Vec<u8>,
    pages: u64,
    finished: bool,
    oversize_replaced: u64,
    /// Body bytes, lacing values and samples of the most recent packet, which `flush`
    /// holds back.
    last_len: usize,
    last_segments: usize,
    last_samples: u32,
}

impl OggOpusWriter {
    /// Writes the ID header page (OpusHead, BOS) and the comment header page (OpusTags:
    /// vendor string "media-core <version>", then the given user comments such as
    /// `("CALL_ID", "..")`, `("PARTICIPANT", "..")`, `("START_TIME", "2026-..Z")`) into the
    /// output buffer.
    ///
    /// Each header is alone on its page with granule 0, as RFC 7845 section 3 requires.
    /// Comments that would push the OpusTags packet past one page are left out: they are
    /// our own metadata, and a header spanning pages buys nothing for a call recording.
    pub fn new(serial: u32, head: OpusHead, comments: &[(&str, &str)]) -> Self {
        let mut w = OggOpusWriter {
            serial,
            channels: head.channels,
            sequence: 0,
            granule: 0,
            page_start_granule: 0,
            flush_interval: DEFAULT_FLUSH_INTERVAL_48K,
            lacing: [0; MAX_SEGMENTS],
            segments: 0,
            packets: 0,
            // Buffers start small and grow to what the stream needs (one second of its
            // packets), then stay: a bot holds thousands of streams, so reserving the largest
            // possible page (64 KiB) up front would cost more than everything else together.
            body: Vec::with_capacity(INITIAL_BUFFER),
            out: Vec::with_capacity(INITIAL_BUFFER),
            pages: 0,
            finished: false,
            oversize_replaced: 0,
            last_len: 0,
            last_segments: 0,
            last_samples: 0,
        };

        let mut packet = Vec::with_capacity(64);
        head.write(&mut packet);
        w.add_packet(&packet);
        w.close_page(0, 0);

        packet.clear();
        packet.extend_from_slice(b"OpusTags");
        let vendor = concat!("media-core ", env!("CARGO_PKG_VERSION"));
        push_string(&mut packet, vendor.as_bytes());
        let count_at = packet.len();
        packet.extend_from_slice(&0u32.to_le_bytes());
        let mut count = 0u32;
        for (key, value) in comments {
            let len = key.len() + 1 + value.len();
            if packet.len() + 4 + len + 1 > MAX_PACKET_LEN {
                continue;
            }
            packet.extend_from_slice(&(len as u32).to_le_bytes());
            packet.extend_from_slice(key.as_bytes());
            packet.push(b'=');
            packet.extend_from_slice(value.as_bytes());
            count += 1;
        }
        packet[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
        // One byte of padding (LSB 0: "may be discarded", RFC 7845 5.2). Not needed by the
        // format, but ogginfo reads one byte past the comments to classify trailing data,
        // and without it prints "Padding: -1 bytes" from reading past the packet.
        packet.push(0);
        w.add_packet(&packet);
        w.close_page(0, 0);
        w
    }

    /// Appends one audio packet covering `samples_48k` samples. Bytes are copied into the
    /// page being built (the caller's buffer is not kept).
    ///
    /// Pages close by themselves once they hold the flush interval (default 48 000 samples
    /// = 1 s of audio), or before a packet that would overflow the 255-entry lacing table or
    /// the ~8 KiB body; a packet never spans pages. The close happens when the next packet
    /// arrives, so this packet is always left pending for the EOS page. A packet larger than
    /// [`MAX_PACKET_LEN`] (impossible for a conforming encoder) is replaced by silence of
    /// the same duration, so file time still equals call time; see
    /// [`OggOpusWriter::oversize_replaced`]. Packets after [`OggOpusWriter::finish`] are
    /// ignored: the stream is closed.
    pub fn write_packet(&mut self, packet: &[u8], samples_48k: u32) {
        if self.finished {
            return;
        }
        if packet.len() > MAX_PACKET_LEN {
            self.oversize_replaced += 1;
            let channels = self.channels;
            opus::silence_fill(u64::from(samples_48k), channels, |p, n| {
                self.append(p, n);
            });
            return;
        }
        self.append(packet, samples_48k);
    }

    /// Adds a packet known to fit on one page and applies the page-closing policy.
    ///
    /// Pages are closed lazily, when the next packet arrives: the page boundaries are the
    /// same as closing at once, but the most recent packet is always still pending, so the
    /// EOS page written by [`OggOpusWriter::finish`] is never empty.
    fn append(&mut self, packet: &[u8], samples_48k: u32) {
        let needed = packet.len() / 255 + 1;
        if self.packets > 0
            && (self.granule - self.page_start_granule >= self.flush_interval
                || self.segments + needed > MAX_SEGMENTS
                || self.body.len() + packet.len() > SOFT_BODY_LIMIT)
        {
            self.close_page(0, self.granule);
        }
        self.add_packet(packet);
        self.last_len = packet.len();
        self.last_segments = needed;
        self.last_samples = samples_48k;
        self.granule += u64::from(samples_48k);
    }

    /// Copies `packet` into the page body and writes its lacing values: one 255 per full
    /// 255 bytes, then the remainder, which is 0 for exact multiples of 255 (that 0 is what
    /// tells a reader the packet ends here).
    fn add_packet(&mut self, packet: &[u8]) {
        let full = packet.len() / 255;
        self.lacing[self.segments..self.segments + full].fill(255);
        self.lacing[self.segments + full] = (packet.len() % 255) as u8;
        self.segments += full + 1;
        reserve_snug(&mut self.body, packet.len());
        self.body.extend_from_slice(packet);
        self.packets += 1;
    }

    /// Closes the page under construction, except its most recent packet, which stays
    /// pending (called on a wall-clock timer by the caller so that at most ~1 s is ever
    /// unflushed).
    ///
    /// The held-back packet (at most 120 ms, usually 20 ms) is what keeps the EOS page from
    /// being empty: `opusinfo` warns about an empty page carrying a positive granule. With
    /// only one packet pending, nothing is written.
    pub fn flush(&mut self) {
        if self.packets < 2 || self.finished {
            return;
        }
        let keep_from = self.body.len() - self.last_len;
        let keep_segments = self.segments - self.last_segments;
        let granule = self.granule - u64::from(self.last_samples);
        self.write_page(0, granule, keep_segments, keep_from);
        // Move the held-back packet to the front of the new page.
        self.body.copy_within(keep_from.., 0);
        self.body.truncate(self.last_len);
        self.lacing.copy_within(keep_segments..self.segments, 0);
        self.segments = self.last_segments;
        self.packets = 1;
        self.page_start_granule = granule;
    }

    /// Closes the stream: the last page carries the EOS flag.
    ///
    /// Because [`OggOpusWriter::write_packet`] and [`OggOpusWriter::flush`] always keep the
    /// most recent packet pending, the EOS page holds at least one packet and the granule of
    /// its end, which `opusinfo` and `ogginfo` both accept without warnings (checked by a
    /// test). A stream with no audio at all ends with an empty EOS page at granule 0.
    /// Calling it again does nothing.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.close_page(FLAG_EOS, self.granule);
        self.finished = true;
    }

    /// Closes the stream with the final granule position lowered to `end_granule`: RFC 7845
    /// section 4.5 end trimming, so a stream can end inside its last packet (a cut to a time
    /// window). The trim is bounded to that last packet, which is always on the EOS page; a
    /// larger `end_granule` than the samples written is ignored.
    pub fn finish_at(&mut self, end_granule: u64) {
        if self.finished {
            return;
        }
        let floor = self.granule - u64::from(self.last_samples);
        let g = end_granule.clamp(floor, self.granule);
        self.close_page(FLAG_EOS, g);
        self.finished = true;
    }

    /// Completed pages ready to be written to disk. The caller writes them and calls
    /// `clear()` on the Vec (capacity is reused, so steady state allocates nothing).
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// The RFC 7845 granule position reached so far: 48 kHz samples in all audio packets
    /// written, which includes the `pre_skip` samples at the start. The playable duration is
    /// therefore `granule() - pre_skip`.
    pub fn granule(&self) -> u64 {
        self.granule
    }

    /// Sets how much audio (48 kHz samples) a page holds before it closes by itself. Takes
    /// effect from the next packet.
    pub fn set_flush_interval(&mut self, samples_48k: u64) {
        self.flush_interval = samples_48k;
    }

    /// Pages completed so far, header pages included.
    pub fn pages_written(&self) -> u64 {
        self.pages
    }

    /// Packets too large for one page that were replaced by silence (a hostile or broken
    /// sender; counted rather than logged on the per-packet path).
    pub fn oversize_replaced(&self) -> u64 {
        self.oversize_replaced
    }

    /// Writes the page under construction into `out` and starts an empty one.
    fn close_page(&mut self, flags: u8, granule: u64) {
        self.write_page(flags, granule, self.segments, self.body.len());
        self.segments = 0;
        self.packets = 0;
        self.body.clear();
        self.page_start_granule = granule;
    }

    /// Writes a page of the first `segments` lacing values and `body_len` body bytes of the
    /// page under construction into `out`; the caller decides what stays pending.
    fn write_page(&mut self, flags: u8, granule: u64, segments: usize, body_len: usize) {
        let flags = flags | if self.pages == 0 { FLAG_BOS } else { 0 };
        let start = self.out.len();
        reserve_snug(&mut self.out, PAGE_HEADER_LEN + segments + body_len);
        self.out.extend_from_slice(b"OggS");
        self.out.push(0); // stream structure version
        self.out.push(flags);
        self.out.extend_from_slice(&granule.to_le_bytes());
        self.out.extend_from_slice(&self.serial.to_le_bytes());
        self.out.extend_from_slice(&self.sequence.to_le_bytes());
        self.out.extend_from_slice(&[0; 4]); // CRC, computed with this field zero
        self.out.push(segments as u8);
        self.out.extend_from_slice(&self.lacing[..segments]);
        self.out.extend_from_slice(&self.body[..body_len]);
        let crc = OGG_CRC.checksum(&self.out[start..]);
        self.out[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
        // Wrapping: 2^32 pages is 136 years of 1 s pages, but a wrap must not panic.
        self.sequence = self.sequence.wrapping_add(1);
        self.pages += 1;
    }
}

/// Appends a Vorbis-comment style length-prefixed string (u32 little-endian length).
fn push_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ogg::{PacketReader, PacketWriteEndInfo, PacketWriter};
    use std::io::Cursor;

    fn head(channels: u8) -> OpusHead {
        OpusHead {
            channels,
            pre_skip: 312,
            input_sample_rate: 48_000,
            output_gain: 0,
        }
    }

    fn read_all(bytes: &[u8]) -> Vec<ogg::Packet> {
        let mut r = PacketReader::new(Cursor::new(bytes));
        let mut packets = Vec::new();
        while let Some(p) = r.read_packet().expect("valid Ogg") {
            packets.push(p);
        }
        packets
    }

    /// Splits a byte stream into pages by walking the headers.
    fn pages(bytes: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            assert_eq!(&bytes[at..at + 4], b"OggS");
            let n = usize::from(bytes[at + 26]);
            let body: usize = bytes[at + 27..at + 27 + n]
                .iter()
                .map(|&l| usize::from(l))
                .sum();
            let len = 27 + n + body;
            out.push(&bytes[at..at + len]);
            at += len;
        }
        out
    }

    fn page_granule(page: &[u8]) -> u64 {
        u64::from_le_bytes(page[6..14].try_into().unwrap())
    }

    #[test]
    fn crc_matches_the_ogg_specification() {
        assert_eq!(OGG_CRC.checksum(b"123456789"), OGG_CRC_ALGORITHM.check);
        // And not the lookalikes from the catalog.
        assert_ne!(
            crc::Crc::<u32>::new(&crc::CRC_32_MPEG_2).checksum(b"123456789"),
            OGG_CRC_ALGORITHM.check
        );
    }

    fn packet(i: usize, len: usize) -> Vec<u8> {
        (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
    }

    #[test]
    fn byte_identical_to_the_ogg_crate_for_the_same_page_boundaries() {
        let serial = 0x1234_5678;
        let comments = [("CALL_ID", "c-1"), ("PARTICIPANT", "alice")];
        let mut ours = OggOpusWriter::new(serial, head(1), &comments);
        ours.set_flush_interval(960 * 10);

        // The reference: the same header packets, each alone on a page at granule 0.
        let mut reference = PacketWriter::new(Vec::new());
        let hdrs = pages(ours.output());
        assert_eq!(hdrs.len(), 2);
        for page in &hdrs {
            let n = usize::from(page[26]);
            let body = page[27 + n..].to_vec();
            reference
                .write_packet(body, serial, PacketWriteEndInfo::EndPage, 0)
                .unwrap();
        }
        // Sizes include 255 multiples, a zero-length packet and multi-segment packets.
        let sizes = [80usize, 255, 0, 510, 300, 1, 254, 256, 80, 1000];
        let count = 25;
        let mut granule = 0;
        for i in 0..count {
            let p = packet(i, sizes[i % sizes.len()]);
            ours.write_packet(&p, 960);
            granule += 960;
            let end = if i + 1 == count {
                PacketWriteEndInfo::EndStream
            } else if granule % (960 * 10) == 0 {
                PacketWriteEndInfo::EndPage
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            reference.write_packet(p, serial, end, granule).unwrap();
        }
        ours.finish();
        let theirs = reference.into_inner();
        // Every page, EOS included, byte for byte: framing, lacing, flags, granules and CRC.
        assert_eq!(pages(ours.output()).len(), 2 + 3);
        assert_eq!(*ours.output(), theirs);
    }

    #[test]
    fn read_back_by_the_ogg_crate_with_granules_and_flags() {
        let mut w = OggOpusWriter::new(7, head(2), &[("CALL_ID", "x")]);
        let mut sent = Vec::new();
        for i in 0..260 {
            let p = packet(i, 40 + i % 100);
            w.write_packet(&p, 960);
            sent.push(p);
        }
        w.finish();
        let bytes = w.output().clone();
        let got = read_all(&bytes);
        assert_eq!(got.len(), 2 + sent.len());
        assert!(got[0].first_in_stream());
        assert_eq!(&got[0].data[..8], b"OpusHead");
        assert_eq!(got[0].data[9], 2);
        assert_eq!(u16::from_le_bytes([got[0].data[10], got[0].data[11]]), 312);
        assert_eq!(&got[1].data[..8], b"OpusTags");
        assert_eq!(got[0].absgp_page(), 0);
        assert_eq!(got[1].absgp_page(), 0);
        for (i, (g, s)) in got[2..].iter().zip(&sent).enumerate() {
            assert_eq!(&g.data, s, "packet {i}");
            assert_eq!(g.stream_serial(), 7);
            if g.last_in_page() {
                // The page granule is the end of its last packet.
                assert_eq!(g.absgp_page(), 960 * (i as u64 + 1));
            }
        }
        assert!(got.last().unwrap().last_in_stream());
        // BOS only on the first page, EOS only on the last.
        let all = pages(&bytes);
        for (i, page) in all.iter().enumerate() {
            assert_eq!(page[5] & FLAG_BOS != 0, i == 0);
            assert_eq!(page[5] & FLAG_EOS != 0, i == all.len() - 1);
            assert_eq!(page[5] & 0x01, 0, "no continuation");
            assert_eq!(
                u32::from_le_bytes(page[18..22].try_into().unwrap()),
                i as u32
            );
        }
        assert_eq!(w.pages_written(), all.len() as u64);
        // 260 x 20 ms with 1 s pages: 5 full pages and one EOS page of 10 packets.
        assert_eq!(all.len(), 2 + 6);
        assert_eq!(page_granule(all[all.len() - 1]), 260 * 960);
        assert_eq!(w.granule(), 260 * 960);
    }

    #[test]
    fn flush_holds_back_the_last_packet_so_the_eos_page_is_never_empty() {
        let mut w = OggOpusWriter::new(1, head(1), &[]);
        for i in 0..50 {
            w.write_packet(&packet(i, 80), 960);
        }
        // 50 x 20 ms = 1 s: the page closes when the next packet comes, not before.
        assert_eq!(w.pages_written(), 2);
        w.flush();
        assert_eq!(w.pages_written(), 3);
        // Only the held-back packet is pending: a second flush writes nothing.
        w.flush();
        assert_eq!(w.pages_written(), 3);
        w.finish();
        w.finish();
        w.write_packet(&[1, 2, 3], 960);
        w.flush();
        let bytes = w.output().clone();
        let all = pages(&bytes);
        assert_eq!(all.len(), 4);
        assert_eq!(page_granule(all[2]), 49 * 960);
        let eos = all[3];
        assert_eq!(eos[5], FLAG_EOS);
        assert_eq!(eos[26], 1);
        assert_eq!(page_granule(eos), 48_000);
        let got = read_all(&bytes);
        assert_eq!(got.len(), 52);
        assert_eq!(got[51].data, packet(49, 80));

        // No audio at all: an empty EOS page at granule 0.
        let mut w = OggOpusWriter::new(1, head(1), &[]);
        w.flush();
        w.finish();
        let bytes = w.output().clone();
        let all = pages(&bytes);
        assert_eq!(all.len(), 3);
        assert_eq!(
            (all[2][5], all[2][26], page_granule(all[2])),
            (FLAG_EOS, 0, 0)
        );
    }

    #[test]
    fn large_packets_and_exact_multiples_of_255() {
        let mut w = OggOpusWriter::new(2, head(1), &[]);
        let sizes = [
            255usize,
            510,
            765,
            254,
            256,
            7000,
            8191,
            8192,
            20_000,
            MAX_PACKET_LEN,
        ];
        for (i, &len) in sizes.iter().enumerate() {
            w.write_packet(&packet(i, len), 960);
        }
        w.finish();
        let bytes = w.output().clone();
        let got = read_all(&bytes);
        for (i, &len) in sizes.iter().enumerate() {
            assert_eq!(got[2 + i].data, packet(i, len));
        }
        // A packet that cannot fit on a page is replaced by silence of the same length.
        let mut w = OggOpusWriter::new(2, head(1), &[]);
        w.write_packet(&vec![0xF8; MAX_PACKET_LEN + 1], 2880);
        assert_eq!(w.oversize_replaced(), 1);
        assert_eq!(w.granule(), 2880);
        w.finish();
        let got = read_all(&w.output().clone());
        let silent: u32 = got[2..]
            .iter()
            .map(|p| opus::packet_samples_48k(&p.data).unwrap())
            .sum();
        assert_eq!(silent, 2880);
    }

    #[test]
    fn a_page_holds_at_most_255_packets() {
        let mut w = OggOpusWriter::new(3, head(1), &[]);
        w.set_flush_interval(u64::MAX);
        for i in 0..600 {
            w.write_packet(&packet(i, 3), 120);
        }
        w.finish();
        let bytes = w.output().clone();
        let all = pages(&bytes);
        let segs: Vec<u8> = all[2..].iter().map(|p| p[26]).collect();
        assert_eq!(segs, [255, 255, 90]);
        assert_eq!(page_granule(all[2]), 255 * 120);
        assert_eq!(read_all(&bytes).len(), 602);

        // A 300-byte packet needs two lacing values: the page closes before it overflows.
        let mut w = OggOpusWriter::new(3, head(1), &[]);
        w.set_flush_interval(u64::MAX);
        for i in 0..254 {
            w.write_packet(&packet(i, 1), 120);
        }
        w.write_packet(&packet(0, 300), 120);
        w.finish();
        let bytes = w.output().clone();
        let segs: Vec<u8> = pages(&bytes)[2..].iter().map(|p| p[26]).collect();
        assert_eq!(segs, [254, 2]);
    }

    #[test]
    fn body_limit_and_flush_interval() {
        let mut w = OggOpusWriter::new(4, head(1), &[]);
        w.set_flush_interval(u64::MAX);
        for i in 0..10 {
            w.write_packet(&packet(i, 1000), 960);
        }
        w.finish();
        let bytes = w.output().clone();
        let sizes: Vec<usize> = pages(&bytes)[2..].iter().map(|p| p.len()).collect();
        // Eight 1000-byte packets fit under 8 KiB, the ninth starts a new page.
        assert_eq!(sizes, [27 + 8 * 4 + 8000, 27 + 2 * 4 + 2000]);

        let mut w = OggOpusWriter::new(4, head(1), &[]);
        w.set_flush_interval(4800); // 100 ms
        for i in 0..25 {
            w.write_packet(&packet(i, 10), 960);
        }
        let bytes = w.output().clone();
        let grans: Vec<u64> = pages(&bytes)[2..].iter().map(|p| page_granule(p)).collect();
        // Pages close when the packet after the interval arrives: 21..=25 are pending.
        assert_eq!(grans, [4800, 9600, 14_400, 19_200]);
        w.flush();
        assert_eq!(page_granule(pages(w.output())[6]), 24_000 - 960);
        // Only the held-back packet is left: flush() writes nothing more.
        w.flush();
        assert_eq!(w.pages_written(), 7);
    }

    #[test]
    fn truncated_after_any_page_still_reads_every_packet_before_the_cut() {
        let mut w = OggOpusWriter::new(5, head(1), &[]);
        w.set_flush_interval(960 * 7);
        let mut sent = Vec::new();
        for i in 0..100 {
            let p = packet(i, 20 + (i * 13) % 400);
            w.write_packet(&p, 960);
            sent.push(p);
        }
        w.finish();
        let bytes = w.output().clone();
        let mut cut = 0;
        let mut audio_before = 0usize;
        for page in pages(&bytes) {
            cut += page.len();
            if page_granule(page) > 0 {
                audio_before = (page_granule(page) / 960) as usize;
            }
            let got = read_all(&bytes[..cut]);
            let audio: Vec<&Vec<u8>> = got.iter().skip(2).map(|p| &p.data).collect();
            assert_eq!(audio.len(), audio_before);
            assert!(audio.iter().zip(&sent).all(|(a, b)| *a == b));
        }
    }

    #[test]
    fn output_capacity_is_stable_after_warm_up() {
        let mut w = OggOpusWriter::new(6, head(1), &[]);
        let p = [0x55u8; 80];
        w.output().clear();
        for _ in 0..500 {
            w.write_packet(&p, 960);
            w.output().clear();
        }
        let cap = w.output().capacity();
        let ptr = w.output().as_ptr();
        for _ in 0..50_000 {
            w.write_packet(&p, 960);
            w.output().clear();
        }
        assert_eq!(w.output().capacity(), cap);
        assert_eq!(w.output().as_ptr(), ptr);
    }
}

/// End-to-end checks with real Opus audio, libopus and the reference command-line tools.
#[cfg(test)]
mod file_tests {
    use super::*;
    use audiopus::coder::{Decoder, Encoder};
    use audiopus::{Application, Channels, SampleRate};
    use std::process::Command;

    fn chans(channels: u8) -> Channels {
        if channels == 2 {
            Channels::Stereo
        } else {
            Channels::Mono
        }
    }

    /// Writes `seconds_before` of a sine, a `gap` of silence, then `seconds_after`, as a call
    /// recording would: the gap is filled with [`opus::silence_fill`].
    fn write_call(
        channels: u8,
        frames_before: usize,
        gap: u64,
        frames_after: usize,
    ) -> (Vec<u8>, u64) {
        let enc = Encoder::new(SampleRate::Hz48000, chans(channels), Application::Voip).unwrap();
        let pre_skip = enc.lookahead().unwrap() as u16;
        assert_eq!(pre_skip, 312, "libopus lookahead at 48 kHz");
        let mut w = OggOpusWriter::new(
            0xC0FF_EE00,
            OpusHead {
                channels,
                pre_skip,
                input_sample_rate: 48_000,
                output_gain: 0,
            },
            &[
                ("CALL_ID", "call-42"),
                ("PARTICIPANT", "alice@example.org"),
                ("START_TIME", "2026-01-02T03:04:05Z"),
            ],
        );
        let mut file = Vec::new();
        let mut buf = [0u8; 4000];
        let mut t = 0usize;
        let mut encode = |w: &mut OggOpusWriter, frames: usize| {
            for _ in 0..frames {
                let mut pcm = Vec::with_capacity(960 * usize::from(channels));
                for i in t..t + 960 {
                    let v = (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 48_000.0).sin();
                    for _ in 0..channels {
                        pcm.push((v * 12_000.0) as i16);
                    }
                }
                t += 960;
                let len = enc.encode(&pcm, &mut buf).unwrap();
                w.write_packet(&buf[..len], opus::packet_samples_48k(&buf[..len]).unwrap());
            }
        };
        encode(&mut w, frames_before);
        file.append(w.output());
        let covered = opus::silence_fill(gap, channels, |p, n| w.write_packet(p, n));
        encode(&mut w, frames_after);
        w.flush();
        file.append(w.output());
        w.finish();
        file.append(w.output());
        let total = (frames_before + frames_after) as u64 * 960 + covered;
        assert_eq!(w.granule(), total);
        (file, total)
    }

    /// Runs a tool on `path`; `None` when it is not installed.
    fn run(tool: &str, path: &std::path::Path) -> Option<String> {
        match Command::new(tool).arg(path).output() {
            Ok(out) => Some(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )),
            Err(e) => {
                println!("skipping {tool}: {e}");
                None
            }
        }
    }

    fn assert_clean(tool: &str, report: &str) {
        for line in report.lines() {
            let l = line.to_ascii_lowercase();
            assert!(
                !l.contains("warning") && !l.contains("error"),
                "{tool} complained: {line}\n{report}"
            );
        }
    }

    fn check_file(name: &str, channels: u8, before: usize, gap: u64, after: usize) {
        let (file, total) = write_call(channels, before, gap, after);
        let dir =
            std::env::temp_dir().join(format!("media-core-ogg-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, &file).unwrap();
        for tool in ["opusinfo", "ogginfo"] {
            if let Some(report) = run(tool, &path) {
                println!("{tool}:\n{report}");
                assert_clean(tool, &report);
                assert!(!report.contains("Padding: -1"), "{report}");
            }
        }

        // Decode every audio packet with libopus: the decoded length minus pre-skip is the
        // written duration, to the sample.
        let mut dec = Decoder::new(SampleRate::Hz48000, chans(channels)).unwrap();
        let mut reader = ogg::PacketReader::new(std::io::Cursor::new(&file[..]));
        let mut pcm = vec![0i16; 5760 * 2];
        let mut decoded = 0u64;
        let mut index = 0;
        let mut last_granule = 0;
        while let Some(p) = reader.read_packet().unwrap() {
            if index >= 2 {
                decoded += dec.decode(Some(&p.data[..]), &mut pcm[..], false).unwrap() as u64;
            }
            last_granule = p.absgp_page();
            index += 1;
        }
        assert_eq!(decoded, total);
        assert_eq!(last_granule, total);
        assert_eq!(decoded - 312, total - 312, "playable = granule - pre_skip");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn real_opus_with_a_silence_gap_passes_opusinfo_ogginfo_and_libopus() {
        // 2 s of tone, a 1.2345 s outage (rounded down to 2.5 ms), 1.5 s of tone.
        check_file("mono.opus", 1, 100, 59_256, 75);
        check_file("stereo.opus", 2, 100, 59_256, 75);
    }
}
