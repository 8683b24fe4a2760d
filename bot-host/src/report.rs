//! Interaction metadata to the metadata store, through a durable outbox.
//!
//! Every update is first written to `<outbox>/<seq>.json` (temp file, fsync, rename), then
//! posted in order by one background task. A store outage only makes the outbox grow: the
//! recording goes on, and nothing is lost across a restart (the outbox is replayed on start).
//! Order matters (an update must not overtake the creation it amends), so a failing head
//! blocks the rest; an update the store refuses outright (4xx other than 408/429) is moved to
//! `rejected/` and logged instead of blocking the queue forever.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::sync::Notify;

/// Counters of the reporter.
#[derive(Debug, Default)]
pub struct ReporterStats {
    /// Updates the store accepted.
    pub posted: AtomicU64,
    /// Attempts that failed (store down, 5xx, timeouts); each is retried.
    pub failed_attempts: AtomicU64,
    /// Updates the store refused (moved to `rejected/`).
    pub rejected: AtomicU64,
}

/// A snapshot of [`ReporterStats`] plus the outbox depth.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReporterSnapshot {
    /// Updates the store accepted.
    pub posted: u64,
    /// Attempts that failed and were retried.
    pub failed_attempts: u64,
    /// Updates the store refused.
    pub rejected: u64,
    /// Updates waiting in the outbox.
    pub pending: u64,
}

/// Posts interaction updates to the store (or keeps them on disk when none is configured).
#[derive(Clone)]
pub struct Reporter {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Option<String>,
    outbox: PathBuf,
    wake: Notify,
    seq: AtomicU64,
    stats: ReporterStats,
}

/// Retry delays: 250 ms doubling to 30 s, with ±25% jitter so that many hosts recovering
/// from one store outage do not retry in lockstep.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(30);

impl Reporter {
    /// Starts the reporter. `endpoint` is the store's interactions URL (e.g.
    /// `http://127.0.0.1:8080/api/v1/interactions`); with `None` updates are only written
    /// next to the recordings by the caller, and nothing is queued. Must be called inside a
    /// tokio runtime.
    pub fn start(endpoint: Option<String>, outbox: &Path) -> Result<Reporter> {
        std::fs::create_dir_all(outbox.join("rejected"))
            .with_context(|| format!("cannot create outbox {}", outbox.display()))?;
        // Continue the sequence after whatever a previous run left behind.
        let next = pending_files(outbox)?
            .last()
            .and_then(|p| seq_of(p))
            .map_or(0, |s| s + 1);
        let inner = Arc::new(Inner {
            endpoint,
            outbox: outbox.to_path_buf(),
            wake: Notify::new(),
            seq: AtomicU64::new(next),
            stats: ReporterStats::default(),
        });
        if inner.endpoint.is_some() {
            tokio::spawn(sender(inner.clone()));
        }
        Ok(Reporter { inner })
    }

    /// Whether a store endpoint is configured.
    pub fn has_endpoint(&self) -> bool {
        self.inner.endpoint.is_some()
    }

