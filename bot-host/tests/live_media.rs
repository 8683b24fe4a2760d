//! The live media plane over real UDP on loopback: a test client plays the forwarder, sending
//! the committed fixture calls' datagrams from one socket per call, and the sealed recordings
//! are judged against the fixtures' ground truth, libopus and their own manifests.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use audiopus::coder::Decoder;
use audiopus::{Channels, SampleRate};
use bot_host::capture::read_datagrams;
use bot_host::live::pipeline::{CallMedia, MediaConfig, MediaPlane, PlaneEvent, RosterEntry};
use bot_host::live::sdp::parse_offer;
use bot_host::live::spool::{manifest_entries, Spool};
use bot_host::live::stats::DropReason;
use media_core::ogg::{OggOpusWriter, OpusHead};
use media_core::recording::PRE_SKIP;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/calls")
}

struct Fixture {
    /// Datagrams in capture order.
    datagrams: Vec<Vec<u8>>,
    /// `AES_CM_128_HMAC_SHA1_80:BASE64`, if SRTP.
    key: Option<String>,
    /// (participant, ssrc, sent, rtcp) per flow.
    flows: Vec<(String, u32, u64, u64)>,
}

fn fixture(variant: &str) -> Fixture {
    let truth: Value = serde_json::from_slice(
        &std::fs::read(fixtures().join(format!("{variant}.truth.json"))).unwrap(),
    )
    .unwrap();
    let mut datagrams = Vec::new();
    let file = File::open(fixtures().join(format!("{variant}.pcap"))).unwrap();
    read_datagrams(file, |d| datagrams.push(d.payload.to_vec())).unwrap();
    let flows = truth["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["participant"].as_str().unwrap().to_string(),
                f["ssrcs"][0].as_u64().unwrap() as u32,
                f["sent"].as_u64().unwrap() - f["lost"].as_u64().unwrap(),
                f["rtcp"].as_u64().unwrap(),
            )
        })
        .collect();
    Fixture {
        datagrams,
        key: truth["srtp_key"].as_str().map(str::to_string),
        flows,
    }
}

fn plane(data: &Path, tweak: impl FnOnce(&mut MediaConfig)) -> MediaPlane {
    let spool = Spool::new(data).unwrap();
    let mut cfg = MediaConfig::new("127.0.0.1:0".parse().unwrap(), spool);
    tweak(&mut cfg);
    MediaPlane::start(cfg).unwrap()
}

/// The forwarder's offer for a client socket.
fn offer_sdp(from: SocketAddr, key: Option<&str>) -> String {
    let (proto, crypto) = match key {
        Some(k) => {
            let (suite, b64) = k.split_once(':').unwrap();
            ("RTP/SAVP", format!("a=crypto:1 {suite} inline:{b64}\r\n"))
        }
        None => ("RTP/AVP", String::new()),
    };
    format!(
        "v=0\r\no=fwd 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 {}\r\nt=0 0\r\n\
         m=audio {} {proto} 111\r\na=rtpmap:111 opus/48000/2\r\n\
         a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=sendonly\r\n{crypto}",
        from.ip(),
        from.port()
    )
}

fn open(plane: &MediaPlane, socket: &UdpSocket, id: &str, fx: &Fixture) {
    let offer = parse_offer(&offer_sdp(socket.local_addr().unwrap(), fx.key.as_deref())).unwrap();
    plane
        .open_call(CallMedia {
            call_id: format!("call-{id}"),
            recording_id: id.into(),
            offer,
            targeted: None,
            meta: json!({"host_field": id}),
        })
        .unwrap();
    plane
        .update_roster(
            id,
            fx.flows
                .iter()
                .map(|(p, ssrc, ..)| RosterEntry {
                    msi: *ssrc,
                    participant: p.clone(),
                    muted: false,
                })
                .collect(),
        )
        .unwrap();
}

/// Waits until the readers have taken `n` datagrams in total off the sockets.
fn wait_read(plane: &MediaPlane, n: u64) {
    let start = Instant::now();
    while plane.stats().packets < n {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "readers took {} of {n} datagrams",
            plane.stats().packets
        );
        std::thread::yield_now();
    }
}

