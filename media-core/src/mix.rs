//! The mixed download: every participant track of a recording decoded, placed on the call's
//! time line, summed, limited and encoded into one Ogg Opus stream.
//!
//! Streaming from call start to the end of the last track, 20 ms at a time across all
//! tracks: each track holds at most one decoded packet (120 ms at most), so a two-hour call
//! costs the same memory as a two-second one, and nothing is allocated per frame once the
//! first page of every track has been read (page, packet and PCM buffers are reused).
//!
//! A recording with one track is remuxed instead: its packets are copied bit-exact behind
//! a silence prefix that moves it to its place on the call's time line.
//!
//! Design notes and measured cost: `docs/mix.md`.

use std::io::{self, Read, Seek, Write};

use audiopus::coder::{Decoder, Encoder};
use audiopus::{Application, Bitrate, Channels, SampleRate};

use crate::ogg::{OggOpusWriter, OpusHead, OGG_CRC};
use crate::opus;

/// How the mix is encoded.
#[derive(Debug, Clone)]
pub struct MixConfig {
    /// Encoder input (and decoder output) rate: 8000, 12000, 16000, 24000 or 48000. Default
    /// 48000; 16000 is enough for voice and costs less to decode, mix and encode.
    pub sample_rate: u32,
    /// Opus bitrate in bit/s. Default 32000 (mono); [`MixConfig::stereo_split`] uses 48000.
    pub bitrate: u32,
    /// libopus encoder complexity, 0..=10. Default 5: about half the CPU of 10 for a
    /// difference in voice quality nobody hears on a call recording.
    pub complexity: u8,
    /// Stereo output with the targeted user(s) on the left and everyone else on the right.
    /// Without any targeted track the output is stereo with everyone in both channels.
    pub stereo_split: bool,
}

impl Default for MixConfig {
    fn default() -> Self {
        MixConfig {
            sample_rate: 48_000,
            bitrate: 32_000,
            complexity: 5,
            stereo_split: false,
        }
    }
}

impl MixConfig {
    /// The stereo-split defaults: targeted user left, everyone else right, 48 kbit/s.
    pub fn stereo_split() -> Self {
        MixConfig {
            bitrate: 48_000,
            stereo_split: true,
            ..MixConfig::default()
        }
    }
}

/// One participant track of a recording, an Ogg Opus file, placed on the call's time line.
pub struct MixInput<R> {
    /// The track's Ogg Opus stream (e.g. an opened `participant-N.ogg`).
    pub reader: R,
    /// Where the track's time 0 lies on the call's time line (`start_ms` in `meta.json`).
    pub start_ms: f64,
    /// The user the recording is for: left channel in a stereo-split mix.
    pub targeted: bool,
}

/// What [`mix`] did.
#[derive(Debug, Clone, Default)]
pub struct MixStats {
    /// Playable duration of the output: call start to the end of the last track.
    pub duration_ms: f64,
    /// Tracks read.
    pub tracks: usize,
    /// A single track was copied bit-exact instead of decoded and re-encoded.
    pub remuxed: bool,
    /// Samples beyond full scale after the limiter (saturated before encoding): should be 0.
    pub clipped_samples: u64,
    /// Largest gain reduction the limiter applied, in dB (0 when it never engaged).
    pub peak_gain_reduction_db: f32,
    /// Audio packets skipped because their Opus framing is invalid or libopus could not
    /// decode them (each leaves silence of its place on the time line, if known).
    pub bad_packets: u64,
    /// Ogg pages skipped because their CRC did not match.
    pub bad_pages: u64,
}

