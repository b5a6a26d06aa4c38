//! Signature verification (inbound, per provider) and Standard Webhooks signing (outbound).
//!
//! Every verifier works on the raw body bytes, compares in constant time, accepts a match with
//! any configured secret (rotation) and takes the clock as a parameter. The schemes and the
//! sources of their test vectors are in docs/protocols.md §1; each one lives in its own file here.

mod bland;
mod exotel;
mod retell;
mod standard;
mod telnyx;
mod twilio;
mod vapi;

pub use standard::{new_endpoint_secret, sign_standard, SignError};
pub use vapi::{HmacAlgorithm, HmacPlan, SignatureEncoding, TimestampUnit};

use super::Provider;
use hmac::digest::KeyInit;
use hmac::Mac;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

/// Longest signature header any verifier reads; longer is refused before any MAC is computed.
/// Real headers are far shorter (Svix with 10 rotated secrets is under 500 bytes).
pub const MAX_SIGNATURE_HEADER_BYTES: usize = 1024;

/// Most entries a Standard Webhooks signature header may list (rotation needs a handful).
pub const MAX_SIGNATURE_ENTRIES: usize = 10;

/// What the verifier sees of an inbound HTTP request.
#[derive(Debug, Clone, Copy)]
pub struct InboundRequest<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// Full URL as the worker received it, including query string.
    pub url: &'a str,
    /// Header names lower-cased (looked up case-insensitively anyway).
    pub headers: &'a [(String, String)],
    /// The body exactly as received, before any parsing.
    pub body: &'a [u8],
}

/// Secrets, clock and per-source settings for one verification.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions<'a> {
    /// Secrets, tokens or public keys of the source; several values = rotation, any may match.
    pub secrets: &'a [String],
    /// Timestamp window in seconds, applied in both directions.
    pub tolerance_secs: u64,
    /// The verifier's clock in Unix milliseconds (Retell signs milliseconds).
    pub now_unix_ms: i64,
    /// How the world reaches this worker, e.g. `https://agent.example.com` (Twilio behind proxies).
    pub public_base_url: Option<&'a str>,
    /// Vapi HMAC plan; `None` means Vapi sends the shared secret itself (`X-Vapi-Secret`).
    pub vapi_plan: Option<&'a HmacPlan>,
}

/// A request that passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Index in `VerifyOptions::secrets` of the secret that matched.
    pub secret_index: usize,
    /// The signed timestamp in Unix seconds, for schemes that sign one (skew metrics).
    pub timestamp: Option<i64>,
    /// The sender's message id (`webhook-id` / `svix-id`, Vapi's `messageIdHeader`): a dedupe key.
    pub message_id: Option<String>,
}

