//! The little SDP reading WHIP needs around the WebRTC stack: a sanity check of the offer that
//! turns the commonest mistakes into a clear 400 reason (the stack's own parse errors are terse),
//! and the negotiated codecs and audio-level extension id read back from our answer.

use std::collections::HashMap;

/// The `a=extmap` URI of the client-to-mixer audio level (RFC 6464).
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// One `m=` section, as much of it as WHIP cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// `audio`, `video`, `application`, ...
    pub kind: String,
    /// The m-line port; 0 means the section is rejected.
    pub port: u16,
    /// Payload type -> `encoding/clock[/channels]` from `a=rtpmap`.
    pub rtpmap: HashMap<u8, String>,
    /// Extension id -> URI from `a=extmap`.
    pub extmap: HashMap<u8, String>,
    /// `sendrecv` (the default), `sendonly`, `recvonly` or `inactive`.
    pub direction: String,
}

impl MediaSection {
    /// The payload types whose rtpmap names Opus at 48 kHz (RFC 7587 always says `opus/48000/2`).
    pub fn opus_payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.rtpmap.iter().filter_map(|(pt, enc)| {
            let mut parts = enc.split('/');
            let name = parts.next()?;
            let clock = parts.next()?;
            (name.eq_ignore_ascii_case("opus") && clock == "48000").then_some(*pt)
        })
    }

    /// The id negotiated for RFC 6464 audio levels in this section, if any.
    pub fn audio_level_id(&self) -> Option<u8> {
        self.extmap
            .iter()
            .find(|(_, uri)| uri.as_str() == AUDIO_LEVEL_URI)
            .map(|(id, _)| *id)
    }
}

/// Splits an SDP into its media sections. Errors name what is missing, for the 400 body.
pub fn parse_media_sections(sdp: &str) -> Result<Vec<MediaSection>, String> {
    let mut lines = sdp.lines().map(|l| l.trim_end_matches('\r'));
    match lines.next() {
        Some("v=0") => {}
        _ => return Err("not an SDP description: the first line must be v=0".into()),
    }
    let mut sections: Vec<MediaSection> = Vec::new();
    let mut session_direction: Option<String> = None;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("malformed SDP line {line:?}"));
        };
        if key.len() != 1 {
            return Err(format!("malformed SDP line {line:?}"));
        }
        match key {
            "m" => {
                let mut fields = value.split_ascii_whitespace();
                let kind = fields.next().unwrap_or_default().to_owned();
                let port = fields
                    .next()
                    .and_then(|p| p.split('/').next())
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or_else(|| format!("m-line without a valid port: {line:?}"))?;
                if fields.next().is_none() {
                    return Err(format!("m-line without a protocol: {line:?}"));
                }
                sections.push(MediaSection {
                    kind,
                    port,
                    rtpmap: HashMap::new(),
                    extmap: HashMap::new(),
                    direction: session_direction
                        .clone()
                        .unwrap_or_else(|| "sendrecv".into()),
                });
            }
            "a" => {
                let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                let direction = matches!(name, "sendrecv" | "sendonly" | "recvonly" | "inactive");
                match sections.last_mut() {
                    None if direction => session_direction = Some(name.to_owned()),
                    None => {}
                    Some(section) if direction => section.direction = name.to_owned(),
                    Some(section) => match name {
                        "rtpmap" => {
                            if let Some((pt, enc)) = arg.split_once(' ') {
                                if let Ok(pt) = pt.parse::<u8>() {
                                    section.rtpmap.insert(pt, enc.trim().to_owned());
                                }
                            }
                        }
                        "extmap" => {
                            let mut fields = arg.split_ascii_whitespace();
                            // `id[/direction] uri [attributes]`
                            let id = fields
                                .next()
                                .and_then(|id| id.split('/').next())
                                .and_then(|id| id.parse::<u8>().ok());
                            if let (Some(id), Some(uri)) = (id, fields.next()) {
                                section.extmap.insert(id, uri.to_owned());
                            }
                        }
                        _ => {}
                    },
                }
            }
            _ => {}
        }
    }
    Ok(sections)
}

