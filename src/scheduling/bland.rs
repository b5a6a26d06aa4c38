//! Bland calls: Bland keeps the timer, so a scheduled call is handed to its send-call API as
//! soon as it is scheduled (and stopped there when cancelled or moved).

use crate::pipeline::call_status::{self, Change};
use crate::platform::http::{now_ms, ApiError};
use crate::platform::outbound;
use crate::platform::zones;
use crate::store::agents;
use crate::store::call_queue;
use crate::store::calls::Call;
use crate::store::tenant::Tenant;
use phone_agent_core::agents::voice_id;
use phone_agent_core::config::Config;
use phone_agent_core::delivery::REQUEST_TIMEOUT_MS;
use phone_agent_core::limits::REPLY_BODY_LIMIT;
use phone_agent_core::scheduling::bland::{
    parse_send_response, send_call_body, BlandError, Script, SendCall,
};
use phone_agent_core::scheduling::dispatch::ATTEMPT_KEY;
use phone_agent_core::scheduling::CallStatus;
use phone_agent_core::template::{self, CallFacts};
use phone_agent_core::webhooks::callback::{signed_query, CallbackKey, CALLBACK_VALIDITY_SECS};
use serde_json::{json, Value};
use std::time::Duration;
use worker::d1::D1Database;
use worker::{Env, Method};

/// How long a Bland submission is leased; a failed one is retried after it.
const BLAND_LEASE_MS: i64 = 60_000;

/// Hands the current attempt of a Bland call to Bland (send-call with `start_time`), unless
/// another submitter holds it or it already has Bland's id. A transient failure is retried by
/// the scheduler after the lease; a refusal fails the call.
pub async fn submit_bland(
    env: &Env,
    db: &D1Database,
    config: &Config,
    call_id: &str,
) -> Result<(), ApiError> {
    let now = now_ms();
    let Some(call) = call_queue::lease_bland(db, call_id, now + BLAND_LEASE_MS, now).await? else {
        return Ok(());
    };
    let agent = match &call.agent_id {
        Some(id) => {
            let tenant = Tenant::on(db, call.tenant_id.clone());
            agents::get(&tenant, id.as_str()).await?
        }
        None => None,
    };
    let Some(agent) = agent else {
        return fail_bland(env, db, &call, "the call's agent no longer exists".into()).await;
    };
    let agent_config: Value = serde_json::from_str(&agent.config).unwrap_or(Value::Null);
    let mut metadata: Value = serde_json::from_str(&call.metadata).unwrap_or_else(|_| json!({}));
    if let Some(map) = metadata.as_object_mut() {
        map.insert(ATTEMPT_KEY.into(), Value::from(call.attempt));
    }
    let Some(callback_key) = CallbackKey::for_config(config) else {
        let error = "no key to sign callback URLs (set CALLBACK_SIGNING_KEY or ADMIN_API_KEY)";
        return fail_bland(env, db, &call, error.into()).await;
    };
    // Bland dials at start_time by itself: the URL stays good for the validity after that.
    let expires = call.start_at.unwrap_or(now).div_euclid(1000) + CALLBACK_VALIDITY_SECS;
    let attempt = u32::try_from(call.attempt).unwrap_or(1);
    let webhook = call.base_url.as_deref().map(|base| {
        format!(
            "{base}/webhooks/bland?{}",
            signed_query(&callback_key, call.id.as_str(), attempt, expires)
        )
    });
    let start_at =
        chrono::DateTime::from_timestamp_millis(call.start_at.unwrap_or(now)).unwrap_or_default();
    // Bland speaks the prompt and greeting as given: filled with this call's variables first.
    let fields = template::stored_fields(call.contact_fields.as_deref());
    let values = CallFacts {
        contact_name: call.contact_name.as_deref(),
        contact_email: call.contact_email.as_deref(),
        contact_phone: Some(&call.to_number),
        contact_fields: &fields,
        to: &call.to_number,
        from: call.from_number.as_deref(),
        direction: call.direction.as_str(),
        start_at: Some(start_at),
        zone: zones::zone(call.time_zone.as_deref()),
        agent_name: Some(&agent.name),
    }
    .values();
    let task = template::render(&agent.system_prompt, &values);
    let first_sentence = agent
        .first_message
        .as_deref()
        .map(|m| template::render(m, &values));
    let body = send_call_body(&SendCall {
        call_id: call.id.as_str(),
        phone_number: &call.to_number,
        script: Script::Task(&task),
        first_sentence: first_sentence.as_deref(),
        voice: voice_id(&agent_config),
        from: call.from_number.as_deref(),
        start_at,
        time_zone: zones::zone(call.time_zone.as_deref()),
        webhook: webhook.as_deref(),
        metadata: &metadata,
        request_data: None,
        max_duration_minutes: None,
    });
    let Some(key) = config.providers.bland_api_key.as_deref() else {
        return fail_bland(env, db, &call, "BLAND_API_KEY is not set".into()).await;
    };
    let reply = outbound::send(
        Method::Post,
        &format!("{}/v1/calls", config.providers.bland_api_url),
        &[("content-type", "application/json"), ("authorization", key)],
        Some(body.to_string().as_bytes()),
        Duration::from_millis(REQUEST_TIMEOUT_MS),
        REPLY_BODY_LIMIT,
    )
    .await;
    let now = now_ms();
    let result = match reply {
        Ok(reply) => parse_send_response(reply.status, &reply.body),
        Err(f) => {
            // Unknown whether Bland queued it; the lease delays the resubmission.
            let error = format!("bland: {f}");
            call_queue::set_last_error(db, &call.id, &error, false).await?;
            return Ok(());
        }
    };
    match result {
        Ok(queued) => {
            // Only if this is still the attempt and time we submitted: a reschedule or cancel
            // that raced the submission wins, and Bland's now-orphaned call is stopped.
            let detail = json!({"provider": "bland", "provider_call_id": queued.call_id,
                                "start_time": body.get("start_time"), "attempt": call.attempt});
            if !call_queue::handed_to_bland(db, &call, &queued.call_id, &detail, now).await? {
                stop_bland(config, &queued.call_id).await.ok();
            }
            Ok(())
        }
        Err(e) if e.is_retryable() => {
            call_queue::set_last_error(db, &call.id, &e.to_string(), false).await?;
            Ok(())
        }
        Err(e @ (BlandError::Rejected { .. } | BlandError::Malformed { .. })) => {
            fail_bland(env, db, &call, e.to_string()).await
        }
        Err(e) => fail_bland(env, db, &call, e.to_string()).await,
    }
}

