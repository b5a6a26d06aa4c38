//! Retell `x-retell-signature: v=<unix ms>,d=<hex HMAC-SHA256>` over `{body}{ms}`, keyed with
//! a webhook-badged API key (docs/protocols.md §1.5).

use super::{
    bounded_header, check_window, decode_hex, hmac_matches, InboundRequest, Rejection, Verified,
    VerifyOptions,
};
use hmac::Hmac;
use sha2::Sha256;

const SIGNATURE_HEADER: &str = "x-retell-signature";

/// Largest integer a JavaScript number holds exactly; Retell's SDK rejects larger timestamps.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

pub(super) fn verify(req: &InboundRequest, opts: &VerifyOptions) -> Result<Verified, Rejection> {
    let header = bounded_header(req, SIGNATURE_HEADER)?;
    let (timestamp_ms, digest) = parse_header(header)?;
    check_window(
        timestamp_ms,
        opts.now_unix_ms,
        opts.tolerance_secs.saturating_mul(1000),
        1,
    )?;
    let mut signed = req.body.to_vec();
    signed.extend_from_slice(timestamp_ms.to_string().as_bytes());
    let secret_index = opts
        .secrets
        .iter()
        .position(|key| hmac_matches::<Hmac<Sha256>>(key.as_bytes(), &signed, &digest))
        .ok_or(Rejection::NoMatchingSignature)?;
    Ok(Verified {
        secret_index,
        timestamp: Some(timestamp_ms.div_euclid(1000)),
        message_id: None,
    })
}

/// Parses exactly `v=<digits>,d=<64 hex>` (case-insensitive), as the anchored pattern of
/// Retell's SDK does: no prefix, suffix or swapped order.
fn parse_header(header: &str) -> Result<(i64, Vec<u8>), Rejection> {
    let malformed = |reason: &str| Rejection::MalformedHeader(SIGNATURE_HEADER, reason.into());
    let (v, d) = header
        .split_once(',')
        .ok_or_else(|| malformed("expected v=<ms>,d=<hex>"))?;
    let digits =
        strip_prefix_ignore_case(v, "v=").ok_or_else(|| malformed("expected v=<ms> first"))?;
    let hex =
        strip_prefix_ignore_case(d, "d=").ok_or_else(|| malformed("expected d=<hex> second"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("timestamp is not digits"));
    }
    let timestamp_ms = digits
        .parse::<i64>()
        .ok()
        .filter(|ms| *ms <= MAX_SAFE_INTEGER)
        .ok_or_else(|| malformed("timestamp is not a safe integer"))?;
    let digest = decode_hex(hex)
        .filter(|bytes| bytes.len() == 32)
        .ok_or_else(|| malformed("digest is not 64 hex characters"))?;
    Ok((timestamp_ms, digest))
}

