//! The forwarder's SDP offer and the bot's answer (RFC 4566 / 3264), as far as a receive-only
//! recorder needs them: where the media comes from, how it is keyed (SDES, RFC 4568), which
//! payload types carry which codec, and where the RFC 6464 audio level sits.
//!
//! Only the first `m=audio` section counts; other media sections are ignored. Anything that
//! would make the recording silently wrong (a keyed profile without keys, keys on a plain
//! profile, DTLS-SRTP, a rejected stream) is an error, not a guess.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use base64::Engine;
use media_core::sdes::{self, SdesError};
use media_core::srtp::{SrtpKeyMaterial, SrtpProfile};
use media_core::transcode::AudioFormat;
use rand::RngCore;

/// Largest offer accepted; real audio offers are a few hundred bytes.
pub const MAX_SDP_LEN: usize = 64 * 1024;

/// The RFC 8285 extension URI of the RFC 6464 client-to-mixer audio level.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// What a payload type carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Codec {
    /// Opus (`opus/48000/2`): remuxed bit-exact.
    Opus,
    /// A format media-core transcodes to Opus (L16, PCMU, PCMA).
    Transcoded(AudioFormat),
    /// Anything else (telephone-event, CN, G.722, ...), by its rtpmap encoding name; packets
    /// of these types are counted apart by media-core, not recorded.
    Other(String),
}

impl Codec {
    /// Whether audio of this codec can be recorded.
    pub fn is_audio(&self) -> bool {
        !matches!(self, Codec::Other(_))
    }
}

/// Media direction attribute (RFC 3264 section 6.1), from the offerer's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv` (also the default).
    SendRecv,
    /// `a=sendonly`: the forwarder only sends, the normal case.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// Whether the offerer will send media.
    pub fn offerer_sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

/// The parsed offer.
#[derive(Debug, Clone)]
pub struct MediaOffer {
    /// Where the forwarder sends from (`c=` address and `m=` port).
    pub remote: SocketAddr,
    /// The SDES key the forwarder encrypts with; `None` for plain RTP.
    pub srtp: Option<SrtpKeyMaterial>,
    /// The `a=crypto` tag of the chosen key, echoed by the answer.
    pub crypto_tag: Option<u32>,
    /// The transport protocol (`RTP/AVP`, `RTP/SAVP`, `RTP/AVPF`, `RTP/SAVPF`).
    pub protocol: String,
    /// Payload types in the order of the `m=` line, with their codecs.
    pub formats: Vec<(u8, Codec)>,
    /// RFC 8285 id of the RFC 6464 audio level extension, if offered.
    pub audio_level_id: Option<u8>,
    /// The offerer's direction.
    pub direction: Direction,
    /// Whether RTCP is offered on the RTP port (`a=rtcp-mux`).
    pub rtcp_mux: bool,
}

impl MediaOffer {
    /// The codec of payload type `pt`, if offered.
    pub fn codec(&self, pt: u8) -> Option<&Codec> {
        self.formats.iter().find(|(p, _)| *p == pt).map(|(_, c)| c)
    }

    /// The first recordable format: payload type and, for non-Opus audio, the format to
    /// transcode from.
    pub fn primary_format(&self) -> Option<(u8, Option<AudioFormat>)> {
        self.formats.iter().find_map(|(pt, c)| match c {
            Codec::Opus => Some((*pt, None)),
            Codec::Transcoded(f) => Some((*pt, Some(*f))),
            Codec::Other(_) => None,
        })
    }
}

