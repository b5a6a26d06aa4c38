//! Twilio `X-Twilio-Signature`: base64 HMAC-SHA1 over the URL plus the sorted POST parameters
//! (docs/protocols.md §1.3). The URL Twilio signed is rarely the one we see, so several spellings of
//! it are tried; a JSON body is covered by a `bodySHA256` query parameter instead.

use super::{
    bounded_header, decode_hex, header, hmac_matches, query_param, InboundRequest, Rejection,
    Verified, VerifyOptions,
};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::Hmac;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use subtle::ConstantTimeEq;

const SIGNATURE_HEADER: &str = "x-twilio-signature";
/// Length of an HMAC-SHA1.
const SHA1_LEN: usize = 20;

pub(super) fn verify(req: &InboundRequest, opts: &VerifyOptions) -> Result<Verified, Rejection> {
    let signature = bounded_header(req, SIGNATURE_HEADER)?;
    let signature = BASE64
        .decode(signature)
        .map_err(|_| Rejection::MalformedHeader(SIGNATURE_HEADER, "not base64".into()))?;
    // Work is (URL spellings ≤ 18) × secrets HMACs; a signature that cannot match buys none.
    if signature.len() != SHA1_LEN {
        return Err(Rejection::MalformedHeader(
            SIGNATURE_HEADER,
            "not a 20-byte HMAC-SHA1".into(),
        ));
    }
    let params = signed_params(req)?;
    let candidates = candidate_urls(req.url, opts.public_base_url);
    for (secret_index, secret) in opts.secrets.iter().enumerate() {
        for url in &candidates {
            let data = format!("{url}{params}");
            if hmac_matches::<Hmac<Sha1>>(secret.as_bytes(), data.as_bytes(), &signature) {
                return Ok(Verified {
                    secret_index,
                    timestamp: None,
                    message_id: None,
                });
            }
        }
    }
    Err(Rejection::NoMatchingSignature)
}

/// The parameter part of the signed string: `name value` pairs of a form body, sorted by name
/// then value with duplicate values dropped; empty for GET and for JSON bodies, whose hash
/// must then match the URL's `bodySHA256`.
fn signed_params(req: &InboundRequest) -> Result<String, Rejection> {
    if req.body.is_empty() {
        return Ok(String::new());
    }
    if !is_form(req) {
        let expected =
            query_param(req.url, "bodySHA256").ok_or(Rejection::MissingQueryParam("bodySHA256"))?;
        return if body_hash_matches(req.body, &expected) {
            Ok(String::new())
        } else {
            Err(Rejection::BodyHashMismatch)
        };
    }
    let mut params: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, value) in url::form_urlencoded::parse(req.body) {
        params
            .entry(name.into_owned())
            .or_default()
            .insert(value.into_owned());
    }
    Ok(params
        .iter()
        .flat_map(|(name, values)| values.iter().map(move |value| format!("{name}{value}")))
        .collect())
}

fn is_form(req: &InboundRequest) -> bool {
    header(req, "content-type").is_some_and(|ct| {
        ct.split(';').next().is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    })
}

/// Whether `hex_sha256` (Twilio's `bodySHA256`) is the SHA-256 of `body`.
fn body_hash_matches(body: &[u8], hex_sha256: &str) -> bool {
    decode_hex(hex_sha256).is_some_and(|expected| Sha256::digest(body).ct_eq(&expected).into())
}

/// Every spelling of the URL Twilio may have signed, without duplicates: the public base URL
/// with the received path and query, and the received URL, each with the port as is, removed
/// and set to the default, each with `'` as is, decoded from `%27` and encoded to `%27`.
fn candidate_urls(received: &str, public_base_url: Option<&str>) -> Vec<String> {
    let rebuilt = public_base_url.map(|base| {
        let base = base.trim_end_matches('/');
        format!("{base}{}", path_and_query(received))
    });
    let mut candidates: Vec<String> = Vec::new();
    for url in rebuilt.iter().map(String::as_str).chain([received]) {
        for with_port in port_variants(url) {
            for quoted in [
                with_port.clone(),
                with_port.replace("%27", "'"),
                with_port.replace('\'', "%27"),
            ] {
                if !candidates.contains(&quoted) {
                    candidates.push(quoted);
                }
            }
        }
    }
    candidates
}

/// A URL cut into the pieces the port variants need, without re-encoding anything.
struct UrlParts<'u> {
    scheme: &'u str,
    /// `user:pass@` including the `@`, or empty.
    userinfo: &'u str,
    host: &'u str,
    /// Path, query and fragment, from the first `/`, `?` or `#` after the authority.
    rest: &'u str,
}

