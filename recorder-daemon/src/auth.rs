//! Bearer tokens: JWTs whose claims follow Entra ID (`oid`, `upn`, `tid`, `groups`).
//!
//! Two kinds of keys: the HS256 development key (`recorder-daemon token` mints with it; it can
//! be switched off), and, for production, the identity provider's public keys from a JWKS file
//! (RS256/384/512, PS256/384/512, ES256/384), chosen by the token's `kid`. The JWKS file is
//! re-read when a token names a key id it does not hold and the file has changed, so a key
//! rotation needs only a new file, not a restart (docs/store.md, "Authentication").

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
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

/// The keys tokens are checked with, and what else a token must carry.
#[derive(Clone)]
pub struct TokenKeys {
    /// The development key: minting and checking HS256 tokens; `None` once switched off.
    hs256: Option<(EncodingKey, DecodingKey)>,
    /// The identity provider's public keys.
    jwks: Option<Arc<JwksFile>>,
    tenant: String,
    audience: Option<String>,
    issuer: Option<String>,
}

/// A JWKS file and the keys last read from it.
struct JwksFile {
    path: PathBuf,
    keys: Mutex<(Option<SystemTime>, Vec<JwksKey>)>,
}

#[derive(Clone)]
struct JwksKey {
    kid: Option<String>,
    /// The `alg` the key is published for, when the JWK says.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

/// The asymmetric algorithms a JWKS key may sign with. HS* is never taken from a JWKS (a
/// public key used as an HMAC secret is the classic algorithm-confusion forgery), nor `none`.
const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

impl JwksFile {
    fn load(path: &Path) -> Result<Self> {
        let (mtime, keys) = read_jwks(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            keys: Mutex::new((mtime, keys)),
        })
    }

    /// The key for `kid` (or the only key, for a token without `kid`), re-reading the file
    /// once if it changed since it was read.
    fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        let mut held = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = pick(&held.1, kid, alg) {
            return k;
        }
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if mtime != held.0 {
            match read_jwks(&self.path) {
                Ok(fresh) => *held = fresh,
                Err(e) => eprintln!("recorder-daemon: keeping the previous JWKS: {e:#}"),
            }
            if let Some(k) = pick(&held.1, kid, alg) {
                return k;
            }
        }
        Err(AuthError::Invalid(match kid {
            Some(k) => format!("unknown key id {k:?}"),
            None => "token without kid and the JWKS holds several keys".into(),
        }))
    }
}

fn pick(
    keys: &[JwksKey],
    kid: Option<&str>,
    alg: Algorithm,
) -> Option<Result<DecodingKey, AuthError>> {
    let k = match kid {
        Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid))?,
        None if keys.len() == 1 => &keys[0],
        None => return None,
    };
    Some(match k.alg {
        Some(a) if a != alg => Err(AuthError::Invalid(format!(
            "key {:?} is for {a:?}, token says {alg:?}",
            k.kid.as_deref().unwrap_or("")
        ))),
        _ => Ok(k.key.clone()),
    })
}

fn read_jwks(path: &Path) -> Result<(Option<SystemTime>, Vec<JwksKey>)> {
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .with_context(|| format!("reading {}", path.display()))?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let set: JwkSet =
        serde_json::from_str(&text).with_context(|| format!("{}: not a JWKS", path.display()))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let kid = jwk.common.key_id.clone();
        // Encryption keys and symmetric keys are not signature keys for us; skip them with a
        // word rather than failing the whole set (Entra's sets hold only RSA signing keys).
        if matches!(
            jwk.common.public_key_use,
            Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        ) {
            continue;
        }
        let alg = match jwk.common.key_algorithm {
            Some(a) => {
                match a.to_string().parse::<Algorithm>().ok() {
                    Some(alg) if ASYMMETRIC.contains(&alg) => Some(alg),
                    _ => {
                        eprintln!("recorder-daemon: JWKS key {kid:?}: algorithm {a} not accepted, skipped");
                        continue;
                    }
                }
            }
            None => None,
        };
        match DecodingKey::from_jwk(jwk) {
            Ok(key)
                if !matches!(
                    jwk.algorithm,
                    jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
                ) =>
            {
                keys.push(JwksKey { kid, alg, key })
            }
            Ok(_) => eprintln!(
                "recorder-daemon: JWKS key {kid:?}: symmetric keys are not accepted, skipped"
            ),
            Err(e) => eprintln!("recorder-daemon: JWKS key {kid:?} skipped: {e}"),
        }
    }
    if keys.is_empty() {
        bail!("{}: no usable signing key", path.display());
    }
    Ok((Some(mtime), keys))
}

