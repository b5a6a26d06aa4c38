//! Telnyx: Ed25519 over `{telnyx-timestamp}|{body}` with the account's public key
//! (docs/protocols.md §1.4). Not Standard Webhooks, despite Telnyx's wording.

use super::{bounded_header, check_window, InboundRequest, Rejection, Verified, VerifyOptions};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};

const SIGNATURE_HEADER: &str = "telnyx-signature-ed25519";
const TIMESTAMP_HEADER: &str = "telnyx-timestamp";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo; some tools export the key in that form.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The portal's base64 public key: raw 32 bytes, or the same key wrapped in SPKI DER.
fn parse_key(secret: &str) -> Result<VerifyingKey, &'static str> {
    let bytes = BASE64
        .decode(secret)
        .map_err(|_| "public key is not base64")?;
    let raw = bytes.strip_prefix(&SPKI_PREFIX[..]).unwrap_or(&bytes);
    let raw: [u8; 32] = raw.try_into().map_err(|_| "public key is not 32 bytes")?;
    VerifyingKey::from_bytes(&raw).map_err(|_| "public key is not an Ed25519 point")
}

pub(super) fn verify(req: &InboundRequest, opts: &VerifyOptions) -> Result<Verified, Rejection> {
    let keys = opts
        .secrets
        .iter()
        .enumerate()
        .map(|(index, s)| parse_key(s).map_err(|reason| Rejection::InvalidSecret { index, reason }))
        .collect::<Result<Vec<_>, _>>()?;
    let signature = bounded_header(req, SIGNATURE_HEADER)?;
    let timestamp_raw = bounded_header(req, TIMESTAMP_HEADER)?;
    let timestamp = parse_timestamp(timestamp_raw)?;
    check_window(
        timestamp,
        opts.now_unix_ms.div_euclid(1000),
        opts.tolerance_secs,
        1000,
    )?;
    let signature = BASE64
        .decode(signature)
        .ok()
        .and_then(|bytes| Signature::from_slice(&bytes).ok())
        .ok_or_else(|| {
            Rejection::MalformedHeader(SIGNATURE_HEADER, "not base64 of 64 bytes".into())
        })?;
    // The header string is signed exactly as sent, not the re-formatted number.
    let mut signed = format!("{timestamp_raw}|").into_bytes();
    signed.extend_from_slice(req.body);
    let secret_index = keys
        .iter()
        .position(|key| key.verify_strict(&signed, &signature).is_ok())
        .ok_or(Rejection::NoMatchingSignature)?;
    Ok(Verified {
        secret_index,
        timestamp: Some(timestamp),
        message_id: None,
    })
}

