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

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    const PAYLOAD: &[u8] = b"\x80\x6f\x00\x01rtp-ish payload";

    fn udp_ipv4() -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(4000, 5000)
            .write(&mut v, PAYLOAD)
            .unwrap();
        v
    }

    fn ethernet(ip: &[u8]) -> Vec<u8> {
        let mut v = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        v.extend_from_slice(ip);
        v
    }

    /// A legacy pcap: (magic as written little-endian or big-endian, link type, records).
    fn pcap(
        big_endian: bool,
        nanos: bool,
        link: u32,
        records: &[(u32, u32, &[u8], u32)],
    ) -> Vec<u8> {
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let w32 = |v: &mut Vec<u8>, x: u32| {
            v.extend_from_slice(&if big_endian {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        };
        let w16 = |v: &mut Vec<u8>, x: u16| {
            v.extend_from_slice(&if big_endian {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        };
        let mut v = Vec::new();
        w32(&mut v, magic);
        w16(&mut v, 2);
        w16(&mut v, 4);
        w32(&mut v, 0);
        w32(&mut v, 0);
        w32(&mut v, 65535);
        w32(&mut v, link);
        for &(sec, frac, data, orig) in records {
            w32(&mut v, sec);
            w32(&mut v, frac);
            w32(&mut v, data.len() as u32);
            w32(&mut v, orig);
            v.extend_from_slice(data);
        }
        v
    }

    type Got = Vec<(Micros, SocketAddr, SocketAddr, Vec<u8>)>;

    fn read(bytes: &[u8]) -> (Got, CaptureStats) {
        let mut got = Vec::new();
        let stats = read_datagrams(bytes, |d| {
            got.push((d.ts, d.src, d.dst, d.payload.to_vec()))
        })
        .unwrap();
        (got, stats)
    }

    #[test]
    fn ethernet_microsecond_pcap() {
        let f = ethernet(&udp_ipv4());
        let (got, st) = read(&pcap(
            false,
            false,
            1,
            &[(1_700_000_000, 123_456, &f, f.len() as u32)],
        ));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, Micros(1_700_000_000_123_456));
        assert_eq!(
            got[0].1,
            "10.0.0.1:4000".parse::<std::net::SocketAddr>().unwrap()
        );
        assert_eq!(
            got[0].2,
            "10.0.0.2:5000".parse::<std::net::SocketAddr>().unwrap()
        );
        assert_eq!(got[0].3, PAYLOAD);
        assert_eq!((st.frames, st.udp_datagrams), (1, 1));
    }

    #[test]
    fn nanosecond_and_big_endian_pcaps() {
        let f = ethernet(&udp_ipv4());
        for be in [false, true] {
            let (got, _) = read(&pcap(be, true, 1, &[(10, 999_999_999, &f, f.len() as u32)]));
            assert_eq!(got[0].0, Micros(10_999_999), "big endian: {be}");
            let (got, _) = read(&pcap(be, false, 1, &[(10, 5, &f, f.len() as u32)]));
            assert_eq!(got[0].0, Micros(10_000_005), "big endian: {be}");
        }
    }

    #[test]
    fn link_types() {
        let ip = udp_ipv4();
        // VLAN-tagged Ethernet.
        let mut vlan = vec![
            2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00,
        ];
        vlan.extend_from_slice(&ip);
        // Linux cooked v1: packet type, ARPHRD, address length, 8-byte address, protocol.
        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        // Linux cooked v2: protocol first, then 18 more bytes.
        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6];
        sll2.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0, 0]);
        sll2.extend_from_slice(&ip);
        // BSD loopback: AF_INET in host order.
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(&ip);
        for (link, frame) in [
            (1, vlan),
            (113, sll),
            (276, sll2),
            (101, ip.clone()),
            (228, ip.clone()),
            (0, null),
        ] {
            let (got, st) = read(&pcap(
                false,
                false,
                link,
                &[(1, 0, &frame, frame.len() as u32)],
            ));
            assert_eq!(got.len(), 1, "link type {link}: {st:?}");
            assert_eq!(got[0].3, PAYLOAD, "link type {link}");
        }
        // An unknown link type is counted, not fatal.
        let (got, st) = read(&pcap(false, false, 147, &[(1, 0, &ip, ip.len() as u32)]));
        assert!(got.is_empty());
        assert_eq!(st.unsupported_link, 1);
    }

    #[test]
    fn ipv6_udp() {
        let mut ip = Vec::new();
        PacketBuilder::ipv6(
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            64,
        )
        .udp(4000, 5000)
        .write(&mut ip, PAYLOAD)
        .unwrap();
        let (got, _) = read(&pcap(false, false, 101, &[(1, 0, &ip, ip.len() as u32)]));
        assert_eq!(
            got[0].1,
            "[2001:db8::1]:4000"
                .parse::<std::net::SocketAddr>()
                .unwrap()
        );
    }

    #[test]
    fn non_udp_fragments_and_snapped_records_are_counted() {
        let mut tcp = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1, 2, 3, 1000)
            .write(&mut tcp, b"x")
            .unwrap();
        let mut frag = udp_ipv4();
        frag[6] = 0x20; // more fragments
        let full = ethernet(&udp_ipv4());
        let snapped = &full[..full.len() - 4];
        let tcp = ethernet(&tcp);
        let frag = ethernet(&frag);
        let (got, st) = read(&pcap(
            false,
            false,
            1,
            &[
                (1, 0, &tcp, tcp.len() as u32),
                (1, 1, &frag, frag.len() as u32),
                (1, 2, snapped, full.len() as u32),
                (1, 3, &full, full.len() as u32),
            ],
        ));
        assert_eq!(got.len(), 1);
        assert_eq!(
            (st.not_udp, st.fragments, st.undecodable, st.udp_datagrams),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn truncated_capture_keeps_what_came_before() {
        let f = ethernet(&udp_ipv4());
        let file = pcap(
            false,
            false,
            1,
            &[(1, 0, &f, f.len() as u32), (2, 0, &f, f.len() as u32)],
        );
        for cut in [
            file.len() - 1,
            file.len() - f.len(),
            file.len() - f.len() - 5,
        ] {
            let (got, st) = read(&file[..cut]);
            assert_eq!(got.len(), 1, "cut at {cut}");
            assert!(st.truncated, "cut at {cut}");
        }
    }

    #[test]
    fn not_a_capture() {
        assert!(matches!(
            read_datagrams(&b"this is not a capture file at all, just text"[..], |_| {}),
            Err(CaptureError::NotACapture)
        ));
        assert!(matches!(
            read_datagrams(&b""[..], |_| {}),
            Err(CaptureError::NotACapture)
        ));
    }
}
