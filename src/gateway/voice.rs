//! `POST /voice/{carrier}/incoming`: a call reaches one of our numbers (or an outbound call we
//! placed is answered). Verify the carrier's request → find the call (ours, `?call_id=`) or the
//! number's agent (KV cache over D1) and create the call → answer with the markup that connects
//! the call's media stream to `/media/{carrier}/{call_id}`, carrying the call's stream token, or
//! that rings the owner first (during the number's business hours; after hours the AI answers
//! directly, with the after-hours agent if the number names one). The owner-first `<Dial>` posts its outcome back here
//! (`?call_id=…` plus `DialCallStatus`), and the AI takes the call only if nobody answered.

use crate::gateway::webhooks::{signed_call, verify_request};
use crate::platform::app::App;
use crate::platform::http::{
    json_response, log_line, new_id, now_ms, read_body, ApiError, ApiResult,
};
use crate::platform::zones::IntlZones;
use crate::store::call_queue::{self, StreamWatch};
use crate::store::calls::{self, Admission, NewCall};
use crate::store::numbers::{self, NumberRoute};
use crate::store::tenant::Tenant;
use crate::store::usage;
use chrono::DateTime;
use phone_agent_core::carrier::Carrier;
use phone_agent_core::config::Config;
use phone_agent_core::hours::{self, Hours};
use phone_agent_core::ids::{AgentId, CallId, TenantId};
use phone_agent_core::limits::WEBHOOK_BODY_LIMIT;
use phone_agent_core::scheduling::{CallProvider, CallStatus, Direction};
use phone_agent_core::usage::{month_start, OverQuota, Quotas, OVER_QUOTA_MESSAGE};
use phone_agent_core::voice::{
    dial_outcome, twiml_dial_owner, Answer, DialOutcome, OWNER_RING_SECONDS,
};
use phone_agent_core::webhooks::callback::{signed_query, CallbackKey, CALLBACK_VALIDITY_SECS};
use serde_json::{json, Value};
use std::collections::HashMap;
use worker::d1::D1Database;
use worker::{Request, Response};

/// How long a number → agent lookup stays cached in KV. The numbers API deletes the entry on
/// change; KV reaches other locations eventually, so the TTL bounds staleness there.
const NUMBER_CACHE_SECONDS: u64 = 60;

