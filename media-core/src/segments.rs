//! Per-speaker segmentation: where on a track a participant speaks, for the player's time
//! line ("jump to next segment", filter by participant).
//!
//! One [`Segmenter`] per track, fed frame by frame in track order, from either source of
//! loudness a recording has:
//!
//! - RFC 6464 audio levels ([`Segmenter::push_level`]), which most WebRTC senders put in
//!   every packet: no decoding at all, so a bot can segment thousands of live streams;
//! - decoded PCM ([`Segmenter::push_pcm`], or [`segments_from_ogg`] for a finished Ogg Opus
//!   track) when the sender sends no levels.
//!
//! Both become a frame energy in dBov and go through the same detector:
//!
//! 1. an adaptive noise floor: the minimum frame energy over the last few seconds (minimum
//!    statistics), so steady background noise sits at the floor and is not speech, while
//!    speech, which always has pauses between words, cannot drag the floor up with it;
//! 2. hysteresis: a segment opens when a frame is `on_snr_db` above the floor (and above an
//!    absolute minimum, for digital silence, whose floor is -127 dBov) and continues while
//!    frames stay `off_snr_db` above it; the opening is moved back over the quieter frames
//!    just before (a word's onset rises through the off threshold first);
//! 3. hang-over: a segment closes only after `hangover_ms` without speech, and ends at the
//!    last speech frame (not at the end of the hang-over, which would put every end late);
//! 4. segments shorter than `min_segment_ms` are clicks, dropped; segments closer than
//!    `merge_gap_ms` are one utterance with a breath in it, merged.
//!
//! The RFC 6464 V bit is not used for the decision: some senders never set it, and those
//! that do use their own thresholds (the fixtures' sender, like many, sets it for any frame
//! above -55 dBov, which 20 dB SNR background noise already is).
//!
//! Memory is O(1) per stream besides the segments found (a fixed ring of sub-window minima
//! and one segment held back for merging), and nothing is allocated per frame except when a
//! segment is emitted. Positions are 48 kHz samples on the track's time line; segments come
//! out in milliseconds on that same time line, and the caller adds the track's offset on the
//! call's time line.

use std::io::{Read, Seek};

use crate::opus::{packet_samples_48k, MAX_PACKET_SAMPLES_48K};

/// A stretch of speech of one participant on the call's time line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// Where speech starts, ms.
    pub start_ms: f64,
    /// Where speech ends (exclusive), ms.
    pub end_ms: f64,
}

/// Thresholds and timings of the detector. The defaults are tuned for telephone/WebRTC
/// speech (measured on the fixtures: docs/segments.md).
#[derive(Debug, Clone, Copy)]
pub struct SegmenterConfig {
    /// A frame this many dB above the noise floor opens a segment.
    pub on_snr_db: f32,
    /// A frame this many dB above the noise floor keeps a segment open (hysteresis: below
    /// `on_snr_db`, so the quieter ends of words do not chop a segment).
    pub off_snr_db: f32,
    /// Absolute minimum level to open a segment, dBov: on digital silence the floor is
    /// -127 dBov, and a faint decoder artefact must not count as speech.
    pub on_min_dbov: f32,
    /// Absolute minimum level to keep a segment open, dBov.
    pub off_min_dbov: f32,
    /// The floor is never taken above this, dBov: a "floor" louder than any real room noise
    /// means the detector has only heard speech so far (a track that starts mid-sentence).
    pub max_floor_dbov: f32,
    /// How far back the noise floor's minimum looks. Longer than the longest stretch of
    /// speech without a pause, shorter than the time noise may take to change.
    pub floor_window_ms: u32,
    /// How far before the first frame above `on_snr_db` a segment may start (over frames
    /// that were above `off_snr_db`).
    pub onset_lookback_ms: u32,
    /// Silence needed to close a segment.
    pub hangover_ms: u32,
    /// Segments (after hang-over) shorter than this are dropped.
    pub min_segment_ms: u32,
    /// Segments separated by at most this are merged into one.
    pub merge_gap_ms: u32,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig {
            on_snr_db: 12.0,
            off_snr_db: 6.0,
            on_min_dbov: -50.0,
            off_min_dbov: -60.0,
            max_floor_dbov: -30.0,
            floor_window_ms: 4000,
            onset_lookback_ms: 100,
            hangover_ms: 300,
            min_segment_ms: 100,
            merge_gap_ms: 500,
        }
    }
}

