//! Transcoding of non-Opus calls to Opus: G.711 (PCMU/PCMA, from SIP trunks and SBC
//! captures) and L16 (linear PCM, e.g. the Teams media forwarder's L16/16000) are decoded
//! and re-encoded as 20 ms Opus frames, so every track is an Ogg Opus file.
//!
//! Opus calls never come here: they are remuxed bit-exact. See `docs/transcoding.md`.
//!
//! The per-packet path allocates nothing: the 20 ms PCM frame being filled and the Opus
//! output buffer are fixed-size boxes allocated once in [`Transcoder::new`], G.711 is
//! expanded through two 256-entry tables built at compile time, and resampling (only for
//! L16 rates libopus does not take) is a streaming linear interpolator with two samples of
//! state.

use audiopus::coder::Encoder;
use audiopus::{Application, Bitrate, Channels, SampleRate};

/// Non-Opus audio formats we transcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    /// G.711 μ-law, 8 kHz mono (static payload type 0).
    Pcmu,
    /// G.711 A-law, 8 kHz mono (static payload type 8).
    Pcma,
    /// Linear 16-bit big-endian PCM, interleaved (RFC 3551 4.5.11).
    L16 {
        /// Sample rate and RTP clock rate, Hz.
        rate: u32,
        /// 1 or 2 (Opus encodes no more).
        channels: u8,
    },
}

/// Rates libopus takes as encoder input.
const OPUS_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];

/// Granule rate of Ogg Opus, and the rate every Opus packet's duration is counted in.
const RATE_48K: u32 = 48_000;

/// Duration of every emitted Opus packet in 48 kHz samples (20 ms).
pub const FRAME_SAMPLES_48K: u32 = 960;

/// Largest L16 rate we accept; anything above is not telephony and is rejected, not guessed.
pub const MAX_L16_RATE: u32 = 192_000;

impl AudioFormat {
    /// PT 0 -> Pcmu, PT 8 -> Pcma, PT 10 -> L16 44100 stereo, PT 11 -> L16 44100 mono
    /// (RFC 3551 table 4); others None.
    pub fn from_static_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(AudioFormat::Pcmu),
            8 => Some(AudioFormat::Pcma),
            10 => Some(AudioFormat::L16 {
                rate: 44_100,
                channels: 2,
            }),
            11 => Some(AudioFormat::L16 {
                rate: 44_100,
                channels: 1,
            }),
            _ => None,
        }
    }

    /// From an SDP `a=rtpmap` entry (`PCMU/8000`, `L16/16000/1`, ...), for dynamic payload
    /// types. The encoding name is case-insensitive; `channels` is 1 when the entry has none.
    /// G.711 at another rate than 8000 or with more than one channel is not a format we know.
    pub fn from_rtpmap(encoding: &str, rate: u32, channels: u8) -> Option<Self> {
        if encoding.eq_ignore_ascii_case("PCMU") && rate == 8_000 && channels == 1 {
            Some(AudioFormat::Pcmu)
        } else if encoding.eq_ignore_ascii_case("PCMA") && rate == 8_000 && channels == 1 {
            Some(AudioFormat::Pcma)
        } else if encoding.eq_ignore_ascii_case("L16") {
            Some(AudioFormat::L16 { rate, channels })
        } else {
            None
        }
    }

    /// The codec's name as in SDP (`PCMU`, `PCMA`, `L16`).
    pub fn name(self) -> &'static str {
        match self {
            AudioFormat::Pcmu => "PCMU",
            AudioFormat::Pcma => "PCMA",
            AudioFormat::L16 { .. } => "L16",
        }
    }

    /// RTP clock rate (8000 for G.711).
    pub fn clock_rate(self) -> u32 {
        match self {
            AudioFormat::Pcmu | AudioFormat::Pcma => 8_000,
            AudioFormat::L16 { rate, .. } => rate,
        }
    }

    /// Channels in the payload.
    pub fn channels(self) -> u8 {
        match self {
            AudioFormat::Pcmu | AudioFormat::Pcma => 1,
            AudioFormat::L16 { channels, .. } => channels,
        }
    }

    /// The rate given to the Opus encoder: the input rate if libopus accepts it
    /// (8/12/16/24/48 kHz), else 48000, and the input is resampled by linear interpolation
    /// (44.1, 22.05, 32 kHz, ...).
    pub fn opus_input_rate(self) -> u32 {
        let r = self.clock_rate();
        if OPUS_RATES.contains(&r) {
            r
        } else {
            RATE_48K
        }
    }

    /// Bytes of one sample frame (one sample of every channel) in the payload.
    fn bytes_per_sample_frame(self) -> usize {
        match self {
            AudioFormat::Pcmu | AudioFormat::Pcma => 1,
            AudioFormat::L16 { channels, .. } => 2 * usize::from(channels),
        }
    }
}

