//! `bot-host serve`: the live compliance bot. Wires the sans-IO signaling core
//! ([`crate::signaling`]) to the media plane ([`crate::live`]), WHIP ([`crate::whip`]), the
//! metadata reporter ([`crate::report`]) and an HTTP server (axum on hyper).
//!
//! The signaling state sits behind one mutex: it is the control plane (a few requests per
//! call), never touched by the per-packet path, which lives entirely inside the media plane
//! and the WebRTC tasks. See `docs/live.md` for the HTTP contract.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::live::pipeline::RosterEntry;
use crate::live::pipeline::{CallMedia, MediaConfig, MediaPlane, PlaneError, PlaneEvent, RouteKey};
use crate::live::sdp::{answer_sdp, parse_offer};
use crate::live::spool::Spool;
use crate::profile_sync::{self, ProfileSync};
use crate::report::Reporter;
use crate::signaling::{
    BotRole, CallControl, CallStatus, Command, LocalCallControl, Profiles, Signaling,
};
use crate::whip::{RtpSink, TrackInfo, WhipConfig, WhipEndpoint, WhipSessionInfo};

/// `bot-host serve` settings (TOML file, every key optional).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    /// HTTP address (webhook, WHIP, status, metrics). Port 0 = any free port.
    pub listen: SocketAddr,
    /// UDP media address. Port 0 = any free port.
    pub media_listen: SocketAddr,
    /// Data directory: spool, outbox, default profiles file.
    pub data_dir: PathBuf,
    /// Recording profiles file (TOML or JSON); default `<data_dir>/profiles.toml`, and the
    /// embedded default when that does not exist.
    pub profiles: Option<PathBuf>,
    /// `primary` or `paired`.
    pub role: String,
    /// The metadata store's interactions URL; none = metadata only in the recordings.
    pub store_url: Option<String>,
    /// Media reader threads.
    pub readers: usize,
    /// Media worker threads.
    pub workers: usize,
    /// Per-worker queue capacity, messages.
    pub queue_capacity: usize,
    /// Seconds without a packet before a call's media is considered gone.
    pub media_timeout_secs: u64,
    /// Whether sealing writes `mixed.ogg` (see `Spool::with_mix`); hosts recording
    /// thousands of calls turn it off.
    pub mix_on_seal: bool,
    /// New calls are refused (with the `RecordingResourceUnavailable` alarm) when the data
    /// directory's file system has less free space than this, in MiB.
    pub min_free_mib: u64,
    /// The metadata store's recording profile file
    /// (`<store>/api/v1/recording-profiles/file?ingestKey=...`): when set, the profiles
    /// administrators keep in the store override the local file while the store holds any.
    pub profiles_url: Option<String>,
    /// How often `profiles_url` is fetched, seconds.
    pub profiles_refresh_secs: u64,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            media_listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            data_dir: PathBuf::from("data"),
            profiles: None,
            role: "primary".into(),
            store_url: None,
            readers: 2,
            workers: 2,
            queue_capacity: 8192,
            media_timeout_secs: 30,
            mix_on_seal: true,
            min_free_mib: 512,
            profiles_url: None,
            profiles_refresh_secs: 60,
        }
    }
}

impl HostConfig {
    /// Reads a TOML config file.
    pub fn load(path: &Path) -> Result<HostConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))
    }

    fn role(&self) -> Result<BotRole> {
        match self.role.as_str() {
            "primary" => Ok(BotRole::Primary),
            "paired" => Ok(BotRole::Paired),
            other => anyhow::bail!("role must be primary or paired, not {other:?}"),
        }
    }

    fn profiles_path(&self) -> PathBuf {
        self.profiles
            .clone()
            .unwrap_or_else(|| self.data_dir.join("profiles.toml"))
    }
}

/// What the host knows of a recording beyond signaling.
#[derive(Debug, Clone)]
struct RecordingState {
    status: &'static str,
    sealed_path: Option<PathBuf>,
}

struct Shared {
    signaling: Mutex<Signaling>,
    recordings: Mutex<HashMap<String, RecordingState>>,
    plane: Arc<MediaPlane>,
    spool: Spool,
    reporter: Reporter,
    whip: Arc<WhipEndpoint>,
    whip_sink: Arc<WhipToPlane>,
    profiles_path: PathBuf,
    profile_sync: Option<ProfileSync>,
    role: BotRole,
    http: Mutex<Option<SocketAddr>>,
    data_dir: PathBuf,
    min_free_bytes: u64,
    queue_capacity: usize,
    alarms: AtomicU64,
    webhook_errors: AtomicU64,
    /// Seals in flight (closed calls whose recording is not sealed yet), whoever started
    /// them: shutdown waits for all of them, not only for the calls it ends itself, or a
    /// call that ended just before shutdown would be left in `active/` (found by
    /// tests/host.rs: a call ended by the webhook, then shutdown, left no sealed recording).
    sealing: tokio::sync::watch::Sender<usize>,
}

