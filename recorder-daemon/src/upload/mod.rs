//! The uploader (docs/storage.md, "Uploader"): moves sealed recordings from bot-host spools to
//! the storages their recording profile names, verified, journaled, retried.
//!
//! Each spool's `sealed/` is scanned every `poll_ms` (and at start, which is the catch-up):
//! bot-host renames a finished directory into `sealed/` atomically, so a scan never sees half a
//! recording. For each recording: verify it against `manifest.json` (a corrupt one goes to
//! `rejected/` with a reason file and an alarm), put every file to its storage (and to the
//! paired storage for Pro), and only when every copy verified: the store says Available with
//! the media path, then the spool copy leaves `sealed/`.

pub mod journal;
pub mod sealed;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::alarms::{AlarmKind, Alarms};
use crate::config::UploadConfig;
use crate::model::{LegUpdate, MediaStatus};
use crate::storage::{media_path, Storage, StorageError, Storages};
use crate::store::Store;
use journal::{Journal, Step};

/// Test hook: sleep this many ms after each file put (so a test can `kill -9` mid-upload).
pub const PUT_DELAY_ENV: &str = "RECORDER_DAEMON_TEST_PUT_DELAY_MS";

/// One file of a verified recording.
#[derive(Debug, Clone)]
struct FileEntry {
    name: String,
    size: u64,
    md5: [u8; 16],
}

/// A sealed recording that passed verification (kept between attempts so that a recording
/// waiting for its storage is not hashed again every scan).
#[derive(Debug)]
struct Prepared {
    dir: PathBuf,
    leg: LegUpdate,
    media_path: String,
    targets: Vec<String>,
    files: Vec<FileEntry>,
}

/// What became of one attempt.
#[derive(Debug)]
enum Outcome {
    /// Stored, indexed, out of the spool.
    Done,
    /// A storage is down (or backing off): the recording waits.
    Waiting,
    /// Something else failed: retried after a back-off.
    Retry(String),
    /// Corrupt: moved to `rejected/`.
    Rejected,
    /// Names an unknown storage (this one): left in the spool.
    Held(String),
}

/// The state of one storage, as `GET /api/v1/storages` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    /// Friendly name.
    pub name: String,
    /// `local`, `azure`.
    pub kind: String,
    /// `ok`, `failed`, or `unknown` before the first use.
    pub connection: String,
    /// The last error, while failed.
    pub last_error: Option<String>,
    /// Since when the connection has this status (RFC 3339).
    pub since: Option<String>,
    /// Bytes stored, when the backend can tell.
    pub consumed_bytes: Option<u64>,
    /// Recordings in the spools waiting for this storage.
    pub recordings_waiting: u64,
    /// Recordings stored since the daemon started.
    pub recordings_uploaded: u64,
}

#[derive(Debug, Default)]
struct Health {
    failed: bool,
    known: bool,
    last_error: Option<String>,
    since: Option<chrono::DateTime<chrono::Utc>>,
    failures: u32,
    next_attempt: Option<Instant>,
    /// A trial attempt was let through while failed: its failure lengthens the back-off.
    /// Failures of attempts already in flight when the storage failed do not, so a burst of
    /// concurrent failures counts once.
    trial: bool,
    waiting: u64,
    uploaded: u64,
}

/// Connection status of every storage, shared with the HTTP API.
#[derive(Debug, Default)]
pub struct HealthBoard {
    by_name: Mutex<BTreeMap<String, Health>>,
}

impl HealthBoard {
    fn with<T>(&self, name: &str, f: impl FnOnce(&mut Health) -> T) -> T {
        let mut m = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        f(m.entry(name.to_string()).or_default())
    }

    /// The status of every storage of `storages`.
    pub async fn status(&self, storages: &Storages) -> Vec<StorageStatus> {
        let mut out = Vec::new();
        for s in storages.iter() {
            let consumed = s.consumed_bytes().await.ok().flatten();
            let st = self.with(s.name(), |h| StorageStatus {
                name: s.name().to_string(),
                kind: s.kind().to_string(),
                connection: if !h.known {
                    "unknown"
                } else if h.failed {
                    "failed"
                } else {
                    "ok"
                }
                .into(),
                last_error: h.last_error.clone().filter(|_| h.failed),
                since: h
                    .since
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                consumed_bytes: consumed,
                recordings_waiting: h.waiting,
                recordings_uploaded: h.uploaded,
            });
            out.push(st);
        }
        out
    }
}