/// Why a [`Transcoder`] cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// Opus encodes mono or stereo only.
    #[error("unsupported channel count {0} (Opus takes 1 or 2)")]
    UnsupportedChannels(u8),
    /// A rate of 0, or above [`MAX_L16_RATE`].
    #[error("unsupported sample rate {0} Hz (1..={MAX_L16_RATE})")]
    UnsupportedRate(u32),
    /// libopus refused to create or configure the encoder.
    #[error("opus encoder: {0}")]
    Opus(#[from] audiopus::Error),
}

/// Room for one Opus packet: a 20 ms frame is at most 1275 bytes (RFC 6716 3.2.1).
const MAX_PACKET: usize = 1275;

/// Default encoder complexity: moderate. 10 costs ~2x the CPU of 5 on G.711 input for a
/// difference nobody hears on telephone-band speech, and a bot holds thousands of streams
/// (measured: docs/transcoding.md).
pub const DEFAULT_COMPLEXITY: u8 = 5;

/// Decodes one format and re-encodes it as 20 ms Opus frames (libopus, VoIP application,
/// 24 kbit/s for 8 kHz input, 32 kbit/s for wider mono, 48 kbit/s stereo; VBR, complexity 5).
pub struct Transcoder {
    format: AudioFormat,
    opus_rate: u32,
    framer: Framer,
    /// Present when the input rate is not one libopus takes.
    resampler: Option<Linear>,
    pre_skip: u16,
}

/// Collects PCM at the encoder's rate into one 20 ms frame and encodes it when full.
struct Framer {
    encoder: Encoder,
    channels: usize,
    /// One 20 ms frame, interleaved, at the encoder's rate.
    frame: Box<[i16]>,
    /// Values (not sample frames) in `frame`.
    fill: usize,
    packet: Box<[u8]>,
    encode_errors: u64,
}

impl Framer {
    #[inline]
    fn put(&mut self, x: [i16; 2], emit: &mut impl FnMut(&[u8], u32)) {
        let ch = self.channels;
        self.frame[self.fill..self.fill + ch].copy_from_slice(&x[..ch]);
        self.fill += ch;
        if self.fill == self.frame.len() {
            self.encode(emit);
        }
    }

    fn encode(&mut self, emit: &mut impl FnMut(&[u8], u32)) {
        match self.encoder.encode(&self.frame, &mut self.packet) {
            Ok(n) => emit(&self.packet[..n], FRAME_SAMPLES_48K),
            Err(_) => {
                // Cannot happen with a valid frame size and buffer; if libopus still fails,
                // keep the time line with 20 ms of silence and count it.
                self.encode_errors += 1;
                crate::opus::silence_fill(
                    u64::from(FRAME_SAMPLES_48K),
                    self.channels as u8,
                    |p, s| emit(p, s),
                );
            }
        }
        self.fill = 0;
    }
}

/// Streaming linear-interpolation resampler to 48 kHz, exact integer positions (no drift
/// over hours). Output sample k sits at input position k * from / 48000.
struct Linear {
    from: u64,
    /// Position of the next output sample in input samples times 48000, relative to `prev`
    /// (0 = `prev`, 48000 = the next input sample).
    pos: u64,
    prev: [i16; 2],
}

impl Linear {
    fn new(from: u32) -> Self {
        Linear {
            from: u64::from(from),
            // The first input sample is output as it is: no added delay.
            pos: u64::from(RATE_48K),
            prev: [0; 2],
        }
    }

    fn reset(&mut self) {
        *self = Linear::new(self.from as u32);
    }

    #[inline]
    fn push(&mut self, x: [i16; 2], mut out: impl FnMut([i16; 2])) {
        let to = u64::from(RATE_48K);
        while self.pos <= to {
            let lerp = |a: i16, b: i16| {
                let d = i64::from(b) - i64::from(a);
                (i64::from(a) + d * self.pos as i64 / to as i64) as i16
            };
            out([lerp(self.prev[0], x[0]), lerp(self.prev[1], x[1])]);
            self.pos += self.from;
        }
        self.pos -= to;
        self.prev = x;
    }
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoder")
            .field("format", &self.format())
            .field("pending_samples_48k", &self.pending_samples_48k())
            .finish_non_exhaustive()
    }
}

