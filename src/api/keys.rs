//! `/api/v1/api-keys`: keys of the caller's tenant. A key is shown once, at creation; only
//! its SHA-256 is stored, so a leaked table reveals no usable key.

use super::request::{field_error, invalid_fields, json_body, page, query, rows_response};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{
    json_response, new_id, new_secret, now_ms, rfc3339, ApiError, ApiResult,
};
use crate::store::audit::{self, Change};
use crate::store::db;
use phone_agent_core::auth::{key_hash, Role};
use phone_agent_core::pagination::Cursor;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::Request;

#[derive(Deserialize)]
struct Row {
    id: String,
    name: String,
    role: String,
    prefix: String,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl Row {
    fn render(&self) -> Value {
        json!({
            "id": self.id, "name": self.name, "role": self.role, "prefix": self.prefix,
            "created_at": rfc3339(self.created_at),
            "last_used_at": self.last_used_at.map(rfc3339),
            "revoked_at": self.revoked_at.map(rfc3339),
        })
    }
}

const COLUMNS: &str = "id, name, role, prefix, created_at, last_used_at, revoked_at";

/// A new secret key and its displayable prefix: `pa_live_` + 128 random bits.
pub fn generate() -> Result<(String, String), ApiError> {
    let key = new_secret("pa_live")?;
    let prefix = key.chars().take(12).collect();
    Ok((key, prefix))
}

/// Parses `{name, role}` for a new key.
pub fn parse_new_key(body: &Value) -> Result<(String, Role), ApiError> {
    let mut errors = Vec::new();
    let name = match body.get("name").and_then(Value::as_str).map(str::trim) {
        Some(n) if !n.is_empty() && n.len() <= 100 => n.to_owned(),
        _ => {
            errors.push(field_error(
                "name",
                "required",
                "name is a non-empty string of at most 100 bytes",
            ));
            String::new()
        }
    };
    let role = match body.get("role") {
        None | Some(Value::Null) => Some(Role::Viewer),
        Some(v) => serde_json::from_value::<Role>(v.clone()).ok(),
    };
    if role.is_none() {
        errors.push(field_error(
            "role",
            "invalid_value",
            "role is admin, operator or viewer",
        ));
    }
    match role {
        Some(role) if errors.is_empty() => Ok((name, role)),
        _ => Err(invalid_fields(Value::from(errors))),
    }
}

/// The insert for a new key of `tenant_id` (batched by callers that create tenants too).
pub fn insert(
    db: &worker::d1::D1Database,
    tenant_id: &str,
    id: &str,
    name: &str,
    role: Role,
    key: &str,
    prefix: &str,
) -> Result<worker::d1::D1PreparedStatement, ApiError> {
    let role = serde_json::to_value(role).map_err(ApiError::internal)?;
    Ok(db::stmt(
        db,
        "INSERT INTO api_keys (id, tenant_id, name, role, key_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        &[&id, &tenant_id, &name, &role.as_str().unwrap_or("viewer"), &key_hash(key), &prefix, &now_ms()],
    )?)
}

pub(super) async fn create(req: &mut Request, app: &App, who: &Principal) -> ApiResult {
    let body = json_body(req).await?;
    let (name, role) = parse_new_key(&body)?;
    let (key, prefix) = generate()?;
    let id = new_id("key")?;
    let db = app.db()?;
    let after = json!({"id": id, "name": name, "role": role, "prefix": prefix});
    db::batch(
        &db,
        vec![
            insert(&db, &who.tenant_id, &id, &name, role, &key, &prefix)?,
            audit::statement(
                &db,
                who,
                &Change {
                    action: "api_key.create",
                    resource_type: "api_key",
                    resource_id: Some(&id),
                    before: None,
                    after: Some(&after),
                },
            )?,
        ],
    )
    .await?;
    let mut body = find(app, who, &id).await?.render();
    body["key"] = Value::String(key);
    Ok(json_response(201, &body))
}

async fn find(app: &App, who: &Principal, id: &str) -> Result<Row, ApiError> {
    db::first(
        &app.db()?,
        &format!("SELECT {COLUMNS} FROM api_keys WHERE id = ? AND tenant_id = ?"),
        &[&id, &who.tenant_id],
    )
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no api key {id}")))
}

pub(super) async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    Ok(json_response(200, &find(app, who, id).await?.render()))
}

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    let page = page(&query(req)?)?;
    let (at, id) = page.bounds();
    let rows: Vec<Row> = db::all(
        &app.db()?,
        &format!(
            "SELECT {COLUMNS} FROM api_keys WHERE tenant_id = ? AND (created_at, id) < (?, ?)
             ORDER BY created_at DESC, id DESC LIMIT ?"
        ),
        &[&who.tenant_id, &at, &id, &page.fetch()],
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

pub(super) async fn revoke(app: &App, who: &Principal, id: &str) -> ApiResult {
    let before = find(app, who, id).await?.render();
    let db = app.db()?;
    db::batch(
        &db,
        vec![
            db::stmt(
                &db,
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? AND tenant_id = ?",
                &[&now_ms(), &id, &who.tenant_id],
            )?,
            audit::statement(
                &db,
                who,
                &Change { action: "api_key.revoke", resource_type: "api_key", resource_id: Some(id), before: Some(&before), after: None },
            )?,
        ],
    )
    .await?;
    Ok(json_response(200, &find(app, who, id).await?.render()))
}
