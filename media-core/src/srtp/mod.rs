//! SRTP and SRTCP (RFC 3711, RFC 7714) for the receive path, with protect for tests and
//! benchmarks.
//!
//! Suites: AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32 and AEAD_AES_128_GCM.
//!
//! The ciphers and MACs are RustCrypto's (`aes`, `ctr`, `hmac`/`sha1`, `aes-gcm`); this
//! module owns the SRTP framing around them, because that is where the general-purpose
//! crates lose time: it derives session keys once per session, keeps the expanded AES key
//! and pre-keyed HMAC state, and decrypts in place without allocating per packet.
//!
//! Receive state per SSRC (ROC, highest index, 128-packet replay window) is only updated
//! after a packet authenticates, so forged or corrupt packets never advance anything. See
//! `docs/srtp.md` for the design note and benchmark figures.

mod kdf;
mod replay;
mod transform;

#[cfg(test)]
mod tests;

use std::fmt;

use aes::cipher::KeyInit;
use aes::Aes128;

use replay::{estimate_index, ReplayWindow, SsrcTable};
use transform::{CmKeys, GcmKeys, GCM_TAG_LEN};

/// Maximum number of SSRCs with receive (or send) state in one session. Beyond this the
/// least recently used SSRC is forgotten, so hostile traffic cannot grow memory; a real call
/// has a handful of SSRCs per direction.
pub const MAX_SSRCS: usize = 64;

/// Highest roll-over counter tried for the first packet of an SSRC that does not
/// authenticate with ROC 0: 32 wraps are 11.6 hours of 20 ms packets.
pub const MAX_ROC_GUESS: u32 = 32;

/// Trial authentications a session may spend on ROC guessing, in all.
const ROC_GUESS_BUDGET: u32 = 64 * MAX_ROC_GUESS;

/// Length of the SRTCP trailer word (E flag + 31-bit index).
const SRTCP_INDEX_LEN: usize = 4;
/// The E flag in the SRTCP trailer word: the packet's payload is encrypted.
const SRTCP_E_FLAG: u32 = 0x8000_0000;
/// SRTCP indices are 31 bits.
const SRTCP_INDEX_MASK: u32 = 0x7FFF_FFFF;
/// The fixed part of an RTP header.
const RTP_FIXED_HEADER: usize = 12;
/// The part of an RTCP packet that SRTCP leaves in clear: V/P/RC, PT, length, sender SSRC.
const RTCP_CLEAR_HEADER: usize = 8;

/// An SRTP crypto suite (RFC 4568 name) / DTLS-SRTP protection profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    /// AES-128 counter mode, HMAC-SHA1 truncated to 80 bits (RFC 3711 default, RFC 4568).
    AesCm128HmacSha1_80,
    /// As above with a 32-bit RTP tag; SRTCP still carries an 80-bit tag (RFC 4568 6.2.2).
    AesCm128HmacSha1_32,
    /// AES-128 in GCM with a 128-bit tag (RFC 7714).
    AeadAes128Gcm,
}

impl SrtpProfile {
    /// All supported profiles, for iteration in tests and tools.
    pub const ALL: [SrtpProfile; 3] = [
        SrtpProfile::AesCm128HmacSha1_80,
        SrtpProfile::AesCm128HmacSha1_32,
        SrtpProfile::AeadAes128Gcm,
    ];

    /// Looks a suite up by its SDES name (RFC 4568 section 6.2, RFC 7714 section 14.1).
    pub fn from_sdes_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.sdes_name() == name)
    }

    /// The SDES crypto-suite name.
    pub fn sdes_name(self) -> &'static str {
        match self {
            SrtpProfile::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpProfile::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            SrtpProfile::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    /// Master key length in octets.
    pub fn master_key_len(self) -> usize {
        16
    }

    /// Master salt length in octets: 112 bits for AES-CM, 96 bits for AES-GCM.
    pub fn master_salt_len(self) -> usize {
        match self {
            SrtpProfile::AeadAes128Gcm => 12,
            _ => 14,
        }
    }

    /// Length of the authentication tag appended to each SRTP packet.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            SrtpProfile::AesCm128HmacSha1_80 => 10,
            SrtpProfile::AesCm128HmacSha1_32 => 4,
            SrtpProfile::AeadAes128Gcm => GCM_TAG_LEN,
        }
    }

    /// Length of the authentication tag of each SRTCP packet: 80 bits for both AES-CM suites.
    pub fn rtcp_tag_len(self) -> usize {
        match self {
            SrtpProfile::AeadAes128Gcm => GCM_TAG_LEN,
            _ => 10,
        }
    }

    fn is_aead(self) -> bool {
        self == SrtpProfile::AeadAes128Gcm
    }
}