/// Sends in bursts the kernel's socket buffer holds, so no datagram is lost before the
/// plane sees it (what is under test is the plane, not the loopback buffer).
fn send_paced(plane: &MediaPlane, sends: &[(&UdpSocket, &[u8])]) {
    let dest = plane.local_addr();
    let base = plane.stats().packets;
    for (i, chunk) in sends.chunks(64).enumerate() {
        for (s, d) in chunk {
            s.send_to(d, dest).unwrap();
        }
        wait_read(plane, base + (i * 64 + chunk.len()) as u64);
    }
}

fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Decodes every audio packet of an Ogg Opus file with libopus; returns (samples after
/// pre-skip, whether the last page is end-of-stream).
fn decode_ogg(path: &Path) -> (usize, bool) {
    let mut r = ogg::PacketReader::new(File::open(path).unwrap());
    let head = r.read_packet().unwrap().unwrap();
    assert_eq!(&head.data[..8], b"OpusHead");
    let channels = head.data[9];
    let pre_skip = u16::from_le_bytes([head.data[10], head.data[11]]) as usize;
    let tags = r.read_packet().unwrap().unwrap();
    assert_eq!(&tags.data[..8], b"OpusTags");
    let ch = if channels == 2 {
        Channels::Stereo
    } else {
        Channels::Mono
    };
    let mut dec = Decoder::new(SampleRate::Hz48000, ch).unwrap();
    let mut buf = vec![0i16; 5760 * channels as usize];
    let mut samples = 0;
    let mut eos = false;
    while let Some(p) = r.read_packet().unwrap() {
        samples += dec
            .decode(Some(p.data.as_slice()), &mut buf[..], false)
            .expect("libopus decodes every packet");
        eos = p.last_in_stream();
    }
    (samples.saturating_sub(pre_skip), eos)
}

/// The manifest lists every other file with its true size and SHA-256.
fn check_manifest(dir: &Path) {
    let manifest = read_json(&dir.join("manifest.json"));
    let listed = manifest["files"].as_array().unwrap();
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "manifest.json")
        .collect();
    on_disk.sort();
    let names: Vec<&str> = listed.iter().map(|f| f["file"].as_str().unwrap()).collect();
    assert_eq!(names, on_disk);
    for f in listed {
        let bytes = std::fs::read(dir.join(f["file"].as_str().unwrap())).unwrap();
        assert_eq!(f["size"].as_u64().unwrap(), bytes.len() as u64);
        let hex: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(f["sha256"].as_str().unwrap(), hex);
    }
    assert_eq!(manifest_entries(dir).unwrap().len(), listed.len());
}

