//! The SRTP key derivation function (RFC 3711 section 4.3): AES in counter mode used as a
//! PRF, keyed with the master key, to turn one master key + salt into six session keys.
//!
//! Derivation runs once per session, never per packet: with a key derivation rate of 0 (the
//! only rate SDES and DTLS-SRTP use in practice) the session keys do not depend on the packet
//! index, so the expanded AES key schedules and pre-keyed HMAC states can be kept for the
//! life of the session.

use aes::cipher::BlockEncrypt;
use aes::Aes128;

/// The six key derivation labels of RFC 3711 section 4.3.2 (and RFC 7714 section 11, which
/// reuses them unchanged for AES-GCM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Label {
    RtpCipher = 0x00,
    RtpAuth = 0x01,
    RtpSalt = 0x02,
    RtcpCipher = 0x03,
    RtcpAuth = 0x04,
    RtcpSalt = 0x05,
}

/// Fills `out` with the PRF output for `label` (index DIV kdr = 0).
///
/// `master_salt` is 14 octets for the AES-CM suites and 12 for AES-GCM; RFC 7714 section 11
/// keeps the 112-bit KDF layout, so a shorter salt is zero-padded on the right (as libsrtp
/// and webrtc-rs do). The label is XORed into octet 7: the key_id (label || 48-bit
/// index DIV kdr) is right-aligned against the 112-bit salt.
#[cfg(test)]
pub(crate) fn derive(master_key: &[u8; 16], master_salt: &[u8], label: Label, out: &mut [u8]) {
    use aes::cipher::KeyInit;
    let prf = Aes128::new(master_key.into());
    derive_with(&prf, master_salt, label, out);
}

/// As [`derive`], with the master key already expanded (the session derives six keys from
/// one schedule).
pub(crate) fn derive_with(prf: &Aes128, master_salt: &[u8], label: Label, out: &mut [u8]) {
    debug_assert!(master_salt.len() <= 14);
    // x = key_id XOR master_salt, then the PRF input is x * 2^16 + block counter.
    let mut x = [0u8; 16];
    x[..master_salt.len()].copy_from_slice(master_salt);
    x[7] ^= label as u8;
    for (counter, chunk) in out.chunks_mut(16).enumerate() {
        let mut block = x;
        block[14..16].copy_from_slice(&(counter as u16).to_be_bytes());
        let mut block = block.into();
        prf.encrypt_block(&mut block);
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srtp::test_util::hex;

    /// RFC 3711 Appendix B.3, "Key Derivation Test Vectors".
    #[test]
    fn rfc3711_b3_key_derivation() {
        let master_key: [u8; 16] = hex("E1F97A0D3E018BE0D64FA32C06DE4139").try_into().unwrap();
        let master_salt = hex("0EC675AD498AFEEBB6960B3AABE6");

        let mut cipher_key = [0u8; 16];
        derive(&master_key, &master_salt, Label::RtpCipher, &mut cipher_key);
        assert_eq!(cipher_key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));

        let mut cipher_salt = [0u8; 14];
        derive(&master_key, &master_salt, Label::RtpSalt, &mut cipher_salt);
        assert_eq!(cipher_salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));

        // The RFC lists 94 octets of auth key output; HMAC-SHA1 uses the first 20, the rest
        // checks that the block counter advances correctly.
        let mut auth_key = [0u8; 94];
        derive(&master_key, &master_salt, Label::RtpAuth, &mut auth_key);
        assert_eq!(
            auth_key.to_vec(),
            hex("CEBE321F6FF7716B6FD4AB49AF256A15\
                 6D38BAA48F0A0ACF3C34E2359E6CDBCE\
                 E049646C43D9327AD175578EF7227098\
                 6371C10C9A369AC2F94A8C5FBCDDDC25\
                 6D6E919A48B610EF17C2041E47403576\
                 6B68642C59BBFC2F34DB60DBDFB2")
        );
    }
}
