//! The media side of a simulated leg: one RTP stream per speaker (SSRC = MSI), Opus or
//! L16/16000 payload, RFC 6464 audio level (extension id 1), SRTP with the leg's SDES key,
//! and seeded network impairments.
//!
//! [`MediaSource`] is sans-IO: `tick(t)` builds the packets of the 20 ms frame starting at
//! leg time `t`, protects and impairs them into a queue ordered by due time, and `pop_due(now)`
//! hands out what is due. The driver in `run.rs` owns the socket and the clock.
//!
//! The speech fixtures are encoded once per run ([`SpeechLibrary`]): every stream then copies
//! pre-encoded frames, so a simulator with hundreds of calls spends its time on SRTP and
//! sockets, not in the Opus encoder.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;

use audiopus::coder::Encoder;
use audiopus::{Application, Channels, SampleRate};
use media_core::srtp::{SrtpError, SrtpKeyMaterial, SrtpProfile, SrtpSession};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::scenario::{Codec, FrameKind, Impairments, Leg, Wav};
use super::sdp::AUDIO_LEVEL_EXT_ID;

/// Samples per 20 ms frame at 48 kHz.
const FRAME_48K: usize = 960;
/// Samples per 20 ms frame at 16 kHz.
const FRAME_16K: usize = 320;
/// Frame duration.
pub const FRAME_MS: u64 = 20;
/// RFC 6464 level of digital silence (-127 dBov).
const SILENT_LEVEL: u8 = 127;
/// Frames quieter than this (in -dBov) are not flagged as voice.
const VOICE_LEVEL_MAX: u8 = 50;

/// A media-side failure.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The WAV file could not be read.
    #[error("reading {path}: {source}")]
    Wav {
        /// The file.
        path: String,
        /// Why.
        source: hound::Error,
    },
    /// The WAV is not 16-bit mono 48 kHz PCM.
    #[error("{path}: expected 16-bit mono 48 kHz PCM, got {got}")]
    WavFormat {
        /// The file.
        path: String,
        /// What it is.
        got: String,
    },
    /// The WAV holds less than one frame.
    #[error("{0}: shorter than one 20 ms frame")]
    WavTooShort(String),
    /// libopus refused.
    #[error("Opus encoder: {0}")]
    Opus(#[from] audiopus::Error),
    /// The library was built without this codec.
    #[error("speech not encoded in {0:?}")]
    CodecNotLoaded(Codec),
    /// SRTP protect failed.
    #[error("SRTP: {0}")]
    Srtp(#[from] SrtpError),
}

/// One pre-encoded frame and its level.
#[derive(Debug, Clone)]
struct Frame {
    payload: Vec<u8>,
    /// RFC 6464 level, 0 (loudest) ..= 127 (silence), -dBov.
    level: u8,
}

/// The frames of both fixtures and the silence frame, in one codec.
#[derive(Debug)]
struct Encoded {
    speech: [Vec<Frame>; 2],
    silence: Frame,
}

/// The speech fixtures, pre-encoded in the codecs asked for.
#[derive(Debug)]
pub struct SpeechLibrary {
    opus: Option<Encoded>,
    l16: Option<Encoded>,
}

impl SpeechLibrary {
    /// Loads `speech.A.wav` and `speech.B.wav` (16-bit mono 48 kHz) from `dir` and encodes
    /// them in `codecs`: Opus (20 ms, 48 kHz, VoIP) and/or L16/16000 (low-pass filtered,
    /// decimated by 3).
    pub fn load(dir: &Path, codecs: &[Codec]) -> Result<Self, MediaError> {
        let a = read_wav(&dir.join("speech.A.wav"))?;
        let b = read_wav(&dir.join("speech.B.wav"))?;
        Self::from_pcm(&a, &b, codecs)
    }

    /// Builds the library from 48 kHz mono PCM (whole frames are used; a tail is dropped).
    pub fn from_pcm(a: &[i16], b: &[i16], codecs: &[Codec]) -> Result<Self, MediaError> {
        if a.len() < FRAME_48K || b.len() < FRAME_48K {
            return Err(MediaError::WavTooShort("speech fixture".into()));
        }
        let encoder = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip)?;
        let opus = |pcm: &[i16]| -> Result<Vec<Frame>, MediaError> {
            pcm.chunks_exact(FRAME_48K)
                .map(|f| opus_frame(&encoder, f))
                .collect()
        };
        let l16 = |pcm: &[i16]| -> Vec<Frame> {
            let low = decimate_48k_to_16k(pcm);
            pcm.chunks_exact(FRAME_48K)
                .zip(low.chunks_exact(FRAME_16K))
                .map(|(hi, lo)| Frame {
                    payload: lo.iter().flat_map(|s| s.to_be_bytes()).collect(),
                    level: audio_level(hi),
                })
                .collect()
        };
        let opus = if codecs.contains(&Codec::Opus) {
            Some(Encoded {
                speech: [opus(a)?, opus(b)?],
                silence: opus_frame(&encoder, &[0; FRAME_48K])?,
            })
        } else {
            None
        };
        let l16 = codecs.contains(&Codec::L16).then(|| Encoded {
            speech: [l16(a), l16(b)],
            silence: Frame {
                payload: vec![0; FRAME_16K * 2],
                level: SILENT_LEVEL,
            },
        });
        Ok(SpeechLibrary { opus, l16 })
    }

    fn encoded(&self, codec: Codec) -> Option<&Encoded> {
        match codec {
            Codec::Opus => self.opus.as_ref(),
            Codec::L16 => self.l16.as_ref(),
        }
    }

    /// Whether frames in `codec` were built.
    pub fn has(&self, codec: Codec) -> bool {
        self.encoded(codec).is_some()
    }

    fn frame(encoded: &Encoded, kind: FrameKind) -> &Frame {
        match kind {
            FrameKind::Silence => &encoded.silence,
            FrameKind::Speech { wav, pos_ms } => {
                // Never empty: from_pcm refuses fixtures shorter than a frame.
                let f = &encoded.speech[wav as usize];
                &f[(pos_ms / FRAME_MS) as usize % f.len()]
            }
        }
    }

    /// Fixture length in frames.
    pub fn frames(&self, wav: Wav) -> usize {
        self.opus
            .as_ref()
            .or(self.l16.as_ref())
            .map_or(0, |e| e.speech[wav as usize].len())
    }
}