/// Counts one seal in flight for as long as it lives (also if its task panics).
struct SealInFlight(Arc<Shared>);

impl SealInFlight {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.sealing.send_modify(|n| *n += 1);
        SealInFlight(shared.clone())
    }
}

impl Drop for SealInFlight {
    fn drop(&mut self) {
        self.0.sealing.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A running bot-host.
pub struct Host {
    shared: Arc<Shared>,
    http: SocketAddr,
    shutdown: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

fn load_profiles(path: &Path) -> Result<Profiles> {
    let (profiles, from_file) = Profiles::load_or_embedded(path)
        .with_context(|| format!("cannot load recording profiles {}", path.display()))?;
    if from_file {
        tracing::info!("recording profiles loaded from {}", path.display());
    } else {
        tracing::info!(
            "no profiles file at {}: embedded default (record every call)",
            path.display()
        );
    }
    Ok(profiles)
}

impl Host {
    /// Starts every part on `config`; must run inside a tokio runtime.
    pub async fn start(config: HostConfig) -> Result<Host> {
        let role = config.role()?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
        let profiles_path = config.profiles_path();
        let profile_sync = config
            .profiles_url
            .clone()
            .map(|u| ProfileSync::new(u, &config.data_dir));
        // The store's last set survives a restart while the store is down.
        let profiles = match profile_sync.as_ref().and_then(ProfileSync::cached) {
            Some((p, hash)) => {
                tracing::info!("recording profiles: the store's, as last received");
                if let Some(s) = &profile_sync {
                    *s.source.lock().expect("not poisoned") = profile_sync::Source::Store(hash);
                }
                p
            }
            None => load_profiles(&profiles_path)?,
        };
        let spool = Spool::new(&config.data_dir)
            .context("cannot open the spool")?
            .with_mix(config.mix_on_seal);
        let mut mc = MediaConfig::new(config.media_listen, spool.clone());
        mc.readers = config.readers.max(1);
        mc.workers = config.workers.max(1);
        mc.queue_capacity = config.queue_capacity.max(16);
        mc.media_timeout = Duration::from_secs(config.media_timeout_secs.max(1));
        let plane = Arc::new(MediaPlane::start(mc).context("cannot start the media plane")?);
        let reporter = Reporter::start(config.store_url.clone(), &config.data_dir.join("outbox"))?;
        let sink = Arc::new(WhipToPlane {
            plane: plane.clone(),
            seals: Arc::default(),
        });
        let whip = Arc::new(
            WhipEndpoint::new(WhipConfig::default(), sink.clone())
                .map_err(|e| anyhow::anyhow!("cannot start WHIP: {e}"))?,
        );
        let shared = Arc::new(Shared {
            signaling: Mutex::new(Signaling::new(profiles, role)),
            recordings: Mutex::new(HashMap::new()),
            plane,
            spool,
            reporter,
            whip: whip.clone(),
            whip_sink: sink,
            profiles_path,
            profile_sync,
            role,
            http: Mutex::new(None),
            data_dir: config.data_dir.clone(),
            min_free_bytes: config.min_free_mib.saturating_mul(1 << 20),
            queue_capacity: config.queue_capacity.max(16),
            alarms: AtomicU64::new(0),
            webhook_errors: AtomicU64::new(0),
            sealing: tokio::sync::watch::channel(0).0,
        });

        let app = Router::new()
            .route("/api/calls", post(webhook).get(list_calls))
            .route("/api/calls/{id}", get(call_status))
            .route("/api/info", get(info))
            .route("/api/profiles/reload", post(reload_route))
            .route("/metrics", get(metrics))
            .with_state(shared.clone())
            .merge(whip.clone().router());
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let http = listener.local_addr()?;
        *shared.http.lock().expect("not poisoned") = Some(http);
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!("HTTP server failed: {e}");
            }
        });
        tokio::spawn(media_events(shared.clone()));
        tokio::spawn(timers(shared.clone(), tx.subscribe()));
        if shared.profile_sync.is_some() {
            let every = Duration::from_secs(config.profiles_refresh_secs.max(1));
            tokio::spawn(profile_refresh(shared.clone(), every, tx.subscribe()));
        }
        Ok(Host {
            shared,
            http,
            shutdown: tx,
            server,
        })
    }

    /// The HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The UDP media address.
    pub fn media_addr(&self) -> SocketAddr {
        self.shared.plane.local_addr()
    }

