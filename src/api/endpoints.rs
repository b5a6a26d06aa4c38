//! `/api/v1/endpoints`: where canonical events are forwarded (URL, secret, type filter). The
//! signing secret is shown when it is made (creation, rotation) and otherwise only to admins at
//! `GET /api/v1/endpoints/{id}/secret`: a viewer or operator key must not be able to forge our
//! deliveries. `POST /api/v1/endpoints/{id}/test` sends it a synthetic `webhook.test` event
//! through the ordinary outbox (signed, retried, listed with the deliveries).

use super::request::{
    audited_delete, audited_update, field_error, found, invalid_fields, json_body, list_of,
    no_field_errors,
};
use crate::pipeline::forwarding;
use crate::pipeline::forwarding::OWN_PROVIDER;
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{
    json_response, new_id, now_ms, rfc3339, secret_bytes, ApiError, ApiResult,
};
use crate::store::audit::{self, Change};
use crate::store::endpoints::{self, Endpoint, Fields};
use crate::store::error::StoreError;
use crate::store::events::{self, NewEvent};
use crate::store::tenant::Tenant;
use phone_agent_core::delivery::{test_allowed, test_event, TEST_EVENT_TYPE};
use phone_agent_core::ids::EventId;
use phone_agent_core::targets::check_target;
use phone_agent_core::webhooks::signatures::new_endpoint_secret;
use serde_json::{json, Value};
use worker::Request;

/// Default overlap during which the previous secret keeps signing after a rotation.
const DEFAULT_GRACE_SECONDS: i64 = 24 * 3600;
const MAX_GRACE_SECONDS: i64 = 7 * 24 * 3600;

/// The API shape of an endpoint; the secret only where the caller may see it.
fn render(e: &Endpoint, with_secret: bool) -> Value {
    let event_types: Value = e
        .event_types
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null);
    let mut v = json!({
        "id": e.id,
        "url": e.url,
        "description": e.description,
        "event_types": event_types,
        "status": e.status,
        "disabled_reason": e.disabled_reason,
        "previous_secret_expires_at": e.previous_secret_expires_at.map(rfc3339),
        "created_at": rfc3339(e.created_at),
        "updated_at": rfc3339(e.updated_at),
    });
    if with_secret {
        v["secret"] = Value::String(e.secret.clone());
    }
    v
}

fn parse_fields(body: &Value, allow_private: bool, creating: bool) -> Result<Fields, ApiError> {
    use phone_agent_core::patch::{self, Patch};
    let mut errors = Vec::new();
    let mut fields = Fields::default();
    let not_clearable = |field: &str| {
        let e = patch::not_clearable(field);
        field_error(&e.field, e.code, e.message)
    };
    match Patch::field(body, "url") {
        Patch::Absent | Patch::Null if creating => {
            errors.push(field_error("url", "required", "url is required"))
        }
        Patch::Absent => {}
        Patch::Null => errors.push(not_clearable("url")),
        Patch::Value(Value::String(url)) => match check_target(url, allow_private) {
            Ok(parsed) => fields.url = Patch::Value(parsed.to_string()),
            Err(e) => errors.push(field_error("url", "invalid_url", e.to_string())),
        },
        Patch::Value(_) => errors.push(field_error("url", "invalid_type", "url must be a string")),
    }
    match Patch::field(body, "event_types") {
        Patch::Absent => {}
        Patch::Null => fields.event_types = Patch::Null,
        Patch::Value(Value::Array(items)) => {
            let mut types = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(t) if valid_event_type(t) => types.push(t.to_owned()),
                    _ => errors.push(field_error(
                        &format!("event_types[{i}]"),
                        "invalid_value",
                        "event types are like call.completed, email.*, or *",
                    )),
                }
            }
            if items.is_empty() {
                errors.push(field_error(
                    "event_types",
                    "invalid_value",
                    "use null for every type, not []",
                ));
            }
            fields.event_types = Patch::Value(Value::from(types).to_string());
        }
        Patch::Value(_) => errors.push(field_error(
            "event_types",
            "invalid_type",
            "event_types must be an array or null",
        )),
    }
    match Patch::field(body, "description") {
        Patch::Absent => {}
        Patch::Null => fields.description = Patch::Null,
        Patch::Value(Value::String(d)) if d.len() <= 500 => {
            fields.description = Patch::Value(d.clone())
        }
        Patch::Value(_) => errors.push(field_error(
            "description",
            "invalid_value",
            "description is a string of at most 500 bytes",
        )),
    }
    match Patch::field(body, "status") {
        // A new endpoint without a status is enabled.
        Patch::Absent => {}
        Patch::Null if creating => {}
        Patch::Null => errors.push(not_clearable("status")),
        Patch::Value(Value::String(s)) if s == "enabled" || s == "paused" => {
            fields.status = Patch::Value(s.clone())
        }
        Patch::Value(_) => errors.push(field_error(
            "status",
            "invalid_value",
            "status is enabled or paused",
        )),
    }
    no_field_errors(errors)?;
    Ok(fields)
}

fn valid_event_type(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 100
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-*".contains(&b))
        && (!t.contains('*') || t == "*" || (t.ends_with(".*") && !t[..t.len() - 2].contains('*')))
}

pub(super) async fn create(req: &mut Request, app: &App, who: &Principal) -> ApiResult {
    let body = json_body(req).await?;
    let fields = parse_fields(&body, app.config()?.allow_private_targets, true)?;
    let secret = new_endpoint_secret(&secret_bytes()?);
    let endpoint = endpoints::insert(&Tenant::of(app, who)?, fields, &secret).await?;
    audit::log(
        app,
        who,
        &Change::created(
            "endpoint.create",
            ("endpoint", endpoint.id.as_str()),
            &render(&endpoint, false),
        ),
    )
    .await;
    Ok(json_response(201, &render(&endpoint, true)))
}

