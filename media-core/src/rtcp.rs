//! Zero-copy RTCP parsing (RFC 3550 sections 6.4-6.6) of compound packets.
//!
//! [`CompoundPacket::parse`] validates the whole datagram up front (RFC 3550 appendix A.2:
//! version 2 everywhere, every length field consistent, lengths summing to the datagram), so a
//! caller that only wants, say, the sender reports can iterate without re-checking. It does not
//! insist that the first packet is an SR or RR: reduced-size RTCP (RFC 5506) sends lone
//! feedback packets, and a recorder must not drop what a browser legitimately sends.
#![warn(missing_docs)]

use std::borrow::Cow;

/// Packet type of a sender report.
pub const PT_SR: u8 = 200;
/// Packet type of a receiver report.
pub const PT_RR: u8 = 201;
/// Packet type of a source description.
pub const PT_SDES: u8 = 202;
/// Packet type of a goodbye.
pub const PT_BYE: u8 = 203;
/// Packet type of an application-defined packet.
pub const PT_APP: u8 = 204;

const HEADER_LEN: usize = 4;
const REPORT_BLOCK_LEN: usize = 24;
/// SSRC plus the 20-byte sender info that precede an SR's report blocks.
const SR_FIXED_LEN: usize = 24;

/// Why a datagram is not a well-formed RTCP compound packet.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum RtcpError {
    /// Empty, or fewer than 4 bytes left where a packet header should start.
    #[error("RTCP data too short for a packet header")]
    TooShort,
    /// The version field is not 2.
    #[error("RTCP version {0}, expected 2")]
    BadVersion(u8),
    /// A length field announces more bytes than remain in the datagram.
    #[error("RTCP length field says {declared} bytes but only {available} remain")]
    LengthMismatch {
        /// Bytes the length field announces for the packet, header included.
        declared: usize,
        /// Bytes left in the datagram from the packet's first byte.
        available: usize,
    },
    /// The P bit is set but the padding count is zero or exceeds the packet body.
    #[error("RTCP padding count is zero or exceeds the packet body")]
    BadPadding,
    /// The body is too short for what the header's count field and packet type require.
    #[error("RTCP packet type {packet_type} too short for its count {count}")]
    BodyTooShort {
        /// The packet type.
        packet_type: u8,
        /// The 5-bit count field (report blocks, sources or APP subtype).
        count: u8,
    },
    /// An SDES chunk or item runs past the packet, or a chunk lacks its terminating null item.
    #[error("RTCP SDES chunk malformed")]
    BadSdes,
    /// A BYE reason's length runs past the packet.
    #[error("RTCP BYE reason runs past the packet")]
    BadByeReason,
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(s.try_into().ok()?))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(s.try_into().ok()?))
}

/// A validated RTCP compound packet (one or more RTCP packets stacked in one datagram).
#[derive(Debug, Clone, Copy)]
pub struct CompoundPacket<'a>(&'a [u8]);

impl<'a> CompoundPacket<'a> {
    /// Validates `buf` as a compound packet: every packet and every length inside it must be
    /// consistent, so [`CompoundPacket::iter`] will not yield an error afterwards.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtcpError> {
        if buf.is_empty() {
            return Err(RtcpError::TooShort);
        }
        for packet in (RtcpIter { rest: buf }) {
            if let RtcpPacket::SourceDescription(sdes) = packet? {
                sdes.validate()?;
            }
        }
        Ok(CompoundPacket(buf))
    }

    /// The packets in datagram order.
    pub fn iter(&self) -> RtcpIter<'a> {
        RtcpIter { rest: self.0 }
    }

    /// The whole datagram.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

impl<'a> IntoIterator for &CompoundPacket<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;
    type IntoIter = RtcpIter<'a>;
    fn into_iter(self) -> RtcpIter<'a> {
        self.iter()
    }
}

