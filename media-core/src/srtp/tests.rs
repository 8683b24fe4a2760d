//! Session-level tests: RFC 7714 vectors, interop with webrtc-rs `rtc-srtp` in both
//! directions, replay and forgery handling, MKI, SSRC bound, fuzz entry point.

use super::test_util::hex;
use super::*;

use rtc_srtp::context::Context;
use rtc_srtp::protection_profile::ProtectionProfile;

const MASTER_KEY: [u8; 16] = [
    0x0d, 0xcd, 0x21, 0x3e, 0x4c, 0xbc, 0xf2, 0x8f, 0x01, 0x7f, 0x6d, 0x6f, 0x91, 0x17, 0x1a, 0x3c,
];
const MASTER_SALT: [u8; 14] = [
    0x62, 0x77, 0x60, 0x38, 0xc0, 0x6d, 0xc9, 0x41, 0x9f, 0x6d, 0xd9, 0x43, 0x3e, 0x7c,
];

fn key_material(profile: SrtpProfile) -> SrtpKeyMaterial {
    SrtpKeyMaterial::new(
        profile,
        &MASTER_KEY,
        &MASTER_SALT[..profile.master_salt_len()],
    )
    .unwrap()
}

fn session(profile: SrtpProfile) -> SrtpSession {
    SrtpSession::new(key_material(profile))
}

fn rtc_profile(profile: SrtpProfile) -> ProtectionProfile {
    match profile {
        SrtpProfile::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        SrtpProfile::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        SrtpProfile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
    }
}

fn rtc_context(profile: SrtpProfile) -> Context {
    let provider = rtc_crypto::default_provider().unwrap();
    Context::new(
        &MASTER_KEY,
        &MASTER_SALT[..profile.master_salt_len()],
        rtc_profile(profile),
        None,
        None,
        provider.crypto(),
    )
    .unwrap()
}

/// An RTP packet; every fourth one carries two CSRCs and a one-byte-header extension, so the
/// header length parsing is exercised against rtc-srtp's full parser.
fn rtp_packet(ssrc: u32, seq: u16, payload_len: usize) -> Vec<u8> {
    let fancy = seq % 4 == 0;
    let mut p = Vec::with_capacity(64 + payload_len);
    p.push(if fancy { 0x92 } else { 0x80 }); // V=2, X, CC=2
    p.push(111);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    if fancy {
        p.extend_from_slice(&0x1111_1111u32.to_be_bytes());
        p.extend_from_slice(&0x2222_2222u32.to_be_bytes());
        p.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01, 0x10, 0x7F, 0x00, 0x00]);
    }
    p.extend((0..payload_len).map(|i| (i as u8).wrapping_add(seq as u8)));
    p
}

/// An RTCP sender report (28 octets) followed by an SDES-less RR, i.e. a small compound.
fn rtcp_packet(ssrc: u32, n: u32) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0x00, 0x06];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&n.to_be_bytes()); // NTP msw
    p.extend_from_slice(&(n * 7).to_be_bytes()); // NTP lsw
    p.extend_from_slice(&(n * 960).to_be_bytes()); // RTP ts
    p.extend_from_slice(&n.to_be_bytes()); // packet count
    p.extend_from_slice(&(n * 100).to_be_bytes()); // octet count
    p
}

// ---------------------------------------------------------------------------------------
// RFC 7714 vectors. They are given for session keys (the KDF is tested separately), so the
// session is built from the transform directly. Section 16: key 000102..0f, salt "Quid pro
// quo"; the same key and salt are used for SRTCP in section 17.

