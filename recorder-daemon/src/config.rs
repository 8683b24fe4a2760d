//! The daemon's configuration (TOML, `--config`); every key optional, flags override.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// `recorder-daemon` configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP listen address (loopback, port chosen by the system, by default).
    pub listen: SocketAddr,
    /// Data directory: `store.db`, the development key, the audit anchor, local storage.
    pub data_dir: PathBuf,
    /// The tenant whose tokens are accepted (`tid`).
    pub tenant_id: String,
    /// HS256 secret, hex; default: `<data_dir>/dev-jwt.key`, created on first use.
    pub jwt_secret_hex: Option<String>,
    /// Accept HS256 tokens signed with the development key (`recorder-daemon token`). Turn off
    /// in production once `jwks_file` is set.
    pub accept_dev_tokens: bool,
    /// The identity provider's signing keys (a JWKS document, e.g. Entra ID's
    /// `discovery/v2.0/keys` saved to a file): RS256/ES256 tokens are checked against it.
    pub jwks_file: Option<PathBuf>,
    /// Required `aud` of tokens (the app registration's id or URI); unchecked when unset.
    pub token_audience: Option<String>,
    /// Required `iss` of tokens (e.g. `https://login.microsoftonline.com/<tenant>/v2.0`).
    pub token_issuer: Option<String>,
    /// A shared key bot-host may present instead of a service token (`X-Ingest-Key` header or
    /// `?ingestKey=` on the store URL).
    pub ingest_key: Option<String>,
    /// Where recordings live; `mediaPath` of an interaction is relative to it. Default
    /// `<data_dir>/storage`.
    pub storage_root: Option<PathBuf>,
    /// UPNs or object ids that are global administrators whatever the access profiles say
    /// (the bootstrap: someone must create the first profiles).
    pub global_admins: Vec<String>,
    /// Largest accepted request body, bytes.
    pub body_limit: usize,
    /// Base of the `Call Link` column of exports.
    pub public_url: Option<String>,
    /// The storages recordings go to (`[[storage]]`); none configured: one local storage
    /// named `local` at [`Config::storage_root`].
    pub storage: Vec<StorageConfig>,
    /// bot-host spool directories whose `sealed/` the uploader empties.
    pub spool_dirs: Vec<PathBuf>,
    /// Keep the spool copy of an uploaded recording (moved to `<spool>/uploaded/<id>/`).
    pub keep_spool_copy: bool,
    /// Where alarms are POSTed (JSON), besides the log and the system activity log.
    pub alarm_webhook: Option<String>,
    /// Uploader tuning.
    pub upload: UploadConfig,
    /// The retention cycle (docs/retention.md).
    pub retention: crate::retention::RetentionConfig,
    /// The reconciler: bot-hosts whose calls are compared with the store (docs/operations.md).
    pub reconcile: crate::reconcile::ReconcileConfig,
    /// The metadata store in PostgreSQL (`postgres://user:pass@host:port/db`) instead of
    /// `<data_dir>/store.db` (docs/postgres.md).
    pub database_url: Option<String>,
}

/// One `[[storage]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The friendly name recording profiles use.
    pub name: String,
    /// `local` or `azure`.
    pub kind: StorageKind,
    /// Local: the directory (default `<data_dir>/storage` for `local`, else
    /// `<data_dir>/storage-<name>`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Local: the most bytes the storage may hold; a put beyond it fails as a full disk does.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// The storage that receives the second (geo-redundant) copy of Pro recordings.
    #[serde(default)]
    pub paired: Option<String>,
    /// Azure: the container SAS URL or account and key (`[storage.azure]`, docs/azure.md).
    #[serde(default)]
    pub azure: Option<crate::storage::azure::AzureConfig>,
}

/// Storage backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// A local directory tree.
    Local,
    /// Azure Blob Storage.
    Azure,
}

/// `[upload]`: how the uploader polls and retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    /// How often `sealed/` is scanned, ms.
    pub poll_ms: u64,
    /// Recordings uploaded at the same time.
    pub concurrency: usize,
    /// First retry delay after a failure, ms (doubled each failure, with jitter).
    pub retry_base_ms: u64,
    /// Longest retry delay, ms.
    pub retry_max_ms: u64,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            poll_ms: 1000,
            concurrency: 8,
            retry_base_ms: 1000,
            retry_max_ms: 300_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: PathBuf::from("./data"),
            tenant_id: "00000000-0000-0000-0000-000000000000".into(),
            jwt_secret_hex: None,
            accept_dev_tokens: true,
            jwks_file: None,
            token_audience: None,
            token_issuer: None,
            ingest_key: None,
            storage_root: None,
            global_admins: Vec::new(),
            body_limit: 1 << 20,
            public_url: None,
            storage: Vec::new(),
            spool_dirs: Vec::new(),
            keep_spool_copy: false,
            alarm_webhook: None,
            upload: UploadConfig::default(),
            retention: Default::default(),
            reconcile: Default::default(),
            database_url: None,
        }
    }
}

