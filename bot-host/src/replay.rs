//! `bot-host replay`: records a captured call as if it arrived live.
//!
//! The capture is read once; every datagram of a media flow (a participant is one UDP flow
//! without signaling) goes, with its capture time as `now`, into media-core's
//! [`ParticipantTrack`]s. Ogg pages are written as media-core releases them, so
//! the files grow as they would in a live recording and a killed replay leaves playable files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use media_core::mix::{mix, MixConfig, MixInput};
use media_core::recording::{ParticipantTrack, TrackConfig, TrackStats, PRE_SKIP};
use media_core::rtp;
use media_core::sdes;
use media_core::segments::{segments_from_ogg, Segment, SegmenterConfig};
use media_core::srtp::SrtpKeyMaterial;
use media_core::time::{format_rfc3339, samples48_to_ms, Micros};
use serde_json::json;

use rustc_hash::FxHashMap;

use crate::capture::{read_datagrams, CaptureStats};

/// An SRTP key from the command line: `[PORT=]SUITE:BASE64`.
#[derive(Clone)]
pub struct KeySpec {
    /// Only the flow to this UDP port; `None` for every flow.
    pub port: Option<u16>,
    /// The key material.
    pub key: SrtpKeyMaterial,
}

impl std::str::FromStr for KeySpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let (port, rest) = match s.split_once('=') {
            // Base64 may end in '=', so only a numeric prefix before the first '=' is a port.
            Some((p, rest)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                let port = p
                    .parse::<u16>()
                    .with_context(|| format!("invalid UDP port {p:?} in --srtp-key"))?;
                (Some(port), rest)
            }
            _ => (None, s),
        };
        let key = sdes::parse_suite_key(rest)
            .with_context(|| format!("invalid --srtp-key {s:?} (expected [PORT=]SUITE:BASE64)"))?;
        Ok(KeySpec { port, key })
    }
}

/// What to replay and where to write it.
pub struct ReplayOptions {
    /// The pcap/pcapng capture.
    pub capture: PathBuf,
    /// Output directory (created).
    pub out: PathBuf,
    /// SRTP keys.
    pub keys: Vec<KeySpec>,
    /// Call id for tags and meta.json; default: the capture's file stem.
    pub call_id: Option<String>,
    /// The targeted user's participant name: the mixed download is then stereo, that
    /// participant on the left and everyone else on the right.
    pub targeted: Option<String>,
}

/// A UDP flow, one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flow {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
}

impl Flow {
    /// The RTP flow whose RTCP (without rtcp-mux) would travel on this one: ports one lower.
    fn rtp_sibling(&self) -> Option<Flow> {
        Some(Flow {
            src: SocketAddr::new(self.src.ip(), self.src.port().checked_sub(1)?),
            dst: SocketAddr::new(self.dst.ip(), self.dst.port().checked_sub(1)?),
        })
    }
}

/// One written track.
pub struct TrackReport {
    /// Participant name.
    pub participant: String,
    /// File name inside the output directory, if any audio was written.
    pub file: Option<String>,
    /// The flow it came from.
    pub flow: Flow,
    /// The SRTP suite used, if any.
    pub srtp: Option<&'static str>,
    /// Counters.
    pub stats: TrackStats,
    /// Offset of the track's first packet on the call's time line.
    pub start_ms: f64,
}

/// The outcome of a replay.
pub struct ReplaySummary {
    /// Per track.
    pub tracks: Vec<TrackReport>,
    /// Capture-level counters.
    pub capture: CaptureStats,
    /// UDP flows that were never recognised as media (signaling, DNS, STUN-only, ...).
    pub ignored_flows: usize,
    /// Path of meta.json.
    pub meta_path: PathBuf,
    /// Problems worth telling the user (e.g. a wrong key).
    pub problems: Vec<String>,
    /// The call's time line origin: the first media packet, capture clock (Unix µs).
    pub call_start: Micros,
}

/// Datagrams a flow may hold while it is not yet recognised as media; past this it is
/// ignored (a media flow is recognised by its second packet).
const MAX_HELD: usize = 64;