impl fmt::Display for SrtpProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sdes_name())
    }
}

/// A master key identifier carried in every packet (RFC 3711 section 3.1), as signalled by
/// SDES `|value:length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mki {
    /// The MKI value; on the wire it is big-endian in `len` octets.
    pub value: u32,
    /// The MKI length in octets (1..=128 per RFC 4568).
    pub len: u8,
}

impl Mki {
    /// Does the wire MKI `bytes` (exactly `len` octets) carry this value?
    fn matches(&self, bytes: &[u8]) -> bool {
        let n = bytes.len();
        let tail = n.min(4);
        let (high, low) = bytes.split_at(n - tail);
        let mut v = [0u8; 4];
        v[4 - tail..].copy_from_slice(low);
        high.iter().all(|&b| b == 0) && u32::from_be_bytes(v) == self.value
    }

    fn write(&self, out: &mut Vec<u8>) {
        let n = usize::from(self.len);
        let tail = n.min(4);
        out.resize(out.len() + (n - tail), 0);
        out.extend_from_slice(&self.value.to_be_bytes()[4 - tail..]);
    }
}

/// Master key + salt for one suite, plus the MKI packets carry, if any.
///
/// `Debug` does not print the key: key material must not end up in logs.
#[derive(Clone)]
pub struct SrtpKeyMaterial {
    profile: SrtpProfile,
    key: [u8; 16],
    salt: [u8; 14],
    mki: Option<Mki>,
}

impl SrtpKeyMaterial {
    /// Checks the lengths against `profile` and copies the key and salt.
    pub fn new(profile: SrtpProfile, key: &[u8], salt: &[u8]) -> Result<Self, SrtpError> {
        if key.len() != profile.master_key_len() {
            return Err(SrtpError::BadKeyLength {
                expected: profile.master_key_len(),
                got: key.len(),
            });
        }
        if salt.len() != profile.master_salt_len() {
            return Err(SrtpError::BadSaltLength {
                expected: profile.master_salt_len(),
                got: salt.len(),
            });
        }
        let mut k = [0u8; 16];
        k.copy_from_slice(key);
        let mut s = [0u8; 14];
        s[..salt.len()].copy_from_slice(salt);
        Ok(Self {
            profile,
            key: k,
            salt: s,
            mki: None,
        })
    }

    /// Declares that packets carry an MKI of `len` octets with `value` (SDES `|value:len`).
    /// The session strips it and rejects packets with another MKI as [`SrtpError::UnknownMki`].
    pub fn with_mki(mut self, value: u32, len: u8) -> Result<Self, SrtpError> {
        let fits = len >= 4 || u64::from(value) < 1u64 << (8 * u32::from(len));
        if len == 0 || len > 128 || !fits {
            return Err(SrtpError::BadMki { value, len });
        }
        self.mki = Some(Mki { value, len });
        Ok(self)
    }

    /// The crypto suite.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// The MKI packets carry, if any.
    pub fn mki(&self) -> Option<Mki> {
        self.mki
    }

    /// The master key.
    pub fn master_key(&self) -> &[u8] {
        &self.key
    }

    /// The master salt (12 or 14 octets depending on the suite).
    pub fn master_salt(&self) -> &[u8] {
        &self.salt[..self.profile.master_salt_len()]
    }
}

impl fmt::Debug for SrtpKeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpKeyMaterial")
            .field("profile", &self.profile)
            .field("key", &"<redacted>")
            .field("mki", &self.mki)
            .finish()
    }
}

