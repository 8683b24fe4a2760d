//! Opus packet facts read from the TOC byte (RFC 6716 section 3) and silence packets.
//!
//! The recorder never decodes audio: it copies the sender's Opus packets into Ogg pages. It
//! still needs two facts per packet, both in the first bytes: how many 48 kHz samples the
//! packet covers (to advance the Ogg granule position) and whether it is stereo. Gaps in the
//! call (loss, outages, DTX pauses) are filled with packets that decode to digital silence so
//! that file time equals call time; those come from [`silence_fill`].

/// Why a packet's duration or channel count could not be read.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum OpusError {
    /// A zero-length packet has no TOC byte (RFC 6716 3.1 requires at least one byte).
    #[error("empty Opus packet")]
    Empty,
    /// A code 3 packet without its frame count byte (RFC 6716 3.2.5, rule R6 and R7).
    #[error("code 3 Opus packet without a frame count byte")]
    MissingFrameCount,
    /// A code 3 packet whose frame count byte says zero frames (RFC 6716 3.2.5, rule R5).
    #[error("code 3 Opus packet with zero frames")]
    BadFrameCount,
    /// More than 120 ms of audio in one packet (RFC 6716 3.2.5, rule R5).
    #[error("Opus packet longer than 120 ms")]
    TooLong,
}

/// Samples at 48 kHz in one frame of each of the 32 TOC configurations (RFC 6716 table 2).
///
/// Opus always decodes at any rate, so durations are expressed at 48 kHz regardless of the
/// coded bandwidth; that is also the unit of Ogg Opus granule positions (RFC 7845 4).
const FRAME_SAMPLES_48K: [u32; 32] = [
    // SILK-only NB, MB, WB: 10, 20, 40, 60 ms.
    480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 1920, 2880,
    // Hybrid SWB, FB: 10, 20 ms.
    480, 960, 480, 960, // CELT-only NB, WB, SWB, FB: 2.5, 5, 10, 20 ms.
    120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960,
];

/// The longest packet RFC 6716 allows: 120 ms at 48 kHz.
pub const MAX_PACKET_SAMPLES_48K: u32 = 5760;

/// Samples at 48 kHz of one Opus packet, from its TOC byte and (code 3) frame count byte.
/// Rejects packets longer than 120 ms and malformed code-3 headers.
///
/// Only the header is checked: frame lengths and padding are the decoder's business, and the
/// recorder stores packets as received.
pub fn packet_samples_48k(packet: &[u8]) -> Result<u32, OpusError> {
    let toc = *packet.first().ok_or(OpusError::Empty)?;
    let per_frame = FRAME_SAMPLES_48K[usize::from(toc >> 3)];
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => {
            let count = packet.get(1).ok_or(OpusError::MissingFrameCount)? & 0x3F;
            if count == 0 {
                return Err(OpusError::BadFrameCount);
            }
            u32::from(count)
        }
    };
    let samples = per_frame * frames;
    if samples > MAX_PACKET_SAMPLES_48K {
        return Err(OpusError::TooLong);
    }
    Ok(samples)
}

/// Channel count signalled by the TOC stereo bit (1 or 2).
pub fn packet_channels(packet: &[u8]) -> Result<u8, OpusError> {
    let toc = *packet.first().ok_or(OpusError::Empty)?;
    Ok(if toc & 0x04 != 0 { 2 } else { 1 })
}

/// TOC bytes (mono; `| 0x04` makes them stereo) of the CELT-only fullband configurations
/// used for silence, by frame duration.
///
/// CELT-only because a CELT frame can carry the one-bit "silence" flag as its first symbol,
/// after which the decoder reads nothing more and outputs zeros (after fading out whatever
/// it was playing); SILK has no such flag.
const TOC_CELT_FB_20MS: u8 = 31 << 3;
const TOC_CELT_FB_10MS: u8 = 30 << 3;
const TOC_CELT_FB_5MS: u8 = 29 << 3;
const TOC_CELT_FB_2_5MS: u8 = 28 << 3;

/// One CELT frame whose range-coded first symbol is the silence flag set.
///
/// Two bytes, not one: libopus treats a frame of 0 or 1 byte as lost and runs packet loss
/// concealment, which is not silence. The same two bytes work for every CELT frame size and
/// for stereo, because nothing after the flag is read.
const CELT_SILENCE_FRAME: [u8; 2] = [0xFF, 0xFE];

/// The smallest step of silence: one 2.5 ms CELT frame.
pub const SILENCE_GRANULE_48K: u64 = 120;