impl Transcoder {
    /// An encoder for `format` at [`DEFAULT_COMPLEXITY`]; fails for more than 2 channels or
    /// a rate of 0 or above [`MAX_L16_RATE`].
    pub fn new(format: AudioFormat) -> Result<Self, TranscodeError> {
        Self::with_complexity(format, DEFAULT_COMPLEXITY)
    }

    /// As [`Transcoder::new`] with libopus complexity `complexity` (0..=10; CPU per packet
    /// roughly halves from 5 to 1, see docs/transcoding.md).
    pub fn with_complexity(format: AudioFormat, complexity: u8) -> Result<Self, TranscodeError> {
        let channels = format.channels();
        let opus_channels = match channels {
            1 => Channels::Mono,
            2 => Channels::Stereo,
            c => return Err(TranscodeError::UnsupportedChannels(c)),
        };
        let rate = format.clock_rate();
        if rate == 0 || rate > MAX_L16_RATE {
            return Err(TranscodeError::UnsupportedRate(rate));
        }
        let opus_rate = format.opus_input_rate();
        let sr = match opus_rate {
            8_000 => SampleRate::Hz8000,
            12_000 => SampleRate::Hz12000,
            16_000 => SampleRate::Hz16000,
            24_000 => SampleRate::Hz24000,
            _ => SampleRate::Hz48000,
        };
        let mut encoder = Encoder::new(sr, opus_channels, Application::Voip)?;
        let bitrate = match (channels, rate) {
            (2, _) => 48_000,
            (_, r) if r <= 8_000 => 24_000,
            _ => 32_000,
        };
        encoder.set_bitrate(Bitrate::BitsPerSecond(bitrate))?;
        encoder.set_complexity(complexity)?;
        // OPUS_GET_LOOKAHEAD is in samples at the encoder's rate; OpusHead wants 48 kHz.
        let lookahead = encoder.lookahead()? * (RATE_48K / opus_rate);
        let pre_skip = u16::try_from(lookahead).unwrap_or(u16::MAX);
        let frame_len = (opus_rate / 50) as usize * usize::from(channels);
        Ok(Transcoder {
            format,
            opus_rate,
            framer: Framer {
                encoder,
                channels: usize::from(channels),
                frame: vec![0; frame_len].into_boxed_slice(),
                fill: 0,
                packet: vec![0; MAX_PACKET].into_boxed_slice(),
                encode_errors: 0,
            },
            resampler: (opus_rate != rate).then(|| Linear::new(rate)),
            pre_skip,
        })
    }

    /// The format this transcoder decodes.
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// Decodes `payload` (a whole RTP payload of this format; for L16 an odd trailing byte,
    /// or an incomplete last sample frame, is ignored) and appends its samples; calls
    /// `emit(opus_packet, 960)` for each complete 20 ms frame. Returns the number of input
    /// samples (per channel) the payload held.
    pub fn push(&mut self, payload: &[u8], mut emit: impl FnMut(&[u8], u32)) -> usize {
        let per = self.format.bytes_per_sample_frame();
        let stereo = self.format.channels() == 2;
        let samples = payload.chunks_exact(per);
        let n = samples.len();
        match self.format {
            AudioFormat::Pcmu => {
                for &b in payload {
                    self.sample([ULAW[usize::from(b)], 0], &mut emit);
                }
            }
            AudioFormat::Pcma => {
                for &b in payload {
                    self.sample([ALAW[usize::from(b)], 0], &mut emit);
                }
            }
            AudioFormat::L16 { .. } => {
                for s in samples {
                    let l = i16::from_be_bytes([s[0], s[1]]);
                    let r = if stereo {
                        i16::from_be_bytes([s[2], s[3]])
                    } else {
                        0
                    };
                    self.sample([l, r], &mut emit);
                }
            }
        }
        n
    }

    #[inline]
    fn sample(&mut self, x: [i16; 2], emit: &mut impl FnMut(&[u8], u32)) {
        match self.resampler.as_mut() {
            None => self.framer.put(x, emit),
            Some(r) => {
                let framer = &mut self.framer;
                r.push(x, |y| framer.put(y, emit));
            }
        }
    }

    /// Samples (at 48 kHz) buffered but not yet emitted.
    pub fn pending_samples_48k(&self) -> u32 {
        let per_channel = (self.framer.fill / self.framer.channels) as u32;
        per_channel * (RATE_48K / self.opus_rate)
    }

