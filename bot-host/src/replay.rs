//! `bot-host replay`: records a captured call as if it arrived live.
//!
//! The capture is read twice: once to find the media flows (a participant is one UDP flow
//! without signaling), once to feed every datagram, with its capture time as `now`, into
//! media-core's [`ParticipantTrack`]s. Ogg pages are written as media-core releases them, so
//! the files grow as they would in a live recording and a killed replay leaves playable files.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use media_core::recording::{ParticipantTrack, TrackConfig, TrackStats, PRE_SKIP};
use media_core::rtp;
use media_core::sdes;
use media_core::srtp::SrtpKeyMaterial;
use media_core::time::{format_rfc3339, samples48_to_ms, Micros};
use serde_json::json;

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
}

/// A UDP flow, one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flow {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
}

#[derive(Default)]
struct FlowCensus {
    first: Micros,
    datagrams: u64,
    rtp: u64,
    rtcp: u64,
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
    /// Path of meta.json.
    pub meta_path: PathBuf,
    /// Problems worth telling the user (e.g. a wrong key).
    pub problems: Vec<String>,
}

/// A flow is media if at least this share of its datagrams look like RTP.
fn is_media(c: &FlowCensus) -> bool {
    c.rtp >= 2 && c.rtp * 2 >= c.datagrams
}

