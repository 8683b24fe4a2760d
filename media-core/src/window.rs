//! Cutting an Ogg Opus recording to a time window without re-encoding: a meeting
//! participant's recording from their join to their leave.
//!
//! Opus packets are copied as they are. The cut starts [`PRE_ROLL_48K`] before the window
//! (RFC 7845 section 4.6: a decoder needs about 80 ms to converge after a seek) and the new
//! `OpusHead` pre-skip discards that pre-roll plus the part of the first packet before the
//! window, so playback starts at the window's first sample. The end is cut at the packet that
//! holds the window's last sample, and the last page's granule position trims the rest
//! (end trimming, RFC 7845 section 4.5), so the file's duration is the window's to the sample.

use std::io::Cursor;

use crate::ogg::{OggOpusWriter, OpusHead};
use crate::opus;

/// Decoder pre-roll kept before the window: 80 ms at 48 kHz.
pub const PRE_ROLL_48K: u64 = 3_840;

/// Why a stream could not be cut.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// Not an Ogg Opus stream we can read.
    #[error("not an Ogg Opus stream: {0}")]
    NotOpus(&'static str),
    /// The Ogg framing is broken.
    #[error("corrupt Ogg stream: {0}")]
    Corrupt(String),
    /// `end` before `start`.
    #[error("empty or reversed window {start}..{end}")]
    BadWindow {
        /// Window start, 48 kHz samples of playback time.
        start: u64,
        /// Window end.
        end: u64,
    },
}

/// What [`cut`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// The new Ogg Opus stream.
    pub ogg: Vec<u8>,
    /// Playback samples (48 kHz) in it: the window clipped to the recording.
    pub samples_48k: u64,
    /// Audio packets copied (pre-roll included).
    pub packets: usize,
}

/// Cuts `input` to playback time `[start, end)` (48 kHz samples from the recording's first
/// playable sample, i.e. after its pre-skip). A window past the recording's end yields a
/// stream with headers only; a window reaching past it is clipped.
pub fn cut(input: &[u8], start: u64, end: u64) -> Result<Cut, WindowError> {
    if end <= start {
        return Err(WindowError::BadWindow { start, end });
    }
    let mut reader = ogg::PacketReader::new(Cursor::new(input));
    let corrupt = |e: ogg::OggReadError| WindowError::Corrupt(e.to_string());
    let head_pkt = reader
        .read_packet()
        .map_err(corrupt)?
        .ok_or(WindowError::NotOpus("empty stream"))?;
    let serial = head_pkt.stream_serial();
    let head = parse_head(&head_pkt.data)?;
    let tags = reader
        .read_packet()
        .map_err(corrupt)?
        .ok_or(WindowError::NotOpus("no OpusTags"))?;
    let comments = parse_tags(&tags.data)?;

    // Every audio packet with its duration; the page granules give the stream's start offset
    // (a stream may start at a granule above the sum of its first page's packets).
    let mut packets: Vec<(Vec<u8>, u64)> = Vec::new();
    let mut first_page: Option<(u64, u64)> = None; // (granule, samples on the page)
    let mut samples_on_page = 0u64;
    while let Some(p) = reader.read_packet().map_err(corrupt)? {
        if p.stream_serial() != serial {
            continue; // another logical stream (chained or multiplexed): not ours
        }
        let n = u64::from(
            opus::packet_samples_48k(&p.data).map_err(|_| WindowError::NotOpus("bad packet"))?,
        );
        samples_on_page += n;
        if p.last_in_page() {
            if first_page.is_none() {
                first_page = Some((p.absgp_page(), samples_on_page));
            }
            samples_on_page = 0;
        }
        packets.push((p.data, n));
    }
    let offset = first_page.map_or(0, |(g, n)| g.saturating_sub(n));
    // A granule near u64::MAX is legal on the wire but leaves no room for the stream's own
    // samples; such a file was not written by an encoder.
    let total: u64 = packets.iter().map(|(_, n)| n).sum();
    if offset.checked_add(total).is_none() {
        return Err(WindowError::Corrupt(
            "granule position leaves no room for the stream's samples".into(),
        ));
    }

    // Decoder positions: playback sample s is decoder sample s + pre_skip.
    let pre_skip = u64::from(head.pre_skip);
    let (from, to) = (start.saturating_add(pre_skip), end.saturating_add(pre_skip));
    let mut at = offset;
    let mut first = None;
    let mut last = None;
    for (i, (_, n)) in packets.iter().enumerate() {
        if first.is_none() && at + n > from {
            first = Some(i);
        }
        if at < to {
            last = Some(i);
        }
        at += n;
    }
    let stream_end = at;

    let mut out_head = head;
    let (copied, samples) = match (first, last) {
        (Some(f), Some(l)) if f <= l => {
            // Back up whole packets until the pre-roll is covered (or the stream starts).
            let target = from.saturating_sub(PRE_ROLL_48K);
            let mut p0 = f;
            let mut p0_at = offset + packets[..f].iter().map(|(_, n)| n).sum::<u64>();
            while p0 > 0 && p0_at > target {
                p0 -= 1;
                p0_at -= packets[p0].1;
            }
            let skip = from.saturating_sub(p0_at);
            out_head.pre_skip = u16::try_from(skip)
                .map_err(|_| WindowError::Corrupt("pre-roll exceeds a u16 pre-skip".into()))?;
            let playable = to.min(stream_end).saturating_sub(from.max(offset));
            (p0..l + 1, playable)
        }
        _ => {
            out_head.pre_skip = head.pre_skip;
            (0..0, 0)
        }
    };

    let start_ms = (start / 48).to_string();
    let end_ms = (start.saturating_add(samples) / 48).to_string();
    let mut tags_out: Vec<(&str, &str)> = comments
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .filter(|(k, _)| !k.eq_ignore_ascii_case("WINDOW_START_MS"))
        .filter(|(k, _)| !k.eq_ignore_ascii_case("WINDOW_END_MS"))
        .collect();
    tags_out.push(("WINDOW_START_MS", &start_ms));
    tags_out.push(("WINDOW_END_MS", &end_ms));
    let mut w = OggOpusWriter::new(serial, out_head, &tags_out);
    let count = copied.len();
    for (data, n) in &packets[copied] {
        w.write_packet(data, *n as u32);
    }
    let total = u64::from(out_head.pre_skip) + samples;
    w.finish_at(total);
    Ok(Cut {
        ogg: std::mem::take(w.output()),
        samples_48k: samples,
        packets: count,
    })
}

