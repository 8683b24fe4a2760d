//! Reading UDP datagrams out of pcap and pcapng captures.
//!
//! Container parsing is `pcap-parser`'s, link/IP/UDP decoding `etherparse`'s; what is ours is
//! the policy: which link types we accept (Ethernet, Linux cooked v1/v2, raw IP, BSD
//! loopback), how timestamps of every resolution become [`Micros`], and that a damaged or
//! truncated capture yields every datagram before the damage plus a counted reason, never a
//! panic.

use std::fmt;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use media_core::time::Micros;
use pcap_parser::{create_reader, Linktype, PcapBlockOwned, PcapError};

/// A UDP datagram found in a capture.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// Capture time, microseconds since the Unix epoch.
    pub ts: Micros,
    /// UDP source.
    pub src: SocketAddr,
    /// UDP destination.
    pub dst: SocketAddr,
    /// The UDP payload.
    pub payload: &'a [u8],
}

/// What a capture held besides UDP datagrams, for the report.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CaptureStats {
    /// Packet records read.
    pub frames: u64,
    /// UDP datagrams handed on.
    pub udp_datagrams: u64,
    /// Records that are not UDP (TCP, ARP, ICMP, ...).
    pub not_udp: u64,
    /// Records of a link type we cannot decode.
    pub unsupported_link: u64,
    /// Records whose headers do not parse, or were cut short by the capture's snap length.
    pub undecodable: u64,
    /// IP fragments (not reassembled; RTP is never fragmented in practice).
    pub fragments: u64,
    /// True if the file ended in the middle of a record (a capture killed while writing).
    pub truncated: bool,
}

/// An error that stops reading a capture.
#[derive(Debug)]
pub enum CaptureError {
    /// The file is neither pcap nor pcapng.
    NotACapture,
    /// The container is damaged at the given byte offset.
    Damaged { offset: usize, reason: String },
    /// Reading the file failed.
    Io(std::io::Error),
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::NotACapture => write!(f, "not a pcap or pcapng capture"),
            CaptureError::Damaged { offset, reason } => {
                write!(f, "capture damaged at byte {offset}: {reason}")
            }
            CaptureError::Io(e) => write!(f, "reading capture: {e}"),
        }
    }
}

impl std::error::Error for CaptureError {}

/// Largest record we accept; pcap-parser's buffer grows up to this.
const MAX_RECORD: usize = 16 << 20;

/// Per pcapng interface: link type and timestamp resolution.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link: Linktype,
    /// Timestamp units per second.
    resolution: u64,
    offset: u64,
}

/// Reads every UDP datagram of a capture in file order, calling `f` for each.
///
/// Returns the statistics. A file that ends mid-record is not an error (`truncated` is set);
/// a corrupt container is, after every datagram before the damage has been delivered.
pub fn read_datagrams<R: Read + Send>(
    input: R,
    mut f: impl FnMut(&Datagram<'_>),
) -> Result<CaptureStats, CaptureError> {
    let mut stats = CaptureStats::default();
    let mut reader = match create_reader(1 << 20, input) {
        Ok(r) => r,
        Err(PcapError::HeaderNotRecognized) | Err(PcapError::Eof) => {
            return Err(CaptureError::NotACapture)
        }
        Err(PcapError::ReadError) => {
            return Err(CaptureError::Io(std::io::Error::other("read failed")))
        }
        Err(_) => {
            // A header shorter than its minimum: a capture cut right at the start.
            stats.truncated = true;
            return Ok(stats);
        }
    };
    let mut legacy = Interface {
        link: Linktype::ETHERNET,
        resolution: 1_000_000,
        offset: 0,
    };
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut capacity = 1 << 16;
    loop {
        match reader.next() {
            Ok((consumed, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy.link = h.network;
                        legacy.resolution = if h.is_nanosecond_precision() {
                            1_000_000_000
                        } else {
                            1_000_000
                        };
                    }
                    PcapBlockOwned::Legacy(b) => {
                        stats.frames += 1;
                        let ts = (b.ts_sec as u64) * legacy.resolution + b.ts_usec as u64;
                        let ts = to_micros(ts, legacy.resolution, 0);
                        decode(
                            legacy.link,
                            ts,
                            b.data,
                            b.caplen < b.origlen,
                            &mut stats,
                            &mut f,
                        );
                    }
                    PcapBlockOwned::NG(block) => {
                        use pcap_parser::Block;
                        match block {
                            Block::SectionHeader(_) => interfaces.clear(),
                            Block::InterfaceDescription(idb) => interfaces.push(Interface {
                                link: idb.linktype,
                                // An absurd resolution (10^20, 2^70) is treated as
                                // microseconds rather than rejected: the packets still matter.
                                resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                                offset: idb.ts_offset().max(0) as u64,
                            }),
                            Block::EnhancedPacket(epb) => {
                                stats.frames += 1;
                                match interfaces.get(epb.if_id as usize) {
                                    Some(iface) => {
                                        let raw = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                                        let ts = to_micros(raw, iface.resolution, iface.offset);
                                        decode(
                                            iface.link,
                                            ts,
                                            epb.data,
                                            epb.caplen < epb.origlen,
                                            &mut stats,
                                            &mut f,
                                        );
                                    }
                                    None => stats.undecodable += 1,
                                }
                            }
                            Block::SimplePacket(spb) => {
                                stats.frames += 1;
                                // Simple packets have no timestamp; they belong to interface 0.
                                match interfaces.first() {
                                    Some(iface) => decode(
                                        iface.link,
                                        Micros(0),
                                        spb.data,
                                        false,
                                        &mut stats,
                                        &mut f,
                                    ),
                                    None => stats.undecodable += 1,
                                }
                            }
                            _ => {}
                        }
                    }
                }
                reader.consume(consumed);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.refill().is_err() {
                    return Err(CaptureError::Io(std::io::Error::other("read failed")));
                }
            }
            Err(PcapError::UnexpectedEof) => {
                stats.truncated = true;
                break;
            }
            Err(PcapError::BufferTooSmall) => {
                if capacity >= MAX_RECORD || !reader.grow(capacity * 2) {
                    return Err(CaptureError::Damaged {
                        offset: reader.consumed(),
                        reason: format!("record larger than {MAX_RECORD} bytes"),
                    });
                }
                capacity *= 2;
                if reader.refill().is_err() {
                    return Err(CaptureError::Io(std::io::Error::other("read failed")));
                }
            }
            Err(e) => {
                let reason = format!("{e:?}");
                return Err(CaptureError::Damaged {
                    offset: reader.consumed(),
                    reason,
                });
            }
        }
    }
    Ok(stats)
}

