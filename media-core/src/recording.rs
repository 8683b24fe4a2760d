//! A call's recording: one [`ParticipantTrack`] per participant, each turning datagrams into
//! an Ogg Opus byte stream on the call's time line.
//!
//! Sans-IO: the caller passes each datagram with its arrival time (`now`), calls
//! [`ParticipantTrack::handle_timeout`] when [`ParticipantTrack::poll_timeout`] says, and
//! writes out whatever [`ParticipantTrack::output`] holds (whole Ogg pages). Nothing here
//! reads a clock, touches a file or allocates per packet in steady state.
//!
//! Per datagram: RTP/RTCP demultiplexing (RFC 5761) -> SRTP/SRTCP unprotect in place ->
//! RTP parse -> per-SSRC extended sequence/timestamp -> reorder window -> time line
//! placement -> silence fill of any gap -> the packet itself, bit-exact, into the Ogg page.

use std::collections::VecDeque;

use crate::ogg::{OggOpusWriter, OpusHead};
use crate::opus;
use crate::reorder::{Admission, ReorderBuffer, ReorderConfig, ReorderStats};
use crate::rtcp::{CompoundPacket, RtcpPacket};
use crate::rtp::{self, AudioLevel, RtpPacket};
use crate::segments::{Segment, Segmenter, SegmenterConfig};
use crate::seq::{ExtTs, SeqUnwrapper, TsUnwrapper};
use crate::srtp::{SrtpError, SrtpKeyMaterial, SrtpSession};
use crate::time::{format_rfc3339, Micros};
use crate::timeline::{Resync, Timeline, TimelineConfig};
use crate::transcode::{AudioFormat, Transcoder};

/// Pre-skip written in OpusHead. The packets are remuxed, not re-encoded, so the real value is
/// the sender's encoder lookahead, which RTP does not carry; 312 samples (6.5 ms) is what
/// libopus, by far the most common sender, uses at 48 kHz, and it makes the decoded audio line
/// up with the sender's capture time.
pub const PRE_SKIP: u16 = 312;

/// How a participant track is recorded.
#[derive(Debug, Clone)]
pub struct TrackConfig {
    /// The participant's name (file name stem and OpusTags PARTICIPANT).
    pub participant: String,
    /// The call this track belongs to (OpusTags CALL_ID).
    pub call_id: String,
    /// SRTP keys of the incoming direction; `None` for plain RTP.
    pub srtp: Option<SrtpKeyMaterial>,
    /// The audio payload type; `None` takes the first packet that is Opus (a dynamic type
    /// carrying valid Opus) or a static format we transcode (G.711, L16), and counts packets
    /// of other types (telephone events, comfort noise) apart.
    pub payload_type: Option<u8>,
    /// The format of `payload_type` when it is not Opus (from signaling, e.g. an SDP
    /// `a=rtpmap:96 L16/16000`): transcoded to Opus instead of remuxed.
    pub format: Option<AudioFormat>,
    /// RFC 8285 extension id of the RFC 6464 audio level (`a=extmap:N
    /// urn:ietf:params:rtp-hdrext:ssrc-audio-level`); levels feed the speech segmenter.
    /// `None` when the sender does not provide them.
    pub audio_level_id: Option<u8>,
    /// Speech segmentation settings (used when levels arrive).
    pub segmenter: SegmenterConfig,
    /// libopus complexity for tracks transcoded from G.711/L16. This encoder runs on the
    /// live path for every such speaker: 0 encodes about 420 concurrent 16 kHz speakers per
    /// core, 1 about 370, 5 about 180 (`cargo bench -p benches --bench encode`); at 32 kbit/s
    /// wideband the difference is not one a reviewer of a call recording hears.
    pub encoder_complexity: u8,
    /// Ogg bitstream serial number.
    pub serial: u32,
    /// Reorder window bounds.
    pub reorder: ReorderConfig,
    /// Clock-disagreement tolerances.
    pub timeline: TimelineConfig,
    /// Longest time an Ogg page stays open; bounds what a killed process can lose.
    pub flush_interval: Micros,
    /// Whether `now` counts from the Unix epoch, so the first packet's time can be written
    /// as the track's START_TIME tag.
    pub unix_time: bool,
}

impl TrackConfig {
    /// Defaults for a participant of a call.
    pub fn new(call_id: impl Into<String>, participant: impl Into<String>) -> Self {
        TrackConfig {
            participant: participant.into(),
            call_id: call_id.into(),
            srtp: None,
            payload_type: None,
            format: None,
            // The id browsers and most SBCs use; signaling overrides it.
            audio_level_id: Some(1),
            segmenter: SegmenterConfig::default(),
            encoder_complexity: 0,
            serial: 1,
            reorder: ReorderConfig::default(),
            timeline: TimelineConfig::default(),
            flush_interval: Micros::from_millis(1000),
            unix_time: true,
        }
    }
}

/// Counters of one track, in packets unless named otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackStats {
    /// RTP packets that decrypted and parsed (duplicates and late ones included).
    pub received: u64,
    /// Received packets written to the file.
    pub written: u64,
    /// Sequence numbers never received.
    pub lost: u64,
    /// Extra copies of received packets, dropped.
    pub duplicated: u64,
    /// Packets that arrived after their place had been given up, dropped.
    pub late: u64,
    /// Packets that failed SRTP/SRTCP authentication or replay checks, dropped.
    pub undecryptable: u64,
    /// Datagrams that are not RTP/RTCP, or whose RTP or Opus framing is invalid, dropped.
    pub malformed: u64,
    /// RTCP packets (compound or not) received.
    pub rtcp: u64,
    /// RTP packets of another payload type than the track's Opus, dropped.
    pub other_payload: u64,
    /// 48 kHz samples of silence inserted for gaps.
    pub filled_samples: u64,
    /// 48 kHz samples on the track's time line (the file's playable duration).
    pub samples: u64,
    /// Times the time line was re-anchored on the arrival clock.
    pub resyncs: u64,
    /// SSRCs seen, in order of first use.
    pub ssrcs: Vec<u32>,
    /// Arrival of the first packet written.
    pub first_arrival: Option<Micros>,
    /// Arrival of the last datagram.
    pub last_arrival: Option<Micros>,
    /// Channel count of the stream (from the first Opus packet).
    pub channels: u8,
    /// The codec received: `opus` (remuxed bit-exact), or `PCMU`/`PCMA`/`L16` (transcoded to
    /// Opus); empty until the first audio packet.
    pub codec: &'static str,
    /// Opus frames libopus failed to encode (transcoded tracks only; each is a 20 ms gap).
    pub encode_errors: u64,
    /// The most recent SRTP failure, for a clear report (e.g. a wrong key).
    pub last_srtp_error: Option<SrtpError>,
    /// RTCP sender reports received (every SSRC).
    pub sender_reports: u64,
    /// Sender reports that could not be placed on the track: another SSRC than the one
    /// feeding the track, no packet of that SSRC placed yet, or no wall clock (NTP 0).
    pub sender_reports_ignored: u64,
    /// Where the first placeable sender report falls on the track: ties the sender's wall
    /// clock to the track's time line (used to align the two legs of a dual-bot recording).
    pub sr_anchor: Option<SrAnchor>,
}

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;