/// Fuzzing entry point: the first 8 bytes choose the window, the rest is the stream; must
/// never panic, and a cut it returns must itself cut again.
#[doc(hidden)]
pub fn fuzz_cut(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let start = u64::from(u32::from_le_bytes([data[0], data[1], data[2], data[3]]));
    let len = u64::from(u32::from_le_bytes([data[4], data[5], data[6], data[7]]));
    if let Ok(c) = cut(&data[8..], start, start + len.max(1)) {
        cut(&c.ogg, 0, c.samples_48k.max(1)).expect("a cut re-cuts");
    }
}

fn parse_head(p: &[u8]) -> Result<OpusHead, WindowError> {
    if p.len() < 19 || &p[..8] != b"OpusHead" {
        return Err(WindowError::NotOpus("no OpusHead"));
    }
    if p[8] >> 4 != 0 {
        return Err(WindowError::NotOpus("unsupported OpusHead version"));
    }
    if p[18] != 0 || !(1..=2).contains(&p[9]) {
        return Err(WindowError::NotOpus(
            "only mono and stereo (mapping family 0)",
        ));
    }
    Ok(OpusHead {
        channels: p[9],
        pre_skip: u16::from_le_bytes([p[10], p[11]]),
        input_sample_rate: u32::from_le_bytes([p[12], p[13], p[14], p[15]]),
        output_gain: i16::from_le_bytes([p[16], p[17]]),
    })
}