/// Why a packet was not protected or unprotected, or key material was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SrtpError {
    /// Shorter than its header + tag (+ MKI, + SRTCP index), or the CSRC list or header
    /// extension runs past the end.
    #[error("packet too short for its header and SRTP trailer")]
    TooShort,
    /// Not RTP/RTCP version 2.
    #[error("not an RTP/RTCP version 2 packet")]
    BadVersion,
    /// The tag did not verify: wrong key, corruption or forgery.
    #[error("SRTP authentication failed")]
    AuthenticationFailed,
    /// This packet index was already received.
    #[error("replayed SRTP packet")]
    Replayed,
    /// The packet index is behind the replay window, or before index 0 (ROC -1). Also
    /// returned by protect for such a sequence number.
    #[error("SRTP packet older than the replay window")]
    TooOld,
    /// The packet's MKI is not the one of our master key (a rekey we do not know about).
    #[error("unknown SRTP master key identifier")]
    UnknownMki,
    /// Master key of the wrong length for the suite.
    #[error("wrong SRTP master key length: expected {expected} octets, got {got}")]
    BadKeyLength {
        /// Length the suite needs.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// Master salt of the wrong length for the suite.
    #[error("wrong SRTP master salt length: expected {expected} octets, got {got}")]
    BadSaltLength {
        /// Length the suite needs.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// MKI length outside 1..=128 or value that does not fit in it.
    #[error("invalid MKI {value}:{len}")]
    BadMki {
        /// The MKI value.
        value: u32,
        /// The MKI length in octets.
        len: u8,
    },
    /// Protect only: the packet index space (2^48 SRTP, 2^31 SRTCP) is used up; RFC 3711
    /// section 9.2 requires a new master key.
    #[error("SRTP packet index exhausted; rekey required")]
    IndexExhausted,
    /// Protect only: larger than the cipher can process.
    #[error("packet too long")]
    TooLong,
}

/// The keyed transforms of one session.
///
/// Both variants are large (expanded key schedules); the size difference is irrelevant for
/// a long-lived session, and boxing would add a pointer chase per packet.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
enum Keys {
    Cm { rtp: CmKeys, rtcp: CmKeys },
    Gcm { rtp: GcmKeys, rtcp: GcmKeys },
}

/// One direction of one SRTP session: all SSRCs that share a master key (the SDES case).
///
/// Session keys are derived once in [`SrtpSession::new`]; per-SSRC state is kept in small
/// bounded tables ([`MAX_SSRCS`]). Receive state (unprotect) and send state (protect) are
/// separate, so one session object can also loop packets back to itself in tests.
pub struct SrtpSession {
    profile: SrtpProfile,
    mki: Option<Mki>,
    keys: Keys,
    rtp_rx: SsrcTable<ReplayWindow>,
    rtcp_rx: SsrcTable<ReplayWindow>,
    /// Highest packet index sent per SSRC.
    rtp_tx: SsrcTable<u64>,
    /// Last SRTCP index sent per SSRC.
    rtcp_tx: SsrcTable<u32>,
    /// Trial authentications left for ROC guessing (see [`MAX_ROC_GUESS`]).
    roc_guess_budget: u32,
}

impl fmt::Debug for SrtpSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpSession")
            .field("profile", &self.profile)
            .field("mki", &self.mki)
            .field("rtp_ssrcs", &self.rtp_rx.len())
            .field("rtcp_ssrcs", &self.rtcp_rx.len())
            .finish_non_exhaustive()
    }
}

/// Length of the RTP header of `packet` (fixed part, CSRCs, extension), checking the version
/// and that it fits. Only the minimum SRTP needs; full parsing is the `rtp` module's job.
#[inline]
fn rtp_header_len(packet: &[u8]) -> Result<usize, SrtpError> {
    if packet.len() < RTP_FIXED_HEADER {
        return Err(SrtpError::TooShort);
    }
    if packet[0] >> 6 != 2 {
        return Err(SrtpError::BadVersion);
    }
    let mut len = RTP_FIXED_HEADER + 4 * usize::from(packet[0] & 0x0F);
    if packet[0] & 0x10 != 0 {
        if packet.len() < len + 4 {
            return Err(SrtpError::TooShort);
        }
        let words = u16::from_be_bytes([packet[len + 2], packet[len + 3]]);
        len += 4 + 4 * usize::from(words);
    }
    if packet.len() < len {
        return Err(SrtpError::TooShort);
    }
    Ok(len)
}