/// Iterator over the packets of a compound packet. After an error it yields nothing more,
/// because the framing of the rest of the datagram is then unknown.
#[derive(Debug, Clone)]
pub struct RtcpIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RtcpIter<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match RtcpPacket::parse_one(self.rest) {
            Ok((packet, rest)) => {
                self.rest = rest;
                Some(Ok(packet))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for RtcpIter<'_> {}

/// One RTCP packet of a compound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    /// SR (200): a sender's NTP/RTP timestamp pair, which maps RTP time to wall-clock time.
    SenderReport(SenderReport<'a>),
    /// RR (201): reception statistics from a receiver that is not sending.
    ReceiverReport(ReceiverReport<'a>),
    /// SDES (202): source descriptions, notably the CNAME that ties SSRCs to one endpoint.
    SourceDescription(Sdes<'a>),
    /// BYE (203): sources leaving the session.
    Goodbye(Bye<'a>),
    /// APP (204): application-defined.
    App {
        /// The 5-bit subtype from the count field.
        subtype: u8,
        /// Source of the packet.
        ssrc: u32,
        /// Four ASCII characters naming the application.
        name: [u8; 4],
        /// Application-dependent data.
        data: &'a [u8],
    },
    /// Any other type, kept whole: transport/payload feedback (205/206), XR (207) and so on.
    Other {
        /// The packet type.
        packet_type: u8,
        /// The 5-bit count field (FMT for feedback packets).
        count: u8,
        /// Everything after the 4-byte header, without padding.
        body: &'a [u8],
    },
}

impl<'a> RtcpPacket<'a> {
    /// The packet type byte (200 for SR, 201 for RR, ...).
    pub fn packet_type(&self) -> u8 {
        match self {
            RtcpPacket::SenderReport(_) => PT_SR,
            RtcpPacket::ReceiverReport(_) => PT_RR,
            RtcpPacket::SourceDescription(_) => PT_SDES,
            RtcpPacket::Goodbye(_) => PT_BYE,
            RtcpPacket::App { .. } => PT_APP,
            RtcpPacket::Other { packet_type, .. } => *packet_type,
        }
    }

    /// Parses the packet at the start of `buf`, returning it and the bytes after it.
    fn parse_one(buf: &'a [u8]) -> Result<(Self, &'a [u8]), RtcpError> {
        let [b0, packet_type, l0, l1] = match buf.get(..HEADER_LEN) {
            Some(&[b0, b1, b2, b3]) => [b0, b1, b2, b3],
            _ => return Err(RtcpError::TooShort),
        };
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtcpError::BadVersion(version));
        }
        let has_padding = b0 & 0x20 != 0;
        let count = b0 & 0x1f;
        // The length field counts 32-bit words minus one, so it can never describe less than
        // the header itself.
        let declared = (usize::from(u16::from_be_bytes([l0, l1])) + 1) * 4;
        if declared > buf.len() {
            return Err(RtcpError::LengthMismatch {
                declared,
                available: buf.len(),
            });
        }
        let (packet, rest) = buf.split_at(declared);
        let mut body = packet.get(HEADER_LEN..).unwrap_or_default();
        if has_padding {
            match body.last() {
                Some(&n) if n != 0 && usize::from(n) <= body.len() => {
                    body = body
                        .get(..body.len() - usize::from(n))
                        .ok_or(RtcpError::BadPadding)?;
                }
                _ => return Err(RtcpError::BadPadding),
            }
        }
        let too_short = RtcpError::BodyTooShort { packet_type, count };
        let blocks_len = usize::from(count) * REPORT_BLOCK_LEN;
        let packet = match packet_type {
            PT_SR => {
                let blocks_end = SR_FIXED_LEN + blocks_len;
                let (
                    Some(ssrc),
                    Some(ntp_timestamp),
                    Some(rtp_timestamp),
                    Some(packet_count),
                    Some(octet_count),
                    Some(blocks),
                    Some(extension),
                ) = (
                    be_u32(body, 0),
                    be_u64(body, 4),
                    be_u32(body, 12),
                    be_u32(body, 16),
                    be_u32(body, 20),
                    body.get(SR_FIXED_LEN..blocks_end),
                    body.get(blocks_end..),
                )
                else {
                    return Err(too_short);
                };
                RtcpPacket::SenderReport(SenderReport {
                    ssrc,
                    ntp_timestamp,
                    rtp_timestamp,
                    packet_count,
                    octet_count,
                    blocks: ReportBlocks { rest: blocks },
                    extension,
                })
            }
            PT_RR => {
                let (Some(ssrc), Some(blocks), Some(extension)) = (
                    be_u32(body, 0),
                    body.get(4..4 + blocks_len),
                    body.get(4 + blocks_len..),
                ) else {
                    return Err(too_short);
                };
                RtcpPacket::ReceiverReport(ReceiverReport {
                    ssrc,
                    blocks: ReportBlocks { rest: blocks },
                    extension,
                })
            }
            PT_SDES => RtcpPacket::SourceDescription(Sdes { count, body }),
            PT_BYE => {
                let ssrc_len = usize::from(count) * 4;
                let ssrcs = body.get(..ssrc_len).ok_or(too_short)?;
                let after = body.get(ssrc_len..).unwrap_or_default();
                let reason = match after.split_first() {
                    None => None,
                    Some((&len, text)) => Some(
                        text.get(..usize::from(len))
                            .ok_or(RtcpError::BadByeReason)?,
                    ),
                };
                RtcpPacket::Goodbye(Bye { ssrcs, reason })
            }
            PT_APP => {
                let (Some(ssrc), Some(&[n0, n1, n2, n3]), Some(data)) =
                    (be_u32(body, 0), body.get(4..8), body.get(8..))
                else {
                    return Err(too_short);
                };
                RtcpPacket::App {
                    subtype: count,
                    ssrc,
                    name: [n0, n1, n2, n3],
                    data,
                }
            }
            _ => RtcpPacket::Other {
                packet_type,
                count,
                body,
            },
        };
        Ok((packet, rest))
    }
}

/// SR: the sender's wall-clock/RTP-clock pair plus its own reception reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport<'a> {
    /// The sender's SSRC.
    pub ssrc: u32,
    /// NTP wall-clock time, 32.32 fixed point seconds since 1900.
    pub ntp_timestamp: u64,
    /// The RTP timestamp corresponding to `ntp_timestamp`, in the media clock.
    pub rtp_timestamp: u32,
    /// Packets sent since the start of transmission.
    pub packet_count: u32,
    /// Payload octets sent since the start of transmission.
    pub octet_count: u32,
    blocks: ReportBlocks<'a>,
    extension: &'a [u8],
}

impl<'a> SenderReport<'a> {
    /// Reception report blocks for the sources this sender hears.
    pub fn report_blocks(&self) -> ReportBlocks<'a> {
        self.blocks
    }

    /// Profile-specific extension bytes after the report blocks (usually empty).
    pub fn profile_extension(&self) -> &'a [u8] {
        self.extension
    }
}

