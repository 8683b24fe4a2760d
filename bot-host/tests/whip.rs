//! WHIP ingest end to end: a real webrtc-rs sender POSTs its offer over HTTP to the endpoint
//! served on loopback, connects (ICE, DTLS, SRTP) and sends Opus; the sink must see the same
//! payloads bit for bit. Plus the HTTP error paths.

mod whip_client;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use audiopus::coder::Encoder;
use audiopus::{Application, Channels, SampleRate};
use bot_host::whip::{IcePorts, RtpSink, TrackInfo, WhipConfig, WhipEndpoint, WhipSessionInfo};
use bytes::Bytes;
use rtc::rtp;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp::extension::HeaderExtension;
use rtc::shared::marshal::Unmarshal;
use tokio::sync::mpsc;
use webrtc::peer_connection::{RTCPeerConnectionState, RTCSessionDescription};
use whip_client::{http, Client};

#[derive(Debug)]
enum Event {
    Started(WhipSessionInfo, TrackInfo),
    Rtp(WhipSessionInfo, Bytes),
    Ended(WhipSessionInfo),
}

struct ChannelSink(mpsc::UnboundedSender<Event>);

impl RtpSink for ChannelSink {
    fn track_started(&self, session: &WhipSessionInfo, track: &TrackInfo) {
        let _ = self.0.send(Event::Started(session.clone(), track.clone()));
    }
    fn rtp(&self, session: &WhipSessionInfo, packet: Bytes) {
        let _ = self.0.send(Event::Rtp(session.clone(), packet));
    }
    fn session_ended(&self, session: &WhipSessionInfo) {
        let _ = self.0.send(Event::Ended(session.clone()));
    }
}

struct Server {
    base: String,
    endpoint: Arc<WhipEndpoint>,
    events: mpsc::UnboundedReceiver<Event>,
}

async fn serve(config: WhipConfig) -> Server {
    let (tx, events) = mpsc::unbounded_channel();
    let endpoint = Arc::new(WhipEndpoint::new(config, Arc::new(ChannelSink(tx))).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Arc::clone(&endpoint).router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        base,
        endpoint,
        events,
    }
}

async fn post_offer(url: &str, sdp: String) -> reqwest::Response {
    http()
        .post(url)
        .header("content-type", "application/sdp")
        .body(sdp)
        .send()
        .await
        .unwrap()
}

/// 150 frames (3 s) of a rising tone, encoded with libopus; distinct frames, so a payload
/// delivered out of place is noticed.
fn opus_frames() -> Vec<Bytes> {
    let encoder = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Audio).unwrap();
    let mut phase = 0f64;
    (0..150)
        .map(|i| {
            let freq = 300.0 + 10.0 * i as f64;
            let pcm: Vec<i16> = (0..960)
                .map(|_| {
                    phase += 2.0 * std::f64::consts::PI * freq / 48000.0;
                    (phase.sin() * 8000.0) as i16
                })
                .collect();
            let mut out = [0u8; 1500];
            let n = encoder.encode(&pcm, &mut out).unwrap();
            Bytes::copy_from_slice(&out[..n])
        })
        .collect()
}