/// Why an offer cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    /// Larger than [`MAX_SDP_LEN`].
    #[error("SDP offer too large ({0} bytes)")]
    TooLarge(usize),
    /// Not UTF-8 text.
    #[error("SDP offer is not UTF-8 text")]
    NotText,
    /// A line that is not `<letter>=<value>`, or a field that does not parse.
    #[error("malformed SDP line {line:?}: {reason}")]
    Malformed {
        /// The offending line.
        line: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No `m=audio` section.
    #[error("SDP offer has no m=audio section")]
    NoAudio,
    /// Port 0: the offerer disabled the stream.
    #[error("the audio stream is disabled (port 0)")]
    StreamDisabled,
    /// No `c=` at session or media level.
    #[error("SDP offer has no connection address (c=)")]
    NoConnection,
    /// A transport the bot does not take over plain UDP (e.g. DTLS-SRTP, which goes to WHIP).
    #[error("unsupported transport protocol {0:?} (expected RTP/AVP or RTP/SAVP)")]
    UnsupportedProtocol(String),
    /// `RTP/SAVP` without a usable `a=crypto` line.
    #[error("RTP/SAVP offer carries no SDES key (a=crypto): cannot decrypt its media")]
    MissingKeys,
    /// Every `a=crypto` line was refused; the first refusal is kept.
    #[error("no usable a=crypto line: {0}")]
    BadCrypto(#[source] SdesError),
    /// Keys on an unencrypted profile: the sender's intent is unclear.
    #[error("a=crypto on plain {0}: offer RTP/SAVP for SRTP")]
    CryptoOnPlainProfile(String),
    /// No payload type the recorder can record.
    #[error("no recordable audio format offered (opus, L16, PCMU, PCMA)")]
    NoUsableFormat,
}

/// Parses the forwarder's offer.
pub fn parse_offer(sdp: &str) -> Result<MediaOffer, OfferError> {
    if sdp.len() > MAX_SDP_LEN {
        return Err(OfferError::TooLarge(sdp.len()));
    }
    #[derive(PartialEq)]
    enum Section {
        Session,
        Audio,
        Other,
    }
    let mut section = Section::Session;
    let mut seen_audio = false;
    let mut session_addr: Option<IpAddr> = None;
    let mut media_addr: Option<IpAddr> = None;
    let mut port: u16 = 0;
    let mut protocol = String::new();
    let mut pts: Vec<u8> = Vec::new();
    let mut rtpmaps: Vec<(u8, String, u32, u8)> = Vec::new();
    let mut crypto: Option<(u32, SrtpKeyMaterial)> = None;
    let mut crypto_lines = 0usize;
    let mut crypto_error: Option<SdesError> = None;
    let mut audio_level_id = None;
    let mut session_direction = None;
    let mut direction = None;
    let mut rtcp_mux = false;

    for raw in sdp.lines() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let malformed = |reason| OfferError::Malformed {
            line: truncate(line),
            reason,
        };
        let (kind, value) = match line.split_once('=') {
            Some((k, v)) if k.len() == 1 => (k, v),
            _ => return Err(malformed("expected <type>=<value>")),
        };
        match kind {
            "m" => {
                if section == Section::Audio || seen_audio {
                    section = Section::Other;
                    continue;
                }
                let mut f = value.split_ascii_whitespace();
                let media = f.next().ok_or_else(|| malformed("empty m= line"))?;
                if media != "audio" {
                    section = Section::Other;
                    continue;
                }
                section = Section::Audio;
                seen_audio = true;
                let p = f.next().ok_or_else(|| malformed("m= line without port"))?;
                // "port/count" is legal; the count is irrelevant for one stream.
                let p = p.split('/').next().unwrap_or(p);
                port = p.parse().map_err(|_| malformed("bad port"))?;
                protocol = f
                    .next()
                    .ok_or_else(|| malformed("m= line without protocol"))?
                    .to_string();
                for fmt in f {
                    let pt: u8 = fmt.parse().map_err(|_| malformed("bad payload type"))?;
                    if pt > 127 {
                        return Err(malformed("payload type above 127"));
                    }
                    pts.push(pt);
                }
                if pts.is_empty() {
                    return Err(malformed("m= line without payload types"));
                }
            }
            "c" => {
                let mut f = value.split_ascii_whitespace();
                let (Some("IN"), Some(family), Some(addr)) = (f.next(), f.next(), f.next()) else {
                    return Err(malformed("expected c=IN IP4|IP6 <address>"));
                };
                // Multicast TTL / count suffixes: "224.2.1.1/127".
                let addr = addr.split('/').next().unwrap_or(addr);
                let ip: IpAddr = addr.parse().map_err(|_| malformed("bad address"))?;
                match (family, ip) {
                    ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => {}
                    _ => return Err(malformed("address does not match its family")),
                }
                match section {
                    Section::Session => session_addr = Some(ip),
                    Section::Audio => media_addr = Some(ip),
                    Section::Other => {}
                }
            }
            "a" => {
                if section == Section::Other {
                    continue;
                }
                let (name, arg) = match value.split_once(':') {
                    Some((n, a)) => (n, Some(a)),
                    None => (value, None),
                };
                let dir = match name {
                    "sendrecv" => Some(Direction::SendRecv),
                    "sendonly" => Some(Direction::SendOnly),
                    "recvonly" => Some(Direction::RecvOnly),
                    "inactive" => Some(Direction::Inactive),
                    _ => None,
                };
                if let Some(d) = dir {
                    match section {
                        Section::Session => session_direction = Some(d),
                        _ => direction = Some(d),
                    }
                    continue;
                }
                if section != Section::Audio {
                    continue;
                }
                match (name, arg) {
                    ("rtcp-mux", _) => rtcp_mux = true,
                    ("rtpmap", Some(arg)) => {
                        let (pt, enc) = arg
                            .split_once(' ')
                            .ok_or_else(|| malformed("rtpmap without encoding"))?;
                        let pt: u8 = pt
                            .parse()
                            .map_err(|_| malformed("bad rtpmap payload type"))?;
                        let mut e = enc.trim().split('/');
                        let name = e.next().unwrap_or_default().to_string();
                        let rate: u32 = e
                            .next()
                            .ok_or_else(|| malformed("rtpmap without clock rate"))?
                            .parse()
                            .map_err(|_| malformed("bad rtpmap clock rate"))?;
                        let channels: u8 = match e.next() {
                            Some(c) => c.parse().map_err(|_| malformed("bad rtpmap channels"))?,
                            None => 1,
                        };
                        if name.is_empty() || rate == 0 || channels == 0 {
                            return Err(malformed("bad rtpmap"));
                        }
                        rtpmaps.push((pt, name, rate, channels));
                    }
                    ("crypto", Some(_)) => {
                        crypto_lines += 1;
                        if crypto.is_none() {
                            match sdes::parse_crypto_attribute(value) {
                                Ok(c) => crypto = Some((c.tag, c.key)),
                                Err(e) => {
                                    crypto_error.get_or_insert(e);
                                }
                            }
                        }
                    }
                    ("extmap", Some(arg)) => {
                        let mut f = arg.split_ascii_whitespace();
                        let (Some(id), Some(uri)) = (f.next(), f.next()) else {
                            return Err(malformed("extmap without id and URI"));
                        };
                        if uri == AUDIO_LEVEL_URI {
                            // "id/direction" is legal.
                            let id = id.split('/').next().unwrap_or(id);
                            let id: u8 = id.parse().map_err(|_| malformed("bad extmap id"))?;
                            // One-byte headers take 1..=14; two-byte 1..=255.
                            if id == 0 {
                                return Err(malformed("extmap id 0"));
                            }
                            audio_level_id = Some(id);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    if !seen_audio {
        return Err(OfferError::NoAudio);
    }
    if port == 0 {
        return Err(OfferError::StreamDisabled);
    }
    let ip = media_addr
        .or(session_addr)
        .ok_or(OfferError::NoConnection)?;
    let secure = match protocol.as_str() {
        "RTP/SAVP" | "RTP/SAVPF" => true,
        "RTP/AVP" | "RTP/AVPF" => false,
        _ => return Err(OfferError::UnsupportedProtocol(protocol)),
    };
    let (crypto_tag, srtp) = match (secure, crypto) {
        (true, Some((tag, key))) => (Some(tag), Some(key)),
        (true, None) => {
            return Err(match crypto_error {
                Some(e) => OfferError::BadCrypto(e),
                None => OfferError::MissingKeys,
            })
        }
        (false, _) if crypto_lines > 0 => return Err(OfferError::CryptoOnPlainProfile(protocol)),
        (false, _) => (None, None),
    };
    let formats: Vec<(u8, Codec)> = pts
        .iter()
        .map(|&pt| {
            let codec = match rtpmaps.iter().find(|(p, ..)| *p == pt) {
                Some((_, name, rate, ch)) => {
                    if name.eq_ignore_ascii_case("opus") {
                        Codec::Opus
                    } else {
                        match AudioFormat::from_rtpmap(name, *rate, *ch) {
                            Some(AudioFormat::L16 { rate, channels })
                                if rate == 0
                                    || rate > media_core::transcode::MAX_L16_RATE
                                    || channels > 2 =>
                            {
                                Codec::Other(name.clone())
                            }
                            Some(f) => Codec::Transcoded(f),
                            None => Codec::Other(name.clone()),
                        }
                    }
                }
                None => match AudioFormat::from_static_payload_type(pt) {
                    Some(f) => Codec::Transcoded(f),
                    None => Codec::Other(format!("pt{pt}")),
                },
            };
            (pt, codec)
        })
        .collect();
    let offer = MediaOffer {
        remote: SocketAddr::new(ip, port),
        srtp,
        crypto_tag,
        protocol,
        formats,
        audio_level_id,
        direction: direction
            .or(session_direction)
            .unwrap_or(Direction::SendRecv),
        rtcp_mux,
    };
    if offer.primary_format().is_none() {
        return Err(OfferError::NoUsableFormat);
    }
    Ok(offer)
}

/// Parses an offer from bytes (e.g. an HTTP body).
pub fn parse_offer_bytes(sdp: &[u8]) -> Result<MediaOffer, OfferError> {
    if sdp.len() > MAX_SDP_LEN {
        return Err(OfferError::TooLarge(sdp.len()));
    }
    parse_offer(std::str::from_utf8(sdp).map_err(|_| OfferError::NotText)?)
}

/// The SDP answer: the bot's media address, the offer's payload types, `a=recvonly` when
/// `recv` and the offerer sends, else `a=inactive`.
///
/// RFC 4568 section 7.1.3 makes an accepted `RTP/SAVP` stream carry one `a=crypto` line in the
/// answer, with the offer's tag and suite and the answerer's own key. The bot never sends, so
/// that key protects nothing; it is freshly random so no two answers share one.
pub fn answer_sdp(offer: &MediaOffer, local: SocketAddr, recv: bool) -> String {
    let (family, ip) = match local.ip() {
        IpAddr::V4(v4) => ("IP4", v4.to_string()),
        IpAddr::V6(v6) => ("IP6", v6.to_string()),
    };
    let mut id_bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut id_bytes);
    // SDP session ids are decimal and should fit a signed 64-bit integer (RFC 4566 5.2).
    let session_id = u64::from_be_bytes(id_bytes) >> 2;
    let mut s = String::with_capacity(512);
    let _ = write!(
        s,
        "v=0\r\no=bot-host {session_id} 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\n"
    );
    let _ = write!(s, "m=audio {} {}", local.port(), offer.protocol);
    for (pt, _) in &offer.formats {
        let _ = write!(s, " {pt}");
    }
    s.push_str("\r\n");
    for (pt, codec) in &offer.formats {
        let map = match codec {
            Codec::Opus => "opus/48000/2".to_string(),
            Codec::Transcoded(f) => match f {
                AudioFormat::L16 { rate, channels } if *channels > 1 => {
                    format!("L16/{rate}/{channels}")
                }
                f => format!("{}/{}", f.name(), f.clock_rate()),
            },
            // Unknown formats are echoed without rtpmap only when static; a dynamic one
            // we cannot describe is still listed so the answer mirrors the offer.
            Codec::Other(_) => continue,
        };
        let _ = write!(s, "a=rtpmap:{pt} {map}\r\n");
    }
    if let Some(id) = offer.audio_level_id {
        let _ = write!(s, "a=extmap:{id} {AUDIO_LEVEL_URI}\r\n");
    }
    if offer.rtcp_mux {
        s.push_str("a=rtcp-mux\r\n");
    }
    if let (Some(tag), Some(key)) = (offer.crypto_tag, offer.srtp.as_ref()) {
        let profile = key.profile();
        let _ = write!(
            s,
            "a=crypto:{tag} {} inline:{}\r\n",
            profile.sdes_name(),
            fresh_key(profile)
        );
    }
    let dir = if recv && offer.direction.offerer_sends() {
        "recvonly"
    } else {
        "inactive"
    };
    let _ = write!(s, "a={dir}\r\n");
    s
}

/// Base64 of a random master key || salt for `profile`.
fn fresh_key(profile: SrtpProfile) -> String {
    let mut raw = vec![0u8; profile.master_key_len() + profile.master_salt_len()];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn truncate(line: &str) -> String {
    line.chars().take(120).collect()
}

/// Fuzz entry point: parse `data` as an offer and answer whatever parses.
#[doc(hidden)]
pub fn fuzz_sdp(data: &[u8]) {
    if let Ok(offer) = parse_offer_bytes(data) {
        let answer = answer_sdp(&offer, SocketAddr::from(([127, 0, 0, 1], 5004)), true);
        // The answer must itself be an acceptable offer-shaped description.
        let _ = parse_offer(&answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "wNZJzlD1C/a55ozp1dqIy+xSQj/d5/tLt+8zDruV";

    fn offer(proto: &str, extra: &str) -> String {
        format!(
            "v=0\r\no=fwd 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
             m=audio 40000 {proto} 111 96 0 101\r\na=rtpmap:111 opus/48000/2\r\n\
             a=rtpmap:96 L16/16000\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=extmap:3 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=sendonly\r\n{extra}"
        )
    }

    #[test]
    fn parses_keyed_offer() {
        let o = parse_offer(&offer(
            "RTP/SAVP",
            &format!("a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^31\r\n"),
        ))
        .unwrap();
        assert_eq!(o.remote, "10.0.0.1:40000".parse::<SocketAddr>().unwrap());
        assert_eq!(o.crypto_tag, Some(7));
        assert_eq!(
            o.srtp.as_ref().unwrap().profile(),
            SrtpProfile::AesCm128HmacSha1_80
        );
        assert_eq!(o.audio_level_id, Some(3));
        assert_eq!(o.direction, Direction::SendOnly);
        assert_eq!(o.codec(111), Some(&Codec::Opus));
        assert_eq!(
            o.codec(96),
            Some(&Codec::Transcoded(AudioFormat::L16 {
                rate: 16_000,
                channels: 1
            }))
        );
        assert_eq!(o.codec(0), Some(&Codec::Transcoded(AudioFormat::Pcmu)));
        assert_eq!(o.codec(101), Some(&Codec::Other("telephone-event".into())));
        assert_eq!(o.primary_format(), Some((111, None)));
    }

    #[test]
    fn keyless_savp_is_a_clear_error() {
        let e = parse_offer(&offer("RTP/SAVP", "")).unwrap_err();
        assert!(matches!(e, OfferError::MissingKeys), "{e}");
        assert!(e.to_string().contains("no SDES key"));
        let e = parse_offer(&offer(
            "RTP/SAVP",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:QUJD\r\n",
        ))
        .unwrap_err();
        assert!(matches!(e, OfferError::BadCrypto(_)), "{e}");
    }

    #[test]
    fn keys_on_plain_rtp_are_refused_and_plain_rtp_parses() {
        let e = parse_offer(&offer(
            "RTP/AVP",
            &format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\n"),
        ))
        .unwrap_err();
        assert!(matches!(e, OfferError::CryptoOnPlainProfile(_)), "{e}");
        let o = parse_offer(&offer("RTP/AVP", "")).unwrap();
        assert!(o.srtp.is_none());
    }

    #[test]
    fn refuses_what_it_cannot_record() {
        let no_audio = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 5000 RTP/AVP 96\r\n";
        assert!(matches!(parse_offer(no_audio), Err(OfferError::NoAudio)));
        let dtls = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 UDP/TLS/RTP/SAVPF 111\r\n";
        assert!(matches!(
            parse_offer(dtls),
            Err(OfferError::UnsupportedProtocol(_))
        ));
        let disabled = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 0 RTP/AVP 0\r\n";
        assert!(matches!(
            parse_offer(disabled),
            Err(OfferError::StreamDisabled)
        ));
        let no_c = "v=0\r\nm=audio 5000 RTP/AVP 0\r\n";
        assert!(matches!(parse_offer(no_c), Err(OfferError::NoConnection)));
        let only_dtmf = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 101\r\na=rtpmap:101 telephone-event/8000\r\n";
        assert!(matches!(
            parse_offer(only_dtmf),
            Err(OfferError::NoUsableFormat)
        ));
        assert!(matches!(
            parse_offer("v=0\r\nthis is not sdp\r\n"),
            Err(OfferError::Malformed { .. })
        ));
        assert!(matches!(
            parse_offer_bytes(&[0xff, 0xfe]),
            Err(OfferError::NotText)
        ));
    }

    #[test]
    fn media_level_connection_and_ipv6() {
        let sdp = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 6000 RTP/AVP 8\r\nc=IN IP6 fd00::2\r\n";
        let o = parse_offer(sdp).unwrap();
        assert_eq!(o.remote, "[fd00::2]:6000".parse::<SocketAddr>().unwrap());
        assert_eq!(o.primary_format(), Some((8, Some(AudioFormat::Pcma))));
        assert_eq!(o.direction, Direction::SendRecv);
    }

    #[test]
    fn answer_mirrors_offer_with_fresh_key() {
        let text = offer(
            "RTP/SAVP",
            &format!("a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\na=rtcp-mux\r\n"),
        );
        let o = parse_offer(&text).unwrap();
        let local: SocketAddr = "127.0.0.1:6000".parse().unwrap();
        let a = answer_sdp(&o, local, true);
        assert!(a.contains("m=audio 6000 RTP/SAVP 111 96 0 101\r\n"), "{a}");
        assert!(a.contains("c=IN IP4 127.0.0.1\r\n"));
        assert!(a.contains("a=recvonly\r\n"));
        assert!(a.contains("a=rtpmap:96 L16/16000\r\n"));
        assert!(a.contains("a=extmap:3 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"));
        assert!(a.contains("a=rtcp-mux\r\n"));
        assert!(
            !a.contains(KEY),
            "the answer must not echo the offerer's key"
        );
        // The answer parses as SDP (as an offer would) and its key is valid for the suite.
        let back = parse_offer(&a).unwrap();
        assert_eq!(back.crypto_tag, Some(7));
        assert_eq!(back.remote, local);
        let b = answer_sdp(&o, local, true);
        assert_ne!(
            a.lines().find(|l| l.starts_with("a=crypto")),
            b.lines().find(|l| l.starts_with("a=crypto"))
        );
        assert!(answer_sdp(&o, local, false).contains("a=inactive\r\n"));
    }

    #[test]
    fn fuzz_entry_survives_garbage() {
        for input in [
            &b""[..],
            b"m=audio",
            b"m=audio 1 RTP/AVP 300",
            b"v=0\nc=IN IP4 1.1.1.1\nm=audio 9 RTP/AVP 0\na=rtpmap:0 PCMU/0\n",
            b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:\n",
            b"\xff\xff",
        ] {
            fuzz_sdp(input);
        }
    }
}
