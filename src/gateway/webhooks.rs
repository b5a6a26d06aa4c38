//! `POST /webhooks/{provider}` and `POST /voice/{carrier}/status`: verify on the raw body →
//! map to a canonical event → dedupe + persist (D1) → acknowledge → forward after the ack.

use crate::pipeline::call_status::{self, Change};
use crate::pipeline::forwarding::{self, NewEvent, Published};
use crate::platform::alarm;
use crate::platform::app::App;
use crate::platform::http::{
    json_response, log_line, new_id, now_ms, read_body, rejection_error, rfc3339, ApiError,
    ApiResult,
};
use crate::store::calls::{self, Call};
use crate::store::recordings::{self, NewRecording};
use phone_agent_core::config::Config;
use phone_agent_core::ids::{EventId, RecordingId};
use phone_agent_core::limits::WEBHOOK_BODY_LIMIT;
use phone_agent_core::recording::{telnyx_media_url, telnyx_notice};
use phone_agent_core::scheduling::dispatch::callback_attempt;
use phone_agent_core::scheduling::CallProvider;
use phone_agent_core::webhooks::callback::{verify_query, CallbackError, CallbackKey, CallbackRef};
use phone_agent_core::webhooks::canonical::{envelope, map_event, CanonicalEvent, Mapped};
use phone_agent_core::webhooks::signatures::{verify, InboundRequest, VerifyOptions};
use phone_agent_core::webhooks::Provider;
use serde_json::json;
use worker::d1::D1Database;
use worker::Request;

/// Tenant of events that cannot be tied to a call (until numbers/endpoints carry tenants).
const DEFAULT_TENANT: &str = "ten_default";

/// Receives one provider webhook.
pub async fn receive(mut req: Request, app: &App, provider: Provider) -> ApiResult {
    let config = app.config()?;
    let content_type = req.headers().get("content-type")?;
    let body = read_body(&mut req, WEBHOOK_BODY_LIMIT).await?;
    check_content_type(provider, content_type.as_deref(), body.is_empty())?;

    let headers: Vec<(String, String)> = req.headers().entries().collect();
    let url = req.url()?;
    let now = now_ms();
    verify_request(config, provider, url.as_str(), &headers, &body, now)?;

    let Mapped { event, original } =
        map_event(provider, &headers, url.query().unwrap_or(""), &body).map_err(|e| {
            ApiError::new(
                400,
                "invalid_payload",
                format!("cannot read this {} event: {e}", provider.as_str()),
            )
        })?;

    let db = app.db()?;
    // Our URLs name the call (and attempt) with a MAC; the payload may name it too.
    let query = url.query().unwrap_or("");
    let signed = signed_call(config, query, now);
    let call = resolve_call(&db, provider, &event, signed.as_ref()).await?;
    let tenant_id = call
        .as_ref()
        .map_or(DEFAULT_TENANT, |c| c.tenant_id.as_str());
    let call_id = call.as_ref().map(|c| c.id.as_str());
    let payload = envelope(&event, provider, call_id, &rfc3339(now), original);
    let raw_body = String::from_utf8_lossy(&body);
    let published = forwarding::publish(
        &db,
        &NewEvent {
            tenant_id,
            provider: provider.as_str(),
            provider_event_id: &event.provider_event_id,
            event_type: &event.event_type,
            call_id,
            received_at: now,
            content_type: content_type.as_deref(),
            raw_body: &raw_body,
            payload: &payload,
        },
        &new_id::<EventId>()?,
    )
    .await?;

    // Only a new event changes a call: a duplicate (a provider retry or a replay) never moves
    // a call, attaches a provider id or triggers a retry.
    if let (Published::New(..), Some(call)) = (&published, &call) {
        if call.provider.as_str() == provider.as_str() {
            // Read only for an event that moves its call: reading the body's attempt parses
            // the whole body again, which every other event (all of Resend's) can skip.
            let attempt = match &signed {
                Some(named) => Some(i64::from(named.attempt)),
                // An unsigned query `attempt` is not believed either: only the signed body's.
                None => callback_attempt("", &body).map(i64::from),
            };
            if let Some(provider_call_id) = &event.provider_call_id {
                // First callback tells us the provider's id for this call (and attempt).
                calls::attach_provider_call_id(&db, &call.id, provider_call_id, attempt).await?;
            }
            if let Some(status) = event.call_status {
                let detail = json!({"event_type": event.event_type,
                                    "provider_event_id": event.provider_event_id});
                let source = format!("webhook:{}", provider.as_str());
                let change = Change {
                    to: status,
                    source: &source,
                    detail,
                    attempt,
                    due_by: None,
                    // The provider's event itself is the canonical call.* event forwarded above.
                    emit: false,
                };
                call_status::apply(&app.env, &db, call.id.as_str(), &change, now).await?;
            }
        }
    }

    // A Telnyx recording (Call Control reports it to the call's webhook, not to a callback of
    // its own) queues the job that copies it into R2; a replayed webhook queues nothing.
    let recording = match (&published, &call) {
        (Published::New(..), Some(call))
            if provider == Provider::Telnyx
                && call.provider.as_str() == provider.as_str()
                && event.event_type == "telnyx.call.recording.saved" =>
        {
            Some(queue_telnyx_recording(app, &db, config, call, &body, now).await?)
        }
        _ => None,
    };

    let (event_id, duplicate) = match published {
        Published::New(id, deliveries) => {
            // No endpoint wants it: nothing to send, so no work after the ack either.
            if deliveries > 0 {
                let env = app.env.clone();
                let first_attempt_of = id.clone();
                app.ctx.wait_until(async move {
                    forwarding::deliver_event(&env, &first_attempt_of).await;
                });
            }
            (id, false)
        }
        Published::Duplicate(id) => (id, true),
    };
    // On the request's own log line: one line per webhook (each line has a cost per request).
    app.log_field("provider", provider.as_str());
    app.log_field("event_id", event_id.as_str());
    app.log_field("type", event.event_type.as_str());
    app.log_field("duplicate", duplicate);
    if let Some(call_id) = call_id {
        app.log_field("call_id", call_id);
    }
    let mut answer = json!({"received": true, "id": event_id, "type": event.event_type,
        "duplicate": duplicate});
    if let Some(recording) = recording {
        answer["recording"] = recording;
    }
    Ok(json_response(200, &answer))
}