/// A sealed recording holds one decodable track per fixture flow with the fixture's counts.
fn check_recording(dir: &Path, fx: &Fixture, id: &str) -> Value {
    let meta = read_json(&dir.join("meta.json"));
    assert_eq!(meta["status"], "complete", "{meta:#}");
    assert_eq!(meta["recording_id"], id);
    assert_eq!(meta["call_id"], format!("call-{id}"));
    assert_eq!(meta["host_field"], id);
    let tracks = meta["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), fx.flows.len(), "{meta:#}");
    for (participant, ssrc, received, rtcp) in &fx.flows {
        let t = tracks
            .iter()
            .find(|t| t["msi"].as_u64() == Some(u64::from(*ssrc)))
            .unwrap_or_else(|| panic!("no track for {ssrc}: {meta:#}"));
        assert_eq!(t["participant"], participant.as_str());
        assert_eq!(t["file"], format!("{ssrc}.ogg"));
        let p = &t["packets"];
        assert_eq!(p["received"].as_u64(), Some(*received), "{t:#}");
        assert_eq!(p["written"].as_u64(), Some(*received), "{t:#}");
        assert_eq!(p["rtcp"].as_u64(), Some(*rtcp), "{t:#}");
        for zero in ["undecryptable", "malformed", "late", "duplicated", "lost"] {
            assert_eq!(p[zero].as_u64(), Some(0), "{zero}: {t:#}");
        }
        let (samples, eos) = decode_ogg(&dir.join(format!("{ssrc}.ogg")));
        assert!(eos);
        let ms = samples as f64 / 48.0;
        let expected = *received as f64 * 20.0 - f64::from(PRE_SKIP) / 48.0;
        assert!((ms - expected).abs() < 1.0, "{ms} ms vs {expected} ms");
        assert!((t["duration_ms"].as_f64().unwrap() - expected).abs() < 1.0);
    }
    let (mixed, eos) = decode_ogg(&dir.join("mixed.ogg"));
    assert!(eos && mixed > 0);
    assert!(read_json(&dir.join("segments.json")).as_array().is_some());
    check_manifest(dir);
    meta
}

fn sealed_events(plane: &MediaPlane) -> Vec<PlaneEvent> {
    plane.events().try_iter().collect()
}

#[test]
fn srtp_call_over_udp_is_recorded_and_sealed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_path_buf();
    let plane = plane(&data, |_| {});
    let fx = fixture("srtp-80");
    let sock = client();
    open(&plane, &sock, "rec-srtp", &fx);
    assert!(data.join("spool/active/rec-srtp/meta.json").exists());
    let sends: Vec<(&UdpSocket, &[u8])> = fx.datagrams.iter().map(|d| (&sock, &d[..])).collect();
    send_paced(&plane, &sends);
    assert_eq!(plane.stats().active_calls, 1);
    let sealed = plane
        .close_call("rec-srtp", json!({"release_cause": "Normal"}))
        .unwrap()
        .wait()
        .unwrap();
    assert!(!sealed.partial);
    assert_eq!(sealed.path, data.join("spool/sealed/rec-srtp"));
    assert!(!data.join("spool/active/rec-srtp").exists());
    let meta = check_recording(&sealed.path, &fx, "rec-srtp");
    assert_eq!(meta["release_cause"], "Normal");
    assert_eq!(meta["media"]["srtp"], "AES_CM_128_HMAC_SHA1_80");

    let stats = plane.stats();
    assert_eq!(stats.packets, fx.datagrams.len() as u64);
    assert_eq!(stats.active_calls, 0);
    assert_eq!(stats.calls_sealed, 1);
    for r in DropReason::ALL {
        assert_eq!(stats.dropped(r), 0, "{r:?}");
    }
    let processed: u64 = stats.latency_buckets.iter().sum();
    assert_eq!(processed, fx.datagrams.len() as u64);
    assert!(stats
        .render_prometheus("bot_media")
        .contains("bot_media_packets_total "));
    assert!(sealed_events(&plane).iter().any(|e| matches!(
        e,
        PlaneEvent::Sealed { recording_id, partial: false, .. } if recording_id == "rec-srtp"
    )));
    // A second close of the same recording: nobody owns it any more.
    assert!(plane
        .close_call("rec-srtp", Value::Null)
        .unwrap()
        .wait()
        .is_err());
    assert!(plane.shutdown().is_empty());
}

#[test]
fn concurrent_calls_stay_separate() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_path_buf();
    let plane = plane(&data, |c| c.workers = 3);
    let (fa, fb) = (fixture("srtp-80"), fixture("clean"));
    let (sa, sb) = (client(), client());
    open(&plane, &sa, "rec-a", &fa);
    open(&plane, &sb, "rec-b", &fb);
    // A second call from the same source address is refused: its packets could not be told apart.
    let dup = parse_offer(&offer_sdp(sa.local_addr().unwrap(), None)).unwrap();
    let err = plane
        .open_call(CallMedia {
            call_id: "dup".into(),
            recording_id: "rec-dup".into(),
            offer: dup,
            targeted: None,
            meta: Value::Null,
        })
        .unwrap_err();
    assert!(err.to_string().contains("already receives"), "{err}");
    // Interleaved, as two live calls arrive.
    let mut sends: Vec<(&UdpSocket, &[u8])> = Vec::new();
    for i in 0..fa.datagrams.len().max(fb.datagrams.len()) {
        if let Some(d) = fa.datagrams.get(i) {
            sends.push((&sa, d));
        }
        if let Some(d) = fb.datagrams.get(i) {
            sends.push((&sb, d));
        }
    }
    send_paced(&plane, &sends);
    let ta = plane.close_call("rec-a", Value::Null).unwrap();
    let tb = plane.close_call("rec-b", Value::Null).unwrap();
    let a = ta.wait().unwrap();
    let b = tb.wait().unwrap();
    check_recording(&a.path, &fa, "rec-a");
    check_recording(&b.path, &fb, "rec-b");
    assert_eq!(plane.stats().dropped(DropReason::UnknownSource), 0);
}

