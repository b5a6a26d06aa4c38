//! Bland `X-Webhook-Signature`: hex HMAC-SHA256 of the raw body (docs/protocols.md §1.6). No
//! timestamp and no message id, so replays are stopped by dedupe only.

use super::{
    bounded_header, decode_hex, hmac_matches, InboundRequest, Rejection, Verified, VerifyOptions,
};
use hmac::Hmac;
use sha2::Sha256;

const SIGNATURE_HEADER: &str = "x-webhook-signature";

pub(super) fn verify(req: &InboundRequest, opts: &VerifyOptions) -> Result<Verified, Rejection> {
    let signature = bounded_header(req, SIGNATURE_HEADER)?;
    // Decoding first makes the comparison byte-wise, so either hex case is accepted (BL3).
    let signature = decode_hex(signature)
        .filter(|bytes| bytes.len() == 32)
        .ok_or_else(|| {
            Rejection::MalformedHeader(SIGNATURE_HEADER, "not 64 hex characters".into())
        })?;
    let secret_index = opts
        .secrets
        .iter()
        .position(|secret| hmac_matches::<Hmac<Sha256>>(secret.as_bytes(), req.body, &signature))
        .ok_or(Rejection::NoMatchingSignature)?;
    Ok(Verified {
        secret_index,
        timestamp: None,
        message_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::Req;
    use super::*;
    use crate::webhooks::Provider;
    use proptest::prelude::*;

    const SECRET: &str = "bland_whsec_test_0123456789";
    const BODY: &str = r#"{"call_id":"c9d0e3a6-1f2b-4c3d-9e8f-0a1b2c3d4e5f","status":"completed","to":"+15555550123","from":"+15555550100","call_length":1.25,"completed":true}"#;
    const SIG: &str = "a8321a9426842b82271961e53beffb9cd93fa4c8dd63a70484c1d0eb7a6dc97a";
    const PRETTY: &str = "{\n  \"call_id\": \"c9d0e3a6-1f2b-4c3d-9e8f-0a1b2c3d4e5f\",\n  \"status\": \"completed\",\n  \"to\": \"+15555550123\",\n  \"from\": \"+15555550100\",\n  \"call_length\": 1.25,\n  \"completed\": true\n}";

    fn req(sig: &str, body: &str) -> Req {
        Req::post(
            "https://example.com/webhooks/bland",
            &[(SIGNATURE_HEADER, sig)],
            body.as_bytes(),
        )
    }

    fn check(r: &Req, secret: &str) -> Result<Verified, Rejection> {
        r.verify(Provider::Bland, &[secret], 0)
    }

    #[test]
    fn bl1_valid() {
        let v = check(&req(SIG, BODY), SECRET).unwrap();
        assert_eq!(v.timestamp, None);
    }

    #[test]
    fn bl2_pretty_printed_body() {
        assert_eq!(
            check(&req(SIG, PRETTY), SECRET),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn bl3_uppercase_hex() {
        assert!(check(&req(&SIG.to_uppercase(), BODY), SECRET).is_ok());
    }

    #[test]
    fn wrong_secret() {
        assert_eq!(
            check(&req(SIG, BODY), "bland_whsec_test_0123456780"),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn missing_and_malformed_header() {
        let mut r = req(SIG, BODY);
        r.remove_header(SIGNATURE_HEADER);
        assert_eq!(
            check(&r, SECRET),
            Err(Rejection::MissingHeader(SIGNATURE_HEADER))
        );
        assert!(matches!(
            check(&req("sha256=abc", BODY), SECRET),
            Err(Rejection::MalformedHeader(SIGNATURE_HEADER, _))
        ));
        // A digest of the wrong length cannot match: refused before any HMAC is computed.
        assert!(matches!(
            check(&req(&SIG[..62], BODY), SECRET),
            Err(Rejection::MalformedHeader(SIGNATURE_HEADER, _))
        ));
        let long = "ab".repeat(600);
        assert!(matches!(
            check(&req(&long, BODY), SECRET),
            Err(Rejection::HeaderTooLong { .. })
        ));
    }

    #[test]
    fn rotation_accepts_old_or_new_secret() {
        let v = req(SIG, BODY)
            .verify(Provider::Bland, &["new-secret", SECRET], 0)
            .unwrap();
        assert_eq!(v.secret_index, 1);
    }

    proptest! {
        #[test]
        fn any_body_byte_change_is_rejected(index in any::<prop::sample::Index>(), delta in 1u8..) {
            let mut r = req(SIG, BODY);
            let i = index.index(r.body.len());
            r.body[i] ^= delta;
            prop_assert_eq!(check(&r, SECRET), Err(Rejection::NoMatchingSignature));
        }

        #[test]
        fn any_signature_byte_change_is_rejected(index in any::<prop::sample::Index>(), delta in 1u8..) {
            let mut sig = decode_hex(SIG).unwrap();
            let i = index.index(sig.len());
            sig[i] ^= delta;
            let hex: String = sig.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(check(&req(&hex, BODY), SECRET), Err(Rejection::NoMatchingSignature));
        }
    }
}
