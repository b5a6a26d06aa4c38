//! `/api/v1/calls`: schedule, list, get (with history and emails), reschedule, cancel.
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
use crate::platform::http::{json_response, rfc3339, ApiResult};
use crate::store::call_events;
use crate::store::calls::{self, Filter};
use crate::store::emails;
use crate::store::tenant::Tenant;
use phone_agent_core::scheduling::{CallStatus, Direction};
use row::{agent_of, find, render};
pub(super) use schedule::{cancel, create, reschedule};
use serde_json::{json, Value};
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
    let emails: Vec<Value> = emails
        .iter()
        .map(|e| {
            json!({"id": e.id, "kind": e.kind, "sequence": e.sequence, "status": e.status,
                   "attempts": e.attempts, "next_attempt_at": e.next_attempt_at.map(rfc3339),
                   "last_status_code": e.last_status_code, "last_error": e.last_error,
                   "resend_id": e.provider_message_id, "created_at": rfc3339(e.created_at)})
        })
        .collect();
    body["email"] = emails.last().cloned().unwrap_or(Value::Null);
    body["emails"] = Value::from(emails);
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
    no_field_errors(errors)?;
    let filter = Filter {
        status,
        from,
        to,
        agent_id: q.get("agent_id").map(String::as_str),
        direction,
    };
    let calls = calls::list(&Tenant::of(app, who)?, &filter, &page).await?;
    list_response(calls, render)
}