#[test]
fn floods_are_counted_drops_and_do_not_disturb_a_call() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_path_buf();
    let plane = plane(&data, |c| c.max_tracks_per_call = 8);
    let fx = fixture("srtp-80");
    let sock = client();
    let stranger = client();
    open(&plane, &sock, "rec-flood", &fx);
    // RTP-looking packets with 300 random SSRCs from the call's own address, before and
    // among the real speakers (who are in the roster, so always get their tracks), and 500
    // datagrams from an address no call expects.
    let mut flood = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for i in 0..300u32 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let mut p = vec![0x80, 111, 0, i as u8, 0, 0, 0, 0];
        p.extend_from_slice(&x.to_be_bytes());
        p.extend_from_slice(&[0xaa; 40]);
        flood.push(p);
    }
    let garbage: Vec<Vec<u8>> = (0..500u32).map(|i| i.to_be_bytes().repeat(10)).collect();
    let mut sends: Vec<(&UdpSocket, &[u8])> = Vec::new();
    for (i, d) in fx.datagrams.iter().enumerate() {
        if let Some(f) = flood.get(i) {
            sends.push((&sock, f));
        }
        if let Some(g) = garbage.get(i) {
            sends.push((&stranger, g));
        }
        sends.push((&sock, d));
    }
    send_paced(&plane, &sends);
    let sealed = plane
        .close_call("rec-flood", Value::Null)
        .unwrap()
        .wait()
        .unwrap();
    let stats = plane.stats();
    assert_eq!(stats.dropped(DropReason::UnknownSource), 500);
    // 8 flood SSRCs get tracks (the limit for SSRCs outside the roster), the other 292 are
    // unknown_ssrc drops; the speakers, listed in the roster, get theirs whenever they start.
    assert_eq!(stats.dropped(DropReason::UnknownSsrc), 292);
    let meta = read_json(&sealed.path.join("meta.json"));
    assert_eq!(meta["drops"]["unknown_ssrc"], 292);
    let tracks = meta["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 10);
    // Flood tracks failed SRTP and have no file; the speakers are intact.
    let flood_tracks: Vec<&Value> = tracks.iter().filter(|t| t["file"].is_null()).collect();
    assert_eq!(flood_tracks.len(), 8);
    for t in flood_tracks {
        assert_eq!(t["packets"]["undecryptable"], 1, "{t:#}");
    }
    for (participant, ssrc, received, _) in &fx.flows {
        let t = tracks
            .iter()
            .find(|t| t["msi"].as_u64() == Some(u64::from(*ssrc)))
            .unwrap();
        assert_eq!(t["participant"], participant.as_str());
        assert_eq!(t["packets"]["received"].as_u64(), Some(*received));
        assert_eq!(t["packets"]["undecryptable"], 0);
        let (samples, _) = decode_ogg(&sealed.path.join(format!("{ssrc}.ogg")));
        assert!(samples > 0);
    }
    check_manifest(&sealed.path);
}

