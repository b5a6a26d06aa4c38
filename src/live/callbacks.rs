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
use crate::store::db;
use phone_agent_core::agents::{callback_settings, dial_policy};
use phone_agent_core::dialing::{check_callback_time, DialRefusal, DAY_MS};
use phone_agent_core::session::{Tool, ToolCall};
use serde::Deserialize;
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
        db::run(
            &db,
            "INSERT INTO call_events (call_id, at, kind, source, detail)
             VALUES (?, ?, 'callback_refused', 'session', ?)",
            &[&info.call_id, &now_ms(), &detail.to_string()],
        )
        .await
    }
    .await;
    if let Err(e) = stored {
        crate::platform::http::log_line(
            json!({"level": "error", "msg": "callback refusal not recorded",
            "call_id": info.call_id, "error": e.to_string()}),
        );
    }
}

#[derive(Deserialize)]
struct AgentRef {
    agent_id: Option<String>,
    config: Option<String>,
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
    let agent: Option<AgentRef> = db::first(
        &db,
        "SELECT c.agent_id, a.config FROM calls c LEFT JOIN agents a ON a.id = c.agent_id
         WHERE c.id = ?",
        &[&info.call_id],
    )
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
    let provider = info.carrier.call_back_carrier().as_str();
    let id = new_id("call").map_err(internal)?;
    let metadata = json!({"callback_of": info.call_id, "note": note}).to_string();
    let max = settings.max_per_number_per_day;
    // One batch (a transaction): the call is inserted only if this call has no call back yet
    // and the number is under its daily cap, counted in the same statement, so concurrent tool
    // runs cannot both pass; the bookkeeping rows follow only if it was.
    let changes = db::batch(
        &db,
        vec![
            db::stmt(
                &db,
                "INSERT INTO calls (id, tenant_id, agent_id, direction, provider, status,
                   to_number, from_number, start_at, metadata, base_url, created_at, updated_at)
                 SELECT ?1, ?2, ?3, 'outbound', ?4, 'scheduled', ?5, ?6, ?7, ?8, ?9, ?10, ?10
                 WHERE NOT EXISTS (SELECT 1 FROM callbacks WHERE source_call_id = ?11)
                   AND (SELECT count(*) FROM callbacks
                        WHERE tenant_id = ?2 AND to_number = ?5 AND created_at > ?12) < ?13",
                &[
                    &id,
                    &info.tenant_id,
                    &agent_id,
                    &provider,
                    &to,
                    &ours,
                    &start_at,
                    &metadata,
                    &info.base_url,
                    &now,
                    &info.call_id,
                    &(now - DAY_MS),
                    &max,
                ],
            )
            .map_err(internal)?,
            db::stmt(
                &db,
                "INSERT INTO callbacks (source_call_id, tenant_id, to_number, call_id, created_at)
                 SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM calls WHERE id = ?4)",
                &[&info.call_id, &info.tenant_id, &to, &id, &now],
            )
            .map_err(internal)?,
            db::stmt(
                &db,
                "INSERT INTO call_events (call_id, at, kind, from_status, to_status, source, detail)
                 SELECT ?1, ?2, 'status', NULL, 'scheduled', 'session', ?3
                 WHERE EXISTS (SELECT 1 FROM calls WHERE id = ?1)",
                &[
                    &id,
                    &now,
                    &json!({"callback_of": info.call_id}).to_string(),
                ],
            )
            .map_err(internal)?,
            db::stmt(
                &db,
                "INSERT INTO call_events (call_id, at, kind, source, detail)
                 SELECT ?1, ?2, 'callback', 'session', ?3 WHERE EXISTS (SELECT 1 FROM calls WHERE id = ?4)",
                &[
                    &info.call_id,
                    &now,
                    &json!({"call_id": id, "start_at": rfc3339(start_at)}).to_string(),
                    &id,
                ],
            )
            .map_err(internal)?,
        ],
    )
    .await
    .map_err(internal)?;
    if changes.first().copied().unwrap_or(0) == 0 {
        let existing: Option<serde::de::IgnoredAny> = db::first(
            &db,
            "SELECT 1 AS one FROM callbacks WHERE source_call_id = ?",
            &[&info.call_id],
        )
        .await
        .map_err(internal)?;
        return Err(match existing {
            Some(_) => DialRefusal::CallbackAlreadyScheduled,
            None => DialRefusal::DailyCapReached(max),
        }
        .into());
    }
    call_status::emit(
        &session.env,
        &db,
        &id,
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
