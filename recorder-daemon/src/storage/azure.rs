//! Azure Blob Storage backend: a thin client over the Blob REST API (docs/azure.md says why
//! neither `azure_storage_blob` nor `object_store` does what the uploader needs).
//!
//! Large files go up as blocks whose ids are derived from the file's MD5, the block size and
//! the block index, so a put interrupted by a crash or an outage is resumed: the next attempt
//! lists the blob's uncommitted blocks and stages only the missing ones. The commit carries the
//! whole file's MD5 (`x-ms-blob-content-md5`) and the stored copy is verified (size + MD5) by a
//! Get Blob Properties before `put_file` returns.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use sha2::Sha256;
use url::Url;

use super::{ByteStream, ObjectMeta, Storage, StorageError};

/// The Blob service version every request asks for.
const API_VERSION: &str = "2021-08-06";
/// Azure's limit on the blocks of one blob.
const MAX_BLOCKS: u64 = 50_000;
/// Azure's limit on one block (version 2019-12-12 and later).
const MAX_BLOCK_SIZE: u64 = 4000 * 1024 * 1024;
/// Azure's limit on one Put Blob (version 2019-12-12 and later).
const MAX_SINGLE_PUT: u64 = 5000 * 1024 * 1024;

/// Unreserved characters of RFC 3986 stay as they are; everything else is percent-encoded.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One Azure storage as the "Bring Your Own Storage" page configures it: a container SAS URL,
/// or an account name + key + container (the emulator, and operators who prefer a key).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// Container SAS URL, `https://<account>.blob.core.windows.net/<container>?sv=...&sig=...`.
    /// Needs the permissions r, a, c, w, d, l (racwdl).
    #[serde(default)]
    pub sas_url: Option<String>,
    /// Storage account name (with `account_key` and `container`, instead of `sas_url`).
    #[serde(default)]
    pub account: Option<String>,
    /// Storage account key, base64 as the portal shows it.
    #[serde(default)]
    pub account_key: Option<String>,
    /// Container name.
    #[serde(default)]
    pub container: Option<String>,
    /// Blob service endpoint for the account-key form; default
    /// `https://<account>.blob.core.windows.net`. Azurite: `http://127.0.0.1:10000/devstoreaccount1`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Block size in bytes for staged uploads (raised per file when a file would need more
    /// than Azure's 50 000 blocks).
    #[serde(default = "default_block_size")]
    pub block_size: u64,
    /// Files up to this size go up in one Put Blob instead of blocks.
    #[serde(default = "default_single_put_max")]
    pub single_put_max: u64,
    /// Blocks in flight at once within one file.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Retries of one request on transient errors.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Seconds without progress on one request before it is abandoned (and retried).
    #[serde(default = "default_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Create the container when the daemon starts if it does not exist (account-key form
    /// only: a container SAS cannot create its own container). For emulators and fresh
    /// accounts; in production the container is usually made with its policies beforehand.
    #[serde(default)]
    pub create_container: bool,
}

/// Retries of one request inside a storage operation, for transient errors (connection
/// refused or reset, timeouts, 5xx, 408, 429). The uploader retries whole puts at its level.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Retries after the first attempt.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// First back-off, milliseconds; doubled on each retry.
    #[serde(default = "default_base_ms")]
    pub base_ms: u64,
    /// Longest back-off, milliseconds.
    #[serde(default = "default_max_ms")]
    pub max_ms: u64,
}

fn default_block_size() -> u64 {
    8 * 1024 * 1024
}
fn default_single_put_max() -> u64 {
    4 * 1024 * 1024
}
fn default_concurrency() -> usize {
    4
}
fn default_timeout_secs() -> u64 {
    60
}
fn default_max_retries() -> u32 {
    5
}
fn default_base_ms() -> u64 {
    250
}
fn default_max_ms() -> u64 {
    20_000
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: default_max_retries(),
            base_ms: default_base_ms(),
            max_ms: default_max_ms(),
        }
    }
}

impl AzureConfig {
    /// A configuration from a container SAS URL, other settings at their defaults.
    pub fn from_sas_url(sas_url: &str) -> Self {
        AzureConfig {
            sas_url: Some(sas_url.to_string()),
            ..Self::empty()
        }
    }

    /// A configuration from an account name and key, other settings at their defaults.
    pub fn from_account_key(
        account: &str,
        key: &str,
        container: &str,
        endpoint: Option<&str>,
    ) -> Self {
        AzureConfig {
            account: Some(account.to_string()),
            account_key: Some(key.to_string()),
            container: Some(container.to_string()),
            endpoint: endpoint.map(str::to_string),
            ..Self::empty()
        }
    }

