//! `/api/v1/calls`: schedule, list, get (with history, emails and reminders), reschedule, cancel.
//!
//! Every change to a scheduled call is one D1 batch: the call row (compare-and-set on its status
//! and sequence), its history row and the email announcing it commit together, so a crash never
//! leaves a rescheduled call without its email or an email for a change that did not happen.
//! Sending the email, dialling and forwarding events happen after the answer.

mod import;
mod row;
mod schedule;

use super::request::{field_error, list_response, no_field_errors, page, query, time_bound};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, rfc3339, ApiError, ApiResult};
use crate::store::agents;
use crate::store::call_events;
use crate::store::calls::{self, Filter};
use crate::store::emails;
use crate::store::reminders;
use crate::store::tenant::Tenant;
use crate::store::usage;
use phone_agent_core::analysis::{self, AnalysisFilter};
use phone_agent_core::scheduling::{CallStatus, Direction};
use row::{agent_of, find, render};
pub(super) use schedule::{cancel, create, reschedule};
use serde_json::{json, Value};
use std::collections::HashMap;
use worker::Request;

pub(super) async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    let tenant = Tenant::of(app, who)?;
    let call = find(&tenant, id).await?;
    let history = call_events::for_call(&tenant, id).await?;
    let emails = emails::for_call(&tenant, id).await?;
    let mut body = render(&call);
    body["agent_name"] = Value::from(agent_of(&tenant, &call).await?);
    body["history"] = history
        .iter()
        .map(|e| {
            json!({"at": rfc3339(e.at), "kind": e.kind, "from": e.from_status, "to": e.to_status,
                   "source": e.source,
                   "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::Null)})
        })
        .collect();
    let emails: Vec<Value> = emails.iter().map(emails::Email::json).collect();
    body["email"] = emails.last().cloned().unwrap_or(Value::Null);
    body["emails"] = Value::from(emails);
    body["reminders"] = reminders::for_call(&tenant, id)
        .await?
        .iter()
        .map(|r| {
            json!({"id": r.id, "channel": r.channel, "before_minutes": r.before_minutes,
                   "due_at": rfc3339(r.due_at), "status": r.status, "email_id": r.email_id,
                   "message_id": r.message_id})
        })
        .collect();
    let used = usage::of_call(&tenant, id).await?;
    body["usage"] = used.map_or(Value::Null, |u| u.to_json());
    body["cost"] = used
        .and_then(|u| app.config().ok()?.prices.cost(&u))
        .map_or(Value::Null, |c| c.to_json());
    Ok(json_response(200, &body))
}

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    let q = query(req)?;
    let page = page(&q)?;
    let mut errors = Vec::new();
    let from = time_bound(&q, "from", &mut errors);
    let to = time_bound(&q, "to", &mut errors);
    let status = match q.get("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            let parsed = CallStatus::parse(s);
            if parsed.is_none() {
                errors.push(field_error(
                    "status",
                    "invalid_value",
                    "unknown call status",
                ));
            }
            parsed
        }
    };
    let direction = match q.get("direction").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            let parsed = Direction::parse(s);
            if parsed.is_none() {
                errors.push(field_error(
                    "direction",
                    "invalid_value",
                    "direction must be inbound or outbound",
                ));
            }
            parsed
        }
    };
    let tenant = Tenant::of(app, who)?;
    let agent_id = q.get("agent_id").map(String::as_str);
    let analysis = analysis_filters(&tenant, &q, agent_id, &mut errors).await?;
    no_field_errors(errors)?;
    let filter = Filter {
        status,
        from,
        to,
        agent_id,
        direction,
        analysis: &analysis,
    };
    let calls = calls::list(&tenant, &filter, &page).await?;
    list_response(calls, render)
}

/// The `analysis.*` parameters, checked by the core against the definition of the agent named
/// by `agent_id` (the tenant's own: another tenant's agent defines nothing here).
async fn analysis_filters(
    tenant: &Tenant,
    q: &HashMap<String, String>,
    agent_id: Option<&str>,
    errors: &mut Vec<Value>,
) -> Result<Vec<AnalysisFilter>, ApiError> {
    let params: Vec<(&str, &str)> = q
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("analysis.")?, v.as_str())))
        .collect();
    if params.is_empty() {
        return Ok(Vec::new());
    }
    let agent_id = agent_id.filter(|id| !id.is_empty());
    let needs_spec = params
        .iter()
        .any(|(k, _)| !matches!(*k, "status" | "success"));
    let spec = match agent_id {
        Some(id) if needs_spec => agents::get(tenant, id)
            .await?
            .and_then(|a| serde_json::from_str::<Value>(&a.config).ok())
            .and_then(|config| analysis::from_config(&config)),
        _ => None,
    };
    match analysis::parse_filters(params, spec.as_ref(), agent_id.is_some()) {
        Ok(filters) => Ok(filters),
        Err(found) => {
            errors.extend(
                found
                    .into_iter()
                    .map(|e| field_error(&e.field, e.code, e.message)),
            );
            Ok(Vec::new())
        }
    }
}