fn parse_timestamp(raw: &str) -> Result<i64, Rejection> {
    let malformed = || Rejection::MalformedHeader(TIMESTAMP_HEADER, "not Unix seconds".into());
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    raw.parse().map_err(|_| malformed())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::Req;
    use super::*;
    use crate::webhooks::Provider;
    use ed25519_dalek::{Signer, SigningKey};
    use proptest::prelude::*;

    const SEED_HEX: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const PUBLIC: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    const TS: &str = "1700000000";
    const BODY: &str = r#"{"data":{"event_type":"call.initiated","id":"0ccc7b54-4df3-4bca-a65a-3da1ecc777f0","occurred_at":"2018-02-02T22:25:27.521992Z","payload":{"call_control_id":"v3:abc","from":"+35319605860","to":"+13129457420"},"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://example.com/webhooks"}}"#;
    const SIG: &str =
        "mHwIk5qT4UpAVvkSi9EgNJiQsw0fWG0dkt51d3xQMl0NJOJGdT/p5JHq3LUuIs3HGozCilqf/NKnhac29A5LAg==";

    fn req(ts: &str, sig: &str, body: &str) -> Req {
        Req::post(
            "https://example.com/webhooks/telnyx",
            &[(SIGNATURE_HEADER, sig), (TIMESTAMP_HEADER, ts)],
            body.as_bytes(),
        )
    }

    fn check(r: &Req, key: &str, now_secs: i64) -> Result<Verified, Rejection> {
        r.verify(Provider::Telnyx, &[key], now_secs * 1000)
    }

    #[test]
    fn vector_reproduces_from_the_rfc8032_seed() {
        let seed: [u8; 32] = crate::webhooks::signatures::decode_hex(SEED_HEX)
            .unwrap()
            .try_into()
            .unwrap();
        let key = SigningKey::from_bytes(&seed);
        assert_eq!(BASE64.encode(key.verifying_key().to_bytes()), PUBLIC);
        let sig = key.sign(format!("{TS}|{BODY}").as_bytes());
        assert_eq!(BASE64.encode(sig.to_bytes()), SIG);
    }

    #[test]
    fn tx1_valid() {
        let v = check(&req(TS, SIG, BODY), PUBLIC, 1700000000).unwrap();
        assert_eq!(v.timestamp, Some(1700000000));
        assert_eq!(v.secret_index, 0);
    }

    #[test]
    fn tx2_exactly_300_s_old() {
        assert!(check(&req(TS, SIG, BODY), PUBLIC, 1700000300).is_ok());
    }

    #[test]
    fn tx3_301_s_old() {
        assert!(matches!(
            check(&req(TS, SIG, BODY), PUBLIC, 1700000301),
            Err(Rejection::TimestampOutOfWindow { .. })
        ));
    }

    #[test]
    fn exactly_300_s_early_is_valid_and_301_is_not() {
        assert!(check(&req(TS, SIG, BODY), PUBLIC, 1699999700).is_ok());
        assert!(matches!(
            check(&req(TS, SIG, BODY), PUBLIC, 1699999699),
            Err(Rejection::TimestampOutOfWindow { .. })
        ));
    }

    #[test]
    fn tx4_tampered_body() {
        let body = BODY.replace("+13129457420", "+13139457420");
        assert_eq!(
            check(&req(TS, SIG, &body), PUBLIC, 1700000000),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn tx5_other_timestamp_same_signature() {
        assert_eq!(
            check(&req("1700000001", SIG, BODY), PUBLIC, 1700000001),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn tx6_zero_signature() {
        let zeros = BASE64.encode([0u8; 64]);
        assert_eq!(zeros.len(), 88);
        assert_eq!(
            check(&req(TS, &zeros, BODY), PUBLIC, 1700000000),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn tx7_signature_not_64_bytes() {
        assert!(matches!(
            check(&req(TS, "invalid_signature", BODY), PUBLIC, 1700000000),
            Err(Rejection::MalformedHeader(SIGNATURE_HEADER, _))
        ));
        let short = BASE64.encode([1u8; 63]);
        assert!(matches!(
            check(&req(TS, &short, BODY), PUBLIC, 1700000000),
            Err(Rejection::MalformedHeader(SIGNATURE_HEADER, _))
        ));
    }

    #[test]
    fn tx8_key_not_32_bytes_is_a_configuration_error() {
        let err = check(&req(TS, SIG, BODY), &BASE64.encode([1u8; 31]), 1700000000).unwrap_err();
        assert_eq!(
            err,
            Rejection::InvalidSecret {
                index: 0,
                reason: "public key is not 32 bytes"
            }
        );
        assert!(err.is_configuration_error());
        assert!(check(&req(TS, SIG, BODY), "not*base64", 1700000000)
            .unwrap_err()
            .is_configuration_error());
    }

    #[test]
    fn spki_der_key_is_accepted() {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend(BASE64.decode(PUBLIC).unwrap());
        assert!(check(&req(TS, SIG, BODY), &BASE64.encode(der), 1700000000).is_ok());
    }

    #[test]
    fn rotation_accepts_any_key() {
        let other = BASE64.encode(SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes());
        let v = req(TS, SIG, BODY)
            .verify(
                Provider::Telnyx,
                &[other.as_str(), PUBLIC],
                1700000000 * 1000,
            )
            .unwrap();
        assert_eq!(v.secret_index, 1);
        assert_eq!(
            check(&req(TS, SIG, BODY), &other, 1700000000),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn missing_and_malformed_headers() {
        let mut r = req(TS, SIG, BODY);
        r.remove_header(TIMESTAMP_HEADER);
        assert_eq!(
            check(&r, PUBLIC, 1700000000),
            Err(Rejection::MissingHeader(TIMESTAMP_HEADER))
        );
        let mut r = req(TS, SIG, BODY);
        r.remove_header(SIGNATURE_HEADER);
        assert_eq!(
            check(&r, PUBLIC, 1700000000),
            Err(Rejection::MissingHeader(SIGNATURE_HEADER))
        );
        for ts in [
            "",
            "-1700000000",
            "+1700000000",
            "1700000000.0",
            "99999999999999999999",
        ] {
            assert!(
                matches!(
                    check(&req(ts, SIG, BODY), PUBLIC, 1700000000),
                    Err(Rejection::MalformedHeader(TIMESTAMP_HEADER, _))
                ),
                "{ts:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_body_byte_change_is_rejected(index in any::<prop::sample::Index>(), delta in 1u8..) {
            let mut r = req(TS, SIG, BODY);
            let i = index.index(r.body.len());
            r.body[i] ^= delta;
            prop_assert_eq!(check(&r, PUBLIC, 1700000000), Err(Rejection::NoMatchingSignature));
        }

        #[test]
        fn any_signature_byte_change_is_rejected(index in any::<prop::sample::Index>(), delta in 1u8..) {
            let mut sig = BASE64.decode(SIG).unwrap();
            let i = index.index(sig.len());
            sig[i] ^= delta;
            let r = req(TS, &BASE64.encode(&sig), BODY);
            prop_assert_eq!(check(&r, PUBLIC, 1700000000), Err(Rejection::NoMatchingSignature));
        }
    }
}
