//! A call's recording for API keys: `GET /api/v1/calls/{id}/recording/transcript` (the stored
//! recording's transcript, beside the live one at `/transcript`) and
//! `POST /api/v1/calls/{id}/recording/link` (a fresh signed download link: the one in an old
//! `call.recording.ready` may have expired). Any role that may read the call may listen to it,
//! as it may read its transcript.

use crate::api::sessions::own_call;
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, now_ms, rfc3339, ApiError, ApiResult};
use crate::scheduling::recordings::download_link;
use crate::store::recordings::{self, CallRecording};
use crate::store::tenant::Tenant;
use serde_json::{json, Value};

/// The tenant's call's stored recording, or 404.
async fn recording_of(
    app: &App,
    who: &Principal,
    call_id: &str,
) -> Result<CallRecording, ApiError> {
    own_call(app, who, call_id).await?;
    recordings::latest_of_call(&Tenant::of(app, who)?, call_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("call {call_id} has no stored recording")))
}

/// `GET /api/v1/calls/{id}/recording/transcript`: the recording's transcription, with its
/// status (`none` when the agent asked for none, `pending`, `done`, `failed`; `deleted` once
/// retention removed the recording and its transcript).
pub async fn transcript(app: &App, who: &Principal, call_id: &str) -> ApiResult {
    let r = recording_of(app, who, call_id).await?;
    let status = if r.status == "deleted" {
        "deleted"
    } else {
        r.transcription_status.as_deref().unwrap_or("none")
    };
    let t: Value = r
        .transcript
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null);
    Ok(json_response(
        200,
        &json!({"call_id": call_id, "recording_id": r.id, "status": status,
            "provider": r.transcription, "model": t.get("model").cloned().or(r.transcription_model.map(Value::from)),
            "text": t.get("text"), "utterances": t.get("utterances"),
            "error": r.transcription_error, "recorded_at": rfc3339(r.created_at),
            "transcribed_at": r.transcribed_at.map(rfc3339)}),
    ))
}

/// `POST /api/v1/calls/{id}/recording/link`: a new signed link to the stored recording, valid
/// one hour; 404 once retention deleted it, 503 without a signing key.
pub async fn link(app: &App, who: &Principal, call_id: &str) -> ApiResult {
    let r = recording_of(app, who, call_id).await?;
    if r.status != "stored" {
        return Err(ApiError::not_found(format!(
            "the recording of call {call_id} was deleted (retention)"
        )));
    }
    let (url, expires) = download_link(app.config()?, call_id, now_ms()).ok_or_else(|| {
        ApiError::new(
            503,
            "not_configured",
            "recording links need CALLBACK_SIGNING_KEY or ADMIN_API_KEY",
        )
    })?;
    Ok(json_response(
        201,
        &json!({"call_id": call_id, "recording_id": r.id, "url": url, "expires_at": expires,
            "content_type": r.content_type, "size_bytes": r.size_bytes,
            "duration_seconds": r.duration_seconds}),
    ))
}