/// An RTCP sender report placed on a track's time line: the sender's wall clock (NTP) at a
/// known track position. Two recordings of the same sender (the legs of a dual-bot call)
/// share that clock, so their tracks can be aligned without trusting either host's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrAnchor {
    /// The SSRC that sent the report (the one feeding the track at the time).
    pub ssrc: u32,
    /// NTP timestamp of the report, 32.32 fixed point seconds since 1900.
    pub ntp: u64,
    /// The report's RTP timestamp, in the stream's clock.
    pub rtp_timestamp: u32,
    /// Where that RTP timestamp falls on the track, 48 kHz samples from the track's first
    /// sample (the file's granule clock before pre-skip). Negative if it precedes the first
    /// packet.
    pub position_48k: i64,
}

impl SrAnchor {
    /// The report's NTP time as Unix ms (fraction kept).
    pub fn ntp_unix_ms(&self) -> f64 {
        let secs = (self.ntp >> 32) as f64 - NTP_UNIX_OFFSET_S as f64;
        let frac = (self.ntp & 0xffff_ffff) as f64 / 4_294_967_296.0;
        (secs + frac) * 1000.0
    }

    /// The anchor's track position in ms.
    pub fn track_ms(&self) -> f64 {
        self.position_48k as f64 / 48.0
    }

    /// Unix ms on the sender's clock of the track's first sample.
    pub fn track_start_sender_ms(&self) -> f64 {
        self.ntp_unix_ms() - self.track_ms()
    }
}

/// Something a track reports besides bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackEvent {
    /// A new SSRC started on the track (the first one, or a change).
    SourceStarted { ssrc: u32, at: Micros },
    /// The time line was re-anchored on the arrival clock.
    Resynced { reason: Resync, at: Micros },
    /// An RTCP sender report (for aligning tracks and legs).
    SenderReport {
        ssrc: u32,
        ntp: u64,
        rtp_timestamp: u32,
        at: Micros,
    },
    /// An RTCP BYE for an SSRC.
    Goodbye { ssrc: u32, at: Micros },
}

/// Events kept for the caller before the oldest are dropped; events are rare, and a caller
/// that never polls must not make memory grow.
const MAX_EVENTS: usize = 64;

/// A packet waiting in the reorder window: its own copy of the payload, in a buffer that is
/// reused by later packets.
#[derive(Debug, Default)]
struct Held {
    /// Raw RTP timestamp: unwrapped when the packet leaves the window, in order.
    ts: u32,
    /// False for packets that only hold their place in the sequence (DTMF, comfort noise).
    audio: bool,
    level: Option<AudioLevel>,
    payload: Vec<u8>,
}

/// One RTP source (SSRC) of the track.
#[derive(Debug)]
struct Source {
    ssrc: u32,
    seq: SeqUnwrapper,
    ts: TsUnwrapper,
    reorder: ReorderBuffer<Held>,
}

/// Everything after the reorder window: placement and the Ogg writer.
#[derive(Debug)]
struct Sink {
    timeline: Timeline,
    writer: Option<OggOpusWriter>,
    /// Position (48 kHz samples) where the next packet would start without a gap.
    end: u64,
    no_output: Vec<u8>,
    /// Present for a track whose audio is not Opus.
    transcoder: Option<Box<Transcoder>>,
    /// Speech segments from RFC 6464 levels; created by the first packet that has one.
    segmenter: Option<Segmenter>,
    /// The segmenter's result once the track is finished.
    segments: Option<Vec<Segment>>,
    /// Extended RTP timestamp and time-line position (48 kHz) of the last packet placed from
    /// the current source: what a sender report's RTP timestamp is measured from.
    last_placed: Option<(ExtTs, u64)>,
    stats: TrackStats,
    events: VecDeque<TrackEvent>,
}

/// The recording of one participant.
#[derive(Debug)]
pub struct ParticipantTrack {
    config: TrackConfig,
    srtp: Option<SrtpSession>,
    source: Option<Source>,
    /// Reorder counters of sources already replaced.
    retired: ReorderStats,
    switched_at: Micros,
    sink: Sink,
    last_flush: Option<Micros>,
    finished: bool,
}

/// Packets of a replaced SSRC that arrive this soon after the change are stragglers (counted
/// late), not a switch back.
const STRAGGLER_WINDOW: Micros = Micros(1_000_000);

impl ParticipantTrack {
    /// A track that has received nothing yet.
    pub fn new(config: TrackConfig) -> Self {
        ParticipantTrack {
            srtp: config.srtp.clone().map(SrtpSession::new),
            sink: Sink {
                timeline: Timeline::new(48_000, config.timeline),
                writer: None,
                end: 0,
                no_output: Vec::new(),
                transcoder: None,
                segmenter: None,
                segments: None,
                last_placed: None,
                stats: TrackStats::default(),
                events: VecDeque::new(),
            },
            config,
            source: None,
            retired: ReorderStats::default(),
            switched_at: Micros(0),
            last_flush: None,
            finished: false,
        }
    }

    /// The track's configuration.
    pub fn config(&self) -> &TrackConfig {
        &self.config
    }

