//! `/api/v1/events`: every accepted event, raw and canonical; replay re-sends one.

use super::request::{found, json_body, list_of};
use crate::pipeline::forwarding;
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, now_ms, rfc3339, ApiError, ApiResult};
use crate::store::audit::{self, Change};
use crate::store::deliveries;
use crate::store::events::{self, Event};
use crate::store::tenant::Tenant;
use serde_json::{json, Value};
use worker::Request;

fn render(e: &Event) -> Value {
    json!({
        "id": e.id,
        "type": e.event_type,
        "provider": e.provider,
        "provider_event_id": e.provider_event_id,
        "call_id": e.call_id,
        "received_at": rfc3339(e.received_at),
        "payload": serde_json::from_str::<Value>(&e.payload).unwrap_or(Value::Null),
    })
}

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    list_of::<Event>(req, app, who, render).await
}

async fn find(tenant: &Tenant, id: &str) -> Result<Event, ApiError> {
    found(events::get(tenant, id).await?, "event", id)
}

pub(super) async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    let tenant = Tenant::of(app, who)?;
    let event = find(&tenant, id).await?;
    let mut body = render(&event);
    body["deliveries"] = deliveries::of_event(&tenant, id)
        .await?
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
    let tenant = Tenant::of(app, who)?;
    find(&tenant, id).await?;
    let pending = deliveries::replay(&tenant, id, endpoint_id.as_deref(), now_ms()).await?;
    let env = app.env.clone();
    let event_id = id.to_owned();
    app.ctx
        .wait_until(async move { forwarding::deliver_event(&env, &event_id).await });
    audit::log(
        app,
        who,
        &Change::done(
            "event.replay",
            ("event", id),
            Some(&json!({"endpoint_id": endpoint_id, "replayed": pending})),
        ),
    )
    .await;
    Ok(json_response(202, &json!({"id": id, "replayed": pending})))
}