#[test]
fn full_queue_is_a_counted_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_path_buf();
    let plane = plane(&data, |c| {
        c.workers = 1;
        c.readers = 1;
        c.queue_capacity = 1;
    });
    let fx = fixture("clean");
    let sock = client();
    open(&plane, &sock, "rec-q", &fx);
    let dest = plane.local_addr();
    // Unpaced: the reader outruns the one-slot queue.
    for _ in 0..3 {
        for d in &fx.datagrams {
            sock.send_to(d, dest).unwrap();
        }
    }
    // Whatever the kernel delivered, every datagram read is either queued or a counted drop.
    let mut last = 0;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let n = plane.stats().packets;
        if n == last {
            break;
        }
        last = n;
    }
    let sealed = plane
        .close_call("rec-q", Value::Null)
        .unwrap()
        .wait()
        .unwrap();
    let stats = plane.stats();
    let queue_full = stats.dropped(DropReason::QueueFull);
    assert!(queue_full > 0, "{stats:?}");
    let meta = read_json(&sealed.path.join("meta.json"));
    let handled: u64 = meta["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let p = &t["packets"];
            p["received"].as_u64().unwrap()
                + p["rtcp"].as_u64().unwrap()
                + p["undecryptable"].as_u64().unwrap()
                + p["malformed"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(handled + queue_full, stats.packets, "{meta:#}");
    assert!(stats.render_prometheus("m").contains(&format!(
        "m_drops_total{{reason=\"queue_full\"}} {queue_full}\n"
    )));
}

#[test]
fn pages_reach_the_disk_while_recording_and_shutdown_seals() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_path_buf();
    let plane = plane(&data, |c| c.flush_interval = Duration::from_millis(100));
    let fx = fixture("clean");
    let sock = client();
    open(&plane, &sock, "rec-live", &fx);
    let half: Vec<(&UdpSocket, &[u8])> = fx.datagrams[..fx.datagrams.len() / 2]
        .iter()
        .map(|d| (&sock, &d[..]))
        .collect();
    send_paced(&plane, &half);
    // Within a couple of flush intervals the audio is in the file, as a kill -9 would find it.
    let ssrc = fx.flows[0].1;
    let file = data.join(format!("spool/active/rec-live/{ssrc}.ogg"));
    let start = Instant::now();
    loop {
        let pages = std::fs::read(&file)
            .map(|b| b.windows(4).filter(|w| w == b"OggS").count())
            .unwrap_or(0);
        if pages > 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no audio page on disk"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let live = read_json(&data.join("spool/active/rec-live/meta.json"));
    assert_eq!(live["status"], "recording");
    assert_eq!(live["tracks"][0]["participant"], fx.flows[0].0.as_str());
    let sealed = plane.shutdown();
    assert_eq!(sealed.len(), 1);
    assert_eq!(sealed[0].recording_id, "rec-live");
    let meta = read_json(&sealed[0].path.join("meta.json"));
    assert_eq!(meta["status"], "complete");
    check_manifest(&sealed[0].path);
}

/// A crash left a recording in active/: its Ogg cut mid-page, no mixed.ogg, no manifest.
#[test]
fn recovery_seals_what_a_crash_left_as_partial() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_path_buf();
    let spool = Spool::new(&data).unwrap();
    let dir = spool.create_recording("rec-crashed").unwrap();
    // The first 300 Opus packets of the clean fixture's speaker A, as the recorder writes them.
    let fx = fixture("clean");
    let ssrc = fx.flows[0].1;
    let mut w = OggOpusWriter::new(
        9,
        OpusHead {
            channels: 1,
            pre_skip: PRE_SKIP,
            input_sample_rate: 48_000,
            output_gain: 0,
        },
        &[],
    );
    let mut bytes = Vec::new();
    let mut n = 0;
    for d in &fx.datagrams {
        if d.len() > 20 && u32::from_be_bytes([d[8], d[9], d[10], d[11]]) == ssrc && n < 300 {
            w.write_packet(&d[20..], 960);
            n += 1;
            if n % 50 == 0 {
                w.flush();
            }
            bytes.append(w.output());
        }
    }
    let cut = bytes.len() - 37;
    std::fs::write(dir.join(format!("{ssrc}.ogg")), &bytes[..cut]).unwrap();
    // A second track whose file holds nothing whole.
    std::fs::write(dir.join("7.ogg"), b"OggS\0\x02").unwrap();
    // Leftovers of a seal the crash interrupted: a half mix and a temporary file.
    std::fs::write(dir.join("mixed.ogg"), &bytes[..100]).unwrap();
    std::fs::write(dir.join("segments.json.tmp"), b"[{").unwrap();
    std::fs::write(
        dir.join("meta.json"),
        serde_json::to_vec(&json!({
            "status": "recording",
            "call_id": "call-crashed",
            "recording_id": "rec-crashed",
            "tracks": [{"msi": ssrc, "participant": "A", "file": format!("{ssrc}.ogg"), "start_ms": 0.0}],
        }))
        .unwrap(),
    )
    .unwrap();
    // And a directory the crash left empty.
    spool.create_recording("rec-empty").unwrap();

    let plane = plane(&data, |_| {});
    let events = sealed_events(&plane);
    let mut by_id = BTreeMap::new();
    for e in &events {
        if let PlaneEvent::Sealed {
            recording_id,
            path,
            partial,
            call_id,
        } = e
        {
            assert!(partial);
            by_id.insert(recording_id.clone(), (path.clone(), call_id.clone()));
        }
    }
    assert_eq!(by_id.len(), 2, "{events:?}");
    let (path, call_id) = &by_id["rec-crashed"];
    assert_eq!(call_id, "call-crashed");
    assert!(!data.join("spool/active/rec-crashed").exists());
    let meta = read_json(&path.join("meta.json"));
    assert_eq!(meta["status"], "partial");
    let tracks = meta["tracks"].as_array().unwrap();
    let a = tracks.iter().find(|t| t["msi"] == ssrc).unwrap();
    assert_eq!(a["participant"], "A");
    assert!(a["recovered"]["trimmed_bytes"].as_u64().unwrap() > 0);
    let (samples, eos) = decode_ogg(&path.join(format!("{ssrc}.ogg")));
    assert!(eos, "the recovered track is closed");
    // Whole pages only: the last, cut page (fewer than 50 packets) is gone.
    let ms = samples as f64 / 48.0;
    assert!((4500.0..6000.0).contains(&ms), "{ms}");
    assert!((a["duration_ms"].as_f64().unwrap() - ms).abs() < 1.0);
    let empty = tracks.iter().find(|t| t["msi"] == 7).unwrap();
    assert!(empty["file"].is_null());
    assert!(!path.join("segments.json.tmp").exists());
    let (mixed, eos) = decode_ogg(&path.join("mixed.ogg"));
    assert!(eos && (mixed as f64 / 48.0 - ms).abs() < 25.0, "{mixed}");
    check_manifest(path);
    let (empty_path, _) = &by_id["rec-empty"];
    assert_eq!(
        read_json(&empty_path.join("meta.json"))["status"],
        "partial"
    );
    check_manifest(empty_path);
}

