//! `/api/v1/events`: every accepted event, raw and canonical; replay re-sends one.

use super::request::{json_body, page, query, rows_response};
use crate::pipeline::forwarding;
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, rfc3339, ApiError, ApiResult};
use crate::store::audit;
use crate::store::db;
use phone_agent_core::pagination::Cursor;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::Request;

#[derive(Deserialize)]
struct Row {
    id: String,
    provider: String,
    provider_event_id: String,
    #[serde(rename = "type")]
    event_type: String,
    call_id: Option<String>,
    received_at: i64,
    payload: String,
}

impl Row {
    fn render(&self) -> Value {
        json!({
            "id": self.id,
            "type": self.event_type,
            "provider": self.provider,
            "provider_event_id": self.provider_event_id,
            "call_id": self.call_id,
            "received_at": rfc3339(self.received_at),
            "payload": serde_json::from_str::<Value>(&self.payload).unwrap_or(Value::Null),
        })
    }
}

const COLUMNS: &str = "id, provider, provider_event_id, type, call_id, received_at, payload";

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    let q = query(req)?;
    let page = page(&q)?;
    let (at, id) = page.bounds();
    let rows: Vec<Row> = db::all(
        &app.db()?,
        &format!(
            "SELECT {COLUMNS} FROM webhook_events
             WHERE tenant_id = ?1 AND (received_at, id) < (?2, ?3)
               AND (?4 IS NULL OR type = ?4) AND (?5 IS NULL OR provider = ?5)
               AND (?6 IS NULL OR call_id = ?6)
             ORDER BY received_at DESC, id DESC LIMIT ?7"
        ),
        &[
            &who.tenant_id,
            &at,
            &id,
            &q.get("type"),
            &q.get("provider"),
            &q.get("call_id"),
            &page.fetch(),
        ],
    )
    .await?;
    rows_response(
        rows,
        &page,
        |r| Cursor {
            created_at: r.received_at,
            id: r.id.clone(),
        },
        Row::render,
    )
}

async fn find(app: &App, who: &Principal, id: &str) -> Result<Row, ApiError> {
    db::first(
        &app.db()?,
        &format!("SELECT {COLUMNS} FROM webhook_events WHERE id = ? AND tenant_id = ?"),
        &[&id, &who.tenant_id],
    )
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no event {id}")))
}

pub(super) async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    let row = find(app, who, id).await?;
    #[derive(Deserialize)]
    struct Delivery {
        id: String,
        endpoint_id: String,
        status: String,
        attempts: i64,
        last_status_code: Option<i64>,
    }
    let deliveries: Vec<Delivery> = db::all(
        &app.db()?,
        "SELECT id, endpoint_id, status, attempts, last_status_code FROM deliveries
         WHERE event_id = ? AND tenant_id = ? ORDER BY created_at, id",
        &[&id, &who.tenant_id],
    )
    .await?;
    let mut body = row.render();
    body["deliveries"] = deliveries
        .iter()
        .map(|d| {
            json!({"id": d.id, "endpoint_id": d.endpoint_id, "status": d.status,
                   "attempts": d.attempts, "last_status_code": d.last_status_code})
        })
        .collect();
    Ok(json_response(200, &body))
}

pub(super) async fn replay(req: &mut Request, app: &App, who: &Principal, id: &str) -> ApiResult {
    let body = json_body(req).await?;
    let endpoint_id = match body.get("endpoint_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) => Some(e.clone()),
        Some(_) => {
            return Err(super::request::invalid_fields(json!([
                super::request::field_error(
                    "endpoint_id",
                    "invalid_type",
                    "endpoint_id must be a string"
                )
            ])))
        }
    };
    find(app, who, id).await?;
    let db = app.db()?;
    let pending = forwarding::replay(&db, &who.tenant_id, id, endpoint_id.as_deref()).await?;
    let env = app.env.clone();
    let event_id = id.to_owned();
    app.ctx
        .wait_until(async move { forwarding::deliver_event(&env, &event_id).await });
    audit::log(
        app,
        who,
        "event.replay",
        ("event", id),
        None,
        Some(&json!({"endpoint_id": endpoint_id, "replayed": pending})),
    )
    .await;
    Ok(json_response(202, &json!({"id": id, "replayed": pending})))
}