/// Why a request was rejected. Messages never contain a secret or a signature.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Rejection {
    /// No secret is configured for this provider (fail closed; a deployment fault).
    #[error("no webhook secret is configured for this provider")]
    NotConfigured,
    /// A configured secret or key cannot be used (a deployment fault).
    #[error("configured secret #{index} is unusable: {reason}")]
    InvalidSecret { index: usize, reason: &'static str },
    /// A header the scheme requires is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is present but cannot be parsed.
    #[error("malformed header {0}: {1}")]
    MalformedHeader(&'static str, String),
    /// A URL query parameter the scheme requires is absent.
    #[error("missing query parameter {0}")]
    MissingQueryParam(&'static str),
    /// The signed timestamp is too old (positive skew) or too far in the future (negative).
    #[error("timestamp outside the allowed window (now minus signed time: {skew_ms} ms)")]
    TimestampOutOfWindow { skew_ms: i64 },
    /// Twilio: the body does not hash to the signed `bodySHA256` query value.
    #[error("body does not match the signed bodySHA256")]
    BodyHashMismatch,
    /// A signature header longer than [`MAX_SIGNATURE_HEADER_BYTES`].
    #[error("header {name} is {len} bytes, more than {max}")]
    HeaderTooLong {
        name: &'static str,
        len: usize,
        max: usize,
    },
    /// More signature entries than [`MAX_SIGNATURE_ENTRIES`].
    #[error("{found} signature entries, more than {max}")]
    TooManySignatures { found: usize, max: usize },
    /// No signature (or token) matches any configured secret.
    #[error("no signature matches")]
    NoMatchingSignature,
}

impl Rejection {
    /// True when the fault is ours (missing or unusable configuration), not the sender's.
    pub fn is_configuration_error(&self) -> bool {
        matches!(
            self,
            Rejection::NotConfigured | Rejection::InvalidSecret { .. }
        )
    }
}

/// Verifies a request for the given provider.
pub fn verify(
    provider: Provider,
    req: &InboundRequest,
    opts: &VerifyOptions,
) -> Result<Verified, Rejection> {
    if opts.secrets.is_empty() {
        return Err(Rejection::NotConfigured);
    }
    if let Some(index) = opts.secrets.iter().position(|s| s.is_empty()) {
        return Err(Rejection::InvalidSecret {
            index,
            reason: "empty",
        });
    }
    match provider {
        Provider::Resend | Provider::Standard => standard::verify(req, opts),
        Provider::Twilio => twilio::verify(req, opts),
        Provider::Telnyx => telnyx::verify(req, opts),
        Provider::Retell => retell::verify(req, opts),
        Provider::Bland => bland::verify(req, opts),
        Provider::Vapi => vapi::verify(req, opts),
        Provider::Exotel => exotel::verify(req, opts),
    }
}

/// The first value of a header, looked up case-insensitively.
fn header<'r>(req: &InboundRequest<'r>, name: &str) -> Option<&'r str> {
    req.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The header's value, or `MissingHeader`.
fn required_header<'r>(req: &InboundRequest<'r>, name: &'static str) -> Result<&'r str, Rejection> {
    header(req, name).ok_or(Rejection::MissingHeader(name))
}

/// Refuses a signature header longer than [`MAX_SIGNATURE_HEADER_BYTES`].
fn check_header_len(name: &'static str, value: &str) -> Result<(), Rejection> {
    if value.len() > MAX_SIGNATURE_HEADER_BYTES {
        return Err(Rejection::HeaderTooLong {
            name,
            len: value.len(),
            max: MAX_SIGNATURE_HEADER_BYTES,
        });
    }
    Ok(())
}

/// The header's value, or `MissingHeader`; refused when longer than the signature header bound.
fn bounded_header<'r>(req: &InboundRequest<'r>, name: &'static str) -> Result<&'r str, Rejection> {
    let value = required_header(req, name)?;
    check_header_len(name, value)?;
    Ok(value)
}

/// The decoded value of the first query parameter called `name`.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// Rejects `signed` unless it is within `tolerance` of `now`, both in the same unit.
fn check_window(signed: i64, now: i64, tolerance: u64, ms_per_unit: i64) -> Result<(), Rejection> {
    let skew = i128::from(now) - i128::from(signed);
    if skew.unsigned_abs() > u128::from(tolerance) {
        let skew_ms = skew.saturating_mul(i128::from(ms_per_unit));
        let skew_ms =
            i64::try_from(skew_ms).unwrap_or(if skew_ms < 0 { i64::MIN } else { i64::MAX });
        return Err(Rejection::TimestampOutOfWindow { skew_ms });
    }
    Ok(())
}

/// Whether `signature` is the HMAC of `message` under `key`; compared in constant time.
fn hmac_matches<M: Mac + KeyInit>(key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    <M as Mac>::new_from_slice(key).is_ok_and(|mut mac| {
        mac.update(message);
        mac.verify_slice(signature).is_ok()
    })
}

/// Constant-time equality of two secrets of any length (hashing hides the length too).
fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    Sha256::digest(a).ct_eq(&Sha256::digest(b)).into()
}