/// Handles the incoming-call webhook of `carrier`.
pub async fn incoming(mut req: Request, app: &App, carrier: Carrier) -> ApiResult {
    let config = app.config()?;
    let provider = carrier.webhook_provider();
    let body = read_body(&mut req, WEBHOOK_BODY_LIMIT).await?;
    let headers: Vec<(String, String)> = req.headers().entries().collect();
    let url = req.url()?;
    verify_request(config, provider, url.as_str(), &headers, &body, now_ms())?;
    let params = request_params(&url, &body);
    let base = config
        .public_base_url
        .clone()
        .unwrap_or_else(|| url.origin().ascii_serialization());
    let db = app.db()?;

    let carrier_call_id = params
        .get("CallSid")
        .or_else(|| params.get("call_control_id"))
        .filter(|v| !v.is_empty())
        .cloned();

    // Only our signed URL names a call (an outbound call answering, or the owner-first dial's
    // outcome); an unsigned or forged `call_id` is ignored and the request is a new call.
    let provider = CallProvider::from(carrier);
    if let Some(named) = signed_call(config, url.query().unwrap_or(""), now_ms()) {
        let call_id = calls::of_provider_unscoped(&db, &named.call_id, provider)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no call {}", named.call_id)))?;
        if let Some(status) = params.get("DialCallStatus") {
            if dial_outcome(status) == DialOutcome::OwnerAnswered {
                log_line(
                    json!({"level": "info", "msg": "owner took the call", "call_id": call_id}),
                );
                return markup_hangup(carrier, None);
            }
        }
        if let Some(provider_call_id) = &carrier_call_id {
            let attempt = i64::from(named.attempt);
            calls::attach_provider_call_id(&db, &call_id, provider_call_id, Some(attempt)).await?;
        }
        let token = calls::ensure_token(&db, &call_id).await?;
        call_queue::watch_stream(
            &db,
            &call_id,
            StreamWatch::Expected {
                deadline: stream_deadline(config),
            },
        )
        .await?;
        return answer(carrier.stream_answer(&base, call_id.as_str(), &token));
    }

    let to = first_param(&params, &["To", "Called", "CallTo", "to"]);
    let from = first_param(&params, &["From", "Caller", "CallFrom", "from"]);
    let Some(to) = to else {
        return Err(ApiError::new(
            400,
            "invalid_payload",
            "the request names no called number (To)",
        ));
    };
    let Some(number) = lookup_number(app, &db, &to).await? else {
        log_line(json!({"level": "warn", "msg": "call to an unknown number", "to": to}));
        return markup_hangup(carrier, Some("Sorry, this number is not in service."));
    };
    let now = now_ms();
    let routing = hours::routing(
        number_hours(&number).as_ref(),
        DateTime::from_timestamp_millis(now).unwrap_or_default(),
    );
    let owner = number
        .owner_phone
        .as_deref()
        .filter(|_| number.ring_owner_first && carrier.can_ring_owner_first());
    let plan = hours::plan(
        routing,
        number.agent_id.as_str(),
        number.after_hours_agent_id.as_ref().map(AgentId::as_str),
        owner,
    );
    let id: CallId = new_id()?;
    let agent_id = AgentId::from(plan.agent_id);
    let call = NewCall {
        id: &id,
        agent_id: Some(&agent_id),
        direction: Direction::Inbound,
        provider,
        provider_call_id: carrier_call_id.as_deref(),
        status: CallStatus::Ringing,
        to_number: &to,
        from_number: from.as_deref(),
        start_at: None,
        time_zone: None,
        contact_name: None,
        contact_email: None,
        contact_fields: None,
        metadata: "{}",
        idempotency_key: None,
        request_hash: None,
        base_url: None,
        now,
    };
    let tenant = Tenant::on(&db, TenantId::from(number.tenant_id.as_str()));
    let mut detail = routing.to_json();
    detail["agent_id"] = json!(plan.agent_id);
    detail["ring_owner_first"] = json!(plan.ring_owner.is_some());
    let now = now_ms();
    let standing = usage::standing(&tenant, &month_start(now)).await?;
    let quotas = Quotas::effective(
        (standing.max_concurrent_calls, standing.monthly_minutes),
        &config.quotas,
    );
    // What the caller would be refused for, should the guarded insert find the tenant full.
    let refusal = quotas
        .over(standing.live_calls, standing.month_minutes)
        .unwrap_or(OverQuota::Concurrent(quotas.sql_bounds().0));
    // A retried webhook (same carrier call id) finds the first one's call.
    let admission = calls::admit_incoming(
        &tenant,
        &call,
        (routing.as_str(), &detail),
        quotas.sql_bounds(),
        &month_start(now),
        &refusal.detail(),
    )
    .await?;
    let call_id = match admission {
        Admission::Admitted(id) => id,
        Admission::OverQuota(id) => {
            log_line(
                json!({"level": "warn", "msg": "incoming call over quota", "call_id": id,
                "tenant_id": number.tenant_id, "quota": refusal.quota()}),
            );
            return markup_hangup(carrier, Some(OVER_QUOTA_MESSAGE));
        }
    };
    log_line(
        json!({"level": "info", "msg": "incoming call", "call_id": call_id,
        "carrier": carrier, "agent_id": plan.agent_id, "routing": routing.as_str()}),
    );
    if let Some(owner) = plan.ring_owner {
        let key = CallbackKey::for_config(config)
            .ok_or_else(|| ApiError::new(500, "config_error", "ADMIN_API_KEY is not set"))?;
        call_queue::watch_stream(&db, &call_id, StreamWatch::OwnerRinging).await?;
        let expires = now_ms().div_euclid(1000) + CALLBACK_VALIDITY_SECS;
        let action = format!(
            "{}/voice/{carrier}/incoming?{}",
            base.trim_end_matches('/'),
            signed_query(&key, call_id.as_str(), 1, expires)
        );
        return xml(twiml_dial_owner(
            owner,
            OWNER_RING_SECONDS,
            &action,
            Some(&to),
        ));
    }
    let token = calls::ensure_token(&db, &call_id).await?;
    answer(carrier.stream_answer(&base, call_id.as_str(), &token))
}