    fn empty() -> Self {
        AzureConfig {
            sas_url: None,
            account: None,
            account_key: None,
            container: None,
            endpoint: None,
            block_size: default_block_size(),
            single_put_max: default_single_put_max(),
            concurrency: default_concurrency(),
            retry: RetryConfig::default(),
            request_timeout_secs: default_timeout_secs(),
            create_container: false,
        }
    }
}

// Secrets stay out of logs: the SAS signature and the key are never printed.
impl std::fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureConfig")
            .field(
                "sas_url",
                &self
                    .sas_url
                    .as_deref()
                    .map(|u| u.split('?').next().unwrap_or("")),
            )
            .field("account", &self.account)
            .field("account_key", &self.account_key.as_ref().map(|_| "***"))
            .field("container", &self.container)
            .field("endpoint", &self.endpoint)
            .field("block_size", &self.block_size)
            .field("single_put_max", &self.single_put_max)
            .field("concurrency", &self.concurrency)
            .field("retry", &self.retry)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("create_container", &self.create_container)
            .finish()
    }
}

/// Counters of one Azure storage, for tests, the benchmark and status pages.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AzureStats {
    /// Blocks sent with Put Block (successfully).
    pub blocks_staged: u64,
    /// Blocks a resumed put found already staged and did not send again.
    pub blocks_skipped: u64,
    /// Requests retried after a transient error.
    pub retries: u64,
    /// Payload bytes sent (blocks and single puts).
    pub bytes_sent: u64,
}

#[derive(Default)]
struct Counters {
    blocks_staged: AtomicU64,
    blocks_skipped: AtomicU64,
    retries: AtomicU64,
    bytes_sent: AtomicU64,
}

enum Auth {
    /// The SAS query string, exactly as given (already encoded).
    Sas(String),
    SharedKey {
        account: String,
        key: Vec<u8>,
    },
}

/// An Azure Blob container as a [`Storage`].
pub struct AzureStorage {
    name: String,
    /// `<endpoint>/<container>`, no query, no trailing slash.
    container_url: String,
    auth: Auth,
    http: reqwest::Client,
    block_size: u64,
    single_put_max: u64,
    concurrency: usize,
    retry: RetryConfig,
    timeout: Duration,
    counters: Arc<Counters>,
}