/// What is known of a UDP flow.
enum FlowState {
    /// Not (yet) media: its datagrams wait, so that nothing that turns out to be media
    /// (or garbage on a media flow, which must be counted) is lost.
    Pending {
        held: Vec<(Micros, Vec<u8>)>,
        last_ssrc: Option<u32>,
        rtcp: bool,
    },
    /// Feeding track `n`.
    Track(usize),
    /// Held too much without looking like media.
    Ignored,
}

struct Slot {
    flow: Flow,
    track: ParticipantTrack,
    file_name: String,
    file: Option<BufWriter<File>>,
    srtp: Option<&'static str>,
}

/// Write buffer per file. Replay runs hundreds of times faster than real time, so pages are
/// batched into few large writes and flushed on the wall clock ([`FLUSH_EVERY`]) instead:
/// a killed replay still loses at most about a second of its work, in whole pages.
const FILE_BUFFER: usize = 256 * 1024;
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Slot {
    /// Writes the Ogg pages the track has released.
    fn drain(&mut self, dir: &Path) -> Result<()> {
        let out = self.track.output();
        if out.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            let path = dir.join(&self.file_name);
            let file =
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            self.file = Some(BufWriter::with_capacity(FILE_BUFFER, file));
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(out)
                .with_context(|| format!("cannot write {}", dir.join(&self.file_name).display()))?;
        }
        out.clear();
        Ok(())
    }

    fn flush(&mut self, dir: &Path) -> Result<()> {
        if let Some(f) = self.file.as_mut() {
            f.flush()
                .with_context(|| format!("cannot write {}", dir.join(&self.file_name).display()))?;
        }
        Ok(())
    }
}

/// Datagrams per batch handed from the capture reader to the recorder thread.
const BATCH: usize = 1024;
/// Batches in flight.
const BATCHES: usize = 4;

/// A batch of datagrams: metadata and payloads packed in one reused buffer.
#[derive(Default)]
struct Batch {
    meta: Vec<(Flow, Micros, usize)>,
    bytes: Vec<u8>,
}

impl Batch {
    fn push(&mut self, d: &crate::capture::Datagram<'_>) {
        self.bytes.extend_from_slice(d.payload);
        self.meta.push((
            Flow {
                src: d.src,
                dst: d.dst,
            },
            d.ts,
            self.bytes.len(),
        ));
    }

    fn len(&self) -> usize {
        self.meta.len()
    }

    fn clear(&mut self) {
        self.meta.clear();
        self.bytes.clear();
    }

    fn iter(&self) -> impl Iterator<Item = (Flow, Micros, &[u8])> {
        let mut start = 0;
        self.meta.iter().map(move |&(flow, ts, end)| {
            let payload = &self.bytes[start..end];
            start = end;
            (flow, ts, payload)
        })
    }
}

/// The streaming state of one replay.
struct Replayer<'a> {
    opts: &'a ReplayOptions,
    call_id: String,
    flows: FxHashMap<Flow, FlowState>,
    slots: Vec<Slot>,
    buf: Vec<u8>,
    next_timeout: Option<Micros>,
    first_ts: Option<Micros>,
    fed: u64,
    last_flush: Instant,
    last_track: Option<(Flow, usize)>,
}

