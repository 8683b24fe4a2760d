// Each test crate uses a different part of this module.
#![allow(dead_code)]

//! Shared by the fixture tests: records a capture the way `bot-host replay` does, in memory
//! (media-core cannot depend on bot-host, whose own tests check the real command).

use std::path::Path;

use media_core::recording::{ParticipantTrack, TrackConfig, TrackStats};
use media_core::time::Micros;
use pcap_parser::{create_reader, PcapBlockOwned, PcapError};

/// One UDP flow of a capture, recorded as a participant track.
pub struct RecordedFlow {
    /// `src-ip:port->dst-ip:port`.
    pub key: String,
    /// The track's Ogg Opus bytes.
    pub ogg: Vec<u8>,
    /// The track's counters (first arrival included).
    pub stats: TrackStats,
}

/// Records every UDP flow of an Ethernet pcap: datagrams in capture order, `now` = capture
/// time, timers driven, then finished. Flows in order of their first datagram.
pub fn record_capture(pcap: &Path) -> Vec<RecordedFlow> {
    let file = std::fs::File::open(pcap).unwrap_or_else(|e| panic!("{}: {e}", pcap.display()));
    let mut reader = create_reader(1 << 20, file).unwrap();
    let mut flows: Vec<(String, ParticipantTrack, Vec<u8>)> = Vec::new();
    let mut buf = Vec::new();
    loop {
        match reader.next() {
            Ok((consumed, block)) => {
                if let PcapBlockOwned::Legacy(b) = block {
                    let now = Micros(u64::from(b.ts_sec) * 1_000_000 + u64::from(b.ts_usec));
                    if let Some((key, payload)) = udp(b.data) {
                        let i = match flows.iter().position(|f| f.0 == key) {
                            Some(i) => i,
                            None => {
                                let mut cfg = TrackConfig::new("test", key.clone());
                                cfg.serial = flows.len() as u32 + 1;
                                flows.push((key, ParticipantTrack::new(cfg), Vec::new()));
                                flows.len() - 1
                            }
                        };
                        let (_, track, out) = &mut flows[i];
                        if track.poll_timeout().is_some_and(|at| at <= now) {
                            track.handle_timeout(now);
                        }
                        buf.clear();
                        buf.extend_from_slice(payload);
                        track.handle_datagram(now, &mut buf);
                        out.append(track.output());
                    }
                }
                reader.consume(consumed);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => reader.refill().unwrap(),
            Err(e) => panic!("{}: {e:?}", pcap.display()),
        }
    }
    flows
        .into_iter()
        .map(|(key, mut track, mut ogg)| {
            track.finish();
            ogg.append(track.output());
            RecordedFlow {
                key,
                ogg,
                stats: track.stats(),
            }
        })
        .collect()
}

/// The flow key and UDP payload of an Ethernet frame, if it is UDP over IP.
fn udp(frame: &[u8]) -> Option<(String, &[u8])> {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    let sliced = SlicedPacket::from_ethernet(frame).ok()?;
    let (src, dst): (std::net::IpAddr, std::net::IpAddr) = match &sliced.net {
        Some(NetSlice::Ipv4(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        Some(NetSlice::Ipv6(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        _ => return None,
    };
    let Some(TransportSlice::Udp(udp)) = sliced.transport else {
        return None;
    };
    let key = format!(
        "{src}:{}->{dst}:{}",
        udp.source_port(),
        udp.destination_port()
    );
    Some((key, udp.payload()))
}
