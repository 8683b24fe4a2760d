//! Zero-copy RTP parsing (RFC 3550 section 5.1) with header extensions (RFC 8285) and the
//! client-to-mixer audio level extension (RFC 6464).
//!
//! Every datagram that reaches the recorder goes through [`RtpPacket::parse`], so the parser
//! borrows the buffer instead of copying it and treats every byte as hostile: each read is
//! bounds-checked and every malformed header is an [`RtpError`], never a panic.
#![warn(missing_docs)]

/// Length of the fixed RTP header, before CSRCs and extensions.
pub const FIXED_HEADER_LEN: usize = 12;

/// RFC 8285 one-byte header extension profile.
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;

/// RFC 8285 two-byte header extensions use `0x100` followed by four "appbits".
const TWO_BYTE_PROFILE_MASK: u16 = 0xFFF0;
const TWO_BYTE_PROFILE: u16 = 0x1000;

/// Why a datagram is not a well-formed RTP packet.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    #[error("RTP packet shorter than the 12-byte fixed header")]
    TooShort,
    /// The version field is not 2.
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    /// The CSRC count announces more identifiers than the packet holds.
    #[error("RTP CSRC list runs past the end of the packet")]
    BadCsrcList,
    /// The X bit is set but the extension header or its announced length does not fit.
    #[error("RTP header extension runs past the end of the packet")]
    BadExtension,
    /// The P bit is set but the padding count is zero or larger than the bytes after the header.
    #[error("RTP padding count is zero or exceeds the packet body")]
    BadPadding,
}

/// A parsed RTP packet borrowing the datagram it came from.
///
/// Only the fixed-header fields are decoded eagerly; CSRCs and extensions are decoded lazily by
/// their accessors, so a packet that nobody inspects costs a handful of bounds checks.
#[derive(Debug, Clone, Copy)]
pub struct RtpPacket<'a> {
    /// The M bit; for audio it marks the first packet after silence (talkspurt start).
    pub marker: bool,
    /// The 7-bit payload type.
    pub payload_type: u8,
    /// The 16-bit sequence number, as sent (not unwrapped).
    pub sequence: u16,
    /// The 32-bit RTP timestamp, as sent (not unwrapped).
    pub timestamp: u32,
    /// The synchronisation source.
    pub ssrc: u32,
    csrc: &'a [u8],
    ext_profile: Option<u16>,
    ext_data: &'a [u8],
    payload: &'a [u8],
    header_len: usize,
    padding_len: u8,
}

impl<'a> RtpPacket<'a> {
    /// Parses `buf` as one RTP packet.
    ///
    /// The padding count (last byte, when the P bit is set) counts itself, so it must be at
    /// least 1 and at most the number of bytes after the header (RFC 3550 section 5.1); a
    /// padding-only packet with an empty payload is valid, as bandwidth probes send them.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let fixed: &[u8; FIXED_HEADER_LEN] = buf
            .get(..FIXED_HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(RtpError::TooShort)?;
        let [b0, b1, s0, s1, t0, t1, t2, t3, i0, i1, i2, i3] = *fixed;
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let has_padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let csrc_count = usize::from(b0 & 0x0f);

        let csrc_end = FIXED_HEADER_LEN + 4 * csrc_count;
        let csrc = buf
            .get(FIXED_HEADER_LEN..csrc_end)
            .ok_or(RtpError::BadCsrcList)?;

        let (ext_profile, ext_data, header_len) = if has_extension {
            let ext_header = buf
                .get(csrc_end..csrc_end + 4)
                .ok_or(RtpError::BadExtension)?;
            let (profile, words) = match *ext_header {
                [p0, p1, l0, l1] => (
                    u16::from_be_bytes([p0, p1]),
                    usize::from(u16::from_be_bytes([l0, l1])),
                ),
                _ => return Err(RtpError::BadExtension),
            };
            let data_start = csrc_end + 4;
            let data_end = data_start + 4 * words;
            let data = buf
                .get(data_start..data_end)
                .ok_or(RtpError::BadExtension)?;
            (Some(profile), data, data_end)
        } else {
            (None, &[][..], csrc_end)
        };

        // `header_len <= buf.len()` holds because every part above came from a checked `get`.
        let body = buf.get(header_len..).unwrap_or_default();
        let padding_len = if has_padding {
            match body.last() {
                Some(&n) if n != 0 && usize::from(n) <= body.len() => n,
                _ => return Err(RtpError::BadPadding),
            }
        } else {
            0
        };
        let payload = body
            .get(..body.len() - usize::from(padding_len))
            .ok_or(RtpError::BadPadding)?;

        Ok(RtpPacket {
            marker: b1 & 0x80 != 0,
            payload_type: b1 & 0x7f,
            sequence: u16::from_be_bytes([s0, s1]),
            timestamp: u32::from_be_bytes([t0, t1, t2, t3]),
            ssrc: u32::from_be_bytes([i0, i1, i2, i3]),
            csrc,
            ext_profile,
            ext_data,
            payload,
            header_len,
            padding_len,
        })
    }

