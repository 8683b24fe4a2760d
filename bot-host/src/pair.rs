//! `bot-host replay <primary> --paired <capture>`: a "Pro" (double) recording made offline.
//!
//! Both legs are recorded as usual into `<out>/primary/` and `<out>/paired/` (each a full
//! recording directory, playable on its own), then every primary participant is merged with
//! the paired participant whose packets match it (`media_core::merge`) into `<out>/merged/`.
//! Participants are paired by content, not by address: the two bots' sessions have nothing
//! else in common. A paired capture that matches no participant belongs to another call and
//! is rejected, not merged.
//!
//! Each pair of tracks is first placed coarsely, then by content (`merge_legs`). Coarse: from
//! RTCP sender reports when both tracks have one (the sender's NTP clock is common to both
//! legs, so the hosts' clocks, which may disagree by seconds, play no part), else from each
//! host's arrival clock.

use std::fs::File;
use std::io::{BufReader, BufWriter, Cursor};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use media_core::merge::{merge_legs, LegTrack, MergeError, MergeStats};
use serde_json::json;

use crate::replay::{
    replay, round_ms, write_json, write_mix, write_segments, KeySpec, ReplayOptions, ReplaySummary,
    TrackOut, TrackReport,
};

/// What to record and merge.
pub struct PairOptions {
    /// The primary bot's capture.
    pub primary: PathBuf,
    /// The paired bot's capture.
    pub paired: PathBuf,
    /// Output directory; gets `primary/`, `paired/` and `merged/`.
    pub out: PathBuf,
    /// SRTP keys of the primary capture.
    pub keys: Vec<KeySpec>,
    /// SRTP keys of the paired capture (default: the primary's).
    pub paired_keys: Vec<KeySpec>,
    /// Call id (default: the primary capture's file stem).
    pub call_id: Option<String>,
    /// The targeted user's participant name (stereo-split mixes), as in [`ReplayOptions`].
    pub targeted: Option<String>,
}

/// What placed the two legs of a participant before the content match refined it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoarseAlignment {
    /// Both legs' tracks have an RTCP sender report anchor: the sender's NTP clock, common
    /// to both legs, gives each track's start.
    RtcpSr,
    /// The two hosts' clocks (each track's first arrival), which may disagree.
    Arrival,
}

impl CoarseAlignment {
    /// The name written in `merged/meta.json` (`alignment.coarse_from`).
    pub fn as_str(self) -> &'static str {
        match self {
            CoarseAlignment::RtcpSr => "rtcp-sr",
            CoarseAlignment::Arrival => "arrival",
        }
    }
}

/// One merged participant.
pub struct MergedTrack {
    /// Name in `merged/` (the primary's participant name).
    pub participant: String,
    /// The paired participant it was merged with, if any.
    pub paired_with: Option<String>,
    /// How the legs were placed before the content match; `None` when unpaired.
    pub coarse: Option<CoarseAlignment>,
    /// Where the merged track starts, on the primary host's clock (Unix ms).
    pub start_unix_ms: f64,
    /// Merge counters (all from the primary when unpaired). `offset_ms` is the paired host's
    /// clock minus the primary's whatever placed the legs.
    pub stats: MergeStats,
}

/// The paired track's start expressed on the primary host's clock, for the merge's coarse
/// alignment, and what it came from. With sender reports on both tracks, the sender's NTP
/// clock relates the two starts (each is `ntp_unix_ms - track_ms` on that clock) and the
/// hosts' clocks do not matter; otherwise each host's arrival clock gives its own start.
fn paired_start(
    p: &TrackReport,
    p_wall_ms: f64,
    q: &TrackReport,
    q_wall_ms: f64,
    coarse: CoarseAlignment,
) -> f64 {
    match (coarse, p.stats.sr_anchor, q.stats.sr_anchor) {
        (CoarseAlignment::RtcpSr, Some(a), Some(b)) => {
            p_wall_ms + (b.track_start_sender_ms() - a.track_start_sender_ms())
        }
        _ => q_wall_ms,
    }
}

/// The outcome of a paired replay.
pub struct PairSummary {
    /// The primary leg's recording.
    pub primary: ReplaySummary,
    /// The paired leg's recording.
    pub paired: ReplaySummary,
    /// The merged participants; empty if the paired leg was rejected.
    pub merged: Vec<MergedTrack>,
    /// Problems worth telling the user.
    pub problems: Vec<String>,
}

