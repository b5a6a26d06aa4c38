//! Standard Webhooks / Svix (Resend, `standard`): `v1` HMAC-SHA256 and `v1a` Ed25519 over
//! `{id}.{timestamp}.{body}`; also the relay's outbound signer (docs/protocols.md §1.2 and §3).

use super::{
    check_header_len, check_window, header, InboundRequest, Rejection, Verified, VerifyOptions,
    MAX_SIGNATURE_ENTRIES,
};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// Why outbound signing could not produce a header.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignError {
    /// The endpoint has no active secret.
    #[error("no signing secret")]
    NoSecrets,
    /// An endpoint secret is not a usable `whsec_` secret.
    #[error("signing secret #{index} is unusable: {reason}")]
    InvalidSecret { index: usize, reason: &'static str },
    /// The message id is empty or contains `.`, which would make the signed string ambiguous.
    #[error("message id must be non-empty and must not contain '.'")]
    InvalidMessageId,
}

/// A receiver's key: an HMAC secret (`whsec_…` or bare base64) or an Ed25519 public key (`whpk_…`).
enum Key {
    Hmac(Vec<u8>),
    Ed25519(VerifyingKey),
}

impl Key {
    fn parse(secret: &str) -> Result<Key, &'static str> {
        if let Some(public) = secret.strip_prefix("whpk_") {
            let bytes = BASE64
                .decode(public)
                .map_err(|_| "whpk_ key is not base64")?;
            let bytes: [u8; 32] = bytes.try_into().map_err(|_| "whpk_ key is not 32 bytes")?;
            let key =
                VerifyingKey::from_bytes(&bytes).map_err(|_| "whpk_ key is not an Ed25519 key")?;
            return Ok(Key::Ed25519(key));
        }
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let bytes = BASE64.decode(encoded).map_err(|_| "secret is not base64")?;
        if bytes.is_empty() {
            return Err("empty");
        }
        Ok(Key::Hmac(bytes))
    }

    /// Whether any entry is this key's signature. The HMAC is computed once and compared with
    /// each `v1` entry in constant time; an Ed25519 key checks each `v1a` entry (at most
    /// [`MAX_SIGNATURE_ENTRIES`] of them).
    fn matches_any(&self, entries: &[(&str, Vec<u8>)], signed: &[u8]) -> bool {
        match self {
            Key::Hmac(secret) => {
                let Ok(mut mac) = <HmacSha256 as Mac>::new_from_slice(secret) else {
                    return false;
                };
                mac.update(signed);
                let expected = mac.finalize().into_bytes();
                // Every entry is compared (no early exit) so timing says nothing about which one.
                entries
                    .iter()
                    .filter(|(version, _)| *version == "v1")
                    .fold(false, |found, (_, sig)| {
                        found | bool::from(expected.as_slice().ct_eq(sig.as_slice()))
                    })
            }
            Key::Ed25519(public) => entries
                .iter()
                .filter(|(version, _)| *version == "v1a")
                .filter_map(|(_, sig)| Signature::from_slice(sig).ok())
                .any(|sig| public.verify_strict(signed, &sig).is_ok()),
        }
    }
}

fn signed_content(msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut signed = format!("{msg_id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    signed
}

/// The Standard header, else its Svix-branded twin (Resend sends `svix-*`).
fn either_header<'r>(
    req: &InboundRequest<'r>,
    standard: &'static str,
    svix: &'static str,
) -> Result<&'r str, Rejection> {
    header(req, standard)
        .or_else(|| header(req, svix))
        .ok_or(Rejection::MissingHeader(standard))
}