    /// The contributing sources, in packet order (a mixer lists the speakers it mixed).
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        self.csrc
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// Number of contributing sources (the CC field).
    pub fn csrc_count(&self) -> usize {
        self.csrc.len() / 4
    }

    /// The media payload, without header, extensions or padding.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Bytes before the payload: fixed header, CSRCs and the header extension block.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Bytes of padding after the payload, including the count byte itself; 0 without the P bit.
    pub fn padding_len(&self) -> usize {
        usize::from(self.padding_len)
    }

    /// The "defined by profile" field of the header extension, if the X bit is set.
    pub fn extension_profile(&self) -> Option<u16> {
        self.ext_profile
    }

    /// The raw header extension body (without its 4-byte header); empty without the X bit.
    pub fn extension_data(&self) -> &'a [u8] {
        self.ext_data
    }

    /// The RFC 8285 extension elements. An unknown profile yields nothing, because its
    /// contents have no layout we can trust.
    pub fn extensions(&self) -> Extensions<'a> {
        let form = match self.ext_profile {
            Some(ONE_BYTE_PROFILE) => Form::OneByte,
            Some(p) if p & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE => Form::TwoByte,
            _ => Form::Done,
        };
        Extensions {
            data: self.ext_data,
            form,
        }
    }

    /// The data of the first extension element with local identifier `id`.
    pub fn extension(&self, id: u8) -> Option<&'a [u8]> {
        self.extensions().find(|e| e.id == id).map(|e| e.data)
    }

    /// The RFC 6464 client-to-mixer audio level carried under local identifier `id`
    /// (negotiated in SDP as `urn:ietf:params:rtp-hdrext:ssrc-audio-level`).
    pub fn audio_level(&self, id: u8) -> Option<AudioLevel> {
        let &b = self.extension(id)?.first()?;
        Some(AudioLevel {
            voice: b & 0x80 != 0,
            level: b & 0x7f,
        })
    }
}

/// An RFC 6464 audio level: how loud the sender measured this packet's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioLevel {
    /// The V bit: the sender's voice activity detector judged the packet to contain speech.
    pub voice: bool,
    /// Level in -dBov, 0..=127: 0 is the loudest, 127 is silence (or below -127 dBov).
    pub level: u8,
}

impl AudioLevel {
    /// The level in dBov (0 or negative), the way level meters and thresholds are written.
    pub fn dbov(&self) -> i8 {
        // `level` is 7 bits, so the negation cannot overflow.
        -((self.level & 0x7f) as i8)
    }
}

/// One RFC 8285 header extension element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    /// Local identifier, mapped to a URI by SDP `a=extmap`; 1..=14 in the one-byte form,
    /// 1..=255 in the two-byte form.
    pub id: u8,
    /// Element data, borrowed from the packet.
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    OneByte,
    TwoByte,
    Done,
}

/// Iterator over the header extension elements of an [`RtpPacket`].
///
/// A malformed element (data running past the extension block) ends the iteration: the
/// elements before it are still trustworthy, the ones after it cannot be located.
#[derive(Debug, Clone)]
pub struct Extensions<'a> {
    data: &'a [u8],
    form: Form,
}

impl<'a> Extensions<'a> {
    fn stop(&mut self) -> Option<Extension<'a>> {
        self.form = Form::Done;
        self.data = &[];
        None
    }
}

impl<'a> Iterator for Extensions<'a> {
    type Item = Extension<'a>;