/// The number's business hours with the runtime's zone rules; `None` when it has none. Stored
/// hours were validated when saved; hours that no longer read (a zone the runtime dropped)
/// route as if there were none, which rings the owner rather than turning callers away.
fn number_hours(number: &NumberRoute) -> Option<Hours<'static>> {
    let stored: Value = serde_json::from_str(number.hours.as_deref()?).ok()?;
    let mut errors = Vec::new();
    let hours = hours::parse_hours(&stored, &IntlZones, "hours", &mut errors);
    if hours.is_none() {
        log_line(
            json!({"level": "warn", "msg": "stored hours unreadable", "errors": errors.len()}),
        );
    }
    hours
}

/// When a call answered now must have its media stream (see `call_status`).
fn stream_deadline(config: &Config) -> i64 {
    let timeout_ms = i64::try_from(config.stream_connect_timeout_secs * 1000).unwrap_or(0);
    now_ms() + timeout_ms
}

/// Query parameters and form (or flat JSON) body fields, the body winning.
fn request_params(url: &worker::Url, body: &[u8]) -> HashMap<String, String> {
    let mut params: HashMap<String, String> = url.query_pairs().into_owned().collect();
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
        for (k, v) in map {
            if let Some(s) = v.as_str() {
                params.insert(k, s.to_owned());
            }
        }
    } else {
        params.extend(worker::url::form_urlencoded::parse(body).into_owned());
    }
    params
}

fn first_param(params: &HashMap<String, String>, names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| params.get(*n))
        .map(|v| v.trim())
        .find(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The KV key caching a number's route.
pub fn number_cache_key(number: &str) -> String {
    format!("number:{number}")
}

/// Drops a number's cached route (after the numbers API changed or deleted it).
pub async fn forget_number(app: &App, number: &str) {
    if let Ok(kv) = app.kv() {
        if let Err(e) = kv.delete(&number_cache_key(number)).await {
            log_line(
                json!({"level": "warn", "msg": "number cache delete", "error": e.to_string()}),
            );
        }
    }
}

async fn lookup_number(
    app: &App,
    db: &D1Database,
    number: &str,
) -> Result<Option<NumberRoute>, ApiError> {
    let key = number_cache_key(number);
    let kv = app.kv()?;
    // A cache failure is not the caller's problem: fall through to D1.
    if let Ok(Some(cached)) = kv.get(&key).json::<NumberRoute>().await {
        return Ok(Some(cached));
    }
    let found = numbers::route_any_tenant(db, number).await?;
    if let Some(route) = &found {
        // The JSON text as bytes: worker's generic `put` goes through `serde_wasm_bindgen` and
        // float formatting, code nothing else needs; `json()` above reads the same text.
        let text = serde_json::to_string(route).unwrap_or_default();
        if let Ok(put) = kv.put_bytes(&key, text.as_bytes()) {
            let _ = put.expiration_ttl(NUMBER_CACHE_SECONDS).execute().await;
        }
    }
    Ok(found)
}

/// Ends the call; a carrier with no hang-up answer (Exotel) is refused the stream instead.
fn markup_hangup(carrier: Carrier, message: Option<&str>) -> ApiResult {
    match carrier.hangup_answer(message) {
        Some(body) => answer(body),
        None => Err(ApiError::not_found(
            message.unwrap_or("no stream for this call"),
        )),
    }
}

fn answer(body: Answer) -> ApiResult {
    match body {
        Answer::Xml(body) => xml(body),
        Answer::Json(body) => Ok(json_response(200, &body)),
    }
}

fn xml(body: String) -> ApiResult {
    let mut response = Response::builder()
        .with_status(200)
        .fixed(body.into_bytes());
    let _ = response
        .headers_mut()
        .set("content-type", "text/xml; charset=utf-8");
    Ok(response)
}
