//! `/api/v1/calls`: schedule, list, get (with history and emails), reschedule, cancel.
//!
//! Every change to a scheduled call is one D1 batch: the call row (compare-and-set on its status
//! and sequence), its history row and the email announcing it commit together, so a crash never
//! leaves a rescheduled call without its email or an email for a change that did not happen.
//! Sending the email, dialling and forwarding events happen after the answer.

mod row;
mod schedule;

use super::request::{field_error, invalid_fields, page, query, rows_response};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, rfc3339, ApiResult};
use crate::store::db;
use chrono::DateTime;
use phone_agent_core::pagination::Cursor;
use phone_agent_core::scheduling::CallStatus;
use row::{find, Row, COLUMNS};
pub(super) use schedule::{cancel, create, reschedule};
use serde::Deserialize;
use serde_json::{json, Value};
use worker::Request;

pub(super) async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    let row = find(app, who, id).await?;
    let db = app.db()?;
    #[derive(Deserialize)]
    struct Event {
        at: i64,
        kind: String,
        from_status: Option<String>,
        to_status: Option<String>,
        source: String,
        detail: String,
    }
    let history: Vec<Event> = db::all(
        &db,
        "SELECT at, kind, from_status, to_status, source, detail FROM call_events
         WHERE call_id = ? ORDER BY id",
        &[&id],
    )
    .await?;
    #[derive(Deserialize)]
    struct Email {
        id: String,
        kind: String,
        sequence: i64,
        status: String,
        attempts: i64,
        next_attempt_at: Option<i64>,
        last_status_code: Option<i64>,
        last_error: Option<String>,
        provider_message_id: Option<String>,
        created_at: i64,
    }
    let emails: Vec<Email> = db::all(
        &db,
        "SELECT id, kind, sequence, status, attempts, next_attempt_at, last_status_code, last_error,
           provider_message_id, created_at FROM emails WHERE call_id = ? ORDER BY created_at, sequence",
        &[&id],
    )
    .await?;
    let mut body = row.render();
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
    let (at, id) = page.bounds();
    let mut errors = Vec::new();
    let mut bound = |name: &str| {
        q.get(name)
            .filter(|v| !v.is_empty())
            .and_then(|v| match DateTime::parse_from_rfc3339(v) {
                Ok(t) => Some(t.timestamp_millis()),
                Err(_) => {
                    errors.push(field_error(
                        name,
                        "invalid_time",
                        format!("{name} must be RFC 3339 with an offset"),
                    ));
                    None
                }
            })
    };
    let (from, to) = (bound("from"), bound("to"));
    let status = q.get("status").filter(|s| !s.is_empty());
    if let Some(s) = status {
        if CallStatus::parse(s).is_none() {
            errors.push(field_error(
                "status",
                "invalid_value",
                "unknown call status",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(invalid_fields(Value::from(errors)));
    }
    let rows: Vec<Row> = db::all(
        &app.db()?,
        &format!(
            "SELECT {COLUMNS} FROM calls WHERE tenant_id = ?1 AND (created_at, id) < (?2, ?3)
               AND (?4 IS NULL OR status = ?4) AND (?5 IS NULL OR start_at >= ?5)
               AND (?6 IS NULL OR start_at < ?6) AND (?7 IS NULL OR agent_id = ?7)
             ORDER BY created_at DESC, id DESC LIMIT ?8"
        ),
        &[
            &who.tenant_id,
            &at,
            &id,
            &status,
            &from,
            &to,
            &q.get("agent_id"),
            &page.fetch(),
        ],
    )
    .await?;
    rows_response(
        rows,
        &page,
        |r| Cursor {
            created_at: r.created_at,
            id: r.id.clone(),
        },
        Row::render,
    )
}
