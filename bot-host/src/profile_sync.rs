//! Recording profiles from the metadata store (`profiles_url` in the host config): the store's
//! `GET /api/v1/recording-profiles/file`, fetched at start, every `profiles_refresh_secs` and
//! on `POST /api/profiles/reload` (docs/live.md, "Recording profiles from the store").
//!
//! The last set received is cached in the data directory, so a bot restarted while the store
//! is down records by the profiles it last had, not by its local file. A store that holds no
//! profile (404) hands the decision back to the local file (or the embedded default). A set
//! the bot cannot load is refused and the profiles in force stay, exactly like a broken file.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::signaling::Profiles;

/// Where the profiles in force came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The local file or the embedded default.
    Local,
    /// The store, with the SHA-256 of the file applied.
    Store([u8; 32]),
}

/// What one fetch found.
#[derive(Debug)]
pub enum Fetched {
    /// A set that loads, and the body it came from.
    Profiles(Profiles, Vec<u8>),
    /// The store holds no profile.
    NoneStored,
}

/// The store's profile file and the local cache of it.
pub struct ProfileSync {
    url: String,
    cache: PathBuf,
    client: reqwest::Client,
    /// Where the profiles in force came from.
    pub source: Mutex<Source>,
    /// The last failure logged, so an outage is logged once, not every minute.
    last_error: Mutex<Option<String>>,
}

impl ProfileSync {
    /// `url` is the store's profile file URL (it may carry `?ingestKey=`).
    pub fn new(url: String, data_dir: &std::path::Path) -> Self {
        Self {
            url,
            cache: data_dir.join("profiles-from-store.json"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            source: Mutex::new(Source::Local),
            last_error: Mutex::new(None),
        }
    }

    /// The cached set, if one was saved and still loads.
    pub fn cached(&self) -> Option<(Profiles, [u8; 32])> {
        let body = std::fs::read(&self.cache).ok()?;
        let text = std::str::from_utf8(&body).ok()?;
        match Profiles::from_json_str(text) {
            Ok(p) => Some((p, Sha256::digest(&body).into())),
            Err(e) => {
                tracing::warn!("ignoring {}: {e}", self.cache.display());
                None
            }
        }
    }

    /// Fetches the store's file once.
    pub async fn fetch(&self) -> Result<Fetched> {
        let r = self
            .client
            .get(&self.url)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", redact(&self.url)))?;
        let status = r.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(Fetched::NoneStored);
        }
        let body = r
            .bytes()
            .await
            .context("reading the profile file")?
            .to_vec();
        if !status.is_success() {
            bail!(
                "{} answered {status}: {}",
                redact(&self.url),
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        let text = std::str::from_utf8(&body).context("the profile file is not UTF-8")?;
        let profiles = Profiles::from_json_str(text).context("the store's profile file")?;
        Ok(Fetched::Profiles(profiles, body))
    }

    /// Keeps `body` as the cache (temp file + rename, so a crash leaves the old one).
    pub fn save(&self, body: &[u8]) -> Result<()> {
        let tmp = self.cache.with_extension("json.tmp");
        std::fs::write(&tmp, body).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.cache)
            .with_context(|| format!("writing {}", self.cache.display()))
    }

    /// Forgets the cache (the store holds no profile any more).
    pub fn forget(&self) {
        let _ = std::fs::remove_file(&self.cache);
    }

    /// Logs `e` unless it is the failure logged last; `None` clears the memory.
    pub fn note_error(&self, e: Option<String>) {
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        match (&e, last.as_ref()) {
            (Some(now), Some(before)) if now == before => {}
            (Some(now), _) => tracing::warn!(
                "recording profiles from the store: {now}; the profiles in force stay"
            ),
            (None, Some(_)) => tracing::info!("recording profiles from the store: reachable again"),
            (None, None) => {}
        }
        *last = e;
    }
}

/// The URL without its query (which may hold the ingest key), for logs.
fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// The hash of a profile file body.
pub fn digest(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}