impl Config {
    /// Reads `path` (or the defaults without one) and applies `--data-dir`.
    pub fn load(path: Option<&Path>, data_dir: Option<PathBuf>) -> Result<Self> {
        let mut cfg = match path {
            Some(p) => toml::from_str(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("parsing {}", p.display()))?,
            None => Config::default(),
        };
        if let Some(d) = data_dir {
            cfg.data_dir = d;
        }
        Ok(cfg)
    }

    /// The storage root.
    pub fn storage_root(&self) -> PathBuf {
        self.storage_root
            .clone()
            .unwrap_or_else(|| self.data_dir.join("storage"))
    }

    /// The storages in force: the configured ones, or the embedded default (one local
    /// storage `local` at the storage root). Names are unique and `paired` names another one.
    pub fn storages(&self) -> Result<Vec<StorageConfig>> {
        let mut list = if self.storage.is_empty() {
            vec![StorageConfig {
                name: "local".into(),
                kind: StorageKind::Local,
                path: None,
                max_bytes: None,
                paired: None,
                azure: None,
            }]
        } else {
            self.storage.clone()
        };
        for s in &mut list {
            anyhow::ensure!(
                !s.name.is_empty() && s.name.len() <= 256 && !s.name.contains('/'),
                "storage name {:?}: 1..256 characters, no '/'",
                s.name
            );
            if s.kind == StorageKind::Local && s.path.is_none() {
                s.path = Some(if s.name == "local" {
                    self.storage_root()
                } else {
                    self.data_dir.join(format!("storage-{}", s.name))
                });
            }
        }
        let names: std::collections::BTreeSet<&str> =
            list.iter().map(|s| s.name.as_str()).collect();
        anyhow::ensure!(names.len() == list.len(), "storage names must be unique");
        for s in &list {
            if let Some(p) = &s.paired {
                anyhow::ensure!(
                    names.contains(p.as_str()) && p != &s.name,
                    "storage {}: paired storage {p:?} is not another configured storage",
                    s.name
                );
            }
        }
        Ok(list)
    }

    /// The uploader's journal (its own SQLite file, apart from the store).
    pub fn journal_path(&self) -> PathBuf {
        self.data_dir.join("upload-journal.db")
    }

    /// The HS256 secret (configured, or the data directory's development key).
    pub fn jwt_secret(&self) -> Result<Vec<u8>> {
        match &self.jwt_secret_hex {
            Some(h) => {
                let b = hex::decode(h.trim()).context("jwt_secret_hex is not hex")?;
                anyhow::ensure!(b.len() >= 32, "jwt_secret_hex must hold at least 32 bytes");
                Ok(b)
            }
            None => crate::auth::load_or_create_secret(&self.data_dir.join("dev-jwt.key")),
        }
    }

    /// The SQLite database.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("store.db")
    }

    /// The audit anchor (last entry's id and hash, kept outside the database).
    pub fn audit_anchor(&self) -> PathBuf {
        self.data_dir.join("audit-head.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_and_flags_override() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "tenant_id = \"t\"\nbody_limit = 10\n").unwrap();
        let c = Config::load(Some(&p), Some("/x".into())).unwrap();
        assert_eq!((c.tenant_id.as_str(), c.body_limit), ("t", 10));
        assert_eq!(c.data_dir, PathBuf::from("/x"));
        std::fs::write(&p, "tenant = \"t\"\n").unwrap();
        assert!(Config::load(Some(&p), None).is_err());
    }

    #[test]
    fn storages_default_to_one_local_and_pairs_must_exist() {
        let c = Config::load(None, Some("/d".into())).unwrap();
        let s = c.storages().unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].name, "local");
        assert_eq!(s[0].path.as_deref(), Some(Path::new("/d/storage")));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[[storage]]\nname = \"local\"\nkind = \"local\"\npaired = \"geo\"\n\
             [[storage]]\nname = \"geo\"\nkind = \"local\"\nmax_bytes = 5\n",
        )
        .unwrap();
        let s = Config::load(Some(&p), Some("/d".into()))
            .unwrap()
            .storages()
            .unwrap();
        assert_eq!(s[1].path.as_deref(), Some(Path::new("/d/storage-geo")));
        assert_eq!(s[1].max_bytes, Some(5));
        std::fs::write(
            &p,
            "[[storage]]\nname = \"local\"\nkind = \"local\"\npaired = \"nope\"\n",
        )
        .unwrap();
        assert!(Config::load(Some(&p), None).unwrap().storages().is_err());
    }
}
