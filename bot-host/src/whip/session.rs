//! One WHIP session: a receive-only peer connection and a pump task per remote track.
//!
//! Lifetime: the session table holds the [`Session`]; the pumps hold the [`SessionShared`].
//! Ending a session removes the entry, tells the pumps to stop and closes the connection; the
//! shared part is dropped when the last pump has returned, and its `Drop` tells the sink, so
//! `session_ended` always follows the last `rtp` of that session.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::shared::marshal::Marshal;
use tokio::sync::watch;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
};

use super::sdp::{self, AnswerAudio, AUDIO_LEVEL_URI};
use super::{IcePorts, Inner, Slot, TrackInfo, WhipError, WhipSessionInfo, WhipStats};

/// The payload type we offer for Opus when we would choose; answers use the offer's.
const OPUS_PT: u8 = 111;

/// A session as the endpoint's table holds it.
pub(crate) struct Session {
    pub(crate) shared: Arc<SessionShared>,
    pc: Arc<dyn PeerConnection>,
    slot: Option<Slot>,
}

impl Session {
    pub(crate) fn with_slot(mut self, slot: Slot) -> Self {
        self.slot = Some(slot);
        self
    }

    /// Stops the pumps and closes the connection. The sink hears `session_ended` when the
    /// last pump lets go of the shared state.
    pub(crate) async fn close(self) {
        self.shared.stop.send_replace(true);
        if let Err(e) = self.pc.close().await {
            log::warn!(
                "WHIP session {}: close failed: {e}",
                self.shared.info.resource_id
            );
        }
        drop(self.slot);
    }
}

/// What the pumps and the connection's handler share.
pub(crate) struct SessionShared {
    pub(crate) info: WhipSessionInfo,
    sink: Arc<dyn super::RtpSink>,
    stats: Arc<WhipStats>,
    answer: OnceLock<AnswerAudio>,
    stop: watch::Sender<bool>,
    failed: AtomicBool,
    connected: AtomicBool,
    /// Set once the session is in the table: a session that failed during setup was never
    /// announced, so its end is not reported either.
    announced: AtomicBool,
}

impl SessionShared {
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    pub(crate) fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub(crate) fn announce(&self) {
        self.announced.store(true, Ordering::Release);
    }
}

impl Drop for SessionShared {
    fn drop(&mut self) {
        if self.announced.load(Ordering::Acquire) {
            self.stats.sessions_ended.fetch_add(1, Ordering::Relaxed);
            self.sink.session_ended(&self.info);
        }
    }
}

/// Builds the peer connection, applies the offer and returns the session with its complete
/// answer (ICE gathering finished or timed out).
pub(crate) async fn start(
    inner: &Arc<Inner>,
    info: WhipSessionInfo,
    offer_sdp: &str,
) -> Result<(Session, String), WhipError> {
    let (stop, _) = watch::channel(false);
    let shared = Arc::new(SessionShared {
        info,
        sink: Arc::clone(&inner.sink),
        stats: Arc::clone(&inner.stats),
        answer: OnceLock::new(),
        stop,
        failed: AtomicBool::new(false),
        connected: AtomicBool::new(false),
        announced: AtomicBool::new(false),
    });
    let (gathered_tx, mut gathered_rx) = watch::channel(false);
    let handler = Arc::new(Handler {
        shared: Arc::downgrade(&shared),
        endpoint: Arc::downgrade(inner),
        resource_id: shared.info.resource_id.clone(),
        gathered: gathered_tx,
    });
    let pc = build_peer_connection(inner, handler).await?;
    let session = Session {
        shared: Arc::clone(&shared),
        pc: Arc::clone(&pc),
        slot: None,
    };
    match negotiate(
        &pc,
        offer_sdp,
        inner.config.gather_timeout,
        &mut gathered_rx,
    )
    .await
    {
        Ok((answer_sdp, audio)) => {
            // Cannot be set twice: this is the only writer, once per session.
            let _ = shared.answer.set(audio);
            Ok((session, answer_sdp))
        }
        Err(e) => {
            session.close().await;
            Err(e)
        }
    }
}