#[test]
fn injected_rtp_and_media_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_path_buf();
    let plane = plane(&data, |c| c.media_timeout = Duration::from_millis(300));
    let fx = fixture("clean");
    // A WebRTC session: a synthetic route key, plain RTP, no socket.
    let key = bot_host::live::RouteKey("0.0.0.1:7".parse().unwrap());
    let offer = parse_offer(&offer_sdp(key.0, None)).unwrap();
    plane
        .open_call(CallMedia {
            call_id: "call-whip".into(),
            recording_id: "rec-whip".into(),
            offer,
            targeted: None,
            meta: Value::Null,
        })
        .unwrap();
    // A second call nothing is ever sent to times out.
    let silent = client();
    open(&plane, &silent, "rec-silent", &fx);
    let (_, ssrc, received, _) = &fx.flows[0];
    let base = plane.now();
    let mut n = 0;
    for d in &fx.datagrams {
        if u32::from_be_bytes([d[8], d[9], d[10], d[11]]) == *ssrc {
            // Arrival times as a real-time sender's, 20 ms apart.
            let arrival = media_core::time::Micros(base.0 + n * 20_000);
            plane.inject_rtp(key, bytes::Bytes::copy_from_slice(d), arrival);
            n += 1;
        }
    }
    let sealed = plane
        .close_call("rec-whip", Value::Null)
        .unwrap()
        .wait()
        .unwrap();
    let meta = read_json(&sealed.path.join("meta.json"));
    let t = &meta["tracks"][0];
    assert_eq!(
        t["packets"]["received"].as_u64(),
        Some(*received),
        "{meta:#}"
    );
    assert_eq!(t["participant"], "msi-".to_string() + &ssrc.to_string());
    let (samples, eos) = decode_ogg(&sealed.path.join(format!("{ssrc}.ogg")));
    assert!(eos && samples > 0);

    let events = plane.events();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(PlaneEvent::MediaTimeout {
                recording_id,
                call_id,
            }) => {
                assert_eq!(recording_id, "rec-silent");
                assert_eq!(call_id, "call-rec-silent");
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("no media timeout: {e}"),
        }
    }
    let sealed = plane.shutdown();
    assert_eq!(sealed.len(), 1);
    let meta = read_json(&sealed[0].path.join("meta.json"));
    assert_eq!(meta["tracks"].as_array().unwrap().len(), 0);
}