    /// Pads the partial frame with silence and emits it (before a gap in the time line, and
    /// at the end of the stream); returns the 48 kHz samples of padding added (0 if nothing
    /// was pending). The resampler restarts too: what follows a gap is not interpolated
    /// with what preceded it.
    pub fn flush(&mut self, mut emit: impl FnMut(&[u8], u32)) -> u32 {
        if let Some(r) = self.resampler.as_mut() {
            r.reset();
        }
        let pending = self.pending_samples_48k();
        if pending == 0 {
            return 0;
        }
        let f = &mut self.framer;
        f.frame[f.fill..].fill(0);
        f.encode(&mut emit);
        FRAME_SAMPLES_48K - pending
    }

    /// The encoder's lookahead in 48 kHz samples (for OpusHead pre-skip), from libopus's
    /// OPUS_GET_LOOKAHEAD at the encoder's rate.
    pub fn pre_skip(&self) -> u16 {
        self.pre_skip
    }

    /// Channels of the emitted Opus stream (those of the input).
    pub fn channels(&self) -> u8 {
        self.framer.channels as u8
    }

    /// Frames libopus failed to encode and that were emitted as 20 ms of silence instead
    /// (expected to stay 0).
    pub fn encode_errors(&self) -> u64 {
        self.framer.encode_errors
    }
}

/// G.711 μ-law expansion to 16-bit linear (ITU-T G.711 (11/88) table 2, as in the
/// reference `ulaw2linear`): invert the code, rebuild the segment's biased magnitude
/// ((mantissa << 3) + 0x84) << segment, remove the bias of 0x84 (132), apply the sign.
/// Result range -32124..=32124.
const fn ulaw_expand(code: u8) -> i16 {
    let u = !code;
    let t = ((((u & 0x0f) as i32) << 3) + 0x84) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

/// G.711 A-law expansion to 16-bit linear (ITU-T G.711 (11/88) table 1, as in the
/// reference `alaw2linear`): undo the even-bit inversion (XOR 0x55), rebuild the magnitude
/// from mantissa and segment with the half-step offset (8 in segment 0, 0x108 above, then
/// shifted by segment - 1), apply the sign (bit 7 set = positive).
/// Result range -32256..=32256.
const fn alaw_expand(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0f) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    t = match seg {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (seg - 1),
    };
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

const fn ulaw_table() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_expand(i as u8);
        i += 1;
    }
    t
}

const fn alaw_table() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_expand(i as u8);
        i += 1;
    }
    t
}

static ULAW: [i16; 256] = ulaw_table();
static ALAW: [i16; 256] = alaw_table();

/// G.711 μ-law code to 16-bit linear PCM (ITU-T G.711).
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW[usize::from(code)]
}

