//! Dual-bot redundant merging: two recordings of the same participant (one per bot, each
//! through its own RTP session) become one Ogg Opus track on the primary's time line.
//!
//! Why by content: the two legs share nothing in their RTP headers (SSRC, sequence and
//! timestamp bases differ) and their hosts' clocks disagree by up to a second, so headers
//! and wall clocks can only give a coarse alignment. The platform forwards one encoding to
//! both bots, so a frame's Opus payload is the same bytes on both legs: a hash of each real
//! packet gives the exact frame correspondence, and frames both legs have settle where the
//! other leg's extra frames go. See docs/merge.md.
//!
//! The whole merge works on the finished files (not on the per-packet path): it reads both
//! legs into memory once, aligns them with sorted hash tables (no hashing containers, no
//! per-packet allocation), and writes the result with [`OggOpusWriter`].

use crate::ogg::{OggOpusWriter, OpusHead, OGG_CRC};
use crate::opus;
use crate::recording::PRE_SKIP;
use crate::time::format_rfc3339;
use std::io::{Read, Seek, Write};

/// One leg's track of a participant: its Ogg Opus file and where it starts on that leg's
/// clock.
pub struct LegTrack<R> {
    /// The leg's Ogg Opus file, as written by [`crate::recording::ParticipantTrack`].
    pub reader: R,
    /// Unix ms of the track's first sample on this leg's host clock: the leg's `started_at`
    /// plus the track's `start_ms` (meta.json).
    pub start_unix_ms: f64,
}

/// What a merge did, per participant track.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergeStats {
    /// Real packets written from the primary leg.
    pub frames_primary: u64,
    /// Real packets written from the paired leg (slots the primary had no packet for).
    pub frames_paired: u64,
    /// 20 ms slots of the merged track neither leg had a real packet for (loss on both, or
    /// the sender's DTX pauses), filled with silence.
    pub frames_lost_both: u64,
    /// The paired host's clock minus the primary's, ms, as found by the content match (or
    /// from the wall clocks alone when nothing could be matched).
    pub offset_ms: f64,
    /// How much faster the paired leg's track time line runs than the primary's, ppm, from
    /// the first and last anchors. Both legs place packets by the sender's RTP clock, so this
    /// is 0 unless a leg re-anchored on its arrival clock; host clock drift shows in
    /// `offset_ms` only.
    pub drift_ppm: f64,
    /// Positions where both legs have a real, distinctive packet with the same payload.
    pub matched_frames: u64,
    /// Positions where both legs have a real packet and the primary's is distinctive: the
    /// denominator of the same-call test.
    pub compared_frames: u64,
    /// Times the alignment switched to a new offset along the call (piecewise re-anchoring).
    pub reanchors: u64,
    /// Paired packets dropped because a primary packet already covers their time (the same
    /// frame, or a frame that would overlap it).
    pub paired_dropped: u64,
}

/// Which leg an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// The primary bot's leg.
    Primary,
    /// The paired bot's leg.
    Paired,
}

impl std::fmt::Display for Leg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Leg::Primary => "primary",
            Leg::Paired => "paired",
        })
    }
}

/// Why two legs could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Reading a leg or writing the output failed.
    #[error("merge I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A leg is not a well-formed Ogg Opus stream.
    #[error("{leg} leg: not a valid Ogg Opus stream: {reason}")]
    Ogg {
        /// The leg at fault.
        leg: Leg,
        /// What is wrong.
        reason: &'static str,
    },
    /// The paired leg does not carry the primary's audio: too few of the frames both legs
    /// have line up with identical payloads. It is rejected rather than merged.
    #[error("paired leg is not the same call: {matched} of {compared} comparable frames match")]
    NotSameCall {
        /// Frames found identical at the aligned position.
        matched: u64,
        /// Frames both legs have a real packet for (primary's distinctive ones).
        compared: u64,
    },
    /// No frame of the paired leg could be matched near where the coarse alignment (the wall
    /// clocks, or RTCP sender reports) puts it, and frames there contradict that placement:
    /// the coarse alignment is off by more than the content search covers. The paired leg
    /// is left out rather than misplaced.
    #[error(
        "paired leg could not be aligned: no content match near the coarse alignment, \
         and {contradicted} frames there contradict it"
    )]
    Unaligned {
        /// Distinctive frames (of either leg) that landed on a different real packet.
        contradicted: u64,
    },
    /// The legs disagree on the channel count, so they cannot share one Opus stream.
    #[error("legs differ in channel count: primary {primary}, paired {paired}")]
    ChannelMismatch {
        /// Primary's channel count.
        primary: u8,
        /// Paired leg's channel count.
        paired: u8,
    },
    /// Neither leg has a single real packet.
    #[error("neither leg has audio")]
    Empty,
}

/// Fewer comparable frames than this (one second of speech) cannot tell a foreign leg from
/// a matching one (a muted participant is all silence on both legs); the wall clocks alone
/// then place the paired leg.
pub const MIN_COMPARED: u64 = 50;
/// Below this share of matching comparable frames the paired leg belongs to another call.
/// A same-call pair matches nearly 100% (a few frames can differ only through corruption);
/// another call's speech frames never match.
pub const MIN_MATCH_RATIO: f64 = 0.2;
/// How far the content match searches around the wall-clock alignment, and how far apart
/// two copies of a payload must be for it to count as distinctive: the host clocks may
/// disagree by up to ~1 s, plus margin.
const SEARCH_WINDOW_48K: i64 = 2 * 48_000;
/// Consecutive matches agreeing on a new offset before the alignment switches to it, so a
/// single accidental match cannot move frames.
const REANCHOR_CONFIRM: u32 = 4;
/// Offset of a paired packet that cannot be placed with certainty.
const UNPLACED: i64 = i64::MIN;
/// Output is handed to the writer in chunks of about this size.
const WRITE_CHUNK: usize = 64 * 1024;