async fn negotiate(
    pc: &Arc<dyn PeerConnection>,
    offer_sdp: &str,
    gather_timeout: Duration,
    gathered: &mut watch::Receiver<bool>,
) -> Result<(String, AnswerAudio), WhipError> {
    let bad = |e: webrtc::error::Error| WhipError::BadOffer(e.to_string());
    let offer = RTCSessionDescription::offer(offer_sdp.to_owned()).map_err(bad)?;
    pc.set_remote_description(offer).await.map_err(bad)?;
    let answer = pc.create_answer(None).await.map_err(bad)?;
    pc.set_local_description(answer)
        .await
        .map_err(|e| WhipError::WebRtc(format!("applying our answer: {e}")))?;
    // WHIP clients need not trickle, so the answer must carry every candidate. On timeout we
    // answer with what was gathered; the candidate check below refuses an empty answer.
    if tokio::time::timeout(gather_timeout, gathered.wait_for(|done| *done))
        .await
        .is_err()
    {
        log::warn!("WHIP: ICE gathering not complete after {gather_timeout:?}; answering with the candidates gathered so far");
    }
    let local = pc
        .local_description()
        .await
        .ok_or_else(|| WhipError::WebRtc("no local description after answering".into()))?;
    let audio = sdp::answer_audio(&local.sdp)
        .map_err(|e| WhipError::WebRtc(format!("our own answer does not parse: {e}")))?;
    let opus = audio.codecs.values().any(|enc| {
        enc.split('/')
            .next()
            .is_some_and(|n| n.eq_ignore_ascii_case("opus"))
    });
    if !opus {
        return Err(WhipError::BadOffer(
            "no audio section could be accepted with Opus".into(),
        ));
    }
    if !local.sdp.contains("a=candidate:") {
        return Err(WhipError::WebRtc(
            "no local ICE candidate was gathered".into(),
        ));
    }
    Ok((local.sdp, audio))
}

async fn build_peer_connection(
    inner: &Arc<Inner>,
    handler: Arc<Handler>,
) -> Result<Arc<dyn PeerConnection>, WhipError> {
    let ips = &inner.config.host_ips;
    match inner.config.ports {
        IcePorts::Ephemeral => {
            let addrs = ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect();
            let pc = peer_builder(&inner.config, &handler, addrs)?
                .build()
                .await
                .map_err(stack_error)?;
            Ok(Arc::new(pc))
        }
        IcePorts::Range { first, last } => {
            // Probe and bind under one lock, so two sessions of this endpoint cannot both
            // find the same port free.
            let mut next = inner.next_port.lock().await;
            for _ in 0..=u32::from(last - first) {
                let port = *next;
                *next = if port >= last { first } else { port + 1 };
                if !port_free(ips, port) {
                    continue;
                }
                let addrs = ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
                match peer_builder(&inner.config, &handler, addrs)?.build().await {
                    Ok(pc) => return Ok(Arc::new(pc)),
                    // Taken by another process between probe and bind: try the next one.
                    Err(e) => log::debug!("WHIP: port {port} failed to bind: {e}"),
                }
            }
            Err(WhipError::NoFreePort { first, last })
        }
    }
}

fn stack_error(e: webrtc::error::Error) -> WhipError {
    WhipError::WebRtc(e.to_string())
}

/// A receive-only, Opus-only peer connection on the given local addresses.
fn peer_builder(
    config: &super::WhipConfig,
    handler: &Arc<Handler>,
    addrs: Vec<SocketAddr>,
) -> Result<PeerConnectionBuilder<SocketAddr>, WhipError> {
    let mut media_engine = MediaEngine::default();
    // Opus only: a video or other audio codec in the offer finds no match and its section is
    // rejected in the answer.
    media_engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_OPUS.to_owned(),
                    clock_rate: 48000,
                    channels: 2,
                    sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                    rtcp_feedback: vec![],
                },
                payload_type: OPUS_PT,
            },
            RtpCodecKind::Audio,
        )
        .map_err(stack_error)?;
    // Accepted when offered, so the recording gets the sender's levels (RFC 6464).
    media_engine
        .register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: AUDIO_LEVEL_URI.to_owned(),
            },
            RtpCodecKind::Audio,
            None,
        )
        .map_err(stack_error)?;
    // Receiver reports and the rest of the stack's defaults (NACK is registered for video
    // codecs only, so audio gets none).
    let registry =
        register_default_interceptors(Registry::new(), &mut media_engine).map_err(stack_error)?;
    // Host candidates over UDP/IPv4 only, and no mDNS: a browser's `.local` candidates are not
    // needed (its checks reach us and become peer-reflexive), and the recorder's own addresses
    // are what the operator configured.
    let setting_engine = SettingEngineBuilder::new()
        .with_network_types(vec![NetworkType::Udp4])
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_ice_timeouts(
            Some(config.ice_disconnected_timeout),
            Some(config.ice_failed_timeout),
            None,
        )
        .build();
    Ok(PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine)
        .with_setting_engine(setting_engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::clone(handler) as Arc<dyn PeerConnectionEventHandler>)
        .with_udp_addrs(addrs))
}

