//! `/api/v1/calls/{id}/session`, `/transcript` and `/live`: what the call's Durable Object has
//! recorded, the stored transcript, and the live view it streams.

use crate::live::media::{session_stub, valid_call_id};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, ApiError, ApiResult};
use crate::store::calls;
use crate::store::tenant::Tenant;
use crate::store::transcripts;
use serde_json::{json, Value};
use worker::Request;

/// 404 unless the call exists and belongs to the caller's tenant.
pub(crate) async fn own_call(
    app: &App,
    who: &Principal,
    call_id: &str,
) -> std::result::Result<(), ApiError> {
    valid_call_id(call_id)?;
    if calls::exists(&Tenant::of(app, who)?, call_id).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no call {call_id}")))
    }
}

/// `GET /api/v1/calls/{id}/session`: what the call's Durable Object has recorded.
pub async fn state(app: &App, who: &Principal, call_id: &str) -> ApiResult {
    own_call(app, who, call_id).await?;
    let mut response = session_stub(app, call_id)?
        .fetch_with_str("https://call-session/state")
        .await?;
    let body: Value = response.json().await?;
    if body.get("call_id").is_none() {
        return Err(ApiError::not_found(format!(
            "no media session recorded for call {call_id}"
        )));
    }
    Ok(json_response(200, &body))
}

/// `GET /api/v1/calls/{id}/transcript`: the stored transcript (`{call_id, turns, text}`).
pub async fn transcript_of(app: &App, who: &Principal, call_id: &str) -> ApiResult {
    own_call(app, who, call_id).await?;
    let row = transcripts::get(&Tenant::of(app, who)?, call_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no transcript for call {call_id}")))?;
    Ok(json_response(
        200,
        &json!({"call_id": call_id, "text": row.text,
            "turns": serde_json::from_str::<Value>(&row.turns).unwrap_or(Value::Null),
            "created_at": crate::platform::http::rfc3339(row.created_at)}),
    ))
}

/// `GET /api/v1/calls/{id}/live`: a WebSocket on the call's Durable Object streaming transcript
/// lines, state changes and per-turn metrics as JSON (see `public/js/pages/live.js`).
pub async fn live_view(req: Request, app: &App, who: &Principal, call_id: &str) -> ApiResult {
    crate::platform::http::require_websocket(&req, "the live view")?;
    own_call(app, who, call_id).await?;
    Ok(session_stub(app, call_id)?.fetch_with_request(req).await?)
}
