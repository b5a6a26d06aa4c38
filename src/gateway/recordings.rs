//! `POST /voice/{carrier}/recording` (the carrier's recording-status callback, verified like
//! its status callbacks: it queues the job that copies the audio into R2) and
//! `GET /api/v1/calls/{id}/recording?expires=&sig=` (the stored audio, through a short-lived
//! link signed by the server: no API key in a URL).

use crate::gateway::webhooks::verify_request;
use crate::platform::alarm;
use crate::platform::app::App;
use crate::platform::http::{json_response, new_id, now_ms, read_body, ApiError, ApiResult};
use crate::store::calls;
use crate::store::recordings::{self, NewRecording};
use phone_agent_core::carrier::Carrier;
use phone_agent_core::ids::RecordingId;
use phone_agent_core::limits::WEBHOOK_BODY_LIMIT;
use phone_agent_core::recording::{media_url, twilio_notice, verify_link, NoticeError};
use phone_agent_core::scheduling::CallProvider;
use phone_agent_core::webhooks::callback::CallbackKey;
use serde_json::json;
use worker::{Request, Response};

/// Receives one recording-status callback.
pub async fn receive(mut req: Request, app: &App, carrier: Carrier) -> ApiResult {
    let config = app.config()?;
    let body = read_body(&mut req, WEBHOOK_BODY_LIMIT).await?;
    let headers: Vec<(String, String)> = req.headers().entries().collect();
    let url = req.url()?;
    let now = now_ms();
    verify_request(
        config,
        carrier.webhook_provider(),
        url.as_str(),
        &headers,
        &body,
        now,
    )?;
    if carrier != Carrier::Twilio {
        return Err(ApiError::new(
            404,
            "not_found",
            format!(
                "{} reports recordings to its call webhook",
                carrier.as_str()
            ),
        ));
    }
    let notice = match twilio_notice(&body) {
        Ok(notice) => notice,
        // Only a completed recording has audio; other statuses are acknowledged and dropped.
        Err(NoticeError::NotCompleted(status)) => {
            return Ok(json_response(
                200,
                &json!({"received": true, "queued": false, "status": status}),
            ))
        }
        Err(e) => return Err(ApiError::new(400, "invalid_payload", e.to_string())),
    };
    let account = config
        .providers
        .twilio_account_sid
        .as_deref()
        .ok_or_else(|| {
            ApiError::new(
                503,
                "provider_not_configured",
                "TWILIO_ACCOUNT_SID is not set",
            )
        })?;
    let media = media_url(
        &config.providers.twilio_api_url,
        account,
        &notice.recording_url,
    )
    .map_err(|e| ApiError::new(400, "invalid_payload", e.to_string()))?;
    let db = app.db()?;
    let call =
        calls::by_provider_call_id_unscoped(&db, CallProvider::Twilio, &notice.provider_call_id)
            .await?
            .ok_or_else(|| ApiError::not_found("no call has this CallSid"))?;
    let id = new_id::<RecordingId>()?;
    let queued = recordings::queue(
        &db,
        &NewRecording {
            id: id.clone(),
            tenant_id: call.tenant_id.as_str(),
            call_id: call.id.as_str(),
            provider: carrier.as_str(),
            provider_recording_id: &notice.provider_recording_id,
            media_url: &media,
            duration_seconds: notice.duration_secs,
            refused: None,
            now,
        },
    )
    .await?;
    if queued {
        let env = app.env.clone();
        app.ctx.wait_until(async move {
            alarm::wake_at(&env, now).await;
        });
    }
    app.log_field("call_id", call.id.as_str());
    app.log_field("recording", notice.provider_recording_id.as_str());
    Ok(json_response(
        200,
        &json!({"received": true, "queued": queued}),
    ))
}

/// Serves a call's stored recording to whoever holds a valid link: 403 for a forged one, 410
/// once it has expired, 404 while nothing is stored.
pub async fn download(req: Request, app: &App, call_id: &str) -> ApiResult {
    let config = app.config()?;
    let url = req.url()?;
    let query = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let key = CallbackKey::for_config(config);
    verify_link(
        key.as_ref(),
        call_id,
        query("expires").as_deref(),
        query("sig").as_deref(),
        now_ms().div_euclid(1000),
    )?;
    let db = app.db()?;
    let stored = recordings::stored_for_call_unscoped(&db, call_id)
        .await?
        .ok_or_else(|| ApiError::not_found("this call has no stored recording"))?;
    let bucket = app.env.bucket("RECORDINGS").map_err(ApiError::internal)?;
    let object = bucket
        .get(stored.r2_key.as_str())
        .execute()
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("the recording is no longer stored"))?;
    let body = object
        .body()
        .ok_or_else(|| ApiError::internal("stored recording has no body"))?
        .response_body()
        .map_err(ApiError::internal)?;
    let response = Response::from_body(body).map_err(ApiError::internal)?;
    let headers = worker::Headers::new();
    headers.set("content-type", &stored.content_type)?;
    headers.set("content-length", &stored.size_bytes.to_string())?;
    headers.set("cache-control", "private, no-store")?;
    headers.set(
        "content-disposition",
        &format!("attachment; filename=\"{call_id}.mp3\""),
    )?;
    Ok(response.with_headers(headers))
}