/// Packets that decode to digital silence, used to fill gaps (loss, outages, DTX pauses) so
/// that file time equals call time.
///
/// Calls `emit(packet, samples_48k)` for a sequence of CELT-only silence packets covering
/// `samples` rounded DOWN to a multiple of 120 (2.5 ms); returns the samples actually
/// covered. The largest packets come first (code 3 packets of up to six 20 ms frames,
/// 120 ms, then one code 0 packet each of 10, 5 and 2.5 ms as needed), so a long outage costs
/// about 117 bytes per second of file. Stereo when `channels == 2`, mono otherwise. Nothing is
/// allocated: each packet is built in a 14-byte stack buffer.
pub fn silence_fill(samples: u64, channels: u8, mut emit: impl FnMut(&[u8], u32)) -> u64 {
    let stereo = if channels == 2 { 0x04 } else { 0x00 };
    let covered = samples - samples % SILENCE_GRANULE_48K;
    let mut left = covered;

    // TOC, frame count byte, then six two-byte frames: the largest packet we emit.
    let mut buf = [0u8; 2 + 6 * CELT_SILENCE_FRAME.len()];
    while left >= 960 {
        let frames = (left / 960).min(6) as usize;
        let len = if frames == 1 {
            // Code 0: one frame, no count byte.
            buf[0] = TOC_CELT_FB_20MS | stereo;
            buf[1..3].copy_from_slice(&CELT_SILENCE_FRAME);
            3
        } else {
            // Code 3, CBR, no padding: the count byte alone says how the remaining bytes
            // split into equal frames (RFC 6716 3.2.5).
            buf[0] = TOC_CELT_FB_20MS | stereo | 0x03;
            buf[1] = frames as u8;
            for f in 0..frames {
                let at = 2 + f * CELT_SILENCE_FRAME.len();
                buf[at..at + 2].copy_from_slice(&CELT_SILENCE_FRAME);
            }
            2 + frames * CELT_SILENCE_FRAME.len()
        };
        let n = 960 * frames as u32;
        emit(&buf[..len], n);
        left -= u64::from(n);
    }
    // The remainder is below 20 ms: at most one each of 10, 5 and 2.5 ms.
    for (toc, n) in [
        (TOC_CELT_FB_10MS, 480u32),
        (TOC_CELT_FB_5MS, 240),
        (TOC_CELT_FB_2_5MS, 120),
    ] {
        if left >= u64::from(n) {
            buf[0] = toc | stereo;
            buf[1..3].copy_from_slice(&CELT_SILENCE_FRAME);
            emit(&buf[..3], n);
            left -= u64::from(n);
        }
    }
    debug_assert_eq!(left, 0);
    covered
}

#[cfg(test)]
mod tests {
    use super::*;
    use audiopus::coder::{Decoder, Encoder};
    use audiopus::{Application, Channels, SampleRate};

    #[test]
    fn durations_from_toc_rfc6716_table2() {
        // SILK NB 10 ms, code 0.
        assert_eq!(packet_samples_48k(&[0x00]), Ok(480));
        // SILK WB 60 ms, code 0.
        assert_eq!(packet_samples_48k(&[11 << 3]), Ok(2880));
        // SILK WB 60 ms, code 1 (two frames) = 120 ms, the maximum.
        assert_eq!(packet_samples_48k(&[(11 << 3) | 1, 0, 0]), Ok(5760));
        // Hybrid FB 20 ms, code 2.
        assert_eq!(packet_samples_48k(&[(15 << 3) | 2, 1, 0]), Ok(1920));
        // CELT FB 2.5 ms, code 3, 48 frames = 120 ms, with VBR and padding flags set.
        assert_eq!(packet_samples_48k(&[(28 << 3) | 3, 0xC0 | 48]), Ok(5760));
        // CELT FB 20 ms, stereo, code 3, 6 frames.
        assert_eq!(packet_samples_48k(&[0xFC | 3, 6]), Ok(5760));
    }

    #[test]
    fn malformed_headers_are_errors() {
        assert_eq!(packet_samples_48k(&[]), Err(OpusError::Empty));
        assert_eq!(packet_channels(&[]), Err(OpusError::Empty));
        assert_eq!(
            packet_samples_48k(&[0xF8 | 3]),
            Err(OpusError::MissingFrameCount)
        );
        assert_eq!(
            packet_samples_48k(&[0xF8 | 3, 0x80]),
            Err(OpusError::BadFrameCount)
        );
        // 7 x 20 ms = 140 ms.
        assert_eq!(packet_samples_48k(&[0xF8 | 3, 7]), Err(OpusError::TooLong));
        // 49 x 2.5 ms.
        assert_eq!(
            packet_samples_48k(&[(28 << 3) | 3, 49]),
            Err(OpusError::TooLong)
        );
        // SILK 60 ms x 3.
        assert_eq!(
            packet_samples_48k(&[(3 << 3) | 3, 3]),
            Err(OpusError::TooLong)
        );
    }

    #[test]
    fn channels_from_stereo_bit() {
        assert_eq!(packet_channels(&[0xF8]), Ok(1));
        assert_eq!(packet_channels(&[0xFC]), Ok(2));
    }

    fn collect(samples: u64, channels: u8) -> (Vec<(Vec<u8>, u32)>, u64) {
        let mut out = Vec::new();
        let covered = silence_fill(samples, channels, |p, n| out.push((p.to_vec(), n)));
        (out, covered)
    }