/// A primary participant's merged track, before it is written.
struct Merged {
    primary: usize,
    paired: Option<usize>,
    coarse: Option<CoarseAlignment>,
    stats: MergeStats,
    /// Where the merged track starts, the primary's clock, Unix ms.
    start_unix_ms: f64,
    bytes: Vec<u8>,
}

/// Records both legs and merges them.
pub fn replay_pair(opts: &PairOptions) -> Result<PairSummary> {
    let call_id = opts.call_id.clone().unwrap_or_else(|| {
        opts.primary
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "call".into())
    });
    let leg = |capture: &Path, dir: &str, keys: &[KeySpec]| ReplayOptions {
        capture: capture.to_path_buf(),
        out: opts.out.join(dir),
        keys: keys.to_vec(),
        call_id: Some(call_id.clone()),
        targeted: opts.targeted.clone(),
    };
    let paired_keys = if opts.paired_keys.is_empty() {
        &opts.keys
    } else {
        &opts.paired_keys
    };
    let (primary_opts, paired_opts) = (
        leg(&opts.primary, "primary", &opts.keys),
        leg(&opts.paired, "paired", paired_keys),
    );
    // The two legs are independent: record them on two cores.
    let (primary, paired) = std::thread::scope(|s| {
        let p = s.spawn(|| replay(&primary_opts));
        let q = replay(&paired_opts);
        (p.join(), q)
    });
    let primary = primary
        .map_err(|_| anyhow::anyhow!("primary leg recorder panicked"))?
        .context("primary leg")?;
    let paired = paired.context("paired leg")?;

    let merged_dir = opts.out.join("merged");
    std::fs::create_dir_all(&merged_dir)
        .with_context(|| format!("cannot create {}", merged_dir.display()))?;
    let leg_start = |s: &ReplaySummary, start_ms: f64| s.call_start.0 as f64 / 1000.0 + start_ms;

    // Pair participants by content: each primary track takes the unused paired track that
    // matches it best; merging into memory first keeps a failed try from leaving files.
    let mut used = vec![false; paired.tracks.len()];
    let mut results: Vec<Merged> = Vec::new();
    // Some pairing was refused because its coarse alignment was contradicted, not because
    // the content differs: worth saying when nothing merges.
    let mut unaligned = false;
    for (i, p) in primary.tracks.iter().enumerate() {
        let Some(pfile) = &p.file else { continue };
        let p_wall = leg_start(&primary, p.start_ms);
        let mut best: Option<(usize, CoarseAlignment, MergeStats, f64, Vec<u8>)> = None;
        for (j, q) in paired.tracks.iter().enumerate() {
            let Some(qfile) = &q.file else { continue };
            if used[j] {
                continue;
            }
            let q_wall = leg_start(&paired, q.start_ms);
            // Sender reports first where both tracks have one; if that finds the legs
            // unrelated, the hosts' clocks get their chance too, since two senders (two
            // forwarders) need not share an NTP clock while the content may still match.
            let tries: &[CoarseAlignment] =
                if p.stats.sr_anchor.is_some() && q.stats.sr_anchor.is_some() {
                    &[CoarseAlignment::RtcpSr, CoarseAlignment::Arrival]
                } else {
                    &[CoarseAlignment::Arrival]
                };
            for &coarse in tries {
                let q_start = paired_start(p, p_wall, q, q_wall, coarse);
                let mut buf = Vec::new();
                let attempt = merge_legs(
                    LegTrack {
                        reader: open(&opts.out.join("primary").join(pfile))?,
                        start_unix_ms: p_wall,
                    },
                    LegTrack {
                        reader: open(&opts.out.join("paired").join(qfile))?,
                        start_unix_ms: q_start,
                    },
                    &call_id,
                    &p.participant,
                    Cursor::new(&mut buf),
                );
                match attempt {
                    Ok((mut stats, start)) => {
                        // The merge measured the paired start we gave it; report the paired
                        // host's clock against the primary's, as with arrival alignment.
                        stats.offset_ms += q_wall - q_start;
                        if best
                            .as_ref()
                            .is_none_or(|b| stats.matched_frames > b.2.matched_frames)
                        {
                            best = Some((j, coarse, stats, start, buf));
                        }
                        break;
                    }
                    Err(MergeError::NotSameCall { .. }) => {}
                    Err(MergeError::Unaligned { .. }) => unaligned = true,
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("merging {} with {}", p.participant, q.participant)
                        })
                    }
                }
            }
        }
        match best {
            Some((j, coarse, stats, start, buf)) => {
                used[j] = true;
                results.push(Merged {
                    primary: i,
                    paired: Some(j),
                    coarse: Some(coarse),
                    stats,
                    start_unix_ms: start,
                    bytes: buf,
                });
            }
            None => {
                // Only the primary heard this participant: its leg is the merged track.
                let buf = std::fs::read(opts.out.join("primary").join(pfile))?;
                let stats = MergeStats {
                    frames_primary: p.stats.written,
                    ..Default::default()
                };
                results.push(Merged {
                    primary: i,
                    paired: None,
                    coarse: None,
                    stats,
                    start_unix_ms: p_wall,
                    bytes: buf,
                });
            }
        }
    }
    let mut problems = Vec::new();
    let any_paired = results.iter().any(|r| r.paired.is_some());
    if !any_paired && paired.tracks.iter().any(|t| t.file.is_some()) {
        problems.push(format!(
            "{}: no participant matches the primary leg's; it belongs to another call and was not merged{}",
            opts.paired.display(),
            if unaligned {
                " (or its host clock is off by more than 2 s and the legs carry no RTCP sender reports)"
            } else {
                ""
            }
        ));
        let _ = std::fs::remove_dir_all(&merged_dir);
        return Ok(PairSummary {
            primary,
            paired,
            merged: Vec::new(),
            problems,
        });
    }

    // The merged call starts at its earliest track, on the primary's clock.
    let origin = results
        .iter()
        .map(|r| r.start_unix_ms)
        .fold(f64::MAX, f64::min);
    let mut merged = Vec::new();
    let mut tracks_json = Vec::new();
    let mut names = Vec::new();
    for r in &results {
        let (stats, start, buf) = (&r.stats, r.start_unix_ms, &r.bytes);
        let p = &primary.tracks[r.primary];
        let file = format!("{}.ogg", p.participant);
        write_file(&merged_dir.join(&file), buf)?;
        names.push((p.participant.clone(), file, start - origin));
        let paired_with = r.paired.map(|j| paired.tracks[j].participant.clone());
        tracks_json.push(json!({
            "participant": p.participant,
            "file": format!("{}.ogg", p.participant),
            "start_ms": round_ms(start - origin),
            "primary": { "flow": { "src": p.flow.src.to_string(), "dst": p.flow.dst.to_string() } },
            "paired": paired_with.as_ref().map(|name| json!({ "participant": name })),
            "frames": {
                "primary": stats.frames_primary,
                "paired": stats.frames_paired,
                "lost_both": stats.frames_lost_both,
            },
            "alignment": {
                "coarse_from": r.coarse.map(CoarseAlignment::as_str),
                "offset_ms": round_ms(stats.offset_ms),
                "drift_ppm": (stats.drift_ppm * 100.0).round() / 100.0,
                "matched_frames": stats.matched_frames,
            },
        }));
        merged.push(MergedTrack {
            participant: p.participant.clone(),
            paired_with,
            coarse: r.coarse,
            start_unix_ms: start,
            stats: stats.clone(),
        });
    }
    let outs: Vec<TrackOut<'_>> = names
        .iter()
        .map(|(participant, file, start_ms)| TrackOut {
            participant,
            file: Some(file),
            start_ms: *start_ms,
            level_segments: None,
            duration_ms: None,
        })
        .collect();
    let sources = write_segments(&merged_dir, &outs)?;
    let mixed = write_mix(&merged_dir, &call_id, &outs, opts.targeted.as_deref())?;
    for (t, from) in tracks_json.iter_mut().zip(sources) {
        t["segments_from"] = json!(from);
    }
    write_json(
        &merged_dir.join("meta.json"),
        &json!({
            "call_id": call_id,
            "double_recording": "pro",
            "primary_capture": opts.primary.display().to_string(),
            "paired_capture": opts.paired.display().to_string(),
            "started_at": media_core::time::format_rfc3339((origin * 1000.0) as u64),
            "tracks": tracks_json,
            "mixed": mixed,
        }),
    )?;
    Ok(PairSummary {
        primary,
        paired,
        merged,
        problems,
    })
}

