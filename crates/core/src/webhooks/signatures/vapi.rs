//! Vapi authenticates per server URL, either with the shared secret itself in a header or with
//! a configurable HMAC plan (docs/protocols.md §1.7). The edge passes the plan it configured on Vapi;
//! without one, the shared-secret header is expected.

use super::{
    check_header_len, check_window, decode_hex, header, hmac_matches, secret_eq, InboundRequest,
    Rejection, Verified, VerifyOptions,
};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::Hmac;
use sha1::Sha1;
use sha2::{Sha256, Sha512};

/// Digest of a Vapi HMAC plan (`algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacAlgorithm {
    /// `sha1`
    Sha1,
    /// `sha256`
    Sha256,
    /// `sha512`
    Sha512,
}

/// How the signature header encodes the digest (`signatureEncoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureEncoding {
    /// Hex, either case (Vapi's default).
    Hex,
    /// Standard base64 with padding.
    Base64,
}

/// Unit of the timestamp header; Vapi does not document it, so it must be configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUnit {
    /// Unix seconds.
    Seconds,
    /// Unix milliseconds.
    Milliseconds,
}

/// A Vapi `HmacAuthenticationPlan`, field for field as configured on the server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacPlan {
    /// `algorithm`.
    pub algorithm: HmacAlgorithm,
    /// `signatureHeader` (default `x-signature`).
    pub signature_header: String,
    /// `timestampHeader` (default `x-timestamp`).
    pub timestamp_header: String,
    /// `signaturePrefix`, e.g. `sha256=`, stripped from the header value.
    pub signature_prefix: Option<String>,
    /// `includeTimestamp` (default true): whether the timestamp header is sent and required.
    pub include_timestamp: bool,
    /// `payloadFormat` with `{body}`, `{timestamp}`, `{method}`, `{url}`, `{svix-id}` placeholders.
    pub payload_format: String,
    /// `messageIdHeader`: its value is reported as the message id and fills `{svix-id}`.
    pub message_id_header: Option<String>,
    /// `signatureEncoding` (default hex).
    pub signature_encoding: SignatureEncoding,
    /// `secretIsBase64`: base64-decode the secret before using it as the key.
    pub secret_is_base64: bool,
    /// Enforce the timestamp window only when the unit is known.
    pub timestamp_unit: Option<TimestampUnit>,
}

impl HmacPlan {
    /// Vapi's defaults for the given algorithm: `{timestamp}.{body}`, hex, `x-signature`/`x-timestamp`.
    pub fn new(algorithm: HmacAlgorithm) -> Self {
        HmacPlan {
            algorithm,
            signature_header: "x-signature".into(),
            timestamp_header: "x-timestamp".into(),
            signature_prefix: None,
            include_timestamp: true,
            payload_format: "{timestamp}.{body}".into(),
            message_id_header: None,
            signature_encoding: SignatureEncoding::Hex,
            secret_is_base64: false,
            timestamp_unit: None,
        }
    }
}

const SECRET_HEADER: &str = "x-vapi-secret";

pub(super) fn verify(req: &InboundRequest, opts: &VerifyOptions) -> Result<Verified, Rejection> {
    match opts.vapi_plan {
        Some(plan) => verify_hmac(req, opts, plan),
        None => verify_secret_header(req, opts),
    }
}

/// `X-Vapi-Secret: <secret>` (legacy `server.secret`), or a Bearer credential in `Authorization`.
fn verify_secret_header(req: &InboundRequest, opts: &VerifyOptions) -> Result<Verified, Rejection> {
    let presented = header(req, SECRET_HEADER)
        .or_else(|| {
            header(req, "authorization").and_then(|auth| {
                auth.get(..7)
                    .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                    .and_then(|_| auth.get(7..))
            })
        })
        .ok_or(Rejection::MissingHeader(SECRET_HEADER))?;
    check_header_len(SECRET_HEADER, presented)?;
    let secret_index = opts
        .secrets
        .iter()
        .position(|secret| secret_eq(secret.as_bytes(), presented.as_bytes()))
        .ok_or(Rejection::NoMatchingSignature)?;
    Ok(Verified {
        secret_index,
        timestamp: None,
        message_id: None,
    })
}

