//! The per-packet cryptographic transforms, keyed once per session.
//!
//! The RustCrypto primitives do the cryptography; this module only builds the IVs and lays
//! out which bytes are encrypted and authenticated. The expanded AES key schedule and the
//! HMAC state after absorbing the key (ipad/opad blocks) are computed once per session. The
//! AES schedule is borrowed per packet (no copy at all); the HMAC state is cloned (about 150
//! octets, where re-keying would cost two extra SHA-1 compressions per packet).

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher, StreamCipherCoreWrapper};
use aes::Aes128;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::kdf::{derive_with, Label};
use super::SrtpError;

/// AES-CTR over a *borrowed* key schedule: cipher 0.4 implements the block cipher traits
/// for `&Aes128`, so no per-packet copy of the 704-octet expanded key is needed (that copy
/// cost as much as the keystream itself for a 44-octet payload).
type CtrCoreRef<'a> = ctr::CtrCore<&'a Aes128, ctr::flavors::Ctr128BE>;

/// Length of an AES-GCM authentication tag (RFC 7714 uses the full 16 octets).
pub(crate) const GCM_TAG_LEN: usize = 16;

/// AES-CM + HMAC-SHA1 keys for one of RTP or RTCP.
#[derive(Clone)]
pub(crate) struct CmKeys {
    cipher: Aes128,
    salt: [u8; 14],
    mac: Hmac<Sha1>,
}

impl CmKeys {
    /// Derives the session keys for RTP (`rtcp == false`) or RTCP from the master key.
    pub(crate) fn derive(prf: &Aes128, master_salt: &[u8], rtcp: bool) -> Self {
        let (lc, la, ls) = if rtcp {
            (Label::RtcpCipher, Label::RtcpAuth, Label::RtcpSalt)
        } else {
            (Label::RtpCipher, Label::RtpAuth, Label::RtpSalt)
        };
        let mut key = [0u8; 16];
        let mut auth = [0u8; 20];
        let mut salt = [0u8; 14];
        derive_with(prf, master_salt, lc, &mut key);
        derive_with(prf, master_salt, la, &mut auth);
        derive_with(prf, master_salt, ls, &mut salt);
        Self::from_session_keys(&key, &salt, &auth)
    }

    /// Builds the transform from already derived session keys.
    pub(crate) fn from_session_keys(key: &[u8; 16], salt: &[u8; 14], auth: &[u8; 20]) -> Self {
        Self {
            cipher: Aes128::new(key.into()),
            salt: *salt,
            // HMAC accepts keys of any length, so this cannot fail.
            mac: <Hmac<Sha1> as Mac>::new_from_slice(auth).expect("HMAC takes any key length"),
        }
    }

    /// RFC 3711 section 4.1.1: IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16), where i is
    /// the 48-bit SRTP packet index or the 31-bit SRTCP index.
    #[inline]
    pub(crate) fn iv(&self, ssrc: u32, index: u64) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= s;
        }
        // index * 2^16 puts the low 48 bits of the index in octets 8..14.
        for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..8]) {
            *b ^= s;
        }
        iv
    }

    /// XORs the AES-CM keystream for (ssrc, index) into `data` (encrypts or decrypts).
    #[inline]
    pub(crate) fn apply_keystream(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        if data.is_empty() {
            return;
        }
        let iv = self.iv(ssrc, index);
        let core = CtrCoreRef::inner_iv_init(&self.cipher, &iv.into());
        let mut ctr = StreamCipherCoreWrapper::from_core(core);
        ctr.apply_keystream(data);
    }

    /// Full 20-octet HMAC-SHA1 over `data || trailer` (the trailer is the ROC for SRTP; SRTCP
    /// has none, its index is inside `data`).
    #[inline]
    pub(crate) fn mac(&self, data: &[u8], trailer: &[u8]) -> [u8; 20] {
        let mut mac = self.mac.clone();
        mac.update(data);
        mac.update(trailer);
        mac.finalize().into_bytes().into()
    }

    /// Checks a truncated tag in constant time, so timing does not reveal how many leading
    /// octets of a forged tag were right.
    #[inline]
    pub(crate) fn verify(&self, data: &[u8], trailer: &[u8], tag: &[u8]) -> Result<(), SrtpError> {
        let full = self.mac(data, trailer);
        if bool::from(full[..tag.len()].ct_eq(tag)) {
            Ok(())
        } else {
            Err(SrtpError::AuthenticationFailed)
        }
    }
}

/// AES-128-GCM keys for one of RTP or RTCP (RFC 7714).
#[derive(Clone)]
pub(crate) struct GcmKeys {
    aead: Aes128Gcm,
    salt: [u8; 12],
}

