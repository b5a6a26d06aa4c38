//! `/api/v1/endpoints`: where canonical events are forwarded (URL, secret, type filter). The
//! signing secret is shown when it is made (creation, rotation) and otherwise only to admins at
//! `GET /api/v1/endpoints/{id}/secret`: a viewer or operator key must not be able to forge our
//! deliveries.

use super::request::{field_error, invalid_fields, json_body, page, query, rows_response};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{
    json_response, new_id, now_ms, rfc3339, secret_bytes, ApiError, ApiResult,
};
use crate::store::audit;
use crate::store::db;
use phone_agent_core::pagination::Cursor;
use phone_agent_core::targets::check_target;
use phone_agent_core::webhooks::signatures::new_endpoint_secret;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::Request;

/// Default overlap during which the previous secret keeps signing after a rotation.
const DEFAULT_GRACE_SECONDS: i64 = 24 * 3600;
const MAX_GRACE_SECONDS: i64 = 7 * 24 * 3600;

#[derive(Deserialize)]
struct Row {
    id: String,
    url: String,
    description: Option<String>,
    secret: String,
    previous_secret_expires_at: Option<i64>,
    event_types: Option<String>,
    status: String,
    disabled_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str =
    "id, url, description, secret, previous_secret_expires_at, event_types, status,
  disabled_reason, created_at, updated_at";

impl Row {
    fn render(&self, with_secret: bool) -> Value {
        let event_types: Value = self
            .event_types
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null);
        let mut v = json!({
            "id": self.id,
            "url": self.url,
            "description": self.description,
            "event_types": event_types,
            "status": self.status,
            "disabled_reason": self.disabled_reason,
            "previous_secret_expires_at": self.previous_secret_expires_at.map(rfc3339),
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        });
        if with_secret {
            v["secret"] = Value::String(self.secret.clone());
        }
        v
    }
}

/// Validated writable fields, in the API's PATCH convention (absent keeps, `null` clears).
#[derive(Default)]
struct Fields {
    url: phone_agent_core::patch::Patch<String>,
    /// `Null` clears the filter (every type).
    event_types: phone_agent_core::patch::Patch<String>,
    description: phone_agent_core::patch::Patch<String>,
    status: phone_agent_core::patch::Patch<String>,
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
    if errors.is_empty() {
        Ok(fields)
    } else {
        Err(invalid_fields(Value::from(errors)))
    }
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
    let id = new_id("ep")?;
    let now = now_ms();
    let db = app.db()?;
    db::run(
        &db,
        "INSERT INTO endpoints (id, tenant_id, url, description, secret, event_types, status, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            &id,
            &who.tenant_id,
            &fields.url.into_value().unwrap_or_default(),
            &fields.description.into_value(),
            &secret,
            &fields.event_types.into_value(),
            &fields.status.into_value().unwrap_or_else(|| "enabled".into()),
            &now,
            &now,
        ],
    )
    .await?;
    let row = find(app, who, &id).await?;
    audit::log(
        app,
        who,
        "endpoint.create",
        ("endpoint", &id),
        None,
        Some(&row.render(false)),
    )
    .await;
    Ok(json_response(201, &row.render(true)))
}

async fn find(app: &App, who: &Principal, id: &str) -> Result<Row, ApiError> {
    db::first(
        &app.db()?,
        &format!(
            "SELECT {COLUMNS} FROM endpoints WHERE id = ? AND tenant_id = ? AND deleted_at IS NULL"
        ),
        &[&id, &who.tenant_id],
    )
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no endpoint {id}")))
}

pub(super) async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    let row = find(app, who, id).await?;
    Ok(json_response(200, &row.render(false)))
}

