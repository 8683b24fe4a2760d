//! WHIP through the whole host: a real webrtc-rs sender POSTs its offer to a running
//! [`Host`]'s `/whip`, connects (ICE, DTLS, SRTP), sends 4 s of speech encoded with libopus
//! and DELETEs the session; the session must come out of the spool as its own sealed
//! recording `whip-<resource id>` whose track decodes to 4 s.

mod support;
mod whip_client;

use std::path::Path;
use std::time::Duration;

use audiopus::coder::Encoder;
use audiopus::{Application, Channels, SampleRate};
use bot_host::host::{Host, HostConfig};
use bot_host::simulate::media::audio_level;
use bytes::Bytes;
use rtc::rtp;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp::extension::HeaderExtension;
use serde_json::Value;
use support::{check_sealed, entries, wait_sealed};
use webrtc::peer_connection::{RTCPeerConnectionState, RTCSessionDescription};
use whip_client::{http, Client};

/// 20 ms frames of `fixtures/calls/speech.A.wav` (48 kHz mono 16-bit), libopus-encoded, with
/// each frame's RFC 6464 level.
fn speech_frames(count: usize) -> Vec<(Bytes, u8)> {
    let wav = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/calls/speech.A.wav");
    let mut reader = hound::WavReader::open(&wav).unwrap();
    let spec = reader.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (48_000, 1, 16),
        "{}",
        wav.display()
    );
    let pcm: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let encoder = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip).unwrap();
    let frames: Vec<&[i16]> = pcm.chunks_exact(960).collect();
    assert!(!frames.is_empty());
    (0..count)
        .map(|i| {
            let frame = frames[i % frames.len()];
            let mut out = [0u8; 1500];
            let n = encoder.encode(frame, &mut out).unwrap();
            (Bytes::copy_from_slice(&out[..n]), audio_level(frame))
        })
        .collect()
}