fn opus_frame(encoder: &Encoder, pcm: &[i16]) -> Result<Frame, MediaError> {
    let mut out = [0u8; 1276];
    let n = encoder.encode(pcm, &mut out)?;
    Ok(Frame {
        payload: out[..n].to_vec(),
        level: audio_level(pcm),
    })
}

fn read_wav(path: &Path) -> Result<Vec<i16>, MediaError> {
    let p = path.display().to_string();
    let reader = hound::WavReader::open(path).map_err(|source| MediaError::Wav {
        path: p.clone(),
        source,
    })?;
    let spec = reader.spec();
    if spec.channels != 1
        || spec.sample_rate != 48_000
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(MediaError::WavFormat {
            path: p,
            got: format!("{spec:?}"),
        });
    }
    // hound has parsed the header and stands at the start of the data chunk; reading the
    // samples in one go is much faster than its per-sample iterator in a debug build.
    let count = reader.len() as usize;
    let mut data = vec![0u8; count * 2];
    std::io::Read::read_exact(&mut reader.into_inner(), &mut data).map_err(|e| {
        MediaError::Wav {
            path: p.clone(),
            source: hound::Error::IoError(e),
        }
    })?;
    let samples: Vec<i16> = data
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    if samples.len() < FRAME_48K {
        return Err(MediaError::WavTooShort(p));
    }
    Ok(samples)
}

/// RFC 6464 level of a frame: its RMS in -dBov, 0..=127.
pub fn audio_level(pcm: &[i16]) -> u8 {
    if pcm.is_empty() {
        return SILENT_LEVEL;
    }
    let energy: f64 = pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (energy / pcm.len() as f64).sqrt();
    if rms < 1.0 {
        return SILENT_LEVEL;
    }
    let dbov = 20.0 * (rms / 32768.0).log10();
    (-dbov).round().clamp(0.0, 127.0) as u8
}