/// A real (non-silence) packet of a leg.
#[derive(Debug, Clone, Copy)]
struct Pkt {
    /// Start on the leg's track time line, 48 kHz samples from the track's first sample.
    pos: i64,
    /// [`payload_hash`] of the payload.
    hash: u64,
    /// Where the payload is in the leg's packet arena.
    off: usize,
    len: u32,
    /// 48 kHz samples.
    dur: u32,
}

/// A leg read into memory: its real packets in order, and its track length.
#[derive(Debug, Default)]
struct LegData {
    channels: u8,
    /// The file's bytes (packets are used in place), then any packets that were split
    /// across pages, assembled.
    arena: Vec<u8>,
    pkts: Vec<Pkt>,
    /// End of the track (silence included), 48 kHz samples.
    end: i64,
}

impl LegData {
    fn payload(&self, p: &Pkt) -> &[u8] {
        &self.arena[p.off..p.off + p.len as usize]
    }
}

/// FNV-1a 64, the fixtures' packet hash (truth `packets[].fnv`), for checks against them.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Whether `pkt` is one of media-core's gap-filling packets: filling exactly its own
/// duration with [`opus::silence_fill`] yields exactly this packet. Real encoders never
/// produce these bytes for audio, so they mark "no packet here" in a recorded leg.
pub fn is_silence(pkt: &[u8], samples_48k: u32, channels: u8) -> bool {
    // The largest fill packet is 14 bytes; anything longer is real audio.
    if pkt.len() > 14 {
        return false;
    }
    let (mut count, mut same) = (0, false);
    opus::silence_fill(u64::from(samples_48k), channels, |p, _| {
        count += 1;
        same = p == pkt;
    });
    count == 1 && same
}