fn read_capture(path: &Path, f: impl FnMut(&crate::capture::Datagram<'_>)) -> Result<CaptureStats> {
    let file =
        File::open(path).with_context(|| format!("cannot open capture {}", path.display()))?;
    read_datagrams(std::io::BufReader::with_capacity(1 << 20, file), f)
        .with_context(|| format!("cannot read capture {}", path.display()))
}

/// Records the capture into `opts.out`: one Ogg Opus file per participant and `meta.json`.
pub fn replay(opts: &ReplayOptions) -> Result<ReplaySummary> {
    // Pass 1: which flows carry media.
    let mut census: HashMap<Flow, FlowCensus> = HashMap::new();
    read_capture(&opts.capture, |d| {
        let c = census
            .entry(Flow {
                src: d.src,
                dst: d.dst,
            })
            .or_insert_with(|| FlowCensus {
                first: d.ts,
                ..Default::default()
            });
        c.datagrams += 1;
        if rtp::looks_like_rtp_or_rtcp(d.payload) {
            if rtp::is_rtcp(d.payload) {
                c.rtcp += 1;
            } else {
                c.rtp += 1;
            }
        }
    })?;
    let mut media: Vec<(Flow, Micros)> = census
        .iter()
        .filter(|(_, c)| is_media(c))
        .map(|(f, c)| (*f, c.first))
        .collect();
    media.sort_by_key(|&(f, first)| (first, f));
    if media.is_empty() {
        bail!(
            "no RTP flows found in {} ({} UDP flows, {} datagrams)",
            opts.capture.display(),
            census.len(),
            census.values().map(|c| c.datagrams).sum::<u64>()
        );
    }
    for k in &opts.keys {
        if let Some(port) = k.port {
            if !media.iter().any(|(f, _)| f.dst.port() == port) {
                eprintln!("warning: --srtp-key for port {port}: no media flow to that port");
            }
        }
    }

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

    struct Slot {
        flow: Flow,
        track: ParticipantTrack,
        file_name: String,
        file: Option<File>,
        srtp: Option<&'static str>,
    }
    let mut slots: Vec<Slot> = Vec::new();
    let mut by_flow: HashMap<Flow, usize> = HashMap::new();
    for (i, (flow, _)) in media.iter().enumerate() {
        let participant = format!("participant-{}", i + 1);
        let mut cfg = TrackConfig::new(call_id.clone(), participant.clone());
        cfg.serial = serial_for(&call_id, i);
        // A port-specific key beats a key for all flows.
        let key = opts
            .keys
            .iter()
            .find(|k| k.port == Some(flow.dst.port()))
            .or_else(|| opts.keys.iter().find(|k| k.port.is_none()));
        cfg.srtp = key.map(|k| k.key.clone());
        let srtp = key.map(|k| k.key.profile().sdes_name());
        by_flow.insert(*flow, slots.len());
        slots.push(Slot {
            flow: *flow,
            track: ParticipantTrack::new(cfg),
            file_name: format!("{participant}.ogg"),
            file: None,
            srtp,
        });
    }
    // RTCP on the odd port next to a media flow (no rtcp-mux) goes to that flow's track.
    for (flow, c) in &census {
        if c.rtp == 0 && c.rtcp > 0 && !by_flow.contains_key(flow) {
            let (Some(sp), Some(dp)) = (
                flow.src.port().checked_sub(1),
                flow.dst.port().checked_sub(1),
            ) else {
                continue;
            };
            let rtp_flow = Flow {
                src: SocketAddr::new(flow.src.ip(), sp),
                dst: SocketAddr::new(flow.dst.ip(), dp),
            };
            if let Some(&i) = by_flow.get(&rtp_flow) {
                by_flow.insert(*flow, i);
            }
        }
    }

    // Pass 2: feed every datagram at its capture time.
    let mut buf = Vec::with_capacity(2048);
    let mut io_error: Option<anyhow::Error> = None;
    let mut first_ts: Option<Micros> = None;
    let mut next_timeout: Option<Micros> = None;
    let out_dir = opts.out.clone();
    let capture_stats = read_capture(&opts.capture, |d| {
        if io_error.is_some() {
            return;
        }
        let Some(&i) = by_flow.get(&Flow {
            src: d.src,
            dst: d.dst,
        }) else {
            return;
        };
        first_ts.get_or_insert(d.ts);
        if next_timeout.is_some_and(|t| t <= d.ts) {
            for s in slots.iter_mut() {
                s.track.handle_timeout(d.ts);
                if let Err(e) = drain(s, &out_dir) {
                    io_error = Some(e);
                }
            }
        }
        buf.clear();
        buf.extend_from_slice(d.payload);
        let s = &mut slots[i];
        s.track.handle_datagram(d.ts, &mut buf);
        if let Err(e) = drain(s, &out_dir) {
            io_error = Some(e);
        }
        next_timeout = slots.iter().filter_map(|s| s.track.poll_timeout()).min();
    })?;
    if let Some(e) = io_error {
        return Err(e);
    }

    fn drain(s: &mut Slot, dir: &Path) -> Result<()> {
        let out = s.track.output();
        if out.is_empty() {
            return Ok(());
        }
        if s.file.is_none() {
            let path = dir.join(&s.file_name);
            s.file = Some(
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?,
            );
        }
        if let Some(f) = s.file.as_mut() {
            f.write_all(out)
                .with_context(|| format!("cannot write {}", dir.join(&s.file_name).display()))?;
        }
        out.clear();
        Ok(())
    }

    let call_start = first_ts.unwrap_or_default();
    let mut reports = Vec::new();
    let mut problems = Vec::new();
    for s in slots.iter_mut() {
        s.track.finish();
        drain(s, &opts.out)?;
        if let Some(f) = &s.file {
            f.sync_all().context("cannot sync recording")?;
        }
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

    let meta = json!({
        "call_id": call_id,
        "capture": opts.capture.display().to_string(),
        "started_at": format_rfc3339(call_start.0),
        "tracks": reports.iter().map(track_json).collect::<Vec<_>>(),
        "capture_stats": capture_stats,
    });
    let meta_path = opts.out.join("meta.json");
    let tmp = opts.out.join(".meta.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&meta)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &meta_path)
        .with_context(|| format!("cannot write {}", meta_path.display()))?;

    Ok(ReplaySummary {
        tracks: reports,
        capture: capture_stats,
        meta_path,
        problems,
    })
}

fn track_json(t: &TrackReport) -> serde_json::Value {
    let s = &t.stats;
    json!({
        "participant": t.participant,
        "file": t.file,
        "flow": { "src": t.flow.src.to_string(), "dst": t.flow.dst.to_string() },
        "srtp": t.srtp,
        "ssrcs": s.ssrcs,
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
        },
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
