//! The SDP the forwarder offers (in `mediaConfig.blob`) and the parts of the bot's answer the
//! simulator needs (docs/live.md, "Signaling").

use std::net::{IpAddr, SocketAddr};

use base64::Engine;

use super::scenario::Codec;

/// The RFC 8285 extension id of the RFC 6464 client-to-mixer audio level in our offers.
pub const AUDIO_LEVEL_EXT_ID: u8 = 1;

/// A problem with an SDP answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    /// No `m=audio` line.
    #[error("SDP answer has no m=audio line")]
    NoAudio,
    /// No usable `c=` line.
    #[error("SDP answer has no usable c= line")]
    NoConnection,
    /// A line that does not parse.
    #[error("malformed SDP line {0:?}")]
    Malformed(String),
}

/// The offer for one leg: where the simulator sends from, the codec, and the SDES key
/// (`AES_CM_128_HMAC_SHA1_80`, 16-octet key + 14-octet salt).
pub fn offer(local: SocketAddr, codec: Codec, key_salt: &[u8; 30], session_id: u64) -> String {
    let ip = match local.ip() {
        IpAddr::V4(a) => format!("IP4 {a}"),
        IpAddr::V6(a) => format!("IP6 {a}"),
    };
    let pt = codec.payload_type();
    let key = base64::engine::general_purpose::STANDARD.encode(key_salt);
    format!(
        "v=0\r\n\
         o=- {session_id} 1 IN {ip}\r\n\
         s=-\r\n\
         c=IN {ip}\r\n\
         t=0 0\r\n\
         m=audio {port} RTP/SAVP {pt}\r\n\
         a=rtpmap:{pt} {rtpmap}\r\n\
         a=ptime:20\r\n\
         a=sendonly\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n\
         a=extmap:{AUDIO_LEVEL_EXT_ID} urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n",
        port = local.port(),
        rtpmap = codec.rtpmap(),
    )
}

/// The media direction the answer chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerDirection {
    /// `a=recvonly` (or `sendrecv`): send media.
    Receive,
    /// `a=inactive` (or port 0): the bot will not record; send nothing.
    Inactive,
}

/// What the simulator takes from an SDP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Where to send media.
    pub media: SocketAddr,
    /// Whether to send at all.
    pub direction: AnswerDirection,
}

/// Parses the answer's audio address and direction. A media-level `c=` wins over the
/// session-level one; `a=inactive`, `a=sendonly` or port 0 mean no media is wanted.
pub fn parse_answer(sdp: &str) -> Result<Answer, SdpError> {
    let mut session_ip: Option<IpAddr> = None;
    let mut media_ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut direction = AnswerDirection::Receive;
    let mut in_audio = false;
    for line in sdp.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let bad = || SdpError::Malformed(line.to_string());
        if let Some(m) = line.strip_prefix("m=") {
            let mut f = m.split_ascii_whitespace();
            in_audio = f.next() == Some("audio");
            if in_audio && port.is_none() {
                port = Some(f.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?);
            }
        } else if let Some(c) = line.strip_prefix("c=") {
            let addr = c.split_ascii_whitespace().nth(2).ok_or_else(bad)?;
            // Multicast TTL suffixes ("/127") are not for us but must not break parsing.
            let ip: IpAddr = addr
                .split('/')
                .next()
                .unwrap_or_default()
                .parse()
                .map_err(|_| bad())?;
            if in_audio {
                media_ip = Some(ip);
            } else if port.is_none() {
                session_ip = Some(ip);
            }
        } else if in_audio || port.is_none() {
            match line {
                "a=inactive" | "a=sendonly" => direction = AnswerDirection::Inactive,
                "a=recvonly" | "a=sendrecv" => direction = AnswerDirection::Receive,
                _ => {}
            }
        }
    }
    let port = port.ok_or(SdpError::NoAudio)?;
    let ip = media_ip.or(session_ip).ok_or(SdpError::NoConnection)?;
    if port == 0 {
        direction = AnswerDirection::Inactive;
    }
    Ok(Answer {
        media: SocketAddr::new(ip, port),
        direction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_carries_port_key_and_codec() {
        let key = [7u8; 30];
        let sdp = offer("127.0.0.1:40000".parse().unwrap(), Codec::L16, &key, 1);
        assert!(sdp.contains("m=audio 40000 RTP/SAVP 96\r\n"));
        assert!(sdp.contains("c=IN IP4 127.0.0.1\r\n"));
        assert!(sdp.contains("a=rtpmap:96 L16/16000\r\n"));
        let crypto = sdp.lines().find(|l| l.starts_with("a=crypto:")).unwrap();
        let parsed = media_core::sdes::parse_crypto_attribute(crypto).unwrap();
        assert_eq!(parsed.key.master_key(), &key[..16]);
        assert_eq!(parsed.key.master_salt(), &key[16..]);
    }

    #[test]
    fn answer_address_and_direction() {
        let a = parse_answer(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5004 RTP/SAVP 111\r\na=recvonly\r\n",
        )
        .unwrap();
        assert_eq!(a.media, "127.0.0.1:5004".parse::<SocketAddr>().unwrap());
        assert_eq!(a.direction, AnswerDirection::Receive);
        let a = parse_answer("v=0\nm=audio 5004 RTP/SAVP 111\nc=IN IP4 10.0.0.2\na=inactive\n")
            .unwrap();
        assert_eq!(a.media, "10.0.0.2:5004".parse::<SocketAddr>().unwrap());
        assert_eq!(a.direction, AnswerDirection::Inactive);
        let a = parse_answer("c=IN IP4 10.0.0.2\nm=audio 0 RTP/SAVP 111\n").unwrap();
        assert_eq!(a.direction, AnswerDirection::Inactive);
    }

    #[test]
    fn bad_answers_are_errors() {
        assert_eq!(parse_answer("v=0\n"), Err(SdpError::NoAudio));
        assert_eq!(
            parse_answer("m=audio 5004 RTP/SAVP 111\n"),
            Err(SdpError::NoConnection)
        );
        assert!(matches!(
            parse_answer("c=IN IP4 nonsense\nm=audio 5004 RTP/SAVP 111\n"),
            Err(SdpError::Malformed(_))
        ));
        assert!(matches!(
            parse_answer("c=IN IP4 1.2.3.4\nm=audio x RTP/SAVP 111\n"),
            Err(SdpError::Malformed(_))
        ));
    }
}