/// RR: reception statistics from a participant that is not sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverReport<'a> {
    /// The reporter's SSRC.
    pub ssrc: u32,
    blocks: ReportBlocks<'a>,
    extension: &'a [u8],
}

impl<'a> ReceiverReport<'a> {
    /// Reception report blocks, one per source heard.
    pub fn report_blocks(&self) -> ReportBlocks<'a> {
        self.blocks
    }

    /// Profile-specific extension bytes after the report blocks (usually empty).
    pub fn profile_extension(&self) -> &'a [u8] {
        self.extension
    }
}

/// One reception report block (RFC 3550 section 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256ths.
    pub fraction_lost: u8,
    /// Cumulative packets lost; 24-bit signed, negative when duplicates outnumber losses.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles in the top 16 bits).
    pub highest_seq: u32,
    /// Interarrival jitter, in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from the source.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 seconds.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn from_bytes(b: &[u8; REPORT_BLOCK_LEN]) -> Self {
        let u = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        // Place the 24-bit field in the top of an i32 and shift back to sign-extend it.
        let cumulative_lost = i32::from_be_bytes([b[5], b[6], b[7], 0]) >> 8;
        ReportBlock {
            ssrc: u(0),
            fraction_lost: b[4],
            cumulative_lost,
            highest_seq: u(8),
            jitter: u(12),
            last_sr: u(16),
            delay_since_last_sr: u(20),
        }
    }
}

/// Iterator over report blocks, decoded on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlocks<'a> {
    rest: &'a [u8],
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;

    fn next(&mut self) -> Option<ReportBlock> {
        let (block, rest) = self.rest.split_first_chunk::<REPORT_BLOCK_LEN>()?;
        self.rest = rest;
        Some(ReportBlock::from_bytes(block))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rest.len() / REPORT_BLOCK_LEN;
        (n, Some(n))
    }
}

impl ExactSizeIterator for ReportBlocks<'_> {}
impl std::iter::FusedIterator for ReportBlocks<'_> {}

/// SDES: chunks of items describing sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sdes<'a> {
    count: u8,
    body: &'a [u8],
}

impl<'a> Sdes<'a> {
    /// The chunk count announced in the header.
    pub fn chunk_count(&self) -> usize {
        usize::from(self.count)
    }

    /// The chunks, one per source. Iteration stops at the first malformed chunk, which
    /// [`CompoundPacket::parse`] has already ruled out.
    pub fn chunks(&self) -> SdesChunks<'a> {
        SdesChunks {
            rest: self.body,
            left: self.count,
        }
    }

    fn validate(&self) -> Result<(), RtcpError> {
        let mut chunks = self.chunks();
        for _ in 0..self.count {
            chunks.next_chunk()?;
        }
        // Anything after the last chunk is not described by the header.
        if chunks.rest.iter().any(|&b| b != 0) {
            return Err(RtcpError::BadSdes);
        }
        Ok(())
    }
}

/// Iterator over the chunks of an SDES packet.
#[derive(Debug, Clone)]
pub struct SdesChunks<'a> {
    rest: &'a [u8],
    left: u8,
}