impl Replayer<'_> {
    fn datagram(&mut self, flow: Flow, ts: Micros, payload: &[u8]) -> Result<()> {
        // Captures come in runs of one flow; skip the map for them.
        if let Some((last, i)) = self.last_track {
            if last == flow {
                return self.feed(i, ts, payload);
            }
        }
        let state = self
            .flows
            .entry(flow)
            .or_insert_with(|| FlowState::Pending {
                held: Vec::new(),
                last_ssrc: None,
                rtcp: false,
            });
        match state {
            FlowState::Track(i) => {
                let i = *i;
                self.last_track = Some((flow, i));
                self.feed(i, ts, payload)
            }
            FlowState::Ignored => Ok(()),
            FlowState::Pending {
                held,
                last_ssrc,
                rtcp,
            } => {
                held.push((ts, payload.to_vec()));
                let mut promote = false;
                if rtp::looks_like_rtp_or_rtcp(payload) {
                    if rtp::is_rtcp(payload) {
                        *rtcp = true;
                    } else if payload.len() >= 12 {
                        // Media: two RTP-looking datagrams of one SSRC. Random bytes pass the
                        // version check one time in four, a repeated SSRC almost never.
                        let ssrc =
                            u32::from_be_bytes([payload[8], payload[9], payload[10], payload[11]]);
                        promote = *last_ssrc == Some(ssrc);
                        *last_ssrc = Some(ssrc);
                    }
                }
                let rtcp_only = *rtcp && last_ssrc.is_none();
                let full = held.len() >= MAX_HELD;
                if promote {
                    self.promote(flow)
                } else if rtcp_only {
                    self.attach_rtcp(flow)
                } else {
                    if full {
                        *state = FlowState::Ignored;
                    }
                    Ok(())
                }
            }
        }
    }

    /// A flow is recognised as media: it gets a track and its held datagrams are fed.
    fn promote(&mut self, flow: Flow) -> Result<()> {
        let i = self.slots.len();
        let participant = format!("participant-{}", i + 1);
        let mut cfg = TrackConfig::new(self.call_id.clone(), participant.clone());
        cfg.serial = serial_for(&self.call_id, i);
        // A port-specific key beats a key for all flows.
        let key = self
            .opts
            .keys
            .iter()
            .find(|k| k.port == Some(flow.dst.port()))
            .or_else(|| self.opts.keys.iter().find(|k| k.port.is_none()));
        cfg.srtp = key.map(|k| k.key.clone());
        self.slots.push(Slot {
            flow,
            track: ParticipantTrack::new(cfg),
            file_name: format!("{participant}.ogg"),
            file: None,
            srtp: key.map(|k| k.key.profile().sdes_name()),
        });
        let held = match self.flows.insert(flow, FlowState::Track(i)) {
            Some(FlowState::Pending { held, .. }) => held,
            _ => Vec::new(),
        };
        for (ts, d) in held {
            self.feed(i, ts, &d)?;
        }
        // Its RTCP on the next port up may have been waiting for it.
        let rtcp_flow = Flow {
            src: SocketAddr::new(flow.src.ip(), flow.src.port().wrapping_add(1)),
            dst: SocketAddr::new(flow.dst.ip(), flow.dst.port().wrapping_add(1)),
        };
        if matches!(self.flows.get(&rtcp_flow), Some(FlowState::Pending { .. })) {
            self.attach_rtcp(rtcp_flow)?;
        }
        Ok(())
    }

    /// An RTCP-only flow joins the track of the RTP flow one port below, once that exists.
    fn attach_rtcp(&mut self, flow: Flow) -> Result<()> {
        let Some(FlowState::Track(i)) = flow.rtp_sibling().and_then(|f| self.flows.get(&f)) else {
            return Ok(());
        };
        let i = *i;
        if let Some(FlowState::Pending { held, .. }) = self.flows.insert(flow, FlowState::Track(i))
        {
            for (ts, d) in held {
                self.feed(i, ts, &d)?;
            }
        }
        Ok(())
    }

    fn feed(&mut self, i: usize, ts: Micros, payload: &[u8]) -> Result<()> {
        self.first_ts.get_or_insert(ts);
        if self.next_timeout.is_some_and(|t| t <= ts) {
            for s in self.slots.iter_mut() {
                s.track.handle_timeout(ts);
                s.drain(&self.opts.out)?;
            }
            self.next_timeout = None;
        }
        self.buf.clear();
        self.buf.extend_from_slice(payload);
        let s = &mut self.slots[i];
        s.track.handle_datagram(ts, &mut self.buf);
        s.drain(&self.opts.out)?;
        if let Some(t) = s.track.poll_timeout() {
            self.next_timeout = Some(self.next_timeout.map_or(t, |n| n.min(t)));
        }
        self.fed += 1;
        // Reading the clock per packet would cost more than the packet.
        if self.fed % 4096 == 0 && self.last_flush.elapsed() >= FLUSH_EVERY {
            for s in self.slots.iter_mut() {
                s.flush(&self.opts.out)?;
            }
            self.last_flush = Instant::now();
        }
        Ok(())
    }
}