fn strip_prefix_ignore_case<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    s.get(..prefix.len())
        .filter(|head| head.eq_ignore_ascii_case(prefix))
        .and_then(|_| s.get(prefix.len()..))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::Req;
    use super::*;
    use crate::webhooks::Provider;
    use proptest::prelude::*;

    const KEY: &str = "test-api-key";
    const BODY: &str = r#"{"event":"call_ended"}"#;
    const TS_MS: i64 = 1700000000000;
    const DIGEST: &str = "07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e";

    fn req(header: &str, body: &str) -> Req {
        Req::post(
            "https://example.com/webhooks/retell",
            &[(SIGNATURE_HEADER, header)],
            body.as_bytes(),
        )
    }

    fn valid_header() -> String {
        format!("v={TS_MS},d={DIGEST}")
    }

    fn check(r: &Req, key: &str, now_ms: i64) -> Result<Verified, Rejection> {
        r.verify(Provider::Retell, &[key], now_ms)
    }

    fn assert_malformed(header: &str) {
        assert!(
            matches!(
                check(&req(header, BODY), KEY, TS_MS),
                Err(Rejection::MalformedHeader(SIGNATURE_HEADER, _))
            ),
            "{header:?}"
        );
    }

    #[test]
    fn r1_valid() {
        let v = check(&req(&valid_header(), BODY), KEY, TS_MS).unwrap();
        assert_eq!(v.timestamp, Some(1700000000));
    }

    #[test]
    fn r2_trailing_space_in_body() {
        let body = format!("{BODY} ");
        assert_eq!(
            check(&req(&valid_header(), &body), KEY, TS_MS),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn r3_wrong_key() {
        assert_eq!(
            check(&req(&valid_header(), BODY), "wrong-api-key", TS_MS),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn r4_empty_header() {
        assert_malformed("");
    }

    #[test]
    fn r5_timestamp_only() {
        assert_malformed("v=1700000000000");
    }

    #[test]
    fn r6_swapped_order() {
        assert_malformed(&format!("d={DIGEST},v={TS_MS}"));
    }

    #[test]
    fn r7_prefix() {
        assert_malformed(&format!("prefix-v={TS_MS},d={DIGEST}"));
    }

    #[test]
    fn r8_suffix() {
        assert_malformed(&format!("v={TS_MS},d={DIGEST}-suffix"));
    }

    #[test]
    fn r9_not_hex() {
        assert_malformed("v=1700000000000,d=not-hex");
    }

    #[test]
    fn r10_digest_too_short() {
        assert_malformed(&format!("v={TS_MS},d={}", &DIGEST[2..]));
    }

    #[test]
    fn r11_timestamp_not_a_safe_integer() {
        assert_malformed(&format!("v=999999999999999999999999,d={DIGEST}"));
        assert_malformed(&format!("v=9007199254740992,d={DIGEST}"));
    }

    #[test]
    fn r12_exactly_five_minutes_old() {
        assert!(check(&req(&valid_header(), BODY), KEY, 1700000300000).is_ok());
    }

    #[test]
    fn r13_five_minutes_and_one_ms_old() {
        assert_eq!(
            check(&req(&valid_header(), BODY), KEY, 1700000300001),
            Err(Rejection::TimestampOutOfWindow { skew_ms: 300_001 })
        );
    }

    #[test]
    fn r14_five_minutes_and_one_ms_early() {
        assert_eq!(
            check(&req(&valid_header(), BODY), KEY, 1699999699999),
            Err(Rejection::TimestampOutOfWindow { skew_ms: -300_001 })
        );
        assert!(check(&req(&valid_header(), BODY), KEY, 1699999700000).is_ok());
    }

    #[test]
    fn r15_call_analyzed() {
        let body = r#"{"event":"call_analyzed","call":{"call_id":"Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6","call_status":"ended"}}"#;
        let header =
            "v=1700000000000,d=4af5dda7b9adbea934a6b6d3e5e4433b32de871fcb9c816679033c04f0474b0a";
        assert!(check(&req(header, body), "key_test_webhook_badge", TS_MS).is_ok());
    }

    #[test]
    fn uppercase_is_accepted_like_the_sdk() {
        let header = format!("V={TS_MS},D={}", DIGEST.to_uppercase());
        assert!(check(&req(&header, BODY), KEY, TS_MS).is_ok());
    }

    #[test]
    fn missing_header() {
        let mut r = req(&valid_header(), BODY);
        r.remove_header(SIGNATURE_HEADER);
        assert_eq!(
            check(&r, KEY, TS_MS),
            Err(Rejection::MissingHeader(SIGNATURE_HEADER))
        );
    }

    #[test]
    fn rotation_accepts_any_key() {
        let v = req(&valid_header(), BODY)
            .verify(Provider::Retell, &["old-key", KEY], TS_MS)
            .unwrap();
        assert_eq!(v.secret_index, 1);
    }

    proptest! {
        #[test]
        fn any_body_byte_change_is_rejected(index in any::<prop::sample::Index>(), delta in 1u8..) {
            let mut r = req(&valid_header(), BODY);
            let i = index.index(r.body.len());
            r.body[i] ^= delta;
            prop_assert_eq!(check(&r, KEY, TS_MS), Err(Rejection::NoMatchingSignature));
        }

        #[test]
        fn any_signature_byte_change_is_rejected(index in any::<prop::sample::Index>(), delta in 1u8..) {
            let mut digest = decode_hex(DIGEST).unwrap();
            let i = index.index(digest.len());
            digest[i] ^= delta;
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            let r = req(&format!("v={TS_MS},d={hex}"), BODY);
            prop_assert_eq!(check(&r, KEY, TS_MS), Err(Rejection::NoMatchingSignature));
        }
    }
}
