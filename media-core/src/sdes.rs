//! SDP Security Descriptions (RFC 4568): the `a=crypto:` attribute that carries SRTP master
//! keys in SIP/SDP signalling, and the `SUITE:BASE64` command-line form.
//!
//! Only what the recorder needs to key an [`SrtpSession`](crate::srtp::SrtpSession): one
//! `inline:` master key with optional lifetime and MKI. Session parameters that would change
//! the transform (a non-zero key derivation rate, unencrypted or unauthenticated SRTP) are
//! refused rather than silently ignored, because ignoring them would produce garbage audio
//! or authentication failures far from the cause.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use crate::srtp::{SrtpError, SrtpKeyMaterial, SrtpProfile};

/// Standard base64 alphabet; padding optional, because some endpoints strip the `=` from
/// the 28-octet AEAD_AES_128_GCM key.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One parsed `a=crypto:` line.
#[derive(Debug, Clone)]
pub struct CryptoAttribute {
    /// The attribute tag, which the answer echoes to pick this offer line.
    pub tag: u32,
    /// The crypto suite.
    pub profile: SrtpProfile,
    /// The master key and salt (with the MKI, if any, already attached).
    pub key: SrtpKeyMaterial,
    /// Master key lifetime in packets (`|2^31` or `|1000000`); not enforced by the session.
    pub lifetime: Option<u64>,
    /// MKI value and length in octets (`|1:4`); packets carry it after the payload.
    pub mki: Option<(u32, u8)>,
}

/// Why an SDES line or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SdesError {
    /// The line is not an `a=crypto:` attribute or lacks a field.
    #[error("malformed crypto attribute: {0}")]
    Syntax(String),
    /// The tag is not a 1..=9 digit number.
    #[error("bad crypto attribute tag {0:?}")]
    BadTag(String),
    /// A suite this recorder does not implement (or that does not exist).
    #[error("unknown or unsupported SRTP crypto suite {0:?}")]
    UnknownSuite(String),
    /// A key method other than `inline:`.
    #[error("unsupported key method {0:?} (only inline: is supported)")]
    UnsupportedKeyMethod(String),
    /// The key||salt is not valid base64.
    #[error("bad base64 in SRTP key: {0}")]
    BadBase64(#[from] base64::DecodeError),
    /// The decoded key||salt has the wrong length for the suite.
    #[error("wrong key||salt length for {suite}: expected {expected} octets, got {got}")]
    WrongKeyLength {
        /// The suite.
        suite: SrtpProfile,
        /// Master key + master salt length of the suite.
        expected: usize,
        /// Decoded length.
        got: usize,
    },
    /// The lifetime parameter is not `N` or `2^N` within 64 bits.
    #[error("bad key lifetime {0:?}")]
    BadLifetime(String),
    /// The MKI parameter is not `value:length` with length 1..=128.
    #[error("bad MKI {0:?}")]
    BadMki(String),
    /// A valid RFC 4568 feature this recorder does not implement.
    #[error("unsupported SDES feature: {0}")]
    Unsupported(String),
    /// Key material refused by the SRTP layer.
    #[error(transparent)]
    Srtp(#[from] SrtpError),
}

/// Parses `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:BASE64[|2^31][|1:4] [session params]`,
/// with or without the `a=` prefix.
pub fn parse_crypto_attribute(line: &str) -> Result<CryptoAttribute, SdesError> {
    let line = line.trim();
    let line = line.strip_prefix("a=").unwrap_or(line);
    let body = line
        .strip_prefix("crypto:")
        .ok_or_else(|| SdesError::Syntax("missing \"crypto:\"".into()))?;
    let mut fields = body.split_ascii_whitespace();
    let tag_str = fields
        .next()
        .ok_or_else(|| SdesError::Syntax("missing tag".into()))?;
    if tag_str.is_empty() || tag_str.len() > 9 || !tag_str.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SdesError::BadTag(tag_str.into()));
    }
    let tag: u32 = tag_str
        .parse()
        .map_err(|_| SdesError::BadTag(tag_str.into()))?;
    let suite = fields
        .next()
        .ok_or_else(|| SdesError::Syntax("missing crypto suite".into()))?;
    let profile =
        SrtpProfile::from_sdes_name(suite).ok_or_else(|| SdesError::UnknownSuite(suite.into()))?;
    let key_params = fields
        .next()
        .ok_or_else(|| SdesError::Syntax("missing key parameters".into()))?;
    if key_params.contains(';') {
        // Several master keys, told apart by MKI: needs per-packet key selection.
        return Err(SdesError::Unsupported("more than one master key".into()));
    }
    let key_info = match key_params.split_once(':') {
        Some(("inline", info)) => info,
        Some((method, _)) => return Err(SdesError::UnsupportedKeyMethod(method.into())),
        None => return Err(SdesError::Syntax("key parameter without method".into())),
    };

    let mut parts = key_info.split('|');
    let key_salt = parts.next().unwrap_or_default();
    let mut key = parse_inline_key(profile, key_salt)?;
    let mut lifetime = None;
    let mut mki = None;
    for part in parts {
        if part.contains(':') {
            if mki.is_some() {
                return Err(SdesError::BadMki(part.into()));
            }
            mki = Some(parse_mki(part)?);
        } else if lifetime.is_none() && mki.is_none() {
            lifetime = Some(parse_lifetime(part)?);
        } else {
            return Err(SdesError::BadLifetime(part.into()));
        }
    }
    if let Some((value, len)) = mki {
        key = key
            .with_mki(value, len)
            .map_err(|_| SdesError::BadMki(format!("{value}:{len}")))?;
    }
    for param in fields {
        check_session_param(param)?;
    }
    Ok(CryptoAttribute {
        tag,
        profile,
        key,
        lifetime,
        mki,
    })
}