/// Records the capture into `opts.out`: one Ogg Opus file per participant and `meta.json`.
///
/// One streaming pass: a flow becomes a participant track at its second RTP packet of one
/// SSRC; datagrams before that are held and then fed in order, so nothing is lost or
/// miscounted.
pub fn replay(opts: &ReplayOptions) -> Result<ReplaySummary> {
    let call_id = match &opts.call_id {
        Some(c) => c.clone(),
        None => opts
            .capture
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "call".into()),
    };
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create output directory {}", opts.out.display()))?;
    let mut r = Replayer {
        opts,
        call_id: call_id.clone(),
        flows: FxHashMap::default(),
        slots: Vec::new(),
        buf: Vec::with_capacity(2048),
        next_timeout: None,
        first_ts: None,
        fed: 0,
        last_flush: Instant::now(),
        last_track: None,
    };
    let file = File::open(&opts.capture)
        .with_context(|| format!("cannot open capture {}", opts.capture.display()))?;
    // Two stages on two threads, as the live bot will run: one reads and decodes the capture
    // (pcap, link, IP, UDP), the other drives media-core and writes files. Datagrams travel
    // in batches through bounded channels, and the batches go back to be refilled, so the
    // hand-over costs neither a per-packet message nor an allocation.
    let (full_tx, full_rx) = crossbeam_channel::bounded::<Batch>(BATCHES);
    let (empty_tx, empty_rx) = crossbeam_channel::bounded::<Batch>(BATCHES);
    for _ in 0..BATCHES {
        let _ = empty_tx.send(Batch::default());
    }
    let reader = std::thread::spawn(move || {
        let mut batch = Batch::default();
        let mut stopped = false;
        let stats = read_datagrams(file, |d| {
            if stopped {
                return;
            }
            batch.push(d);
            if batch.len() == BATCH {
                if full_tx.send(std::mem::take(&mut batch)).is_err() {
                    // The recorder hung up (it failed): stop reading.
                    stopped = true;
                    return;
                }
                batch = empty_rx.recv().unwrap_or_default();
                batch.clear();
            }
        });
        if !stopped && batch.len() > 0 {
            let _ = full_tx.send(batch);
        }
        stats
    });
    let mut result = Ok(());
    for batch in &full_rx {
        for (flow, ts, payload) in batch.iter() {
            result = r.datagram(flow, ts, payload);
            if result.is_err() {
                break;
            }
        }
        if result.is_err() {
            break;
        }
        let _ = empty_tx.send(batch);
    }
    drop(full_rx);
    drop(empty_tx);
    let capture_stats = reader
        .join()
        .map_err(|_| anyhow::anyhow!("capture reader thread panicked"))?
        .with_context(|| format!("cannot read capture {}", opts.capture.display()))?;
    result?;
    let ignored_flows = r
        .flows
        .values()
        .filter(|s| !matches!(s, FlowState::Track(_)))
        .count();
    if r.slots.is_empty() {
        bail!(
            "no RTP flows found in {} ({} UDP flows, {} UDP datagrams)",
            opts.capture.display(),
            r.flows.len(),
            capture_stats.udp_datagrams
        );
    }
    for k in &opts.keys {
        if let Some(port) = k.port {
            if !r.slots.iter().any(|s| s.flow.dst.port() == port) {
                eprintln!("warning: --srtp-key for port {port}: no media flow to that port");
            }
        }
    }

    let call_start = r.first_ts.unwrap_or_default();
    let mut reports = Vec::new();
    let mut problems = Vec::new();
    for s in r.slots.iter_mut() {
        s.track.finish();
        s.drain(&opts.out)?;
        // No fsync: replay is an offline tool whose input stays available; durability
        // before a recording counts is the spool's job in the live bot.
        s.flush(&opts.out)?;
        let stats = s.track.stats();
        if stats.undecryptable > 0 && stats.written == 0 {
            problems.push(format!(
                "{} ({} -> {}): all {} packets failed SRTP ({}): wrong or missing --srtp-key for port {}?",
                s.track.config().participant,
                s.flow.src,
                s.flow.dst,
                stats.undecryptable,
                stats
                    .last_srtp_error
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
                s.flow.dst.port()
            ));
        }
        reports.push(TrackReport {
            participant: s.track.config().participant.clone(),
            file: s.file.as_ref().map(|_| s.file_name.clone()),
            flow: s.flow,
            srtp: s.srtp,
            start_ms: stats
                .first_arrival
                .map(|t| t.saturating_since(call_start).0 as f64 / 1000.0)
                .unwrap_or(0.0),
            stats,
        });
    }

    let outs: Vec<TrackOut<'_>> = r
        .slots
        .iter()
        .zip(&reports)
        .map(|(slot, t)| TrackOut {
            participant: &t.participant,
            file: t.file.as_deref(),
            start_ms: t.start_ms,
            level_segments: slot.track.segments(),
            duration_ms: Some(samples48_to_ms(
                t.stats.samples.saturating_sub(PRE_SKIP as u64),
            )),
        })
        .collect();
    let segments = write_segments(&opts.out, &outs)?;
    let mixed = write_mix(&opts.out, &call_id, &outs, opts.targeted.as_deref())?;

    let meta = json!({
        "call_id": call_id,
        "capture": opts.capture.display().to_string(),
        "started_at": format_rfc3339(call_start.0),
        "tracks": reports.iter().zip(&segments).map(|(t, how)| {
            let mut j = track_json(t);
            j["segments_from"] = json!(how);
            j
        }).collect::<Vec<_>>(),
        "mixed": mixed,
        "capture_stats": capture_stats,
        "ignored_flows": ignored_flows,
    });
    let meta_path = opts.out.join("meta.json");
    write_json(&meta_path, &meta)?;

    Ok(ReplaySummary {
        tracks: reports,
        capture: capture_stats,
        ignored_flows,
        meta_path,
        problems,
        call_start,
    })
}