fn verify_hmac(
    req: &InboundRequest,
    opts: &VerifyOptions,
    plan: &HmacPlan,
) -> Result<Verified, Rejection> {
    const SIGNATURE: &str = "vapi signature header";
    const TIMESTAMP: &str = "vapi timestamp header";
    let keys = opts
        .secrets
        .iter()
        .enumerate()
        .map(|(index, secret)| {
            if plan.secret_is_base64 {
                BASE64.decode(secret).map_err(|_| Rejection::InvalidSecret {
                    index,
                    reason: "secret is not base64",
                })
            } else {
                Ok(secret.as_bytes().to_vec())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let value = header(req, &plan.signature_header).ok_or(Rejection::MissingHeader(SIGNATURE))?;
    check_header_len(SIGNATURE, value)?;
    let value = match &plan.signature_prefix {
        Some(prefix) => value.strip_prefix(prefix.as_str()).ok_or_else(|| {
            Rejection::MalformedHeader(SIGNATURE, "missing the configured prefix".into())
        })?,
        None => value,
    };
    let signature = match plan.signature_encoding {
        SignatureEncoding::Hex => decode_hex(value),
        SignatureEncoding::Base64 => BASE64.decode(value).ok(),
    }
    .ok_or_else(|| {
        Rejection::MalformedHeader(SIGNATURE, "not in the configured encoding".into())
    })?;
    let timestamp = if plan.include_timestamp {
        header(req, &plan.timestamp_header).ok_or(Rejection::MissingHeader(TIMESTAMP))?
    } else {
        ""
    };
    let timestamp_secs = match plan.timestamp_unit.filter(|_| plan.include_timestamp) {
        Some(unit) => {
            let signed: i64 = timestamp
                .parse()
                .map_err(|_| Rejection::MalformedHeader(TIMESTAMP, "not an integer".into()))?;
            let (now, tolerance, ms_per_unit) = match unit {
                TimestampUnit::Seconds => {
                    (opts.now_unix_ms.div_euclid(1000), opts.tolerance_secs, 1000)
                }
                TimestampUnit::Milliseconds => (
                    opts.now_unix_ms,
                    opts.tolerance_secs.saturating_mul(1000),
                    1,
                ),
            };
            check_window(signed, now, tolerance, ms_per_unit)?;
            Some(signed.saturating_mul(ms_per_unit).div_euclid(1000))
        }
        None => None,
    };
    let message_id = plan
        .message_id_header
        .as_deref()
        .and_then(|name| header(req, name));
    let payload = render(
        &plan.payload_format,
        &[
            ("{body}", req.body),
            ("{timestamp}", timestamp.as_bytes()),
            ("{method}", req.method.as_bytes()),
            ("{url}", req.url.as_bytes()),
            ("{svix-id}", message_id.unwrap_or("").as_bytes()),
        ],
    );
    let matches = |key: &[u8]| match plan.algorithm {
        HmacAlgorithm::Sha1 => hmac_matches::<Hmac<Sha1>>(key, &payload, &signature),
        HmacAlgorithm::Sha256 => hmac_matches::<Hmac<Sha256>>(key, &payload, &signature),
        HmacAlgorithm::Sha512 => hmac_matches::<Hmac<Sha512>>(key, &payload, &signature),
    };
    let secret_index = keys
        .iter()
        .position(|key| matches(key))
        .ok_or(Rejection::NoMatchingSignature)?;
    Ok(Verified {
        secret_index,
        timestamp: timestamp_secs,
        message_id: message_id.map(str::to_owned),
    })
}

/// Fills the known placeholders of `format`; anything else, including unknown `{…}`, is literal.
fn render(format: &str, values: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(format.len());
    let mut rest = format;
    while let Some(start) = rest.find('{') {
        let (literal, tail) = rest.split_at(start);
        out.extend_from_slice(literal.as_bytes());
        match values.iter().find(|(name, _)| tail.starts_with(name)) {
            Some((name, value)) => {
                out.extend_from_slice(value);
                rest = tail.get(name.len()..).unwrap_or("");
            }
            None => {
                out.push(b'{');
                rest = tail.get(1..).unwrap_or("");
            }
        }
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::Req;
    use super::*;
    use crate::webhooks::Provider;
    use hmac::Mac;

    const SECRET: &str = "vapi-hmac-secret-0123456789";
    const BODY: &str = r#"{"message":{"type":"end-of-call-report","endedReason":"customer-ended-call","call":{"id":"3f1c9e2a-5b7d-4e8f-9a0b-1c2d3e4f5a6b"}}}"#;
    const V1_SIG: &str = "1a434ee1cf416f3f240412055fb5cbc1ef0b9d095bb48edacb806dd16a07a18c";
    const V2_SIG: &str = "8ad043abc943234ea1467bdd5601d0338d743107136982974727d47fd17f0dad";
    const NOW_MS: i64 = 1700000000 * 1000;

    fn req(headers: &[(&str, &str)]) -> Req {
        Req::post(
            "https://example.com/webhooks/vapi",
            headers,
            BODY.as_bytes(),
        )
    }

    fn check(r: &Req, plan: Option<&HmacPlan>, now_ms: i64) -> Result<Verified, Rejection> {
        r.verify_with(Provider::Vapi, &[SECRET], now_ms, None, plan)
    }

    fn v1_request() -> Req {
        req(&[("x-timestamp", "1700000000"), ("x-signature", V1_SIG)])
    }

    fn body_only_plan() -> HmacPlan {
        HmacPlan {
            include_timestamp: false,
            payload_format: "{body}".into(),
            signature_header: "x-vapi-signature".into(),
            ..HmacPlan::new(HmacAlgorithm::Sha256)
        }
    }

    #[test]
    fn v1_hmac_plan_defaults() {
        let plan = HmacPlan::new(HmacAlgorithm::Sha256);
        let v = check(&v1_request(), Some(&plan), NOW_MS).unwrap();
        assert_eq!(v.timestamp, None, "no unit configured, so no window either");
    }

    #[test]
    fn v1_tampered_body_and_timestamp() {
        let plan = HmacPlan::new(HmacAlgorithm::Sha256);
        let mut r = v1_request();
        r.body.push(b' ');
        assert_eq!(
            check(&r, Some(&plan), NOW_MS),
            Err(Rejection::NoMatchingSignature)
        );
        let r = req(&[("x-timestamp", "1700000001"), ("x-signature", V1_SIG)]);
        assert_eq!(
            check(&r, Some(&plan), NOW_MS),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn v1_window_applies_once_the_unit_is_configured() {
        let plan = HmacPlan {
            timestamp_unit: Some(TimestampUnit::Seconds),
            ..HmacPlan::new(HmacAlgorithm::Sha256)
        };
        let v = check(&v1_request(), Some(&plan), NOW_MS + 300_000).unwrap();
        assert_eq!(v.timestamp, Some(1700000000));
        assert_eq!(
            check(&v1_request(), Some(&plan), NOW_MS + 301_000),
            Err(Rejection::TimestampOutOfWindow { skew_ms: 301_000 })
        );
        let millis = HmacPlan {
            timestamp_unit: Some(TimestampUnit::Milliseconds),
            ..HmacPlan::new(HmacAlgorithm::Sha256)
        };
        // 1700000000 read as milliseconds is early 1970: far outside the window.
        assert!(matches!(
            check(&v1_request(), Some(&millis), NOW_MS),
            Err(Rejection::TimestampOutOfWindow { .. })
        ));
    }

    #[test]
    fn v2_body_only_plan() {
        let r = req(&[("x-vapi-signature", V2_SIG)]);
        assert!(check(&r, Some(&body_only_plan()), NOW_MS).is_ok());
        let r = req(&[("x-signature", V2_SIG)]);
        assert_eq!(
            check(&r, Some(&body_only_plan()), NOW_MS),
            Err(Rejection::MissingHeader("vapi signature header"))
        );
    }

    #[test]
    fn v3_shared_secret_header() {
        let r = req(&[("x-vapi-secret", SECRET)]);
        assert!(check(&r, None, NOW_MS).is_ok());
    }

    #[test]
    fn v4_shared_secret_header_mismatch() {
        let r = req(&[("x-vapi-secret", "vapi-hmac-secret-0123456789x")]);
        assert_eq!(check(&r, None, NOW_MS), Err(Rejection::NoMatchingSignature));
    }

    #[test]
    fn bearer_credential_and_missing_secret() {
        let bearer = format!("Bearer {SECRET}");
        assert!(check(&req(&[("authorization", &bearer)]), None, NOW_MS).is_ok());
        assert_eq!(
            check(&req(&[("authorization", SECRET)]), None, NOW_MS),
            Err(Rejection::MissingHeader(SECRET_HEADER))
        );
        // A signed request does not pass in secret-header mode.
        assert_eq!(
            check(&v1_request(), None, NOW_MS),
            Err(Rejection::MissingHeader(SECRET_HEADER))
        );
    }

    #[test]
    fn missing_timestamp_header() {
        let plan = HmacPlan::new(HmacAlgorithm::Sha256);
        let r = req(&[("x-signature", V1_SIG)]);
        assert_eq!(
            check(&r, Some(&plan), NOW_MS),
            Err(Rejection::MissingHeader("vapi timestamp header"))
        );
    }

    fn sign_sha512_base64(key: &[u8], payload: &str) -> String {
        let mut mac = Hmac::<Sha512>::new_from_slice(key).unwrap();
        mac.update(payload.as_bytes());
        BASE64.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn prefix_encoding_algorithm_base64_secret_and_placeholders_are_honoured() {
        let plan = HmacPlan {
            signature_prefix: Some("sha512=".into()),
            signature_encoding: SignatureEncoding::Base64,
            secret_is_base64: true,
            payload_format: "{method} {url} {svix-id}:{timestamp}.{body}{unknown}".into(),
            message_id_header: Some("x-message-id".into()),
            ..HmacPlan::new(HmacAlgorithm::Sha512)
        };
        let payload =
            format!("POST https://example.com/webhooks/vapi msg_1:1700000000.{BODY}{{unknown}}");
        let signature = format!("sha512={}", sign_sha512_base64(b"raw key", &payload));
        let r = req(&[
            ("x-timestamp", "1700000000"),
            ("x-signature", &signature),
            ("x-message-id", "msg_1"),
        ]);
        let secrets = [BASE64.encode("raw key")];
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let v = r
            .verify_with(Provider::Vapi, &secrets, NOW_MS, None, Some(&plan))
            .unwrap();
        assert_eq!(v.message_id.as_deref(), Some("msg_1"));

        let unprefixed = req(&[
            ("x-timestamp", "1700000000"),
            ("x-signature", signature.trim_start_matches("sha512=")),
            ("x-message-id", "msg_1"),
        ]);
        assert!(matches!(
            unprefixed.verify_with(Provider::Vapi, &secrets, NOW_MS, None, Some(&plan)),
            Err(Rejection::MalformedHeader(..))
        ));
        assert!(r
            .verify_with(Provider::Vapi, &["not base64!"], NOW_MS, None, Some(&plan))
            .unwrap_err()
            .is_configuration_error());
    }

    #[test]
    fn render_fills_known_placeholders_only() {
        let out = render("{a}{b}x{", &[("{b}", b"B")]);
        assert_eq!(out, b"{a}Bx{");
        assert_eq!(
            render(
                "{timestamp}.{body}",
                &[("{timestamp}", b"1"), ("{body}", b"{}")]
            ),
            b"1.{}"
        );
    }
}