impl TokenKeys {
    /// Keys from a shared secret (the development key) only.
    #[cfg(test)]
    pub fn hs256(secret: &[u8], tenant: &str) -> Self {
        Self {
            hs256: Some((
                EncodingKey::from_secret(secret),
                DecodingKey::from_secret(secret),
            )),
            jwks: None,
            tenant: tenant.to_string(),
            audience: None,
            issuer: None,
        }
    }

    /// The keys `cfg` describes: the development key unless `accept_dev_tokens = false`, the
    /// JWKS file if one is configured, and the required audience and issuer.
    pub fn from_config(cfg: &crate::config::Config) -> Result<Self> {
        let hs256 = if cfg.accept_dev_tokens {
            let secret = cfg.jwt_secret()?;
            Some((
                EncodingKey::from_secret(&secret),
                DecodingKey::from_secret(&secret),
            ))
        } else {
            None
        };
        let jwks = match &cfg.jwks_file {
            Some(p) => Some(Arc::new(JwksFile::load(p)?)),
            None => None,
        };
        if hs256.is_none() && jwks.is_none() {
            bail!("accept_dev_tokens = false needs jwks_file: no token could be checked");
        }
        Ok(Self {
            hs256,
            jwks,
            tenant: cfg.tenant_id.clone(),
            audience: cfg.token_audience.clone(),
            issuer: cfg.token_issuer.clone(),
        })
    }

    /// Signs `claims` with the development key.
    pub fn mint(&self, claims: &Claims) -> Result<String> {
        let Some((enc, _)) = &self.hs256 else {
            bail!("development tokens are switched off (accept_dev_tokens = false)");
        };
        Ok(encode(&Header::new(Algorithm::HS256), claims, enc)?)
    }

    /// Checks signature (by the token's algorithm and key id), expiry (30 s leeway), audience
    /// and issuer when configured, and tenant.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header =
            decode_header(token).map_err(|e| AuthError::Invalid(format!("{:?}", e.kind())))?;
        let key = match header.alg {
            Algorithm::HS256 => match &self.hs256 {
                Some((_, dec)) => dec.clone(),
                None => return Err(AuthError::Invalid("HS256 tokens are not accepted".into())),
            },
            alg if ASYMMETRIC.contains(&alg) => match &self.jwks {
                Some(j) => j.key(header.kid.as_deref(), alg)?,
                None => {
                    return Err(AuthError::Invalid(format!(
                        "{alg:?} tokens need a configured jwks_file"
                    )))
                }
            },
            alg => {
                return Err(AuthError::Invalid(format!(
                    "algorithm {alg:?} not accepted"
                )))
            }
        };
        let mut v = Validation::new(header.alg);
        v.leeway = 30;
        match &self.audience {
            Some(a) => v.set_audience(&[a]),
            None => v.validate_aud = false,
        }
        if let Some(i) = &self.issuer {
            v.set_issuer(&[i]);
        }
        v.set_required_spec_claims(&["exp"]);
        let data = decode::<Claims>(token, &key, &v).map_err(|e| {
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

    const RSA: &str = include_str!("../tests/keys/test-only-rsa.pem");
    const EC: &str = include_str!("../tests/keys/test-only-ec.pem");
    const JWKS: &str = include_str!("../tests/keys/test-only-jwks.json");

    fn config(dir: &Path, jwks: &str, dev: bool) -> crate::config::Config {
        let file = dir.join("jwks.json");
        std::fs::write(&file, jwks).unwrap();
        crate::config::Config {
            data_dir: dir.to_path_buf(),
            tenant_id: "t1".into(),
            accept_dev_tokens: dev,
            jwks_file: Some(file),
            token_audience: Some("api://recorder".into()),
            token_issuer: Some("https://login.microsoftonline.com/t1/v2.0".into()),
            ..Default::default()
        }
    }

    #[derive(Serialize)]
    struct Entra<'a> {
        #[serde(flatten)]
        claims: Claims,
        aud: &'a str,
        iss: &'a str,
    }

    fn signed(alg: Algorithm, kid: Option<&str>, pem: &str, aud: &str, iss: &str) -> String {
        let mut h = Header::new(alg);
        h.kid = kid.map(String::from);
        let key = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        };
        let body = Entra {
            claims: claims("t1", now_secs() + 60),
            aud,
            iss,
        };
        encode(&h, &body, &key).unwrap()
    }