/// Checks that an offer can give us audio: at least one live audio section that sends and
/// offers Opus. Video or data sections are allowed; the answer rejects them.
pub fn check_offer(sdp: &str) -> Result<(), String> {
    let sections = parse_media_sections(sdp)?;
    if sections.is_empty() {
        return Err("the offer has no m= section".into());
    }
    let audio: Vec<&MediaSection> = sections.iter().filter(|s| s.kind == "audio").collect();
    if audio.is_empty() {
        return Err("the offer has no audio m= section; WHIP ingest here takes audio only".into());
    }
    let sending: Vec<&&MediaSection> = audio
        .iter()
        .filter(|s| s.port != 0 && matches!(s.direction.as_str(), "sendonly" | "sendrecv"))
        .collect();
    if sending.is_empty() {
        return Err("no audio m= section sends (all are rejected, recvonly or inactive)".into());
    }
    if !sending
        .iter()
        .any(|s| s.opus_payload_types().next().is_some())
    {
        return Err("no audio m= section offers Opus (a=rtpmap:<pt> opus/48000/2)".into());
    }
    Ok(())
}

/// What our answer settled: the audio payload types with their codecs, and the audio-level
/// extension id. With BUNDLE every section shares one id space, so one map serves all tracks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerAudio {
    /// Payload type -> `encoding/clock[/channels]`.
    pub codecs: HashMap<u8, String>,
    /// The RFC 6464 extension id, when the offer had it and we accepted it.
    pub audio_level_id: Option<u8>,
}

/// Reads the live audio sections of an answer.
pub fn answer_audio(sdp: &str) -> Result<AnswerAudio, String> {
    let mut out = AnswerAudio::default();
    for section in parse_media_sections(sdp)? {
        if section.kind != "audio" || section.port == 0 {
            continue;
        }
        out.audio_level_id = out.audio_level_id.or(section.audio_level_id());
        out.codecs.extend(section.rtpmap);
    }
    Ok(out)
}

/// Fuzz entry (fuzz/fuzz_targets/whip_sdp.rs): a WHIP offer body as a browser or an attacker
/// sends it, through every reader here. Must never panic.
pub fn fuzz_whip_sdp(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_media_sections(text);
    let _ = check_offer(text);
    let _ = answer_audio(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
        a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
        a=extmap:3/sendonly http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
        a=sendonly\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\n\
        a=rtpmap:96 VP8/90000\r\n";

    #[test]
    fn reads_sections_codecs_and_extensions() {
        let sections = parse_media_sections(OFFER).unwrap();
        assert_eq!(sections.len(), 2);
        let audio = &sections[0];
        assert_eq!(audio.kind, "audio");
        assert_eq!(audio.direction, "sendonly");
        assert_eq!(audio.opus_payload_types().collect::<Vec<_>>(), vec![111]);
        assert_eq!(audio.audio_level_id(), Some(1));
        assert_eq!(audio.extmap.len(), 2);
        assert_eq!(sections[1].kind, "video");
        assert_eq!(sections[1].opus_payload_types().count(), 0);
        check_offer(OFFER).unwrap();
    }

    #[test]
    fn rejects_offers_without_usable_opus_audio() {
        assert!(check_offer("hello").unwrap_err().contains("v=0"));
        assert!(check_offer("v=0\r\ns=-\r\n").unwrap_err().contains("no m="));
        let video_only = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
        assert!(check_offer(video_only).unwrap_err().contains("no audio"));
        let pcmu = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n";
        assert!(check_offer(pcmu).unwrap_err().contains("Opus"));
        let recvonly = OFFER.replacen("a=sendonly", "a=recvonly", 1);
        assert!(check_offer(&recvonly).unwrap_err().contains("sends"));
        let rejected = OFFER.replacen("m=audio 9", "m=audio 0", 1);
        assert!(check_offer(&rejected).unwrap_err().contains("sends"));
        assert!(check_offer("v=0\r\nm=audio\r\n")
            .unwrap_err()
            .contains("port"));
        assert!(check_offer("v=0\r\ngarbage\r\n")
            .unwrap_err()
            .contains("malformed"));
    }

    #[test]
    fn session_level_direction_applies_to_sections() {
        let sdp = "v=0\r\na=inactive\r\nm=audio 9 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert_eq!(parse_media_sections(sdp).unwrap()[0].direction, "inactive");
    }

    #[test]
    fn answer_skips_rejected_sections() {
        let answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
            a=extmap:4 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
            m=video 0 UDP/TLS/RTP/SAVPF 0\r\n";
        let audio = answer_audio(answer).unwrap();
        assert_eq!(audio.audio_level_id, Some(4));
        assert_eq!(
            audio.codecs.get(&111).map(String::as_str),
            Some("opus/48000/2")
        );
        assert_eq!(audio.codecs.len(), 1);
    }
}