    /// Reloads the recording profiles (from the store when `profiles_url` is set).
    pub async fn reload_profiles(&self) -> Result<()> {
        reload(&self.shared).await
    }

    /// Stops accepting work, seals every active recording with its final metadata, and
    /// returns once they are sealed.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        self.shared.whip.close_all().await;
        // The plane is not dropped here (its event task holds the host), so nothing seals
        // WHIP recordings implicitly: wait for the seals the sessions' ends started.
        let sink = self.shared.whip_sink.clone();
        tokio::task::spawn_blocking(move || sink.wait_sealed(WHIP_END_GRACE))
            .await
            .context("sealing WHIP recordings")?;
        let cmds = self
            .shared
            .signaling
            .lock()
            .expect("not poisoned")
            .shutdown(SystemTime::now());
        let mut ctl = LocalCallControl::new();
        let waits = execute(&self.shared, cmds, &mut ctl);
        for w in waits {
            let _ = w.await;
        }
        // Seals started before shutdown (calls the platform ended just before) finish too.
        let _ = self.shared.sealing.subscribe().wait_for(|n| *n == 0).await;
        // Every recording was sealed above. The event task and the WHIP sink still hold the
        // plane, so this drop does not stop it; where it is the last reference, the plane's
        // own drop seals whatever a caller opened behind signaling's back.
        let shared = self.shared;
        tokio::task::spawn_blocking(move || drop(shared))
            .await
            .context("sealing on shutdown")?;
        Ok(())
    }
}

/// Reloads the profiles: from the store when one is configured and holds any, else from the
/// local file.
async fn reload(shared: &Shared) -> Result<()> {
    match &shared.profile_sync {
        Some(sync) => sync_profiles(shared, sync).await,
        None => reload_into(shared),
    }
}

/// One round with the store: apply a new set, fall back to the local file when the store holds
/// none, keep what is in force when it fails.
async fn sync_profiles(shared: &Shared, sync: &ProfileSync) -> Result<()> {
    let fetched = sync.fetch().await;
    let result = match fetched {
        Ok(profile_sync::Fetched::Profiles(profiles, body)) => {
            let hash = profile_sync::digest(&body);
            let mut source = sync.source.lock().expect("not poisoned");
            if *source != profile_sync::Source::Store(hash) {
                let n = profiles.profiles().len();
                shared
                    .signaling
                    .lock()
                    .expect("not poisoned")
                    .replace_profiles(profiles);
                *source = profile_sync::Source::Store(hash);
                tracing::info!("recording profiles from the store: {n} profiles in force");
                if let Err(e) = sync.save(&body) {
                    tracing::warn!("cannot cache the store's profiles: {e:#}");
                }
            }
            Ok(())
        }
        Ok(profile_sync::Fetched::NoneStored) => {
            let was_store =
                *sync.source.lock().expect("not poisoned") != profile_sync::Source::Local;
            if was_store {
                reload_into(shared)?;
                *sync.source.lock().expect("not poisoned") = profile_sync::Source::Local;
                sync.forget();
                tracing::info!(
                    "the store holds no recording profile: the local profiles are in force"
                );
            }
            Ok(())
        }
        Err(e) => Err(e),
    };
    sync.note_error(result.as_ref().err().map(|e| format!("{e:#}")));
    result
}

async fn profile_refresh(
    shared: Arc<Shared>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Some(sync) = &shared.profile_sync {
            // Failures are logged (once) inside; the profiles in force stay.
            let _ = sync_profiles(&shared, sync).await;
        }
    }
}

fn reload_into(shared: &Shared) -> Result<()> {
    let profiles = load_profiles(&shared.profiles_path)?;
    shared
        .signaling
        .lock()
        .expect("not poisoned")
        .replace_profiles(profiles);
    Ok(())
}

/// The product's alarm when the host cannot take a call it should record.
fn resource_alarm(shared: &Shared, call_id: &str, why: &str) {
    shared.alarms.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        alarm = "RecordingResourceUnavailable",
        severity = "major",
        source = %call_id,
        corrective_action = "add bot-host capacity or free disk space; the call was refused so that the platform applies its recording-required policy",
        "cannot record call {call_id}: {why}"
    );
}

