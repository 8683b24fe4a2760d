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
    /// The retention cycle (docs/retention.md).
    pub retention: crate::retention::RetentionConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: PathBuf::from("./data"),
            tenant_id: "00000000-0000-0000-0000-000000000000".into(),
            jwt_secret_hex: None,
            ingest_key: None,
            storage_root: None,
            global_admins: Vec::new(),
            body_limit: 1 << 20,
            public_url: None,
            retention: Default::default(),
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
}