    /// Handles one UDP datagram that arrived at `now`. The buffer is decrypted in place.
    pub fn handle_datagram(&mut self, now: Micros, datagram: &mut [u8]) {
        if self.finished {
            return;
        }
        self.sink.stats.last_arrival = Some(now);
        if !rtp::looks_like_rtp_or_rtcp(datagram) {
            self.sink.stats.malformed += 1;
            return;
        }
        if rtp::is_rtcp(datagram) {
            self.handle_rtcp(now, datagram);
            return;
        }
        let Some(len) = self.unprotect(datagram, false) else {
            return;
        };
        let Ok(packet) = RtpPacket::parse(&datagram[..len]) else {
            self.sink.stats.malformed += 1;
            return;
        };
        let audio = self.is_audio(&packet);
        if !audio {
            self.sink.stats.other_payload += 1;
        }
        self.sink.stats.received += 1;
        if !self.select_source(now, packet.ssrc) {
            self.sink.stats.late += 1;
            return;
        }
        let Some(source) = self.source.as_mut() else {
            return;
        };
        let seq = source.seq.unwrap(packet.sequence);
        let level = self
            .config
            .audio_level_id
            .and_then(|id| packet.audio_level(id));
        match source.reorder.admit(seq) {
            Admission::Deliver => {
                if audio {
                    let ts = source.ts.unwrap(packet.timestamp);
                    self.sink
                        .emit(&self.config, ts, now, packet.payload(), level);
                }
            }
            Admission::Store => {
                while let Some(r) = source.reorder.make_room(seq) {
                    self.sink
                        .release(&self.config, &mut source.ts, r.arrival, r.item);
                }
                if let Some(held) = source.reorder.insert(seq, now) {
                    held.ts = packet.timestamp;
                    held.audio = audio;
                    held.level = level;
                    held.payload.clear();
                    if audio {
                        held.payload.extend_from_slice(packet.payload());
                    }
                }
            }
            Admission::Duplicate | Admission::Late => {}
        }
        self.release(now);
        self.maybe_flush(now);
    }

    /// Whether the packet is the track's Opus. Other packets of the stream (DTMF, comfort
    /// noise) are not recorded but still go through the reorder window, since they share the
    /// sequence space and would otherwise count as lost.
    fn is_audio(&mut self, packet: &RtpPacket<'_>) -> bool {
        if let Some(pt) = self.config.payload_type {
            if pt != packet.payload_type {
                return false;
            }
            if self.sink.stats.codec.is_empty() {
                // Configured by signaling: set the codec up on its first packet.
                let format = self.config.format;
                return self.lock(pt, format);
            }
            return true;
        }
        // Opus only ever has a dynamic payload type (RFC 7587); static ones are G.711, L16,
        // G.722, comfort noise... Lock onto the first packet that is Opus (dynamic, valid
        // Opus, not DTMF: RFC 4733 events are dynamic too and their 4-byte payloads happen to
        // parse as Opus) or a static format we transcode.
        let pt = packet.payload_type;
        let payload = packet.payload();
        if pt >= 96 {
            let opus = !looks_like_dtmf(payload) && opus::packet_samples_48k(payload).is_ok();
            opus && self.lock(pt, None)
        } else {
            match AudioFormat::from_static_payload_type(pt) {
                Some(format) if !payload.is_empty() => self.lock(pt, Some(format)),
                _ => false,
            }
        }
    }

    /// Fixes the track's payload type and codec: Opus is remuxed, anything else gets a
    /// transcoder and its own RTP clock rate.
    fn lock(&mut self, pt: u8, format: Option<AudioFormat>) -> bool {
        match format {
            None => self.sink.stats.codec = "opus",
            Some(format) => {
                match Transcoder::with_complexity(format, self.config.encoder_complexity) {
                    Ok(t) => {
                        self.sink.transcoder = Some(Box::new(t));
                        self.sink.timeline.set_clock_rate(format.clock_rate());
                        self.sink.stats.codec = format.name();
                    }
                    Err(_) => return false,
                }
            }
        }
        self.config.payload_type = Some(pt);
        true
    }

    /// Switches to `ssrc` if it is new; returns false for a straggler of a replaced SSRC.
    fn select_source(&mut self, now: Micros, ssrc: u32) -> bool {
        if self.source.as_ref().is_some_and(|s| s.ssrc == ssrc) {
            return true;
        }
        if self.source.is_some()
            && self.sink.stats.ssrcs.contains(&ssrc)
            && now.saturating_since(self.switched_at) < STRAGGLER_WINDOW
        {
            return false;
        }
        if let Some(mut old) = self.source.take() {
            // Everything the old source still holds plays before the new one starts.
            while let Some(r) = old.reorder.drain() {
                self.sink
                    .release(&self.config, &mut old.ts, r.arrival, r.item);
            }
            let s = old.reorder.stats();
            self.retired.lost += s.lost;
            self.retired.duplicated += s.duplicated;
            self.retired.late += s.late;
            self.sink.timeline.new_source();
            // The new source's timestamps have another base: reports of it must be measured
            // from its own packets.
            self.sink.last_placed = None;
        }
        if !self.sink.stats.ssrcs.contains(&ssrc) {
            self.sink.stats.ssrcs.push(ssrc);
        }
        self.switched_at = now;
        self.push_event(TrackEvent::SourceStarted { ssrc, at: now });
        self.source = Some(Source {
            ssrc,
            seq: SeqUnwrapper::default(),
            ts: TsUnwrapper::default(),
            reorder: ReorderBuffer::new(self.config.reorder),
        });
        true
    }

    /// SRTP/SRTCP unprotect in place (a no-op for plain RTP); a failure is counted and
    /// remembered for the report.
    fn unprotect(&mut self, datagram: &mut [u8], rtcp: bool) -> Option<usize> {
        let Some(srtp) = &mut self.srtp else {
            return Some(datagram.len());
        };
        let result = if rtcp {
            srtp.unprotect_rtcp(datagram)
        } else {
            srtp.unprotect_rtp(datagram)
        };
        result
            .map_err(|e| {
                self.sink.stats.undecryptable += 1;
                self.sink.stats.last_srtp_error = Some(e);
            })
            .ok()
    }

