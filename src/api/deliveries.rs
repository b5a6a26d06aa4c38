//! `/api/v1/deliveries`: one row per (event, endpoint) with its attempts; replay one, or
//! redrive the dead-letter list in bulk.

use super::request::{field_error, invalid_fields, json_body, page, query, rows_response};
use crate::pipeline::forwarding;
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, now_ms, rfc3339, ApiError, ApiResult};
use crate::store::audit;
use crate::store::db;
use phone_agent_core::pagination::Cursor;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::Request;

#[derive(Deserialize)]
struct Row {
    id: String,
    event_id: String,
    endpoint_id: String,
    status: String,
    attempts: i64,
    next_attempt_at: Option<i64>,
    last_status_code: Option<i64>,
    last_response: Option<String>,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl Row {
    fn render(&self) -> Value {
        json!({
            "id": self.id,
            "event_id": self.event_id,
            "endpoint_id": self.endpoint_id,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.map(rfc3339),
            "last_status_code": self.last_status_code,
            "last_response": self.last_response,
            "last_error": self.last_error,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        })
    }
}

const COLUMNS: &str =
    "id, event_id, endpoint_id, status, attempts, next_attempt_at, last_status_code,
  last_response, last_error, created_at, updated_at";

const STATUSES: [&str; 5] = ["pending", "succeeded", "failed", "dead", "canceled"];

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    let q = query(req)?;
    let page = page(&q)?;
    if let Some(status) = q.get("status") {
        if !STATUSES.contains(&status.as_str()) {
            return Err(ApiError::new(
                400,
                "invalid_filter",
                format!("status is one of {}", STATUSES.join(", ")),
            ));
        }
    }
    let (at, id) = page.bounds();
    let rows: Vec<Row> = db::all(
        &app.db()?,
        &format!(
            "SELECT {COLUMNS} FROM deliveries
             WHERE tenant_id = ?1 AND (created_at, id) < (?2, ?3)
               AND (?4 IS NULL OR status = ?4) AND (?5 IS NULL OR endpoint_id = ?5)
               AND (?6 IS NULL OR event_id = ?6)
             ORDER BY created_at DESC, id DESC LIMIT ?7"
        ),
        &[
            &who.tenant_id,
            &at,
            &id,
            &q.get("status"),
            &q.get("endpoint_id"),
            &q.get("event_id"),
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

async fn find(app: &App, who: &Principal, id: &str) -> Result<Row, ApiError> {
    db::first(
        &app.db()?,
        &format!("SELECT {COLUMNS} FROM deliveries WHERE id = ? AND tenant_id = ?"),
        &[&id, &who.tenant_id],
    )
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no delivery {id}")))
}

pub(super) async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    let row = find(app, who, id).await?;
    #[derive(Deserialize)]
    struct Attempt {
        attempt: i64,
        at: i64,
        status_code: Option<i64>,
        latency_ms: Option<i64>,
        response_excerpt: Option<String>,
        error: Option<String>,
    }
    let attempts: Vec<Attempt> = db::all(
        &app.db()?,
        "SELECT attempt, at, status_code, latency_ms, response_excerpt, error FROM delivery_attempts
         WHERE delivery_id = ? ORDER BY attempt",
        &[&id],
    )
    .await?;
    let mut body = row.render();
    body["attempt_log"] = attempts
        .iter()
        .map(|a| {
            json!({"attempt": a.attempt, "at": rfc3339(a.at), "status_code": a.status_code,
                   "latency_ms": a.latency_ms, "response": a.response_excerpt, "error": a.error})
        })
        .collect();
    Ok(json_response(200, &body))
}

pub(super) async fn replay(app: &App, who: &Principal, id: &str) -> ApiResult {
    let row = find(app, who, id).await?;
    let db = app.db()?;
    forwarding::replay(&db, &who.tenant_id, &row.event_id, Some(&row.endpoint_id)).await?;
    let env = app.env.clone();
    let event_id = row.event_id.clone();
    app.ctx
        .wait_until(async move { forwarding::deliver_event(&env, &event_id).await });
    let row = find(app, who, id).await?;
    audit::log(app, who, "delivery.replay", ("delivery", id), None, None).await;
    Ok(json_response(202, &row.render()))
}

/// Puts dead deliveries back to pending as a new retry series: all of them, or those of one
/// endpoint and/or created within `[since, until)`.
pub(super) async fn redrive(req: &mut Request, app: &App, who: &Principal) -> ApiResult {
    let body = json_body(req).await?;
    let mut errors = Vec::new();
    let time = |field: &str, errors: &mut Vec<Value>| -> Option<i64> {
        match body.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match chrono::DateTime::parse_from_rfc3339(s) {
                Ok(t) => Some(t.timestamp_millis()),
                Err(_) => {
                    errors.push(field_error(
                        field,
                        "invalid_time",
                        "expected RFC 3339, e.g. 2026-01-01T00:00:00Z",
                    ));
                    None
                }
            },
            Some(_) => {
                errors.push(field_error(
                    field,
                    "invalid_type",
                    "expected an RFC 3339 string",
                ));
                None
            }
        }
    };
    let since = time("since", &mut errors);
    let until = time("until", &mut errors);
    let endpoint_id = match body.get("endpoint_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) => Some(e.clone()),
        Some(_) => {
            errors.push(field_error(
                "endpoint_id",
                "invalid_type",
                "endpoint_id must be a string",
            ));
            None
        }
    };
    if !errors.is_empty() {
        return Err(invalid_fields(Value::from(errors)));
    }
    let now = now_ms();
    let redriven = db::run(
        &app.db()?,
        "UPDATE deliveries SET status = 'pending', series_attempts = 0, next_attempt_at = ?1,
           locked_until = NULL, updated_at = ?1
         WHERE tenant_id = ?2 AND status = 'dead' AND (?3 IS NULL OR endpoint_id = ?3)
           AND (?4 IS NULL OR created_at >= ?4) AND (?5 IS NULL OR created_at < ?5)
           AND endpoint_id IN (SELECT id FROM endpoints WHERE deleted_at IS NULL)",
        &[&now, &who.tenant_id, &endpoint_id, &since, &until],
    )
    .await?;
    let env = app.env.clone();
    app.ctx
        .wait_until(async move { crate::platform::alarm::wake_at(&env, now_ms()).await });
    audit::log(app, who, "delivery.redrive", ("delivery", "*"), None, Some(&json!({"endpoint_id": endpoint_id, "since": since.map(rfc3339), "until": until.map(rfc3339), "redriven": redriven}))).await;
    Ok(json_response(202, &json!({"redriven": redriven})))
}