fn rfc7714_session() -> SrtpSession {
    let key: [u8; 16] = hex("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
    let salt: [u8; 12] = hex("517569642070726f2071756f").try_into().unwrap();
    let keys = Keys::Gcm {
        rtp: GcmKeys::from_session_keys(&key, &salt),
        rtcp: GcmKeys::from_session_keys(&key, &salt),
    };
    SrtpSession::with_keys(SrtpProfile::AeadAes128Gcm, None, keys)
}

/// RFC 7714 section 16: "Gallia est omnis divisa in partes tres", SSRC 5501a0b2, seq f17b.
const RFC7714_RTP: &str = "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973
                           20646976 69736120 696e2070 61727465 73207472 6573";
/// RFC 7714 section 16.1.1, "Encrypted and tagged packet".
const RFC7714_SRTP: &str = "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca
                            be633bd5 0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1
                            6a9152cf 765ee439 0cce";
/// RFC 7714 section 17.1, the RTCP packet (SSRC 4d617273) sent with SRTCP index 5d4.
const RFC7714_RTCP: &str = "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930
                           4c756e61 deadbeef deadbeef deadbeef deadbeef deadbeef";
/// RFC 7714 section 17.1, "Encrypted and tagged packet" (tag, then E||index 800005d4).
const RFC7714_SRTCP: &str = "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7
                            6c06f32d c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458
                            96cf4d2f c5abf872 45d9eade 800005d4";

#[test]
fn rfc7714_16_srtp_protect_and_unprotect() {
    let mut tx = rfc7714_session();
    let mut pkt = hex(RFC7714_RTP);
    tx.protect_rtp(&mut pkt).unwrap();
    assert_eq!(pkt, hex(RFC7714_SRTP));

    let mut rx = rfc7714_session();
    let mut wire = hex(RFC7714_SRTP);
    let n = rx.unprotect_rtp(&mut wire).unwrap();
    assert_eq!(wire[..n], hex(RFC7714_RTP)[..]);

    let mut tampered = hex(RFC7714_SRTP);
    tampered[20] ^= 1;
    assert_eq!(
        rfc7714_session().unprotect_rtp(&mut tampered),
        Err(SrtpError::AuthenticationFailed)
    );
}

#[test]
fn rfc7714_17_srtcp_protect_and_unprotect() {
    let mut tx = rfc7714_session();
    // Make the next SRTCP index 5d4, as in the RFC.
    tx.rtcp_tx.insert(0x4d61_7273, 0x5d3);
    let mut pkt = hex(RFC7714_RTCP);
    tx.protect_rtcp(&mut pkt).unwrap();
    assert_eq!(pkt, hex(RFC7714_SRTCP));

    let mut rx = rfc7714_session();
    let mut wire = hex(RFC7714_SRTCP);
    let n = rx.unprotect_rtcp(&mut wire).unwrap();
    assert_eq!(wire[..n], hex(RFC7714_RTCP)[..]);

    // The index is authenticated (AAD and IV): changing it breaks the tag.
    let mut wire = hex(RFC7714_SRTCP);
    let last = wire.len() - 1;
    wire[last] ^= 1;
    assert_eq!(
        rfc7714_session().unprotect_rtcp(&mut wire),
        Err(SrtpError::AuthenticationFailed)
    );
}

// ---------------------------------------------------------------------------------------
// Interop with rtc-srtp (webrtc-rs).

/// rtc-srtp protects 70000 consecutive packets starting near the top of the sequence space,
/// so the stream wraps (ROC 0 -> 1); we unprotect all of them.
#[test]
fn rtc_srtp_protects_we_unprotect_rtp_across_wrap() {
    for profile in SrtpProfile::ALL {
        let mut theirs = rtc_context(profile);
        let mut ours = session(profile);
        let ssrc = 0xCAFE_BABE;
        let start: u16 = 60_000;
        for i in 0..70_000u32 {
            let seq = start.wrapping_add(i as u16);
            let plain = rtp_packet(ssrc, seq, 44 + (i % 7) as usize);
            let mut wire = theirs.encrypt_rtp(&plain).unwrap().to_vec();
            assert_eq!(wire.len(), plain.len() + profile.rtp_tag_len());
            let n = ours
                .unprotect_rtp(&mut wire)
                .unwrap_or_else(|e| panic!("{profile} packet {i} seq {seq}: {e}"));
            assert_eq!(wire[..n], plain[..], "{profile} packet {i}");
        }
        assert_eq!(ours.rtp_roc(ssrc), Some(1), "{profile}");
    }
}

#[test]
fn we_protect_rtc_srtp_unprotects_rtp_across_wrap() {
    for profile in SrtpProfile::ALL {
        let mut theirs = rtc_context(profile);
        let mut ours = session(profile);
        let ssrc = 0x1234_5678;
        let start: u16 = 65_000;
        for i in 0..70_000u32 {
            let seq = start.wrapping_add(i as u16);
            let plain = rtp_packet(ssrc, seq, 20 + (i % 13) as usize);
            let mut wire = plain.clone();
            ours.protect_rtp(&mut wire).unwrap();
            let out = theirs
                .decrypt_rtp(&wire)
                .unwrap_or_else(|e| panic!("{profile} packet {i} seq {seq}: {e}"));
            assert_eq!(out[..], plain[..], "{profile} packet {i}");
        }
    }
}

#[test]
fn rtcp_interop_both_ways() {
    for profile in SrtpProfile::ALL {
        let mut theirs_tx = rtc_context(profile);
        let mut theirs_rx = rtc_context(profile);
        let mut ours_tx = session(profile);
        let mut ours_rx = session(profile);
        for n in 0..200u32 {
            let ssrc = 0xABCD_0000 + n % 3;
            let plain = rtcp_packet(ssrc, n);

            let mut wire = theirs_tx.encrypt_rtcp(&plain).unwrap().to_vec();
            assert_eq!(wire.len(), plain.len() + 4 + profile.rtcp_tag_len());
            let len = ours_rx
                .unprotect_rtcp(&mut wire)
                .unwrap_or_else(|e| panic!("{profile} rtcp {n}: {e}"));
            assert_eq!(wire[..len], plain[..]);

            let mut wire = plain.clone();
            ours_tx.protect_rtcp(&mut wire).unwrap();
            let out = theirs_rx
                .decrypt_rtcp(&wire)
                .unwrap_or_else(|e| panic!("{profile} rtcp {n}: {e}"));
            assert_eq!(out[..], plain[..]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Replay, reordering, forgery.

fn protected(tx: &mut SrtpSession, ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = rtp_packet(ssrc, seq, 44);
    tx.protect_rtp(&mut p).unwrap();
    p
}

#[test]
fn replay_and_reordering() {
    for profile in SrtpProfile::ALL {
        let mut tx = session(profile);
        let mut rx = session(profile);
        let packets: Vec<Vec<u8>> = (0..300u16)
            .map(|s| protected(&mut tx, 7, 1000 + s))
            .collect();

        let mut p = packets[0].clone();
        assert!(rx.unprotect_rtp(&mut p).is_ok());
        // The same packet twice.
        let mut p = packets[0].clone();
        assert_eq!(
            rx.unprotect_rtp(&mut p),
            Err(SrtpError::Replayed),
            "{profile}"
        );

        // Deliver 10..=200 except 72 and 73, which arrive late.
        for (i, pkt) in packets.iter().enumerate().take(201).skip(10) {
            if i != 72 && i != 73 {
                assert!(rx.unprotect_rtp(&mut pkt.clone()).is_ok());
            }
        }
        for pkt in &packets[100..=101] {
            assert_eq!(rx.unprotect_rtp(&mut pkt.clone()), Err(SrtpError::Replayed));
        }
        // 200 - 73 = 127 < window: accepted once, then replayed.
        assert!(
            rx.unprotect_rtp(&mut packets[73].clone()).is_ok(),
            "{profile}"
        );
        assert_eq!(
            rx.unprotect_rtp(&mut packets[73].clone()),
            Err(SrtpError::Replayed)
        );
        // 1..=9 and 72 are 128 or more behind 200: too old.
        assert_eq!(
            rx.unprotect_rtp(&mut packets[5].clone()),
            Err(SrtpError::TooOld)
        );
        assert_eq!(
            rx.unprotect_rtp(&mut packets[72].clone()),
            Err(SrtpError::TooOld)
        );
    }
}

#[test]
fn forged_packets_change_nothing() {
    for profile in SrtpProfile::ALL {
        let mut tx = session(profile);
        let mut rx = session(profile);
        let p0 = protected(&mut tx, 9, 65_530);
        assert!(rx.unprotect_rtp(&mut p0.clone()).is_ok());

        // A corrupted packet from far ahead (would imply ROC 1) must not move the ROC.
        let mut forged = protected(&mut tx, 9, 65_535);
        forged[2..4].copy_from_slice(&30_000u16.to_be_bytes());
        assert_eq!(
            rx.unprotect_rtp(&mut forged),
            Err(SrtpError::AuthenticationFailed)
        );
        assert_eq!(rx.rtp_roc(9), Some(0));

        // One flipped byte anywhere: header, payload or tag.
        let p1 = protected(&mut tx, 9, 65_531);
        for at in [1, 13, 30, p1.len() - 1] {
            let mut bad = p1.clone();
            bad[at] ^= 0x40;
            assert_eq!(
                rx.unprotect_rtp(&mut bad),
                Err(SrtpError::AuthenticationFailed),
                "{profile} byte {at}"
            );
        }
        // The genuine packet is still accepted afterwards, and so is the next one.
        let mut ok = p1.clone();
        let n = rx.unprotect_rtp(&mut ok).unwrap();
        assert_eq!(ok[..n], rtp_packet(9, 65_531, 44)[..]);
        let mut next = protected(&mut tx, 9, 65_532);
        assert!(rx.unprotect_rtp(&mut next).is_ok());

        // A forged first packet of an unknown SSRC creates no state.
        let mut stranger = protected(&mut tx, 10, 5);
        let last = stranger.len() - 1;
        stranger[last] ^= 1;
        assert_eq!(
            rx.unprotect_rtp(&mut stranger),
            Err(SrtpError::AuthenticationFailed)
        );
        assert_eq!(rx.rtp_roc(10), None);
        assert_eq!(rx.rtp_ssrc_count(), 1);
    }
}

#[test]
fn wrong_key_fails_authentication() {
    for profile in SrtpProfile::ALL {
        let mut tx = session(profile);
        let mut other_key = MASTER_KEY;
        other_key[0] ^= 1;
        let mut rx = SrtpSession::new(
            SrtpKeyMaterial::new(
                profile,
                &other_key,
                &MASTER_SALT[..profile.master_salt_len()],
            )
            .unwrap(),
        );
        let mut p = protected(&mut tx, 1, 1);
        assert_eq!(
            rx.unprotect_rtp(&mut p),
            Err(SrtpError::AuthenticationFailed)
        );
        let mut c = rtcp_packet(1, 1);
        tx.protect_rtcp(&mut c).unwrap();
        assert_eq!(
            rx.unprotect_rtcp(&mut c),
            Err(SrtpError::AuthenticationFailed)
        );
    }
}

#[test]
fn srtcp_replay_and_tamper() {
    for profile in SrtpProfile::ALL {
        let mut tx = session(profile);
        let mut rx = session(profile);
        let packets: Vec<Vec<u8>> = (0..200)
            .map(|n| {
                let mut p = rtcp_packet(77, n);
                tx.protect_rtcp(&mut p).unwrap();
                p
            })
            .collect();
        assert!(rx.unprotect_rtcp(&mut packets[0].clone()).is_ok());
        assert_eq!(
            rx.unprotect_rtcp(&mut packets[0].clone()),
            Err(SrtpError::Replayed)
        );
        let mut bad = packets[1].clone();
        bad[10] ^= 1;
        assert_eq!(
            rx.unprotect_rtcp(&mut bad),
            Err(SrtpError::AuthenticationFailed)
        );
        for p in &packets[2..200] {
            assert!(rx.unprotect_rtcp(&mut p.clone()).is_ok());
        }
        assert_eq!(
            rx.unprotect_rtcp(&mut packets[1].clone()),
            Err(SrtpError::TooOld)
        );
        assert!(rx.unprotect_rtcp(&mut packets[150].clone()).is_err());
    }
}

/// SRTCP packets sent with E = 0 are authenticated only; both suites accept them.
#[test]
fn unencrypted_srtcp_is_accepted() {
    for profile in SrtpProfile::ALL {
        let tx = session(profile);
        let mut rx = session(profile);
        let plain = rtcp_packet(5, 42);
        let index = 3u32; // E flag clear
        let mut wire = plain.clone();
        match &tx.keys {
            Keys::Cm { rtcp, .. } => {
                wire.extend_from_slice(&index.to_be_bytes());
                let tag = rtcp.mac(&wire, &[]);
                wire.extend_from_slice(&tag[..10]);
            }
            Keys::Gcm { rtcp, .. } => {
                let mut aad = wire.clone();
                aad.extend_from_slice(&index.to_be_bytes());
                let tag = rtcp.seal(&rtcp.rtcp_iv(5, index), &aad, &mut []).unwrap();
                wire.extend_from_slice(&tag);
                wire.extend_from_slice(&index.to_be_bytes());
            }
        }
        let n = rx.unprotect_rtcp(&mut wire).unwrap();
        assert_eq!(wire[..n], plain[..], "{profile}");
    }
}

#[test]
fn mki_is_carried_and_checked() {
    for profile in SrtpProfile::ALL {
        for (value, len) in [(1u32, 1u8), (0x0102_0304, 4), (7, 6)] {
            let key = key_material(profile).with_mki(value, len).unwrap();
            let mut tx = SrtpSession::new(key.clone());
            let mut rx = SrtpSession::new(key);
            let plain = rtp_packet(3, 10, 44);
            let mut wire = plain.clone();
            tx.protect_rtp(&mut wire).unwrap();
            assert_eq!(
                wire.len(),
                plain.len() + profile.rtp_tag_len() + usize::from(len)
            );
            let n = rx.unprotect_rtp(&mut wire).unwrap();
            assert_eq!(wire[..n], plain[..]);

            let plain = rtcp_packet(3, 1);
            let mut wire = plain.clone();
            tx.protect_rtcp(&mut wire).unwrap();
            let n = rx.unprotect_rtcp(&mut wire).unwrap();
            assert_eq!(wire[..n], plain[..]);

            // Another MKI: a key we do not have.
            let other = key_material(profile).with_mki(value + 1, len).unwrap();
            let mut wire = rtp_packet(3, 11, 44);
            SrtpSession::new(other).protect_rtp(&mut wire).unwrap();
            assert_eq!(rx.unprotect_rtp(&mut wire), Err(SrtpError::UnknownMki));
        }
    }
    assert!(key_material(SrtpProfile::AesCm128HmacSha1_80)
        .with_mki(256, 1)
        .is_err());
    assert!(key_material(SrtpProfile::AesCm128HmacSha1_80)
        .with_mki(1, 0)
        .is_err());
}

#[test]
fn ssrc_state_is_bounded() {
    let mut tx = session(SrtpProfile::AesCm128HmacSha1_80);
    let mut rx = session(SrtpProfile::AesCm128HmacSha1_80);
    for ssrc in 0..1000 {
        let mut p = protected(&mut tx, ssrc, 1);
        assert!(rx.unprotect_rtp(&mut p).is_ok());
    }
    assert_eq!(rx.rtp_ssrc_count(), MAX_SSRCS);
}

#[test]
fn short_and_malformed_packets_are_errors() {
    for profile in SrtpProfile::ALL {
        let mut rx = session(profile);
        for len in 0..40 {
            let mut junk = vec![0x80u8; len];
            assert!(rx.unprotect_rtp(&mut junk).is_err());
            let mut junk = vec![0x80u8; len];
            assert!(rx.unprotect_rtcp(&mut junk).is_err());
        }
        // Extension length pointing past the end.
        let mut p = vec![
            0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xBE, 0xDE, 0xFF, 0xFF,
        ];
        assert_eq!(rx.unprotect_rtp(&mut p), Err(SrtpError::TooShort));
        let mut p = vec![0x40; 40];
        assert_eq!(rx.unprotect_rtp(&mut p), Err(SrtpError::BadVersion));
    }
    assert_eq!(
        SrtpKeyMaterial::new(SrtpProfile::AeadAes128Gcm, &MASTER_KEY, &MASTER_SALT).unwrap_err(),
        SrtpError::BadSaltLength {
            expected: 12,
            got: 14
        }
    );
    assert_eq!(
        SrtpKeyMaterial::new(
            SrtpProfile::AesCm128HmacSha1_32,
            &MASTER_KEY[..15],
            &MASTER_SALT
        )
        .unwrap_err(),
        SrtpError::BadKeyLength {
            expected: 16,
            got: 15
        }
    );
}

#[test]
fn profile_names_round_trip() {
    for p in SrtpProfile::ALL {
        assert_eq!(SrtpProfile::from_sdes_name(p.sdes_name()), Some(p));
        assert_eq!(p.master_key_len(), 16);
    }
    assert_eq!(SrtpProfile::from_sdes_name("AES_CM_128_NULL_AUTH"), None);
    assert_eq!([10, 4, 16], SrtpProfile::ALL.map(|p| p.rtp_tag_len()));
}

#[test]
fn key_material_debug_hides_the_key() {
    let dbg = format!("{:?}", key_material(SrtpProfile::AesCm128HmacSha1_80));
    assert!(!dbg.contains("13"), "{dbg}"); // 0x0d = 13 would appear in a byte dump
    assert!(dbg.contains("redacted"));
}

/// Valid packets for each profile, built with the fuzz target's fixed keys.
fn fuzz_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (sel, profile) in SrtpProfile::ALL.into_iter().enumerate() {
        let salt = &FUZZ_MASTER_SALT[..profile.master_salt_len()];
        let mut tx =
            SrtpSession::new(SrtpKeyMaterial::new(profile, &FUZZ_MASTER_KEY, salt).unwrap());
        let name = profile.sdes_name().to_ascii_lowercase();
        for seq in [1u16, 4] {
            let mut p = rtp_packet(0x5EED, seq, 20);
            tx.protect_rtp(&mut p).unwrap();
            p.insert(0, sel as u8);
            seeds.push((format!("{name}_rtp_seq{seq}"), p));
        }
        let mut p = rtcp_packet(0x5EED, 1);
        tx.protect_rtcp(&mut p).unwrap();
        p.insert(0, sel as u8);
        seeds.push((format!("{name}_rtcp"), p));
    }
    seeds.push(("empty".into(), vec![]));
    seeds.push(("selector_only".into(), vec![0]));
    seeds.push(("short_rtp".into(), vec![0, 0x80, 0, 0, 1]));
    seeds.push((
        "bad_ext_len".into(),
        vec![
            1, 0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xBE, 0xDE, 0xFF, 0xFF,
        ],
    ));
    seeds.push((
        "csrc_overrun".into(),
        vec![2, 0x8F, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
    ));
    seeds
}

#[test]
fn fuzz_entry_point_survives_seeds_and_junk() {
    for (_, seed) in fuzz_seeds() {
        fuzz_unprotect(&seed);
        // Truncations and single-byte flips of the valid seeds.
        for cut in 0..seed.len() {
            fuzz_unprotect(&seed[..cut]);
        }
        for at in 0..seed.len() {
            let mut s = seed.clone();
            s[at] ^= 0xA5;
            fuzz_unprotect(&s);
        }
    }
}

/// Regenerates `fuzz/corpus/srtp_unprotect/`: `cargo test -p media-core -- --ignored
/// write_fuzz_seeds`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/srtp_unprotect");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data) in fuzz_seeds() {
        std::fs::write(dir.join(name), data).unwrap();
    }
}

/// The checked-in corpus is what `write_fuzz_seeds` produces, so the valid seeds really are
/// valid for the fuzz target's keys, and each one unprotects.
#[test]
fn fuzz_corpus_matches_generated_seeds() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/srtp_unprotect");
    for (name, data) in fuzz_seeds() {
        let on_disk = std::fs::read(dir.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(on_disk, data, "{name}: regenerate with write_fuzz_seeds");
        if name.contains("_rtp_") || name.ends_with("_rtcp") {
            let profile = fuzz_profile(data[0]);
            let salt = &FUZZ_MASTER_SALT[..profile.master_salt_len()];
            let mut rx =
                SrtpSession::new(SrtpKeyMaterial::new(profile, &FUZZ_MASTER_KEY, salt).unwrap());
            let mut pkt = data[1..].to_vec();
            let res = if name.ends_with("_rtcp") {
                rx.unprotect_rtcp(&mut pkt)
            } else {
                rx.unprotect_rtp(&mut pkt)
            };
            assert!(res.is_ok(), "{name}: {res:?}");
        }
    }
}

/// Sessions move between the ingest threads of the recorder.
#[test]
fn session_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SrtpSession>();
    assert_send_sync::<SrtpKeyMaterial>();
}

/// A recorder that joins a stream after its sequence number wrapped (a capture started
/// mid-call) finds the roll-over counter by trial, and keeps following it.
#[test]
fn joining_after_sequence_wraps_guesses_the_roc() {
    for profile in SrtpProfile::ALL {
        let mut tx = session(profile);
        let mut rx = session(profile);
        let start = 3 * 65_536 + 65_500;
        let mut plain_ok = 0;
        for i in 0..start + 100u64 {
            let mut p = rtp_packet(0xabc, i as u16, 40);
            let clear = p.clone();
            tx.protect_rtp(&mut p).unwrap();
            if i < start {
                continue;
            }
            let n = rx
                .unprotect_rtp(&mut p)
                .unwrap_or_else(|e| panic!("{profile}: packet {i}: {e}"));
            assert_eq!(&p[..n], &clear[..]);
            plain_ok += 1;
        }
        assert_eq!(plain_ok, 100);
        assert_eq!(
            rx.rtp_roc(0xabc),
            Some(4),
            "{profile}: followed the wrap after joining"
        );
    }
}

/// Guessing is bounded: a flood of unknown SSRCs with bad tags costs at most the budget.
#[test]
fn roc_guessing_has_a_budget() {
    let mut rx = session(SrtpProfile::AesCm128HmacSha1_80);
    let mut tx = session(SrtpProfile::AesCm128HmacSha1_80);
    for ssrc in 0..1000u32 {
        let mut p = rtp_packet(ssrc, 1, 40);
        tx.protect_rtp(&mut p).unwrap();
        let last = p.len() - 1;
        p[last] ^= 1;
        assert_eq!(
            rx.unprotect_rtp(&mut p),
            Err(SrtpError::AuthenticationFailed)
        );
    }
    assert_eq!(rx.roc_guess_budget, 0);
    // Genuine traffic of a new SSRC at ROC 0 still authenticates.
    let mut p = rtp_packet(5000, 1, 40);
    tx.protect_rtp(&mut p).unwrap();
    assert!(rx.unprotect_rtp(&mut p).is_ok());
}