    #[test]
    fn silence_fill_covers_rounded_down_largest_first() {
        for &(samples, want_sizes) in &[
            (0u64, &[][..]),
            (119, &[][..]),
            (120, &[120u32][..]),
            (959, &[480, 240, 120][..]),
            (960, &[960][..]),
            (5760, &[5760][..]),
            (5760 + 1920 + 480 + 120 + 7, &[5760, 1920, 480, 120][..]),
            (3 * 5760 + 960, &[5760, 5760, 5760, 960][..]),
        ] {
            for channels in [1u8, 2] {
                let (packets, covered) = collect(samples, channels);
                assert_eq!(covered, samples - samples % 120);
                let sizes: Vec<u32> = packets.iter().map(|p| p.1).collect();
                assert_eq!(sizes, want_sizes, "samples {samples}");
                for (p, n) in &packets {
                    // Our own parser agrees with what we claim for each packet.
                    assert_eq!(packet_samples_48k(p), Ok(*n));
                    assert_eq!(packet_channels(p), Ok(channels));
                }
            }
        }
    }

    fn channels_of(channels: u8) -> Channels {
        if channels == 2 {
            Channels::Stereo
        } else {
            Channels::Mono
        }
    }

    /// Every packet shape `silence_fill` can emit: code 0 at 20/10/5/2.5 ms and code 3 with
    /// 2..=6 frames of 20 ms.
    fn every_silence_shape(channels: u8) -> Vec<(Vec<u8>, u32)> {
        let mut shapes = Vec::new();
        for samples in [120u64, 240, 480, 960, 1920, 2880, 3840, 4800, 5760] {
            let (packets, _) = collect(samples, channels);
            assert_eq!(packets.len(), 1);
            shapes.extend(packets);
        }
        shapes
    }

    /// Decodes `packet` and returns the PCM, checking that libopus reports the duration we
    /// claimed.
    fn decode(dec: &mut Decoder, packet: &[u8], samples: u32, channels: u8) -> Vec<i16> {
        let mut pcm = vec![0i16; 5760 * 2];
        let n = dec
            .decode(Some(packet), &mut pcm[..], false)
            .expect("libopus decodes our silence packet");
        assert_eq!(n as u32, samples, "packet {packet:02x?}");
        pcm.truncate(n * usize::from(channels));
        pcm
    }

    #[test]
    fn silence_packets_decode_to_zero_with_libopus() {
        for channels in [1u8, 2] {
            for (packet, samples) in every_silence_shape(channels) {
                // A fresh decoder for each shape, so that each is proven on its own.
                let mut dec = Decoder::new(SampleRate::Hz48000, channels_of(channels)).unwrap();
                let pcm = decode(&mut dec, &packet, samples, channels);
                assert!(
                    pcm.iter().all(|&s| s.unsigned_abs() <= 1),
                    "non-silent output for {packet:02x?}"
                );
            }
        }
    }

    fn sine(samples: usize, channels: u8, start: usize) -> Vec<i16> {
        let mut pcm = Vec::with_capacity(samples * usize::from(channels));
        for i in start..start + samples {
            let t = i as f64 / 48_000.0;
            // Two tones and a slow vibrato: enough structure to exercise SILK and CELT.
            let v = 0.4 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                + 0.2 * (2.0 * std::f64::consts::PI * (1200.0 + 50.0 * (7.0 * t).sin()) * t).sin();
            for _ in 0..channels {
                pcm.push((v * 16_000.0) as i16);
            }
        }
        pcm
    }

    #[test]
    fn silence_after_speech_fades_out_without_error() {
        for app in [Application::Voip, Application::Audio] {
            for channels in [1u8, 2] {
                for (packet, samples) in every_silence_shape(channels) {
                    let enc =
                        Encoder::new(SampleRate::Hz48000, channels_of(channels), app).unwrap();
                    let mut dec = Decoder::new(SampleRate::Hz48000, channels_of(channels)).unwrap();
                    let mut buf = [0u8; 1500];
                    let mut loud = false;
                    for frame in 0..25 {
                        let pcm = sine(960, channels, frame * 960);
                        let len = enc.encode(&pcm, &mut buf).unwrap();
                        let out = decode(&mut dec, &buf[..len], 960, channels);
                        loud |= out.iter().any(|&s| s.unsigned_abs() > 1000);
                    }
                    assert!(loud, "the speech-like part must be audible");
                    // The first milliseconds of silence may carry the fade-out of the
                    // previous signal (CELT overlap, and a 5 ms cross-fade when the mode
                    // switches from SILK); after 10 ms everything must be silent.
                    let mut pcm = Vec::new();
                    while pcm.len() < 2 * 5760 * usize::from(channels) {
                        pcm.extend(decode(&mut dec, &packet, samples, channels));
                    }
                    let settled = 480 * usize::from(channels);
                    let last_loud = pcm.iter().rposition(|&s| s.unsigned_abs() > 1);
                    assert!(
                        last_loud.is_none_or(|i| i < settled),
                        "{app:?} {channels}ch {packet:02x?} did not settle to silence: \
                         last non-zero sample at {last_loud:?}"
                    );
                }
            }
        }
    }
}