impl AzureStorage {
    /// Builds the client for storage `name` and checks the configuration; no request is sent
    /// (the uploader probes with [`Storage::probe`]).
    pub async fn connect(name: &str, cfg: &AzureConfig) -> Result<Self, StorageError> {
        let bad = |detail: String| StorageError::Other {
            storage: name.to_string(),
            detail,
        };
        let (container_url, auth) = match (&cfg.sas_url, &cfg.account, &cfg.account_key) {
            (Some(sas), None, None) => {
                let u = Url::parse(sas).map_err(|e| bad(format!("sas_url: {e}")))?;
                let query = u.query().unwrap_or("").to_string();
                if !query.split('&').any(|p| p.starts_with("sig=")) {
                    return Err(bad("sas_url has no signature (sig=)".into()));
                }
                if cfg.container.is_some() || cfg.endpoint.is_some() {
                    return Err(bad(
                        "sas_url names the container: drop container and endpoint".into(),
                    ));
                }
                let has_container = u
                    .path_segments()
                    .is_some_and(|mut p| p.any(|seg| !seg.is_empty()));
                if !has_container {
                    return Err(bad("sas_url has no container in its path".into()));
                }
                let mut base = u.clone();
                base.set_query(None);
                base.set_fragment(None);
                let base = base.as_str().trim_end_matches('/').to_string();
                (base, Auth::Sas(query))
            }
            (None, Some(account), Some(key)) => {
                let container = cfg
                    .container
                    .as_deref()
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| bad("account_key needs container".into()))?;
                let key = B64
                    .decode(key.trim())
                    .map_err(|e| bad(format!("account_key is not base64: {e}")))?;
                let endpoint = match &cfg.endpoint {
                    Some(e) => e.trim_end_matches('/').to_string(),
                    None => format!("https://{account}.blob.core.windows.net"),
                };
                Url::parse(&endpoint).map_err(|e| bad(format!("endpoint: {e}")))?;
                (
                    format!("{endpoint}/{container}"),
                    Auth::SharedKey {
                        account: account.clone(),
                        key,
                    },
                )
            }
            _ => {
                return Err(bad(
                    "give either sas_url, or account + account_key + container".into(),
                ))
            }
        };
        if !(64 * 1024..=MAX_BLOCK_SIZE).contains(&cfg.block_size) {
            return Err(bad(format!(
                "block_size {} outside 64 KiB..4000 MiB",
                cfg.block_size
            )));
        }
        if cfg.single_put_max > MAX_SINGLE_PUT {
            return Err(bad("single_put_max above Azure's 5000 MiB".into()));
        }
        if cfg.concurrency == 0 || cfg.concurrency > 64 {
            return Err(bad("concurrency must be 1..=64".into()));
        }
        if cfg.create_container && !matches!(auth, Auth::SharedKey { .. }) {
            return Err(bad(
                "create_container needs account + account_key (a SAS cannot create its container)"
                    .into(),
            ));
        }
        let timeout = Duration::from_secs(cfg.request_timeout_secs.max(1));
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .read_timeout(timeout)
            .pool_max_idle_per_host(cfg.concurrency.max(8))
            .build()
            .map_err(|e| bad(format!("HTTP client: {e}")))?;
        Ok(AzureStorage {
            name: name.to_string(),
            container_url,
            auth,
            http,
            block_size: cfg.block_size,
            single_put_max: cfg.single_put_max,
            concurrency: cfg.concurrency,
            retry: cfg.retry.clone(),
            timeout,
            counters: Arc::default(),
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> AzureStats {
        let c = &self.counters;
        AzureStats {
            blocks_staged: c.blocks_staged.load(Ordering::Relaxed),
            blocks_skipped: c.blocks_skipped.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
        }
    }

    /// Checks that `key` is stored with `size` bytes and MD5 `md5`.
    pub async fn verify(
        &self,
        key: &str,
        size: u64,
        md5: [u8; 16],
    ) -> Result<ObjectMeta, StorageError> {
        let mismatch = |detail: String| StorageError::Mismatch {
            storage: self.name.clone(),
            key: key.to_string(),
            detail,
        };
        let Some(meta) = self.head(key).await? else {
            return Err(mismatch("missing after upload".into()));
        };
        if meta.size != size {
            return Err(mismatch(format!(
                "size {} stored, {size} expected",
                meta.size
            )));
        }
        match meta.md5 {
            Some(m) if m == md5 => Ok(meta),
            Some(m) => Err(mismatch(format!(
                "MD5 {} stored, {} expected",
                hex::encode(m),
                hex::encode(md5)
            ))),
            None => Err(mismatch("no Content-MD5 stored".into())),
        }
    }

    /// [`AzureStorage::connect`], then, when the configuration asks for it
    /// (`create_container = true`), creates the container if it is missing. What the daemon
    /// opens its `[[storage]]` entries with.
    pub async fn open(name: &str, cfg: &AzureConfig) -> Result<Self, StorageError> {
        let s = Self::connect(name, cfg).await?;
        if cfg.create_container {
            s.create_container().await?;
        }
        Ok(s)
    }

    /// Creates the container (account-key form: `open` with `create_container`, tests, the
    /// benchmark). An existing container is not an error.
    pub async fn create_container(&self) -> Result<(), StorageError> {
        match self
            .send(
                Method::PUT,
                None,
                &[("restype", "container")],
                HeaderMap::new(),
                Some(Bytes::new()),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(StorageError::Other { detail, .. })
                if detail.contains("ContainerAlreadyExists") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn err_other(&self, detail: String) -> StorageError {
        StorageError::Other {
            storage: self.name.clone(),
            detail,
        }
    }

    fn url(&self, key: Option<&str>, query: &[(&str, &str)]) -> String {
        let mut u = self.container_url.clone();
        if let Some(key) = key {
            u.push('/');
            let enc: Vec<String> = key
                .split('/')
                .map(|s| utf8_percent_encode(s, ENCODE).to_string())
                .collect();
            u.push_str(&enc.join("/"));
        }
        let mut q: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, ENCODE)))
            .collect();
        if let Auth::Sas(sas) = &self.auth {
            q.push(sas.clone());
        }
        if !q.is_empty() {
            u.push('?');
            u.push_str(&q.join("&"));
        }
        u
    }

    /// Sends one request, retrying transient failures with exponential back-off and jitter.
    /// A non-success status becomes the matching [`StorageError`].
    async fn send(
        &self,
        method: Method,
        key: Option<&str>,
        query: &[(&str, &str)],
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<reqwest::Response, StorageError> {
        let url = self.url(key, query);
        let what = key.unwrap_or("<container>");
        let mut attempt = 0u32;
        loop {
            let r = self
                .send_once(method.clone(), &url, key, headers.clone(), body.clone())
                .await;
            let err = match r {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => self.status_error(what, resp).await,
                Err(e) => e,
            };
            if !matches!(err, StorageError::Unreachable { .. }) || attempt >= self.retry.max_retries
            {
                return Err(err);
            }
            let delay = {
                let exp = self
                    .retry
                    .base_ms
                    .saturating_mul(1u64 << attempt.min(20))
                    .min(self.retry.max_ms)
                    .max(1);
                // Jitter in [exp/2, exp]: retries of many blocks do not hit the service in step.
                use rand::Rng;
                rand::thread_rng().gen_range(exp / 2..=exp)
            };
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            attempt += 1;
        }
    }

    async fn send_once(
        &self,
        method: Method,
        url: &str,
        key: Option<&str>,
        mut headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<reqwest::Response, StorageError> {
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        headers.insert("x-ms-date", hv(&date));
        headers.insert("x-ms-version", hv(API_VERSION));
        if let Some(b) = &body {
            headers.insert("content-length", hv(&b.len().to_string()));
        }
        let is_get = method == Method::GET && key.is_some();
        let mut req = self.http.request(method, url).headers(headers);
        if let Some(b) = body {
            req = req.body(b);
        }
        if !is_get {
            // A download streams for as long as it needs; only the read timeout applies there.
            req = req.timeout(self.timeout);
        }
        let mut req = req.build().map_err(|e| self.err_other(e.to_string()))?;
        if let Auth::SharedKey { account, key } = &self.auth {
            let sts = string_to_sign(&req, account);
            let sig = hmac_b64(key, &sts);
            req.headers_mut()
                .insert("authorization", hv(&format!("SharedKey {account}:{sig}")));
        }
        self.http
            .execute(req)
            .await
            .map_err(|e| StorageError::Unreachable {
                storage: self.name.clone(),
                detail: format!("{}: {}", key.unwrap_or("<container>"), error_chain(e)),
            })
    }

    async fn status_error(&self, key: &str, resp: reqwest::Response) -> StorageError {
        let status = resp.status();
        let code = resp
            .headers()
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.text().await.unwrap_or_default();
        let message = xml_text(&body, "Message").unwrap_or_default();
        let detail = format!(
            "{key}: HTTP {status} {code} {}",
            message.lines().next().unwrap_or("")
        )
        .trim_end()
        .to_string();
        let storage = self.name.clone();
        match status {
            // The configured container is gone: no object can be found or stored until the
            // operator acts, so it counts as a storage failure (alarm), not a missing object.
            StatusCode::NOT_FOUND if code == "ContainerNotFound" => {
                StorageError::Auth { storage, detail }
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                StorageError::Auth { storage, detail }
            }
            StatusCode::NOT_FOUND => StorageError::NotFound {
                storage,
                key: key.to_string(),
            },
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
                StorageError::Unreachable { storage, detail }
            }
            s if s.is_server_error() => StorageError::Unreachable { storage, detail },
            StatusCode::BAD_REQUEST if code == "Md5Mismatch" => StorageError::Mismatch {
                storage,
                key: key.to_string(),
                detail,
            },
            _ => StorageError::Other { storage, detail },
        }
    }

    /// One Put Blob; returns the MD5 the service reports for what it stored.
    async fn put_blob(
        &self,
        key: &str,
        data: Bytes,
        md5: [u8; 16],
    ) -> Result<Option<[u8; 16]>, StorageError> {
        let mut h = HeaderMap::new();
        h.insert("x-ms-blob-type", hv("BlockBlob"));
        // The service checks the body against Content-MD5 and keeps it as the blob's MD5.
        h.insert("content-md5", hv(&B64.encode(md5)));
        h.insert("content-type", hv(content_type(key)));
        let len = data.len() as u64;
        let resp = self
            .send(Method::PUT, Some(key), &[], h, Some(data))
            .await?;
        self.counters.bytes_sent.fetch_add(len, Ordering::Relaxed);
        Ok(resp
            .headers()
            .get("content-md5")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_md5))
    }

    async fn put_block(&self, key: &str, id: &str, data: Bytes) -> Result<(), StorageError> {
        let mut h = HeaderMap::new();
        h.insert("content-md5", hv(&B64.encode(Md5::digest(&data))));
        let len = data.len() as u64;
        self.send(
            Method::PUT,
            Some(key),
            &[("comp", "block"), ("blockid", id)],
            h,
            Some(data),
        )
        .await?;
        self.counters.blocks_staged.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_sent.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    /// Uncommitted blocks of `key`: id -> size.
    async fn uncommitted_blocks(&self, key: &str) -> Result<HashMap<String, u64>, StorageError> {
        let resp = match self
            .send(
                Method::GET,
                Some(key),
                &[("comp", "blocklist"), ("blocklisttype", "uncommitted")],
                HeaderMap::new(),
                None,
            )
            .await
        {
            Ok(r) => r,
            Err(StorageError::NotFound { .. }) => return Ok(HashMap::new()),
            Err(e) => return Err(e),
        };
        let text = self.body_text(key, resp).await?;
        parse_uncommitted_blocks(&text)
            .map_err(|e| self.err_other(format!("{key}: block list XML: {e}")))
    }

    async fn body_text(&self, key: &str, resp: reqwest::Response) -> Result<String, StorageError> {
        resp.text().await.map_err(|e| StorageError::Unreachable {
            storage: self.name.clone(),
            detail: format!("{key}: reading the response: {}", error_chain(e)),
        })
    }

    /// Stages the blocks of `src` missing from the blob's uncommitted list, checks that what
    /// was read has `size` bytes and MD5 `md5`, and commits.
    async fn put_blocks(
        &self,
        key: &str,
        src: &Path,
        size: u64,
        md5: [u8; 16],
    ) -> Result<(), StorageError> {
        let bs = self.block_size.max(size.div_ceil(MAX_BLOCKS));
        let n = size.div_ceil(bs);
        let ids: Vec<String> = (0..n).map(|i| block_id(&md5, bs, i)).collect();
        let staged = self.uncommitted_blocks(key).await?;
        let skip: Vec<bool> = (0..n)
            .map(|i| {
                let len = bs.min(size - i * bs);
                staged.get(&ids[i as usize]) == Some(&len)
            })
            .collect();
        let skipped = skip.iter().filter(|s| **s).count() as u64;
        self.counters
            .blocks_skipped
            .fetch_add(skipped, Ordering::Relaxed);

        // One reader walks the file in order (hashing every byte, staged or not, so the commit
        // is refused when the spool file does not match its MD5); uploads run concurrently.
        let (tx, rx) = tokio::sync::mpsc::channel::<(usize, Bytes)>(self.concurrency);
        let path = src.to_path_buf();
        let reader = tokio::task::spawn_blocking(move || read_blocks(&path, size, bs, &skip, &tx));
        let blocks =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|x| (x, rx)) },
            );
        let uploads = blocks
            .map(|(i, data)| self.put_block(key, &ids[i], data))
            .buffer_unordered(self.concurrency)
            .try_for_each(|()| async { Ok(()) })
            .await;
        // When an upload failed the receiver is gone and the reader stops at its next send.
        let read = reader
            .await
            .map_err(|e| self.err_other(format!("reader task: {e}")))?;
        uploads?;
        let read = read.map_err(|source| StorageError::Source {
            path: src.to_path_buf(),
            source,
        })?;
        match read {
            ReadOutcome::Done(actual) if actual == md5 => {}
            ReadOutcome::Done(actual) => {
                return Err(StorageError::Mismatch {
                    storage: self.name.clone(),
                    key: key.to_string(),
                    detail: format!(
                        "local file {} has MD5 {}, {} expected: not committed",
                        src.display(),
                        hex::encode(actual),
                        hex::encode(md5)
                    ),
                })
            }
            ReadOutcome::WrongSize(detail) => {
                return Err(StorageError::Mismatch {
                    storage: self.name.clone(),
                    key: key.to_string(),
                    detail: format!("local file {}: {detail}", src.display()),
                })
            }
            ReadOutcome::Stopped => {
                return Err(self.err_other(format!("{key}: upload stopped before the end")))
            }
        }

