//! Bearer tokens: JWTs whose claims follow Entra ID (`oid`, `upn`, `tid`, `groups`), HS256
//! with the development key. RS256/ES256 with a JWKS file is the production path and is not
//! implemented yet (docs/store.md).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The app role a service token carries to post interactions.
pub const INGEST_ROLE: &str = "Interactions.Ingest";

/// The claims the store reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Directory object id.
    pub oid: String,
    /// User principal name.
    #[serde(default)]
    pub upn: String,
    /// Tenant id.
    pub tid: String,
    /// Group object ids.
    #[serde(default)]
    pub groups: Vec<String>,
    /// App roles (service tokens).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at.
    #[serde(default)]
    pub iat: u64,
}

/// Why a token was refused; the text goes to the audit trail.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("no bearer token")]
    Missing,
    /// Expired.
    #[error("token expired")]
    Expired,
    /// Signature, algorithm or shape wrong.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Another tenant's token.
    #[error("token of another tenant")]
    WrongTenant,
}

/// The HS256 key pair with the tenant the store belongs to.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    tenant: String,
}

impl TokenKeys {
    /// Keys from a shared secret.
    pub fn hs256(secret: &[u8], tenant: &str) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            tenant: tenant.to_string(),
        }
    }

    /// Signs `claims`.
    pub fn mint(&self, claims: &Claims) -> Result<String> {
        Ok(encode(
            &Header::new(Algorithm::HS256),
            claims,
            &self.encoding,
        )?)
    }

    /// Checks signature, expiry (30 s leeway) and tenant.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 30;
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp"]);
        let data = decode::<Claims>(token, &self.decoding, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                k => AuthError::Invalid(format!("{k:?}")),
            }
        })?;
        if data.claims.tid != self.tenant {
            return Err(AuthError::WrongTenant);
        }
        Ok(data.claims)
    }
}

/// Reads the development HS256 secret from `path`, creating a random one on first use (mode
/// 0600) so that a fresh data directory works without configuration.
pub fn load_or_create_secret(path: &Path) -> Result<Vec<u8>> {
    if let Ok(s) = std::fs::read_to_string(path) {
        let bytes =
            hex::decode(s.trim()).with_context(|| format!("{}: not hex", path.display()))?;
        if bytes.len() < 32 {
            bail!("{}: the key must have at least 32 bytes", path.display());
        }
        return Ok(bytes);
    }
    let key: [u8; 32] = rand::random();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "{}", hex::encode(key))?;
    Ok(key.to_vec())
}

/// A stable object id for a UPN the directory does not know, so that `token --upn` alone
/// gives the same user every time (shaped like a GUID).
pub fn oid_for_upn(upn: &str) -> String {
    let h = Sha256::digest(upn.to_ascii_lowercase().as_bytes());
    let x = hex::encode(&h[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// Parses `90`, `90s`, `15m`, `8h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num.parse().with_context(|| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("bad duration unit in {s:?} (s, m, h, d)"),
    };
    Ok(Duration::from_secs(secs))
}

/// Seconds since the epoch now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(tid: &str, exp: u64) -> Claims {
        Claims {
            oid: "o".into(),
            upn: "a@b".into(),
            tid: tid.into(),
            groups: vec!["g".into()],
            roles: vec![],
            exp,
            iat: 0,
        }
    }

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        let k = TokenKeys::hs256(&[7; 32], "t1");
        let good = k.mint(&claims("t1", now_secs() + 60)).unwrap();
        assert_eq!(k.verify(&good).unwrap().groups, vec!["g".to_string()]);
        let expired = k.mint(&claims("t1", now_secs() - 3600)).unwrap();
        assert_eq!(k.verify(&expired), Err(AuthError::Expired));
        let other = k.mint(&claims("t2", now_secs() + 60)).unwrap();
        assert_eq!(k.verify(&other), Err(AuthError::WrongTenant));
        let forged = TokenKeys::hs256(&[8; 32], "t1")
            .mint(&claims("t1", now_secs() + 60))
            .unwrap();
        assert!(matches!(k.verify(&forged), Err(AuthError::Invalid(_))));
        assert!(matches!(k.verify("x.y.z"), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_duration("2d").unwrap().as_secs(), 172_800);
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn the_dev_secret_persists() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let a = load_or_create_secret(&p).unwrap();
        assert_eq!(a, load_or_create_secret(&p).unwrap());
        assert_eq!(oid_for_upn("A@b"), oid_for_upn("a@B"));
    }
}
