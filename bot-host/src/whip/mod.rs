//! WebRTC ingest through WHIP (RFC 9725): any WHIP sender, a browser included, POSTs an SDP
//! offer, gets a complete (non-trickle) answer, and its audio arrives as plain RTP in an
//! [`RtpSink`].
//!
//! The WebRTC stack is webrtc-rs (`webrtc` 0.21, an async driver over the sans-IO `rtc` core;
//! see `docs/webrtc.md`). One peer connection per WHIP session, each with its own UDP sockets on
//! the configured host addresses; ICE is restricted to UDP over IPv4 host candidates, which is
//! what a recorder reachable on its own network needs and what works on loopback.
//!
//! Modules: [`sdp`] (offer checks, answer reading), `session` (the peer connection and the
//! per-track pumps), `http` (the axum router with WHIP's status codes and CORS).

mod http;
pub use crate::live::whip_sdp as sdp;
mod session;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use session::Session;

/// Receives what WHIP sessions deliver. Called from the WebRTC tasks: implementations hand the
/// data on (a lock-free queue to the call's worker) and return quickly.
pub trait RtpSink: Send + Sync + 'static {
    /// A remote audio track started sending with this SSRC (called again if a track switches
    /// SSRC). Precedes the first [`RtpSink::rtp`] of that SSRC.
    fn track_started(&self, session: &WhipSessionInfo, track: &TrackInfo);
    /// One plain (SRTP-decrypted) RTP packet: header, extensions and payload as received.
    fn rtp(&self, session: &WhipSessionInfo, packet: bytes::Bytes);
    /// The session ended (DELETE, ICE/DTLS failure, peer closed or endpoint shutdown). Called
    /// exactly once per session, after its last [`RtpSink::rtp`].
    fn session_ended(&self, session: &WhipSessionInfo);
}

/// Who a WHIP session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhipSessionInfo {
    /// The resource id (the last segment of the `Location` URL).
    pub resource_id: String,
    /// The call, from `POST /whip/{call id}`.
    pub call_id: Option<String>,
    /// The participant, from `?participant=`.
    pub participant: Option<String>,
}

/// One remote audio stream as negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// The stream's SSRC.
    pub ssrc: u32,
    /// The RTP payload type the sender uses.
    pub payload_type: u8,
    /// Codec MIME type, e.g. `audio/opus`.
    pub mime_type: String,
    /// RTP clock rate (48000 for Opus).
    pub clock_rate: u32,
    /// Channel count from the rtpmap (2 for Opus per RFC 7587).
    pub channels: u16,
    /// The one-byte header extension id of RFC 6464 audio levels, when negotiated.
    pub audio_level_ext_id: Option<u8>,
}

/// Which local UDP ports the per-session ICE sockets use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IcePorts {
    /// An ephemeral port per socket, chosen by the kernel.
    Ephemeral,
    /// A port from this inclusive range, the same one on every host address of a session
    /// (for firewalls that open a range to the recorder).
    Range {
        /// First port of the range.
        first: u16,
        /// Last port of the range (inclusive).
        last: u16,
    },
}

/// Configuration of a [`WhipEndpoint`].
#[derive(Debug, Clone)]
pub struct WhipConfig {
    /// Local IPv4 addresses to gather host candidates on. `0.0.0.0` stands for every
    /// non-loopback, non-link-local interface. Default: `127.0.0.1` and `0.0.0.0`.
    pub host_ips: Vec<IpAddr>,
    /// Local UDP ports. Default: ephemeral.
    pub ports: IcePorts,
    /// Concurrent sessions; a POST beyond it gets 503. Default 256.
    pub max_sessions: usize,
    /// How long a POST waits for ICE gathering before answering with the candidates it has.
    /// Host-only gathering completes in milliseconds; the bound is for a stuck interface.
    pub gather_timeout: Duration,
    /// Largest accepted offer, in bytes (a browser offer is a few KiB).
    pub max_offer_bytes: usize,
    /// A session that has not connected (ICE + DTLS) this long after its answer is ended, so
    /// abandoned offers do not hold sockets and session slots.
    pub connect_timeout: Duration,
    /// ICE consent lost this long: the connection is "disconnected" (it may recover).
    pub ice_disconnected_timeout: Duration,
    /// ICE consent lost this long: the connection has failed and the session ends. A sender
    /// that vanishes without a DTLS close is noticed after this long (the stack's default
    /// 25 s; shorter ends sessions sooner but also cuts senders through a network glitch).
    pub ice_failed_timeout: Duration,
}

impl Default for WhipConfig {
    fn default() -> Self {
        Self {
            host_ips: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ],
            ports: IcePorts::Ephemeral,
            max_sessions: 256,
            gather_timeout: Duration::from_secs(3),
            max_offer_bytes: 64 * 1024,
            connect_timeout: Duration::from_secs(30),
            ice_disconnected_timeout: Duration::from_secs(5),
            ice_failed_timeout: Duration::from_secs(25),
        }
    }
}