        let mut body = String::with_capacity(40 + ids.len() * 90);
        body.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for id in &ids {
            body.push_str("<Latest>");
            body.push_str(id);
            body.push_str("</Latest>");
        }
        body.push_str("</BlockList>");
        let mut h = HeaderMap::new();
        h.insert("x-ms-blob-content-md5", hv(&B64.encode(md5)));
        h.insert("x-ms-blob-content-type", hv(content_type(key)));
        h.insert("content-type", hv("application/xml"));
        self.send(
            Method::PUT,
            Some(key),
            &[("comp", "blocklist")],
            h,
            Some(Bytes::from(body)),
        )
        .await?;
        Ok(())
    }
}

enum ReadOutcome {
    Done([u8; 16]),
    WrongSize(String),
    /// The uploads stopped taking blocks (one failed).
    Stopped,
}

fn read_blocks(
    path: &Path,
    size: u64,
    bs: u64,
    skip: &[bool],
    tx: &tokio::sync::mpsc::Sender<(usize, Bytes)>,
) -> std::io::Result<ReadOutcome> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Md5::new();
    for (i, skip) in skip.iter().enumerate() {
        let len = bs.min(size - i as u64 * bs) as usize;
        let mut buf = vec![0u8; len];
        if let Err(e) = f.read_exact(&mut buf) {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                return Ok(ReadOutcome::WrongSize(format!(
                    "shorter than the {size} bytes expected"
                )));
            }
            return Err(e);
        }
        hasher.update(&buf);
        if !skip && tx.blocking_send((i, Bytes::from(buf))).is_err() {
            return Ok(ReadOutcome::Stopped);
        }
    }
    let mut extra = [0u8; 1];
    if f.read(&mut extra)? != 0 {
        return Ok(ReadOutcome::WrongSize(format!(
            "longer than the {size} bytes expected"
        )));
    }
    Ok(ReadOutcome::Done(hasher.finalize().into()))
}

