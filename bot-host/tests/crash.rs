//! The `bot-host serve` binary stopped in the middle of a live call, the way production stops
//! it: `kill -9` (then restarted on the same data directory, whose recovery must seal the
//! recording as partial with the audio flushed before the kill) and SIGTERM (the graceful
//! stop must seal it complete). The call is played in real time by the simulator's own parts
//! (notifications, SDP offer, SRTP streams of the speech fixtures), so the test knows exactly
//! which frames left before the stop.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{check_sealed, entries, long_call, play_until, uuid, wait_sealed, Played};

/// A `bot-host serve` process on a data directory. Killed and reaped when dropped, so a
/// failing test leaves no process behind.
struct Bot {
    child: Child,
    http: SocketAddr,
    media: SocketAddr,
    /// Everything the process printed (logs included).
    log: PathBuf,
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the binary and reads its addresses from the line it prints once it serves. Its
/// output is drained into `log` for the whole run: a full pipe would block its logging.
fn start_bot(data_dir: &Path, log: PathBuf) -> Bot {
    start_bot_reporting(data_dir, log, None)
}

/// As [`start_bot`], posting interactions to `store_url` when given.
fn start_bot_reporting(data_dir: &Path, log: PathBuf, store_url: Option<&str>) -> Bot {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bot-host"));
    cmd.args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(["--listen", &listen]);
    if let Some(url) = store_url {
        cmd.args(["--store-url", url]);
    }
    let mut child = cmd
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bot-host serve");
    let (tx, rx) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(out, "{line}");
                if line.starts_with("bot-host serve: webhook") {
                    let _ = tx.send(line);
                }
            }
        });
    }
    let line = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(l) => l,
        Err(_) => panic!(
            "bot-host serve printed no address line; output:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        ),
    };
    // "bot-host serve: webhook http://A/api/calls, media udp B, spool C"
    let http = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no webhook address in {line:?}"));
    let media = line
        .split("media udp ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no media address in {line:?}"));
    assert_eq!(http, listen.parse::<SocketAddr>().unwrap());
    Bot {
        child,
        http,
        media,
        log,
    }
}

fn log_of(bot: &Bot) -> String {
    std::fs::read_to_string(&bot.log).unwrap_or_default()
}

/// Compares each sealed track with what its stream sent: the decoded audio may lack at most
/// `max_loss` at the end and hold no more than one frame beyond what was sent.
fn compare(tracks: &[support::SealedTrack], played: &Played, max_loss: Duration) {
    assert_eq!(tracks.len(), played.sent.len(), "{tracks:?}");
    for t in tracks {
        let (first, end) = played.sent[&(t.msi as u32)];
        let sent_ms = (end - first) as f64;
        let got_ms = t.decoded.ms();
        eprintln!("track {}: sent {sent_ms} ms, recorded {got_ms} ms", t.msi);
        assert!(
            got_ms >= sent_ms - max_loss.as_millis() as f64 && got_ms <= sent_ms + 20.0,
            "track {}: decoded {got_ms} ms of {sent_ms} ms sent (allowed loss {max_loss:?})",
            t.msi
        );
        // Speech, not silence that merely has the right length.
        assert!(t.decoded.rms > 300.0, "track {}: {:?}", t.msi, t.decoded);
    }
}

