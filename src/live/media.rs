//! `GET /media/{carrier}/{call_id}`: hands the carrier's WebSocket upgrade to the call's
//! Durable Object, so all of a call's live state lives in one single-threaded place. What needs
//! no call is checked here first: the upgrade's signature where the carrier signs it (Twilio),
//! the URL token's presence where it carries one.

use crate::platform::app::App;
use crate::platform::http::{known_carrier, rejection_error, require_websocket};
use crate::platform::http::{log_line, ApiError, ApiResult};
use phone_agent_core::media::access::{require_url_token, verify_signed_upgrade};
use serde_json::json;
use worker::Request;

/// Forwards the upgrade to the `CallSession` named by the call id.
pub async fn connect(req: Request, app: &App, carrier: &str, call_id: &str) -> ApiResult {
    let carrier = known_carrier(carrier)?;
    valid_call_id(call_id)?;
    require_websocket(&req, "this route")?;
    let url = req.url()?;
    let url_token = url
        .query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
    require_url_token(carrier, url_token.as_deref())?;
    if let Some(signer) = carrier.upgrade_signer() {
        let config = app.config()?;
        let headers: Vec<(String, String)> = req.headers().entries().collect();
        verify_signed_upgrade(carrier, url.as_str(), &headers, config).map_err(|rejection| {
            log_line(json!({"level": "warn", "msg": "media upgrade rejected",
                "carrier": carrier, "reason": rejection.to_string()}));
            rejection_error(signer, &rejection)
        })?;
    }
    Ok(session_stub(app, call_id)?.fetch_with_request(req).await?)
}

/// The Durable Object stub of one call.
pub fn session_stub(app: &App, call_id: &str) -> Result<worker::Stub, ApiError> {
    let namespace = app.env.durable_object("CALL_SESSION")?;
    Ok(namespace.id_from_name(call_id)?.get_stub()?)
}

/// Call ids are ours (`call_…`) or a carrier's; either way short and URL-safe.
pub fn valid_call_id(call_id: &str) -> Result<(), ApiError> {
    let ok = !call_id.is_empty()
        && call_id.len() <= 128
        && call_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            "invalid_call_id",
            "call id must be 1-128 characters of [A-Za-z0-9_-]",
        ))
    }
}