#[inline]
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl SrtpSession {
    /// Derives the session keys (RFC 3711 section 4.3, key derivation rate 0) and creates an
    /// empty session.
    pub fn new(key: SrtpKeyMaterial) -> Self {
        let prf = Aes128::new(&key.key.into());
        let salt = key.master_salt();
        let keys = if key.profile.is_aead() {
            Keys::Gcm {
                rtp: GcmKeys::derive(&prf, salt, false),
                rtcp: GcmKeys::derive(&prf, salt, true),
            }
        } else {
            Keys::Cm {
                rtp: CmKeys::derive(&prf, salt, false),
                rtcp: CmKeys::derive(&prf, salt, true),
            }
        };
        Self::with_keys(key.profile, key.mki, keys)
    }

    fn with_keys(profile: SrtpProfile, mki: Option<Mki>, keys: Keys) -> Self {
        Self {
            profile,
            mki,
            keys,
            rtp_rx: SsrcTable::new(MAX_SSRCS),
            rtcp_rx: SsrcTable::new(MAX_SSRCS),
            rtp_tx: SsrcTable::new(MAX_SSRCS),
            rtcp_tx: SsrcTable::new(MAX_SSRCS),
            roc_guess_budget: ROC_GUESS_BUDGET,
        }
    }

    /// The session's crypto suite.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// Number of SSRCs that currently have SRTP receive state.
    pub fn rtp_ssrc_count(&self) -> usize {
        self.rtp_rx.len()
    }

    /// The rollover counter of `ssrc` on the receive side, once a packet has authenticated.
    pub fn rtp_roc(&self, ssrc: u32) -> Option<u32> {
        self.rtp_rx
            .find(ssrc)
            .map(|slot| (self.rtp_rx.get(slot).highest >> 16) as u32)
    }

    fn mki_len(&self) -> usize {
        self.mki.map_or(0, |m| usize::from(m.len))
    }

    fn check_mki(&self, bytes: &[u8]) -> Result<(), SrtpError> {
        match self.mki {
            Some(m) if !m.matches(bytes) => Err(SrtpError::UnknownMki),
            _ => Ok(()),
        }
    }

    /// Authenticates and decrypts `packet` in place; returns the length of the plain RTP packet
    /// (header + payload, tag and MKI removed). On error the buffer content is unspecified but no
    /// state (ROC, replay window) is changed: a forged or corrupt packet never advances anything.
    pub fn unprotect_rtp(&mut self, packet: &mut [u8]) -> Result<usize, SrtpError> {
        let hdr_len = rtp_header_len(packet)?;
        let tag_len = self.profile.rtp_tag_len();
        let mki_len = self.mki_len();
        let n = packet.len();
        if n < hdr_len + tag_len + mki_len {
            return Err(SrtpError::TooShort);
        }
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = be32(&packet[8..12]);

        // Index guess and replay check, read-only until the packet authenticates.
        let slot = self.rtp_rx.find(ssrc);
        let index = match slot {
            Some(s) => {
                let window = self.rtp_rx.get(s);
                let index = estimate_index(window.highest, seq).ok_or(SrtpError::TooOld)?;
                window.check(index)?;
                index
            }
            // First packet of an SSRC: ROC 0 (RFC 3711 section 3.3.1).
            None => u64::from(seq),
        };

        let (index, plain_len) = match self.open_rtp(packet, hdr_len, ssrc, index) {
            Ok(len) => (index, len),
            // A stream joined after its sequence number wrapped has a ROC above 0 that RTP
            // does not carry (RFC 3711 3.3.1 assumes we saw it start). Try the next ROCs,
            // with a per-session budget so a flood of forged SSRCs stays cheap.
            Err(SrtpError::AuthenticationFailed) if slot.is_none() => {
                let mut found = None;
                for roc in 1..=MAX_ROC_GUESS {
                    if self.roc_guess_budget == 0 {
                        break;
                    }
                    self.roc_guess_budget -= 1;
                    let guess = (u64::from(roc) << 16) | u64::from(seq);
                    if let Ok(len) = self.open_rtp(packet, hdr_len, ssrc, guess) {
                        found = Some((guess, len));
                        break;
                    }
                }
                found.ok_or(SrtpError::AuthenticationFailed)?
            }
            Err(e) => return Err(e),
        };

        match slot {
            Some(s) => self.rtp_rx.get_mut(s).accept(index),
            None => self.rtp_rx.insert(ssrc, ReplayWindow::new(index)),
        }
        Ok(plain_len)
    }

    /// Authenticates and decrypts `packet` as packet `index`; leaves it untouched if the tag
    /// does not verify.
    fn open_rtp(
        &self,
        packet: &mut [u8],
        hdr_len: usize,
        ssrc: u32,
        index: u64,
    ) -> Result<usize, SrtpError> {
        let tag_len = self.profile.rtp_tag_len();
        let mki_len = self.mki_len();
        let n = packet.len();
        Ok(match &self.keys {
            Keys::Cm { rtp, .. } => {
                // header | encrypted payload | MKI | tag; the tag covers header + payload + ROC.
                let auth_end = n - tag_len - mki_len;
                self.check_mki(&packet[auth_end..auth_end + mki_len])?;
                let (authed, trailer) = packet.split_at_mut(auth_end);
                let roc = ((index >> 16) as u32).to_be_bytes();
                rtp.verify(authed, &roc, &trailer[mki_len..])?;
                rtp.apply_keystream(ssrc, index, &mut authed[hdr_len..]);
                auth_end
            }
            Keys::Gcm { rtp, .. } => {
                // header (AAD) | ciphertext | tag | MKI (RFC 7714 places the MKI last).
                let mki_start = n - mki_len;
                self.check_mki(&packet[mki_start..])?;
                let ct_end = mki_start - GCM_TAG_LEN;
                let (aad, rest) = packet.split_at_mut(hdr_len);
                let (ct, tag) = rest.split_at_mut(ct_end - hdr_len);
                let iv = rtp.rtp_iv(ssrc, index);
                rtp.open(&iv, aad, ct, &tag[..GCM_TAG_LEN])?;
                ct_end
            }
        })
    }

    /// Authenticates and decrypts an SRTCP packet in place; returns the length of the plain
    /// RTCP compound packet (tag, SRTCP index and MKI removed). Same no-state-change-on-error
    /// guarantee as [`Self::unprotect_rtp`]. Packets sent with the E flag clear (authenticated
    /// only) are accepted and returned as they are.
    pub fn unprotect_rtcp(&mut self, packet: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.profile.rtcp_tag_len();
        let mki_len = self.mki_len();
        let n = packet.len();
        if n < RTCP_CLEAR_HEADER + SRTCP_INDEX_LEN + tag_len + mki_len {
            return Err(SrtpError::TooShort);
        }
        if packet[0] >> 6 != 2 {
            return Err(SrtpError::BadVersion);
        }
        let ssrc = be32(&packet[4..8]);
        // CM: ... | E+index | MKI | tag.  GCM: ... | tag | E+index | MKI.
        let index_pos = match self.keys {
            Keys::Cm { .. } => n - tag_len - mki_len - SRTCP_INDEX_LEN,
            Keys::Gcm { .. } => n - mki_len - SRTCP_INDEX_LEN,
        };
        let e_index = be32(&packet[index_pos..index_pos + SRTCP_INDEX_LEN]);
        let encrypted = e_index & SRTCP_E_FLAG != 0;
        let index = e_index & SRTCP_INDEX_MASK;

        let slot = self.rtcp_rx.find(ssrc);
        if let Some(s) = slot {
            self.rtcp_rx.get(s).check(u64::from(index))?;
        }

        let plain_len = match &self.keys {
            Keys::Cm { rtcp, .. } => {
                let auth_end = index_pos + SRTCP_INDEX_LEN;
                self.check_mki(&packet[auth_end..auth_end + mki_len])?;
                let (authed, trailer) = packet.split_at_mut(auth_end);
                rtcp.verify(authed, &[], &trailer[mki_len..])?;
                if encrypted {
                    rtcp.apply_keystream(
                        ssrc,
                        u64::from(index),
                        &mut authed[RTCP_CLEAR_HEADER..index_pos],
                    );
                }
                index_pos
            }
            Keys::Gcm { rtcp, .. } => {
                self.check_mki(&packet[index_pos + SRTCP_INDEX_LEN..])?;
                let tag_pos = index_pos - GCM_TAG_LEN;
                let iv = rtcp.rtcp_iv(ssrc, index);
                let mut tag = [0u8; GCM_TAG_LEN];
                tag.copy_from_slice(&packet[tag_pos..index_pos]);
                if encrypted {
                    // AAD = clear header || E+index (RFC 7714 section 9.2).
                    let mut aad = [0u8; RTCP_CLEAR_HEADER + SRTCP_INDEX_LEN];
                    aad[..RTCP_CLEAR_HEADER].copy_from_slice(&packet[..RTCP_CLEAR_HEADER]);
                    aad[RTCP_CLEAR_HEADER..].copy_from_slice(&e_index.to_be_bytes());
                    rtcp.open(&iv, &aad, &mut packet[RTCP_CLEAR_HEADER..tag_pos], &tag)?;
                } else {
                    // AAD = whole packet || E+index, nothing encrypted. Moving the index word
                    // over the tag (saved above) makes the AAD contiguous without a copy;
                    // the buffer is unspecified on error anyway.
                    packet.copy_within(index_pos..index_pos + SRTCP_INDEX_LEN, tag_pos);
                    rtcp.open(&iv, &packet[..tag_pos + SRTCP_INDEX_LEN], &mut [], &tag)?;
                }
                tag_pos
            }
        };

        match slot {
            Some(s) => self.rtcp_rx.get_mut(s).accept(u64::from(index)),
            None => self
                .rtcp_rx
                .insert(ssrc, ReplayWindow::new(u64::from(index))),
        }
        Ok(plain_len)
    }

    /// Encrypts in place and appends the tag (buffer grows by tag length, + 4 for SRTCP index).
    ///
    /// The ROC is tracked per SSRC from the sequence numbers given, with the same index
    /// guessing as the receiver, so packets may be protected slightly out of order.
    pub fn protect_rtp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let hdr_len = rtp_header_len(packet)?;
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = be32(&packet[8..12]);
        let slot = self.rtp_tx.find(ssrc);
        let index = match slot {
            Some(s) => {
                let highest = *self.rtp_tx.get(s);
                estimate_index(highest, seq).ok_or(if highest >> 16 == u64::from(u32::MAX) {
                    SrtpError::IndexExhausted
                } else {
                    // A sequence number "before" the stream's first packet (ROC -1).
                    SrtpError::TooOld
                })?
            }
            None => u64::from(seq),
        };
        packet.reserve(self.profile.rtp_tag_len() + self.mki_len());
        match &self.keys {
            Keys::Cm { rtp, .. } => {
                rtp.apply_keystream(ssrc, index, &mut packet[hdr_len..]);
                let roc = ((index >> 16) as u32).to_be_bytes();
                let tag = rtp.mac(packet, &roc);
                if let Some(m) = self.mki {
                    m.write(packet);
                }
                packet.extend_from_slice(&tag[..self.profile.rtp_tag_len()]);
            }
            Keys::Gcm { rtp, .. } => {
                let iv = rtp.rtp_iv(ssrc, index);
                let (aad, payload) = packet.split_at_mut(hdr_len);
                let tag = rtp.seal(&iv, aad, payload)?;
                packet.extend_from_slice(&tag);
                if let Some(m) = self.mki {
                    m.write(packet);
                }
            }
        }
        match slot {
            Some(s) => {
                let highest = self.rtp_tx.get_mut(s);
                *highest = (*highest).max(index);
            }
            None => self.rtp_tx.insert(ssrc, index),
        }
        Ok(())
    }

    /// Encrypts an RTCP compound packet in place (E flag set) and appends the SRTCP index,
    /// MKI and tag. SRTCP indices count up from 0 per sender SSRC.
    pub fn protect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        if packet.len() < RTCP_CLEAR_HEADER {
            return Err(SrtpError::TooShort);
        }
        if packet[0] >> 6 != 2 {
            return Err(SrtpError::BadVersion);
        }
        let ssrc = be32(&packet[4..8]);
        let slot = self.rtcp_tx.find(ssrc);
        let index = match slot {
            Some(s) => self
                .rtcp_tx
                .get(s)
                .checked_add(1)
                .ok_or(SrtpError::IndexExhausted)?,
            None => 0,
        };
        if index > SRTCP_INDEX_MASK {
            return Err(SrtpError::IndexExhausted);
        }
        let e_index = (SRTCP_E_FLAG | index).to_be_bytes();
        packet.reserve(SRTCP_INDEX_LEN + self.profile.rtcp_tag_len() + self.mki_len());
        match &self.keys {
            Keys::Cm { rtcp, .. } => {
                rtcp.apply_keystream(ssrc, u64::from(index), &mut packet[RTCP_CLEAR_HEADER..]);
                packet.extend_from_slice(&e_index);
                let tag = rtcp.mac(packet, &[]);
                if let Some(m) = self.mki {
                    m.write(packet);
                }
                packet.extend_from_slice(&tag[..self.profile.rtcp_tag_len()]);
            }
            Keys::Gcm { rtcp, .. } => {
                let iv = rtcp.rtcp_iv(ssrc, index);
                let mut aad = [0u8; RTCP_CLEAR_HEADER + SRTCP_INDEX_LEN];
                aad[..RTCP_CLEAR_HEADER].copy_from_slice(&packet[..RTCP_CLEAR_HEADER]);
                aad[RTCP_CLEAR_HEADER..].copy_from_slice(&e_index);
                let tag = rtcp.seal(&iv, &aad, &mut packet[RTCP_CLEAR_HEADER..])?;
                packet.extend_from_slice(&tag);
                packet.extend_from_slice(&e_index);
                if let Some(m) = self.mki {
                    m.write(packet);
                }
            }
        }
        match slot {
            Some(s) => *self.rtcp_tx.get_mut(s) = index,
            None => self.rtcp_tx.insert(ssrc, index),
        }
        Ok(())
    }
}