/// Queues the storage job of a Telnyx `call.recording.saved` for `call`. A URL outside the
/// API's and the storage origins is never fetched: the row is queued `dead` with the reason, so
/// the refusal is on record (the event itself is stored and forwarded like any other).
async fn queue_telnyx_recording(
    app: &App,
    db: &D1Database,
    config: &Config,
    call: &Call,
    body: &[u8],
    now: i64,
) -> Result<serde_json::Value, ApiError> {
    let notice =
        telnyx_notice(body).map_err(|e| ApiError::new(400, "invalid_payload", e.to_string()))?;
    let checked = telnyx_media_url(
        &config.providers.telnyx_api_url,
        &config.telnyx_recording_origins,
        &notice.recording_url,
    );
    let refused = checked.as_ref().err().map(ToString::to_string);
    let media: String = match &checked {
        Ok((url, _)) => url.clone(),
        // Kept for the record, bounded: it is never fetched.
        Err(_) => notice.recording_url.chars().take(500).collect(),
    };
    let queued = recordings::queue(
        db,
        &NewRecording {
            id: new_id::<RecordingId>()?,
            tenant_id: call.tenant_id.as_str(),
            call_id: call.id.as_str(),
            provider: Provider::Telnyx.as_str(),
            provider_recording_id: &notice.provider_recording_id,
            media_url: &media,
            duration_seconds: notice.duration_secs,
            refused: refused.as_deref(),
            now,
        },
    )
    .await?;
    if queued && refused.is_none() {
        let env = app.env.clone();
        app.ctx.wait_until(async move {
            alarm::wake_at(&env, now).await;
        });
    }
    if let Some(reason) = &refused {
        log_line(
            json!({"level": "warn", "msg": "recording refused", "call_id": call.id,
            "provider": "telnyx", "reason": reason}),
        );
    }
    Ok(json!({"queued": queued && refused.is_none(), "refused": refused}))
}