/// Why a mix failed.
#[derive(Debug, thiserror::Error)]
pub enum MixError {
    /// No track to mix.
    #[error("no input tracks")]
    NoInputs,
    /// A configuration value libopus cannot use.
    #[error("invalid mix configuration: {0}")]
    Config(&'static str),
    /// A track is not an Ogg Opus stream (or not one we can decode: more than 2 channels).
    #[error("track {track}: not a supported Ogg Opus stream: {reason}")]
    NotOpus {
        /// Index of the track in the inputs.
        track: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// A track's Ogg framing is broken beyond skipping a page.
    #[error("track {track}: corrupt Ogg stream: {reason}")]
    Corrupt {
        /// Index of the track in the inputs.
        track: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// Reading a track or writing the output failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// libopus refused to create or configure a coder, or to encode.
    #[error("opus: {0}")]
    Opus(#[from] audiopus::Error),
}

/// Samples per second of Ogg Opus granules, whatever the coding rate.
const RATE_48K: u32 = 48_000;
/// Largest decoded packet: 120 ms at 48 kHz, mono (the decoders downmix).
const MAX_PACKET_PCM: usize = opus::MAX_PACKET_SAMPLES_48K as usize;
/// Largest encoded packet we ask libopus for (RFC 6716's bound for one 20 ms frame is 1275
/// bytes per channel stream; 4000 is libopus's recommended buffer).
const MAX_ENCODED: usize = 4000;
/// Initial capacity of a track's page body and packet buffers.
const PAGE_BUFFER: usize = 16 * 1024;
/// Limiter ceiling: -1 dBFS. The margin below full scale absorbs the Opus coding error
/// (a decoded peak can overshoot the encoded one by a few percent), so the decoded file
/// does not clip either.
const LIMIT: f32 = 0.891_250_9;
/// Limiter release time constant. 100 ms recovers within a syllable without audible
/// pumping; the attack is instantaneous because there is no look-ahead.
const RELEASE_S: f32 = 0.1;

/// Decodes every track, aligns them on the call's time line, mixes them with headroom and a
/// look-ahead-free peak limiter, encodes Opus (VoIP, 20 ms frames) and writes the Ogg Opus
/// stream to `out`; a single input is remuxed bit-exact instead.
///
/// Decodes with libopus (pre-skip honoured, packets placed by granule, gaps left silent);
/// a track starts at its `start_ms`, so a late joiner starts later. The output lasts from
/// call start (0) to the end of the last track. A single input keeps its original packets
/// bit-exact, prefixed with `crate::opus::silence_fill` silence for `start_ms > 0` (2.5 ms
/// resolution). `call_id` goes into the OpusTags as `CALL_ID`, with `PARTICIPANT=mixed`.
pub fn mix<R: Read + Seek, W: Write>(
    inputs: Vec<MixInput<R>>,
    call_id: &str,
    config: &MixConfig,
    mut out: W,
) -> Result<MixStats, MixError> {
    if inputs.is_empty() {
        return Err(MixError::NoInputs);
    }
    let stats = if inputs.len() == 1 {
        let input = inputs.into_iter().next().expect("one input");
        remux(input, call_id, &mut out)?
    } else {
        Mixer::new(inputs, call_id, config)?.run(&mut out)?
    };
    out.flush()?;
    Ok(stats)
}

/// Fuzzing entry point: reads `data` as a track the way the mixer does (headers, pages with
/// CRC and lacing, packets placed by granule); must never panic.
#[doc(hidden)]
pub fn fuzz_read_track(data: &[u8]) {
    let mut reader = PacketReader::new(io::Cursor::new(data), 0);
    if reader.read_head().is_err() {
        return;
    }
    while let Ok(Some(p)) = reader.next_packet() {
        assert!(
            p.samples as usize <= MAX_PACKET_PCM,
            "packet longer than Opus allows"
        );
    }
}

/// Serial number of the mixed stream: derived from the call id (FNV-1a), so re-running a mix
/// gives the same bytes.
fn serial_for(call_id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in call_id.bytes().chain(*b"/mixed") {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

/// Longest call time line we mix: 24 hours at 48 kHz. Beyond it a track's position is
/// corrupt (or hostile), not a call.
const MAX_CALL_48K: u64 = 24 * 3600 * 48_000;

/// Samples of 48 kHz for a time in ms on the call's time line, rounded to the nearest
/// sample; negative or NaN is 0 (the call's start), beyond 24 hours a configuration error.
fn ms_to_48k(ms: f64) -> Result<u64, MixError> {
    let samples = if ms.is_finite() && ms > 0.0 {
        (ms * 48.0).round()
    } else if ms == f64::INFINITY {
        f64::MAX
    } else {
        0.0
    };
    if samples > MAX_CALL_48K as f64 {
        return Err(MixError::Config("start_ms beyond 24 hours"));
    }
    Ok(samples as u64)
}

/// Copies one track's packets bit-exact, behind silence up to its start on the call.
fn remux<R: Read, W: Write>(
    input: MixInput<R>,
    call_id: &str,
    out: &mut W,
) -> Result<MixStats, MixError> {
    let mut reader = PacketReader::new(input.reader, 0);
    let head = reader.read_head()?;
    let mut writer = OggOpusWriter::new(
        serial_for(call_id),
        OpusHead {
            channels: head.channels,
            pre_skip: head.pre_skip,
            input_sample_rate: head.input_sample_rate,
            output_gain: head.output_gain,
        },
        &[("CALL_ID", call_id), ("PARTICIPANT", "mixed")],
    );
    // Output granule = input granule + offset. The pre-skip stays the input's: the decoder
    // still discards that many samples at the start (now from the prefix silence), and the
    // original packets' first sample lands at `offset - pre_skip + pre_skip` = the track's
    // start on the call.
    let offset = ms_to_48k(input.start_ms)?;
    while let Some(p) = reader.next_packet()? {
        let at = offset + p.start;
        let written = writer.granule();
        if at > written {
            // Rounded down to 2.5 ms; the remainder is carried into the next gap.
            opus::silence_fill(at - written, head.channels, |pkt, n| {
                writer.write_packet(pkt, n)
            });
        }
        writer.write_packet(p.data, p.samples);
        drain(&mut writer, out)?;
    }
    writer.finish();
    drain(&mut writer, out)?;
    let playable = writer.granule().saturating_sub(u64::from(head.pre_skip));
    Ok(MixStats {
        duration_ms: playable as f64 / 48.0,
        tracks: 1,
        remuxed: true,
        bad_packets: reader.bad_packets,
        bad_pages: reader.bad_pages,
        ..MixStats::default()
    })
}

/// Writes whatever pages the writer completed and empties its buffer (capacity kept).
fn drain<W: Write>(writer: &mut OggOpusWriter, out: &mut W) -> io::Result<()> {
    let buf = writer.output();
    if !buf.is_empty() {
        out.write_all(buf)?;
        buf.clear();
    }
    Ok(())
}

/// Which output channel a track goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Mono output, or stereo with nobody targeted (copied to both channels at the end).
    Left,
    /// Stereo split: everyone but the targeted user.
    Right,
}

/// The multi-track path: decoders, mixer, limiter and encoder, all buffers allocated once.
struct Mixer<R> {
    tracks: Vec<Track<R>>,
    rate: u32,
    /// 48 kHz samples per sample at the coding rate (1, 2, 3, 4 or 6).
    factor: u64,
    /// Samples per 20 ms frame at the coding rate.
    frame: usize,
    stereo: bool,
    /// Stereo with nobody targeted: everyone is mixed into `left` and copied to the right.
    duplicate: bool,
    left: Vec<f32>,
    right: Vec<f32>,
    /// Limited, interleaved encoder input.
    interleaved: Vec<f32>,
    encoder: Encoder,
    /// Encoder lookahead at the coding rate; its 48 kHz value is the output's pre-skip.
    lookahead: u64,
    writer: OggOpusWriter,
    /// The latest encoded packet is held back one frame, so the last one can be written
    /// with the shortened duration that trims the output to the call's end exactly.
    pending: Vec<u8>,
    pending_len: Option<usize>,
    packet: Vec<u8>,
    limiter: Limiter,
    stats: MixStats,
}

impl<R: Read> Mixer<R> {
    fn new(inputs: Vec<MixInput<R>>, call_id: &str, config: &MixConfig) -> Result<Self, MixError> {
        let sr = match config.sample_rate {
            8_000 => SampleRate::Hz8000,
            12_000 => SampleRate::Hz12000,
            16_000 => SampleRate::Hz16000,
            24_000 => SampleRate::Hz24000,
            48_000 => SampleRate::Hz48000,
            _ => {
                return Err(MixError::Config(
                    "sample_rate must be 8, 12, 16, 24 or 48 kHz",
                ))
            }
        };
        if config.complexity > 10 {
            return Err(MixError::Config("complexity must be 0..=10"));
        }
        let bitrate =
            i32::try_from(config.bitrate).map_err(|_| MixError::Config("bitrate too high"))?;
        let rate = config.sample_rate;
        let factor = u64::from(RATE_48K / rate);
        let stereo = config.stereo_split;
        let any_targeted = inputs.iter().any(|i| i.targeted);
        let routes: Vec<Route> = inputs
            .iter()
            .map(|i| {
                if stereo && any_targeted && !i.targeted {
                    Route::Right
                } else {
                    Route::Left
                }
            })
            .collect();
        // Headroom: each channel's sum is scaled by 1/sqrt(tracks in it). Uncorrelated
        // voices add in power, so n people talking at once are about as loud as one; one
        // talker (the normal case) is n^-1/2 quieter than the source, which the listener's
        // volume control absorbs. The limiter catches what the headroom does not.
        let count = |r: Route| routes.iter().filter(|&&x| x == r).count().max(1) as f32;
        let (gain_left, gain_right) = (count(Route::Left).sqrt().recip(), {
            count(Route::Right).sqrt().recip()
        });
        let mut tracks = Vec::with_capacity(inputs.len());
        for (i, (input, route)) in inputs.into_iter().zip(routes).enumerate() {
            let gain = if route == Route::Left {
                gain_left
            } else {
                gain_right
            };
            tracks.push(Track::new(input, i, route, gain, rate, sr)?);
        }

        let channels = if stereo {
            Channels::Stereo
        } else {
            Channels::Mono
        };
        let mut encoder = Encoder::new(sr, channels, Application::Voip)?;
        encoder.set_bitrate(Bitrate::BitsPerSecond(bitrate))?;
        encoder.set_complexity(config.complexity)?;
        let lookahead = u64::from(encoder.lookahead()?);
        let pre_skip = u16::try_from(lookahead * factor)
            .map_err(|_| MixError::Config("encoder lookahead above u16"))?;
        let writer = OggOpusWriter::new(
            serial_for(call_id),
            OpusHead {
                channels: if stereo { 2 } else { 1 },
                pre_skip,
                input_sample_rate: rate,
                output_gain: 0,
            },
            &[("CALL_ID", call_id), ("PARTICIPANT", "mixed")],
        );
        let frame = (rate / 50) as usize;
        let n_ch = if stereo { 2 } else { 1 };
        Ok(Mixer {
            stats: MixStats {
                tracks: tracks.len(),
                ..MixStats::default()
            },
            tracks,
            rate,
            factor,
            frame,
            stereo,
            duplicate: stereo && !any_targeted,
            left: vec![0.0; frame],
            right: vec![0.0; frame],
            interleaved: vec![0.0; frame * n_ch],
            encoder,
            lookahead,
            writer,
            pending: vec![0; MAX_ENCODED],
            pending_len: None,
            packet: vec![0; MAX_ENCODED],
            limiter: Limiter::new(rate),
        })
    }

    fn run<W: Write>(mut self, out: &mut W) -> Result<MixStats, MixError> {
        let frame = self.frame as i64;
        // Call time (coding-rate samples) of the frame being mixed.
        let mut at: i64 = 0;
        loop {
            self.left.fill(0.0);
            self.right.fill(0.0);
            for t in &mut self.tracks {
                let dst = match t.route {
                    Route::Left => &mut self.left,
                    Route::Right => &mut self.right,
                };
                t.add_into(dst, at)?;
            }
            if self.duplicate {
                self.right.copy_from_slice(&self.left);
            }
            self.limit();
            self.encode(out)?;
            at += frame;
            if self.tracks.iter().all(|t| t.done) {
                break;
            }
        }
        // The output ends where the last track does. The encoder delays its input by its
        // lookahead, so feed silence until that much beyond the end has gone in; the last
        // packet's granule then trims the decoded output to the exact end (RFC 7845 4).
        let end = self.tracks.iter().map(|t| t.end).max().unwrap_or(0).max(0);
        let fed_needed = end + self.lookahead as i64;
        self.interleaved.fill(0.0);
        while at < fed_needed {
            self.encode(out)?;
            at += frame;
        }
        let target = self.lookahead * self.factor + end as u64 * self.factor;
        if let Some(len) = self.pending_len.take() {
            let left = target.saturating_sub(self.writer.granule());
            debug_assert!(left > 0 && left <= self.frame as u64 * self.factor);
            let samples = left.clamp(1, self.frame as u64 * self.factor) as u32;
            self.writer.write_packet(&self.pending[..len], samples);
        }
        self.writer.finish();
        drain(&mut self.writer, out)?;

        self.stats.duration_ms = end as f64 * 1000.0 / f64::from(self.rate);
        self.stats.clipped_samples = self.limiter.clipped;
        self.stats.peak_gain_reduction_db = (-20.0 * self.limiter.min_gain.log10()).max(0.0);
        for t in &self.tracks {
            self.stats.bad_packets += t.bad_packets + t.reader.bad_packets;
            self.stats.bad_pages += t.reader.bad_pages;
        }
        Ok(self.stats)
    }

    /// Limits the channel sums into the interleaved encoder input.
    fn limit(&mut self) {
        if self.stereo {
            for ((&l, &r), o) in self
                .left
                .iter()
                .zip(&self.right)
                .zip(self.interleaved.chunks_exact_mut(2))
            {
                // Linked gain: the same reduction on both channels keeps the stereo image.
                let g = self.limiter.gain(l.abs().max(r.abs()));
                o[0] = self.limiter.saturate(l * g);
                o[1] = self.limiter.saturate(r * g);
            }
        } else {
            for (&x, o) in self.left.iter().zip(self.interleaved.iter_mut()) {
                let g = self.limiter.gain(x.abs());
                *o = self.limiter.saturate(x * g);
            }
        }
    }

    /// Encodes `interleaved` as one 20 ms packet; writes the previously pending one.
    fn encode<W: Write>(&mut self, out: &mut W) -> Result<(), MixError> {
        let len = self
            .encoder
            .encode_float(&self.interleaved, &mut self.packet)?;
        if let Some(prev) = self.pending_len {
            let samples = (self.frame as u64 * self.factor) as u32;
            self.writer.write_packet(&self.pending[..prev], samples);
            drain(&mut self.writer, out)?;
        }
        std::mem::swap(&mut self.pending, &mut self.packet);
        self.pending_len = Some(len);
        Ok(())
    }
}

/// Peak limiter without look-ahead: instantaneous attack (the gain drops to exactly what
/// keeps the sample at the ceiling), exponential release. Below the ceiling the gain is 1,
/// so normal speech passes untouched and nothing pumps.
#[derive(Debug)]
struct Limiter {
    gain: f32,
    /// Per-sample step of the release towards gain 1.
    release: f32,
    min_gain: f32,
    clipped: u64,
}

impl Limiter {
    fn new(rate: u32) -> Self {
        Limiter {
            gain: 1.0,
            release: 1.0 - (-1.0 / (RELEASE_S * rate as f32)).exp(),
            min_gain: 1.0,
            clipped: 0,
        }
    }

    /// The gain for a sample (or linked sample pair) of magnitude `peak`.
    #[inline]
    fn gain(&mut self, peak: f32) -> f32 {
        self.gain += (1.0 - self.gain) * self.release;
        if peak * self.gain > LIMIT {
            self.gain = LIMIT / peak;
            self.min_gain = self.min_gain.min(self.gain);
        }
        self.gain
    }

    /// Final guard: counts and saturates anything still beyond full scale (never expected:
    /// the limiter's ceiling is below it).
    #[inline]
    fn saturate(&mut self, x: f32) -> f32 {
        if x.abs() > 1.0 {
            self.clipped += 1;
            x.clamp(-1.0, 1.0)
        } else {
            x
        }
    }
}

/// One input track being decoded: at most one decoded packet buffered.
struct Track<R> {
    reader: PacketReader<R>,
    decoder: Decoder,
    route: Route,
    /// Headroom gain times the track's own OpusHead output gain.
    gain: f32,
    factor: u64,
    /// Call time (coding-rate samples) of the track's time 0.
    offset: i64,
    /// Pre-skip at the coding rate.
    pre_skip: i64,
    pcm: Vec<f32>,
    pcm_pos: usize,
    pcm_len: usize,
    /// Call time of `pcm[pcm_pos]`.
    pcm_time: i64,
    /// Call time just after the last sample placed so far.
    end: i64,
    done: bool,
    bad_packets: u64,
}

impl<R: Read> Track<R> {
    fn new(
        input: MixInput<R>,
        index: usize,
        route: Route,
        gain: f32,
        rate: u32,
        sr: SampleRate,
    ) -> Result<Self, MixError> {
        let mut reader = PacketReader::new(input.reader, index);
        let head = reader.read_head()?;
        let factor = u64::from(RATE_48K / rate);
        // Mono decoders: libopus downmixes a stereo stream itself, and every output channel
        // of the mix is a sum of whole participants.
        let decoder = Decoder::new(sr, Channels::Mono)?;
        let offset = (ms_to_48k(input.start_ms)? / factor) as i64;
        // OpusHead output gain is Q7.8 dB; our own files write 0.
        let head_gain = 10f32.powf(f32::from(head.output_gain) / (20.0 * 256.0));
        Ok(Track {
            reader,
            decoder,
            route,
            gain: gain * head_gain,
            factor,
            offset,
            pre_skip: (u64::from(head.pre_skip) / factor) as i64,
            pcm: vec![0.0; MAX_PACKET_PCM],
            pcm_pos: 0,
            pcm_len: 0,
            pcm_time: 0,
            end: offset,
            done: false,
            bad_packets: 0,
        })
    }

    /// Adds this track's samples for call times `[at, at + dst.len())` into `dst`.
    // `max().min()` rather than `clamp()` on purpose: it turns NaN into a number.
    #[allow(clippy::manual_clamp)]
    fn add_into(&mut self, dst: &mut [f32], at: i64) -> Result<(), MixError> {
        let stop = at + dst.len() as i64;
        let mut t = at;
        while t < stop {
            if self.pcm_pos == self.pcm_len {
                if self.done || !self.decode_next()? {
                    return Ok(());
                }
                continue;
            }
            let avail = (self.pcm_len - self.pcm_pos) as i64;
            if self.pcm_time < t {
                // Samples before the window (only an overlapping stream produces them):
                // dropped, the mix cannot go back.
                let drop = (t - self.pcm_time).min(avail);
                self.pcm_pos += drop as usize;
                self.pcm_time += drop;
                continue;
            }
            if self.pcm_time >= stop {
                // Not yet: a late joiner, or a gap in the track. Silence meanwhile.
                return Ok(());
            }
            t = self.pcm_time;
            let n = (stop - t).min(avail) as usize;
            let d = &mut dst[(t - at) as usize..][..n];
            let s = &self.pcm[self.pcm_pos..][..n];
            for (d, s) in d.iter_mut().zip(s) {
                // A track's own full scale bounds it: libopus's float output of a corrupt
                // packet (a recording of undecryptable SRTP, say) can reach 1e5, which would
                // duck everyone else for the limiter's release time. `max` first also maps
                // a NaN to -1 instead of passing it to the encoder.
                *d += s.max(-1.0).min(1.0) * self.gain;
            }
            self.pcm_pos += n;
            self.pcm_time += n as i64;
            t += n as i64;
        }
        Ok(())
    }

    /// Decodes the next packet into `pcm`; false at the end of the track.
    fn decode_next(&mut self) -> Result<bool, MixError> {
        loop {
            let Some(p) = self.reader.next_packet()? else {
                self.done = true;
                return Ok(false);
            };
            let keep = (u64::from(p.samples) / self.factor) as usize;
            let pos = (p.start / self.factor) as i64 - self.pre_skip;
            let decoded = match self
                .decoder
                .decode_float(Some(p.data), &mut self.pcm[..], false)
            {
                Ok(n) => n,
                Err(_) => {
                    // Leaves its place silent; the decoder state recovers on the next packet.
                    self.bad_packets += 1;
                    continue;
                }
            };
            let keep = keep.min(decoded);
            // The first pre-skip samples of the stream are the encoder's lookahead.
            let skip = if pos < 0 {
                ((-pos) as usize).min(keep)
            } else {
                0
            };
            self.pcm_pos = skip;
            self.pcm_len = keep;
            self.pcm_time = self.offset + pos + skip as i64;
            self.end = self.end.max(self.offset + pos + keep as i64);
            return Ok(true);
        }
    }
}

/// The fields of an OpusHead the mixer and the remuxer use.
#[derive(Debug, Clone, Copy)]
struct Head {
    channels: u8,
    pre_skip: u16,
    input_sample_rate: u32,
    output_gain: i16,
}

/// One audio packet of a track, placed by granule.
struct Packet<'a> {
    data: &'a [u8],
    /// Granule (48 kHz, pre-skip included) of the packet's first sample.
    start: u64,
    /// Samples to keep: the packet's duration, shortened on the last page by end trimming.
    samples: u32,
}

/// A completed audio packet of the current page: range in `PacketReader::packets`, start
/// granule and samples to keep.
#[derive(Debug, Clone, Copy)]
struct Slot {
    from: usize,
    to: usize,
    start: u64,
    samples: u32,
}

/// Reads an Ogg Opus stream page by page into reused buffers (no allocation per page once
/// the buffers have grown to the stream's page size), and places each audio packet by its
/// page's granule.
///
/// Our own reader instead of the `ogg` crate's `PacketReader`, which allocates a `Vec` per
/// packet: at 50 packets per second per track that would be the only allocation per frame.
/// The first logical stream is read; pages of other serials are ignored. A page with a bad
/// CRC is skipped and counted; a file cut mid-page ends at the last complete page.
struct PacketReader<R> {
    r: R,
    track: usize,
    serial: Option<u32>,
    head: Option<Head>,
    /// Completed packets seen, headers included.
    packets_seen: u64,
    lacing: [u8; 255],
    body: Vec<u8>,
    /// Completed packets of the current page, copied contiguously.
    packets: Vec<u8>,
    slots: Vec<Slot>,
    next_slot: usize,
    /// Start of a packet continued on the next page.
    partial: Vec<u8>,
    /// Granule just after the last audio packet placed.
    next_pos: u64,
    eof: bool,
    bad_pages: u64,
    bad_packets: u64,
}

impl<R: Read> PacketReader<R> {
    fn new(r: R, track: usize) -> Self {
        PacketReader {
            r,
            track,
            serial: None,
            head: None,
            packets_seen: 0,
            lacing: [0; 255],
            // Sized for our own pages (closed at ~8 KiB of body) so a recording never grows
            // them; another writer's larger pages grow them once, up to the 64 KiB maximum.
            body: Vec::with_capacity(PAGE_BUFFER),
            packets: Vec::with_capacity(PAGE_BUFFER),
            slots: Vec::with_capacity(255),
            next_slot: 0,
            partial: Vec::new(),
            next_pos: 0,
            eof: false,
            bad_pages: 0,
            bad_packets: 0,
        }
    }

    /// Reads until the OpusHead has been parsed.
    fn read_head(&mut self) -> Result<Head, MixError> {
        while self.head.is_none() {
            if !self.read_page()? {
                return Err(MixError::NotOpus {
                    track: self.track,
                    reason: "no OpusHead",
                });
            }
        }
        Ok(self.head.expect("parsed"))
    }

    /// The next audio packet, or `None` at the end of the stream.
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, MixError> {
        while self.next_slot == self.slots.len() {
            if !self.read_page()? {
                return Ok(None);
            }
        }
        let s = self.slots[self.next_slot];
        self.next_slot += 1;
        Ok(Some(Packet {
            data: &self.packets[s.from..s.to],
            start: s.start,
            samples: s.samples,
        }))
    }

    /// Reads one page of our stream and places its completed packets; false at the end.
    fn read_page(&mut self) -> Result<bool, MixError> {
        self.slots.clear();
        self.next_slot = 0;
        self.packets.clear();
        loop {
            if self.eof {
                return Ok(false);
            }
            let mut header = [0u8; 27];
            if !read_full(&mut self.r, &mut header)? {
                self.eof = true;
                return Ok(false);
            }
            if &header[..4] != b"OggS" || header[4] != 0 {
                if self.serial.is_none() {
                    return Err(MixError::NotOpus {
                        track: self.track,
                        reason: "not an Ogg stream",
                    });
                }
                return Err(MixError::Corrupt {
                    track: self.track,
                    reason: "lost page sync",
                });
            }
            let flags = header[5];
            let granule = u64::from_le_bytes(header[6..14].try_into().expect("8 bytes"));
            let serial = u32::from_le_bytes(header[14..18].try_into().expect("4 bytes"));
            let crc = u32::from_le_bytes(header[22..26].try_into().expect("4 bytes"));
            let segments = usize::from(header[26]);
            if !read_full(&mut self.r, &mut self.lacing[..segments])? {
                self.eof = true;
                return Ok(false);
            }
            let body_len: usize = self.lacing[..segments]
                .iter()
                .map(|&l| usize::from(l))
                .sum();
            self.body.clear();
            self.body.resize(body_len, 0);
            if !read_full(&mut self.r, &mut self.body)? {
                self.eof = true;
                return Ok(false);
            }
            if *self.serial.get_or_insert(serial) != serial {
                continue; // another logical stream multiplexed in: not ours
            }
            header[22..26].fill(0);
            let mut digest = OGG_CRC.digest();
            digest.update(&header);
            digest.update(&self.lacing[..segments]);
            digest.update(&self.body);
            if digest.finalize() != crc {
                self.bad_pages += 1;
                self.partial.clear();
                continue;
            }
            let continued = flags & 0x01 != 0;
            let eos = flags & 0x04 != 0;
            self.split(segments, continued)?;
            self.place(granule, eos)?;
            if eos {
                self.eof = true;
            }
            if !self.slots.is_empty() || eos {
                return Ok(true);
            }
        }
    }

    /// Splits the page body into completed packets (copied into `packets`); parses the
    /// headers as they complete.
    fn split(&mut self, segments: usize, continued: bool) -> Result<(), MixError> {
        if !continued {
            // A packet said to continue did not: its start is unusable.
            self.partial.clear();
        }
        let mut skipping = continued && self.partial.is_empty();
        let mut at = 0;
        let mut from = 0;
        for i in 0..segments {
            let l = usize::from(self.lacing[i]);
            at += l;
            if l == 255 {
                continue;
            }
            // A packet ends at body[from..at].
            if skipping {
                // The rest of a packet whose start was on a lost page.
                skipping = false;
                from = at;
                continue;
            }
            let start = self.packets.len();
            if !self.partial.is_empty() {
                self.packets.extend_from_slice(&self.partial);
                self.partial.clear();
            }
            self.packets.extend_from_slice(&self.body[from..at]);
            from = at;
            self.completed(start)?;
        }
        if segments > 0 && self.lacing[segments - 1] == 255 && !skipping {
            // The last packet continues on the next page.
            self.partial.extend_from_slice(&self.body[from..at]);
        }
        Ok(())
    }

    /// A packet ended at `packets[start..]`: header or audio.
    fn completed(&mut self, start: usize) -> Result<(), MixError> {
        let index = self.packets_seen;
        self.packets_seen += 1;
        let p = &self.packets[start..];
        match index {
            0 => {
                if p.len() < 19 || &p[..8] != b"OpusHead" {
                    return Err(MixError::NotOpus {
                        track: self.track,
                        reason: "first packet is not an OpusHead",
                    });
                }
                let channels = p[9];
                if p[8] >> 4 != 0 || channels == 0 || channels > 2 || p[18] != 0 {
                    // Version major 0 is all RFC 7845 defines; families other than 0
                    // (surround) do not occur on calls.
                    return Err(MixError::NotOpus {
                        track: self.track,
                        reason: "unsupported OpusHead (version, or not mono/stereo family 0)",
                    });
                }
                self.head = Some(Head {
                    channels,
                    pre_skip: u16::from_le_bytes([p[10], p[11]]),
                    input_sample_rate: u32::from_le_bytes([p[12], p[13], p[14], p[15]]),
                    output_gain: i16::from_le_bytes([p[16], p[17]]),
                });
                self.packets.truncate(start);
            }
            1 => self.packets.truncate(start), // OpusTags: nothing we need
            _ => match opus::packet_samples_48k(p) {
                Ok(n) if n > 0 => self.slots.push(Slot {
                    from: start,
                    to: self.packets.len(),
                    start: 0,
                    samples: n,
                }),
                _ => {
                    self.bad_packets += 1;
                    self.packets.truncate(start);
                }
            },
        }
        Ok(())
    }

    /// Places this page's audio packets: the last one ends at the page granule (RFC 7845
    /// section 4), so the first starts at granule minus their durations. A later start than
    /// where the previous page ended is a gap (left silent); an earlier one is an overlap
    /// (a broken stream: we keep going from where we were). On the EOS page a granule short
    /// of the durations is end trimming.
    fn place(&mut self, granule: u64, eos: bool) -> Result<(), MixError> {
        if self.slots.is_empty() {
            return Ok(());
        }
        let total: u64 = self.slots.iter().map(|s| u64::from(s.samples)).sum();
        let mut pos = granule.saturating_sub(total).max(self.next_pos);
        if pos > MAX_CALL_48K {
            // A hostile or corrupt granule would otherwise have us encode years of silence.
            return Err(MixError::Corrupt {
                track: self.track,
                reason: "granule beyond 24 hours",
            });
        }
        for s in &mut self.slots {
            s.start = pos;
            if eos {
                s.samples = u64::from(s.samples).min(granule.saturating_sub(pos)) as u32;
            }
            pos += u64::from(s.samples);
        }
        self.next_pos = pos;
        // End trimming can leave nothing of a packet: not worth decoding.
        self.slots.retain(|s| s.samples > 0);
        Ok(())
    }
}

/// Fills `buf`; false if the stream ended first (a clean end or a file cut mid-page: either
/// way there is nothing more to play).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_never_exceeds_the_ceiling_and_recovers() {
        let mut l = Limiter::new(48_000);
        let mut max = 0f32;
        for i in 0..48_000 {
            let x = 2.0 * (i as f32 * 0.05).sin();
            let g = l.gain(x.abs());
            max = max.max((x * g).abs());
        }
        assert!(max <= LIMIT * 1.000_01, "{max}");
        assert!(l.min_gain < 0.5);
        // Quiet input: back to unity within a few time constants.
        for _ in 0..48_000 {
            l.gain(0.1);
        }
        assert!(l.gain > 0.999, "{}", l.gain);
    }

    #[test]
    fn limiter_leaves_speech_levels_alone() {
        let mut l = Limiter::new(16_000);
        for i in 0..16_000 {
            let x = 0.5 * (i as f32 * 0.01).sin();
            assert_eq!(l.gain(x.abs()), 1.0);
        }
        assert_eq!(l.min_gain, 1.0);
    }

    /// One second of silence packets as an Ogg Opus stream.
    fn silent_track() -> Vec<u8> {
        let head = OpusHead {
            channels: 1,
            pre_skip: 312,
            input_sample_rate: 48_000,
            output_gain: 0,
        };
        let mut w = OggOpusWriter::new(1, head, &[]);
        opus::silence_fill(48_000, 1, |p, n| w.write_packet(p, n));
        w.finish();
        w.output().clone()
    }

    #[test]
    fn absurd_positions_are_errors() {
        for n in [1, 2] {
            let inputs = (0..n)
                .map(|_| MixInput {
                    reader: io::Cursor::new(silent_track()),
                    start_ms: 1e12,
                    targeted: false,
                })
                .collect();
            let err = mix(inputs, "x", &MixConfig::default(), io::sink()).unwrap_err();
            assert!(matches!(err, MixError::Config(_)), "{err}");
        }
        // A granule jump of years on the second audio page: corrupt, not years of silence.
        let mut ogg = silent_track();
        let mut at = 0;
        let mut page = 0;
        while at < ogg.len() {
            let segs = usize::from(ogg[at + 26]);
            let body: usize = ogg[at + 27..at + 27 + segs]
                .iter()
                .map(|&l| usize::from(l))
                .sum();
            if page == 2 {
                ogg[at + 6..at + 14].copy_from_slice(&(1u64 << 50).to_le_bytes());
                ogg[at + 22..at + 26].fill(0);
                let crc = OGG_CRC.checksum(&ogg[at..at + 27 + segs + body]);
                ogg[at + 22..at + 26].copy_from_slice(&crc.to_le_bytes());
            }
            at += 27 + segs + body;
            page += 1;
        }
        let inputs = vec![MixInput {
            reader: io::Cursor::new(ogg),
            start_ms: 0.0,
            targeted: false,
        }];
        let err = mix(inputs, "x", &MixConfig::default(), io::sink()).unwrap_err();
        assert!(matches!(err, MixError::Corrupt { track: 0, .. }), "{err}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let inputs = vec![
            MixInput {
                reader: io::Cursor::new(b"not an ogg file at all, not at all....".to_vec()),
                start_ms: 0.0,
                targeted: false,
            },
            MixInput {
                reader: io::Cursor::new(Vec::new()),
                start_ms: 0.0,
                targeted: false,
            },
        ];
        let err = mix(inputs, "x", &MixConfig::default(), Vec::new()).unwrap_err();
        assert!(matches!(err, MixError::NotOpus { track: 0, .. }), "{err}");
        let err = mix(
            Vec::<MixInput<io::Cursor<Vec<u8>>>>::new(),
            "x",
            &MixConfig::default(),
            Vec::new(),
        )
        .unwrap_err();
        assert!(matches!(err, MixError::NoInputs));
    }
}