/// Counts of one pass (`upload --once`, the benchmark).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    /// Stored and out of the spool.
    pub done: usize,
    /// Waiting for a storage or retrying.
    pub waiting: usize,
    /// Set aside as corrupt.
    pub rejected: usize,
    /// Held for an unknown storage.
    pub held: usize,
}

/// The uploader.
pub struct Uploader {
    storages: Storages,
    paired: BTreeMap<String, String>,
    spools: Vec<PathBuf>,
    keep_spool_copy: bool,
    cfg: UploadConfig,
    store: Arc<dyn Store>,
    alarms: Alarms,
    journal: Arc<Journal>,
    health: Arc<HealthBoard>,
    prepared: Mutex<HashMap<String, Arc<Prepared>>>,
    /// Recording id -> (failures, next attempt) for non-storage failures.
    retry: Mutex<HashMap<String, (u32, Instant)>>,
    /// Unknown storage names with an active alarm.
    unknown_alarmed: Mutex<BTreeSet<String>>,
    put_delay: Option<Duration>,
}

/// What the uploader is built from.
pub struct UploaderParts {
    /// The storages.
    pub storages: Storages,
    /// Storage name -> its paired (geo-redundant) storage.
    pub paired: BTreeMap<String, String>,
    /// Spool directories (each with `sealed/`).
    pub spools: Vec<PathBuf>,
    /// Keep spool copies in `uploaded/`.
    pub keep_spool_copy: bool,
    /// Tuning.
    pub cfg: UploadConfig,
    /// The metadata store.
    pub store: Arc<dyn Store>,
    /// Alarms.
    pub alarms: Alarms,
    /// The journal.
    pub journal: Journal,
    /// Shared status board.
    pub health: Arc<HealthBoard>,
}

fn spawn_blocking_err<T>(r: Result<T, tokio::task::JoinError>) -> Result<T> {
    r.map_err(|e| anyhow::anyhow!("blocking task: {e}"))
}

impl Uploader {
    /// An uploader; call [`Uploader::run`] or [`Uploader::pass`].
    pub fn new(p: UploaderParts) -> Arc<Self> {
        let put_delay = std::env::var(PUT_DELAY_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis);
        Arc::new(Self {
            storages: p.storages,
            paired: p.paired,
            spools: p.spools,
            keep_spool_copy: p.keep_spool_copy,
            cfg: p.cfg,
            store: p.store,
            alarms: p.alarms,
            journal: Arc::new(p.journal),
            health: p.health,
            prepared: Mutex::new(HashMap::new()),
            retry: Mutex::new(HashMap::new()),
            unknown_alarmed: Mutex::new(BTreeSet::new()),
            put_delay,
        })
    }

    /// Picks up where a previous run stopped: alarms still active (so recovery clears them and
    /// a condition that persists is not raised twice), spool copies of indexed recordings.
    pub async fn recover(&self) -> Result<()> {
        for name in self
            .alarms
            .active_subjects(AlarmKind::ConnectionFailed)
            .await
        {
            if self.storages.get(&name).is_some() {
                self.health.with(&name, |h| {
                    h.known = true;
                    h.failed = true;
                    h.last_error = Some("failed before the restart".into());
                    h.next_attempt = Some(Instant::now());
                });
            } else {
                // The storage was removed from the configuration: nothing will clear it.
                self.alarms.clear(AlarmKind::ConnectionFailed, &name).await;
            }
        }
        let unknown = self.alarms.active_subjects(AlarmKind::UnknownStorage).await;
        self.unknown_alarmed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(unknown);
        let j = self.journal.clone();
        let indexed = spawn_blocking_err(tokio::task::spawn_blocking(move || j.indexed()).await)??;
        for (id, spool) in indexed {
            self.finish(Path::new(&spool), &id).await?;
        }
        Ok(())
    }