/// Providers send JSON, except the form-encoded callbacks of Twilio-style carriers.
fn check_content_type(
    provider: Provider,
    content_type: Option<&str>,
    empty: bool,
) -> Result<(), ApiError> {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    let is_json = media
        .as_deref()
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
    let is_form = media.as_deref() == Some("application/x-www-form-urlencoded");
    let accepted = match provider {
        Provider::Twilio | Provider::Telnyx => is_json || is_form,
        // Exotel passes everything in the query string on some applets.
        Provider::Exotel => is_json || is_form || empty,
        _ => is_json,
    };
    if accepted {
        Ok(())
    } else {
        let expected = match provider {
            Provider::Twilio | Provider::Telnyx | Provider::Exotel => {
                "application/x-www-form-urlencoded or application/json"
            }
            _ => "application/json",
        };
        Err(ApiError::new(
            415,
            "unsupported_media_type",
            format!("{} webhooks must be {expected}", provider.as_str()),
        ))
    }
}

/// Verifies a request with `provider`'s scheme (401 on a bad signature, 503 when unconfigured);
/// shared by provider webhooks and the carriers' incoming-call webhooks.
pub fn verify_request(
    config: &Config,
    provider: Provider,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    now: i64,
) -> Result<(), ApiError> {
    let secrets = &config.secrets;
    let provider_secrets = match provider {
        Provider::Resend => &secrets.resend,
        Provider::Twilio => &secrets.twilio,
        Provider::Telnyx => &secrets.telnyx,
        Provider::Bland => &secrets.bland,
        Provider::Retell => &secrets.retell,
        Provider::Vapi => &secrets.vapi,
        Provider::Exotel => &secrets.exotel,
        Provider::Standard => &secrets.standard,
    };
    let request = InboundRequest {
        method: "POST",
        url,
        headers,
        body,
    };
    let options = VerifyOptions {
        secrets: provider_secrets,
        tolerance_secs: config.tolerances.for_provider(provider.as_str()),
        now_unix_ms: now,
        public_base_url: config.public_base_url.as_deref(),
        vapi_plan: None,
    };
    verify(provider, &request, &options)
        .map(|_| ())
        .map_err(|rejection| {
            // The reason is logged for the operator; no secret ever appears in it.
            log_line(
                json!({"level": "warn", "msg": "webhook rejected", "provider": provider.as_str(),
            "reason": rejection.to_string()}),
            );
            rejection_error(provider, &rejection)
        })
}

/// The call our callback URL names, when its MAC is ours and current; an unsigned, forged or
/// expired `call_id` names nothing (logged, the event is still stored and forwarded).
pub fn signed_call(config: &Config, query: &str, now_ms: i64) -> Option<CallbackRef> {
    let key = CallbackKey::for_config(config);
    match verify_query(key.as_ref(), query, now_ms.div_euclid(1000)) {
        Ok(named) => Some(named),
        Err(CallbackError::NoCallId) => None,
        Err(e) => {
            log_line(json!({"level": "warn", "msg": "callback call_id ignored",
                            "reason": e.to_string()}));
            None
        }
    }
}

/// The call an event is about, read only. Named by our signed URL, else by the signed payload
/// (metadata, `client_state`), else by the provider's call id — always within the provider's
/// own calls, so one provider's event never names another's call (Resend's e-mail events
/// are linked to the call their tag names, but never move it: their provider never matches).
async fn resolve_call(
    db: &D1Database,
    provider: Provider,
    event: &CanonicalEvent,
    signed: Option<&CallbackRef>,
) -> Result<Option<Call>, ApiError> {
    let named = signed
        .map(|s| s.call_id.as_str())
        .or(event.our_call_id.as_deref());
    if let Some(our_id) = named {
        let found = calls::get_unscoped(db, our_id)
            .await?
            .filter(|c| provider == Provider::Resend || c.provider.as_str() == provider.as_str());
        if found.is_some() {
            return Ok(found);
        }
    }
    // Only a provider that carries calls can know one by its own id.
    match (
        &event.provider_call_id,
        CallProvider::parse(provider.as_str()),
    ) {
        (Some(provider_call_id), Some(carrier)) => {
            Ok(calls::by_provider_call_id_unscoped(db, carrier, provider_call_id).await?)
        }
        _ => Ok(None),
    }
}
