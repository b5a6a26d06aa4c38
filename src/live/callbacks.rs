//! The `schedule_callback` tool: the agent agrees a time with the caller and a new outbound
//! call to the caller is scheduled, with the same agent, dispatched by the scheduler like any
//! call created through the API.
//!
//! A caller can talk the model into anything, so the tool is bounded here, not by the prompt:
//! the agent must enable it, the number must pass the agent's dialling rules (no premium, SIP
//! or withheld numbers, allowed countries only), the time must be 1 minute to 7 days away, and
//! D1 admits one call back per call and a daily number per caller's number. Every refusal goes
//! back to the model as the tool's error and is recorded on the call.

use crate::live::session::Session;
use crate::pipeline::call_status;
use crate::platform::alarm;
use crate::platform::http::{new_id, now_ms, rfc3339, ApiError};
use crate::store::call_events::{self, Event};
use crate::store::calls::NewCall;
use crate::store::dialing::{self, Callback};
use crate::store::tenant::Tenant;
use phone_agent_core::agents::{callback_settings, dial_policy};
use phone_agent_core::dialing::{check_callback_time, DialRefusal, DAY_MS};
use phone_agent_core::ids::{CallId, TenantId};
use phone_agent_core::scheduling::{CallProvider, CallStatus, Direction};
use phone_agent_core::session::{Tool, ToolCall};
use serde_json::{json, Value};
use std::rc::Rc;

/// Why the tool did not schedule a call back.
enum Failure {
    /// A rule said no: recorded on the call as `callback_refused`.
    Refused(DialRefusal),
    /// Bad arguments or our own fault.
    Error(String),
}

impl From<DialRefusal> for Failure {
    fn from(refusal: DialRefusal) -> Self {
        Failure::Refused(refusal)
    }
}

/// Runs the tool; the returned JSON text is what the model reads as the tool's result.
pub async fn run(session: &Rc<Session>, call: &ToolCall) -> String {
    match schedule(session, call).await {
        Ok(result) => result.to_string(),
        Err(Failure::Error(message)) => json!({ "error": message }).to_string(),
        Err(Failure::Refused(refusal)) => {
            let result = json!({"error": refusal.to_string(), "code": refusal.code()});
            record_refusal(session, call, &refusal).await;
            result.to_string()
        }
    }
}

/// Keeps the refusal on the call (`GET /api/v1/calls/{id}` history): an attempt at toll fraud
/// must be visible to the operator, not only to the model.
async fn record_refusal(session: &Rc<Session>, call: &ToolCall, refusal: &DialRefusal) {
    let Some(info) = session.info() else {
        return;
    };
    let detail = json!({"tool": call.name, "code": refusal.code(), "error": refusal.to_string(),
                        "arguments": call.arguments.chars().take(500).collect::<String>()});
    session.record("callback_refused", detail.clone());
    let stored = async {
        let db = session.env.d1("DB")?;
        let call_id = CallId::from(info.call_id.as_str());
        let event = Event::note(&call_id, "callback_refused", "session", &detail);
        call_events::record(&db, &event).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    if let Err(e) = stored {
        crate::platform::http::log_line(
            json!({"level": "error", "msg": "callback refusal not recorded",
            "call_id": info.call_id, "error": e.to_string()}),
        );
    }
}

async fn schedule(session: &Rc<Session>, call: &ToolCall) -> Result<Value, Failure> {
    let Tool::ScheduleCallback { start_at, note } =
        call.tool().map_err(|e| Failure::Error(e.to_string()))?
    else {
        return Err(Failure::Error(format!(
            "{} is not run by this worker",
            call.name
        )));
    };
    let info = session
        .info()
        .ok_or_else(|| Failure::Error("the call is not connected".into()))?;
    let db = session
        .env
        .d1("DB")
        .map_err(|e| internal(ApiError::from(e)))?;
    let tenant = Tenant::new(db, TenantId::from(info.tenant_id.as_str()));
    let agent = dialing::agent_of(&tenant, &info.call_id)
        .await
        .map_err(internal)?;
    let agent_id = agent.as_ref().and_then(|a| a.agent_id.clone());
    let config: Value = agent
        .and_then(|a| a.config)
        .and_then(|c| serde_json::from_str(&c).ok())
        .unwrap_or(Value::Null);
    // Read at run time, not from the call's start: an agent switched off mid-call stops here.
    let settings = callback_settings(&config);
    if !settings.enabled {
        return Err(DialRefusal::CallbacksDisabled.into());
    }
    let start_at = start_at.timestamp_millis();
    let now = now_ms();
    check_callback_time(start_at, now)?;
    // The caller is whoever is not our number on this call.
    let (to, ours) = if info.direction == "inbound" {
        (info.from_number.clone(), Some(info.to_number.clone()))
    } else {
        (Some(info.to_number.clone()), info.from_number.clone())
    };
    let to = to.unwrap_or_else(|| "unknown".to_owned());
    dial_policy(&config, ours.as_deref()).check(&to)?;
    // Exotel calls cannot be dialled: the call back goes out over the carrier the core names.
    let provider = CallProvider::from(info.carrier.call_back_carrier());
    let id: CallId = new_id().map_err(internal)?;
    let source = CallId::from(info.call_id.as_str());
    let metadata = json!({"callback_of": info.call_id, "note": note}).to_string();
    let max = settings.max_per_number_per_day;
    let call_back = NewCall {
        id: &id,
        agent_id: agent_id.as_ref(),
        direction: Direction::Outbound,
        provider,
        provider_call_id: None,
        status: CallStatus::Scheduled,
        to_number: &to,
        from_number: ours.as_deref(),
        start_at: Some(start_at),
        time_zone: None,
        contact_name: None,
        contact_email: None,
        contact_fields: None,
        metadata: &metadata,
        idempotency_key: None,
        request_hash: None,
        base_url: info.base_url.as_deref(),
        now,
    };
    // The call is inserted only if this call has no call back yet and the number is under its
    // daily cap, counted in the same statement, so concurrent tool runs cannot both pass.
    let outcome = dialing::schedule_callback(
        &tenant,
        &call_back,
        &source,
        (now - DAY_MS, max),
        &json!({"callback_of": info.call_id}),
        &json!({"call_id": id, "start_at": rfc3339(start_at)}),
    )
    .await
    .map_err(internal)?;
    match outcome {
        Callback::Scheduled => {}
        Callback::AlreadyScheduled => return Err(DialRefusal::CallbackAlreadyScheduled.into()),
        Callback::CapReached => return Err(DialRefusal::DailyCapReached(max).into()),
    }
    let db = session
        .env
        .d1("DB")
        .map_err(|e| internal(ApiError::from(e)))?;
    call_status::emit(
        &session.env,
        &db,
        id.as_str(),
        "call.scheduled",
        &format!("{id}:scheduled:1"),
        json!({"callback_of": info.call_id}),
        now,
    )
    .await
    .map_err(internal)?;
    alarm::wake_at(&session.env, start_at).await;
    Ok(json!({"scheduled": true, "call_id": id, "start_at": rfc3339(start_at)}))
}

fn internal(e: impl Into<ApiError>) -> Failure {
    Failure::Error(format!(
        "could not schedule the call back: {}",
        e.into().message
    ))
}