/// Block ids: the same file cut at the same block size gets the same ids on every attempt,
/// which is what lets a resumed put recognise its blocks. All ids of a blob have one length
/// (an Azure rule): 32 hex + 10 hex + 8 digits = 50 bytes before base64 (limit 64).
fn block_id(md5: &[u8; 16], block_size: u64, index: u64) -> String {
    B64.encode(format!("{}{block_size:010x}{index:08}", hex::encode(md5)))
}

fn content_type(key: &str) -> &'static str {
    match key.rsplit('.').next() {
        Some("ogg") => "audio/ogg",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn hv(s: &str) -> HeaderValue {
    // Every value passed here is ASCII we built (dates, base64, numbers, fixed strings).
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn hmac_b64(key: &[u8], msg: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

/// The Shared Key string-to-sign (Blob service, version 2015-02-21 and later).
fn string_to_sign(req: &reqwest::Request, account: &str) -> String {
    let h = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let len = match h("content-length") {
        "0" => "",
        l => l,
    };
    let mut s = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n\n{}\n{}\n{}\n{}\n{}\n",
        req.method().as_str(),
        h("content-encoding"),
        h("content-language"),
        len,
        h("content-md5"),
        h("content-type"),
        h("if-modified-since"),
        h("if-match"),
        h("if-none-match"),
        h("if-unmodified-since"),
        h("range"),
    );
    let mut ms: Vec<(&HeaderName, &HeaderValue)> = req
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-ms-"))
        .collect();
    ms.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    for (k, v) in ms {
        s.push_str(k.as_str());
        s.push(':');
        s.push_str(v.to_str().unwrap_or("").trim());
        s.push('\n');
    }
    s.push('/');
    s.push_str(account);
    s.push_str(req.url().path());
    let mut params: Vec<(String, String)> = req
        .url()
        .query_pairs()
        .map(|(k, v)| (k.to_lowercase(), v.into_owned()))
        .collect();
    params.sort();
    let mut i = 0;
    while i < params.len() {
        let name = params[i].0.clone();
        let mut vals = vec![];
        while i < params.len() && params[i].0 == name {
            vals.push(params[i].1.clone());
            i += 1;
        }
        s.push('\n');
        s.push_str(&name);
        s.push(':');
        s.push_str(&vals.join(","));
    }
    s
}

/// A container (service) SAS URL signed with the account key, version 2020-12-06: what an
/// operator pastes into "Bring Your Own Storage", minted here for the emulator (tests and the
/// benchmark). `container_url` is `<endpoint>/<container>`; `permissions` in Azure's order
/// (e.g. `racwdl`).
pub fn container_sas_url(
    container_url: &str,
    account: &str,
    account_key_b64: &str,
    permissions: &str,
    expiry: chrono::DateTime<chrono::Utc>,
) -> Result<String, String> {
    const SV: &str = "2020-12-06";
    let key = B64
        .decode(account_key_b64)
        .map_err(|e| format!("account key is not base64: {e}"))?;
    let container = container_url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|c| !c.is_empty())
        .ok_or("no container in the URL")?;
    let se = expiry.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let canonical = format!("/blob/{account}/{container}");
    // permissions, start, expiry, resource, identifier, IP, protocol, version, sr, snapshot
    // time, encryption scope, rscc, rscd, rsce, rscl, rsct.
    let sts = format!("{permissions}\n\n{se}\n{canonical}\n\n\n\n{SV}\nc\n\n\n\n\n\n\n");
    let sig = hmac_b64(&key, &sts);
    let enc = |s: &str| utf8_percent_encode(s, ENCODE).to_string();
    Ok(format!(
        "{}?sv={SV}&sr=c&sp={}&se={}&sig={}",
        container_url.trim_end_matches('/'),
        enc(permissions),
        enc(&se),
        enc(&sig)
    ))
}

fn error_chain(e: reqwest::Error) -> String {
    // Without the URL: a SAS URL carries its signature in the query.
    let e = e.without_url();
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

fn child_text<'a>(n: roxmltree::Node<'a, 'a>, tag: &str) -> Option<&'a str> {
    n.children()
        .find(|c| c.has_tag_name(tag))
        .and_then(|c| c.text())
}

/// The `UncommittedBlocks` of a Get Block List answer: block id -> size.
fn parse_uncommitted_blocks(text: &str) -> Result<HashMap<String, u64>, String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| e.to_string())?;
    let mut out = HashMap::new();
    for list in doc
        .descendants()
        .filter(|n| n.has_tag_name("UncommittedBlocks"))
    {
        for b in list.children().filter(|n| n.has_tag_name("Block")) {
            let name = child_text(b, "Name");
            let size = child_text(b, "Size").and_then(|s| s.parse().ok());
            if let (Some(name), Some(size)) = (name, size) {
                out.insert(name.to_string(), size);
            }
        }
    }
    Ok(out)
}