/// Free bytes on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a zeroed out-parameter of the right type.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Why the host cannot take one more call now, if it cannot: a call accepted and then not
/// recorded is worse than a call refused (the platform applies the policy's
/// recording-required rules to a refusal).
fn capacity_problem(shared: &Shared) -> Option<String> {
    if let Some(free) = free_bytes(&shared.data_dir) {
        if free < shared.min_free_bytes {
            return Some(format!(
                "disk nearly full: {} MiB free in {} (minimum {} MiB)",
                free >> 20,
                shared.data_dir.display(),
                shared.min_free_bytes >> 20
            ));
        }
    }
    let stats = shared.plane.stats();
    // A worker queue more than three quarters full is already shedding packets in bursts.
    if let Some(depth) = stats.queue_depth.iter().copied().max() {
        if depth * 4 > shared.queue_capacity * 3 {
            return Some(format!(
                "media queues saturated: {depth} of {} messages waiting",
                shared.queue_capacity
            ));
        }
    }
    None
}

fn inactive_sdp() -> String {
    // An answer for an invitation without a usable offer that we still answer (not recorded).
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\na=inactive\r\n".into()
}

type Wait = tokio::task::JoinHandle<()>;

/// Runs signaling's commands. Returns the seal waits started (shutdown awaits them).
fn execute(shared: &Arc<Shared>, cmds: Vec<Command>, ctl: &mut LocalCallControl) -> Vec<Wait> {
    let mut waits = Vec::new();
    let mut more = Vec::new();
    for cmd in cmds {
        match cmd {
            Command::Answer {
                call_id,
                offer_sdp,
                record,
            } => {
                let offer = offer_sdp.as_deref().map(parse_offer);
                match (record, offer) {
                    (Some(rec), Some(Ok(offer))) if capacity_problem(shared).is_some() => {
                        let why = capacity_problem(shared).unwrap_or_default();
                        resource_alarm(shared, &call_id, &why);
                        let why = format!("RecordingResourceUnavailable: {why}");
                        let _ = ctl.reject(&call_id, &why);
                        more.extend(refused(shared, &call_id, &why));
                        drop((rec, offer));
                    }
                    (Some(rec), Some(Ok(offer))) => {
                        let interaction =
                            serde_json::to_value(&rec.interaction).unwrap_or(Value::Null);
                        let media = CallMedia {
                            call_id: call_id.clone(),
                            recording_id: rec.recording_id.clone(),
                            offer: offer.clone(),
                            targeted: None,
                            meta: json!({
                                "profile": rec.profile,
                                "retention_days": rec.retention_days,
                                "storage": rec.storage,
                                "double_recording": rec.double_recording,
                                "interaction": interaction,
                            }),
                        };
                        match shared.plane.open_call(media) {
                            Ok(()) => {
                                let sdp = answer_sdp(&offer, shared.plane.local_addr(), true);
                                let _ = ctl.answer(&call_id, &sdp);
                                shared.recordings.lock().expect("not poisoned").insert(
                                    rec.recording_id.clone(),
                                    RecordingState {
                                        status: "recording",
                                        sealed_path: None,
                                    },
                                );
                                submit(shared, &interaction);
                            }
                            Err(e) => {
                                if matches!(e, PlaneError::Busy | PlaneError::Spool(_)) {
                                    resource_alarm(shared, &call_id, &e.to_string());
                                }
                                let why = format!("cannot record: {e}");
                                let _ = ctl.reject(&call_id, &why);
                                more.extend(refused(shared, &call_id, &why));
                            }
                        }
                    }
                    (Some(rec), bad) => {
                        let why = match bad {
                            Some(Err(e)) => format!("unusable SDP offer: {e}"),
                            _ => "no SDP offer".into(),
                        };
                        tracing::warn!(call = %call_id, "rejecting a call to record: {why}");
                        let _ = ctl.reject(&call_id, &why);
                        more.extend(refused(shared, &call_id, &why));
                        drop(rec);
                    }
                    (None, Some(Ok(offer))) => {
                        let sdp = answer_sdp(&offer, shared.plane.local_addr(), false);
                        let _ = ctl.answer(&call_id, &sdp);
                    }
                    (None, _) => {
                        let _ = ctl.answer(&call_id, &inactive_sdp());
                    }
                }
            }
            Command::Reject { call_id, reason } => {
                let _ = ctl.reject(&call_id, &reason);
            }
            Command::UpdateRecordingStatus { call_id, status } => {
                let _ = ctl.update_recording_status(&call_id, status);
            }
            Command::KeepAlive { call_id } => {
                let _ = ctl.keep_alive(&call_id);
            }
            Command::Hangup { call_id } => {
                let _ = ctl.hangup(&call_id);
            }
            Command::Roster {
                recording_id,
                participants,
            } => {
                let roster: Vec<RosterEntry> = participants
                    .iter()
                    .filter_map(|p| {
                        let msi = p.msi?;
                        let name = p
                            .party
                            .display_name
                            .clone()
                            .or_else(|| p.party.upn.clone())
                            .or_else(|| p.party.id.clone())
                            .unwrap_or_else(|| format!("msi-{msi}"));
                        Some(RosterEntry {
                            msi,
                            participant: name,
                            muted: p.muted,
                        })
                    })
                    .collect();
                if let Err(e) = shared.plane.update_roster(&recording_id, roster) {
                    tracing::warn!(recording = %recording_id, "roster update not applied: {e}");
                }
            }
            Command::Interaction { interaction, .. } => {
                submit(
                    shared,
                    &serde_json::to_value(&interaction).unwrap_or(Value::Null),
                );
            }
            Command::StopRecording {
                recording_id,
                interaction,
            } => {
                let value = serde_json::to_value(&interaction).unwrap_or(Value::Null);
                match shared
                    .plane
                    .close_call(&recording_id, json!({ "interaction": value }))
                {
                    Ok(ticket) => {
                        if let Some(r) = shared
                            .recordings
                            .lock()
                            .expect("not poisoned")
                            .get_mut(&recording_id)
                        {
                            r.status = "sealing";
                        }
                        let shared = shared.clone();
                        let in_flight = SealInFlight::new(&shared);
                        waits.push(tokio::spawn(async move {
                            let _in_flight = in_flight;
                            let sealed = tokio::task::spawn_blocking(move || ticket.wait()).await;
                            let ok = matches!(sealed, Ok(Ok(_)));
                            let path = match &sealed {
                                Ok(Ok(s)) => Some(s.path.clone()),
                                _ => None,
                            };
                            if let Some(r) = shared
                                .recordings
                                .lock()
                                .expect("not poisoned")
                                .get_mut(&recording_id)
                            {
                                r.status = if ok { "sealed" } else { "failed" };
                                r.sealed_path = path;
                            }
                            let mut v = value;
                            // Sealed and waiting for the uploader: Pending until the store has
                            // a verified copy.
                            v["mediaStatus"] = json!(if ok { "Pending" } else { "Failed" });
                            if matches!(&sealed, Ok(Ok(s)) if s.partial) {
                                // A write failed mid-call: the store must say so, as the
                                // uploader does from meta.json (this post may come after it).
                                v["partial"] = json!(true);
                            }
                            submit(&shared, &v);
                            if !ok {
                                tracing::error!(recording = %recording_id, "seal failed: {sealed:?}");
                                let cmds = shared
                                    .signaling
                                    .lock()
                                    .expect("not poisoned")
                                    .recording_failed(&recording_id);
                                let mut ctl = LocalCallControl::new();
                                execute(&shared, cmds, &mut ctl);
                            }
                        }));
                    }
                    Err(e) => {
                        tracing::error!(recording = %recording_id, "cannot close: {e}");
                        if let Some(r) = shared
                            .recordings
                            .lock()
                            .expect("not poisoned")
                            .get_mut(&recording_id)
                        {
                            r.status = "failed";
                        }
                    }
                }
            }
        }
    }
    if !more.is_empty() {
        waits.extend(execute(shared, more, ctl));
    }
    waits
}