impl<'a> SdesChunks<'a> {
    fn next_chunk(&mut self) -> Result<SdesChunk<'a>, RtcpError> {
        let ssrc = be_u32(self.rest, 0).ok_or(RtcpError::BadSdes)?;
        let after_ssrc = self.rest.get(4..).unwrap_or_default();
        // Walk the items to find the null item that ends the list.
        let mut at = 0;
        loop {
            match after_ssrc.get(at) {
                None => return Err(RtcpError::BadSdes),
                Some(0) => break,
                Some(_) => {
                    let len = usize::from(*after_ssrc.get(at + 1).ok_or(RtcpError::BadSdes)?);
                    at += 2 + len;
                    if at > after_ssrc.len() {
                        return Err(RtcpError::BadSdes);
                    }
                }
            }
        }
        let items = after_ssrc.get(..at).unwrap_or_default();
        // The null item is followed by up to three more zero bytes so the next chunk starts
        // on a 32-bit boundary; chunks begin word-aligned, so align relative to the chunk.
        let chunk_len = (4 + at + 1).div_ceil(4) * 4;
        // A last chunk whose alignment padding was left off is tolerated.
        self.rest = self.rest.get(chunk_len..).unwrap_or_default();
        Ok(SdesChunk { ssrc, items })
    }
}

impl<'a> Iterator for SdesChunks<'a> {
    type Item = SdesChunk<'a>;

    fn next(&mut self) -> Option<SdesChunk<'a>> {
        if self.left == 0 {
            return None;
        }
        match self.next_chunk() {
            Ok(chunk) => {
                self.left -= 1;
                Some(chunk)
            }
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }
}

impl std::iter::FusedIterator for SdesChunks<'_> {}

/// One SDES chunk: a source and its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesChunk<'a> {
    /// The SSRC or CSRC described.
    pub ssrc: u32,
    items: &'a [u8],
}

impl<'a> SdesChunk<'a> {
    /// The items of the chunk, without the terminating null item.
    pub fn items(&self) -> SdesItems<'a> {
        SdesItems { rest: self.items }
    }

    /// The CNAME, the canonical endpoint name that links a participant's SSRCs.
    pub fn cname(&self) -> Option<&'a [u8]> {
        self.items()
            .find(|i| i.kind == SdesItemType::Cname)
            .map(|i| i.text)
    }
}

/// Iterator over the items of an SDES chunk.
#[derive(Debug, Clone)]
pub struct SdesItems<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for SdesItems<'a> {
    type Item = SdesItem<'a>;

    fn next(&mut self) -> Option<SdesItem<'a>> {
        let (&kind, after) = self.rest.split_first()?;
        let (&len, after) = after.split_first()?;
        if kind == 0 || usize::from(len) > after.len() {
            self.rest = &[];
            return None;
        }
        let (text, rest) = after.split_at(usize::from(len));
        self.rest = rest;
        Some(SdesItem {
            kind: SdesItemType::from(kind),
            text,
        })
    }
}

impl std::iter::FusedIterator for SdesItems<'_> {}

/// SDES item types (RFC 3550 section 6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdesItemType {
    /// 1: canonical name, `user@host` or a random identifier.
    Cname,
    /// 2: user name.
    Name,
    /// 3: e-mail address.
    Email,
    /// 4: phone number.
    Phone,
    /// 5: geographic location.
    Loc,
    /// 6: application or tool name.
    Tool,
    /// 7: notice/status.
    Note,
    /// 8: private extension; see [`SdesItem::priv_parts`].
    Priv,
    /// Any other type byte.
    Unknown(u8),
}

impl From<u8> for SdesItemType {
    fn from(b: u8) -> Self {
        match b {
            1 => SdesItemType::Cname,
            2 => SdesItemType::Name,
            3 => SdesItemType::Email,
            4 => SdesItemType::Phone,
            5 => SdesItemType::Loc,
            6 => SdesItemType::Tool,
            7 => SdesItemType::Note,
            8 => SdesItemType::Priv,
            other => SdesItemType::Unknown(other),
        }
    }
}

/// One SDES item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesItem<'a> {
    /// What the item describes.
    pub kind: SdesItemType,
    /// The item's value: UTF-8 by the RFC, but arbitrary bytes on the wire.
    pub text: &'a [u8],
}

impl<'a> SdesItem<'a> {
    /// The value as text; borrowed when it is valid UTF-8, which it nearly always is.
    pub fn text_lossy(&self) -> Cow<'a, str> {
        String::from_utf8_lossy(self.text)
    }

    /// For a PRIV item, its (prefix, value) split by the prefix length byte.
    pub fn priv_parts(&self) -> Option<(&'a [u8], &'a [u8])> {
        if self.kind != SdesItemType::Priv {
            return None;
        }
        let (&len, rest) = self.text.split_first()?;
        let len = usize::from(len);
        (len <= rest.len()).then(|| rest.split_at(len))
    }
}

/// BYE: sources leaving, with an optional reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bye<'a> {
    ssrcs: &'a [u8],
    reason: Option<&'a [u8]>,
}

impl<'a> Bye<'a> {
    /// The sources leaving.
    pub fn ssrcs(&self) -> impl Iterator<Item = u32> + 'a {
        self.ssrcs
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// The reason for leaving, if given.
    pub fn reason(&self) -> Option<&'a [u8]> {
        self.reason
    }

    /// The reason as text, borrowed when valid UTF-8.
    pub fn reason_lossy(&self) -> Option<Cow<'a, str>> {
        self.reason.map(String::from_utf8_lossy)
    }
}