/// What can go wrong with a WHIP request or the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum WhipError {
    /// The offer is unusable (400).
    #[error("bad SDP offer: {0}")]
    BadOffer(String),
    /// The session limit is reached (503).
    #[error("too many WHIP sessions (limit {0})")]
    TooManySessions(usize),
    /// No session has this resource id (404).
    #[error("unknown WHIP resource {0:?}")]
    UnknownResource(String),
    /// The configuration cannot work.
    #[error("invalid WHIP configuration: {0}")]
    Config(String),
    /// No free port in the configured range (503).
    #[error("no free UDP port in {first}..={last}")]
    NoFreePort {
        /// First port of the range.
        first: u16,
        /// Last port of the range.
        last: u16,
    },
    /// The WebRTC stack failed on our side (500).
    #[error("WebRTC: {0}")]
    WebRtc(String),
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct WhipStats {
    /// Sessions created since start.
    pub sessions_created: AtomicU64,
    /// Sessions ended since start.
    pub sessions_ended: AtomicU64,
    /// POSTs refused: bad offer.
    pub rejected_bad_offer: AtomicU64,
    /// POSTs refused: session limit or no port.
    pub rejected_capacity: AtomicU64,
    /// RTP packets handed to the sink.
    pub rtp_packets: AtomicU64,
    /// RTP packets dropped: not audio (a video track the answer could not refuse), or not
    /// re-serialisable.
    pub rtp_dropped: AtomicU64,
}

/// The WHIP endpoint: owns the sessions and hands their audio to the sink.
pub struct WhipEndpoint {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: WhipConfig,
    sink: Arc<dyn RtpSink>,
    /// Session table. Touched on create/delete/failure only, never per packet.
    sessions: Mutex<HashMap<String, Session>>,
    /// Sessions counted against `max_sessions`, including those being set up.
    slots: AtomicUsize,
    /// Next port to try in [`IcePorts::Range`]; the async lock also serialises
    /// probe-then-bind so two sessions cannot pick the same port.
    next_port: tokio::sync::Mutex<u16>,
    stats: Arc<WhipStats>,
}