/// Tells signaling that an answer to record was turned into a reject.
fn refused(shared: &Shared, call_id: &str, why: &str) -> Vec<Command> {
    shared
        .signaling
        .lock()
        .expect("not poisoned")
        .answer_refused(call_id, why, SystemTime::now())
}

fn submit(shared: &Shared, interaction: &Value) {
    if let Err(e) = shared.reporter.submit(interaction) {
        tracing::error!("interaction metadata not queued: {e:#}");
    }
}

async fn webhook(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let result = shared
        .signaling
        .lock()
        .expect("not poisoned")
        .handle_notifications(&body, SystemTime::now());
    match result {
        Err(e) => {
            shared.webhook_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("malformed notification: {e}");
            (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": e.to_string() })),
            )
                .into_response()
        }
        Ok(cmds) => {
            let mut ctl = LocalCallControl::new();
            execute(&shared, cmds, &mut ctl);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                ctl.take_response_body(),
            )
                .into_response()
        }
    }
}

async fn call_status(State(shared): State<Arc<Shared>>, UrlPath(id): UrlPath<String>) -> Response {
    let status = shared
        .signaling
        .lock()
        .expect("not poisoned")
        .call_status(&id);
    match status {
        Some(status) => Json(status_json(&shared, &status)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("unknown call {id}") })),
        )
            .into_response(),
    }
}

/// Every call the bot remembers, for the store's reconciler (docs/live.md, "Call status").
async fn list_calls(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let calls = shared.signaling.lock().expect("not poisoned").calls();
    let role = match shared.role {
        BotRole::Primary => "primary",
        BotRole::Paired => "paired",
    };
    Json(json!({
        "role": role,
        "calls": calls.iter().map(|c| status_json(&shared, c)).collect::<Vec<_>>(),
    }))
}