async fn start_host(data: &Path) -> Host {
    Host::start(HostConfig {
        data_dir: data.to_path_buf(),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Seconds a live check may wait for a recording to appear in `sealed/`.
const SEAL_WAIT: Duration = Duration::from_secs(10);

async fn metric(host: &Host, name: &str) -> f64 {
    let text = http()
        .get(format!("http://{}/metrics", host.http_addr()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(|v| v.trim().parse::<f64>().unwrap())
        })
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// What one WHIP session produced.
struct Session {
    resource: String,
    frames_sent: usize,
    audio_level_id: u8,
}

/// POSTs the client's offer to `path`, connects, sends `frames` every 20 ms in real time,
/// then DELETEs the session.
async fn send_session(host: &Host, path: &str, client: &mut Client, frames: usize) -> Session {
    let session = send_frames(host, path, client, frames).await;
    // The last packets are on loopback; give them a moment before the session ends, as a
    // sender that hangs up after its last frame would.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let deleted = http()
        .delete(format!(
            "http://{}/whip/{}",
            host.http_addr(),
            session.resource
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    session
}

/// POSTs the client's offer to `path`, connects and sends `frames` every 20 ms in real time;
/// the session stays open.
async fn send_frames(host: &Host, path: &str, client: &mut Client, frames: usize) -> Session {
    let base = format!("http://{}", host.http_addr());
    let response = http()
        .post(format!("{base}{path}"))
        .header("content-type", "application/sdp")
        .body(client.offer().await)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let resource = location
        .rsplit('/')
        .next()
        .expect("resource id in Location")
        .to_owned();
    let answer = response.text().await.unwrap();
    let sections = bot_host::whip::sdp::parse_media_sections(&answer).unwrap();
    let audio = sections.iter().find(|s| s.kind == "audio").unwrap();
    assert!(audio
        .opus_payload_types()
        .any(|pt| pt == client.payload_type));
    let audio_level_id = audio.audio_level_id().expect("audio level accepted");
    client
        .pc
        .set_remote_description(RTCSessionDescription::answer(answer).unwrap())
        .await
        .unwrap();
    tokio::time::timeout(
        SEAL_WAIT,
        client
            .state
            .wait_for(|s| *s == RTCPeerConnectionState::Connected),
    )
    .await
    .expect("client connects")
    .unwrap();

    let payloads = speech_frames(frames);
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    for (i, (payload, level)) in payloads.iter().enumerate() {
        ticker.tick().await;
        let packet = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                marker: i == 0,
                payload_type: client.payload_type,
                sequence_number: 40_000u16.wrapping_add(i as u16),
                timestamp: 0xffff_0000u32.wrapping_add(960 * i as u32),
                ssrc: client.ssrc,
                ..Default::default()
            },
            payload: payload.clone(),
        };
        let level = HeaderExtension::AudioLevel(AudioLevelExtension {
            level: *level,
            voice: *level < 60,
        });
        client
            .track
            .write_rtp_with_extensions(packet, &[level])
            .await
            .unwrap();
    }
    assert_eq!(location, format!("/whip/{resource}"));
    Session {
        resource,
        frames_sent: payloads.len(),
        audio_level_id,
    }
}

/// Checks the sealed `whip-<resource>` recording: one decodable track of the duration sent.
fn check_whip_recording(data: &Path, session: &Session, ssrc: u32) -> Value {
    let spool = data.join("spool");
    let dir = wait_sealed(
        &spool
            .join("sealed")
            .join(format!("whip-{}", session.resource)),
        SEAL_WAIT,
    );
    let (meta, tracks) = check_sealed(&dir, "complete");
    assert_eq!(tracks.len(), 1, "{meta:#}");
    let track = &tracks[0];
    assert_eq!(track.msi, u64::from(ssrc));
    let sent_ms = session.frames_sent as f64 * 20.0;
    let got_ms = track.decoded.ms();
    assert!(
        (got_ms - sent_ms).abs() <= 200.0,
        "decoded {got_ms} ms of {sent_ms} ms sent: {meta:#}"
    );
    assert!(track.decoded.rms > 300.0, "{:?}", track.decoded);
    assert_eq!(track.meta["codec"], "opus", "{}", track.meta);
    // The levels the sender put in its header extension reached media-core, under the id
    // the answer negotiated.
    assert_eq!(
        meta["media"]["audio_level_id"],
        u64::from(session.audio_level_id),
        "{meta:#}"
    );
    assert_eq!(track.meta["segments_from"], "audio_level", "{}", track.meta);
    assert_eq!(meta["source"], "whip", "{meta:#}");
    assert_eq!(meta["whip_resource"], session.resource.as_str(), "{meta:#}");
    assert!(
        !entries(&spool.join("active")).contains(&format!("whip-{}", session.resource)),
        "still active"
    );
    meta
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_session_is_sealed_as_its_own_recording() {
    let dir = tempfile::tempdir().unwrap();
    let host = start_host(dir.path()).await;
    let mut client = Client::new(111, 0x5eed_0101, false).await;
    let session = send_session(&host, "/whip", &mut client, 200).await;
    let meta = check_whip_recording(dir.path(), &session, client.ssrc);
    assert_eq!(
        meta["call_id"],
        format!("whip-{}", session.resource),
        "{meta:#}"
    );

    let packets = metric(&host, "bothost_whip_rtp_packets_total").await;
    assert!(
        packets >= 0.9 * session.frames_sent as f64,
        "{packets} WHIP packets for {} frames",
        session.frames_sent
    );
    assert!(metric(&host, "bothost_media_packets_total").await >= packets * 0.9);
    assert_eq!(metric(&host, "bothost_whip_sessions").await, 0.0);
    client.pc.close().await.unwrap();
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_session_for_a_call_names_its_participant() {
    let dir = tempfile::tempdir().unwrap();
    let host = start_host(dir.path()).await;
    // A payload type other than the usual 111: the host must record what was negotiated.
    let mut client = Client::new(109, 0x5eed_0202, false).await;
    let session = send_session(
        &host,
        "/whip/teams-call-7?participant=alice",
        &mut client,
        200,
    )
    .await;
    let meta = check_whip_recording(dir.path(), &session, client.ssrc);
    assert_eq!(meta["call_id"], "teams-call-7", "{meta:#}");
    assert_eq!(meta["participant"], "alice", "{meta:#}");
    assert_eq!(meta["tracks"][0]["participant"], "alice", "{meta:#}");
    assert!(
        meta["roster"].to_string().contains("alice"),
        "{}",
        meta["roster"]
    );
    let packets = metric(&host, "bothost_whip_rtp_packets_total").await;
    assert!(packets >= 0.9 * session.frames_sent as f64, "{packets}");
    client.pc.close().await.unwrap();
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_whip_session_is_ended_by_the_media_timeout_and_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(HostConfig {
        data_dir: dir.path().to_path_buf(),
        media_timeout_secs: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut client = Client::new(111, 0x5eed_0303, false).await;
    // One second of speech, then nothing, while the peer connection stays up: only the
    // media time-out can end this session.
    let session = send_frames(&host, "/whip/quiet-call?participant=bob", &mut client, 50).await;
    let meta = check_whip_recording(dir.path(), &session, client.ssrc);
    assert_eq!(meta["participant"], "bob", "{meta:#}");
    assert_eq!(metric(&host, "bothost_whip_sessions").await, 0.0);
    client.pc.close().await.unwrap();
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_media_timeout_leaves_the_signaling_call_of_the_same_id_alone() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(HostConfig {
        data_dir: dir.path().to_path_buf(),
        media_timeout_secs: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    // A call the platform notified, with its own SRTP media flowing for 6 s ...
    let call_id = support::uuid();
    let leg = support::long_call();
    let call = tokio::spawn(support::play_until(
        host.http_addr(),
        host.media_addr(),
        leg.clone(),
        call_id.clone(),
        Duration::from_secs(6),
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    // ... and a WHIP sender naming the same call, silent after half a second.
    let mut client = Client::new(111, 0x5eed_0404, false).await;
    let session = send_frames(&host, &format!("/whip/{call_id}"), &mut client, 25).await;
    check_whip_recording(dir.path(), &session, client.ssrc);
    let status: Value = http()
        .get(format!("http://{}/api/calls/{call_id}", host.http_addr()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !call.is_finished(),
        "the check must run while the call is live"
    );
    assert_eq!(status["state"], "established", "{status:#}");
    assert_eq!(status["recording"], "recording", "{status:#}");
    let played = call.await.unwrap();
    assert_eq!(played.call_id, call_id);
    client.pc.close().await.unwrap();
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_seals_an_open_whip_session() {
    let dir = tempfile::tempdir().unwrap();
    let host = start_host(dir.path()).await;
    let mut client = Client::new(111, 0x5eed_0505, false).await;
    let session = send_frames(&host, "/whip?participant=carol", &mut client, 100).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // No DELETE: the host stops while the sender is still connected.
    host.shutdown().await.unwrap();
    let sealed = dir
        .path()
        .join("spool/sealed")
        .join(format!("whip-{}", session.resource));
    assert!(
        sealed.join("meta.json").exists(),
        "sealed by the time shutdown returns: {:?}",
        entries(&dir.path().join("spool/active"))
    );
    let meta = check_whip_recording(dir.path(), &session, client.ssrc);
    assert_eq!(meta["participant"], "carol", "{meta:#}");
    client.pc.close().await.unwrap();
}

/// The page a browser WHIP sender runs: capture (Chromium's fake device, fed from a WAV),
/// a send-only audio transceiver, a complete offer, POST; after `seconds` of media it stops
/// the sender, reads how many packets went out, DELETEs the session as a WHIP client does
/// and reports to the page's own origin.
const BROWSER_PAGE: &str = r#"<!doctype html><meta charset="utf-8"><title>whip</title><script>
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const report = (v) => fetch("/report", { method: "POST", body: JSON.stringify(v) });
(async () => {
  const q = new URLSearchParams(location.search);
  const whip = q.get("whip");
  const seconds = Number(q.get("seconds"));
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const pc = new RTCPeerConnection();
  const tr = pc.addTransceiver(stream.getAudioTracks()[0], { direction: "sendonly" });
  await pc.setLocalDescription(await pc.createOffer());
  while (pc.iceGatheringState !== "complete") await sleep(20);
  const response = await fetch(whip, {
    method: "POST",
    headers: { "Content-Type": "application/sdp" },
    body: pc.localDescription.sdp,
  });
  if (response.status !== 201) throw new Error("POST answered " + response.status);
  const location_ = response.headers.get("Location");
  const answer = await response.text();
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  while (pc.connectionState !== "connected") {
    if (pc.connectionState === "failed") throw new Error("connection failed");
    await sleep(20);
  }
  await sleep(seconds * 1000);
  let energy = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "media-source" && s.kind === "audio") energy = s.totalAudioEnergy;
  });
  await tr.sender.replaceTrack(null);
  await sleep(300);
  let sent = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "audio") sent = s.packetsSent;
  });
  const deleted = await fetch(new URL(location_, whip).href, { method: "DELETE" });
  pc.close();
  await report({ location: location_, packetsSent: sent, sourceEnergy: energy, deleted: deleted.status, answer });
})().catch((e) => report({ error: String(e) }));
</script>"#;

/// The browser process this test started; killed and reaped when the test ends.
struct Browser(std::process::Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Headless Chromium sends ~4 s of the speech fixture through the host's WHIP endpoint and
/// ends the session itself; the sealed recording must last as long as what Chromium says it
/// sent. Skipped where Chromium is not installed (`CHROMIUM` names another binary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_session_is_recorded_by_the_host() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        eprintln!("skipped: no Chromium at {chromium}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let host = start_host(&data).await;

    let (tx, mut reports) = tokio::sync::mpsc::unbounded_channel::<String>();
    let page = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Html(BROWSER_PAGE) }),
        )
        .route(
            "/report",
            axum::routing::post(move |body: String| async move {
                let _ = tx.send(body);
            }),
        );
    let page_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_url = format!(
        "http://{}/?seconds=4&whip=http://{}/whip/browser-call%3Fparticipant%3Dchromium",
        page_listener.local_addr().unwrap(),
        host.http_addr()
    );
    tokio::spawn(async move { axum::serve(page_listener, page).await });

    // Chromium silently captures nothing from a path with a `..` component: canonical only.
    let wav = std::fs::canonicalize(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/calls/speech.A.wav"
    ))
    .unwrap();
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
                &format!("--user-data-dir={}", dir.path().join("chromium").display()),
                &page_url,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromium"),
    );
    let report = tokio::time::timeout(Duration::from_secs(40), reports.recv())
        .await
        .expect("Chromium reports within 40 s")
        .unwrap();
    drop(browser);
    let report: Value = serde_json::from_str(&report).unwrap();
    assert!(report["error"].is_null(), "{report}");
    assert_eq!(report["deleted"], 200, "{report}");
    let resource = report["location"]
        .as_str()
        .and_then(|l| l.rsplit('/').next())
        .unwrap_or_else(|| panic!("{report}"))
        .to_owned();
    let packets_sent = report["packetsSent"].as_u64().unwrap_or(0);
    assert!(packets_sent >= 150, "{report}");
    // The fake microphone really played the fixture (a capture that failed is silence).
    assert!(
        report["sourceEnergy"].as_f64().unwrap_or(0.0) > 0.01,
        "{report}"
    );

    let spool = data.join("spool");
    let sealed = wait_sealed(
        &spool.join("sealed").join(format!("whip-{resource}")),
        SEAL_WAIT,
    );
    let (meta, tracks) = check_sealed(&sealed, "complete");
    assert_eq!(meta["call_id"], "browser-call", "{meta:#}");
    assert_eq!(meta["participant"], "chromium", "{meta:#}");
    assert_eq!(tracks.len(), 1, "{meta:#}");
    // Chromium sends a 20 ms Opus frame per packet (no DTX was negotiated).
    let sent_ms = packets_sent as f64 * 20.0;
    let got_ms = tracks[0].decoded.ms();
    eprintln!("Chromium sent {packets_sent} packets ({sent_ms} ms); recorded {got_ms} ms");
    assert!(
        (got_ms - sent_ms).abs() <= 300.0,
        "recorded {got_ms} ms of {sent_ms} ms sent: {meta:#}"
    );
    assert!(tracks[0].decoded.rms > 300.0, "{:?}", tracks[0].decoded);
    host.shutdown().await.unwrap();
}