pub(super) fn verify(req: &InboundRequest, opts: &VerifyOptions) -> Result<Verified, Rejection> {
    let keys = opts
        .secrets
        .iter()
        .enumerate()
        .map(|(index, s)| {
            Key::parse(s).map_err(|reason| Rejection::InvalidSecret { index, reason })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let msg_id = either_header(req, "webhook-id", "svix-id")?;
    let timestamp = either_header(req, "webhook-timestamp", "svix-timestamp")?;
    let signatures = either_header(req, "webhook-signature", "svix-signature")?;
    // Bounded before any work: an unauthenticated sender must not buy CPU per entry.
    check_header_len("webhook-signature", signatures)?;
    let timestamp: i64 = timestamp
        .parse()
        .map_err(|_| Rejection::MalformedHeader("webhook-timestamp", "not an integer".into()))?;
    check_window(
        timestamp,
        opts.now_unix_ms.div_euclid(1000),
        opts.tolerance_secs,
        1000,
    )?;
    let signed = signed_content(msg_id, timestamp, req.body);
    // Unknown versions and malformed entries are skipped, not errors: they must not break
    // rotation or mixed v1/v1a headers.
    let listed = signatures.split(' ').filter(|e| !e.is_empty()).count();
    if listed > MAX_SIGNATURE_ENTRIES {
        return Err(Rejection::TooManySignatures {
            found: listed,
            max: MAX_SIGNATURE_ENTRIES,
        });
    }
    let entries: Vec<(&str, Vec<u8>)> = signatures
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter_map(|(version, sig)| Some((version, BASE64.decode(sig).ok()?)))
        .collect();
    let secret_index = keys
        .iter()
        .position(|key| key.matches_any(&entries, &signed))
        .ok_or(Rejection::NoMatchingSignature)?;
    Ok(Verified {
        secret_index,
        timestamp: Some(timestamp),
        message_id: Some(msg_id.to_owned()),
    })
}

/// `v1,<base64>` signature(s) for one message; several secrets → space-separated list (rotation).
pub fn sign_standard(
    secrets: &[&str],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignError> {
    if secrets.is_empty() {
        return Err(SignError::NoSecrets);
    }
    if msg_id.is_empty() || msg_id.contains('.') {
        return Err(SignError::InvalidMessageId);
    }
    let signed = signed_content(msg_id, timestamp, body);
    let entries = secrets
        .iter()
        .enumerate()
        .map(|(index, secret)| match Key::parse(secret) {
            Ok(Key::Hmac(key)) => {
                let mut mac =
                    HmacSha256::new_from_slice(&key).map_err(|_| SignError::InvalidSecret {
                        index,
                        reason: "unusable HMAC key",
                    })?;
                mac.update(&signed);
                Ok(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
            }
            Ok(Key::Ed25519(_)) => Err(SignError::InvalidSecret {
                index,
                reason: "a whpk_ public key cannot sign",
            }),
            Err(reason) => Err(SignError::InvalidSecret { index, reason }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(entries.join(" "))
}

/// New endpoint secret `whsec_<base64 of the given random bytes>` (32 CSPRNG bytes from the caller).
pub fn new_endpoint_secret(random: &[u8; 32]) -> String {
    format!("whsec_{}", BASE64.encode(random))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::Req;
    use super::super::MAX_SIGNATURE_HEADER_BYTES;
    use super::*;
    use crate::webhooks::Provider;
    use proptest::prelude::*;

    const SECRET_A: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID_A: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS_A: i64 = 1649367553;
    const BODY_A: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
    const SIG_A1: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    const SECRET_B: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID_B: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS_B: i64 = 1614265330;
    const BODY_B: &str = r#"{"test": 2432232314}"#;
    const SIG_B: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn req(id: &str, ts: &str, sig: &str, body: &str) -> Req {
        Req::post(
            "https://example.com/webhooks/standard",
            &[
                ("webhook-id", id),
                ("webhook-timestamp", ts),
                ("webhook-signature", sig),
            ],
            body.as_bytes(),
        )
    }

    fn req_a(sig: &str) -> Req {
        req(ID_A, &TS_A.to_string(), sig, BODY_A)
    }

    fn req_b(sig: &str) -> Req {
        req(ID_B, &TS_B.to_string(), sig, BODY_B)
    }

    fn check(r: &Req, secret: &str, now_secs: i64) -> Result<Verified, Rejection> {
        r.verify(Provider::Standard, &[secret], now_secs * 1000)
    }

    #[test]
    fn a1_valid() {
        let v = check(&req_a(SIG_A1), SECRET_A, TS_A).unwrap();
        assert_eq!(v.secret_index, 0);
        assert_eq!(v.timestamp, Some(TS_A));
        assert_eq!(v.message_id.as_deref(), Some(ID_A));
    }

    #[test]
    fn a2_wrong_signature() {
        let r = req_a("v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=");
        assert_eq!(
            check(&r, SECRET_A, TS_A),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn a3_no_entry_of_several_matches() {
        let r = req_a("v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE=");
        assert_eq!(
            check(&r, SECRET_A, TS_A),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn b1_valid() {
        assert!(check(&req_b(SIG_B), SECRET_B, TS_B).is_ok());
    }

    #[test]
    fn b2_secret_without_prefix() {
        assert!(check(&req_b(SIG_B), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", TS_B).is_ok());
    }

    #[test]
    fn b3_last_character_changed() {
        let r = req_b("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=");
        assert_eq!(
            check(&r, SECRET_B, TS_B),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn b4_third_of_four_entries_matches() {
        let r = req_b("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=");
        assert!(check(&r, SECRET_B, TS_B).is_ok());
    }

    #[test]
    fn b5_empty_signature() {
        assert_eq!(
            check(&req_b("v1,"), SECRET_B, TS_B),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn b6_partial_signature() {
        assert_eq!(
            check(&req_b("v1,g0hM9"), SECRET_B, TS_B),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn b7_only_unknown_version() {
        let r = req_b("v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!(
            check(&r, SECRET_B, TS_B),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn b8_tampered_body() {
        let r = req(ID_B, &TS_B.to_string(), SIG_B, r#"{"test": 2432232315}"#);
        assert_eq!(
            check(&r, SECRET_B, TS_B),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn b8_reserialised_body_fails() {
        let r = req(ID_B, &TS_B.to_string(), SIG_B, r#"{"test":2432232314}"#);
        assert_eq!(
            check(&r, SECRET_B, TS_B),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn b9_wrong_id() {
        let r = req("msg_wrong", &TS_B.to_string(), SIG_B, BODY_B);
        assert_eq!(
            check(&r, SECRET_B, TS_B),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn b10_exactly_300_s_old_is_valid() {
        assert!(check(&req_b(SIG_B), SECRET_B, 1614265630).is_ok());
        // Sub-second clock precision must not push the exact boundary out of the window.
        assert!(req_b(SIG_B)
            .verify(Provider::Standard, &[SECRET_B], 1614265630 * 1000 + 999)
            .is_ok());
    }

    #[test]
    fn b11_301_s_old_is_rejected() {
        assert_eq!(
            check(&req_b(SIG_B), SECRET_B, 1614265631),
            Err(Rejection::TimestampOutOfWindow { skew_ms: 301_000 })
        );
    }

    #[test]
    fn b12_300_s_in_the_future_is_valid() {
        assert!(check(&req_b(SIG_B), SECRET_B, 1614265030).is_ok());
    }

    #[test]
    fn b13_301_s_in_the_future_is_rejected() {
        assert_eq!(
            check(&req_b(SIG_B), SECRET_B, 1614265029),
            Err(Rejection::TimestampOutOfWindow { skew_ms: -301_000 })
        );
    }

    #[test]
    fn b14_each_missing_header_is_rejected() {
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            let mut r = req_b(SIG_B);
            r.remove_header(name);
            assert_eq!(
                check(&r, SECRET_B, TS_B),
                Err(Rejection::MissingHeader(name))
            );
        }
    }

    #[test]
    fn b15_timestamp_not_an_integer() {
        let r = req(ID_B, "hello", SIG_B, BODY_B);
        assert!(matches!(
            check(&r, SECRET_B, TS_B),
            Err(Rejection::MalformedHeader("webhook-timestamp", _))
        ));
    }

    #[test]
    fn b16_empty_secret_is_a_configuration_error() {
        let err = check(&req_b(SIG_B), "", TS_B).unwrap_err();
        assert!(err.is_configuration_error(), "{err:?}");
    }

    #[test]
    fn b17_prefix_only_secret_is_a_configuration_error() {
        assert_eq!(
            check(&req_b(SIG_B), "whsec_", TS_B),
            Err(Rejection::InvalidSecret {
                index: 0,
                reason: "empty"
            })
        );
    }

    #[test]
    fn non_base64_secret_is_a_configuration_error() {
        let err = check(&req_b(SIG_B), "whsec_not base64!", TS_B).unwrap_err();
        assert!(matches!(err, Rejection::InvalidSecret { index: 0, .. }));
        assert!(!err.to_string().contains("not base64!"));
    }

    #[test]
    fn b18_svix_brand_headers() {
        let r = Req::post(
            "https://example.com/webhooks/resend",
            &[
                ("svix-id", ID_B),
                ("svix-timestamp", "1614265330"),
                ("svix-signature", SIG_B),
            ],
            BODY_B.as_bytes(),
        );
        let v = r
            .verify(Provider::Resend, &[SECRET_B], TS_B * 1000)
            .unwrap();
        assert_eq!(v.message_id.as_deref(), Some(ID_B));
    }

    #[test]
    fn c_v1a_ed25519_public_key() {
        let r = req_b("v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==");
        let public = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";
        assert!(check(&r, public, TS_B).is_ok());
        // A v1 HMAC secret ignores v1a entries, and the public key ignores v1 entries.
        assert_eq!(
            check(&r, SECRET_B, TS_B),
            Err(Rejection::NoMatchingSignature)
        );
        assert_eq!(
            check(&req_b(SIG_B), public, TS_B),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn at_most_ten_entries_are_read() {
        // The valid signature as the tenth entry still verifies.
        let mut entries = vec!["v1,AA=="; 9];
        entries.push(SIG_B);
        assert!(check(&req_b(&entries.join(" ")), SECRET_B, TS_B).is_ok());
        // An eleventh entry refuses the header before any MAC is computed, even a valid one.
        entries.insert(0, "v1,AA==");
        assert_eq!(
            check(&req_b(&entries.join(" ")), SECRET_B, TS_B),
            Err(Rejection::TooManySignatures { found: 11, max: 10 })
        );
    }

    #[test]
    fn the_amplification_header_is_refused_by_its_length() {
        // 3,000 `v1,AA==` entries: the attack of issue 10, refused on length alone.
        let header = vec!["v1,AA=="; 3000].join(" ");
        let body = vec![b'x'; 256 * 1024];
        let r = req(
            ID_B,
            &TS_B.to_string(),
            &header,
            std::str::from_utf8(&body).unwrap(),
        );
        let secrets = [SECRET_A, SECRET_B, SECRET_A, SECRET_B, SECRET_A];
        assert!(matches!(
            r.verify(Provider::Standard, &secrets, TS_B * 1000),
            Err(Rejection::HeaderTooLong {
                len: 23_999,
                max: 1024,
                ..
            })
        ));
        // Short entries under the length bound are still capped by count.
        let header = vec!["v1,"; 200].join(" ");
        assert!(matches!(
            check(&req_b(&header), SECRET_B, TS_B),
            Err(Rejection::TooManySignatures { found: 200, .. })
        ));
    }

    #[test]
    fn a_signature_header_of_exactly_the_bound_is_read() {
        let pad = "v9,".to_owned() + &"A".repeat(MAX_SIGNATURE_HEADER_BYTES - 3 - 1 - SIG_B.len());
        let header = format!("{pad} {SIG_B}");
        assert_eq!(header.len(), MAX_SIGNATURE_HEADER_BYTES);
        assert!(check(&req_b(&header), SECRET_B, TS_B).is_ok());
        let header = format!("{pad}A {SIG_B}");
        assert!(matches!(
            check(&req_b(&header), SECRET_B, TS_B),
            Err(Rejection::HeaderTooLong { .. })
        ));
    }

    #[test]
    fn rotation_reports_which_secret_matched() {
        let v = req_b(SIG_B)
            .verify(Provider::Standard, &[SECRET_A, SECRET_B], TS_B * 1000)
            .unwrap();
        assert_eq!(v.secret_index, 1);
    }

    #[test]
    fn outbound_reproduces_a1_and_b1() {
        assert_eq!(
            sign_standard(&[SECRET_A], ID_A, TS_A, BODY_A.as_bytes()).unwrap(),
            SIG_A1
        );
        assert_eq!(
            sign_standard(&[SECRET_B], ID_B, TS_B, BODY_B.as_bytes()).unwrap(),
            SIG_B
        );
    }

    const ROTATED: &str =
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,78nXHjpFP0tVJQW5D0SBwmVyyW87BV/rL6MgfM/Bw44=";

    #[test]
    fn outbound_rotation_header() {
        assert_eq!(
            sign_standard(&[SECRET_B, SECRET_A], ID_B, TS_B, BODY_B.as_bytes()).unwrap(),
            ROTATED
        );
    }

    #[test]
    fn o1_receiver_holds_current_secret() {
        assert!(check(&req_b(ROTATED), SECRET_B, TS_B).is_ok());
    }

    #[test]
    fn o2_receiver_holds_previous_secret() {
        assert!(check(&req_b(ROTATED), SECRET_A, TS_B).is_ok());
    }

    #[test]
    fn o3_unrelated_secret() {
        let r = req_b(ROTATED);
        assert_eq!(
            check(&r, "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX", TS_B),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn o4_too_old() {
        assert!(matches!(
            check(&req_b(ROTATED), SECRET_B, 1614265631),
            Err(Rejection::TimestampOutOfWindow { .. })
        ));
    }

    #[test]
    fn signing_rejects_bad_inputs() {
        assert_eq!(
            sign_standard(&[], ID_B, TS_B, b""),
            Err(SignError::NoSecrets)
        );
        assert_eq!(
            sign_standard(&[SECRET_B], "msg.1", TS_B, b""),
            Err(SignError::InvalidMessageId)
        );
        assert_eq!(
            sign_standard(&[SECRET_B, "whsec_"], ID_B, TS_B, b""),
            Err(SignError::InvalidSecret {
                index: 1,
                reason: "empty"
            })
        );
    }

    #[test]
    fn new_secret_round_trips_through_sign_and_verify() {
        let secret = new_endpoint_secret(&[7; 32]);
        assert_eq!(secret, format!("whsec_{}", BASE64.encode([7u8; 32])));
        let sig = sign_standard(&[&secret], ID_B, TS_B, BODY_B.as_bytes()).unwrap();
        assert!(check(&req_b(&sig), &secret, TS_B).is_ok());
    }

    proptest! {
        #[test]
        fn any_body_byte_change_is_rejected(index in any::<prop::sample::Index>(), delta in 1u8..) {
            let mut r = req_b(SIG_B);
            let i = index.index(r.body.len());
            r.body[i] ^= delta;
            prop_assert_eq!(check(&r, SECRET_B, TS_B), Err(Rejection::NoMatchingSignature));
        }

        #[test]
        fn any_signature_byte_change_is_rejected(index in any::<prop::sample::Index>(), delta in 1u8..) {
            let mut sig = BASE64.decode(&SIG_B[3..]).unwrap();
            let i = index.index(sig.len());
            sig[i] ^= delta;
            let r = req_b(&format!("v1,{}", BASE64.encode(&sig)));
            prop_assert_eq!(check(&r, SECRET_B, TS_B), Err(Rejection::NoMatchingSignature));
        }
    }
}