    /// Queues one update durably; returns once it is on disk.
    pub fn submit(&self, update: &serde_json::Value) -> Result<()> {
        if self.inner.endpoint.is_none() {
            return Ok(());
        }
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let body = serde_json::to_vec(update).context("cannot serialise interaction")?;
        write_durably(&self.inner.outbox.join(format!("{seq:016}.json")), &body)?;
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Counters and outbox depth.
    pub fn snapshot(&self) -> ReporterSnapshot {
        let s = &self.inner.stats;
        ReporterSnapshot {
            posted: s.posted.load(Ordering::Relaxed),
            failed_attempts: s.failed_attempts.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            pending: pending_files(&self.inner.outbox).map_or(0, |f| f.len() as u64),
        }
    }
}

/// Writes `path` so that after a crash it is either absent or complete.
pub fn write_durably(path: &Path, body: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(body)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename to {}", path.display()))?;
    if let Some(dir) = path.parent() {
        // The rename is durable only once the directory is.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn seq_of(p: &Path) -> Option<u64> {
    p.file_stem()?.to_str()?.parse().ok()
}

/// The queued updates, oldest first.
fn pending_files(outbox: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(outbox)
        .with_context(|| format!("cannot read outbox {}", outbox.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json") && seq_of(p).is_some())
        .collect();
    files.sort_by_key(|p| seq_of(p));
    Ok(files)
}

enum Outcome {
    Posted,
    Retry(String),
    Rejected(String),
}

async fn post(client: &reqwest::Client, endpoint: &str, body: Vec<u8>) -> Outcome {
    let resp = client
        .post(endpoint)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    match resp {
        Err(e) => Outcome::Retry(e.to_string()),
        Ok(r) if r.status().is_success() => Outcome::Posted,
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            let why = format!("{status}: {}", text.chars().take(300).collect::<String>());
            if status.is_client_error()
                && status != reqwest::StatusCode::REQUEST_TIMEOUT
                && status != reqwest::StatusCode::TOO_MANY_REQUESTS
            {
                Outcome::Rejected(why)
            } else {
                Outcome::Retry(why)
            }
        }
    }
}

fn jitter(d: Duration, seed: &mut u64) -> Duration {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    // 0.75 .. 1.25
    let f = 0.75 + (*seed % 1000) as f64 / 2000.0;
    d.mul_f64(f)
}

async fn sender(inner: Arc<Inner>) {
    let Some(endpoint) = inner.endpoint.clone() else {
        return;
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client without TLS or proxies always builds");
    let mut delay = FIRST_RETRY;
    let mut seed = std::process::id() as u64 | 1;
    loop {
        let files = match pending_files(&inner.outbox) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("metadata outbox unreadable: {e:#}");
                tokio::time::sleep(MAX_RETRY).await;
                continue;
            }
        };
        if files.is_empty() {
            inner.wake.notified().await;
            continue;
        }
        for file in files {
            let body = match std::fs::read(&file) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!("cannot read {}: {e}", file.display());
                    break;
                }
            };
            match post(&client, &endpoint, body).await {
                Outcome::Posted => {
                    inner.stats.posted.fetch_add(1, Ordering::Relaxed);
                    let _ = std::fs::remove_file(&file);
                    delay = FIRST_RETRY;
                }
                Outcome::Rejected(why) => {
                    inner.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        file = %file.display(),
                        "metadata store refused an interaction update, kept in rejected/: {why}"
                    );
                    let to = inner
                        .outbox
                        .join("rejected")
                        .join(file.file_name().unwrap_or_default());
                    let _ = std::fs::rename(&file, to);
                }
                Outcome::Retry(why) => {
                    inner.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("metadata store unreachable, retrying in {:?}: {why}", delay);
                    tokio::time::sleep(jitter(delay, &mut seed)).await;
                    delay = (delay * 2).min(MAX_RETRY);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A store that fails its first `fail` requests with 503, then records bodies.
    async fn store(fail: usize) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        use axum::{extract::State, http::StatusCode, routing::post, Router};
        type S = (Arc<AtomicUsize>, usize, Arc<std::sync::Mutex<Vec<String>>>);
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let state: S = (Arc::new(AtomicUsize::new(0)), fail, got.clone());
        let app = Router::new()
            .route(
                "/i",
                post(|State((n, fail, got)): State<S>, body: String| async move {
                    if n.fetch_add(1, Ordering::SeqCst) < fail {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    if body.contains("refuse") {
                        return StatusCode::UNPROCESSABLE_ENTITY;
                    }
                    got.lock().unwrap().push(body);
                    StatusCode::OK
                }),
            )
            .with_state(state);
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        (format!("http://{addr}/i"), got)
    }

    async fn wait_for(r: &Reporter, posted: u64) -> ReporterSnapshot {
        for _ in 0..400 {
            let s = r.snapshot();
            if s.posted + s.rejected >= posted && s.pending == 0 {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        r.snapshot()
    }

    #[tokio::test]
    async fn updates_survive_an_outage_and_arrive_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (url, got) = store(3).await;
        let r = Reporter::start(Some(url), dir.path()).unwrap();
        for i in 0..5 {
            r.submit(&serde_json::json!({ "n": i })).unwrap();
        }
        let s = wait_for(&r, 5).await;
        assert_eq!(s.posted, 5, "{s:?}");
        assert!(s.failed_attempts >= 3, "{s:?}");
        let got = got.lock().unwrap().clone();
        let want: Vec<String> = (0..5).map(|i| format!("{{\"n\":{i}}}")).collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_restart_replays_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        // First run: a store that is down; the updates stay on disk.
        {
            let r = Reporter::start(Some("http://127.0.0.1:9/i".into()), dir.path()).unwrap();
            r.submit(&serde_json::json!({ "n": 0 })).unwrap();
            r.submit(&serde_json::json!({ "n": 1 })).unwrap();
            assert_eq!(r.snapshot().pending, 2);
        }
        let (url, got) = store(0).await;
        let r = Reporter::start(Some(url), dir.path()).unwrap();
        r.submit(&serde_json::json!({ "n": 2 })).unwrap();
        let s = wait_for(&r, 3).await;
        assert_eq!(s.posted, 3, "{s:?}");
        assert_eq!(got.lock().unwrap().len(), 3);
        assert_eq!(got.lock().unwrap()[2], "{\"n\":2}");
    }

    #[tokio::test]
    async fn a_refused_update_does_not_block_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let (url, got) = store(0).await;
        let r = Reporter::start(Some(url), dir.path()).unwrap();
        r.submit(&serde_json::json!({ "refuse": true })).unwrap();
        r.submit(&serde_json::json!({ "n": 1 })).unwrap();
        let s = wait_for(&r, 2).await;
        assert_eq!((s.posted, s.rejected), (1, 1), "{s:?}");
        assert_eq!(got.lock().unwrap().len(), 1);
        assert_eq!(
            std::fs::read_dir(dir.path().join("rejected"))
                .unwrap()
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn without_an_endpoint_nothing_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let r = Reporter::start(None, dir.path()).unwrap();
        r.submit(&serde_json::json!({ "n": 0 })).unwrap();
        assert!(!r.has_endpoint());
        assert_eq!(r.snapshot().pending, 0);
    }
}