    fn handle_rtcp(&mut self, now: Micros, datagram: &mut [u8]) {
        let Some(len) = self.unprotect(datagram, true) else {
            return;
        };
        let Ok(compound) = CompoundPacket::parse(&datagram[..len]) else {
            self.sink.stats.malformed += 1;
            return;
        };
        self.sink.stats.rtcp += 1;
        let current = self.source.as_ref().map(|s| s.ssrc);
        for packet in compound.iter().flatten() {
            match packet {
                RtcpPacket::SenderReport(sr) => {
                    self.sink.anchor_sender_report(
                        current,
                        sr.ssrc,
                        sr.ntp_timestamp,
                        sr.rtp_timestamp,
                    );
                    self.push_event(TrackEvent::SenderReport {
                        ssrc: sr.ssrc,
                        ntp: sr.ntp_timestamp,
                        rtp_timestamp: sr.rtp_timestamp,
                        at: now,
                    })
                }
                RtcpPacket::Goodbye(bye) => {
                    for ssrc in bye.ssrcs() {
                        self.push_event(TrackEvent::Goodbye { ssrc, at: now });
                    }
                }
                _ => {}
            }
        }
    }

    fn push_event(&mut self, event: TrackEvent) {
        if self.sink.events.len() >= MAX_EVENTS {
            self.sink.events.pop_front();
        }
        self.sink.events.push_back(event);
    }

    /// Releases what the reorder window lets go at `now`.
    fn release(&mut self, now: Micros) {
        let Some(source) = self.source.as_mut() else {
            return;
        };
        while let Some(r) = source.reorder.pop(now) {
            self.sink
                .release(&self.config, &mut source.ts, r.arrival, r.item);
        }
    }

    fn maybe_flush(&mut self, now: Micros) {
        let last = *self.last_flush.get_or_insert(now);
        if now.saturating_since(last) >= self.config.flush_interval {
            if let Some(w) = self.sink.writer.as_mut() {
                w.flush();
            }
            self.last_flush = Some(now);
        }
    }

    /// Advances time without a packet: releases timed-out reorder slots and flushes the page
    /// under construction once it is `flush_interval` old.
    pub fn handle_timeout(&mut self, now: Micros) {
        if self.finished {
            return;
        }
        self.release(now);
        self.maybe_flush(now);
    }

    /// When [`ParticipantTrack::handle_timeout`] should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Micros> {
        if self.finished {
            return None;
        }
        let reorder = self.source.as_ref().and_then(|s| s.reorder.poll_timeout());
        let flush = match (&self.sink.writer, self.last_flush) {
            (Some(_), Some(last)) => Some(last + self.config.flush_interval),
            _ => None,
        };
        match (reorder, flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Ends the track: everything still waiting is written and the stream is closed (EOS).
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        if let Some(source) = self.source.as_mut() {
            while let Some(r) = source.reorder.drain() {
                self.sink
                    .release(&self.config, &mut source.ts, r.arrival, r.item);
            }
        }
        self.sink.finish();
        self.finished = true;
    }

    /// Whole Ogg pages ready to be written; the caller writes them and clears the buffer.
    pub fn output(&mut self) -> &mut Vec<u8> {
        match self.sink.writer.as_mut() {
            Some(w) => w.output(),
            None => &mut self.sink.no_output,
        }
    }

    /// Whether any audio was written (a track whose every packet failed SRTP has none, and
    /// gets no file).
    pub fn has_audio(&self) -> bool {
        self.sink.writer.is_some()
    }

    /// Speech segments found from the RFC 6464 audio levels, in ms on the track's time line
    /// (0 = its first packet); `None` if the sender sent no levels (segment the decoded audio
    /// instead: [`crate::segments::segments_from_ogg`]). Available once finished.
    pub fn segments(&self) -> Option<&[Segment]> {
        self.sink.segments.as_deref()
    }

    /// The next reported event, if any.
    pub fn poll_event(&mut self) -> Option<TrackEvent> {
        self.sink.events.pop_front()
    }

    /// The counters so far.
    pub fn stats(&self) -> TrackStats {
        let mut s = self.sink.stats.clone();
        let current = self
            .source
            .as_ref()
            .map(|s| s.reorder.stats())
            .unwrap_or_default();
        s.lost = self.retired.lost + current.lost;
        s.duplicated = self.retired.duplicated + current.duplicated;
        // Straggler packets of replaced SSRCs were counted late directly.
        s.late += self.retired.late + current.late;
        s.samples = self.sink.end;
        s.resyncs = self.sink.timeline.resyncs();
        s
    }
}

/// Whether an RTP payload has the shape of RFC 4733 DTMF events: whole 4-byte events, event
/// codes 0-16 and the reserved bit clear.
fn looks_like_dtmf(payload: &[u8]) -> bool {
    !payload.is_empty()
        && payload.len() <= 16
        && payload.len() % 4 == 0
        && payload
            .chunks_exact(4)
            .all(|e| e[0] <= 16 && e[1] & 0x40 == 0)
}

impl Sink {
    /// Places a sender report of `ssrc` on the time line, relative to the last packet placed
    /// from the current source (`current`); the first one placed is kept.
    fn anchor_sender_report(&mut self, current: Option<u32>, ssrc: u32, ntp: u64, rtp_ts: u32) {
        self.stats.sender_reports += 1;
        let last = self.last_placed.filter(|_| current == Some(ssrc));
        // NTP 0 is a sender without a wall clock (RFC 3550 6.4.1).
        let Some((ts, pos)) = last.filter(|_| ntp != 0) else {
            self.stats.sender_reports_ignored += 1;
            return;
        };
        if self.stats.sr_anchor.is_some() {
            return;
        }
        // The report is sent near the stream's newest packet: the nearest interpretation
        // of its 32-bit timestamp (within 2^31 ticks) is the right one, across a wrap too.
        let delta = rtp_ts.wrapping_sub(ts.0 as u32) as i32 as i64;
        let position_48k = pos as i64 + self.timeline.rtp_to_samples48(delta);
        self.stats.sr_anchor = Some(SrAnchor {
            ssrc,
            ntp,
            rtp_timestamp: rtp_ts,
            position_48k,
        });
    }

    /// Places one in-order packet on the time line, fills any gap before it with silence and
    /// writes it.
    /// A packet leaving the reorder window: audio is placed and written; packets that only
    /// held a place in the sequence are done.
    fn release(
        &mut self,
        config: &TrackConfig,
        ts: &mut TsUnwrapper,
        arrival: Micros,
        held: &Held,
    ) {
        if held.audio {
            let ts = ts.unwrap(held.ts);
            self.emit(config, ts, arrival, &held.payload, held.level);
        }
    }