/// A metadata store that accepts every interaction update and keeps the bodies in order.
async fn fake_store() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/api/v1/interactions",
            axum::routing::post(
                |axum::extract::State(got): axum::extract::State<
                    Arc<Mutex<Vec<serde_json::Value>>>,
                >,
                 axum::Json(v): axum::Json<serde_json::Value>| async move {
                    got.lock().unwrap().push(v);
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state(got.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("http://{addr}/api/v1/interactions"), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_call_then_restart_seals_a_partial_recording() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (store_url, posted) = fake_store().await;
    let bot = start_bot_reporting(&data, dir.path().join("first.log"), Some(&store_url));
    let leg = long_call();
    let played = play_until(
        bot.http,
        bot.media,
        leg,
        uuid(),
        Duration::from_millis(4600),
    )
    .await;

    // SIGKILL: no handler runs, nothing is flushed or sealed.
    let mut bot = bot;
    let killed_at = Instant::now();
    bot.child.kill().unwrap();
    let status = bot.child.wait().unwrap();
    assert!(!status.success());
    let spool = data.join("spool");
    let active = spool.join("active").join(&played.recording_id);
    assert!(
        active.join("meta.json").exists(),
        "the recording was being written in {}: {:?}",
        active.display(),
        entries(&spool.join("active"))
    );
    assert!(entries(&spool.join("sealed")).is_empty());
    let first_log = log_of(&bot);
    drop(bot);

    // The store heard of the call at its answer, as Recording, and of nothing partial.
    let of_call = |posted: &[serde_json::Value]| -> Vec<serde_json::Value> {
        posted
            .iter()
            .filter(|v| v["recordingId"] == played.recording_id.as_str())
            .cloned()
            .collect()
    };
    let before = of_call(&posted.lock().unwrap());
    assert!(
        !before.is_empty() && before.iter().all(|v| v["partial"].is_null()),
        "{before:#?}"
    );
    assert_eq!(before[0]["mediaStatus"], "Recording");

    // Same data directory: recovery seals what the dead process left, before serving.
    let bot = start_bot_reporting(&data, dir.path().join("second.log"), Some(&store_url));
    let sealed = wait_sealed(
        &spool.join("sealed").join(&played.recording_id),
        Duration::from_secs(10),
    );
    assert!(
        entries(&spool.join("active")).is_empty(),
        "left in active/: {:?}",
        entries(&spool.join("active"))
    );
    let (meta, tracks) = check_sealed(&sealed, "partial");
    assert_eq!(meta["call_id"], played.call_id.as_str(), "{meta:#}");
    assert!(meta["recovered_at"].is_string(), "{meta:#}");
    compare(&tracks, &played, Duration::from_millis(1500));
    // The restarted host tells the store the recording is partial, after anything the dead
    // process had left in its outbox, so the store's last word on it carries the flag.
    let deadline = Instant::now() + Duration::from_secs(10);
    let last = loop {
        let after = of_call(&posted.lock().unwrap());
        if after.len() > before.len() && after.last().unwrap()["partial"] == true {
            break after.last().cloned().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no partial update posted: {after:#?}\n{}",
            std::fs::read_to_string(dir.path().join("second.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(last["mediaStatus"], "Pending", "{last:#}");
    assert_eq!(last["callId"], played.call_id.as_str(), "{last:#}");
    // The store accepts it: the same leg, with the seal's verdict.
    assert_eq!(last["botRole"], before[0]["botRole"]);
    // The two speakers are named from the roster the dead process had written down.
    let mut names: Vec<&str> = tracks
        .iter()
        .map(|t| t.meta["participant"].as_str().unwrap_or(""))
        .collect();
    names.sort();
    assert!(
        names.iter().all(|n| !n.is_empty()),
        "{names:?}\n{first_log}"
    );
    assert!(killed_at.elapsed() < Duration::from_secs(30));

    // The restarted host works: it answers status and still serves.
    let metrics = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{}/metrics", bot.http))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("bothost_media_packets_total"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_call_seals_a_complete_recording() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut bot = start_bot(&data, dir.path().join("serve.log"));
    let leg = long_call();
    let played = play_until(
        bot.http,
        bot.media,
        leg,
        uuid(),
        Duration::from_millis(3600),
    )
    .await;

    let pid = bot.child.id().to_string();
    let term = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = bot.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "bot-host did not stop on SIGTERM:\n{}",
            log_of(&bot)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}\n{}", log_of(&bot));

    let spool = data.join("spool");
    assert!(
        entries(&spool.join("active")).is_empty(),
        "left in active/: {:?}",
        entries(&spool.join("active"))
    );
    let sealed = spool.join("sealed").join(&played.recording_id);
    assert!(sealed.join("meta.json").exists(), "{}", log_of(&bot));
    let (meta, tracks) = check_sealed(&sealed, "complete");
    assert_eq!(meta["call_id"], played.call_id.as_str(), "{meta:#}");
    assert!(meta["sealed_at"].is_string(), "{meta:#}");
    // Only what was still in flight when the signal came may be missing.
    compare(&tracks, &played, Duration::from_millis(200));
    for t in &tracks {
        assert_eq!(t.meta["codec"], "opus", "{}", t.meta);
        assert_eq!(t.meta["packets"]["lost"], 0, "{}", t.meta);
    }
    assert!(
        meta["mixed"].is_object(),
        "a graceful stop writes the mix: {meta:#}"
    );
}