/// Samples per millisecond on the 48 kHz track time line.
const SAMPLES_PER_MS: u64 = 48;

/// PCM is analysed in blocks of 10 ms: fine enough for boundaries well under the 20 ms of
/// a packet, coarse enough that a block's energy is a stable estimate.
const PCM_BLOCK: usize = 480;

/// Sub-windows of the noise floor's minimum: the floor forgets one sub-window at a time.
const FLOOR_SUBWINDOWS: usize = 8;

/// Frame energy of digital silence (and the bottom of RFC 6464's scale).
const SILENCE_DBOV: f32 = -127.0;

/// Minimum statistics over a sliding window, in fixed memory: the window is cut into
/// [`FLOOR_SUBWINDOWS`] sub-windows, each remembered by its minimum only.
#[derive(Debug, Clone)]
struct NoiseFloor {
    minima: [f32; FLOOR_SUBWINDOWS],
    next: usize,
    current_min: f32,
    current_len: u64,
    subwindow_len: u64,
    max_floor: f32,
}

impl NoiseFloor {
    fn new(window_samples: u64, max_floor: f32) -> Self {
        NoiseFloor {
            // Empty sub-windows do not lower the minimum.
            minima: [f32::INFINITY; FLOOR_SUBWINDOWS],
            next: 0,
            current_min: f32::INFINITY,
            current_len: 0,
            subwindow_len: (window_samples / FLOOR_SUBWINDOWS as u64).max(1),
            max_floor,
        }
    }

    fn update(&mut self, dbov: f32, samples: u64) {
        self.current_min = self.current_min.min(dbov);
        self.current_len += samples;
        if self.current_len >= self.subwindow_len {
            self.minima[self.next] = self.current_min;
            self.next = (self.next + 1) % FLOOR_SUBWINDOWS;
            self.current_min = f32::INFINITY;
            self.current_len = 0;
        }
    }

    fn level(&self) -> f32 {
        let m = self.minima.iter().fold(self.current_min, |a, &b| a.min(b));
        if m.is_finite() {
            m.min(self.max_floor)
        } else {
            SILENCE_DBOV
        }
    }
}

/// The thresholds and timings in the units the detector works in.
#[derive(Debug, Clone, Copy)]
struct Limits {
    on_snr: f32,
    off_snr: f32,
    on_min: f32,
    off_min: f32,
    lookback: u64,
    hangover: u64,
    min_segment: u64,
    merge_gap: u64,
}

/// Online voice-activity segmentation of one track: fed one frame at a time, in order.
#[derive(Debug, Clone)]
pub struct Segmenter {
    limits: Limits,
    floor: NoiseFloor,
    /// End of the last frame fed; frames before it are ignored, a jump past it is a gap.
    cursor: Option<u64>,
    /// Start of the run of frames above the off threshold while not in a segment: where a
    /// segment opened by the next loud frame really began.
    run_start: Option<u64>,
    /// The open segment: its start and the end of its last speech frame.
    open: Option<(u64, u64)>,
    /// The last closed segment, held until the next one is known not to merge with it.
    pending: Option<(u64, u64)>,
    out: Vec<Segment>,
}

impl Segmenter {
    /// A segmenter for a track that has received nothing yet.
    pub fn new(config: SegmenterConfig) -> Self {
        let ms = |v: u32| u64::from(v) * SAMPLES_PER_MS;
        Segmenter {
            limits: Limits {
                on_snr: config.on_snr_db,
                off_snr: config.off_snr_db,
                on_min: config.on_min_dbov,
                off_min: config.off_min_dbov,
                lookback: ms(config.onset_lookback_ms),
                hangover: ms(config.hangover_ms),
                min_segment: ms(config.min_segment_ms),
                merge_gap: ms(config.merge_gap_ms),
            },
            floor: NoiseFloor::new(ms(config.floor_window_ms), config.max_floor_dbov),
            cursor: None,
            run_start: None,
            open: None,
            pending: None,
            out: Vec::new(),
        }
    }