fn open(path: &Path) -> Result<BufReader<File>> {
    Ok(BufReader::new(File::open(path).with_context(|| {
        format!("cannot read {}", path.display())
    })?))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = BufWriter::new(
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    f.write_all(bytes)
        .and_then(|_| f.flush())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// One participant of a merge of two sealed live recordings.
#[derive(Debug, Clone)]
pub struct SealedMergeTrack {
    /// Track file name, `<msi>.ogg`, in both legs and in the output.
    pub file: String,
    /// Participant name (the primary's, else the paired leg's).
    pub participant: String,
    /// Which legs had the track: `primary+paired`, `primary` or `paired`.
    pub from: &'static str,
    /// Merge counters; for a track only one leg had, `frames_primary` or `frames_paired`
    /// holds that leg's written packets.
    pub stats: MergeStats,
    /// Where the merged track starts on the merged call's time line, ms.
    pub start_ms: f64,
}

/// The outcome of [`merge_sealed`].
#[derive(Debug, Clone)]
pub struct SealedMerge {
    /// The merged participants, one per track file either leg had.
    pub tracks: Vec<SealedMergeTrack>,
}

/// A sealed leg's meta.json, as far as the merge needs it.
struct SealedLeg {
    dir: PathBuf,
    call_id: String,
    /// `started_at` (the call's first packet on that host's clock), Unix ms.
    started_unix_ms: f64,
    /// (file, participant, start_ms, written packets) of every track with audio.
    tracks: Vec<(String, String, f64, u64)>,
    interaction: serde_json::Value,
}

fn read_sealed_leg(dir: &Path) -> Result<SealedLeg> {
    let path = dir.join("meta.json");
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", path.display()))?;
    let started = meta["started_at"]
        .as_str()
        .with_context(|| format!("{}: no started_at (a leg without media)", path.display()))?;
    let started_unix_ms = chrono::DateTime::parse_from_rfc3339(started)
        .with_context(|| format!("{}: bad started_at {started:?}", path.display()))?
        .timestamp_micros() as f64
        / 1000.0;
    let mut tracks = Vec::new();
    for t in meta["tracks"].as_array().into_iter().flatten() {
        let Some(file) = t["file"].as_str() else {
            continue;
        };
        // The file name comes from disk: it must name a file inside the leg's directory.
        if file.contains('/') || file.contains('\\') || file.starts_with('.') {
            anyhow::bail!(
                "{}: track file {file:?} is not a plain name",
                path.display()
            );
        }
        tracks.push((
            file.to_string(),
            t["participant"].as_str().unwrap_or(file).to_string(),
            t["start_ms"].as_f64().unwrap_or(0.0),
            t["packets"]["written"].as_u64().unwrap_or(0),
        ));
    }
    Ok(SealedLeg {
        dir: dir.to_path_buf(),
        call_id: meta["call_id"].as_str().unwrap_or_default().to_string(),
        started_unix_ms,
        tracks,
        interaction: meta["interaction"].clone(),
    })
}

/// Merges two sealed live recordings of the same call (`bot-host serve` with role `primary`
/// and `paired`) into `out_dir`: per-speaker tracks, `segments.json`, `mixed.ogg` and a
/// `meta.json`.
///
/// Unlike [`replay_pair`], participants are matched by track file name: a live leg names each
/// track after the speaker's MSI (`<msi>.ogg`, SSRC = MSI on both legs), which the platform
/// gives both bots alike, so no content search is needed to pair them. The coarse alignment
/// is each leg's `started_at` plus the track's `start_ms`, on that host's clock; the merge
/// refines it by content. A track only one leg has is copied as it is. Two legs whose
/// shared tracks' content does not match are refused ([`MergeError::NotSameCall`]).
pub fn merge_sealed(primary_dir: &Path, paired_dir: &Path, out_dir: &Path) -> Result<SealedMerge> {
    let p = read_sealed_leg(primary_dir).context("primary leg")?;
    let q = read_sealed_leg(paired_dir).context("paired leg")?;
    let call_id = if p.call_id.is_empty() {
        q.call_id.clone()
    } else {
        p.call_id.clone()
    };
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;

    // Each track with its start on the primary's clock (Unix ms) and its bytes, merged into
    // memory first so that a failed merge leaves no half-written directory.
    let mut results: Vec<(SealedMergeTrack, Vec<u8>)> = Vec::new();
    for (file, participant, start_ms, written) in &p.tracks {
        let p_start = p.started_unix_ms + start_ms;
        match q.tracks.iter().find(|t| &t.0 == file) {
            Some((qfile, _, q_start_ms, _)) => {
                let mut buf = Vec::new();
                let (stats, start) = merge_legs(
                    LegTrack {
                        reader: open(&p.dir.join(file))?,
                        start_unix_ms: p_start,
                    },
                    LegTrack {
                        reader: open(&q.dir.join(qfile))?,
                        start_unix_ms: q.started_unix_ms + q_start_ms,
                    },
                    &call_id,
                    participant,
                    Cursor::new(&mut buf),
                )
                .with_context(|| format!("merging {file}"))?;
                results.push((
                    SealedMergeTrack {
                        file: file.clone(),
                        participant: participant.clone(),
                        from: "primary+paired",
                        stats,
                        start_ms: start,
                    },
                    buf,
                ));
            }
            None => {
                let buf = std::fs::read(p.dir.join(file))
                    .with_context(|| format!("cannot read {}", p.dir.join(file).display()))?;
                let stats = MergeStats {
                    frames_primary: *written,
                    ..Default::default()
                };
                results.push((
                    SealedMergeTrack {
                        file: file.clone(),
                        participant: participant.clone(),
                        from: "primary",
                        stats,
                        start_ms: p_start,
                    },
                    buf,
                ));
            }
        }
    }
    // A speaker only the paired bot heard (the primary lost all of its packets) still
    // belongs in the merged call; the hosts' clocks place it.
    for (file, participant, start_ms, written) in &q.tracks {
        if p.tracks.iter().any(|t| &t.0 == file) {
            continue;
        }
        let buf = std::fs::read(q.dir.join(file))
            .with_context(|| format!("cannot read {}", q.dir.join(file).display()))?;
        let stats = MergeStats {
            frames_paired: *written,
            ..Default::default()
        };
        results.push((
            SealedMergeTrack {
                file: file.clone(),
                participant: participant.clone(),
                from: "paired",
                stats,
                start_ms: q.started_unix_ms + start_ms,
            },
            buf,
        ));
    }
    if results.is_empty() {
        anyhow::bail!("neither leg has a track with audio");
    }

    // Until here `start_ms` is Unix ms on the primary's clock; the merged call starts at its
    // earliest track.
    let origin = results
        .iter()
        .map(|r| r.0.start_ms)
        .fold(f64::MAX, f64::min);
    let mut tracks = Vec::new();
    let mut tracks_json = Vec::new();
    for (mut t, buf) in results {
        write_file(&out_dir.join(&t.file), &buf)?;
        t.start_ms -= origin;
        let stats = &t.stats;
        tracks_json.push(json!({
            "participant": t.participant,
            "file": t.file,
            "start_ms": round_ms(t.start_ms),
            "from": t.from,
            "frames": {
                "primary": stats.frames_primary,
                "paired": stats.frames_paired,
                "lost_both": stats.frames_lost_both,
            },
            "alignment": {
                "offset_ms": round_ms(stats.offset_ms),
                "matched_frames": stats.matched_frames,
            },
        }));
        tracks.push(t);
    }
    let outs: Vec<TrackOut<'_>> = tracks
        .iter()
        .map(|t| TrackOut {
            participant: &t.participant,
            file: Some(&t.file),
            start_ms: t.start_ms,
            level_segments: None,
            duration_ms: None,
        })
        .collect();
    let sources = write_segments(out_dir, &outs)?;
    let mixed = write_mix(out_dir, &call_id, &outs, None)?;
    for (t, from) in tracks_json.iter_mut().zip(sources) {
        t["segments_from"] = json!(from);
    }
    write_json(
        &out_dir.join("meta.json"),
        &json!({
            "call_id": call_id,
            "double_recording": "pro",
            "primary_recording": primary_dir.display().to_string(),
            "paired_recording": paired_dir.display().to_string(),
            "started_at": media_core::time::format_rfc3339((origin * 1000.0) as u64),
            "interaction": p.interaction,
            "paired_interaction": q.interaction,
            "tracks": tracks_json,
            "mixed": mixed,
        }),
    )?;
    Ok(SealedMerge { tracks })
}
