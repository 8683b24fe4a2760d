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