    /// A frame from an RFC 6464 audio level: `level` in -dBov (0 loudest .. 127 silence),
    /// `voice` the V bit (may be false when the sender does not set it; it is not relied
    /// on, see the module documentation). `start_48k`/`samples_48k` position the frame on
    /// the track's time line (48 kHz samples since the track start).
    pub fn push_level(&mut self, start_48k: u64, samples_48k: u32, level: u8, voice: bool) {
        let _ = voice;
        // Levels above 127 cannot be sent (7 bits); clamp what a caller might pass.
        let dbov = -f32::from(level.min(127));
        self.frame(start_48k, u64::from(samples_48k), Some(dbov));
    }

    /// A frame of decoded PCM (mono or the first channel, 48 kHz i16): an energy VAD with an
    /// adaptive noise floor (so 20 dB SNR background noise is not speech). Analysed in 10 ms
    /// blocks.
    pub fn push_pcm(&mut self, start_48k: u64, pcm: &[i16]) {
        let mut at = start_48k;
        for block in pcm.chunks(PCM_BLOCK) {
            self.frame(at, block.len() as u64, Some(dbov(block)));
            at = at.saturating_add(block.len() as u64);
        }
    }

    /// A gap with no audio (loss, DTX): counts as silence, and tells nothing about the
    /// noise floor.
    pub fn push_gap(&mut self, start_48k: u64, samples_48k: u32) {
        self.frame(start_48k, u64::from(samples_48k), None);
    }

    /// Closes any open segment; returns the segments in order, in ms on the TRACK's time
    /// line (the caller adds the track's offset on the call's time line).
    pub fn finish(mut self) -> Vec<Segment> {
        self.close();
        if let Some(p) = self.pending.take() {
            self.emit(p);
        }
        self.out
    }

    /// Segments already final (closed, and too far from anything later to merge): for a
    /// live caller that publishes segments as the call goes.
    pub fn segments(&self) -> &[Segment] {
        &self.out
    }

    /// One frame `[start, start + len)`: its energy in dBov, or `None` for a gap.
    fn frame(&mut self, mut start: u64, len: u64, dbov: Option<f32>) {
        let end = start.saturating_add(len);
        if let Some(cursor) = self.cursor {
            if end <= cursor {
                // Entirely before what was already seen (a duplicate or a caller's overlap):
                // the time line is already decided there.
                return;
            }
            if start < cursor {
                start = cursor;
            } else if start > cursor {
                // Nothing was fed for this stretch: a gap, as if pushed.
                self.silence(start);
            }
        }
        self.cursor = Some(end);
        let Some(x) = dbov else {
            self.silence(end);
            return;
        };
        self.floor.update(x, end - start);
        let floor = self.floor.level();
        let l = self.limits;
        let off = (floor + l.off_snr).max(l.off_min);
        let on = (floor + l.on_snr).max(l.on_min);
        if x < off {
            self.silence(end);
            return;
        }
        match self.open.as_mut() {
            Some(seg) => seg.1 = end,
            None => {
                let run = *self.run_start.get_or_insert(start);
                if x >= on {
                    self.open = Some((run.max(start.saturating_sub(l.lookback)), end));
                    self.run_start = None;
                }
            }
        }
    }

    /// Silence (or a gap) up to `end`: closes the open segment once the hang-over is over.
    fn silence(&mut self, end: u64) {
        self.run_start = None;
        if let Some((_, last)) = self.open {
            if end.saturating_sub(last) >= self.limits.hangover {
                self.close();
            }
        }
    }

    fn close(&mut self) {
        let Some(seg) = self.open.take() else {
            return;
        };
        // A click is dropped before merging, so it cannot stretch a neighbouring segment.
        if seg.1 - seg.0 < self.limits.min_segment {
            return;
        }
        match self.pending.as_mut() {
            Some(p) if seg.0 <= p.1.saturating_add(self.limits.merge_gap) => p.1 = seg.1,
            _ => {
                if let Some(p) = self.pending.replace(seg) {
                    self.emit(p);
                }
            }
        }
    }

    fn emit(&mut self, (start, end): (u64, u64)) {
        let ms = |s: u64| s as f64 / SAMPLES_PER_MS as f64;
        self.out.push(Segment {
            start_ms: ms(start),
            end_ms: ms(end),
        });
    }
}