    fn emit(
        &mut self,
        config: &TrackConfig,
        ts: ExtTs,
        arrival: Micros,
        payload: &[u8],
        level: Option<AudioLevel>,
    ) {
        let Sink {
            timeline,
            writer,
            end,
            transcoder,
            segmenter,
            stats,
            events,
            last_placed,
            ..
        } = self;
        // Opus is checked before it goes into the file; other formats cannot be malformed
        // beyond being empty.
        let opus_samples = match transcoder {
            None => match opus::packet_samples_48k(payload) {
                Ok(n) => n,
                Err(_) => {
                    stats.malformed += 1;
                    return;
                }
            },
            Some(_) if payload.is_empty() => {
                stats.malformed += 1;
                return;
            }
            Some(_) => 0,
        };
        let (pos, resync) = timeline.place(ts, arrival);
        *last_placed = Some((ts, pos));
        if let Some(reason) = resync {
            if reason != Resync::NewSource {
                if events.len() >= MAX_EVENTS {
                    events.pop_front();
                }
                events.push_back(TrackEvent::Resynced {
                    reason,
                    at: arrival,
                });
            }
        }
        let writer = match writer {
            Some(w) => w,
            None => {
                let (channels, pre_skip, rate) = match transcoder {
                    Some(t) => (t.channels(), t.pre_skip(), t.format().clock_rate()),
                    None => (
                        opus::packet_channels(payload).unwrap_or(1),
                        PRE_SKIP,
                        48_000,
                    ),
                };
                stats.channels = channels;
                stats.first_arrival = Some(arrival);
                writer.insert(new_writer(config, arrival, channels, pre_skip, rate))
            }
        };
        let channels = stats.channels;
        let gap_from = *end;
        let written_from = (*end).max(pos);
        match transcoder {
            None => {
                if pos > *end {
                    let covered =
                        opus::silence_fill(pos - *end, channels, |p, n| writer.write_packet(p, n));
                    *end += covered;
                    stats.filled_samples += covered;
                }
                writer.write_packet(payload, opus_samples);
                *end += opus_samples as u64;
            }
            Some(t) => {
                // The transcoder holds up to 20 ms not yet encoded; a gap is anything beyond
                // that (plus rounding), and what it holds is closed with silence first.
                let expected = *end + t.pending_samples_48k() as u64;
                if pos > expected + opus::SILENCE_GRANULE_48K {
                    let padded = t.flush(|p, n| {
                        writer.write_packet(p, n);
                        *end += n as u64;
                    });
                    stats.filled_samples += padded as u64;
                    if pos > *end {
                        let covered = opus::silence_fill(pos - *end, channels, |p, n| {
                            writer.write_packet(p, n)
                        });
                        *end += covered;
                        stats.filled_samples += covered;
                    }
                }
                t.push(payload, |p, n| {
                    writer.write_packet(p, n);
                    *end += n as u64;
                });
                stats.encode_errors = t.encode_errors();
            }
        }
        stats.written += 1;
        if let Some(level) = level {
            let seg = segmenter.get_or_insert_with(|| Segmenter::new(config.segmenter));
            if written_from > gap_from {
                seg.push_gap(gap_from, (written_from - gap_from) as u32);
            }
            // The level describes this packet's audio, wherever the packet landed.
            let samples = (*end).saturating_sub(written_from).max(1) as u32;
            seg.push_level(written_from, samples, level.level, level.voice);
        }
    }

    /// Ends the stream: what the transcoder still holds is encoded, then EOS.
    fn finish(&mut self) {
        self.segments = self.segmenter.take().map(Segmenter::finish);
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        if let Some(t) = self.transcoder.as_mut() {
            let end = &mut self.end;
            let padded = t.flush(|p, n| {
                writer.write_packet(p, n);
                *end += n as u64;
            });
            self.stats.filled_samples += padded as u64;
            self.stats.encode_errors = t.encode_errors();
        }
        writer.finish();
    }
}

/// The Ogg Opus writer of a track, with its tags.
fn new_writer(
    config: &TrackConfig,
    arrival: Micros,
    channels: u8,
    pre_skip: u16,
    input_sample_rate: u32,
) -> OggOpusWriter {
    let start = format_rfc3339(arrival.0);
    let mut comments = vec![
        ("CALL_ID", config.call_id.as_str()),
        ("PARTICIPANT", config.participant.as_str()),
    ];
    if config.unix_time {
        comments.push(("START_TIME", start.as_str()));
    }
    OggOpusWriter::new(
        config.serial,
        OpusHead {
            channels,
            pre_skip,
            input_sample_rate,
            output_gain: 0,
        },
        &comments,
    )
}

/// A call's tracks, addressed by index.
#[derive(Debug, Default)]
pub struct Recording {
    tracks: Vec<ParticipantTrack>,
}

/// Index of a track in its [`Recording`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrackId(pub usize);

impl Recording {
    /// An empty recording.
    pub fn new() -> Self {
        Recording::default()
    }

    /// Adds a participant track.
    pub fn add_track(&mut self, config: TrackConfig) -> TrackId {
        self.tracks.push(ParticipantTrack::new(config));
        TrackId(self.tracks.len() - 1)
    }

    /// The track `id`.
    pub fn track(&self, id: TrackId) -> &ParticipantTrack {
        &self.tracks[id.0]
    }

    /// The track `id`, mutably.
    pub fn track_mut(&mut self, id: TrackId) -> &mut ParticipantTrack {
        &mut self.tracks[id.0]
    }

    /// All tracks in the order they were added.
    pub fn tracks_mut(&mut self) -> impl Iterator<Item = (TrackId, &mut ParticipantTrack)> {
        self.tracks
            .iter_mut()
            .enumerate()
            .map(|(i, t)| (TrackId(i), t))
    }

    /// Advances every track's timers.
    pub fn handle_timeout(&mut self, now: Micros) {
        for t in &mut self.tracks {
            t.handle_timeout(now);
        }
    }

    /// The earliest timer of any track.
    pub fn poll_timeout(&self) -> Option<Micros> {
        self.tracks.iter().filter_map(|t| t.poll_timeout()).min()
    }

    /// Finishes every track.
    pub fn finish(&mut self) {
        for t in &mut self.tracks {
            t.finish();
        }
    }
}