/// Whether `port` can be bound on every host address (each probed alone: a wildcard and a
/// specific address on one port conflict with each other but not with what webrtc binds).
fn port_free(ips: &[IpAddr], port: u16) -> bool {
    ips.iter()
        .all(|ip| UdpSocket::bind(SocketAddr::new(*ip, port)).is_ok())
}

/// The connection's event handler. Holds weak references: the connection's driver owns it,
/// and the session must not be kept alive by its own connection.
struct Handler {
    shared: Weak<SessionShared>,
    endpoint: Weak<Inner>,
    resource_id: String,
    gathered: watch::Sender<bool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.send_replace(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        log::debug!("WHIP session {}: {state}", self.resource_id);
        match state {
            RTCPeerConnectionState::Connected => {
                if let Some(shared) = self.shared.upgrade() {
                    shared.connected.store(true, Ordering::Release);
                }
            }
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                if let Some(shared) = self.shared.upgrade() {
                    shared.failed.store(true, Ordering::Release);
                }
                if let Some(endpoint) = self.endpoint.upgrade() {
                    // On a task of its own: this callback runs on the connection's driver, and
                    // closing waits for the driver (to take the close request, then to stop).
                    let resource_id = self.resource_id.clone();
                    tokio::spawn(async move { endpoint.end_session(&resource_id).await });
                }
            }
            _ => {}
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        tokio::spawn(pump(shared, track));
    }
}

/// Moves one remote track's packets to the sink until the track ends or the session stops.
/// A non-audio track (a video section the stack did not refuse) is drained and counted, so its
/// events cannot back up into the connection's driver.
async fn pump(shared: Arc<SessionShared>, track: Arc<dyn TrackRemote>) {
    let mut stop = shared.stop.subscribe();
    let audio = track.kind().await == RtpCodecKind::Audio;
    let mut current_ssrc: Option<u32> = None;
    loop {
        let event = tokio::select! {
            event = track.poll() => event,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let packet = match event {
            None | Some(TrackRemoteEvent::OnEnded) => break,
            Some(TrackRemoteEvent::OnRtpPacket(packet)) => packet,
            Some(_) => continue,
        };
        if !audio {
            shared.stats.rtp_dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let ssrc = packet.header.ssrc;
        if current_ssrc != Some(ssrc) {
            current_ssrc = Some(ssrc);
            let info = track_info(&shared, &track, ssrc, packet.header.payload_type).await;
            shared.sink.track_started(&shared.info, &info);
        }
        match packet.marshal() {
            Ok(bytes) => {
                shared.stats.rtp_packets.fetch_add(1, Ordering::Relaxed);
                shared.sink.rtp(&shared.info, bytes.freeze());
            }
            Err(e) => {
                log::debug!("WHIP: RTP packet not re-serialisable: {e}");
                shared.stats.rtp_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The codec of a stream: the stack's negotiated codec for the SSRC, else our answer's rtpmap
/// for the payload type.
async fn track_info(
    shared: &SessionShared,
    track: &Arc<dyn TrackRemote>,
    ssrc: u32,
    payload_type: u8,
) -> TrackInfo {
    let answer = shared.answer.get();
    let rtpmap = answer.and_then(|a| a.codecs.get(&payload_type));
    let (mut mime_type, mut clock_rate, mut channels) = match rtpmap {
        Some(enc) => {
            let mut parts = enc.split('/');
            let name = parts.next().unwrap_or_default();
            let clock = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
            let channels = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1);
            (
                format!("audio/{}", name.to_ascii_lowercase()),
                clock,
                channels,
            )
        }
        None => (String::new(), 0, 0),
    };
    if let Some(codec) = track.codec(ssrc).await {
        mime_type = codec.mime_type.to_ascii_lowercase();
        clock_rate = codec.clock_rate;
        channels = codec.channels;
    }
    TrackInfo {
        ssrc,
        payload_type,
        mime_type,
        clock_rate,
        channels,
        audio_level_ext_id: answer.and_then(|a| a.audio_level_id),
    }
}