    fn next(&mut self) -> Option<Extension<'a>> {
        loop {
            let form = self.form;
            if form == Form::Done {
                return None;
            }
            let Some((&first, rest)) = self.data.split_first() else {
                return self.stop();
            };
            // ID 0 is a single padding byte in both forms; like libwebrtc, a one-byte-form
            // length nibble on it is ignored rather than trusted.
            let is_padding = match form {
                Form::OneByte => first >> 4 == 0,
                _ => first == 0,
            };
            if is_padding {
                self.data = rest;
                continue;
            }
            let (id, len, rest) = if form == Form::OneByte {
                let id = first >> 4;
                // ID 15 is reserved: RFC 8285 4.2 says stop and keep what came before.
                if id == 15 {
                    return self.stop();
                }
                (id, usize::from(first & 0x0f) + 1, rest)
            } else {
                let Some((&len, rest)) = rest.split_first() else {
                    return self.stop();
                };
                (first, usize::from(len), rest)
            };
            if len > rest.len() {
                return self.stop();
            }
            let (data, rest) = rest.split_at(len);
            self.data = rest;
            return Some(Extension { id, data });
        }
    }
}

impl std::iter::FusedIterator for Extensions<'_> {}

/// RFC 5761 demultiplexing of RTP and RTCP sharing one port: a second byte (payload type with
/// the marker bit) in 192..=223 is an RTCP packet type, which RTP payload types avoid.
pub fn is_rtcp(buf: &[u8]) -> bool {
    matches!(buf.get(1), Some(192..=223))
}

/// Quick plausibility check used to count garbage datagrams: version 2 and long enough for an
/// RTP fixed header (12 bytes), or, for RTCP packet types, for a header plus SSRC (8 bytes),
/// since an empty RR or a lone BYE is legitimately shorter than 12 bytes.
pub fn looks_like_rtp_or_rtcp(buf: &[u8]) -> bool {
    let min_len = if is_rtcp(buf) { 8 } else { FIXED_HEADER_LEN };
    buf.len() >= min_len && matches!(buf.first(), Some(b) if b >> 6 == 2)
}