    const AUD: &str = "api://recorder";
    const ISS: &str = "https://login.microsoftonline.com/t1/v2.0";

    #[test]
    fn rs256_and_es256_tokens_are_checked_against_the_jwks() {
        let dir = tempfile::tempdir().unwrap();
        let k = TokenKeys::from_config(&config(dir.path(), JWKS, false)).unwrap();
        let rs = signed(Algorithm::RS256, Some("rsa-test-1"), RSA, AUD, ISS);
        assert_eq!(k.verify(&rs).unwrap().oid, "o");
        let es = signed(Algorithm::ES256, Some("ec-test-1"), EC, AUD, ISS);
        assert_eq!(k.verify(&es).unwrap().oid, "o");

        // Wrong audience, wrong issuer, unknown key id, key of another algorithm.
        for bad in [
            signed(
                Algorithm::RS256,
                Some("rsa-test-1"),
                RSA,
                "api://other",
                ISS,
            ),
            signed(
                Algorithm::RS256,
                Some("rsa-test-1"),
                RSA,
                AUD,
                "https://evil/v2.0",
            ),
            signed(Algorithm::RS256, Some("rsa-test-9"), RSA, AUD, ISS),
            signed(Algorithm::RS384, Some("rsa-test-1"), RSA, AUD, ISS),
        ] {
            assert!(
                matches!(k.verify(&bad), Err(AuthError::Invalid(_))),
                "{bad}"
            );
        }
        // Development tokens are off here, and minting says so.
        let dev = TokenKeys::hs256(&[7; 32], "t1")
            .mint(&claims("t1", now_secs() + 60))
            .unwrap();
        assert!(matches!(k.verify(&dev), Err(AuthError::Invalid(_))));
        assert!(k.mint(&claims("t1", now_secs() + 60)).is_err());
    }

    #[test]
    fn a_public_key_used_as_an_hmac_secret_is_refused() {
        // The algorithm-confusion forgery: HS256 "signed" with the JWKS' public key material.
        let dir = tempfile::tempdir().unwrap();
        let k = TokenKeys::from_config(&config(dir.path(), JWKS, true)).unwrap();
        let forged = TokenKeys::hs256(JWKS.as_bytes(), "t1")
            .mint(&claims("t1", now_secs() + 60))
            .unwrap();
        assert!(matches!(k.verify(&forged), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn a_rotated_jwks_file_is_picked_up_without_restart() {
        let dir = tempfile::tempdir().unwrap();
        let all: serde_json::Value = serde_json::from_str(JWKS).unwrap();
        let only_ec = serde_json::json!({ "keys": [all["keys"][1].clone()] });
        let cfg = config(dir.path(), &only_ec.to_string(), false);
        let k = TokenKeys::from_config(&cfg).unwrap();
        let rs = signed(Algorithm::RS256, Some("rsa-test-1"), RSA, AUD, ISS);
        assert!(k.verify(&rs).is_err());
        let file = cfg.jwks_file.as_ref().unwrap();
        std::fs::write(file, JWKS).unwrap();
        // A distinct modification time even on coarse-grained file systems.
        let f = std::fs::File::options().write(true).open(file).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        assert_eq!(k.verify(&rs).unwrap().oid, "o");
    }

    #[test]
    fn a_jwks_without_signing_keys_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let oct = r#"{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0"}]}"#;
        let err = TokenKeys::from_config(&config(dir.path(), oct, false))
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").contains("no usable signing key"),
            "{err:#}"
        );
        assert!(TokenKeys::from_config(&config(dir.path(), "{", false)).is_err());
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