/// Decodes hex in either case; `None` if any character is not a hex digit or the length is odd.
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod test_support {
    use super::*;

    /// An owned request so tests can tweak one part at a time.
    #[derive(Debug, Clone)]
    pub struct Req {
        pub method: String,
        pub url: String,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Req {
        pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Self {
            Req {
                method: "POST".into(),
                url: url.into(),
                headers: headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
                body: body.to_vec(),
            }
        }

        pub fn set_header(&mut self, name: &str, value: &str) {
            self.headers.retain(|(n, _)| n != name);
            self.headers.push((name.into(), value.into()));
        }

        pub fn remove_header(&mut self, name: &str) {
            self.headers.retain(|(n, _)| n != name);
        }

        pub fn verify(
            &self,
            provider: Provider,
            secrets: &[&str],
            now_unix_ms: i64,
        ) -> Result<Verified, Rejection> {
            self.verify_with(provider, secrets, now_unix_ms, None, None)
        }

        pub fn verify_with(
            &self,
            provider: Provider,
            secrets: &[&str],
            now_unix_ms: i64,
            public_base_url: Option<&str>,
            vapi_plan: Option<&HmacPlan>,
        ) -> Result<Verified, Rejection> {
            let secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
            let req = InboundRequest {
                method: &self.method,
                url: &self.url,
                headers: &self.headers,
                body: &self.body,
            };
            let opts = VerifyOptions {
                secrets: &secrets,
                tolerance_secs: 300,
                now_unix_ms,
                public_base_url,
                vapi_plan,
            };
            verify(provider, &req, &opts)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::Req;
    use super::*;

    #[test]
    fn no_secret_is_a_configuration_error_for_every_provider() {
        let req = Req::post("https://example.com/webhooks/x", &[], b"{}");
        for provider in Provider::ALL {
            let err = req.verify(provider, &[], 0).unwrap_err();
            assert_eq!(err, Rejection::NotConfigured, "{provider:?}");
            assert!(err.is_configuration_error());
        }
    }

    #[test]
    fn an_empty_secret_among_others_is_reported_by_index() {
        let req = Req::post("https://example.com/webhooks/x", &[], b"{}");
        let err = req.verify(Provider::Bland, &["good", ""], 0).unwrap_err();
        assert_eq!(
            err,
            Rejection::InvalidSecret {
                index: 1,
                reason: "empty"
            }
        );
    }

    #[test]
    fn headers_are_found_case_insensitively() {
        let headers = vec![("X-Webhook-Signature".to_string(), "ab".to_string())];
        let req = InboundRequest {
            method: "POST",
            url: "https://example.com/",
            headers: &headers,
            body: b"",
        };
        assert_eq!(header(&req, "x-webhook-signature"), Some("ab"));
        assert_eq!(header(&req, "x-other"), None);
    }

    #[test]
    fn window_is_inclusive_and_reports_skew() {
        assert_eq!(check_window(1000, 1300, 300, 1000), Ok(()));
        assert_eq!(check_window(1000, 700, 300, 1000), Ok(()));
        assert_eq!(
            check_window(1000, 1301, 300, 1000),
            Err(Rejection::TimestampOutOfWindow { skew_ms: 301_000 })
        );
        assert_eq!(
            check_window(1000, 699, 300, 1000),
            Err(Rejection::TimestampOutOfWindow { skew_ms: -301_000 })
        );
        assert!(check_window(i64::MIN, i64::MAX, u64::MAX, 1000).is_ok());
        assert_eq!(
            check_window(i64::MIN, i64::MAX, 0, 1000),
            Err(Rejection::TimestampOutOfWindow { skew_ms: i64::MAX })
        );
    }

    #[test]
    fn hex_decodes_both_cases_and_rejects_junk() {
        assert_eq!(decode_hex("0aFf"), Some(vec![0x0a, 0xff]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex(""), Some(vec![]));
    }

    #[test]
    fn secret_eq_compares_content() {
        assert!(secret_eq(b"token", b"token"));
        assert!(!secret_eq(b"token", b"token2"));
        assert!(!secret_eq(b"token", b"tokeN"));
    }
}