fn split_url(url: &str) -> Option<UrlParts<'_>> {
    let (scheme, after) = url.split_once("://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    let host = match host_port.rsplit_once(':') {
        // An IPv6 literal ends with `]`; its colons are not a port separator.
        Some((host, port)) if !port.contains(']') => host,
        _ => host_port,
    };
    Some(UrlParts {
        scheme,
        userinfo,
        host,
        rest,
    })
}

fn path_and_query(url: &str) -> &str {
    split_url(url).map_or("", |parts| parts.rest)
}

/// The URL as is, without its port, and with the scheme's default port.
fn port_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    if let Some(UrlParts {
        scheme,
        userinfo,
        host,
        rest,
    }) = split_url(url)
    {
        variants.push(format!("{scheme}://{userinfo}{host}{rest}"));
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "https" | "wss" => Some(443),
            "http" | "ws" => Some(80),
            _ => None,
        };
        if let Some(port) = default_port {
            variants.push(format!("{scheme}://{userinfo}{host}:{port}{rest}"));
        }
    }
    variants
}

#[cfg(test)]
mod tests {
    use super::super::test_support::Req;
    use super::*;
    use crate::webhooks::Provider;
    use hmac::Mac;
    use proptest::prelude::*;

    const TOKEN: &str = "12345";
    const BASE: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const PARAMS: &str = "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";
    const JSON: &str = r#"{"property": "value", "boolean": true}"#;
    const JSON_SHA: &str = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    const FORM: &str = "application/x-www-form-urlencoded";

    fn form(url: &str, body: &str, signature: Option<&str>) -> Req {
        let mut r = Req::post(url, &[("content-type", FORM)], body.as_bytes());
        if let Some(sig) = signature {
            r.set_header(SIGNATURE_HEADER, sig);
        }
        r
    }

    fn json(url: &str, body: &str, signature: &str) -> Req {
        Req::post(
            url,
            &[
                ("content-type", "application/json"),
                (SIGNATURE_HEADER, signature),
            ],
            body.as_bytes(),
        )
    }

    fn get(url: &str, signature: &str) -> Req {
        let mut r = Req::post(url, &[(SIGNATURE_HEADER, signature)], b"");
        r.method = "GET".into();
        r
    }

    fn check(r: &Req) -> Result<Verified, Rejection> {
        r.verify(Provider::Twilio, &[TOKEN], 0)
    }

    #[test]
    fn tw1_valid() {
        assert!(check(&form(BASE, PARAMS, Some("RSOYDt4T1cUTdK1PDd93/VVr8B8="))).is_ok());
    }