/// Fuzzing entry point: parses `data` and walks every accessor; must never panic.
///
/// The assertions check invariants of a successful parse, so the fuzzer reports a logic
/// error and not only a crash.
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) {
    use std::hint::black_box;
    black_box(is_rtcp(data));
    black_box(looks_like_rtp_or_rtcp(data));
    let Ok(p) = RtpPacket::parse(data) else {
        return;
    };
    assert_eq!(
        p.header_len() + p.payload().len() + p.padding_len(),
        data.len()
    );
    assert_eq!(p.csrcs().count(), p.csrc_count());
    for c in p.csrcs() {
        black_box(c);
    }
    black_box(p.extension_profile());
    let mut walked = 0;
    for e in p.extensions() {
        assert_ne!(e.id, 0);
        walked += 1 + e.data.len();
        black_box(e);
    }
    assert!(walked <= p.extension_data().len());
    for id in 0..=255u8 {
        black_box(p.extension(id));
        black_box(p.audio_level(id).map(|a| a.dbov()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Shaped like a Chrome Opus packet: one-byte extensions with audio level (id 1),
    /// abs-send-time (id 2) and transport-wide-cc (id 3), padded to a word.
    const CHROME_OPUS: &[u8] = &[
        0x90, 0xef, 0x1a, 0x2b, // V=2 X=1, M=1 PT=111, seq 0x1a2b
        0x00, 0x01, 0xe2, 0x40, // timestamp 123456
        0x12, 0x34, 0x56, 0x78, // SSRC
        0xbe, 0xde, 0x00, 0x03, // one-byte profile, 3 words
        0x10, 0xaa, // id 1 len 1: V=1 level 42
        0x22, 0x0b, 0x1c, 0x2d, // id 2 len 3: abs-send-time
        0x31, 0x04, 0xd2, // id 3 len 2: transport-cc seq 1234
        0x00, 0x00, 0x00, // padding to a word
        0x78, 0x0b, 0xe4, 0xc1, 0x36, // Opus payload
    ];

    #[test]
    fn chrome_opus_one_byte_extensions() {
        let p = RtpPacket::parse(CHROME_OPUS).unwrap();
        assert!(p.marker);
        assert_eq!(p.payload_type, 111);
        assert_eq!(p.sequence, 0x1a2b);
        assert_eq!(p.timestamp, 123_456);
        assert_eq!(p.ssrc, 0x1234_5678);
        assert_eq!(p.csrc_count(), 0);
        assert_eq!(p.header_len(), 28);
        assert_eq!(p.payload(), &[0x78, 0x0b, 0xe4, 0xc1, 0x36]);
        assert_eq!(p.padding_len(), 0);
        assert_eq!(p.extension_profile(), Some(0xbede));
        let exts: Vec<_> = p.extensions().collect();
        assert_eq!(
            exts,
            [
                Extension {
                    id: 1,
                    data: &[0xaa]
                },
                Extension {
                    id: 2,
                    data: &[0x0b, 0x1c, 0x2d]
                },
                Extension {
                    id: 3,
                    data: &[0x04, 0xd2]
                },
            ]
        );
        assert_eq!(
            p.audio_level(1),
            Some(AudioLevel {
                voice: true,
                level: 42
            })
        );
        assert_eq!(p.audio_level(1).unwrap().dbov(), -42);
        assert_eq!(p.extension(3), Some(&[0x04, 0xd2][..]));
        assert_eq!(p.extension(4), None);
        assert_eq!(p.audio_level(4), None);
        // The payload is a view into the datagram, not a copy.
        assert_eq!(p.payload().as_ptr(), CHROME_OPUS[28..].as_ptr());
    }

    #[test]
    fn two_byte_extensions() {
        let pkt = [
            0x90, 0x60, 0x00, 0x01, 0, 0, 0, 160, 0, 0, 0, 7, //
            0x10, 0x00, 0x00, 0x03, // two-byte profile, appbits 0, 3 words
            0x01, 0x01, 0x7f, // id 1 len 1: V=0 level 127
            0x00, // padding byte between elements
            0x11, 0x00, // id 17, empty data (only legal in the two-byte form)
            0x20, 0x03, 0xaa, 0xbb, 0xcc, // id 32 len 3
            0x00, // padding to a word
            0xde, 0xad,
        ];
        let p = RtpPacket::parse(&pkt).unwrap();
        assert_eq!(p.extension_profile(), Some(0x1000));
        let exts: Vec<_> = p.extensions().collect();
        assert_eq!(
            exts,
            [
                Extension {
                    id: 1,
                    data: &[0x7f]
                },
                Extension { id: 17, data: &[] },
                Extension {
                    id: 32,
                    data: &[0xaa, 0xbb, 0xcc]
                },
            ]
        );
        assert_eq!(
            p.audio_level(1),
            Some(AudioLevel {
                voice: false,
                level: 127
            })
        );
        assert_eq!(p.audio_level(17), None);
        assert_eq!(p.payload(), &[0xde, 0xad]);

        // Appbits other than zero are still the two-byte form.
        let mut pkt2 = pkt;
        pkt2[13] = 0x0f;
        let p = RtpPacket::parse(&pkt2).unwrap();
        assert_eq!(p.extensions().count(), 3);
    }

    #[test]
    fn one_byte_id_15_stops_and_unknown_profile_yields_nothing() {
        let pkt = [
            0x90, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, //
            0xbe, 0xde, 0x00, 0x02, //
            0x10, 0x05, // id 1
            0xf0, // id 15: stop here
            0x20, 0x06, // id 2: must not be seen
            0x00, 0x00, 0x00,
        ];
        let p = RtpPacket::parse(&pkt).unwrap();
        let ids: Vec<_> = p.extensions().map(|e| e.id).collect();
        assert_eq!(ids, [1]);
        assert_eq!(p.extension(2), None);

        let mut other = pkt;
        other[12] = 0xab;
        other[13] = 0xcd;
        let p = RtpPacket::parse(&other).unwrap();
        assert_eq!(p.extension_profile(), Some(0xabcd));
        assert_eq!(p.extensions().count(), 0);
        assert_eq!(p.extension_data().len(), 8);
    }

    #[test]
    fn one_byte_id_0_is_a_single_padding_byte() {
        // libwebrtc skips an ID-0 byte whatever its length nibble; so do we.
        let pkt = [
            0x90, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, //
            0xbe, 0xde, 0x00, 0x01, //
            0x00, 0x03, 0x10, 0x2a,
        ];
        let p = RtpPacket::parse(&pkt).unwrap();
        let exts: Vec<_> = p.extensions().collect();
        assert_eq!(
            exts,
            [Extension {
                id: 1,
                data: &[0x2a]
            }]
        );
        assert_eq!(p.extension(0), None);
    }

    #[test]
    fn malformed_extension_element_ends_iteration() {
        let pkt = [
            0x90, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, //
            0xbe, 0xde, 0x00, 0x01, //
            0x10, 0x05, // id 1, fine
            0x23, 0x00, // id 2 claims 4 bytes but 1 remains
        ];
        let p = RtpPacket::parse(&pkt).unwrap();
        let ids: Vec<_> = p.extensions().map(|e| e.id).collect();
        assert_eq!(ids, [1]);

        let two = [
            0x90, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, //
            0x10, 0x00, 0x00, 0x01, //
            0x05, 0x09, 0x00, 0x00, // id 5 claims 9 bytes
        ];
        let p = RtpPacket::parse(&two).unwrap();
        assert_eq!(p.extensions().count(), 0);

        // A two-byte element cut after its id byte.
        let cut = [
            0x90, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, //
            0x10, 0x00, 0x00, 0x01, //
            0x00, 0x00, 0x00, 0x07,
        ];
        let p = RtpPacket::parse(&cut).unwrap();
        assert_eq!(p.extensions().count(), 0);
    }

    fn with_csrcs(n: u8) -> Vec<u8> {
        let mut pkt = vec![0x80 | n, 0x00, 0, 9, 0, 0, 1, 0, 0xca, 0xfe, 0xba, 0xbe];
        for i in 0..u32::from(n) {
            pkt.extend_from_slice(&(0x1000_0000 + i).to_be_bytes());
        }
        pkt.extend_from_slice(&[1, 2, 3]);
        pkt
    }

    #[test]
    fn fifteen_csrcs() {
        let pkt = with_csrcs(15);
        let p = RtpPacket::parse(&pkt).unwrap();
        assert_eq!(p.csrc_count(), 15);
        let csrcs: Vec<u32> = p.csrcs().collect();
        assert_eq!(csrcs, (0..15).map(|i| 0x1000_0000 + i).collect::<Vec<_>>());
        assert_eq!(p.header_len(), 12 + 60);
        assert_eq!(p.payload(), &[1, 2, 3]);
        assert_eq!(p.extension_profile(), None);
        assert_eq!(p.extensions().count(), 0);

        assert_eq!(
            RtpPacket::parse(&pkt[..12 + 59]).unwrap_err(),
            RtpError::BadCsrcList
        );
    }

    #[test]
    fn padding() {
        // Four bytes of payload, three of padding whose last byte counts them.
        let pkt = [
            0xa0, 0x08, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 9, 8, 7, 6, 0, 0, 3,
        ];
        let p = RtpPacket::parse(&pkt).unwrap();
        assert_eq!(p.payload(), &[9, 8, 7, 6]);
        assert_eq!(p.padding_len(), 3);

        // Padding-only (bandwidth probe): the whole body is padding.
        let probe = [0xa0, 0x08, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4];
        let p = RtpPacket::parse(&probe).unwrap();
        assert!(p.payload().is_empty());
        assert_eq!(p.padding_len(), 4);

        let zero = [0xa0, 0x08, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 9, 0];
        assert_eq!(RtpPacket::parse(&zero).unwrap_err(), RtpError::BadPadding);
        let too_big = [0xa0, 0x08, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 9, 3];
        assert_eq!(
            RtpPacket::parse(&too_big).unwrap_err(),
            RtpError::BadPadding
        );
        // P bit with no byte after the header at all.
        assert_eq!(
            RtpPacket::parse(&zero[..12]).unwrap_err(),
            RtpError::BadPadding
        );
        // The padding may not reach back into the extension block.
        let mut ext = CHROME_OPUS.to_vec();
        ext[0] |= 0x20;
        *ext.last_mut().unwrap() = 6;
        assert_eq!(RtpPacket::parse(&ext).unwrap_err(), RtpError::BadPadding);
        *ext.last_mut().unwrap() = 5;
        let p = RtpPacket::parse(&ext).unwrap();
        assert!(p.payload().is_empty());
        assert_eq!(p.audio_level(1).unwrap().level, 42);
    }

    #[test]
    fn error_paths() {
        assert_eq!(RtpPacket::parse(&[]).unwrap_err(), RtpError::TooShort);
        assert_eq!(
            RtpPacket::parse(&[0x80; 11]).unwrap_err(),
            RtpError::TooShort
        );
        for (b0, v) in [(0x00, 0), (0x40, 1), (0xc0, 3)] {
            let mut pkt = CHROME_OPUS.to_vec();
            pkt[0] = (pkt[0] & 0x3f) | b0;
            assert_eq!(RtpPacket::parse(&pkt).unwrap_err(), RtpError::BadVersion(v));
        }
        // X bit with the extension header cut short, then with its length overrunning.
        assert_eq!(
            RtpPacket::parse(&CHROME_OPUS[..14]).unwrap_err(),
            RtpError::BadExtension
        );
        assert_eq!(
            RtpPacket::parse(&CHROME_OPUS[..27]).unwrap_err(),
            RtpError::BadExtension
        );
        let mut long = CHROME_OPUS.to_vec();
        long[14] = 0xff;
        long[15] = 0xff;
        assert_eq!(RtpPacket::parse(&long).unwrap_err(), RtpError::BadExtension);
    }

    /// Every prefix of a valid packet is either an error or parses to something that claims
    /// no more bytes than it was given.
    #[test]
    fn every_prefix_is_an_error_or_a_shorter_parse() {
        let probe = [0xa0, 0x08, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4];
        let two_byte = [
            0x90, 0x60, 0x00, 0x01, 0, 0, 0, 160, 0, 0, 0, 7, 0x10, 0x00, 0x00, 0x01, 0x01, 0x01,
            0x7f, 0x00, 0xde, 0xad,
        ];
        let csrcs = with_csrcs(15);
        let samples: [&[u8]; 4] = [CHROME_OPUS, &probe, &two_byte, &csrcs];
        for pkt in samples {
            let full = RtpPacket::parse(pkt).unwrap();
            for n in 0..pkt.len() {
                let prefix = &pkt[..n];
                fuzz_parse(prefix);
                match RtpPacket::parse(prefix) {
                    Ok(p) => {
                        // Only a cut inside the payload can still parse.
                        assert!(n >= full.header_len(), "prefix {n} parsed");
                        assert_eq!(p.header_len(), full.header_len());
                        assert!(p.payload().len() < full.payload().len() || full.padding_len() > 0);
                    }
                    Err(e) => {
                        if n < 12 {
                            assert_eq!(e, RtpError::TooShort);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn demux_helpers() {
        assert!(!is_rtcp(CHROME_OPUS));
        assert!(looks_like_rtp_or_rtcp(CHROME_OPUS));
        // Payload types 64..=95 with the marker bit would collide with RTCP; RFC 5761 forbids them.
        for pt in 192..=223u8 {
            assert!(is_rtcp(&[0x80, pt]));
        }
        assert!(!is_rtcp(&[0x80, 191]));
        assert!(!is_rtcp(&[0x80, 224]));
        assert!(!is_rtcp(&[0x80]));
        // An RTCP RR with no report blocks is 8 bytes.
        assert!(looks_like_rtp_or_rtcp(&[0x80, 201, 0, 1, 0, 0, 0, 1]));
        assert!(!looks_like_rtp_or_rtcp(&[0x80, 201, 0, 1]));
        assert!(!looks_like_rtp_or_rtcp(&[0x80, 0x00, 0, 1, 0, 0, 0, 1]));
        assert!(!looks_like_rtp_or_rtcp(&[0x40; 20]));
        assert!(!looks_like_rtp_or_rtcp(&[]));
    }

    /// Random bytes, and random mutations of valid packets, never panic.
    #[test]
    fn random_inputs_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0001);
        let mut buf = [0u8; 96];
        for _ in 0..50_000 {
            let len = rng.gen_range(0..buf.len());
            rng.fill(&mut buf[..len]);
            // Bias towards version 2 so the parser gets past the first check.
            if len > 0 && rng.gen_bool(0.8) {
                buf[0] = (buf[0] & 0x3f) | 0x80;
            }
            fuzz_parse(&buf[..len]);
        }
        for _ in 0..50_000 {
            let mut pkt = CHROME_OPUS.to_vec();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..pkt.len());
                pkt[i] = rng.gen();
            }
            let cut = rng.gen_range(0..=pkt.len());
            fuzz_parse(&pkt[..cut]);
        }
    }

    /// The fuzz seeds are meant to be a mix of valid and invalid inputs; keep them that way.
    #[test]
    fn fuzz_seed_corpus_parses_as_named() {
        const INVALID: &[&str] = &[
            "bad_padding_too_big",
            "bad_padding_zero",
            "bad_version",
            "truncated_csrc",
            "truncated_ext",
            "truncated_header",
        ];
        let seeds = crate::test_util::fuzz_seeds("rtp");
        for (stem, data) in &seeds {
            fuzz_parse(data);
            let valid = !INVALID.contains(&stem.as_str());
            assert_eq!(RtpPacket::parse(data).is_ok(), valid, "{stem}");
        }
        assert!(seeds.len() >= 12, "only {} seeds", seeds.len());
    }
}