/// Decodes the base64 `key||salt` of an `inline:` key for `profile`.
pub fn parse_inline_key(
    profile: SrtpProfile,
    base64_key_salt: &str,
) -> Result<SrtpKeyMaterial, SdesError> {
    let raw = BASE64.decode(base64_key_salt.trim())?;
    let key_len = profile.master_key_len();
    let expected = key_len + profile.master_salt_len();
    if raw.len() != expected {
        return Err(SdesError::WrongKeyLength {
            suite: profile,
            expected,
            got: raw.len(),
        });
    }
    Ok(SrtpKeyMaterial::new(
        profile,
        &raw[..key_len],
        &raw[key_len..],
    )?)
}

/// The command-line form "SUITE:BASE64" (e.g. AES_CM_128_HMAC_SHA1_80:WVNfX19...).
pub fn parse_suite_key(s: &str) -> Result<SrtpKeyMaterial, SdesError> {
    let (suite, key) = s
        .trim()
        .split_once(':')
        .ok_or_else(|| SdesError::Syntax("expected SUITE:BASE64".into()))?;
    let profile =
        SrtpProfile::from_sdes_name(suite).ok_or_else(|| SdesError::UnknownSuite(suite.into()))?;
    // Tolerate the SDP spelling pasted whole: SUITE:inline:BASE64.
    let key = key.strip_prefix("inline:").unwrap_or(key);
    parse_inline_key(profile, key)
}

/// `2^N` or a decimal packet count.
fn parse_lifetime(s: &str) -> Result<u64, SdesError> {
    let bad = || SdesError::BadLifetime(s.into());
    if let Some(exp) = s.strip_prefix("2^") {
        let exp: u32 = digits(exp).ok_or_else(bad)?;
        if exp > 63 {
            return Err(bad());
        }
        Ok(1u64 << exp)
    } else {
        digits(s).ok_or_else(bad)
    }
}

/// `value:length`, length in octets 1..=128.
fn parse_mki(s: &str) -> Result<(u32, u8), SdesError> {
    let bad = || SdesError::BadMki(s.into());
    let (value, len) = s.split_once(':').ok_or_else(bad)?;
    let value: u32 = digits(value).ok_or_else(bad)?;
    let len: u8 = digits(len).ok_or_else(bad)?;
    if !(1..=128).contains(&len) {
        return Err(bad());
    }
    Ok((value, len))
}

