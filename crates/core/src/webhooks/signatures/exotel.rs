//! Exotel does not sign requests: its callback URLs carry `?token=<EXOTEL_WEBHOOK_TOKEN>`,
//! compared in constant time (docs/protocols.md §1.8).

use super::{
    check_header_len, query_param, secret_eq, InboundRequest, Rejection, Verified, VerifyOptions,
};

const TOKEN_PARAM: &str = "token";

pub(super) fn verify(req: &InboundRequest, opts: &VerifyOptions) -> Result<Verified, Rejection> {
    let token =
        query_param(req.url, TOKEN_PARAM).ok_or(Rejection::MissingQueryParam(TOKEN_PARAM))?;
    check_header_len(TOKEN_PARAM, &token)?;
    let secret_index = opts
        .secrets
        .iter()
        .position(|secret| secret_eq(secret.as_bytes(), token.as_bytes()))
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

    const TOKEN: &str = "tok_9f8e7d6c5b4a";

    fn check(url: &str, tokens: &[&str]) -> Result<Verified, Rejection> {
        Req::post(url, &[], b"CallSid=CA1&Status=completed").verify(Provider::Exotel, tokens, 0)
    }

    #[test]
    fn ex1_matching_token_is_accepted() {
        let v = check(
            "https://example.com/webhooks/exotel?token=tok_9f8e7d6c5b4a",
            &[TOKEN],
        );
        assert_eq!(v.unwrap().secret_index, 0);
    }

    #[test]
    fn ex2_wrong_token_is_rejected() {
        for url in [
            "https://example.com/webhooks/exotel?token=tok_9f8e7d6c5b4b",
            "https://example.com/webhooks/exotel?token=tok_9f8e7d6c5b4",
            "https://example.com/webhooks/exotel?token=",
        ] {
            assert_eq!(
                check(url, &[TOKEN]),
                Err(Rejection::NoMatchingSignature),
                "{url}"
            );
        }
    }

    #[test]
    fn ex3_missing_token_is_rejected() {
        for url in [
            "https://example.com/webhooks/exotel",
            "https://example.com/webhooks/exotel?tokens=tok_9f8e7d6c5b4a",
            "https://example.com/webhooks/exotel#token=tok_9f8e7d6c5b4a",
        ] {
            assert_eq!(
                check(url, &[TOKEN]),
                Err(Rejection::MissingQueryParam(TOKEN_PARAM)),
                "{url}"
            );
        }
    }

    #[test]
    fn token_is_percent_decoded_and_found_among_other_params() {
        let url = "https://example.com/webhooks/exotel?call=1&token=a%2Bb%20c&x=2";
        assert!(check(url, &["a+b c"]).is_ok());
    }

    #[test]
    fn rotation_accepts_old_and_new_token() {
        let url = "https://example.com/webhooks/exotel?token=tok_9f8e7d6c5b4a";
        assert_eq!(check(url, &["new", TOKEN]).unwrap().secret_index, 1);
    }
}