/// What the recording-directory writers need of a track.
pub(crate) struct TrackOut<'a> {
    pub participant: &'a str,
    /// File name in the directory, if the track has audio.
    pub file: Option<&'a str>,
    /// Offset on the call's time line, ms.
    pub start_ms: f64,
    /// Segments found online from RFC 6464 levels (track time line), if the sender sent them.
    pub level_segments: Option<&'a [Segment]>,
    /// Playable duration, ms, where known.
    pub duration_ms: Option<f64>,
}

/// Writes `segments.json`: every participant's speech on the call's time line, ordered by
/// start. Levels (RFC 6464) are used where the sender sent them, the decoded audio elsewhere.
/// Returns, per track, where its segments came from.
pub(crate) fn write_segments(dir: &Path, tracks: &[TrackOut<'_>]) -> Result<Vec<&'static str>> {
    let mut all = Vec::new();
    let mut sources = Vec::new();
    for t in tracks {
        let (segs, from) = match (t.level_segments, t.file) {
            (Some(segs), _) => (segs.to_vec(), "audio_level"),
            (None, Some(file)) => {
                let path = dir.join(file);
                let f =
                    File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
                let segs =
                    segments_from_ogg(std::io::BufReader::new(f), SegmenterConfig::default())
                        .with_context(|| format!("cannot segment {}", path.display()))?;
                (segs, "decoded_audio")
            }
            (None, None) => (Vec::new(), "none"),
        };
        sources.push(from);
        for seg in segs {
            all.push(json!({
                "participant": t.participant,
                "start_ms": round_ms(t.start_ms + seg.start_ms),
                "end_ms": round_ms(t.start_ms + seg.end_ms),
            }));
        }
    }
    all.sort_by(|a, b| {
        let key = |v: &serde_json::Value| v["start_ms"].as_f64().unwrap_or(0.0);
        key(a).total_cmp(&key(b))
    });
    write_json(&dir.join("segments.json"), &serde_json::Value::Array(all))?;
    Ok(sources)
}

/// Writes `mixed.ogg`, the one-file download: every track decoded, placed on the call's time
/// line, mixed and re-encoded (a single track is remuxed as it is).
pub(crate) fn write_mix(
    dir: &Path,
    call_id: &str,
    tracks: &[TrackOut<'_>],
    targeted: Option<&str>,
) -> Result<serde_json::Value> {
    let mut inputs = Vec::new();
    for t in tracks {
        if let Some(file) = t.file {
            let path = dir.join(file);
            let f = File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
            inputs.push(MixInput {
                reader: std::io::BufReader::new(f),
                start_ms: t.start_ms,
                targeted: targeted == Some(t.participant),
            });
        }
    }
    if inputs.is_empty() {
        return Ok(serde_json::Value::Null);
    }
    let path = dir.join("mixed.ogg");
    let audible: Vec<&TrackOut<'_>> = tracks.iter().filter(|t| t.file.is_some()).collect();
    if let [only] = audible.as_slice() {
        if only.start_ms == 0.0 && targeted.is_none() {
            // One participant from the call's start: the mix is that track, bit for bit.
            let file = only.file.unwrap_or_default();
            std::fs::copy(dir.join(file), &path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            return Ok(json!({
                "file": "mixed.ogg",
                "duration_ms": only.duration_ms.map(round_ms),
                "tracks": 1,
                "remuxed": true,
                "copy_of": file,
                "stereo_split": null,
            }));
        }
    }
    let out = BufWriter::new(
        File::create(&path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    let config = match targeted {
        Some(_) => MixConfig::stereo_split(),
        None => MixConfig::default(),
    };
    let stats = mix(inputs, call_id, &config, out)
        .with_context(|| format!("cannot mix into {}", path.display()))?;
    Ok(json!({
        "file": "mixed.ogg",
        "duration_ms": round_ms(stats.duration_ms),
        "tracks": stats.tracks,
        "remuxed": stats.remuxed,
        "stereo_split": targeted.map(|t| json!({ "left": t, "right": "everyone else" })),
    }))
}

pub(crate) fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// Writes JSON through a temporary file and a rename, so a reader never sees half a file.
pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn track_json(t: &TrackReport) -> serde_json::Value {
    let s = &t.stats;
    json!({
        "participant": t.participant,
        "file": t.file,
        "flow": { "src": t.flow.src.to_string(), "dst": t.flow.dst.to_string() },
        "srtp": t.srtp,
        "ssrcs": s.ssrcs,
        "codec": s.codec,
        "channels": s.channels,
        "start_ms": t.start_ms,
        // What players show: the granule span less the pre-skip (RFC 7845 4.2).
        "duration_ms": samples48_to_ms(s.samples.saturating_sub(PRE_SKIP as u64)),
        "filled_ms": samples48_to_ms(s.filled_samples),
        "resyncs": s.resyncs,
        "packets": {
            "received": s.received,
            "written": s.written,
            "lost": s.lost,
            "duplicated": s.duplicated,
            "late": s.late,
            "undecryptable": s.undecryptable,
            "malformed": s.malformed,
            "other_payload": s.other_payload,
            "rtcp": s.rtcp,
            "sender_reports": s.sender_reports,
            "sender_reports_ignored": s.sender_reports_ignored,
        },
        // The sender's wall clock at a point of the track: what aligns the legs of a
        // dual-bot recording (docs/merge.md).
        "sr_anchor": s.sr_anchor.map(|a| json!({
            "ssrc": a.ssrc,
            "ntp_unix_ms": round_ms(a.ntp_unix_ms()),
            "track_ms": round_ms(a.track_ms()),
        })),
        "encode_errors": s.encode_errors,
    })
}

/// A stable Ogg serial per track, different across tracks and calls (FNV-1a of the call id).
fn serial_for(call_id: &str, index: usize) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in call_id.bytes().chain((index as u32).to_le_bytes()) {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    h
}