impl WhipEndpoint {
    /// Checks the configuration and makes an endpoint with no sessions.
    pub fn new(config: WhipConfig, sink: Arc<dyn RtpSink>) -> Result<Self, WhipError> {
        if config.host_ips.is_empty() {
            return Err(WhipError::Config("no host address to gather on".into()));
        }
        if let Some(ip) = config.host_ips.iter().find(|ip| !ip.is_ipv4()) {
            return Err(WhipError::Config(format!(
                "{ip} is not IPv4; ICE is restricted to UDP over IPv4"
            )));
        }
        if config.max_sessions == 0 {
            return Err(WhipError::Config("max_sessions is 0".into()));
        }
        let first_port = match config.ports {
            IcePorts::Ephemeral => 0,
            IcePorts::Range { first, last } => {
                if first == 0 || first > last {
                    return Err(WhipError::Config(format!(
                        "port range {first}..={last} is empty or starts at 0"
                    )));
                }
                first
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                sink,
                sessions: Mutex::new(HashMap::new()),
                slots: AtomicUsize::new(0),
                next_port: tokio::sync::Mutex::new(first_port),
                stats: Arc::default(),
            }),
        })
    }

    /// Answers a WHIP offer: sets up a peer connection that receives its audio, waits for ICE
    /// gathering, and returns the resource id and the complete SDP answer.
    pub async fn create_session(
        &self,
        call_id: Option<String>,
        participant: Option<String>,
        offer_sdp: &str,
    ) -> Result<(String, String), WhipError> {
        let result = self.create_inner(call_id, participant, offer_sdp).await;
        match &result {
            Err(WhipError::BadOffer(_)) => {
                self.inner
                    .stats
                    .rejected_bad_offer
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(WhipError::TooManySessions(_) | WhipError::NoFreePort { .. }) => {
                self.inner
                    .stats
                    .rejected_capacity
                    .fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        result
    }

    async fn create_inner(
        &self,
        call_id: Option<String>,
        participant: Option<String>,
        offer_sdp: &str,
    ) -> Result<(String, String), WhipError> {
        if offer_sdp.len() > self.inner.config.max_offer_bytes {
            return Err(WhipError::BadOffer(format!(
                "offer of {} bytes exceeds the {}-byte limit",
                offer_sdp.len(),
                self.inner.config.max_offer_bytes
            )));
        }
        sdp::check_offer(offer_sdp).map_err(WhipError::BadOffer)?;
        let slot = Slot::take(&self.inner)?;
        let info = WhipSessionInfo {
            resource_id: new_resource_id()?,
            call_id,
            participant,
        };
        let (session, answer) = session::start(&self.inner, info, offer_sdp).await?;
        let resource_id = session.shared.info.resource_id.clone();
        let failed_early = session.shared.failed();
        let shared = Arc::downgrade(&session.shared);
        session.shared.announce();
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(resource_id.clone(), session.with_slot(slot));
        let endpoint = Arc::downgrade(&self.inner);
        let connect_timeout = self.inner.config.connect_timeout;
        let watched_id = resource_id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(connect_timeout).await;
            let connected = shared.upgrade().is_none_or(|s| s.connected());
            if let (false, Some(endpoint)) = (connected, endpoint.upgrade()) {
                log::info!(
                    "WHIP session {watched_id}: not connected after {connect_timeout:?}, ending it"
                );
                endpoint.end_session(&watched_id).await;
            }
        });
        self.inner
            .stats
            .sessions_created
            .fetch_add(1, Ordering::Relaxed);
        if failed_early {
            // The connection failed while we were answering; the handler found no entry to
            // remove, so end it now rather than leave a dead session in the table.
            self.inner.end_session(&resource_id).await;
        }
        Ok((resource_id, answer))
    }

    /// Ends a session (WHIP `DELETE`): closes its peer connection; the sink's
    /// `session_ended` follows once its track pumps have stopped.
    pub async fn delete_session(&self, resource_id: &str) -> Result<(), WhipError> {
        if self.inner.end_session(resource_id).await {
            Ok(())
        } else {
            Err(WhipError::UnknownResource(resource_id.to_owned()))
        }
    }

    /// Ends every session (graceful shutdown).
    pub async fn close_all(&self) {
        let ids: Vec<String> = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for id in ids {
            self.inner.end_session(&id).await;
        }
    }

    /// Sessions currently open.
    pub fn session_count(&self) -> usize {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// The endpoint's counters.
    pub fn stats(&self) -> &WhipStats {
        &self.inner.stats
    }

    /// The WHIP HTTP interface, to merge into the host's router at its root:
    /// `POST /whip`, `POST /whip/{call id}[?participant=name]` (201 + `Location:
    /// .../whip/{resource id}`), `DELETE /whip/{resource id}`, `PATCH` = 405, `OPTIONS` with
    /// CORS. Locations are built from the request path, so nesting under a prefix also works.
    pub fn router(self: Arc<Self>) -> axum::Router {
        http::router(self)
    }
}

impl Inner {
    /// Removes a session and closes it; false when there was none.
    pub(crate) async fn end_session(&self, resource_id: &str) -> bool {
        let session = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(resource_id);
        let Some(session) = session else {
            return false;
        };
        session.close().await;
        true
    }
}

/// A place counted against `max_sessions`, given back when dropped (session ended, or setup
/// failed).
pub(crate) struct Slot(Weak<Inner>);

impl Slot {
    fn take(inner: &Arc<Inner>) -> Result<Self, WhipError> {
        let max = inner.config.max_sessions;
        inner
            .slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| WhipError::TooManySessions(max))?;
        Ok(Slot(Arc::downgrade(inner)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            inner.slots.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// 128 random bits in hex: resource URLs must not be guessable, since knowing one is enough
/// to DELETE the session.
fn new_resource_id() -> Result<String, WhipError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| WhipError::WebRtc(format!("no randomness for a resource id: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NullSink;
    impl RtpSink for NullSink {
        fn track_started(&self, _: &WhipSessionInfo, _: &TrackInfo) {}
        fn rtp(&self, _: &WhipSessionInfo, _: bytes::Bytes) {}
        fn session_ended(&self, _: &WhipSessionInfo) {}
    }

    #[test]
    fn config_is_checked() {
        let bad = |config: WhipConfig| WhipEndpoint::new(config, Arc::new(NullSink)).is_err();
        assert!(bad(WhipConfig {
            host_ips: vec![],
            ..Default::default()
        }));
        assert!(bad(WhipConfig {
            host_ips: vec!["::1".parse().unwrap()],
            ..Default::default()
        }));
        assert!(bad(WhipConfig {
            max_sessions: 0,
            ..Default::default()
        }));
        assert!(bad(WhipConfig {
            ports: IcePorts::Range {
                first: 5000,
                last: 4000
            },
            ..Default::default()
        }));
        assert!(!bad(WhipConfig::default()));
    }

    #[test]
    fn slots_bound_the_session_count() {
        let endpoint = WhipEndpoint::new(
            WhipConfig {
                max_sessions: 2,
                ..Default::default()
            },
            Arc::new(NullSink),
        )
        .unwrap();
        let a = Slot::take(&endpoint.inner).unwrap();
        let _b = Slot::take(&endpoint.inner).unwrap();
        assert!(matches!(
            Slot::take(&endpoint.inner),
            Err(WhipError::TooManySessions(2))
        ));
        drop(a);
        assert!(Slot::take(&endpoint.inner).is_ok());
    }

    #[test]
    fn resource_ids_are_long_and_distinct() {
        let a = new_resource_id().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_resource_id().unwrap());
    }
}