/// Energy of a block of PCM in dBov (RMS relative to full scale, as RFC 6464 levels are),
/// -127 for digital silence.
fn dbov(pcm: &[i16]) -> f32 {
    if pcm.is_empty() {
        return SILENCE_DBOV;
    }
    let energy: u64 = pcm
        .iter()
        .map(|&s| {
            let s = i64::from(s);
            (s * s) as u64
        })
        .sum();
    if energy == 0 {
        return SILENCE_DBOV;
    }
    let mean = energy as f64 / pcm.len() as f64;
    let db = 10.0 * (mean / (32767.0 * 32767.0)).log10();
    (db as f32).max(SILENCE_DBOV)
}

/// Why a track could not be segmented.
#[derive(Debug, thiserror::Error)]
pub enum SegmentsError {
    /// The Ogg container is damaged or is not Ogg.
    #[error("reading Ogg: {0}")]
    Ogg(#[from] ::ogg::OggReadError),
    /// The stream does not start with an OpusHead (and OpusTags) header.
    #[error("not an Ogg Opus stream: {0}")]
    NotOpus(&'static str),
    /// Multichannel (mapping family 1+) Opus needs a multistream decoder; recordings are
    /// mono or stereo.
    #[error("unsupported Opus channel count {0} (1 or 2)")]
    UnsupportedChannels(u8),
    /// libopus refused to create the decoder.
    #[error("opus decoder: {0}")]
    Opus(#[from] audiopus::Error),
}

/// Whether a packet is one of the recorder's gap fillers ([`crate::opus::silence_fill`]):
/// CELT-only fullband frames that are nothing but the silence flag. Those stand for audio
/// that never arrived, so they are a gap, not evidence of a silent room.
fn is_silence_fill(p: &[u8]) -> bool {
    const SILENT: [u8; 2] = [0xFF, 0xFE];
    let Some(&toc) = p.first() else {
        return false;
    };
    if !(28..=31).contains(&(toc >> 3)) {
        return false;
    }
    match toc & 0x03 {
        0 => p.len() == 3 && p[1..] == SILENT,
        3 => {
            let Some(&count) = p.get(1) else {
                return false;
            };
            // CBR without padding: the only code 3 layout the filler writes.
            let n = usize::from(count);
            count & 0xC0 == 0
                && n > 0
                && p.len() == 2 + 2 * n
                && p[2..].chunks_exact(2).all(|f| f == SILENT)
        }
        _ => false,
    }
}

/// Convenience for finished recordings: decodes an Ogg Opus track (libopus via `audiopus`),
/// runs the PCM VAD, returns segments in ms on the track's time line (pre-skip removed).
///
/// Only the first logical stream is read. Packets the recorder wrote for gaps (loss, DTX,
/// outages) count as gaps; a packet whose header or body libopus rejects counts as a gap of
/// its duration (or is skipped when even that is unreadable), so one damaged packet does not
/// lose a whole track's segments.
pub fn segments_from_ogg(
    reader: impl Read + Seek,
    config: SegmenterConfig,
) -> Result<Vec<Segment>, SegmentsError> {
    use audiopus::coder::Decoder;
    use audiopus::{Channels, SampleRate};

    let mut r = ::ogg::PacketReader::new(reader);
    let head = r.read_packet()?.ok_or(SegmentsError::NotOpus("empty"))?;
    let serial = head.stream_serial();
    let h = &head.data;
    if h.len() < 19 || &h[..8] != b"OpusHead" {
        return Err(SegmentsError::NotOpus("no OpusHead"));
    }
    let channels = h[9];
    let pre_skip = u64::from(u16::from_le_bytes([h[10], h[11]]));
    let ch = match channels {
        1 => Channels::Mono,
        2 => Channels::Stereo,
        n => return Err(SegmentsError::UnsupportedChannels(n)),
    };
    let tags = loop {
        let p = r
            .read_packet()?
            .ok_or(SegmentsError::NotOpus("no OpusTags"))?;
        if p.stream_serial() == serial {
            break p;
        }
    };
    if !tags.data.starts_with(b"OpusTags") {
        return Err(SegmentsError::NotOpus("no OpusTags"));
    }

    let mut dec = Decoder::new(SampleRate::Hz48000, ch)?;
    let width = usize::from(channels);
    let mut buf = vec![0i16; MAX_PACKET_SAMPLES_48K as usize * width];
    let mut first = vec![0i16; MAX_PACKET_SAMPLES_48K as usize];
    let mut seg = Segmenter::new(config);
    // Decoded position including the pre-skip: track time is this minus `pre_skip`.
    let mut pos: u64 = 0;
    while let Some(p) = r.read_packet()? {
        if p.stream_serial() != serial {
            continue;
        }
        let Ok(n) = packet_samples_48k(&p.data) else {
            continue;
        };
        let gap = is_silence_fill(&p.data);
        // Decoded even when it is a gap, so the decoder's state stays that of the stream.
        let decoded = dec.decode(Some(&p.data[..]), &mut buf[..], false);
        let (start, skip) = if pos >= pre_skip {
            (pos - pre_skip, 0)
        } else {
            (0, (pre_skip - pos) as usize)
        };
        match decoded {
            Ok(got) if !gap => {
                let got = got.min(MAX_PACKET_SAMPLES_48K as usize);
                for (dst, frame) in first.iter_mut().zip(buf.chunks_exact(width)).take(got) {
                    *dst = frame[0];
                }
                if skip < got {
                    seg.push_pcm(start, &first[skip..got]);
                }
            }
            _ => {
                if (skip as u64) < u64::from(n) {
                    seg.push_gap(start, n - skip as u32);
                }
            }
        }
        pos += u64::from(n);
    }
    Ok(seg.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: u32 = 960;

    /// Feeds levels per 20 ms frame: `(level, frames)` runs.
    fn levels(cfg: SegmenterConfig, runs: &[(u8, u32)]) -> Vec<Segment> {
        let mut s = Segmenter::new(cfg);
        let mut at = 0u64;
        for &(level, n) in runs {
            for _ in 0..n {
                s.push_level(at, F, level, level < 55);
                at += u64::from(F);
            }
        }
        s.finish()
    }

    fn ms(a: f64, b: f64) -> Segment {
        Segment {
            start_ms: a,
            end_ms: b,
        }
    }

    #[test]
    fn speech_on_digital_silence() {
        let segs = levels(
            SegmenterConfig::default(),
            &[(127, 50), (25, 100), (127, 100), (30, 20), (127, 10)],
        );
        assert_eq!(segs, vec![ms(1000.0, 3000.0), ms(5000.0, 5400.0)]);
    }

    #[test]
    fn steady_noise_is_not_speech() {
        // Noise at -45 dBov is above the absolute threshold; only the floor can tell.
        let segs = levels(
            SegmenterConfig::default(),
            &[(45, 100), (25, 100), (45, 300), (24, 10), (45, 50)],
        );
        assert_eq!(segs, vec![ms(2000.0, 4000.0), ms(10000.0, 10200.0)]);
    }

    #[test]
    fn hysteresis_and_hangover_bridge_word_gaps() {
        // Loud, quieter (above off, below on), a 200 ms dip, loud again: one segment.
        let segs = levels(
            SegmenterConfig::default(),
            &[
                (127, 10),
                (20, 20),
                (55, 10),
                (127, 10),
                (20, 20),
                (127, 50),
            ],
        );
        assert_eq!(segs, vec![ms(200.0, 1400.0)]);
    }

    #[test]
    fn onset_moves_back_over_rising_frames() {
        // Two frames above the off threshold only, then loud: the segment starts with them.
        let segs = levels(
            SegmenterConfig::default(),
            &[(127, 10), (56, 2), (20, 20), (127, 50)],
        );
        assert_eq!(segs, vec![ms(200.0, 640.0)]);
    }

    #[test]
    fn clicks_are_dropped_and_close_segments_merge() {
        let cfg = SegmenterConfig::default();
        // A 60 ms click alone; then two segments 400 ms apart (merged); then one 1 s away.
        let segs = levels(
            cfg,
            &[
                (127, 10),
                (20, 3),
                (127, 50),
                (20, 20),
                (127, 20),
                (20, 20),
                (127, 50),
                (20, 20),
                (127, 20),
            ],
        );
        assert_eq!(segs, vec![ms(1260.0, 2460.0), ms(3460.0, 3860.0)]);
    }

    #[test]
    fn gaps_count_as_silence_and_leave_the_floor_alone() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        let mut at = 0u64;
        let mut push = |s: &mut Segmenter, level: Option<u8>, n: u32| {
            for _ in 0..n {
                match level {
                    Some(l) => s.push_level(at, F, l, false),
                    None => s.push_gap(at, F),
                }
                at += u64::from(F);
            }
        };
        push(&mut s, Some(45), 100);
        push(&mut s, Some(25), 50);
        // A lost packet inside speech is bridged by the hang-over.
        push(&mut s, None, 1);
        push(&mut s, Some(25), 49);
        // A long gap closes the segment; noise after it is still noise.
        push(&mut s, None, 200);
        push(&mut s, Some(45), 100);
        assert_eq!(s.finish(), vec![ms(2000.0, 4000.0)]);
    }

    #[test]
    fn skipped_positions_are_gaps_and_overlaps_are_ignored() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        s.push_level(0, F, 127, false);
        s.push_level(0, F, 20, true); // overlaps what was fed: ignored
        for i in 1..20u64 {
            s.push_level(i * 960, F, 20, true);
        }
        // Nothing for 1 s, then speech again: two segments.
        for i in 70..90u64 {
            s.push_level(i * 960, F, 20, true);
        }
        assert_eq!(s.finish(), vec![ms(20.0, 400.0), ms(1400.0, 1800.0)]);
    }

    #[test]
    fn pcm_blocks_give_10ms_boundaries() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        let mut pcm = vec![0i16; 48_000];
        // A 1 kHz tone at about -10 dBov from 250 ms to 750 ms.
        for (i, x) in pcm.iter_mut().enumerate().take(36_000).skip(12_000) {
            *x = (10_000.0 * (i as f64 * 2.0 * std::f64::consts::PI / 48.0).sin()) as i16;
        }
        for (k, f) in pcm.chunks(960).enumerate() {
            s.push_pcm(k as u64 * 960, f);
        }
        assert_eq!(s.finish(), vec![ms(250.0, 750.0)]);
    }

    #[test]
    fn hostile_positions_do_not_panic() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        s.push_level(u64::MAX - 10, u32::MAX, 0, true);
        s.push_gap(u64::MAX, u32::MAX);
        s.push_pcm(3, &[i16::MIN; 7]);
        s.push_level(0, 0, 200, false);
        let _ = s.finish();
        // Two segments at the very end of the time line: merging must not overflow.
        let mut s = Segmenter::new(SegmenterConfig::default());
        let base = u64::MAX - 100 * u64::from(F);
        for (i, level) in [
            127u8, 20, 20, 20, 20, 20, 20, 127, 127, 127, 127, 127, 127, 127, 127, 127, 127, 127,
            127, 127, 127, 20, 20, 20, 20, 20, 20, 127,
        ]
        .into_iter()
        .enumerate()
        {
            s.push_level(base + i as u64 * u64::from(F), F, level, false);
        }
        s.push_pcm(u64::MAX - 100, &[1000; 960]);
        s.push_gap(u64::MAX - 10, u32::MAX);
        assert_eq!(s.finish().len(), 1);
    }