impl GcmKeys {
    /// Derives the session key and salt for RTP (`rtcp == false`) or RTCP (RFC 7714 section 11:
    /// the RFC 3711 KDF with a 96-bit salt; no auth key).
    pub(crate) fn derive(prf: &Aes128, master_salt: &[u8], rtcp: bool) -> Self {
        let (lc, ls) = if rtcp {
            (Label::RtcpCipher, Label::RtcpSalt)
        } else {
            (Label::RtpCipher, Label::RtpSalt)
        };
        let mut key = [0u8; 16];
        let mut salt = [0u8; 12];
        derive_with(prf, master_salt, lc, &mut key);
        derive_with(prf, master_salt, ls, &mut salt);
        Self::from_session_keys(&key, &salt)
    }

    /// Builds the transform from already derived session keys.
    pub(crate) fn from_session_keys(key: &[u8; 16], salt: &[u8; 12]) -> Self {
        Self {
            aead: Aes128Gcm::new(key.into()),
            salt: *salt,
        }
    }

    /// RFC 7714 section 8.1: IV = (00 00 || SSRC || ROC || SEQ) XOR salt.
    #[inline]
    pub(crate) fn rtp_iv(&self, ssrc: u32, index: u64) -> [u8; 12] {
        let mut iv = [0u8; 12];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[6..12].copy_from_slice(&index.to_be_bytes()[2..8]);
        self.salted(iv)
    }

    /// RFC 7714 section 9.1: IV = (00 00 || SSRC || 00 00 || 0 || SRTCP index) XOR salt.
    #[inline]
    pub(crate) fn rtcp_iv(&self, ssrc: u32, index: u32) -> [u8; 12] {
        let mut iv = [0u8; 12];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[8..12].copy_from_slice(&(index & 0x7FFF_FFFF).to_be_bytes());
        self.salted(iv)
    }

    #[inline]
    fn salted(&self, mut iv: [u8; 12]) -> [u8; 12] {
        for (b, s) in iv.iter_mut().zip(self.salt) {
            *b ^= s;
        }
        iv
    }

    /// Encrypts `data` in place and returns the tag.
    #[inline]
    pub(crate) fn seal(
        &self,
        iv: &[u8; 12],
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; GCM_TAG_LEN], SrtpError> {
        self.aead
            .encrypt_in_place_detached(Nonce::from_slice(iv), aad, data)
            .map(Into::into)
            // Only reachable for inputs beyond GCM's 2^36-byte limit.
            .map_err(|_| SrtpError::TooLong)
    }

    /// Verifies `tag` and decrypts `data` in place. aes-gcm compares the tag in constant time
    /// and decrypts only when it matches.
    #[inline]
    pub(crate) fn open(
        &self,
        iv: &[u8; 12],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8],
    ) -> Result<(), SrtpError> {
        self.aead
            .decrypt_in_place_detached(Nonce::from_slice(iv), aad, data, Tag::from_slice(tag))
            .map_err(|_| SrtpError::AuthenticationFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srtp::test_util::hex;

    /// RFC 3711 Appendix B.2, "AES-CM Test Vectors": the keystream for session key
    /// 2B7E..4F3C, salt F0F1..FCFD, SSRC 0, index 0. The segment is 65282 blocks long; the
    /// RFC lists its first three and last three blocks.
    #[test]
    fn rfc3711_b2_aes_cm_keystream() {
        let key: [u8; 16] = hex("2B7E151628AED2A6ABF7158809CF4F3C").try_into().unwrap();
        let salt: [u8; 14] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap();
        let cm = CmKeys::from_session_keys(&key, &salt, &[0; 20]);
        assert_eq!(
            cm.iv(0, 0).to_vec(),
            hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")
        );
        let mut stream = vec![0u8; 65_282 * 16];
        cm.apply_keystream(0, 0, &mut stream);
        assert_eq!(
            stream[..48].to_vec(),
            hex("E03EAD0935C95E80E166B16DD92B4EB4\
                 D23513162B02D0F72A43A2FE4A5F97AB\
                 41E95B3BB0A2E8DD477901E4FCA894C0")
        );
        assert_eq!(
            stream[stream.len() - 48..].to_vec(),
            hex("EC8CDF7398607CB0F2D21675EA9EA1E4\
                 362B7C3C6773516318A077D7FC5073AE\
                 6A2CC3787889374FBEB4C81B17BA6C44")
        );
    }

    /// RFC 7714 section 16: the IV for SSRC 5501a0b2, ROC 0, SEQ f17b with salt
    /// "Quid pro quo", and section 17 for SRTCP index 5d4.
    #[test]
    fn rfc7714_ivs() {
        let key: [u8; 16] = hex("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
        let salt: [u8; 12] = hex("517569642070726f2071756f").try_into().unwrap();
        let gcm = GcmKeys::from_session_keys(&key, &salt);
        assert_eq!(
            gcm.rtp_iv(0x5501_a0b2, 0xf17b).to_vec(),
            hex("51753c6580c2726f20718414")
        );
        assert_eq!(
            gcm.rtcp_iv(0x4d61_7273, 0x5d4).to_vec(),
            hex("517524055203726f207170bb")
        );
    }
}