async fn find(tenant: &Tenant, id: &str) -> Result<Endpoint, ApiError> {
    found(endpoints::get(tenant, id).await?, "endpoint", id)
}

pub(super) async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    let endpoint = find(&Tenant::of(app, who)?, id).await?;
    Ok(json_response(200, &render(&endpoint, false)))
}

/// `GET /api/v1/endpoints/{id}/secret`, admins only: the current signing secret. Each read is
/// audited (without the secret), so a leaked secret can be traced to the keys that saw it.
pub(super) async fn secret(app: &App, who: &Principal, id: &str) -> ApiResult {
    let endpoint = find(&Tenant::of(app, who)?, id).await?;
    audit::log(
        app,
        who,
        &Change::done("endpoint.read_secret", ("endpoint", id), None),
    )
    .await;
    Ok(json_response(
        200,
        &json!({
            "id": endpoint.id,
            "secret": endpoint.secret,
            "previous_secret_expires_at": endpoint.previous_secret_expires_at.map(rfc3339),
        }),
    ))
}

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    list_of::<Endpoint>(req, app, who, |e| render(e, false)).await
}

pub(super) async fn update(req: &mut Request, app: &App, who: &Principal, id: &str) -> ApiResult {
    let body = json_body(req).await?;
    let fields = parse_fields(&body, app.config()?.allow_private_targets, false)?;
    let tenant = Tenant::of(app, who)?;
    let before = render(&find(&tenant, id).await?, false);
    let now = now_ms();
    let updated = endpoints::update(&tenant, id, &fields, now).await?;
    if fields.status.clone().into_value().as_deref() == Some("enabled") {
        let env = app.env.clone();
        app.ctx
            .wait_until(async move { crate::platform::alarm::wake_at(&env, now_ms()).await });
    }
    let after = render(&found(updated, "endpoint", id)?, false);
    audited_update(
        app,
        who,
        "endpoint.update",
        ("endpoint", id),
        &before,
        after,
    )
    .await
}

pub(super) async fn delete(app: &App, who: &Principal, id: &str) -> ApiResult {
    let tenant = Tenant::of(app, who)?;
    let endpoint = find(&tenant, id).await?;
    endpoints::delete(&tenant, id).await?;
    audited_delete(
        app,
        who,
        "endpoint.delete",
        ("endpoint", id),
        &render(&endpoint, false),
    )
    .await
}

pub(super) async fn rotate(req: &mut Request, app: &App, who: &Principal, id: &str) -> ApiResult {
    let body = json_body(req).await?;
    let grace = match body.get("grace_seconds") {
        None | Some(Value::Null) => DEFAULT_GRACE_SECONDS,
        Some(v) => v
            .as_i64()
            .filter(|g| (0..=MAX_GRACE_SECONDS).contains(g))
            .ok_or_else(|| {
                invalid_fields(json!([field_error(
                    "grace_seconds",
                    "invalid_value",
                    format!("grace_seconds is a whole number from 0 to {MAX_GRACE_SECONDS}")
                )]))
            })?,
    };
    let tenant = Tenant::of(app, who)?;
    find(&tenant, id).await?;
    let secret = new_endpoint_secret(&secret_bytes()?);
    let now = now_ms();
    let endpoint = endpoints::rotate_secret(&tenant, id, &secret, now + grace * 1000, now).await?;
    let endpoint = found(endpoint, "endpoint", id)?;
    audit::log(app, who, &Change::done("endpoint.rotate_secret", ("endpoint", id), Some(&json!({"previous_secret_expires_at": endpoint.previous_secret_expires_at.map(rfc3339)}))))
    .await;
    Ok(json_response(200, &render(&endpoint, true)))
}

/// `POST /api/v1/endpoints/{id}/test`: stores a `webhook.test` event with one delivery, to this
/// endpoint only, and sends its first attempt after the answer, like any event's; the caller
/// follows the delivery at `GET /api/v1/deliveries/{delivery_id}`.
pub(super) async fn send_test(app: &App, who: &Principal, id: &str) -> ApiResult {
    let tenant = Tenant::of(app, who)?;
    let endpoint = find(&tenant, id).await?;
    test_allowed(&endpoint.status, endpoint.disabled_reason.as_deref())?;
    let event_id = new_id::<EventId>()?;
    // Unique per test, so the outbox's dedupe never folds two tests into one.
    let key = format!("test:{event_id}");
    let now = now_ms();
    let payload = test_event(OWN_PROVIDER, &key, id, &rfc3339(now));
    let raw = payload.to_string();
    let delivery_id = events::publish_test(
        &tenant,
        &NewEvent {
            tenant_id: tenant.id().as_str(),
            provider: OWN_PROVIDER,
            provider_event_id: &key,
            event_type: TEST_EVENT_TYPE,
            call_id: None,
            received_at: now,
            content_type: Some("application/json"),
            raw_body: &raw,
            payload: &payload,
        },
        &event_id,
        id,
    )
    .await?
    .ok_or(StoreError::Missing(
        "test delivery (endpoint changed meanwhile)",
    ))?;
    let env = app.env.clone();
    let first = event_id.to_string();
    app.ctx
        .wait_until(async move { forwarding::deliver_event(&env, &first).await });
    let answer = json!({
        "event_id": event_id,
        "delivery_id": delivery_id,
        "endpoint_id": id,
        "type": TEST_EVENT_TYPE,
        "status": "pending",
    });
    audit::log(
        app,
        who,
        &Change::done("endpoint.test", ("endpoint", id), Some(&answer)),
    )
    .await;
    Ok(json_response(202, &answer))
}