/// A Bland call that cannot be handed over ends `failed` (via `dispatching`: it never dialled).
async fn fail_bland(
    env: &Env,
    db: &D1Database,
    call: &Call,
    error: String,
) -> Result<(), ApiError> {
    let now = now_ms();
    call_queue::set_last_error(db, &call.id, &error, true).await?;
    for to in [CallStatus::Dispatching, CallStatus::Failed] {
        let change = Change::by_scheduler(to, json!({"error": error}), call.attempt);
        call_status::apply(env, db, call.id.as_str(), &change, now).await?;
    }
    Ok(())
}

/// Cancels a call Bland has scheduled (`POST /v1/calls/{id}/stop`).
pub async fn stop_bland(config: &Config, bland_call_id: &str) -> Result<(), String> {
    let key = config
        .providers
        .bland_api_key
        .as_deref()
        .ok_or("BLAND_API_KEY is not set")?;
    let id: String = url_segment(bland_call_id);
    let reply = outbound::send(
        Method::Post,
        &format!("{}/v1/calls/{id}/stop", config.providers.bland_api_url),
        &[("content-type", "application/json"), ("authorization", key)],
        Some(b"{}"),
        Duration::from_millis(REQUEST_TIMEOUT_MS),
        REPLY_BODY_LIMIT,
    )
    .await
    .map_err(|f| format!("bland stop: {f}"))?;
    if (200..300).contains(&reply.status) {
        Ok(())
    } else {
        Err(format!("bland stop answered HTTP {}", reply.status))
    }
}

/// Percent-encodes a path segment.
fn url_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