/// G.711 A-law code to 16-bit linear PCM (ITU-T G.711).
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW[usize::from(code)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use audiopus::coder::Decoder;

    #[test]
    fn g711_known_values() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }

    #[test]
    fn g711_tables_are_monotonic_per_sign() {
        // Codes ordered by magnitude map to strictly increasing magnitudes.
        for half in [0x00u8, 0x80] {
            let mags: Vec<i32> = (0..128u8)
                .map(|i| i32::from(ulaw_to_linear(half | (0x7f - i))).abs())
                .collect();
            assert!(mags.windows(2).all(|w| w[0] < w[1] || w[0] == 0));
        }
    }

    /// sox's expansion of all 256 codes of `encoding` (`mu-law` / `a-law`), or None when
    /// sox is not installed.
    fn sox_expand(encoding: &str) -> Option<Vec<i16>> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = match Command::new("sox")
            .args([
                "-D", "-t", "raw", "-e", encoding, "-r", "8000", "-c", "1", "-",
            ])
            .args(["-t", "raw", "-e", "signed", "-b", "16", "-L", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(_) => {
                eprintln!("sox not installed, skipping the G.711 comparison");
                return None;
            }
        };
        let codes: Vec<u8> = (0..=255).collect();
        child.stdin.take().unwrap().write_all(&codes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(
            out.stdout
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect(),
        )
    }

    #[test]
    fn g711_tables_match_sox() {
        for (enc, f) in [
            ("mu-law", ulaw_to_linear as fn(u8) -> i16),
            ("a-law", alaw_to_linear),
        ] {
            let Some(want) = sox_expand(enc) else { return };
            assert_eq!(want.len(), 256, "{enc}");
            for code in 0..=255u8 {
                assert_eq!(f(code), want[usize::from(code)], "{enc} code {code:#04x}");
            }
        }
    }

    #[test]
    fn static_payload_types() {
        use AudioFormat::*;
        assert_eq!(AudioFormat::from_static_payload_type(0), Some(Pcmu));
        assert_eq!(AudioFormat::from_static_payload_type(8), Some(Pcma));
        assert_eq!(
            AudioFormat::from_static_payload_type(10),
            Some(L16 {
                rate: 44_100,
                channels: 2
            })
        );
        assert_eq!(
            AudioFormat::from_static_payload_type(11),
            Some(L16 {
                rate: 44_100,
                channels: 1
            })
        );
        for pt in [3, 9, 13, 18, 96, 101, 111, 127] {
            assert_eq!(AudioFormat::from_static_payload_type(pt), None, "{pt}");
        }
        assert_eq!(AudioFormat::from_rtpmap("pcmu", 8000, 1), Some(Pcmu));
        assert_eq!(AudioFormat::from_rtpmap("PCMA", 16000, 1), None);
        assert_eq!(
            AudioFormat::from_rtpmap("L16", 16000, 1),
            Some(L16 {
                rate: 16_000,
                channels: 1
            })
        );
        assert_eq!(AudioFormat::from_rtpmap("opus", 48000, 2), None);
        assert_eq!(Pcmu.clock_rate(), 8000);
        assert_eq!(Pcma.opus_input_rate(), 8000);
        let l = |rate| L16 { rate, channels: 1 };
        assert_eq!(l(16_000).opus_input_rate(), 16_000);
        assert_eq!(l(12_000).opus_input_rate(), 12_000);
        for r in [44_100, 22_050, 32_000, 11_025, 96_000] {
            assert_eq!(l(r).opus_input_rate(), 48_000, "{r}");
        }
    }

    #[test]
    fn bad_formats_are_errors() {
        let l = |rate, channels| Transcoder::new(AudioFormat::L16 { rate, channels });
        assert!(matches!(
            l(16_000, 3),
            Err(TranscodeError::UnsupportedChannels(3))
        ));
        assert!(matches!(
            l(16_000, 0),
            Err(TranscodeError::UnsupportedChannels(0))
        ));
        assert!(matches!(l(0, 1), Err(TranscodeError::UnsupportedRate(0))));
        assert!(matches!(
            l(384_000, 1),
            Err(TranscodeError::UnsupportedRate(_))
        ));
        assert!(l(8_000, 2).is_ok());
    }

    // ---- helpers: sources, payloads, decoding ----

    /// `secs` of one sine per channel (interleaved) at `rate`.
    fn sines(rate: u32, freqs: &[f64], secs: f64, amp: f64) -> Vec<i16> {
        let n = (f64::from(rate) * secs).round() as usize;
        let mut v = Vec::with_capacity(n * freqs.len());
        for i in 0..n {
            for f in freqs {
                let t = i as f64 / f64::from(rate);
                v.push((amp * (2.0 * std::f64::consts::PI * f * t).sin()).round() as i16);
            }
        }
        v
    }

    /// The code whose expansion is nearest `x` (a compressor by exhaustive search).
    fn nearest(table: &[i16; 256], x: i16) -> u8 {
        (0..=255u8)
            .min_by_key(|&c| (i32::from(table[usize::from(c)]) - i32::from(x)).abs())
            .unwrap()
    }

    /// Encodes interleaved PCM into one payload of `format`.
    fn payload(format: AudioFormat, pcm: &[i16]) -> Vec<u8> {
        match format {
            AudioFormat::Pcmu => pcm.iter().map(|&x| nearest(&ULAW, x)).collect(),
            AudioFormat::Pcma => pcm.iter().map(|&x| nearest(&ALAW, x)).collect(),
            AudioFormat::L16 { .. } => pcm.iter().flat_map(|x| x.to_be_bytes()).collect(),
        }
    }

    /// Pushes `pcm` in payloads of `ms` milliseconds, flushes; returns the Opus packets.
    fn transcode(t: &mut Transcoder, pcm: &[i16], ms: u32) -> Vec<Vec<u8>> {
        let f = t.format;
        let per = (f.clock_rate() * ms / 1000) as usize * usize::from(f.channels());
        let mut packets = Vec::new();
        for chunk in pcm.chunks(per) {
            let n = t.push(&payload(f, chunk), |p, s| {
                assert_eq!(s, 960);
                packets.push(p.to_vec());
            });
            assert_eq!(n, chunk.len() / usize::from(f.channels()));
        }
        t.flush(|p, _| packets.push(p.to_vec()));
        packets
    }

    /// Decodes packets with libopus at 48 kHz; interleaved.
    fn decode(packets: &[Vec<u8>], channels: u8) -> Vec<i16> {
        let ch = if channels == 2 {
            audiopus::Channels::Stereo
        } else {
            audiopus::Channels::Mono
        };
        let mut dec = Decoder::new(SampleRate::Hz48000, ch).unwrap();
        let mut buf = vec![0i16; 5760 * usize::from(channels)];
        let mut out = Vec::new();
        for p in packets {
            let n = dec.decode(Some(&p[..]), &mut buf[..], false).unwrap();
            assert_eq!(n, 960);
            out.extend_from_slice(&buf[..n * usize::from(channels)]);
        }
        out
    }

    /// Normalised correlation of `x` with a sine of `freq` at 48 kHz whose phase is 0 at
    /// x's sample `-lag`, over samples [from, to).
    fn corr(x: &[f64], freq: f64, lag: i64, from: usize, to: usize) -> f64 {
        let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
        for (i, &xi) in x.iter().enumerate().take(to).skip(from) {
            let t = (i as i64 - lag) as f64 / 48_000.0;
            let y = (2.0 * std::f64::consts::PI * freq * t).sin();
            xy += xi * y;
            xx += xi * xi;
            yy += y * y;
        }
        xy / (xx * yy).sqrt()
    }

    /// Frequency from zero crossings over samples [from, to) at 48 kHz.
    fn zero_crossing_hz(x: &[f64], from: usize, to: usize) -> f64 {
        let n = x[from..to]
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        n as f64 / 2.0 / ((to - from) as f64 / 48_000.0)
    }

    /// 1 s of sine(s) through `format` in 20 ms payloads; checks length, frequency, phase
    /// (so the pre-skip is right), level, and channel order.
    fn round_trip(format: AudioFormat, freqs: &[f64]) {
        let mut t = Transcoder::new(format).unwrap();
        let ch = usize::from(format.channels());
        assert_eq!(t.channels(), format.channels());
        let amp = 10_000.0;
        let pcm = sines(format.clock_rate(), freqs, 1.0, amp);
        let packets = transcode(&mut t, &pcm, 20);
        assert_eq!(t.encode_errors(), 0);
        let out = decode(&packets, format.channels());
        let skip = usize::from(t.pre_skip());
        assert!(skip > 0 && skip < 960, "{format:?}: pre-skip {skip}");
        let len = out.len() / ch - skip;
        assert!(len.abs_diff(48_000) <= 960, "{format:?}: length {len}");
        let (from, to) = (2_400, 45_600); // skip 50 ms at both ends
        for (c, &f) in freqs.iter().enumerate() {
            let x: Vec<f64> = out
                .iter()
                .skip(skip * ch + c)
                .step_by(ch)
                .map(|&s| f64::from(s))
                .collect();
            let hz = zero_crossing_hz(&x, from, to);
            assert!((hz - f).abs() < f * 0.01, "{format:?} ch {c}: {hz} Hz");
            let (best_lag, best) = (-48..=48)
                .map(|lag| (lag, corr(&x, f, lag, from, to)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            eprintln!(
                "{format:?} ch {c}: pre-skip {skip}, best lag {best_lag}, corr {best:.4}, lag-0 corr {:.4}",
                corr(&x, f, 0, from, to)
            );
            assert!(best > 0.95, "{format:?} ch {c}: corr {best}");
            // Pre-skip right: the sine is where it was sent (within 0.25 ms).
            assert!(best_lag.abs() <= 12, "{format:?} ch {c}: lag {best_lag}");
            let rms = (x[from..to].iter().map(|v| v * v).sum::<f64>() / (to - from) as f64).sqrt();
            let want = amp / 2f64.sqrt();
            assert!(
                (rms / want - 1.0).abs() < 0.2,
                "{format:?} ch {c}: rms {rms} vs {want}"
            );
            // The other channel's tone is not in this one (channel order).
            for (o, &g) in freqs.iter().enumerate() {
                if o != c {
                    let leak = (-48..=48)
                        .map(|l| corr(&x, g, l, from, to).abs())
                        .fold(0.0, f64::max);
                    assert!(leak < 0.3, "{format:?} ch {c} has ch {o}'s tone: {leak}");
                }
            }
        }
    }

    #[test]
    fn round_trip_pcmu() {
        round_trip(AudioFormat::Pcmu, &[440.0]);
    }

    #[test]
    fn round_trip_pcma() {
        round_trip(AudioFormat::Pcma, &[440.0]);
    }

    #[test]
    fn round_trip_l16_16k_mono() {
        round_trip(
            AudioFormat::L16 {
                rate: 16_000,
                channels: 1,
            },
            &[440.0],
        );
    }

    #[test]
    fn round_trip_l16_44k1_stereo_pt10() {
        round_trip(
            AudioFormat::from_static_payload_type(10).unwrap(),
            &[440.0, 660.0],
        );
    }

    #[test]
    fn round_trip_l16_22k05_mono() {
        round_trip(
            AudioFormat::L16 {
                rate: 22_050,
                channels: 1,
            },
            &[440.0],
        );
    }

    /// Pushes `payloads`, returns (packets emitted, samples returned by push).
    fn push_all(t: &mut Transcoder, payloads: &[Vec<u8>]) -> (usize, usize) {
        let (mut packets, mut samples) = (0, 0);
        for p in payloads {
            samples += t.push(p, |_, s| {
                assert_eq!(s, 960);
                packets += 1;
            });
        }
        (packets, samples)
    }

    #[test]
    fn payload_sizes_other_than_20ms() {
        // 10 ms G.711 payloads: 7 x 80 samples = 560 = 3 frames + 80 pending.
        let mut t = Transcoder::new(AudioFormat::Pcmu).unwrap();
        assert_eq!(t.pending_samples_48k(), 0);
        let (p, s) = push_all(&mut t, &vec![vec![0xFF; 80]; 7]);
        assert_eq!((p, s), (3, 560));
        assert_eq!(t.pending_samples_48k(), 480);
        let mut n = 0;
        assert_eq!(t.flush(|_, s| n += s), 480);
        assert_eq!((n, t.pending_samples_48k()), (960, 0));
        // Nothing pending: flush emits nothing.
        assert_eq!(t.flush(|_, _| panic!("emitted on an empty flush")), 0);

        // 30 ms A-law payloads: 3 x 240 = 720 = 4 frames + 80.
        let mut t = Transcoder::new(AudioFormat::Pcma).unwrap();
        assert_eq!(push_all(&mut t, &vec![vec![0xD5; 240]; 3]), (4, 720));
        assert_eq!(t.pending_samples_48k(), 480);

        // Odd byte counts (one byte of 9 is ignored): L16/16000 mono, 321 bytes = 160 samples.
        let l16 = AudioFormat::L16 {
            rate: 16_000,
            channels: 1,
        };
        let mut t = Transcoder::new(l16).unwrap();
        assert_eq!(push_all(&mut t, &[vec![0; 321]]), (0, 160));
        assert_eq!(t.pending_samples_48k(), 480);
        assert_eq!(push_all(&mut t, &[vec![0; 321], vec![0; 1]]), (1, 160));
        assert_eq!(t.pending_samples_48k(), 0);
        assert_eq!(t.flush(|_, _| panic!()), 0);
        // Stereo: 7 bytes hold one sample frame; the rest is ignored.
        let mut t = Transcoder::new(AudioFormat::L16 {
            rate: 8_000,
            channels: 2,
        })
        .unwrap();
        assert_eq!(push_all(&mut t, &[vec![0; 7], vec![]]), (0, 1));
        assert_eq!(t.pending_samples_48k(), 6);
        let mut got = Vec::new();
        assert_eq!(t.flush(|p, s| got.push((p.to_vec(), s))), 954);
        assert_eq!(got.len(), 1);
        assert_eq!(decode(&[got[0].0.clone()], 2).len(), 2 * 960);

        // Uneven sizes, 8 kHz: the frame count is exactly total / 160.
        let mut t = Transcoder::new(AudioFormat::Pcmu).unwrap();
        let sizes = [1usize, 159, 160, 161, 17, 333, 240, 80, 2, 999];
        let payloads: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0x7F; n]).collect();
        let total: usize = sizes.iter().sum();
        assert_eq!(push_all(&mut t, &payloads), (total / 160, total));
        assert_eq!(t.pending_samples_48k() as usize, total % 160 * 6);
    }

    #[test]
    fn resampled_pending_and_flush() {
        // 44.1 kHz: after n input samples, output k sits at input position k * 44100 / 48000,
        // so floor((n - 1) * 48000 / 44100) + 1 samples are out.
        let f = AudioFormat::L16 {
            rate: 44_100,
            channels: 1,
        };
        let out_after = |n: u64| ((n - 1) * 48_000 / 44_100 + 1) as u32;
        let mut t = Transcoder::new(f).unwrap();
        assert_eq!(push_all(&mut t, &[vec![0; 882]]), (0, 441));
        assert_eq!(t.pending_samples_48k(), out_after(441));
        assert_eq!(push_all(&mut t, &[vec![0; 882]]), (0, 441));
        assert_eq!(t.pending_samples_48k(), out_after(882));
        assert_eq!(push_all(&mut t, &[vec![0; 882]]), (1, 441));
        assert_eq!(t.pending_samples_48k(), out_after(1323) - 960);
        assert_eq!(t.flush(|_, _| {}), 960 - (out_after(1323) - 960));
        // After a flush the resampler restarts: the same counts again.
        assert_eq!(push_all(&mut t, &[vec![0; 882]]), (0, 441));
        assert_eq!(t.pending_samples_48k(), out_after(441));
        // Ten minutes of 20 ms payloads: no drift (exact integer positions).
        let mut t = Transcoder::new(f).unwrap();
        let payload = vec![0u8; 882 * 2];
        let mut frames = 0u64;
        for _ in 0..(600 * 50) {
            t.push(&payload, |_, _| frames += 1);
        }
        let out = frames * 960 + u64::from(t.pending_samples_48k());
        assert!(out.abs_diff(600 * 48_000) <= 1, "{out}");
    }

    /// Transcode cost per 20 ms packet (run with --release --ignored --nocapture).
    #[test]
    #[ignore]
    fn timing() {
        for (format, name) in [
            (AudioFormat::Pcmu, "PCMU"),
            (
                AudioFormat::L16 {
                    rate: 16_000,
                    channels: 1,
                },
                "L16/16000",
            ),
            (
                AudioFormat::from_static_payload_type(10).unwrap(),
                "L16/44100/2",
            ),
        ] {
            let ch = usize::from(format.channels());
            // A sweep plus noise, so the encoder does real work.
            let rate = format.clock_rate();
            let secs = 60;
            let mut x: u32 = 1;
            let pcm: Vec<i16> = (0..rate as usize * secs * ch)
                .map(|i| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let t = (i / ch) as f64 / f64::from(rate);
                    let f = 200.0 + 100.0 * t;
                    (8000.0 * (2.0 * std::f64::consts::PI * f * t).sin()) as i16
                        + ((x >> 20) as i16 - 2048)
                })
                .collect();
            let per = rate as usize / 50 * ch;
            let payloads: Vec<Vec<u8>> = pcm.chunks(per).map(|c| payload(format, c)).collect();
            // Our part alone: G.711 tables / L16 parsing and resampling into a sink.
            let start = std::time::Instant::now();
            let mut sink = 0i64;
            let mut r = (format.opus_input_rate() != rate).then(|| Linear::new(rate));
            for p in &payloads {
                let mut put = |x: [i16; 2]| match r.as_mut() {
                    None => sink += i64::from(x[0]) + i64::from(x[1]),
                    Some(r) => r.push(x, |y| sink += i64::from(y[0]) + i64::from(y[1])),
                };
                match format {
                    AudioFormat::Pcmu => p.iter().for_each(|&b| put([ULAW[usize::from(b)], 0])),
                    _ => p.chunks_exact(2 * ch).for_each(|s| {
                        put([
                            i16::from_be_bytes([s[0], s[1]]),
                            i16::from_be_bytes([s[ch * 2 - 2], s[ch * 2 - 1]]),
                        ])
                    }),
                }
            }
            let ours = start.elapsed().as_secs_f64() / payloads.len() as f64;
            std::hint::black_box(sink);
            let mut t = Transcoder::new(format).unwrap();
            let mut bytes = 0usize;
            let start = std::time::Instant::now();
            for p in &payloads {
                t.push(p, |o, _| bytes += o.len());
            }
            let el = start.elapsed();
            let per_packet = el.as_secs_f64() / payloads.len() as f64;
            eprintln!(
                "{name}: {} packets in {:.1} ms: {:.1} µs/packet ({:.2} µs decode+resample), {:.0} streams/core real-time, {:.1} kbit/s out",
                payloads.len(),
                el.as_secs_f64() * 1e3,
                per_packet * 1e6,
                ours * 1e6,
                0.02 / per_packet,
                bytes as f64 * 8.0 / secs as f64 / 1000.0
            );
        }
    }
}