/// Fuzzing entry point: parses `data` as a compound packet and walks every packet, block,
/// chunk and item; must never panic.
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) {
    use std::hint::black_box;
    // The raw iterator runs even on invalid input, so the per-packet parsers see more cases.
    for packet in (RtcpIter { rest: data }).flatten() {
        walk(packet);
    }
    let Ok(compound) = CompoundPacket::parse(data) else {
        return;
    };
    for packet in compound.iter() {
        let packet = packet.expect("validated compound packet yielded an error");
        black_box(packet.packet_type());
        walk(packet);
    }

    fn walk(packet: RtcpPacket<'_>) {
        match packet {
            RtcpPacket::SenderReport(sr) => {
                for b in sr.report_blocks() {
                    black_box(b);
                }
                black_box(sr.profile_extension());
            }
            RtcpPacket::ReceiverReport(rr) => {
                for b in rr.report_blocks() {
                    black_box(b);
                }
                black_box(rr.profile_extension());
            }
            RtcpPacket::SourceDescription(sdes) => {
                for chunk in sdes.chunks() {
                    black_box(chunk.cname());
                    for item in chunk.items() {
                        black_box(item.text_lossy());
                        black_box(item.priv_parts());
                    }
                }
            }
            RtcpPacket::Goodbye(bye) => {
                black_box(bye.ssrcs().count());
                black_box(bye.reason_lossy());
            }
            other => {
                black_box(other);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const SR: &[u8] = &[
        0x81, 200, 0x00, 0x0c, // V=2 RC=1, SR, 13 words
        0x11, 0x22, 0x33, 0x44, // sender SSRC
        0xe4, 0x6b, 0x2a, 0x3f, 0x80, 0x00, 0x00, 0x00, // NTP 32.32
        0x00, 0x01, 0xe2, 0x40, // RTP timestamp 123456
        0x00, 0x00, 0x00, 0x64, // 100 packets
        0x00, 0x00, 0x3e, 0x80, // 16000 octets
        0x55, 0x66, 0x77, 0x88, // report block: source
        0x19, 0xff, 0xff, 0xfe, // fraction 25/256, cumulative -2
        0x00, 0x01, 0x1a, 0x2b, // extended highest seq
        0x00, 0x00, 0x00, 0x20, // jitter
        0x2a, 0x3f, 0x80, 0x00, // LSR
        0x00, 0x00, 0x80, 0x00, // DLSR 0.5 s
    ];
    const RR: &[u8] = &[
        0x81, 201, 0x00, 0x07, //
        0x99, 0x88, 0x77, 0x66, //
        0x11, 0x22, 0x33, 0x44, //
        0x00, 0x00, 0x01, 0x00, // fraction 0, cumulative 256
        0x00, 0x00, 0xff, 0xff, //
        0x00, 0x00, 0x01, 0x00, //
        0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00,
    ];
    const SDES: &[u8] = &[
        0x82, 202, 0x00, 0x08, // two chunks, 9 words
        0x11, 0x22, 0x33, 0x44, // chunk 1
        0x01, 0x09, b'u', b's', b'e', b'r', b'@', b'h', b'o', b's', b't', // CNAME
        0x00, // null item, already aligned
        0x55, 0x66, 0x77, 0x88, // chunk 2
        0x01, 0x06, b'{', b'a', b'1', b'b', b'2', b'}', // CNAME
        0x00, 0x00, 0x00, 0x00, // null item + alignment
    ];
    const BYE: &[u8] = &[
        0x81, 203, 0x00, 0x04, //
        0x11, 0x22, 0x33, 0x44, //
        0x08, b's', b'h', b'u', b't', b'd', b'o', b'w', b'n', 0x00, 0x00, 0x00,
    ];

    fn compound() -> Vec<u8> {
        [SR, RR, SDES, BYE].concat()
    }

    #[test]
    fn sr_rr_sdes_bye_compound() {
        let buf = compound();
        let c = CompoundPacket::parse(&buf).unwrap();
        let packets: Vec<_> = c.iter().map(Result::unwrap).collect();
        assert_eq!(packets.len(), 4);

        let RtcpPacket::SenderReport(sr) = packets[0] else {
            panic!("{:?}", packets[0])
        };
        assert_eq!(sr.ssrc, 0x1122_3344);
        assert_eq!(sr.ntp_timestamp, 0xe46b_2a3f_8000_0000);
        assert_eq!(sr.rtp_timestamp, 123_456);
        assert_eq!(sr.packet_count, 100);
        assert_eq!(sr.octet_count, 16_000);
        assert!(sr.profile_extension().is_empty());
        let blocks: Vec<_> = sr.report_blocks().collect();
        assert_eq!(
            blocks,
            [ReportBlock {
                ssrc: 0x5566_7788,
                fraction_lost: 25,
                cumulative_lost: -2,
                highest_seq: 0x0001_1a2b,
                jitter: 32,
                last_sr: 0x2a3f_8000,
                delay_since_last_sr: 0x8000,
            }]
        );

        let RtcpPacket::ReceiverReport(rr) = packets[1] else {
            panic!("{:?}", packets[1])
        };
        assert_eq!(rr.ssrc, 0x9988_7766);
        assert_eq!(rr.report_blocks().len(), 1);
        let b = rr.report_blocks().next().unwrap();
        assert_eq!(b.cumulative_lost, 256);
        assert_eq!(b.highest_seq, 0xffff);

        let RtcpPacket::SourceDescription(sdes) = packets[2] else {
            panic!("{:?}", packets[2])
        };
        assert_eq!(sdes.chunk_count(), 2);
        let chunks: Vec<_> = sdes.chunks().collect();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].ssrc, 0x1122_3344);
        assert_eq!(chunks[0].cname(), Some(&b"user@host"[..]));
        assert_eq!(chunks[1].ssrc, 0x5566_7788);
        let item = chunks[1].items().next().unwrap();
        assert_eq!(item.kind, SdesItemType::Cname);
        assert_eq!(item.text_lossy(), "{a1b2}");
        assert_eq!(chunks[1].items().count(), 1);

        let RtcpPacket::Goodbye(bye) = packets[3] else {
            panic!("{:?}", packets[3])
        };
        assert_eq!(bye.ssrcs().collect::<Vec<_>>(), [0x1122_3344]);
        assert_eq!(bye.reason(), Some(&b"shutdown"[..]));
        assert_eq!(bye.reason_lossy().as_deref(), Some("shutdown"));

        let types: Vec<_> = c.iter().map(|p| p.unwrap().packet_type()).collect();
        assert_eq!(types, [200, 201, 202, 203]);
        assert_eq!(c.as_bytes().len(), buf.len());
    }

    #[test]
    fn reduced_size_single_packets() {
        // RFC 5506: a lone PLI, no SR/RR first.
        let pli = [0x81, 206, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 2];
        let c = CompoundPacket::parse(&pli).unwrap();
        let p: Vec<_> = c.iter().collect();
        assert_eq!(
            p,
            [Ok(RtcpPacket::Other {
                packet_type: 206,
                count: 1,
                body: &pli[4..]
            })]
        );

        // An RR with no report blocks, the smallest "report" there is.
        let rr = [0x80, 201, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef];
        let c = CompoundPacket::parse(&rr).unwrap();
        let Some(Ok(RtcpPacket::ReceiverReport(r))) = c.iter().next() else {
            panic!()
        };
        assert_eq!(r.ssrc, 0xdead_beef);
        assert_eq!(r.report_blocks().count(), 0);

        // A BYE with no sources at all is only a header.
        let bye = [0x80, 203, 0x00, 0x00];
        let c = CompoundPacket::parse(&bye).unwrap();
        let Some(Ok(RtcpPacket::Goodbye(b))) = c.iter().next() else {
            panic!()
        };
        assert_eq!(b.ssrcs().count(), 0);
        assert_eq!(b.reason(), None);

        // APP with subtype 3 and name "TEST".
        let app = [
            0x83, 204, 0x00, 0x03, 0, 0, 0, 9, b'T', b'E', b'S', b'T', 1, 2, 3, 4,
        ];
        let c = CompoundPacket::parse(&app).unwrap();
        assert_eq!(
            c.iter().next(),
            Some(Ok(RtcpPacket::App {
                subtype: 3,
                ssrc: 9,
                name: *b"TEST",
                data: &[1, 2, 3, 4]
            }))
        );
    }

    #[test]
    fn length_mismatches() {
        assert_eq!(CompoundPacket::parse(&[]).unwrap_err(), RtcpError::TooShort);
        assert_eq!(
            CompoundPacket::parse(&[0x80, 201]).unwrap_err(),
            RtcpError::TooShort
        );

        // Length field one word too long for the datagram.
        let mut buf = SR.to_vec();
        buf[3] = 0x0d;
        assert_eq!(
            CompoundPacket::parse(&buf).unwrap_err(),
            RtcpError::LengthMismatch {
                declared: 56,
                available: 52
            }
        );
        // In a compound the overlong SR swallows the RR header, and the RR's SSRC is then
        // read as a header announcing far more than remains.
        let mut buf = compound();
        buf[3] = 0x0d;
        assert!(matches!(
            CompoundPacket::parse(&buf).unwrap_err(),
            RtcpError::LengthMismatch { .. }
        ));

        // Length field one word too short: the SR loses its report block's tail, and the
        // next "header" lands inside the block.
        let mut buf = compound();
        buf[3] = 0x0b;
        assert_eq!(
            CompoundPacket::parse(&buf).unwrap_err(),
            RtcpError::BodyTooShort {
                packet_type: 200,
                count: 1
            }
        );

        // Trailing bytes that do not make a header, and a trailing header that overruns.
        let mut buf = compound();
        buf.extend_from_slice(&[0x80, 201]);
        assert_eq!(
            CompoundPacket::parse(&buf).unwrap_err(),
            RtcpError::TooShort
        );
        let mut buf = compound();
        buf.extend_from_slice(&[0x80, 201, 0x00, 0x01]);
        assert_eq!(
            CompoundPacket::parse(&buf).unwrap_err(),
            RtcpError::LengthMismatch {
                declared: 8,
                available: 4
            }
        );

        // A report count larger than the body.
        let rr = [0x82, 201, 0x00, 0x07, 0, 0, 0, 1];
        let mut rr = rr.to_vec();
        rr.resize(32, 0);
        assert_eq!(
            CompoundPacket::parse(&rr).unwrap_err(),
            RtcpError::BodyTooShort {
                packet_type: 201,
                count: 2
            }
        );
        // A BYE whose source count overruns, and one whose reason overruns.
        assert_eq!(
            CompoundPacket::parse(&[0x82, 203, 0x00, 0x01, 0, 0, 0, 1]).unwrap_err(),
            RtcpError::BodyTooShort {
                packet_type: 203,
                count: 2
            }
        );
        assert_eq!(
            CompoundPacket::parse(&[0x81, 203, 0x00, 0x02, 0, 0, 0, 1, 4, b'a', b'b', b'c'])
                .unwrap_err(),
            RtcpError::BadByeReason
        );
        // APP without its name.
        assert_eq!(
            CompoundPacket::parse(&[0x80, 204, 0x00, 0x01, 0, 0, 0, 1]).unwrap_err(),
            RtcpError::BodyTooShort {
                packet_type: 204,
                count: 0
            }
        );
    }

    #[test]
    fn bad_version_anywhere() {
        let mut buf = compound();
        buf[0] = 0x41;
        assert_eq!(
            CompoundPacket::parse(&buf).unwrap_err(),
            RtcpError::BadVersion(1)
        );
        let mut buf = compound();
        buf[SR.len()] &= 0x3f;
        assert_eq!(
            CompoundPacket::parse(&buf).unwrap_err(),
            RtcpError::BadVersion(0)
        );
        // The raw iterator yields the good packet, then the error, then stops.
        let mut it = RtcpIter { rest: &buf };
        assert!(matches!(it.next(), Some(Ok(RtcpPacket::SenderReport(_)))));
        assert_eq!(it.next(), Some(Err(RtcpError::BadVersion(0))));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn padding() {
        // BYE with one source and four bytes of padding in the last packet.
        let bye = [0xa1, 203, 0x00, 0x02, 0, 0, 0, 7, 0, 0, 0, 4];
        let mut buf = [SR, &bye].concat();
        let c = CompoundPacket::parse(&buf).unwrap();
        let Some(Ok(RtcpPacket::Goodbye(b))) = c.iter().nth(1) else {
            panic!()
        };
        assert_eq!(b.ssrcs().collect::<Vec<_>>(), [7]);
        assert_eq!(b.reason(), None);

        let last = buf.len() - 1;
        buf[last] = 0;
        assert_eq!(
            CompoundPacket::parse(&buf).unwrap_err(),
            RtcpError::BadPadding
        );
        buf[last] = 9;
        assert_eq!(
            CompoundPacket::parse(&buf).unwrap_err(),
            RtcpError::BadPadding
        );
        // Padding eating into the source list is caught by the count check.
        buf[last] = 8;
        assert_eq!(
            CompoundPacket::parse(&buf).unwrap_err(),
            RtcpError::BodyTooShort {
                packet_type: 203,
                count: 1
            }
        );
        // A header-only packet with the P bit has nowhere to keep the count.
        assert_eq!(
            CompoundPacket::parse(&[0xa0, 203, 0x00, 0x00]).unwrap_err(),
            RtcpError::BadPadding
        );
    }

    #[test]
    fn sdes_edge_cases() {
        // Missing null item.
        let no_null = [0x81, 202, 0x00, 0x02, 0, 0, 0, 1, 0x01, 0x02, b'a', b'b'];
        assert_eq!(
            CompoundPacket::parse(&no_null).unwrap_err(),
            RtcpError::BadSdes
        );
        // Item length running past the packet.
        let overrun = [0x81, 202, 0x00, 0x02, 0, 0, 0, 1, 0x01, 0x09, b'a', 0];
        assert_eq!(
            CompoundPacket::parse(&overrun).unwrap_err(),
            RtcpError::BadSdes
        );
        // Item type byte is the last byte, with no room for its length.
        let cut = [0x81, 202, 0x00, 0x01, 0, 0, 0, 1];
        assert_eq!(CompoundPacket::parse(&cut).unwrap_err(), RtcpError::BadSdes);
        // Fewer chunks than counted.
        let mut two = SDES.to_vec();
        two[0] = 0x83;
        assert_eq!(CompoundPacket::parse(&two).unwrap_err(), RtcpError::BadSdes);
        // Garbage after the counted chunks.
        let mut one = SDES.to_vec();
        one[0] = 0x81;
        assert_eq!(CompoundPacket::parse(&one).unwrap_err(), RtcpError::BadSdes);
        // Chunk with no items: SSRC then a word of zeros.
        let empty = [0x81, 202, 0x00, 0x02, 0, 0, 0, 5, 0, 0, 0, 0];
        let c = CompoundPacket::parse(&empty).unwrap();
        let Some(Ok(RtcpPacket::SourceDescription(s))) = c.iter().next() else {
            panic!()
        };
        let chunk = s.chunks().next().unwrap();
        assert_eq!(chunk.ssrc, 5);
        assert_eq!(chunk.items().count(), 0);
        assert_eq!(chunk.cname(), None);
        // PRIV item: prefix length, prefix, value; plus an unknown type kept as Unknown.
        let privy = [
            0x81, 202, 0x00, 0x04, 0, 0, 0, 5, //
            0x08, 0x05, 0x02, b'x', b'y', b'v', b'1', //
            0x63, 0x01, b'z', //
            0x00, 0x00,
        ];
        let c = CompoundPacket::parse(&privy).unwrap();
        let Some(Ok(RtcpPacket::SourceDescription(s))) = c.iter().next() else {
            panic!()
        };
        let items: Vec<_> = s.chunks().next().unwrap().items().collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].kind, SdesItemType::Priv);
        assert_eq!(items[0].priv_parts(), Some((&b"xy"[..], &b"v1"[..])));
        assert_eq!(items[1].kind, SdesItemType::Unknown(0x63));
        assert_eq!(items[1].priv_parts(), None);
        // Invalid UTF-8 is replaced, not rejected.
        let bad_utf8 = SdesItem {
            kind: SdesItemType::Note,
            text: &[b'a', 0xff],
        };
        assert_eq!(bad_utf8.text_lossy(), "a\u{fffd}");
    }

    #[test]
    fn cumulative_lost_is_sign_extended() {
        let mut block = [0u8; REPORT_BLOCK_LEN];
        for (bytes, want) in [
            ([0x00, 0x00, 0x00], 0),
            ([0x7f, 0xff, 0xff], 0x7f_ffff),
            ([0x80, 0x00, 0x00], -0x80_0000),
            ([0xff, 0xff, 0xff], -1),
        ] {
            block[5..8].copy_from_slice(&bytes);
            assert_eq!(ReportBlock::from_bytes(&block).cumulative_lost, want);
        }
    }

    /// Every prefix of a valid compound packet either fails or ends on a packet boundary.
    #[test]
    fn every_prefix_is_an_error_or_a_packet_boundary() {
        let buf = compound();
        let boundaries = [
            SR.len(),
            SR.len() + RR.len(),
            SR.len() + RR.len() + SDES.len(),
        ];
        for n in 0..buf.len() {
            fuzz_parse(&buf[..n]);
            match CompoundPacket::parse(&buf[..n]) {
                Ok(c) => {
                    assert!(boundaries.contains(&n), "prefix {n} parsed");
                    assert!(c.iter().all(|p| p.is_ok()));
                }
                Err(RtcpError::BadVersion(_)) => panic!("prefix {n}: version is fine"),
                Err(_) => {}
            }
        }
    }

    /// Random bytes and random mutations of a valid compound never panic.
    #[test]
    fn random_inputs_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0002);
        let mut buf = [0u8; 128];
        for _ in 0..50_000 {
            let len = rng.gen_range(0..buf.len());
            rng.fill(&mut buf[..len]);
            // Plausible headers so the per-type parsers are reached.
            if len > 4 && rng.gen_bool(0.8) {
                buf[0] = (buf[0] & 0x3f) | 0x80;
                buf[1] = rng.gen_range(200..=207);
                buf[2] = 0;
                buf[3] = rng.gen_range(0..(len / 4) as u8 + 1);
            }
            fuzz_parse(&buf[..len]);
        }
        let valid = compound();
        for _ in 0..50_000 {
            let mut pkt = valid.clone();
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
            "bad_version",
            "bye_reason_overrun",
            "length_overrun",
            "rc_overrun",
            "sdes_no_null",
            "truncated_compound",
        ];
        let seeds = crate::test_util::fuzz_seeds("rtcp");
        for (stem, data) in &seeds {
            fuzz_parse(data);
            let valid = !INVALID.contains(&stem.as_str());
            assert_eq!(CompoundPacket::parse(data).is_ok(), valid, "{stem}");
        }
        assert!(seeds.len() >= 12, "only {} seeds", seeds.len());
    }
}