/// The matching hash of a payload: 8 bytes at a time (a multiply-rotate mix in the manner of
/// FxHash, finished with a murmur-style avalanche), several times faster than byte-wise
/// FNV on 80-byte packets. Collisions only matter between packets of the two legs near the
/// same time, where 64 bits make them negligible; the same-call count compares bytes.
fn payload_hash(data: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = data.len() as u64;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_le_bytes(w.try_into().expect("8-byte chunk"));
        h = (h.rotate_left(5) ^ v).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    h = (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// Reads a whole Ogg Opus stream: checks page framing and CRCs, skips the two header
/// packets, keeps the real audio packets with their positions.
fn read_leg<R: Read + Seek>(mut r: R, leg: Leg) -> Result<LegData, MergeError> {
    let bad = |reason| MergeError::Ogg { leg, reason };
    // One read into a buffer of the right size: growing it by doubling would copy the file
    // several times (an hour is ~15 MB).
    let here = r.stream_position()?;
    let len = r.seek(std::io::SeekFrom::End(0))?.saturating_sub(here);
    r.seek(std::io::SeekFrom::Start(here))?;
    let mut buf = Vec::with_capacity(len as usize + 4096);
    r.read_to_end(&mut buf)?;
    let file_len = buf.len();
    let mut d = LegData {
        pkts: Vec::with_capacity(file_len / 64),
        ..LegData::default()
    };
    // Packets are used in place in `buf`; the rare packet continued across pages is
    // assembled in `partial` and then appended past the end of the file data.
    let mut partial: Vec<u8> = Vec::new();
    let mut packet_no = 0u64;
    let mut at = 0usize;
    let mut serial = None;
    let mut pos = 0i64;
    while at < file_len {
        // A leg cut short (a killed recorder) keeps every page before the cut: a truncated
        // last page ends the leg rather than failing the merge.
        let Some(h) = buf.get(at..at + 27) else { break };
        if &h[..4] != b"OggS" || h[4] != 0 {
            return Err(bad("bad page capture pattern or version"));
        }
        let page_serial = u32::from_le_bytes([h[14], h[15], h[16], h[17]]);
        if *serial.get_or_insert(page_serial) != page_serial {
            return Err(bad("more than one logical stream"));
        }
        let want = u32::from_le_bytes([h[22], h[23], h[24], h[25]]);
        let nseg = usize::from(h[26]);
        let lacing_at = at + 27;
        if lacing_at + nseg > file_len {
            break;
        }
        let body_len: usize = buf[lacing_at..lacing_at + nseg]
            .iter()
            .map(|&l| usize::from(l))
            .sum();
        let page_end = lacing_at + nseg + body_len;
        if page_end > file_len {
            break;
        }
        let mut digest = OGG_CRC.digest();
        digest.update(&buf[at..at + 22]);
        digest.update(&[0; 4]);
        digest.update(&buf[at + 26..page_end]);
        if digest.finalize() != want {
            return Err(bad("page CRC mismatch"));
        }
        let mut body_at = lacing_at + nseg;
        let mut seg_start = body_at;
        for s in 0..nseg {
            let l = buf[lacing_at + s];
            body_at += usize::from(l);
            if l == 255 {
                continue;
            }
            // A packet ends here.
            let (off, plen) = if partial.is_empty() {
                (seg_start, body_at - seg_start)
            } else {
                partial.extend_from_slice(&buf[seg_start..body_at]);
                let off = buf.len();
                buf.extend_from_slice(&partial);
                partial.clear();
                (off, buf.len() - off)
            };
            let pkt = &buf[off..off + plen];
            match packet_no {
                0 => {
                    if pkt.len() < 19 || &pkt[..8] != b"OpusHead" {
                        return Err(bad("first packet is not OpusHead"));
                    }
                    d.channels = pkt[9];
                }
                1 => {
                    if pkt.len() < 8 || &pkt[..8] != b"OpusTags" {
                        return Err(bad("second packet is not OpusTags"));
                    }
                }
                _ => {
                    let dur = opus::packet_samples_48k(pkt)
                        .map_err(|_| bad("audio packet is not valid Opus"))?;
                    if !is_silence(pkt, dur, d.channels) {
                        d.pkts.push(Pkt {
                            pos,
                            hash: payload_hash(pkt),
                            off,
                            len: plen as u32,
                            dur,
                        });
                    }
                    pos += i64::from(dur);
                }
            }
            packet_no += 1;
            seg_start = body_at;
        }
        // A packet left open continues on the next page.
        partial.extend_from_slice(&buf[seg_start..body_at]);
        at = page_end;
    }
    if packet_no < 2 {
        return Err(bad("missing Opus headers"));
    }
    d.end = pos;
    d.arena = buf;
    Ok(d)
}

/// Per packet: whether its payload is distinctive (no other copy of it on the same leg
/// within the search window), so that a match on it pins one exact frame. Silence-like
/// frames that an encoder repeats are not, nor are the frames of looped audio when the loop
/// is shorter than the window.
fn distinctive(keys: &[(u64, i64, u32)], n: usize) -> Vec<bool> {
    let mut out = vec![false; n];
    for (k, &(h, pos, idx)) in keys.iter().enumerate() {
        let near = |o: &(u64, i64, u32)| o.0 == h && (o.1 - pos).abs() <= SEARCH_WINDOW_48K;
        let before = k > 0 && near(&keys[k - 1]);
        let after = keys.get(k + 1).is_some_and(near);
        out[idx as usize] = !before && !after;
    }
    out
}

/// (hash, position, index) of every packet, sorted by hash then position.
fn sorted_keys(d: &LegData) -> Vec<(u64, i64, u32)> {
    let mut keys: Vec<(u64, i64, u32)> = d
        .pkts
        .iter()
        .enumerate()
        .map(|(i, p)| (p.hash, p.pos, i as u32))
        .collect();
    radix_sort_by_hash(&mut keys);
    keys
}

/// Sorts by (hash, position). The keys come in position order. A stable LSD radix sort on
/// the hash's high 32 bits (two 16-bit digits) orders all but the rare keys whose high halves
/// collide (a few among an hour of packets); those runs are finished by a comparison sort.
/// Half the passes of a full 64-bit radix sort; the sort was the largest part of alignment.
fn radix_sort_by_hash(v: &mut Vec<(u64, i64, u32)>) {
    let mut tmp = v.clone();
    let mut offsets = vec![0usize; 1 << 16];
    for pass in 0..2 {
        let shift = 32 + 16 * pass;
        let digit = |e: &(u64, i64, u32)| ((e.0 >> shift) & 0xffff) as usize;
        offsets.fill(0);
        for e in v.iter() {
            offsets[digit(e)] += 1;
        }
        let mut sum = 0;
        for o in offsets.iter_mut() {
            (*o, sum) = (sum, sum + *o);
        }
        for e in v.iter() {
            let d = digit(e);
            tmp[offsets[d]] = *e;
            offsets[d] += 1;
        }
        std::mem::swap(v, &mut tmp);
    }
    let mut start = 0;
    while start < v.len() {
        let high = v[start].0 >> 32;
        let mut end = start + 1;
        let mut mixed = false;
        while end < v.len() && v[end].0 >> 32 == high {
            mixed |= v[end].0 != v[start].0;
            end += 1;
        }
        if mixed {
            v[start..end].sort_by_key(|e| (e.0, e.1));
        }
        start = end;
    }
}

/// The alignment: for each paired packet, the offset (48 kHz samples) that moves it onto
/// the primary's time line.
struct Alignment {
    offsets: Vec<i64>,
    /// The offset of the first anchor (or the wall-clock guess), for the stats.
    initial: i64,
    /// Whether each primary packet is distinctive (see [`distinctive`]).
    dist_p: Vec<bool>,
    /// Whether each paired packet is distinctive.
    dist_q: Vec<bool>,
    /// Whether any content match placed the paired leg (else only the coarse guess did).
    anchored: bool,
    drift_ppm: f64,
    reanchors: u64,
}

/// Finds the paired-to-primary offset of every paired packet.
///
/// 1. Candidates: distinctive payloads present on both legs within the search window around
///    the wall-clock guess (`coarse`), found by a merge join of the two sorted hash tables.
/// 2. Anchors: the candidates in paired order, filtered by a tracker that keeps the current
///    offset and moves only when [`REANCHOR_CONFIRM`] consecutive candidates agree on a new
///    one, so the alignment is piecewise and follows a leg whose time line slips.
/// 3. Every paired packet takes the offset of its nearest anchor; with no anchor at all, the
///    wall-clock guess snapped to the 20 ms frame grid.
fn align(primary: &LegData, paired: &LegData, coarse: i64) -> Alignment {
    let n = paired.pkts.len();
    let kp = sorted_keys(primary);
    let kq = sorted_keys(paired);
    let dp = distinctive(&kp, primary.pkts.len());
    let dq = distinctive(&kq, n);

    // 1. Merge join on the hash. Within a hash, both sides are sorted by position; for each
    // paired entry the primary entries in its window are few (distinctive means at most one
    // per window on each side), so the inner scan is short.
    let mut cand: Vec<u32> = vec![u32::MAX; n];
    let (mut i, mut j) = (0, 0);
    while i < kp.len() && j < kq.len() {
        let (hp, hq) = (kp[i].0, kq[j].0);
        if hp < hq {
            i += 1;
            continue;
        }
        if hq < hp {
            j += 1;
            continue;
        }
        let gi_end = i + kp[i..].iter().take_while(|k| k.0 == hp).count();
        let gj_end = j + kq[j..].iter().take_while(|k| k.0 == hq).count();
        let mut lo = i;
        for &(_, qpos, qidx) in &kq[j..gj_end] {
            if !dq[qidx as usize] {
                continue;
            }
            let want = qpos + coarse;
            while lo < gi_end && kp[lo].1 < want - SEARCH_WINDOW_48K {
                lo += 1;
            }
            let mut best: Option<(i64, u32)> = None;
            for &(_, ppos, pidx) in kp[lo..gi_end].iter() {
                if ppos > want + SEARCH_WINDOW_48K {
                    break;
                }
                let err = (ppos - want).abs();
                if dp[pidx as usize] && best.is_none_or(|b| err < b.0) {
                    best = Some((err, pidx));
                }
            }
            if let Some((_, pidx)) = best {
                cand[qidx as usize] = pidx;
            }
        }
        i = gi_end;
        j = gj_end;
    }

    // 2. Anchors. The first offset is the most common among the first candidates, so one
    // accidental early match cannot set it.
    let first: Vec<i64> = cand
        .iter()
        .enumerate()
        .filter(|c| *c.1 != u32::MAX)
        .take(64)
        .map(|(q, &p)| primary.pkts[p as usize].pos - paired.pkts[q].pos)
        .collect();
    let mut anchors: Vec<(usize, i64)> = Vec::new();
    let mut reanchors = 0;
    if let Some(start) = mode(&first) {
        let mut cur = start;
        let (mut pending, mut agree) = (0i64, 0u32);
        for (q, &p) in cand.iter().enumerate() {
            if p == u32::MAX {
                continue;
            }
            let d = primary.pkts[p as usize].pos - paired.pkts[q].pos;
            if d == cur {
                agree = 0;
                anchors.push((q, d));
                continue;
            }
            // Any other offset, even one frame away, must be confirmed: two identical
            // consecutive payloads, each lost on a different leg, look distinctive on both
            // and pair frame n with frame n+1.
            if agree > 0 && d == pending {
                agree += 1;
            } else {
                (pending, agree) = (d, 1);
            }
            if agree >= REANCHOR_CONFIRM {
                (cur, agree) = (d, 0);
                reanchors += 1;
                anchors.push((q, d));
            }
        }
    }

    // 3. Nearest anchor for every paired packet.
    let mut offsets = vec![0i64; n];
    if anchors.is_empty() {
        let snapped = (coarse as f64 / 960.0).round() as i64 * 960;
        offsets.fill(snapped);
        return Alignment {
            offsets,
            dist_p: dp,
            dist_q: dq,
            anchored: false,
            initial: snapped,
            drift_ppm: 0.0,
            reanchors: 0,
        };
    }
    let mut a = 0;
    for (q, off) in offsets.iter_mut().enumerate() {
        while a + 1 < anchors.len() && anchors[a + 1].0 <= q {
            a += 1;
        }
        let (qa, da) = anchors[a];
        *off = match anchors.get(a + 1) {
            // Between two anchors that disagree, the slip happened somewhere in between and
            // nothing says on which side of it this packet is: it is left out rather than
            // risk a misplaced frame (the primary or silence covers its slot).
            Some(&(_, db)) if qa < q && db != da => UNPLACED,
            _ => da,
        };
    }
    let (&(q0, d0), &(q1, d1)) = (anchors.first().unwrap(), anchors.last().unwrap());
    // Paired span over primary span of the same frames, minus one.
    let span_q = paired.pkts[q1].pos - paired.pkts[q0].pos;
    let span_p = span_q + d1 - d0;
    let drift_ppm = if span_p > 0 {
        (span_q as f64 / span_p as f64 - 1.0) * 1e6
    } else {
        0.0
    };
    Alignment {
        offsets,
        dist_p: dp,
        dist_q: dq,
        anchored: true,
        initial: d0,
        drift_ppm,
        reanchors,
    }
}

/// The most frequent value (smallest on ties), or `None` for an empty slice.
fn mode(values: &[i64]) -> Option<i64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    let mut best: Option<(usize, i64)> = None;
    for run in v.chunk_by(|a, b| a == b) {
        if best.is_none_or(|b| run.len() > b.0) {
            best = Some((run.len(), run[0]));
        }
    }
    best.map(|b| b.1)
}

/// Writes the merged stream, handing output to `out` in chunks.
struct Sink<W: Write> {
    w: OggOpusWriter,
    out: W,
    channels: u8,
    /// End of what was written, 48 kHz samples on the primary's time line.
    cursor: i64,
    filled: u64,
}

impl<W: Write> Sink<W> {
    /// Silence up to `to`; a gap that is not a multiple of 2.5 ms leaves the sub-2.5 ms
    /// remainder, so the next packet starts at most 2.5 ms early rather than overlapping.
    fn fill_to(&mut self, to: i64) {
        if to > self.cursor {
            let w = &mut self.w;
            let covered = opus::silence_fill((to - self.cursor) as u64, self.channels, |p, n| {
                w.write_packet(p, n)
            });
            self.cursor += covered as i64;
            self.filled += covered;
        }
    }

    fn packet(&mut self, pkt: &[u8], dur: u32) -> Result<(), MergeError> {
        self.w.write_packet(pkt, dur);
        self.cursor += i64::from(dur);
        if self.w.output().len() >= WRITE_CHUNK {
            self.out.write_all(self.w.output())?;
            self.w.output().clear();
        }
        Ok(())
    }
}

/// Merges the two legs of one participant into one Ogg Opus track on the primary's time
/// line: each 20 ms slot from the primary where it has a real packet, else from the paired
/// leg, else silence (counted lost by both). Never duplicates or misplaces a frame; packets
/// stay bit-exact.
///
/// Alignment is coarse from the legs' wall clocks (`start_unix_ms`, which may disagree by up
/// to ~1 s) and refined by content: identical payloads on both legs give the exact frame
/// correspondence, and the alignment re-anchors on matches along the call (piecewise), so a
/// leg whose time line slips stays placed to the frame. If fewer than
/// [`MIN_MATCH_RATIO`] of the frames both legs have (primary's distinctive ones, in the
/// overlap) match, the paired leg is another call's: [`MergeError::NotSameCall`].
///
/// The merged track starts at the earlier of the two legs. Returns the stats and the merged
/// track's start on the primary's clock (Unix ms). The output gets pre-skip
/// [`PRE_SKIP`] like the legs, and OpusTags CALL_ID, PARTICIPANT, START_TIME and
/// MERGED=primary+paired.
pub fn merge_legs<R1: Read + Seek, R2: Read + Seek, W: Write>(
    primary: LegTrack<R1>,
    paired: LegTrack<R2>,
    call_id: &str,
    participant: &str,
    out: W,
) -> Result<(MergeStats, f64), MergeError> {
    let p = read_leg(primary.reader, Leg::Primary)?;
    let q = read_leg(paired.reader, Leg::Paired)?;
    merge_data(
        &p,
        primary.start_unix_ms,
        &q,
        paired.start_unix_ms,
        call_id,
        participant,
        out,
    )
}

fn merge_data<W: Write>(
    p: &LegData,
    p_start_ms: f64,
    q: &LegData,
    q_start_ms: f64,
    call_id: &str,
    participant: &str,
    out: W,
) -> Result<(MergeStats, f64), MergeError> {
    if p.pkts.is_empty() && q.pkts.is_empty() {
        return Err(MergeError::Empty);
    }
    let channels = match (p.pkts.is_empty(), q.pkts.is_empty()) {
        (false, false) if p.channels != q.channels => {
            return Err(MergeError::ChannelMismatch {
                primary: p.channels,
                paired: q.channels,
            })
        }
        (true, _) => q.channels,
        _ => p.channels,
    };
    // Paired position q maps to about q + coarse on the primary's time line.
    let coarse = ((q_start_ms - p_start_ms) * 48.0).round() as i64;
    let al = align(p, q, coarse);
    let mapped = |k: usize| q.pkts[k].pos + al.offsets[k];
    let mut stats = MergeStats {
        offset_ms: q_start_ms - p_start_ms - al.initial as f64 / 48.0,
        drift_ppm: al.drift_ppm,
        reanchors: al.reanchors,
        ..MergeStats::default()
    };

    // Same call? Compare at the aligned positions: walk the paired packets with a cursor in
    // the primary's (both sorted, offsets move rarely, so the cursor moves little).
    let mut c = 0usize;
    let dist_p = &al.dist_p;
    // Without a single content match, the coarse guess alone places the paired leg. That is
    // right for a participant who was silent on both legs, but a guess off by more than the
    // search window places everything wrong, and the primary's distinctive frames alone may
    // be too few there to tell (a leg in an outage, trailing silence). So any distinctive
    // frame, of either leg, landing on a different real packet contradicts the guess.
    let mut contradicted = 0u64;
    for k in 0..q.pkts.len() {
        if al.offsets[k] == UNPLACED {
            continue;
        }
        let m = mapped(k);
        while c < p.pkts.len() && p.pkts[c].pos < m {
            c += 1;
        }
        while c > 0 && p.pkts[c - 1].pos >= m {
            c -= 1;
        }
        let half = i64::from(q.pkts[k].dur / 2);
        let hit = [c.checked_sub(1), Some(c)]
            .into_iter()
            .flatten()
            .filter(|&i| i < p.pkts.len())
            .find(|&i| (p.pkts[i].pos - m).abs() < half.max(1));
        if let Some(i) = hit {
            if !al.anchored
                && (dist_p[i] || al.dist_q[k])
                && (p.pkts[i].hash != q.pkts[k].hash
                    || p.payload(&p.pkts[i]) != q.payload(&q.pkts[k]))
            {
                contradicted += 1;
            }
            if dist_p[i] {
                stats.compared_frames += 1;
                if p.pkts[i].hash == q.pkts[k].hash
                    && p.payload(&p.pkts[i]) == q.payload(&q.pkts[k])
                {
                    stats.matched_frames += 1;
                }
            }
        }
    }
    if stats.compared_frames >= MIN_COMPARED
        && (stats.matched_frames as f64) < MIN_MATCH_RATIO * stats.compared_frames as f64
    {
        return Err(MergeError::NotSameCall {
            matched: stats.matched_frames,
            compared: stats.compared_frames,
        });
    }
    if contradicted > 0 {
        return Err(MergeError::Unaligned { contradicted });
    }

    // The merged track starts at the earlier leg, ends at the later one.
    let placed = |k: &usize| al.offsets[*k] != UNPLACED;
    let q_first = (0..q.pkts.len()).filter(placed).map(mapped).min();
    let q_end = (0..q.pkts.len()).rev().find(placed).map(|k| {
        // The paired leg's trailing silence (if any) keeps its length past its last packet.
        mapped(k) + i64::from(q.pkts[k].dur) + (q.end - q.pkts[k].pos - i64::from(q.pkts[k].dur))
    });
    let start = match (p.pkts.first(), q_first) {
        (Some(_), Some(qf)) => qf.min(0),
        (Some(_), None) => 0,
        (None, Some(qf)) => qf,
        (None, None) => unreachable!("empty legs returned above"),
    };
    let end = if p.pkts.is_empty() {
        q_end.unwrap_or(start)
    } else {
        q_end.map_or(p.end, |e| e.max(p.end))
    };
    let start_unix_ms = p_start_ms + start as f64 / 48.0;
    let start_time = format_rfc3339((start_unix_ms.max(0.0) * 1000.0).round() as u64);
    let head = OpusHead {
        channels,
        pre_skip: PRE_SKIP,
        input_sample_rate: 48_000,
        output_gain: 0,
    };
    let w = OggOpusWriter::new(
        1,
        head,
        &[
            ("CALL_ID", call_id),
            ("PARTICIPANT", participant),
            ("START_TIME", &start_time),
            ("MERGED", "primary+paired"),
        ],
    );
    let mut sink = Sink {
        w,
        out,
        channels,
        cursor: start,
        filled: 0,
    };

    // The merge proper: primary packets in order; a paired packet goes in only where it fits
    // entirely between what is written and the next primary packet, so the primary always
    // wins and nothing is written twice or out of place.
    let (mut i, mut k) = (0usize, 0usize);
    while i < p.pkts.len() || k < q.pkts.len() {
        let next_p = p.pkts.get(i).map_or(i64::MAX, |x| x.pos);
        if k < q.pkts.len() && al.offsets[k] == UNPLACED {
            stats.paired_dropped += 1;
            k += 1;
            continue;
        }
        if k < q.pkts.len() {
            let m = mapped(k);
            let qe = m + i64::from(q.pkts[k].dur);
            if m < sink.cursor || (m < next_p && qe > next_p) {
                // Overlaps what is written or the next primary packet: the same frame
                // (the usual case) or a conflicting one; the primary's copy stands.
                stats.paired_dropped += 1;
                k += 1;
                continue;
            }
            if qe <= next_p {
                sink.fill_to(m);
                sink.packet(q.payload(&q.pkts[k]), q.pkts[k].dur)?;
                stats.frames_paired += 1;
                k += 1;
                continue;
            }
        }
        let x = p.pkts[i];
        sink.fill_to(x.pos);
        sink.packet(p.payload(&x), x.dur)?;
        stats.frames_primary += 1;
        i += 1;
    }
    sink.fill_to(end);
    stats.frames_lost_both = (sink.filled + 480) / 960;
    sink.w.finish();
    sink.out.write_all(sink.w.output())?;
    sink.out.flush()?;
    Ok((stats, start_unix_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A leg as media-core writes it: `slots[i]` is frame i's payload, `None` a lost frame
    /// (filled with silence, like the recorder does).
    fn leg(slots: &[Option<Vec<u8>>]) -> Vec<u8> {
        let head = OpusHead {
            channels: 1,
            pre_skip: PRE_SKIP,
            input_sample_rate: 48_000,
            output_gain: 0,
        };
        let mut w = OggOpusWriter::new(7, head, &[("CALL_ID", "t")]);
        // The recorder never starts or ends a track with silence: leading and trailing
        // losses are simply absent.
        let first = slots
            .iter()
            .position(Option::is_some)
            .unwrap_or(slots.len());
        let last = slots
            .iter()
            .rposition(Option::is_some)
            .map_or(first, |l| l + 1);
        for s in &slots[first..last] {
            match s {
                Some(p) => w.write_packet(p, 960),
                None => {
                    opus::silence_fill(960, 1, |p, n| w.write_packet(p, n));
                }
            }
        }
        w.finish();
        std::mem::take(w.output())
    }

    /// Frame `i` of a call: a CELT 20 ms TOC and bytes unique to (call, i).
    fn frame(call: u8, i: usize) -> Vec<u8> {
        let mut v = vec![0xF8, call];
        v.extend_from_slice(&(i as u32).to_le_bytes());
        v
    }

    fn slots(call: u8, n: usize, lost: impl Fn(usize) -> bool) -> Vec<Option<Vec<u8>>> {
        (0..n).map(|i| (!lost(i)).then(|| frame(call, i))).collect()
    }

    /// Reads the merged file back: (position in frames, payload) of every real packet, and
    /// the total length in frames.
    fn read_back(bytes: &[u8]) -> (Vec<(i64, Vec<u8>)>, i64) {
        let d = read_leg(Cursor::new(bytes), Leg::Primary).unwrap();
        let v = d
            .pkts
            .iter()
            .map(|p| (p.pos / 960, d.payload(p).to_vec()))
            .collect();
        (v, d.end / 960)
    }

    fn merge(
        p: &[Option<Vec<u8>>],
        p_ms: f64,
        q: &[Option<Vec<u8>>],
        q_ms: f64,
    ) -> Result<(MergeStats, f64, Vec<u8>), MergeError> {
        let mut out = Vec::new();
        let (s, start) = merge_legs(
            LegTrack {
                reader: Cursor::new(leg(p)),
                start_unix_ms: p_ms,
            },
            LegTrack {
                reader: Cursor::new(leg(q)),
                start_unix_ms: q_ms,
            },
            "call",
            "A",
            &mut out,
        )?;
        Ok((s, start, out))
    }

    /// Every real packet of the merged file is frame (pos + first) of call 1.
    fn assert_in_place(out: &[u8], first: i64) {
        let (pk, _) = read_back(out);
        for (pos, data) in pk {
            assert_eq!(data, frame(1, (pos + first) as usize), "frame at {pos}");
        }
    }

    #[test]
    fn duplicates_are_written_once() {
        let a = slots(1, 500, |_| false);
        let (s, start, out) = merge(&a, 1000.0, &a, 1800.0).unwrap();
        assert_eq!(s.frames_primary, 500);
        assert_eq!(s.frames_paired, 0);
        assert_eq!(s.frames_lost_both, 0);
        assert_eq!(s.paired_dropped, 500);
        assert_eq!(s.matched_frames, 500);
        assert!((s.offset_ms - 800.0).abs() < 1e-9);
        assert_eq!(start, 1000.0);
        let (pk, len) = read_back(&out);
        assert_eq!((pk.len(), len), (500, 500));
        assert_in_place(&out, 0);
    }

    #[test]
    fn losses_fill_from_the_other_leg_and_both_lost_is_silence() {
        let p = slots(1, 1000, |i| i % 7 == 3 || (300..500).contains(&i));
        let q = slots(1, 1000, |i| i % 11 == 3);
        let (s, _, out) = merge(&p, 0.0, &q, -650.0).unwrap();
        let both = (0..1000)
            .filter(|&i| (i % 7 == 3 || (300..500).contains(&i)) && i % 11 == 3)
            .count() as u64;
        assert_eq!(s.frames_lost_both, both);
        assert_eq!(s.frames_primary + s.frames_paired + both, 1000);
        let (pk, len) = read_back(&out);
        assert_eq!(len, 1000);
        assert_eq!(pk.len() as u64, 1000 - both);
        assert_in_place(&out, 0);
    }

    #[test]
    fn paired_earlier_than_primary_starts_the_track() {
        // The primary's first 40 frames are missing: its track starts at frame 40, 800 ms
        // later on its clock; the paired leg has them.
        let p = slots(1, 600, |i| i < 40);
        let q = slots(1, 600, |i| i == 100);
        // Primary's track starts (frame 40) at 10_800 on its clock; the paired host's clock
        // is 900 ms behind, and its track starts at frame 0.
        let (s, start, out) = merge(&p, 10_800.0, &q, 10_000.0 - 900.0).unwrap();
        assert!((start - 10_000.0).abs() < 1e-6, "start {start}");
        assert_eq!(s.frames_paired, 40);
        assert_eq!(s.frames_lost_both, 0);
        assert!((s.offset_ms + 900.0).abs() < 1e-6);
        assert_in_place(&out, 0);
        assert_eq!(read_back(&out).1, 600);
    }

    #[test]
    fn primary_earlier_and_paired_ending_later() {
        let p = slots(1, 400, |i| i >= 300);
        let q = slots(1, 400, |i| i < 20);
        let (s, start, out) = merge(&p, 5_000.0, &q, 5_000.0 + 400.0 + 950.0).unwrap();
        assert_eq!(start, 5_000.0);
        assert_eq!(s.frames_primary, 300);
        assert_eq!(s.frames_paired, 100);
        assert_in_place(&out, 0);
        assert_eq!(read_back(&out).1, 400);
    }

    #[test]
    fn a_slipping_time_line_is_followed_piecewise() {
        // The paired leg's time line slips one frame every 1000 frames (as a leg re-anchored
        // on a drifting arrival clock would): an extra silence frame is inserted.
        let n = 6000;
        let p = slots(1, n, |i| i % 13 == 5);
        let mut q = Vec::new();
        for i in 0..n {
            if i > 0 && i % 1000 == 0 {
                q.push(None);
            }
            q.push((i % 17 != 5).then(|| frame(1, i)));
        }
        let (s, _, out) = merge(&p, 0.0, &q, 300.0).unwrap();
        let both = (0..n).filter(|i| i % 13 == 5 && i % 17 == 5).count() as u64;
        assert_eq!(s.frames_lost_both, both);
        assert_eq!(s.reanchors, 5);
        assert_in_place(&out, 0);
        assert!(s.drift_ppm > 0.0);
    }

    #[test]
    fn twin_payloads_lost_crosswise_do_not_shift_the_alignment() {
        // Frames 100 and 101 are the same bytes (an encoder repeats itself); the primary
        // lost 101 and the paired leg 100, so each leg's copy looks distinctive and the
        // pair suggests a one-frame offset. It must not be taken.
        let twin = |i: usize| if i == 101 { frame(1, 100) } else { frame(1, i) };
        let p: Vec<_> = (0..300).map(|i| (i != 101).then(|| twin(i))).collect();
        let q: Vec<_> = (0..300).map(|i| (i != 100).then(|| twin(i))).collect();
        let (s, _, out) = merge(&p, 0.0, &q, 700.0).unwrap();
        assert_eq!(
            (s.reanchors, s.frames_lost_both, s.frames_paired),
            (0, 0, 1)
        );
        let (pk, _) = read_back(&out);
        assert_eq!(pk[100], (100, frame(1, 100)));
        assert_eq!(pk[101], (101, frame(1, 100)));
    }

    #[test]
    fn a_foreign_leg_is_rejected() {
        let p = slots(1, 500, |i| i % 20 == 0);
        let q = slots(2, 500, |i| i % 30 == 0);
        match merge(&p, 0.0, &q, 800.0) {
            Err(MergeError::NotSameCall { matched, compared }) => {
                assert_eq!(matched, 0);
                assert!(compared > 300, "{compared}");
            }
            other => panic!("expected NotSameCall, got {:?}", other.map(|r| r.0)),
        }
    }

    #[test]
    fn a_coarse_alignment_beyond_the_search_window_is_refused_not_misplaced() {
        // The primary has only the call's first and last 40 frames (an outage between); the
        // paired host's clock is 3.5 s (175 frames) ahead, beyond the ±2 s content search.
        // Only 40 primary frames face paired ones at the wrong place: too few for the
        // same-call test, so the wall clock alone would place, and misplace, the paired leg.
        let p = slots(1, 600, |i| (40..560).contains(&i));
        let q = slots(1, 600, |i| i % 20 == 7);
        match merge(&p, 0.0, &q, 3500.0) {
            Err(MergeError::Unaligned { contradicted }) => assert!(contradicted >= 30),
            other => panic!("expected Unaligned, got {:?}", other.map(|r| r.0)),
        }
        // Placed right (as RTCP sender reports would), the same legs merge exactly.
        let (s, _, out) = merge(&p, 0.0, &q, 0.0).unwrap();
        let both = (40..560).filter(|i| i % 20 == 7).count() as u64;
        assert_eq!(s.frames_lost_both, both);
        assert_eq!(s.frames_paired, 520 - both);
        assert_in_place(&out, 0);
    }

    #[test]
    fn a_leg_with_nothing_distinctive_is_still_placed_by_the_wall_clock() {
        // A participant who never spoke: the encoder's same frame throughout, on both legs.
        let quiet: Vec<_> = (0..300)
            .map(|i| (i % 9 != 4).then(|| frame(1, 0)))
            .collect();
        let (s, _, _) = merge(&quiet, 0.0, &quiet, 3500.0).unwrap();
        assert_eq!((s.matched_frames, s.compared_frames), (0, 0));
        assert_eq!(
            s.frames_primary + s.frames_paired + s.frames_lost_both,
            300 + 175
        );
    }

    #[test]
    fn one_empty_leg_and_both_empty() {
        let p = slots(1, 100, |_| false);
        let none: Vec<Option<Vec<u8>>> = Vec::new();
        let (s, _, out) = merge(&p, 0.0, &none, 0.0).unwrap();
        assert_eq!(s.frames_primary, 100);
        assert_in_place(&out, 0);
        let (s, start, _) = merge(&none, 0.0, &p, 500.0).unwrap();
        assert_eq!((s.frames_paired, start), (100, 500.0));
        assert!(matches!(
            merge(&none, 0.0, &none, 0.0),
            Err(MergeError::Empty)
        ));
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let mut bytes = leg(&slots(1, 100, |_| false));
        let n = bytes.len();
        bytes[n - 3] ^= 1;
        let r = merge_legs(
            LegTrack {
                reader: Cursor::new(bytes),
                start_unix_ms: 0.0,
            },
            LegTrack {
                reader: Cursor::new(leg(&slots(1, 100, |_| false))),
                start_unix_ms: 0.0,
            },
            "c",
            "p",
            Vec::new(),
        );
        assert!(matches!(
            r,
            Err(MergeError::Ogg {
                leg: Leg::Primary,
                reason: "page CRC mismatch"
            })
        ));
    }

    #[test]
    fn radix_sort_sorts_by_hash_then_position() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut v: Vec<(u64, i64, u32)> = (0..5000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Few distinct hashes, so equal keys must keep their position order.
                (x % 97 * 0x0101_0101_0101_0101, i as i64, i)
            })
            .collect();
        let mut want = v.clone();
        want.sort();
        radix_sort_by_hash(&mut v);
        assert_eq!(v, want);
        // Hashes whose high halves collide while the low halves differ.
        let mut v: Vec<(u64, i64, u32)> = (0..5000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (((x % 7) << 32) | ((x >> 7) % 5), i as i64, i)
            })
            .collect();
        let mut want = v.clone();
        want.sort();
        radix_sort_by_hash(&mut v);
        assert_eq!(v, want);
    }

    #[test]
    fn a_leg_cut_mid_page_keeps_what_came_before() {
        let full = leg(&slots(1, 200, |_| false));
        let cut = &full[..full.len() - 100];
        let d = read_leg(Cursor::new(cut), Leg::Paired).unwrap();
        // Pages of one second: the cut loses the last page (the final 50 frames or fewer).
        assert!(
            d.pkts.len() >= 150 && d.pkts.len() < 200,
            "{}",
            d.pkts.len()
        );
        assert_eq!(d.pkts[10].pos, 10 * 960);
    }

    #[test]
    fn silence_is_recognised() {
        opus::silence_fill(960 * 3, 1, |p, n| assert!(is_silence(p, n, 1)));
        assert!(!is_silence(&frame(1, 0), 960, 1));
    }
}
