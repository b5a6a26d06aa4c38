//! `/api/v1/deliveries`: one row per (event, endpoint) with its attempts; replay one, or
//! redrive the dead-letter list in bulk.

use super::request::{field_error, found, json_body, list_of, no_field_errors, page, query};
use crate::pipeline::forwarding;
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, now_ms, rfc3339, ApiError, ApiResult};
use crate::store::audit::{self, Change};
use crate::store::deliveries::{self, Delivery, Redrive};
use crate::store::tenant::Tenant;
use serde_json::{json, Value};
use worker::Request;

fn render(d: &Delivery) -> Value {
    json!({
        "id": d.id,
        "event_id": d.event_id,
        "endpoint_id": d.endpoint_id,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at.map(rfc3339),
        "last_status_code": d.last_status_code,
        "last_response": d.last_response,
        "last_error": d.last_error,
        "created_at": rfc3339(d.created_at),
        "updated_at": rfc3339(d.updated_at),
    })
}

const STATUSES: [&str; 5] = ["pending", "succeeded", "failed", "dead", "canceled"];

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    let q = query(req)?;
    page(&q)?;
    if let Some(status) = q.get("status") {
        if !STATUSES.contains(&status.as_str()) {
            return Err(ApiError::new(
                400,
                "invalid_filter",
                format!("status is one of {}", STATUSES.join(", ")),
            ));
        }
    }
    list_of::<Delivery>(req, app, who, render).await
}

async fn find(tenant: &Tenant, id: &str) -> Result<Delivery, ApiError> {
    found(deliveries::get(tenant, id).await?, "delivery", id)
}

pub(super) async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    let tenant = Tenant::of(app, who)?;
    let delivery = find(&tenant, id).await?;
    let mut body = render(&delivery);
    body["attempt_log"] = deliveries::attempts(&tenant, id)
        .await?
        .iter()
        .map(|a| {
            json!({"attempt": a.attempt, "at": rfc3339(a.at), "status_code": a.status_code,
                   "latency_ms": a.latency_ms, "response": a.response_excerpt, "error": a.error})
        })
        .collect();
    Ok(json_response(200, &body))
}

pub(super) async fn replay(app: &App, who: &Principal, id: &str) -> ApiResult {
    let tenant = Tenant::of(app, who)?;
    let delivery = find(&tenant, id).await?;
    deliveries::replay(
        &tenant,
        delivery.event_id.as_str(),
        Some(delivery.endpoint_id.as_str()),
        now_ms(),
    )
    .await?;
    let env = app.env.clone();
    let event_id = delivery.event_id.to_string();
    app.ctx
        .wait_until(async move { forwarding::deliver_event(&env, &event_id).await });
    let delivery = find(&tenant, id).await?;
    audit::log(
        app,
        who,
        &Change::done("delivery.replay", ("delivery", id), None),
    )
    .await;
    Ok(json_response(202, &render(&delivery)))
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
    no_field_errors(errors)?;
    let now = now_ms();
    let which = Redrive {
        endpoint_id: endpoint_id.as_deref(),
        since,
        until,
    };
    let redriven = deliveries::redrive(&Tenant::of(app, who)?, &which, now).await?;
    let env = app.env.clone();
    app.ctx
        .wait_until(async move { crate::platform::alarm::wake_at(&env, now_ms()).await });
    audit::log(app, who, &Change::done("delivery.redrive", ("delivery", "*"), Some(&json!({"endpoint_id": endpoint_id, "since": since.map(rfc3339), "until": until.map(rfc3339), "redriven": redriven})))).await;
    Ok(json_response(202, &json!({"redriven": redriven})))
}