/// 48 kHz to 16 kHz: a 63-tap Blackman-windowed sinc low-pass at 7.2 kHz, then every third
/// sample. Dropping samples without the filter would fold 8-24 kHz into the speech band.
fn decimate_48k_to_16k(pcm: &[i16]) -> Vec<i16> {
    const TAPS: usize = 63;
    let fc = 7_200.0 / 48_000.0;
    let mid = (TAPS - 1) as f64 / 2.0;
    let mut h: Vec<f64> = (0..TAPS)
        .map(|i| {
            let x = i as f64 - mid;
            let sinc = if x == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f64::consts::PI * fc * x).sin() / (std::f64::consts::PI * x)
            };
            let w = 0.42 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (TAPS - 1) as f64).cos()
                + 0.08 * (4.0 * std::f64::consts::PI * i as f64 / (TAPS - 1) as f64).cos();
            sinc * w
        })
        .collect();
    let gain: f64 = h.iter().sum();
    h.iter_mut().for_each(|c| *c /= gain);
    let half = TAPS / 2;
    (0..pcm.len() / 3)
        .map(|o| {
            let centre = o * 3;
            // Taps that fall outside the signal count as zeros.
            let first = half.saturating_sub(centre);
            let last = TAPS.min(pcm.len() + half - centre);
            let base = centre + first - half;
            let acc: f64 = h[first..last]
                .iter()
                .zip(&pcm[base..base + (last - first)])
                .map(|(c, &s)| c * f64::from(s))
                .sum();
            acc.round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// Per-packet impairments from a seeded RNG: loss, an outage window, jitter (extra delay)
/// and reordering (a packet held back behind the next one).
#[derive(Debug)]
pub struct Impairer {
    spec: Impairments,
    rng: StdRng,
    held: Option<Vec<u8>>,
    /// Dropped by random loss.
    pub lost: u64,
    /// Dropped in the outage window.
    pub outage_dropped: u64,
    /// Held back behind a later packet.
    pub reordered: u64,
}

impl Impairer {
    /// Impairments `spec`, reproducible from `seed`.
    pub fn new(spec: Impairments, seed: u64) -> Self {
        Impairer {
            spec,
            rng: StdRng::seed_from_u64(seed),
            held: None,
            lost: 0,
            outage_dropped: 0,
            reordered: 0,
        }
    }

    /// Passes one packet sent at leg time `t_us` through the network; `deliver(due_us, bytes)`
    /// receives what survives (the held-back packet comes right after the one that overtook it).
    pub fn submit(&mut self, t_us: u64, packet: Vec<u8>, mut deliver: impl FnMut(u64, Vec<u8>)) {
        if self.spec.outage.is_some_and(|o| o.contains(t_us / 1000)) {
            self.outage_dropped += 1;
            return;
        }
        if self.spec.loss_pct > 0.0 && self.rng.gen_bool((self.spec.loss_pct / 100.0).min(1.0)) {
            self.lost += 1;
            return;
        }
        let due = if self.spec.jitter_ms > 0 {
            t_us + self
                .rng
                .gen_range(0..=u64::from(self.spec.jitter_ms) * 1000)
        } else {
            t_us
        };
        if self.held.is_none()
            && self.spec.reorder_pct > 0.0
            && self.rng.gen_bool((self.spec.reorder_pct / 100.0).min(1.0))
        {
            self.reordered += 1;
            self.held = Some(packet);
            return;
        }
        deliver(due, packet);
        if let Some(h) = self.held.take() {
            deliver(due, h);
        }
    }

    /// Releases a packet still held back (end of the stream).
    pub fn flush(&mut self, t_us: u64, mut deliver: impl FnMut(u64, Vec<u8>)) {
        if let Some(h) = self.held.take() {
            deliver(t_us, h);
        }
    }
}

/// One speaker's RTP stream.
#[derive(Debug)]
struct Stream {
    ssrc: u32,
    participant: usize,
    seq: u16,
    ts_base: u32,
    /// Whether the previous frame was sent: the next after a gap carries the marker bit.
    sending: bool,
}

/// Counters of one leg's media.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// RTP packets built (before impairments).
    pub built: u64,
    /// Packets that left the simulator.
    pub sent: u64,
    /// Dropped by simulated loss.
    pub lost: u64,
    /// Dropped in the simulated outage.
    pub outage_dropped: u64,
    /// Reordered.
    pub reordered: u64,
}

/// The packets of one leg towards one recorder (sans-IO).
pub struct MediaSource<'a> {
    library: &'a SpeechLibrary,
    codec: Codec,
    srtp: SrtpSession,
    streams: Vec<Stream>,
    impairer: Impairer,
    /// Due time (µs, leg time), insertion order, packet.
    queue: BinaryHeap<Reverse<(u64, u64, Vec<u8>)>>,
    order: u64,
    built: u64,
    sent: u64,
}