    /// Runs until the task is dropped: a pass every `poll_ms`.
    pub async fn run(self: Arc<Self>) {
        if let Err(e) = self.recover().await {
            eprintln!("recorder-daemon: uploader recovery: {e:#}");
        }
        let mut tick = tokio::time::interval(Duration::from_millis(self.cfg.poll_ms.max(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.clone().pass().await {
                eprintln!("recorder-daemon: uploader: {e:#}");
            }
        }
    }

    /// One pass over every spool: each recording due is attempted once, `concurrency` at a
    /// time; returns when all attempts ended.
    pub async fn pass(self: Arc<Self>) -> Result<PassReport> {
        let mut due = Vec::new();
        for spool in &self.spools {
            let sealed = spool.join("sealed");
            let mut rd = match tokio::fs::read_dir(&sealed).await {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("listing {}", sealed.display())),
            };
            while let Some(entry) = rd.next_entry().await? {
                let name = entry.file_name().to_string_lossy().into_owned();
                // bot-host's temporaries and anything that is not a recording directory.
                if name.starts_with('.') || !entry.file_type().await?.is_dir() {
                    continue;
                }
                due.push((spool.clone(), name));
            }
        }
        due.sort();
        let now = Instant::now();
        let retry_due = |id: &str| {
            self.retry
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(id)
                .is_none_or(|(_, at)| *at <= now)
        };
        let sem = Arc::new(tokio::sync::Semaphore::new(self.cfg.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        let mut report = PassReport::default();
        let mut seen_ids = BTreeSet::new();
        for (spool, id) in due {
            seen_ids.insert(id.clone());
            if !retry_due(&id) {
                report.waiting += 1;
                continue;
            }
            let permit = sem.clone().acquire_owned().await?;
            let me = self.clone();
            tasks.spawn(async move {
                let out = me.attempt(&spool, &id).await;
                drop(permit);
                (id, out)
            });
        }
        let mut unknown_now = BTreeSet::new();
        while let Some(r) = tasks.join_next().await {
            let (id, out) = r?;
            match out {
                Outcome::Done => {
                    report.done += 1;
                    self.forget(&id);
                }
                Outcome::Waiting => report.waiting += 1,
                Outcome::Retry(e) => {
                    report.waiting += 1;
                    let delay = {
                        let mut m = self.retry.lock().unwrap_or_else(|p| p.into_inner());
                        let n = m.get(&id).map_or(1, |(n, _)| n + 1);
                        let d = backoff(&self.cfg, n);
                        m.insert(id.clone(), (n, Instant::now() + d));
                        d
                    };
                    eprintln!(
                        "recorder-daemon: upload of {id} failed, retry in {:.1} s: {e}",
                        delay.as_secs_f64()
                    );
                }
                Outcome::Rejected => {
                    report.rejected += 1;
                    self.forget(&id);
                }
                Outcome::Held(name) => {
                    report.held += 1;
                    unknown_now.insert(name);
                }
            }
        }
        // Forget what left the spool by other means (an operator moved it).
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| seen_ids.contains(id));
        self.update_waiting();
        self.settle_alarms(&unknown_now).await;
        Ok(report)
    }

    fn forget(&self, id: &str) {
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.retry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    fn prepared_of(&self, id: &str) -> Option<Arc<Prepared>> {
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn update_waiting(&self) {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for p in self
            .prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            for t in &p.targets {
                *counts.entry(t.clone()).or_default() += 1;
            }
        }
        for s in self.storages.iter() {
            let n = counts.get(s.name()).copied().unwrap_or(0);
            self.health.with(s.name(), |h| h.waiting = n);
        }
    }

    /// Clears alarms whose condition ended: unknown storages no recording names any more,
    /// rejected entries an operator removed, failed storages with nothing waiting that answer a
    /// probe.
    async fn settle_alarms(&self, unknown_now: &BTreeSet<String>) {
        let gone: Vec<String> = {
            let mut a = self
                .unknown_alarmed
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let gone = a.difference(unknown_now).cloned().collect();
            a.retain(|n| unknown_now.contains(n));
            gone
        };
        for name in gone {
            self.alarms.clear(AlarmKind::UnknownStorage, &name).await;
            eprintln!("recorder-daemon: no recording waits for unknown storage {name:?} any more");
        }
        for subject in self
            .alarms
            .active_subjects(AlarmKind::RecordingRejected)
            .await
        {
            if !Path::new(&subject).exists() {
                self.alarms
                    .clear(AlarmKind::RecordingRejected, &subject)
                    .await;
            }
        }
        for s in self.storages.iter() {
            let probe = self.health.with(s.name(), |h| {
                h.failed && h.waiting == 0 && h.next_attempt.is_none_or(|t| t <= Instant::now())
            });
            if probe {
                match s.probe().await {
                    Ok(()) => self.storage_ok(s.as_ref()).await,
                    Err(e) => self.storage_down(s.as_ref(), &e).await,
                }
            }
        }
    }

    /// Whether `storage` may be used now: always while healthy; while failed, one attempt per
    /// back-off period (the attempt that finds it recovered).
    fn admit(&self, storage: &str) -> bool {
        let cfg = &self.cfg;
        self.health.with(storage, |h| {
            if !h.failed {
                return true;
            }
            let now = Instant::now();
            if h.next_attempt.is_none_or(|t| t <= now) {
                h.next_attempt = Some(now + backoff(cfg, h.failures.max(1)));
                h.trial = true;
                true
            } else {
                false
            }
        })
    }

    async fn storage_down(&self, s: &dyn Storage, e: &StorageError) {
        let first = self.health.with(s.name(), |h| {
            let first = !h.failed;
            h.known = true;
            h.failed = true;
            h.last_error = Some(e.to_string());
            if first || h.trial {
                h.failures = h.failures.saturating_add(1);
                h.next_attempt = Some(Instant::now() + backoff(&self.cfg, h.failures));
            }
            if first {
                h.since = Some(chrono::Utc::now());
            }
            h.trial = false;
            first
        });
        if first {
            eprintln!(
                "recorder-daemon: storage {} ({}) failed: {e}; recordings wait in the spool",
                s.name(),
                s.kind()
            );
        }
        self.alarms
            .raise(
                AlarmKind::ConnectionFailed,
                s.name(),
                &format!("Storage {} cannot be used: {e}", s.name()),
            )
            .await;
    }

    async fn storage_ok(&self, s: &dyn Storage) {
        let recovered = self.health.with(s.name(), |h| {
            let was = h.failed || !h.known;
            let recovered = h.failed;
            h.known = true;
            h.failed = false;
            h.failures = 0;
            h.next_attempt = None;
            h.trial = false;
            if was {
                h.since = Some(chrono::Utc::now());
            }
            recovered
        });
        if recovered {
            eprintln!("recorder-daemon: storage {} recovered", s.name());
        }
        // Also after a restart, when only the store remembers the alarm.
        self.alarms
            .clear(AlarmKind::ConnectionFailed, s.name())
            .await;
    }

    /// One attempt at one recording.
    async fn attempt(&self, spool: &Path, id: &str) -> Outcome {
        match self.attempt_inner(spool, id).await {
            Ok(o) => o,
            Err(e) => Outcome::Retry(format!("{e:#}")),
        }
    }

    async fn attempt_inner(&self, spool: &Path, id: &str) -> Result<Outcome> {
        let j = self.journal.clone();
        let idc = id.to_string();
        let step = spawn_blocking_err(tokio::task::spawn_blocking(move || j.step(&idc)).await)??;
        if step == Some(Step::Indexed) {
            // Stored and indexed before a crash; only the spool copy is left to move.
            self.finish(spool, id).await?;
            return Ok(Outcome::Done);
        }
        let p = match self.prepared_of(id) {
            Some(p) => p,
            None => {
                let dir = spool.join("sealed").join(id);
                let checked = tokio::task::spawn_blocking({
                    let dir = dir.clone();
                    let id = id.to_string();
                    move || prepare(&dir, &id)
                })
                .await;
                match spawn_blocking_err(checked)? {
                    Ok(mut p) => {
                        p.targets = self.targets_of(&p.leg);
                        let p = Arc::new(p);
                        self.prepared
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(id.to_string(), p.clone());
                        p
                    }
                    Err(e) => {
                        self.reject(spool, id, &format!("{e:#}")).await?;
                        return Ok(Outcome::Rejected);
                    }
                }
            }
        };
        // Targets: the profile's storage, and its pair for Pro.
        let mut targets: Vec<Arc<dyn Storage>> = Vec::new();
        for name in &p.targets {
            match self.storages.get(name) {
                Some(s) => targets.push(s.clone()),
                None => {
                    let raised = self
                        .alarms
                        .raise(
                            AlarmKind::UnknownStorage,
                            name,
                            &format!(
                                "Recording {id} names storage {name:?}, which is not configured; \
                                 it is held in the spool"
                            ),
                        )
                        .await;
                    self.unknown_alarmed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name.clone());
                    if raised {
                        eprintln!(
                            "recorder-daemon: recording {id} held in {}: unknown storage {name:?}",
                            spool.display()
                        );
                    }
                    return Ok(Outcome::Held(name.clone()));
                }
            }
        }
        let j = self.journal.clone();
        let (idc, spoolc, mp) = (id.to_string(), spool.to_path_buf(), p.media_path.clone());
        let done = spawn_blocking_err(
            tokio::task::spawn_blocking(move || {
                j.begin(&idc, &spoolc, &mp)?;
                j.copies(&idc)
            })
            .await,
        )??;
        for s in &targets {
            if done.iter().any(|d| d == s.name()) {
                continue;
            }
            if !self.admit(s.name()) {
                return Ok(Outcome::Waiting);
            }
            match self.copy_to(s.as_ref(), &p).await {
                Ok(bytes) => {
                    let j = self.journal.clone();
                    let (idc, name, n) = (id.to_string(), s.name().to_string(), p.files.len());
                    spawn_blocking_err(
                        tokio::task::spawn_blocking(move || j.copy_verified(&idc, &name, n, bytes))
                            .await,
                    )??;
                    self.storage_ok(s.as_ref()).await;
                }
                Err(e) if e.is_storage_down() => {
                    self.storage_down(s.as_ref(), &e).await;
                    return Ok(Outcome::Waiting);
                }
                Err(e) => {
                    if matches!(e, StorageError::Source { .. }) {
                        // The spool copy changed since it was verified: verify it again.
                        self.forget(id);
                    }
                    bail!("copy to {}: {e}", s.name());
                }
            }
        }
        // Every copy verified: the store learns where the media is.
        let mut leg = p.leg.clone();
        leg.media_status = MediaStatus::Available;
        leg.media_path = Some(p.media_path.clone());
        let store = self.store.clone();
        spawn_blocking_err(tokio::task::spawn_blocking(move || store.upsert_leg(&leg)).await)?
            .context("updating the store")?;
        let j = self.journal.clone();
        let idc = id.to_string();
        spawn_blocking_err(
            tokio::task::spawn_blocking(move || j.set_step(&idc, Step::Indexed)).await,
        )??;
        for s in &targets {
            self.health.with(s.name(), |h| h.uploaded += 1);
        }
        self.finish(spool, id).await?;
        Ok(Outcome::Done)
    }

    /// Puts every file of `p` to `s`; returns the bytes stored.
    async fn copy_to(&self, s: &dyn Storage, p: &Prepared) -> Result<u64, StorageError> {
        let mut bytes = 0;
        for f in &p.files {
            let key = format!("{}/{}", p.media_path, f.name);
            s.put_file(&key, &p.dir.join(&f.name), f.size, f.md5)
                .await?;
            bytes += f.size;
            if let Some(d) = self.put_delay {
                tokio::time::sleep(d).await;
            }
        }
        Ok(bytes)
    }

    /// Takes the spool copy out of `sealed/`: an atomic rename to `uploaded/`, then removal
    /// unless it is to be kept. Safe to repeat.
    async fn finish(&self, spool: &Path, id: &str) -> Result<()> {
        let keep = self.keep_spool_copy;
        let (spool, idc) = (spool.to_path_buf(), id.to_string());
        spawn_blocking_err(
            tokio::task::spawn_blocking(move || -> Result<()> {
                let sealed = spool.join("sealed").join(&idc);
                let uploaded_dir = spool.join("uploaded");
                let uploaded = uploaded_dir.join(&idc);
                if sealed.exists() {
                    std::fs::create_dir_all(&uploaded_dir)?;
                    if uploaded.exists() {
                        // A copy kept from an earlier upload of the same recording.
                        std::fs::remove_dir_all(&uploaded)?;
                    }
                    std::fs::rename(&sealed, &uploaded)
                        .with_context(|| format!("moving {}", sealed.display()))?;
                    sync_dir(&spool.join("sealed"))?;
                    sync_dir(&uploaded_dir)?;
                }
                if !keep && uploaded.exists() {
                    std::fs::remove_dir_all(&uploaded)
                        .with_context(|| format!("removing {}", uploaded.display()))?;
                }
                Ok(())
            })
            .await,
        )??;
        let j = self.journal.clone();
        let idc = id.to_string();
        spawn_blocking_err(
            tokio::task::spawn_blocking(move || j.set_step(&idc, Step::Done)).await,
        )??;
        Ok(())
    }

    /// Moves a corrupt recording to `rejected/<id>/`, writes `rejected/<id>.reason.txt` beside
    /// it (not inside: the directory stays as sealed, so it can be moved back once repaired),
    /// raises the alarm and logs. Never deletes anything.
    async fn reject(&self, spool: &Path, id: &str, reason: &str) -> Result<()> {
        let (spoolc, idc, reasonc) = (spool.to_path_buf(), id.to_string(), reason.to_string());
        let target = spawn_blocking_err(
            tokio::task::spawn_blocking(move || -> Result<PathBuf> {
                let dir = spoolc.join("rejected");
                std::fs::create_dir_all(&dir)?;
                let mut target = dir.join(&idc);
                let mut n = 1;
                while target.exists() {
                    // Rejected before under the same id: keep both.
                    target = dir.join(format!("{idc}.{n}"));
                    n += 1;
                }
                std::fs::rename(spoolc.join("sealed").join(&idc), &target)?;
                let reason_file = dir.join(format!(
                    "{}.reason.txt",
                    target.file_name().unwrap_or_default().to_string_lossy()
                ));
                std::fs::write(
                    &reason_file,
                    format!("{}\n{reasonc}\n", chrono::Utc::now().to_rfc3339()),
                )?;
                sync_dir(&dir)?;
                sync_dir(&spoolc.join("sealed"))?;
                Ok(target)
            })
            .await,
        )??;
        eprintln!(
            "recorder-daemon: recording {id} REJECTED, moved to {}: {reason}",
            target.display()
        );
        let subject = target.to_string_lossy().into_owned();
        self.alarms
            .activity("recordingRejected", &subject, reason)
            .await;
        self.alarms
            .raise(
                AlarmKind::RecordingRejected,
                &subject,
                &format!("Recording {id} failed verification and was set aside: {reason}"),
            )
            .await;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Exponential back-off with jitter: `base * 2^(n-1)`, capped, then a random point in its
/// upper half so that storages and recordings failing together do not retry in step.
fn backoff(cfg: &UploadConfig, n: u32) -> Duration {
    use rand::Rng;
    let exp = n.saturating_sub(1).min(30);
    let ms = cfg
        .retry_base_ms
        .max(1)
        .saturating_mul(1u64 << exp)
        .min(cfg.retry_max_ms.max(1));
    let ms = rand::thread_rng().gen_range(ms / 2..=ms);
    Duration::from_millis(ms)
}

/// Verifies a sealed directory (the manifest and the Ogg tracks, `verify.rs`), reads its
/// interaction and hashes its files for the storages.
fn prepare(dir: &Path, id: &str) -> Result<Prepared> {
    crate::storage::local::check_key(id)
        .map_err(|e| anyhow::anyhow!("recording directory name: {e}"))?;
    let manifest_path = dir.join("manifest.json");
    anyhow::ensure!(manifest_path.is_file(), "no manifest.json");
    crate::verify::verify_recording(dir)?;
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("meta.json"))?)
        .context("parsing meta.json")?;
    let mut leg: LegUpdate = serde_json::from_value(meta["interaction"].clone())
        .context("meta.json's interaction is not a leg the store accepts")?;
    // The seal's own verdict wins over the interaction it carries: a recording recovered
    // after a crash holds the interaction as it was at the answer, which knows nothing of it.
    leg.partial |= meta["status"] == "partial";
    leg.validate()
        .map_err(|e| anyhow::anyhow!("meta.json's interaction: {e}"))?;
    anyhow::ensure!(
        leg.recording_id == id,
        "meta.json says recording {}, the directory is {id}",
        leg.recording_id
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path)?).context("parsing manifest")?;
    let mut files = Vec::new();
    for f in manifest["files"]
        .as_array()
        .context("manifest without files")?
    {
        let name = f["file"].as_str().context("manifest entry without file")?;
        crate::storage::local::check_key(name)
            .map_err(|e| anyhow::anyhow!("manifest entry: {e}"))?;
        let (size, md5) = crate::storage::local::file_md5(&dir.join(name))?;
        files.push(FileEntry {
            name: name.to_string(),
            size,
            md5,
        });
    }
    // The manifest itself goes too: it is the recording's tamper evidence.
    let (size, md5) = crate::storage::local::file_md5(&manifest_path)?;
    files.push(FileEntry {
        name: "manifest.json".into(),
        size,
        md5,
    });
    let media_path = media_path(&leg.start_time, id);
    Ok(Prepared {
        dir: dir.to_path_buf(),
        media_path,
        targets: Vec::new(),
        files,
        leg,
    })
}

impl Uploader {
    /// The storages a recording goes to: its profile's (empty: `local`), and that storage's
    /// pair for Pro.
    fn targets_of(&self, leg: &LegUpdate) -> Vec<String> {
        let primary = if leg.storage.is_empty() {
            "local".to_string()
        } else {
            leg.storage.clone()
        };
        let mut t = vec![primary.clone()];
        if leg.double_recording_type == "Pro" {
            match self.paired.get(&primary) {
                Some(p) => t.push(p.clone()),
                None => eprintln!(
                    "recorder-daemon: Pro recording {} but storage {primary:?} has no paired \
                     storage configured: one copy only",
                    leg.recording_id
                ),
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::sealed::{write_sealed, SealedSpec};
    use super::*;
    use crate::rbac::Scope;
    use crate::storage::local::LocalStorage;
    use crate::store::sqlite::SqliteStore;

    fn uploader(dir: &Path, keep: bool, store: Arc<dyn Store>) -> Arc<Uploader> {
        let mut storages = Storages::default();
        storages.insert(Arc::new(
            LocalStorage::open("local", &dir.join("storage"), None).unwrap(),
        ));
        Uploader::new(UploaderParts {
            storages,
            paired: BTreeMap::new(),
            spools: vec![dir.join("spool")],
            keep_spool_copy: keep,
            cfg: UploadConfig::default(),
            alarms: Alarms::new(store.clone(), "t", None),
            store,
            journal: Journal::open(&dir.join("journal.db")).unwrap(),
            health: Arc::default(),
        })
    }

    fn seal(dir: &Path, id: &str) {
        write_sealed(
            &dir.join("spool"),
            &SealedSpec {
                id,
                storage: "local",
                double_recording_type: "Pro",
                start_time: "2026-11-26T10:00:00Z",
                mixed: b"opus",
                track: None,
                partial: false,
            },
        )
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kept_spool_copy_moves_to_uploaded_and_pro_without_a_pair_stores_one_copy() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        seal(dir.path(), "r1");
        let up = uploader(dir.path(), true, store.clone());
        let r = up.clone().pass().await.unwrap();
        assert_eq!(r.done, 1);
        assert!(dir.path().join("spool/uploaded/r1/manifest.json").is_file());
        assert!(!dir.path().join("spool/sealed/r1").exists());
        assert!(dir.path().join("storage/2026/11/26/r1/mixed.ogg").is_file());
        let d = store.get(1, &Scope::All).unwrap().unwrap();
        assert_eq!(d.legs[0].media_status, MediaStatus::Available);
        // Nothing left: a second pass does nothing.
        assert_eq!(up.pass().await.unwrap(), PassReport::default());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_recording_recovered_after_a_bot_crash_is_stored_flagged_partial() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        // As bot-host seals what a kill -9 left in active/: the interaction is the one posted
        // at the answer (mediaStatus Recording, no partial flag); only meta.json's status says.
        for (id, partial) in [("r-crashed", true), ("r-complete", false)] {
            write_sealed(
                &dir.path().join("spool"),
                &SealedSpec {
                    id,
                    storage: "local",
                    double_recording_type: "Essentials",
                    start_time: "2026-11-26T10:00:00Z",
                    mixed: b"opus",
                    track: None,
                    partial,
                },
            )
            .unwrap();
        }
        let up = uploader(dir.path(), false, store.clone());
        assert_eq!(up.clone().pass().await.unwrap().done, 2);
        let mut flagged = Vec::new();
        for iid in [1, 2] {
            let d = store.get(iid, &Scope::All).unwrap().unwrap();
            let leg = &d.legs[0];
            assert_eq!(leg.media_status, MediaStatus::Available);
            let want = leg.recording_id == "r-crashed";
            assert_eq!(leg.metadata.partial, want);
            if leg.metadata.partial {
                flagged.push(leg.recording_id.clone());
            }
            // What the API and the UI read.
            let v = serde_json::to_value(&d).unwrap();
            assert_eq!(
                v["legs"][0]["metadata"]["partial"]
                    .as_bool()
                    .unwrap_or(false),
                want
            );
        }
        assert_eq!(flagged, ["r-crashed"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_recording_indexed_before_a_crash_only_leaves_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        seal(dir.path(), "r1");
        {
            // The journal of a run killed after indexing, before the spool move.
            let j = Journal::open(&dir.path().join("journal.db")).unwrap();
            j.begin("r1", &dir.path().join("spool"), "2026/11/26/r1")
                .unwrap();
            j.set_step("r1", Step::Indexed).unwrap();
        }
        let up = uploader(dir.path(), false, store.clone());
        up.recover().await.unwrap();
        assert!(!dir.path().join("spool/sealed/r1").exists());
        assert!(!dir.path().join("spool/uploaded/r1").exists());
        // It trusted the journal: no copy was made again.
        assert!(!dir.path().join("storage/2026").exists());
        assert_eq!(
            up.journal.step("r1").unwrap(),
            None,
            "finished and forgotten"
        );
    }

    /// A 2 s Ogg Opus track from media-core's writer.
    fn opus_track() -> Vec<u8> {
        use media_core::ogg::{OggOpusWriter, OpusHead};
        let head = OpusHead {
            channels: 1,
            pre_skip: 312,
            input_sample_rate: 48_000,
            output_gain: 0,
        };
        let mut w = OggOpusWriter::new(7, head, &[("PARTICIPANT", "p")]);
        for _ in 0..100 {
            w.write_packet(&[0xF8, 0xFF, 0xFE], 960);
        }
        w.finish();
        w.output().clone()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ogg_damage_under_a_matching_manifest_is_rejected_too() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let good = opus_track();
        // Damaged before sealing: the manifest matches, the page CRC does not.
        let mut bad = good.clone();
        let at = bad.len() - 2;
        bad[at] ^= 0x40;
        for (id, track) in [("good", &good), ("bad", &bad)] {
            write_sealed(
                &dir.path().join("spool"),
                &SealedSpec {
                    id,
                    storage: "local",
                    double_recording_type: "Essentials",
                    start_time: "2026-11-26T10:00:00Z",
                    mixed: b"mix",
                    track: Some((track, (96_000.0 - 312.0) / 48.0)),
                    partial: false,
                },
            )
            .unwrap();
        }
        let up = uploader(dir.path(), false, store);
        let r = up.pass().await.unwrap();
        assert_eq!((r.done, r.rejected), (1, 1), "{r:?}");
        let stored = dir.path().join("storage/2026/11/26/good");
        assert_eq!(std::fs::read(stored.join("1001.ogg")).unwrap(), good);
        assert!(dir.path().join("spool/rejected/bad/1001.ogg").is_file());
        let reason =
            std::fs::read_to_string(dir.path().join("spool/rejected/bad.reason.txt")).unwrap();
        assert!(reason.contains("1001.ogg"), "{reason}");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let cfg = UploadConfig {
            retry_base_ms: 100,
            retry_max_ms: 1000,
            ..Default::default()
        };
        for (n, lo, hi) in [(1, 50, 100), (2, 100, 200), (3, 200, 400), (9, 500, 1000)] {
            let d = backoff(&cfg, n).as_millis() as u64;
            assert!((lo..=hi).contains(&d), "{n}: {d}");
        }
    }
}