/// A call's status with what the host knows of its recording.
fn status_json(shared: &Shared, status: &CallStatus) -> Value {
    let mut v = serde_json::to_value(status).unwrap_or(Value::Null);
    let rec = status.recording_id.as_ref().and_then(|r| {
        shared
            .recordings
            .lock()
            .expect("not poisoned")
            .get(r)
            .cloned()
    });
    // A member or duplicate call points at a recording another call owns: it is not
    // recorded by this call.
    let owns = status.answer == "recording";
    match rec {
        Some(r) if owns => {
            v["recording"] = json!(r.status);
            v["sealedPath"] = json!(r.sealed_path);
        }
        _ => v["recording"] = json!("none"),
    }
    v
}

async fn info(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let http = *shared.http.lock().expect("not poisoned");
    Json(json!({
        "role": match shared.role { BotRole::Primary => "primary", BotRole::Paired => "paired" },
        "media": shared.plane.local_addr().to_string(),
        "http": http.map(|a| a.to_string()),
    }))
}

async fn reload_route(State(shared): State<Arc<Shared>>) -> Response {
    match reload(&shared).await {
        Ok(()) => Json(json!({ "reloaded": shared.profiles_path })).into_response(),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": format!("{e:#}"), "kept": "the previous profiles" })),
        )
            .into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    use std::fmt::Write;
    let mut s = shared.plane.stats().render_prometheus("bothost_media");
    let (live, active) = {
        let sig = shared.signaling.lock().expect("not poisoned");
        (sig.live_calls(), sig.active_recordings())
    };
    let r = shared.reporter.snapshot();
    let w = shared.whip.stats();
    let mut gauge = |name: &str, help: &str, kind: &str, v: u64| {
        let _ = write!(
            s,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        );
    };
    gauge(
        "bothost_calls_live",
        "Calls signaling tracks.",
        "gauge",
        live as u64,
    );
    gauge(
        "bothost_recordings_active",
        "Recordings being written.",
        "gauge",
        active as u64,
    );
    gauge(
        "bothost_spool_bytes",
        "Bytes in the spool (active and sealed).",
        "gauge",
        shared.plane_spool_bytes(),
    );
    gauge(
        "bothost_metadata_posted_total",
        "Interaction updates the store accepted.",
        "counter",
        r.posted,
    );
    gauge(
        "bothost_metadata_failed_attempts_total",
        "Interaction posts that failed and were retried.",
        "counter",
        r.failed_attempts,
    );
    gauge(
        "bothost_metadata_pending",
        "Interaction updates waiting in the outbox.",
        "gauge",
        r.pending,
    );
    gauge(
        "bothost_alarms_total",
        "RecordingResourceUnavailable alarms raised.",
        "counter",
        shared.alarms.load(Ordering::Relaxed),
    );
    gauge(
        "bothost_webhook_malformed_total",
        "Webhook bodies refused as malformed.",
        "counter",
        shared.webhook_errors.load(Ordering::Relaxed),
    );
    gauge(
        "bothost_whip_sessions",
        "WHIP sessions open.",
        "gauge",
        shared.whip.session_count() as u64,
    );
    gauge(
        "bothost_whip_rtp_packets_total",
        "RTP packets received over WebRTC.",
        "counter",
        w.rtp_packets.load(Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s).into_response()
}

impl Shared {
    fn plane_spool_bytes(&self) -> u64 {
        self.spool.size_bytes()
    }
}

/// Media-plane events: media time-outs end calls whose signaling went quiet.
async fn media_events(shared: Arc<Shared>) {
    let rx = shared.plane.events();
    loop {
        let rx2 = rx.clone();
        let Ok(Ok(ev)) = tokio::task::spawn_blocking(move || rx2.recv()).await else {
            return;
        };
        match ev {
            PlaneEvent::MediaTimeout {
                call_id,
                recording_id,
            } => {
                if let Some(resource) = recording_id.strip_prefix(WHIP_RECORDING_PREFIX) {
                    // Signaling does not own a WHIP recording, and the call id a WHIP sender
                    // names may be a live signaling call's, whose own media is fine: end the
                    // silent session instead, and its end seals the recording.
                    tracing::warn!(
                        recording = %recording_id,
                        "WHIP media timed out: ending the session"
                    );
                    if let Err(e) = shared.whip.delete_session(resource).await {
                        tracing::debug!(recording = %recording_id, "WHIP session already gone: {e}");
                    }
                    continue;
                }
                let cmds = shared
                    .signaling
                    .lock()
                    .expect("not poisoned")
                    .media_timeout(&call_id, SystemTime::now());
                let mut ctl = LocalCallControl::new();
                execute(&shared, cmds, &mut ctl);
            }
            PlaneEvent::Sealed {
                recording_id,
                path,
                partial,
                ..
            } => {
                tracing::info!(recording = %recording_id, partial, "sealed into {}", path.display());
                let ours = shared
                    .recordings
                    .lock()
                    .expect("not poisoned")
                    .contains_key(&recording_id);
                if partial && !ours {
                    report_recovered(&shared, &recording_id, &path);
                }
            }
            PlaneEvent::Failed {
                recording_id,
                error,
                ..
            } => {
                tracing::error!(recording = %recording_id, "recording failed: {error}");
            }
        }
    }
}

/// A recording a previous run left in `active/` (killed mid-call), sealed as partial on start.
/// The store last heard of it as Recording, and the outbox may still hold that run's updates:
/// this one goes after them, so the store ends with the flag whatever the order of the
/// uploader's and the outbox's writes.
fn report_recovered(shared: &Shared, recording_id: &str, path: &Path) {
    let meta = std::fs::read(path.join("meta.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()));
    let mut interaction = match meta {
        Ok(mut m) if m["interaction"].is_object() => m["interaction"].take(),
        // A WHIP session's recording carries no signaling interaction to amend.
        Ok(_) => return,
        Err(e) => {
            tracing::error!(recording = %recording_id, "recovered recording's meta.json unreadable: {e}");
            return;
        }
    };
    tracing::warn!(
        recording = %recording_id,
        "recovered after a crash: reported to the store as a partial recording"
    );
    interaction["partial"] = json!(true);
    interaction["mediaStatus"] = json!("Pending");
    submit(shared, &interaction);
}

/// Signaling's timers (keep-alives, calls that never end), once a second.
async fn timers(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let cmds = shared
            .signaling
            .lock()
            .expect("not poisoned")
            .handle_timeout(SystemTime::now());
        if !cmds.is_empty() {
            let mut ctl = LocalCallControl::new();
            execute(&shared, cmds, &mut ctl);
        }
    }
}

/// WebRTC sessions into the media plane: each WHIP session is recorded as its own call,
/// routed by a synthetic source address derived from its resource id, so the per-packet
/// path needs no shared map (and no lock).
struct WhipToPlane {
    plane: Arc<MediaPlane>,
    seals: Arc<WhipSeals>,
}

/// How long the graceful shutdown waits for closed WHIP sessions to report their end (their
/// pumps let go) before closing their recordings itself.
const WHIP_END_GRACE: Duration = Duration::from_secs(2);

/// WHIP recordings open in the plane and seals in progress, so that the graceful shutdown
/// can wait for them. Touched when a track starts or a session ends, never per packet.
#[derive(Default)]
struct WhipSeals {
    state: Mutex<WhipSealState>,
    changed: Condvar,
}

#[derive(Default)]
struct WhipSealState {
    open: HashSet<String>,
    sealing: usize,
}

impl WhipToPlane {
    /// Closes `recording_id` and waits for its seal on a thread of its own: the caller may
    /// be an async task (a session's end), which must not block.
    fn close(&self, recording_id: &str, why: &str) {
        let ticket = match self.plane.close_call(recording_id, json!({ "ended": why })) {
            Ok(t) => t,
            // Closed already (the shutdown got there first), or never opened.
            Err(PlaneError::UnknownRecording(_)) => return,
            Err(e) => {
                tracing::warn!(recording = %recording_id, "WHIP close: {e}");
                return;
            }
        };
        self.seals.state.lock().expect("not poisoned").sealing += 1;
        let seals = self.seals.clone();
        let spawned = std::thread::Builder::new()
            .name("whip-seal".into())
            .spawn(move || {
                if let Err(e) = ticket.wait() {
                    tracing::error!("WHIP recording not sealed: {e}");
                }
                seals.done_sealing();
            });
        if let Err(e) = spawned {
            // The seal still happens on the sealer thread; only the shutdown's wait for it
            // is lost.
            tracing::error!(recording = %recording_id, "cannot wait for the WHIP seal: {e}");
            self.seals.done_sealing();
        }
    }

    /// Blocks until every WHIP recording is sealed. Sessions were closed just before; those
    /// whose end has not been reported after `grace` are closed here.
    fn wait_sealed(&self, grace: Duration) {
        let deadline = std::time::Instant::now() + grace;
        let mut state = self.seals.state.lock().expect("not poisoned");
        loop {
            if state.open.is_empty() && state.sealing == 0 {
                return;
            }
            let now = std::time::Instant::now();
            if now >= deadline && !state.open.is_empty() {
                let late: Vec<String> = state.open.drain().collect();
                drop(state);
                for id in late {
                    tracing::warn!(recording = %id, "WHIP session did not end in time: closing its recording");
                    self.close(&id, "shutdown");
                }
                state = self.seals.state.lock().expect("not poisoned");
                continue;
            }
            let wait = if state.open.is_empty() {
                Duration::from_secs(1)
            } else {
                deadline.saturating_duration_since(now)
            };
            state = self
                .seals
                .changed
                .wait_timeout(state, wait)
                .expect("not poisoned")
                .0;
        }
    }
}

impl WhipSeals {
    fn done_sealing(&self) {
        self.state.lock().expect("not poisoned").sealing -= 1;
        self.changed.notify_all();
    }
}

fn whip_route(resource_id: &str) -> SocketAddr {
    let h = media_core::merge::fnv1a64(resource_id.as_bytes());
    // 0.0.0.0/8 is never a forwarder's source address.
    let ip = Ipv4Addr::new(0, (h >> 16) as u8, (h >> 24) as u8, (h >> 32) as u8);
    SocketAddr::new(IpAddr::V4(ip), (h as u16).max(1))
}

/// Recording ids of WHIP sessions: `whip-<resource id>`. Signaling's ids start with a
/// timestamp, so the two never collide.
const WHIP_RECORDING_PREFIX: &str = "whip-";

fn whip_recording_id(session: &WhipSessionInfo) -> String {
    format!("{WHIP_RECORDING_PREFIX}{}", session.resource_id)
}

impl RtpSink for WhipToPlane {
    fn track_started(&self, session: &WhipSessionInfo, track: &TrackInfo) {
        let route = whip_route(&session.resource_id);
        let mut sdp = format!(
            "v=0\r\no=- 0 0 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} opus/48000/2\r\n",
            ip = route.ip(),
            port = route.port(),
            pt = track.payload_type
        );
        if let Some(id) = track.audio_level_ext_id {
            sdp.push_str(&format!(
                "a=extmap:{id} urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
            ));
        }
        sdp.push_str("a=sendonly\r\n");
        let offer = match parse_offer(&sdp) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(resource = %session.resource_id, "WHIP track not recordable: {e}");
                return;
            }
        };
        let call_id = session
            .call_id
            .clone()
            .unwrap_or_else(|| whip_recording_id(session));
        let media = CallMedia {
            call_id,
            recording_id: whip_recording_id(session),
            offer,
            targeted: None,
            meta: json!({
                "source": "whip",
                "participant": session.participant,
                "whip_resource": session.resource_id,
            }),
        };
        match self.plane.open_call(media) {
            Ok(()) => {
                self.seals
                    .state
                    .lock()
                    .expect("not poisoned")
                    .open
                    .insert(whip_recording_id(session));
                if let Some(name) = &session.participant {
                    let _ = self.plane.update_roster(
                        &whip_recording_id(session),
                        vec![RosterEntry {
                            msi: track.ssrc,
                            participant: name.clone(),
                            muted: false,
                        }],
                    );
                }
            }
            // A second audio track of the same session shares its call.
            Err(PlaneError::RecordingOpen(_)) | Err(PlaneError::SourceInUse(_)) => {}
            Err(e) => {
                tracing::error!(resource = %session.resource_id, "WHIP session not recorded: {e}")
            }
        }
    }

    fn rtp(&self, session: &WhipSessionInfo, packet: bytes::Bytes) {
        self.plane.inject_rtp(
            RouteKey(whip_route(&session.resource_id)),
            packet,
            self.plane.now(),
        );
    }

    fn session_ended(&self, session: &WhipSessionInfo) {
        let id = whip_recording_id(session);
        let was_open = self
            .seals
            .state
            .lock()
            .expect("not poisoned")
            .open
            .remove(&id);
        if was_open {
            self.close(&id, "whip");
        }
        self.seals.changed.notify_all();
    }
}

/// `bot-host serve`: runs until Ctrl-C or SIGTERM, then seals everything.
pub async fn serve(config: HostConfig) -> Result<()> {
    let data_dir = config.data_dir.clone();
    let host = Host::start(config).await?;
    println!(
        "bot-host serve: webhook http://{}/api/calls, media udp {}, spool {}",
        host.http_addr(),
        host.media_addr(),
        data_dir.join("spool").display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => {
                if let Err(e) = host.reload_profiles().await {
                    tracing::error!("profile reload failed, previous profiles kept: {e:#}");
                }
            }
        }
    }
    println!("bot-host serve: shutting down, sealing active recordings");
    host.shutdown().await
}