/// The user comments of an OpusTags packet as `(key, value)`; malformed ones are dropped.
fn parse_tags(p: &[u8]) -> Result<Vec<(String, String)>, WindowError> {
    if p.len() < 16 || &p[..8] != b"OpusTags" {
        return Err(WindowError::NotOpus("no OpusTags"));
    }
    let u32_at = |i: usize| -> Option<usize> {
        p.get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let mut i = 8;
    let vendor = u32_at(i).ok_or(WindowError::NotOpus("short OpusTags"))?;
    i = i.saturating_add(4).saturating_add(vendor);
    let Some(count) = u32_at(i) else {
        return Ok(Vec::new());
    };
    i += 4;
    let mut out = Vec::new();
    for _ in 0..count.min(1024) {
        let Some(len) = u32_at(i) else { break };
        let Some(c) = p.get(i + 4..(i + 4).saturating_add(len)) else {
            break;
        };
        i += 4 + len;
        if let Some((k, v)) = std::str::from_utf8(c).ok().and_then(|s| s.split_once('=')) {
            out.push((k.to_string(), v.to_string()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use audiopus::coder::{Decoder, Encoder};
    use audiopus::{Application, Channels, SampleRate};

    /// A mono stream of `n` 20 ms packets of a tone whose frequency encodes the packet index,
    /// so a decoded sample says where it came from.
    fn tone_stream(n: usize) -> Vec<u8> {
        let enc = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Audio).unwrap();
        let mut w = OggOpusWriter::new(
            7,
            OpusHead {
                channels: 1,
                pre_skip: 312,
                input_sample_rate: 48_000,
                output_gain: 0,
            },
            &[("CALL_ID", "c1")],
        );
        let mut out = [0u8; 4000];
        for i in 0..n {
            let pcm: Vec<i16> = (0..960)
                .map(|k| {
                    let t = (i * 960 + k) as f32 / 48_000.0;
                    (8000.0 * (t * 440.0 * std::f32::consts::TAU).sin()) as i16
                })
                .collect();
            let len = enc.encode(&pcm, &mut out).unwrap();
            w.write_packet(&out[..len], 960);
        }
        w.finish();
        std::mem::take(w.output())
    }

    /// Decoded playback length (granule of the last page minus pre-skip) and the packets'
    /// decoded total.
    fn playback(ogg: &[u8]) -> (u64, u64, OpusHead) {
        let mut r = ogg::PacketReader::new(Cursor::new(ogg));
        let head = parse_head(&r.read_packet().unwrap().unwrap().data).unwrap();
        r.read_packet().unwrap().unwrap();
        let mut dec = Decoder::new(SampleRate::Hz48000, Channels::Mono).unwrap();
        let mut pcm = vec![0i16; 5760];
        let (mut decoded, mut granule) = (0u64, 0u64);
        while let Some(p) = r.read_packet().unwrap() {
            decoded += dec.decode(Some(&p.data[..]), &mut pcm[..], false).unwrap() as u64;
            granule = p.absgp_page();
        }
        (granule - u64::from(head.pre_skip), decoded, head)
    }

    #[test]
    fn a_window_keeps_its_exact_length_and_pre_roll() {
        let full = tone_stream(250); // 5 s
                                     // 1.234 s .. 3.5 s
        let (s, e) = (59_232, 168_000);
        let c = cut(&full, s, e).unwrap();
        assert_eq!(c.samples_48k, e - s);
        let (len, decoded, head) = playback(&c.ogg);
        assert_eq!(len, e - s, "granule - pre-skip is the window");
        assert!(decoded >= len + u64::from(head.pre_skip));
        assert!(u64::from(head.pre_skip) >= PRE_ROLL_48K);
        // 80 ms pre-roll + the part of the first packet before the window.
        assert_eq!(
            u64::from(head.pre_skip),
            (s + 312) - ((s + 312) / 960 - 4) * 960
        );
    }

    #[test]
    fn windows_at_the_edges_are_clipped() {
        let full = tone_stream(100); // 2 s = 96 000 samples
        let c = cut(&full, 0, 48_000).unwrap();
        assert_eq!(playback(&c.ogg).0, 48_000);
        assert_eq!(
            playback(&c.ogg).2.pre_skip,
            312,
            "no pre-roll before the start"
        );
        let c = cut(&full, 90_000, 1_000_000).unwrap();
        assert_eq!(c.samples_48k, 96_000 - 312 - 90_000);
        let c = cut(&full, 500_000, 600_000).unwrap();
        assert_eq!((c.samples_48k, c.packets), (0, 0));
        assert!(matches!(
            cut(&full, 5, 5),
            Err(WindowError::BadWindow { .. })
        ));
    }

    #[test]
    fn comments_are_kept_and_the_window_is_named() {
        let c = cut(&tone_stream(50), 9_600, 19_200).unwrap();
        let mut r = ogg::PacketReader::new(Cursor::new(&c.ogg[..]));
        r.read_packet().unwrap();
        let tags = parse_tags(&r.read_packet().unwrap().unwrap().data).unwrap();
        assert!(tags.contains(&("CALL_ID".into(), "c1".into())));
        assert!(tags.contains(&("WINDOW_START_MS".into(), "200".into())));
        assert!(tags.contains(&("WINDOW_END_MS".into(), "400".into())));
    }

    #[test]
    fn opusinfo_accepts_a_cut() {
        let c = cut(&tone_stream(150), 30_000, 100_000).unwrap();
        let path =
            std::env::temp_dir().join(format!("media-core-window-{}.opus", std::process::id()));
        std::fs::write(&path, &c.ogg).unwrap();
        let out = std::process::Command::new("opusinfo").arg(&path).output();
        let _ = std::fs::remove_file(&path);
        let Ok(out) = out else {
            println!("opusinfo not installed; skipped");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(!text.to_lowercase().contains("warning"), "{text}");
        assert!(text.contains("Playback length: 0m:01.458s"), "{text}");
    }

    /// A first page whose granule is near u64::MAX (found by the `ogg_window` fuzz target).
    #[test]
    fn a_granule_at_the_end_of_time_is_an_error_not_an_overflow() {
        let full = tone_stream(3);
        let mut r = ogg::PacketReader::new(Cursor::new(&full[..]));
        let mut out = Vec::new();
        let mut w = ogg::PacketWriter::new(&mut out);
        // One packet per page, every audio page claiming the same late granule: the later
        // pages' samples run past u64::MAX.
        while let Some(p) = r.read_packet().unwrap() {
            let gp = if p.absgp_page() > 0 {
                u64::MAX - 500
            } else {
                0
            };
            w.write_packet(p.data, 7, ogg::PacketWriteEndInfo::EndPage, gp)
                .unwrap();
        }
        drop(w);
        assert!(matches!(cut(&out, 0, 10), Err(WindowError::Corrupt(_))));
        assert!(cut(&full, u64::MAX - 10, u64::MAX).is_ok());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(cut(b"not ogg at all", 0, 10).is_err());
        let mut full = tone_stream(10);
        full.truncate(60);
        assert!(cut(&full, 0, 10).is_err());
    }
}