/// Parses a string of ASCII digits only (no sign, no spaces), as RFC 4568's `1*DIGIT`.
fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Refuses session parameters that change the SRTP transform; others (WSH, FEC_ORDER,
/// FEC_KEY, unknown extensions) do not affect decryption and are ignored.
fn check_session_param(param: &str) -> Result<(), SdesError> {
    match param.split_once('=') {
        Some(("KDR", rate)) => match digits::<u32>(rate) {
            Some(0) => Ok(()),
            Some(_) => Err(SdesError::Unsupported(format!(
                "key derivation rate {param}"
            ))),
            None => Err(SdesError::Syntax(format!("bad {param}"))),
        },
        _ if matches!(
            param,
            "UNENCRYPTED_SRTP" | "UNENCRYPTED_SRTCP" | "UNAUTHENTICATED_SRTP"
        ) =>
        {
            Err(SdesError::Unsupported(param.into()))
        }
        _ => Ok(()),
    }
}

/// Fuzz entry point: parse `data` as a crypto attribute and as a `SUITE:BASE64` key.
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse_crypto_attribute(s);
        let _ = parse_suite_key(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CM_KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
    const GCM_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==";

    #[test]
    fn parses_each_suite() {
        for (suite, key) in [
            ("AES_CM_128_HMAC_SHA1_80", CM_KEY),
            ("AES_CM_128_HMAC_SHA1_32", CM_KEY),
            ("AEAD_AES_128_GCM", GCM_KEY),
        ] {
            let a = parse_crypto_attribute(&format!("a=crypto:1 {suite} inline:{key}")).unwrap();
            assert_eq!(a.tag, 1);
            assert_eq!(a.profile.sdes_name(), suite);
            assert_eq!(a.key.profile(), a.profile);
            assert_eq!(a.lifetime, None);
            assert_eq!(a.mki, None);
        }
        let a =
            parse_crypto_attribute(&format!("crypto:7 AEAD_AES_128_GCM inline:{GCM_KEY}")).unwrap();
        assert_eq!(a.tag, 7);
        assert_eq!(a.key.master_key(), &(0u8..16).collect::<Vec<_>>()[..]);
        assert_eq!(a.key.master_salt(), &(16u8..28).collect::<Vec<_>>()[..]);
        // GCM key without base64 padding.
        let unpadded = GCM_KEY.trim_end_matches('=');
        assert!(parse_inline_key(SrtpProfile::AeadAes128Gcm, unpadded).is_ok());
    }

    /// The RFC 4568 section 4 example, with lifetime and MKI.
    #[test]
    fn parses_lifetime_mki_and_session_params() {
        let a = parse_crypto_attribute(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 \
             inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4 KDR=0 WSH=64 FEC_ORDER=FEC_SRTP",
        )
        .unwrap();
        assert_eq!(a.lifetime, Some(1 << 20));
        assert_eq!(a.mki, Some((1, 4)));
        assert_eq!(a.key.mki().map(|m| (m.value, m.len)), Some((1, 4)));

        let a = parse_crypto_attribute(&format!(
            "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{CM_KEY}|1048576"
        ))
        .unwrap();
        assert_eq!(a.lifetime, Some(1_048_576));
        let a = parse_crypto_attribute(&format!(
            "a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:{CM_KEY}|255:1"
        ))
        .unwrap();
        assert_eq!((a.lifetime, a.mki), (None, Some((255, 1))));
    }

    #[test]
    fn rejects_bad_input_with_clear_errors() {
        let err = parse_crypto_attribute(&format!(
            "a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{CM_KEY}"
        ))
        .unwrap_err();
        assert!(matches!(&err, SdesError::UnknownSuite(s) if s == "AES_256_CM_HMAC_SHA1_80"));
        assert!(err.to_string().contains("AES_256_CM_HMAC_SHA1_80"));

        let err = parse_crypto_attribute("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:not*base64")
            .unwrap_err();
        assert!(matches!(err, SdesError::BadBase64(_)), "{err}");

        // A GCM-length key offered for a CM suite.
        let err = parse_crypto_attribute(&format!(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{GCM_KEY}"
        ))
        .unwrap_err();
        assert!(
            matches!(
                err,
                SdesError::WrongKeyLength {
                    expected: 30,
                    got: 28,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("expected 30 octets, got 28"));

        for line in [
            "",
            "a=rtpmap:0 PCMU/8000",
            "a=crypto:",
            "a=crypto:x AES_CM_128_HMAC_SHA1_80 inline:AAAA",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline",
        ] {
            assert!(parse_crypto_attribute(line).is_err(), "{line:?}");
        }
        let key_line = |params: &str| format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 {params}");
        assert!(matches!(
            parse_crypto_attribute(&key_line(&format!("uri:{CM_KEY}"))),
            Err(SdesError::UnsupportedKeyMethod(_))
        ));
        assert!(matches!(
            parse_crypto_attribute(&key_line(&format!("inline:{CM_KEY}|2^64"))),
            Err(SdesError::BadLifetime(_))
        ));
        assert!(matches!(
            parse_crypto_attribute(&key_line(&format!("inline:{CM_KEY}|1:0"))),
            Err(SdesError::BadMki(_))
        ));
        assert!(matches!(
            parse_crypto_attribute(&key_line(&format!("inline:{CM_KEY}|256:1"))),
            Err(SdesError::BadMki(_))
        ));
        assert!(matches!(
            parse_crypto_attribute(&key_line(&format!("inline:{CM_KEY};inline:{CM_KEY}"))),
            Err(SdesError::Unsupported(_))
        ));
        assert!(matches!(
            parse_crypto_attribute(&key_line(&format!("inline:{CM_KEY} KDR=24"))),
            Err(SdesError::Unsupported(_))
        ));
        assert!(matches!(
            parse_crypto_attribute(&key_line(&format!("inline:{CM_KEY} UNENCRYPTED_SRTP"))),
            Err(SdesError::Unsupported(_))
        ));
    }

    #[test]
    fn parses_command_line_form() {
        let k = parse_suite_key(&format!("AES_CM_128_HMAC_SHA1_80:{CM_KEY}")).unwrap();
        assert_eq!(k.profile(), SrtpProfile::AesCm128HmacSha1_80);
        let k = parse_suite_key(&format!("AEAD_AES_128_GCM:inline:{GCM_KEY}")).unwrap();
        assert_eq!(k.profile(), SrtpProfile::AeadAes128Gcm);
        assert!(matches!(parse_suite_key(CM_KEY), Err(SdesError::Syntax(_))));
        assert!(matches!(
            parse_suite_key(&format!("AES_CM_128_HMAC_SHA1_32:{GCM_KEY}")),
            Err(SdesError::WrongKeyLength { .. })
        ));
    }

    #[test]
    fn fuzz_entry_point_survives_junk() {
        for data in [
            &b""[..],
            b"\xff\xfe",
            b"a=crypto:1 AEAD_AES_128_GCM inline:|||",
            b"a=crypto:4294967295 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^99999999999",
            b"AES_CM_128_HMAC_SHA1_80:",
        ] {
            fuzz_parse(data);
        }
    }

    /// The fuzz corpus seeds: the valid ones parse, none panics.
    #[test]
    fn fuzz_corpus_seeds() {
        let seeds = crate::test_util::fuzz_seeds("sdes");
        for (name, data) in &seeds {
            fuzz_parse(data);
            let text = String::from_utf8_lossy(data);
            let ok = parse_crypto_attribute(&text).is_ok() || parse_suite_key(&text).is_ok();
            let expect_ok =
                name.starts_with("cm") || name.starts_with("gcm") || name.starts_with("suite");
            assert_eq!(ok, expect_ok, "{name}");
        }
        assert!(seeds.len() >= 5);
    }
}