/// Fixed master key and salt of the fuzz target; also used by the corpus seeds.
#[doc(hidden)]
pub const FUZZ_MASTER_KEY: [u8; 16] = *b"recorder-fuzz-k!";
/// Fixed master salt of the fuzz target (the GCM suite uses its first 12 octets).
#[doc(hidden)]
pub const FUZZ_MASTER_SALT: [u8; 14] = *b"fuzz-salt-14b!";

/// The profile the fuzz target uses for a given first byte.
#[doc(hidden)]
pub fn fuzz_profile(selector: u8) -> SrtpProfile {
    SrtpProfile::ALL[usize::from(selector) % SrtpProfile::ALL.len()]
}

/// Fuzz entry point: build a session from fixed keys, choose the profile from `data[0]`,
/// unprotect the rest as RTP and as RTCP. Must never panic.
///
/// It also checks the round trip: whatever protect accepts, a fresh receiver must unprotect
/// back to the same bytes.
#[doc(hidden)]
pub fn fuzz_unprotect(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let profile = fuzz_profile(selector);
    let salt = &FUZZ_MASTER_SALT[..profile.master_salt_len()];
    let key = SrtpKeyMaterial::new(profile, &FUZZ_MASTER_KEY, salt).expect("fixed key lengths");
    let mut rx = SrtpSession::new(key.clone());

    let mut buf = rest.to_vec();
    let _ = rx.unprotect_rtp(&mut buf);
    buf.clear();
    buf.extend_from_slice(rest);
    let _ = rx.unprotect_rtcp(&mut buf);

    let mut tx = SrtpSession::new(key.clone());
    let mut rx = SrtpSession::new(key);
    buf.clear();
    buf.extend_from_slice(rest);
    if tx.protect_rtp(&mut buf).is_ok() {
        let n = rx
            .unprotect_rtp(&mut buf)
            .expect("own SRTP packet must unprotect");
        assert_eq!(&buf[..n], rest);
    }
    buf.clear();
    buf.extend_from_slice(rest);
    if tx.protect_rtcp(&mut buf).is_ok() {
        let n = rx
            .unprotect_rtcp(&mut buf)
            .expect("own SRTCP packet must unprotect");
        assert_eq!(&buf[..n], rest);
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    /// Decodes hex, ignoring whitespace, for test vectors copied from RFCs.
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