/// `GET /api/v1/endpoints/{id}/secret`, admins only: the current signing secret. Each read is
/// audited (without the secret), so a leaked secret can be traced to the keys that saw it.
pub(super) async fn secret(app: &App, who: &Principal, id: &str) -> ApiResult {
    let row = find(app, who, id).await?;
    audit::log(
        app,
        who,
        "endpoint.read_secret",
        ("endpoint", id),
        None,
        None,
    )
    .await;
    Ok(json_response(
        200,
        &json!({
            "id": row.id,
            "secret": row.secret,
            "previous_secret_expires_at": row.previous_secret_expires_at.map(rfc3339),
        }),
    ))
}

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    let q = query(req)?;
    let page = page(&q)?;
    let (at, id) = page.bounds();
    let rows: Vec<Row> = db::all(
        &app.db()?,
        &format!(
            "SELECT {COLUMNS} FROM endpoints
             WHERE tenant_id = ? AND deleted_at IS NULL AND (created_at, id) < (?, ?)
               AND (? IS NULL OR status = ?)
             ORDER BY created_at DESC, id DESC LIMIT ?"
        ),
        &[
            &who.tenant_id,
            &at,
            &id,
            &q.get("status"),
            &q.get("status"),
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
        |r| r.render(false),
    )
}

pub(super) async fn update(req: &mut Request, app: &App, who: &Principal, id: &str) -> ApiResult {
    let body = json_body(req).await?;
    let fields = parse_fields(&body, app.config()?.allow_private_targets, false)?;
    let before = find(app, who, id).await?.render(false);
    let now = now_ms();
    // Re-enabling clears a 410-disable; the backlog of pending deliveries resumes.
    db::run(
        &app.db()?,
        "UPDATE endpoints SET
           url = COALESCE(?1, url),
           event_types = CASE WHEN ?2 THEN ?3 ELSE event_types END,
           description = CASE WHEN ?4 THEN ?5 ELSE description END,
           status = COALESCE(?6, status),
           disabled_reason = CASE WHEN ?6 IS NULL THEN disabled_reason ELSE NULL END,
           updated_at = ?7
         WHERE id = ?8 AND tenant_id = ?9",
        &[
            &fields.url.clone().into_value(),
            &!fields.event_types.is_absent(),
            &fields.event_types.clone().into_value(),
            &!fields.description.is_absent(),
            &fields.description.clone().into_value(),
            &fields.status.clone().into_value(),
            &now,
            &id,
            &who.tenant_id,
        ],
    )
    .await?;
    if fields.status.clone().into_value().as_deref() == Some("enabled") {
        let env = app.env.clone();
        app.ctx
            .wait_until(async move { crate::platform::alarm::wake_at(&env, now_ms()).await });
    }
    let row = find(app, who, id).await?;
    audit::log(
        app,
        who,
        "endpoint.update",
        ("endpoint", id),
        Some(&before),
        Some(&row.render(false)),
    )
    .await;
    Ok(json_response(200, &row.render(false)))
}

pub(super) async fn delete(app: &App, who: &Principal, id: &str) -> ApiResult {
    let row = find(app, who, id).await?;
    let now = now_ms();
    let db = app.db()?;
    db::batch(
        &db,
        vec![
            db::stmt(
                &db,
                "UPDATE endpoints SET deleted_at = ?, status = 'disabled', disabled_reason = 'deleted', updated_at = ?
                 WHERE id = ? AND tenant_id = ?",
                &[&now, &now, &id, &who.tenant_id],
            )?,
            db::stmt(
                &db,
                "UPDATE deliveries SET status = 'canceled', next_attempt_at = NULL, updated_at = ?
                 WHERE endpoint_id = ? AND status = 'pending'",
                &[&now, &id],
            )?,
        ],
    )
    .await?;
    audit::log(
        app,
        who,
        "endpoint.delete",
        ("endpoint", id),
        Some(&row.render(false)),
        None,
    )
    .await;
    Ok(json_response(200, &json!({"id": row.id, "deleted": true})))
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
    find(app, who, id).await?;
    let secret = new_endpoint_secret(&secret_bytes()?);
    let now = now_ms();
    db::run(
        &app.db()?,
        "UPDATE endpoints SET previous_secret = secret, previous_secret_expires_at = ?,
           secret = ?, updated_at = ? WHERE id = ? AND tenant_id = ?",
        &[&(now + grace * 1000), &secret, &now, &id, &who.tenant_id],
    )
    .await?;
    let row = find(app, who, id).await?;
    audit::log(
        app,
        who,
        "endpoint.rotate_secret",
        ("endpoint", id),
        None,
        Some(&json!({"previous_secret_expires_at": row.previous_secret_expires_at.map(rfc3339)})),
    )
    .await;
    Ok(json_response(200, &row.render(true)))
}