/// One page of a List Blobs answer and its `NextMarker` (empty: the last page).
fn parse_blob_list(text: &str) -> Result<(Vec<ObjectMeta>, String), String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for b in doc.descendants().filter(|n| n.has_tag_name("Blob")) {
        let Some(name) = child_text(b, "Name") else {
            continue;
        };
        let props = b.children().find(|c| c.has_tag_name("Properties"));
        let size = props
            .and_then(|p| child_text(p, "Content-Length"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let md5 = props
            .and_then(|p| child_text(p, "Content-MD5"))
            .and_then(parse_md5);
        out.push(ObjectMeta {
            key: name.to_string(),
            size,
            md5,
        });
    }
    let next = doc
        .descendants()
        .find(|n| n.has_tag_name("NextMarker"))
        .and_then(|n| n.text())
        .unwrap_or("")
        .to_string();
    Ok((out, next))
}

/// Fuzzing entry point: the service's XML answers (block lists, blob listings, error
/// bodies) as the backend reads them; must never panic.
#[doc(hidden)]
pub fn fuzz_xml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_uncommitted_blocks(text);
    if let Ok((page, _)) = parse_blob_list(text) {
        for o in page {
            assert!(!o.key.is_empty());
        }
    }
    let _ = xml_text(text, "Code");
}