/// Fuzzing entry point: splits `data` into length-prefixed datagrams and feeds them to a
/// plain and an SRTP track with advancing time; must never panic.
#[doc(hidden)]
pub fn fuzz_ingest(data: &[u8]) {
    let mut plain = ParticipantTrack::new(TrackConfig::new("fuzz", "plain"));
    let mut secure_cfg = TrackConfig::new("fuzz", "srtp");
    secure_cfg.srtp = SrtpKeyMaterial::new(
        crate::srtp::SrtpProfile::AesCm128HmacSha1_80,
        &[7u8; 16],
        &[9u8; 14],
    )
    .ok();
    let mut secure = ParticipantTrack::new(secure_cfg);
    let mut rest = data;
    let mut now = Micros(1_000_000);
    let mut buf = Vec::new();
    while rest.len() >= 3 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize % 1500;
        now = now + Micros(rest[2] as u64 * 1000);
        rest = &rest[3..];
        let take = len.min(rest.len());
        buf.clear();
        buf.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        let mut copy = buf.clone();
        plain.handle_datagram(now, &mut buf);
        secure.handle_datagram(now, &mut copy);
        plain.output().clear();
        secure.output().clear();
    }
    plain.finish();
    secure.finish();
    let _ = (plain.stats(), secure.stats());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srtp::SrtpProfile;

    /// An RTP packet carrying a 20 ms CELT "Opus" frame whose body encodes `tag`, so that the
    /// output can be matched packet by packet.
    fn rtp(ssrc: u32, seq: u16, ts: u32, tag: u32) -> Vec<u8> {
        let mut p = vec![0x80, 111];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.push(0xFC & !0x04); // config 31 (CELT FB 20 ms), mono, code 0
        p.extend_from_slice(&tag.to_be_bytes());
        p.extend_from_slice(&[0x55; 40]);
        p
    }

    /// Reads the track's Ogg output: (granule start of each packet, tag) for non-silence.
    fn packets(bytes: &[u8]) -> Vec<(u64, Option<u32>)> {
        if bytes.is_empty() {
            return Vec::new();
        }
        let mut r = ::ogg::PacketReader::new(std::io::Cursor::new(bytes.to_vec()));
        r.read_packet_expected().unwrap();
        r.read_packet_expected().unwrap();
        let mut out = Vec::new();
        let mut pos = 0u64;
        while let Some(p) = r.read_packet().unwrap() {
            let tag =
                (p.data.len() == 45).then(|| u32::from_be_bytes(p.data[1..5].try_into().unwrap()));
            out.push((pos, tag));
            pos += crate::opus::packet_samples_48k(&p.data).unwrap() as u64;
        }
        out
    }

    /// Every audio packet of an Ogg Opus byte stream.
    fn raw_packets(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut r = ::ogg::PacketReader::new(std::io::Cursor::new(bytes.to_vec()));
        r.read_packet_expected().unwrap();
        r.read_packet_expected().unwrap();
        std::iter::from_fn(|| r.read_packet().unwrap().map(|p| p.data)).collect()
    }

    struct Sim {
        track: ParticipantTrack,
        file: Vec<u8>,
    }

    impl Sim {
        fn new(srtp: Option<SrtpKeyMaterial>) -> Self {
            let mut cfg = TrackConfig::new("call", "alice");
            cfg.srtp = srtp;
            Sim {
                track: ParticipantTrack::new(cfg),
                file: Vec::new(),
            }
        }
        fn send(&mut self, at_ms: u64, mut datagram: Vec<u8>) {
            let now = Micros::from_millis(at_ms);
            if self.track.poll_timeout().is_some_and(|t| t <= now) {
                self.track.handle_timeout(now);
            }
            self.track.handle_datagram(now, &mut datagram);
            self.drain();
        }
        fn drain(&mut self) {
            let out = self.track.output();
            self.file.extend_from_slice(out);
            out.clear();
        }
        fn finish(mut self) -> (TrackStats, Vec<(u64, Option<u32>)>) {
            self.track.finish();
            self.drain();
            (self.track.stats(), packets(&self.file))
        }
    }

    /// Tags of audio packets with their start time in ms.
    fn audio(p: &[(u64, Option<u32>)]) -> Vec<(u64, u32)> {
        p.iter()
            .filter_map(|&(pos, t)| t.map(|t| (pos / 48, t)))
            .collect()
    }

    #[test]
    fn clean_stream_is_remuxed_in_place() {
        let mut sim = Sim::new(None);
        for i in 0..100u32 {
            sim.send(
                i as u64 * 20 + 5,
                rtp(
                    1,
                    65500u16.wrapping_add(i as u16),
                    (u32::MAX - 5000).wrapping_add(i * 960),
                    i,
                ),
            );
        }
        let (st, pk) = sim.finish();
        assert_eq!(st.received, 100);
        assert_eq!(st.written, 100);
        assert_eq!((st.lost, st.duplicated, st.late), (0, 0, 0));
        assert_eq!(st.samples, 100 * 960);
        let a = audio(&pk);
        assert_eq!(a, (0..100).map(|i| (i as u64 * 20, i)).collect::<Vec<_>>());
    }

    #[test]
    fn loss_is_filled_so_later_audio_keeps_its_time() {
        let mut sim = Sim::new(None);
        for i in 0..200u32 {
            // A 3 s outage (150 packets) and one isolated loss.
            if (20..170).contains(&i) || i == 180 {
                continue;
            }
            sim.send(i as u64 * 20, rtp(7, i as u16, i * 960, i));
        }
        let (st, pk) = sim.finish();
        assert_eq!(st.lost, 151);
        assert_eq!(st.samples, 200 * 960);
        for (at, tag) in audio(&pk) {
            assert_eq!(at, tag as u64 * 20, "packet {tag} misplaced");
        }
    }

    #[test]
    fn reorder_duplicates_and_late_are_counted() {
        let mut sim = Sim::new(None);
        let mut order: Vec<u32> = (0..50).collect();
        order.swap(10, 12); // reordered within the window
        for (k, &i) in order.iter().enumerate() {
            sim.send(k as u64 * 20, rtp(1, i as u16, i * 960, i));
            if i == 30 {
                sim.send(k as u64 * 20 + 3, rtp(1, 30, 30 * 960, 30)); // duplicate
            }
        }
        // A packet from long ago arrives: late (it was never lost: 5 was received... use 49+).
        sim.send(2000, rtp(1, 51, 51 * 960, 51));
        sim.send(2600, rtp(1, 50, 50 * 960, 50)); // 50 skipped after max_delay -> late
        let (st, pk) = sim.finish();
        assert_eq!(st.duplicated, 1);
        assert_eq!(st.late, 1);
        assert_eq!(st.lost, 0);
        assert_eq!(st.written, 51);
        let tags: Vec<u32> = audio(&pk).into_iter().map(|(_, t)| t).collect();
        assert_eq!(tags, (0..50).chain([51]).collect::<Vec<_>>());
    }

    #[test]
    fn ssrc_change_continues_the_track() {
        let mut sim = Sim::new(None);
        for i in 0..50u32 {
            sim.send(i as u64 * 20, rtp(1, i as u16, i * 960, i));
        }
        for i in 50..100u32 {
            sim.send(
                i as u64 * 20,
                rtp(2, i as u16 + 30_000, 123_456 + i * 960, i),
            );
        }
        let (st, pk) = sim.finish();
        assert_eq!(st.ssrcs, vec![1, 2]);
        assert_eq!(st.written, 100);
        assert_eq!(st.lost, 0);
        for (at, tag) in audio(&pk) {
            assert_eq!(at, tag as u64 * 20);
        }
    }

    #[test]
    fn timestamp_jump_follows_arrival() {
        let mut sim = Sim::new(None);
        for i in 0..100u32 {
            let ts = if i < 50 { i * 960 } else { i * 960 + 1_000_000 };
            sim.send(i as u64 * 20, rtp(1, i as u16, ts, i));
        }
        let (st, pk) = sim.finish();
        assert_eq!(st.resyncs, 1);
        assert_eq!(st.samples, 100 * 960);
        for (at, tag) in audio(&pk) {
            assert_eq!(at, tag as u64 * 20);
        }
    }

    #[test]
    fn srtp_and_wrong_key() {
        let key =
            SrtpKeyMaterial::new(SrtpProfile::AesCm128HmacSha1_80, &[1; 16], &[2; 14]).unwrap();
        let mut tx = SrtpSession::new(key.clone());
        let mut sim = Sim::new(Some(key));
        let wrong =
            SrtpKeyMaterial::new(SrtpProfile::AesCm128HmacSha1_80, &[3; 16], &[2; 14]).unwrap();
        let mut bad = Sim::new(Some(wrong));
        for i in 0..60u32 {
            let mut p = rtp(9, i as u16, i * 960, i);
            tx.protect_rtp(&mut p).unwrap();
            bad.send(i as u64 * 20, p.clone());
            sim.send(i as u64 * 20, p);
        }
        // Garbage on the flow.
        sim.send(1300, vec![0xde, 0xad, 0xbe, 0xef]);
        let (st, pk) = sim.finish();
        assert_eq!(st.written, 60);
        assert_eq!(st.malformed, 1);
        assert_eq!(audio(&pk).len(), 60);
        let (st, pk) = bad.finish();
        assert_eq!(st.undecryptable, 60);
        assert_eq!(st.written, 0);
        assert!(st.last_srtp_error.is_some());
        assert!(pk.is_empty() || audio(&pk).is_empty());
    }

    #[test]
    fn pages_flush_at_least_every_second() {
        let mut sim = Sim::new(None);
        let mut flushed_at = Vec::new();
        for i in 0..250u32 {
            let before = sim.file.len();
            sim.send(i as u64 * 20, rtp(1, i as u16, i * 960, i));
            if sim.file.len() > before {
                flushed_at.push(i as u64 * 20);
            }
        }
        // Headers at the start, then a page at least every second.
        for w in flushed_at.windows(2) {
            assert!(w[1] - w[0] <= 1020, "{flushed_at:?}");
        }
        assert!(*flushed_at.last().unwrap() >= 4000);
    }

    #[test]
    fn payload_type_lock_skips_static_types_and_dtmf() {
        let mut sim = Sim::new(None);
        // A DTMF event (PT 101) and comfort noise (PT 13) before the Opus stream starts.
        let mut dtmf = rtp(1, 0, 0, 0);
        dtmf.truncate(12);
        dtmf[1] = 101;
        dtmf.extend_from_slice(&[5, 0x0a, 0x00, 0xa0]);
        sim.send(0, dtmf);
        let mut cn = rtp(1, 1, 0, 0);
        cn[1] = 13;
        sim.send(1, cn);
        for i in 2..52u32 {
            sim.send(i as u64 * 20, rtp(1, i as u16, i * 960, i));
        }
        // Mid-call DTMF replaces audio for four packets (same sequence space): not lost.
        for i in 52..56u32 {
            let mut ev = rtp(1, i as u16, 52 * 960, 0);
            ev.truncate(12);
            ev[1] = 101;
            ev.extend_from_slice(&[1, 0x0a, 0x00, 0xa0]);
            sim.send(i as u64 * 20, ev);
        }
        for i in 56..80u32 {
            sim.send(i as u64 * 20, rtp(1, i as u16, i * 960, i));
        }
        let (st, pk) = sim.finish();
        assert_eq!(st.other_payload, 6);
        assert_eq!(st.lost, 0);
        assert_eq!(st.written, 74);
        let a = audio(&pk);
        assert_eq!(a.len(), 74);
        // Audio after the event is still at its time.
        assert!(
            a.iter().all(|&(at, tag)| at == (tag as u64 - 2) * 20),
            "{a:?}"
        );
    }

    #[test]
    fn pcmu_is_transcoded_onto_the_time_line() {
        let mut sim = Sim::new(None);
        for i in 0..100u32 {
            if (40..60).contains(&i) {
                continue; // 400 ms lost
            }
            let mut p = rtp(3, i as u16, i * 160, 0);
            p.truncate(12);
            p[1] = 0; // PCMU
                      // A 400 Hz square wave: 10 samples high, 10 low (G.711 mu-law codes).
            p.extend((0..160).map(|k| if (k / 10) % 2 == 0 { 0x20 } else { 0xA0 }));
            sim.send(i as u64 * 20, p);
        }
        sim.track.finish();
        sim.drain();
        let st = sim.track.stats();
        let packets = raw_packets(&sim.file);
        assert_eq!(st.codec, "PCMU");
        assert_eq!((st.written, st.lost, st.encode_errors), (80, 20, 0));
        assert_eq!(st.samples, 100 * 960);
        assert_eq!(st.filled_samples, 20 * 960);
        // Every packet is 20 ms of Opus; libopus decodes all of them.
        let mut dec =
            audiopus::coder::Decoder::new(audiopus::SampleRate::Hz48000, audiopus::Channels::Mono)
                .unwrap();
        let mut buf = vec![0i16; 5760];
        let mut pcm = Vec::new();
        for data in &packets {
            let n = dec.decode(Some(&data[..]), &mut buf[..], false).unwrap();
            pcm.extend_from_slice(&buf[..n]);
        }
        assert_eq!(pcm.len(), 100 * 960);
        // Mean power of 20 ms windows on the call's time line (decoder delay is < 10 ms).
        let power = |ms: usize| {
            let w = &pcm[ms * 48..(ms + 20) * 48];
            w.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / w.len() as f64
        };
        // Loud where there was signal, silent in the gap (allowing the codec's fade-out).
        assert!(power(400) > 1e5 && power(1800) > 1e5, "{}", power(400));
        for ms in (860..1180).step_by(20) {
            assert!(power(ms) < 1e3, "{ms} ms: {}", power(ms));
        }
    }

    /// An RTCP sender report (no report blocks).
    fn sr(ssrc: u32, ntp: u64, rtp_ts: u32) -> Vec<u8> {
        let mut p = vec![0x80, 200, 0, 6];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&ntp.to_be_bytes());
        p.extend_from_slice(&rtp_ts.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p
    }

    /// 2025-11-26T00:00:00.5Z as NTP.
    const NTP_HALF: u64 = ((2_208_988_800 + 1_764_115_200) << 32) | 0x8000_0000;

    #[test]
    fn sender_report_is_placed_across_a_timestamp_wrap() {
        let ts0 = u32::MAX - 5000;
        // Ahead of the newest packet (the usual case) and behind it, both across the wrap.
        for (sr_frames, want) in [(31u32, 31 * 960i64), (2, 2 * 960)] {
            let mut sim = Sim::new(None);
            for i in 0..30u32 {
                sim.send(
                    i as u64 * 20,
                    rtp(5, i as u16, ts0.wrapping_add(i * 960), i),
                );
            }
            sim.send(601, sr(5, NTP_HALF, ts0.wrapping_add(sr_frames * 960)));
            let (st, _) = sim.finish();
            let a = st.sr_anchor.expect("anchored");
            assert_eq!(a.position_48k, want);
            assert_eq!((a.ssrc, a.ntp), (5, NTP_HALF));
            assert_eq!(a.ntp_unix_ms(), 1_764_115_200_500.0);
            assert_eq!(a.track_ms(), want as f64 / 48.0);
            assert_eq!(
                (st.sender_reports, st.sender_reports_ignored, st.rtcp),
                (1, 0, 1)
            );
        }
    }

    #[test]
    fn sender_report_of_a_16khz_stream_is_scaled_to_48khz() {
        let mut cfg = TrackConfig::new("call", "l16");
        cfg.payload_type = Some(96);
        cfg.format = Some(AudioFormat::L16 {
            rate: 16_000,
            channels: 1,
        });
        let mut track = ParticipantTrack::new(cfg);
        let ts0 = u32::MAX - 1000; // wraps at the fourth packet
        for i in 0..30u32 {
            let now = Micros::from_millis(i as u64 * 20);
            if track.poll_timeout().is_some_and(|t| t <= now) {
                track.handle_timeout(now);
            }
            let mut p = rtp(8, i as u16, ts0.wrapping_add(i * 320), 0);
            p.truncate(12);
            p[1] = 96;
            p.extend((0..320).flat_map(|k| (((k * 37) % 2000) as i16 - 1000).to_be_bytes()));
            track.handle_datagram(now, &mut p);
        }
        // Half a frame after the last packet (29, at 29 x 960): 160 ticks at 16 kHz.
        let mut report = sr(8, NTP_HALF, ts0.wrapping_add(29 * 320 + 160));
        track.handle_datagram(Micros::from_millis(590), &mut report);
        track.finish();
        let st = track.stats();
        assert_eq!(st.codec, "L16", "{st:?}");
        assert_eq!(st.sender_reports, 1, "{st:?}");
        assert_eq!(st.sr_anchor.map(|a| a.position_48k), Some(29 * 960 + 480));
    }

    #[test]
    fn sender_reports_that_cannot_be_placed_are_ignored_and_the_first_anchor_kept() {
        let mut sim = Sim::new(None);
        sim.send(0, sr(1, NTP_HALF, 0)); // before any packet
        for i in 0..20u32 {
            sim.send(5 + i as u64 * 20, rtp(1, i as u16, 1000 + i * 960, i));
        }
        sim.send(400, sr(2, NTP_HALF, 1000)); // another SSRC
        sim.send(401, sr(1, 0, 1000)); // no wall clock
        sim.send(402, sr(1, NTP_HALF, 1000 + 20 * 960));
        sim.send(403, sr(1, NTP_HALF + (1 << 32), 1000 + 70 * 960));
        // Not RTCP-looking garbage must not disturb it either.
        sim.send(404, vec![200, 200, 0, 0]);
        let (st, _) = sim.finish();
        assert_eq!((st.sender_reports, st.sender_reports_ignored), (5, 3));
        let a = st.sr_anchor.unwrap();
        assert_eq!((a.ntp, a.position_48k), (NTP_HALF, 20 * 960));
        assert_eq!(a.track_start_sender_ms(), 1_764_115_200_100.0);
    }

    #[test]
    fn sender_report_after_an_ssrc_change_is_measured_from_the_new_source() {
        let mut sim = Sim::new(None);
        for i in 0..50u32 {
            sim.send(i as u64 * 20, rtp(1, i as u16, i * 960, i));
        }
        for i in 50..60u32 {
            sim.send(
                i as u64 * 20,
                rtp(2, i as u16 + 9_000, 123_456 + i * 960, i),
            );
        }
        // The old source's report now has nothing to refer to; the new one's does.
        sim.send(1201, sr(1, NTP_HALF, 55 * 960));
        sim.send(1202, sr(2, NTP_HALF, 123_456 + 61 * 960));
        let (st, _) = sim.finish();
        assert_eq!(st.sender_reports_ignored, 1);
        let a = st.sr_anchor.unwrap();
        assert_eq!((a.ssrc, a.position_48k), (2, 61 * 960));
    }

    #[test]
    fn fuzz_entry_point_survives_noise() {
        let mut x: u64 = 99;
        for _ in 0..200 {
            let data: Vec<u8> = (0..2000)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (x >> 56) as u8
                })
                .collect();
            fuzz_ingest(&data);
        }
    }
}