    #[test]
    fn silence_fill_packets_are_recognised() {
        let mut fills = Vec::new();
        crate::opus::silence_fill(960 * 9 + 480 + 240 + 120, 1, |p, _| fills.push(p.to_vec()));
        assert!(fills.len() >= 4);
        assert!(fills.iter().all(|p| is_silence_fill(p)));
        crate::opus::silence_fill(960 * 2, 2, |p, _| assert!(is_silence_fill(p)));
        assert!(!is_silence_fill(&[0xFC, 0xFF, 0xFF]));
        assert!(!is_silence_fill(&[0x78, 0xFF, 0xFE]));
        assert!(!is_silence_fill(&[]));
    }

    #[test]
    fn ogg_errors_are_typed() {
        let e = segments_from_ogg(
            std::io::Cursor::new(b"not ogg".to_vec()),
            Default::default(),
        );
        assert!(e.is_err());
        let mut w = crate::ogg::OggOpusWriter::new(
            1,
            crate::ogg::OpusHead {
                channels: 3,
                pre_skip: 312,
                input_sample_rate: 48_000,
                output_gain: 0,
            },
            &[],
        );
        w.finish();
        let bytes = w.output().clone();
        assert!(matches!(
            segments_from_ogg(std::io::Cursor::new(bytes), Default::default()),
            Err(SegmentsError::UnsupportedChannels(3))
        ));
    }
}