fn xml_text(body: &str, tag: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(body).ok()?;
    let n = doc.descendants().find(|n| n.has_tag_name(tag))?;
    n.text().map(str::to_string)
}

fn parse_md5(s: &str) -> Option<[u8; 16]> {
    B64.decode(s.trim()).ok()?.try_into().ok()
}

#[async_trait::async_trait]
impl Storage for AzureStorage {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "azure"
    }

    async fn put_file(
        &self,
        key: &str,
        src: &Path,
        size: u64,
        md5: [u8; 16],
    ) -> Result<ObjectMeta, StorageError> {
        if size <= self.single_put_max {
            let data = tokio::fs::read(src)
                .await
                .map_err(|source| StorageError::Source {
                    path: src.to_path_buf(),
                    source,
                })?;
            let actual: [u8; 16] = Md5::digest(&data).into();
            if data.len() as u64 != size || actual != md5 {
                return Err(StorageError::Mismatch {
                    storage: self.name.clone(),
                    key: key.to_string(),
                    detail: format!(
                        "local file {} has {} bytes, MD5 {}; {size} bytes, MD5 {} expected",
                        src.display(),
                        data.len(),
                        hex::encode(actual),
                        hex::encode(md5)
                    ),
                });
            }
            // The service checked the body against Content-MD5 before storing it, and its
            // answer carries the MD5 of what it stored: that is the verification, without a
            // second round trip (it matters at hundreds of small files per second).
            if self.put_blob(key, Bytes::from(data), md5).await? == Some(md5) {
                return Ok(ObjectMeta {
                    key: key.to_string(),
                    size,
                    md5: Some(md5),
                });
            }
        } else {
            // Already stored (a crash after the commit): nothing to send.
            if let Some(m) = self.head(key).await? {
                if m.size == size && m.md5 == Some(md5) {
                    return Ok(m);
                }
            }
            self.put_blocks(key, src, size, md5).await?;
        }
        self.verify(key, size, md5).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        let resp = match self
            .send(Method::HEAD, Some(key), &[], HeaderMap::new(), None)
            .await
        {
            Ok(r) => r,
            Err(StorageError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let h = resp.headers();
        let size = h
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| self.err_other(format!("{key}: no Content-Length")))?;
        let md5 = h
            .get("content-md5")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_md5);
        Ok(Some(ObjectMeta {
            key: key.to_string(),
            size,
            md5,
        }))
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
        let mut h = HeaderMap::new();
        if let Some(r) = &range {
            if r.start >= r.end {
                // HTTP cannot ask for zero bytes; the object must still exist.
                return match self.head(key).await? {
                    Some(_) => Ok(Box::pin(futures_util::stream::empty())),
                    None => Err(StorageError::NotFound {
                        storage: self.name.clone(),
                        key: key.to_string(),
                    }),
                };
            }
            h.insert(
                "x-ms-range",
                hv(&format!("bytes={}-{}", r.start, r.end - 1)),
            );
        }
        let resp = self.send(Method::GET, Some(key), &[], h, None).await?;
        Ok(Box::pin(resp.bytes_stream().map_err(|e| {
            std::io::Error::other(format!("azure download: {}", error_chain(e)))
        })))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        let mut out = vec![];
        let mut marker = String::new();
        loop {
            let mut q = vec![
                ("restype", "container"),
                ("comp", "list"),
                ("prefix", prefix),
            ];
            if !marker.is_empty() {
                q.push(("marker", marker.as_str()));
            }
            let resp = self
                .send(Method::GET, None, &q, HeaderMap::new(), None)
                .await?;
            let text = self.body_text(prefix, resp).await?;
            let (page, next) = parse_blob_list(&text)
                .map_err(|e| self.err_other(format!("list {prefix}: XML: {e}")))?;
            out.extend(page);
            if next.is_empty() {
                return Ok(out);
            }
            marker = next;
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let mut h = HeaderMap::new();
        h.insert("x-ms-delete-snapshots", hv("include"));
        match self.send(Method::DELETE, Some(key), &[], h, None).await {
            Ok(_) | Err(StorageError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn probe(&self) -> Result<(), StorageError> {
        self.send(
            Method::GET,
            None,
            &[
                ("restype", "container"),
                ("comp", "list"),
                ("maxresults", "1"),
            ],
            HeaderMap::new(),
            None,
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ids_are_deterministic_and_of_one_length() {
        let md5 = [7u8; 16];
        assert_eq!(block_id(&md5, 4 << 20, 3), block_id(&md5, 4 << 20, 3));
        assert_ne!(block_id(&md5, 4 << 20, 3), block_id(&md5, 8 << 20, 3));
        let a = block_id(&md5, 4 << 20, 0);
        let b = block_id(&md5, 4 << 20, MAX_BLOCKS - 1);
        assert_eq!(a.len(), b.len());
        assert!(B64.decode(&a).unwrap().len() <= 64);
    }

    #[test]
    fn config_rejects_unknown_fields_and_redacts_secrets() {
        let c: AzureConfig = toml::from_str(
            "account = \"a\"\naccount_key = \"c2VjcmV0\"\ncontainer = \"rec\"\nconcurrency = 2",
        )
        .unwrap();
        assert_eq!(c.concurrency, 2);
        assert!(!format!("{c:?}").contains("c2VjcmV0"));
        assert!(toml::from_str::<AzureConfig>("sas = \"x\"").is_err());
        let s = AzureConfig::from_sas_url("https://a.blob.core.windows.net/c?sv=1&sig=SECRET");
        assert!(!format!("{s:?}").contains("SECRET"));
    }

    #[tokio::test]
    async fn connect_checks_the_configuration() {
        let no_sig = AzureConfig::from_sas_url("https://a.blob.core.windows.net/c?sv=1");
        assert!(AzureStorage::connect("s", &no_sig).await.is_err());
        let both = AzureConfig {
            account: Some("a".into()),
            ..AzureConfig::from_sas_url("https://a.blob.core.windows.net/c?sig=x")
        };
        assert!(AzureStorage::connect("s", &both).await.is_err());
        let sas_creating = AzureConfig {
            create_container: true,
            ..AzureConfig::from_sas_url("https://a.blob.core.windows.net/c?sig=x")
        };
        assert!(AzureStorage::connect("s", &sas_creating).await.is_err());
        let no_container = AzureConfig::from_sas_url("https://a.blob.core.windows.net/?sig=x");
        assert!(AzureStorage::connect("s", &no_container).await.is_err());
        let ok = AzureConfig::from_sas_url("https://a.blob.core.windows.net/rec/?sv=1&sig=x");
        let s = AzureStorage::connect("s", &ok).await.unwrap();
        assert_eq!(
            s.url(Some("2026/11/26/r 1/mixed.ogg"), &[("comp", "block")]),
            "https://a.blob.core.windows.net/rec/2026/11/26/r%201/mixed.ogg?comp=block&sv=1&sig=x"
        );
    }

    #[test]
    fn shared_key_string_to_sign_follows_the_documented_layout() {
        let client = reqwest::Client::new();
        let req = client
            .put("http://127.0.0.1:10000/devstoreaccount1/rec/a%20b?comp=block&blockid=QQ%3D%3D")
            .header("x-ms-version", API_VERSION)
            .header("x-ms-date", "Thu, 26 Nov 2026 05:00:00 GMT")
            .header("content-length", "5")
            .header("content-md5", "abc")
            .build()
            .unwrap();
        let s = string_to_sign(&req, "devstoreaccount1");
        assert_eq!(
            s,
            "PUT\n\n\n5\nabc\n\n\n\n\n\n\n\n\
             x-ms-date:Thu, 26 Nov 2026 05:00:00 GMT\nx-ms-version:2021-08-06\n\
             /devstoreaccount1/devstoreaccount1/rec/a%20b\nblockid:QQ==\ncomp:block"
        );
    }
}