impl<'a> MediaSource<'a> {
    /// Streams for every participant of `leg` that sends media, keyed with `key_salt`
    /// (AES_CM_128_HMAC_SHA1_80), impaired by `impairments` seeded with `seed`.
    pub fn new(
        library: &'a SpeechLibrary,
        leg: &Leg,
        codec: Codec,
        key_salt: &[u8; 30],
        impairments: Impairments,
        seed: u64,
    ) -> Result<Self, MediaError> {
        if !library.has(codec) {
            return Err(MediaError::CodecNotLoaded(codec));
        }
        let key = SrtpKeyMaterial::new(
            SrtpProfile::AesCm128HmacSha1_80,
            &key_salt[..16],
            &key_salt[16..],
        )?;
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_5eed);
        let streams = leg
            .participants
            .iter()
            .enumerate()
            .filter(|(_, p)| p.speech.is_some() || !p.muted.is_empty())
            .map(|(i, p)| Stream {
                ssrc: p.msi,
                participant: i,
                // Random bases (RFC 3550 5.1): a base near 0xFFFF makes the receiver's SRTP
                // roll-over counter advance early in the call, which is worth exercising.
                seq: rng.gen(),
                ts_base: rng.gen(),
                sending: false,
            })
            .collect();
        Ok(MediaSource {
            library,
            codec,
            srtp: SrtpSession::new(key),
            streams,
            impairer: Impairer::new(impairments, seed),
            queue: BinaryHeap::new(),
            order: 0,
            built: 0,
            sent: 0,
        })
    }

    /// The SSRCs of the streams (= MSIs).
    pub fn ssrcs(&self) -> impl Iterator<Item = u32> + '_ {
        self.streams.iter().map(|s| s.ssrc)
    }

    /// Builds the frame starting at leg time `t_ms` (a multiple of 20) for every stream that
    /// sends then; returns how many packets were built.
    pub fn tick(&mut self, leg: &Leg, t_ms: u64) -> Result<usize, MediaError> {
        let frame_index = t_ms / FRAME_MS;
        let mut built = 0;
        for s in &mut self.streams {
            let Some(kind) = leg.participants[s.participant].frame_at(t_ms) else {
                s.sending = false;
                continue;
            };
            let encoded = self
                .library
                .encoded(self.codec)
                .ok_or(MediaError::CodecNotLoaded(self.codec))?;
            let frame = SpeechLibrary::frame(encoded, kind);
            let voice = matches!(kind, FrameKind::Speech { .. }) && frame.level <= VOICE_LEVEL_MAX;
            let ts = s
                .ts_base
                .wrapping_add((frame_index as u32).wrapping_mul(self.codec.ts_per_frame()));
            let mut packet = Vec::with_capacity(16 + frame.payload.len() + 10);
            packet.extend_from_slice(&[
                0x90, // V=2, X=1
                (u8::from(!s.sending) << 7) | self.codec.payload_type(),
            ]);
            packet.extend_from_slice(&s.seq.to_be_bytes());
            packet.extend_from_slice(&ts.to_be_bytes());
            packet.extend_from_slice(&s.ssrc.to_be_bytes());
            // RFC 8285 one-byte header: one word, element id/len-1, then V|level, padding.
            packet.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01]);
            packet.extend_from_slice(&[
                AUDIO_LEVEL_EXT_ID << 4,
                (u8::from(voice) << 7) | frame.level,
                0,
                0,
            ]);
            packet.extend_from_slice(&frame.payload);
            self.srtp.protect_rtp(&mut packet)?;
            s.seq = s.seq.wrapping_add(1);
            s.sending = true;
            built += 1;
            let queue = &mut self.queue;
            let order = &mut self.order;
            self.impairer.submit(t_ms * 1000, packet, |due, p| {
                queue.push(Reverse((due, *order, p)));
                *order += 1;
            });
        }
        self.built += built as u64;
        Ok(built)
    }

    /// Ends the streams: a packet still held for reordering is released at `t_ms`.
    pub fn finish(&mut self, t_ms: u64) {
        let queue = &mut self.queue;
        let order = &mut self.order;
        self.impairer.flush(t_ms * 1000, |due, p| {
            queue.push(Reverse((due, *order, p)));
            *order += 1;
        });
    }

    /// Due time (µs, leg time) of the next queued packet.
    pub fn next_due_us(&self) -> Option<u64> {
        self.queue.peek().map(|Reverse((due, _, _))| *due)
    }

    /// The next packet due at or before `now_us`.
    pub fn pop_due(&mut self, now_us: u64) -> Option<Vec<u8>> {
        if self.next_due_us()? > now_us {
            return None;
        }
        let Reverse((_, _, p)) = self.queue.pop()?;
        self.sent += 1;
        Some(p)
    }

    /// Counters so far.
    pub fn stats(&self) -> MediaStats {
        MediaStats {
            built: self.built,
            sent: self.sent,
            lost: self.impairer.lost,
            outage_dropped: self.impairer.outage_dropped,
            reordered: self.impairer.reordered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::scenario::select;

    fn tone(freq: f64, amp: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / 48_000.0).sin()) as i16)
            .collect()
    }

    #[test]
    fn fixtures_load_in_both_codecs() {
        let dir = crate::simulate::run::default_speech_dir();
        let lib = SpeechLibrary::load(&dir, &[Codec::Opus, Codec::L16]).unwrap();
        // 12 s fixtures: 600 frames.
        assert_eq!(lib.frames(Wav::A), 600);
        let l16 = lib.l16.as_ref().unwrap();
        assert_eq!(l16.speech[1][0].payload.len(), 640);
        let loud = lib.opus.as_ref().unwrap().speech[0]
            .iter()
            .filter(|f| f.level < 40)
            .count();
        assert!(loud > 100, "speech is speech: {loud} frames above -40 dBov");
    }

    #[test]
    fn level_of_full_scale_sine_is_3_dbov() {
        assert_eq!(audio_level(&tone(1000.0, 32767.0, 960)), 3);
        assert_eq!(audio_level(&[0; 960]), 127);
    }

    #[test]
    fn decimation_passes_speech_and_stops_aliases() {
        let pass = decimate_48k_to_16k(&tone(1000.0, 10_000.0, 48_000));
        let stop = decimate_48k_to_16k(&tone(15_000.0, 10_000.0, 48_000));
        assert_eq!(pass.len(), 16_000);
        let rms = |v: &[i16]| {
            (v[100..v.len() - 100]
                .iter()
                .map(|&s| f64::from(s).powi(2))
                .sum::<f64>()
                / (v.len() - 200) as f64)
                .sqrt()
        };
        assert!((rms(&pass) - 7071.0).abs() < 300.0, "{}", rms(&pass));
        assert!(rms(&stop) < 100.0, "{}", rms(&stop));
    }

    #[test]
    fn loss_is_close_to_the_percentage() {
        let spec = Impairments {
            loss_pct: 5.0,
            ..Impairments::default()
        };
        let mut imp = Impairer::new(spec, 42);
        let mut got = 0u64;
        for t in 0..20_000u64 {
            imp.submit(t * 20_000, vec![0], |_, _| got += 1);
        }
        let lost = 20_000 - got;
        assert_eq!(lost, imp.lost);
        assert!((800..1200).contains(&lost), "lost {lost}");
    }

    #[test]
    fn reorder_swaps_neighbours_and_loses_nothing() {
        let spec = Impairments {
            reorder_pct: 10.0,
            ..Impairments::default()
        };
        let mut imp = Impairer::new(spec, 1);
        let mut out = Vec::new();
        for t in 0..1000u64 {
            imp.submit(t, vec![(t % 256) as u8, (t / 256) as u8], |_, p| {
                out.push(p)
            });
        }
        imp.flush(1000, |_, p| out.push(p));
        assert_eq!(out.len(), 1000);
        let idx: Vec<u64> = out
            .iter()
            .map(|p| u64::from(p[0]) + 256 * u64::from(p[1]))
            .collect();
        let swaps = idx.windows(2).filter(|w| w[0] > w[1]).count() as u64;
        assert_eq!(swaps, imp.reordered);
        assert!(swaps > 50, "{swaps}");
    }

    #[test]
    fn marker_at_talk_spurt_starts_and_ssrc_is_msi() {
        let pcm = tone(440.0, 8000.0, 48_000);
        let lib = SpeechLibrary::from_pcm(&pcm, &pcm, &[Codec::Opus]).unwrap();
        let s = &select(&["internal-p2p-in".into()]).unwrap()[0];
        let leg = &s.legs[0];
        let key = [3u8; 30];
        let mut src = MediaSource::new(&lib, leg, s.codec, &key, s.impairments, 9).unwrap();
        let mut rx = SrtpSession::new(
            SrtpKeyMaterial::new(SrtpProfile::AesCm128HmacSha1_80, &key[..16], &key[16..]).unwrap(),
        );
        let mut markers = Vec::new();
        for t in (0..leg.end_ms).step_by(20) {
            src.tick(leg, t).unwrap();
            while let Some(mut p) = src.pop_due(t * 1000) {
                let n = rx.unprotect_rtp(&mut p).unwrap();
                let rtp = media_core::rtp::RtpPacket::parse(&p[..n]).unwrap();
                assert!([1001, 2002].contains(&rtp.ssrc));
                assert_eq!(rtp.audio_level(1).unwrap().level, 15);
                if rtp.marker {
                    markers.push((rtp.ssrc, t));
                }
            }
        }
        assert_eq!(markers, vec![(1001, 600), (2002, 3400), (1001, 5400)]);
        assert_eq!(src.stats().sent, src.stats().built);
    }
}