async fn next_event(events: &mut mpsc::UnboundedReceiver<Event>, wait: Duration) -> Option<Event> {
    tokio::time::timeout(wait, events.recv())
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_sender_delivers_opus_through_whip() {
    let mut server = serve(WhipConfig::default()).await;
    let mut client = Client::new(111, 0x5eed_0001, true).await;
    let offer = client.offer().await;
    assert!(offer.contains("m=video"), "the test offers video too");

    let response = post_offer(
        &format!("{}/whip/call-42?participant=alice", server.base),
        offer,
    )
    .await;
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/sdp");
    assert_eq!(headers["access-control-allow-origin"], "*");
    let location = headers["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/whip/"), "{location}");
    assert!(!location.contains("call-42"), "{location}");
    let answer = response.text().await.unwrap();

    // Complete answer: candidates inside, no trickle needed; audio only.
    assert!(answer.contains("a=candidate:"), "{answer}");
    assert!(answer.contains("127.0.0.1"), "{answer}");
    let sections = bot_host::whip::sdp::parse_media_sections(&answer).unwrap();
    let audio = sections.iter().find(|s| s.kind == "audio").unwrap();
    assert_eq!(audio.direction, "recvonly");
    assert!(audio.opus_payload_types().any(|pt| pt == 111));
    let audio_level_id = audio.audio_level_id().expect("audio level accepted");
    for video in sections.iter().filter(|s| s.kind == "video") {
        assert_eq!(video.port, 0, "video must be refused: {answer}");
    }

    client
        .pc
        .set_remote_description(RTCSessionDescription::answer(answer).unwrap())
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        client
            .state
            .wait_for(|s| *s == RTCPeerConnectionState::Connected),
    )
    .await
    .expect("client connects")
    .unwrap();
    assert_eq!(server.endpoint.session_count(), 1);

    let frames = opus_frames();
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    for (i, payload) in frames.iter().enumerate() {
        ticker.tick().await;
        let packet = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                marker: i == 0,
                payload_type: 111,
                sequence_number: 1000u16.wrapping_add(i as u16),
                timestamp: 960 * i as u32,
                ssrc: client.ssrc,
                ..Default::default()
            },
            payload: payload.clone(),
        };
        let level = HeaderExtension::AudioLevel(AudioLevelExtension {
            level: 30,
            voice: true,
        });
        client
            .track
            .write_rtp_with_extensions(packet, &[level])
            .await
            .unwrap();
    }

    // Collect until the stream has been quiet for a moment.
    let mut started: Vec<TrackInfo> = Vec::new();
    let mut received: Vec<rtp::Packet> = Vec::new();
    while let Some(event) = next_event(&mut server.events, Duration::from_millis(700)).await {
        match event {
            Event::Started(info, track) => {
                assert_eq!(info.call_id.as_deref(), Some("call-42"));
                assert_eq!(info.participant.as_deref(), Some("alice"));
                assert!(location.ends_with(&info.resource_id));
                assert!(received.is_empty() || started.last().unwrap().ssrc != track.ssrc);
                started.push(track);
            }
            Event::Rtp(info, mut bytes) => {
                assert!(!started.is_empty(), "track_started precedes rtp");
                assert_eq!(info.call_id.as_deref(), Some("call-42"));
                received.push(rtp::Packet::unmarshal(&mut bytes).unwrap());
            }
            Event::Ended(_) => panic!("session ended early"),
        }
    }
    assert_eq!(started.len(), 1, "{started:?}");
    let track = &started[0];
    assert_eq!(track.mime_type, "audio/opus");
    assert_eq!(track.clock_rate, 48000);
    assert_eq!(track.payload_type, 111);
    assert_eq!(track.ssrc, client.ssrc);
    assert_eq!(track.audio_level_ext_id, Some(audio_level_id));

    // ≥ 90 % delivered, in order, payloads bit-exact, levels carried.
    assert!(
        received.len() * 10 >= frames.len() * 9,
        "{} of {} packets",
        received.len(),
        frames.len()
    );
    let mut next = 0;
    for packet in &received {
        let at = frames[next..]
            .iter()
            .position(|f| *f == packet.payload)
            .unwrap_or_else(|| panic!("payload of seq {} not sent", packet.header.sequence_number));
        next += at + 1;
        assert_eq!(packet.header.ssrc, client.ssrc);
        let level = packet
            .header
            .get_extension(audio_level_id)
            .expect("audio level extension");
        assert_eq!(level.as_ref(), &[0x80 | 30]);
    }

    // DELETE ends the session; the sink hears it once, after the packets.
    let response = http()
        .delete(format!("{}{}", server.base, location))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    loop {
        match next_event(&mut server.events, Duration::from_secs(5)).await {
            Some(Event::Ended(info)) => {
                assert!(location.ends_with(&info.resource_id));
                break;
            }
            Some(Event::Rtp(..)) => {}
            other => panic!("expected session_ended, got {other:?}"),
        }
    }
    assert_eq!(server.endpoint.session_count(), 0);
    assert!(next_event(&mut server.events, Duration::from_millis(200))
        .await
        .is_none());
    let again = http()
        .delete(format!("{}{}", server.base, location))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    let stats = server.endpoint.stats();
    assert_eq!(stats.sessions_ended.load(Ordering::Relaxed), 1);
    client.pc.close().await.unwrap();
}