    #[test]
    fn tw1_wrong_token_and_tampered_param() {
        let r = form(BASE, PARAMS, Some("RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert_eq!(
            r.verify(Provider::Twilio, &["54321"], 0),
            Err(Rejection::NoMatchingSignature)
        );
        let tampered = PARAMS.replace("Digits=1234", "Digits=1235");
        let r = form(BASE, &tampered, Some("RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert_eq!(check(&r), Err(Rejection::NoMatchingSignature));
    }

    #[test]
    fn tw2_wrong_signature() {
        assert!(matches!(
            check(&form(BASE, PARAMS, Some("WRONG_SIGNATURE"))),
            Err(Rejection::MalformedHeader(SIGNATURE_HEADER, _))
        ));
        // Well-formed base64 that is simply wrong.
        assert_eq!(
            check(&form(BASE, PARAMS, Some("RSOYDt4T1cUTdK1PDd93/VVr8C8="))),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn a_signature_of_the_wrong_length_costs_no_hmac() {
        // Base64 of 21 bytes: decodes, but no HMAC-SHA1 has that length.
        let sig = BASE64.encode([0u8; 21]);
        assert!(matches!(
            check(&form(BASE, PARAMS, Some(&sig))),
            Err(Rejection::MalformedHeader(SIGNATURE_HEADER, _))
        ));
        let long = "A".repeat(2000);
        assert!(matches!(
            check(&form(BASE, PARAMS, Some(&long))),
            Err(Rejection::HeaderTooLong { .. })
        ));
    }

    #[test]
    fn tw3_header_missing() {
        assert_eq!(
            check(&form(BASE, PARAMS, None)),
            Err(Rejection::MissingHeader(SIGNATURE_HEADER))
        );
    }

    #[test]
    fn tw4_signed_without_the_port_we_see() {
        let url = "https://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert!(check(&form(url, PARAMS, Some("RSOYDt4T1cUTdK1PDd93/VVr8B8="))).is_ok());
    }

    #[test]
    fn tw5_signed_with_a_custom_port() {
        let url = "http://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert!(check(&form(url, PARAMS, Some("Zmvh+3yNM1Phv2jhDCwEM3q5ebU="))).is_ok());
    }

    #[test]
    fn tw6_signed_with_443() {
        assert!(check(&form(BASE, PARAMS, Some("kvajT1Ptam85bY51eRf/AJRuM3w="))).is_ok());
    }

    #[test]
    fn tw7_signed_with_80() {
        let url = "http://mycompany.com/myapp.php?foo=1&bar=2";
        assert!(check(&form(url, PARAMS, Some("0ZXoZLH/DfblKGATFgpif+LLRf4="))).is_ok());
    }

    #[test]
    fn tw8_userinfo() {
        let url = "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2";
        assert!(check(&form(url, PARAMS, Some("CukzLTc1tT5dXEDIHm/tKBanW10="))).is_ok());
    }

    #[test]
    fn tw9_userinfo_signed_with_443() {
        let url = "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2";
        assert!(check(&form(url, PARAMS, Some("ZQFR1PTIZXF2MXB8ZnKCvnnA+rI="))).is_ok());
    }

    #[test]
    fn tw10_user_only() {
        let url = "https://user@mycompany.com/myapp.php?foo=1&bar=2";
        assert!(check(&form(url, PARAMS, Some("2YRLlVAflCqxaNicjMpJcSTgzSs="))).is_ok());
    }

    const QUOTE_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2&Body=It's+amazing";

    #[test]
    fn tw11_signed_with_encoded_quote() {
        assert!(check(&form(
            QUOTE_URL,
            PARAMS,
            Some("TfZzewPq8wqrGlMfyAud8+/IvJ0=")
        ))
        .is_ok());
    }

    #[test]
    fn tw12_signed_with_raw_quote() {
        assert!(check(&form(
            QUOTE_URL,
            PARAMS,
            Some("dsq4Ehbj6cs+KdTkpF5sSSplOWw=")
        ))
        .is_ok());
    }

    #[test]
    fn tw13_multi_valued_param() {
        let body =
            "MessagingBinding.Address=%2B1325xxxxxxx&MessagingBinding.Address=%2B1415xxxxxxx";
        assert!(check(&form(BASE, body, Some("83O6e2vORAoJHUNzJjDWN1jz+BA="))).is_ok());
    }

    #[test]
    fn tw14_multi_valued_param_reversed() {
        let body =
            "MessagingBinding.Address=%2B1415xxxxxxx&MessagingBinding.Address=%2B1325xxxxxxx";
        assert!(check(&form(BASE, body, Some("83O6e2vORAoJHUNzJjDWN1jz+BA="))).is_ok());
    }

    #[test]
    fn tw15_duplicates_removed_and_sorted() {
        let body = "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234";
        let r = form(BASE, body, Some("IK+Dwps556ElfBT0I3Rgjkr1wJU="));
        assert_eq!(
            signed_params(&InboundRequest {
                method: "POST",
                url: BASE,
                headers: &r.headers,
                body: body.as_bytes(),
            }),
            Ok("Digits1234Digits5678SidCA123SidAccountAC123".to_owned())
        );
        assert!(check(&r).is_ok());
    }

    #[test]
    fn tw16_json_body_with_body_sha256() {
        let url = format!("{BASE}&bodySHA256={JSON_SHA}");
        assert!(check(&json(&url, JSON, "a9nBmqA0ju/hNViExpshrM61xv4=")).is_ok());
    }

    #[test]
    fn tw17_json_body_without_body_sha256() {
        let r = json(BASE, JSON, "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert_eq!(check(&r), Err(Rejection::MissingQueryParam("bodySHA256")));
    }

    #[test]
    fn tw18_body_sha256_only_param() {
        let url = format!("https://mycompany.com/myapp.php?bodySHA256={JSON_SHA}");
        assert!(check(&json(&url, JSON, "y77kIzt2vzLz71DgmJGsen2scGs=")).is_ok());
    }

    #[test]
    fn tw19_empty_object_signed_with_443() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        assert!(check(&json(url, "{}", "Ldidvp12m26NI7eqEvxnEpkd9Hc=")).is_ok());
    }

    #[test]
    fn tw20_body_hash_check() {
        assert!(body_hash_matches(JSON.as_bytes(), JSON_SHA));
        assert!(!body_hash_matches(b"{}", JSON_SHA));
        assert!(!body_hash_matches(JSON.as_bytes(), "not hex"));
    }

    #[test]
    fn json_body_not_matching_its_hash_is_rejected() {
        let url = format!("{BASE}&bodySHA256={JSON_SHA}");
        let r = json(
            &url,
            r#"{"property": "value", "boolean": false}"#,
            "a9nBmqA0ju/hNViExpshrM61xv4=",
        );
        assert_eq!(check(&r), Err(Rejection::BodyHashMismatch));
    }

    fn check_td(r: &Req) -> Result<Verified, Rejection> {
        r.verify(Provider::Twilio, &["s3cr3t"], 0)
    }

    #[test]
    fn td1_signed_without_port_received_with_443() {
        let r = get(
            "https://example.com:443/path?test=param",
            "loLgTitFAoWx57yy5oEU4Hlddzw=",
        );
        assert!(check_td(&r).is_ok());
    }

    #[test]
    fn td2_signed_with_443_received_without() {
        let r = get(
            "https://example.com/path?test=param",
            "IdwMFypqvNxti3YgvWWmfcNL26M=",
        );
        assert!(check_td(&r).is_ok());
    }

    #[test]
    fn td3_signed_with_raw_quote_received_encoded() {
        let r = get(
            "https://example.com/path?test=param%27WithQuote",
            "GfI7onHX/KQ2k1oVS3cUTVk4IEw=",
        );
        assert!(check_td(&r).is_ok());
    }

    #[test]
    fn td4_signed_encoded_received_with_raw_quote() {
        let r = get(
            "https://example.com/path?test=param'WithQuote",
            "HkuXLxVQ7zHv9LmGpzlLuGaxhJY=",
        );
        assert!(check_td(&r).is_ok());
    }

    #[test]
    fn td5_other_url() {
        let r = get(
            "https://example.com/path?test=param2",
            "loLgTitFAoWx57yy5oEU4Hlddzw=",
        );
        assert_eq!(check_td(&r), Err(Rejection::NoMatchingSignature));
    }

    fn sign(url: &str, params: &str) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(TOKEN.as_bytes()).unwrap();
        mac.update(format!("{url}{params}").as_bytes());
        BASE64.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn url_rebuilt_from_public_base_url_behind_a_proxy() {
        let public = "https://agent.example.com/webhooks/twilio?source=a%27b";
        let sig = sign(public, "CallSidCA1");
        let r = form(
            "http://127.0.0.1:8787/webhooks/twilio?source=a%27b",
            "CallSid=CA1",
            Some(&sig),
        );
        assert_eq!(check(&r), Err(Rejection::NoMatchingSignature));
        let verified = r.verify_with(
            Provider::Twilio,
            &[TOKEN],
            0,
            Some("https://agent.example.com/"),
            None,
        );
        assert!(verified.is_ok());
    }

    #[test]
    fn rotation_accepts_the_secondary_token() {
        let r = form(BASE, PARAMS, Some("RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        let v = r.verify(Provider::Twilio, &["old", TOKEN], 0).unwrap();
        assert_eq!(v.secret_index, 1);
    }

    #[test]
    fn port_variants_keep_userinfo_and_ipv6() {
        assert_eq!(
            port_variants("https://u:p@h:8443/x?y=1"),
            [
                "https://u:p@h:8443/x?y=1",
                "https://u:p@h/x?y=1",
                "https://u:p@h:443/x?y=1"
            ]
        );
        assert_eq!(
            port_variants("http://[::1]?a"),
            ["http://[::1]?a", "http://[::1]?a", "http://[::1]:80?a"]
        );
        assert_eq!(port_variants("not a url"), ["not a url"]);
    }

    proptest! {
        #[test]
        fn any_body_byte_change_is_rejected(index in any::<prop::sample::Index>(), delta in 1u8..) {
            let url = format!("{BASE}&bodySHA256={JSON_SHA}");
            let mut r = json(&url, JSON, "a9nBmqA0ju/hNViExpshrM61xv4=");
            let i = index.index(r.body.len());
            r.body[i] ^= delta;
            prop_assert_eq!(check(&r), Err(Rejection::BodyHashMismatch));
        }

        #[test]
        fn any_signature_byte_change_is_rejected(index in any::<prop::sample::Index>(), delta in 1u8..) {
            let mut sig = BASE64.decode("RSOYDt4T1cUTdK1PDd93/VVr8B8=").unwrap();
            let i = index.index(sig.len());
            sig[i] ^= delta;
            let r = form(BASE, PARAMS, Some(&BASE64.encode(&sig)));
            prop_assert_eq!(check(&r), Err(Rejection::NoMatchingSignature));
        }
    }
}
