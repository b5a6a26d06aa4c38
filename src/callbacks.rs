//! The `schedule_callback` tool: the agent agrees a time with the caller and a new outbound
//! call to the caller is scheduled, with the same agent, dispatched by the scheduler like any
//! call created through the API.

use crate::call_session::Session;
use crate::call_status;
use crate::db;
use crate::http::{new_id, now_ms, rfc3339, ApiError};
use crate::scheduler;
use crate::speech::parse_tool;
use phone_agent_core::providers::openai::AgentToolCall;
use phone_agent_core::session::ToolCall;
use serde_json::json;
use std::rc::Rc;

/// Runs the tool; the returned JSON text is what the model reads as the tool's result.
pub async fn run(session: &Rc<Session>, call: &ToolCall) -> String {
    match schedule(session, call).await {
        Ok(result) => result.to_string(),
        Err(message) => json!({ "error": message }).to_string(),
    }
}

async fn schedule(session: &Rc<Session>, call: &ToolCall) -> Result<serde_json::Value, String> {
    let AgentToolCall::ScheduleCallback { start_at, note } = parse_tool(call)? else {
        return Err(format!("{} is not run by this worker", call.name));
    };
    let info = session.info().ok_or("the call is not connected")?;
    let start_at = start_at.timestamp_millis();
    let now = now_ms();
    if start_at <= now {
        return Err("start_at is in the past".to_owned());
    }
    // The caller is whoever is not our number on this call.
    let (to, from) = if info.direction == "inbound" {
        (info.from_number.clone(), Some(info.to_number.clone()))
    } else {
        (Some(info.to_number.clone()), info.from_number.clone())
    };
    let to = to.ok_or("the caller's number is unknown")?;
    let provider = if info.carrier == "exotel" {
        "twilio"
    } else {
        info.carrier.as_str()
    };
    let id = new_id("call");
    let metadata = json!({"callback_of": info.call_id, "note": note}).to_string();
    let result = async {
        let db = session.env.d1("DB")?;
        let agent: Option<AgentRef> = db::first(
            &db,
            "SELECT agent_id FROM calls WHERE id = ?",
            &[&info.call_id],
        )
        .await?;
        db::batch(
            &db,
            vec![
                db::stmt(
                    &db,
                    "INSERT INTO calls (id, tenant_id, agent_id, direction, provider, status,
                       to_number, from_number, start_at, metadata, base_url, created_at, updated_at)
                     VALUES (?1, ?2, ?3, 'outbound', ?4, 'scheduled', ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
                    &[
                        &id,
                        &info.tenant_id,
                        &agent.and_then(|a| a.agent_id),
                        &provider,
                        &to,
                        &from,
                        &start_at,
                        &metadata,
                        &info.base_url,
                        &now,
                    ],
                )?,
                db::stmt(
                    &db,
                    "INSERT INTO call_events (call_id, at, kind, from_status, to_status, source, detail)
                     VALUES (?1, ?2, 'status', NULL, 'scheduled', 'session', ?3)",
                    &[
                        &id,
                        &now,
                        &json!({"callback_of": info.call_id}).to_string(),
                    ],
                )?,
            ],
        )
        .await?;
        call_status::emit(
            &session.env,
            &db,
            &id,
            "call.scheduled",
            &format!("{id}:scheduled:1"),
            json!({"callback_of": info.call_id}),
            now,
        )
        .await?;
        Ok::<_, ApiError>(())
    }
    .await;
    result.map_err(|e| format!("could not schedule the call back: {}", e.message))?;
    scheduler::wake_at(&session.env, start_at).await;
    Ok(json!({"scheduled": true, "call_id": id, "start_at": rfc3339(start_at)}))
}

#[derive(serde::Deserialize)]
struct AgentRef {
    agent_id: Option<String>,
}