#[tokio::test]
async fn http_errors() {
    let server = serve(WhipConfig::default()).await;
    let whip = format!("{}/whip", server.base);

    let wrong_type = http()
        .post(&whip)
        .header("content-type", "text/plain")
        .body("v=0\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);
    assert_eq!(wrong_type.headers()["accept-post"], "application/sdp");

    let missing_type = http().post(&whip).body("v=0\r\n").send().await.unwrap();
    assert_eq!(missing_type.status(), 415);

    let garbage = post_offer(&whip, "this is not SDP".into()).await;
    assert_eq!(garbage.status(), 400);
    assert_eq!(garbage.headers()["access-control-allow-origin"], "*");
    assert!(garbage.text().await.unwrap().contains("v=0"));

    let no_opus = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=sendonly\r\na=rtpmap:0 PCMU/8000\r\n";
    let no_opus = post_offer(&whip, no_opus.into()).await;
    assert_eq!(no_opus.status(), 400);
    assert!(no_opus.text().await.unwrap().contains("Opus"));

    // Looks right to our pre-check but is no WebRTC offer (no ICE, no DTLS): the stack refuses.
    let not_webrtc = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 5004 RTP/AVP 111\r\nc=IN IP4 127.0.0.1\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n";
    let not_webrtc = post_offer(&whip, not_webrtc.into()).await;
    assert_eq!(not_webrtc.status(), 400, "{:?}", not_webrtc.text().await);

    let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(40_000));
    let huge = post_offer(&whip, huge).await;
    assert_eq!(huge.status(), 413);
    assert_eq!(huge.headers()["access-control-allow-origin"], "*");

    let unknown = http()
        .delete(format!("{whip}/0123456789abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let patch = http()
        .patch(format!("{whip}/0123456789abcdef"))
        .header("content-type", "application/trickle-ice-sdpfrag")
        .body("a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 405);

    let preflight = http()
        .request(reqwest::Method::OPTIONS, &whip)
        .header("origin", "https://sender.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("content-type"));
    assert!(h["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("Location"));
    assert_eq!(server.endpoint.session_count(), 0);
    let stats = server.endpoint.stats();
    // garbage, no Opus, not WebRTC (the 413 is refused before the endpoint sees it)
    assert_eq!(stats.rejected_bad_offer.load(Ordering::Relaxed), 3);
    assert_eq!(stats.sessions_created.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_limit_gives_503_and_port_range_is_used() {
    // A port range of its own, far from the ephemeral range.
    let (first, last) = (47_200, 47_209);
    let mut server = serve(WhipConfig {
        host_ips: vec!["127.0.0.1".parse().unwrap()],
        ports: IcePorts::Range { first, last },
        max_sessions: 1,
        ..Default::default()
    })
    .await;
    let whip = format!("{}/whip", server.base);

    // An offer the stack refuses after a peer connection was built gives its slot back.
    let not_webrtc = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 5004 RTP/AVP 111\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n";
    assert_eq!(post_offer(&whip, not_webrtc.into()).await.status(), 400);

    let mut first_client = Client::new(111, 0x5eed_0001, false).await;
    let response = post_offer(&whip, first_client.offer().await).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let answer = response.text().await.unwrap();
    let ports_in_range = answer
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .map(|l| l.split_whitespace().nth(5).unwrap().parse::<u16>().unwrap())
        .collect::<Vec<_>>();
    assert!(!ports_in_range.is_empty());
    assert!(
        ports_in_range.iter().all(|p| (first..=last).contains(p)),
        "{ports_in_range:?}"
    );

    let mut second = Client::new(111, 0x5eed_0001, false).await;
    let busy = post_offer(&whip, second.offer().await).await;
    assert_eq!(busy.status(), 503);
    assert!(busy.headers().contains_key("retry-after"));

    // The slot comes back once the first session is deleted.
    let deleted = http()
        .delete(format!("{}{}", server.base, location))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    match next_event(&mut server.events, Duration::from_secs(5)).await {
        Some(Event::Ended(info)) => assert!(location.ends_with(&info.resource_id)),
        other => panic!("expected session_ended, got {other:?}"),
    }
    let mut third = Client::new(111, 0x5eed_0001, false).await;
    let response = post_offer(&whip, third.offer().await).await;
    assert_eq!(response.status(), 201);
    server.endpoint.close_all().await;
    match next_event(&mut server.events, Duration::from_secs(5)).await {
        Some(Event::Ended(_)) => {}
        other => panic!("expected session_ended, got {other:?}"),
    }
    for c in [first_client, second, third] {
        c.pc.close().await.unwrap();
    }
}

/// Connects a client to `server` and returns the session's resource path.
async fn connect(server: &Server, client: &mut Client) -> String {
    let response = post_offer(&format!("{}/whip", server.base), client.offer().await).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let answer = response.text().await.unwrap();
    client
        .pc
        .set_remote_description(RTCSessionDescription::answer(answer).unwrap())
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        client
            .state
            .wait_for(|s| *s == RTCPeerConnectionState::Connected),
    )
    .await
    .expect("client connects")
    .unwrap();
    location
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_closing_ends_the_session() {
    // A sender that stops answering ICE consent checks; short timeouts keep the test fast.
    let mut server = serve(WhipConfig {
        ice_disconnected_timeout: Duration::from_millis(500),
        ice_failed_timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let mut client = Client::new(111, 0x5eed_0001, false).await;
    let location = connect(&server, &mut client).await;
    client.pc.close().await.unwrap();
    let started = std::time::Instant::now();
    match next_event(&mut server.events, Duration::from_secs(10)).await {
        Some(Event::Ended(info)) => assert!(location.ends_with(&info.resource_id)),
        other => panic!("expected session_ended, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.endpoint.session_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_offer_is_ended_after_connect_timeout() {
    let mut server = serve(WhipConfig {
        connect_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let mut client = Client::new(111, 0x5eed_0001, false).await;
    // The answer is never applied, so the client never connects.
    let response = post_offer(&format!("{}/whip", server.base), client.offer().await).await;
    assert_eq!(response.status(), 201);
    assert_eq!(server.endpoint.session_count(), 1);
    match next_event(&mut server.events, Duration::from_secs(5)).await {
        Some(Event::Ended(_)) => {}
        other => panic!("expected session_ended, got {other:?}"),
    }
    assert_eq!(server.endpoint.session_count(), 0);
    client.pc.close().await.unwrap();
}

/// The page a browser WHIP sender runs: capture (Chromium's fake device, fed from a WAV),
/// a send-only audio transceiver, a complete offer, POST, apply the answer.
const BROWSER_PAGE: &str = r#"<!doctype html><meta charset="utf-8"><title>whip</title><script>
(async () => {
  const whip = new URLSearchParams(location.search).get("whip");
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const pc = new RTCPeerConnection();
  pc.addTransceiver(stream.getAudioTracks()[0], { direction: "sendonly" });
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === "complete") return done();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") done();
    });
  });
  const response = await fetch(whip, {
    method: "POST",
    headers: { "Content-Type": "application/sdp" },
    body: pc.localDescription.sdp,
  });
  document.title = "posted " + response.status + " " + response.headers.get("Location");
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
})().catch((e) => { document.title = "error " + e; });
</script>"#;

/// The browser process this test started; killed and reaped when the test ends, pass or fail.
struct Browser(std::process::Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Headless Chromium as the WHIP sender, the page served from another origin (so CORS is
/// exercised). Skipped where Chromium is not installed (`CHROMIUM` names another binary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_sends_audio_through_whip() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        eprintln!("skipped: no Chromium at {chromium}");
        return;
    }
    let mut server = serve(WhipConfig::default()).await;
    let page = axum::Router::new().route(
        "/",
        axum::routing::get(|| async { axum::response::Html(BROWSER_PAGE) }),
    );
    let page_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_url = format!(
        "http://{}/?whip={}/whip/browser-call%3Fparticipant%3Dchromium",
        page_listener.local_addr().unwrap(),
        server.base
    );
    tokio::spawn(async move { axum::serve(page_listener, page).await });

    // Chromium silently captures nothing from a path with a `..` component: canonical only.
    let wav = std::fs::canonicalize(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/calls/speech.A.wav"
    ))
    .unwrap();
    let profile = std::env::temp_dir().join(format!("whip-chromium-{}", std::process::id()));
    let browser = Browser(
        std::process::Command::new(&chromium)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                &format!("--use-file-for-fake-audio-capture={}", wav.display()),
                &format!("--user-data-dir={}", profile.display()),
                &page_url,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromium"),
    );

    let mut track: Option<TrackInfo> = None;
    let mut packets = 0usize;
    let mut decoder = audiopus::coder::Decoder::new(SampleRate::Hz48000, Channels::Stereo).unwrap();
    let mut pcm = vec![0i16; 5760 * 2];
    let (mut energy, mut decoded) = (0f64, 0usize);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // 100 packets = 2 s of 20 ms frames.
    while packets < 100 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match next_event(&mut server.events, left).await {
            Some(Event::Started(info, t)) => {
                assert_eq!(info.call_id.as_deref(), Some("browser-call"));
                assert_eq!(info.participant.as_deref(), Some("chromium"));
                track = Some(t);
            }
            Some(Event::Rtp(_, mut bytes)) => {
                let packet = rtp::Packet::unmarshal(&mut bytes).unwrap();
                let payload: &[u8] = &packet.payload;
                let samples = decoder
                    .decode(Some(payload), &mut pcm[..], false)
                    .expect("Chromium's payload decodes as Opus");
                assert!(samples > 0);
                energy += pcm[..samples * 2]
                    .iter()
                    .map(|&s| f64::from(s).powi(2))
                    .sum::<f64>();
                decoded += samples * 2;
                packets += 1;
            }
            Some(Event::Ended(_)) => panic!("session ended early"),
            None => panic!("Chromium delivered {packets} packets in 30 s"),
        }
    }
    let track = track.expect("track_started");
    // The fixture's speech, not the silence of a fake microphone that failed to open it.
    let rms = (energy / decoded.max(1) as f64).sqrt();
    assert!(rms > 300.0, "Chromium sent silence (RMS {rms})");
    assert_eq!(track.mime_type, "audio/opus");
    assert_eq!(track.clock_rate, 48000);
    drop(browser);
    server.endpoint.close_all().await;
    let _ = std::fs::remove_dir_all(profile);
}