fn to_micros(units: u64, resolution: u64, offset_secs: u64) -> Micros {
    let us = if resolution == 1_000_000 {
        units
    } else {
        (units as u128 * 1_000_000 / resolution as u128).min(u64::MAX as u128) as u64
    };
    Micros(us.saturating_add(offset_secs.saturating_mul(1_000_000)))
}

fn decode(
    link: Linktype,
    ts: Micros,
    data: &[u8],
    snapped: bool,
    stats: &mut CaptureStats,
    f: &mut impl FnMut(&Datagram<'_>),
) {
    let sliced = match link {
        Linktype::ETHERNET => SlicedPacket::from_ethernet(data),
        Linktype::LINUX_SLL => SlicedPacket::from_linux_sll(data),
        // SLL2: 20-byte header with the protocol type first.
        Linktype::LINUX_SLL2 => match data.get(20..) {
            Some(rest) => SlicedPacket::from_ether_type(
                etherparse::EtherType(u16::from_be_bytes([data[0], data[1]])),
                rest,
            ),
            None => {
                stats.undecodable += 1;
                return;
            }
        },
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => SlicedPacket::from_ip(data),
        // BSD loopback: a 4-byte address family in host order, then IP.
        Linktype::NULL | Linktype::LOOP => match data.get(4..) {
            Some(rest) => SlicedPacket::from_ip(rest),
            None => {
                stats.undecodable += 1;
                return;
            }
        },
        _ => {
            stats.unsupported_link += 1;
            return;
        }
    };
    let Ok(sliced) = sliced else {
        stats.undecodable += 1;
        return;
    };
    let (src_ip, dst_ip, fragmented) = match &sliced.net {
        Some(NetSlice::Ipv4(ip)) => (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
            ip.is_payload_fragmented(),
        ),
        Some(NetSlice::Ipv6(ip)) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
            ip.is_payload_fragmented(),
        ),
        _ => {
            stats.not_udp += 1;
            return;
        }
    };
    if fragmented {
        stats.fragments += 1;
        return;
    }
    let Some(TransportSlice::Udp(udp)) = &sliced.transport else {
        stats.not_udp += 1;
        return;
    };
    let payload = udp.payload();
    // A record cut by the snap length carries a partial datagram: useless for SRTP (the tag
    // is at the end) and misleading for RTP, so it is counted rather than delivered.
    if snapped || payload.len() + 8 < udp.length() as usize {
        stats.undecodable += 1;
        return;
    }
    stats.udp_datagrams += 1;
    f(&Datagram {
        ts,
        src: SocketAddr::new(src_ip, udp.source_port()),
        dst: SocketAddr::new(dst_ip, udp.destination_port()),
        payload,
    });
}

/// Fuzzing entry point: reads a capture from memory; must never panic.
#[doc(hidden)]
pub fn fuzz_read(data: &[u8]) {
    let mut n = 0usize;
    let _ = read_datagrams(data, |d| n = n.wrapping_add(d.payload.len()));
}
